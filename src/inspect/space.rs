//! Space: the file's pages, those in use and free, and what `etcdctl defrag`
//! and `etcdctl compact` + defrag would leave, from the layout model of
//! [`super::layout`] over the buckets as they are and as a compaction at the
//! current revision would leave them (every key's live revision only).

use std::ops::ControlFlow;

use serde::Serialize;

use super::header::Alarm;
use super::layout::{BucketLayout, ETCD_FILL, Element, Placed, file_pages, last_commit_before};
use super::walk::Walked;
use crate::backend::{KEY, META};
use crate::bolt::Db;
use crate::bolt::page::NO_FREELIST;
use crate::bolt::read::{self, Bucket, ReadError};

/// Where the file's bytes go, and what defragmentation and compaction would give back.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Space {
    /// Bytes of the database (without a snapshot's sha256 trailer).
    pub file_bytes: u64,
    /// The page size.
    pub page_size: u64,
    /// The high-water mark: pages the database spans.
    pub pages: u64,
    /// Pages no tree uses (free, or pending release).
    pub free_pages: Option<u64>,
    /// Pages some tree uses (the high-water mark less the free pages).
    pub pages_in_use: Option<u64>,
    /// The file's size after `etcdctl defrag` (model of bbolt's layout).
    pub after_defrag_bytes: u64,
    /// What a defrag gives back: the file's bytes less `after_defrag_bytes`.
    pub defrag_gain_bytes: u64,
    /// Revisions a compaction at the current revision removes, and their
    /// bytes in the key bucket (record and revision key).
    pub history_revisions: u64,
    /// Bytes of those revisions.
    pub history_bytes: u64,
    /// The file's size after `etcdctl compact <revision>` and a defrag.
    pub after_compact_and_defrag_bytes: u64,
    /// What the compaction adds to the defrag's gain.
    pub compaction_gain_bytes: u64,
    /// What to do, in a sentence.
    pub advice: String,
}

/// A bucket other than `key`, placed as it is and as after a compaction.
pub struct OtherBucket {
    /// The bucket's name.
    pub name: Vec<u8>,
    /// Its elements.
    pub elements: u64,
    /// How it is placed now.
    pub now: Placed,
    /// How it would be placed after a compaction.
    pub compacted: Placed,
}

/// Lays out every bucket except `key` (small ones: read in full here).
pub fn other_buckets(db: &Db<'_>, buckets: &[Bucket<'_>]) -> Result<Vec<OtherBucket>, ReadError> {
    let page = db.page_size();
    let mut out = Vec::new();
    for b in buckets.iter().filter(|b| b.name != KEY) {
        let mut now = BucketLayout::new(page, ETCD_FILL);
        let mut compacted = BucketLayout::new(page, ETCD_FILL);
        let (mut scheduled, mut finished) = (false, false);
        read::for_each(db, b, |e| {
            let el = Element::leaf(e.key.len(), e.value.len());
            now.push(el);
            compacted.push(el);
            scheduled |= e.key == b"scheduledCompactRev";
            finished |= e.key == b"finishedCompactRev";
            ControlFlow::Continue(())
        })?;
        if b.name == META {
            // A compaction records both revisions (8+1+8 bytes each).
            if !finished {
                compacted.push(Element::leaf(b"finishedCompactRev".len(), 17));
            }
            if !scheduled {
                compacted.push(Element::leaf(b"scheduledCompactRev".len(), 17));
            }
        }
        out.push(OtherBucket {
            name: b.name.to_vec(),
            elements: now.elements(),
            now: now.finish(),
            compacted: compacted.finish(),
        });
    }
    Ok(out)
}

/// Pages of the tree rooted at `pgid` (branches, leaves and their overflow),
/// reading page headers only. `None` when a page is not a tree page.
fn tree_pages(db: &Db<'_>, pgid: u64) -> Option<u64> {
    use crate::bolt::page::{FLAG_BRANCH, FLAG_LEAF};
    let mut pages = 0u64;
    let mut stack = vec![(pgid, 0usize)];
    while let Some((p, depth)) = stack.pop() {
        if depth > crate::bolt::walk::MAX_DEPTH {
            return None;
        }
        let node = db.node(p).ok()?;
        pages += 1 + u64::from(node.header.overflow);
        match node.header.flags {
            FLAG_LEAF => {}
            FLAG_BRANCH => {
                for i in 0..node.count() {
                    stack.push((node.branch(i).ok()?.child, depth + 1));
                }
            }
            _ => return None,
        }
    }
    Some(pages)
}

/// Pages in use: the two metas, the freelist (if the file keeps one), the
/// root tree and every bucket's tree. Headers of the pages only: the leaves'
/// contents are the key walk's. `None` when a tree cannot be followed.
pub fn pages_in_use(db: &Db<'_>, buckets: &[Bucket<'_>]) -> Option<u64> {
    use crate::bolt::page::BucketRoot;
    let meta = db.meta();
    let mut used = 2 + tree_pages(db, meta.root)?;
    if meta.freelist != NO_FREELIST {
        used += 1 + u64::from(db.header(meta.freelist).ok()?.overflow);
    }
    for b in buckets {
        if let BucketRoot::Page(p) = b.header.root {
            used += tree_pages(db, p)?;
        }
    }
    Some(used.min(db.hwm()))
}

/// The space figures of `db`, from the walk of its key bucket and its other buckets.
pub fn space(
    db: &Db<'_>,
    walked: &Walked<'_>,
    others: &[OtherBucket],
    revision: i64,
    alarms: &[Alarm],
    in_use: Option<u64>,
) -> Space {
    let page = db.page_size();
    // Elements of the buckets before and after `key`, for the defrag's commits.
    let before: u64 = others
        .iter()
        .filter(|o| o.name.as_slice() < KEY)
        .map(|o| o.elements)
        .sum();
    let after: u64 = others
        .iter()
        .filter(|o| o.name.as_slice() > KEY)
        .map(|o| o.elements)
        .sum();
    let in_key = |n: u64| {
        last_commit_before(before + n + after)
            .and_then(|g| g.checked_sub(before))
            .filter(|&i| i < n)
    };
    let mut now = BucketLayout::new(page, ETCD_FILL);
    now.mark_before(in_key(walked.elements.len() as u64));
    for e in &walked.elements {
        now.push(*e);
    }
    // After a compaction: each live key's newest revision, in revision order.
    let mut kept: Vec<(crate::mvcc::Revision, u32)> = walked
        .keys
        .values()
        .filter(|f| !f.tombstone)
        .map(|f| (f.newest, f.newest_element))
        .collect();
    kept.sort_unstable();
    let mut compacted = BucketLayout::new(page, ETCD_FILL);
    compacted.mark_before(in_key(kept.len() as u64));
    for (_, size) in &kept {
        // 16-byte element header, 17-byte revision key, then the record.
        compacted.push(Element::leaf(17, (*size as usize).saturating_sub(33)));
    }
    let (history_revisions, history_bytes) = walked.keys.values().fold((0, 0), |(n, b), f| {
        if f.tombstone {
            (n + u64::from(f.revisions), b + f.element_bytes)
        } else {
            (
                n + u64::from(f.revisions) - 1,
                b + f.element_bytes - u64::from(f.newest_element),
            )
        }
    });
    let mut list_now: Vec<(Vec<u8>, Placed)> =
        others.iter().map(|o| (o.name.clone(), o.now)).collect();
    let mut list_compacted: Vec<(Vec<u8>, Placed)> = others
        .iter()
        .map(|o| (o.name.clone(), o.compacted))
        .collect();
    // A defrag of more than 10,000 elements commits on the way: the next
    // transaction rewrites the rightmost path of `key`, whose old pages stay
    // free at the end, less the page the first transaction freed (reused).
    let (extra_now, extra_compacted) = (
        now.marked().saturating_sub(1),
        compacted.marked().saturating_sub(1),
    );
    list_now.push((KEY.to_vec(), now.finish()));
    list_compacted.push((KEY.to_vec(), compacted.finish()));
    list_now.sort_by(|a, b| a.0.cmp(&b.0));
    list_compacted.sort_by(|a, b| a.0.cmp(&b.0));
    let lens = |l: &[(Vec<u8>, Placed)]| l.iter().map(|(n, p)| (n.len(), *p)).collect::<Vec<_>>();
    let page64 = page as u64;
    let freelist = db.meta().freelist != NO_FREELIST;
    let after_defrag = (file_pages(page, &lens(&list_now), freelist) + extra_now) * page64;
    let after_compact =
        (file_pages(page, &lens(&list_compacted), freelist) + extra_compacted) * page64;
    let file_bytes = db.data().len() as u64;
    let defrag_gain = file_bytes.saturating_sub(after_defrag);
    let compaction_gain = after_defrag.saturating_sub(after_compact);
    let h = crate::report::humanize_bytes;
    let mut advice = format!(
        "Defragmenting would shrink the file from {} to about {} (`etcdctl defrag`); compacting at the current revision first would remove {history_revisions} old revisions and leave about {} (`etcdctl compact {revision}` then `etcdctl defrag`).",
        h(file_bytes),
        h(after_defrag),
        h(after_compact),
    );
    if alarms.iter().any(|a| a.alarm == "NOSPACE") {
        advice.push_str(" Then clear the space alarm: `etcdctl alarm disarm`.");
    }
    Space {
        file_bytes,
        page_size: page64,
        pages: db.hwm(),
        free_pages: in_use.map(|u| db.hwm() - u),
        pages_in_use: in_use,
        after_defrag_bytes: after_defrag,
        defrag_gain_bytes: defrag_gain,
        history_revisions,
        history_bytes,
        after_compact_and_defrag_bytes: after_compact,
        compaction_gain_bytes: compaction_gain,
        advice,
    }
}
