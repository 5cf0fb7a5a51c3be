//! HashKV offline: the CRC-32C that `etcdctl endpoint hashkv --rev R` reports
//! for a member whose backend is this snapshot, so that a file can be compared
//! with a live cluster (and `compare` / `verify-cluster` can ask the cluster
//! for the same figure).
//!
//! etcd hashes the `key` bucket in revision order: the bucket's name, then every
//! stored (revision key, value) with main revision ≤ R, except the revisions at
//! or below the compaction that the key index would not keep (for each key
//! live at R, its newest revision ≤ R; nothing for a deleted key) — unless the
//! index keeps nothing at all. etcd 3.4.34+, 3.5.16+ and 3.6 also skip a
//! tombstone sitting exactly at the compaction revision (newer servers keep it
//! in the bucket, older ones delete it while compacting); older servers hash
//! it. Older servers (before 3.4.27 / 3.5.10) also refuse R equal to the
//! compaction revision.
//!
//! The bucket is streamed once. What the keep set decides (revisions at or
//! below the compaction) is only known at the end of the scan, so those
//! entries are remembered (they borrow from the file) and hashed afterwards;
//! everything above the compaction is hashed as it streams, and the two CRCs
//! are joined with `crc32c_combine`.

use std::collections::HashMap;

use super::keyspace::{KeySpace, KeySpaceError, corrupt};
use super::keyvalue::KeyValue;
use super::revision::RevisionKey;
use crate::bolt::Db;

/// What `HashKV` answers for a member whose backend is the snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct HashKv {
    /// The hash a member reports.
    pub hash: u32,
    /// The compaction revision, −1 when the store was never compacted.
    pub compact_revision: i64,
    /// The store's current revision (the response header's revision).
    pub revision: i64,
    /// The revision hashed (the request's, or the current one for 0).
    pub hash_revision: i64,
}

/// Whether a tombstone at exactly the compaction revision is hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TombstoneRule {
    /// etcd before 3.4.34 / 3.5.16 (3.4.23 and 3.5.1 among them): hashed.
    Old,
    /// etcd 3.4.34+, 3.5.16+, 3.6 and later: skipped.
    New,
}

/// The version-dependent parts of HashKV.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerRules {
    /// How tombstones enter the hash.
    pub tombstone: TombstoneRule,
    /// Whether a request for exactly the compaction revision is refused as
    /// compacted (etcd before 3.4.27 / 3.5.10).
    pub refuse_at_compaction: bool,
}

impl From<TombstoneRule> for ServerRules {
    /// The rules of the servers each tombstone rule is usually met with:
    /// `Old` refuses the compaction revision itself (3.4.23, 3.5.1), `New`
    /// answers it.
    fn from(tombstone: TombstoneRule) -> ServerRules {
        ServerRules {
            tombstone,
            refuse_at_compaction: tombstone == TombstoneRule::Old,
        }
    }
}

/// A server version HashKV cannot be computed for (unknown, or a 3.4/3.5 line given without its patch release).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct VersionError(String);

impl ServerRules {
    /// The rules of an etcd release: `3.6`, `3.7`, or a full 3.4/3.5 version
    /// (`3.5.1`, `3.4.34`: those lines changed within their patch releases).
    pub fn for_version(v: &str) -> Result<ServerRules, VersionError> {
        let v = v.trim().trim_start_matches('v');
        let parts: Vec<&str> = v.split('.').collect();
        let num = |s: &str| s.parse::<u32>().ok();
        let bad = || VersionError(format!("{v:?} is not an etcd version (e.g. 3.6, 3.5.1)"));
        let (major, minor) = match parts.as_slice() {
            [a, b] | [a, b, _] => (num(a).ok_or_else(bad)?, num(b).ok_or_else(bad)?),
            _ => return Err(bad()),
        };
        let patch = match parts.get(2) {
            Some(p) => Some(num(p).ok_or_else(bad)?),
            None => None,
        };
        let (tomb_fix, err_fix) = match (major, minor) {
            (3, 4) => (34, 27),
            (3, 5) => (16, 10),
            (3, m) if m >= 6 => {
                return Ok(ServerRules::from(TombstoneRule::New));
            }
            (m, _) if m > 3 => return Ok(ServerRules::from(TombstoneRule::New)),
            _ => {
                return Err(VersionError(format!(
                    "etcd {v} is not supported (3.4 and later)"
                )));
            }
        };
        let Some(patch) = patch else {
            return Err(VersionError(format!(
                "etcd {major}.{minor} changed HashKV in {major}.{minor}.{err_fix} and \
                 {major}.{minor}.{tomb_fix}: give the full version (`etcd --version`), e.g. \
                 {major}.{minor}.{}",
                if minor == 4 { 23 } else { 1 }
            )));
        };
        Ok(ServerRules {
            tombstone: if patch >= tomb_fix {
                TombstoneRule::New
            } else {
                TombstoneRule::Old
            },
            refuse_at_compaction: patch < err_fix,
        })
    }
}

/// Why a HashKV cannot be computed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HashKvError {
    /// The keyspace cannot be read.
    #[error(transparent)]
    KeySpace(#[from] KeySpaceError),
    /// The revision is compacted away.
    #[error(
        "mvcc: required revision has been compacted (revision {requested}; the snapshot is compacted at {compacted})"
    )]
    Compacted {
        /// The revision asked for.
        requested: i64,
        /// The revision compacted at.
        compacted: i64,
    },
    /// The revision is past the snapshot's.
    #[error(
        "mvcc: required revision is a future revision (revision {requested}; the snapshot's revision is {current})"
    )]
    Future {
        /// The revision asked for.
        requested: i64,
        /// The snapshot's revision.
        current: i64,
    },
}

/// HashKV at `rev` (0 = the snapshot's revision) with the newer or older
/// tombstone rule (and that rule's usual handling of the compaction revision).
pub fn hash_kv(db: &Db<'_>, rev: i64, rule: TombstoneRule) -> Result<HashKv, HashKvError> {
    hash_kv_with(db, rev, ServerRules::from(rule))
}

/// An entry at or below the compaction revision, hashed once the keep set is known.
struct Early<'a> {
    key: &'a [u8],
    value: &'a [u8],
    main: i64,
    tombstone: bool,
    /// Whether this is its key's newest revision ≤ rev and a put.
    kept: bool,
}

#[derive(Default)]
struct KeyState {
    live: bool,
    /// Index in `early` of the key's newest revision at or below the compaction,
    /// while no later revision (≤ rev) of the key has been seen.
    early: Option<usize>,
}

/// HashKV at `rev` (0 = the snapshot's revision) under the given server rules.
pub fn hash_kv_with(db: &Db<'_>, rev: i64, rules: ServerRules) -> Result<HashKv, HashKvError> {
    let ks = KeySpace::open(db)?;
    let compact = ks.compact_revision.unwrap_or(-1);
    // etcd's store starts at revision 1.
    let current = ks.current_revision.max(1);
    if rev > 0 && (rev < compact || (rules.refuse_at_compaction && rev == compact)) {
        return Err(HashKvError::Compacted {
            requested: rev,
            compacted: compact,
        });
    }
    if rev > current {
        return Err(HashKvError::Future {
            requested: rev,
            current,
        });
    }
    let rev = if rev <= 0 { current } else { rev };

    let mut early: Vec<Early<'_>> = Vec::new();
    let mut keys: HashMap<&[u8], KeyState, foldhash::fast::RandomState> = HashMap::default();
    let mut live = 0usize;
    // Only a compacted store skips anything; otherwise no key index is needed.
    let need_index = compact >= 0;
    let mut late_crc = 0u32;
    let mut late_len = 0usize;

    'scan: for leaf in ks.leaves()? {
        for i in 0..leaf.count() {
            let e = leaf.leaf(i).map_err(|f| corrupt(b"", f.to_string()))?;
            let rk = RevisionKey::parse(e.key).map_err(|err| corrupt(e.key, err.to_string()))?;
            let main = rk.revision.main;
            if main > rev {
                // The bucket is in revision order: nothing further is hashed.
                break 'scan;
            }
            if !need_index {
                late_crc = crc32c::crc32c_append(late_crc, e.key);
                late_crc = crc32c::crc32c_append(late_crc, e.value);
                late_len += e.key.len() + e.value.len();
                continue;
            }
            // The key index etcd rebuilds reads every value; so do we (an
            // empty value, the bump marker of a restore, is the key "").
            let kv = KeyValue::decode(e.value).map_err(|err| corrupt(e.key, err.to_string()))?;
            let st = keys.entry(kv.key).or_default();
            match (st.live, rk.tombstone) {
                (false, false) => live += 1,
                (true, true) => live -= 1,
                _ => {}
            }
            st.live = !rk.tombstone;
            if let Some(j) = st.early.take() {
                early[j].kept = false;
            }
            if main <= compact {
                st.early = Some(early.len());
                early.push(Early {
                    key: e.key,
                    value: e.value,
                    main,
                    tombstone: rk.tombstone,
                    kept: !rk.tombstone,
                });
            } else {
                late_crc = crc32c::crc32c_append(late_crc, e.key);
                late_crc = crc32c::crc32c_append(late_crc, e.value);
                late_len += e.key.len() + e.value.len();
            }
        }
    }

    let mut hash = crc32c::crc32c(b"key");
    let keep_empty = live == 0;
    for e in &early {
        if !keep_empty && !e.kept {
            continue;
        }
        if rules.tombstone == TombstoneRule::New && e.main == compact && e.tombstone {
            continue;
        }
        hash = crc32c::crc32c_append(hash, e.key);
        hash = crc32c::crc32c_append(hash, e.value);
    }
    hash = crc32c::crc32c_combine(hash, late_crc, late_len);
    Ok(HashKv {
        hash,
        compact_revision: compact,
        revision: current,
        hash_revision: rev,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_map_to_rules() {
        let r = |v| ServerRules::for_version(v).unwrap();
        assert_eq!(r("3.5.1"), ServerRules::from(TombstoneRule::Old));
        assert_eq!(r("3.4.23"), ServerRules::from(TombstoneRule::Old));
        assert_eq!(r("3.6"), ServerRules::from(TombstoneRule::New));
        assert_eq!(r("v3.6.16"), ServerRules::from(TombstoneRule::New));
        assert_eq!(r("3.5.16"), ServerRules::from(TombstoneRule::New));
        assert_eq!(r("3.4.34"), ServerRules::from(TombstoneRule::New));
        let mid = r("3.5.12");
        assert_eq!(
            (mid.tombstone, mid.refuse_at_compaction),
            (TombstoneRule::Old, false)
        );
        for bad in ["3.5", "3.4", "3.3.1", "x", "3.5.z", ""] {
            assert!(ServerRules::for_version(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn crc_of_an_empty_store_is_etcds() {
        // etcd answers 1084519789 for a fresh store (only the bucket name hashed).
        assert_eq!(crc32c::crc32c(b"key"), 1084519789);
    }
}
