//! The command line: argument parsing, exit codes, one module per command.
//!
//! Exit codes: 0 ok; 1 a check failed, or the file is not a sound snapshot
//! (any command that meets damage: the library's corruption errors are
//! recognised by type in [`exit_code`]), or what was asked for is not there;
//! 2 usage error, or the file could not be read at all (I/O).
//!
//! Every command module parses its flags, calls the library and renders what
//! it returns; no command module imports another. What several share lives
//! in exactly these modules: this one (the command enum, dispatch, exit
//! codes, stdout), [`args`] (the shared flags, as `#[command(flatten)]`
//! structs and value enums) and [`render`] (objects, notes, progress bar,
//! findings).

/// `eprintln!` with control characters escaped ([`etcdsnap::report::escape_controls`]):
/// a stderr line may carry keys, names and paths from the file, which must not
/// reach the terminal raw.
macro_rules! say {
    ($($arg:tt)*) => {
        eprintln!("{}", etcdsnap::report::escape_controls(&format!($($arg)*)))
    };
}

mod args;
#[cfg(feature = "bundle")]
mod bundle;
#[cfg(feature = "catalog")]
mod catalog;
#[cfg(feature = "catalog")]
mod check;
#[cfg(feature = "live")]
mod compare;
mod completions;
mod decode;
mod diff;
#[cfg(feature = "live")]
mod drill;
mod get;
mod hashkv;
mod history;
mod inspect;
#[cfg(feature = "bundle")]
mod install;
mod keyindex;
mod ls;
#[cfg(feature = "live")]
mod member;
#[cfg(feature = "pki")]
mod pki;
#[cfg(feature = "live")]
mod putback;
#[cfg(test)]
mod reference_docs;
mod render;
mod restore;
mod salvage;
#[cfg(feature = "live")]
mod save;
mod status;
mod verify;
#[cfg(feature = "live")]
mod verify_cluster;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// A command's verdict, when it ran to the end.
pub enum Outcome {
    Ok,
    /// A check failed; the message (if any) was already printed.
    Failed,
}

#[derive(Parser)]
#[command(
    name = "etcdsnap",
    version,
    about = "Offline toolkit and verifier for etcd snapshot files",
    long_about = "Offline toolkit and verifier for etcd snapshot files (snapshot.db, as `etcdctl snapshot save` \
writes them) of Kubernetes clusters. Reads snapshots written by etcd 3.4 to 3.7 without an etcd server; never \
modifies the input. Files compressed with zstd, gzip or zip (k3s) are read transparently.",
    after_help = "Examples:\n  etcdsnap verify snapshot.db\n  etcdsnap status snapshot.db -w table\n  etcdsnap ls snapshot.db --resource deploy -n prod\n  etcdsnap get snapshot.db configmap app-config -n default --for-apply\n  etcdsnap ls snapshot.db --deleted\n\nExit codes: 0 ok; 1 a check failed, the snapshot is damaged (not a sound snapshot), or the object \
is not found; 2 usage or I/O error.\n\nEnvironment:\n  ETCDSNAP_CACHE_DIR  where `get` and `history` keep key indexes (default \
$XDG_CACHE_HOME/etcdsnap, else ~/.cache/etcdsnap); each write is said on stderr; --no-index writes none\n  TMPDIR  \
where a compressed snapshot or standard input is unpacked"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Status(status::Args),
    Verify(verify::Args),
    #[cfg(feature = "catalog")]
    Check(check::Args),
    #[cfg(feature = "catalog")]
    Catalog(catalog::Args),
    Ls(ls::Args),
    Get(get::Args),
    History(history::Args),
    Index(keyindex::Args),
    Hashkv(hashkv::Args),
    Inspect(inspect::Args),
    Decode(decode::Args),
    Diff(diff::Args),
    Restore(restore::Args),
    Salvage(salvage::Args),
    #[cfg(feature = "pki")]
    Pki(pki::Args),
    #[cfg(feature = "bundle")]
    Bundle(bundle::Args),
    #[cfg(feature = "bundle")]
    Install(install::Args),
    Completions(completions::Args),
    #[cfg(feature = "live")]
    Save(save::Args),
    #[cfg(feature = "live")]
    PutBack(putback::Args),
    #[cfg(feature = "live")]
    Compare(compare::Args),
    #[cfg(feature = "live")]
    VerifyCluster(verify_cluster::Args),
    #[cfg(feature = "live")]
    Drill(drill::Args),
    #[cfg(feature = "live")]
    Member(member::Args),
}

pub use args::{ReportFormat, SnapshotPath};

/// The stack of the threads that decode and print objects. Objects nest up
/// to 10,000 levels (what the API server accepts); printing and dropping
/// them recurses. Reserved, not used: pages are touched only as needed.
pub const STACK_SIZE: usize = 512 << 20;

pub fn main() -> ExitCode {
    // Threads of `get --all` get the same room.
    let _ = rayon::ThreadPoolBuilder::new()
        .stack_size(STACK_SIZE)
        .build_global();
    match std::thread::Builder::new()
        .name("etcdsnap".into())
        .stack_size(STACK_SIZE)
        .spawn(run_main)
    {
        // A panic was printed by the panic hook already.
        Ok(t) => t.join().unwrap_or(ExitCode::from(101)),
        Err(_) => run_main(),
    }
}

fn run_main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints help/version to stdout (exit 0) and usage errors to stderr (exit 2).
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let result = match cli.command {
        Command::Status(a) => status::run(a),
        Command::Verify(a) => verify::run(a),
        #[cfg(feature = "catalog")]
        Command::Check(a) => check::run(a),
        #[cfg(feature = "catalog")]
        Command::Catalog(a) => catalog::run(a),
        Command::Ls(a) => ls::run(a),
        Command::Get(a) => get::run(a),
        Command::History(a) => history::run(a),
        Command::Index(a) => keyindex::run(a),
        Command::Hashkv(a) => hashkv::run(a),
        Command::Inspect(a) => inspect::run(a),
        Command::Decode(a) => decode::run(a),
        Command::Diff(a) => diff::run(a),
        Command::Restore(a) => restore::run(a),
        Command::Salvage(a) => salvage::run(a),
        #[cfg(feature = "pki")]
        Command::Pki(a) => pki::run(a),
        #[cfg(feature = "bundle")]
        Command::Bundle(a) => bundle::run(a),
        #[cfg(feature = "bundle")]
        Command::Install(a) => install::run(a),
        Command::Completions(a) => completions::run(a),
        #[cfg(feature = "live")]
        Command::Save(a) => save::run(a),
        #[cfg(feature = "live")]
        Command::PutBack(a) => putback::run(a),
        #[cfg(feature = "live")]
        Command::Compare(a) => compare::run(a),
        #[cfg(feature = "live")]
        Command::VerifyCluster(a) => verify_cluster::run(a),
        #[cfg(feature = "live")]
        Command::Drill(a) => drill::run(a),
        #[cfg(feature = "live")]
        Command::Member(a) => member::run(a),
    };
    match result {
        Ok(Outcome::Ok) => ExitCode::SUCCESS,
        Ok(Outcome::Failed) => ExitCode::from(1),
        Err(e) => {
            if is_broken_pipe(&e) {
                return ExitCode::SUCCESS;
            }
            say!("etcdsnap: error: {}", error_chain(&e));
            ExitCode::from(exit_code(&e))
        }
    }
}

/// An error and its causes, joined by ": ", each said once: a library error
/// whose message already names its source (`cannot open: {source}`) does not
/// repeat it (anyhow's `{:#}` would print "(os error 2): … (os error 2)").
pub fn error_chain(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !out.contains(&c) {
            out.push_str(": ");
            out.push_str(&c);
        }
    }
    out
}

/// The exit code of an error: 1 when the library says the snapshot is
/// damaged (by the error's type, wherever it sits in the chain), else 2
/// (usage, I/O, a revision that is not there).
pub fn exit_code(e: &anyhow::Error) -> u8 {
    use etcdsnap::bolt::db::{OpenError, PageFault};
    use etcdsnap::bolt::read::ReadError;
    use etcdsnap::input::InputError;
    use etcdsnap::mvcc::keyspace::KeySpaceError;
    let damaged = e.chain().any(|c| {
        c.is::<OpenError>()
            || c.is::<PageFault>()
            || c.is::<ReadError>()
            || c.downcast_ref::<KeySpaceError>()
                .is_some_and(KeySpaceError::is_corruption)
            || c.downcast_ref::<InputError>()
                .is_some_and(InputError::is_damage)
            || c.is::<etcdsnap::input::ExcessDamage>()
    });
    if damaged { 1 } else { 2 }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Writes to stdout, turning errors (a closed pipe) into an `anyhow` error.
pub fn out(s: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(s.as_bytes())?;
    stdout.flush()?;
    Ok(())
}
