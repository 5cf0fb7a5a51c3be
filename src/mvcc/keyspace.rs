//! The MVCC keyspace of a snapshot: every revision of every key that the file
//! still holds, and the state at a revision.
//!
//! etcd's `key` bucket is ordered by revision, not by user key, so a query
//! without an index ([`super::index`]) reads the whole bucket. It does so
//! without copying: leaves are read in parallel for a single key's history, and
//! newest-first for listings, so that a key's first sighting is its latest
//! state and a listing can stream. Opening reads only a few pages (the list of
//! leaves is made on first use), so that an indexed lookup on a file that is
//! not in the page cache touches little more than the pages it needs.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::OnceLock;

use rayon::prelude::*;
use serde::Serialize;

use super::keyvalue::KeyValue;
use super::revision::{Revision, RevisionKey};
use crate::bolt::Db;
use crate::bolt::page::{BucketRoot, FLAG_BRANCH, FLAG_LEAF, Node, PageHeader};
use crate::bolt::read::{self, Bucket, ReadError};
use crate::problem::Problem;

/// One stored revision of a key.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    /// The revision that wrote it.
    pub revision: Revision,
    /// Whether it deletes the key.
    pub tombstone: bool,
    /// The stored KeyValue (for a tombstone, only the key).
    pub kv: KeyValue<'a>,
}

/// Why the keyspace cannot be read or cannot serve a revision.
#[derive(Debug, Clone, thiserror::Error)]
pub enum KeySpaceError {
    /// The buckets cannot be read.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The snapshot has no key bucket.
    #[error("the snapshot has no key bucket")]
    NoKeyBucket,
    /// The key bucket is damaged.
    #[error("{0}")]
    Corrupt(Problem),
    /// The revision is compacted away.
    #[error(
        "revision {requested} has been compacted: the snapshot keeps history from revision {compacted} on"
    )]
    Compacted {
        /// The revision asked for.
        requested: i64,
        /// The revision compacted at.
        compacted: i64,
    },
    /// The revision is past the snapshot's.
    #[error("revision {requested} is in the future: the snapshot's revision is {current}")]
    Future {
        /// The revision asked for.
        requested: i64,
        /// The snapshot's revision.
        current: i64,
    },
}

impl KeySpaceError {
    /// Whether the error says the snapshot is damaged (as opposed to a request
    /// for a revision it cannot serve).
    pub fn is_corruption(&self) -> bool {
        match self {
            KeySpaceError::Read(_) | KeySpaceError::NoKeyBucket | KeySpaceError::Corrupt(_) => true,
            KeySpaceError::Compacted { .. } | KeySpaceError::Future { .. } => false,
        }
    }
}

/// The parts of a snapshot that revision queries need.
pub struct KeySpace<'d, 'a> {
    db: &'d Db<'a>,
    key_bucket: Bucket<'a>,
    /// The key bucket's leaves in key order; walked on first use.
    leaves: OnceLock<Result<Vec<Node<'a>>, KeySpaceError>>,
    /// The snapshot's revision: the largest main revision stored, or the
    /// compaction revision when that is larger.
    pub current_revision: i64,
    /// The compaction revision etcd would apply at start, if any.
    pub compact_revision: Option<i64>,
}

pub(super) fn corrupt(rev_key: &[u8], msg: String) -> KeySpaceError {
    KeySpaceError::Corrupt(Problem::new(msg).in_bucket("key").with_key(rev_key))
}

/// The main revision of the last element of a non-empty leaf.
fn newest_in(leaf: &Node<'_>) -> Result<i64, KeySpaceError> {
    let e = leaf
        .leaf(leaf.count().saturating_sub(1))
        .map_err(|f| corrupt(b"", f.to_string()))?;
    let rk = RevisionKey::parse(e.key).map_err(|err| corrupt(e.key, err.to_string()))?;
    Ok(rk.revision.main)
}

/// Parses one element of the key bucket.
pub fn record<'a>(key: &'a [u8], value: &'a [u8]) -> Result<Option<Record<'a>>, KeySpaceError> {
    let rk = RevisionKey::parse(key).map_err(|e| corrupt(key, e.to_string()))?;
    if value.is_empty() && !rk.tombstone {
        // The bump marker `restore --bump-revision` writes: no user key.
        return Ok(None);
    }
    let kv = KeyValue::decode(value).map_err(|e| corrupt(key, e.to_string()))?;
    Ok(Some(Record {
        revision: rk.revision,
        tombstone: rk.tombstone,
        kv,
    }))
}

impl<'d, 'a> KeySpace<'d, 'a> {
    /// The keyspace of `db`: finds the key bucket, the compaction and the current revision.
    pub fn open(db: &'d Db<'a>) -> Result<KeySpace<'d, 'a>, KeySpaceError> {
        let buckets = read::buckets(db)?;
        let key_bucket = *buckets
            .iter()
            .find(|b| b.name == crate_key())
            .ok_or(KeySpaceError::NoKeyBucket)?;
        let compact_revision = meta_compact_revision(db, &buckets)?;
        let mut ks = KeySpace {
            db,
            key_bucket,
            leaves: OnceLock::new(),
            current_revision: 0,
            compact_revision,
        };
        ks.current_revision = match ks.last_revision_by_descent()? {
            Some(r) => r,
            None => ks.last_revision_of_leaves()?,
        };
        // Compaction removes tombstones: when the newest changes were
        // deletions at or below the compaction, the store's revision is the
        // compaction's, as etcd sets it when it opens the backend.
        if let Some(c) = compact_revision {
            ks.current_revision = ks.current_revision.max(c);
        }
        Ok(ks)
    }

    /// The key bucket's leaves, in key order (walks the branch pages once).
    pub fn leaves(&self) -> Result<&[Node<'a>], KeySpaceError> {
        self.leaves
            .get_or_init(|| Ok(read::leaves(self.db, &self.key_bucket)?))
            .as_deref()
            .map_err(Clone::clone)
    }

    /// The key bucket's root node: the first page is what identifies its layout.
    pub fn root_node(&self) -> Result<Node<'a>, KeySpaceError> {
        match self.key_bucket.header.root {
            BucketRoot::Inline(bytes) => {
                let header = PageHeader::parse(bytes)
                    .ok_or_else(|| corrupt(b"", "inline key bucket is cut off".into()))?;
                Ok(Node { header, bytes })
            }
            BucketRoot::Page(p) => self.node(p),
        }
    }

    /// Whether the key bucket is stored inline in its parent (a tiny keyspace).
    pub fn root_is_inline(&self) -> bool {
        matches!(self.key_bucket.header.root, BucketRoot::Inline(_))
    }

    /// Page `pgid` as a node of the key bucket, checked for bounds and self-id.
    pub fn node(&self, pgid: u64) -> Result<Node<'a>, KeySpaceError> {
        let fail = |msg: String| {
            KeySpaceError::Corrupt(
                Problem::new(msg)
                    .at_page(pgid, self.db.offset_of(pgid))
                    .in_bucket("key"),
            )
        };
        let node = self.db.node(pgid).map_err(|f| fail(f.to_string()))?;
        if node.header.id != pgid {
            return Err(fail(format!("page self identifies as {}", node.header.id)));
        }
        Ok(node)
    }

    /// The newest revision, found by following the last child from the root:
    /// a few pages instead of every branch page. `None` when the rightmost
    /// leaf is empty (the full list of leaves decides then).
    fn last_revision_by_descent(&self) -> Result<Option<i64>, KeySpaceError> {
        let mut node = self.root_node()?;
        for _ in 0..=crate::bolt::walk::MAX_DEPTH {
            match node.header.flags {
                FLAG_BRANCH if node.count() > 0 => {
                    let e = node
                        .branch(node.count() - 1)
                        .map_err(|f| corrupt(b"", f.to_string()))?;
                    node = self.node(e.child)?;
                }
                FLAG_LEAF if node.count() > 0 => return newest_in(&node).map(Some),
                _ => return Ok(None),
            }
        }
        Ok(None)
    }

    /// The newest revision: the last element of the last non-empty leaf.
    fn last_revision_of_leaves(&self) -> Result<i64, KeySpaceError> {
        match self.leaves()?.iter().rev().find(|l| l.count() > 0) {
            Some(leaf) => newest_in(leaf),
            None => Ok(0),
        }
    }

    /// The database the keyspace is read from.
    pub fn db(&self) -> &'d Db<'a> {
        self.db
    }

    /// Checks that `revision` can be served: not compacted, not in the future.
    pub fn check_revision(&self, revision: i64) -> Result<(), KeySpaceError> {
        if let Some(c) = self.compact_revision
            && revision < c
        {
            return Err(KeySpaceError::Compacted {
                requested: revision,
                compacted: c,
            });
        }
        if revision > self.current_revision {
            return Err(KeySpaceError::Future {
                requested: revision,
                current: self.current_revision,
            });
        }
        Ok(())
    }

    /// Every stored revision of `key`, oldest first. Reads leaves on all cores.
    ///
    /// ```
    /// use etcdsnap::{bolt::Db, input::SnapshotFile, mvcc::keyspace::KeySpace};
    ///
    /// let file = SnapshotFile::open("fixtures/etcd-3.5.1.db".as_ref())?;
    /// let db = Db::open(file.db())?;
    /// let keys = KeySpace::open(&db)?;
    /// assert_eq!(keys.current_revision, 48);
    /// // Put at 37, deleted at 43, put again at 44 (history before 38 is compacted).
    /// let history = keys.history(b"/registry/configmaps/bulk/cm-00")?;
    /// let events: Vec<(i64, bool)> = history
    ///     .iter()
    ///     .map(|r| (r.revision.main, r.tombstone))
    ///     .collect();
    /// assert_eq!(events, [(37, false), (43, true), (44, false)]);
    /// let latest = history.last().map(|r| r.kv).ok_or("no revision")?;
    /// assert_eq!((latest.create_revision, latest.version), (44, 1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn history(&self, key: &[u8]) -> Result<Vec<Record<'a>>, KeySpaceError> {
        self.collect(|kv| kv.key == key)
    }

    /// Every stored revision of the keys `wanted` accepts, oldest first.
    pub fn collect(
        &self,
        wanted: impl Fn(&KeyValue<'a>) -> bool + Sync,
    ) -> Result<Vec<Record<'a>>, KeySpaceError> {
        let parts: Vec<Result<Vec<Record<'a>>, KeySpaceError>> = self
            .leaves()?
            .par_iter()
            .map(|leaf| {
                let mut out = Vec::new();
                for i in 0..leaf.count() {
                    let e = leaf.leaf(i).map_err(|f| corrupt(b"", f.to_string()))?;
                    if let Some(r) = record(e.key, e.value)?
                        && wanted(&r.kv)
                    {
                        out.push(r);
                    }
                }
                Ok(out)
            })
            .collect();
        let mut all = Vec::new();
        for p in parts {
            all.extend(p?);
        }
        Ok(all)
    }

    /// Calls `f` for every stored revision, newest first. Stops when `f` breaks.
    pub fn for_each_newest_first(
        &self,
        mut f: impl FnMut(Record<'a>) -> ControlFlow<()>,
    ) -> Result<(), KeySpaceError> {
        for leaf in self.leaves()?.iter().rev() {
            for i in (0..leaf.count()).rev() {
                let e = leaf.leaf(i).map_err(|fl| corrupt(b"", fl.to_string()))?;
                if let Some(r) = record(e.key, e.value)?
                    && f(r).is_break()
                {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// The latest state of every key at `at` (default: the snapshot's revision),
    /// streamed newest change first: `live` for keys that exist, `deleted` for
    /// keys whose latest revision is a tombstone but that still have an older
    /// put in the file (recoverable), with that put.
    pub fn latest(
        &self,
        at: Option<i64>,
        mut f: impl FnMut(Latest<'a>) -> ControlFlow<()>,
    ) -> Result<(), KeySpaceError> {
        let at = at.unwrap_or(self.current_revision);
        self.check_revision(at)?;
        // Per key: None once emitted or known gone; Some(rev) while deleted at rev
        // and waiting for an older put.
        // foldhash: fast, and randomly seeded so crafted keys cannot force collisions.
        let mut seen: HashMap<&'a [u8], Option<Revision>, foldhash::fast::RandomState> =
            HashMap::default();
        self.for_each_newest_first(|r| {
            if r.revision.main > at {
                return ControlFlow::Continue(());
            }
            match seen.get(r.kv.key) {
                None => {
                    if r.tombstone {
                        seen.insert(r.kv.key, Some(r.revision));
                        ControlFlow::Continue(())
                    } else {
                        seen.insert(r.kv.key, None);
                        f(Latest::Live(r))
                    }
                }
                Some(Some(deleted_at)) if !r.tombstone => {
                    let deleted_at = *deleted_at;
                    seen.insert(r.kv.key, None);
                    f(Latest::Deleted {
                        last_live: r,
                        deleted_at,
                    })
                }
                _ => ControlFlow::Continue(()),
            }
        })
    }
}

/// A key's state in [`KeySpace::latest`].
#[derive(Debug, Clone, Copy)]
pub enum Latest<'a> {
    /// The key exists: its latest revision.
    Live(Record<'a>),
    /// The key was deleted: its last live revision, and the deletion's.
    Deleted {
        /// The last revision that put a value.
        last_live: Record<'a>,
        /// The revision that deleted the key.
        deleted_at: Revision,
    },
}

impl<'a> Latest<'a> {
    /// The record of the key's state (for a deleted key, its last live one).
    pub fn record(&self) -> &Record<'a> {
        match self {
            Latest::Live(r) => r,
            Latest::Deleted { last_live, .. } => last_live,
        }
    }
}

/// What a record says, for reports.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordInfo {
    /// The main revision.
    pub revision: i64,
    /// The sub revision (the change's place within its transaction).
    pub sub: i64,
    /// Whether this revision deletes the key.
    pub deleted: bool,
    /// The revision that created the key (0 for a deletion).
    pub create_revision: i64,
    /// The revision that last modified the key.
    pub mod_revision: i64,
    /// Puts since the key was created (0 for a deletion).
    pub version: i64,
    /// The lease attached (0: none).
    pub lease: i64,
    /// Bytes of the value.
    pub value_size: usize,
}

impl From<&Record<'_>> for RecordInfo {
    fn from(r: &Record<'_>) -> RecordInfo {
        RecordInfo {
            revision: r.revision.main,
            sub: r.revision.sub,
            deleted: r.tombstone,
            create_revision: r.kv.create_revision,
            mod_revision: r.kv.mod_revision,
            version: r.kv.version,
            lease: r.kv.lease,
            value_size: r.kv.value.len(),
        }
    }
}

fn crate_key() -> &'static [u8] {
    b"key"
}

fn meta_compact_revision(
    db: &Db<'_>,
    buckets: &[Bucket<'_>],
) -> Result<Option<i64>, KeySpaceError> {
    let Some(meta) = buckets.iter().find(|b| b.name == b"meta") else {
        return Ok(None);
    };
    let (mut scheduled, mut finished) = (None, None);
    read::for_each(db, meta, |e| {
        let slot = match e.key {
            b"scheduledCompactRev" => &mut scheduled,
            b"finishedCompactRev" => &mut finished,
            _ => return ControlFlow::Continue(()),
        };
        if let Ok(rk) = RevisionKey::parse(e.value) {
            *slot = Some(rk.revision.main);
        }
        ControlFlow::Continue(())
    })?;
    Ok(match (scheduled, finished) {
        (Some(s), Some(f)) => Some(s.max(f)),
        (s, f) => s.or(f),
    })
}
