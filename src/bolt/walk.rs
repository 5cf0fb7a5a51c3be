//! The one tree walk every reader and checker uses.
//!
//! [`Walker`] visits pages from a bucket's root in key order, hands each leaf
//! element to a [`Visitor`], descends into sub-buckets (inline or not) right after
//! their entry — the order of a bbolt cursor, which etcd's hashes depend on — and
//! reports every structural fault it meets instead of trusting the bytes:
//! pages past the high-water mark or the file, pages reached twice (so cycles
//! and shared subtrees cannot make it loop or blow up), reachable pages on the
//! freelist, wrong page types, self-ids that do not match, elements outside
//! their page, keys out of order within a page or across siblings, bad bucket
//! headers. That is at least what bbolt's `tx.Check()` does. Whether a fault
//! stops the walk is the visitor's choice, so the same code serves the strict
//! reader (stop at the first) and the checker (collect them all).

use std::ops::ControlFlow;

use super::db::Db;
use super::page::{
    BucketHeader, BucketRoot, FLAG_BRANCH, FLAG_FREELIST, FLAG_LEAF, LeafElement, NO_FREELIST,
    Node, PAGE_HEADER_SIZE, PageHeader, flags_name, le_u64,
};
use crate::problem::{Problem, printable};

/// Deepest nesting of pages and buckets (inline ones included) we follow.
/// Real bbolt trees are a few levels deep and etcd nests no buckets; this
/// guards the stack against crafted files.
pub const MAX_DEPTH: usize = 64;

/// Receives what a walk finds. Returning `Break` stops the walk.
pub trait Visitor<'a> {
    /// A structural fault.
    fn problem(&mut self, problem: Problem) -> ControlFlow<()>;
    /// A leaf element of the bucket at `path` (empty path = the root bucket),
    /// in key order. Sub-bucket entries come here too, before their contents.
    fn entry(&mut self, path: &[&'a [u8]], element: &LeafElement<'a>) -> ControlFlow<()>;
}

/// What a walk saw.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    /// Branch pages reached.
    pub branch_pages: u64,
    /// Leaf pages reached.
    pub leaf_pages: u64,
    /// Overflow pages of those.
    pub overflow_pages: u64,
    /// Pages of the persisted freelist.
    pub freelist_pages: u64,
    /// Buckets with their own pages.
    pub buckets: u64,
    /// Buckets stored inline in their parent's leaf.
    pub inline_buckets: u64,
    /// Leaf elements, bucket entries included.
    pub entries: u64,
    /// Pages in `[2, hwm)` that no tree reaches: free space.
    pub free_pages: u64,
    /// The deepest level of nodes reached.
    pub max_depth: u64,
}

struct Bitmap(Vec<u64>);

impl Bitmap {
    fn new(bits: u64) -> Bitmap {
        Bitmap(vec![0; bits.div_ceil(64) as usize])
    }
    fn get(&self, i: u64) -> bool {
        self.0
            .get((i / 64) as usize)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }
    /// Sets bit `i`; returns whether it was already set.
    fn set(&mut self, i: u64) -> bool {
        match self.0.get_mut((i / 64) as usize) {
            Some(w) => {
                let was = *w & (1 << (i % 64)) != 0;
                *w |= 1 << (i % 64);
                was
            }
            None => false,
        }
    }
}

/// Walks a bbolt file's tree from the meta page, checking every page once, and hands the leaves to a [`Visitor`].
pub struct Walker<'d, 'a> {
    db: &'d Db<'a>,
    /// Pages reached so far (meta, freelist, tree pages and their overflow).
    seen: Bitmap,
    /// Pages listed in a persisted freelist.
    freed: Bitmap,
    /// Pages we track: `min(hwm, whole pages in the file)`.
    tracked: u64,
    path: Vec<&'a [u8]>,
    /// Whether sub-buckets are walked (off to list just one level).
    descend: bool,
    /// What the walk counted so far.
    pub stats: Stats,
}

/// Keys that bound a subtree: every key k in it must satisfy lower <= k < upper.
#[derive(Clone, Copy)]
struct Bounds<'a> {
    lower: Option<&'a [u8]>,
    upper: Option<&'a [u8]>,
}

impl<'d, 'a> Walker<'d, 'a> {
    /// A walker over `db`, with nothing seen yet.
    pub fn new(db: &'d Db<'a>) -> Walker<'d, 'a> {
        // Bounded by the file's size, never by a number read from it.
        let tracked = db.hwm().min(db.file_pages());
        Walker {
            db,
            seen: Bitmap::new(tracked),
            freed: Bitmap::new(tracked),
            tracked,
            path: Vec::new(),
            descend: true,
            stats: Stats::default(),
        }
    }

    /// A walker that reports sub-bucket entries but does not walk into them.
    pub fn shallow(db: &'d Db<'a>) -> Walker<'d, 'a> {
        let mut w = Walker::new(db);
        w.descend = false;
        w
    }

    /// Walks only the root bucket's tree (no accounting of unreached pages).
    pub fn walk_root_tree<V: Visitor<'a>>(&mut self, v: &mut V) -> ControlFlow<()> {
        let meta = *self.db.meta();
        let bounds = Bounds {
            lower: None,
            upper: None,
        };
        self.walk_tree(meta.root, bounds, 0, v)
    }

    fn bucket_name(&self) -> Option<String> {
        if self.path.is_empty() {
            return None;
        }
        let names: Vec<String> = self.path.iter().map(|p| printable(p)).collect();
        Some(names.join("/"))
    }

    fn page_problem(&self, pgid: u64, msg: impl Into<String>) -> Problem {
        let mut p = Problem::new(msg).at_page(pgid, self.db.offset_of(pgid));
        p.bucket = self.bucket_name();
        p
    }

    /// File offset of a slice of the mapped database (for inline buckets and
    /// element-level messages).
    fn offset_in_file(&self, s: &[u8]) -> u64 {
        (s.as_ptr() as usize).wrapping_sub(self.db.data().as_ptr() as usize) as u64
    }

    /// Walks the whole file: meta pages, the freelist, the root bucket and every
    /// bucket under it; then accounts for pages nothing reached.
    pub fn walk_root<V: Visitor<'a>>(&mut self, v: &mut V) -> ControlFlow<()> {
        let meta = *self.db.meta();
        self.seen.set(0);
        self.seen.set(1);
        if meta.freelist != NO_FREELIST {
            self.load_freelist(meta.freelist, v)?;
        }
        let bounds = Bounds {
            lower: None,
            upper: None,
        };
        self.walk_tree(meta.root, bounds, 0, v)?;
        self.account_unreached(meta.freelist != NO_FREELIST, v)
    }

    /// Walks one bucket's tree (for readers that need a single bucket).
    pub fn walk_bucket<V: Visitor<'a>>(
        &mut self,
        path: &[&'a [u8]],
        header: &BucketHeader<'a>,
        v: &mut V,
    ) -> ControlFlow<()> {
        self.path = path.to_vec();
        self.walk_bucket_root(header, path.len(), v)
    }

    fn load_freelist<V: Visitor<'a>>(&mut self, pgid: u64, v: &mut V) -> ControlFlow<()> {
        let hwm = self.db.hwm();
        let header = match self.db.header(pgid) {
            Ok(h) if pgid < hwm => h,
            Ok(_) => {
                return v.problem(self.page_problem(
                    pgid,
                    format!("freelist page is at or past the high-water mark {hwm}"),
                ));
            }
            Err(f) => return v.problem(self.page_problem(pgid, format!("freelist: {f}"))),
        };
        if header.flags != FLAG_FREELIST {
            return v.problem(self.page_problem(
                pgid,
                format!(
                    "meta names this page as the freelist but its type is {}",
                    flags_name(header.flags)
                ),
            ));
        }
        let node = match self.db.node(pgid) {
            Ok(n) => n,
            Err(f) => return v.problem(self.page_problem(pgid, format!("freelist: {f}"))),
        };
        self.mark_span(pgid, &node.header, v)?;
        self.stats.freelist_pages += u64::from(node.header.overflow) + 1;
        let (count, start) = if header.count == 0xFFFF {
            match le_u64(node.bytes, PAGE_HEADER_SIZE) {
                Some(n) => (n, PAGE_HEADER_SIZE + 8),
                None => return v.problem(self.page_problem(pgid, "freelist count is cut off")),
            }
        } else {
            (u64::from(header.count), PAGE_HEADER_SIZE)
        };
        let room = ((node.bytes.len() - start) / 8) as u64;
        if count > room {
            v.problem(self.page_problem(
                pgid,
                format!("freelist claims {count} ids but its pages hold at most {room}"),
            ))?;
        }
        for i in 0..count.min(room) {
            let id = le_u64(node.bytes, start + 8 * i as usize).unwrap_or(0);
            if id < 2 || id >= hwm {
                v.problem(self.page_problem(
                    pgid,
                    format!("freelist holds page {id}, outside [2, {hwm})"),
                ))?;
            } else if self.freed.set(id) {
                v.problem(self.page_problem(id, "already freed (listed twice in the freelist)"))?;
            } else if self.seen.get(id) {
                v.problem(self.page_problem(id, "reachable freed (the freelist lists itself)"))?;
            }
        }
        ControlFlow::Continue(())
    }

    /// Marks a page and its overflow pages as reached.
    fn mark_span<V: Visitor<'a>>(
        &mut self,
        pgid: u64,
        header: &PageHeader,
        v: &mut V,
    ) -> ControlFlow<()> {
        for p in pgid..=pgid.saturating_add(u64::from(header.overflow)) {
            if p >= self.tracked {
                break;
            }
            if self.seen.set(p) {
                v.problem(self.page_problem(p, "multiple references"))?;
            }
            if self.freed.get(p) {
                v.problem(self.page_problem(p, "reachable freed"))?;
            }
        }
        ControlFlow::Continue(())
    }

    fn walk_tree<V: Visitor<'a>>(
        &mut self,
        pgid: u64,
        bounds: Bounds<'a>,
        depth: usize,
        v: &mut V,
    ) -> ControlFlow<()> {
        if depth > MAX_DEPTH {
            return v.problem(self.page_problem(
                pgid,
                format!("tree deeper than {MAX_DEPTH} levels; not followed"),
            ));
        }
        self.stats.max_depth = self.stats.max_depth.max(depth as u64);
        let hwm = self.db.hwm();
        if pgid >= hwm {
            return v.problem(self.page_problem(pgid, format!("out of bounds: HWM {hwm}")));
        }
        if self.seen.get(pgid) {
            // Not followed again: this is what keeps cycles and shared subtrees finite.
            return v.problem(self.page_problem(pgid, "multiple references"));
        }
        let node = match self.db.node_span(pgid) {
            Ok(n) => n,
            Err(fault) => {
                self.seen.set(pgid);
                return v.problem(self.page_problem(pgid, fault.to_string()));
            }
        };
        self.mark_span(pgid, &node.header, v)?;
        if node.header.id != pgid {
            return v.problem(self.page_problem(
                pgid,
                format!(
                    "page expected to be {pgid}, but self identifies as {}; subtree not followed",
                    node.header.id
                ),
            ));
        }
        if let Some(fault) = node.layout_fault() {
            return v.problem(self.page_problem(pgid, format!("{fault}; page not read")));
        }
        self.stats.overflow_pages += u64::from(node.header.overflow);
        match node.header.flags {
            FLAG_BRANCH => {
                self.stats.branch_pages += 1;
                self.branch(pgid, &node, bounds, depth, v)
            }
            FLAG_LEAF => {
                self.stats.leaf_pages += 1;
                self.leaf(pgid, &node, bounds, depth, v)
            }
            other => v.problem(self.page_problem(
                pgid,
                format!(
                    "invalid type: {} where a branch or leaf page belongs",
                    flags_name(other)
                ),
            )),
        }
    }

    /// How many elements of `node` can be read; reports a count that overruns it.
    fn readable_count<V: Visitor<'a>>(
        &self,
        pgid: u64,
        node: &Node<'a>,
        v: &mut V,
    ) -> ControlFlow<(), usize> {
        let count = node.count();
        if node.elements_fit() {
            return ControlFlow::Continue(count);
        }
        let fit = (node.bytes.len().saturating_sub(PAGE_HEADER_SIZE)) / 16;
        match v.problem(self.page_problem(
            pgid,
            format!("{count} elements do not fit in the page (room for {fit})"),
        )) {
            ControlFlow::Break(()) => ControlFlow::Break(()),
            ControlFlow::Continue(()) => ControlFlow::Continue(fit),
        }
    }

    fn order_problems<V: Visitor<'a>>(
        &self,
        pgid: u64,
        index: usize,
        key: &'a [u8],
        prev: Option<&'a [u8]>,
        bounds: Bounds<'a>,
        v: &mut V,
    ) -> ControlFlow<()> {
        let at = |msg: String| self.page_problem(pgid, msg).with_key(key);
        if key.is_empty() {
            v.problem(at(format!("key[{index}] is empty")))?;
        }
        if let Some(prev) = prev {
            if key <= prev {
                let rel = if key == prev { "=" } else { "<" };
                v.problem(at(format!(
                    "key[{index}] needs to be > the previous key \"{}\" (found {rel})",
                    printable(prev)
                )))?;
            }
        } else if let Some(lower) = bounds.lower
            && key < lower
        {
            v.problem(at(format!(
                "first key is below its separator \"{}\" in the parent page",
                printable(lower)
            )))?;
        }
        if let Some(upper) = bounds.upper
            && key >= upper
        {
            v.problem(at(format!(
                "key[{index}] needs to be < the key of the next element in an ancestor, \"{}\"",
                printable(upper)
            )))?;
        }
        ControlFlow::Continue(())
    }

    fn branch<V: Visitor<'a>>(
        &mut self,
        pgid: u64,
        node: &Node<'a>,
        bounds: Bounds<'a>,
        depth: usize,
        v: &mut V,
    ) -> ControlFlow<()> {
        let count = self.readable_count(pgid, node, v)?;
        if count == 0 {
            return v.problem(self.page_problem(pgid, "branch page has no elements"));
        }
        let mut prev: Option<&'a [u8]> = None;
        let mut next = node.branch(0);
        for i in 0..count {
            let cur = next;
            next = if i + 1 < count {
                node.branch(i + 1)
            } else {
                Err(super::page::ElementFault::Element)
            };
            let cur = match cur {
                Ok(e) => e,
                Err(fault) => {
                    v.problem(self.page_problem(pgid, format!("branch element {i}: {fault}")))?;
                    continue;
                }
            };
            self.order_problems(pgid, i, cur.key, prev, bounds, v)?;
            prev = Some(cur.key);
            let upper = if i + 1 < count {
                next.as_ref().ok().map(|e| e.key).or(bounds.upper)
            } else {
                bounds.upper
            };
            let child_bounds = Bounds {
                lower: Some(cur.key),
                upper,
            };
            self.walk_tree(cur.child, child_bounds, depth + 1, v)?;
        }
        ControlFlow::Continue(())
    }

    fn leaf<V: Visitor<'a>>(
        &mut self,
        pgid: u64,
        node: &Node<'a>,
        bounds: Bounds<'a>,
        depth: usize,
        v: &mut V,
    ) -> ControlFlow<()> {
        let count = self.readable_count(pgid, node, v)?;
        let mut prev: Option<&'a [u8]> = None;
        for i in 0..count {
            let e = match node.leaf(i) {
                Ok(e) => e,
                Err(fault) => {
                    v.problem(self.page_problem(pgid, format!("leaf element {i}: {fault}")))?;
                    continue;
                }
            };
            self.order_problems(pgid, i, e.key, prev, bounds, v)?;
            prev = Some(e.key);
            self.stats.entries += 1;
            v.entry(&self.path, &e)?;
            if e.is_bucket() && self.descend {
                self.sub_bucket(pgid, &e, depth, v)?;
            }
        }
        ControlFlow::Continue(())
    }

    fn sub_bucket<V: Visitor<'a>>(
        &mut self,
        pgid: u64,
        e: &LeafElement<'a>,
        depth: usize,
        v: &mut V,
    ) -> ControlFlow<()> {
        let Some(header) = BucketHeader::parse(e.value) else {
            let mut p = self.page_problem(
                pgid,
                format!(
                    "bucket header is {} bytes (a bucket needs 16, an inline bucket 32 or more)",
                    e.value.len()
                ),
            );
            p = p.with_key(e.key);
            return v.problem(p);
        };
        self.path.push(e.key);
        let r = self.walk_bucket_root(&header, depth + 1, v);
        self.path.pop();
        r
    }

    fn walk_bucket_root<V: Visitor<'a>>(
        &mut self,
        header: &BucketHeader<'a>,
        depth: usize,
        v: &mut V,
    ) -> ControlFlow<()> {
        self.stats.buckets += 1;
        let bounds = Bounds {
            lower: None,
            upper: None,
        };
        if depth > MAX_DEPTH {
            // Inline buckets nest without pages: the depth is bounded here too,
            // so no file can make the walk overflow the stack.
            let mut p = Problem::new(format!(
                "buckets nested deeper than {MAX_DEPTH} levels; not followed"
            ));
            if let BucketRoot::Inline(bytes) = header.root {
                let offset = self.offset_in_file(bytes);
                p = p.at_page(offset / self.db.page_size() as u64, offset);
            } else if let BucketRoot::Page(root) = header.root {
                p = p.at_page(root, self.db.offset_of(root));
            }
            p.bucket = self.bucket_name();
            return v.problem(p);
        }
        match header.root {
            BucketRoot::Page(root) => self.walk_tree(root, bounds, depth, v),
            BucketRoot::Inline(bytes) => {
                self.stats.inline_buckets += 1;
                let offset = self.offset_in_file(bytes);
                let inline_problem = |w: &Self, msg: String| {
                    let mut p = Problem::new(msg).at_offset(offset);
                    p.bucket = w.bucket_name();
                    p
                };
                let Some(ph) = PageHeader::parse(bytes) else {
                    return v.problem(inline_problem(self, "inline bucket is cut off".into()));
                };
                if ph.flags != FLAG_LEAF {
                    return v.problem(inline_problem(
                        self,
                        format!("inline bucket page has type {}", flags_name(ph.flags)),
                    ));
                }
                let node = Node { header: ph, bytes };
                // Problems inside an inline bucket are located by the page that holds it.
                let host = offset / self.db.page_size() as u64;
                if let Some(fault) = node.layout_fault() {
                    return v.problem(inline_problem(
                        self,
                        format!("inline bucket: {fault}; not read"),
                    ));
                }
                self.leaf(host, &node, bounds, depth, v)
            }
        }
    }

    fn account_unreached<V: Visitor<'a>>(
        &mut self,
        freelist_persisted: bool,
        v: &mut V,
    ) -> ControlFlow<()> {
        for p in 2..self.tracked {
            if self.seen.get(p) {
                continue;
            }
            if self.freed.get(p) || !freelist_persisted {
                self.stats.free_pages += 1;
            } else {
                v.problem(self.page_problem(p, "unreachable unfreed"))?;
            }
        }
        ControlFlow::Continue(())
    }
}
