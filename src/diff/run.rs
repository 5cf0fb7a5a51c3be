//! A whole diff: two snapshots (or two revisions of one) read side by side
//! while `verify`'s checks run beside the reading ([`read_changes`]: a damaged
//! snapshot is refused before any difference is said), then the changed keys
//! compared as objects on a bounded number of threads, a chunk at a time in
//! key order ([`compare_all`]), so that a caller prints each chunk before the
//! next is compared.

use rayon::prelude::*;

use super::compare::{ObjectDiff, Options, compare};
use super::keys::{Change, KeyChange, changes};
use super::object::Tally;
use super::state::live_sorted;
use crate::bolt::db::{Db, OpenError};
use crate::input::{InputError, SnapshotFile, refuse_damaged};
use crate::kube::budget::{CHUNK_BUDGET, MAX_DECODE_THREADS, chunks_by_cost, worst_case};
use crate::kube::resource::{ObjectKey, ResourceRef, parse_key};
use crate::mvcc::keyspace::{KeySpace, KeySpaceError, Record};

/// Which keys are compared.
#[derive(Debug, Clone, Copy, Default)]
pub struct Filter<'q> {
    /// The storage prefix (kube-apiserver's `--etcd-prefix`).
    pub prefix: &'q str,
    /// Only keys starting with this (default: the resource's key prefix).
    pub key_prefix: Option<&'q str>,
    /// Only this resource, as typed (kubectl names).
    pub resource: Option<&'q str>,
    /// Only this namespace.
    pub namespace: Option<&'q str>,
}

/// Why two states could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// `verify` finds a snapshot damaged.
    #[error("{0}")]
    Damaged(#[source] InputError),
    /// A snapshot is not a bbolt database.
    #[error("{path}: not a readable snapshot")]
    Db {
        /// The snapshot.
        path: String,
        /// Why.
        #[source]
        source: OpenError,
    },
    /// A snapshot's keyspace could not be read, or not at the revision asked.
    #[error(transparent)]
    KeySpace(Box<KeySpaceAt>),
}

/// A snapshot's keyspace could not be read, or not at the revision asked.
#[derive(Debug, thiserror::Error)]
#[error("{path}")]
pub struct KeySpaceAt {
    /// The snapshot.
    pub path: String,
    /// Why.
    #[source]
    pub source: KeySpaceError,
}

/// The two states read and merged key by key.
pub struct Changes<'a> {
    /// The keys that differ, in key order.
    pub changed: Vec<KeyChange<'a>>,
    /// How many keys were compared (the larger side's live keys).
    pub keys_compared: usize,
    /// With a custom resource: the keys of CRDs and custom resources seen on
    /// either side (old first), to tell whether the resource exists.
    pub seen: Vec<ObjectKey>,
    /// The old snapshot's database.
    pub old_db: Db<'a>,
    /// The new snapshot's database, when there are two snapshots.
    pub new_db: Option<Db<'a>>,
}

fn at(path: &std::path::Path) -> impl Fn(KeySpaceError) -> ReadError + '_ {
    move |source| {
        ReadError::KeySpace(Box::new(KeySpaceAt {
            path: path.display().to_string(),
            source,
        }))
    }
}

fn open_db(file: &SnapshotFile) -> Result<Db<'_>, ReadError> {
    Db::open(file.db()).map_err(|source| ReadError::Db {
        path: file.path().display().to_string(),
        source,
    })
}

/// Reads the live keys `filter` accepts of `old` at `old_revision` and of
/// `new` (or of `old` again, at `new_revision`), and merges them; `verify`'s
/// checks of both files run meanwhile, and their verdict comes first.
pub fn read_changes<'a>(
    old: &'a SnapshotFile,
    old_revision: Option<i64>,
    new: Option<&'a SnapshotFile>,
    new_revision: Option<i64>,
    filter: &Filter<'_>,
) -> Result<Changes<'a>, ReadError> {
    let prefix = filter.prefix;
    let resource = filter.resource.map(ResourceRef::parse);
    let key_prefix = filter
        .key_prefix
        .map(str::to_string)
        .or_else(|| resource.as_ref().and_then(|r| r.key_prefix(prefix)));
    let wanted = |key: &[u8]| -> bool {
        if let Some(p) = &key_prefix
            && !key.starts_with(p.as_bytes())
        {
            return false;
        }
        if resource.is_none() && filter.namespace.is_none() {
            return true;
        }
        let ok = parse_key(key, prefix);
        if let Some(res) = &resource
            && !ok.as_ref().is_some_and(|o| res.matches(o))
        {
            return false;
        }
        if let Some(ns) = filter.namespace
            && ok.as_ref().and_then(|o| o.namespace.as_deref()) != Some(ns)
        {
            return false;
        }
        true
    };
    let observe = resource.as_ref().is_some_and(|r| r.built_in().is_none());
    let (intact, read) = rayon::join(
        || -> Result<(), ReadError> {
            let (a, b) = rayon::join(
                || refuse_damaged(old),
                || new.map_or(Ok(()), refuse_damaged),
            );
            a.map_err(ReadError::Damaged)?;
            b.map_err(ReadError::Damaged)?;
            Ok(())
        },
        || -> Result<_, ReadError> {
            let old_db = open_db(old)?;
            let new_db = match new {
                Some(f) => Some(open_db(f)?),
                None => None,
            };
            let old_ks = KeySpace::open(&old_db).map_err(at(old.path()))?;
            let new_ks = match (&new_db, new) {
                (Some(d), Some(f)) => Some(KeySpace::open(d).map_err(at(f.path()))?),
                _ => None,
            };
            let (new_ks_ref, new_path) = match (&new_ks, new) {
                (Some(ks), Some(f)) => (ks, f.path()),
                _ => (&old_ks, old.path()),
            };
            for (ks, path, rev) in [
                (&old_ks, old.path(), old_revision),
                (new_ks_ref, new_path, new_revision),
            ] {
                if let Some(r) = rev {
                    ks.check_revision(r).map_err(at(path))?;
                }
            }
            // Every live value is compared: map each file at once rather than by
            // page faults (measured: memcmp over faulting pages was 60% of the time).
            let (old_live, new_live) = rayon::join(
                || {
                    old.populate();
                    collect(&old_ks, old_revision, observe, prefix, &wanted)
                },
                || {
                    if let Some(f) = new {
                        f.populate();
                    }
                    collect(new_ks_ref, new_revision, observe, prefix, &wanted)
                },
            );
            let (old_live, mut seen) = old_live.map_err(at(old.path()))?;
            let (new_live, seen_new) = new_live.map_err(at(new_path))?;
            seen.extend(seen_new);
            Ok((old_live, new_live, seen, old_db, new_db))
        },
    );
    intact?;
    let (old_live, new_live, seen, old_db, new_db) = read?;
    let keys_compared = old_live.len().max(new_live.len());
    let changed = changes(&old_live, &new_live);
    Ok(Changes {
        changed,
        keys_compared,
        seen,
        old_db,
        new_db,
    })
}

/// One side's live keys that `wanted` accepts, sorted; with `observe`, the
/// keys of CRDs and custom resources seen.
fn collect<'a>(
    ks: &KeySpace<'_, 'a>,
    rev: Option<i64>,
    observe: bool,
    prefix: &str,
    wanted: &(dyn Fn(&[u8]) -> bool + Sync),
) -> Result<(Vec<Record<'a>>, Vec<ObjectKey>), KeySpaceError> {
    let mut seen: Vec<ObjectKey> = Vec::new();
    let live = live_sorted(ks, rev, |r: &Record<'_>| {
        if observe
            && let Some(ok) = parse_key(r.kv.key, prefix)
            && (ok.resource == "customresourcedefinitions" || ok.group.is_some())
        {
            seen.push(ok);
        }
        wanted(r.kv.key)
    })?;
    Ok((live, seen))
}

/// Compares `changed` as objects ([`compare`]) on at most
/// [`MAX_DECODE_THREADS`] threads of `stack_size` bytes of stack, a chunk at
/// a time (bounded by [`CHUNK_BUDGET`] in worst-case decoded size, 256 keys
/// at most): `each_chunk` gets the chunk's comparisons in key order before
/// the next chunk is compared; its first error ends the walk. The tally
/// counts every comparison.
pub fn compare_all<E>(
    changed: &[KeyChange<'_>],
    opts: &Options,
    stack_size: usize,
    mut each_chunk: impl FnMut(&[ObjectDiff<'_>]) -> Result<(), E>,
) -> Result<Tally, E> {
    // Rewritten keys are not decoded (same bytes); without the text or the
    // patch, added and removed ones need not be either.
    let decodes = |c: &KeyChange<'_>| match c.change {
        Change::Modified => true,
        Change::Added | Change::Removed => opts.text || opts.json,
        Change::Rewritten => false,
    };
    let cost = |c: &KeyChange<'_>| {
        if !decodes(c) {
            return 0;
        }
        [&c.old, &c.new]
            .iter()
            .filter_map(|r| r.as_ref())
            .map(|r| worst_case(r.kv.value.len()))
            .sum()
    };
    let threads = rayon::current_num_threads().min(MAX_DECODE_THREADS);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .stack_size(stack_size)
        .build()
        .ok();
    let mut tally = Tally::default();
    for chunk in chunks_by_cost(changed, cost, CHUNK_BUDGET, 256) {
        let run =
            || -> Vec<ObjectDiff<'_>> { chunk.par_iter().map(|c| compare(c, opts)).collect() };
        let done = match &pool {
            Some(p) => p.install(run),
            None => run(),
        };
        for d in &done {
            tally.add(&d.name, d.outcome);
        }
        each_chunk(&done)?;
    }
    Ok(tally)
}
