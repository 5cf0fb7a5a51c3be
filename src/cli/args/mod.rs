//! The arguments several commands share, each a `#[command(flatten)]` struct
//! or a value enum defined once: the snapshot path, the storage prefix, the
//! encryption config, the object output formats and `--for-apply`, key index
//! use, the `-w` report formats, the catalog file and (with the `live`
//! feature) the connection flags. Also turning a snapshot argument into an
//! open file (saying on stderr what a compressed file held beyond the db).

use std::path::{Path, PathBuf};
#[cfg(feature = "catalog")]
use std::time::Duration;

use anyhow::Context;
use clap::ValueEnum;

use etcdsnap::bolt::Db;
#[cfg(feature = "catalog")]
use etcdsnap::catalog::store::Store;
use etcdsnap::input::SnapshotFile;
use etcdsnap::kube::apply::ApplyOptions;
use etcdsnap::kube::decrypt::{Decryptor, EncryptionConfig};

/// A snapshot path argument (`-` for standard input; with the `remote`
/// feature also `s3://BUCKET/KEY`, `gs://BUCKET/KEY`, `az://CONTAINER/KEY`,
/// `http(s)://…`).
pub type SnapshotPath = PathBuf;

/// Where remote snapshots are spooled and which S3 endpoint serves them,
/// for the commands that read a whole snapshot (`s3://`, `gs://`, `az://`,
/// `https://`).
#[cfg(feature = "remote")]
#[derive(clap::Args, Clone)]
pub struct RemoteArgs {
    /// Directory of the private spool file a remote snapshot (s3://BUCKET/KEY,
    /// gs://BUCKET/KEY, az://CONTAINER/KEY, http(s)://URL) is streamed into
    /// once (default: $TMPDIR, else /tmp); removed when the command ends.
    /// gs:// and az:// take their credentials and endpoints from the standard
    /// GOOGLE_* and AZURE_* variables
    #[arg(long, value_name = "DIR")]
    pub spool_dir: Option<PathBuf>,
    /// S3 endpoint for s3:// sources (default: $AWS_ENDPOINT_URL, else AWS);
    /// path-style requests. Credentials and region come from the standard
    /// AWS variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION;
    /// AWS_ALLOW_HTTP=true for a plain-http endpoint)
    #[arg(long, value_name = "URL")]
    pub s3_endpoint: Option<String>,
    /// GCS endpoint for gs:// sources (default: $GOOGLE_BASE_URL, else
    /// Google's): an emulator or a private endpoint (GOOGLE_ALLOW_HTTP=true
    /// for plain http)
    #[arg(long, value_name = "URL")]
    pub gcs_endpoint: Option<String>,
    /// Azure Blob endpoint for az:// sources, the account's URL (default:
    /// $AZURE_STORAGE_ENDPOINT, else the account's public one;
    /// AZURE_ALLOW_HTTP=true for plain http)
    #[arg(long, value_name = "URL")]
    pub azure_endpoint: Option<String>,
    /// Say on stderr where a remote snapshot was spooled and how large it is
    /// (said anyway when stderr is a terminal)
    #[arg(short = 'v', long)]
    pub verbose: bool,
    /// PEM file of the CA (or CAs) to trust for https:// sources and an
    /// https S3 endpoint, besides the system's roots (like curl's and
    /// etcdctl's --cacert)
    #[arg(long, value_name = "FILE")]
    pub cacert: Option<PathBuf>,
}

#[cfg(feature = "remote")]
impl RemoteArgs {
    /// Sets these options for every remote read of the command.
    pub fn configure(&self) {
        use std::io::IsTerminal;
        fn say_notice(line: &str) {
            say!("etcdsnap: {line}");
        }
        let notice: Option<fn(&str)> = if self.verbose || std::io::stderr().is_terminal() {
            Some(say_notice)
        } else {
            None
        };
        etcdsnap::remote::configure(etcdsnap::remote::Options {
            spool_dir: self.spool_dir.clone(),
            s3_endpoint: self.s3_endpoint.clone(),
            gcs_endpoint: self.gcs_endpoint.clone(),
            azure_endpoint: self.azure_endpoint.clone(),
            notice,
            ca_file: self.cacert.clone(),
        });
    }
}

/// Without the `remote` feature: no flags; a URL is refused by name.
#[cfg(not(feature = "remote"))]
#[derive(clap::Args, Clone)]
pub struct RemoteArgs {}

#[cfg(not(feature = "remote"))]
impl RemoteArgs {
    /// Nothing to set.
    pub fn configure(&self) {}
}

/// Output formats of `status` (those of `etcdutl snapshot status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum StatusFormat {
    Simple,
    Json,
    Table,
    Fields,
}

/// Output formats of reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Table,
    Json,
}

/// The storage prefix, for commands that read keys as Kubernetes objects.
#[derive(clap::Args, Clone)]
pub struct PrefixOpt {
    /// kube-apiserver's --etcd-prefix (OpenShift: /kubernetes.io)
    #[arg(long, default_value = "/registry")]
    pub prefix: String,
}

/// `d`, reaching the KMS plugins its config names over their sockets (with
/// the live feature; without it KMS values are described only).
fn with_kms(d: Decryptor) -> anyhow::Result<Decryptor> {
    #[cfg(feature = "live")]
    if !d.kms_plugins().is_empty() {
        let plugins = etcdsnap::live::kms::Plugins::new()
            .map_err(|e| anyhow::anyhow!("starting the KMS client: {e}"))?;
        return Ok(d.with_kms(std::sync::Arc::new(plugins)));
    }
    Ok(d)
}

/// `--encryption-config`, shared by the commands that read values.
#[derive(clap::Args, Clone)]
pub struct DecryptArgs {
    /// The API server's EncryptionConfiguration (the file
    /// --encryption-provider-config names): values encrypted at rest with
    /// aescbc, aesgcm or secretbox are decrypted with its keys, as the API
    /// server picks them; a value that does not decrypt is an error naming
    /// its key, provider and key name (exit 1, like a value that does not
    /// decode). KMS values (v1 and v2) are decrypted by asking the plugin the
    /// config names, over its unix socket, to unwrap each data key once; a
    /// plugin that is down or refuses is an error naming it. The keys are
    /// never printed
    #[arg(long, value_name = "FILE")]
    pub encryption_config: Option<std::path::PathBuf>,
}

impl DecryptArgs {
    /// The decryptor of the given config (none: only plain values open). A
    /// config that does not read is a usage error.
    pub fn decryptor(&self, prefix: &str) -> anyhow::Result<Decryptor> {
        with_kms(Decryptor::new(self.config()?, prefix))
    }

    /// [`Decryptor::any_prefix`] of the given config.
    pub fn any_prefix(&self) -> anyhow::Result<Decryptor> {
        with_kms(Decryptor::any_prefix(self.config()?))
    }

    /// The config, if one is given.
    pub fn config(&self) -> anyhow::Result<Option<EncryptionConfig>> {
        Ok(match &self.encryption_config {
            Some(path) => Some(EncryptionConfig::load(path)?),
            None => None,
        })
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

/// How `get` and `history` may use key indexes.
#[derive(clap::Args, Clone)]
pub struct IndexOpts {
    /// Neither use nor write a key index: scan the snapshot. Without it, a
    /// scan leaves an index in $ETCDSNAP_CACHE_DIR (default
    /// $XDG_CACHE_HOME/etcdsnap or ~/.cache/etcdsnap) and says so on stderr
    #[arg(long)]
    pub no_index: bool,
}

impl IndexOpts {
    /// Opens a snapshot for a lookup. With indexes allowed the mapping is
    /// advised random before anything is read: an indexed lookup touches a few
    /// scattered pages, and read-ahead around each would pull in megabytes of
    /// a file that is not in the page cache. A scan switches back to
    /// sequential.
    pub fn open_snapshot(&self, path: &std::path::Path) -> anyhow::Result<SnapshotFile> {
        let file = open(path)?;
        if !self.no_index {
            file.advise_random();
        }
        Ok(file)
    }
}

/// Where the catalog is, and how long to wait for another process's lock.
#[cfg(feature = "catalog")]
#[derive(clap::Args, Clone)]
pub struct CatalogOpt {
    /// The catalog file (default: $ETCDSNAP_CATALOG, else
    /// $XDG_DATA_HOME/etcdsnap/catalog.redb, else ~/.local/share/etcdsnap/catalog.redb)
    #[arg(long, global = true, value_name = "FILE")]
    pub catalog: Option<PathBuf>,
    /// Seconds to wait while another process holds the catalog
    #[arg(long, global = true, default_value = "30", value_name = "SECONDS")]
    pub lock_wait: u64,
}

#[cfg(feature = "catalog")]
impl CatalogOpt {
    /// The catalog file: the flag, else the library's default.
    pub fn path(&self) -> anyhow::Result<PathBuf> {
        if let Some(p) = &self.catalog {
            return Ok(p.clone());
        }
        Ok(etcdsnap::catalog::store::default_path()?)
    }

    /// Opens the catalog to read it (`list`, `show`, `check`).
    pub fn open_read(&self) -> anyhow::Result<Store> {
        Ok(Store::open_read(
            &self.path()?,
            Duration::from_secs(self.lock_wait),
        )?)
    }

    /// Opens the catalog to write it (`add`, `forget`, `check --catalog`);
    /// `create` makes a missing file.
    pub fn open(&self, create: bool) -> anyhow::Result<Store> {
        Ok(Store::open(
            &self.path()?,
            create,
            Duration::from_secs(self.lock_wait),
        )?)
    }
}

pub mod restore;

#[cfg(feature = "live")]
pub use live_args::ConnArgs;

#[cfg(feature = "live")]
mod live_args {
    use std::path::PathBuf;

    use etcdsnap::live::connect::{ConnectSpec, GivenSettings, Live};

    /// How to reach the cluster: etcdctl's flags; each falls back to its
    /// ETCDCTL_* variable, then to etcdctl's default.
    #[derive(clap::Args, Clone, Debug)]
    pub struct ConnArgs {
        /// Client URLs, comma-separated (env ETCDCTL_ENDPOINTS); a bare
        /// host:port speaks https when TLS files are given
        #[arg(long, value_delimiter = ',')]
        pub endpoints: Vec<String>,
        /// CA bundle that signed the members' server certificates, PEM or DER
        /// (env ETCDCTL_CACERT)
        #[arg(long)]
        pub cacert: Option<PathBuf>,
        /// Client certificate (env ETCDCTL_CERT)
        #[arg(long)]
        pub cert: Option<PathBuf>,
        /// Client key: PKCS#1, SEC1 or PKCS#8, PEM or DER (env ETCDCTL_KEY)
        #[arg(long)]
        pub key: Option<PathBuf>,
        /// Do not check the server's certificate against a CA (its handshake
        /// signature still is; the client certificate is still sent)
        #[arg(long)]
        pub insecure_skip_tls_verify: bool,
        /// Time to connect to a member and get its first answer (env
        /// ETCDCTL_DIAL_TIMEOUT; default 2s)
        #[arg(long, value_name = "DURATION")]
        pub dial_timeout: Option<String>,
        /// Time for each call; for `save`, the longest wait for the next chunk
        /// (env ETCDCTL_COMMAND_TIMEOUT; default 5s)
        #[arg(long, alias = "command-timeout", value_name = "DURATION")]
        pub timeout: Option<String>,
    }

    impl ConnArgs {
        /// The settings, flags winning over the environment; the runtime.
        pub fn live(&self) -> anyhow::Result<Live> {
            let given = GivenSettings {
                endpoints: self.endpoints.clone(),
                cacert: self.cacert.clone(),
                cert: self.cert.clone(),
                key: self.key.clone(),
                insecure_skip_verify: self.insecure_skip_tls_verify,
                dial_timeout: self.dial_timeout.clone(),
                command_timeout: self.timeout.clone(),
            };
            let spec = ConnectSpec::resolve(given, |n| std::env::var(n).ok())?;
            Ok(Live::new(spec)?)
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
            return Err(etcdsnap::input::ExcessDamage {
                path: file.path().to_path_buf(),
                excess,
            }
            .into());
        }
        eprintln!(
            "etcdsnap: note: {}: {}",
            etcdsnap::report::escape_controls(&file.path().display().to_string()),
            excess.describe()
        );
    }
    Ok(file)
}

/// The bbolt view of an open snapshot, with an error naming the file.
pub fn db<'a>(file: &'a SnapshotFile) -> anyhow::Result<Db<'a>> {
    Db::open(file.db())
        .with_context(|| format!("{}: not a readable snapshot", file.path().display()))
}

/// The db a command reads: the salvaged `view` when there is one, else the
/// snapshot at `path`, opened into `file` (which the db borrows).
pub fn view_or_file<'a>(
    view: &'a Option<etcdsnap::salvage::view::View>,
    path: &Path,
    file: &'a mut Option<SnapshotFile>,
) -> anyhow::Result<Db<'a>> {
    match view {
        Some(v) => Ok(Db::open(v.db())?),
        None => db(file.insert(open(path)?)),
    }
}

/// `--salvage` of the object commands (`ls`, `get`, `history`): a damaged
/// snapshot read as far as it survives.
#[derive(clap::Args, Clone)]
pub struct SalvageOpts {
    /// Read what survives of a damaged snapshot: every page is read as
    /// `etcdsnap salvage` reads it, the intact records are assembled in memory
    /// (nothing is written) and the query is answered from them, each object
    /// marked with where it came from (`tree`: a leaf the surviving tree
    /// reaches; `page N`: only a freed or orphaned page; or a --from source).
    /// The file need not verify. A warning on stderr says how much is lost
    /// (exit 1 when anything is)
    #[arg(long)]
    pub salvage: bool,
    /// With --salvage: another file of the same cluster (another member's db
    /// or snapshot, an older backup) that fills what the damaged file lost,
    /// as `etcdsnap salvage --from` takes it; repeat for more
    #[arg(long = "from", value_name = "SOURCE", requires = "salvage")]
    pub from: Vec<PathBuf>,
    /// With --from: take a source even when its members bucket shares no
    /// member with the damaged file's
    #[arg(long = "force-source", requires = "from")]
    pub force_source: bool,
}

impl SalvageOpts {
    /// With --salvage, the salvaged view of `path` (`prefix`: the storage
    /// prefix, for the report's object names), after a warning on stderr
    /// that what follows is a salvage view and what it lacks. Any file that
    /// cannot be read, or holds nothing usable, is an error of exit 2.
    pub fn view(
        &self,
        path: &std::path::Path,
        prefix: &str,
    ) -> anyhow::Result<Option<etcdsnap::salvage::view::View>> {
        use etcdsnap::salvage::view::{self, Source};
        if !self.salvage {
            return Ok(None);
        }
        // Any failure to read, damaged compression included, is "nothing
        // usable" (2), as for `salvage`.
        let file = SnapshotFile::open(path).map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut opened = Vec::with_capacity(self.from.len());
        for p in &self.from {
            let f = SnapshotFile::open(p).map_err(|e| anyhow::anyhow!("{e}"))?;
            opened.push((p.display().to_string(), f));
        }
        let sources: Vec<Source<'_>> = opened
            .iter()
            .map(|(name, f)| Source {
                name: name.clone(),
                bytes: f.bytes(),
            })
            .collect();
        let name = path.display().to_string();
        let v = view::open(file.bytes(), &name, &sources, self.force_source, prefix)?;
        for e in &v.forced {
            say!("etcdsnap: warning: {e}");
        }
        let r = &v.report;
        let left_out: u64 = r.records.rejected.values().sum();
        let mut lost = Vec::new();
        if left_out > 0 {
            lost.push(format!("{left_out} damaged records left out"));
        }
        if !r.lost.is_empty() {
            lost.push(format!("{} keys lost or possibly stale", r.lost.len()));
        }
        if r.missing_revisions > 0 {
            lost.push(format!(
                "{} revisions of which nothing survived",
                r.missing_revisions
            ));
        }
        if !r.newest_revisions_known {
            lost.push("newest revisions unknown".into());
        }
        if !r.conflicts.is_empty() {
            lost.push(format!("{} revisions in conflict", r.conflicts.len()));
        }
        let verdict = if r.complete {
            "nothing known lost".to_string()
        } else if lost.is_empty() {
            "something is lost; `etcdsnap salvage` reports what".to_string()
        } else {
            format!(
                "{}; `etcdsnap salvage` reports what is lost",
                lost.join(", ")
            )
        };
        say!(
            "etcdsnap: warning: {name}: salvage view ({} intact revisions read, {} kept): {verdict}",
            r.records.intact,
            r.records.written
        );
        Ok(Some(v))
    }
}

/// The outcome of a query answered from a salvaged view: a failure when the
/// salvage found something lost, though the query was answered.
pub fn salvage_outcome(
    view: Option<&etcdsnap::salvage::view::View>,
    outcome: super::Outcome,
) -> super::Outcome {
    match (view, outcome) {
        (Some(v), super::Outcome::Ok) if !v.complete() => super::Outcome::Failed,
        (_, o) => o,
    }
}
