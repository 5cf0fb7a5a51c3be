//! The integration tests, one binary (as cargo and ripgrep lay theirs out):
//! each module is one area of the command line, run against the committed
//! fixtures and, in the modules that say so, against real etcd releases and
//! independent oracles that `bash .ci/setup` installs.
//!
//! Two tiers (CONTRIBUTING.md): `cargo test` runs what needs nothing but the
//! committed fixtures; the tests marked `#[ignore = "real: …"]` need real
//! servers or oracles and run in `bash .ci/run` (`--include-ignored`), where a
//! missing tool fails the test, never skips it.

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
mod etcd36;
mod hashkv;
mod hostile;
mod inflate;
mod inspect;
mod k8s_oracle;
mod k8s_testdata;
mod key_index;
#[cfg(feature = "live")]
mod live;
mod object_commands;
mod object_output;
mod objects;
mod pki;
#[cfg(feature = "live")]
mod reference_docs;
mod restore;
mod restore_plan;
mod restore_swap;
mod spoofing;
mod status_parity;
