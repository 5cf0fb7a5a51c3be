//! Stored CBOR values read with the API server's rules.
//!
//! Custom resources under the CBOR serialization gate are stored as
//! self-described CBOR, which the API server reads with fxamacker/cbor in the
//! modes of k8s.io/apimachinery (`runtime/serializer/cbor/internal/modes`).
//! This reader applies the same rules, so what it shows is what the server
//! would serve, and what the server refuses is refused: duplicate map keys,
//! data after the top-level item (a second item included), NaN and infinity,
//! map keys that are not strings, integers outside int64, bignums, simple
//! values other than false/true/null, invalid UTF-8 in text, nesting deeper than
//! 10,000 levels. Byte strings become strings as the server prints them: their
//! bytes as text (invalid UTF-8 as U+FFFD), or base64/base64url/base16 under the
//! expected-encoding tags 21–23; time tags 0 and 1 become RFC 3339 text.
//! It reads without recursion and charges what it builds to a [`Budget`].

use base64::Engine;
use serde_json::{Map, Value};

use super::budget::{Budget, TooLarge, drop_deep, go_lossy};
use super::json::go_float;

/// The deepest nesting the API server's CBOR decoder accepts.
pub const MAX_DEPTH: usize = 10_000;
/// The most pairs a map may have.
pub const MAX_MAP_PAIRS: u64 = 2_097_152;

/// Why a CBOR value is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CborError {
    /// Not what the API server accepts, at this offset.
    #[error("{what} at byte {offset}")]
    Invalid {
        /// What is wrong.
        what: String,
        /// The byte offset.
        offset: usize,
    },
    /// The value would take more memory than allowed.
    #[error(transparent)]
    TooLarge(#[from] TooLarge),
}

/// How byte strings are shown (tags 21, 22, 23 name an expected encoding).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Enc {
    Text,
    Base64Url,
    Base64,
    Base16,
}

enum Frame {
    Array {
        items: Vec<Value>,
        left: Option<u64>,
        enc: Enc,
    },
    Map {
        map: Map<String, Value>,
        left: Option<u64>,
        key: Option<String>,
        enc: Enc,
    },
    Tag {
        num: u64,
        enc: Enc,
    },
}

impl Frame {
    fn enc(&self) -> Enc {
        match self {
            Frame::Array { enc, .. } | Frame::Map { enc, .. } | Frame::Tag { enc, .. } => *enc,
        }
    }
}

struct Reader<'a> {
    b: &'a [u8],
    i: usize,
}

/// One item head: major type, additional info, argument (None: indefinite).
struct Head {
    major: u8,
    info: u8,
    arg: Option<u64>,
    at: usize,
}

impl Reader<'_> {
    fn err<T>(&self, at: usize, what: impl Into<String>) -> Result<T, CborError> {
        Err(CborError::Invalid {
            what: what.into(),
            offset: at,
        })
    }

    fn take(&mut self, n: usize) -> Result<&[u8], CborError> {
        match self.i.checked_add(n).filter(|&e| e <= self.b.len()) {
            Some(end) => {
                let s = &self.b[self.i..end];
                self.i = end;
                Ok(s)
            }
            None => self.err(self.i, "the value ends inside an item"),
        }
    }

    fn head(&mut self) -> Result<Head, CborError> {
        let at = self.i;
        let first = self.take(1)?[0];
        let (major, info) = (first >> 5, first & 0x1f);
        let arg = match info {
            0..=23 => Some(u64::from(info)),
            24 => Some(u64::from(self.take(1)?[0])),
            25 => Some(u64::from(u16::from_be_bytes([
                self.take(1)?[0],
                self.take(1)?[0],
            ]))),
            26 => {
                let s = self.take(4)?;
                Some(u64::from(u32::from_be_bytes([s[0], s[1], s[2], s[3]])))
            }
            27 => {
                let s = self.take(8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(s);
                Some(u64::from_be_bytes(a))
            }
            31 if matches!(major, 2..=5 | 7) => None,
            _ => return self.err(at, "a malformed item head"),
        };
        Ok(Head {
            major,
            info,
            arg,
            at,
        })
    }

    /// The bytes of a byte or text string (`major` 2 or 3), chunks joined.
    fn string_bytes(&mut self, h: &Head) -> Result<Vec<u8>, CborError> {
        match h.arg {
            Some(n) => {
                let n = usize::try_from(n).unwrap_or(usize::MAX);
                Ok(self.take(n)?.to_vec())
            }
            None => {
                let mut out = Vec::new();
                loop {
                    if self.b.get(self.i) == Some(&0xff) {
                        self.i += 1;
                        return Ok(out);
                    }
                    let c = self.head()?;
                    let Some(n) = c.arg.filter(|_| c.major == h.major) else {
                        return self.err(c.at, "an indefinite string holds a foreign chunk");
                    };
                    let n = usize::try_from(n).unwrap_or(usize::MAX);
                    out.extend_from_slice(self.take(n)?);
                }
            }
        }
    }
}

fn half_to_f64(h: u16) -> f64 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = (h >> 10) & 0x1f;
    let frac = f64::from(h & 0x3ff);
    match exp {
        0 => sign * frac * 2f64.powi(-24),
        31 => {
            if frac == 0.0 {
                sign * f64::INFINITY
            } else {
                f64::NAN
            }
        }
        e => sign * (1.0 + frac / 1024.0) * 2f64.powi(i32::from(e) - 15),
    }
}

/// Seconds since the epoch as Go's RFC3339Nano in UTC.
fn epoch_text(secs: f64) -> Option<String> {
    if !secs.is_finite() || secs.abs() > 1e15 {
        return None;
    }
    let whole = secs.floor();
    let nanos = ((secs - whole) * 1e9).round() as i64;
    let (whole, nanos) = if nanos >= 1_000_000_000 {
        (whole as i64 + 1, 0)
    } else {
        (whole as i64, nanos)
    };
    let base = super::transcode::rfc3339(whole, None);
    if nanos == 0 {
        return Some(base);
    }
    let frac = format!("{nanos:09}");
    let frac = frac.trim_end_matches('0');
    Some(format!("{}.{frac}Z", base.trim_end_matches('Z')))
}

/// Parses a stored CBOR value (with its self-described tag).
pub fn parse(bytes: &[u8], budget: &mut Budget) -> Result<Value, CborError> {
    let mut r = Reader { b: bytes, i: 0 };
    let mut stack: Vec<Frame> = Vec::new();
    let result = read_item(&mut r, &mut stack, budget);
    // Whatever was built so far goes without recursion.
    for f in stack.drain(..) {
        match f {
            Frame::Array { items, .. } => drop_deep(Value::Array(items)),
            Frame::Map { map, .. } => drop_deep(Value::Object(map)),
            Frame::Tag { .. } => {}
        }
    }
    let value = result?;
    if !value.is_object() {
        drop_deep(value);
        return r.err(0, "the top-level item is not a map (an object is)");
    }
    if r.i != bytes.len() {
        drop_deep(value);
        return r.err(
            r.i,
            "data after the top-level item (a second item?), which the API server refuses",
        );
    }
    Ok(value)
}

/// Reads one top-level item without recursion: `stack` holds the arrays,
/// maps and tags still open (what an error leaves there is the caller's to
/// drop).
fn read_item(
    r: &mut Reader<'_>,
    stack: &mut Vec<Frame>,
    budget: &mut Budget,
) -> Result<Value, CborError> {
    let mut depth = 0usize;
    let mut after_tag = false;
    loop {
        let enc = stack.last().map_or(Enc::Text, Frame::enc);
        // Break of an indefinite array or map.
        if r.b.get(r.i) == Some(&0xff) {
            let at = r.i;
            match stack.last() {
                Some(Frame::Array { left: None, .. })
                | Some(Frame::Map {
                    left: None,
                    key: None,
                    ..
                }) => {
                    r.i += 1;
                }
                _ => return r.err(at, "a break outside an indefinite array or map"),
            }
            // The break closed the top frame.
            let v = match stack.pop() {
                Some(Frame::Array { items, .. }) => Value::Array(items),
                Some(Frame::Map { map, .. }) => Value::Object(map),
                _ => return r.err(r.i, "internal: a break without its frame"),
            };
            depth -= 1;
            if let Some(root) = attach(r, stack, &mut depth, v)? {
                return Ok(root);
            }
            continue;
        }
        let h = r.head()?;
        let was_tag = std::mem::replace(&mut after_tag, false);
        let v = match h.major {
            4 | 5 => match open_container(r, stack, &mut depth, budget, &h, enc)? {
                Some(empty) => empty,
                None => continue,
            },
            6 => {
                open_tag(r, stack, &mut depth, &h, enc, was_tag)?;
                after_tag = true;
                continue;
            }
            _ => scalar(r, &h, enc)?,
        };
        if let Value::String(s) = &v {
            budget.charge(1, s.len())?;
        } else {
            budget.charge(1, 0)?;
        }
        if let Some(root) = attach(r, stack, &mut depth, v)? {
            return Ok(root);
        }
    }
}

/// An item that holds no other (major types 0, 1, 2, 3, 7): integers
/// within int64, strings (byte strings shown as `enc` says), false, true,
/// null and finite floats.
fn scalar(r: &mut Reader<'_>, h: &Head, enc: Enc) -> Result<Value, CborError> {
    Ok(match h.major {
        0 => match i64::try_from(h.arg.unwrap_or(0)) {
            Ok(n) => Value::from(n),
            Err(_) => return r.err(h.at, "an integer that overflows int64"),
        },
        1 => match i64::try_from(h.arg.unwrap_or(0)) {
            Ok(n) => Value::from(-1 - n),
            Err(_) => return r.err(h.at, "an integer that overflows int64"),
        },
        2 => {
            let b = r.string_bytes(h)?;
            let s = match enc {
                Enc::Text => go_lossy(&b),
                Enc::Base64 => base64::engine::general_purpose::STANDARD.encode(&b),
                Enc::Base64Url => base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&b),
                Enc::Base16 => b.iter().map(|x| format!("{x:02x}")).collect(),
            };
            Value::String(s)
        }
        3 => {
            let b = r.string_bytes(h)?;
            match String::from_utf8(b) {
                Ok(s) => Value::String(s),
                Err(_) => return r.err(h.at, "invalid UTF-8 in a text string"),
            }
        }
        _ => match (h.info, h.arg) {
            (20, _) => Value::Bool(false),
            (21, _) => Value::Bool(true),
            (22, _) => Value::Null,
            (25, Some(x)) => float(r, h.at, half_to_f64(x as u16))?,
            (26, Some(x)) => float(r, h.at, f64::from(f32::from_bits(x as u32)))?,
            (27, Some(x)) => float(r, h.at, f64::from_bits(x))?,
            _ => {
                return r.err(
                    h.at,
                    "a simple value other than false, true and null (refused by the API server)",
                );
            }
        },
    })
}

/// An array or map head (major type 4 or 5): an empty one is complete
/// (returned); any other is pushed on `stack` to be filled (None).
fn open_container(
    r: &mut Reader<'_>,
    stack: &mut Vec<Frame>,
    depth: &mut usize,
    budget: &mut Budget,
    h: &Head,
    enc: Enc,
) -> Result<Option<Value>, CborError> {
    *depth += 1;
    if *depth > MAX_DEPTH {
        return r.err(h.at, format!("nested deeper than {MAX_DEPTH} levels"));
    }
    budget.charge(1, 0)?;
    if h.major == 5 && h.arg.is_some_and(|n| n > MAX_MAP_PAIRS) {
        return r.err(h.at, format!("a map of more than {MAX_MAP_PAIRS} pairs"));
    }
    if h.arg == Some(0) {
        *depth -= 1;
        return Ok(Some(if h.major == 4 {
            Value::Array(Vec::new())
        } else {
            Value::Object(Map::new())
        }));
    }
    // Each element takes a byte at least: no more room than that.
    let room = r.b.len() - r.i;
    let cap = h.arg.map_or(0, |n| (n as usize).min(room).min(1 << 16));
    stack.push(if h.major == 4 {
        Frame::Array {
            items: Vec::with_capacity(cap),
            left: h.arg,
            enc,
        }
    } else {
        Frame::Map {
            map: Map::new(),
            left: h.arg,
            key: None,
            enc,
        }
    });
    Ok(None)
}

/// A tag head (major type 6), pushed on `stack` for the item it tags: a
/// bignum is refused; a tag of a tag counts as a level of nesting; tags
/// 21–23 set how the byte strings under it are shown.
fn open_tag(
    r: &mut Reader<'_>,
    stack: &mut Vec<Frame>,
    depth: &mut usize,
    h: &Head,
    enc: Enc,
    was_tag: bool,
) -> Result<(), CborError> {
    let num = h.arg.unwrap_or(0);
    if num == 2 || num == 3 {
        return r.err(h.at, "a bignum (tag 2 or 3), which the API server refuses");
    }
    if was_tag {
        *depth += 1;
        if *depth > MAX_DEPTH {
            return r.err(h.at, format!("nested deeper than {MAX_DEPTH} levels"));
        }
    }
    let enc = match num {
        21 => Enc::Base64Url,
        22 => Enc::Base64,
        23 => Enc::Base16,
        _ => enc,
    };
    stack.push(Frame::Tag { num, enc });
    Ok(())
}

fn float(r: &Reader<'_>, at: usize, f: f64) -> Result<Value, CborError> {
    if f.is_nan() {
        return r.err(at, "a NaN, which the API server refuses");
    }
    if f.is_infinite() {
        return r.err(at, "an infinity, which the API server refuses");
    }
    Ok(go_float(f))
}

/// Puts a complete item into its parent, closing the frames it completes;
/// the top-level item when none is left.
fn attach(
    r: &Reader<'_>,
    stack: &mut Vec<Frame>,
    depth: &mut usize,
    mut v: Value,
) -> Result<Option<Value>, CborError> {
    loop {
        match stack.last_mut() {
            None => return Ok(Some(v)),
            Some(Frame::Tag { num, .. }) => {
                let num = *num;
                stack.pop();
                if matches!(stack.last(), Some(Frame::Tag { .. })) {
                    *depth = depth.saturating_sub(1);
                }
                v = match (num, v) {
                    (0, Value::String(s)) => Value::String(s),
                    (0, other) => {
                        drop_deep(other);
                        return r.err(r.i, "a time (tag 0) that is not text");
                    }
                    (1, Value::Number(n)) => match n.as_f64().and_then(epoch_text) {
                        Some(t) => Value::String(t),
                        None => return r.err(r.i, "a time (tag 1) out of range"),
                    },
                    (1, other) => {
                        drop_deep(other);
                        return r.err(r.i, "a time (tag 1) that is not a number");
                    }
                    (_, v) => v,
                };
            }
            Some(Frame::Array { items, left, .. }) => {
                items.push(v);
                if let Some(n) = left {
                    *n -= 1;
                    if *n == 0 {
                        let Some(Frame::Array { items, .. }) = stack.pop() else {
                            return r.err(r.i, "internal: lost an array");
                        };
                        *depth -= 1;
                        v = Value::Array(items);
                        continue;
                    }
                }
                return Ok(None);
            }
            Some(Frame::Map { map, left, key, .. }) => {
                let Some(k) = key.take() else {
                    match v {
                        Value::String(s) => {
                            *key = Some(s);
                            return Ok(None);
                        }
                        other => {
                            drop_deep(other);
                            return r.err(r.i, "a map key that is not a string");
                        }
                    }
                };
                if map.contains_key(&k) {
                    drop_deep(v);
                    return r.err(r.i, format!("a duplicate map key {k:?}"));
                }
                map.insert(k, v);
                if let Some(n) = left {
                    *n -= 1;
                    if *n == 0 {
                        let Some(Frame::Map { map, .. }) = stack.pop() else {
                            return r.err(r.i, "internal: lost a map");
                        };
                        *depth -= 1;
                        v = Value::Object(map);
                        continue;
                    }
                }
                return Ok(None);
            }
        }
    }
}
