//! Writing the salvaged snapshot: our bbolt writer (as `restore` uses it),
//! the sha256 trailer `etcdctl snapshot save` appends, and the durable write
//! path — a temporary sibling created exclusively, fsynced, given its name
//! only if nothing has it (an existing file is moved aside first, and only
//! when asked), then the directory fsynced. The input is never the output.

use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

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

/// The output goes to its file and to the hash in chunks this large; at
/// most [`IN_FLIGHT`] wait for each of the two, so memory stays bounded
/// (about `2 × IN_FLIGHT + 3` chunks).
const CHUNK: usize = 4 << 20;
const IN_FLIGHT: usize = 4;

/// Writes the salvaged snapshot to `out` (a new, empty file): the bbolt
/// file, then the sha256 trailer of what was written. Returns the bytes
/// written.
///
/// The bbolt writer writes front to back into chunks; a second thread
/// hashes them (the hash, on one core, bounds the whole write) and a third
/// writes them to the file, with `O_DIRECT` where the file system takes it
/// ([`durable::set_direct`]): the kernel's copy into the page cache was as
/// much CPU as the hash, on a machine whose two cores are both busy. The
/// caller fsyncs.
pub fn write_snapshot(
    page_size: usize,
    buckets: &[BucketData<'_>],
    out: &mut durable::Windowed,
) -> std::io::Result<u64> {
    use std::sync::atomic::AtomicBool;
    use std::sync::mpsc::{channel, sync_channel};
    let (hash_tx, hash_rx) = sync_channel::<Arc<Chunk>>(IN_FLIGHT);
    let (write_tx, write_rx) = sync_channel::<Arc<Chunk>>(IN_FLIGHT);
    let (pool_tx, pool_rx) = channel::<Chunk>();
    let failed = AtomicBool::new(false);
    let file = &mut *out;
    let (written, digest) = std::thread::scope(|scope| {
        let pool = pool_tx.clone();
        let hasher = scope.spawn(move || {
            let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
            for c in hash_rx {
                ctx.update(c.bytes());
                recycle(c, &pool);
            }
            ctx.finish()
        });
        let failed_flag = &failed;
        let writer = scope.spawn(move || {
            let mut direct = durable::set_direct(file.get_ref(), true);
            let mut result = Ok(());
            for c in write_rx {
                if result.is_ok() {
                    result = write_chunk(file, &c, &mut direct);
                    if result.is_err() {
                        failed_flag.store(true, std::sync::atomic::Ordering::Relaxed);
                    }
                }
                recycle(c, &pool_tx);
            }
            if direct {
                durable::set_direct(file.get_ref(), false);
            }
            result
        });
        let mut tee = Tee {
            chunk: Chunk::new(),
            hash: Some(hash_tx),
            write: Some(write_tx),
            pool: pool_rx,
            failed: &failed,
        };
        let written = write_db(&mut tee, page_size, buckets).and_then(|len| {
            tee.pass_on()?;
            Ok(len)
        });
        // Closing the channels ends both threads, also after a failure.
        (tee.hash, tee.write) = (None, None);
        let digest = hasher.join();
        // The writer's error is the cause of the producer's, if both failed.
        let wrote = writer
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the writing thread failed")));
        (wrote.and(written), digest)
    });
    let len = written?;
    let digest = digest.map_err(|_| std::io::Error::other("the hashing thread failed"))?;
    out.write_all(digest.as_ref())?;
    out.flush()?;
    Ok(len + 32)
}

/// A chunk of the output: its bytes are `buf[start..]`, `start` putting
/// them on a [`durable::DIRECT_ALIGN`] boundary. The buffer never grows past
/// the capacity it was made with, so it never moves.
struct Chunk {
    buf: Vec<u8>,
    start: usize,
}

impl Chunk {
    fn new() -> Chunk {
        let mut buf: Vec<u8> = Vec::with_capacity(CHUNK + durable::DIRECT_ALIGN);
        // Not aligned (never, in practice) only means no O_DIRECT for it.
        let start = match buf.as_ptr().align_offset(durable::DIRECT_ALIGN) {
            n if n < durable::DIRECT_ALIGN => n,
            _ => 0,
        };
        buf.resize(start, 0);
        Chunk { buf, start }
    }

    fn bytes(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    fn aligned(&self) -> bool {
        let b = self.bytes();
        (b.as_ptr() as usize).is_multiple_of(durable::DIRECT_ALIGN)
            && b.len().is_multiple_of(durable::DIRECT_ALIGN)
    }
}

/// Gives a chunk back for reuse once both threads are done with it
/// (reused memory costs no page faults; new memory does).
fn recycle(c: Arc<Chunk>, pool: &std::sync::mpsc::Sender<Chunk>) {
    if let Ok(mut c) = Arc::try_unwrap(c) {
        c.buf.truncate(c.start);
        // The writer may have finished: a chunk it no longer takes is dropped.
        let _ = pool.send(c);
    }
}

/// Writes one chunk, directly while that works: an unaligned chunk (the
/// last) or a refusal turns `O_DIRECT` off for the rest.
fn write_chunk(out: &mut durable::Windowed, c: &Chunk, direct: &mut bool) -> std::io::Result<()> {
    let mut b = c.bytes();
    if *direct && !c.aligned() {
        *direct = !durable::set_direct(out.get_ref(), false);
    }
    if *direct {
        match out.write(b) {
            Ok(n) => b = &b[n..],
            // Refused before writing anything: through the page cache.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
            Err(e) => return Err(e),
        }
        if !b.is_empty() {
            *direct = !durable::set_direct(out.get_ref(), false);
        }
    }
    out.write_all(b)
}

/// The bbolt writer's output: filled in [`CHUNK`]s, each passed on to the
/// hashing and the writing thread.
struct Tee<'f> {
    chunk: Chunk,
    hash: Option<std::sync::mpsc::SyncSender<Arc<Chunk>>>,
    write: Option<std::sync::mpsc::SyncSender<Arc<Chunk>>>,
    pool: std::sync::mpsc::Receiver<Chunk>,
    failed: &'f std::sync::atomic::AtomicBool,
}

impl Tee<'_> {
    /// Hands the filled chunk to both threads.
    fn pass_on(&mut self) -> std::io::Result<()> {
        if self.chunk.bytes().is_empty() {
            return Ok(());
        }
        let stopped = || std::io::Error::other("the writing thread stopped");
        if self.failed.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(stopped());
        }
        let next = self.pool.try_recv().unwrap_or_else(|_| Chunk::new());
        let c = Arc::new(std::mem::replace(&mut self.chunk, next));
        let send = |to: &Option<std::sync::mpsc::SyncSender<Arc<Chunk>>>, c| {
            to.as_ref()
                .ok_or_else(stopped)?
                .send(c)
                .map_err(|_| stopped())
        };
        send(&self.write, c.clone())?;
        send(&self.hash, c)
    }
}

impl Write for Tee<'_> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let n = b.len().min(CHUNK - self.chunk.bytes().len());
        self.chunk.buf.extend_from_slice(&b[..n]);
        if self.chunk.bytes().len() == CHUNK {
            self.pass_on()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
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
    // A salvage killed before (kill -9, a crash) left its temporary output,
    // as large as the output: removed once its process is gone.
    let _ = durable::swap::clean_stale_temp_files(durable::parent_of(out));
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    /// The file the threads write (with O_DIRECT where the test's temporary
    /// directory takes it) is byte for byte the file written in memory, its
    /// trailer the sha256 of the rest: over several whole chunks and a last,
    /// partial one.
    #[test]
    fn threaded_write_equals_the_file_written_in_memory() {
        let entries: Vec<_> = (0u32..700)
            .map(|i| {
                let value: Vec<u8> = (0..13_000u32).map(|j| (i * 31 + j) as u8).collect();
                (Cow::Owned(i.to_be_bytes().to_vec()), Cow::Owned(value))
            })
            .collect();
        let buckets = vec![BucketData {
            name: Cow::Borrowed(&b"key"[..]),
            entries,
        }];
        let mut expected = Vec::new();
        let len = write_db(Cursor::new(&mut expected), 4096, &buckets).unwrap();
        assert!(len as usize > 2 * CHUNK, "more than two chunks: {len}");
        let digest = ring::digest::digest(&ring::digest::SHA256, &expected);
        expected.extend_from_slice(digest.as_ref());

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.db");
        let mut f = durable::Windowed::new(durable::create_exclusive(&path).unwrap());
        let written = write_snapshot(4096, &buckets, &mut f).unwrap();
        drop(f.into_inner());
        let got = std::fs::read(&path).unwrap();
        assert_eq!(written as usize, expected.len());
        assert!(got == expected, "file differs from the in-memory write");
    }
}
