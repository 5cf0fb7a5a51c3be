//! `etcdsnap verify`: every check, a report, and an exit code for CI.

use anyhow::Context;

use super::args::{DecryptArgs, PrefixOpt, RemoteArgs, ReportFormat, SnapshotPath};
use super::render::render_table;
use super::{Outcome, out};
use etcdsnap::kube::deep::verify_with_values;
use etcdsnap::report::escape_controls;
use etcdsnap::verify::{Check, CheckStatus, Report};

/// Check a snapshot file: sha256 trailer, bbolt structure, etcd's layout
#[derive(clap::Args)]
#[command(
    long_about = "Checks a snapshot file and reports each check as passed, failed or skipped, with every problem \
located (page id, byte offset, bucket, key):\n\n  sha256        the digest `snapshot save` appends (skipped for a \
data dir's db, which has none)\n  bolt-meta     both meta pages: magic, version, page size, checksum; which is in \
force\n  bolt-pages    every page reached once, none past the high-water mark or freed; page types; keys in order \
within and across pages; bucket headers; overflow pages inside the file\n  etcd-buckets  the buckets etcd needs \
(key, meta)\n  etcd-keys     every revision key and KeyValue; mod/create revision and version consistency\n  \
etcd-meta     consistent_index, term, compaction revisions, confState, storage version\n  \
kube-values   with --deep: every live object under --prefix decodes (after decryption with --encryption-config) \
and its metadata.name/namespace agree with its key; encrypted values without a config, and KMS values, are \
counted as not checked\n\nThe summary includes \
liveKeys, the number of distinct live keys (what etcd 3.6's `snapshot status` calls totalKey).\n\nExit codes: 0 \
every check passed, 1 a check failed, 2 the file could not be read or the usage is wrong.",
    after_help = "Examples:\n  etcdsnap verify snapshot.db\n  etcdsnap verify snapshot.db -w json | jq .passed\n  etcdsnap verify /var/lib/etcd/member/snap/db   # no trailer: sha256 is skipped"
)]
pub struct Args {
    /// Snapshot file (`-` for standard input; zstd/gzip/zip are detected). Compressed
    /// input is inflated, and standard input copied, into an unnamed temporary file in
    /// $TMPDIR (else /tmp); inflation stops where the db ends. `s3://BUCKET/KEY`,
    /// `gs://BUCKET/KEY`, `az://CONTAINER/KEY` and `http(s)://URL` are streamed once
    /// into a private spool file first
    snapshot: SnapshotPath,
    /// Output format
    #[arg(short = 'w', long = "write-out", value_enum, default_value = "table")]
    write_out: ReportFormat,
    /// Print only the checks that failed (in JSON, also those that did not
    /// run) and the verdict, which names any check that did not run
    #[arg(short, long)]
    quiet: bool,
    /// Also check every live Kubernetes object (the kube-values check), on
    /// all cores
    #[arg(long)]
    deep: bool,
    #[command(flatten)]
    prefix: PrefixOpt,
    #[command(flatten)]
    decrypt: DecryptArgs,
    #[command(flatten)]
    remote: RemoteArgs,
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    if args.decrypt.encryption_config.is_some() && !args.deep {
        anyhow::bail!("--encryption-config is used by --deep: add --deep");
    }
    let decryptor = args.decrypt.decryptor(&args.prefix.prefix)?;
    args.remote.configure();
    let (file, done) = match etcdsnap::verify::open_verifying(&args.snapshot) {
        Ok(f) => f,
        // A compressed stream that does not decode is a damaged file (exit 1);
        // other errors are I/O (exit 2).
        Err(e) if e.is_damage() => {
            out(&format!(
                "{}\n\nFAILED: {}\n",
                escape_controls(&etcdsnap::remote::display_name(&args.snapshot)),
                escape_controls(&e.to_string())
            ))?;
            return Ok(Outcome::Failed);
        }
        Err(e) => return Err(e.into()),
    };
    let report = verify_with_values(&file, done, args.deep, &decryptor, &args.prefix.prefix)?;
    let text = match args.write_out {
        ReportFormat::Json if args.quiet => {
            serde_json::to_string_pretty(&quiet_json(&report))
                .context("cannot encode the report")?
                + "\n"
        }
        ReportFormat::Json => {
            serde_json::to_string_pretty(&report).context("cannot encode the report")? + "\n"
        }
        ReportFormat::Table => render_table(&report, args.quiet),
    };
    out(&text)?;
    Ok(if report.passed {
        Outcome::Ok
    } else {
        Outcome::Failed
    })
}

/// The quiet JSON report: the file, the verdict, and only the checks that
/// failed or did not run (no summary).
#[derive(serde::Serialize)]
struct QuietReport<'a> {
    file: &'a str,
    passed: bool,
    checks: Vec<&'a Check>,
}

fn quiet_json(r: &Report) -> QuietReport<'_> {
    QuietReport {
        file: &r.file,
        passed: r.passed,
        checks: r
            .checks
            .iter()
            .filter(|c| c.status != CheckStatus::Passed)
            .collect(),
    }
}
