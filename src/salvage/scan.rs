//! The page scanner: every page of a damaged file, reachable from a tree or
//! not, read as a bbolt node where its header says it is one.
//!
//! A damaged file cannot be walked from its meta page: the tree may be cut
//! anywhere, and the newest copy of a leaf may sit on a freed or orphaned
//! page. So the scanner reads the file page by page, trusting nothing: a
//! page is a node only when its header names its own id and a node type; a
//! node's overflow pages end early at the end of the file or at the first
//! page that carries a node header of its own (a freed node whose tail was
//! reused); overflow pages that are all zeroes (a lost write) or look like
//! random bytes are marked as damaged spans, and an element whose bytes
//! touch one is not taken. Each page is looked at a bounded number of times,
//! so the scan is linear in the file's size, and nothing is allocated from a
//! header's claim.

use rayon::prelude::*;

use crate::bolt::meta::{MAX_PAGE_SIZE, MIN_PAGE_SIZE, Meta};
use crate::bolt::page::{
    FLAG_BRANCH, FLAG_FREELIST, FLAG_LEAF, FLAG_META, Node, PAGE_HEADER_SIZE, PageHeader,
};

/// Where the page size came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum PageSizeSource {
    /// A meta page that validates (magic, version, checksum).
    Meta,
    /// No meta page validates: the power of two under which most pages carry
    /// their own id.
    PageIds,
}

/// The page size of `data`: the one a valid meta page names, else the power
/// of two (512 B to 1 MiB) under which the most pages carry their own id in
/// their header (ties go to 4096, then to the smaller size). `None` when no
/// size finds a single such page.
pub fn page_size(data: &[u8]) -> Option<(usize, PageSizeSource)> {
    // A meta page at offset 0 always; the second at one page size in.
    if let Ok(m) = Meta::parse(data) {
        return Some((m.page_size as usize, PageSizeSource::Meta));
    }
    let mut size = MIN_PAGE_SIZE as usize;
    while size <= MAX_PAGE_SIZE as usize {
        if let Some(page) = data.get(size..)
            && let Ok(m) = Meta::parse(page)
            && m.page_size as usize == size
        {
            return Some((size, PageSizeSource::Meta));
        }
        size *= 2;
    }
    let mut best: Option<(usize, u64)> = None;
    let mut size = MIN_PAGE_SIZE as usize;
    while size <= MAX_PAGE_SIZE as usize {
        let score = (2..data.len() / size)
            .filter(|&p| own_header(data, size, p as u64).is_some())
            .count() as u64;
        let better = match best {
            None => score > 0,
            Some((b, s)) => score > s || (score == s && size == 4096 && b != 4096),
        };
        if better {
            best = Some((size, score));
        }
        size *= 2;
    }
    best.map(|(s, _)| (s, PageSizeSource::PageIds))
}

/// The header of page `pgid` when it names `pgid` and a known page type.
pub fn own_header(data: &[u8], page_size: usize, pgid: u64) -> Option<PageHeader> {
    let start = usize::try_from(pgid).ok()?.checked_mul(page_size)?;
    let h = PageHeader::parse(data.get(start..)?)?;
    let known = matches!(h.flags, FLAG_BRANCH | FLAG_LEAF | FLAG_META | FLAG_FREELIST);
    (h.id == pgid && known).then_some(h)
}

/// A node found by the scan.
#[derive(Debug, Clone)]
pub struct Found<'a> {
    /// Its first page.
    pub pgid: u64,
    /// The node: its header, and its bytes as far as they can be trusted
    /// (cut at the end of the file or at a page with a header of its own).
    pub node: Node<'a>,
    /// Whether the node ends where its header says (no cut).
    pub whole: bool,
    /// Spans of the node's bytes (offsets into `node.bytes`) that are
    /// damaged: overflow pages all zero, or of random-looking bytes.
    pub damaged: Vec<(usize, usize)>,
}

impl Found<'_> {
    /// Whether bytes `[start, end)` of the node touch a damaged span.
    pub fn touches_damage(&self, start: usize, end: usize) -> bool {
        self.damaged.iter().any(|&(s, e)| start < e && s < end)
    }
}

/// What the scan counted.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScanStats {
    /// Whole pages in the file.
    pub pages: u64,
    /// Leaf nodes found.
    pub leaf_pages: u64,
    /// Branch nodes found.
    pub branch_pages: u64,
    /// Overflow pages of those nodes.
    pub overflow_pages: u64,
    /// Nodes whose overflow runs past the end of the file or into a page with
    /// a header of its own.
    pub cut_nodes: u64,
    /// Overflow pages that are all zero or look like random bytes.
    pub damaged_overflow_pages: u64,
    /// Pages (past the two meta pages) with no header naming their own id,
    /// that no node spans: overwritten, zeroed, or never written.
    pub unreadable_pages: u64,
}

/// Whether a page of bytes looks like random data: nearly every byte value
/// occurs (text, protobuf and bbolt's own pages use far fewer). Compressed or
/// encrypted values look the same; their records are judged by their
/// checks, and a page of them is only lost, never misread.
fn looks_random(page: &[u8]) -> bool {
    if page.len() < 1024 {
        return false;
    }
    let mut seen = [false; 256];
    for &b in page {
        seen[b as usize] = true;
    }
    seen.iter().filter(|&&s| s).count() >= 240
}

/// Every leaf and branch node of `data` at `page_size`, in page order, handed
/// to `visit`; returns what was counted. Meta pages (0 and 1) are left to the
/// caller.
pub fn scan<'a>(data: &'a [u8], page_size: usize, mut visit: impl FnMut(Found<'a>)) -> ScanStats {
    let pages = (data.len() / page_size.max(1)) as u64;
    let mut stats = ScanStats {
        pages,
        ..ScanStats::default()
    };
    if page_size < PAGE_HEADER_SIZE || pages <= 2 {
        return stats;
    }
    // Runs of pages scanned on all cores, each node found where its header
    // is (its overflow may run past the run's end). No page lacking a header
    // is walked as overflow by two nodes: a header stops the walk.
    let runs: Vec<Run<'a>> = (2..pages)
        .step_by(RUN_PAGES as usize)
        .collect::<Vec<u64>>()
        .into_par_iter()
        .map(|from| scan_run(data, page_size, from, (from + RUN_PAGES).min(pages)))
        .collect();
    // A page without a header of its own is unreadable unless an earlier
    // node spans it as overflow. The spans ([pgid + 1, end), in pgid order)
    // hold only such pages, so those covered are the spans' union.
    let mut covered = 0u64;
    let mut covered_to = 0u64;
    for f in runs.iter().flat_map(|r| &r.found) {
        let (from, to) = (f.found.pgid + 1, f.found.pgid + f.pages);
        covered += to.saturating_sub(from.max(covered_to));
        covered_to = covered_to.max(to);
    }
    let headerless: u64 = runs.iter().map(|r| r.headerless).sum();
    stats.unreadable_pages = headerless - covered;
    for run in runs {
        for n in run.found {
            if !n.found.whole {
                stats.cut_nodes += 1;
            }
            stats.overflow_pages += n.pages - 1;
            if n.found.node.header.flags == FLAG_LEAF {
                stats.leaf_pages += 1;
            } else {
                stats.branch_pages += 1;
            }
            stats.damaged_overflow_pages += n.found.damaged.len() as u64;
            visit(n.found);
        }
    }
    stats
}

/// Pages per run of the parallel scan.
const RUN_PAGES: u64 = 4096;

/// A node found by a run, and the pages it spans.
struct RunNode<'a> {
    pages: u64,
    found: Found<'a>,
}

/// What one run of pages holds.
struct Run<'a> {
    found: Vec<RunNode<'a>>,
    /// Pages of the run without a header of their own.
    headerless: u64,
}

/// Scans the pages `[from, to)` for nodes (see [`scan`]).
fn scan_run(data: &[u8], page_size: usize, from: u64, to: u64) -> Run<'_> {
    let pages = (data.len() / page_size) as u64;
    let mut run = Run {
        found: Vec::new(),
        headerless: 0,
    };
    for pgid in from..to {
        let Some(h) = own_header(data, page_size, pgid) else {
            run.headerless += 1;
            continue;
        };
        if h.flags != FLAG_LEAF && h.flags != FLAG_BRANCH {
            continue;
        }
        let start = pgid as usize * page_size;
        let claimed_end = pgid.saturating_add(1).saturating_add(u64::from(h.overflow));
        let mut end = pgid + 1;
        let mut whole = true;
        while end < claimed_end {
            if end >= pages || own_header(data, page_size, end).is_some() {
                whole = false;
                break;
            }
            end += 1;
        }
        let bytes = &data[start..end as usize * page_size];
        run.found.push(RunNode {
            pages: end - pgid,
            found: Found {
                pgid,
                node: Node { header: h, bytes },
                whole,
                damaged: damaged_overflow(bytes, page_size),
            },
        });
    }
    run
}

/// The spans of a node's overflow pages (all but its first page) that are
/// all zeroes or look like random bytes.
fn damaged_overflow(bytes: &[u8], page_size: usize) -> Vec<(usize, usize)> {
    bytes
        .chunks_exact(page_size)
        .enumerate()
        .skip(1)
        .filter(|(_, page)| page.iter().all(|&b| b == 0) || looks_random(page))
        .map(|(i, _)| (i * page_size, (i + 1) * page_size))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(id: u64, flags: u16, count: u16, overflow: u32, size: usize) -> Vec<u8> {
        let mut p = vec![0u8; size];
        p[0..8].copy_from_slice(&id.to_le_bytes());
        p[8..10].copy_from_slice(&flags.to_le_bytes());
        p[10..12].copy_from_slice(&count.to_le_bytes());
        p[12..16].copy_from_slice(&overflow.to_le_bytes());
        p
    }

    #[test]
    fn page_size_from_page_ids() {
        let mut f = vec![0u8; 2 * 4096];
        for id in 2..6 {
            f.extend(page(id, FLAG_LEAF, 0, 0, 4096));
        }
        assert_eq!(page_size(&f), Some((4096, PageSizeSource::PageIds)));
        assert_eq!(page_size(&[0u8; 100]), None);
    }

    #[test]
    fn overflow_past_eof_is_cut() {
        let mut f = vec![0u8; 2 * 512];
        f.extend(page(2, FLAG_LEAF, 0, 1000, 512));
        // Room for a node per two pages, reserved rather than grown (growing
        // copies the vector; untouched room costs nothing). It grows past that
        // if the file has more.
        let mut found = Vec::new();
        let stats = scan(&f, 512, |n| found.push(n));
        assert_eq!(found.len(), 1);
        assert!(!found[0].whole);
        assert_eq!(found[0].node.bytes.len(), 512);
        assert_eq!(stats.cut_nodes, 1);
    }

    #[test]
    fn overflow_stops_at_a_page_of_its_own() {
        let mut f = vec![0u8; 2 * 512];
        f.extend(page(2, FLAG_LEAF, 0, 3, 512));
        f.extend(vec![7u8; 512]);
        f.extend(page(4, FLAG_LEAF, 0, 0, 512));
        f.extend(vec![0u8; 512]);
        // Room for a node per two pages, reserved rather than grown (growing
        // copies the vector; untouched room costs nothing). It grows past that
        // if the file has more.
        let mut found = Vec::new();
        scan(&f, 512, |n| found.push(n));
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].node.bytes.len(), 1024);
        assert!(!found[0].whole);
        assert_eq!(found[1].pgid, 4);
    }

    #[test]
    fn page_id_mismatch_is_not_a_node() {
        let mut f = vec![0u8; 2 * 512];
        f.extend(page(9, FLAG_LEAF, 0, 0, 512));
        let mut n = 0;
        let stats = scan(&f, 512, |_| n += 1);
        assert_eq!(n, 0);
        assert_eq!(stats.unreadable_pages, 1);
    }

    #[test]
    fn zero_overflow_page_is_damage() {
        let mut f = vec![0u8; 2 * 1024];
        let mut p = page(2, FLAG_LEAF, 0, 1, 1024);
        p[100] = 1;
        f.extend(p);
        f.extend(vec![0u8; 1024]);
        // Room for a node per two pages, reserved rather than grown (growing
        // copies the vector; untouched room costs nothing). It grows past that
        // if the file has more.
        let mut found = Vec::new();
        scan(&f, 1024, |n| found.push(n));
        assert_eq!(found[0].damaged, vec![(1024, 2048)]);
        assert!(found[0].touches_damage(1000, 1025));
        assert!(!found[0].touches_damage(0, 1024));
    }
}
