//! Finding a key's revisions for `get` and `history`: through a key index when
//! one is at hand, else by scanning the snapshot, leaving an index in the cache
//! for the next lookup.
//!
//! Where indexes live, first found first used:
//! 1. beside the snapshot, `SNAPSHOT.etcdsnap-index`, written only when asked
//!    (`etcdsnap index --beside`; it travels with the backup);
//! 2. in the user's cache, `$ETCDSNAP_CACHE_DIR`, else `$XDG_CACHE_HOME/etcdsnap`,
//!    else `~/.cache/etcdsnap`, named after the snapshot's identity, written
//!    by `etcdsnap index` and after any scan (each write is said on stderr);
//!    the newest [`CACHE_KEEP`] are kept.
//!
//! A damaged index, or one of another snapshot, is reported and passed over;
//! what an index says is checked against the snapshot before it is believed,
//! including that it omits no revision in the leaves a lookup reads and no
//! version in a key's history (`mvcc::index`), so the worst a bad index costs
//! is the scan.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};

use super::objects::write_atomic;
use super::{Outcome, SnapshotPath, out};
use crate::input::SnapshotFile;
use crate::mvcc::index::{self, Identity, KeyIndex};
use crate::mvcc::keyspace::{KeySpace, KeySpaceError, Record};

/// Index files kept in the cache directory.
pub const CACHE_KEEP: usize = 16;
const SUFFIX: &str = "etcdsnap-index";

/// How `get` and `history` may use key indexes.
#[derive(clap::Args, Clone)]
pub struct IndexOpts {
    /// Neither use nor write a key index: scan the snapshot. Without it, a
    /// scan leaves an index in $ETCDSNAP_CACHE_DIR (default
    /// $XDG_CACHE_HOME/etcdsnap or ~/.cache/etcdsnap) and says so on stderr
    #[arg(long)]
    pub no_index: bool,
}

/// The index file beside a snapshot (none for standard input).
pub fn sidecar_path(snapshot: &Path) -> Option<PathBuf> {
    if snapshot.as_os_str() == "-" {
        return None;
    }
    let mut s = snapshot.as_os_str().to_os_string();
    s.push(".");
    s.push(SUFFIX);
    Some(PathBuf::from(s))
}

/// The user's cache directory for indexes.
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

fn cache_path(identity: &Identity) -> Option<PathBuf> {
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

/// Where a lookup's answers come from.
enum Source {
    /// A key index that parsed and names this snapshot; `from` says where it
    /// was read (or that it was just made).
    Index { bytes: Vec<u8>, from: String },
    /// No usable index: every lookup reads every leaf.
    Scan,
}

/// Answers lookups for `get` and `history`: through the first usable index
/// (beside the snapshot, then in the cache), else through one made by a scan
/// (then cached by [`Finder::save_index`]), else by scanning. An index whose
/// answer does not hold up against the snapshot (`KeySpace::whole_records_at`) is
/// reported and passed over for the next source; the same lookup is retried.
pub struct Finder<'s, 'k, 'd, 'a> {
    file: &'s SnapshotFile,
    ks: &'k KeySpace<'d, 'a>,
    identity: Option<Identity>,
    candidates: std::collections::VecDeque<PathBuf>,
    built: bool,
    source: Source,
    pending: Option<(PathBuf, Vec<u8>)>,
}

impl<'s, 'k, 'd, 'a> Finder<'s, 'k, 'd, 'a> {
    pub fn new(
        file: &'s SnapshotFile,
        ks: &'k KeySpace<'d, 'a>,
        opts: &IndexOpts,
    ) -> anyhow::Result<Finder<'s, 'k, 'd, 'a>> {
        let mut f = Finder {
            file,
            ks,
            identity: None,
            candidates: Default::default(),
            built: true,
            source: Source::Scan,
            pending: None,
        };
        if opts.no_index {
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

    /// The next usable source after the current one failed (or at the start).
    fn next_source(&mut self) -> anyhow::Result<Source> {
        let Some(identity) = self.identity.clone() else {
            return Ok(Source::Scan);
        };
        while let Some(path) = self.candidates.pop_front() {
            let bytes = match std::fs::read(&path) {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    say!("etcdsnap: note: {}: {e}; not used", path.display());
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
                Ok(_) => say!(
                    "etcdsnap: note: {} was made from another snapshot; not used (`etcdsnap index` remakes it)",
                    path.display()
                ),
                Err(e) => say!("etcdsnap: note: {}: {e}; not used", path.display()),
            }
        }
        if self.built {
            return Ok(Source::Scan);
        }
        // No usable index: make one (a scan), and keep it for next time.
        self.built = true;
        self.file.advise_sequential();
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
                say!(
                    "etcdsnap: note: {}: no key index made: {p}; answered by a scan (`etcdsnap verify` checks the file)",
                    self.file.path().display()
                );
                Ok(Source::Scan)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The records of the selected keys, each key's oldest first.
    pub fn records(&mut self, select: Select<'_>) -> anyhow::Result<Vec<Record<'a>>> {
        loop {
            let failure = match &self.source {
                Source::Scan => {
                    self.file.advise_sequential();
                    return Ok(self.ks.collect(|kv| select.accepts(kv.key))?);
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
            say!("etcdsnap: note: {failure}; not used");
            self.source = self.next_source()?;
        }
    }

    /// Writes the index made on the way into the cache, and says so. Best
    /// effort: a cache that cannot be written only costs the next lookup a scan.
    pub fn save_index(self) {
        let Some((path, bytes)) = self.pending else {
            return;
        };
        let Some(dir) = path.parent() else {
            return;
        };
        let written = create_private_dir(dir)
            .map_err(anyhow::Error::from)
            .and_then(|()| write_atomic(&path, &bytes));
        match written {
            Ok(()) => {
                prune(dir);
                say!(
                    "etcdsnap: wrote a key index for the next lookups to {} ({} bytes; ETCDSNAP_CACHE_DIR moves the cache, --no-index writes none)",
                    path.display(),
                    bytes.len()
                );
            }
            Err(e) => say!(
                "etcdsnap: note: could not cache a key index at {}: {e:#}",
                path.display()
            ),
        }
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)
}

/// Keeps the newest [`CACHE_KEEP`] index files of the cache directory.
fn prune(dir: &Path) {
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

/// Opens a snapshot for `lookup`. With indexes allowed the mapping is advised
/// random before anything is read: an indexed lookup touches a few scattered
/// pages, and read-ahead around each would pull in megabytes of a file that is
/// not in the page cache. A scan switches back to sequential.
pub fn open_snapshot(path: &Path, opts: &IndexOpts) -> anyhow::Result<SnapshotFile> {
    let file = super::objects::open(path)?;
    if !opts.no_index {
        file.advise_random();
    }
    Ok(file)
}

/// Calls `show` with the records of the selected keys (each key's oldest
/// first), then caches the index the lookup made, if any: after the output, so
/// that caching never delays it. `show` may look up more keys.
pub fn lookup_then<'a, T>(
    file: &SnapshotFile,
    ks: &KeySpace<'_, 'a>,
    opts: &IndexOpts,
    select: Select<'_>,
    show: impl FnOnce(&[Record<'a>], &mut Finder<'_, '_, '_, 'a>) -> T,
) -> anyhow::Result<T> {
    let mut finder = Finder::new(file, ks, opts)?;
    let records = finder.records(select)?;
    let shown = show(&records, &mut finder);
    finder.save_index();
    Ok(shown)
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

/// Write a key index of a snapshot, so that `get` and `history` find a key
/// without scanning the file
#[derive(clap::Args)]
#[command(
    long_about = "Write a key index of a snapshot, so that `get` and `history` find a key without scanning \
the file. etcd stores revisions in revision order, so without an index every lookup reads the start of every \
stored value; with one it reads a few pages. By default the index goes into the user cache \
($ETCDSNAP_CACHE_DIR, else $XDG_CACHE_HOME/etcdsnap, else ~/.cache/etcdsnap), where `get` and `history` \
also leave one after a scan; --beside writes SNAPSHOT.etcdsnap-index next to the snapshot instead (it travels \
with the backup), -o anywhere. The index is bound to the snapshot's content, and what it says is checked \
against the snapshot before use: a lying or stale index is reported and the lookup scans.",
    after_help = "Examples:\n  etcdsnap index snapshot.db                # into the cache\n  etcdsnap index snapshot.db --beside       # snapshot.db.etcdsnap-index\n  etcdsnap index snapshot.db.zst -o /backups/index/snapshot.etcdsnap-index\n\nEnvironment:\n  ETCDSNAP_CACHE_DIR  the cache directory"
)]
pub struct Args {
    /// Snapshot file (`-` for standard input; zstd/gzip/zip are detected).
    /// Compressed input is inflated, and standard input copied, into an
    /// unnamed temporary file in $TMPDIR (else /tmp); inflation stops where the
    /// db ends
    snapshot: SnapshotPath,
    /// Where to write the index (default: the cache directory)
    #[arg(short, long, conflicts_with = "beside")]
    output: Option<PathBuf>,
    /// Write SNAPSHOT.etcdsnap-index beside the snapshot
    #[arg(long)]
    beside: bool,
    /// Replace an existing file that is not a key index
    #[arg(long)]
    force: bool,
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    let start = Instant::now();
    if args.beside && sidecar_path(&args.snapshot).is_none() {
        bail!("reading standard input: --beside has no file to write beside; use -o FILE");
    }
    let file = super::objects::open(&args.snapshot)?;
    let db = super::objects::db(&file)?;
    let ks = KeySpace::open(&db)?;
    let identity = Identity::of(&ks, file.trailer())?;
    let target = match (&args.output, args.beside) {
        (Some(p), _) => p.clone(),
        (None, true) => sidecar_path(&args.snapshot).unwrap_or_default(),
        (None, false) => match cache_path(&identity) {
            Some(p) => p,
            None => bail!("no cache directory (set ETCDSNAP_CACHE_DIR or HOME), or use -o FILE"),
        },
    };
    if target.exists() && !args.force {
        let is_index = std::fs::read(&target)
            .map(|b| b.starts_with(index::MAGIC))
            .unwrap_or(false);
        if !is_index {
            bail!(
                "{} exists and is not a key index: add --force to replace it",
                target.display()
            );
        }
    }
    let bytes = index::build(&ks, &identity)?;
    let idx = KeyIndex::parse(&bytes).context("the key index just made does not parse")?;
    let (keys, entries) = (idx.key_count(), idx.entry_count());
    if args.output.is_none()
        && !args.beside
        && let Some(dir) = target.parent()
    {
        create_private_dir(dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    }
    write_atomic(&target, &bytes)?;
    if args.output.is_none()
        && !args.beside
        && let Some(dir) = target.parent()
    {
        prune(dir);
    }
    out(&format!(
        "{}: {keys} keys, {entries} revisions, {} bytes, in {:.2} s\n",
        crate::report::escape_controls(&target.display().to_string()),
        bytes.len(),
        start.elapsed().as_secs_f64()
    ))?;
    Ok(Outcome::Ok)
}
