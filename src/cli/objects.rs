//! Shared pieces of the object commands (`ls`, `get`, `history`, `decode`):
//! opening a snapshot's keyspace, rendering objects, redaction flags.

use std::io::Write;

use anyhow::{Context, bail};
use serde_json::Value;

use crate::bolt::Db;
use crate::input::SnapshotFile;
use crate::kube::apply::{ApplyOptions, for_apply};
use crate::kube::decrypt::{Decryptor, EncryptionConfig};
use crate::kube::redact;
use crate::kube::resource::{ObjectKey, ResourceRef, closest_names};
pub use crate::kube::value::set_resource_version;
use crate::report::{escape_controls, to_yaml};

/// The storage prefix, for commands that read keys as Kubernetes objects.
#[derive(clap::Args, Clone)]
pub struct PrefixOpt {
    /// kube-apiserver's --etcd-prefix (OpenShift: /kubernetes.io)
    #[arg(long, default_value = "/registry")]
    pub prefix: String,
}

/// `--encryption-config`, shared by the commands that read values.
#[derive(clap::Args, Clone)]
pub struct DecryptArgs {
    /// The API server's EncryptionConfiguration (the file
    /// --encryption-provider-config names): values encrypted at rest with
    /// aescbc, aesgcm or secretbox are decrypted with its keys, as the API
    /// server picks them; a value that does not decrypt is an error naming
    /// its key, provider and key name (exit 1, like a value that does not
    /// decode); KMS values are described (they need the KMS plugin). The keys
    /// are never printed
    #[arg(long, value_name = "FILE")]
    pub encryption_config: Option<std::path::PathBuf>,
}

impl DecryptArgs {
    /// The decryptor of the given config (none: only plain values open). A
    /// config that does not read is a usage error.
    pub fn decryptor(&self, prefix: &str) -> anyhow::Result<Decryptor> {
        Ok(Decryptor::new(self.config()?, prefix))
    }

    /// The config, if one is given.
    pub fn config(&self) -> anyhow::Result<Option<EncryptionConfig>> {
        Ok(match &self.encryption_config {
            Some(path) => Some(EncryptionConfig::load(path)?),
            None => None,
        })
    }
}

/// The encoding of a value as the listings show it: with a config, an
/// encrypted value shows its provider and the plaintext's encoding
/// (`aesgcm>protobuf`), or why it did not open.
pub fn decrypted_encoding(
    decryptor: &Decryptor,
    key: &[u8],
    value: &[u8],
) -> (Option<&'static str>, Option<String>) {
    if !decryptor.has_config() || !value.starts_with(crate::kube::value::ENCRYPTED_PREFIX) {
        return (None, None);
    }
    match decryptor.plaintext(key, value) {
        Ok(p) => (Some(crate::kube::value::detect(&p.bytes).name()), None),
        Err(e) => (None, Some(e.to_string())),
    }
}

/// Options of the commands that print objects (`get`).
#[derive(clap::Args, Clone)]
pub struct ObjectOpts {
    #[command(flatten)]
    pub prefix: PrefixOpt,
    /// Print Secret data instead of `<redacted: N bytes>` (and allow -o raw of
    /// a Secret)
    #[arg(long)]
    pub show_secrets: bool,
    #[command(flatten)]
    pub decrypt: DecryptArgs,
}

/// Output formats of an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ObjectFormat {
    Yaml,
    Json,
    /// The exact stored bytes of one object (what `etcdctl get
    /// --print-value-only` prints); not with --all
    Raw,
}

/// Output formats of decoded objects only (`decode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DecodedFormat {
    Yaml,
    Json,
}

impl From<DecodedFormat> for ObjectFormat {
    fn from(f: DecodedFormat) -> ObjectFormat {
        match f {
            DecodedFormat::Yaml => ObjectFormat::Yaml,
            DecodedFormat::Json => ObjectFormat::Json,
        }
    }
}

/// Opens a snapshot and its bbolt view, with an error naming the file.
/// What a compressed file held beyond the db is said on stderr (a data dir's
/// growth slack), or refused as damage (data after a snapshot's trailer).
pub fn open(path: &std::path::Path) -> anyhow::Result<SnapshotFile> {
    let file = SnapshotFile::open(path)?;
    if let Some(excess) = file.excess() {
        if excess.is_damage() {
            return Err(crate::input::ExcessDamage {
                path: file.path().to_path_buf(),
                excess,
            }
            .into());
        }
        eprintln!(
            "etcdsnap: note: {}: {}",
            crate::report::escape_controls(&file.path().display().to_string()),
            excess.describe()
        );
    }
    Ok(file)
}

pub fn db<'a>(file: &'a SnapshotFile) -> anyhow::Result<Db<'a>> {
    Db::open(file.db())
        .with_context(|| format!("{}: not a readable snapshot", file.path().display()))
}

/// The `--for-apply` flags, shared by `get` and `decode`.
#[derive(clap::Args, Clone)]
pub struct ApplyArgs {
    /// Make the object safe for `kubectl apply`: strip what the server or the
    /// cluster owns (status, uid, resourceVersion, managedFields,
    /// ownerReferences, generateName, a Pod's nodeName and token volume, a
    /// Service's cluster IPs, a PVC's volumeName, a Job's generated selector …);
    /// what is dropped is listed on stderr
    #[arg(long)]
    pub for_apply: bool,
    /// With --for-apply: keep metadata.ownerReferences (their uids are the old
    /// owners'; the garbage collector deletes the object if no owner has them)
    #[arg(long, requires = "for_apply")]
    pub keep_owner_references: bool,
}

impl ApplyArgs {
    pub fn options(&self) -> Option<ApplyOptions> {
        self.for_apply.then_some(ApplyOptions {
            keep_owner_references: self.keep_owner_references,
        })
    }
}

/// How an object is prepared for output.
#[derive(Clone, Copy, Debug, Default)]
pub struct Prepare {
    /// Print Secret data in clear.
    pub show_secrets: bool,
    /// The key or the stored value says Secret, whatever the decoded kind.
    pub secret: bool,
    /// `--for-apply`.
    pub apply: Option<ApplyOptions>,
    /// The key's mod revision: `metadata.resourceVersion`, as the API server
    /// serves it (not with `--for-apply`).
    pub mod_revision: Option<i64>,
}

/// Redacts, fills `resourceVersion`, applies `--for-apply`; returns what
/// `--for-apply` dropped.
pub fn prepare(obj: &mut Value, p: Prepare) -> Vec<String> {
    if !p.show_secrets {
        redact::redact_as(obj, p.secret);
    }
    if let Some(rev) = p.mod_revision {
        set_resource_version(obj, rev);
    }
    match p.apply {
        Some(opts) => for_apply(obj, opts),
        None => Vec::new(),
    }
}

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

/// Writes an object already [`prepare`]d to stdout; JSON streams (a deeply
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

/// Renders an object already [`prepare`]d.
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

/// Whether a resource named on the command line exists: built-in ones always
/// do; a custom one when the snapshot holds its CRD or an object of it, as
/// seen from the keys a command reads ([`ResourceCheck::observe`]). An
/// unknown one is a usage error naming the closest names.
pub struct ResourceCheck {
    typed: String,
    resource: ResourceRef,
    seen: bool,
    crds: std::collections::BTreeSet<String>,
    customs: std::collections::BTreeSet<String>,
}

impl ResourceCheck {
    /// `None` for a built-in resource (nothing to check).
    pub fn new(typed: &str, resource: &ResourceRef) -> Option<ResourceCheck> {
        resource.built_in().is_none().then(|| ResourceCheck {
            typed: typed.to_string(),
            resource: resource.clone(),
            seen: false,
            crds: Default::default(),
            customs: Default::default(),
        })
    }

    pub fn observe(&mut self, key: &ObjectKey) {
        if self.resource.matches(key) {
            self.seen = true;
        }
        if key.resource == "customresourcedefinitions" {
            self.crds.insert(key.name.clone());
        } else if let Some(g) = &key.group
            && key.resource != "apiservices"
        {
            self.customs.insert(format!("{}.{g}", key.resource));
        }
    }

    pub fn known(&self) -> bool {
        let ResourceRef::Custom { plural, group } = &self.resource else {
            return true;
        };
        self.seen
            || self.crds.iter().any(|c| match group {
                Some(g) => *c == format!("{plural}.{g}"),
                None => c.split_once('.').is_some_and(|(p, _)| p == plural),
            })
    }

    /// `Ok` when known, else the usage error.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.known() {
            return Ok(());
        }
        let others: Vec<String> = self.crds.union(&self.customs).cloned().collect();
        let close = closest_names(&self.typed, &others);
        let hint = if close.is_empty() {
            "`etcdsnap ls` shows the resources the snapshot holds".to_string()
        } else {
            format!("did you mean {}?", close.join(", "))
        };
        bail!(
            "unknown resource {:?}: not a built-in resource, and the snapshot holds no custom resource (or CRD) of that name; {hint}",
            self.typed
        )
    }
}
