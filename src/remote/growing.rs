//! A remote object read while it streams in: `verify` of an object in a
//! bucket runs its structure checks beside the download instead of after
//! it, so the check costs little more than the transfer.
//!
//! The spool file is given the object's size before the first byte is
//! written and mapped whole; the spool writer moves a watermark as it
//! writes, and a reader asks [`Growing::reach`] for a byte range before it
//! looks at it. A range under the watermark is there; one just above it is
//! waited for; one far ahead of it (bbolt puts a tree's root pages near the
//! end of the file, and every walk starts there) is read at once by a range
//! request conditional on the ETag (or version) the GET was pinned to, and
//! written into its place in the spool, where the stream later writes the
//! same bytes again. Those ranges are few and small, and capped
//! ([`MAX_AHEAD_REQUESTS`], [`MAX_AHEAD_BYTES`]); past the cap, or when a
//! range request fails, the reader waits for the stream instead.
//!
//! What the reader saw of the ranges read ahead is checked against the
//! stream's own bytes when the transfer is done ([`Growing::ahead_agrees`]):
//! a reader's result is used only when it read exactly the object the
//! stream delivered and hashed. A transfer that stops wakes the reader with
//! an error, so nothing waits for bytes that will not come.

use std::os::unix::fs::FileExt;
use std::sync::{Condvar, Mutex, MutexGuard};

use object_store::ObjectStore;
use object_store::path::Path as ObjectPath;

use super::ranged::pinned_range;

/// A range further than this ahead of the stream is read by a range
/// request rather than waited for (at 1 GB/s the stream needs 64 ms to get
/// there; a range request, a round trip). `ETCDSNAP_READ_AHEAD_BEYOND`
/// (bytes) sets another distance: smaller for a link with short round
/// trips, larger for one with long ones.
pub const AHEAD: u64 = 64 << 20;

/// [`AHEAD`], or the distance `ETCDSNAP_READ_AHEAD_BEYOND` sets.
fn ahead_beyond() -> u64 {
    std::env::var("ETCDSNAP_READ_AHEAD_BEYOND")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(AHEAD)
}
/// Most range requests read ahead of the stream.
pub const MAX_AHEAD_REQUESTS: u64 = 64;
/// Most bytes read ahead of the stream.
pub const MAX_AHEAD_BYTES: u64 = 16 << 20;

/// The object as it streams into its spool.
pub struct Growing {
    map: Option<memmap2::Mmap>,
    size: u64,
    state: Mutex<State>,
    moved: Condvar,
    ahead: Option<Ahead>,
    beyond: u64,
}

/// What reads ranges ahead of the stream: its own client and runtime (the
/// stream's are busy on another thread), and the pin.
pub(super) struct Ahead {
    pub(super) store: Box<dyn ObjectStore>,
    pub(super) location: ObjectPath,
    pub(super) runtime: Option<tokio::runtime::Runtime>,
    pub(super) file: std::fs::File,
    pub(super) etag: Option<String>,
    pub(super) version: Option<String>,
}

impl Drop for Ahead {
    fn drop(&mut self) {
        // The last holder may be the transfer's task: a runtime dropped
        // there must not block.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

#[derive(Default)]
struct State {
    /// Bytes the stream has written, from the start.
    written: u64,
    /// The transfer stopped (done or failed): no more bytes will come.
    ended: bool,
    /// Ranges read ahead: start, end and the digest of what was read.
    read_ahead: Vec<(u64, u64, [u8; 32])>,
    requests: u64,
    bytes: u64,
    /// A range request failed: wait for the stream from then on.
    ahead_off: bool,
}

impl Growing {
    /// The spool of `size` bytes mapped as `map`, nothing written yet;
    /// `ahead` reads ranges ahead of the stream (none for an HTTP URL,
    /// whose server need not honour ranges or ETags).
    pub(super) fn new(map: Option<memmap2::Mmap>, size: u64, ahead: Option<Ahead>) -> Growing {
        Growing {
            map,
            size,
            state: Mutex::new(State::default()),
            moved: Condvar::new(),
            ahead,
            beyond: ahead_beyond(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding it leaves plain numbers.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The object's bytes, all of its size; read only what
    /// [`Growing::reach`] made present (the rest reads as zeroes).
    pub fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }

    /// The object's size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Makes bytes `start..end` of the object readable: at once when the
    /// stream has written them, by a range request when they are far ahead
    /// of it, else when the stream gets there. An error when the transfer
    /// stopped before.
    pub fn reach(&self, start: u64, end: u64) -> Result<(), String> {
        let end = end.min(self.size);
        if start >= end {
            return Ok(());
        }
        let mut s = self.lock();
        loop {
            if s.written >= end || s.read_ahead.iter().any(|&(a, b, _)| a <= start && end <= b) {
                return Ok(());
            }
            if s.ended {
                return Err(format!(
                    "the transfer stopped at byte {} of {}",
                    s.written, self.size
                ));
            }
            let far = end.saturating_sub(s.written) > self.beyond;
            if far
                && !s.ahead_off
                && self.ahead.is_some()
                && s.requests < MAX_AHEAD_REQUESTS
                && s.bytes + (end - start) <= MAX_AHEAD_BYTES
            {
                s.requests += 1;
                s.bytes += end - start;
                drop(s);
                let got = self.read_ahead(start, end);
                s = self.lock();
                match got {
                    Some(digest) => {
                        s.read_ahead.push((start, end, digest));
                        return Ok(());
                    }
                    None => s.ahead_off = true,
                }
                continue;
            }
            s = self.moved.wait(s).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Reads `start..end` by a range request into the spool; the digest of
    /// the bytes, or `None` when it could not (the caller then waits).
    fn read_ahead(&self, start: u64, end: u64) -> Option<[u8; 32]> {
        let a = self.ahead.as_ref()?;
        let pin = (a.etag.clone(), a.version.clone());
        let got =
            pinned_range(a.runtime.as_ref()?, &*a.store, &a.location, pin, start..end).ok()?;
        let bytes = got.as_ref();
        if bytes.len() as u64 != end - start {
            return None;
        }
        a.file.write_all_at(bytes, start).ok()?;
        Some(digest(bytes))
    }

    /// The stream wrote `n` more bytes.
    pub(super) fn advance(&self, n: u64) {
        self.lock().written += n;
        self.moved.notify_all();
    }

    /// The transfer stopped, done or not: wakes every reader.
    pub(super) fn end(&self) {
        self.lock().ended = true;
        self.moved.notify_all();
    }

    /// Whether every range read ahead of the stream holds, now that the
    /// stream wrote over it, the bytes the reader saw (the object the
    /// stream delivered and hashed is the one that was read).
    pub fn ahead_agrees(&self) -> bool {
        let s = self.lock();
        s.read_ahead.iter().all(|&(a, b, d)| {
            self.bytes()
                .get(a as usize..b as usize)
                .is_some_and(|now| digest(now) == d)
        })
    }

    /// Range requests made ahead of the stream, and their bytes.
    pub fn ahead_counts(&self) -> (u64, u64) {
        let s = self.lock();
        (s.requests, s.bytes)
    }
}

/// Wakes the readers when the transfer stops, whichever way it does.
pub(super) struct EndOnDrop<'g>(pub(super) &'g Growing);

impl Drop for EndOnDrop<'_> {
    fn drop(&mut self) {
        self.0.end();
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}
