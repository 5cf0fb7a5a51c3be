//! How many pages bbolt needs to hold a set of buckets written fresh, in key
//! order, as etcd's defragmentation writes them: each etcd bucket filled at
//! 90 %, the root (the list of buckets) at bbolt's default 50 %, small buckets
//! inline in their parent. This is what `etcdutl defrag` leaves behind, so the
//! difference to the file's pages is what a defrag gives back (and the same
//! count without the history is what a compaction plus defrag leaves).
//!
//! The model follows bbolt's documented node layout: a 16-byte page header,
//! 16 bytes per element plus its key (and value, in leaves); a node splits
//! greedily at the fill threshold, keeping at least two elements per node, and
//! is not split when it fits a page or holds four elements or fewer; a node
//! takes as many contiguous pages as its bytes need; a branch element is the
//! first key of its child. A fresh file starts with four pages (two metas, a
//! freelist, an empty root) and the commit writes one more freelist page
//! (when the file keeps a freelist). etcd commits every 10,001 elements: the
//! last commit's rightmost path is rewritten by the next transaction and its
//! old pages stay free (see [`last_commit_before`]). Checked against real
//! `etcdutl defrag` to the page on the fixtures and on 64 MiB snapshots of
//! 13,000+ keys (tests/it/inspect.rs; benches/work).

/// bbolt's page header and per-element header sizes.
const PAGE_HEADER: usize = 16;
const ELEMENT_HEADER: usize = 16;
/// bbolt's bucket header (root page id, sequence) in a parent's value.
const BUCKET_HEADER: usize = 16;
const MIN_KEYS_PER_PAGE: usize = 2;
/// The fill percent etcd sets on every bucket when it defragments.
pub const ETCD_FILL: f64 = 0.9;
/// bbolt's default fill percent (the root bucket's during defrag).
pub const DEFAULT_FILL: f64 = 0.5;
/// Pages of a fresh file before any bucket: two metas, freelist, root leaf.
const FRESH_PAGES: u64 = 4;

/// One element to store: key length and bytes after the element header.
#[derive(Debug, Clone, Copy)]
pub struct Element {
    /// Bytes of the key.
    pub key_len: u32,
    /// key + value bytes (leaves) or key bytes (branches).
    pub payload: u32,
}

impl Element {
    /// A leaf element of a key and value of these lengths.
    pub fn leaf(key_len: usize, value_len: usize) -> Element {
        Element {
            key_len: key_len as u32,
            payload: (key_len + value_len) as u32,
        }
    }
    fn size(&self) -> usize {
        ELEMENT_HEADER + self.payload as usize
    }
}

/// Builds one bucket's pages level by level as elements arrive in key order.
/// Only the open nodes' element sizes are held, never keys or values.
pub struct BucketLayout {
    page: usize,
    threshold: usize,
    /// Elements waiting in the current leaf-level run (not split yet).
    leaf: Vec<Element>,
    /// First-key lengths of finished leaf nodes (the next level up).
    children: Vec<Element>,
    leaf_pages: u64,
    elements: u64,
    /// The element before which a defrag transaction commits, and the pages
    /// of the rightmost path at that moment (the next transaction rewrites
    /// them, and their old copies stay free at the end).
    mark_at: Option<u64>,
    marked: u64,
}

fn node_size(els: &[Element]) -> usize {
    PAGE_HEADER + els.iter().map(Element::size).sum::<usize>()
}

fn pages_for(size: usize, page: usize) -> u64 {
    size.div_ceil(page) as u64
}

/// bbolt's split point of `els` at `threshold`.
fn split_index(els: &[Element], threshold: usize) -> usize {
    let mut sz = PAGE_HEADER;
    let mut index = 0;
    for (i, e) in els
        .iter()
        .enumerate()
        .take(els.len().saturating_sub(MIN_KEYS_PER_PAGE))
    {
        index = i;
        if i >= MIN_KEYS_PER_PAGE && sz + e.size() > threshold {
            break;
        }
        sz += e.size();
    }
    index
}

/// Whether bbolt leaves `els` as one node.
fn fits(els: &[Element], page: usize) -> bool {
    els.len() <= MIN_KEYS_PER_PAGE * 2 || node_size(els) < page
}

/// Splits a whole level the way bbolt's spill does; returns the nodes as
/// (first key length, pages).
fn split_level(els: &[Element], page: usize, threshold: usize) -> Vec<(u32, u64)> {
    let mut out = Vec::new();
    let mut rest = els;
    loop {
        if rest.is_empty() {
            break;
        }
        if fits(rest, page) {
            out.push((rest[0].key_len, pages_for(node_size(rest), page)));
            break;
        }
        let at = split_index(rest, threshold).max(1);
        let (a, b) = rest.split_at(at);
        out.push((a[0].key_len, pages_for(node_size(a), page)));
        rest = b;
    }
    out
}

/// A bucket's place in its parent: inline bytes, or pages of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placed {
    /// Stored inside the parent's leaf; the value is this many bytes.
    Inline(usize),
    /// Stored in pages; the value in the parent is a bucket header.
    Pages(u64),
}

impl Placed {
    /// Bytes the bucket takes in its parent's value.
    pub fn value_len(&self) -> usize {
        match self {
            Placed::Inline(n) => *n,
            Placed::Pages(_) => BUCKET_HEADER,
        }
    }
    /// Pages the bucket takes of its own (0 when inline).
    pub fn pages(&self) -> u64 {
        match self {
            Placed::Inline(_) => 0,
            Placed::Pages(p) => *p,
        }
    }
}

impl BucketLayout {
    /// A layout for pages of `page` bytes filled to `fill` (bbolt's fill percent) at most.
    pub fn new(page: usize, fill: f64) -> BucketLayout {
        BucketLayout {
            page,
            threshold: (page as f64 * fill) as usize,
            leaf: Vec::new(),
            children: Vec::new(),
            leaf_pages: 0,
            elements: 0,
            mark_at: None,
            marked: 0,
        }
    }

    /// Records the rightmost path's pages when element `at` (0-based) comes.
    pub fn mark_before(&mut self, at: Option<u64>) {
        self.mark_at = at;
    }

    /// Pages of the rightmost path recorded by [`Self::mark_before`].
    pub fn marked(&self) -> u64 {
        self.marked
    }

    /// Pages of the rightmost path now: the last leaf node and one branch
    /// page per level above it.
    fn rightmost_pages(&self) -> u64 {
        let nodes = split_level(&self.leaf, self.page, self.threshold);
        let last = nodes.last().map_or(0, |n| n.1);
        let mut count = (self.children.len() + nodes.len()) as u64;
        let key = self.children.first().map_or(17, |c| c.key_len as usize);
        let per = ((self.threshold - PAGE_HEADER) / (ELEMENT_HEADER + key)).max(2) as u64;
        let mut levels = 0;
        while count > 1 {
            count = count.div_ceil(per);
            levels += 1;
        }
        last + levels
    }

    /// Adds the next element (in key order).
    pub fn push(&mut self, e: Element) {
        if self.mark_at == Some(self.elements) {
            self.marked = self.rightmost_pages();
        }
        self.elements += 1;
        self.leaf.push(e);
        // Emit nodes once enough is waiting that the split points before the
        // tail cannot depend on what comes next: bbolt's split is greedy from
        // the left, and only the last few elements decide where it stops.
        if self.leaf.len() >= 4096 {
            self.flush(false);
        }
    }

    fn flush(&mut self, last: bool) {
        let page = self.page;
        let mut start = 0;
        loop {
            let rest = &self.leaf[start..];
            if rest.is_empty() || (!last && rest.len() < 64) {
                break;
            }
            if last && fits(rest, page) {
                self.children.push(Element {
                    key_len: rest[0].key_len,
                    payload: rest[0].key_len,
                });
                self.leaf_pages += pages_for(node_size(rest), page);
                start = self.leaf.len();
                break;
            }
            let at = split_index(rest, self.threshold).max(1);
            // Not at the end: keep going only while the split is decided by
            // the threshold, well before the tail.
            if !last && at + 32 >= rest.len() {
                break;
            }
            self.children.push(Element {
                key_len: rest[0].key_len,
                payload: rest[0].key_len,
            });
            self.leaf_pages += pages_for(node_size(&rest[..at]), page);
            start += at;
        }
        self.leaf.drain(..start);
    }

    /// Finishes the bucket: its place in the parent.
    pub fn finish(mut self) -> Placed {
        if self.children.is_empty() && fits(&self.leaf, self.page) {
            let size = node_size(&self.leaf);
            if size <= self.page / 4 {
                return Placed::Inline(BUCKET_HEADER + size);
            }
        }
        self.flush(true);
        let mut pages = self.leaf_pages;
        let mut level = std::mem::take(&mut self.children);
        while level.len() > 1 {
            let nodes = split_level(&level, self.page, self.threshold);
            pages += nodes.iter().map(|n| n.1).sum::<u64>();
            level = nodes
                .into_iter()
                .map(|(k, _)| Element {
                    key_len: k,
                    payload: k,
                })
                .collect();
        }
        Placed::Pages(pages)
    }

    /// Elements laid out so far.
    pub fn elements(&self) -> u64 {
        self.elements
    }
}

/// etcd's defrag commits its transaction before the 10,001st element (of all
/// buckets, in order) and after each 10,001 more (`defragLimit`).
pub const DEFRAG_LIMIT: u64 = 10_000;

/// The index (0-based, over every bucket's elements in order) before which
/// the last of those commits happens, if there are that many elements.
pub fn last_commit_before(total: u64) -> Option<u64> {
    (total > DEFRAG_LIMIT).then(|| {
        let k = (total - 1 - DEFRAG_LIMIT) / (DEFRAG_LIMIT + 1);
        DEFRAG_LIMIT + k * (DEFRAG_LIMIT + 1)
    })
}

/// Pages of a fresh file holding the given buckets (name length, place), as
/// one defrag transaction leaves it: the fresh file's four pages, the
/// buckets' pages, the root's pages and, when the database persists its
/// freelist (`freelist`; etcd 3.5+ does not), the new freelist page.
pub fn file_pages(page: usize, buckets: &[(usize, Placed)], freelist: bool) -> u64 {
    let root: Vec<Element> = buckets
        .iter()
        .map(|(name, p)| Element::leaf(*name, p.value_len()))
        .collect();
    let threshold = (page as f64 * DEFAULT_FILL) as usize;
    let mut pages =
        FRESH_PAGES + u64::from(freelist) + buckets.iter().map(|(_, p)| p.pages()).sum::<u64>();
    let mut level = root;
    loop {
        let nodes = split_level(&level, page, threshold);
        pages += nodes.iter().map(|n| n.1).sum::<u64>().max(1);
        if nodes.len() <= 1 {
            break;
        }
        level = nodes
            .into_iter()
            .map(|(k, _)| Element {
                key_len: k,
                payload: k,
            })
            .collect();
    }
    pages
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_bucket_is_inline() {
        let mut b = BucketLayout::new(4096, ETCD_FILL);
        b.push(Element::leaf(10, 20));
        assert_eq!(b.finish(), Placed::Inline(16 + 16 + 16 + 30));
    }

    #[test]
    fn streamed_split_equals_whole_split() {
        // The streamed flush gives the same leaves as splitting all at once.
        let els: Vec<Element> = (0..20_000)
            .map(|i| Element::leaf(17, 50 + (i * 37 % 900)))
            .collect();
        let mut b = BucketLayout::new(4096, ETCD_FILL);
        for e in &els {
            b.push(*e);
        }
        let streamed = b.finish().pages();
        let leaves = split_level(&els, 4096, (4096.0 * ETCD_FILL) as usize);
        let mut whole: u64 = leaves.iter().map(|n| n.1).sum();
        let mut level: Vec<Element> = leaves
            .iter()
            .map(|(k, _)| Element {
                key_len: *k,
                payload: *k,
            })
            .collect();
        while level.len() > 1 {
            let nodes = split_level(&level, 4096, (4096.0 * ETCD_FILL) as usize);
            whole += nodes.iter().map(|n| n.1).sum::<u64>();
            level = nodes
                .iter()
                .map(|(k, _)| Element {
                    key_len: *k,
                    payload: *k,
                })
                .collect();
        }
        assert_eq!(streamed, whole);
    }
}
