//! A read-only view of a bbolt database held in a byte slice (the mapped file).
//!
//! Opening finds the page size the way bbolt does, validates both meta pages and
//! picks the one in force; after that every page is reached through
//! [`Db::node`], which refuses pages past the high-water mark or the end of the
//! file instead of reading them.

use super::meta::{self, Meta, MetaFault};
use super::page::{ElementFault, FLAG_BRANCH, FLAG_LEAF, Node, PAGE_HEADER_SIZE, PageHeader};

/// Why a file cannot be opened as a bbolt database at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// The file has no bytes.
    #[error("the file is empty")]
    Empty,
    /// Neither meta page is valid.
    #[error("no valid meta page: page 0: {meta0}; page 1: {meta1}")]
    NoValidMeta {
        /// Why page 0 is not valid.
        meta0: MetaFault,
        /// Why page 1 is not valid.
        meta1: MetaFault,
    },
    /// The file is shorter than the two meta pages.
    #[error("{len} bytes is too small for two meta pages of {page_size} bytes")]
    TooSmall {
        /// Bytes of the file.
        len: usize,
        /// The page size.
        page_size: u32,
    },
}

/// Why a page cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageFault {
    /// A page id at or past the high-water mark.
    #[error("page id is at or past the high-water mark {hwm}")]
    BeyondHwm {
        /// The high-water mark.
        hwm: u64,
    },
    /// A page past the end of the file.
    #[error("page lies past the end of the file ({len} bytes; truncated?)")]
    BeyondEof {
        /// Bytes of the file.
        len: usize,
    },
    /// A page's overflow pages run past the end of the file.
    #[error("page and its {overflow} overflow pages run past the end of the file ({len} bytes)")]
    OverflowBeyondEof {
        /// Its overflow pages.
        overflow: u32,
        /// Bytes of the file.
        len: usize,
    },
    /// A page's overflow pages run past the high-water mark.
    #[error("page and its {overflow} overflow pages run past the high-water mark {hwm}")]
    OverflowBeyondHwm {
        /// Its overflow pages.
        overflow: u32,
        /// The high-water mark.
        hwm: u64,
    },
    /// An element that does not fit its page.
    #[error("{0}")]
    Layout(ElementFault),
    /// The page could not be fetched ([`Pager`]).
    #[error("page not read: {0}")]
    Fetch(String),
}

/// Where the pages of a file that is not all present come from: a remote
/// object read by ranges into a sparse local copy
/// (`remote::ranged`). The reader asks for every node before it reads it
/// ([`Db::node_span`]), first its first page (for the header), then the
/// overflow pages the header names; reads of pages never asked for see
/// zeroes, which no check takes for a page.
pub trait Pager: Sync {
    /// Makes pages `first .. first + count` of the file readable, or says
    /// why not.
    fn ensure(&self, first: u64, count: u64) -> Result<(), String>;
}

/// A bbolt file in memory, checked enough to be walked: its bytes and page size.
#[derive(Clone)]
pub struct Db<'a> {
    data: &'a [u8],
    page_size: usize,
    metas: [Result<Meta, MetaFault>; 2],
    active: usize,
    pager: Option<&'a dyn Pager>,
}

impl std::fmt::Debug for Db<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("len", &self.data.len())
            .field("page_size", &self.page_size)
            .field("metas", &self.metas)
            .field("active", &self.active)
            .field("paged", &self.pager.is_some())
            .finish()
    }
}

impl<'a> Db<'a> {
    /// Opens the database bytes (a snapshot file without its sha256 trailer).
    pub fn open(data: &'a [u8]) -> Result<Db<'a>, OpenError> {
        if data.is_empty() {
            return Err(OpenError::Empty);
        }
        let page_size = find_page_size(data);
        let page_size_u32 = page_size.unwrap_or(4096);
        let ps = page_size_u32 as usize;
        let meta_at = |i: usize| match data.get(i * ps..) {
            Some(b) if !b.is_empty() => Meta::parse(b),
            _ => Err(MetaFault::Short),
        };
        let metas = [meta_at(0), meta_at(1)];
        let Some(active) = meta::choose(&metas) else {
            let [m0, m1] = metas;
            return Err(OpenError::NoValidMeta {
                meta0: m0.err().unwrap_or(MetaFault::Short),
                meta1: m1.err().unwrap_or(MetaFault::Short),
            });
        };
        if data.len() < 2 * ps {
            return Err(OpenError::TooSmall {
                len: data.len(),
                page_size: page_size_u32,
            });
        }
        Ok(Db {
            data,
            page_size: ps,
            metas,
            active,
            pager: None,
        })
    }

    /// The same file, its pages asked of `pager` before each node is read
    /// (the meta pages must be present already).
    pub fn with_pager(mut self, pager: &'a dyn Pager) -> Db<'a> {
        self.pager = Some(pager);
        self
    }

    /// The file's bytes.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// The page size the meta page names (validated against [`super::meta::MIN_PAGE_SIZE`] and [`super::meta::MAX_PAGE_SIZE`]).
    pub fn page_size(&self) -> usize {
        self.page_size
    }

    /// Both meta pages as parsed; index 0 is page 0.
    pub fn metas(&self) -> &[Result<Meta, MetaFault>; 2] {
        &self.metas
    }

    /// Which meta page is in force (0 or 1).
    pub fn active_meta_index(&self) -> usize {
        self.active
    }

    /// The meta page in force.
    pub fn meta(&self) -> &Meta {
        match &self.metas[self.active] {
            Ok(m) => m,
            // `open` only succeeds with a valid meta at `active`.
            Err(_) => unreachable!("active meta page is valid by construction"),
        }
    }

    /// High-water mark: pages `[0, hwm)` are in use.
    pub fn hwm(&self) -> u64 {
        self.meta().pgid
    }

    /// Size of the database as bbolt sees it (`tx.Size()`): hwm × page size.
    pub fn size(&self) -> u64 {
        self.hwm().saturating_mul(self.page_size as u64)
    }

    /// Whole pages present in the file.
    pub fn file_pages(&self) -> u64 {
        (self.data.len() / self.page_size) as u64
    }

    /// Byte offset of a page in the file (saturating, for messages).
    pub fn offset_of(&self, pgid: u64) -> u64 {
        pgid.saturating_mul(self.page_size as u64)
    }

    /// The header of page `pgid`, if the page lies inside the file.
    pub fn header(&self, pgid: u64) -> Result<PageHeader, PageFault> {
        let start = self.start_of(pgid)?;
        if let Some(p) = self.pager {
            p.ensure(pgid, 1).map_err(PageFault::Fetch)?;
        }
        PageHeader::parse(&self.data[start..]).ok_or(PageFault::BeyondEof {
            len: self.data.len(),
        })
    }

    fn start_of(&self, pgid: u64) -> Result<usize, PageFault> {
        let len = self.data.len();
        if pgid >= self.file_pages() {
            return Err(PageFault::BeyondEof { len });
        }
        // pgid < file_pages, so the product fits in usize.
        Ok(pgid as usize * self.page_size)
    }

    /// Page `pgid` with its overflow pages, for reading as a branch or leaf;
    /// refused when its element data overlap or are out of element order
    /// ([`Node::layout_fault`]), so no reader can be made to read a span once
    /// per element.
    pub fn node(&self, pgid: u64) -> Result<Node<'a>, PageFault> {
        let node = self.node_span(pgid)?;
        match node.layout_fault() {
            Some(fault) => Err(PageFault::Layout(fault)),
            None => Ok(node),
        }
    }

    /// Page `pgid` with its overflow pages, checked for bounds only (the walk
    /// marks the pages a node spans even when its elements are bad).
    pub fn node_span(&self, pgid: u64) -> Result<Node<'a>, PageFault> {
        let hwm = self.hwm();
        if pgid >= hwm {
            return Err(PageFault::BeyondHwm { hwm });
        }
        let start = self.start_of(pgid)?;
        let header = self.header(pgid)?;
        let pages = u64::from(header.overflow) + 1;
        let len = self.data.len();
        if pgid.saturating_add(pages) > hwm {
            return Err(PageFault::OverflowBeyondHwm {
                overflow: header.overflow,
                hwm,
            });
        }
        if pgid.saturating_add(pages) > self.file_pages() {
            return Err(PageFault::OverflowBeyondEof {
                overflow: header.overflow,
                len,
            });
        }
        if let Some(p) = self.pager
            && pages > 1
        {
            p.ensure(pgid + 1, pages - 1).map_err(PageFault::Fetch)?;
        }
        let end = start + pages as usize * self.page_size;
        Ok(Node {
            header,
            bytes: &self.data[start..end],
        })
    }
}

/// Finds the page size as bbolt does: from a valid meta page 0, else by probing
/// for a valid meta page 1 at 1 KiB, 2 KiB, … 16 MiB.
fn find_page_size(data: &[u8]) -> Option<u32> {
    if let Ok(m) = Meta::parse(data) {
        return Some(m.page_size);
    }
    for i in 0..=14u32 {
        let off = 1024usize << i;
        if off + 1024 >= data.len() {
            break;
        }
        if let Ok(m) = Meta::parse(&data[off..]) {
            return Some(m.page_size);
        }
    }
    None
}

/// Whether `flags` is a node type the tree may contain.
pub fn is_node(flags: u16) -> bool {
    flags == FLAG_BRANCH || flags == FLAG_LEAF
}

/// Offset, inside a node, of the first element.
pub const ELEMENTS_START: usize = PAGE_HEADER_SIZE;
