//! A bucket's object copied under its own name, with the `SHA256SUMS`
//! beside it: what `install s3://…/m1.tar.zst.age` works from. `install`
//! checks an archive against the `SHA256SUMS` in its directory and reads
//! the member's name from the file name, so both objects are copied into a
//! private directory (created exclusively, 0700, removed when the returned
//! handle is dropped) as the files `install` would find on disk.

use std::fs::File;
use std::io;
use std::path::PathBuf;

use super::fetch::{RemoteError, fetch};
use super::redact;

/// The name of the checksums file beside bundle archives.
const SUMS: &str = "SHA256SUMS";

/// An object and its `SHA256SUMS` (when the bucket has one beside it),
/// copied into a private directory.
pub struct Fetched {
    /// The directory; removed when this is dropped.
    pub dir: tempfile::TempDir,
    /// The object's copy, under the object's own name.
    pub path: PathBuf,
    /// Whether a `SHA256SUMS` was found beside the object (and copied).
    pub sums: bool,
}

/// Copies the object at `url` (a bucket's: `s3://`, `gs://`, `az://`, or
/// `http(s)://`) and, for a bucket's object, the `SHA256SUMS` beside it into
/// a new private directory in `$TMPDIR`.
pub fn fetch_with_sums(url: &str) -> Result<Fetched, RemoteError> {
    let shown = redact(url);
    let path_part = url.split(['?', '#']).next().unwrap_or(url);
    let name = path_part.rsplit('/').next().unwrap_or("");
    if name.is_empty() || name == "." || name == ".." {
        return Err(RemoteError::BadUrl {
            url: shown,
            detail: "names no object (it ends in /)".into(),
        });
    }
    let dir_err = |source| RemoteError::Spool {
        url: shown.clone(),
        dir: std::env::temp_dir(),
        source,
    };
    let dir = tempfile::Builder::new()
        .prefix(".etcdsnap-fetch-")
        .tempdir()
        .map_err(dir_err)?;
    let copy = |from: &str, to: PathBuf| -> Result<(), RemoteError> {
        let mut spooled = fetch(from)?;
        let mut out = File::options()
            .write(true)
            .create_new(true)
            .open(&to)
            .map_err(dir_err)?;
        io::copy(&mut spooled.file, &mut out).map_err(dir_err)?;
        out.sync_all().map_err(dir_err)
    };
    let path = dir.path().join(name);
    copy(url, path.clone())?;
    // A presigned URL's signature covers one object: no sibling for it.
    let bucket = !url.to_ascii_lowercase().starts_with("http");
    let mut sums = false;
    if bucket {
        let sibling = format!("{}{SUMS}", &path_part[..path_part.len() - name.len()]);
        match copy(&sibling, dir.path().join(SUMS)) {
            Ok(()) => sums = true,
            Err(RemoteError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Fetched { dir, path, sums })
}
