//! The integration tests, one binary (as cargo and ripgrep lay theirs out):
//! each module is one area of the command line, run against the committed
//! fixtures and, in the modules that say so, against real etcd releases and
//! independent oracles that `bash .ci/setup` installs.
//!
//! Two tiers (CONTRIBUTING.md): `cargo test` runs what needs nothing but the
//! committed fixtures; the tests marked `#[ignore = "real: …"]` need real
//! servers or oracles and run in `bash .ci/run` (`--include-ignored`), where a
//! missing tool fails the test, never skips it.

/// One `#[test]` per etcd release: `per_release!(ATTRS name: v3_6("3.6"), …)`
/// makes a module `name` with one test a release (`name::v3_6`, …), each
/// calling the function `name` with that release's arguments, so a failure
/// on one release never hides the others. Attributes (`#[ignore = …]`) go on
/// every generated test.
macro_rules! per_release {
    ($(#[$m:meta])* $name:ident: $($rest:tt)+) => {
        per_release!(@mod [$(#[$m])*] $name: $($rest)+);
    };
    (@mod $attrs:tt $name:ident: $($v:ident($($a:expr),*)),+ $(,)?) => {
        mod $name {
            $(per_release!(@one $attrs $name $v($($a),*));)+
        }
    };
    (@one [$(#[$m:meta])*] $name:ident $v:ident($($a:expr),*)) => {
        $(#[$m])*
        #[test]
        fn $v() {
            super::$name($($a),*)
        }
    };
}

mod common;
mod craft;
mod oracle;

mod bbolt_check;
mod bundle;
mod bundle_e2e;
mod catalog;
mod check;
mod corruption;
mod decrypt;
mod diff;
#[cfg(feature = "live")]
mod drill;
mod etcd36;
mod hashkv;
mod hostile;
mod inflate;
mod inspect;
mod inspect_html;
mod join;
mod k8s_oracle;
mod k8s_testdata;
mod key_index;
mod kube_apiserver;
#[cfg(feature = "live")]
mod live;
#[cfg(feature = "live")]
mod member;
#[cfg(feature = "live")]
mod member_replace;
#[cfg(feature = "live")]
mod member_tls;
mod object_commands;
mod object_output;
mod objects;
mod pki;
#[cfg(feature = "remote")]
mod remote;
#[cfg(feature = "remote")]
mod remote_cloud;
mod remote_install;
mod remote_prefix;
mod remote_range;
#[cfg(feature = "live")]
mod remote_save;
#[cfg(feature = "live")]
mod restore;
mod restore_plan;
mod restore_swap;
mod salvage;
mod salvage_buckets;
mod salvage_read;
mod spoofing;
mod status_parity;
