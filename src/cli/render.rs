//! Rendering shared by several commands: objects as YAML, JSON or raw bytes
//! on stdout, the notes about them on stderr, the progress bar, the live
//! commands' findings and the catalog's "added" line.

use std::io::Write;

use anyhow::bail;
use serde_json::Value;

use super::args::ObjectFormat;
use crate::catalog::entry::Entry;
use crate::catalog::store::{Added, Store};
use crate::report::{escape_controls, to_yaml};

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

/// Writes an object already prepared ([`crate::lookup::prepare()`]) to stdout; JSON streams (a deeply
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

/// Renders an object already prepared ([`crate::lookup::prepare()`]).
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
pub fn verify_text(e: &Entry) -> String {
    if e.verify.passed {
        "passed".into()
    } else {
        format!("FAILED ({} problems)", e.verify.problems)
    }
}

/// Says on stderr what a lookup did with key indexes.
pub fn index_event(e: &crate::lookup::IndexEvent) {
    say!("etcdsnap: {e}");
}

/// The findings of `compare` or `verify-cluster` as a table or JSON
/// (`{"exitCode", "findings", "revision"}`).
#[cfg(feature = "live")]
pub fn findings_text(
    report: &crate::live::report::ClusterReport,
    format: super::args::ReportFormat,
) -> anyhow::Result<String> {
    use crate::live::cluster::Verdict;
    use crate::report::{Align, Table};
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
    report: &crate::live::report::ClusterReport,
) -> anyhow::Result<super::Outcome> {
    use crate::live::report::Overall;
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
    e: crate::live::report::ClusterRunError,
    snapshot: &std::path::Path,
) -> anyhow::Error {
    use crate::live::report::ClusterRunError;
    match e {
        ClusterRunError::KeySpace(e) => e.into(),
        ClusterRunError::Live(e) => e.into(),
        ClusterRunError::Hash(e) => {
            anyhow::Error::from(e).context(format!("{}: cannot hash", snapshot.display()))
        }
    }
}
