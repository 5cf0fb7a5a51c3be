//! Stored JSON values read the way the API server reads them.
//!
//! Custom resources and a few aggregated types are stored as JSON, which the
//! API server reads with Go's decoder (sigs.k8s.io/json) into unstructured
//! maps. This reader follows it where serde_json does not: nesting to 10,000
//! levels (not 128), without recursion so no depth can overflow the stack;
//! invalid UTF-8 and lone surrogates read as U+FFFD (one per byte), not an
//! error; numbers as Go prints them back (an integer that fits int64 stays one,
//! anything else is a float64, and an integral float prints as an integer);
//! a repeated key takes the last value. It also charges what it builds to a
//! [`Budget`] and reports every top-level `kind` it saw (a Secret is a Secret
//! even when a later duplicate `kind` says otherwise).

use serde_json::{Map, Number, Value};

use super::budget::{Budget, TooLarge, drop_deep, go_lossy};

/// The deepest nesting Go's JSON decoder accepts.
pub const MAX_DEPTH: usize = 10_000;

/// Why a JSON value is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    /// Not what the API server accepts, at this offset.
    #[error("{what} at byte {offset}")]
    Syntax {
        /// What is wrong.
        what: String,
        /// The byte offset.
        offset: usize,
    },
    /// The value would take more memory than allowed.
    #[error(transparent)]
    TooLarge(#[from] TooLarge),
}

/// A parsed value and what the reader noticed on the way.
#[derive(Debug)]
pub struct Parsed {
    /// The value.
    pub value: Value,
    /// Every string value of a top-level `kind` key, in order (duplicates too).
    pub kinds: Vec<String>,
}

enum Frame {
    Array(Vec<Value>),
    Object(Map<String, Value>, String),
}

struct Reader<'a> {
    b: &'a [u8],
    i: usize,
}

impl Reader<'_> {
    fn err<T>(&self, what: impl Into<String>) -> Result<T, JsonError> {
        Err(JsonError::Syntax {
            what: what.into(),
            offset: self.i,
        })
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn expect(&mut self, c: u8) -> Result<(), JsonError> {
        self.ws();
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            self.err(format!("expected {:?}", c as char))
        }
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let Some(h) = self.b.get(self.i..self.i + 4) else {
            return self.err("a \\u escape cut short");
        };
        let s = std::str::from_utf8(h).ok();
        match s.and_then(|s| u32::from_str_radix(s, 16).ok()) {
            Some(n) if h.iter().all(u8::is_ascii_hexdigit) => {
                self.i += 4;
                Ok(n)
            }
            _ => self.err("invalid \\u escape"),
        }
    }

    /// A string, the opening quote already read.
    fn string(&mut self) -> Result<String, JsonError> {
        let start = self.i;
        // Fast path: no escapes, valid UTF-8.
        while let Some(&c) = self.b.get(self.i) {
            match c {
                b'"' => {
                    let raw = &self.b[start..self.i];
                    self.i += 1;
                    return Ok(go_lossy(raw));
                }
                b'\\' => break,
                0..=0x1f => return self.err("a control character in a string"),
                _ => self.i += 1,
            }
        }
        let mut buf: Vec<u8> = self.b[start..self.i].to_vec();
        loop {
            let Some(&c) = self.b.get(self.i) else {
                return self.err("a string without its closing quote");
            };
            self.i += 1;
            match c {
                b'"' => return Ok(go_lossy(&buf)),
                0..=0x1f => {
                    self.i -= 1;
                    return self.err("a control character in a string");
                }
                b'\\' => {
                    let Some(&e) = self.b.get(self.i) else {
                        return self.err("a string without its closing quote");
                    };
                    self.i += 1;
                    let ch = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let hi = self.hex4()?;
                            if (0xd800..0xdc00).contains(&hi) {
                                // A pair only when a low surrogate escape follows.
                                let save = self.i;
                                let mut pair = None;
                                if self.b.get(self.i..self.i + 2) == Some(b"\\u") {
                                    self.i += 2;
                                    if let Ok(lo) = self.hex4()
                                        && (0xdc00..0xe000).contains(&lo)
                                    {
                                        pair = char::from_u32(
                                            0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00),
                                        );
                                    }
                                }
                                if pair.is_none() {
                                    self.i = save;
                                }
                                pair.unwrap_or('\u{fffd}')
                            } else {
                                char::from_u32(hi).unwrap_or('\u{fffd}')
                            }
                        }
                        _ => {
                            self.i -= 1;
                            return self.err("an invalid escape in a string");
                        }
                    };
                    let mut tmp = [0u8; 4];
                    buf.extend_from_slice(ch.encode_utf8(&mut tmp).as_bytes());
                }
                _ => buf.push(c),
            }
        }
    }

    fn number(&mut self) -> Result<Value, JsonError> {
        let start = self.i;
        let digits = |r: &mut Self| {
            let s = r.i;
            while r.peek().is_some_and(|c| c.is_ascii_digit()) {
                r.i += 1;
            }
            r.i - s
        };
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        let int_start = self.i;
        let n = digits(self);
        if n == 0 || (n > 1 && self.b[int_start] == b'0') {
            return self.err("an invalid number");
        }
        let mut float = false;
        if self.peek() == Some(b'.') {
            self.i += 1;
            float = true;
            if digits(self) == 0 {
                return self.err("an invalid number");
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            float = true;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            if digits(self) == 0 {
                return self.err("an invalid number");
            }
        }
        // ASCII digits and signs only: always UTF-8.
        let text = std::str::from_utf8(&self.b[start..self.i]).unwrap_or("0");
        if !float && let Ok(n) = text.parse::<i64>() {
            return Ok(Value::from(n));
        }
        match text.parse::<f64>() {
            Ok(f) if f.is_finite() => Ok(go_float(f)),
            _ => {
                self.i = start;
                self.err(format!("the number {text} does not fit a float64"))
            }
        }
    }

    fn literal(&mut self, word: &[u8], v: Value) -> Result<Value, JsonError> {
        if self.b.get(self.i..self.i + word.len()) == Some(word) {
            self.i += word.len();
            Ok(v)
        } else {
            self.err("an invalid literal")
        }
    }

    /// An object's key and its colon (after `{` or `,`).
    fn key(&mut self) -> Result<String, JsonError> {
        self.ws();
        if self.peek() != Some(b'"') {
            return self.err("expected a string key");
        }
        self.i += 1;
        let k = self.string()?;
        self.expect(b':')?;
        Ok(k)
    }
}

/// A float64 as Go's JSON encoder prints it, read back: integral values in
/// integer range are integers.
pub fn go_float(f: f64) -> Value {
    // Go prints -0 for negative zero, which reads back as a float.
    if f.fract() == 0.0 && f.abs() < 1e21 && !(f == 0.0 && f.is_sign_negative()) {
        if f >= -(2f64.powi(63)) && f < 2f64.powi(63) {
            return Value::from(f as i64);
        }
        if f >= 0.0 && f < 2f64.powi(64) {
            return Value::from(f as u64);
        }
    }
    Number::from_f64(f).map_or(Value::Null, Value::Number)
}

/// Parses a stored JSON value.
pub fn parse(bytes: &[u8], budget: &mut Budget) -> Result<Parsed, JsonError> {
    let mut r = Reader { b: bytes, i: 0 };
    let mut stack: Vec<Frame> = Vec::new();
    let mut kinds = Vec::new();
    let result = read_value(&mut r, &mut stack, &mut kinds, budget);
    // Whatever was built so far goes without recursion.
    for f in stack.drain(..) {
        match f {
            Frame::Array(items) => drop_deep(Value::Array(items)),
            Frame::Object(map, _) => drop_deep(Value::Object(map)),
        }
    }
    let value = result?;
    r.ws();
    if r.i != bytes.len() {
        drop_deep(value);
        return r.err("data after the top-level value");
    }
    Ok(Parsed { value, kinds })
}

/// Reads one top-level value without recursion: `stack` holds the arrays
/// and objects still open (what an error leaves there is the caller's to
/// drop); the top-level object's `kind` strings go to `kinds`.
fn read_value(
    r: &mut Reader<'_>,
    stack: &mut Vec<Frame>,
    kinds: &mut Vec<String>,
    budget: &mut Budget,
) -> Result<Value, JsonError> {
    loop {
        r.ws();
        let Some(c) = r.peek() else {
            return r.err("unexpected end of the value");
        };
        let v = match c {
            b'{' | b'[' => match open(r, stack, budget, c)? {
                Some(empty) => empty,
                None => continue,
            },
            b'"' => {
                r.i += 1;
                let s = r.string()?;
                budget.charge(1, s.len())?;
                Value::String(s)
            }
            b't' => r.literal(b"true", Value::Bool(true))?,
            b'f' => r.literal(b"false", Value::Bool(false))?,
            b'n' => r.literal(b"null", Value::Null)?,
            b'-' | b'0'..=b'9' => {
                budget.charge(1, 0)?;
                r.number()?
            }
            _ => return r.err("expected a value"),
        };
        if let Some(root) = attach(r, stack, kinds, budget, v)? {
            return Ok(root);
        }
    }
}

/// An object or array that starts at `c`: an empty one is complete
/// (returned); any other is pushed on `stack` to be filled (None).
fn open(
    r: &mut Reader<'_>,
    stack: &mut Vec<Frame>,
    budget: &mut Budget,
    c: u8,
) -> Result<Option<Value>, JsonError> {
    if stack.len() >= MAX_DEPTH {
        return r.err(format!("nested deeper than {MAX_DEPTH} levels"));
    }
    r.i += 1;
    r.ws();
    budget.charge(1, 0)?;
    if c == b'{' {
        if r.peek() == Some(b'}') {
            r.i += 1;
            return Ok(Some(Value::Object(Map::new())));
        }
        let k = r.key()?;
        budget.charge(1, k.len())?;
        stack.push(Frame::Object(Map::new(), k));
    } else if r.peek() == Some(b']') {
        r.i += 1;
        return Ok(Some(Value::Array(Vec::new())));
    } else {
        stack.push(Frame::Array(Vec::new()));
    }
    Ok(None)
}

/// Puts a complete value into its parent, closing what it completes: the
/// top-level value when none is left (Some), else None once a parent waits
/// for its next value.
fn attach(
    r: &mut Reader<'_>,
    stack: &mut Vec<Frame>,
    kinds: &mut Vec<String>,
    budget: &mut Budget,
    mut v: Value,
) -> Result<Option<Value>, JsonError> {
    loop {
        let top_level = stack.len() == 1;
        match stack.last_mut() {
            None => return Ok(Some(v)),
            Some(Frame::Array(items)) => {
                items.push(v);
                r.ws();
                match r.peek() {
                    Some(b',') => {
                        r.i += 1;
                        return Ok(None);
                    }
                    Some(b']') => {
                        r.i += 1;
                        let Some(Frame::Array(items)) = stack.pop() else {
                            return r.err("internal: lost an array");
                        };
                        v = Value::Array(items);
                    }
                    _ => return r.err("expected ',' or ']'"),
                }
            }
            Some(Frame::Object(map, key)) => {
                let k = std::mem::take(key);
                if top_level
                    && k == "kind"
                    && let Value::String(s) = &v
                {
                    kinds.push(s.clone());
                }
                if let Some(old) = map.insert(k, v) {
                    drop_deep(old);
                }
                r.ws();
                match r.peek() {
                    Some(b',') => {
                        r.i += 1;
                        *key = r.key()?;
                        budget.charge(1, key.len())?;
                        return Ok(None);
                    }
                    Some(b'}') => {
                        r.i += 1;
                        let Some(Frame::Object(map, _)) = stack.pop() else {
                            return r.err("internal: lost an object");
                        };
                        v = Value::Object(map);
                    }
                    _ => return r.err("expected ',' or '}'"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(s: &[u8]) -> Result<Value, JsonError> {
        parse(s, &mut Budget::for_value(s.len())).map(|p| p.value)
    }

    #[test]
    fn reads_like_go() {
        assert_eq!(
            p(br#" {"a": [1, -2, 1.0, 1e2, 0.5, "x\u00e9\ud83d\ude00", true, null, {}], "a": 3} "#)
                .unwrap(),
            json!({"a": 3})
        );
        assert_eq!(
            p(br#"{"a": [1, -2, 1.0, 1e2, 0.5, "x\u00e9\ud83d\ude00", true, null, {}, []]}"#)
                .unwrap(),
            json!({"a": [1, -2, 1, 100, 0.5, "xé😀", true, null, {}, []]})
        );
        assert_eq!(
            p(b"{\"s\":\"a\xffb\\ud800x\\udc00\\ud83d\\ude00\"}").unwrap(),
            json!({"s": "a\u{fffd}b\u{fffd}x\u{fffd}😀"})
        );
        assert_eq!(
            p(br#"{"u":18446744073709551615,"i":9223372036854775807}"#).unwrap(),
            json!({"u": 18446744073709551615.0f64, "i": 9223372036854775807i64})
        );
        for bad in [
            &b"{\"a\":1} {}"[..],
            b"{\"a\":1e400}",
            b"{\"a\":01}",
            b"{\"a\":\"\x01\"}",
            b"{\"a\":\"\\x\"}",
            b"{\"a\":tru}",
            b"{\"a\":1,}",
            b"{\"a\"}",
            b"[1,2",
            b"",
        ] {
            assert!(p(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn nesting_to_ten_thousand_levels_without_recursion() {
        let deep = |n: usize| {
            let mut s = "[".repeat(n);
            s.push('1');
            s.push_str(&"]".repeat(n));
            format!("{{\"a\":{s}}}")
        };
        let v = p(deep(MAX_DEPTH - 1).as_bytes()).unwrap();
        drop_deep(v);
        let e = p(deep(MAX_DEPTH).as_bytes()).unwrap_err();
        assert!(e.to_string().contains("deeper than 10000"), "{e}");
    }

    #[test]
    fn duplicate_kinds_are_all_reported() {
        let b = br#"{"kind":"Secret","data":{"kind":"x"},"kind":"ConfigMap"}"#;
        let parsed = parse(b, &mut Budget::for_value(b.len())).unwrap();
        assert_eq!(parsed.kinds, ["Secret", "ConfigMap"]);
        assert_eq!(parsed.value["kind"], "ConfigMap");
    }

    #[test]
    fn empty_maps_by_the_million_are_refused() {
        let mut s = String::from("{\"a\":[");
        for _ in 0..1_000_000 {
            s.push_str("{},");
        }
        s.push_str("{}]}");
        let e = p(s.as_bytes()).unwrap_err();
        assert!(matches!(e, JsonError::TooLarge(_)), "{e}");
    }
}
