//! Part of a remote object, read by ranges: a lookup (`get`, `history`)
//! with a key index needs the meta pages, a few tree pages and the leaves
//! that hold its key, not the whole file.
//!
//! The object is pinned at open (a HEAD: size, ETag, version) and copied
//! into a sparse private spool file of its size (created exclusively, 0600,
//! its name removed at once), so the snapshot is opened and mapped as a
//! local file is. Only the ranges asked for ([`Ranged::fetch`]) are read,
//! each request conditional on the pinned ETag (or version): an object
//! replaced meanwhile is refused. Everything else of the copy is zeroes,
//! which the reader never takes for a page (a page names its own id).
//! Requests and bytes are counted and capped ([`MAX_REQUESTS`],
//! [`MAX_BYTES`]): a lookup that would read much of the object is refused,
//! so that the caller reads it whole instead.

use std::collections::BTreeSet;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Mutex;

use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt};

use super::fetch::{RemoteError, Target, build_store, classify, load_ca, options, parse};
use super::redact;

/// Most range requests one lookup may make before it is better to read the
/// object whole.
pub const MAX_REQUESTS: u64 = 64;
/// Most bytes one lookup may read by ranges.
pub const MAX_BYTES: u64 = 32 << 20;
/// Most ranges a prefetch of known pages ([`Ranged::prefetch_pages`]) may
/// read — a listing of a namespace's keys needs one leaf per key or so —
/// [`PREFETCH_IN_FLIGHT`] at a time. They count apart from
/// [`MAX_REQUESTS`] (the pages a lookup finds on its way), and their bytes
/// with the rest against [`MAX_BYTES`].
pub const MAX_PREFETCH_REQUESTS: u64 = 2048;
/// Range requests of a prefetch under way at once.
pub const PREFETCH_IN_FLIGHT: usize = 16;

/// The head of the object read at open: the meta pages of any page size up
/// to 8 KiB, and the first bytes a compressed file starts with.
const HEAD_BYTES: u64 = 16 << 10;

/// A remote object read by ranges into a sparse local copy.
pub struct Ranged {
    shown: String,
    store: Box<dyn ObjectStore>,
    location: ObjectPath,
    runtime: tokio::runtime::Runtime,
    file: File,
    size: u64,
    etag: Option<String>,
    version: Option<String>,
    modified: std::time::SystemTime,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Pages read, of `page_size` bytes.
    pages: BTreeSet<u64>,
    page_size: u64,
    requests: u64,
    /// Of `requests`, those of prefetches.
    prefetched: u64,
    bytes: u64,
}

/// Requests made and bytes read, for `-v` and the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Requests (the HEAD included).
    pub requests: u64,
    /// Bytes read.
    pub bytes: u64,
}

impl Ranged {
    /// Pins the object at `url` and reads its head and its last 32 bytes
    /// (where `snapshot save` puts the sha256 trailer). HTTP(S) URLs are
    /// refused here (their servers need not honour ranges or ETags): the
    /// caller reads them whole.
    pub fn open(url: &str) -> Result<Ranged, RemoteError> {
        let shown = redact(url);
        let opts = options();
        let target = parse(url)?;
        if matches!(target, Target::Http { .. }) {
            return Err(RemoteError::BadUrl {
                url: shown,
                detail: "ranges are read from buckets only".into(),
            });
        }
        let _ = rustls::crypto::ring::default_provider().install_default();
        load_ca(&opts, &shown)?;
        let (store, location) = build_store(&target, &opts, &shown)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| RemoteError::Transfer {
                url: shown.clone(),
                detail: format!("cannot start the I/O runtime: {e}"),
            })?;
        let meta = runtime
            .block_on(store.head(&location))
            .map_err(|e| classify(e, &shown))?;
        let dir = opts.spool_dir.clone().unwrap_or_else(std::env::temp_dir);
        let spool_err = |source| RemoteError::Spool {
            url: shown.clone(),
            dir: dir.clone(),
            source,
        };
        let spool = tempfile::Builder::new()
            .prefix(".etcdsnap-spool-")
            .tempfile_in(&dir)
            .map_err(spool_err)?;
        let (file, name) = spool.into_parts();
        drop(name);
        file.set_len(meta.size).map_err(spool_err)?;
        let r = Ranged {
            shown,
            store,
            location,
            runtime,
            file,
            size: meta.size,
            etag: meta.e_tag,
            version: meta.version,
            modified: std::time::SystemTime::from(meta.last_modified),
            state: Mutex::new(State {
                requests: 1,
                ..State::default()
            }),
        };
        r.fetch(0, HEAD_BYTES.min(r.size))?;
        if r.size > HEAD_BYTES + 32 {
            r.fetch(r.size - 32, r.size)?;
        }
        Ok(r)
    }

    /// The spool file (sparse: only what was fetched is there).
    pub fn file(&self) -> &File {
        &self.file
    }

    /// The URL as shown (redacted).
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// The object's modification time, as the store says.
    pub fn modified(&self) -> std::time::SystemTime {
        self.modified
    }

    /// The object's size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Requests made and bytes read so far.
    pub fn counts(&self) -> Counts {
        let s = self.lock();
        Counts {
            requests: s.requests,
            bytes: s.bytes,
        }
    }

    /// Says (with `-v`) how much of the object was read.
    pub fn tell_counts(&self) {
        let c = self.counts();
        if let Some(notice) = options().notice {
            notice(&format!(
                "{}: read by ranges: {} requests, {} of {} bytes",
                self.shown, c.requests, c.bytes, self.size
            ));
        }
    }

    /// The page size the caller reads with: [`Ranged::ensure_pages`] deals
    /// in pages of it.
    pub fn set_page_size(&self, page_size: u64) {
        self.lock().page_size = page_size.max(1);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic elsewhere while holding it leaves counts only.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads bytes `start..end` of the object into the copy, unless the
    /// budget is spent.
    pub fn fetch(&self, start: u64, end: u64) -> Result<(), RemoteError> {
        let end = end.min(self.size);
        if start >= end {
            return Ok(());
        }
        {
            let mut s = self.lock();
            if s.requests - s.prefetched >= MAX_REQUESTS || s.bytes + (end - start) > MAX_BYTES {
                return Err(RemoteError::Transfer {
                    url: self.shown.clone(),
                    detail: format!(
                        "more than {MAX_REQUESTS} range requests or {} MiB would be read: read it whole",
                        MAX_BYTES >> 20
                    ),
                });
            }
            s.requests += 1;
            s.bytes += end - start;
        }
        let pin = (self.etag.clone(), self.version.clone());
        let bytes = pinned_range(&self.runtime, &*self.store, &self.location, pin, start..end);
        self.store_range(start..end, bytes)
    }

    /// Writes the answer to the range request `range` into the copy.
    fn store_range(
        &self,
        range: std::ops::Range<u64>,
        got: object_store::Result<impl AsRef<[u8]>>,
    ) -> Result<(), RemoteError> {
        let got = got.map_err(|e| classify(e, &self.shown))?;
        let bytes = got.as_ref();
        if bytes.len() as u64 != range.end - range.start {
            return Err(RemoteError::Truncated {
                url: self.shown.clone(),
                got: bytes.len() as u64,
                expected: range.end - range.start,
                cause: Some(format!("range {}..{}", range.start, range.end)),
            });
        }
        self.file
            .write_all_at(bytes, range.start)
            .map_err(|source| RemoteError::Spool {
                url: self.shown.clone(),
                dir: PathBuf::new(),
                source,
            })
    }

    /// Makes `pages` present (a lookup's leaves, known from a key index),
    /// as few ranges as it takes — pages at most `gap` apart are read as
    /// one range, the pages between them with it — [`PREFETCH_IN_FLIGHT`]
    /// requests at a time. Refused whole, before any request, past
    /// [`MAX_PREFETCH_REQUESTS`] ranges or the bytes left of [`MAX_BYTES`].
    pub fn prefetch_pages(&self, pages: &[u64], gap: u64) -> Result<(), RemoteError> {
        use futures_util::{StreamExt, TryStreamExt};
        let ranges = {
            let mut s = self.lock();
            let ps = if s.page_size == 0 { 4096 } else { s.page_size };
            let mut missing: Vec<u64> = pages
                .iter()
                .copied()
                .filter(|p| !s.pages.contains(p) && (p + 1) * ps > HEAD_BYTES)
                .collect();
            missing.sort_unstable();
            missing.dedup();
            let mut runs: Vec<(u64, u64)> = Vec::new();
            for p in missing {
                match runs.last_mut() {
                    Some((_, last)) if p - *last <= gap + 1 => *last = p,
                    _ => runs.push((p, p)),
                }
            }
            let bytes: u64 = runs.iter().map(|(a, b)| (b - a + 1) * ps).sum();
            if runs.len() as u64 > MAX_PREFETCH_REQUESTS || s.bytes + bytes > MAX_BYTES {
                return Err(RemoteError::Transfer {
                    url: self.shown.clone(),
                    detail: format!(
                        "{} ranges, {bytes} bytes: more than a read by ranges may take; read it whole",
                        runs.len()
                    ),
                });
            }
            s.requests += runs.len() as u64;
            s.prefetched += runs.len() as u64;
            s.bytes += bytes;
            runs.iter()
                .map(|(a, b)| {
                    (
                        (a * ps).min(self.size)..((b + 1) * ps).min(self.size),
                        *a..=*b,
                    )
                })
                .filter(|(range, _)| !range.is_empty())
                .collect::<Vec<_>>()
        };
        let pin = (self.etag.clone(), self.version.clone());
        let (store, location) = (&*self.store, &self.location);
        self.runtime.block_on(
            futures_util::stream::iter(ranges)
                .map(|(range, run)| {
                    let pin = pin.clone();
                    async move {
                        let got = pinned_range_async(store, location, pin, range.clone()).await;
                        self.store_range(range, got)?;
                        self.lock().pages.extend(run);
                        Ok::<(), RemoteError>(())
                    }
                })
                .buffer_unordered(PREFETCH_IN_FLIGHT)
                .try_collect::<Vec<()>>(),
        )?;
        Ok(())
    }

    /// Makes pages `first .. first + count` present, reading the ones not
    /// read yet as few ranges.
    pub fn ensure_pages(&self, first: u64, count: u64) -> Result<(), RemoteError> {
        let (ps, missing) = {
            let s = self.lock();
            let ps = if s.page_size == 0 { 4096 } else { s.page_size };
            let missing: Vec<u64> = (first..first.saturating_add(count))
                .filter(|p| !s.pages.contains(p) && (p + 1) * ps > HEAD_BYTES)
                .collect();
            (ps, missing)
        };
        let mut i = 0;
        while i < missing.len() {
            let mut j = i + 1;
            while j < missing.len() && missing[j] == missing[j - 1] + 1 {
                j += 1;
            }
            self.fetch(missing[i] * ps, (missing[j - 1] + 1) * ps)?;
            self.lock().pages.extend(missing[i..j].iter().copied());
            i = j;
        }
        Ok(())
    }
}

/// Bytes `range` of the object at `location`, by a Range request
/// conditional on its pin (ETag, version): a replaced object is refused by
/// the server. Shared by the lookups read by ranges and the pages a walk
/// reads ahead of a transfer (`super::growing`).
pub(super) fn pinned_range(
    runtime: &tokio::runtime::Runtime,
    store: &dyn ObjectStore,
    location: &ObjectPath,
    (etag, version): (Option<String>, Option<String>),
    range: std::ops::Range<u64>,
) -> object_store::Result<impl AsRef<[u8]> + use<>> {
    runtime.block_on(pinned_range_async(store, location, (etag, version), range))
}

/// [`pinned_range`], on the caller's runtime.
async fn pinned_range_async(
    store: &dyn ObjectStore,
    location: &ObjectPath,
    (etag, version): (Option<String>, Option<String>),
    range: std::ops::Range<u64>,
) -> object_store::Result<bytes::Bytes> {
    let opts = GetOptions {
        range: Some(GetRange::Bounded(range)),
        if_match: etag,
        version,
        ..GetOptions::default()
    };
    store.get_opts(location, opts).await?.bytes().await
}
