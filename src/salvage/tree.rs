//! Which found pages belong to which bucket, as far as a surviving tree says.
//!
//! Leaf pages do not name their bucket. etcd's buckets hang off the root
//! bucket, whose leaf lists each bucket's root page or holds the bucket
//! inline. The root leaf is taken from a valid meta page when one names it;
//! otherwise (both meta pages broken) from the found leaves whose elements are
//! all buckets with etcd's names, the one whose inline `meta` bucket has the
//! highest consistent index (a freed copy is older). From there the branch
//! pages that survive are followed, each page once, to label leaves with
//! their bucket; the `key` bucket's branch keys name the first revision of
//! each child, evidence for revisions whose leaf is lost.

use std::collections::HashMap;

use crate::bolt::meta::Meta;
use crate::bolt::page::{BucketHeader, BucketRoot, FLAG_BRANCH, FLAG_LEAF, Node, PAGE_HEADER_SIZE};
use crate::bolt::walk::MAX_DEPTH;
use crate::mvcc::{Revision, RevisionKey};

use super::record::{RawElement, leaf_elements};
use super::scan::{Found, own_header};

/// Names of the buckets etcd 3.4–3.7 keeps.
pub const ETCD_BUCKETS: &[&[u8]] = &[
    b"alarm",
    b"auth",
    b"authRoles",
    b"authUsers",
    b"cluster",
    b"key",
    b"lease",
    b"members",
    b"members_removed",
    b"meta",
];

/// Where the root bucket was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum RootSource {
    /// The root page a valid meta page names.
    Meta,
    /// A found leaf listing etcd's buckets (no meta page led to one).
    Scanned,
    /// None found.
    None,
}

/// The buckets as the surviving tree has them.
#[derive(Debug, Default)]
pub struct Tree<'a> {
    /// Bucket of each labelled leaf page.
    pub leaf_bucket: HashMap<u64, &'static [u8], foldhash::fast::RandomState>,
    /// Inline buckets' elements, by bucket.
    pub inline: HashMap<&'static [u8], Vec<RawElement<'a>>>,
    /// Inline buckets with elements that could not be read.
    pub inline_damaged: Vec<&'static [u8]>,
    /// Buckets the root leaf lists.
    pub listed: Vec<&'static [u8]>,
    /// First keys of the `key` bucket's children, from its branch pages.
    pub key_branch_keys: Vec<&'a [u8]>,
    /// The `key` bucket's rightmost leaf, when the tree reaches it.
    pub key_last_leaf: Option<u64>,
    /// The root page (the root leaf's page id) used.
    pub root_page: Option<u64>,
    /// Revision range `[from, to)` of each `key` leaf the tree reaches, by
    /// page (`None`: unbounded), from the branch keys above it.
    pub key_leaf_ranges:
        HashMap<u64, (Option<Revision>, Option<Revision>), foldhash::fast::RandomState>,
    /// Ranges of `key` subtrees the tree names but that could not be read.
    pub key_lost_ranges: Vec<(Option<Revision>, Option<Revision>)>,
    /// Whether the `key` bucket's root node was read.
    pub key_root_read: bool,
}

/// A revision key's revision (`None` if it is not one).
fn revision_of(key: &[u8]) -> Option<Revision> {
    RevisionKey::parse(key).ok().map(|r| r.revision)
}

fn etcd_bucket(name: &[u8]) -> Option<&'static [u8]> {
    ETCD_BUCKETS.iter().copied().find(|b| *b == name)
}

/// The elements of a root-bucket leaf: all buckets with etcd's names,
/// `key` and `meta` among them. `None` if `found` is not one.
pub fn root_elements<'a>(found: &Found<'a>) -> Option<Vec<(&'static [u8], BucketHeader<'a>)>> {
    if found.node.header.flags != FLAG_LEAF {
        return None;
    }
    let mut out = Vec::new();
    for e in leaf_elements(found) {
        let e = e.ok()?;
        if !e.flags & crate::bolt::page::BUCKET_LEAF_FLAG != 0 {
            return None;
        }
        let name = etcd_bucket(e.key)?;
        out.push((name, BucketHeader::parse(e.value)?));
    }
    let has = |n: &[u8]| out.iter().any(|(b, _)| *b == n);
    (has(b"key") && has(b"meta")).then_some(out)
}

/// A node of `data` at `pgid` for the descent: its own header, its bytes as
/// far as the file goes (no overflow check beyond the end of the file).
fn node_at(data: &[u8], page_size: usize, pgid: u64) -> Option<Node<'_>> {
    let h = own_header(data, page_size, pgid)?;
    let start = pgid as usize * page_size;
    let pages = 1usize.checked_add(h.overflow as usize)?;
    let end = start
        .checked_add(pages.checked_mul(page_size)?)?
        .min(data.len());
    Some(Node {
        header: h,
        bytes: &data[start..end],
    })
}

/// The tree under the root leaf chosen from `metas` or `roots` (page ids of
/// found root-bucket leaves, with their inline `meta` consistent index).
pub fn build<'a>(
    data: &'a [u8],
    page_size: usize,
    metas: &[Meta],
    roots: &[(u64, u64, Found<'a>)],
) -> (Tree<'a>, RootSource) {
    let mut tree = Tree::default();
    // The newest valid meta page whose root is a found root leaf.
    let mut by_txid: Vec<&Meta> = metas.iter().collect();
    by_txid.sort_by_key(|m| std::cmp::Reverse(m.txid));
    let mut chosen = None;
    for m in by_txid {
        if let Some(r) = roots.iter().find(|(p, _, _)| *p == m.root) {
            chosen = Some((r, RootSource::Meta));
            break;
        }
    }
    if chosen.is_none() {
        chosen = roots
            .iter()
            .max_by_key(|(p, ci, _)| (*ci, *p))
            .map(|r| (r, RootSource::Scanned));
    }
    let Some(((root_pgid, _, found), source)) = chosen else {
        return (tree, RootSource::None);
    };
    tree.root_page = Some(*root_pgid);
    let Some(elements) = root_elements(found) else {
        return (tree, RootSource::None);
    };
    let pages = (data.len() / page_size) as u64;
    let mut seen = vec![false; pages as usize];
    for (name, header) in elements {
        tree.listed.push(name);
        match header.root {
            BucketRoot::Inline(bytes) => {
                let Some(h) = crate::bolt::page::PageHeader::parse(bytes) else {
                    continue;
                };
                let inline = Found {
                    pgid: *root_pgid,
                    node: Node { header: h, bytes },
                    whole: true,
                    damaged: Vec::new(),
                };
                let all = leaf_elements(&inline);
                if all.iter().any(Result::is_err) {
                    tree.inline_damaged.push(name);
                }
                tree.inline
                    .insert(name, all.into_iter().flatten().collect());
            }
            BucketRoot::Page(p) => {
                let at = Place {
                    bucket: name,
                    depth: 0,
                    rightmost: true,
                    from: None,
                    to: None,
                };
                descend(data, page_size, p, at, &mut seen, &mut tree);
            }
        }
    }
    (tree, source)
}

/// Where a page sits in the tree: its bucket, depth, whether it is on the
/// rightmost path, and the key range its parent gives it.
#[derive(Clone, Copy)]
struct Place {
    bucket: &'static [u8],
    depth: usize,
    rightmost: bool,
    from: Option<Revision>,
    to: Option<Revision>,
}

fn descend<'a>(
    data: &'a [u8],
    page_size: usize,
    pgid: u64,
    at: Place,
    seen: &mut [bool],
    tree: &mut Tree<'a>,
) {
    let is_key = at.bucket == b"key";
    let lost = |tree: &mut Tree<'a>| {
        if is_key {
            tree.key_lost_ranges.push((at.from, at.to));
        }
    };
    if at.depth > MAX_DEPTH || pgid < 2 {
        return lost(tree);
    }
    let Some(slot) = seen.get_mut(pgid as usize) else {
        return lost(tree);
    };
    if *slot {
        return;
    }
    *slot = true;
    let Some(node) = node_at(data, page_size, pgid) else {
        return lost(tree);
    };
    if is_key && at.depth == 0 {
        tree.key_root_read = true;
    }
    match node.header.flags {
        FLAG_LEAF => {
            tree.leaf_bucket.insert(pgid, at.bucket);
            if is_key {
                tree.key_leaf_ranges.insert(pgid, (at.from, at.to));
                if at.rightmost {
                    tree.key_last_leaf = Some(pgid);
                }
            }
        }
        FLAG_BRANCH => {
            let fit = node.bytes.len().saturating_sub(PAGE_HEADER_SIZE) / 16;
            let count = node.count().min(fit);
            let count = match node.layout_fault() {
                Some(crate::bolt::page::ElementFault::Overlap { index, .. }) => count.min(index),
                _ => count,
            };
            if count < node.count() {
                // Children the header counts but that cannot be read: their
                // range runs from the last readable one's to the parent's end.
                let from = (0..count)
                    .rev()
                    .find_map(|i| node.branch(i).ok())
                    .and_then(|b| revision_of(b.key));
                lost(&mut *tree);
                if is_key {
                    tree.key_lost_ranges.push((from, at.to));
                }
            }
            let children: Vec<_> = (0..count).map(|i| node.branch(i).ok()).collect();
            for (i, child) in children.iter().enumerate() {
                let Some(b) = child else {
                    lost(&mut *tree);
                    continue;
                };
                if is_key {
                    tree.key_branch_keys.push(b.key);
                }
                let to = children
                    .get(i + 1)
                    .and_then(|n| n.as_ref())
                    .and_then(|n| revision_of(n.key))
                    .or(if i + 1 == children.len() { at.to } else { None });
                let next = Place {
                    bucket: at.bucket,
                    depth: at.depth + 1,
                    rightmost: at.rightmost && i + 1 == node.count(),
                    from: if i == 0 {
                        at.from.or(revision_of(b.key))
                    } else {
                        revision_of(b.key)
                    },
                    to,
                };
                descend(data, page_size, b.child, next, seen, tree);
            }
        }
        _ => lost(tree),
    }
}
