//! Revision keys of etcd's `key` bucket.
//!
//! A key is `main` (8 bytes big-endian), `_`, `sub` (8 bytes big-endian): 17
//! bytes, sorting as (main, sub). A tombstone appends `t`: 18 bytes. etcd panics
//! on anything else; we return an error that says what is wrong.

use std::fmt;

/// Bytes of a revision key: main (8), `_`, sub (8).
pub const REVISION_KEY_LEN: usize = 17;
/// Bytes of a tombstone's revision key: a revision key and `t`.
pub const TOMBSTONE_KEY_LEN: usize = 18;

/// An MVCC revision: the store revision of a txn and the change's index in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct Revision {
    /// The store's revision: one per transaction.
    pub main: i64,
    /// The change's place within its transaction.
    pub sub: i64,
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}", self.main, self.sub)
    }
}

/// A parsed key of the `key` bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RevisionKey {
    /// The revision.
    pub revision: Revision,
    /// Whether the key ends in `t` (a deletion).
    pub tombstone: bool,
}

/// Why a key of the key bucket is not a revision key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RevisionKeyError {
    /// Neither 17 nor 18 bytes.
    #[error("revision key is {0} bytes (expected 17, or 18 for a tombstone)")]
    Length(usize),
    /// Byte 8 is not `_`.
    #[error("revision key byte 8 is 0x{0:02x} (expected '_')")]
    Separator(u8),
    /// An 18th byte that is not `t`.
    #[error("revision key's 18th byte is 0x{0:02x} (expected 't' for a tombstone)")]
    Marker(u8),
    /// A negative main or sub revision.
    #[error("revision key has a negative revision {main}_{sub}")]
    Negative {
        /// The main revision.
        main: i64,
        /// The sub revision.
        sub: i64,
    },
}

fn be_i64(b: &[u8]) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    i64::from_be_bytes(a)
}

impl RevisionKey {
    /// Reads a key of the key bucket: exactly 17 bytes, or 18 ending in `t`.
    pub fn parse(key: &[u8]) -> Result<RevisionKey, RevisionKeyError> {
        let tombstone = match key.len() {
            REVISION_KEY_LEN => false,
            TOMBSTONE_KEY_LEN => {
                if key[17] != b't' {
                    return Err(RevisionKeyError::Marker(key[17]));
                }
                true
            }
            n => return Err(RevisionKeyError::Length(n)),
        };
        if key[8] != b'_' {
            return Err(RevisionKeyError::Separator(key[8]));
        }
        let main = be_i64(&key[0..8]);
        let sub = be_i64(&key[9..17]);
        if main < 0 || sub < 0 {
            return Err(RevisionKeyError::Negative { main, sub });
        }
        Ok(RevisionKey {
            revision: Revision { main, sub },
            tombstone,
        })
    }

    /// The key bytes for a revision (17 bytes, or 18 with the tombstone mark).
    pub fn encode(revision: Revision, tombstone: bool) -> Vec<u8> {
        let mut k = Vec::with_capacity(TOMBSTONE_KEY_LEN);
        k.extend_from_slice(&revision.main.to_be_bytes());
        k.push(b'_');
        k.extend_from_slice(&revision.sub.to_be_bytes());
        if tombstone {
            k.push(b't');
        }
        k
    }
}

/// The main revision of a stored key as etcd reads it (`bytesToRev`): the first
/// eight bytes, whatever follows. `None` if the key is shorter.
pub fn main_revision_prefix(key: &[u8]) -> Option<i64> {
    (key.len() >= 8).then(|| be_i64(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let r = Revision { main: 9, sub: 2 };
        for t in [false, true] {
            let k = RevisionKey::encode(r, t);
            assert_eq!(
                RevisionKey::parse(&k),
                Ok(RevisionKey {
                    revision: r,
                    tombstone: t
                })
            );
        }
    }

    #[test]
    fn rejects_bad_keys() {
        assert_eq!(RevisionKey::parse(b"abc"), Err(RevisionKeyError::Length(3)));
        let mut k = RevisionKey::encode(Revision { main: 1, sub: 0 }, true);
        k[17] = b'x';
        assert_eq!(RevisionKey::parse(&k), Err(RevisionKeyError::Marker(b'x')));
        k[8] = 0;
        assert!(RevisionKey::parse(&k[..17]).is_err());
    }
}
