//! The key-level comparison of two sides sorted by key: which keys were
//! added, removed, modified (value or lease), or only rewritten (written
//! again with the same bytes and lease).
//!
//! The walk is a merge of the two sorted lists; the values of keys present
//! on both sides are compared on all cores, a block at a time, so that only
//! the changed keys are kept.

use rayon::prelude::*;
use serde::Serialize;

use crate::mvcc::keyspace::Record;

/// What happened to a key between the two sides.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    /// Only in the new state.
    Added,
    /// Only in the old state.
    Removed,
    /// Another value or another lease.
    Modified,
    /// Written again (another mod revision, version or create revision) with
    /// the same bytes and lease.
    Rewritten,
}

impl Change {
    /// The sign `diff --name-only` prints.
    pub fn sign(self) -> char {
        match self {
            Change::Added => '+',
            Change::Removed => '-',
            Change::Modified => '~',
            Change::Rewritten => '=',
        }
    }
}

/// One changed key, with its record on each side it exists on.
#[derive(Clone, Copy, Debug)]
pub struct KeyChange<'a> {
    /// Added, removed, modified or rewritten.
    pub change: Change,
    /// The key's record in the old state, if it exists there.
    pub old: Option<Record<'a>>,
    /// The key's record in the new state, if it exists there.
    pub new: Option<Record<'a>>,
}

impl<'a> KeyChange<'a> {
    /// The changed key.
    pub fn key(&self) -> &'a [u8] {
        match (&self.old, &self.new) {
            (Some(r), _) | (None, Some(r)) => r.kv.key,
            (None, None) => b"",
        }
    }

    /// Whether the stored bytes differ (false for an added or removed key).
    pub fn value_changed(&self) -> bool {
        matches!((&self.old, &self.new), (Some(a), Some(b)) if a.kv.value != b.kv.value)
    }

    /// Whether the key's lease differs (false for an added or removed key).
    pub fn lease_changed(&self) -> bool {
        matches!((&self.old, &self.new), (Some(a), Some(b)) if a.kv.lease != b.kv.lease)
    }
}

/// How a key present on both sides changed, if it did.
fn classify<'a>(old: Record<'a>, new: Record<'a>) -> Option<KeyChange<'a>> {
    let (a, b) = (&old.kv, &new.kv);
    let change = if a.value != b.value || a.lease != b.lease {
        Change::Modified
    } else if a.mod_revision != b.mod_revision
        || a.create_revision != b.create_revision
        || a.version != b.version
    {
        Change::Rewritten
    } else {
        return None;
    };
    Some(KeyChange {
        change,
        old: Some(old),
        new: Some(new),
    })
}

/// Keys compared on all cores at once (pairs of records: small).
const BLOCK: usize = 8192;

/// Every changed key between `old` and `new` (each sorted by key, one record
/// per key), in key order.
pub fn changes<'a>(old: &[Record<'a>], new: &[Record<'a>]) -> Vec<KeyChange<'a>> {
    let mut out = Vec::new();
    let mut both: Vec<(Record<'a>, Record<'a>)> = Vec::with_capacity(BLOCK);
    // Keys on one side only go straight out; pairs wait for a block, then are
    // compared in parallel. Order is kept: a block is flushed before any
    // one-sided key that follows it.
    let flush = |both: &mut Vec<(Record<'a>, Record<'a>)>, out: &mut Vec<KeyChange<'a>>| {
        let found: Vec<KeyChange<'a>> = both
            .par_iter()
            .filter_map(|(a, b)| classify(*a, *b))
            .collect();
        out.extend(found);
        both.clear();
    };
    let (mut i, mut j) = (0, 0);
    while i < old.len() || j < new.len() {
        let ord = match (old.get(i), new.get(j)) {
            (Some(a), Some(b)) => a.kv.key.cmp(b.kv.key),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        match ord {
            std::cmp::Ordering::Equal => {
                both.push((old[i], new[j]));
                if both.len() == BLOCK {
                    flush(&mut both, &mut out);
                }
                i += 1;
                j += 1;
            }
            one_side => {
                flush(&mut both, &mut out);
                let (change, o, n) = if one_side == std::cmp::Ordering::Less {
                    i += 1;
                    (Change::Removed, Some(old[i - 1]), None)
                } else {
                    j += 1;
                    (Change::Added, None, Some(new[j - 1]))
                };
                out.push(KeyChange {
                    change,
                    old: o,
                    new: n,
                });
            }
        }
    }
    flush(&mut both, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mvcc::keyvalue::KeyValue;
    use crate::mvcc::revision::Revision;

    fn rec(key: &'static [u8], value: &'static [u8], rev: i64, lease: i64) -> Record<'static> {
        Record {
            revision: Revision { main: rev, sub: 0 },
            tombstone: false,
            kv: KeyValue {
                key,
                create_revision: 1,
                mod_revision: rev,
                version: 1,
                value,
                lease,
            },
        }
    }

    #[test]
    fn merges_sorted_sides() {
        let old = [
            rec(b"a", b"1", 2, 0),
            rec(b"b", b"1", 2, 0),
            rec(b"c", b"1", 2, 0),
            rec(b"d", b"1", 2, 0),
            rec(b"e", b"1", 2, 0),
        ];
        let new = [
            rec(b"a", b"1", 2, 0),
            rec(b"b", b"2", 5, 0),
            rec(b"bb", b"1", 5, 0),
            rec(b"d", b"1", 6, 0),
            rec(b"e", b"1", 2, 9),
        ];
        let got: Vec<(&[u8], Change)> = changes(&old, &new)
            .iter()
            .map(|c| (c.key(), c.change))
            .collect();
        assert_eq!(
            got,
            vec![
                (&b"b"[..], Change::Modified),
                (b"bb", Change::Added),
                (b"c", Change::Removed),
                (b"d", Change::Rewritten),
                (b"e", Change::Modified),
            ]
        );
        assert!(changes(&old, &old).is_empty());
    }
}
