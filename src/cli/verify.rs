//! `etcdsnap verify`: every check, a report, and an exit code for CI.

use anyhow::Context;

use super::args::{DecryptArgs, PrefixOpt, ReportFormat, SnapshotPath};
use super::{Outcome, out};
use crate::input::SnapshotFile;
use crate::kube::decrypt::Decryptor;
use crate::kube::deep::kube_values_check;
use crate::mvcc::keyspace::KeySpace;
use crate::report::{Align, Table};
use crate::verify::{Check, CheckStatus, Report, verify};

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
    /// $TMPDIR (else /tmp); inflation stops where the db ends
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
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    if args.decrypt.encryption_config.is_some() && !args.deep {
        anyhow::bail!("--encryption-config is used by --deep: add --deep");
    }
    let decryptor = args.decrypt.decryptor(&args.prefix.prefix)?;
    let file = match SnapshotFile::open(&args.snapshot) {
        Ok(f) => f,
        // A compressed stream that does not decode is a damaged file (exit 1);
        // other errors are I/O (exit 2).
        Err(e) if e.is_damage() => {
            out(&format!(
                "{}\n\nFAILED: {}\n",
                esc(&args.snapshot.display().to_string()),
                esc(&e.to_string())
            ))?;
            return Ok(Outcome::Failed);
        }
        Err(e) => return Err(e.into()),
    };
    // The deep check reads the file on the other cores while verify reads it
    // on one (a reader of the file never trusts what it has not checked).
    let (mut report, deep) = std::thread::scope(|s| {
        let deep = args
            .deep
            .then(|| s.spawn(|| deep_check(&file, &decryptor, &args.prefix.prefix)));
        let report = verify(&file);
        (report, deep.map(|h| h.join()))
    });
    if let Some(deep) = deep {
        let deep =
            deep.map_err(|_| anyhow::anyhow!("the kube-values check stopped unexpectedly"))?;
        report.checks.push(deep);
        report.passed = report
            .checks
            .iter()
            .all(|c| c.status != CheckStatus::Failed);
    }
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

/// The kube-values check, or why it could not run.
fn deep_check(file: &SnapshotFile, decryptor: &Decryptor, prefix: &str) -> Check {
    match crate::bolt::Db::open(file.db()) {
        Ok(db) => kube_values_check(KeySpace::open(&db), decryptor, prefix),
        Err(_) => Check {
            name: crate::kube::deep::NAME,
            status: CheckStatus::Skipped,
            detail: "skipped: the bbolt file cannot be opened".into(),
            problems: Vec::new(),
            omitted: 0,
        },
    }
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

/// The last line: the verdict, naming every check that did not run, so that
/// "every check passed" is never said of a file whose digest nobody checked.
fn verdict(r: &Report) -> String {
    if !r.passed {
        return "FAILED: see the problems above".into();
    }
    let mut skipped: Vec<String> = r
        .checks
        .iter()
        .filter(|c| c.status == CheckStatus::Skipped)
        .map(|c| format!("{} ({})", c.name, c.detail))
        .collect();
    // kube-values passes over values it could not open (encrypted without a
    // config, KMS): the verdict says so too.
    skipped.extend(
        r.checks
            .iter()
            .filter(|c| c.status == CheckStatus::Passed)
            .filter_map(|c| {
                let (_, what) = c.detail.split_once("; not checked: ")?;
                Some(format!("{}: {what}", c.name))
            }),
    );
    if skipped.is_empty() {
        "OK: every check passed".into()
    } else {
        format!(
            "OK: every check that ran passed; not checked: {}",
            skipped.join("; ")
        )
    }
}

fn status_word(s: CheckStatus) -> &'static str {
    match s {
        CheckStatus::Passed => "passed",
        CheckStatus::Failed => "FAILED",
        CheckStatus::Skipped => "skipped",
    }
}

/// Names from the file (bucket names, keys in problems) reach the terminal
/// escaped: a crafted name cannot print a fake verdict.
fn esc(s: &str) -> std::borrow::Cow<'_, str> {
    crate::report::escape_controls(s)
}

pub fn render_table(r: &Report, quiet: bool) -> String {
    let mut t = Table::new(&["check", "status", "detail"], Align::Left);
    for c in &r.checks {
        if quiet && c.status != CheckStatus::Failed {
            continue;
        }
        t.row(vec![
            c.name.to_string(),
            status_word(c.status).to_string(),
            c.detail.clone(),
        ]);
    }
    let mut s = String::new();
    s.push_str(&format!("{}\n", esc(&r.file)));
    if !(quiet && r.passed) {
        s.push_str(&t.render());
    }
    for c in r.failed_checks() {
        s.push_str(&format!("\n{} problems:\n", c.name));
        for p in &c.problems {
            s.push_str(&format!("  - {}\n", esc(&p.to_string())));
        }
        if c.omitted > 0 {
            s.push_str(&format!("  … and {} more\n", c.omitted));
        }
    }
    if !quiet {
        let m = &r.summary;
        s.push('\n');
        if let (Some(ps), Some(size)) = (m.page_size, m.total_size) {
            s.push_str(&format!(
                "db: {} bytes in pages of {ps} ({} bytes on disk, compression {}, trailer {})\n",
                size,
                m.file_size,
                m.compression,
                if m.has_trailer { "yes" } else { "no" }
            ));
        }
        if let Some(k) = &m.keyspace {
            s.push_str(&format!(
                "keys: revision {}, {} live keys ({} keys with history), {} revisions stored, {} leased\n",
                k.revision, k.live_keys, k.keys, k.revisions, k.leased_keys
            ));
        }
        if let Some(meta) = &m.meta {
            let o = |v: Option<i64>| v.map_or("-".to_string(), |v| v.to_string());
            s.push_str(&format!(
                "meta: consistent_index {}, term {}, compaction scheduled {} / finished {}{}\n",
                meta.consistent_index.map_or("-".into(), |v| v.to_string()),
                meta.term.map_or("-".into(), |v| v.to_string()),
                o(meta.scheduled_compact_revision),
                o(meta.finished_compact_revision),
                meta.storage_version
                    .as_deref()
                    .map(|v| format!(", storage version {}", esc(v)))
                    .unwrap_or_default()
            ));
        }
        if !m.buckets.is_empty() {
            s.push_str(&format!(
                "buckets: {}\n",
                m.buckets
                    .iter()
                    .map(|b| esc(b))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        for n in &m.notes {
            s.push_str(&format!("note: {}\n", esc(n)));
        }
    }
    s.push_str(&format!("\n{}\n", verdict(r)));
    s
}
