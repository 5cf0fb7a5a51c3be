//! Other sources filling what the damaged file lost: another member's `db`
//! or snapshot, an older backup of the same cluster.
//!
//! Each source is read like the damaged file ([`super::collect`]); their
//! findings are joined per revision. A revision is the same record in every
//! file of one cluster (etcd's keyspace is replicated), so copies must agree
//! byte for byte; where two sources hold different bytes at one revision
//! nothing says which is right, so the revision is left out of the output
//! and reported as a conflict (its key is then listed as lost) rather than
//! one copy being picked. A source of another cluster would fill the output
//! with records that never existed there: its members bucket must share a
//! member ID with the damaged file's, when both are readable.

use std::collections::{BTreeMap, HashMap};

use crate::mvcc::Revision;

use super::Findings;
use super::record::KeyRecord;
use super::report::{Conflict, SourceReport};

/// Why a source is refused.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The members buckets share no member.
    #[error(
        "{source_name}: another cluster (members {theirs}; {primary}: members {ours}); \
         its records would be mixed into this cluster's keyspace (--force-source takes it anyway)"
    )]
    Unrelated {
        /// The refused source.
        source_name: String,
        /// Its member IDs.
        theirs: String,
        /// The damaged file.
        primary: String,
        /// The damaged file's member IDs.
        ours: String,
    },
}

/// Member IDs of a findings' members bucket (keys are hex IDs), when any
/// was read.
pub fn member_ids(f: &Findings<'_>) -> Option<Vec<u64>> {
    let (_, entries) = f.buckets.get(&b"members"[..])?;
    let ids: Vec<u64> = entries
        .keys()
        .filter_map(|k| std::str::from_utf8(k).ok())
        .filter_map(|k| u64::from_str_radix(k, 16).ok())
        .collect();
    (!ids.is_empty()).then_some(ids)
}

fn hex_list(ids: &Option<Vec<u64>>) -> String {
    match ids {
        Some(ids) => ids
            .iter()
            .map(|i| format!("{i:x}"))
            .collect::<Vec<_>>()
            .join(","),
        None => "unreadable".to_string(),
    }
}

/// Checks that `source` belongs to the cluster of `primary`: refused when
/// both members buckets were read and share no member ID. Returns whether
/// the check could be made.
pub fn same_cluster(
    primary: &Findings<'_>,
    primary_name: &str,
    source: &Findings<'_>,
    source_name: &str,
) -> Result<bool, SourceError> {
    let ours = member_ids(primary);
    let theirs = member_ids(source);
    match (&ours, &theirs) {
        (Some(a), Some(b)) => {
            if a.iter().any(|i| b.contains(i)) {
                Ok(true)
            } else {
                Err(SourceError::Unrelated {
                    source_name: source_name.to_string(),
                    theirs: hex_list(&theirs),
                    primary: primary_name.to_string(),
                    ours: hex_list(&ours),
                })
            }
        }
        _ => Ok(false),
    }
}

/// Which source gave each record of joined findings.
pub struct Provenance {
    /// Source names, the damaged file first.
    pub names: Vec<String>,
    /// Per revision, the index of the source whose copy was taken.
    pub by_revision: HashMap<Revision, usize>,
    /// Whether each source's cluster could be checked.
    pub checked: Vec<bool>,
    /// Revisions left out because sources disagree.
    pub conflicts: Vec<Conflict>,
}

impl Provenance {
    /// The per-source counts for the report, given the records written
    /// and the revision of each recovered key's newest record.
    pub fn report(&self, written: &[Revision], newest: &[Revision]) -> Vec<SourceReport> {
        let mut out: Vec<SourceReport> = self
            .names
            .iter()
            .zip(&self.checked)
            .map(|(n, c)| SourceReport {
                file: n.clone(),
                cluster_checked: *c,
                revisions_written: 0,
                keys_newest: 0,
            })
            .collect();
        for r in written {
            if let Some(&i) = self.by_revision.get(r) {
                out[i].revisions_written += 1;
            }
        }
        for r in newest {
            if let Some(&i) = self.by_revision.get(r) {
                out[i].keys_newest += 1;
            }
        }
        out
    }
}

/// Covered revision ranges as the complement of `damaged` within
/// `[1, newest]`: what a file holds whole.
fn uncovered(damaged: &[(i64, i64)], newest: i64) -> Vec<(i64, i64)> {
    // A file is silent past its newest revision: that part counts as not
    // held, like a damaged range.
    let mut v: Vec<(i64, i64)> = damaged.to_vec();
    v.push((newest.saturating_add(1), i64::MAX));
    v.sort_unstable();
    v
}

fn intersect(a: &[(i64, i64)], b: &[(i64, i64)]) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    for &(x0, x1) in a {
        for &(y0, y1) in b {
            let (s, e) = (x0.max(y0), x1.min(y1));
            if s <= e {
                out.push((s, e));
            }
        }
    }
    out.sort_unstable();
    // Overlapping pieces joined, so that no revision counts twice.
    let mut joined: Vec<(i64, i64)> = Vec::with_capacity(out.len());
    for (s, e) in out {
        match joined.last_mut() {
            Some(last) if s <= last.1.saturating_add(1) => last.1 = last.1.max(e),
            _ => joined.push((s, e)),
        }
    }
    joined
}

/// Joins the damaged file's findings with the sources' (already checked to
/// be of its cluster). The damaged file's other buckets win; a bucket it
/// lacks is taken from the first source that has one.
pub fn join<'a>(
    primary: Findings<'a>,
    primary_name: &str,
    sources: Vec<(String, Findings<'a>, bool)>,
) -> (Findings<'a>, Provenance) {
    let mut names = vec![primary_name.to_string()];
    let mut checked = vec![true];
    let mut all = vec![primary];
    for (n, f, c) in sources {
        names.push(n);
        checked.push(c);
        all.push(f);
    }
    // Every copy of every revision, by source.
    let mut copies: BTreeMap<Revision, Vec<(usize, KeyRecord<'a>)>> = BTreeMap::new();
    for (i, f) in all.iter_mut().enumerate() {
        for r in std::mem::take(&mut f.records) {
            copies.entry(r.revision).or_default().push((i, r));
        }
    }
    let mut by_revision = HashMap::new();
    let mut conflicts = Vec::new();
    let mut records = Vec::with_capacity(copies.len());
    let mut extra_copies = 0u64;
    let mut evidence: Vec<(&'a [u8], Revision)> = Vec::new();
    for (rev, cs) in copies {
        let (first_i, first) = &cs[0];
        let agree = cs[1..].iter().all(|(_, r)| {
            r.key == first.key && r.value == first.value && r.tombstone == first.tombstone
        });
        if agree {
            extra_copies += (cs.len() - 1) as u64;
            let mut r = first.clone();
            r.in_tree = cs.iter().any(|(_, r)| r.in_tree);
            by_revision.insert(rev, *first_i);
            records.push(r);
        } else {
            let mut srcs: Vec<String> = cs.iter().map(|(i, _)| names[*i].clone()).collect();
            srcs.dedup();
            let mut keys: Vec<String> = cs
                .iter()
                .map(|(_, r)| crate::report::escape_bytes(r.key))
                .collect();
            keys.sort();
            keys.dedup();
            conflicts.push(Conflict {
                revision: rev.main,
                sub: rev.sub,
                keys,
                sources: srcs,
            });
            for (_, r) in &cs {
                evidence.push((r.key, rev));
            }
        }
    }
    let newest_named = all.iter().map(|f| f.newest_named).max().unwrap_or(0);
    // Ranges no source holds whole.
    let mut damaged = uncovered(&all[0].damaged_mains, all[0].newest_named);
    for f in &all[1..] {
        damaged = intersect(&damaged, &uncovered(&f.damaged_mains, f.newest_named));
    }
    let damaged_mains: Vec<(i64, i64)> = damaged
        .into_iter()
        .filter(|(s, _)| *s <= newest_named)
        .map(|(s, e)| (s, e.min(newest_named)))
        .collect();
    let tail_known = all
        .iter()
        .any(|f| f.tail_known && f.counts.revision >= newest_named);
    let tail_revision = all
        .iter()
        .filter(|f| f.tail_known)
        .map(|f| f.counts.revision)
        .max()
        .unwrap_or(0);

    let mut rest = all.split_off(1);
    let mut out = all.remove(0);
    for f in &mut rest {
        for (name, b) in std::mem::take(&mut f.buckets) {
            if !out.buckets.contains_key(name) {
                if let Some(c) = f.left_out.conflicts.remove(name) {
                    out.left_out.conflicts.insert(name, c);
                }
                out.buckets.insert(name, b);
            }
        }
        out.evidence.extend(std::mem::take(&mut f.evidence));
        out.counts.seen += f.counts.seen;
        out.counts.copies += f.counts.copies;
        for (k, v) in &f.counts.rejected {
            *out.counts.rejected.entry(k.clone()).or_default() += v;
        }
    }
    out.evidence.extend(evidence);
    out.counts.copies += extra_copies;
    out.counts.intact = records.len() as u64;
    out.counts.revision = tail_revision.max(out.counts.revision);
    out.records = records;
    out.newest_named = newest_named;
    out.tail_known = tail_known;
    out.damaged_mains = damaged_mains;
    (
        out,
        Provenance {
            names,
            by_revision,
            checked,
            conflicts,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intersection_of_damage() {
        let a = uncovered(&[(1, 10)], 20);
        let b = uncovered(&[(5, 30)], 15);
        // a lacks 1-10 and 21-; b lacks 5-30 and 16-: neither holds 5-10, 21-.
        assert_eq!(intersect(&a, &b), vec![(5, 10), (21, i64::MAX)]);
    }
}
