//! The `meta` bucket: consistent index, term, compaction revisions, confState,
//! storage version. Parsed strictly, with a problem for each malformed value.

use serde::Serialize;

use crate::mvcc::{Revision, RevisionKey};
use crate::problem::Problem;

/// What the meta bucket records: the applied index and term, the compaction revisions, the storage version.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MetaInfo {
    /// The last raft index applied to the backend.
    pub consistent_index: Option<u64>,
    /// The raft term of that index (etcd 3.5 and later).
    pub term: Option<u64>,
    /// The revision a compaction was scheduled at.
    pub scheduled_compact_revision: Option<i64>,
    /// The revision the last finished compaction ran at.
    pub finished_compact_revision: Option<i64>,
    /// The raft ConfState (voters, learners), as text.
    pub conf_state: Option<String>,
    /// The storage version (etcd 3.6 and later).
    pub storage_version: Option<String>,
}

fn be_u64(v: &[u8]) -> Option<u64> {
    let a: [u8; 8] = v.try_into().ok()?;
    Some(u64::from_be_bytes(a))
}

fn compact_revision(v: &[u8]) -> Result<i64, String> {
    let rk = RevisionKey::parse(v).map_err(|e| e.to_string())?;
    if rk.tombstone {
        return Err("compaction revision carries a tombstone mark".into());
    }
    Ok(rk.revision.main)
}

impl MetaInfo {
    /// Takes one entry of the `meta` bucket; returns a problem if its value is malformed.
    pub fn take(&mut self, key: &[u8], value: &[u8]) -> Option<Problem> {
        let bad = |msg: String| Some(Problem::new(msg).in_bucket("meta").with_key(key));
        match key {
            b"consistent_index" => match be_u64(value) {
                Some(n) => self.consistent_index = Some(n),
                None => return bad(format!("value is {} bytes (expected 8)", value.len())),
            },
            b"term" => match be_u64(value) {
                Some(n) => self.term = Some(n),
                None => return bad(format!("value is {} bytes (expected 8)", value.len())),
            },
            b"scheduledCompactRev" => match compact_revision(value) {
                Ok(r) => self.scheduled_compact_revision = Some(r),
                Err(e) => return bad(e),
            },
            b"finishedCompactRev" => match compact_revision(value) {
                Ok(r) => self.finished_compact_revision = Some(r),
                Err(e) => return bad(e),
            },
            b"confState" => {
                if let Err(e) = serde_json::from_slice::<serde_json::Value>(value) {
                    return bad(format!("confState is not JSON: {e}"));
                }
                self.conf_state = Some(String::from_utf8_lossy(value).into_owned());
            }
            b"storageVersion" => {
                let s = String::from_utf8_lossy(value).into_owned();
                let parts: Vec<&str> = s.split('.').collect();
                if parts.len() != 3 || parts.iter().any(|p| p.parse::<u32>().is_err()) {
                    return bad(format!("storageVersion {s:?} is not a version"));
                }
                self.storage_version = Some(s);
            }
            _ => {}
        }
        None
    }

    /// The revision etcd treats as compacted at start: the finished compaction,
    /// or the scheduled one when that is later (etcd resumes it).
    pub fn effective_compact_revision(&self) -> Option<i64> {
        match (
            self.scheduled_compact_revision,
            self.finished_compact_revision,
        ) {
            (Some(s), Some(f)) => Some(s.max(f)),
            (s, f) => s.or(f),
        }
    }

    /// The compaction revision below which history is guaranteed gone.
    pub fn finished(&self) -> Option<Revision> {
        self.finished_compact_revision
            .map(|main| Revision { main, sub: 0 })
    }
}
