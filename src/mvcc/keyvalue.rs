//! `mvccpb.KeyValue`, the value of every entry in etcd's `key` bucket, decoded
//! without copying: key and value borrow from the mapped file.

use crate::protowire::{Fields, Value, WireError};

/// etcd's `mvccpb.KeyValue`: one revision of a key, as stored in the key bucket's value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyValue<'a> {
    /// The key.
    pub key: &'a [u8],
    /// The revision that created the key.
    pub create_revision: i64,
    /// The revision that wrote this value.
    pub mod_revision: i64,
    /// Puts since the key was created (1 for the first).
    pub version: i64,
    /// The value.
    pub value: &'a [u8],
    /// The lease attached (0: none).
    pub lease: i64,
}

/// Why a stored KeyValue cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyValueError {
    /// The bytes are not protobuf.
    #[error("not a KeyValue protobuf: {0}")]
    Wire(#[from] WireError),
    /// A known field with the wrong wire type.
    #[error("KeyValue field {field} has the wrong wire type")]
    FieldType {
        /// The field number.
        field: u32,
    },
}

impl<'a> KeyValue<'a> {
    /// Decodes a KeyValue. Unknown fields are skipped, as protobuf requires.
    pub fn decode(buf: &'a [u8]) -> Result<KeyValue<'a>, KeyValueError> {
        let mut kv = KeyValue::default();
        for field in Fields::new(buf) {
            let (n, v) = field?;
            match (n, v) {
                (1, Value::Bytes(b)) => kv.key = b,
                (2, Value::Varint(x)) => kv.create_revision = x as i64,
                (3, Value::Varint(x)) => kv.mod_revision = x as i64,
                (4, Value::Varint(x)) => kv.version = x as i64,
                (5, Value::Bytes(b)) => kv.value = b,
                (6, Value::Varint(x)) => kv.lease = x as i64,
                (1..=6, _) => return Err(KeyValueError::FieldType { field: n }),
                _ => {}
            }
        }
        Ok(kv)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_tombstone_and_put() {
        assert_eq!(
            KeyValue::decode(&[0x0a, 0x02, b'k', b'2']).map(|kv| kv.key),
            Ok(&b"k2"[..])
        );
        let buf = [
            0x0a, 1, b'a', 0x10, 2, 0x18, 3, 0x20, 2, 0x2a, 2, b'h', b'i', 0x30, 7,
        ];
        let kv = KeyValue::decode(&buf).unwrap();
        assert_eq!(
            (kv.create_revision, kv.mod_revision, kv.version, kv.lease),
            (2, 3, 2, 7)
        );
        assert_eq!(kv.value, b"hi");
        assert!(KeyValue::decode(&[0x0a, 5, b'a']).is_err());
    }
}
