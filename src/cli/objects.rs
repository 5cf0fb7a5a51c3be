//! Shared pieces of the object commands (`ls`, `get`, `history`, `decode`):
//! opening a snapshot's keyspace, rendering objects, redaction flags.

use std::io::Write;

use anyhow::{Context, bail};
use serde_json::Value;

use crate::bolt::Db;
use crate::input::SnapshotFile;
use crate::kube::redact;
use crate::report::to_yaml;

/// Options every object command takes.
#[derive(clap::Args, Clone)]
pub struct ObjectOpts {
    /// kube-apiserver's --etcd-prefix (OpenShift: /kubernetes.io)
    #[arg(long, default_value = "/registry", global = true)]
    pub prefix: String,
    /// Print Secret data instead of `<redacted: N bytes>`
    #[arg(long, global = true)]
    pub show_secrets: bool,
}

/// Output formats of an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ObjectFormat {
    Yaml,
    Json,
    /// The exact stored bytes (what `etcdctl get --print-value-only` prints)
    Raw,
}

/// Opens a snapshot and its bbolt view, with an error naming the file.
pub fn open(path: &std::path::Path) -> anyhow::Result<SnapshotFile> {
    Ok(SnapshotFile::open(path)?)
}

pub fn db<'a>(file: &'a SnapshotFile) -> anyhow::Result<Db<'a>> {
    Db::open(file.db())
        .with_context(|| format!("{}: not a readable snapshot", file.path().display()))
}

/// Renders a decoded object; applies redaction and `--for-apply`.
pub fn render(
    mut obj: Value,
    format: ObjectFormat,
    show_secrets: bool,
    for_apply: bool,
) -> anyhow::Result<String> {
    if !show_secrets {
        redact::redact(&mut obj);
    }
    if for_apply {
        redact::for_apply(&mut obj);
    }
    Ok(match format {
        ObjectFormat::Json => serde_json::to_string_pretty(&obj)? + "\n",
        ObjectFormat::Yaml => to_yaml(&obj)?,
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
        "fields newer than the built-in schema (the Kubernetes API as of 2026-07-24) are not shown, in {} object{} ({}{})",
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

/// Writes a small output file atomically: temporary file, fsync, rename.
pub fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("{}: cannot create a temporary file", dir.display()))?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path)
        .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.error))?;
    Ok(())
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
