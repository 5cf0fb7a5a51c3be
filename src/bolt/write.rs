//! Writes a fresh bbolt file from sorted buckets, bottom-up, front to back.
//!
//! Restoring never edits the snapshot: it streams the snapshot's buckets (with
//! the membership and meta changes merged in) into a new file. Every bucket is
//! already sorted, so leaves are packed in order, then each level of branch
//! pages above them, then the root bucket. The meta pages come first in the
//! file but name the root and the high-water mark, so the layout is planned
//! once without writing (sizes only) and the file is then written in order,
//! without seeking: a reader of the stream (the sha256 of `salvage`'s
//! trailer) can follow the write instead of reading the file back. The result is
//! a defragmented database that bbolt and etcd open like any other: the meta
//! pages carry the "no freelist" sentinel that etcd itself writes on Linux, and
//! every page up to the high-water mark is reachable. The layout facts are in
//! `docs/design/formats.md` §1.

use std::borrow::Cow;
use std::io::{self, Write};

use crate::bolt::meta::checksum;
use crate::bolt::page::{
    BUCKET_LEAF_FLAG, ELEMENT_SIZE, FLAG_BRANCH, FLAG_LEAF, FLAG_META, MAGIC, NO_FREELIST,
    PAGE_HEADER_SIZE, VERSION,
};

/// A key and its value, borrowed from the snapshot or made by the restore.
pub type Entry<'a> = (Cow<'a, [u8]>, Cow<'a, [u8]>);

/// One bucket: its name and its entries in key order.
pub struct BucketData<'a> {
    /// The bucket's name, its key in the root bucket (buckets are passed
    /// to [`write_db`] sorted by name).
    pub name: Cow<'a, [u8]>,
    /// The bucket's key/value pairs in ascending key order, each key once:
    /// leaves are packed in this order as given (the writer neither sorts
    /// nor checks them).
    pub entries: Vec<Entry<'a>>,
}

/// Writes nodes at consecutive pgids; with no `out`, only counts them (the
/// layout pass).
struct PageWriter<W: Write> {
    out: Option<W>,
    page_size: usize,
    next: u64,
}

/// Zeroes for padding nodes to whole pages.
static ZEROES: [u8; 4096] = [0; 4096];

impl<W: Write> PageWriter<W> {
    /// Writes one node (header + body) at the next pgid; returns that pgid.
    fn node(&mut self, flags: u16, count: usize, body: &[u8]) -> io::Result<u64> {
        self.node_with(flags, count, body.len(), |out| out.write_all(body))
    }

    /// Writes one node whose body (`body_len` bytes) `body` writes straight
    /// to the output: values go from the snapshot to the file's buffer in one
    /// copy.
    fn node_with(
        &mut self,
        flags: u16,
        count: usize,
        body_len: usize,
        body: impl FnOnce(&mut W) -> io::Result<()>,
    ) -> io::Result<u64> {
        let pgid = self.next;
        let total = PAGE_HEADER_SIZE + body_len;
        let pages = total.div_ceil(self.page_size).max(1);
        self.next += pages as u64;
        let Some(out) = self.out.as_mut() else {
            return Ok(pgid);
        };
        let mut header = [0u8; PAGE_HEADER_SIZE];
        header[0..8].copy_from_slice(&pgid.to_le_bytes());
        header[8..10].copy_from_slice(&flags.to_le_bytes());
        header[10..12].copy_from_slice(&(count as u16).to_le_bytes());
        header[12..16].copy_from_slice(&((pages - 1) as u32).to_le_bytes());
        out.write_all(&header)?;
        body(out)?;
        let mut pad = pages * self.page_size - total;
        while pad > 0 {
            let n = pad.min(ZEROES.len());
            out.write_all(&ZEROES[..n])?;
            pad -= n;
        }
        Ok(pgid)
    }

    /// Writes a leaf node for `entries`: its elements, then the packed
    /// key/value bytes.
    fn leaf(&mut self, entries: &[(&[u8], &[u8], u32)]) -> io::Result<u64> {
        let n = entries.len();
        if self.out.is_none() {
            let body =
                n * ELEMENT_SIZE + entries.iter().map(|e| e.0.len() + e.1.len()).sum::<usize>();
            return self.node_with(FLAG_LEAF, n, body, |_| Ok(()));
        }
        let mut elements = Vec::with_capacity(n * ELEMENT_SIZE);
        let mut data_off = n * ELEMENT_SIZE;
        for (i, (k, v, flags)) in entries.iter().enumerate() {
            let pos = (data_off - i * ELEMENT_SIZE) as u32;
            elements.extend_from_slice(&flags.to_le_bytes());
            elements.extend_from_slice(&pos.to_le_bytes());
            elements.extend_from_slice(&(k.len() as u32).to_le_bytes());
            elements.extend_from_slice(&(v.len() as u32).to_le_bytes());
            data_off += k.len() + v.len();
        }
        self.node_with(FLAG_LEAF, n, data_off, |out| {
            out.write_all(&elements)?;
            for (k, v, _) in entries {
                out.write_all(k)?;
                out.write_all(v)?;
            }
            Ok(())
        })
    }
}

fn branch_body(children: &[(&[u8], u64)]) -> Vec<u8> {
    let n = children.len();
    let mut body = Vec::new();
    let mut data_off = n * ELEMENT_SIZE;
    for (i, (k, pgid)) in children.iter().enumerate() {
        let pos = (data_off - i * ELEMENT_SIZE) as u32;
        body.extend_from_slice(&pos.to_le_bytes());
        body.extend_from_slice(&(k.len() as u32).to_le_bytes());
        body.extend_from_slice(&pgid.to_le_bytes());
        data_off += k.len();
    }
    for (k, _) in children {
        body.extend_from_slice(k);
    }
    body
}

/// Writes a tree for `entries` (sorted) and returns its root pgid.
fn write_tree<W: Write>(w: &mut PageWriter<W>, entries: &[(&[u8], &[u8], u32)]) -> io::Result<u64> {
    let budget = w.page_size;
    // Leaves: pack entries while the node fits in one page (a single large
    // entry gets a node of its own with overflow pages).
    let mut level: Vec<(Vec<u8>, u64)> = Vec::new();
    let mut start = 0;
    if entries.is_empty() {
        let pgid = w.leaf(&[])?;
        return Ok(pgid);
    }
    while start < entries.len() {
        let mut size = PAGE_HEADER_SIZE;
        let mut end = start;
        while end < entries.len() {
            let e = &entries[end];
            let add = ELEMENT_SIZE + e.0.len() + e.1.len();
            if end > start && size + add > budget {
                break;
            }
            size += add;
            end += 1;
            // bbolt's node limit: fewer than 0xFFFF elements.
            if end - start >= 0xFFFE {
                break;
            }
        }
        let chunk = &entries[start..end];
        let pgid = w.leaf(chunk)?;
        level.push((chunk[0].0.to_vec(), pgid));
        start = end;
    }
    // Branch levels until one node remains.
    while level.len() > 1 {
        let mut next_level = Vec::new();
        let mut start = 0;
        while start < level.len() {
            let mut size = PAGE_HEADER_SIZE;
            let mut end = start;
            while end < level.len() {
                let add = ELEMENT_SIZE + level[end].0.len();
                if end - start >= 2 && size + add > budget {
                    break;
                }
                size += add;
                end += 1;
            }
            // Never leave a single child for the last branch node.
            if level.len() - end == 1 {
                end += 1;
            }
            let children: Vec<(&[u8], u64)> = level[start..end]
                .iter()
                .map(|(k, p)| (k.as_slice(), *p))
                .collect();
            let pgid = w.node(FLAG_BRANCH, children.len(), &branch_body(&children))?;
            next_level.push((level[start].0.clone(), pgid));
            start = end;
        }
        level = next_level;
    }
    Ok(level[0].1)
}

fn meta_page(page_size: usize, pgid_self: u64, root: u64, hwm: u64, txid: u64) -> Vec<u8> {
    let mut p = vec![0u8; page_size];
    p[0..8].copy_from_slice(&pgid_self.to_le_bytes());
    p[8..10].copy_from_slice(&FLAG_META.to_le_bytes());
    let m = PAGE_HEADER_SIZE;
    p[m..m + 4].copy_from_slice(&MAGIC.to_le_bytes());
    p[m + 4..m + 8].copy_from_slice(&VERSION.to_le_bytes());
    p[m + 8..m + 12].copy_from_slice(&(page_size as u32).to_le_bytes());
    p[m + 16..m + 24].copy_from_slice(&root.to_le_bytes());
    p[m + 32..m + 40].copy_from_slice(&NO_FREELIST.to_le_bytes());
    p[m + 40..m + 48].copy_from_slice(&hwm.to_le_bytes());
    p[m + 48..m + 56].copy_from_slice(&txid.to_le_bytes());
    let sum = checksum(&p[m..m + 56]);
    p[m + 56..m + 64].copy_from_slice(&sum.to_le_bytes());
    p
}

/// Writes a complete database of `buckets` (sorted by name, entries sorted by
/// key) to `out`, front to back; returns its size in bytes.
pub fn write_db<W: Write>(out: W, page_size: usize, buckets: &[BucketData<'_>]) -> io::Result<u64> {
    // The layout first: the meta pages name the root and the high-water mark.
    let (root, hwm) = write_pages(
        PageWriter::<W> {
            out: None,
            page_size,
            next: 2,
        },
        buckets,
    )?;
    let mut out = out;
    out.write_all(&meta_page(page_size, 0, root, hwm, 2))?;
    out.write_all(&meta_page(page_size, 1, root, hwm, 1))?;
    let w = PageWriter {
        out: Some(&mut out),
        page_size,
        next: 2,
    };
    let written = write_pages(w, buckets)?;
    // One algorithm for both passes: the plan is what was written.
    if written != (root, hwm) {
        return Err(io::Error::other("bolt writer: layout and write differ"));
    }
    out.flush()?;
    Ok(hwm * page_size as u64)
}

/// Every bucket's tree, then the root bucket's; returns the root's pgid and
/// the high-water mark.
fn write_pages<W: Write>(
    mut w: PageWriter<W>,
    buckets: &[BucketData<'_>],
) -> io::Result<(u64, u64)> {
    let mut roots = Vec::with_capacity(buckets.len());
    for b in buckets {
        let entries: Vec<(&[u8], &[u8], u32)> = b
            .entries
            .iter()
            .map(|(k, v)| (k.as_ref(), v.as_ref(), 0u32))
            .collect();
        let root = write_tree(&mut w, &entries)?;
        let mut header = Vec::with_capacity(16);
        header.extend_from_slice(&root.to_le_bytes());
        header.extend_from_slice(&0u64.to_le_bytes());
        roots.push(header);
    }
    let root_entries: Vec<(&[u8], &[u8], u32)> = buckets
        .iter()
        .zip(&roots)
        .map(|(b, h)| (b.name.as_ref(), h.as_slice(), BUCKET_LEAF_FLAG))
        .collect();
    let root = write_tree(&mut w, &root_entries)?;
    Ok((root, w.next))
}
