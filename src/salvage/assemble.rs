//! From intact records to the keyspace written: per key the newest intact
//! revision, the older ones only where they provably follow on, and the list
//! of what is lost.
//!
//! Nothing is invented: an older revision is kept as history only when no
//! change of the key can have been lost between it and the next one kept — a
//! put of version v follows the put of version v−1 with the same
//! create_revision, and across a deletion no main revision between the two is
//! missing. At or below the compaction revision a key keeps one revision, and
//! none if that is a deletion below it, as etcd's compaction leaves it (freed pages
//! still hold the removed ones). The
//! result passes `verify`'s per-key rules by construction.

use std::collections::HashMap;

use rayon::prelude::*;

use crate::kube::resource::parse_key;
use crate::mvcc::Revision;
use crate::report::escape_bytes;

use super::explain::Missing;
use super::record::KeyRecord;
use super::report::{Keys, LostKey, LostWhy, RecoveredKey};

/// What the assembly decided.
pub struct Assembled<'r, 'a> {
    /// The records to write, in revision order.
    pub kept: Vec<&'r KeyRecord<'a>>,
    /// Counts of keys.
    pub keys: Keys,
    /// Intact revisions dropped as compacted.
    pub compacted: u64,
    /// Intact older revisions not provably contiguous.
    pub unchained: u64,
    /// The keys written, lost and suspect, for the report's lists (built by
    /// [`Lists::build`], which can run beside the write).
    pub lists: Lists<'a>,
    /// Missing main revisions, as a count and ranges.
    pub missing: u64,
    /// The ranges (capped).
    pub missing_ranges: Vec<(i64, i64)>,
    /// The newest missing main revision, if any.
    pub newest_missing: Option<i64>,
    /// Missing main revisions whose key is known ([`Missing::explain`]).
    pub explained: u64,
}

/// Most missing ranges listed.
const MAX_RANGES: usize = 1000;

/// Main revisions in `(floor, newest]` without a complete set of records:
/// none at all, or sub revisions with a hole (0..=max not all present).
fn missing_revisions(
    records: &[KeyRecord<'_>],
    floor: i64,
    newest: i64,
) -> (u64, Vec<(i64, i64)>, Option<i64>) {
    let mut subs: HashMap<i64, (i64, u64), foldhash::fast::RandomState> = HashMap::default();
    for r in records {
        let e = subs.entry(r.revision.main).or_insert((0, 0));
        e.0 = e.0.max(r.revision.sub);
        e.1 += 1;
    }
    let mut mains: Vec<i64> = subs
        .iter()
        .filter(|(m, (max_sub, n))| **m > floor && (*max_sub as u64).saturating_add(1) == *n)
        .map(|(m, _)| *m)
        .collect();
    mains.sort_unstable();
    let mut count = 0u64;
    let mut ranges = Vec::new();
    let mut next = floor.saturating_add(1);
    let mut newest_missing = None;
    for m in mains
        .into_iter()
        .chain(std::iter::once(newest.saturating_add(1)))
    {
        if m > next {
            count = count.saturating_add((m - next) as u64);
            if ranges.len() < MAX_RANGES {
                ranges.push((next, m - 1));
            }
            newest_missing = Some(m - 1);
        }
        next = m.saturating_add(1);
    }
    (count, ranges, newest_missing)
}

fn object_of(key: &[u8], prefix: &str) -> (Option<String>, Option<String>, Option<String>) {
    match parse_key(key, prefix) {
        Some(o) => (Some(o.qualified_resource()), o.namespace, Some(o.name)),
        None => (None, None, None),
    }
}

/// Assembles `records` (distinct revisions, every one intact). `evidence`
/// names keys and revisions of damaged records; `compact` is the compaction
/// revision when known; `newest` the newest main revision any source names;
/// `keeps_tombstone_at_compaction` whether the release that wrote the file
/// keeps a deletion at the compaction revision (3.6 and later).
#[allow(clippy::too_many_arguments)]
pub fn assemble<'r, 'a>(
    records: &'r [KeyRecord<'a>],
    evidence: &[(&'a [u8], Revision)],
    compact: Option<i64>,
    keeps_tombstone_at_compaction: bool,
    damaged_ranges: &[(i64, i64)],
    newest: i64,
    prefix: &str,
) -> Assembled<'r, 'a> {
    // etcd's store starts at revision 1 and its first change is revision 2:
    // revision 1 never holds a record.
    let floor = compact.unwrap_or(1).max(1);
    let (mut missing, mut missing_ranges, mut newest_missing) =
        missing_revisions(records, floor, newest);
    // At or below the compaction revision gaps are normal; there only the
    // ranges of leaves the tree names but that were damaged say what is lost.
    for &(from, to) in damaged_ranges {
        let (from, to) = (from.max(2), to.min(floor));
        if from <= to {
            missing = missing.saturating_add((to - from + 1) as u64);
            if missing_ranges.len() < MAX_RANGES {
                missing_ranges.push((from, to));
            }
            newest_missing = newest_missing.max(Some(to));
        }
    }
    missing_ranges.sort_unstable();
    // Neighbouring damaged leaves' ranges share their boundary revision:
    // overlaps are joined and counted once.
    let mut joined: Vec<(i64, i64)> = Vec::with_capacity(missing_ranges.len());
    for (s, e) in missing_ranges {
        match joined.last_mut() {
            Some(last) if s <= last.1 => {
                missing = missing.saturating_sub((last.1.min(e) - s + 1) as u64);
                last.1 = last.1.max(e);
            }
            _ => joined.push((s, e)),
        }
    }
    let missing_ranges = joined;
    // Whose change each missing revision was, where the records say.
    let mut gaps = Missing::new(
        missing_ranges.clone(),
        missing_ranges.len() < MAX_RANGES,
        newest_missing,
    );
    gaps.explain(records, evidence, floor);
    let newest_unexplained = gaps.newest_unexplained();
    // Records by key, each key's in revision order; keys are then decided
    // independently, on all cores, in key order.
    let mut sorted: Vec<&'r KeyRecord<'a>> = records.iter().collect();
    sorted.par_sort_unstable_by(|a, b| {
        (a.key, a.revision, a.tombstone).cmp(&(b.key, b.revision, b.tombstone))
    });
    let by_key: Vec<&[&'r KeyRecord<'a>]> = sorted.chunk_by(|a, b| a.key == b.key).collect();
    let mut newest_evidence: HashMap<&'a [u8], i64, foldhash::fast::RandomState> =
        HashMap::default();
    for (k, rev) in evidence {
        let e = newest_evidence.entry(k).or_insert(rev.main);
        *e = (*e).max(rev.main);
    }
    let ctx = KeyContext {
        compact,
        keeps_tombstone_at_compaction,
        gaps: &gaps,
        newest_unexplained,
        newest_evidence: &newest_evidence,
    };
    let decided: Vec<Decided<'_, 'r, 'a>> =
        by_key.par_iter().map(|recs| ctx.decide(recs)).collect();
    let mut out = Assembled {
        kept: Vec::with_capacity(records.len()),
        keys: Keys::default(),
        compacted: 0,
        unchained: 0,
        lists: Lists {
            newest: Vec::with_capacity(decided.len()),
            listed: Vec::new(),
            unrecovered: Vec::new(),
            sources: None,
            prefix: prefix.to_string(),
        },
        missing,
        missing_ranges: Vec::new(),
        newest_missing,
        explained: gaps.explained(),
    };
    for d in &decided {
        out.compacted += d.compacted;
        let Some(newest) = d.kept.last() else {
            continue;
        };
        out.kept.extend_from_slice(d.kept);
        out.unchained += d.unchained;
        if newest.tombstone {
            out.keys.deleted += 1;
        } else {
            out.keys.live += 1;
        }
        out.keys.history_revisions += (d.kept.len() - 1) as u64;
        if let Some((why, seen)) = d.lost {
            out.lists.listed.push((out.lists.newest.len(), why, seen));
        }
        out.lists
            .newest
            .push((newest.key, newest.revision, newest.tombstone));
        out.keys.recovered += 1;
    }
    out.kept
        .par_sort_unstable_by_key(|r| (r.revision, r.tombstone));
    for (key, rev) in &newest_evidence {
        let recovered = by_key.binary_search_by(|g| g[0].key.cmp(key)).is_ok();
        if !recovered {
            out.lists.unrecovered.push((key, *rev));
        }
    }
    out.missing_ranges = missing_ranges;
    out
}

/// What the report's key lists are made of, without their strings: the
/// newest record written of each key (in key order), which of them are
/// listed as lost or suspect, and the keys known only from damaged records.
/// Escaping and naming a few hundred thousand keys is a noticeable part of
/// a salvage, so `salvage` builds the lists while the output is written.
pub struct Lists<'a> {
    newest: Vec<(&'a [u8], Revision, bool)>,
    /// Index into `newest`, why, newest revision seen.
    listed: Vec<(usize, LostWhy, i64)>,
    /// Key and newest revision seen.
    unrecovered: Vec<(&'a [u8], i64)>,
    /// The `--from` source of each newest record, when there are sources.
    sources: Option<Vec<Option<String>>>,
    prefix: String,
}

/// The report's lists: keys written, lost, possibly stale.
pub struct Listed {
    /// Keys written, by key.
    pub recovered: Vec<RecoveredKey>,
    /// Keys whose newest record is known lost.
    pub lost: Vec<LostKey>,
    /// Keys that may have a newer, lost revision.
    pub stale: Vec<LostKey>,
}

impl<'a> Lists<'a> {
    /// Whether a key is known lost.
    pub fn any_lost(&self) -> bool {
        !self.unrecovered.is_empty() || self.listed.iter().any(|l| l.1 == LostWhy::NewestDamaged)
    }

    /// Whether a key may be out of date.
    pub fn any_stale(&self) -> bool {
        self.listed.iter().any(|l| l.1 == LostWhy::MayBeStale)
    }

    /// The newest revision written of each key written, in key order.
    pub fn newest(&self) -> impl Iterator<Item = (&'a [u8], Revision)> + '_ {
        self.newest.iter().map(|(k, r, _)| (*k, *r))
    }

    /// Sets the source of each key's newest record (in [`Self::newest`]'s
    /// order).
    pub fn set_sources(&mut self, sources: Vec<Option<String>>) {
        self.sources = Some(sources);
    }

    /// Builds the lists, on one core: beside the write, which is bound by
    /// hashing on one core and leaves the other partly idle.
    pub fn build(&self) -> Listed {
        let prefix = self.prefix.as_str();
        let sources = self.sources.as_deref();
        let recovered: Vec<(RecoveredKey, bool)> = self
            .newest
            .iter()
            .enumerate()
            .map(|(i, &(raw, rev, deleted))| {
                let (resource, namespace, name) = object_of(raw, prefix);
                let key = escape_bytes(raw);
                let escaped = key.as_bytes() != raw;
                let k = RecoveredKey {
                    key,
                    revision: rev.main,
                    deleted,
                    source: sources.and_then(|s| s.get(i).cloned().flatten()),
                    resource,
                    namespace,
                    name,
                };
                (k, escaped)
            })
            .collect();
        let listed: Vec<(&'a [u8], LostKey)> = self
            .listed
            .iter()
            .map(|&(i, why, seen)| {
                let k = &recovered[i].0;
                let l = LostKey {
                    key: k.key.clone(),
                    why,
                    newest_seen_revision: seen,
                    recovered_revision: Some(k.revision),
                    recovered_deleted: k.deleted,
                    resource: k.resource.clone(),
                    namespace: k.namespace.clone(),
                    name: k.name.clone(),
                };
                (self.newest[i].0, l)
            })
            .collect();
        // Listed by escaped key: the raw keys' order unless escaping changed
        // one.
        let any_escaped = recovered.iter().any(|(_, e)| *e);
        let mut out = Listed {
            recovered: recovered.into_iter().map(|(k, _)| k).collect(),
            lost: Vec::new(),
            stale: Vec::new(),
        };
        if any_escaped {
            out.recovered.sort_by(|a, b| a.key.cmp(&b.key));
        }
        // Suspects are in key order; the lost keys are joined by those known
        // only from damaged records, and sorted (a short list).
        let mut lost: Vec<(&'a [u8], LostKey)> = Vec::new();
        out.stale.reserve_exact(listed.len());
        for (key, l) in listed {
            match l.why {
                LostWhy::NewestDamaged => lost.push((key, l)),
                LostWhy::MayBeStale => out.stale.push(l),
            }
        }
        for &(key, seen) in &self.unrecovered {
            lost.push((key, lost_unrecovered(key, seen, prefix)));
        }
        lost.sort_by(|a, b| a.0.cmp(b.0));
        out.lost = lost.into_iter().map(|(_, l)| l).collect();
        out
    }
}

/// What is fixed for every key's decision.
struct KeyContext<'g, 'a> {
    compact: Option<i64>,
    keeps_tombstone_at_compaction: bool,
    gaps: &'g Missing<'a>,
    newest_unexplained: Option<i64>,
    newest_evidence: &'g HashMap<&'a [u8], i64, foldhash::fast::RandomState>,
}

/// One key's decision.
struct Decided<'s, 'r, 'a> {
    /// Its records written, oldest first (the end of its records; none
    /// if compaction removed them all).
    kept: &'s [&'r KeyRecord<'a>],
    compacted: u64,
    unchained: u64,
    /// Why it is listed as lost or suspect, and the newest revision seen.
    lost: Option<(LostWhy, i64)>,
}

impl<'a> KeyContext<'_, 'a> {
    /// Decides one key from its records (in revision order).
    fn decide<'s, 'r>(&self, recs: &'s [&'r KeyRecord<'a>]) -> Decided<'s, 'r, 'a> {
        let mut d = Decided {
            kept: &[],
            compacted: 0,
            unchained: 0,
            lost: None,
        };
        let mut recs = recs;
        let key = recs[0].key;
        // Compaction keeps at most one revision at or below it.
        if let Some(c) = self.compact {
            let below = recs.iter().filter(|r| r.revision.main <= c).count();
            // etcd's compaction also removes a deletion below it (3.6 on
            // keeps one at it, 3.5 and earlier do not): the key's history
            // there ends deleted.
            let drop = match recs.get(below.wrapping_sub(1)) {
                Some(r)
                    if below > 0
                        && r.tombstone
                        && (r.revision.main < c || !self.keeps_tombstone_at_compaction) =>
                {
                    below
                }
                _ => below.saturating_sub(1),
            };
            d.compacted = drop as u64;
            recs = &recs[drop..];
        }
        let Some(&newest_rec) = recs.last() else {
            return d;
        };
        // The history kept: back from the newest while each older record
        // provably comes right before the one after it.
        let gaps = self.gaps;
        let mut first = recs.len() - 1;
        while first > 0 {
            let (older, cur) = (recs[first - 1], recs[first]);
            let follows = if !cur.tombstone && cur.version > 1 {
                !older.tombstone && older.version == cur.version - 1 && older.create == cur.create
            } else if !cur.tombstone {
                // A creation: the key was deleted before it, with nothing
                // lost in between.
                older.tombstone && !gaps.change_between(key, older.revision.main, cur.revision.main)
            } else {
                !older.tombstone
                    && !gaps.change_between(key, older.revision.main, cur.revision.main)
            };
            if !follows {
                break;
            }
            first -= 1;
        }
        d.kept = &recs[first..];
        d.unchained = first as u64;
        let seen = self
            .newest_evidence
            .get(key)
            .copied()
            .unwrap_or(i64::MIN)
            .max(newest_rec.revision.main);
        let below_compaction = self.compact.is_none_or(|c| newest_rec.revision.main <= c);
        // Newest revisions unknown (the last leaf lost) name no key: any
        // key may have changed after the newest revision found. The report
        // says so once; a key is listed here only on evidence of its own (a
        // damaged newer record, a lost revision after its own not known to be
        // another key's change, or a newest
        // record found only on a freed page at or below the compaction).
        let why = if seen > newest_rec.revision.main {
            Some(LostWhy::NewestDamaged)
        } else if self
            .newest_unexplained
            .is_some_and(|m| m > newest_rec.revision.main)
            || (!newest_rec.in_tree && below_compaction)
        {
            Some(LostWhy::MayBeStale)
        } else {
            None
        };
        d.lost = why.map(|why| (why, seen));
        d
    }
}

/// A key known only from a damaged record: lost.
fn lost_unrecovered(key: &[u8], seen: i64, prefix: &str) -> LostKey {
    let (resource, namespace, name) = object_of(key, prefix);
    LostKey {
        key: escape_bytes(key),
        why: LostWhy::NewestDamaged,
        newest_seen_revision: seen,
        recovered_revision: None,
        recovered_deleted: false,
        resource,
        namespace,
        name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::salvage::record::tests::{del, put};

    #[test]
    fn keeps_contiguous_history_only() {
        // a: v1@1, v2@2, (v3@3 lost), v4@4
        let recs = vec![put(b"a", 1, 1, 1), put(b"a", 2, 1, 2), put(b"a", 4, 1, 4)];
        let a = assemble(&recs, &[], None, true, &[], 4, "/registry");
        assert_eq!(a.kept.len(), 1);
        assert_eq!(a.kept[0].revision.main, 4);
        assert_eq!(a.unchained, 2);
        assert_eq!(a.missing, 1);
        assert!(
            a.lists.build().lost.is_empty(),
            "nothing after 4 is missing"
        );
    }

    #[test]
    fn stale_when_a_later_revision_is_missing() {
        let recs = vec![put(b"a", 2, 2, 1), put(b"b", 4, 4, 1)];
        let a = assemble(&recs, &[], None, true, &[], 4, "/registry");
        assert!(a.lists.build().lost.is_empty());
        assert_eq!(a.lists.build().stale.len(), 1);
        assert_eq!(a.lists.build().stale[0].key, "a");
        assert_eq!(a.lists.build().stale[0].why, LostWhy::MayBeStale);
        // Revision 3 known to be c's creation (c@5 intact): a is not suspect.
        let recs = vec![put(b"a", 2, 2, 1), put(b"b", 4, 4, 1), put(b"c", 5, 3, 2)];
        let a = assemble(&recs, &[], None, true, &[], 5, "/registry");
        assert!(a.lists.build().stale.is_empty());
        assert_eq!((a.missing, a.explained), (1, 1));
    }

    #[test]
    fn damaged_newest_is_lost() {
        let recs = vec![put(b"/registry/pods/ns/p", 1, 1, 1)];
        let ev = [(&b"/registry/pods/ns/p"[..], Revision { main: 2, sub: 0 })];
        let a = assemble(&recs, &ev, None, true, &[], 2, "/registry");
        assert_eq!(a.lists.build().lost[0].why, LostWhy::NewestDamaged);
        assert_eq!(a.lists.build().lost[0].namespace.as_deref(), Some("ns"));
        assert_eq!(a.lists.build().lost[0].resource.as_deref(), Some("pods"));
    }

    #[test]
    fn overlapping_damaged_ranges_count_once() {
        let recs = vec![put(b"a", 20, 20, 1)];
        let a = assemble(
            &recs,
            &[],
            Some(15),
            true,
            &[(2, 7), (7, 12)],
            20,
            "/registry",
        );
        assert_eq!(a.missing_ranges, vec![(2, 12), (16, 19)]);
        assert_eq!(a.missing, 11 + 4);
    }

    #[test]
    fn compaction_keeps_one_and_deletions_chain() {
        let recs = vec![
            put(b"a", 1, 1, 1),
            put(b"a", 2, 1, 2),
            del(b"a", 3),
            put(b"a", 4, 4, 1),
        ];
        let a = assemble(&recs, &[], Some(2), true, &[], 4, "/registry");
        assert_eq!(a.compacted, 1);
        let gone = vec![put(b"b", 1, 1, 1), del(b"b", 2), put(b"c", 3, 3, 1)];
        let g = assemble(&gone, &[], Some(2), false, &[], 3, "/registry");
        assert_eq!(g.compacted, 2);
        assert_eq!(g.keys.recovered, 1);
        let g = assemble(&gone, &[], Some(2), true, &[], 3, "/registry");
        assert_eq!(g.compacted, 1);
        assert_eq!(g.keys.recovered, 2);
        let kept: Vec<i64> = a.kept.iter().map(|r| r.revision.main).collect();
        assert_eq!(kept, vec![2, 3, 4]);
    }
}
