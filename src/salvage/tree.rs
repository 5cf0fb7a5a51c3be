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
    pub leaf_bucket: HashMap<u64, &'static [u8]>,
    /// Inline buckets' elements, by bucket.
    pub inline: HashMap<&'static [u8], Vec<RawElement<'a>>>,
    /// Buckets the root leaf lists.
    pub listed: Vec<&'static [u8]>,
    /// First keys of the `key` bucket's children, from its branch pages.
    pub key_branch_keys: Vec<&'a [u8]>,
    /// The `key` bucket's rightmost leaf, when the tree reaches it.
    pub key_last_leaf: Option<u64>,
    /// The root page (the root leaf's page id) used.
    pub root_page: Option<u64>,
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
                let els = leaf_elements(&inline).into_iter().flatten().collect();
                tree.inline.insert(name, els);
            }
            BucketRoot::Page(p) => {
                descend(data, page_size, p, name, &mut seen, &mut tree, 0, true);
            }
        }
    }
    (tree, source)
}

#[allow(clippy::too_many_arguments)]
fn descend<'a>(
    data: &'a [u8],
    page_size: usize,
    pgid: u64,
    bucket: &'static [u8],
    seen: &mut [bool],
    tree: &mut Tree<'a>,
    depth: usize,
    rightmost: bool,
) {
    if depth > MAX_DEPTH || pgid < 2 {
        return;
    }
    let Some(slot) = seen.get_mut(pgid as usize) else {
        return;
    };
    if *slot {
        return;
    }
    *slot = true;
    let Some(node) = node_at(data, page_size, pgid) else {
        return;
    };
    match node.header.flags {
        FLAG_LEAF => {
            tree.leaf_bucket.insert(pgid, bucket);
            if bucket == b"key" && rightmost {
                tree.key_last_leaf = Some(pgid);
            }
        }
        FLAG_BRANCH => {
            let fit = node.bytes.len().saturating_sub(PAGE_HEADER_SIZE) / 16;
            let count = node.count().min(fit);
            let count = match node.layout_fault() {
                Some(crate::bolt::page::ElementFault::Overlap { index, .. }) => count.min(index),
                _ => count,
            };
            for i in 0..count {
                let Ok(b) = node.branch(i) else { continue };
                if bucket == b"key" {
                    tree.key_branch_keys.push(b.key);
                }
                let last = rightmost && i + 1 == node.count();
                descend(data, page_size, b.child, bucket, seen, tree, depth + 1, last);
            }
        }
        _ => {}
    }
}
