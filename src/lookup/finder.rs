//! Where a lookup's records come from, and the key index cache policy: an
//! index beside the snapshot (`SNAPSHOT.etcdsnap-index`), then one in the
//! user's cache directory, else one made by a scan of the snapshot and then
//! cached (the newest [`CACHE_KEEP`] are kept), else the scan itself.
//!
//! A damaged index, or one of another snapshot, is reported and passed over;
//! what an index says is checked against the snapshot before it is believed,
//! including that it omits no revision in the leaves a lookup reads and no
//! version in a key's history (`mvcc::index`), so the worst a bad index costs
//! is the scan. What happens on the way is told through an [`IndexEvent`]
//! sink: the caller says it where it wants.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::durable::{self, IoError};
use crate::input::SnapshotFile;
use crate::mvcc::index::{self, Identity, IndexError, KeyIndex};
use crate::mvcc::keyspace::{KeySpace, KeySpaceError, Record};

/// Index files kept in the cache directory.
pub const CACHE_KEEP: usize = 16;
const SUFFIX: &str = "etcdsnap-index";

/// The index file beside a snapshot (none for standard input, `-`).
pub fn sidecar_path(snapshot: &Path) -> Option<PathBuf> {
    if snapshot.as_os_str() == "-" {
        return None;
    }
    let mut s = snapshot.as_os_str().to_os_string();
    s.push(".");
    s.push(SUFFIX);
    Some(PathBuf::from(s))
}

/// The user's cache directory for indexes: `$ETCDSNAP_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/etcdsnap`, else `~/.cache/etcdsnap`.
pub fn cache_dir() -> Option<PathBuf> {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var("ETCDSNAP_CACHE_DIR")
        .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("etcdsnap")))
        .or_else(|| var("HOME").map(|d| d.join(".cache").join("etcdsnap")))
}

/// The cache file of the snapshot with this identity (none without a cache
/// directory).
pub fn cache_path(identity: &Identity) -> Option<PathBuf> {
    cache_dir().map(|d| d.join(format!("{}.{SUFFIX}", identity.file_stem())))
}

/// Which keys a lookup wants.
pub enum Select<'w> {
    /// One key, exactly.
    Key(&'w [u8]),
    /// Every key the predicate accepts.
    Matching(&'w (dyn Fn(&[u8]) -> bool + Sync)),
}

impl Select<'_> {
    fn accepts(&self, key: &[u8]) -> bool {
        match self {
            Select::Key(k) => *k == key,
            Select::Matching(f) => f(key),
        }
    }
}

/// What a lookup did with key indexes on the way, for the user. Its
/// `Display` is the sentence (without the program's name).
#[derive(Debug, Clone)]
pub enum IndexEvent {
    /// An index file could not be read or parsed; passed over.
    Unusable {
        /// The index file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// An index file names another snapshot; passed over.
    OtherSnapshot {
        /// The index file.
        path: PathBuf,
    },
    /// The key bucket is damaged, so no index was made; the scan answers.
    NoIndexMade {
        /// The snapshot.
        snapshot: PathBuf,
        /// The damage.
        problem: String,
    },
    /// An index's answer did not hold up against the snapshot; passed over.
    Stale {
        /// Where the index came from, and what did not hold up.
        failure: String,
    },
    /// The index made by a scan was cached.
    Cached {
        /// The cache file.
        path: PathBuf,
        /// Its size.
        bytes: usize,
    },
    /// The index made by a scan could not be cached (only the next lookup
    /// pays: it scans).
    NotCached {
        /// The cache file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

impl fmt::Display for IndexEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IndexEvent::Unusable { path, reason } => {
                write!(f, "note: {}: {reason}; not used", path.display())
            }
            IndexEvent::OtherSnapshot { path } => write!(
                f,
                "note: {} was made from another snapshot; not used (`etcdsnap index` remakes it)",
                path.display()
            ),
            IndexEvent::NoIndexMade { snapshot, problem } => write!(
                f,
                "note: {}: no key index made: {problem}; answered by a scan (`etcdsnap verify` checks the file)",
                snapshot.display()
            ),
            IndexEvent::Stale { failure } => write!(f, "note: {failure}; not used"),
            IndexEvent::Cached { path, bytes } => write!(
                f,
                "wrote a key index for the next lookups to {} ({bytes} bytes; ETCDSNAP_CACHE_DIR moves the cache, --no-index writes none)",
                path.display()
            ),
            IndexEvent::NotCached { path, reason } => write!(
                f,
                "note: could not cache a key index at {}: {reason}",
                path.display()
            ),
        }
    }
}

/// Where a lookup's answers come from.
enum Source {
    /// A key index that parsed and names this snapshot; `from` says where it
    /// was read (or that it was just made).
    Index { bytes: Vec<u8>, from: String },
    /// No usable index: every lookup reads every leaf.
    Scan,
}

/// Answers lookups: through the first usable index (beside the snapshot,
/// then in the cache), else through one made by a scan (then cached by
/// [`Finder::save_index`]), else by scanning. An index whose answer does not
/// hold up against the snapshot (`KeySpace::whole_records_at`) is reported
/// and passed over for the next source; the same lookup is retried.
pub struct Finder<'s, 'k, 'd, 'a> {
    file: Option<&'s SnapshotFile>,
    ks: &'k KeySpace<'d, 'a>,
    notify: &'s dyn Fn(&IndexEvent),
    identity: Option<Identity>,
    candidates: std::collections::VecDeque<PathBuf>,
    built: bool,
    source: Source,
    pending: Option<(PathBuf, Vec<u8>)>,
}

impl<'s, 'k, 'd, 'a> Finder<'s, 'k, 'd, 'a> {
    /// A finder over `ks` (the keyspace of `file`); with `use_index` false it
    /// only scans and neither reads nor writes an index. What it does with
    /// indexes is told to `notify`.
    pub fn new(
        file: &'s SnapshotFile,
        ks: &'k KeySpace<'d, 'a>,
        use_index: bool,
        notify: &'s dyn Fn(&IndexEvent),
    ) -> Result<Finder<'s, 'k, 'd, 'a>, KeySpaceError> {
        let mut f = Finder {
            file: Some(file),
            ks,
            notify,
            identity: None,
            candidates: Default::default(),
            built: true,
            source: Source::Scan,
            pending: None,
        };
        if !use_index {
            return Ok(f);
        }
        let identity = Identity::of(ks, file.trailer())?;
        f.candidates = [sidecar_path(file.path()), cache_path(&identity)]
            .into_iter()
            .flatten()
            .collect();
        f.identity = Some(identity);
        f.built = false;
        f.source = f.next_source()?;
        Ok(f)
    }

    /// A finder that only scans `ks`, a keyspace with no file behind it
    /// (a salvaged view held in memory): no index is read or written.
    pub fn scanning(
        ks: &'k KeySpace<'d, 'a>,
        notify: &'s dyn Fn(&IndexEvent),
    ) -> Finder<'s, 'k, 'd, 'a> {
        Finder {
            file: None,
            ks,
            notify,
            identity: None,
            candidates: Default::default(),
            built: true,
            source: Source::Scan,
            pending: None,
        }
    }

    /// The next usable source after the current one failed (or at the start).
    fn next_source(&mut self) -> Result<Source, KeySpaceError> {
        let Some(identity) = self.identity.clone() else {
            return Ok(Source::Scan);
        };
        while let Some(path) = self.candidates.pop_front() {
            let bytes = match std::fs::read(&path) {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    (self.notify)(&IndexEvent::Unusable {
                        path,
                        reason: e.to_string(),
                    });
                    continue;
                }
            };
            match KeyIndex::parse(&bytes) {
                Ok(idx) if idx.identity() == identity.0 => {
                    return Ok(Source::Index {
                        bytes,
                        from: path.display().to_string(),
                    });
                }
                Ok(_) => (self.notify)(&IndexEvent::OtherSnapshot { path }),
                Err(e) => (self.notify)(&IndexEvent::Unusable {
                    path,
                    reason: e.to_string(),
                }),
            }
        }
        if self.built {
            return Ok(Source::Scan);
        }
        // No usable index: make one (a scan), and keep it for next time.
        self.built = true;
        let Some(file) = self.file else {
            return Ok(Source::Scan);
        };
        file.advise_sequential();
        match index::build(self.ks, &identity) {
            Ok(bytes) => {
                if KeyIndex::parse(&bytes).is_err() {
                    return Ok(Source::Scan);
                }
                self.pending = cache_path(&identity).map(|p| (p, bytes.clone()));
                Ok(Source::Index {
                    bytes,
                    from: "the key index just made".into(),
                })
            }
            // A damaged key bucket gets no index; the plain scan still answers
            // (and fails the same way if the damage is in what it reads).
            Err(KeySpaceError::Corrupt(p)) => {
                (self.notify)(&IndexEvent::NoIndexMade {
                    snapshot: file.path().to_path_buf(),
                    problem: p.to_string(),
                });
                Ok(Source::Scan)
            }
            Err(e) => Err(e),
        }
    }

    /// The records of the selected keys, each key's oldest first.
    pub fn records(&mut self, select: Select<'_>) -> Result<Vec<Record<'a>>, KeySpaceError> {
        loop {
            let failure = match &self.source {
                Source::Scan => {
                    if let Some(file) = self.file {
                        file.advise_sequential();
                    }
                    return self.ks.collect(|kv| select.accepts(kv.key));
                }
                Source::Index { bytes, from } => {
                    match KeyIndex::parse(bytes)
                        .map_err(|e| e.to_string())
                        .and_then(|idx| {
                            records_via(self.ks, &idx, &select).map_err(|e| e.to_string())
                        }) {
                        Ok(records) => return Ok(records),
                        Err(e) => format!("{from}: {e}"),
                    }
                }
            };
            (self.notify)(&IndexEvent::Stale { failure });
            self.source = self.next_source()?;
        }
    }

    /// The pages the index names for the selected keys' records, in no
    /// order; `None` when the lookup has no index to follow (it scans). A
    /// reader by ranges fetches them at once, coalesced, before
    /// [`Finder::records`] reads them one key at a time.
    pub fn index_pages(&self, select: &Select<'_>) -> Option<Vec<u64>> {
        let Source::Index { bytes, .. } = &self.source else {
            return None;
        };
        let idx = KeyIndex::parse(bytes).ok()?;
        let located: Vec<usize> = match select {
            Select::Key(k) => idx.find(k).into_iter().collect(),
            Select::Matching(f) => idx.keys().filter(|(_, k)| f(k)).map(|(i, _)| i).collect(),
        };
        Some(
            located
                .into_iter()
                .flat_map(|i| idx.locations(i).map(|l| l.pgid).collect::<Vec<_>>())
                .collect(),
        )
    }

    /// Writes the index made on the way into the cache, and tells so. Best
    /// effort: a cache that cannot be written only costs the next lookup a scan.
    pub fn save_index(self) {
        let Some((path, bytes)) = self.pending else {
            return;
        };
        let Some(dir) = path.parent() else {
            return;
        };
        let written = create_private_dir(dir)
            .map_err(|e| e.to_string())
            .and_then(|()| durable::write_atomic(&path, &bytes).map_err(|e| e.to_string()));
        let event = match written {
            Ok(()) => {
                prune(dir);
                IndexEvent::Cached {
                    path,
                    bytes: bytes.len(),
                }
            }
            Err(reason) => IndexEvent::NotCached { path, reason },
        };
        (self.notify)(&event);
    }

    /// Calls `show` with the records of the selected keys (each key's oldest
    /// first), then caches the index the lookup made, if any: after `show`, so
    /// that caching never delays an output. `show` may look up more keys.
    pub fn lookup_then<T>(
        mut self,
        select: Select<'_>,
        show: impl FnOnce(&[Record<'a>], &mut Finder<'s, 'k, 'd, 'a>) -> T,
    ) -> Result<T, KeySpaceError> {
        let records = self.records(select)?;
        let shown = show(&records, &mut self);
        self.save_index();
        Ok(shown)
    }
}

/// Creates the cache directory (and its parents) with mode 0700.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)
}

/// Keeps the newest [`CACHE_KEEP`] index files of the cache directory.
pub fn prune(dir: &Path) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut files: Vec<(std::time::SystemTime, PathBuf)> = rd
        .filter_map(|e| {
            let e = e.ok()?;
            let p = e.path();
            let is_index = p.extension().is_some_and(|x| x == SUFFIX);
            let modified = e.metadata().ok()?.modified().ok()?;
            is_index.then_some((modified, p))
        })
        .collect();
    files.sort_by_key(|f| std::cmp::Reverse(f.0));
    for (_, p) in files.into_iter().skip(CACHE_KEEP) {
        let _ = std::fs::remove_file(p);
    }
}

fn records_via<'a>(
    ks: &KeySpace<'_, 'a>,
    idx: &KeyIndex<'_>,
    select: &Select<'_>,
) -> Result<Vec<Record<'a>>, index::StaleIndex> {
    match select {
        Select::Key(k) => match idx.find(k) {
            Some(i) => ks.whole_records_at(k, idx.locations(i)),
            None => Ok(Vec::new()),
        },
        Select::Matching(f) => {
            let mut all = Vec::new();
            for (i, key) in idx.keys().filter(|(_, k)| f(k)) {
                all.extend(ks.whole_records_at(key, idx.locations(i))?);
            }
            Ok(all)
        }
    }
}

/// Where `etcdsnap index` writes an index.
#[derive(Debug, Clone)]
pub enum IndexTarget {
    /// This file.
    Output(PathBuf),
    /// Beside the snapshot ([`sidecar_path`]).
    Beside,
    /// The cache directory ([`cache_path`]), which is then pruned.
    Cache,
}

/// An index written by [`write_index`].
#[derive(Debug, Clone)]
pub struct WrittenIndex {
    /// Where it was written.
    pub path: PathBuf,
    /// Keys it lists.
    pub keys: usize,
    /// Revisions it locates.
    pub entries: usize,
    /// Its size.
    pub bytes: usize,
}

/// Why [`write_index`] wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum WriteIndexError {
    /// `--beside` with standard input.
    #[error("reading standard input: --beside has no file to write beside; use -o FILE")]
    NoSidecar,
    /// Neither a cache directory nor an output file.
    #[error("no cache directory (set ETCDSNAP_CACHE_DIR or HOME), or use -o FILE")]
    NoCacheDir,
    /// The target exists, is not an index, and replacing it was not asked for.
    #[error("{} exists and is not a key index: add --force to replace it", .0.display())]
    NotAnIndex(PathBuf),
    /// The keyspace could not be read (damage or I/O).
    #[error("{0}")]
    KeySpace(#[from] KeySpaceError),
    /// The index just made does not parse back (a bug, not the input's fault).
    #[error("the key index just made does not parse")]
    Unparsable(#[source] IndexError),
    /// The cache directory could not be created.
    #[error("{}: cannot create", dir.display())]
    CreateDir {
        /// The directory.
        dir: PathBuf,
        /// Why.
        #[source]
        err: std::io::Error,
    },
    /// The index could not be written.
    #[error(transparent)]
    Write(#[from] IoError),
}

/// `etcdsnap index`: makes the key index of the snapshot behind `ks` and
/// writes it atomically to `target`; an existing file that is not an index is
/// replaced only with `force`.
pub fn write_index(
    file: &SnapshotFile,
    ks: &KeySpace<'_, '_>,
    target: &IndexTarget,
    force: bool,
) -> Result<WrittenIndex, WriteIndexError> {
    let identity = Identity::of(ks, file.trailer())?;
    let path = match target {
        IndexTarget::Output(p) => p.clone(),
        IndexTarget::Beside => sidecar_path(file.path()).ok_or(WriteIndexError::NoSidecar)?,
        IndexTarget::Cache => cache_path(&identity).ok_or(WriteIndexError::NoCacheDir)?,
    };
    if path.exists() && !force {
        let is_index = std::fs::read(&path)
            .map(|b| b.starts_with(index::MAGIC))
            .unwrap_or(false);
        if !is_index {
            return Err(WriteIndexError::NotAnIndex(path));
        }
    }
    let bytes = index::build(ks, &identity)?;
    let idx = KeyIndex::parse(&bytes).map_err(WriteIndexError::Unparsable)?;
    let (keys, entries) = (idx.key_count(), idx.entry_count());
    let cache_dir = match target {
        IndexTarget::Cache => path.parent(),
        _ => None,
    };
    if let Some(dir) = cache_dir {
        create_private_dir(dir).map_err(|err| WriteIndexError::CreateDir {
            dir: dir.to_path_buf(),
            err,
        })?;
    }
    durable::write_atomic(&path, &bytes)?;
    if let Some(dir) = cache_dir {
        prune(dir);
    }
    Ok(WrittenIndex {
        path,
        keys,
        entries,
        bytes: bytes.len(),
    })
}

/// Puts `bytes`, a key index found elsewhere (beside a snapshot in a
/// bucket), into the cache when it parses and is of the snapshot with
/// `identity`; what it says is still checked against the snapshot when a
/// lookup uses it. The cache file, or `None` when it was not taken.
pub fn adopt_index(bytes: &[u8], identity: &Identity) -> Option<PathBuf> {
    let idx = KeyIndex::parse(bytes).ok()?;
    if idx.identity() != identity.0 {
        return None;
    }
    let path = cache_path(identity)?;
    let dir = path.parent()?;
    create_private_dir(dir).ok()?;
    durable::write_atomic(&path, bytes).ok()?;
    prune(dir);
    Some(path)
}
