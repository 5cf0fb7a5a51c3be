//! `get`, `history` and `ls PREFIX` of a snapshot in a bucket, read by ranges: with a
//! key index of the object in the cache — or beside the object in the
//! bucket (`KEY.etcdsnap-index`, written by `index URL --beside`), which is
//! then fetched into the cache — a lookup reads the meta pages, the tree
//! pages on its way and the leaves of the keys it wants, not the file
//! ([`crate::remote::ranged`]). Without an index, or when the object is
//! compressed, there is nothing to gain: the caller reads it whole (and the
//! index that lookup makes is cached, so the next one is read by ranges).

use std::path::Path;

use crate::bolt::Db;
use crate::bolt::db::Pager;
use crate::bolt::page::PageHeader;
use crate::input::SnapshotFile;
use crate::mvcc::index::Identity;
use crate::mvcc::keyspace::{KeySpace, Record};
use crate::remote::ranged::Ranged;

use super::finder::{Finder, IndexEvent, Select, adopt_index, cache_path};

/// The pages of a [`Ranged`] object, for the reader.
pub struct RangedPager<'r>(pub &'r Ranged);

impl Pager for RangedPager<'_> {
    fn ensure(&self, first: u64, count: u64) -> Result<(), String> {
        self.0.ensure_pages(first, count).map_err(|e| e.to_string())
    }
}

/// An object opened for a lookup by ranges.
pub struct RangedSnapshot {
    /// The object and its sparse copy.
    pub ranged: Ranged,
    /// The copy, opened as a snapshot.
    pub file: SnapshotFile,
}

/// Opens `url` for a lookup by ranges when that can work: a bucket's
/// object (not `http(s)://`), uncompressed, readable, with a key index of
/// its content in the cache. `None` otherwise, whatever the reason: the
/// caller then reads the object whole, and its errors say what is wrong.
pub fn open(url: &Path) -> Option<RangedSnapshot> {
    let ranged = Ranged::open(url.to_str()?).ok()?;
    let file = SnapshotFile::open_ranged(&ranged).ok()??;
    let db = Db::open(file.db()).ok()?;
    ranged.set_page_size(db.page_size() as u64);
    let pager = RangedPager(&ranged);
    let db = db.with_pager(&pager);
    let ks = KeySpace::open(&db).ok()?;
    let identity = Identity::of(&ks, file.trailer()).ok()?;
    let indexed = cache_path(&identity).is_some_and(|p| p.is_file())
        || index_beside(url.to_str()?, &identity);
    drop(ks);
    indexed.then_some(RangedSnapshot { ranged, file })
}

/// Leaves of a lookup at most this many pages apart are read as one range
/// (with the pages between): fewer requests for a few more bytes.
const PREFETCH_GAP: u64 = 16;

/// Fetches the leaves at `pages` and then the overflow pages they name (a
/// value larger than a page continues there, and only the leaf's header
/// says so): two rounds of coalesced, concurrent ranges instead of one
/// request per large value. `None` when the budget would be exceeded, or a
/// header claims more overflow than the budget holds.
fn prefetch_leaves(ranged: &Ranged, page_size: u64, pages: &[u64]) -> Option<()> {
    use std::os::unix::fs::FileExt;
    ranged.prefetch_pages(pages, PREFETCH_GAP).ok()?;
    let limit = crate::remote::ranged::MAX_BYTES / page_size.max(1);
    let mut more: Vec<u64> = Vec::new();
    let mut head = [0u8; 16];
    for &p in pages {
        ranged
            .file()
            .read_exact_at(&mut head, p.checked_mul(page_size)?)
            .ok()?;
        let Some(h) = PageHeader::parse(&head) else {
            continue;
        };
        // A page that is not what the index says is for the reader to
        // report; it names no overflow to fetch.
        if h.id != p || h.overflow == 0 {
            continue;
        }
        if more.len() as u64 + u64::from(h.overflow) > limit {
            return None;
        }
        more.extend(p + 1..=p + u64::from(h.overflow));
    }
    if !more.is_empty() {
        ranged.prefetch_pages(&more, PREFETCH_GAP).ok()?;
    }
    Some(())
}

/// The largest index fetched from beside an object.
const INDEX_LIMIT: u64 = 256 << 20;

/// Whether the bucket holds a key index of this object beside it
/// (`URL.etcdsnap-index`), now copied into the cache.
fn index_beside(url: &str, identity: &Identity) -> bool {
    use std::io::Read;
    let Ok(spooled) = crate::remote::fetch(&format!("{url}.etcdsnap-index")) else {
        return false;
    };
    if spooled.len > INDEX_LIMIT {
        return false;
    }
    let mut bytes = Vec::with_capacity(spooled.len as usize);
    if spooled
        .file
        .take(INDEX_LIMIT)
        .read_to_end(&mut bytes)
        .is_err()
    {
        return false;
    }
    adopt_index(&bytes, identity).is_some()
}

/// A lookup on `r`, read by ranges: `select`'s records are gathered through
/// the cached key index, then `show` is called with the keyspace, the
/// records (each key's oldest first) and the finder (for further lookups),
/// and `-v` is told how much was read. `None` when the lookup could not be
/// done that way before `show` was called (an index that does not hold up,
/// a read past the budget): the caller then reads the object whole.
pub fn lookup<T>(
    r: &RangedSnapshot,
    select: Select<'_>,
    notify: &dyn Fn(&IndexEvent),
    show: impl FnOnce(&KeySpace<'_, '_>, &[Record<'_>], &mut Finder<'_, '_, '_, '_>) -> T,
) -> Option<T> {
    let pager = RangedPager(&r.ranged);
    let db = Db::open(r.file.db()).ok()?.with_pager(&pager);
    let ks = KeySpace::open(&db).ok()?;
    let mut finder = Finder::new(&r.file, &ks, true, notify).ok()?;
    // The leaves the index names, fetched together (a budget that would be
    // exceeded: read the object whole, not the index reported stale).
    let pages = finder.index_pages(&select)?;
    prefetch_leaves(&r.ranged, db.page_size() as u64, &pages)?;
    let records = finder.records(select).ok()?;
    let shown = show(&ks, &records, &mut finder);
    r.ranged.tell_counts();
    Some(shown)
}
