//! Writing the salvaged snapshot: our bbolt writer (as `restore` uses it),
//! the sha256 trailer `etcdctl snapshot save` appends, and the durable write
//! path — a temporary sibling created exclusively, fsynced, given its name
//! only if nothing has it (an existing file is moved aside first, and only
//! when asked), then the directory fsynced. The input is never the output.

use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};

use crate::bolt::write::write_db;
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

/// Writes the salvaged snapshot to `file` (open for writing at `path`):
/// the bbolt file, then the sha256 trailer of what was written, read back
/// through `path` in blocks so memory stays bounded by the buffers. Returns
/// the bytes written.
pub fn write_snapshot(
    s: &Salvaged<'_>,
    file: &mut std::fs::File,
    path: &Path,
) -> std::io::Result<u64> {
    use std::io::{BufWriter, Read, Seek, SeekFrom};
    let mut w = BufWriter::with_capacity(1 << 20, &mut *file);
    let len = write_db(&mut w, s.page_size, &s.buckets)?;
    w.flush()?;
    drop(w);
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut r = std::fs::File::open(path)?.take(len);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
    }
    file.seek(SeekFrom::Start(len))?;
    file.write_all(ctx.finish().as_ref())?;
    Ok(len + 32)
}

/// The salvaged snapshot as bytes, trailer included (for tests and fuzzing;
/// the command writes to a file with [`write()`]).
pub fn snapshot_bytes(s: &Salvaged<'_>) -> Vec<u8> {
    let mut bytes = db_bytes(s);
    let digest = ring::digest::digest(&ring::digest::SHA256, &bytes);
    bytes.extend_from_slice(digest.as_ref());
    bytes
}

/// The salvaged bbolt file as bytes, without the trailer (what a reader
/// opens: `ls`, `get` and `history --salvage` read it in memory).
pub fn db_bytes(s: &Salvaged<'_>) -> Vec<u8> {
    let mut cur = Cursor::new(Vec::new());
    // Writing to memory cannot fail.
    let _ = write_db(&mut cur, s.page_size, &s.buckets);
    cur.into_inner()
}

/// Whether `a` and `b` name one file (or `b` is `a` itself).
pub fn same_file(a: &Path, b: &Path) -> bool {
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
pub fn write(
    s: &Salvaged<'_>,
    input: &Path,
    out: &Path,
    force: bool,
) -> Result<Written, WriteError> {
    if same_file(input, out) {
        return Err(WriteError::IsInput(out.to_path_buf()));
    }
    let exists = std::fs::symlink_metadata(out).is_ok();
    if exists && !force {
        return Err(WriteError::Exists(out.to_path_buf()));
    }
    let tmp = durable::temp_sibling(out);
    let _ = std::fs::remove_file(&tmp);
    let r = (|| -> Result<(u64, Option<PathBuf>), WriteError> {
        let mut f = durable::create_exclusive(&tmp)?;
        let bytes = write_snapshot(s, &mut f, &tmp).map_err(IoError::at(&tmp))?;
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
        Ok((bytes, moved))
    })();
    match r {
        Ok((bytes, moved_aside)) => Ok(Written { bytes, moved_aside }),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}
