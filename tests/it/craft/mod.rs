//! Hand-built hostile bbolt files for the reader tests and the fuzz seeds:
//! inline buckets nested thousands deep, and a leaf whose elements all point
//! at one big span. Written byte by byte here (the layout of
//! `docs/design/formats.md`, bbolt pages), independent of the crate's own writer.
#![allow(dead_code)]

pub const PS: usize = 4096;
const MAGIC: u32 = 0xED0C_DAED;
const LEAF: u16 = 0x02;
const BUCKET: u32 = 0x01;

fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}
fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
fn put64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// A leaf node as bbolt writes it: header, elements, then keys and values
/// packed in element order. `id` and `overflow` are the header's.
pub fn leaf_node(id: u64, elems: &[(u32, Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let n = elems.len();
    let mut b = vec![0u8; 16 + 16 * n];
    put64(&mut b, 0, id);
    put16(&mut b, 8, LEAF);
    put16(&mut b, 10, n as u16);
    for (i, (flags, k, v)) in elems.iter().enumerate() {
        let e = 16 + 16 * i;
        let pos = b.len() - e;
        put32(&mut b, e, *flags);
        put32(&mut b, e + 4, pos as u32);
        put32(&mut b, e + 8, k.len() as u32);
        put32(&mut b, e + 12, v.len() as u32);
        b.extend_from_slice(k);
        b.extend_from_slice(v);
    }
    b
}

/// The value of an inline bucket holding `elems`.
pub fn inline_bucket(elems: &[(u32, Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut v = vec![0u8; 16];
    v.extend(leaf_node(0, elems));
    v
}

/// The value of a bucket whose tree starts at page `root`.
pub fn page_bucket(root: u64) -> Vec<u8> {
    let mut v = vec![0u8; 16];
    put64(&mut v, 0, root);
    v
}

pub fn bucket(name: &[u8], value: Vec<u8>) -> (u32, Vec<u8>, Vec<u8>) {
    (BUCKET, name.to_vec(), value)
}

pub fn plain(key: &[u8], value: Vec<u8>) -> (u32, Vec<u8>, Vec<u8>) {
    (0, key.to_vec(), value)
}

/// A 17-byte revision key `main_sub`.
pub fn rev_key(main: i64, sub: i64) -> Vec<u8> {
    let mut k = main.to_be_bytes().to_vec();
    k.push(b'_');
    k.extend_from_slice(&sub.to_be_bytes());
    k
}

fn varint(mut n: u64, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push(n as u8 | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// An mvccpb.KeyValue put at `rev` (version 1).
pub fn key_value(key: &[u8], rev: i64, value: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.push(0x0a);
    varint(key.len() as u64, &mut b);
    b.extend_from_slice(key);
    for field in [0x10u8, 0x18] {
        b.push(field);
        varint(rev as u64, &mut b);
    }
    b.push(0x20);
    varint(1, &mut b);
    b.push(0x2a);
    varint(value.len() as u64, &mut b);
    b.extend_from_slice(value);
    b
}

/// The usual `meta` bucket entries.
pub fn meta_entries() -> Vec<(u32, Vec<u8>, Vec<u8>)> {
    vec![
        plain(b"consistent_index", 5u64.to_be_bytes().to_vec()),
        plain(b"term", 2u64.to_be_bytes().to_vec()),
    ]
}

fn meta_page(id: u64, root: u64, hwm: u64, txid: u64) -> Vec<u8> {
    let mut p = vec![0u8; PS];
    put64(&mut p, 0, id);
    put16(&mut p, 8, 0x04);
    let m = 16;
    put32(&mut p, m, MAGIC);
    put32(&mut p, m + 4, 2);
    put32(&mut p, m + 8, PS as u32);
    put64(&mut p, m + 16, root);
    put64(&mut p, m + 32, u64::MAX); // no persisted freelist, as etcd writes
    put64(&mut p, m + 40, hwm);
    put64(&mut p, m + 48, txid);
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &x in &p[m..m + 56] {
        h ^= u64::from(x);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    put64(&mut p, m + 56, h);
    p
}

/// Pads a node to whole pages and sets its overflow count.
fn paged(mut node: Vec<u8>) -> Vec<u8> {
    let pages = node.len().div_ceil(PS).max(1);
    node.resize(pages * PS, 0);
    put32(&mut node, 12, (pages - 1) as u32);
    node
}

/// A db file: meta pages, the root leaf at page 2 holding `root`, then
/// `extra` nodes laid out after it (their ids must match where they land:
/// use [`next_page`]).
pub fn db(root: &[(u32, Vec<u8>, Vec<u8>)], extra: &[Vec<u8>]) -> Vec<u8> {
    let mut body = paged(leaf_node(2, root));
    for n in extra {
        body.extend(paged(n.clone()));
    }
    let hwm = 2 + (body.len() / PS) as u64;
    let mut out = meta_page(0, 2, hwm, 2);
    out.extend(meta_page(1, 2, hwm, 1));
    out.extend(body);
    out
}

/// Pages the root leaf holding `root` will take: the first extra node's id
/// is `2 + root_pages(root)`.
pub fn root_pages(root: &[(u32, Vec<u8>, Vec<u8>)]) -> u64 {
    leaf_node(2, root).len().div_ceil(PS).max(1) as u64
}

/// Appends the sha256 trailer `snapshot save` writes.
pub fn with_trailer(mut db: Vec<u8>) -> Vec<u8> {
    let d = ring::digest::digest(&ring::digest::SHA256, &db);
    db.extend_from_slice(d.as_ref());
    db
}

/// The value of a bucket holding a chain of `levels` inline buckets, each
/// holding the next under the key `a`. Built front to back: each level is
/// a fixed 49-byte prefix, so no level is copied twice.
pub fn nested_inline(levels: usize) -> Vec<u8> {
    const LEVEL: usize = 16 + 16 + 16 + 1;
    let innermost = 32;
    let mut v = Vec::with_capacity(levels * LEVEL + innermost);
    for l in 0..levels {
        let inner = (levels - l - 1) * LEVEL + innermost;
        let start = v.len();
        v.resize(start + LEVEL, 0);
        let p = start + 16; // bucket header (root 0 = inline, sequence 0)
        put16(&mut v, p + 8, LEAF);
        put16(&mut v, p + 10, 1);
        put32(&mut v, p + 16, BUCKET);
        put32(&mut v, p + 20, 16);
        put32(&mut v, p + 24, 1);
        put32(&mut v, p + 28, inner as u32);
        v[p + 32] = b'a';
    }
    let start = v.len();
    v.resize(start + innermost, 0);
    put16(&mut v, start + 16 + 8, LEAF);
    v
}

/// A file whose `key` bucket holds, at revision 2, a bucket nested `levels`
/// inline buckets deep (so every command that reads the key bucket meets it),
/// plus a bucket `nest` with the same chain.
pub fn nested_db(levels: usize) -> Vec<u8> {
    let chain = nested_inline(levels);
    let key = inline_bucket(&[
        plain(&rev_key(1, 0), key_value(b"/registry/a", 1, b"x")),
        bucket(&rev_key(2, 0), chain.clone()),
    ]);
    let root = [
        bucket(b"key", key),
        bucket(b"meta", inline_bucket(&meta_entries())),
        bucket(b"nest", chain),
    ];
    db(&root, &[])
}

/// A leaf node of `count` elements whose keys and values all lie in one
/// span of `span` bytes. With `growing` keys, element i's key is the first
/// `min_key + i` bytes of the span (so the keys are in order) and its value
/// the rest; otherwise every element is the same key and value.
pub fn overlapping_node(
    id: u64,
    count: usize,
    span: &[u8],
    min_key: usize,
    growing: bool,
) -> Vec<u8> {
    let data_start = 16 + 16 * count;
    let mut node = vec![0u8; data_start];
    put64(&mut node, 0, id);
    put16(&mut node, 8, LEAF);
    put16(&mut node, 10, count as u16);
    for i in 0..count {
        let e = 16 + 16 * i;
        let k = if growing { min_key + i } else { min_key };
        put32(&mut node, e + 4, (data_start - e) as u32);
        put32(&mut node, e + 8, k as u32);
        put32(&mut node, e + 12, (span.len() - k) as u32);
    }
    node.extend_from_slice(span);
    node
}

/// A file whose `key` bucket is one leaf of `count` elements that all point
/// at the same span (a revision key and a KeyValue of about `span` bytes), and
/// whose `lease` bucket is one leaf of `count` elements with keys in order
/// whose values all end at the end of one span of `span` bytes.
pub fn overlapping_db(count: usize, span: usize) -> Vec<u8> {
    let root_of = |key_page: u64, lease_page: u64| {
        vec![
            bucket(b"key", page_bucket(key_page)),
            bucket(b"lease", page_bucket(lease_page)),
            bucket(b"meta", inline_bucket(&meta_entries())),
        ]
    };
    let key_page = 2 + root_pages(&root_of(0, 0));
    let mut kv = rev_key(2, 0);
    kv.extend(key_value(
        b"/registry/pods/default/big",
        2,
        &vec![b'v'; span],
    ));
    let key_node = overlapping_node(key_page, count, &kv, 17, false);
    let lease_page = key_page + key_node.len().div_ceil(PS) as u64;
    let lease_node = overlapping_node(lease_page, count, &vec![b'l'; span], 8, true);
    db(&root_of(key_page, lease_page), &[key_node, lease_node])
}
