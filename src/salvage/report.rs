//! What a salvage found, kept and lost: the report the command prints as
//! text or JSON, and the library's answer to "is anything lost?".
//!
//! Keys are shown escaped ([`crate::report::escape_bytes`]); a `/registry`
//! key is also named as the Kubernetes resource, namespace and name it
//! holds, so an operator knows which objects to recreate.

use std::collections::BTreeMap;

use serde::Serialize;

use super::scan::{PageSizeSource, ScanStats};
use super::tree::RootSource;

/// Everything a salvage found.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The damaged file.
    pub file: String,
    /// The file written (set once it is).
    pub output: Option<String>,
    /// Where an existing output was moved aside (`--force`).
    pub moved_aside: Option<String>,
    /// The page size read with.
    pub page_size: usize,
    /// Where it came from.
    pub page_size_source: PageSizeSource,
    /// Valid meta pages (of 2).
    pub valid_meta_pages: u8,
    /// Where the root bucket came from.
    pub root: RootSource,
    /// What the page scan counted.
    pub scan: ScanStats,
    /// The `key` bucket's records.
    pub records: Records,
    /// The keys recovered.
    pub keys: Keys,
    /// Every bucket of the output and where its content came from.
    pub buckets: Vec<BucketReport>,
    /// Leaves no tree places whose elements have the shape of more than
    /// one bucket: left out.
    #[serde(skip_serializing_if = "is_zero")]
    pub ambiguous_leaves: u64,
    /// Keys whose newest record is gone: a damaged record names a newer
    /// revision than any intact one (or there is no intact one).
    pub lost: Vec<LostKey>,
    /// Keys that may have a newer revision that is lost: a change after
    /// their newest record is missing and not known to be another key's
    /// (or their newest record was found only on a freed page at or below
    /// the compaction revision). One lost change can make many keys
    /// suspect.
    pub possibly_stale: Vec<LostKey>,
    /// Every key written, with the revision of its newest record.
    pub recovered: Vec<RecoveredKey>,
    /// Main revisions in (compaction, newest] of which no record survived:
    /// changes lost whose key is unknown.
    pub missing_revisions: u64,
    /// Those revisions as ranges (the first 1000).
    pub missing_ranges: Vec<(i64, i64)>,
    /// Of those, the revisions known to be a change of one particular key
    /// (a damaged record names it, the key's creation, a gap in its
    /// versions): history of that key lost, no other key made stale.
    pub missing_explained: u64,
    /// Whether the newest revisions are known to be complete: the `key`
    /// bucket's last leaf survived and holds the newest revision found.
    pub newest_revisions_known: bool,
    /// Whether nothing is known or suspected lost.
    pub complete: bool,
    /// With other sources (`--from`): each file and what it gave, the
    /// damaged file first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<SourceReport>,
    /// Revisions that sources hold with different bytes: left out.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conflicts: Vec<Conflict>,
}

/// One source of a salvage and what it gave.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceReport {
    /// The file.
    pub file: String,
    /// Whether its members bucket could be compared with the damaged
    /// file's (false: one of them was unreadable, or `--force-source`).
    pub cluster_checked: bool,
    /// Revisions written whose copy came from it (a revision several
    /// sources hold counts for the first: the damaged file, then the
    /// sources in the order given).
    pub revisions_written: u64,
    /// Recovered keys whose newest revision came from it.
    pub keys_newest: u64,
}

/// A revision that two sources hold with different bytes. Nothing says which
/// copy is right, so neither is written; its key is listed as lost.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Conflict {
    /// The main revision.
    pub revision: i64,
    /// The sub revision.
    pub sub: i64,
    /// The keys the copies name (escaped).
    pub keys: Vec<String>,
    /// The sources holding a copy.
    pub sources: Vec<String>,
}

/// Counts over the `key` bucket's records.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Records {
    /// Elements read from leaves of the `key` bucket (copies included).
    pub seen: u64,
    /// Distinct revisions that passed every check.
    pub intact: u64,
    /// Further copies of an intact revision (freed or orphaned pages).
    pub copies: u64,
    /// Elements left out, by reason.
    pub rejected: BTreeMap<String, u64>,
    /// Intact revisions at or below the compaction revision that compaction
    /// had removed (a key keeps at most one there).
    pub compacted: u64,
    /// Intact older revisions not kept as history: not provably contiguous
    /// with the newer ones kept.
    pub unchained: u64,
    /// Revisions written to the output's `key` bucket.
    pub written: u64,
    /// The newest main revision found.
    pub revision: i64,
    /// The compaction revision (meta's finishedCompactRev), when known.
    pub compact_revision: Option<i64>,
}

/// The keys recovered.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Keys {
    /// Distinct keys with a record written.
    pub recovered: u64,
    /// Of those, keys whose newest record is a put.
    pub live: u64,
    /// Of those, keys whose newest record is a deletion.
    pub deleted: u64,
    /// Older revisions written as history.
    pub history_revisions: u64,
}

/// Where a bucket of the output came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum BucketStatus {
    /// Read from the surviving tree (or inline in its root leaf), whole.
    Recovered,
    /// Read, but some of its elements were damaged.
    Partial,
    /// Found by its contents on a page no surviving tree reaches (may be an
    /// older copy).
    Scanned,
    /// Made up from what was found (meta: the newest revision as the
    /// consistent index).
    Derived,
    /// Not found: written empty.
    NotFound,
}

/// One bucket of the output.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BucketReport {
    /// The bucket's name.
    pub name: String,
    /// Where its content came from.
    pub status: BucketStatus,
    /// Entries written.
    pub entries: u64,
    /// Keys (escaped) left out because copies of the bucket found by their
    /// contents hold them with different values: nothing says which is
    /// newer.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conflicts: Vec<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Why a key is listed as lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum LostWhy {
    /// A damaged record names this key at a revision newer than any intact
    /// one (or there is no intact one).
    NewestDamaged,
    /// An intact revision was kept, but revisions after it are missing, so
    /// a newer one of this key may be lost.
    MayBeStale,
}

/// A key whose newest record is gone or may be.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LostKey {
    /// The key, escaped.
    pub key: String,
    /// Why.
    pub why: LostWhy,
    /// The newest revision any record (intact or not) names for it.
    pub newest_seen_revision: i64,
    /// The revision written for it, if any.
    pub recovered_revision: Option<i64>,
    /// Whether the revision written is a deletion.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub recovered_deleted: bool,
    /// The Kubernetes resource, for a key under `/registry`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// Its namespace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Its name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A key written to the output.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecoveredKey {
    /// The key, escaped.
    pub key: String,
    /// The revision of its newest record written.
    pub revision: i64,
    /// Whether that record is a deletion.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    /// The file that record came from (with `--from`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The Kubernetes resource, for a key under `/registry`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// Its namespace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Its name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}
