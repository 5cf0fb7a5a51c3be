//! A key index of one snapshot: for every user key, where each of its stored
//! revisions lies in the `key` bucket.
//!
//! Why it exists: the `key` bucket is ordered by revision, so finding one key
//! without an index means reading the part of every value that names its key.
//! On the 1.4 GB benchmark snapshot that is 650 MB (46% of the file) in 132,000
//! scattered pieces, more than a disk reading ~1 GB/s can serve in under a
//! second. With an index, a lookup is a binary search in a small file plus the
//! leaf pages of that key's revisions.
//!
//! An index is an optimisation, never an authority:
//! - it is bound to one snapshot's content by an [`Identity`] (db length, page
//!   size, the active meta page's txid and checksum, the key bucket's root page,
//!   and the sha256 trailer when there is one); an index of another file is
//!   refused;
//! - every location it gives is read back from the snapshot and must hold a
//!   revision of the wanted key, in increasing revision order, and what it
//!   gives must be whole: no other element of the leaves read holds a revision
//!   of the key, and the key's versions leave no gap ([`version_gap`]); callers
//!   scan instead when that fails ([`KeySpace::whole_records_at`]). What no check can
//!   see without reading the leaves an index does not name: a key left out
//!   entirely, or its newest revisions when they lie in other leaves; the
//!   index is bound to the snapshot's content, and these lies need a crafted
//!   file with a recomputed checksum.
//!
//! # Format, version 1 (all integers little-endian)
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `ETCDSNPI` |
//! | 8 | 4 | version = 1 |
//! | 12 | 4 | reserved = 0 |
//! | 16 | 64 | identity ([`Identity`]) |
//! | 80 | 8 | K: number of keys |
//! | 88 | 8 | E: number of entries (stored revisions with a user key) |
//! | 96 | 8 | N: bytes of key names |
//! | 104 | 24 | reserved = 0 |
//! | 128 | 16·K | key rows: name offset u64, name length u32, first entry u32 |
//! | … | 12·E | entries: leaf pgid u64 (0 = the inline root), element u32 |
//! | … | N | key names, concatenated |
//! | end−4 | 4 | CRC-32C of every byte before it |
//!
//! Invariants, all checked by [`KeyIndex::parse`] before any use: the length is
//! exactly what the counts say; the CRC matches; key names lie inside the name
//! area and are strictly increasing (so binary search is sound); the first key
//! starts at entry 0 and each key owns at least one entry, up to the next key's
//! first entry (the last key's up to E); E fits in u32. Entries of one key are in
//! the order of the `key` bucket, that is by revision.

use rayon::prelude::*;

use super::keyspace::{KeySpace, KeySpaceError, Record, corrupt, record};
use super::revision::Revision;
use crate::bolt::page::{FLAG_LEAF, le_u32, le_u64, slice};
use crate::problem::Problem;

/// The first bytes of a key index file.
pub const MAGIC: &[u8; 8] = b"ETCDSNPI";
/// The index format's version; another is refused and rebuilt.
pub const VERSION: u32 = 1;
/// Bytes of the index header.
pub const HEADER_LEN: usize = 128;
/// Bytes of the snapshot identity in the header.
pub const IDENTITY_LEN: usize = 64;
const KEY_ROW_LEN: usize = 16;
const ENTRY_LEN: usize = 12;
const CRC_LEN: usize = 4;

/// What binds an index to one snapshot's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity(pub [u8; IDENTITY_LEN]);

impl Identity {
    /// The identity of the snapshot behind `ks`; `trailer` is its sha256
    /// trailer, when it has one. Reads the meta page and the key bucket's root
    /// page only.
    pub fn of(ks: &KeySpace<'_, '_>, trailer: Option<&[u8]>) -> Result<Identity, KeySpaceError> {
        let db = ks.db();
        let meta = db.meta();
        let root = ks.root_node()?;
        let first_page = slice(root.bytes, 0, db.page_size().min(root.bytes.len())).unwrap_or(&[]);
        let mut id = [0u8; IDENTITY_LEN];
        id[0..8].copy_from_slice(&(db.data().len() as u64).to_le_bytes());
        id[8..12].copy_from_slice(&meta.page_size.to_le_bytes());
        id[12..20].copy_from_slice(&meta.txid.to_le_bytes());
        id[20..28].copy_from_slice(&meta.checksum.to_le_bytes());
        id[28..32].copy_from_slice(&crc32c::crc32c(first_page).to_le_bytes());
        if let Some(t) = trailer
            && t.len() == 32
        {
            id[32..64].copy_from_slice(t);
        }
        Ok(Identity(id))
    }

    /// A short stable name for file names: hex of the first 16 bytes of the
    /// identity's sha256.
    pub fn file_stem(&self) -> String {
        let d = ring::digest::digest(&ring::digest::SHA256, &self.0);
        d.as_ref()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// Where one stored revision lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// The leaf page; 0 for the key bucket's inline root.
    pub pgid: u64,
    /// The element's index in its leaf.
    pub element: u32,
}

/// Why an index cannot be written or used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IndexError {
    /// Not a key index file.
    #[error("not an etcdsnap key index (no {MAGIC:?} magic)")]
    Magic,
    /// A format version this build does not read.
    #[error("key index version {0} is not supported (this etcdsnap reads version {VERSION})")]
    Version(u32),
    /// The file's length is not what its header says.
    #[error("key index is {len} bytes; its header says {expected}")]
    Length {
        /// Bytes of the index file.
        len: usize,
        /// The length its header implies.
        expected: String,
    },
    /// The stored checksum is not the file's.
    #[error("key index checksum mismatch (stored {stored:08x}, computed {computed:08x})")]
    Checksum {
        /// The checksum stored.
        stored: u32,
        /// The checksum computed.
        computed: u32,
    },
    /// A record that does not fit the format.
    #[error("key index byte {offset}: {what}")]
    Layout {
        /// The byte offset.
        offset: usize,
        /// What is wrong.
        what: String,
    },
    /// Too many revisions for the format.
    #[error("the snapshot has more than 2^32 stored revisions; not indexed")]
    TooLarge,
}

/// A parsed, validated key index over borrowed bytes.
#[derive(Debug, Clone, Copy)]
pub struct KeyIndex<'i> {
    identity: &'i [u8],
    rows: &'i [u8],
    entries: &'i [u8],
    names: &'i [u8],
    key_count: usize,
    entry_count: usize,
}

fn layout(offset: usize, what: impl Into<String>) -> IndexError {
    IndexError::Layout {
        offset,
        what: what.into(),
    }
}

impl<'i> KeyIndex<'i> {
    /// Checks every invariant of the format (see the module docs).
    pub fn parse(data: &'i [u8]) -> Result<KeyIndex<'i>, IndexError> {
        if data.len() < 8 || &data[..8] != MAGIC {
            return Err(IndexError::Magic);
        }
        let short = || IndexError::Length {
            len: data.len(),
            expected: format!("at least {}", HEADER_LEN + CRC_LEN),
        };
        if data.len() < HEADER_LEN + CRC_LEN {
            return Err(short());
        }
        let version = le_u32(data, 8).ok_or_else(short)?;
        if version != VERSION {
            return Err(IndexError::Version(version));
        }
        let body_len = data.len() - CRC_LEN;
        let stored = le_u32(data, body_len).ok_or_else(short)?;
        let computed = crc32c::crc32c(&data[..body_len]);
        if stored != computed {
            return Err(IndexError::Checksum { stored, computed });
        }
        let count = |off: usize| -> Result<usize, IndexError> {
            let v = le_u64(data, off).ok_or_else(short)?;
            usize::try_from(v).map_err(|_| layout(off, format!("count {v} is too large")))
        };
        let (key_count, entry_count, names_len) = (count(80)?, count(88)?, count(96)?);
        if u32::try_from(entry_count).is_err() {
            return Err(layout(
                88,
                format!("{entry_count} entries (at most 2^32-1)"),
            ));
        }
        let expected = key_count
            .checked_mul(KEY_ROW_LEN)
            .and_then(|r| entry_count.checked_mul(ENTRY_LEN)?.checked_add(r))
            .and_then(|n| n.checked_add(names_len)?.checked_add(HEADER_LEN + CRC_LEN));
        if expected != Some(data.len()) {
            return Err(IndexError::Length {
                len: data.len(),
                expected: expected.map_or("more than fits in memory".into(), |e| e.to_string()),
            });
        }
        let rows_at = HEADER_LEN;
        let entries_at = rows_at + key_count * KEY_ROW_LEN;
        let names_at = entries_at + entry_count * ENTRY_LEN;
        let idx = KeyIndex {
            identity: &data[16..16 + IDENTITY_LEN],
            rows: &data[rows_at..entries_at],
            entries: &data[entries_at..names_at],
            names: &data[names_at..names_at + names_len],
            key_count,
            entry_count,
        };
        if key_count == 0 && entry_count != 0 {
            return Err(layout(88, "entries without keys"));
        }
        let mut previous: Option<&[u8]> = None;
        for i in 0..key_count {
            let row_at = rows_at + i * KEY_ROW_LEN;
            let (name, first) = idx.row(i).ok_or_else(|| {
                layout(row_at, format!("key {i}'s name lies outside the name area"))
            })?;
            let next = idx.first_entry(i + 1);
            if (i == 0 && first != 0) || first >= next {
                return Err(layout(
                    row_at + 12,
                    format!("key {i}'s entries [{first}, {next}) are not a non-empty run"),
                ));
            }
            if previous.is_some_and(|p| p >= name) {
                return Err(layout(
                    row_at,
                    format!("key {i} is not after key {}", i - 1),
                ));
            }
            previous = Some(name);
        }
        Ok(idx)
    }

    /// The identity of the snapshot this index was made from.
    pub fn identity(&self) -> &'i [u8] {
        self.identity
    }

    /// How many keys the index holds.
    pub fn key_count(&self) -> usize {
        self.key_count
    }

    /// How many revisions the index holds (every key's).
    pub fn entry_count(&self) -> usize {
        self.entry_count
    }

    /// Key `i`'s name and first entry; `None` if out of bounds.
    fn row(&self, i: usize) -> Option<(&'i [u8], usize)> {
        let r = slice(self.rows, i.checked_mul(KEY_ROW_LEN)?, KEY_ROW_LEN)?;
        let off = usize::try_from(le_u64(r, 0)?).ok()?;
        let len = le_u32(r, 8)? as usize;
        let first = le_u32(r, 12)? as usize;
        Some((slice(self.names, off, len)?, first))
    }

    /// First entry of key `i`; the entry count past the last key.
    fn first_entry(&self, i: usize) -> usize {
        if i >= self.key_count {
            return self.entry_count;
        }
        self.row(i).map_or(self.entry_count, |(_, f)| f)
    }

    /// Name of key `i` (empty when out of range).
    pub fn key(&self, i: usize) -> &'i [u8] {
        self.row(i).map_or(&[], |(name, _)| name)
    }

    /// Every key with its number, in byte order.
    pub fn keys(&self) -> impl Iterator<Item = (usize, &'i [u8])> + '_ {
        (0..self.key_count).map(|i| (i, self.key(i)))
    }

    /// The number of key `key`, by binary search.
    pub fn find(&self, key: &[u8]) -> Option<usize> {
        let (mut lo, mut hi) = (0, self.key_count);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.key(mid).cmp(key) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(mid),
            }
        }
        None
    }

    /// Where key `i`'s revisions lie, oldest first.
    pub fn locations(&self, i: usize) -> impl Iterator<Item = Location> + '_ {
        let (first, end) = match self.row(i) {
            Some((_, f)) if i < self.key_count => (f, self.first_entry(i + 1)),
            _ => (0, 0),
        };
        (first..end).filter_map(|e| {
            let b = slice(self.entries, e.checked_mul(ENTRY_LEN)?, ENTRY_LEN)?;
            Some(Location {
                pgid: le_u64(b, 0)?,
                element: le_u32(b, 8)?,
            })
        })
    }
}

/// Builds the index of the snapshot behind `ks`: one pass over every leaf on
/// all cores, then a stable sort by key (so each key's entries stay in
/// revision order). Keys are copied into one arena first: sorting slices that
/// point all over a large mapped file spends its time on cache misses.
pub fn build(ks: &KeySpace<'_, '_>, identity: &Identity) -> Result<Vec<u8>, KeySpaceError> {
    let leaves = ks.leaves()?;
    let root_is_inline = ks.root_is_inline();
    // Per leaf: its keys, concatenated, and (key length, location, revision)
    // per entry.
    type Part = (Vec<u8>, Vec<(u32, Location, Revision)>);
    let parts: Vec<Result<Part, KeySpaceError>> = leaves
        .par_iter()
        .map(|leaf| {
            let pgid = if root_is_inline { 0 } else { leaf.header.id };
            let (mut names, mut entries) = (Vec::new(), Vec::with_capacity(leaf.count()));
            for i in 0..leaf.count() {
                let e = leaf.leaf(i).map_err(|f| corrupt(b"", f.to_string()))?;
                if let Some(r) = record(e.key, e.value)? {
                    names.extend_from_slice(r.kv.key);
                    let element = i as u32;
                    // A leaf value holds at most 4 GiB, so a key's length fits.
                    let len = r.kv.key.len() as u32;
                    entries.push((len, Location { pgid, element }, r.revision));
                }
            }
            Ok((names, entries))
        })
        .collect();
    let mut arena = Vec::new();
    let mut all: Vec<(usize, u32, Location, Revision)> = Vec::new();
    for p in parts {
        let (names, entries) = p?;
        let mut off = arena.len();
        for (len, loc, rev) in entries {
            all.push((off, len, loc, rev));
            off += len as usize;
        }
        arena.extend_from_slice(&names);
    }
    let name = |e: &(usize, u32, Location, Revision)| &arena[e.0..e.0 + e.1 as usize];
    all.par_sort_by(|a, b| name(a).cmp(name(b)));
    // A sound key bucket is sorted by revision, so each key's run (kept in
    // bucket order by the stable sort) increases. A damaged one gets no index:
    // lookups in it would be refused as stale; `verify` says where it is wrong.
    for w in all.windows(2) {
        if name(&w[0]) == name(&w[1]) && w[0].3 >= w[1].3 {
            return Err(KeySpaceError::Corrupt(
                Problem::new(format!(
                    "revisions {} and {} of this key are out of order: the key bucket is not sorted by revision",
                    w[0].3, w[1].3
                ))
                .in_bucket("key")
                .with_key(name(&w[1])),
            ));
        }
    }
    let sorted: Vec<(&[u8], Location)> = all.iter().map(|e| (name(e), e.2)).collect();
    serialize(&sorted, identity).map_err(|e| KeySpaceError::Corrupt(Problem::new(e.to_string())))
}

/// Writes sorted (key, location) pairs in the version-1 format.
fn serialize(sorted: &[(&[u8], Location)], identity: &Identity) -> Result<Vec<u8>, IndexError> {
    let entry_count = u32::try_from(sorted.len()).map_err(|_| IndexError::TooLarge)?;
    // The entry that starts each key's run.
    let firsts: Vec<usize> = (0..sorted.len())
        .filter(|&i| i == 0 || sorted[i - 1].0 != sorted[i].0)
        .collect();
    let names_len: usize = firsts.iter().map(|&i| sorted[i].0.len()).sum();
    let total =
        HEADER_LEN + firsts.len() * KEY_ROW_LEN + sorted.len() * ENTRY_LEN + names_len + CRC_LEN;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&identity.0);
    out.extend_from_slice(&(firsts.len() as u64).to_le_bytes());
    out.extend_from_slice(&u64::from(entry_count).to_le_bytes());
    out.extend_from_slice(&(names_len as u64).to_le_bytes());
    out.resize(HEADER_LEN, 0);
    let mut name_off = 0u64;
    for &i in &firsts {
        let len = u32::try_from(sorted[i].0.len()).map_err(|_| IndexError::TooLarge)?;
        out.extend_from_slice(&name_off.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(i as u32).to_le_bytes());
        name_off += u64::from(len);
    }
    for (_, loc) in sorted {
        out.extend_from_slice(&loc.pgid.to_le_bytes());
        out.extend_from_slice(&loc.element.to_le_bytes());
    }
    for &i in &firsts {
        out.extend_from_slice(sorted[i].0);
    }
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    Ok(out)
}

/// Why the records an index names could not be used.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the key index does not match the snapshot: {0}")]
pub struct StaleIndex(pub String);

impl<'a> KeySpace<'_, 'a> {
    /// The records at `locations`, each read back and checked: a leaf of the
    /// key bucket, an element holding a revision of `key`, revisions
    /// increasing. Then the answer is checked for omissions: every other
    /// element of the leaves read must not hold a revision of `key`. Any
    /// failure means the index is not this snapshot's, or lies.
    pub fn records_at(
        &self,
        key: &[u8],
        locations: impl Iterator<Item = Location>,
    ) -> Result<Vec<Record<'a>>, StaleIndex> {
        let mut out: Vec<Record<'a>> = Vec::new();
        let mut touched: Vec<(u64, Vec<u32>)> = Vec::new();
        for loc in locations {
            let stale = |what: String| {
                StaleIndex(format!(
                    "{}: page {} element {}: {what}",
                    String::from_utf8_lossy(key),
                    loc.pgid,
                    loc.element
                ))
            };
            let node = self.leaf_at(loc.pgid).map_err(stale)?;
            let e = node
                .leaf(loc.element as usize)
                .map_err(|f| stale(f.to_string()))?;
            let r = record(e.key, e.value)
                .map_err(|err| stale(err.to_string()))?
                .ok_or_else(|| stale("no key there".into()))?;
            if r.kv.key != key {
                return Err(stale(format!(
                    "holds {} instead",
                    String::from_utf8_lossy(r.kv.key)
                )));
            }
            if out.last().is_some_and(|p| p.revision >= r.revision) {
                return Err(stale("revisions out of order".into()));
            }
            match touched.iter_mut().find(|(p, _)| *p == loc.pgid) {
                Some((_, elements)) => elements.push(loc.element),
                None => touched.push((loc.pgid, vec![loc.element])),
            }
            out.push(r);
        }
        // Omitted entries in the leaves read: each of their elements holding
        // this key must be among the locations.
        for (pgid, elements) in &touched {
            let node = self.leaf_at(*pgid).map_err(|w| {
                StaleIndex(format!(
                    "{}: page {pgid}: {w}",
                    String::from_utf8_lossy(key)
                ))
            })?;
            for i in 0..node.count() {
                if elements.contains(&(i as u32)) {
                    continue;
                }
                let omitted = node
                    .leaf(i)
                    .ok()
                    .and_then(|e| record(e.key, e.value).ok().flatten())
                    .filter(|r| r.kv.key == key);
                if let Some(r) = omitted {
                    return Err(StaleIndex(format!(
                        "the key index omits revision {} of {} (page {pgid} element {i})",
                        r.revision.main,
                        String::from_utf8_lossy(key)
                    )));
                }
            }
        }
        Ok(out)
    }

    /// [`KeySpace::records_at`], and then the versions of what it found must
    /// leave no gap ([`version_gap`]): what a lookup through an index read
    /// from disk uses. (A scan of a damaged file may find gaps too; an index
    /// we just made finds exactly what the scan finds.)
    pub fn whole_records_at(
        &self,
        key: &[u8],
        locations: impl Iterator<Item = Location>,
    ) -> Result<Vec<Record<'a>>, StaleIndex> {
        let out = self.records_at(key, locations)?;
        if let Some(gap) = version_gap(&out, self.compact_revision) {
            return Err(StaleIndex(format!(
                "the key index omits revisions of {}: {gap}",
                String::from_utf8_lossy(key)
            )));
        }
        Ok(out)
    }

    /// Page `pgid` (0: the inline root) as a leaf of the key bucket.
    fn leaf_at(&self, pgid: u64) -> Result<crate::bolt::page::Node<'a>, String> {
        let node = if pgid == 0 {
            self.root_node()
        } else {
            self.node(pgid)
        }
        .map_err(|e| e.to_string())?;
        if node.header.flags != FLAG_LEAF {
            return Err("not a leaf".into());
        }
        Ok(node)
    }
}

/// Where one key's stored revisions (oldest first) skip a revision that etcd
/// must have kept, or `None`. etcd numbers a key's puts 1, 2, 3 … from its
/// creation (create revision = the first put's revision) to its deletion (a
/// tombstone), and compaction at revision C removes only revisions ≤ C, except
/// the newest one of each key when that is a put. So after the first stored
/// revision above C, and between any two stored revisions, nothing may be
/// missing: a put follows a put of its generation with the next version, a
/// generation starts (version 1) only after a tombstone, and the oldest stored
/// revision above C starts a generation. (The newest revisions of a key, and
/// the last put before a deletion, leave no trace in the versions of what
/// follows; the leaf check in [`KeySpace::records_at`] covers those in the
/// leaves read.)
pub fn version_gap(records: &[Record<'_>], compact: Option<i64>) -> Option<String> {
    let compact = compact.unwrap_or(0);
    let starts = |r: &Record<'_>| {
        !r.tombstone && r.kv.version == 1 && r.kv.create_revision == r.revision.main
    };
    if let Some(first) = records.first()
        && first.revision.main > compact
        && !starts(first)
    {
        return Some(format!(
            "its oldest stored revision {} is {}, yet compaction ({}) keeps what came before it",
            first.revision.main,
            if first.tombstone {
                "a deletion".to_string()
            } else {
                format!("version {}", first.kv.version)
            },
            if compact > 0 {
                format!("at revision {compact}")
            } else {
                "none in this snapshot".to_string()
            }
        ));
    }
    for w in records.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        let follows = match (a.tombstone, b.tombstone) {
            (false, false) => {
                b.kv.create_revision == a.kv.create_revision && b.kv.version == a.kv.version + 1
            }
            (false, true) => true,
            (true, false) => starts(b),
            (true, true) => false,
        };
        if !follows {
            let what = |r: &Record<'_>| {
                if r.tombstone {
                    format!("revision {} (deleted)", r.revision.main)
                } else {
                    format!("revision {} (version {})", r.revision.main, r.kv.version)
                }
            };
            return Some(format!(
                "{} follows {}: what came between is missing",
                what(b),
                what(a)
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::version_gap;
    use crate::mvcc::keyspace::Record;
    use crate::mvcc::keyvalue::KeyValue;
    use crate::mvcc::revision::Revision;

    /// (revision, tombstone, create revision, version)
    fn records(spec: &[(i64, bool, i64, i64)]) -> Vec<Record<'static>> {
        spec.iter()
            .map(|&(main, tombstone, create_revision, version)| Record {
                revision: Revision { main, sub: 0 },
                tombstone,
                kv: KeyValue {
                    key: b"/k",
                    create_revision,
                    mod_revision: main,
                    version,
                    ..Default::default()
                },
            })
            .collect()
    }

    #[test]
    fn whole_histories_have_no_gap() {
        let h = records(&[
            (5, false, 5, 1),
            (7, false, 5, 2),
            (9, true, 0, 0),
            (12, false, 12, 1),
        ]);
        assert_eq!(version_gap(&h, None), None);
        // Compacted at 8: 7 stays as the newest revision at or below it.
        assert_eq!(version_gap(&h[1..], Some(8)), None);
        // Compaction still running: a tombstone at or below it may lead.
        assert_eq!(version_gap(&h[2..], Some(10)), None);
        assert_eq!(version_gap(&[], None), None);
    }

    #[test]
    fn omissions_show_as_gaps() {
        let h = records(&[
            (5, false, 5, 1),
            (6, false, 5, 2),
            (7, false, 5, 3),
            (9, true, 0, 0),
            (12, false, 12, 1),
        ]);
        let without = |i: usize| {
            let mut v = h.clone();
            v.remove(i);
            v
        };
        // The creation, with no compaction to excuse it.
        assert!(version_gap(&without(0), None).is_some());
        // A middle put, the tombstone between generations.
        assert!(version_gap(&without(1), None).is_some());
        assert!(version_gap(&without(3), None).is_some());
        // The last put before a deletion leaves no trace in the versions (a
        // tombstone carries none): only the leaf check can see it.
        assert_eq!(version_gap(&without(2), None), None);
        // The oldest kept revision above the compaction must start a generation.
        assert!(version_gap(&h[2..], Some(6)).is_some());
        // Two deletions in a row.
        let d = records(&[(5, false, 5, 1), (9, true, 0, 0), (11, true, 0, 0)]);
        assert!(version_gap(&d, None).is_some());
    }
}
