//! The transfer itself (the `remote` feature): the S3 and HTTP stores of
//! `object_store` (GCS and Azure in `stores`), the spool file, and the pin
//! of the object at open.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures_util::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt, RetryConfig};

use super::growing::{Ahead, EndOnDrop, Growing};
use super::{redact, scrub};
use crate::interrupt;

/// How long a transfer may go without a byte before it is given up.
const IDLE_LIMIT: Duration = Duration::from_secs(120);
/// How often a waiting transfer looks at the Ctrl-C flag.
const TICK: Duration = Duration::from_millis(100);

/// Settings of remote reads, set once by the command line.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Where spool files go (default: `$TMPDIR`, else /tmp).
    pub spool_dir: Option<PathBuf>,
    /// The S3 endpoint (else `AWS_ENDPOINT_URL`/`AWS_ENDPOINT`, else AWS);
    /// with one, requests use path-style addressing.
    pub s3_endpoint: Option<String>,
    /// The GCS endpoint (else `GOOGLE_BASE_URL`, else Google's): a GCS
    /// emulator or a private endpoint.
    pub gcs_endpoint: Option<String>,
    /// The Azure Blob endpoint, the account's URL (else
    /// `AZURE_STORAGE_ENDPOINT`, else the account's public one).
    pub azure_endpoint: Option<String>,
    /// Called with one line about each finished spool (where, how large,
    /// its sha256), for the caller to show or not.
    pub notice: Option<fn(&str)>,
    /// PEM certificates of CAs trusted for `https` besides the system's
    /// roots (a private CA of an S3-compatible server or a web server).
    pub ca_file: Option<PathBuf>,
}

static OPTIONS: OnceLock<Options> = OnceLock::new();

/// Sets the options of every later remote read (the first call wins).
pub fn configure(options: Options) {
    let _ = OPTIONS.set(options);
}

pub(super) fn options() -> Options {
    OPTIONS.get().cloned().unwrap_or_default()
}

/// The certificates of [`Options::ca_file`], read once.
static CA: OnceLock<Vec<object_store::Certificate>> = OnceLock::new();

/// Reads the CA file of `opts` (once per process) so that every client
/// built after it trusts those CAs; a file that is not PEM certificates is
/// an error naming it.
pub(super) fn load_ca(opts: &Options, shown: &str) -> Result<(), RemoteError> {
    let Some(path) = &opts.ca_file else {
        return Ok(());
    };
    if CA.get().is_some() {
        return Ok(());
    }
    let setup = |detail: String| RemoteError::Setup {
        url: shown.to_string(),
        detail: format!("CA file {}: {detail}", path.display()),
    };
    // A CA bundle is small; a larger file is not one.
    let mut pem = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(4 << 20).read_to_end(&mut pem))
        .map_err(|e| setup(e.to_string()))?;
    let certs = object_store::Certificate::from_pem_bundle(&pem)
        .map_err(|e| setup(scrub(&error_text(&e))))?;
    if certs.is_empty() {
        return Err(setup("no PEM certificate in it".to_string()));
    }
    let _ = CA.set(certs);
    Ok(())
}

/// Why a remote object cannot be read. Every variant names the URL
/// (redacted); all are access or transfer errors (exit 2), never damage.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// The source is not a URL this build reads.
    #[error("{url}: not a readable URL: {detail}")]
    BadUrl {
        /// The URL.
        url: String,
        /// What is wrong with it.
        detail: String,
    },
    /// The client cannot be set up (region, endpoint, credentials settings).
    #[error("{url}: cannot set up the client: {detail}")]
    Setup {
        /// The URL.
        url: String,
        /// What the client said.
        detail: String,
    },
    /// No object (or no bucket) there.
    #[error("{url}: not found: {detail}")]
    NotFound {
        /// The URL.
        url: String,
        /// What the server said.
        detail: String,
    },
    /// The server refused the credentials or the access.
    #[error("{url}: access denied: {detail}")]
    Denied {
        /// The URL.
        url: String,
        /// What the server said.
        detail: String,
    },
    /// The object changed while it was read.
    #[error("{url}: the object changed while it was read ({detail}); read it again")]
    Changed {
        /// The URL.
        url: String,
        /// What differs.
        detail: String,
    },
    /// The body ended before the size the server announced.
    #[error("{url}: truncated response: {got} of {expected} bytes received{}", cause.as_ref().map(|c| format!(": {c}")).unwrap_or_default())]
    Truncated {
        /// The URL.
        url: String,
        /// Bytes received.
        got: u64,
        /// Bytes announced.
        expected: u64,
        /// The transfer error, if the connection failed.
        cause: Option<String>,
    },
    /// The request or the transfer failed (unreachable endpoint, server error).
    #[error("{url}: cannot read: {detail}")]
    Transfer {
        /// The URL.
        url: String,
        /// What failed.
        detail: String,
    },
    /// The spool file cannot be created or written.
    #[error("{url}: cannot write the spool file in {}: {source}", dir.display())]
    Spool {
        /// The URL.
        url: String,
        /// The spool directory.
        dir: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// Ctrl-C or SIGTERM during the transfer (the spool was removed).
    #[error("{url}: {source}; the spool file was removed")]
    Interrupted {
        /// The URL.
        url: String,
        /// The signal.
        source: interrupt::Interrupted,
    },
}

/// A remote object copied into an unnamed spool file.
#[derive(Debug)]
pub struct Spooled {
    /// The spool file, positioned at its start; its name is already removed.
    pub file: File,
    /// Bytes read.
    pub len: u64,
    /// The sha256 of the bytes as they arrived.
    pub sha256: [u8; 32],
    /// The sha256 of all bytes but the last 32, taken in the same pass: the
    /// digest a `snapshot save` trailer holds, so that checking it needs no
    /// second read of the spool (`None` for an object shorter than 32 bytes).
    pub sha256_but_last_32: Option<[u8; 32]>,
    /// The ETag the object was pinned to, if the server gave one.
    pub etag: Option<String>,
    /// The object version it was pinned to, if the store has versions.
    pub version: Option<String>,
    /// When the object was last modified, as the store says.
    pub modified: std::time::SystemTime,
}

pub(super) enum Target {
    S3 { bucket: String, key: String },
    Gcs { bucket: String, key: String },
    Azure { container: String, key: String },
    Http { url: String },
}

pub(super) fn parse(url: &str) -> Result<Target, RemoteError> {
    let shown = redact(url);
    let bad = |detail: &str| RemoteError::BadUrl {
        url: shown.clone(),
        detail: detail.to_string(),
    };
    let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("no scheme"))?;
    let scheme = scheme.to_ascii_lowercase();
    match scheme.as_str() {
        "s3" | "gs" | "az" => {
            let what = if scheme == "az" {
                "CONTAINER"
            } else {
                "BUCKET"
            };
            let (bucket, key) = rest
                .split_once('/')
                .ok_or_else(|| bad(&format!("expected {scheme}://{what}/KEY")))?;
            if bucket.is_empty() || key.is_empty() || key.ends_with('/') {
                return Err(bad(&format!(
                    "expected {scheme}://{what}/KEY (one object, not a prefix)"
                )));
            }
            let (bucket, key) = (bucket.to_string(), key.to_string());
            Ok(match scheme.as_str() {
                "s3" => Target::S3 { bucket, key },
                "gs" => Target::Gcs { bucket, key },
                _ => Target::Azure {
                    container: bucket,
                    key,
                },
            })
        }
        "http" | "https" => {
            if rest.is_empty() || rest.starts_with('/') {
                return Err(bad("no host"));
            }
            Ok(Target::Http {
                url: url.to_string(),
            })
        }
        _ => Err(bad(
            "only s3://, gs://, az://, http:// and https:// are read",
        )),
    }
}

pub(super) fn env_true(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true"))
}

pub(super) fn client_options(allow_http: bool) -> ClientOptions {
    let mut o = ClientOptions::new();
    for c in CA.get().into_iter().flatten() {
        o = o.with_root_certificate(c.clone());
    }
    o.with_allow_http(allow_http)
        .with_connect_timeout(Duration::from_secs(10))
        // A snapshot may take long to stream: the idle limit below bounds a
        // stalled transfer instead of a limit on the whole request.
        .with_timeout_disabled()
}

/// How many times a request is tried again after throttling (429, 503
/// SlowDown), a server error or a connection that failed before the request
/// went out; and a body cut mid-way is resumed (by a Range request that must
/// answer with the same ETag, else the read fails as changed).
pub(super) const RETRIES: usize = 4;

/// Bounded retries with exponential backoff (jittered, 0.2 s doubling to at
/// most 5 s; all within a minute of the first request), then the error.
pub(super) fn retries() -> RetryConfig {
    RetryConfig {
        backoff: object_store::BackoffConfig {
            init_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            base: 2.0,
        },
        max_retries: RETRIES,
        retry_timeout: Duration::from_secs(60),
    }
}

pub(super) fn build_store(
    target: &Target,
    opts: &Options,
    shown: &str,
) -> Result<(Box<dyn ObjectStore>, ObjectPath), RemoteError> {
    // TLS through ring for every client built here (idempotent).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let setup = |e: object_store::Error| RemoteError::Setup {
        url: shown.to_string(),
        detail: scrub(&e.to_string()),
    };
    match target {
        Target::S3 { bucket, key } => {
            let mut b = object_store::aws::AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .with_client_options(client_options(env_true("AWS_ALLOW_HTTP")))
                .with_retry(retries());
            if let Some(endpoint) = &opts.s3_endpoint {
                b = b.with_endpoint(endpoint);
            }
            let has_endpoint = opts.s3_endpoint.is_some()
                || std::env::var_os("AWS_ENDPOINT_URL").is_some()
                || std::env::var_os("AWS_ENDPOINT").is_some()
                || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some();
            if has_endpoint {
                b = b.with_virtual_hosted_style_request(false);
            }
            let store = b.build().map_err(setup)?;
            Ok((Box::new(store), ObjectPath::from(key.as_str())))
        }
        Target::Gcs { bucket, key } => {
            let client = client_options(env_true("GOOGLE_ALLOW_HTTP"));
            let store = super::stores::gcs(bucket, client, retries(), opts.gcs_endpoint.as_deref())
                .map_err(setup)?;
            Ok((store, ObjectPath::from(key.as_str())))
        }
        Target::Azure { container, key } => {
            let client = client_options(env_true("AZURE_ALLOW_HTTP"));
            let store =
                super::stores::azure(container, client, retries(), opts.azure_endpoint.as_deref())
                    .map_err(setup)?;
            Ok((store, ObjectPath::from(key.as_str())))
        }
        Target::Http { url } => {
            let allow_http = url.to_ascii_lowercase().starts_with("http://");
            let store = object_store::http::HttpBuilder::new()
                .with_url(url.as_str())
                .with_client_options(client_options(allow_http))
                .with_retry(retries())
                .build()
                .map_err(setup)?;
            Ok((Box::new(store), ObjectPath::from("")))
        }
    }
}

/// What a failed request says, short: the HTTP status and, from an S3 or
/// Azure error body, its code and the first line of its message (the body's
/// other fields, the string to sign, request ids and the like, say nothing
/// to a reader).
fn condense(text: &str) -> String {
    let tag = |name: &str| {
        let open = format!("<{name}>");
        let start = text.find(&open)? + open.len();
        let len = text[start..].find('<')?;
        let value = &text[start..start + len];
        Some(value.lines().next().unwrap_or(value).trim().to_string())
    };
    let status = text
        .split_once("status code: ")
        .map(|(_, rest)| rest.split(':').next().unwrap_or(rest).trim().to_string());
    // The client's retries, when it made any (throttling, server errors).
    let retried = text
        .split_once(", after ")
        .and_then(|(_, rest)| rest.split_once(" retries"))
        .filter(|(n, _)| n.parse::<u32>().is_ok_and(|n| n > 0))
        .map(|(n, _)| format!(" (after {n} retries)"))
        .unwrap_or_default();
    match (status, tag("Code")) {
        (Some(status), Some(code)) => match tag("Message") {
            Some(msg) => format!("HTTP {status}, {code}: {msg}{retried}"),
            None => format!("HTTP {status}, {code}{retried}"),
        },
        (Some(status), None) => format!("HTTP {status}{retried}"),
        _ => {
            let mut t: String = text.chars().take(400).collect();
            if t.len() < text.len() {
                t.push('…');
            }
            t
        }
    }
}

pub(super) fn classify(e: object_store::Error, shown: &str) -> RemoteError {
    let url = shown.to_string();
    let text = scrub(&error_text(&e));
    let mut detail = condense(&text);
    if detail.contains("invalid peer certificate") {
        detail.push_str(" (trust the server's CA with --cacert FILE)");
    }
    // GCS and Azure get an OAuth token first (from a service account, the
    // metadata server, a managed or workload identity): without one the
    // object was never asked for.
    if text.contains("Error performing token request") {
        return RemoteError::Denied {
            url,
            detail: format!("no access token from the credentials in the environment: {detail}"),
        };
    }
    // The client refuses a plain-http endpoint unless told otherwise.
    let allow_http = match shown.get(..5) {
        Some("s3://") => Some("AWS_ALLOW_HTTP"),
        Some("gs://") => Some("GOOGLE_ALLOW_HTTP"),
        Some("az://") => Some("AZURE_ALLOW_HTTP"),
        _ => None,
    };
    if let Some(var) = allow_http
        && text.contains("URL scheme is not allowed")
    {
        return RemoteError::Transfer {
            url,
            detail: format!("the endpoint is plain http, refused unless {var}=true: {detail}"),
        };
    }
    match e {
        object_store::Error::NotFound { .. } => RemoteError::NotFound { url, detail },
        object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. } => RemoteError::Denied { url, detail },
        object_store::Error::Precondition { .. } => RemoteError::Changed { url, detail },
        // A request the store did not classify (a HEAD has no error body).
        _ if detail.starts_with("HTTP 401") || detail.starts_with("HTTP 403") => {
            RemoteError::Denied { url, detail }
        }
        _ if detail.starts_with("HTTP 404") => RemoteError::NotFound { url, detail },
        _ => RemoteError::Transfer { url, detail },
    }
}

/// An error and its causes, each said once.
fn error_text(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let s = c.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cause = c.source();
    }
    out
}

/// Streams the object at `url` once into a private spool file and returns
/// the open file with its name already removed.
pub fn fetch(url: &str) -> Result<Spooled, RemoteError> {
    fetch_inner(url, None)
}

/// [`fetch`], with `beside` reading the object on another thread while it
/// streams in ([`Growing`]). Its result comes back only when the transfer
/// succeeded, `beside` returned, and every range it had read ahead of the
/// stream holds the bytes the stream delivered; else `None`, and the caller
/// reads the spool as [`fetch`]'s.
pub fn fetch_beside<R: Send>(
    url: &str,
    beside: impl FnOnce(&Growing) -> R + Send,
) -> Result<(Spooled, Option<R>), RemoteError> {
    let mut out = None;
    let mut ahead = (0, 0);
    let job: Beside<'_> = Box::new(|g: &Growing| {
        let r = beside(g);
        ahead = g.ahead_counts();
        if g.ahead_agrees() {
            out = Some(r);
        }
    });
    let spooled = fetch_inner(url, Some(job))?;
    if let (Some(notice), true) = (options().notice, out.is_some()) {
        notice(&format!(
            "{}: read while it streamed in ({} range requests ahead of the stream, {} bytes)",
            redact(url),
            ahead.0,
            ahead.1
        ));
    }
    Ok((spooled, out))
}

/// A reader of the object beside its transfer.
type Beside<'a> = Box<dyn FnOnce(&Growing) + Send + 'a>;

fn fetch_inner(url: &str, beside: Option<Beside<'_>>) -> Result<Spooled, RemoteError> {
    let shown = redact(url);
    let opts = options();
    let target = parse(url)?;
    // TLS through ring, for every HTTPS request of the client.
    let _ = rustls::crypto::ring::default_provider().install_default();
    // Ctrl-C during the transfer removes the spool; a command that did not
    // catch signals itself gets their default action back afterwards.
    let caught_here = !interrupt::installed();
    interrupt::install();
    let dir = opts.spool_dir.clone().unwrap_or_else(std::env::temp_dir);
    let spool_err = |source| RemoteError::Spool {
        url: shown.clone(),
        dir: dir.clone(),
        source,
    };
    load_ca(&opts, &shown)?;
    let (store, location) = build_store(&target, &opts, &shown)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| RemoteError::Transfer {
            url: shown.clone(),
            detail: format!("cannot start the I/O runtime: {e}"),
        })?;
    // Created exclusively, 0600; removed when dropped (every error path).
    let spool = tempfile::Builder::new()
        .prefix(".etcdsnap-spool-")
        .tempfile_in(&dir)
        .map_err(spool_err)?;
    let spool_path = spool.path().to_path_buf();
    let (mut file, name) = spool.into_parts();
    let ahead = |file: &File| -> Option<Ahead> {
        if matches!(target, Target::Http { .. }) {
            return None;
        }
        let (store, location) = build_store(&target, &opts, &shown).ok()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?;
        Some(Ahead {
            store,
            location,
            runtime: Some(runtime),
            file: file.try_clone().ok()?,
            etag: None,
            version: None,
        })
    };
    let result = std::thread::scope(|scope| {
        let mut reader = None;
        let wants = beside.is_some();
        let mut beside = beside;
        let mut on_open = |g: Arc<Growing>| {
            if let Some(job) = beside.take() {
                reader = std::thread::Builder::new()
                    .name("beside-transfer".into())
                    .spawn_scoped(scope, move || job(&g))
                    .ok();
            }
        };
        let result = runtime.block_on(stream_into(
            &*store,
            &location,
            &mut file,
            &shown,
            wants.then_some((
                &ahead as &dyn Fn(&File) -> Option<Ahead>,
                &mut on_open as &mut dyn FnMut(Arc<Growing>),
            )),
        ));
        // The transfer has stopped and said so: the reader finishes (a
        // reader that panicked has no result to give).
        if let Some(handle) = reader {
            let _ = handle.join();
        }
        result
    });
    // The name goes now, whatever happened; the descriptor keeps the bytes.
    drop(name);
    if caught_here && interrupt::requested().is_none() {
        interrupt::uninstall();
    }
    let (len, sha256, sha256_but_last_32, meta) = result?;
    // A signal that came just before the handlers went.
    interrupt::check().map_err(|source| RemoteError::Interrupted {
        url: shown.clone(),
        source,
    })?;
    file.seek(SeekFrom::Start(0)).map_err(spool_err)?;
    if let Some(notice) = opts.notice {
        notice(&format!(
            "{shown}: {len} bytes streamed into a private spool file {} (sha256 {}, removed on exit)",
            spool_path.display(),
            hex(&sha256)
        ));
    }
    Ok(Spooled {
        file,
        len,
        sha256,
        sha256_but_last_32,
        modified: std::time::SystemTime::from(meta.last_modified),
        etag: meta.e_tag,
        version: meta.version,
    })
}

/// The store of a prefix URL (`s3://BUCKET/PREFIX/`, any scheme [`fetch`]
/// reads by bucket and key) and the prefix's path in it. The URL is read as
/// `fetch` reads an object's: an object name put after the final `/` stands
/// in, and its path less that last segment is the prefix.
pub(super) fn prefix_store(url: &str) -> Result<(Box<dyn ObjectStore>, ObjectPath), RemoteError> {
    const PROBE: &str = "etcdsnap-prefix-probe";
    let shown = redact(url);
    let opts = options();
    let target = parse(&format!("{url}{PROBE}"))?;
    if matches!(target, Target::Http { .. }) {
        return Err(RemoteError::BadUrl {
            url: shown,
            detail: "an http(s) URL names one object; a prefix is listed only in a bucket (s3://BUCKET/PREFIX/)".to_string(),
        });
    }
    load_ca(&opts, &shown)?;
    let (store, probe) = build_store(&target, &opts, &shown)?;
    let parts: Vec<_> = probe.parts().collect();
    let prefix = ObjectPath::from_iter(parts[..parts.len().saturating_sub(1)].iter().cloned());
    Ok((store, prefix))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// How a transfer serves a reader beside it: what reads ahead of it, and
/// who starts the reader once the object's size is known.
type BesideHooks<'h> = (
    &'h dyn Fn(&File) -> Option<Ahead>,
    &'h mut dyn FnMut(Arc<Growing>),
);

async fn stream_into(
    store: &dyn ObjectStore,
    location: &ObjectPath,
    file: &mut File,
    shown: &str,
    beside: Option<BesideHooks<'_>>,
) -> Result<(u64, [u8; 32], Option<[u8; 32]>, object_store::ObjectMeta), RemoteError> {
    let interrupted = |source| RemoteError::Interrupted {
        url: shown.to_string(),
        source,
    };
    let got = store
        .get_opts(location, object_store::GetOptions::default())
        .await
        .map_err(|e| classify(e, shown))?;
    let meta = got.meta.clone();
    let mut stream = got.into_stream();
    // Hashing and writing the spool run on their own thread, beside the
    // transfer: on a fast link the digest costs as much as the receiving.
    let spool_err = |source| RemoteError::Spool {
        url: shown.to_string(),
        dir: PathBuf::new(),
        source,
    };
    // A reader beside the transfer: the spool takes the object's size now
    // and is mapped whole; the writer moves the watermark it waits on.
    let growing = match beside {
        Some((ahead, on_open)) => {
            file.set_len(meta.size).map_err(spool_err)?;
            let map = if meta.size == 0 {
                None
            } else {
                // SAFETY: read-only; the file is our unnamed spool, which
                // only this transfer writes, and only bytes it read the
                // reader also gets (see `Growing`).
                Some(
                    unsafe {
                        memmap2::MmapOptions::new()
                            .len(meta.size as usize)
                            .map(&*file)
                    }
                    .map_err(spool_err)?,
                )
            };
            let ahead = ahead(file).map(|mut a| {
                a.etag = meta.e_tag.clone();
                a.version = meta.version.clone();
                a
            });
            let g = Arc::new(Growing::new(map, meta.size, ahead));
            on_open(Arc::clone(&g));
            Some(g)
        }
        None => None,
    };
    // Whatever way this returns, a reader waiting for bytes is woken.
    let _ended = growing.as_deref().map(EndOnDrop);
    let (tx, worker) = Spooler::start(
        file.try_clone().map_err(spool_err)?,
        meta.size.checked_sub(32),
        growing.clone(),
    )
    .map_err(spool_err)?;
    let mut tx = Some(tx);
    let mut len: u64 = 0;
    let mut idle = Duration::ZERO;
    let truncated = |len, cause| RemoteError::Truncated {
        url: shown.to_string(),
        got: len,
        expected: meta.size,
        cause,
    };
    loop {
        interrupt::check().map_err(interrupted)?;
        let next = match tokio::time::timeout(TICK, stream.next()).await {
            Err(_) => {
                idle += TICK;
                if idle >= IDLE_LIMIT {
                    return Err(RemoteError::Transfer {
                        url: shown.to_string(),
                        detail: format!(
                            "no data for {} s after {len} of {} bytes",
                            IDLE_LIMIT.as_secs(),
                            meta.size
                        ),
                    });
                }
                continue;
            }
            Ok(next) => next,
        };
        idle = Duration::ZERO;
        match next {
            None => break,
            Some(Ok(chunk)) => {
                len += chunk.len() as u64;
                // A worker that stopped has an I/O error to say: it is
                // taken below.
                if tx.as_ref().is_some_and(|tx| tx.send(chunk).is_err()) {
                    break;
                }
            }
            Some(Err(e)) => {
                let detail = scrub(&error_text(&e));
                if len < meta.size {
                    return Err(truncated(len, Some(detail)));
                }
                return Err(RemoteError::Transfer {
                    url: shown.to_string(),
                    detail,
                });
            }
        }
    }
    drop(tx.take());
    let spooled = worker.finish().map_err(spool_err)?;
    if len != meta.size {
        return Err(truncated(len, None));
    }
    // The pin: the object must still be the one the GET streamed.
    let now = store
        .head(location)
        .await
        .map_err(|e| match classify(e, shown) {
            RemoteError::NotFound { url, .. } => RemoteError::Changed {
                url,
                detail: "it was deleted".to_string(),
            },
            other => other,
        })?;
    let mut changes = Vec::new();
    if now.e_tag != meta.e_tag {
        changes.push(format!(
            "ETag {} at open, {} now",
            meta.e_tag.as_deref().unwrap_or("none"),
            now.e_tag.as_deref().unwrap_or("none")
        ));
    }
    if now.version != meta.version {
        changes.push(format!(
            "version {} at open, {} now",
            meta.version.as_deref().unwrap_or("none"),
            now.version.as_deref().unwrap_or("none")
        ));
    }
    if now.size != meta.size {
        changes.push(format!("{} bytes at open, {} now", meta.size, now.size));
    }
    if now.last_modified != meta.last_modified {
        changes.push(format!(
            "modified {} at open, {} now",
            meta.last_modified, now.last_modified
        ));
    }
    if !changes.is_empty() {
        return Err(RemoteError::Changed {
            url: shown.to_string(),
            detail: changes.join(", "),
        });
    }
    file.flush().map_err(spool_err)?;
    Ok((len, spooled.0, spooled.1, meta))
}

/// The thread that hashes the arriving chunks and writes them to the spool.
/// It takes the digest of everything and, in the same pass, of everything
/// before `boundary` (the bytes a sha256 trailer would cover).
struct Spooler {
    handle: std::thread::JoinHandle<io::Result<SpoolDigests>>,
}

/// The digest of every byte spooled, and of those before the boundary.
type SpoolDigests = ([u8; 32], Option<[u8; 32]>);

/// Chunks in flight between the transfer and the spooler (each a few KiB to
/// a few MiB as the transport delivers them).
const IN_FLIGHT: usize = 64;

impl Spooler {
    fn start<T: AsRef<[u8]> + Send + 'static>(
        mut file: File,
        boundary: Option<u64>,
        growing: Option<Arc<Growing>>,
    ) -> io::Result<(std::sync::mpsc::SyncSender<T>, Spooler)> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<T>(IN_FLIGHT);
        // Hashing and writing each on their own thread: the copy into the
        // page cache costs a quarter of the digest, off its core.
        let (to_writer, for_writer) = std::sync::mpsc::sync_channel::<T>(IN_FLIGHT);
        let writer = std::thread::Builder::new()
            .name("spool-write".into())
            .spawn(move || -> io::Result<()> {
                for chunk in for_writer {
                    file.write_all(chunk.as_ref())?;
                    if let Some(g) = &growing {
                        g.advance(chunk.as_ref().len() as u64);
                    }
                }
                Ok(())
            })?;
        let handle = std::thread::Builder::new()
            .name("spool-hash".into())
            .spawn(move || {
                let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
                let mut before = None;
                let mut at: u64 = 0;
                for chunk in rx {
                    let bytes = chunk.as_ref();
                    let end = at + bytes.len() as u64;
                    match boundary {
                        Some(b) if before.is_none() && b <= end => {
                            let (head, tail) = bytes.split_at((b - at) as usize);
                            ctx.update(head);
                            before = Some(digest_bytes(ctx.clone().finish()));
                            ctx.update(tail);
                        }
                        _ => ctx.update(bytes),
                    }
                    at = end;
                    // A writer that stopped has its error to say, below.
                    if to_writer.send(chunk).is_err() {
                        break;
                    }
                }
                drop(to_writer);
                writer
                    .join()
                    .unwrap_or_else(|_| Err(io::Error::other("the spool writer failed")))?;
                // An object of exactly `boundary` bytes, or none at all.
                if before.is_none() && boundary == Some(at) {
                    before = Some(digest_bytes(ctx.clone().finish()));
                }
                Ok((digest_bytes(ctx.finish()), before))
            })?;
        Ok((tx, Spooler { handle }))
    }

    /// Waits for the spooler (the sender must be dropped first).
    fn finish(self) -> io::Result<SpoolDigests> {
        self.handle
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the spool thread failed")))
    }
}

fn digest_bytes(d: ring::digest::Digest) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spooler_takes_both_digests_whatever_the_chunks() {
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        let sha = |b: &[u8]| digest_bytes(ring::digest::digest(&ring::digest::SHA256, b));
        let boundary = data.len() as u64 - 32;
        for size in [1, 31, 32, 33, 512, 4968, 4969, 5000] {
            let spool = tempfile::tempfile().unwrap();
            let (tx, worker) =
                Spooler::start::<Vec<u8>>(spool.try_clone().unwrap(), Some(boundary), None)
                    .unwrap();
            for chunk in data.chunks(size) {
                tx.send(chunk.to_vec()).unwrap();
            }
            drop(tx);
            let (all, before) = worker.finish().unwrap();
            assert_eq!(all, sha(&data), "chunks of {size}");
            assert_eq!(
                before,
                Some(sha(&data[..data.len() - 32])),
                "chunks of {size}"
            );
            let mut written = Vec::new();
            let mut spool = spool;
            spool.seek(SeekFrom::Start(0)).unwrap();
            spool.read_to_end(&mut written).unwrap();
            assert_eq!(written, data);
        }
    }

    #[test]
    fn prefixes_are_refused() {
        assert!(parse("s3://b/").is_err());
        assert!(parse("s3://b/dir/").is_err());
        assert!(parse("gs://b/").is_err());
        assert!(parse("az://c/dir/").is_err());
        assert!(parse("az://c").is_err());
        assert!(parse("ftp://h/k").is_err());
        assert!(parse("s3://b/k.db").is_ok());
        assert!(matches!(parse("gs://b/k.db"), Ok(Target::Gcs { .. })));
        assert!(matches!(parse("AZ://c/d/k.db"), Ok(Target::Azure { .. })));
    }

    #[test]
    fn s3_error_bodies_are_condensed() {
        let t = "Error performing GET http://h/b/k in 2ms - Server returned non-2xx status code: \
                 403 Forbidden: <?xml version=\"1.0\"?>\n<Error><Code>SignatureDoesNotMatch</Code>\
                 <Message>The signature does not match.</Message><StringToSign>x</StringToSign></Error>";
        assert_eq!(
            condense(t),
            "HTTP 403 Forbidden, SignatureDoesNotMatch: The signature does not match."
        );
        assert_eq!(
            condense("Server returned non-2xx status code: 404 Not Found: not found"),
            "HTTP 404 Not Found"
        );
        let throttled = "Error performing GET http://h/a.db in 3.1s, after 4 retries, max_retries: 4, \
                         retry_timeout: 60s  - Server returned non-2xx status code: 503 Slow Down: \
                         <Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";
        assert_eq!(
            condense(throttled),
            "HTTP 503 Slow Down, SlowDown: Please reduce your request rate. (after 4 retries)"
        );
        let azure = "Server returned non-2xx status code: 404 Not Found: <?xml version=\"1.0\"?>\n<Error>\n  \
                     <Code>ContainerNotFound</Code>\n  <Message>The specified container does not exist.\n\
                     RequestId:c812d578\nTime:2026-12-04T21:41:13.294Z</Message>\n</Error>";
        assert_eq!(
            condense(azure),
            "HTTP 404 Not Found, ContainerNotFound: The specified container does not exist."
        );
    }
}
