//! `salvage`: when the only backup is damaged, every intact record taken out
//! of it into a snapshot etcd can restore.
//!
//! `verify` says a snapshot is damaged; this module is what comes next. It
//! reads every page of the file ([`scan`]) — reachable or not, since freed
//! and orphaned pages may hold the newest copy of a leaf — recognises etcd's
//! leaves by structure and contents, takes every record that checks out
//! completely ([`record`]), places pages in buckets as far as a surviving
//! tree says ([`tree`]), keeps per key the newest intact revision and the
//! older ones that provably follow on ([`assemble`]), and writes a fresh file
//! with our bbolt writer, the sha256 trailer `snapshot save` appends and a
//! consistent meta ([`output`]). The [`report`] says what was recovered and
//! what is lost. The input is only read.
//!
//! Other sources (another member's snapshot, an older backup) fill the
//! gaps ([`merge`]): [`collect`] gathers one file's findings, [`merge::join`]
//! joins several files' findings per revision, and [`build`] assembles
//! findings into the output. [`view`] holds the output in memory for the
//! object commands' `--salvage`.

pub mod assemble;
pub mod buckets;
pub mod explain;
pub mod merge;
pub mod output;
pub mod record;
pub mod report;
pub mod scan;
pub mod tree;
pub mod view;

use std::collections::{BTreeMap, HashSet};

use std::borrow::Cow;

use rayon::prelude::*;

use crate::bolt::meta::Meta;
use crate::bolt::page::FLAG_LEAF;
use crate::bolt::write::{BucketData, Entry};
use crate::input::split_trailer;
use crate::mvcc::Revision;

use record::{KeyRecord, RawElement, Reject, check_key_record, is_revision_key, leaf_elements};
use report::{BucketReport, BucketStatus, Records, Report};
use scan::{Found, PageSizeSource, ScanStats};
use tree::{ETCD_BUCKETS, RootSource};

/// Why nothing could be salvaged.
#[derive(Debug, thiserror::Error)]
pub enum SalvageError {
    /// No page size under which any page carries its own id.
    #[error("{0}: no bbolt page found (not a bbolt file, or nothing of it survives)")]
    NoPages(String),
    /// Pages, but not one intact record of etcd's `key` bucket.
    #[error("{0}: no intact record of etcd's key bucket found")]
    NoRecords(String),
    /// The output could not be written.
    #[error(transparent)]
    Write(#[from] output::WriteError),
}

/// A leaf's elements, and each readable one checked as a `key` record.
type CheckedLeaf<'a> = (
    Vec<Result<RawElement<'a>, Reject>>,
    Vec<Option<Result<KeyRecord<'a>, (Reject, record::Evidence<'a>)>>>,
);

/// A bucket's entries as found, and where they came from.
type FoundBucket<'a> = (BucketStatus, BTreeMap<&'a [u8], &'a [u8]>);
/// Key/value pairs in key order, borrowed from the input where they can be.
pub type Entries<'a> = Vec<Entry<'a>>;

/// Keys of etcd's `meta` bucket.
const META_KEYS: &[&[u8]] = &[
    b"consistent_index",
    b"term",
    b"scheduledCompactRev",
    b"finishedCompactRev",
    b"confState",
    b"storageVersion",
];

/// What one file gave: intact records, evidence of damaged ones, other
/// buckets' entries, and the counts for the report.
pub struct Findings<'a> {
    page_size: usize,
    page_size_source: PageSizeSource,
    valid_metas: u8,
    root: RootSource,
    scan: ScanStats,
    records: Vec<KeyRecord<'a>>,
    evidence: Vec<(&'a [u8], Revision)>,
    counts: Records,
    buckets: BTreeMap<&'static [u8], FoundBucket<'a>>,
    tail_known: bool,
    newest_named: i64,
    damaged_mains: Vec<(i64, i64)>,
    left_out: buckets::LeftOut,
}

impl Findings<'_> {
    /// The page size the file was read with.
    pub fn page_size(&self) -> usize {
        self.page_size
    }
}

fn big_endian_u64(v: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(v.try_into().ok()?))
}

/// Reads every page of `bytes` (a whole snapshot file, trailer or not) and
/// gathers what is intact. `name` is for messages.
pub fn collect<'a>(bytes: &'a [u8], name: &str) -> Result<Findings<'a>, SalvageError> {
    let data = if bytes.len() % 512 == 32 {
        split_trailer(bytes).0
    } else {
        bytes
    };
    let (page_size, page_size_source) =
        scan::page_size(data).ok_or_else(|| SalvageError::NoPages(name.to_string()))?;
    let metas: Vec<Meta> = [0usize, page_size]
        .iter()
        .filter_map(|&off| data.get(off..).and_then(|p| Meta::parse(p).ok()))
        .filter(|m| m.page_size as usize == page_size)
        .collect();
    let mut leaves: Vec<Found<'a>> = Vec::new();
    let stats = scan::scan(data, page_size, |f| {
        if f.node.header.flags == FLAG_LEAF {
            leaves.push(f);
        }
    });
    // Root-bucket leaves, with the consistent index of their inline meta
    // (every leaf is looked at: on all cores).
    let roots: Vec<(u64, u64, Found<'a>)> = leaves
        .par_iter()
        .filter_map(|f| {
            let elements = tree::root_elements(f)?;
            let ci = elements
                .iter()
                .find(|(n, _)| *n == b"meta")
                .and_then(|(_, h)| match h.root {
                    crate::bolt::page::BucketRoot::Inline(b) => {
                        let h = crate::bolt::page::PageHeader::parse(b)?;
                        let inline = Found {
                            pgid: f.pgid,
                            node: crate::bolt::page::Node {
                                header: h,
                                bytes: b,
                            },
                            whole: true,
                            damaged: Vec::new(),
                        };
                        leaf_elements(&inline)
                            .into_iter()
                            .flatten()
                            .find(|e| e.key == b"consistent_index")
                            .and_then(|e| big_endian_u64(e.value))
                    }
                    crate::bolt::page::BucketRoot::Page(_) => None,
                })
                .unwrap_or(0);
            Some((f.pgid, ci, f.clone()))
        })
        .collect();
    // Each leaf's elements, and each readable element checked as a record
    // of the key bucket, on all cores: decoding the values is most of the
    // work. The tree is walked meanwhile (one core, for a while).
    let ((mut tree, root), checked): (_, Vec<CheckedLeaf<'a>>) = rayon::join(
        || tree::build(data, page_size, &metas, &roots),
        || {
            leaves
                .par_iter()
                .map(|f| {
                    let elements = leaf_elements(f);
                    let checks = elements
                        .iter()
                        .map(|e| e.as_ref().ok().map(|e| check_key_record(e.key, e.value)))
                        .collect();
                    (elements, checks)
                })
                .collect()
        },
    );
    // A root leaf found by scanning may be a freed, older copy: its buckets
    // are only "found", and its view of the key bucket proves nothing.
    // With both meta pages broken, the found root leaf whose inline meta has
    // the highest consistent index, when no other copy has as high a one, is
    // the newest: etcd writes the consistent index in every transaction.
    let max_ci = roots.iter().map(|r| r.1).max().unwrap_or(0);
    let newest_root = roots.iter().filter(|r| r.1 == max_ci).count() == 1 && max_ci > 0;
    let trusted = root == RootSource::Meta
        || (metas.is_empty() && root == RootSource::Scanned && newest_root);
    if !trusted {
        tree.leaf_bucket.retain(|_, b| *b != b"key");
        tree.key_leaf_ranges.clear();
        tree.key_lost_ranges.clear();
        tree.key_last_leaf = None;
        tree.key_root_read = false;
    }
    let found_status = if trusted {
        BucketStatus::Recovered
    } else {
        BucketStatus::Scanned
    };
    // (foldhash: these sets see every leaf; page ids are no attacker's keys
    // to collide, and foldhash is randomly seeded anyway.)
    let root_pages: HashSet<u64, foldhash::fast::RandomState> = roots.iter().map(|r| r.0).collect();

    let mut counts = Records::default();
    let mut rejected: BTreeMap<Reject, u64> = BTreeMap::new();
    let mut evidence = Vec::new();
    // Intact copies by revision key: the record, whether a tree reaches it.
    // (Grouped by sorting on the revision and deletion flag, which the
    // revision key encodes: cheaper than hashing two million keys.)
    let mut intact: Vec<(KeyRecord<'a>, bool)> = Vec::new();
    let mut buckets: BTreeMap<&'static [u8], FoundBucket<'a>> = BTreeMap::new();
    let mut meta_candidates: Vec<(u64, Vec<RawElement<'a>>)> = Vec::new();
    let mut scanned = buckets::Scanned::default();
    let mut tail_known = false;
    let mut intact_leaves: HashSet<u64, foldhash::fast::RandomState> = HashSet::default();
    intact.reserve(checked.iter().map(|(e, _)| e.len()).sum());
    for (f, (elements, checks)) in leaves.iter().zip(checked) {
        if root_pages.contains(&f.pgid) {
            continue;
        }
        let label = tree.leaf_bucket.get(&f.pgid).copied();
        let readable: Vec<&RawElement<'a>> = elements.iter().flatten().collect();
        let revision_keys = readable.iter().filter(|e| is_revision_key(e.key)).count();
        let is_key_leaf = if label == Some(b"key") {
            revision_keys > 0 || readable.is_empty()
        } else {
            revision_keys > 0 && revision_keys * 2 >= readable.len()
        };
        if is_key_leaf {
            let reachable = label == Some(b"key");
            let mut all_intact = reachable;
            let mut leaf_max = i64::MIN;
            for (e, check) in elements.iter().zip(checks) {
                counts.seen += 1;
                let check = match (e, check) {
                    (Ok(_), Some(check)) => check,
                    (Err(why), _) => {
                        all_intact = false;
                        *rejected.entry(*why).or_default() += 1;
                        continue;
                    }
                    (Ok(_), None) => continue,
                };
                match check {
                    Ok(mut r) => {
                        r.in_tree = reachable;
                        r.page = f.pgid;
                        leaf_max = leaf_max.max(r.revision.main);
                        intact.push((r, reachable));
                    }
                    Err((why, ev)) => {
                        all_intact = false;
                        *rejected.entry(why).or_default() += 1;
                        evidence.extend(ev);
                    }
                }
            }
            evidence.extend(record::damaged_evidence(f));
            if reachable && all_intact && f.whole {
                intact_leaves.insert(f.pgid);
                if tree.key_last_leaf == Some(f.pgid) {
                    tail_known = true;
                    counts.revision = counts.revision.max(leaf_max);
                }
            }
            continue;
        }
        let damaged = elements.iter().any(Result::is_err);
        match label {
            Some(b) if b != b"key" => {
                let (status, entries) = buckets.entry(b).or_insert((found_status, BTreeMap::new()));
                if damaged {
                    *status = BucketStatus::Partial;
                }
                for e in readable {
                    entries.insert(e.key, e.value);
                }
            }
            _ => {
                let meta_like = !readable.is_empty()
                    && readable.iter().all(|e| META_KEYS.contains(&e.key))
                    && readable.iter().any(|e| e.key == b"consistent_index");
                if meta_like {
                    let ci = readable
                        .iter()
                        .find(|e| e.key == b"consistent_index")
                        .and_then(|e| big_endian_u64(e.value))
                        .unwrap_or(0);
                    meta_candidates.push((ci, readable.into_iter().copied().collect()));
                } else {
                    scanned.add(&readable);
                }
            }
        }
    }
    for (name, elements) in &tree.inline {
        let entries = elements.iter().map(|e| (e.key, e.value)).collect();
        let status = if tree.inline_damaged.contains(name) {
            BucketStatus::Partial
        } else {
            found_status
        };
        buckets.insert(name, (status, entries));
    }
    let left_out = scanned.fill(&mut buckets);
    if !buckets.contains_key(&b"meta"[..])
        && let Some((_, els)) = meta_candidates.into_iter().max_by_key(|(ci, _)| *ci)
    {
        let entries = els.iter().map(|e| (e.key, e.value)).collect();
        buckets.insert(b"meta", (BucketStatus::Scanned, entries));
    }

    // One record per revision: copies must agree; where they do not, the
    // copy a tree reaches wins, else the revision is lost.
    intact.par_sort_unstable_by_key(|(r, _)| (r.revision, r.tombstone));
    let mut records = Vec::with_capacity(intact.len());
    for copies in
        intact.chunk_by(|(a, _), (b, _)| (a.revision, a.tombstone) == (b.revision, b.tombstone))
    {
        let first = &copies[0].0;
        if copies[1..].iter().all(|(r, _)| r.value == first.value) {
            counts.copies += (copies.len() - 1) as u64;
            let mut r = copies[0].0.clone();
            r.in_tree = copies.iter().any(|(_, t)| *t);
            records.push(r);
            continue;
        }
        let reached: Vec<&KeyRecord<'a>> =
            copies.iter().filter(|(_, t)| *t).map(|(r, _)| r).collect();
        match reached.as_slice() {
            [one] => {
                counts.copies += (copies.len() - 1) as u64;
                let mut r = (*one).clone();
                r.in_tree = true;
                records.push(r);
            }
            _ => {
                *rejected.entry(Reject::Conflict).or_default() += copies.len() as u64;
                evidence.push((first.key, first.revision));
            }
        }
    }
    // Ranges of the tree's `key` leaves: those read whole say which
    // revisions the tree holds; the others, and subtrees that could not be
    // read, are damaged ranges.
    let mut whole_ranges: Vec<(Option<Revision>, Option<Revision>)> = Vec::new();
    let mut damaged_ranges: Vec<(Option<Revision>, Option<Revision>)> =
        tree.key_lost_ranges.clone();
    for (pgid, range) in &tree.key_leaf_ranges {
        if intact_leaves.contains(pgid) {
            whole_ranges.push(*range);
        } else {
            damaged_ranges.push(*range);
        }
    }
    // The tree's leaves have disjoint ranges: sorted by start, the one that
    // may hold a revision is the last starting at or before it.
    let floor = Revision {
        main: i64::MIN,
        sub: i64::MIN,
    };
    whole_ranges.sort_by_key(|(from, _)| from.unwrap_or(floor));
    let within_whole = |r: Revision| {
        let n = whole_ranges.partition_point(|(from, _)| from.unwrap_or(floor) <= r);
        n > 0 && whole_ranges[n - 1].1.is_none_or(|t| r < t)
    };
    // A record on a freed page inside the range of a leaf the tree holds
    // whole, and not in it, is one that compaction removed.
    records.retain(|r| {
        let gone = !r.in_tree && within_whole(r.revision);
        if gone {
            counts.compacted += 1;
        }
        !gone
    });
    let newest_record = records.iter().map(|r| r.revision.main).max().unwrap_or(0);
    if !tree.key_root_read {
        // No tree to say what lies at or below the compaction revision.
        damaged_ranges.push((None, None));
    }
    let damaged_mains: Vec<(i64, i64)> = damaged_ranges
        .iter()
        .map(|(f, t)| (f.map_or(1, |f| f.main), t.map_or(newest_record, |t| t.main)))
        .collect();
    counts.intact = records.len() as u64;
    counts.rejected = rejected
        .into_iter()
        .map(|(k, v)| (k.describe().to_string(), v))
        .collect();
    let newest_named = records
        .iter()
        .map(|r| r.revision.main)
        .chain(evidence.iter().map(|e| e.1.main))
        .chain(
            tree.key_branch_keys
                .iter()
                .filter_map(|k| crate::mvcc::RevisionKey::parse(k).ok())
                .map(|k| k.revision.main),
        )
        .max()
        .unwrap_or(0);
    // The last leaf must hold the newest revision found for the tail to count
    // as known (a scanned root may be an older tree's).
    if counts.revision < newest_named {
        tail_known = false;
    }
    if records.is_empty() {
        return Err(SalvageError::NoRecords(name.to_string()));
    }
    Ok(Findings {
        page_size,
        page_size_source,
        valid_metas: metas.len() as u8,
        root,
        scan: stats,
        records,
        evidence,
        counts,
        buckets,
        tail_known,
        newest_named,
        damaged_mains,
        left_out,
    })
}

/// What is written: the buckets of the output, and the report.
pub struct Salvaged<'a> {
    /// The output's buckets, sorted by name, entries sorted by key.
    pub buckets: Vec<BucketData<'a>>,
    /// The page size to write with.
    pub page_size: usize,
    /// What was recovered and lost (its key lists filled by
    /// [`Salvaged::finish_report`]).
    pub report: Report,
    /// The report's key lists, until built.
    lists: Option<assemble::Lists<'a>>,
}

impl Salvaged<'_> {
    /// Fills the report's lists of keys recovered, lost and possibly stale
    /// (once; [`build_from`] has done it, [`build_deferred`] leaves it to
    /// be done beside the write).
    pub fn finish_report(&mut self) {
        finish_lists(&mut self.report, &mut self.lists);
    }
}

/// [`Salvaged::finish_report`] on its fields (the write borrows the others).
fn finish_lists(report: &mut Report, lists: &mut Option<assemble::Lists<'_>>) {
    if let Some(lists) = lists.take() {
        let l = lists.build();
        report.recovered = l.recovered;
        report.lost = l.lost;
        report.possibly_stale = l.stale;
    }
}

/// Assembles `findings` into the output's buckets and the report.
/// `prefix` is the API server's storage prefix (`/registry`).
pub fn build<'a>(findings: Findings<'a>, name: &str, prefix: &str) -> Salvaged<'a> {
    build_from(findings, None, name, prefix)
}

/// [`build`] of findings joined from several sources ([`merge::join`]):
/// the report also says which source gave what, and the conflicts.
pub fn build_from<'a>(
    findings: Findings<'a>,
    provenance: Option<&merge::Provenance>,
    name: &str,
    prefix: &str,
) -> Salvaged<'a> {
    let mut s = build_deferred(findings, provenance, name, prefix);
    s.finish_report();
    s
}

/// [`build_from`] with the report's key lists left to
/// [`Salvaged::finish_report`] ([`output::write`] builds them while the
/// output is written).
pub fn build_deferred<'a>(
    findings: Findings<'a>,
    provenance: Option<&merge::Provenance>,
    name: &str,
    prefix: &str,
) -> Salvaged<'a> {
    let f = findings;
    let meta = f.buckets.get(&b"meta"[..]);
    let compact = meta
        .and_then(|(_, m)| m.get(&b"finishedCompactRev"[..]))
        .and_then(|v| crate::mvcc::RevisionKey::parse(v).ok())
        .map(|r| r.revision.main);
    // etcd 3.6 on (the releases that write a storage version) keep a
    // deletion at the compaction revision.
    let keeps_tombstone = meta.is_some_and(|(_, m)| m.contains_key(&b"storageVersion"[..]));
    let a = assemble::assemble(
        &f.records,
        &f.evidence,
        compact,
        keeps_tombstone,
        &f.damaged_mains,
        f.newest_named,
        prefix,
    );
    let mut counts = f.counts.clone();
    counts.compacted = a.compacted;
    counts.unchained = a.unchained;
    counts.written = a.kept.len() as u64;
    counts.revision = f.newest_named;
    counts.compact_revision = compact;

    let mut out = Vec::new();
    let mut bucket_reports = Vec::new();
    for &bucket in ETCD_BUCKETS {
        let (status, entries): (BucketStatus, Entries<'a>) = if bucket == b"key" {
            // In revision order already.
            let entries = a
                .kept
                .iter()
                .map(|r| {
                    (
                        Cow::Owned(crate::mvcc::RevisionKey::encode(r.revision, r.tombstone)),
                        Cow::Borrowed(r.value),
                    )
                })
                .collect();
            (BucketStatus::Recovered, entries)
        } else if bucket == b"meta" {
            meta_entries(meta, f.newest_named)
        } else {
            match f.buckets.get(bucket) {
                Some((s, m)) => (
                    *s,
                    m.iter()
                        .map(|(k, v)| (Cow::Borrowed(*k), Cow::Borrowed(*v)))
                        .collect(),
                ),
                None => (BucketStatus::NotFound, Vec::new()),
            }
        };
        bucket_reports.push(BucketReport {
            name: String::from_utf8_lossy(bucket).into_owned(),
            status,
            entries: entries.len() as u64,
            conflicts: f
                .left_out
                .conflicts
                .get(bucket)
                .into_iter()
                .flatten()
                .map(|k| crate::report::escape_bytes(k))
                .collect(),
        });
        out.push(BucketData {
            name: Cow::Borrowed(bucket),
            entries,
        });
    }
    out.sort_by(|x, y| x.name.cmp(&y.name));
    let conflicts = provenance.map(|p| p.conflicts.clone()).unwrap_or_default();
    let complete = !a.lists.any_lost()
        && !a.lists.any_stale()
        && a.missing == 0
        && f.tail_known
        && conflicts.is_empty();
    let mut lists = a.lists;
    let sources = match provenance {
        Some(p) => {
            let written: Vec<Revision> = a.kept.iter().map(|r| r.revision).collect();
            let newest_revs: Vec<Revision> = lists.newest().map(|(_, r)| r).collect();
            let names = newest_revs
                .iter()
                .map(|r| p.by_revision.get(r).and_then(|i| p.names.get(*i)).cloned())
                .collect();
            lists.set_sources(names);
            p.report(&written, &newest_revs)
        }
        None => Vec::new(),
    };
    let report = Report {
        file: name.to_string(),
        output: None,
        moved_aside: None,
        page_size: f.page_size,
        page_size_source: f.page_size_source,
        valid_meta_pages: f.valid_metas,
        root: f.root,
        scan: f.scan,
        records: counts,
        keys: a.keys,
        buckets: bucket_reports,
        ambiguous_leaves: f.left_out.ambiguous_leaves,
        lost: Vec::new(),
        possibly_stale: Vec::new(),
        recovered: Vec::new(),
        missing_revisions: a.missing,
        missing_ranges: a.missing_ranges,
        missing_explained: a.explained,
        newest_revisions_known: f.tail_known,
        complete,
        sources,
        conflicts,
    };
    Salvaged {
        buckets: out,
        page_size: f.page_size,
        report,
        lists: Some(lists),
    }
}

/// The output's `meta` bucket: the one found, with a consistent index made
/// up from the newest revision when it has none (or none was found).
fn meta_entries<'a>(found: Option<&FoundBucket<'a>>, newest: i64) -> (BucketStatus, Entries<'a>) {
    let mut entries: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    let mut status = BucketStatus::Derived;
    if let Some((s, m)) = found {
        status = *s;
        for (k, v) in m {
            // Only values that read as etcd writes them.
            let mut probe = crate::backend::meta::MetaInfo::default();
            if probe.take(k, v).is_none() {
                entries.insert(k.to_vec(), v.to_vec());
            }
        }
    }
    let ci_ok = entries
        .get(&b"consistent_index"[..])
        .is_some_and(|v| v.len() == 8);
    if !ci_ok {
        status = BucketStatus::Derived;
        entries.insert(
            b"consistent_index".to_vec(),
            (newest.max(1) as u64).to_be_bytes().to_vec(),
        );
    }
    // finishedCompactRev must not be past scheduledCompactRev.
    let rev = |k: &[u8]| {
        entries
            .get(k)
            .and_then(|v| crate::mvcc::RevisionKey::parse(v).ok())
            .map(|r| r.revision.main)
    };
    if let (Some(s), Some(f)) = (rev(b"scheduledCompactRev"), rev(b"finishedCompactRev"))
        && f > s
    {
        entries.remove(&b"finishedCompactRev"[..]);
    }
    let entries = entries
        .into_iter()
        .map(|(k, v)| (Cow::Owned(k), Cow::Owned(v)))
        .collect();
    (status, entries)
}

/// Salvages `bytes` (read from `name`): [`collect`] then [`build`].
pub fn salvage<'a>(
    bytes: &'a [u8],
    name: &str,
    prefix: &str,
) -> Result<Salvaged<'a>, SalvageError> {
    let findings = collect(bytes, name)?;
    Ok(build(findings, name, prefix))
}
