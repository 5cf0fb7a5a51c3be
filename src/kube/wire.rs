//! A stored protobuf object walked with the schema before it is decoded.
//!
//! Two things are known only from the wire: how much the decoded object will
//! take (two bytes of an empty container become a message and a JSON object of
//! several fields), and whether a string field holds bytes that are not UTF-8
//! (a protobuf client can store them; Go keeps them and its JSON encoder
//! prints U+FFFD, while the Rust decoder refuses the whole object). [`survey`]
//! charges the nodes the object will decode into to the value's [`Budget`]
//! (so a hostile value is refused before it is built) and finds such strings;
//! [`repair_utf8`] rewrites them as Go prints them.

use prost_reflect::{Kind, MessageDescriptor};

use super::budget::{Budget, TooLarge, go_lossy};
use crate::protowire::{Fields, Value, put_varint};

/// Deeper than this the decoder refuses the message anyway.
const MAX_DEPTH: usize = 100;

/// What a decoded node of the protobuf path costs, in budget nodes: the
/// decoded message's value and the JSON value built from it (measured).
const PROTO_NODE: usize = 3;

/// What the walk found.
#[derive(Debug, Default)]
pub struct Survey {
    /// Paths (`.spec.containers[2].name`) of strings that are not UTF-8.
    pub invalid_utf8_at: Vec<String>,
}

/// Charges the nodes `raw` decodes into as `desc` and finds invalid UTF-8
/// strings. Malformed wire data ends the walk quietly: the decoder reports it.
pub fn survey(
    desc: &MessageDescriptor,
    raw: &[u8],
    budget: &mut Budget,
) -> Result<Survey, TooLarge> {
    let mut s = Survey::default();
    let mut path = String::new();
    walk(desc, raw, budget, 0, &mut path, &mut s)?;
    Ok(s)
}

/// Fields of a message printed as `null` when absent: they cost nodes the
/// wire does not show.
fn printed_when_absent(desc: &MessageDescriptor) -> usize {
    super::omit::fields_of(desc.full_name())
        .map_or(0, |t| t.values().filter(|o| o.null_when_absent).count())
}

fn walk(
    desc: &MessageDescriptor,
    raw: &[u8],
    budget: &mut Budget,
    depth: usize,
    path: &mut String,
    s: &mut Survey,
) -> Result<(), TooLarge> {
    // A map entry is one entry of its map; its key and value fields are not
    // nodes of their own.
    let entry = desc.is_map_entry();
    if !entry {
        budget.charge(PROTO_NODE * (1 + printed_when_absent(desc)), 0)?;
    }
    let node = if entry { 0 } else { PROTO_NODE };
    if depth > MAX_DEPTH {
        return Ok(());
    }
    let mut index: std::collections::HashMap<u32, usize> = Default::default();
    for f in Fields::new(raw) {
        let Ok((num, value)) = f else {
            return Ok(());
        };
        let field = desc.get_field(num);
        let Value::Bytes(b) = value else {
            budget.charge(node, 0)?;
            continue;
        };
        let Some(field) = field else {
            budget.charge(PROTO_NODE, b.len())?;
            continue;
        };
        match field.kind() {
            Kind::String => {
                budget.charge(node, 2 * b.len())?;
                if std::str::from_utf8(b).is_err() && s.invalid_utf8_at.len() < 64 {
                    s.invalid_utf8_at
                        .push(format!("{path}.{}", field.json_name()));
                }
            }
            Kind::Bytes => budget.charge(node, 2 * b.len())?,
            Kind::Message(m) => {
                if entry {
                    budget.charge(PROTO_NODE, 0)?;
                }
                let len = path.len();
                if field.is_list() {
                    let i = index.entry(num).or_default();
                    path.push_str(&format!(".{}[{i}]", field.json_name()));
                    *i += 1;
                } else {
                    path.push('.');
                    path.push_str(field.json_name());
                }
                walk(&m, b, budget, depth + 1, path, s)?;
                path.truncate(len);
            }
            // Packed numbers: a byte at least each.
            _ => budget.charge(PROTO_NODE * b.len().max(1), 0)?,
        }
    }
    Ok(())
}

/// `raw` with every string field that is not UTF-8 rewritten as Go prints it
/// (U+FFFD per invalid byte); other fields are kept as they are.
pub fn repair_utf8(desc: &MessageDescriptor, raw: &[u8]) -> Vec<u8> {
    repair(desc, raw, 0)
}

fn repair(desc: &MessageDescriptor, raw: &[u8], depth: usize) -> Vec<u8> {
    if depth > MAX_DEPTH {
        return raw.to_vec();
    }
    let mut out = Vec::with_capacity(raw.len() + 16);
    for f in Fields::new(raw) {
        let Ok((num, value)) = f else {
            return raw.to_vec();
        };
        match value {
            Value::Varint(v) => {
                put_varint(&mut out, u64::from(num) << 3);
                put_varint(&mut out, v);
            }
            Value::Fixed64(v) => {
                put_varint(&mut out, (u64::from(num) << 3) | 1);
                out.extend_from_slice(&v.to_le_bytes());
            }
            Value::Fixed32(v) => {
                put_varint(&mut out, (u64::from(num) << 3) | 5);
                out.extend_from_slice(&v.to_le_bytes());
            }
            Value::Bytes(b) => {
                let fixed;
                let payload: &[u8] = match desc.get_field(num).map(|f| f.kind()) {
                    Some(Kind::String) if std::str::from_utf8(b).is_err() => {
                        fixed = go_lossy(b).into_bytes();
                        &fixed
                    }
                    Some(Kind::Message(m)) => {
                        fixed = repair(&m, b, depth + 1);
                        &fixed
                    }
                    _ => b,
                };
                put_varint(&mut out, (u64::from(num) << 3) | 2);
                put_varint(&mut out, payload.len() as u64);
                out.extend_from_slice(payload);
            }
        }
    }
    out
}
