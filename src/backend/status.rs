//! `snapshot status`, computed exactly as etcdutl 3.5 (and etcdctl 3.4) do,
//! and as etcdutl 3.6/3.7 do (they differ only in totalKey).
//!
//! - hash: CRC-32C over, for each top-level bucket in order, its name, then
//!   every key and value in order (no separators, nothing skipped);
//! - revision: the main revision of the last key in the `key` bucket;
//! - totalKey: every entry of every bucket (the 3.4/3.5 meaning); etcdutl
//!   3.6+ decodes every `key` value as a KeyValue and counts the distinct keys
//!   whose newest entry is a put (`live_keys`; an empty bump-marker value
//!   decodes to the key "" and counts, as in etcdutl), and fails on a value or
//!   revision key it cannot parse (`live_keys` is then the error);
//! - totalSize: high-water mark × page size (the trailer is not counted);
//! - version: `meta/storageVersion`, when the file records one (3.6).
//!
//! Like etcdutl, the structure is checked first (in the same walk) and any
//! problem fails the command.
//!
//! The CRC is the bulk of the work. It runs beside the structure walk and is
//! itself split across cores by leaf: CRC-32C of a concatenation is the
//! combination of the parts' CRCs, so each leaf's part is computed on its own
//! and the parts are joined in order.

use std::ops::ControlFlow;

use serde::Serialize;

use super::{KEY, META};
use crate::bolt::page::Node;
use crate::bolt::read;
use crate::bolt::{Db, LeafElement, Visitor, Walker};
use crate::mvcc::revision::main_revision_prefix;
use crate::mvcc::{KeyValue, RevisionKey};
use crate::problem::{Problem, Problems};

/// What `etcdutl snapshot status` prints for a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// etcdutl's hash of the file's buckets (crc32c).
    pub hash: u32,
    /// The keyspace's current revision.
    pub revision: i64,
    /// The stored revisions (etcd 3.5's totalKey).
    pub total_key: u64,
    /// The file's size in bytes.
    pub total_size: u64,
    /// The storage version, printed by etcdutl 3.6 and later.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// etcdutl 3.6+'s totalKey, or why etcdutl 3.6+ would fail on this file.
    #[serde(skip)]
    pub live_keys: Result<u64, String>,
}

/// Why a status cannot be computed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StatusError {
    /// The file fails etcdutl's integrity check (bbolt's consistency check).
    #[error("snapshot file integrity check failed. {} errors found.", .0.total())]
    Integrity(Problems),
}

/// Below this, one core hashes a run of leaves without splitting it further.
const SPLIT_BYTES: usize = 8 << 20;

/// A piece of the status hash input: a bucket's name, or one leaf of it.
enum Unit<'a> {
    Name(&'a [u8]),
    Leaf(Node<'a>),
}

impl Unit<'_> {
    /// Extends a running CRC-32C (and length) with this unit's hash input.
    fn append(&self, mut crc: u32, mut len: usize) -> (u32, usize) {
        match self {
            Unit::Name(n) => (crc32c::crc32c_append(crc, n), len + n.len()),
            Unit::Leaf(node) => {
                for i in 0..node.count() {
                    // The structure walk reports elements that do not parse.
                    let Ok(e) = node.leaf(i) else { continue };
                    crc = crc32c::crc32c_append(crc, e.key);
                    len += e.key.len();
                    if !e.is_bucket() {
                        // A nested bucket's cursor value is nil: only its name is hashed.
                        crc = crc32c::crc32c_append(crc, e.value);
                        len += e.value.len();
                    }
                }
                (crc, len)
            }
        }
    }
}

/// CRC-32C of the concatenated units, split across cores.
fn crc_of(units: &[Unit<'_>]) -> (u32, usize) {
    let approx: usize = units
        .iter()
        .map(|u| match u {
            Unit::Name(n) => n.len(),
            Unit::Leaf(n) => n.bytes.len(),
        })
        .sum();
    if approx < SPLIT_BYTES || units.len() < 2 {
        // Combining is costly; within a run, extend one CRC instead.
        return units
            .iter()
            .fold((0u32, 0usize), |(crc, len), u| u.append(crc, len));
    }
    let (a, b) = units.split_at(units.len() / 2);
    let ((ca, la), (cb, lb)) = rayon::join(|| crc_of(a), || crc_of(b));
    (crc32c::crc32c_combine(ca, cb, lb), la + lb)
}

/// The status hash, computed over the leaves of every bucket on all cores.
/// `None` when the buckets cannot be read (the structure walk says why).
fn parallel_hash(db: &Db<'_>) -> Option<u32> {
    let mut units = Vec::new();
    for b in read::buckets(db).ok()? {
        units.push(Unit::Name(b.name));
        units.extend(read::leaves(db, &b).ok()?.into_iter().map(Unit::Leaf));
    }
    Some(crc_of(&units).0)
}

#[derive(Default)]
struct StatusVisitor<'a> {
    total_key: u64,
    /// etcdutl 3.6+'s set of keys whose newest entry is a put (foldhash:
    /// fast, randomly seeded so crafted keys cannot force collisions).
    live: std::collections::HashSet<&'a [u8], foldhash::fast::RandomState>,
    live_error: Option<String>,
    last_key: Option<&'a [u8]>,
    storage_version: Option<&'a [u8]>,
    problems: Problems,
}

impl<'a> StatusVisitor<'a> {
    /// etcdutl 3.6+'s totalKey step for one `key` entry.
    fn count_live(&mut self, e: &LeafElement<'a>) {
        if self.live_error.is_some() {
            return;
        }
        let rk = match RevisionKey::parse(e.key) {
            Ok(rk) => rk,
            Err(err) => {
                self.live_error = Some(format!(
                    "cannot parse revision key {}: {err}",
                    crate::problem::printable(e.key)
                ));
                return;
            }
        };
        let kv = match KeyValue::decode(e.value) {
            Ok(kv) => kv,
            Err(err) => {
                self.live_error = Some(format!(
                    "cannot unmarshal value at revision {}: {err}",
                    rk.revision
                ));
                return;
            }
        };
        if rk.tombstone {
            self.live.remove(kv.key);
        } else {
            self.live.insert(kv.key);
        }
    }
}

impl<'a> Visitor<'a> for StatusVisitor<'a> {
    fn problem(&mut self, problem: Problem) -> ControlFlow<()> {
        self.problems.push(problem);
        ControlFlow::Continue(())
    }

    fn entry(&mut self, path: &[&'a [u8]], e: &LeafElement<'a>) -> ControlFlow<()> {
        match path {
            [] if !e.is_bucket() => {
                self.problems.push(
                    Problem::new("cannot get hash of bucket: the root holds a plain key")
                        .with_key(e.key),
                );
            }
            [bucket] => {
                self.total_key += 1;
                if *bucket == KEY {
                    self.last_key = Some(e.key);
                    self.count_live(e);
                } else if *bucket == META && e.key == b"storageVersion" {
                    self.storage_version = Some(e.value);
                }
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

/// Computes `snapshot status` for an opened database.
pub fn status(db: &Db<'_>) -> Result<Status, StatusError> {
    let mut v = StatusVisitor::default();
    // bbolt would map past the end of a truncated file and read the missing
    // pages as zeros or fault; a short file is damage even when the walk does
    // not reach the missing pages.
    let have = db.data().len() as u64;
    if have < db.size() {
        v.problems.push(
            Problem::new(format!(
                "database is {have} bytes but its high-water mark needs {} (truncated?)",
                db.size()
            ))
            .at_offset(have),
        );
    }
    // The structure walk (which also counts) and the hash run side by side.
    let (_, hash) = rayon::join(
        || {
            let mut walker = Walker::new(db);
            let _ = walker.walk_root(&mut v);
        },
        || parallel_hash(db),
    );
    let revision = match v.last_key {
        None => 0,
        Some(k) => match main_revision_prefix(k) {
            Some(r) => r,
            None => {
                v.problems.push(
                    Problem::new("last key of the key bucket is shorter than a revision")
                        .in_bucket("key")
                        .with_key(k),
                );
                0
            }
        },
    };
    let hash = match hash {
        Some(h) if v.problems.is_empty() => h,
        _ => {
            if v.problems.is_empty() {
                v.problems
                    .push(Problem::new("the buckets cannot be read for hashing"));
            }
            return Err(StatusError::Integrity(v.problems));
        }
    };
    let live_keys = match v.live_error {
        Some(e) => Err(e),
        None => Ok(v.live.len() as u64),
    };
    Ok(Status {
        hash,
        revision,
        total_key: v.total_key,
        live_keys,
        total_size: db.size(),
        version: v
            .storage_version
            .map(|s| String::from_utf8_lossy(s).into_owned()),
    })
}
