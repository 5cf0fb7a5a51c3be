//! `snapshot status`, computed exactly as etcdutl 3.5 (and etcdctl 3.4) do.
//!
//! - hash: CRC-32C over, for each top-level bucket in order, its name, then
//!   every key and value in order (no separators, nothing skipped);
//! - revision: the main revision of the last key in the `key` bucket;
//! - totalKey: every entry of every bucket (the 3.4/3.5 meaning; 3.6 counts
//!   distinct live keys instead — `verify` reports that number);
//! - totalSize: high-water mark × page size (the trailer is not counted);
//! - version: `meta/storageVersion`, when the file records one (3.6).
//!
//! Like etcdutl, the structure is checked first (in the same walk) and any
//! problem fails the command.
//!
//! The CRC is the bulk of the work. The walk collects the byte slices to hash
//! (borrowed from the map, never copied) in batches, and each batch is hashed
//! on all cores: CRC-32C of a concatenation is the combination of the parts'
//! CRCs, so the parts can be computed independently and joined in order.

use std::ops::ControlFlow;

use serde::Serialize;

use super::{KEY, META};
use crate::bolt::{Db, LeafElement, Visitor, Walker};
use crate::mvcc::revision::main_revision_prefix;
use crate::problem::{Problem, Problems};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub hash: u32,
    pub revision: i64,
    pub total_key: u64,
    pub total_size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum StatusError {
    #[error("snapshot file integrity check failed. {} errors found.", .0.total())]
    Integrity(Problems),
}

/// Hash input collected per batch before it is hashed in parallel. Bounds the
/// slice list (16 bytes per slice) whatever the file size.
const BATCH_BYTES: usize = 256 << 20;
/// Below this, one core hashes a run of slices without splitting it further.
const SPLIT_BYTES: usize = 8 << 20;

/// The status hash input, in order, as borrowed slices.
#[derive(Default)]
struct HashInput<'a> {
    pieces: Vec<&'a [u8]>,
    bytes: usize,
    crc: u32,
}

impl<'a> HashInput<'a> {
    fn push(&mut self, s: &'a [u8]) {
        self.pieces.push(s);
        self.bytes += s.len();
        if self.bytes >= BATCH_BYTES {
            self.flush();
        }
    }

    fn flush(&mut self) {
        let (crc, len) = crc_of(&self.pieces);
        self.crc = crc32c::crc32c_combine(self.crc, crc, len);
        self.pieces.clear();
        self.bytes = 0;
    }

    fn finish(mut self) -> u32 {
        self.flush();
        self.crc
    }
}

/// CRC-32C of the concatenation of `pieces`, and its length; split across cores.
fn crc_of(pieces: &[&[u8]]) -> (u32, usize) {
    let len: usize = pieces.iter().map(|p| p.len()).sum();
    if len < SPLIT_BYTES || pieces.len() < 2 {
        let crc = pieces
            .iter()
            .fold(0u32, |crc, p| crc32c::crc32c_append(crc, p));
        return (crc, len);
    }
    let (a, b) = pieces.split_at(pieces.len() / 2);
    let ((ca, la), (cb, lb)) = rayon::join(|| crc_of(a), || crc_of(b));
    (crc32c::crc32c_combine(ca, cb, lb), la + lb)
}

#[derive(Default)]
struct StatusVisitor<'a> {
    hash: HashInput<'a>,
    total_key: u64,
    last_key: Option<&'a [u8]>,
    storage_version: Option<&'a [u8]>,
    problems: Problems,
}

impl<'a> Visitor<'a> for StatusVisitor<'a> {
    fn problem(&mut self, problem: Problem) -> ControlFlow<()> {
        self.problems.push(problem);
        ControlFlow::Continue(())
    }

    fn entry(&mut self, path: &[&'a [u8]], e: &LeafElement<'a>) -> ControlFlow<()> {
        match path {
            [] => {
                if !e.is_bucket() {
                    self.problems.push(
                        Problem::new("cannot get hash of bucket: the root holds a plain key")
                            .with_key(e.key),
                    );
                }
                self.hash.push(e.key);
            }
            [bucket] => {
                self.hash.push(e.key);
                if !e.is_bucket() {
                    // A nested bucket's cursor value is nil: only its name is hashed.
                    self.hash.push(e.value);
                }
                self.total_key += 1;
                if *bucket == KEY {
                    self.last_key = Some(e.key);
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
    let mut walker = Walker::new(db);
    let _ = walker.walk_root(&mut v);
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
    if !v.problems.is_empty() {
        return Err(StatusError::Integrity(v.problems));
    }
    Ok(Status {
        hash: v.hash.finish(),
        revision,
        total_key: v.total_key,
        total_size: db.size(),
        version: v
            .storage_version
            .map(|s| String::from_utf8_lossy(s).into_owned()),
    })
}
