//! The record checks: which elements of a found leaf are taken, and why the
//! others are not.
//!
//! A record of etcd's `key` bucket is taken only when every part of it checks
//! out: the element and its bytes lie inside the node and off every damaged
//! span, the key is a revision key, the value decodes completely as an
//! `mvccpb.KeyValue` with a non-empty key, a put's `mod_revision` equals the
//! key's main revision, its `create_revision` lies in `[1, main]` and its
//! version is at least 1 (1 only at its creation), and a value that says it
//! is a Kubernetes object (protobuf, JSON or CBOR) decodes as one. Anything
//! else is left out with its reason counted, and — when the user key could
//! still be read — remembered as evidence that the key existed.

use crate::bolt::page::{ElementFault, Node, PAGE_HEADER_SIZE};
use crate::kube::validate::{Fast, check_protobuf};
use crate::kube::value::{self, Encoding, PROTOBUF_MAGIC};
use crate::mvcc::{KeyValue, Revision, RevisionKey};

use super::scan::Found;

/// A record of the `key` bucket that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord<'a> {
    /// Its revision.
    pub revision: Revision,
    /// Whether it is a deletion.
    pub tombstone: bool,
    /// The user key.
    pub key: &'a [u8],
    /// The stored KeyValue, as it was in the file.
    pub value: &'a [u8],
    /// `create_revision` and `version` of a put (0 for a tombstone).
    pub create: i64,
    /// The put's version (0 for a tombstone).
    pub version: i64,
    /// Whether a leaf the surviving tree reaches holds it (set by the
    /// caller; a record found only on a freed or orphaned page may be one
    /// that compaction removed).
    pub in_tree: bool,
    /// The page (the first of its node) it was read from, set by the
    /// caller: with several intact copies, the first one found.
    pub page: u64,
}

/// Why an element of a leaf was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Reject {
    /// The element or its bytes lie outside the node (a cut or damaged node).
    OutsideNode,
    /// Its bytes touch an overflow page that is zeroed or random.
    DamagedPage,
    /// Its data overlaps another element's: the node's layout is damaged.
    Layout,
    /// The value does not decode as a KeyValue (truncated or garbled).
    KeyValue,
    /// The KeyValue's key is empty.
    EmptyKey,
    /// A put whose mod_revision is not its key's revision.
    ModRevision,
    /// create_revision or version out of range.
    Versions,
    /// A tombstone whose KeyValue names a revision other than its key's.
    Tombstone,
    /// A Kubernetes value that does not decode.
    ObjectValue,
    /// Two intact copies of one revision that differ.
    Conflict,
}

impl Reject {
    /// A short description, for the report.
    pub fn describe(self) -> &'static str {
        match self {
            Reject::OutsideNode => "bytes outside their page (cut or damaged node)",
            Reject::DamagedPage => "bytes on a zeroed or random overflow page",
            Reject::Layout => "element data overlapping (damaged element array)",
            Reject::KeyValue => "value is not a complete KeyValue",
            Reject::EmptyKey => "KeyValue with an empty key",
            Reject::ModRevision => "mod_revision differs from the key's revision",
            Reject::Versions => "create_revision or version out of range",
            Reject::Tombstone => "tombstone naming another revision",
            Reject::ObjectValue => "Kubernetes value that does not decode",
            Reject::Conflict => "two differing copies of one revision",
        }
    }
}

/// One element of a found leaf, as far as it could be read.
#[derive(Debug, Clone, Copy)]
pub struct RawElement<'a> {
    /// Element flags (the bucket flag).
    pub flags: u32,
    /// Its key.
    pub key: &'a [u8],
    /// Its value.
    pub value: &'a [u8],
}

/// The elements of a found node that lie wholly inside it, off its damaged
/// spans and in bbolt's packed order; each other element as its reason. Only
/// as many elements as fit in the node are looked at, and none past the
/// first whose data overlaps an earlier one, so the work is linear in the
/// node's bytes.
pub fn leaf_elements<'a>(found: &Found<'a>) -> Vec<Result<RawElement<'a>, Reject>> {
    let node: &Node<'a> = &found.node;
    let fit = node.bytes.len().saturating_sub(PAGE_HEADER_SIZE) / crate::bolt::page::ELEMENT_SIZE;
    let claimed = node.count();
    let mut usable = claimed.min(fit);
    let mut out = Vec::with_capacity(claimed.min(fit + 1));
    let mut layout_broken = false;
    if let Some(ElementFault::Overlap { index, .. }) = node.layout_fault() {
        usable = usable.min(index);
        layout_broken = true;
    }
    let base = node.bytes.as_ptr() as usize;
    for i in 0..usable {
        match node.leaf(i) {
            Ok(e) => {
                let start = e.key.as_ptr() as usize - base;
                let end = e.value.as_ptr() as usize - base + e.value.len();
                let elem = Node::element_offset(i);
                if found.touches_damage(start.min(elem), end.max(elem + 16)) {
                    out.push(Err(Reject::DamagedPage));
                } else {
                    out.push(Ok(RawElement {
                        flags: e.flags,
                        key: e.key,
                        value: e.value,
                    }));
                }
            }
            Err(_) => out.push(Err(Reject::OutsideNode)),
        }
    }
    // Elements the header counts that could not be looked at.
    let rest = claimed - usable;
    let why = if layout_broken {
        Reject::Layout
    } else {
        Reject::OutsideNode
    };
    out.extend(std::iter::repeat_n(Err(why), rest.min(fit + 1)));
    out
}

/// What the elements of a found leaf that touch damage still tell: for each
/// whose element header, revision key and the start of its value (the
/// KeyValue's first field, the user key: etcd writes its fields in number
/// order) all lie off the damaged spans, the user key and revision. Its
/// value is not taken (the rest of it may be on a damaged page), but the
/// report can name the key whose newest revision is lost.
pub fn damaged_evidence<'a>(found: &Found<'a>) -> Vec<(&'a [u8], Revision)> {
    if found.damaged.is_empty() {
        return Vec::new();
    }
    let node: &Node<'a> = &found.node;
    let fit = node.bytes.len().saturating_sub(PAGE_HEADER_SIZE) / crate::bolt::page::ELEMENT_SIZE;
    let mut usable = node.count().min(fit);
    if let Some(ElementFault::Overlap { index, .. }) = node.layout_fault() {
        usable = usable.min(index);
    }
    let base = node.bytes.as_ptr() as usize;
    let mut out = Vec::new();
    for i in 0..usable {
        let Ok(e) = node.leaf(i) else { continue };
        let start = e.key.as_ptr() as usize - base;
        let end = e.value.as_ptr() as usize - base + e.value.len();
        let elem = Node::element_offset(i);
        if !found.touches_damage(start.min(elem), end.max(elem + 16)) {
            continue;
        }
        let Ok(rk) = RevisionKey::parse(e.key) else {
            continue;
        };
        let Some(Ok((1, crate::protowire::Value::Bytes(user)))) =
            crate::protowire::Fields::new(e.value).next()
        else {
            continue;
        };
        let user_end = user.as_ptr() as usize - base + user.len();
        if user.is_empty() || found.touches_damage(start.min(elem), user_end.max(elem + 16)) {
            continue;
        }
        out.push((user, rk.revision));
    }
    out
}

/// Whether `key` is shaped like a key of etcd's `key` bucket.
pub fn is_revision_key(key: &[u8]) -> bool {
    RevisionKey::parse(key).is_ok()
}

/// What a rejected key-bucket element still tells: its user key and
/// revision, when both could be read.
pub type Evidence<'a> = Option<(&'a [u8], Revision)>;

/// Checks one element of a leaf of the `key` bucket (see the module comment).
pub fn check_key_record<'a>(
    rev_key: &'a [u8],
    value: &'a [u8],
) -> Result<KeyRecord<'a>, (Reject, Evidence<'a>)> {
    let rk = RevisionKey::parse(rev_key).map_err(|_| (Reject::KeyValue, None))?;
    let main = rk.revision.main;
    let kv = KeyValue::decode(value).map_err(|_| (Reject::KeyValue, None))?;
    if kv.key.is_empty() {
        return Err((Reject::EmptyKey, None));
    }
    let evidence = Some((kv.key, rk.revision));
    if rk.tombstone {
        // etcd stores a deletion as a KeyValue holding the key alone.
        if kv.mod_revision != 0 && kv.mod_revision != main {
            return Err((Reject::Tombstone, evidence));
        }
        return Ok(KeyRecord {
            revision: rk.revision,
            tombstone: true,
            key: kv.key,
            value,
            create: 0,
            version: 0,
            in_tree: false,
            page: 0,
        });
    }
    if kv.mod_revision != main {
        return Err((Reject::ModRevision, evidence));
    }
    let versions_ok = kv.create_revision >= 1
        && kv.create_revision <= main
        && kv.version >= 1
        && (kv.version != 1 || kv.create_revision == main);
    if !versions_ok {
        return Err((Reject::Versions, evidence));
    }
    let object = matches!(
        value::detect(kv.value),
        Encoding::Protobuf | Encoding::Json | Encoding::Cbor
    );
    // Protobuf values, nearly all of a cluster, are first checked by a walk
    // of the wire that builds nothing (as `verify --deep` does); what it is
    // unsure of, and JSON and CBOR values, are decoded in full.
    let decodes = || {
        (kv.value.starts_with(PROTOBUF_MAGIC)
            && matches!(check_protobuf(kv.value), Fast::Decodes { .. }))
            || value::decode_checked(kv.value).is_ok()
    };
    if object && !decodes() {
        return Err((Reject::ObjectValue, evidence));
    }
    Ok(KeyRecord {
        revision: rk.revision,
        tombstone: false,
        key: kv.key,
        value,
        create: kv.create_revision,
        version: kv.version,
        in_tree: false,
        page: 0,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::bolt::page::{FLAG_LEAF, PageHeader};

    /// An intact put of `key` at `main`, as the tree holds it (for the
    /// assembly's tests).
    pub(crate) fn put(
        key: &'static [u8],
        main: i64,
        create: i64,
        version: i64,
    ) -> KeyRecord<'static> {
        KeyRecord {
            revision: Revision { main, sub: 0 },
            tombstone: false,
            key,
            value: b"",
            create,
            version,
            in_tree: true,
            page: 0,
        }
    }

    /// An intact deletion of `key` at `main`.
    pub(crate) fn del(key: &'static [u8], main: i64) -> KeyRecord<'static> {
        KeyRecord {
            tombstone: true,
            create: 0,
            version: 0,
            ..put(key, main, 0, 0)
        }
    }

    fn varint(x: u64, out: &mut Vec<u8>) {
        crate::protowire::put_varint(out, x);
    }

    fn kv(key: &[u8], create: u64, modr: u64, version: u64, value: &[u8]) -> Vec<u8> {
        let mut b = vec![0x0a];
        varint(key.len() as u64, &mut b);
        b.extend_from_slice(key);
        for (tag, x) in [(0x10, create), (0x18, modr), (0x20, version)] {
            b.push(tag);
            varint(x, &mut b);
        }
        b.push(0x2a);
        varint(value.len() as u64, &mut b);
        b.extend_from_slice(value);
        b
    }

    fn rev(main: i64, tomb: bool) -> Vec<u8> {
        RevisionKey::encode(Revision { main, sub: 0 }, tomb)
    }

    #[test]
    fn takes_a_consistent_put() {
        let (k, v) = (rev(7, false), kv(b"a", 5, 7, 2, b"x"));
        let r = check_key_record(&k, &v).unwrap();
        assert_eq!((r.key, r.revision.main, r.version), (&b"a"[..], 7, 2));
    }

    #[test]
    fn bad_mod_revision_is_left_out_with_evidence() {
        let (k, v) = (rev(7, false), kv(b"a", 5, 8, 2, b"x"));
        let (why, ev) = check_key_record(&k, &v).unwrap_err();
        assert_eq!(why, Reject::ModRevision);
        assert_eq!(ev.map(|e| e.0), Some(&b"a"[..]));
    }

    #[test]
    fn truncated_keyvalue_is_left_out() {
        let (k, v) = (rev(7, false), kv(b"a", 5, 7, 2, b"hello"));
        // Cut right before the value field, it is a complete KeyValue with an
        // empty value: protobuf cannot tell (bbolt's element sizes delimit
        // it in a file). Every other cut is refused.
        let value_field = v.len() - 7;
        for cut in (1..v.len()).filter(|&c| c != value_field) {
            assert!(check_key_record(&k, &v[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn versions_and_tombstones() {
        let k = rev(7, false);
        assert_eq!(
            check_key_record(&k, &kv(b"a", 3, 7, 1, b"")).unwrap_err().0,
            Reject::Versions
        );
        let t = rev(9, true);
        let mut tomb = vec![0x0a, 1, b'a'];
        assert!(check_key_record(&t, &tomb).unwrap().tombstone);
        tomb.extend_from_slice(&[0x18, 3]);
        assert_eq!(
            check_key_record(&t, &tomb).unwrap_err().0,
            Reject::Tombstone
        );
    }

    #[test]
    fn broken_kubernetes_value_is_left_out() {
        let mut obj = b"k8s\x00".to_vec();
        obj.extend_from_slice(&[0x0a, 0xff, 0xff]);
        let (k, v) = (rev(7, false), kv(b"/registry/pods/a/b", 7, 7, 1, &obj));
        assert_eq!(check_key_record(&k, &v).unwrap_err().0, Reject::ObjectValue);
    }

    #[test]
    fn element_past_the_cut_is_outside() {
        // A leaf of one element whose value runs past the node's bytes.
        let mut p = vec![0u8; 64];
        p[0..8].copy_from_slice(&2u64.to_le_bytes());
        p[8..10].copy_from_slice(&FLAG_LEAF.to_le_bytes());
        p[10..12].copy_from_slice(&2u16.to_le_bytes());
        // element 0: pos 32 (from its header at 16 -> 48), key 1, value 4
        p[20..24].copy_from_slice(&32u32.to_le_bytes());
        p[24..28].copy_from_slice(&1u32.to_le_bytes());
        p[28..32].copy_from_slice(&4u32.to_le_bytes());
        // element 1: value 100 bytes, past the end
        p[36..40].copy_from_slice(&21u32.to_le_bytes());
        p[40..44].copy_from_slice(&1u32.to_le_bytes());
        p[44..48].copy_from_slice(&100u32.to_le_bytes());
        let found = Found {
            pgid: 2,
            node: Node {
                header: PageHeader::parse(&p).unwrap(),
                bytes: &p,
            },
            whole: false,
            damaged: Vec::new(),
        };
        let els = leaf_elements(&found);
        assert_eq!(els.len(), 2);
        assert!(els[0].is_ok());
        assert_eq!(els[1].unwrap_err(), Reject::OutsideNode);
    }
}
