//! `etcdsnap save`: a snapshot from one live member, checked on arrival
//! (the server's sha256), written atomically, then verified.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::bail;

use super::Outcome;
use super::args::ConnArgs;
use etcdsnap::live::connect::Member;
use etcdsnap::live::save::{SaveError, SaveOptions, Saved, remove_stale_temps, save};
use etcdsnap::report::humanize_bytes;

/// Save a snapshot of a live cluster from one member (as `etcdctl snapshot
/// save`), checked and verified
#[derive(clap::Args)]
#[command(
    long_about = "Streams a snapshot from one member (the Maintenance Snapshot RPC) into a temporary file of \
this run next to OUT (.<OUT>.etcdsnap-save-<pid>-<random>.part: created exclusively, never through a symbolic \
link, mode 0600; such files that a killed save left, whose process is gone, are removed first), checks the sha256 the server appends against the bytes received, fsyncs, runs `verify` on it \
(unless --no-verify), and only then gives it the name OUT and fsyncs the directory. The file is the one \
`etcdctl snapshot save` writes (the db and its 32-byte sha256), readable by its owner only (0600). A dropped \
connection or a wrong digest leaves no file (the temporary file is removed); a file that fails verify is kept \
as OUT.unverified (or under its temporary name when that is taken), and OUT is not written.\n\nOUT is never replaced without --force; with two saves to one OUT \
at once, one writes it and the other stops with nothing written. With --force an existing OUT stays as it is \
until the new snapshot is whole, checked and verified, then a rename replaces it in one step: a failed save \
leaves the old OUT in place.\n\nThe sha256 printed is that of the whole file, as `sha256sum`, `verify -w json`, \
`catalog` and `bundle` print it; the digest the server appended (of the db without its last 32 bytes) is \
named apart as \"db sha256\". Progress (bytes, rate) is shown when stderr is a terminal.\n\nExit codes: 0 \
saved (and verified); 1 the digest does not match, or verify failed (the file is kept as OUT.unverified); 2 \
usage, connection or I/O error, or OUT exists.",
    after_help = "Examples:\n  etcdsnap save /backup/snap.db --endpoints https://10.0.0.1:2379 --cacert ca.crt --cert client.crt --key client.key\n  ETCDCTL_ENDPOINTS=http://127.0.0.1:2379 etcdsnap save snap.db --no-verify"
)]
pub struct Args {
    /// The file to write (mode 0600)
    out: PathBuf,
    #[command(flatten)]
    conn: ConnArgs,
    /// Do not run `verify` on the saved file
    #[arg(long)]
    no_verify: bool,
    /// Replace OUT when it exists, once the new snapshot is checked and
    /// verified (a failed save leaves OUT as it was)
    #[arg(long)]
    force: bool,
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    // Ctrl-C or SIGTERM stops the stream between chunks; the temporary file
    // is removed on the error path.
    etcdsnap::interrupt::install();
    let live = args.conn.live()?;
    if live.spec.endpoints.len() != 1 {
        bail!(
            "a snapshot is taken from one member; got {} endpoints ({}): give one",
            live.spec.endpoints.len(),
            live.spec.endpoints.join(",")
        );
    }
    for p in remove_stale_temps(&args.out) {
        say!(
            "etcdsnap: removed {}, left by a save that was interrupted (its process is gone)",
            p.display()
        );
    }
    let m = live.connect(&live.spec.endpoints[0])?;
    let bar = std::io::stderr().is_terminal().then(|| {
        let b = indicatif::ProgressBar::new(0);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{bytes}/{total_bytes} {binary_bytes_per_sec} {elapsed}",
        ) {
            b.set_style(style);
        }
        b
    });
    let mut progress = |got: u64, total: u64| {
        if let Some(b) = &bar {
            b.set_length(total);
            b.set_position(got);
        }
    };
    let opts = SaveOptions {
        force: args.force,
        verify: !args.no_verify,
    };
    let saved = match save(&live, &m, &args.out, opts, &mut progress) {
        Ok(s) => s,
        Err(e) => {
            if let Some(b) = &bar {
                b.abandon();
            }
            return failed(&args, e);
        }
    };
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    report(&args, &m, &saved)
}

/// A save that failed: a check that failed is exit 1 (said here), anything
/// else an error (with "nothing written" when nothing was).
fn failed(args: &Args, e: SaveError) -> anyhow::Result<Outcome> {
    if e.is_check_failure() {
        say!("etcdsnap: error: {e}; {} not written", args.out.display());
        return Ok(Outcome::Failed);
    }
    if let SaveError::Live(_) | SaveError::Truncated { .. } | SaveError::TooShort { .. } = e {
        return Err(
            anyhow::Error::from(e).context(format!("save {}: nothing written", args.out.display()))
        );
    }
    Err(e.into())
}

/// What was received, what verify said, and where the snapshot is.
fn report(args: &Args, m: &Member, saved: &Saved) -> anyhow::Result<Outcome> {
    let secs = saved.elapsed.as_secs_f64().max(1e-9);
    say!(
        "etcdsnap: received from {} (etcd {}): {} at revision {} in {:.1}s ({}/s); db sha256 {} as the \
         server's trailer says",
        m.endpoint,
        m.status.version(),
        humanize_bytes(saved.bytes),
        saved.revision,
        secs,
        humanize_bytes((saved.bytes as f64 / secs) as u64),
        saved.db_sha256
    );
    if let Some(report) = &saved.verify
        && !report.passed
    {
        for c in report.failed_checks() {
            say!(
                "etcdsnap: verify {}: {} failed: {}",
                args.out.display(),
                c.name,
                c.detail
            );
        }
        say!(
            "etcdsnap: {} was not written{}; the snapshot is kept as {} for inspection (sha256 {}); run \
             `etcdsnap verify` on it for the details",
            args.out.display(),
            if args.force {
                " (an existing one is left as it was)"
            } else {
                ""
            },
            saved.path.display(),
            saved.sha256
        );
        return Ok(Outcome::Failed);
    }
    if saved.verify.is_some() {
        say!("etcdsnap: verify {}: ok", saved.path.display());
    }
    if saved.replaced {
        say!(
            "etcdsnap: the previous {} was replaced",
            saved.path.display()
        );
    }
    say!(
        "etcdsnap: saved {}: sha256 {} (of the whole file, as sha256sum prints it)",
        saved.path.display(),
        saved.sha256
    );
    super::out(&format!("Snapshot saved at {}\n", saved.path.display()))?;
    Ok(Outcome::Ok)
}
