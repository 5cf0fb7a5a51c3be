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
    pub newest: Revision,
    pub tombstone: bool,
    /// The newest revision's value (a tombstone's is empty).
    pub value: &'a [u8],
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

pub type Folds<'a> = HashMap<&'a [u8], KeyFold<'a>, foldhash::fast::RandomState>;

/// What the walk returns.
pub struct Walked<'a> {
    pub keys: Folds<'a>,
    /// Every element of the key bucket, in file order.
    pub elements: Vec<Element>,
}

fn merge<'a>(mut a: Folds<'a>, b: Folds<'a>) -> Folds<'a> {
    let (mut big, small) = if a.len() >= b.len() {
        (std::mem::take(&mut a), b)
    } else {
        (b, a)
    };
    for (k, f) in small {
        big.entry(k)
            .and_modify(|g| {
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
            })
            .or_insert(f);
    }
    big
}

/// Leaves handed to one task at a time.
const LEAVES_PER_TASK: usize = 64;

/// Reads every revision of the key bucket once.
pub fn walk<'a>(ks: &KeySpace<'_, 'a>) -> Result<Walked<'a>, KeySpaceError> {
    let leaves = ks.leaves()?;
    let parts: Vec<Result<(Folds<'a>, Vec<Element>), KeySpaceError>> = leaves
        .par_chunks(LEAVES_PER_TASK)
        .map(|chunk| {
            let mut folds = Folds::default();
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
                    folds
                        .entry(r.kv.key)
                        .and_modify(|g| {
                            let (n, vb, eb) = (
                                g.revisions + 1,
                                g.value_bytes + fold.value_bytes,
                                g.element_bytes + fold.element_bytes,
                            );
                            if fold.newest > g.newest {
                                *g = fold;
                            }
                            g.revisions = n;
                            g.value_bytes = vb;
                            g.element_bytes = eb;
                        })
                        .or_insert(fold);
                }
            }
            Ok((folds, elements))
        })
        .collect();
    let mut elements = Vec::new();
    let mut maps = Vec::with_capacity(parts.len());
    for p in parts {
        let (m, e) = p?;
        elements.extend(e);
        maps.push(m);
    }
    let keys = maps.into_par_iter().reduce(Folds::default, merge);
    Ok(Walked { keys, elements })
}
