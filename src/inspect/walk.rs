//! The one read of the key bucket: every stored revision is seen once, leaves
//! on all cores, and folded per user key into its newest revision and its
//! totals. Values are never copied: the newest value of a key is a slice of
//! the mapped file, so memory grows with the number of keys, not with bytes.
//! The element sizes are kept in file order (8 bytes each) for the layout
//! model of [`super::layout`].

use std::collections::HashMap;

use rayon::prelude::*;

use super::layout::Element;
use crate::mvcc::Revision;
use crate::mvcc::keyspace::{KeySpace, KeySpaceError, record};
use crate::problem::Problem;

/// A user key's newest revision and its totals over every stored revision.
#[derive(Debug, Clone, Copy)]
pub struct KeyFold<'a> {
    /// The key's newest revision.
    pub newest: Revision,
    /// Whether that revision deletes the key.
    pub tombstone: bool,
    /// The newest revision's value (a tombstone's is empty).
    pub value: &'a [u8],
    /// The lease the newest revision attaches (0: none).
    pub lease: i64,
    /// Bytes of the newest revision's element in the key bucket.
    pub newest_element: u32,
    /// Revisions stored (tombstones included).
    pub revisions: u32,
    /// Value bytes over every revision.
    pub value_bytes: u64,
    /// Element bytes (header, revision key, KeyValue record) over every revision.
    pub element_bytes: u64,
}

/// The folds, sharded by a hash of the key: each shard is built by one task,
/// so that every revision is hashed into a map once, on all cores.
#[derive(Default)]
pub struct Folds<'a> {
    shards: Vec<Map<'a>>,
}

/// foldhash: fast, and randomly seeded so crafted keys cannot force collisions.
type Map<'a> = HashMap<&'a [u8], KeyFold<'a>, foldhash::fast::RandomState>;

impl<'a> Folds<'a> {
    /// How many keys were folded.
    pub fn len(&self) -> usize {
        self.shards.iter().map(HashMap::len).sum()
    }
    /// Whether no key was folded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Every key's fold, in no particular order.
    pub fn values(&self) -> impl Iterator<Item = &KeyFold<'a>> {
        self.shards.iter().flat_map(HashMap::values)
    }
    /// Every (key, fold), on all cores.
    pub fn par_iter(&self) -> impl ParallelIterator<Item = (&&'a [u8], &KeyFold<'a>)> {
        self.shards.par_iter().flat_map_iter(|m| m.iter())
    }
}

fn fold_into<'a>(g: &mut KeyFold<'a>, f: KeyFold<'a>) {
    let (revisions, value_bytes, element_bytes) = (
        g.revisions + f.revisions,
        g.value_bytes + f.value_bytes,
        g.element_bytes + f.element_bytes,
    );
    if f.newest > g.newest {
        *g = f;
    }
    g.revisions = revisions;
    g.value_bytes = value_bytes;
    g.element_bytes = element_bytes;
}

/// What the walk returns.
pub struct Walked<'a> {
    /// Every user key's fold.
    pub keys: Folds<'a>,
    /// Every element of the key bucket, in file order.
    pub elements: Vec<Element>,
}

/// Shards of the folds (a power of two).
const SHARDS: usize = 64;

/// Leaves handed to one task at a time.
const LEAVES_PER_TASK: usize = 64;

/// Reads every revision of the key bucket once.
pub fn walk<'a>(ks: &KeySpace<'_, 'a>) -> Result<Walked<'a>, KeySpaceError> {
    use std::hash::BuildHasher;
    let leaves = ks.leaves()?;
    let shard_of = foldhash::fast::RandomState::default();
    // Per task of leaves: each revision's fold, put in the shard of its key.
    type Part<'a> = (Vec<Vec<(&'a [u8], KeyFold<'a>)>>, Vec<Element>);
    let parts: Vec<Result<Part<'a>, KeySpaceError>> = leaves
        .par_chunks(LEAVES_PER_TASK)
        .map(|chunk| {
            let mut shards: Vec<Vec<(&'a [u8], KeyFold<'a>)>> = vec![Vec::new(); SHARDS];
            let mut elements = Vec::new();
            for leaf in chunk {
                for i in 0..leaf.count() {
                    let e = leaf.leaf(i).map_err(|f| {
                        KeySpaceError::Corrupt(Problem::new(f.to_string()).in_bucket("key"))
                    })?;
                    elements.push(Element::leaf(e.key.len(), e.value.len()));
                    let Some(r) = record(e.key, e.value)? else {
                        continue;
                    };
                    let size = (16 + e.key.len() + e.value.len()) as u32;
                    let fold = KeyFold {
                        newest: r.revision,
                        tombstone: r.tombstone,
                        value: r.kv.value,
                        lease: r.kv.lease,
                        newest_element: size,
                        revisions: 1,
                        value_bytes: r.kv.value.len() as u64,
                        element_bytes: u64::from(size),
                    };
                    let shard = shard_of.hash_one(r.kv.key) as usize & (SHARDS - 1);
                    shards[shard].push((r.kv.key, fold));
                }
            }
            Ok((shards, elements))
        })
        .collect();
    let mut elements = Vec::new();
    let mut per_task = Vec::with_capacity(parts.len());
    for p in parts {
        let (s, e) = p?;
        elements.extend(e);
        per_task.push(s);
    }
    // Each shard's map from every task's part of it, shards on all cores.
    let shards: Vec<Map<'a>> = (0..SHARDS)
        .into_par_iter()
        .map(|i| {
            let mut m = Map::default();
            for task in &per_task {
                for (k, f) in &task[i] {
                    match m.get_mut(k) {
                        Some(g) => fold_into(g, *f),
                        None => {
                            m.insert(k, *f);
                        }
                    }
                }
            }
            m
        })
        .collect();
    Ok(Walked {
        keys: Folds { shards },
        elements,
    })
}
