//! The bbolt on-disk page format: constants, page headers, branch and leaf
//! elements, bucket headers.
//!
//! Every read goes through [`slice()`] and the little-endian helpers, which return
//! `None` instead of indexing out of bounds, so a damaged page can never make us
//! read outside the mapped file. Layout facts: `docs/design/formats.md` §1.

/// Magic number in both meta pages.
pub const MAGIC: u32 = 0xED0C_DAED;
/// The only data format version bbolt has written.
pub const VERSION: u32 = 2;
/// `meta.freelist` when the freelist is not persisted (etcd's NoFreelistSync).
pub const NO_FREELIST: u64 = u64::MAX;

/// Bytes of a page header: id (8), flags (2), count (2), overflow (4).
pub const PAGE_HEADER_SIZE: usize = 16;
/// Bytes of a branch or leaf element header.
pub const ELEMENT_SIZE: usize = 16;
/// Bytes of a bucket header (root page id, sequence) in a bucket's value.
pub const BUCKET_HEADER_SIZE: usize = 16;

/// Page flag: a branch page.
pub const FLAG_BRANCH: u16 = 0x01;
/// Page flag: a leaf page.
pub const FLAG_LEAF: u16 = 0x02;
/// Page flag: a meta page.
pub const FLAG_META: u16 = 0x04;
/// Page flag: a freelist page.
pub const FLAG_FREELIST: u16 = 0x10;

/// Leaf element flag: the value is a bucket header, not a plain value.
pub const BUCKET_LEAF_FLAG: u32 = 0x01;

/// Bytes `[off, off+len)` of `b`, or `None` if any of it lies outside.
#[inline]
pub fn slice(b: &[u8], off: usize, len: usize) -> Option<&[u8]> {
    b.get(off..off.checked_add(len)?)
}

/// The little-endian u16 at `off` of `b`; None past its end.
#[inline]
pub fn le_u16(b: &[u8], off: usize) -> Option<u16> {
    let s = slice(b, off, 2)?;
    Some(u16::from_le_bytes([s[0], s[1]]))
}

/// The little-endian u32 at `off` of `b`; None past its end.
#[inline]
pub fn le_u32(b: &[u8], off: usize) -> Option<u32> {
    let s = slice(b, off, 4)?;
    let mut a = [0u8; 4];
    a.copy_from_slice(s);
    Some(u32::from_le_bytes(a))
}

/// The little-endian u64 at `off` of `b`; None past its end.
#[inline]
pub fn le_u64(b: &[u8], off: usize) -> Option<u64> {
    let s = slice(b, off, 8)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Some(u64::from_le_bytes(a))
}

/// Human name of a page's flags, for messages.
pub fn flags_name(flags: u16) -> String {
    match flags {
        FLAG_BRANCH => "branch".into(),
        FLAG_LEAF => "leaf".into(),
        FLAG_META => "meta".into(),
        FLAG_FREELIST => "freelist".into(),
        other => format!("unknown (0x{other:04x})"),
    }
}

/// The 16-byte header at the start of every page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageHeader {
    /// The page's id: its offset divided by the page size.
    pub id: u64,
    /// What the page holds (the `FLAG_*` bits).
    pub flags: u16,
    /// Elements on the page (freelist: ids, or 0xFFFF and a count in the first).
    pub count: u16,
    /// Pages that follow this one as part of it.
    pub overflow: u32,
}

impl PageHeader {
    /// The header at the start of `b`; None when `b` is shorter than a header.
    pub fn parse(b: &[u8]) -> Option<PageHeader> {
        Some(PageHeader {
            id: le_u64(b, 0)?,
            flags: le_u16(b, 8)?,
            count: le_u16(b, 10)?,
            overflow: le_u32(b, 12)?,
        })
    }
}

/// A branch or leaf node: its header and the bytes it spans (header included,
/// overflow pages included, cut short at the end of the file).
#[derive(Debug, Clone, Copy)]
pub struct Node<'a> {
    /// The node's page header.
    pub header: PageHeader,
    /// The node's bytes, overflow pages included.
    pub bytes: &'a [u8],
}

/// One element of a leaf node.
#[derive(Debug, Clone, Copy)]
pub struct LeafElement<'a> {
    /// Element flags (the bucket flag).
    pub flags: u32,
    /// The key.
    pub key: &'a [u8],
    /// The value (a bucket header when the bucket flag is set).
    pub value: &'a [u8],
}

impl LeafElement<'_> {
    /// Whether the element's value is a sub-bucket (the bucket flag is set).
    pub fn is_bucket(&self) -> bool {
        self.flags & BUCKET_LEAF_FLAG != 0
    }
}

/// One element of a branch node: the first key of a child and the child's pgid.
#[derive(Debug, Clone, Copy)]
pub struct BranchElement<'a> {
    /// The first key of the child's subtree.
    pub key: &'a [u8],
    /// The child page's id.
    pub child: u64,
}

/// Why an element could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ElementFault {
    /// The 16-byte element itself is outside the node.
    Element,
    /// Its key (or value) points outside the node.
    Data {
        /// The offset of the key from the element's header.
        pos: u32,
        /// Bytes of the key.
        ksize: u32,
        /// Bytes of the value.
        vsize: u32,
    },
    /// Its key and value do not start after the data of the element before it
    /// (or, for the first element, after the element array).
    Overlap {
        /// The element that overlaps another.
        index: usize,
        /// Offset of its data inside the node.
        start: u64,
        /// Where the previous element's data (or the element array) ends.
        prev_end: u64,
    },
}

impl std::fmt::Display for ElementFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ElementFault::Element => write!(f, "element lies outside the page"),
            ElementFault::Data { pos, ksize, vsize } => write!(
                f,
                "key/value (pos {pos}, key size {ksize}, value size {vsize}) lies outside the page"
            ),
            ElementFault::Overlap {
                index,
                start,
                prev_end,
            } => {
                let what = if *index == 0 {
                    "the element array".to_string()
                } else {
                    format!("element {}'s data", index - 1)
                };
                write!(
                    f,
                    "element {index}'s data at node offset {start} overlaps {what}, which ends at {prev_end} \
                     (bbolt writes element data packed, in element order)"
                )
            }
        }
    }
}

impl<'a> Node<'a> {
    /// Offset of element `i` inside the node.
    #[inline]
    pub fn element_offset(i: usize) -> usize {
        PAGE_HEADER_SIZE + i * ELEMENT_SIZE
    }

    /// How many elements the node holds, as its header says.
    pub fn count(&self) -> usize {
        self.header.count as usize
    }

    /// Whether all `count` elements fit inside the node.
    pub fn elements_fit(&self) -> bool {
        Self::element_offset(self.count()) <= self.bytes.len()
    }

    /// Checks that the element data lie after the element array and in
    /// element order without overlapping, as bbolt writes them. A node that
    /// passes reads each of its bytes at most once however its elements are
    /// read, so work stays linear in the file's size; one that fails would let
    /// thousands of elements point at one large span. Only the elements that
    /// fit in the node are looked at (the walk reports a count that overruns).
    pub fn layout_fault(&self) -> Option<ElementFault> {
        let (pos_at, has_value) = match self.header.flags {
            FLAG_LEAF => (4, true),
            FLAG_BRANCH => (0, false),
            _ => return None,
        };
        let fit = self.bytes.len().saturating_sub(PAGE_HEADER_SIZE) / ELEMENT_SIZE;
        let count = self.count().min(fit);
        let mut prev_end = Self::element_offset(count) as u64;
        for index in 0..count {
            let off = Self::element_offset(index);
            let field = |at: usize| u64::from(le_u32(self.bytes, off + at).unwrap_or(0));
            let start = off as u64 + field(pos_at);
            let len = field(pos_at + 4) + if has_value { field(pos_at + 8) } else { 0 };
            if start < prev_end {
                return Some(ElementFault::Overlap {
                    index,
                    start,
                    prev_end,
                });
            }
            prev_end = start + len;
        }
        None
    }

    /// Leaf element `i`: its flags, key and value, each within the node's bytes.
    pub fn leaf(&self, i: usize) -> Result<LeafElement<'a>, ElementFault> {
        let off = Self::element_offset(i);
        let e = slice(self.bytes, off, ELEMENT_SIZE).ok_or(ElementFault::Element)?;
        let flags = le_u32(e, 0).ok_or(ElementFault::Element)?;
        let pos = le_u32(e, 4).ok_or(ElementFault::Element)?;
        let ksize = le_u32(e, 8).ok_or(ElementFault::Element)?;
        let vsize = le_u32(e, 12).ok_or(ElementFault::Element)?;
        let fault = ElementFault::Data { pos, ksize, vsize };
        let kstart = off.checked_add(pos as usize).ok_or(fault.clone())?;
        let key = slice(self.bytes, kstart, ksize as usize).ok_or(fault.clone())?;
        let value = slice(self.bytes, kstart + ksize as usize, vsize as usize).ok_or(fault)?;
        Ok(LeafElement { flags, key, value })
    }

    /// Branch element `i`: its first key and child page id, within the node's bytes.
    pub fn branch(&self, i: usize) -> Result<BranchElement<'a>, ElementFault> {
        let off = Self::element_offset(i);
        let e = slice(self.bytes, off, ELEMENT_SIZE).ok_or(ElementFault::Element)?;
        let pos = le_u32(e, 0).ok_or(ElementFault::Element)?;
        let ksize = le_u32(e, 4).ok_or(ElementFault::Element)?;
        let child = le_u64(e, 8).ok_or(ElementFault::Element)?;
        let fault = ElementFault::Data {
            pos,
            ksize,
            vsize: 0,
        };
        let kstart = off.checked_add(pos as usize).ok_or(fault.clone())?;
        let key = slice(self.bytes, kstart, ksize as usize).ok_or(fault)?;
        Ok(BranchElement { key, child })
    }
}

/// The value of a bucket entry: where its tree starts.
#[derive(Debug, Clone, Copy)]
pub enum BucketRoot<'a> {
    /// A tree of pages starting at this pgid.
    Page(u64),
    /// An inline bucket: a leaf node embedded in the parent's value.
    Inline(&'a [u8]),
}

/// A bucket's value in its parent: where its root is, and its sequence.
#[derive(Debug, Clone, Copy)]
pub struct BucketHeader<'a> {
    /// Where the bucket's root node is.
    pub root: BucketRoot<'a>,
    /// The bucket's sequence counter.
    pub sequence: u64,
}

impl<'a> BucketHeader<'a> {
    /// Parses a bucket entry's value. `None` if it is shorter than a header or,
    /// for an inline bucket, than the embedded page header.
    pub fn parse(value: &'a [u8]) -> Option<BucketHeader<'a>> {
        let root = le_u64(value, 0)?;
        let sequence = le_u64(value, 8)?;
        let root = if root == 0 {
            let inline = &value[BUCKET_HEADER_SIZE..];
            if inline.len() < PAGE_HEADER_SIZE {
                return None;
            }
            BucketRoot::Inline(inline)
        } else {
            BucketRoot::Page(root)
        };
        Some(BucketHeader { root, sequence })
    }
}
