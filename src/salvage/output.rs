//! Writing the salvaged snapshot: our bbolt writer (as `restore` uses it),
//! the sha256 trailer `etcdctl snapshot save` appends, and the durable write
//! path — a temporary sibling created exclusively, fsynced, given its name
//! only if nothing has it (an existing file is moved aside first, and only
//! when asked), then the directory fsynced. The input is never the output.

use std::borrow::Cow;
use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};

use crate::bolt::write::{BucketData, write_db};
use crate::durable::{self, IoError};

use super::Salvaged;

/// Why the output was not written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The output exists and `--force` was not given.
    #[error("{0}: exists (add --force to move it aside)")]
    Exists(PathBuf),
    /// The output names the input.
    #[error("{0}: is the damaged input; write the salvaged snapshot elsewhere")]
    IsInput(PathBuf),
    /// A file-system step failed.
    #[error(transparent)]
    Io(#[from] IoError),
}

/// Where the output went.
#[derive(Debug, Clone)]
pub struct Written {
    /// Bytes written, trailer included.
    pub bytes: u64,
    /// Where an existing file at the output's path was moved.
    pub moved_aside: Option<PathBuf>,
}

/// The salvaged snapshot as bytes: the bbolt file and its sha256 trailer.
pub fn snapshot_bytes(s: &Salvaged) -> Vec<u8> {
    let buckets: Vec<BucketData<'_>> = s
        .buckets
        .iter()
        .map(|(name, entries)| BucketData {
            name: Cow::Borrowed(name.as_slice()),
            entries: entries
                .iter()
                .map(|(k, v)| (Cow::Borrowed(k.as_slice()), Cow::Borrowed(v.as_slice())))
                .collect(),
        })
        .collect();
    let mut cur = Cursor::new(Vec::new());
    // Writing to memory cannot fail.
    let _ = write_db(&mut cur, s.page_size, &buckets);
    let mut bytes = cur.into_inner();
    let digest = ring::digest::digest(&ring::digest::SHA256, &bytes);
    bytes.extend_from_slice(digest.as_ref());
    bytes
}

fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let (Ok(x), Ok(y)) = (std::fs::metadata(a), std::fs::metadata(b)) {
            return x.dev() == y.dev() && x.ino() == y.ino();
        }
    }
    false
}

/// `<path>.etcdsnap-bak-<UTC time>`, `-2`, `-3`… if taken.
fn backup_name(p: &Path) -> PathBuf {
    let base = format!("{}.etcdsnap-bak-{}", p.display(), durable::utc_stamp());
    let mut b = PathBuf::from(&base);
    let mut n = 2;
    while std::fs::symlink_metadata(&b).is_ok() {
        b = PathBuf::from(format!("{base}-{n}"));
        n += 1;
    }
    b
}

/// Writes `s` to `out` (mode 0600) as described in the module comment.
pub fn write(s: &Salvaged, input: &Path, out: &Path, force: bool) -> Result<Written, WriteError> {
    if same_file(input, out) {
        return Err(WriteError::IsInput(out.to_path_buf()));
    }
    let exists = std::fs::symlink_metadata(out).is_ok();
    if exists && !force {
        return Err(WriteError::Exists(out.to_path_buf()));
    }
    let bytes = snapshot_bytes(s);
    let tmp = durable::temp_sibling(out);
    let _ = std::fs::remove_file(&tmp);
    let r = (|| -> Result<Option<PathBuf>, WriteError> {
        let mut f = durable::create_exclusive(&tmp)?;
        f.write_all(&bytes).map_err(IoError::at(&tmp))?;
        f.sync_all().map_err(IoError::at(&tmp))?;
        drop(f);
        let mut moved = None;
        if std::fs::symlink_metadata(out).is_ok() {
            if !force {
                return Err(WriteError::Exists(out.to_path_buf()));
            }
            let bak = backup_name(out);
            std::fs::rename(out, &bak).map_err(IoError::at(out))?;
            moved = Some(bak);
        }
        if !durable::place_no_replace(&tmp, out)? {
            return Err(WriteError::Exists(out.to_path_buf()));
        }
        durable::sync_path(durable::parent_of(out))?;
        Ok(moved)
    })();
    match r {
        Ok(moved_aside) => Ok(Written {
            bytes: bytes.len() as u64,
            moved_aside,
        }),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}
