//! A minimal DER reader and writer for the private key structures (PKCS#1,
//! SEC1, PKCS#8): small enough to read by eye, strict enough to refuse
//! anything that is not DER (indefinite lengths, lengths past the end,
//! high tag numbers). Certificates are read by x509-parser, not here.

/// Tags used by the key structures.
pub const INTEGER: u8 = 0x02;
pub const BIT_STRING: u8 = 0x03;
pub const OCTET_STRING: u8 = 0x04;
pub const NULL: u8 = 0x05;
pub const OID: u8 = 0x06;
pub const SEQUENCE: u8 = 0x30;
/// `[0]` and `[1]`, constructed (SEC1's parameters and public key).
pub const CTX0: u8 = 0xa0;
pub const CTX1: u8 = 0xa1;

/// A cursor over DER bytes.
#[derive(Clone, Copy)]
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { rest: bytes }
    }

    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    pub fn peek_tag(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    /// The next element: `(tag, body)`.
    pub fn element(&mut self) -> Result<(u8, &'a [u8]), &'static str> {
        let (&tag, after) = self.rest.split_first().ok_or("truncated DER")?;
        if tag & 0x1f == 0x1f {
            return Err("DER high tag numbers are not used in keys");
        }
        let (&first, mut after) = after.split_first().ok_or("truncated DER length")?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || after.len() < n {
                return Err("bad DER length");
            }
            let mut len = 0usize;
            for &b in &after[..n] {
                len = (len << 8) | usize::from(b);
            }
            after = &after[n..];
            len
        };
        if after.len() < len {
            return Err("DER element runs past the end");
        }
        let (body, rest) = after.split_at(len);
        self.rest = rest;
        Ok((tag, body))
    }

    /// The next element, which must have tag `tag`.
    pub fn expect(&mut self, tag: u8) -> Result<&'a [u8], &'static str> {
        match self.element()? {
            (t, body) if t == tag => Ok(body),
            _ => Err("unexpected DER element"),
        }
    }

    /// The next element if it has tag `tag`.
    pub fn optional(&mut self, tag: u8) -> Result<Option<&'a [u8]>, &'static str> {
        if self.peek_tag() == Some(tag) {
            self.expect(tag).map(Some)
        } else {
            Ok(None)
        }
    }
}

/// The body of a whole-input element `tag` (nothing may follow it).
pub fn whole(bytes: &[u8], tag: u8) -> Result<&[u8], &'static str> {
    let mut r = Reader::new(bytes);
    let body = r.expect(tag)?;
    if !r.is_empty() {
        return Err("data after the DER structure");
    }
    Ok(body)
}

/// An INTEGER's magnitude without leading zero bytes (for comparing keys).
pub fn unsigned(int: &[u8]) -> &[u8] {
    let mut i = int;
    while let [0, rest @ ..] = i {
        i = rest;
    }
    i
}

/// A small non-negative INTEGER (versions).
pub fn small(int: &[u8]) -> Option<u8> {
    match int {
        [v] if *v < 0x80 => Some(*v),
        _ => None,
    }
}

/// One DER element.
pub fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = body.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(body);
    out
}

/// A dotted OID as DER body bytes.
pub fn oid_body(dotted: &str) -> Vec<u8> {
    let arcs: Vec<u64> = dotted.split('.').filter_map(|a| a.parse().ok()).collect();
    let mut out = Vec::new();
    if arcs.len() < 2 {
        return out;
    }
    let mut push = |mut v: u64| {
        let mut tmp = vec![(v & 0x7f) as u8];
        v >>= 7;
        while v > 0 {
            tmp.push(0x80 | (v & 0x7f) as u8);
            v >>= 7;
        }
        tmp.reverse();
        out.extend_from_slice(&tmp);
    };
    push(arcs[0] * 40 + arcs[1]);
    for &a in &arcs[2..] {
        push(a);
    }
    out
}

/// A DER OID body as dotted text (for messages).
pub fn oid_text(body: &[u8]) -> String {
    let mut arcs = Vec::new();
    let mut v: u64 = 0;
    for &b in body {
        v = (v << 7) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (v / 40).min(2);
                arcs.push(first);
                arcs.push(v - first * 40);
            } else {
                arcs.push(v);
            }
            v = 0;
        }
        if v > u64::MAX >> 8 {
            return "(bad OID)".into();
        }
    }
    arcs.iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oid_round_trip() {
        for o in ["1.2.840.113549.1.1.1", "1.2.840.10045.3.1.7", "1.3.101.112"] {
            assert_eq!(oid_text(&oid_body(o)), o);
        }
    }

    #[test]
    fn lengths() {
        let long = vec![7u8; 300];
        let t = tlv(OCTET_STRING, &long);
        assert_eq!(&t[..4], &[4, 0x82, 1, 44]);
        assert_eq!(whole(&t, OCTET_STRING).unwrap(), &long[..]);
        assert!(whole(&[4, 0x80, 0, 0], OCTET_STRING).is_err());
        assert!(whole(&[4, 5, 0], OCTET_STRING).is_err());
    }
}
