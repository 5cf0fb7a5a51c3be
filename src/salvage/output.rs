//! Writing the salvaged snapshot: our bbolt writer (as `restore` uses it),
//! the sha256 trailer `etcdctl snapshot save` appends, and the durable write
//! path — a temporary sibling created exclusively, fsynced, given its name
//! only if nothing has it (an existing file is moved aside first, and only
//! when asked), then the directory fsynced. The input is never the output.

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

/// Buffers handed from the writer to the hashing thread: each this large,
/// at most [`IN_FLIGHT`] of them at once, so memory stays bounded.
const CHUNK: usize = 4 << 20;
const IN_FLIGHT: usize = 4;

/// Writes the salvaged snapshot to `out`: the bbolt file, then the sha256
/// trailer of what was written. The bbolt writer writes front to back, so
/// the hash follows the write on a second thread (in 4 MiB chunks) instead of
/// reading the file back after it. Returns the bytes written.
pub fn write_snapshot<W: Write + Send>(
    page_size: usize,
    buckets: &[BucketData<'_>],
    out: W,
) -> std::io::Result<u64> {
    let (full_tx, full_rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(IN_FLIGHT);
    let (empty_tx, empty_rx) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::scope(|scope| {
        let hasher = scope.spawn(move || {
            let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
            for chunk in full_rx {
                ctx.update(&chunk);
                // The writer may have finished: a buffer it no longer takes
                // is dropped.
                let _ = empty_tx.send(chunk);
            }
            ctx.finish()
        });
        let mut tee = Tee {
            out,
            buf: Vec::with_capacity(CHUNK),
            full: Some(full_tx),
            empty: empty_rx,
        };
        let written = write_db(&mut tee, page_size, buckets).and_then(|len| {
            tee.pass_on()?;
            Ok(len)
        });
        // Closing the channel ends the hasher, also after a failed write.
        tee.full = None;
        let digest = hasher
            .join()
            .map_err(|_| std::io::Error::other("the hashing thread failed"))?;
        let len = written?;
        tee.out.write_all(digest.as_ref())?;
        tee.out.flush()?;
        Ok(len + 32)
    })
}

/// A writer that writes through to `out` in [`CHUNK`]s and passes each chunk
/// on to the hashing thread.
struct Tee<W: Write> {
    out: W,
    buf: Vec<u8>,
    full: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
    empty: std::sync::mpsc::Receiver<Vec<u8>>,
}

impl<W: Write> Tee<W> {
    /// Writes the buffered bytes and hands them to the hasher.
    fn pass_on(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.out.write_all(&self.buf)?;
        let next = self
            .empty
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(CHUNK));
        let chunk = std::mem::replace(&mut self.buf, next);
        let gone = || std::io::Error::other("the hashing thread stopped");
        self.full
            .as_ref()
            .ok_or_else(gone)?
            .send(chunk)
            .map_err(|_| gone())?;
        self.buf.clear();
        Ok(())
    }
}

impl<W: Write> Write for Tee<W> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let n = b.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&b[..n]);
        if self.buf.len() == CHUNK {
            self.pass_on()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
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

/// Writes `s` to `out` (mode 0600) as described in the module comment,
/// and meanwhile finishes its report ([`Salvaged::finish_report`]).
pub fn write(
    s: &mut Salvaged<'_>,
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
        let mut f = durable::Windowed::new(durable::create_exclusive(&tmp)?);
        // The write is bound by the hash of what it writes, on one core:
        // the report's lists are built meanwhile.
        let Salvaged {
            buckets,
            page_size,
            report,
            lists,
        } = &mut *s;
        let bytes = std::thread::scope(|scope| {
            let writer = scope.spawn(|| write_snapshot(*page_size, buckets, &mut f));
            super::finish_lists(report, lists);
            writer
                .join()
                .unwrap_or_else(|_| Err(std::io::Error::other("the writing thread failed")))
        })
        .map_err(IoError::at(&tmp))?;
        let f = f.into_inner();
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
