//! Whether a stored protobuf object decodes, found without decoding it.
//!
//! `verify --deep` asks one question of every live value: would `get` decode
//! it, and does it name the object its key names? Building each object
//! (a prost-reflect message, then its JSON) to answer that costs thirty times
//! reading the file. [`check_protobuf`] walks the wire once against a compact
//! table of the schema instead, allocating nothing per field, and answers only
//! when it is sure: [`Fast::Decodes`] when every rule the decoder applies holds
//! (tags, wire types per field kind, packed runs, varint forms, nested
//! lengths, and the same memory [`Budget`] the decoder charges through
//! [`super::wire::survey`]), with the object's `metadata.name` and
//! `metadata.namespace` as the decoded object would show them. Anything else
//! — a wrong wire type, a group, a varint the decoder refuses, a budget
//! overrun, an untyped envelope, unusual depth — is [`Fast::Unsure`], and the
//! caller decodes the value in full to get the decoder's own verdict and
//! message. So the fast path never accepts what the full decoder refuses;
//! `tests` below and the `objects` fuzz target check that they agree.

use std::collections::HashMap;
use std::sync::OnceLock;

use prost_reflect::{Kind, MessageDescriptor};

use super::budget::{Budget, go_lossy};
use super::schema::schema;

/// Deeper nesting than this is left to the full decoder (its own limit is
/// 100; real objects stay far below).
const MAX_DEPTH: usize = 64;

/// What [`super::wire::survey`] charges per decoded node.
const PROTO_NODE: usize = 3;

/// Field numbers up to this are looked up by index.
const DENSE: u32 = 256;

/// The verdict of the fast walk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fast {
    /// The value decodes; the object's name and namespace (empty when absent).
    Decodes {
        /// The object's name.
        name: String,
        /// The object's namespace (empty when absent).
        namespace: String,
    },
    /// Not certain: decode the value in full.
    Unsure,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    Varint,
    Fixed64,
    Fixed32,
    Str,
    Bytes,
    Message(usize),
    /// A group field: left to the full decoder.
    Group,
}

impl Shape {
    fn wire(self) -> u8 {
        match self {
            Shape::Varint => 0,
            Shape::Fixed64 => 1,
            Shape::Fixed32 => 5,
            Shape::Str | Shape::Bytes | Shape::Message(_) => 2,
            Shape::Group => 3,
        }
    }
    fn packable(self) -> bool {
        matches!(self, Shape::Varint | Shape::Fixed64 | Shape::Fixed32)
    }
}

#[derive(Clone, Copy, Debug)]
struct Field {
    shape: Shape,
    list: bool,
}

#[derive(Debug, Default)]
struct Msg {
    dense: Vec<Option<Field>>,
    sparse: Vec<(u32, Field)>,
    map_entry: bool,
    /// Fields printed as `null` when absent (charged per message).
    absent_nodes: usize,
    /// `metadata` field number, and ObjectMeta's `name` and `namespace`.
    meta: Option<(u32, u32, u32)>,
}

impl Msg {
    #[inline]
    fn field(&self, num: u32) -> Option<Field> {
        if num < DENSE {
            self.dense.get(num as usize).copied().flatten()
        } else {
            self.sparse.iter().find(|(n, _)| *n == num).map(|(_, f)| *f)
        }
    }
}

struct Table {
    msgs: Vec<Msg>,
    by_name: HashMap<String, usize>,
}

fn table() -> Option<&'static Table> {
    static TABLE: OnceLock<Option<Table>> = OnceLock::new();
    TABLE.get_or_init(build).as_ref()
}

fn build() -> Option<Table> {
    let pool = schema().ok()?.pool();
    let all: Vec<MessageDescriptor> = pool.all_messages().collect();
    let by_name: HashMap<String, usize> = all
        .iter()
        .enumerate()
        .map(|(i, m)| (m.full_name().to_string(), i))
        .collect();
    let shape = |k: Kind, group: bool| -> Option<Shape> {
        Some(match k {
            Kind::Double | Kind::Fixed64 | Kind::Sfixed64 => Shape::Fixed64,
            Kind::Float | Kind::Fixed32 | Kind::Sfixed32 => Shape::Fixed32,
            Kind::Int32
            | Kind::Int64
            | Kind::Uint32
            | Kind::Uint64
            | Kind::Sint32
            | Kind::Sint64
            | Kind::Bool
            | Kind::Enum(_) => Shape::Varint,
            Kind::String => Shape::Str,
            Kind::Bytes => Shape::Bytes,
            Kind::Message(_) if group => Shape::Group,
            Kind::Message(m) => Shape::Message(*by_name.get(m.full_name())?),
        })
    };
    let mut msgs = Vec::with_capacity(all.len());
    for m in &all {
        let mut msg = Msg {
            map_entry: m.is_map_entry(),
            absent_nodes: super::omit::fields_of(m.full_name())
                .map_or(0, |t| t.values().filter(|o| o.null_when_absent).count()),
            ..Msg::default()
        };
        for f in m.fields() {
            let field = Field {
                shape: shape(f.kind(), f.is_group())?,
                list: f.is_list(),
            };
            let n = f.number();
            if n < DENSE {
                if msg.dense.len() <= n as usize {
                    msg.dense.resize(n as usize + 1, None);
                }
                msg.dense[n as usize] = Some(field);
            } else {
                msg.sparse.push((n, field));
            }
        }
        msg.meta = m
            .get_field_by_name("metadata")
            .and_then(|f| match f.kind() {
                Kind::Message(om) if !f.is_list() && !f.is_map() => Some((
                    f.number(),
                    om.get_field_by_name("name")?.number(),
                    om.get_field_by_name("namespace")?.number(),
                )),
                _ => None,
            });
        msgs.push(msg);
    }
    Some(Table { msgs, by_name })
}

/// Checks a `k8s\0`-prefixed protobuf value; see the module comment.
pub fn check_protobuf(value: &[u8]) -> Fast {
    check(value).unwrap_or(Fast::Unsure)
}

fn check(value: &[u8]) -> Option<Fast> {
    let (api_version, kind, raw) = envelope(value)?;
    let t = table()?;
    let top = message_index(t, api_version, kind)?;
    let mut budget = Budget::for_value(value.len());
    walk(t, top, raw, &mut budget, 0)?;
    let (name, namespace) = match t.msgs[top].meta {
        Some(nums) => meta(raw, nums)?,
        None => (String::new(), String::new()),
    };
    Some(Fast::Decodes { name, namespace })
}

/// The envelope's apiVersion, kind and raw object, read as
/// [`super::value::parse_unknown`] reads them (the last occurrence of a field
/// wins); `None` for what the full decoder handles itself: no raw object, a
/// content encoding, an untyped envelope, malformed wire data.
fn envelope(value: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    let body = value.strip_prefix(super::value::PROTOBUF_MAGIC)?;
    let (mut api, mut kind, mut encoding): (&[u8], &[u8], &[u8]) = (b"", b"", b"");
    let mut raw: Option<&[u8]> = None;
    let mut r = Reader { buf: body, pos: 0 };
    while !r.done() {
        let (num, wire) = r.key()?;
        if wire != 2 {
            r.skip(wire)?;
            continue;
        }
        let b = r.bytes()?;
        match num {
            1 => {
                let mut tm = Reader { buf: b, pos: 0 };
                while !tm.done() {
                    let (k, w) = tm.key()?;
                    if w != 2 {
                        tm.skip(w)?;
                        continue;
                    }
                    let v = tm.bytes()?;
                    match k {
                        1 => api = v,
                        2 => kind = v,
                        _ => {}
                    }
                }
            }
            2 => raw = Some(b),
            3 => encoding = b,
            _ => {}
        }
    }
    (encoding.is_empty() && !(api.is_empty() && kind.is_empty())).then_some((api, kind, raw?))
}

/// The table index of the message for an apiVersion and kind, remembered per
/// thread (a cluster has a few dozen kinds; hashing two strings per value
/// showed in profiles).
fn message_index(t: &Table, api_version: &[u8], kind: &[u8]) -> Option<usize> {
    type Seen = Vec<(Box<[u8]>, Box<[u8]>, Option<usize>)>;
    thread_local! {
        static SEEN: std::cell::RefCell<Seen> = const { std::cell::RefCell::new(Vec::new()) };
    }
    SEEN.with(|seen| {
        let mut seen = seen.borrow_mut();
        if let Some((_, _, idx)) = seen
            .iter()
            .find(|(a, k, _)| **k == *kind && **a == *api_version)
        {
            return *idx;
        }
        let idx = (|| {
            let a = std::str::from_utf8(api_version).ok()?;
            let k = std::str::from_utf8(kind).ok()?;
            let desc = schema().ok()?.message_for(a, k)?;
            t.by_name.get(desc.full_name()).copied()
        })();
        if seen.len() < 512 {
            seen.push((api_version.into(), kind.into(), idx));
        }
        idx
    })
}

/// The last `name` and `namespace` over every occurrence of `metadata`
/// (occurrences of an embedded message merge, later fields winning).
fn meta(raw: &[u8], (m, n, ns): (u32, u32, u32)) -> Option<(String, String)> {
    let (mut name, mut namespace): (&[u8], &[u8]) = (b"", b"");
    let mut r = Reader { buf: raw, pos: 0 };
    while !r.done() {
        let (num, wire) = r.key()?;
        if num == m && wire == 2 {
            let mut inner = Reader {
                buf: r.bytes()?,
                pos: 0,
            };
            while !inner.done() {
                let (k, w) = inner.key()?;
                if w == 2 && (k == n || k == ns) {
                    let b = inner.bytes()?;
                    if k == n {
                        name = b;
                    } else {
                        namespace = b;
                    }
                } else {
                    inner.skip(w)?;
                }
            }
        } else {
            r.skip(wire)?;
        }
    }
    Some((go_lossy(name), go_lossy(namespace)))
}

/// Walks one message strictly; `None` when the full decoder must decide.
/// Charges `budget` exactly as [`super::wire::survey`] does.
fn walk(t: &Table, idx: usize, raw: &[u8], budget: &mut Budget, depth: usize) -> Option<()> {
    if depth > MAX_DEPTH {
        return None;
    }
    let msg = &t.msgs[idx];
    if !msg.map_entry {
        budget.charge(PROTO_NODE * (1 + msg.absent_nodes), 0).ok()?;
    }
    let node = if msg.map_entry { 0 } else { PROTO_NODE };
    let mut r = Reader { buf: raw, pos: 0 };
    while !r.done() {
        let (num, wire) = r.key()?;
        let field = msg.field(num);
        if wire != 2 {
            if let Some(f) = field
                && f.shape.wire() != wire
            {
                return None;
            }
            r.skip(wire)?;
            budget.charge(node, 0).ok()?;
            continue;
        }
        let b = r.bytes()?;
        let Some(f) = field else {
            budget.charge(PROTO_NODE, b.len()).ok()?;
            continue;
        };
        match f.shape {
            Shape::Str | Shape::Bytes => budget.charge(node, 2 * b.len()).ok()?,
            Shape::Message(m) => {
                if msg.map_entry {
                    budget.charge(PROTO_NODE, 0).ok()?;
                }
                walk(t, m, b, budget, depth + 1)?;
            }
            s if f.list && s.packable() => {
                packed(s, b)?;
                budget.charge(PROTO_NODE * b.len().max(1), 0).ok()?;
            }
            _ => return None,
        }
    }
    Some(())
}

/// A packed run of numbers: whole elements to the last byte.
fn packed(shape: Shape, b: &[u8]) -> Option<()> {
    match shape {
        Shape::Fixed32 => b.len().is_multiple_of(4).then_some(()),
        Shape::Fixed64 => b.len().is_multiple_of(8).then_some(()),
        _ => {
            let mut r = Reader { buf: b, pos: 0 };
            while !r.done() {
                r.varint()?;
            }
            Some(())
        }
    }
}

/// A strict wire reader: what the decoder refuses is `None`.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    #[inline]
    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// A varint as the decoder reads it: at most ten bytes, the tenth 0 or 1.
    #[inline]
    fn varint(&mut self) -> Option<u64> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = *self.buf.get(self.pos)?;
            self.pos += 1;
            if i == 9 && b > 1 {
                return None;
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Some(v);
            }
        }
        None
    }

    /// A field key: a tag of at least 1 within 32 bits, and a wire type the
    /// fast path handles (groups and invalid types are left to the decoder).
    #[inline]
    fn key(&mut self) -> Option<(u32, u8)> {
        let k = self.varint()?;
        if k > u64::from(u32::MAX) {
            return None;
        }
        let wire = (k & 7) as u8;
        let num = (k >> 3) as u32;
        (num >= 1 && matches!(wire, 0 | 1 | 2 | 5)).then_some((num, wire))
    }

    #[inline]
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.varint()?).ok()?;
        let end = self.pos.checked_add(len)?;
        let b = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(b)
    }

    #[inline]
    fn skip(&mut self, wire: u8) -> Option<()> {
        match wire {
            0 => self.varint().map(drop),
            1 | 5 => {
                let n = if wire == 1 { 8 } else { 4 };
                let end = self.pos.checked_add(n)?;
                (end <= self.buf.len()).then(|| self.pos = end)
            }
            2 => self.bytes().map(drop),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::value::decode_checked;
    use serde_json::Value;

    /// The full decoder's verdict in the fast path's terms.
    fn full(v: &[u8]) -> Option<(String, String)> {
        let d = decode_checked(v).ok()?;
        let meta = d.object.get("metadata");
        let f = |k: &str| {
            meta.and_then(|m| m.get(k))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        Some((f("name"), f("namespace")))
    }

    fn agree(v: &[u8]) {
        if let Fast::Decodes { name, namespace } = check_protobuf(v) {
            assert_eq!(full(v), Some((name, namespace)), "{v:?}");
        }
    }

    fn testdata() -> Vec<Vec<u8>> {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/k8s-api-testdata/HEAD");
        let mut out = Vec::new();
        if let Ok(rd) = std::fs::read_dir(&dir) {
            for e in rd.flatten() {
                if e.path().extension().is_some_and(|x| x == "pb")
                    && let Ok(b) = std::fs::read(e.path())
                {
                    out.push(b);
                }
            }
        }
        out
    }

    #[test]
    fn agrees_with_the_full_decoder_on_every_fixture_and_its_mutations() {
        let all = testdata();
        assert!(all.len() > 100, "fixtures/k8s-api-testdata/HEAD is missing");
        let mut fast = 0;
        for v in &all {
            if matches!(check_protobuf(v), Fast::Decodes { .. }) {
                fast += 1;
            }
            agree(v);
            // Single-byte changes and truncations at a stride (the `objects`
            // fuzz target checks the same agreement on any bytes).
            let step = (v.len() / 13).max(1);
            for i in (4..v.len()).step_by(step) {
                for x in [0x02u8, 0x07, 0x80, 0xff, v[i] ^ 0x08] {
                    let mut m = v.clone();
                    m[i] = x;
                    agree(&m);
                }
                agree(&v[..i]);
            }
        }
        // Most fixtures take the fast path (those that fall back are the untyped
        // envelope and kinds the schema does not have).
        assert!(fast * 10 >= all.len() * 8, "{fast} of {}", all.len());
    }

    #[test]
    fn refuses_what_the_decoder_refuses() {
        // A Namespace (v1) whose metadata (field 1, a message) comes as a varint.
        let mut v = b"k8s\x00".to_vec();
        let tm = [b"\x0a\x02v1".as_slice(), b"\x12\x09Namespace"].concat();
        let raw = b"\x08\x01";
        v.extend([0x0a, tm.len() as u8]);
        v.extend(&tm);
        v.extend([0x12, raw.len() as u8]);
        v.extend(raw);
        assert_eq!(check_protobuf(&v), Fast::Unsure);
        assert!(decode_checked(&v).is_err());
        // The same with metadata {name: "a"} decodes, fast.
        let raw = b"\x0a\x03\x0a\x01a";
        let n = v.len() - 4;
        v.truncate(n);
        v.extend([0x12, raw.len() as u8]);
        v.extend(raw);
        assert_eq!(
            check_protobuf(&v),
            Fast::Decodes {
                name: "a".into(),
                namespace: String::new()
            }
        );
        agree(&v);
        // A ten-byte varint whose last byte is over 1 is refused by both.
        let mut bad = v[..n].to_vec();
        let raw = b"\x0a\x03\x0a\x01a\x98\x01\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f";
        bad.extend([0x12, raw.len() as u8]);
        bad.extend(raw);
        assert_eq!(check_protobuf(&bad), Fast::Unsure);
        assert!(decode_checked(&bad).is_err());
    }
}
