//! Finding a key's revisions for `get` and `history`: through a key index when
//! one is at hand, else by scanning the snapshot, leaving an index in the cache
//! for the next lookup.
//!
//! Where indexes live, first found first used:
//! 1. beside the snapshot, `SNAPSHOT.etcdsnap-index`, written on request by
//!    `etcdsnap index` (it travels with the backup);
//! 2. in the user's cache, `$ETCDSNAP_CACHE_DIR`, else `$XDG_CACHE_HOME/etcdsnap`,
//!    else `~/.cache/etcdsnap`, named after the snapshot's identity, written
//!    after any scan; the newest [`CACHE_KEEP`] are kept.
//!
//! A damaged index, or one of another snapshot, is reported and passed over;
//! what an index says is checked against the snapshot before it is believed
//! (`mvcc::index`), so the worst a bad index costs is the scan.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};

use super::objects::write_atomic;
use super::{Outcome, SnapshotPath, out};
use crate::input::SnapshotFile;
use crate::mvcc::index::{self, Identity, KeyIndex};
use crate::mvcc::keyspace::{KeySpace, KeySpaceError, Record};
use crate::problem::Problem;

/// Index files kept in the cache directory.
pub const CACHE_KEEP: usize = 16;
const SUFFIX: &str = "etcdsnap-index";

/// How `get` and `history` may use key indexes.
#[derive(clap::Args, Clone)]
pub struct IndexOpts {
    /// Neither use nor write a key index: scan the snapshot
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

/// Records found, and an index made on the way that is worth caching.
struct Found<'a> {
    records: Vec<Record<'a>>,
    pending: Option<(PathBuf, Vec<u8>)>,
}

impl Found<'_> {
    /// Writes the index made by the scan into the cache. Best effort: a cache
    /// that cannot be written only costs the next lookup a scan.
    fn save_index(self) {
        let Some((path, bytes)) = self.pending else {
            return;
        };
        if let Some(dir) = path.parent() {
            if create_private_dir(dir).is_err() {
                return;
            }
            if write_atomic(&path, &bytes).is_ok() {
                prune(dir);
            }
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

/// The records of the selected keys by reading every leaf (no index).
fn scan<'a>(
    file: &SnapshotFile,
    ks: &KeySpace<'_, 'a>,
    select: &Select<'_>,
) -> anyhow::Result<Found<'a>> {
    file.advise_sequential();
    Ok(Found {
        records: ks.collect(|kv| select.accepts(kv.key))?,
        pending: None,
    })
}

/// Calls `show` with the records of the selected keys (each key's oldest
/// first), then caches the index the lookup made, if any: after the output, so
/// that caching never delays it.
pub fn lookup_then<'a, T>(
    file: &SnapshotFile,
    ks: &KeySpace<'_, 'a>,
    opts: &IndexOpts,
    select: Select<'_>,
    show: impl FnOnce(&[Record<'a>]) -> T,
) -> anyhow::Result<T> {
    let found = lookup(file, ks, opts, select)?;
    let shown = show(&found.records);
    found.save_index();
    Ok(shown)
}

fn lookup<'a>(
    file: &SnapshotFile,
    ks: &KeySpace<'_, 'a>,
    opts: &IndexOpts,
    select: Select<'_>,
) -> anyhow::Result<Found<'a>> {
    if opts.no_index {
        return scan(file, ks, &select);
    }
    let identity = Identity::of(ks, file.trailer())?;
    let cached = cache_path(&identity);
    for path in [sidecar_path(file.path()), cached.clone()]
        .into_iter()
        .flatten()
    {
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                eprintln!("etcdsnap: note: {}: {e}; not used", path.display());
                continue;
            }
        };
        let idx = match KeyIndex::parse(&bytes) {
            Ok(i) => i,
            Err(e) => {
                eprintln!("etcdsnap: note: {}: {e}; not used", path.display());
                continue;
            }
        };
        if idx.identity() != identity.0 {
            eprintln!(
                "etcdsnap: note: {} was made from another snapshot; not used (`etcdsnap index` remakes it)",
                path.display()
            );
            continue;
        }
        match records_via(ks, &idx, &select) {
            Ok(records) => {
                return Ok(Found {
                    records,
                    pending: None,
                });
            }
            Err(e) => eprintln!("etcdsnap: note: {}: {e}; not used", path.display()),
        }
    }
    // No usable index: scan, and keep what the scan learnt.
    file.advise_sequential();
    let made = index::build(ks, &identity).and_then(|bytes| {
        let idx = KeyIndex::parse(&bytes)
            .map_err(|e| KeySpaceError::Corrupt(Problem::new(e.to_string())))?;
        let records = records_via(ks, &idx, &select)
            .map_err(|e| KeySpaceError::Corrupt(Problem::new(e.to_string())))?;
        Ok((records, bytes))
    });
    match made {
        Ok((records, bytes)) => Ok(Found {
            records,
            pending: cached.map(|p| (p, bytes)),
        }),
        // A damaged key bucket gets no index; the plain scan still answers
        // (and fails the same way if the damage is in what it reads).
        Err(KeySpaceError::Corrupt(p)) => {
            eprintln!(
                "etcdsnap: note: {}: no key index made: {p}; answered by a scan (`etcdsnap verify` checks the file)",
                file.path().display()
            );
            scan(file, ks, &select)
        }
        Err(e) => Err(e.into()),
    }
}

fn records_via<'a>(
    ks: &KeySpace<'_, 'a>,
    idx: &KeyIndex<'_>,
    select: &Select<'_>,
) -> Result<Vec<Record<'a>>, index::StaleIndex> {
    match select {
        Select::Key(k) => match idx.find(k) {
            Some(i) => ks.records_at(k, idx.locations(i)),
            None => Ok(Vec::new()),
        },
        Select::Matching(f) => {
            let mut all = Vec::new();
            for (i, key) in idx.keys().filter(|(_, k)| f(k)) {
                all.extend(ks.records_at(key, idx.locations(i))?);
            }
            Ok(all)
        }
    }
}

/// Write a key index beside a snapshot, so that `get` and `history` find a
/// key without scanning the file
#[derive(clap::Args)]
#[command(
    long_about = "Write a key index beside a snapshot (SNAPSHOT.etcdsnap-index), so that `get` and `history` \
find a key without scanning the file. etcd stores revisions in revision order, so without an index every \
lookup reads the start of every stored value; with one it reads a few pages. The index is bound to the \
snapshot's content and every location it names is checked against the snapshot before use; `get` and \
`history` also leave an index in the user cache ($ETCDSNAP_CACHE_DIR, $XDG_CACHE_HOME/etcdsnap or \
~/.cache/etcdsnap) after a scan.",
    after_help = "Examples:\n  etcdsnap index snapshot.db\n  etcdsnap index snapshot.db.zst -o /backups/index/snapshot.etcdsnap-index\n  etcdsnap get snapshot.db configmap app-config -n prod   # uses snapshot.db.etcdsnap-index"
)]
pub struct Args {
    /// Snapshot file (`-` for standard input, with -o)
    snapshot: SnapshotPath,
    /// Where to write the index (default: SNAPSHOT.etcdsnap-index)
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Replace an existing file that is not a key index
    #[arg(long)]
    force: bool,
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    let start = Instant::now();
    let Some(target) = args.output.clone().or_else(|| sidecar_path(&args.snapshot)) else {
        bail!("reading standard input: say where the index goes with -o FILE");
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
    let file = super::objects::open(&args.snapshot)?;
    let db = super::objects::db(&file)?;
    let ks = KeySpace::open(&db)?;
    let identity = Identity::of(&ks, file.trailer())?;
    let bytes = index::build(&ks, &identity)?;
    let idx = KeyIndex::parse(&bytes).context("the key index just made does not parse")?;
    let (keys, entries) = (idx.key_count(), idx.entry_count());
    write_atomic(&target, &bytes)?;
    out(&format!(
        "{}: {keys} keys, {entries} revisions, {} bytes, in {:.2} s\n",
        target.display(),
        bytes.len(),
        start.elapsed().as_secs_f64()
    ))?;
    Ok(Outcome::Ok)
}
