//! `save`: a snapshot streamed from one member (Maintenance.Snapshot) into a
//! file that is either whole and checked, or not there at all.
//!
//! The server ends its stream with the sha256 of everything it sent before
//! (32 bytes). The bytes go, as they arrive, to a temporary file of this run
//! only, next to `OUT` ([`temp_path`]: created exclusively, not through a
//! symbolic link, mode 0600); the file keeps the digest, as `etcdctl snapshot
//! save` writes it. The digest of the db is computed on the way, 32 bytes
//! behind, and compared with the trailer at the end; the digest of the whole
//! file (what `sha256sum` prints) is computed too. Then the file is fsynced
//! and, unless told not to, verified; only then does it become `OUT`: by a
//! link that fails when `OUT` exists, or with `force` by a rename that
//! replaces the old file in one step (an old `OUT` is never touched before
//! the new one is whole and verified). The directory is fsynced. A file that
//! fails verify is kept as `OUT.unverified` for inspection; any other failure
//! removes the temporary file.
//!
//! [`save_to`] sends the same stream to object storage instead
//! (`crate::remote::upload`): parts go up as the chunks arrive, a private
//! spool copy is kept for verify, and the multipart upload is completed only
//! once the same checks passed; any failure aborts it, so no object appears.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::connect::{Live, LiveError, Member};
use crate::durable;

const DIGEST_LEN: usize = 32;

/// Why a snapshot could not be saved.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    /// The member cannot be reached or answered.
    #[error(transparent)]
    Live(#[from] LiveError),
    /// Writing the snapshot failed.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Interrupted; nothing was written.
    #[error("{0}: stopped; the partial download was removed and nothing was written")]
    Interrupted(#[from] crate::interrupt::Interrupted),
    /// Writing the object failed (`save --to`): nothing was made under its
    /// name.
    #[error("{0}; nothing was written")]
    Upload(#[from] crate::remote::upload::UploadError),
    /// The verify of a snapshot for `--to` failed (the upload was aborted).
    #[error("{0}: verify failed; the upload was aborted")]
    VerifyFailed(String),
    /// A save to object storage failed, and so did the abort of its
    /// multipart upload: the parts sent stay until the bucket's lifecycle
    /// rule (AbortIncompleteMultipartUpload) removes them.
    #[error(
        "{cause}; and the multipart upload could not be aborted ({detail}): no object was made, \
         but the parts sent stay until the bucket's lifecycle rule removes them (aws s3api \
         list-multipart-uploads / abort-multipart-upload)"
    )]
    NotAborted {
        /// The failure that stopped the save.
        cause: Box<SaveError>,
        /// Why the abort failed.
        detail: String,
    },
    /// The output exists and --force was not given.
    #[error(
        "{} already exists; remove it, choose another name, or pass --force to replace it",
        .0.display()
    )]
    Exists(PathBuf),
    /// The output appeared while the save ran; it was left as it is.
    #[error(
        "{} appeared while this save ran (another save to the same file?); it was left as it is and \
         nothing was written; pass --force to replace it",
        .0.display()
    )]
    AppearedMeanwhile(PathBuf),
    /// The stream ended before the size the server announced.
    #[error(
        "{endpoint}: the stream ended after {received} bytes while the server said {remaining} more \
         were to come"
    )]
    Truncated {
        /// The endpoint.
        endpoint: String,
        /// Bytes received.
        received: u64,
        /// Bytes the server said were still to come.
        remaining: u64,
    },
    /// The stream is too short to hold a snapshot and its sha256.
    #[error(
        "{endpoint}: the stream ended after {received} bytes, too short to hold a snapshot and its \
         sha256"
    )]
    TooShort {
        /// The endpoint.
        endpoint: String,
        /// Bytes received.
        received: u64,
    },
    /// The bytes received do not hash to the server's trailer.
    #[error(
        "{endpoint}: sha256 mismatch: the server's trailer says {expected}, the {received} bytes \
         received hash to {actual}; the snapshot was damaged in transit or by the server"
    )]
    Digest {
        /// The endpoint.
        endpoint: String,
        /// Bytes received.
        received: u64,
        /// The digest in the server's trailer.
        expected: String,
        /// The digest of the bytes received.
        actual: String,
    },
}

impl SaveError {
    /// A digest that does not match: the data is not sound (a check failed),
    /// as opposed to a transfer or I/O failure.
    pub fn is_check_failure(&self) -> bool {
        match self {
            SaveError::Digest { .. } | SaveError::VerifyFailed(_) => true,
            SaveError::NotAborted { cause, .. } => cause.is_check_failure(),
            _ => false,
        }
    }
}

/// What was saved.
#[derive(Debug)]
pub struct Saved {
    /// Where the file is: `OUT`, or `OUT.unverified` (or the temporary file,
    /// when that name is taken) when verify failed.
    pub path: PathBuf,
    /// Bytes written (the db and the 32-byte digest).
    pub bytes: u64,
    /// The member's revision when the stream began (its Status header).
    pub revision: i64,
    /// How long the save took.
    pub elapsed: Duration,
    /// sha256 of the whole file, as `sha256sum` prints it (and `verify`,
    /// `catalog`, `bundle`).
    pub sha256: String,
    /// sha256 of the db alone: the digest the server appended, checked.
    pub db_sha256: String,
    /// `verify`'s report on the file, when it ran.
    pub verify: Option<crate::verify::Report>,
    /// Whether an existing `OUT` was replaced (`force`).
    pub replaced: bool,
}

impl Saved {
    /// Whether the file is at `OUT` (not kept aside after a failed verify).
    pub fn verified_or_unchecked(&self) -> bool {
        self.verify.as_ref().is_none_or(|r| r.passed)
    }
}

/// How `save` may treat `OUT`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SaveOptions {
    /// Replace an existing `OUT` (by a rename, once the new file is whole
    /// and verified).
    pub force: bool,
    /// Run `verify` on the file before it becomes `OUT`.
    pub verify: bool,
}

/// The prefix of every temporary file `save` makes for `OUT`:
/// `.<name of OUT>.etcdsnap-save-`; [`temp_path`] adds `<pid>-<random>.part`.
pub fn temp_prefix(out: &Path) -> String {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!(".{name}.etcdsnap-save-")
}

/// The temporary file of a run of process `pid`, in `OUT`'s directory:
/// `.<name of OUT>.etcdsnap-save-<pid>-<16 hex digits>.part`.
pub fn temp_path(out: &Path, pid: u32, random: u64) -> PathBuf {
    dir_of(out).join(format!("{}{pid}-{random:016x}.part", temp_prefix(out)))
}

/// The temporary files this process has made for `OUT` and not yet renamed
/// or removed (for an interrupt handler to remove).
pub fn own_temps(out: &Path) -> Vec<PathBuf> {
    let mine = format!("{}{}-", temp_prefix(out), std::process::id());
    let Ok(entries) = std::fs::read_dir(dir_of(out)) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            n.starts_with(&mine) && n.ends_with(".part")
        })
        .map(|e| e.path())
        .collect()
}

/// Removes the temporary files for `OUT` that saves on this host left when
/// they were killed (their process is gone); returns those removed. A file
/// of a running process, or one whose name does not parse, is left alone.
pub fn remove_stale_temps(out: &Path) -> Vec<PathBuf> {
    let prefix = temp_prefix(out);
    let Ok(entries) = std::fs::read_dir(dir_of(out)) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for e in entries.filter_map(Result::ok) {
        let name = e.file_name();
        let name = name.to_string_lossy();
        let Some(rest) = name
            .strip_prefix(&prefix)
            .and_then(|r| r.strip_suffix(".part"))
        else {
            continue;
        };
        let Some((pid, random)) = rest.split_once('-') else {
            continue;
        };
        let Ok(pid) = pid.parse::<i32>() else {
            continue;
        };
        if pid <= 0
            || random.len() != 16
            || !random.bytes().all(|b| b.is_ascii_hexdigit())
            || pid as u32 == std::process::id()
        {
            continue;
        }
        // SAFETY: signal 0 sends nothing; it only asks whether the process
        // exists.
        let gone = unsafe { libc::kill(pid, 0) } == -1
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
        let is_file = e.file_type().is_ok_and(|t| t.is_file());
        if gone && is_file && std::fs::remove_file(e.path()).is_ok() {
            removed.push(e.path());
        }
    }
    removed.sort();
    removed
}

/// `OUT` with `suffix` appended (`OUT.unverified`).
fn with_suffix(out: &Path, suffix: &str) -> PathBuf {
    let mut s = out.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

/// The directory `OUT` is in (`.` for a bare name).
fn dir_of(out: &Path) -> PathBuf {
    match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Creates the temporary file: exclusively (never an existing file, nor
/// through a symbolic link), readable by its owner only.
fn create_temp(out: &Path) -> Result<(PathBuf, File), SaveError> {
    use rand_core::RngCore;
    let mut last = None;
    for _ in 0..8 {
        let path = temp_path(out, std::process::id(), rand_core::OsRng.next_u64());
        match durable::create_exclusive(&path) {
            Ok(f) => return Ok((path, f)),
            Err(e) if e.err.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e.into()),
        }
    }
    Err(last
        .unwrap_or_else(|| durable::IoError {
            path: temp_path(out, std::process::id(), 0),
            err: std::io::Error::from(std::io::ErrorKind::AlreadyExists),
        })
        .into())
}

fn place_no_replace(temp: &Path, to: &Path) -> Result<bool, SaveError> {
    Ok(durable::place_no_replace(temp, to)?)
}

fn sync_dir(dir: &Path) -> Result<(), SaveError> {
    Ok(durable::sync_path(dir)?)
}

/// Removes the part file unless disarmed.
struct PartGuard {
    path: PathBuf,
    armed: bool,
}

impl Drop for PartGuard {
    fn drop(&mut self) {
        if self.armed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// sha256 of a stream minus its last 32 bytes, which it keeps aside.
struct LaggingDigest {
    ctx: ring::digest::Context,
    tail: Vec<u8>,
}

impl LaggingDigest {
    fn new() -> LaggingDigest {
        LaggingDigest {
            ctx: ring::digest::Context::new(&ring::digest::SHA256),
            tail: Vec::with_capacity(2 * DIGEST_LEN),
        }
    }

    fn update(&mut self, blob: &[u8]) {
        let n = self.tail.len() + blob.len();
        if n <= DIGEST_LEN {
            self.tail.extend_from_slice(blob);
            return;
        }
        let hash_n = n - DIGEST_LEN;
        if hash_n <= self.tail.len() {
            self.ctx.update(&self.tail[..hash_n]);
            self.tail.drain(..hash_n);
            self.tail.extend_from_slice(blob);
        } else {
            self.ctx.update(&self.tail);
            let k = hash_n - self.tail.len();
            self.ctx.update(&blob[..k]);
            self.tail.clear();
            self.tail.extend_from_slice(&blob[k..]);
        }
    }

    /// (digest of all but the last 32 bytes, those 32 bytes) once 32 came.
    fn finish(self) -> Option<(Vec<u8>, Vec<u8>)> {
        (self.tail.len() == DIGEST_LEN).then(|| (self.ctx.finish().as_ref().to_vec(), self.tail))
    }
}

impl From<durable::IoError> for SaveError {
    fn from(e: durable::IoError) -> SaveError {
        SaveError::Io {
            path: e.path,
            source: e.err,
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SaveError + '_ {
    move |source| SaveError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Streams a snapshot from `m` into `out`. `progress(received, expected
/// total)` is called after each chunk. Each chunk must come within the
/// command timeout (an idle stream is an error, a long one is not).
pub fn save(
    live: &Live,
    m: &Member,
    out: &Path,
    opts: SaveOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Saved, SaveError> {
    if !opts.force && std::fs::symlink_metadata(out).is_ok() {
        return Err(SaveError::Exists(out.to_path_buf()));
    }
    let started = Instant::now();
    let (part, file) = create_temp(out)?;
    let mut guard = PartGuard {
        path: part.clone(),
        armed: true,
    };
    let mut w = std::io::BufWriter::with_capacity(4 << 20, file);
    let got = receive(
        live,
        m,
        &mut |blob| w.write_all(blob).map_err(io(&part)),
        progress,
    )?;
    let received = got.received;
    let actual = got.db_sha256;
    let whole = got.whole;
    let file = w.into_inner().map_err(|e| io(&part)(e.into_error()))?;
    file.sync_all().map_err(io(&part))?;
    drop(file);
    let verify = if opts.verify {
        let f = crate::input::SnapshotFile::open(&part).map_err(|e| SaveError::Io {
            path: part.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
        let mut report = crate::verify::verify(&f);
        report.file = out.display().to_string();
        Some(report)
    } else {
        None
    };
    let dir = dir_of(out);
    let mut saved = Saved {
        path: out.to_path_buf(),
        bytes: received,
        revision: m.revision(),
        elapsed: started.elapsed(),
        sha256: crate::verify::hex(&whole),
        db_sha256: crate::verify::hex(&actual),
        verify,
        replaced: false,
    };
    match place(&part, out, opts.force, saved.verified_or_unchecked())? {
        Placed::Out { replaced } => saved.replaced = replaced,
        Placed::Aside(p) => saved.path = p,
    }
    guard.armed = false;
    sync_dir(&dir)?;
    Ok(saved)
}

/// A stream received whole, its digest checked.
struct Received {
    /// Bytes received (the db and the 32-byte digest).
    received: u64,
    /// sha256 of the db: the server's trailer, checked.
    db_sha256: Vec<u8>,
    /// sha256 of everything received.
    whole: Vec<u8>,
}

/// Receives the snapshot stream of `m`, each chunk handed to `sink` as it
/// arrives, and checks its end: the size announced, and the server's sha256
/// trailer against the bytes. `progress(received, expected total)` after
/// each chunk; Ctrl-C is looked at between chunks.
fn receive(
    live: &Live,
    m: &Member,
    sink: &mut dyn FnMut(&[u8]) -> Result<(), SaveError>,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Received, SaveError> {
    let mut client = m.client.clone();
    let mut stream = live.unary(m, "Snapshot", async move { client.snapshot().await })?;
    let mut digest = LaggingDigest::new();
    let mut whole = ring::digest::Context::new(&ring::digest::SHA256);
    let mut received: u64 = 0;
    let mut remaining: u64 = 0;
    loop {
        let msg = live.unary(m, "Snapshot (next chunk)", stream.message())?;
        let Some(msg) = msg else { break };
        let blob = msg.blob();
        sink(blob)?;
        digest.update(blob);
        whole.update(blob);
        received += blob.len() as u64;
        remaining = msg.remaining_bytes();
        progress(received, received + remaining);
        crate::interrupt::check()?;
    }
    if remaining != 0 {
        return Err(SaveError::Truncated {
            endpoint: m.endpoint.clone(),
            received,
            remaining,
        });
    }
    let Some((actual, expected)) = digest.finish() else {
        return Err(SaveError::TooShort {
            endpoint: m.endpoint.clone(),
            received,
        });
    };
    if actual != expected {
        return Err(SaveError::Digest {
            endpoint: m.endpoint.clone(),
            received,
            expected: crate::verify::hex(&expected),
            actual: crate::verify::hex(&actual),
        });
    }
    Ok(Received {
        received,
        db_sha256: actual,
        whole: whole.finish().as_ref().to_vec(),
    })
}

/// Streams a snapshot from `m` into the object at `url` (`s3://`, `gs://`,
/// `az://`): a multipart upload whose parts go up as the chunks arrive, and
/// which is completed only once the stream checked out: the size the server
/// announced, its sha256 trailer, and (with `opts.verify`) `verify` on a
/// private spool copy kept while the parts go up (in the remote spool
/// directory, removed at the end). Any failure before that, Ctrl-C
/// included, aborts the upload: no object appears under the name. An
/// existing object is refused unless `opts.force`. `Saved::path` is the
/// redacted URL.
pub fn save_to(
    live: &Live,
    m: &Member,
    url: &str,
    opts: SaveOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Saved, SaveError> {
    use crate::remote::upload;
    upload::check_url(url)?;
    let started = Instant::now();
    let rt = live.runtime();
    let _enter = rt.enter();
    let mut spool = if opts.verify {
        let dir = upload::spool_dir();
        let f = tempfile::Builder::new()
            .prefix(".etcdsnap-save-spool-")
            .tempfile_in(&dir)
            .map_err(io(&dir))?;
        Some(f)
    } else {
        None
    };
    let mut up = rt.block_on(upload::start(url, opts.force))?;
    let shown = up.url().to_string();
    let checked = {
        let mut spool_w = spool.as_mut().map(|f| {
            (
                f.path().to_path_buf(),
                std::io::BufWriter::with_capacity(4 << 20, f.as_file_mut()),
            )
        });
        let mut sink = |blob: &[u8]| -> Result<(), SaveError> {
            if let Some((path, w)) = spool_w.as_mut() {
                w.write_all(blob).map_err(io(path))?;
            }
            rt.block_on(up.write(blob))?;
            Ok(())
        };
        let got = receive(live, m, &mut sink, progress);
        let flushed = match spool_w.as_mut() {
            Some((path, w)) => w.flush().map_err(io(path)),
            None => Ok(()),
        };
        got.and_then(|g| flushed.map(|()| g))
    };
    let got = match checked {
        Ok(g) => g,
        Err(e) => return Err(abort(rt, up, e)),
    };
    let verify = match &spool {
        Some(f) => match crate::input::SnapshotFile::open(f.path()) {
            Ok(file) => {
                let mut report = crate::verify::verify(&file);
                report.file = shown.clone();
                Some(report)
            }
            Err(e) => {
                let e = SaveError::Io {
                    path: f.path().to_path_buf(),
                    source: std::io::Error::other(e.to_string()),
                };
                return Err(abort(rt, up, e));
            }
        },
        None => None,
    };
    drop(spool);
    let mut saved = Saved {
        path: PathBuf::from(&shown),
        bytes: got.received,
        revision: m.revision(),
        elapsed: started.elapsed(),
        sha256: crate::verify::hex(&got.whole),
        db_sha256: crate::verify::hex(&got.db_sha256),
        verify,
        replaced: false,
    };
    if !saved.verified_or_unchecked() {
        // Nothing is kept: the object is not made, and the spool is gone.
        rt.block_on(up.abort()).map_err(|e| SaveError::NotAborted {
            cause: Box::new(SaveError::VerifyFailed(shown.clone())),
            detail: e.to_string(),
        })?;
        return Ok(saved);
    }
    if let Err(e) = crate::interrupt::check() {
        return Err(abort(rt, up, e.into()));
    }
    let done = rt.block_on(up.finish())?;
    saved.replaced = done.replaced;
    saved.elapsed = started.elapsed();
    Ok(saved)
}

/// Aborts `up` after `cause`: the error to return (saying so when the
/// abort failed too and the parts stay).
fn abort(
    rt: &tokio::runtime::Runtime,
    up: crate::remote::upload::Upload,
    cause: SaveError,
) -> SaveError {
    match rt.block_on(up.abort()) {
        Ok(()) => cause,
        Err(e) => SaveError::NotAborted {
            cause: Box::new(cause),
            detail: e.to_string(),
        },
    }
}

/// Where [`place`] put the file.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Placed {
    /// At `OUT`; `replaced` when an old `OUT` was there.
    Out { replaced: bool },
    /// Kept for inspection after a failed verify (`OUT.unverified`, or the
    /// temporary name when that is taken); `OUT` untouched.
    Aside(PathBuf),
}

/// Gives the whole, fsynced temporary file `part` its final name: `OUT` when
/// `verified` (only if absent, or replacing it in one rename with `force`),
/// else a name beside it. On `Err` the file is still at `part`.
fn place(part: &Path, out: &Path, force: bool, verified: bool) -> Result<Placed, SaveError> {
    if !verified {
        let aside = with_suffix(out, ".unverified");
        return Ok(Placed::Aside(if place_no_replace(part, &aside)? {
            aside
        } else {
            part.to_path_buf()
        }));
    }
    if force {
        let replaced = std::fs::symlink_metadata(out).is_ok();
        std::fs::rename(part, out).map_err(io(out))?;
        return Ok(Placed::Out { replaced });
    }
    if place_no_replace(part, out)? {
        Ok(Placed::Out { replaced: false })
    } else {
        Err(SaveError::AppearedMeanwhile(out.to_path_buf()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lagging_digest_over_any_chunking() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 + 3) as u8).collect();
        let want = ring::digest::digest(&ring::digest::SHA256, &data[..data.len() - 32]);
        for chunk in [1, 5, 31, 32, 33, 64, 999, 1000] {
            let mut d = LaggingDigest::new();
            for c in data.chunks(chunk) {
                d.update(c);
            }
            let (got, tail) = d.finish().unwrap();
            assert_eq!(got, want.as_ref(), "chunk {chunk}");
            assert_eq!(tail, &data[data.len() - 32..], "chunk {chunk}");
        }
        let mut d = LaggingDigest::new();
        d.update(&data[..31]);
        assert!(d.finish().is_none());
    }

    #[test]
    fn place_never_replaces_out_unless_forced_and_verified() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("s.db");
        let new_part = |body: &[u8]| {
            let (p, mut f) = create_temp(&out).unwrap();
            f.write_all(body).unwrap();
            p
        };
        let read = |p: &Path| std::fs::read(p).unwrap();
        // Absent: placed.
        let p = new_part(b"one");
        assert_eq!(
            place(&p, &out, false, true).unwrap(),
            Placed::Out { replaced: false }
        );
        assert_eq!(read(&out), b"one");
        assert!(!p.exists());
        // Present, not forced: refused, both files left as they are.
        let p = new_part(b"two");
        assert!(matches!(
            place(&p, &out, false, true),
            Err(SaveError::AppearedMeanwhile(_))
        ));
        assert_eq!(read(&out), b"one");
        assert_eq!(read(&p), b"two");
        std::fs::remove_file(&p).unwrap();
        // Failed verify, even forced: OUT untouched, the file kept beside it;
        // a second one keeps its temporary name.
        let p = new_part(b"bad");
        let aside = dir.path().join("s.db.unverified");
        assert_eq!(
            place(&p, &out, true, false).unwrap(),
            Placed::Aside(aside.clone())
        );
        assert_eq!(read(&out), b"one");
        assert_eq!(read(&aside), b"bad");
        let p = new_part(b"bad again");
        assert_eq!(
            place(&p, &out, true, false).unwrap(),
            Placed::Aside(p.clone())
        );
        assert_eq!(read(&aside), b"bad");
        std::fs::remove_file(&p).unwrap();
        // Forced and verified: replaced in one rename.
        let p = new_part(b"three");
        assert_eq!(
            place(&p, &out, true, true).unwrap(),
            Placed::Out { replaced: true }
        );
        assert_eq!(read(&out), b"three");
        assert_eq!(own_temps(&out), Vec::<PathBuf>::new());
    }

    #[test]
    fn stale_temps_of_dead_processes_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("s.db");
        // A process that has exited (and been reaped): its pid is free.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let stale = temp_path(&out, dead, 1);
        std::fs::write(&stale, b"x").unwrap();
        let (mine, _f) = create_temp(&out).unwrap();
        let alive = temp_path(&out, 1, 2);
        std::fs::write(&alive, b"x").unwrap();
        let odd = dir
            .path()
            .join(format!("{}{dead}-zz.part", temp_prefix(&out)));
        std::fs::write(&odd, b"x").unwrap();
        assert_eq!(remove_stale_temps(&out), vec![stale.clone()]);
        assert!(!stale.exists());
        assert!(mine.exists() && alive.exists() && odd.exists());
    }

    #[test]
    fn own_temps_are_this_process_only() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("s.db");
        let (mine, _f) = create_temp(&out).unwrap();
        let other = temp_path(&out, std::process::id().wrapping_add(1), 5);
        std::fs::write(&other, b"").unwrap();
        std::fs::write(dir.path().join("s.db.part"), b"").unwrap();
        assert_eq!(own_temps(&out), vec![mine.clone()]);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&mine).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn temp_path_is_hidden_next_to_out() {
        assert_eq!(
            temp_path(Path::new("/b/s.db"), 42, 0xab),
            PathBuf::from("/b/.s.db.etcdsnap-save-42-00000000000000ab.part")
        );
        assert_eq!(
            temp_path(Path::new("s.db"), 7, 1),
            PathBuf::from("./.s.db.etcdsnap-save-7-0000000000000001.part")
        );
        assert!(
            temp_path(Path::new("/b/s.db"), 1, 2)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&temp_prefix(Path::new("/b/s.db")))
        );
    }
}
