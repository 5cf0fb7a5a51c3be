//! Writing an object: a multipart upload to `s3://` or `az://` (a
//! resumable upload session to `gs://`)
//! that becomes the object only when its writer says every byte checked out.
//!
//! `save --to` streams a snapshot from a live member straight into object
//! storage. The parts go up as the bytes arrive (a few parts in flight, so
//! memory stays bounded), but the object appears under its name only at
//! [`Upload::finish`], which the writer calls after its own checks passed;
//! any failure before that is an [`Upload::abort`], which deletes the parts.
//! A process killed outright cannot abort: its parts stay as an incomplete
//! multipart upload (invisible to GET and LIST of objects) until the
//! bucket's lifecycle rule removes them.
//!
//! An existing object is never replaced unless asked: a HEAD before the
//! first part and again just before completion. `object_store` 0.14 offers
//! no conditional completion (`If-None-Match: *`) for its public multipart
//! API, so a writer that creates the object between that last HEAD and the
//! completion is overwritten; the window is one request long. (`gs://`
//! is a resumable session, `remote::resumable`, which GCS completes only
//! if no object exists by then: no window there.)
//!
//! The stores are those the readers use (`fetch`'s settings, credentials
//! from the environment, the same bounded retries with backoff: a part that
//! still fails after them is an error, and the upload is aborted). URLs in errors are redacted as everywhere in
//! [`crate::remote`].

use std::time::Duration;

use object_store::path::Path as ObjectPath;
use object_store::{
    MultipartUpload, ObjectStore, ObjectStoreExt, PutMultipartOptions, WriteMultipart,
};

use super::fetch::{
    RemoteError, Target, build_store, classify, client_options, env_true, load_ca, options, parse,
};
use super::redact;

/// Size of each part (S3's minimum is 5 MiB, except the last).
const PART_SIZE: usize = 8 << 20;
/// Parts uploading at once; a writer that is faster waits.
const IN_FLIGHT: usize = 2;
/// How long a part may take before the upload is given up.
const PART_LIMIT: Duration = Duration::from_secs(300);

/// Why an object cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The store refused, or the transfer failed.
    #[error(transparent)]
    Remote(#[from] RemoteError),
    /// The URL is not one this module writes to.
    #[error("{url}: not a writable URL: {detail}")]
    NotWritable {
        /// The URL (redacted).
        url: String,
        /// Why.
        detail: String,
    },
    /// A request of the upload or the transfer of a part failed.
    #[error("{url}: cannot write: {detail}")]
    Transfer {
        /// The URL (redacted).
        url: String,
        /// What failed.
        detail: String,
    },
    /// The object exists and replacing it was not asked for.
    #[error("{url} already exists; choose another key, or pass --force to replace it")]
    Exists {
        /// The URL (redacted).
        url: String,
    },
    /// The object appeared while the upload ran; the upload was aborted.
    #[error(
        "{url} appeared while this save ran (another save to the same key?); the upload was aborted \
         and the object left as it is; pass --force to replace it"
    )]
    AppearedMeanwhile {
        /// The URL (redacted).
        url: String,
    },
}

/// An object written.
#[derive(Debug, Clone)]
pub struct Uploaded {
    /// The URL (redacted).
    pub url: String,
    /// Bytes written.
    pub bytes: u64,
    /// The ETag the store gave the object, if any.
    pub etag: Option<String>,
    /// The object's version, if the store keeps versions.
    pub version: Option<String>,
    /// Whether an existing object was replaced (`force`).
    pub replaced: bool,
}

/// A multipart upload under way. Call [`Upload::finish`] or
/// [`Upload::abort`]; dropping it leaves the parts uploaded so far as an
/// incomplete multipart upload.
pub struct Upload {
    shown: String,
    store: Box<dyn ObjectStore>,
    location: ObjectPath,
    writer: WriteMultipart,
    bytes: u64,
    force: bool,
    existed: bool,
}

impl std::fmt::Debug for Upload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upload")
            .field("url", &self.shown)
            .field("bytes", &self.bytes)
            .finish_non_exhaustive()
    }
}

/// Where a writer that must see the whole file before the upload completes
/// keeps its private copy: the spool directory of remote reads
/// (`--spool-dir`), else `$TMPDIR`.
pub fn spool_dir() -> std::path::PathBuf {
    options().spool_dir.unwrap_or_else(std::env::temp_dir)
}

/// Whether `url` is a URL this module writes (`s3://`, `gs://`, `az://`
/// with a bucket and a key), without any request.
pub fn check_url(url: &str) -> Result<(), UploadError> {
    match parse(url)? {
        Target::Http { .. } => Err(UploadError::NotWritable {
            url: redact(url),
            detail: "an http(s) URL is read only; write to s3://BUCKET/KEY, gs://BUCKET/KEY or \
                     az://CONTAINER/KEY"
                .to_string(),
        }),
        _ => Ok(()),
    }
}

/// Starts a multipart upload to `url` (on the caller's tokio runtime): the
/// object must not exist unless `force`. Nothing is visible under the name
/// until [`Upload::finish`].
pub async fn start(url: &str, force: bool) -> Result<Upload, UploadError> {
    let shown = redact(url);
    check_url(url)?;
    let target = parse(url)?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let opts = options();
    load_ca(&opts, &shown)?;
    let (store, location) = build_store(&target, &opts, &shown)?;
    let existed = exists(&*store, &location, &shown).await?;
    if existed && !force {
        return Err(UploadError::Exists { url: shown });
    }
    let upload: Box<dyn MultipartUpload> = match &target {
        // GCS: a resumable session (`super::resumable` says why).
        Target::Gcs { bucket, key } => {
            let client = client_options(env_true("GOOGLE_ALLOW_HTTP"));
            let endpoint = opts.gcs_endpoint.as_deref();
            Box::new(
                super::resumable::start(bucket, key, client, endpoint, force)
                    .await
                    .map_err(|e| write_err(e, &shown))?,
            )
        }
        _ => store
            .put_multipart_opts(&location, PutMultipartOptions::default())
            .await
            .map_err(|e| write_err(e, &shown))?,
    };
    Ok(Upload {
        writer: WriteMultipart::new_with_chunk_size(upload, PART_SIZE),
        shown,
        store,
        location,
        bytes: 0,
        force,
        existed,
    })
}

/// A failed request of the upload, classified as the readers' are, a
/// transfer failure said as one of writing.
fn write_err(e: object_store::Error, shown: &str) -> UploadError {
    match classify(e, shown) {
        RemoteError::Transfer { url, detail } => UploadError::Transfer { url, detail },
        other => other.into(),
    }
}

/// Whether there is an object at `location` (a HEAD).
async fn exists(
    store: &dyn ObjectStore,
    location: &ObjectPath,
    shown: &str,
) -> Result<bool, UploadError> {
    match store.head(location).await {
        Ok(_) => Ok(true),
        Err(object_store::Error::NotFound { .. }) => Ok(false),
        Err(e) => Err(write_err(e, shown)),
    }
}

impl Upload {
    /// The URL, redacted.
    pub fn url(&self) -> &str {
        &self.shown
    }

    /// Adds `buf` to the object; a full part goes up in the background
    /// (waiting first while too many are in flight). A part that failed is
    /// reported here or at [`Upload::finish`].
    pub async fn write(&mut self, buf: &[u8]) -> Result<(), UploadError> {
        match tokio::time::timeout(PART_LIMIT, self.writer.wait_for_capacity(IN_FLIGHT)).await {
            Ok(r) => r.map_err(|e| write_err(e, &self.shown))?,
            Err(_) => {
                return Err(UploadError::Transfer {
                    url: self.shown.clone(),
                    detail: format!("a part took more than {}s to upload", PART_LIMIT.as_secs()),
                });
            }
        }
        self.writer.write(buf);
        self.bytes += buf.len() as u64;
        Ok(())
    }

    /// Uploads the last part and completes the upload: the object appears
    /// under its name. Without `force`, an object that appeared meanwhile is
    /// left as it is and the upload aborted.
    pub async fn finish(self) -> Result<Uploaded, UploadError> {
        if !self.force && exists(&*self.store, &self.location, &self.shown).await? {
            let url = self.shown.clone();
            self.abort().await?;
            return Err(UploadError::AppearedMeanwhile { url });
        }
        let shown = self.shown;
        let done = match self.writer.finish().await {
            Ok(done) => done,
            // GCS refused to complete over an object that appeared
            // meanwhile (the session's `ifGenerationMatch=0`).
            Err(object_store::Error::AlreadyExists { .. }) if !self.force => {
                return Err(UploadError::AppearedMeanwhile { url: shown });
            }
            Err(e) => return Err(write_err(e, &shown)),
        };
        Ok(Uploaded {
            url: shown,
            bytes: self.bytes,
            etag: done.e_tag,
            version: done.version,
            replaced: self.existed,
        })
    }

    /// Deletes the parts: no object is made. Parts still uploading are let
    /// finish first (a part that lands after the abort would otherwise bring
    /// the upload back on some servers, and S3 only frees what was complete
    /// when it aborted); their own errors do not matter any more.
    pub async fn abort(mut self) -> Result<(), UploadError> {
        let _ = tokio::time::timeout(PART_LIMIT, self.writer.wait_for_capacity(0)).await;
        let shown = self.shown;
        self.writer.abort().await.map_err(|e| write_err(e, &shown))
    }
}

/// Uploads each local file to `prefix` + its file name (`prefix` ends in
/// `/`: `s3://BUCKET/DIR/`), in the order given — the file others check
/// against (a `SHA256SUMS`) last, so it never names an object not yet there.
/// Every name is checked first: unless `force`, none may exist, and then
/// nothing is written. A failure or Ctrl-C aborts the upload under way; the
/// objects completed before it stay (their URLs are in the error's text).
pub fn put_files(
    prefix: &str,
    files: &[std::path::PathBuf],
    force: bool,
) -> Result<Vec<Uploaded>, UploadError> {
    use std::io::Read;
    let shown = redact(prefix);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| UploadError::Transfer {
            url: shown.clone(),
            detail: format!("cannot start the I/O runtime: {e}"),
        })?;
    let url_of = |f: &std::path::Path| -> Result<String, UploadError> {
        let name =
            f.file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| UploadError::NotWritable {
                    url: shown.clone(),
                    detail: format!("{} has no file name to use as a key", f.display()),
                })?;
        Ok(format!("{prefix}{name}"))
    };
    let urls = files
        .iter()
        .map(|f| url_of(f))
        .collect::<Result<Vec<_>, _>>()?;
    if !force {
        for url in &urls {
            check_url(url)?;
            let target = parse(url)?;
            let opts = options();
            let u = redact(url);
            load_ca(&opts, &u)?;
            let (store, location) = build_store(&target, &opts, &u)?;
            if runtime.block_on(exists(&*store, &location, &u))? {
                return Err(UploadError::Exists { url: u });
            }
        }
    }
    let mut done = Vec::with_capacity(files.len());
    for (file, url) in files.iter().zip(&urls) {
        let u = redact(url);
        let read_err = |e: std::io::Error| UploadError::Transfer {
            url: u.clone(),
            detail: format!("cannot read {}: {e}", file.display()),
        };
        let mut f = std::fs::File::open(file).map_err(read_err)?;
        let uploaded = runtime.block_on(async {
            let mut up = start(url, force).await?;
            let mut buf = vec![0u8; 1 << 20];
            let step: Result<(), UploadError> = async {
                loop {
                    if crate::interrupt::check().is_err() {
                        return Err(UploadError::Transfer {
                            url: u.clone(),
                            detail: "stopped (Ctrl-C or SIGTERM)".into(),
                        });
                    }
                    let n = f.read(&mut buf).map_err(read_err)?;
                    if n == 0 {
                        return Ok(());
                    }
                    up.write(&buf[..n]).await?;
                }
            }
            .await;
            match step {
                Ok(()) => up.finish().await,
                Err(e) => {
                    let _ = up.abort().await;
                    Err(e)
                }
            }
        })?;
        done.push(uploaded);
    }
    Ok(done)
}
