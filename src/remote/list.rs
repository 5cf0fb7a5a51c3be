//! Whole prefixes: `s3://BUCKET/PREFIX/` (a URL ending in `/`) names every
//! snapshot object under the prefix, so that one command checks or catalogs
//! a whole backup folder.
//!
//! Why it exists: a bucket of nightly backups is checked as a series, and
//! listing it by hand before every run is the step that gets skipped. The
//! listing is `object_store`'s, over the `ObjectStore` trait, so every
//! scheme [`super::fetch`] reads by bucket and key is listed the same way;
//! it follows the store's pagination (S3 gives at most 1,000 keys a page).
//!
//! Which objects are snapshots: every object under the prefix, at any
//! depth, except directory markers (0-byte objects that are the prefix
//! itself or have objects under them) and checksum or signature sidecars
//! (`SHA256SUMS`, `SHA512SUMS`, `MD5SUMS`, and names ending in `.sha256`,
//! `.sha512`, `.md5`, `.sig`, `.asc`) and key indexes (`.etcdsnap-index`,
//! which `index URL --beside` writes). Anything else is read as a snapshot,
//! so a stray object fails its check rather than being passed over.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// One object of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// The object's URL (`s3://BUCKET/KEY`).
    pub url: String,
    /// Its size in bytes.
    pub size: u64,
    /// When it was last modified.
    pub modified: SystemTime,
    /// Its ETag, if the store gave one.
    pub etag: Option<String>,
    /// Its version, if the store gave one.
    pub version: Option<String>,
}

/// Whether `arg` names a prefix: a remote URL of a bucket store ending in
/// `/` (`s3://BUCKET/` or `s3://BUCKET/PREFIX/`). An `http(s)` URL names
/// one object whatever its end.
pub fn is_prefix(arg: &Path) -> bool {
    arg.to_str().is_some_and(|s| {
        let lower = s.get(..8).unwrap_or(s).to_ascii_lowercase();
        super::is_remote(arg)
            && !lower.starts_with("http://")
            && !lower.starts_with("https://")
            && s.ends_with('/')
    })
}

/// Whether a key's last segment names a checksum, signature or key index
/// file that sits beside backups rather than a backup.
pub fn is_sidecar(key: &str) -> bool {
    let name = key.rsplit('/').next().unwrap_or(key);
    let lower = name.to_ascii_lowercase();
    matches!(lower.as_str(), "sha256sums" | "sha512sums" | "md5sums")
        || [
            ".sha256",
            ".sha512",
            ".md5",
            ".sig",
            ".asc",
            ".etcdsnap-index",
        ]
        .iter()
        .any(|s| lower.ends_with(s))
}

/// The snapshots of a listing (see the module comment), oldest first by
/// last modification (then by URL); with `newest`, only the newest that
/// many. `prefix_url` is the listed URL (its own marker is skipped).
pub fn snapshots(prefix_url: &str, mut all: Vec<Listed>, newest: Option<usize>) -> Vec<Listed> {
    let base = prefix_url.trim_end_matches('/');
    let dirs: std::collections::BTreeSet<&str> = all
        .iter()
        .filter_map(|o| o.url.rsplit_once('/').map(|(d, _)| d))
        .collect();
    let keep: Vec<bool> = all
        .iter()
        .map(|o| {
            let marker = o.size == 0 && (o.url == base || dirs.contains(o.url.as_str()));
            !marker && !is_sidecar(&o.url)
        })
        .collect();
    let mut i = 0;
    all.retain(|_| {
        i += 1;
        keep[i - 1]
    });
    all.sort_by(|a, b| a.modified.cmp(&b.modified).then_with(|| a.url.cmp(&b.url)));
    if let Some(n) = newest {
        let skip = all.len().saturating_sub(n);
        all.drain(..skip);
    }
    all
}

/// A snapshot argument after prefixes are expanded: a path or URL as
/// given, or one object of a listed prefix with what the listing said.
#[derive(Debug, Clone)]
pub struct Source {
    /// The path or URL to open.
    pub path: PathBuf,
    /// What the listing said of the object (for an object of a prefix).
    pub listed: Option<Listed>,
}

/// Each argument as it is, except that a prefix ([`is_prefix`]) becomes
/// its snapshots ([`snapshots`]: oldest first, the newest `newest` of
/// them); a prefix without one is an error (a backup folder left empty).
#[cfg(feature = "remote")]
pub fn expand(args: &[PathBuf], newest: Option<usize>) -> Result<Vec<Source>, RemoteError> {
    let mut out = Vec::new();
    for a in args {
        let url = match a.to_str() {
            Some(url) if is_prefix(a) => url,
            _ => {
                out.push(Source {
                    path: a.clone(),
                    listed: None,
                });
                continue;
            }
        };
        let all = list(url)?;
        let listed = all.len();
        let found = snapshots(url, all, newest);
        if found.is_empty() {
            return Err(RemoteError::NotFound {
                url: super::redact(url),
                detail: format!(
                    "no snapshot object under the prefix ({listed} objects listed, none a snapshot)"
                ),
            });
        }
        out.extend(found.into_iter().map(|o| Source {
            path: PathBuf::from(&o.url),
            listed: Some(o),
        }));
    }
    Ok(out)
}

/// Without the `remote` feature: every argument as it is (a URL is then
/// refused by name when it is opened).
#[cfg(not(feature = "remote"))]
pub fn expand(
    args: &[PathBuf],
    _newest: Option<usize>,
) -> Result<Vec<Source>, std::convert::Infallible> {
    Ok(args
        .iter()
        .map(|a| Source {
            path: a.clone(),
            listed: None,
        })
        .collect())
}

#[cfg(feature = "remote")]
use crate::remote::RemoteError;
#[cfg(feature = "remote")]
pub use transfer::list;

#[cfg(feature = "remote")]
mod transfer {
    use futures_util::StreamExt;
    use object_store::ObjectStoreExt;

    use super::Listed;
    use crate::remote::fetch::{RemoteError, classify, prefix_store};
    use crate::remote::redact;

    /// Every object under the prefix `url` (`s3://BUCKET/PREFIX/`), all pages
    /// of the listing, in the store's order, less the directory markers
    /// (`dir/`) that have nothing under them (a HEAD of each 0-byte object
    /// finds them; those with objects under them [`super::snapshots`] skips).
    pub fn list(url: &str) -> Result<Vec<Listed>, RemoteError> {
        let shown = redact(url);
        // TLS through ring, for every HTTPS request of the client.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let (store, prefix) = prefix_store(url)?;
        // The objects' URLs: the prefix URL up to its bucket, then the key.
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(RemoteError::BadUrl {
                url: shown,
                detail: "no scheme".to_string(),
            });
        };
        let bucket = rest.split('/').next().unwrap_or(rest);
        let base = format!("{scheme}://{bucket}/");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| RemoteError::Transfer {
                url: shown.clone(),
                detail: format!("cannot start the I/O runtime: {e}"),
            })?;
        let prefix = (!prefix.as_ref().is_empty()).then_some(prefix);
        runtime.block_on(async {
            let mut stream = store.list(prefix.as_ref());
            let mut out = Vec::new();
            while let Some(item) = stream.next().await {
                crate::interrupt::check().map_err(|source| RemoteError::Interrupted {
                    url: shown.clone(),
                    source,
                })?;
                let meta = item.map_err(|e| classify(e, &shown))?;
                // A directory marker (`dir/`) is listed without its final
                // `/`, like an empty object `dir`: only a HEAD of the name
                // tells them apart (the marker is not found under it).
                if meta.size == 0 {
                    match store.head(&meta.location).await {
                        Err(object_store::Error::NotFound { .. }) => continue,
                        Err(e) => return Err(classify(e, &shown)),
                        Ok(_) => {}
                    }
                }
                out.push(Listed {
                    url: format!("{base}{}", meta.location.as_ref()),
                    size: meta.size,
                    modified: std::time::SystemTime::from(meta.last_modified),
                    etag: meta.e_tag,
                    version: meta.version,
                });
            }
            Ok(out)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn obj(url: &str, size: u64, secs: u64) -> Listed {
        Listed {
            url: url.to_string(),
            size,
            modified: SystemTime::UNIX_EPOCH + Duration::from_secs(secs),
            etag: None,
            version: None,
        }
    }

    #[test]
    fn prefixes_are_bucket_urls_ending_in_a_slash() {
        assert!(is_prefix(Path::new("s3://b/etcd/")));
        assert!(is_prefix(Path::new("s3://b/")));
        assert!(!is_prefix(Path::new("s3://b/etcd/a.db")));
        assert!(!is_prefix(Path::new("https://h/dir/")));
        assert!(!is_prefix(Path::new("./dir/")));
    }

    #[test]
    fn markers_and_sidecars_are_skipped_and_the_newest_kept() {
        let all = vec![
            obj("s3://b/etcd", 0, 1),
            obj("s3://b/etcd/sub", 0, 1),
            obj("s3://b/etcd/sub/c.db", 10, 5),
            obj("s3://b/etcd/a.db", 10, 3),
            obj("s3://b/etcd/empty.db", 0, 2),
            obj("s3://b/etcd/SHA256SUMS", 10, 9),
            obj("s3://b/etcd/a.db.sha256", 10, 9),
            obj("s3://b/etcd/notes.txt", 10, 4),
        ];
        let urls = |v: Vec<Listed>| v.into_iter().map(|o| o.url).collect::<Vec<_>>();
        assert_eq!(
            urls(snapshots("s3://b/etcd/", all.clone(), None)),
            [
                "s3://b/etcd/empty.db",
                "s3://b/etcd/a.db",
                "s3://b/etcd/notes.txt",
                "s3://b/etcd/sub/c.db"
            ]
        );
        assert_eq!(
            urls(snapshots("s3://b/etcd/", all, Some(2))),
            ["s3://b/etcd/notes.txt", "s3://b/etcd/sub/c.db"]
        );
    }
}
