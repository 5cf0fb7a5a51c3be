//! `etcdsnap save`: a snapshot from one live member, checked on arrival
//! (the server's sha256), written atomically, then verified.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::bail;

use super::Outcome;
use super::args::ConnArgs;
use etcdsnap::live::connect::Member;
use etcdsnap::live::save::{SaveError, SaveOptions, Saved, remove_stale_temps, save, save_to};
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
named apart as \"db sha256\". Progress (bytes, rate) is shown when stderr is a terminal.\n\nWith --to \
s3://BUCKET/KEY (or gs://BUCKET/KEY, az://CONTAINER/KEY) the snapshot goes to object storage instead: a \
multipart upload whose parts go up as the chunks arrive, while a private spool copy (0600, in --spool-dir or \
$TMPDIR; not with --no-verify) is kept for verify. The upload is completed only once the stream ended whole, \
its sha256 matched and verify passed; a dropped connection, a wrong digest, a failed verify, a failed part or \
Ctrl-C aborts it, so no object appears under KEY. An existing object is refused (a HEAD before the first part \
and again before completion) unless --force. A save killed outright (kill -9) cannot abort: its parts stay as an \
incomplete multipart upload, never an object, until the bucket's lifecycle rule (AbortIncompleteMultipartUpload) \
removes them. gs:// is written as a resumable upload session (completed by its final chunk, only after the checks; \
without --force GCS itself refuses to complete it over an object that exists by then); one left by kill -9 holds \
no object and expires after a week.\n\nExit codes: 0 saved (and verified); 1 the digest does not match, or verify failed (the file \
is kept as OUT.unverified; with --to nothing is kept); 2 usage, connection, transfer or I/O error, or OUT (the \
object) exists.",
    after_help = "Examples:\n  etcdsnap save /backup/snap.db --endpoints https://10.0.0.1:2379 --cacert ca.crt --cert client.crt --key client.key\n  ETCDCTL_ENDPOINTS=http://127.0.0.1:2379 etcdsnap save snap.db --no-verify\n  etcdsnap save --to s3://backups/etcd/snap-$(date +%F).db --endpoints https://10.0.0.1:2379 --cacert ca.crt --cert client.crt --key client.key"
)]
pub struct Args {
    /// The file to write (mode 0600)
    #[arg(required_unless_present = "to", conflicts_with = "to")]
    out: Option<PathBuf>,
    /// Write the snapshot to object storage instead of a file:
    /// s3://BUCKET/KEY, gs://BUCKET/KEY or az://CONTAINER/KEY. A multipart
    /// upload whose parts go up as the snapshot arrives, completed only when
    /// it checked out (the server's sha256, then verify on a private spool
    /// copy); any failure, Ctrl-C included, aborts it: no object appears.
    /// Credentials and endpoints from the standard AWS_*, GOOGLE_* and
    /// AZURE_* variables
    #[arg(long, value_name = "URL")]
    to: Option<String>,
    /// With --to: directory of the private spool copy verify reads (default:
    /// $TMPDIR, else /tmp); removed when the save ends
    #[arg(long, value_name = "DIR", requires = "to")]
    spool_dir: Option<PathBuf>,
    /// With --to: S3 endpoint for s3:// (default: $AWS_ENDPOINT_URL, else
    /// AWS); path-style requests
    #[arg(long, value_name = "URL", requires = "to")]
    s3_endpoint: Option<String>,
    /// With --to: GCS endpoint for gs:// (default: $GOOGLE_BASE_URL)
    #[arg(long, value_name = "URL", requires = "to")]
    gcs_endpoint: Option<String>,
    /// With --to: Azure Blob endpoint for az://, the account's URL
    /// (default: $AZURE_STORAGE_ENDPOINT)
    #[arg(long, value_name = "URL", requires = "to")]
    azure_endpoint: Option<String>,
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
    if let Some(url) = &args.to {
        etcdsnap::remote::configure(etcdsnap::remote::Options {
            spool_dir: args.spool_dir.clone(),
            s3_endpoint: args.s3_endpoint.clone(),
            gcs_endpoint: args.gcs_endpoint.clone(),
            azure_endpoint: args.azure_endpoint.clone(),
            notice: None,
            ca_file: None,
        });
        // A URL that cannot be written is refused before any dial.
        etcdsnap::remote::upload::check_url(url)?;
    }
    for p in args.out.iter().flat_map(|out| remove_stale_temps(out)) {
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
    let result = match (&args.to, &args.out) {
        (Some(url), _) => save_to(&live, &m, url, opts, &mut progress),
        (None, Some(out)) => save(&live, &m, out, opts, &mut progress),
        (None, None) => bail!("give OUT or --to URL"),
    };
    let saved = match result {
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
        say!("etcdsnap: error: {e}; {} not written", target(args));
        return Ok(Outcome::Failed);
    }
    if let SaveError::Live(_) | SaveError::Truncated { .. } | SaveError::TooShort { .. } = e {
        return Err(
            anyhow::Error::from(e).context(format!("save {}: nothing written", target(args)))
        );
    }
    Err(e.into())
}

/// What is written: OUT, or the --to URL (redacted).
fn target(args: &Args) -> String {
    match (&args.to, &args.out) {
        (Some(url), _) => etcdsnap::remote::redact(url),
        (None, Some(out)) => out.display().to_string(),
        (None, None) => String::new(),
    }
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
                target(args),
                c.name,
                c.detail
            );
        }
        if args.to.is_some() {
            say!(
                "etcdsnap: {} was not written{}: the multipart upload was aborted (sha256 of the \
                 snapshot received {})",
                target(args),
                if args.force {
                    " (an existing object is left as it was)"
                } else {
                    ""
                },
                saved.sha256
            );
            return Ok(Outcome::Failed);
        }
        say!(
            "etcdsnap: {} was not written{}; the snapshot is kept as {} for inspection (sha256 {}); run \
             `etcdsnap verify` on it for the details",
            target(args),
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
