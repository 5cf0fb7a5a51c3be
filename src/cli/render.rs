//! Rendering shared by several commands: objects as YAML, JSON or raw bytes
//! on stdout, the notes about them on stderr, the progress bar, the live
//! commands' findings and the catalog's "added" line.

use std::io::Write;

use anyhow::bail;
use serde_json::Value;

use super::args::ObjectFormat;
#[cfg(feature = "catalog")]
use etcdsnap::catalog::entry::Entry;
#[cfg(feature = "catalog")]
use etcdsnap::catalog::store::{Added, Store};
use etcdsnap::report::{escape_controls, to_yaml};
use etcdsnap::verify::{CheckStatus, Report};

/// One stderr line saying what `--for-apply` dropped (`None` if nothing).
pub fn dropped_note(what: &str, dropped: &[String]) -> Option<String> {
    (!dropped.is_empty()).then(|| {
        format!(
            "etcdsnap: --for-apply dropped from {}: {}",
            escape_controls(what),
            escape_controls(&dropped.join(", "))
        )
    })
}

/// Writes an object already prepared ([`etcdsnap::lookup::prepare()`]) to stdout; JSON streams (a deeply
/// nested object's indented text can be far larger than the object).
pub fn write_prepared(obj: &Value, format: ObjectFormat) -> anyhow::Result<()> {
    if format != ObjectFormat::Json {
        return super::out(&render_prepared(obj, format)?);
    }
    let mut w = std::io::BufWriter::with_capacity(64 << 10, std::io::stdout().lock());
    serde_json::to_writer_pretty(&mut w, obj).map_err(std::io::Error::from)?;
    w.write_all(b"\n")?;
    w.flush()?;
    Ok(())
}

/// Renders an object already prepared ([`etcdsnap::lookup::prepare()`]).
pub fn render_prepared(obj: &Value, format: ObjectFormat) -> anyhow::Result<String> {
    Ok(match format {
        ObjectFormat::Json => serde_json::to_string_pretty(obj)? + "\n",
        ObjectFormat::Yaml => to_yaml(obj)?,
        ObjectFormat::Raw => bail!("raw output is written by the caller"),
    })
}

/// Writes raw bytes to stdout.
pub fn write_raw(bytes: &[u8]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)?;
    out.flush()?;
    Ok(())
}

/// One line about fields the schema does not know: where, the first few.
pub fn unknown_note(paths: &[String]) -> String {
    let shown: Vec<&str> = paths
        .iter()
        .take(3)
        .map(|p| if p.is_empty() { "." } else { p.as_str() })
        .collect();
    let more = paths.len().saturating_sub(shown.len());
    format!(
        "fields unknown to the built-in schema (every Kubernetes release from 1.30 to the API of 2026-07-24) are not shown, in {} object{} ({}{})",
        paths.len(),
        if paths.len() == 1 { "" } else { "s" },
        shown.join(", "),
        if more > 0 {
            format!(", and {more} more")
        } else {
            String::new()
        }
    )
}

/// A progress bar on stderr for long work; indicatif draws nothing when stderr
/// is not a terminal, so pipes and CI logs stay clean.
pub fn progress(len: u64, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(len),
        indicatif::ProgressDrawTarget::stderr(),
    );
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{msg} [{bar:30}] {pos}/{len} ({elapsed}, {eta} left)",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_string());
    bar
}

/// What `add` says on stderr.
#[cfg(feature = "catalog")]
pub fn added_text(store: &Store, e: &Entry, added: Added) -> String {
    match added {
        Added::New(_) => format!(
            "added {} ({}: revision {}, {} objects, verify {}) to {}",
            &e.sha256[..12.min(e.sha256.len())],
            e.path,
            e.revision,
            e.total_objects(),
            verify_text(e),
            store.path().display()
        ),
        Added::Already(_) => format!(
            "{} ({}) is already in {}: nothing added",
            &e.sha256[..12.min(e.sha256.len())],
            e.path,
            store.path().display()
        ),
    }
}

/// An entry's verify result, as `catalog` prints it.
#[cfg(feature = "catalog")]
pub fn verify_text(e: &Entry) -> String {
    if e.verify.passed {
        "passed".into()
    } else {
        format!("FAILED ({} problems)", e.verify.problems)
    }
}

/// Says on stderr what a lookup did with key indexes.
pub fn index_event(e: &etcdsnap::lookup::IndexEvent) {
    say!("etcdsnap: {e}");
}

/// The findings of `compare` or `verify-cluster` as a table or JSON
/// (`{"exitCode", "findings", "revision"}`).
#[cfg(feature = "live")]
pub fn findings_text(
    report: &etcdsnap::live::report::ClusterReport,
    format: super::args::ReportFormat,
) -> anyhow::Result<String> {
    use etcdsnap::live::cluster::Verdict;
    use etcdsnap::report::{Align, Table};
    match format {
        super::args::ReportFormat::Json => {
            let v = serde_json::json!({
                "revision": report.revision,
                "exitCode": report.exit_code(),
                "findings": report.findings,
            });
            Ok(serde_json::to_string_pretty(&v)? + "\n")
        }
        super::args::ReportFormat::Table => {
            let mut t = Table::new(&["CHECK", "MEMBER", "RESULT", "DETAIL"], Align::Left);
            for f in &report.findings {
                t.row(vec![
                    f.check.to_string(),
                    f.member.clone().unwrap_or_else(|| "-".into()),
                    match f.verdict {
                        Verdict::Pass => "ok",
                        Verdict::Fail => "FAILED",
                        Verdict::Unknown => "cannot tell",
                        Verdict::Skipped => "skipped",
                    }
                    .to_string(),
                    f.detail.clone(),
                ]);
            }
            Ok(t.render())
        }
    }
}

/// The outcome of `compare` or `verify-cluster`: could not tell is an error
/// saying so (exit 2).
#[cfg(feature = "live")]
pub fn cluster_outcome(
    report: &etcdsnap::live::report::ClusterReport,
) -> anyhow::Result<super::Outcome> {
    use etcdsnap::live::report::Overall;
    match report.overall() {
        Overall::Pass => Ok(super::Outcome::Ok),
        Overall::Fail => Ok(super::Outcome::Failed),
        Overall::CannotTell => Err(anyhow::anyhow!(
            "could not tell for every member (see the reasons above)"
        )),
    }
}

/// A cluster check's error as the command says it: damage met while hashing
/// names the snapshot.
#[cfg(feature = "live")]
pub fn cluster_run_error(
    e: etcdsnap::live::report::ClusterRunError,
    snapshot: &std::path::Path,
) -> anyhow::Error {
    use etcdsnap::live::report::ClusterRunError;
    match e {
        ClusterRunError::KeySpace(e) => e.into(),
        ClusterRunError::Live(e) => e.into(),
        ClusterRunError::Hash(e) => {
            anyhow::Error::from(e).context(format!("{}: cannot hash", snapshot.display()))
        }
    }
}

/// The last line: the verdict, naming every check that did not run, so that
/// "every check passed" is never said of a file whose digest nobody checked.
pub fn verdict(r: &Report) -> String {
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
    etcdsnap::report::escape_controls(s)
}

/// A verify report as `verify` prints it (`quiet`: only what failed), also
/// said by `restore` and `bundle` before they refuse a damaged snapshot.
pub fn render_table(r: &Report, quiet: bool) -> String {
    let mut t = etcdsnap::report::Table::new(
        &["check", "status", "detail"],
        etcdsnap::report::Align::Left,
    );
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
