//! bbolt meta pages: parsing, validation in bbolt's order, and the choice of the
//! meta page in force.
//!
//! A `snapshot save` file has both meta pages regenerated (txid T on page 0,
//! T-1 on page 1), so in a healthy snapshot both validate. bbolt opens a file as
//! long as one of them does; the checker still reports the other.

use super::page::{MAGIC, PAGE_HEADER_SIZE, PageHeader, VERSION, le_u32, le_u64, slice};

/// Size of the meta struct that follows the page header.
pub const META_SIZE: usize = 64;
/// Bytes covered by the checksum: the meta struct up to (not including) it.
const CHECKSUM_COVERS: usize = 56;

/// Smallest and largest page sizes we accept. bbolt itself takes any value, but a
/// page size outside this range is corruption in practice (the OS page size is
/// 4 KiB, 16 KiB or 64 KiB), and accepting it would let a damaged meta page
/// steer every later offset.
pub const MIN_PAGE_SIZE: u32 = 512;
/// The largest page size accepted (1 MiB).
pub const MAX_PAGE_SIZE: u32 = 1 << 20;

/// A meta page as bbolt writes it (one of the two at pages 0 and 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// The meta page's header.
    pub header: PageHeader,
    /// bbolt's magic number, 0xED0CDAED.
    pub magic: u32,
    /// The format version, 2.
    pub version: u32,
    /// The page size the file was written with.
    pub page_size: u32,
    /// Database flags (unused by bbolt).
    pub flags: u32,
    /// Root page of the root bucket.
    pub root: u64,
    /// The root bucket's sequence.
    pub root_sequence: u64,
    /// Freelist page, or [`super::page::NO_FREELIST`].
    pub freelist: u64,
    /// High-water mark: number of pages in use.
    pub pgid: u64,
    /// The transaction that wrote this meta page; the valid one with the higher txid is in force.
    pub txid: u64,
    /// FNV-1a 64 of the meta fields before it.
    pub checksum: u64,
}

/// Why a meta page is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetaFault {
    /// The file ends inside the meta page.
    #[error("the file ends inside the meta page")]
    Short,
    /// Not bbolt's magic number.
    #[error("invalid magic 0x{found:08x} (expected 0x{MAGIC:08x})")]
    Magic {
        /// The value found.
        found: u32,
    },
    /// A bbolt format version other than 2.
    #[error("version {found} (expected {VERSION})")]
    Version {
        /// The value found.
        found: u32,
    },
    /// The stored checksum is not the page's.
    #[error("checksum 0x{stored:016x} does not match the computed 0x{computed:016x}")]
    Checksum {
        /// The checksum stored.
        stored: u64,
        /// The checksum computed.
        computed: u64,
    },
    /// A page size outside [`MIN_PAGE_SIZE`]..=[`MAX_PAGE_SIZE`].
    #[error("implausible page size {found}")]
    PageSize {
        /// The value found.
        found: u32,
    },
}

/// FNV-1a 64 over the meta struct before its checksum field.
pub fn checksum(meta_struct: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in meta_struct.iter().take(CHECKSUM_COVERS) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

impl Meta {
    /// Parses and validates the meta page that starts at `page` (its first bytes).
    /// Checks in bbolt's order (magic, version, checksum), then the page size.
    pub fn parse(page: &[u8]) -> Result<Meta, MetaFault> {
        let header = PageHeader::parse(page).ok_or(MetaFault::Short)?;
        let m = slice(page, PAGE_HEADER_SIZE, META_SIZE).ok_or(MetaFault::Short)?;
        let get32 = |o| le_u32(m, o).ok_or(MetaFault::Short);
        let get64 = |o| le_u64(m, o).ok_or(MetaFault::Short);
        let meta = Meta {
            header,
            magic: get32(0)?,
            version: get32(4)?,
            page_size: get32(8)?,
            flags: get32(12)?,
            root: get64(16)?,
            root_sequence: get64(24)?,
            freelist: get64(32)?,
            pgid: get64(40)?,
            txid: get64(48)?,
            checksum: get64(56)?,
        };
        if meta.magic != MAGIC {
            return Err(MetaFault::Magic { found: meta.magic });
        }
        if meta.version != VERSION {
            return Err(MetaFault::Version {
                found: meta.version,
            });
        }
        let computed = checksum(m);
        if computed != meta.checksum {
            return Err(MetaFault::Checksum {
                stored: meta.checksum,
                computed,
            });
        }
        if !(MIN_PAGE_SIZE..=MAX_PAGE_SIZE).contains(&meta.page_size)
            || !meta.page_size.is_power_of_two()
        {
            return Err(MetaFault::PageSize {
                found: meta.page_size,
            });
        }
        Ok(meta)
    }
}

/// Which meta page bbolt uses: the one with the larger txid (page 1 only when its
/// txid is strictly larger) if it is valid, else the other one if that is valid.
pub fn choose(metas: &[Result<Meta, MetaFault>; 2]) -> Option<usize> {
    let preferred = match (&metas[0], &metas[1]) {
        (Ok(m0), Ok(m1)) if m1.txid > m0.txid => 1,
        (Ok(_), Ok(_)) => 0,
        (Ok(_), Err(_)) => 0,
        (Err(_), Ok(_)) => 1,
        (Err(_), Err(_)) => return None,
    };
    Some(preferred)
}
