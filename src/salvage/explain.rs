//! Whose change a missing revision was.
//!
//! A main revision of which no record survived is a change that is lost;
//! without more, any key whose newest surviving record is older may have
//! been changed by it, and the report would have to call every such key
//! possibly stale. Often the surviving records say whose change it was:
//!
//! - a damaged record that still names its key and revision;
//! - a key's `create_revision`: the put that created the key;
//! - a gap in a key's versions: between its records of versions `a` and
//!   `b` (same `create_revision`) lie `b − a − 1` changes of that key, at
//!   main revisions strictly between theirs. When exactly that many
//!   missing revisions there are not known to be another key's, they are
//!   all this key's.
//!
//! All three rest on one change per main revision, which is how the
//! kube-apiserver writes (each write is a transaction with one operation,
//! sub revision 0). A file that shows a sub revision other than 0 holds
//! transactions of several operations, where one main revision may change
//! several keys: nothing is explained then. The version rule also needs
//! every revision between the two records to have been in the file, which
//! holds above the compaction revision only. Two rules naming different
//! keys for one revision contradict the premise: that revision stays
//! unexplained.

use std::collections::{BTreeMap, HashMap};

use crate::mvcc::Revision;

use super::record::KeyRecord;

/// One life of a key: the key and its `create_revision`.
type Life<'a> = (&'a [u8], i64);

/// Missing main revisions and, for some, the key whose change each was.
pub struct Missing<'a> {
    /// Disjoint ranges, sorted.
    ranges: Vec<(i64, i64)>,
    /// Missing revisions before range `i`.
    before: Vec<u64>,
    /// Whether `ranges` lists every missing revision.
    complete: bool,
    /// The newest missing revision.
    newest: Option<i64>,
    /// Missing revisions whose key is known.
    owner: BTreeMap<i64, &'a [u8]>,
}

impl<'a> Missing<'a> {
    /// `ranges`: disjoint, sorted; `complete` false when the list was cut
    /// short (then nothing is explained); `newest` the newest missing
    /// revision, listed or not.
    pub fn new(ranges: Vec<(i64, i64)>, complete: bool, newest: Option<i64>) -> Self {
        let mut before = Vec::with_capacity(ranges.len());
        let mut n = 0u64;
        for &(s, e) in &ranges {
            before.push(n);
            n = n.saturating_add((e - s + 1) as u64);
        }
        Missing {
            ranges,
            before,
            complete,
            newest,
            owner: BTreeMap::new(),
        }
    }

    /// Missing revisions at or below `m`.
    fn count_to(&self, m: i64) -> u64 {
        let i = self.ranges.partition_point(|&(s, _)| s <= m);
        if i == 0 {
            return 0;
        }
        let (s, e) = self.ranges[i - 1];
        self.before[i - 1] + (m.min(e) - s + 1) as u64
    }

    /// Missing revisions in `[lo, hi]`.
    fn count_in(&self, lo: i64, hi: i64) -> u64 {
        if lo > hi {
            return 0;
        }
        self.count_to(hi) - self.count_to(lo.saturating_sub(1))
    }

    fn is_missing(&self, m: i64) -> bool {
        self.count_in(m, m) == 1
    }

    /// Missing revisions in `[lo, hi]` known to be another key's than `key`.
    fn others_in(&self, key: &[u8], lo: i64, hi: i64) -> u64 {
        if lo > hi {
            return 0;
        }
        self.owner
            .range(lo..=hi)
            .filter(|(_, k)| **k != key)
            .count() as u64
    }

    /// Names the key of every missing revision the records prove (see the
    /// module's rules). `floor` is the compaction revision (0 if none).
    pub fn explain(
        &mut self,
        records: &[KeyRecord<'a>],
        evidence: &[(&'a [u8], Revision)],
        floor: i64,
    ) {
        if !self.complete
            || records.iter().any(|r| r.revision.sub != 0)
            || evidence.iter().any(|(_, r)| r.sub != 0)
        {
            return;
        }
        // Candidate owners; None where two rules disagree.
        let mut named: HashMap<i64, Option<&'a [u8]>> = HashMap::new();
        let name = |named: &mut HashMap<i64, Option<&'a [u8]>>, m: i64, key: &'a [u8]| {
            if !self.is_missing(m) {
                return;
            }
            let e = named.entry(m).or_insert(Some(key));
            if *e != Some(key) {
                *e = None;
            }
        };
        for &(key, rev) in evidence {
            name(&mut named, rev.main, key);
        }
        for r in records.iter().filter(|r| !r.tombstone && r.create > 0) {
            name(&mut named, r.create, r.key);
        }
        self.owner = named
            .iter()
            .filter_map(|(m, k)| k.map(|k| (*m, k)))
            .collect();
        // Version gaps, above the compaction revision: each key's known
        // (revision, version) points of one life, its creation included.
        let mut lives: BTreeMap<Life<'a>, Vec<(i64, i64)>> = BTreeMap::new();
        for r in records
            .iter()
            .filter(|r| !r.tombstone && r.create > 0 && r.create >= floor)
        {
            let points = lives.entry((r.key, r.create)).or_default();
            points.push((r.revision.main, r.version));
        }
        // A gap closed by one key can leave another's with as many
        // candidates as changes: a few passes reach the fixed point.
        for _ in 0..4 {
            let mut changed = false;
            for ((key, create), points) in &mut lives {
                points.push((*create, 1));
                points.sort_unstable();
                points.dedup();
                for w in points.windows(2) {
                    let ((ra, va), (rb, vb)) = (w[0], w[1]);
                    let changes = vb - va - 1;
                    if changes <= 0 {
                        continue;
                    }
                    let (lo, hi) = (ra + 1, rb - 1);
                    let mine = self.count_in(lo, hi) - self.others_in(key, lo, hi);
                    if mine != changes as u64 {
                        continue;
                    }
                    for m in lo..=hi {
                        if self.is_missing(m) && !self.owner.contains_key(&m) {
                            self.owner.insert(m, *key);
                            changed = true;
                        }
                    }
                }
            }
            if !changed {
                break;
            }
        }
    }

    /// Missing revisions whose key is known.
    pub fn explained(&self) -> u64 {
        self.owner.len() as u64
    }

    /// The newest missing revision whose key is not known.
    pub fn newest_unexplained(&self) -> Option<i64> {
        if !self.complete {
            return self.newest;
        }
        for &(s, e) in self.ranges.iter().rev() {
            let mut m = e;
            while m >= s && self.owner.contains_key(&m) {
                m -= 1;
            }
            if m >= s {
                return Some(m);
            }
        }
        None
    }

    /// Whether a change of `key` may be missing strictly between revisions
    /// `older` and `newer`: a missing revision there not known to be
    /// another key's.
    pub fn change_between(&self, key: &[u8], older: i64, newer: i64) -> bool {
        let (lo, hi) = (older.saturating_add(1), newer.saturating_sub(1));
        if !self.complete {
            return self.count_in(lo, hi) > 0 || self.newest.is_some_and(|m| m > older);
        }
        self.count_in(lo, hi) > self.others_in(key, lo, hi)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::salvage::record::tests::put;

    #[test]
    fn creation_and_evidence_name_the_key() {
        let mut m = Missing::new(vec![(3, 4), (7, 7)], true, Some(7));
        let recs = [put(b"a", 5, 3, 2), put(b"b", 6, 6, 1)];
        let ev = [(&b"c"[..], Revision { main: 7, sub: 0 })];
        m.explain(&recs, &ev, 0);
        assert_eq!(m.explained(), 2);
        assert_eq!(m.newest_unexplained(), Some(4));
        assert!(m.change_between(b"b", 2, 6), "4 may be b's");
        assert!(!m.change_between(b"b", 4, 8), "7 is c's");
        assert!(m.change_between(b"c", 4, 8));
    }

    #[test]
    fn version_gap_of_exactly_as_many_changes() {
        // a: v1@2, v4@9, so two changes of a in (2, 9); of the revisions
        // there only 4 and 6 are missing: both are a's.
        let mut m = Missing::new(vec![(4, 4), (6, 6)], true, Some(6));
        let recs = [put(b"a", 9, 2, 4), put(b"a", 2, 2, 1), put(b"b", 5, 5, 1)];
        m.explain(&recs, &[], 0);
        assert_eq!(m.explained(), 2);
        assert_eq!(m.newest_unexplained(), None);
        // Three missing where two changes are due: no guess.
        let mut m = Missing::new(vec![(3, 4), (6, 6)], true, Some(6));
        m.explain(&recs, &[], 0);
        assert_eq!(m.explained(), 0);
        // Below the compaction revision revisions may have gone without
        // damage: no guess either.
        let mut m = Missing::new(vec![(4, 4), (6, 6)], true, Some(6));
        m.explain(&recs, &[], 3);
        assert_eq!(m.explained(), 0);
    }

    #[test]
    fn sub_revisions_or_disagreement_explain_nothing() {
        let mut recs = vec![put(b"a", 5, 3, 2)];
        let mut m = Missing::new(vec![(3, 3)], true, Some(3));
        let ev = [(&b"b"[..], Revision { main: 3, sub: 0 })];
        m.explain(&recs, &ev, 0);
        assert_eq!(m.explained(), 0, "a's creation and b's record disagree");
        recs.push(KeyRecord {
            revision: Revision { main: 6, sub: 1 },
            ..put(b"c", 6, 6, 1)
        });
        let mut m = Missing::new(vec![(3, 3)], true, Some(3));
        m.explain(&recs, &[], 0);
        assert_eq!(m.explained(), 0);
        let mut m = Missing::new(vec![(3, 3)], false, Some(9));
        m.explain(&recs[..1], &[], 0);
        assert_eq!(m.newest_unexplained(), Some(9));
    }
}
