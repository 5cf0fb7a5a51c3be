//! `save`: a snapshot streamed from one member (Maintenance.Snapshot) into a
//! file that is either whole and checked, or not there at all.
//!
//! The server ends its stream with the sha256 of everything it sent before
//! (32 bytes). The bytes go to `OUT.part` as they arrive (the file keeps the
//! digest, as `etcdctl snapshot save` writes it); the digest is computed on
//! the way, 32 bytes behind, and compared with the trailer at the end. Only
//! then is the file fsynced, renamed to `OUT` and its directory fsynced. Any
//! failure removes `OUT.part`.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::connect::{Live, LiveError, Member};

const DIGEST_LEN: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    #[error(transparent)]
    Live(#[from] LiveError),
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{} already exists; remove it, choose another name, or pass --force to replace it",
        .0.display()
    )]
    Exists(PathBuf),
    #[error(
        "{endpoint}: the stream ended after {received} bytes while the server said {remaining} more \
         were to come"
    )]
    Truncated {
        endpoint: String,
        received: u64,
        remaining: u64,
    },
    #[error(
        "{endpoint}: the stream ended after {received} bytes, too short to hold a snapshot and its \
         sha256"
    )]
    TooShort { endpoint: String, received: u64 },
    #[error(
        "{endpoint}: sha256 mismatch: the server's trailer says {expected}, the {received} bytes \
         received hash to {actual}; the snapshot was damaged in transit or by the server"
    )]
    Digest {
        endpoint: String,
        received: u64,
        expected: String,
        actual: String,
    },
}

impl SaveError {
    /// A digest that does not match: the data is not sound (a check failed),
    /// as opposed to a transfer or I/O failure.
    pub fn is_check_failure(&self) -> bool {
        matches!(self, SaveError::Digest { .. })
    }
}

/// What was saved.
#[derive(Debug, Clone)]
pub struct Saved {
    pub path: PathBuf,
    /// Bytes written (the db and the 32-byte digest).
    pub bytes: u64,
    /// The member's revision when the stream began (its Status header).
    pub revision: i64,
    pub elapsed: Duration,
    pub sha256: String,
}

/// `OUT.part`, next to `OUT`.
pub fn part_path(out: &Path) -> PathBuf {
    let mut s = out.as_os_str().to_os_string();
    s.push(".part");
    PathBuf::from(s)
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
    force: bool,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Saved, SaveError> {
    if !force && std::fs::symlink_metadata(out).is_ok() {
        return Err(SaveError::Exists(out.to_path_buf()));
    }
    let part = part_path(out);
    let started = Instant::now();
    let file = File::create(&part).map_err(io(&part))?;
    let mut guard = PartGuard {
        path: part.clone(),
        armed: true,
    };
    let mut w = std::io::BufWriter::with_capacity(4 << 20, file);
    let mut client = m.client.clone();
    let mut stream = live.unary(m, "Snapshot", async move { client.snapshot().await })?;
    let mut digest = LaggingDigest::new();
    let mut received: u64 = 0;
    let mut remaining: u64 = 0;
    loop {
        let msg = live.unary(m, "Snapshot (next chunk)", stream.message())?;
        let Some(msg) = msg else { break };
        let blob = msg.blob();
        w.write_all(blob).map_err(io(&part))?;
        digest.update(blob);
        received += blob.len() as u64;
        remaining = msg.remaining_bytes();
        progress(received, received + remaining);
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
    let file = w.into_inner().map_err(|e| io(&part)(e.into_error()))?;
    file.sync_all().map_err(io(&part))?;
    drop(file);
    std::fs::rename(&part, out).map_err(io(out))?;
    guard.armed = false;
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(io(&dir))?;
    Ok(Saved {
        path: out.to_path_buf(),
        bytes: received,
        revision: m.revision(),
        elapsed: started.elapsed(),
        sha256: crate::verify::hex(&actual),
    })
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
    fn part_path_appends() {
        assert_eq!(
            part_path(Path::new("/b/s.db")),
            PathBuf::from("/b/s.db.part")
        );
    }
}
