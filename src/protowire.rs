//! Zero-copy reading of protobuf wire format.
//!
//! prost's generated messages own their bytes (`Vec<u8>`), which would copy
//! every key and value out of a mapped snapshot; for the hot paths (every
//! KeyValue of a multi-GiB file) we walk the wire format directly and borrow.
//! This is the whole of what those decoders need: tags, varints and
//! length-delimited fields, each bounds-checked.

/// Appends `v` as a protobuf varint (for the few places that write wire
/// bytes: `kube::wire` re-encodes fields, tests build messages).
pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Why protobuf wire bytes cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// A varint runs past the end.
    #[error("truncated varint at byte {0}")]
    Varint(usize),
    /// A length-delimited field runs past the end.
    #[error("field {field} at byte {at}: length {len} runs past the end ({end})")]
    Length {
        /// The field number.
        field: u32,
        /// The offset of the field.
        at: usize,
        /// The length it claims.
        len: u64,
        /// The end of the message.
        end: usize,
    },
    /// A wire type other than varint, fixed64, length-delimited, fixed32.
    #[error("field {field} at byte {at}: unsupported wire type {wire_type}")]
    WireType {
        /// The field number.
        field: u32,
        /// The offset of the field.
        at: usize,
        /// The wire type found.
        wire_type: u8,
    },
    /// Field number 0.
    #[error("field number 0 at byte {0}")]
    FieldZero(usize),
    /// A fixed-width field runs past the end.
    #[error("truncated fixed-width field at byte {0}")]
    Fixed(usize),
}

/// A field's payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    /// Wire type 0.
    Varint(u64),
    /// Wire type 1.
    Fixed64(u64),
    /// Wire type 2: the field's bytes.
    Bytes(&'a [u8]),
    /// Wire type 5.
    Fixed32(u32),
}

/// Iterates over the fields of one message.
pub struct Fields<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Fields<'a> {
    /// The fields of the message `buf`, in order.
    pub fn new(buf: &'a [u8]) -> Fields<'a> {
        Fields { buf, pos: 0 }
    }

    fn varint(&mut self) -> Result<u64, WireError> {
        let start = self.pos;
        let mut v: u64 = 0;
        for shift in 0..10 {
            let b = *self.buf.get(self.pos).ok_or(WireError::Varint(start))?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << (7 * shift);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(WireError::Varint(start))
    }

    fn fixed<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let s = self
            .buf
            .get(self.pos..self.pos + N)
            .ok_or(WireError::Fixed(self.pos))?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        self.pos += N;
        Ok(a)
    }

    fn next_field(&mut self) -> Result<(u32, Value<'a>), WireError> {
        let at = self.pos;
        let key = self.varint()?;
        let field = (key >> 3) as u32;
        if field == 0 {
            return Err(WireError::FieldZero(at));
        }
        let value = match (key & 7) as u8 {
            0 => Value::Varint(self.varint()?),
            1 => Value::Fixed64(u64::from_le_bytes(self.fixed::<8>()?)),
            2 => {
                let len = self.varint()?;
                let end = self.buf.len();
                let rest = (end - self.pos) as u64;
                if len > rest {
                    return Err(WireError::Length {
                        field,
                        at,
                        len,
                        end,
                    });
                }
                let s = &self.buf[self.pos..self.pos + len as usize];
                self.pos += len as usize;
                Value::Bytes(s)
            }
            5 => Value::Fixed32(u32::from_le_bytes(self.fixed::<4>()?)),
            wire_type => {
                return Err(WireError::WireType {
                    field,
                    at,
                    wire_type,
                });
            }
        };
        Ok((field, value))
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u32, Value<'a>), WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.buf.len() {
            return None;
        }
        let r = self.next_field();
        if r.is_err() {
            // Stop after an error: the rest cannot be framed.
            self.pos = self.buf.len();
        }
        Some(r)
    }
}
