//! What a catalog entry holds, and how it is read from a snapshot: figures
//! and names only (counts, revisions, sizes, IDs, member names and peer
//! URLs, resource and namespace names, labels), never a key's value.
//!
//! The entry is read from the same single pass `check` makes
//! ([`crate::check::facts::read`]: verify on one core, the live keys counted
//! on the other); the small cluster/members buckets are read beside it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::bolt::Db;
use crate::bolt::read;
use crate::check::facts::Read;
use crate::input::SnapshotFile;
use crate::verify::CheckStatus;

/// The version of the encoding of an [`Entry`]; an entry of another version
/// is refused with a clear error rather than guessed at.
pub const ENTRY_VERSION: u32 = 1;

/// A member as the snapshot's members bucket records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Member {
    /// The member ID, in hex.
    pub id: String,
    /// The member's name.
    pub name: String,
    /// The member's peer URLs.
    #[serde(rename = "peerURLs")]
    pub peer_urls: Vec<String>,
}

/// What `verify` said of the snapshot when it was added.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VerifyResult {
    /// Whether every check passed.
    pub passed: bool,
    /// Problems found by the failed checks (0 when it passed).
    pub problems: u64,
}

/// What a restore drill (`etcdsnap drill`, run by `catalog add --drill`)
/// said of the snapshot when it was added.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DrillResult {
    /// Whether every check of the drill passed.
    pub passed: bool,
    /// The etcd release that served it.
    pub etcd_version: String,
    /// The kube-apiserver that served its objects, when one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kube_apiserver_version: Option<String>,
    /// Each check that did not pass: `check: detail`.
    pub not_passed: Vec<String>,
}

/// What the catalog keeps of one snapshot: its identity, figures and verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Entry {
    /// [`ENTRY_VERSION`] when written.
    pub version: u32,
    /// sha256 of the whole (decompressed) snapshot file, as `sha256sum`
    /// prints it for an uncompressed one.
    pub sha256: String,
    /// The path the snapshot was added from.
    pub path: String,
    /// When it was added: seconds since the Unix epoch (UTC).
    pub added: i64,
    /// The labels given when it was added (its series).
    pub labels: BTreeMap<String, String>,
    /// Bytes of the (decompressed) file.
    pub file_size: u64,
    /// Bytes of the pages in use (the file less its free pages).
    pub db_size_in_use: Option<u64>,
    /// The snapshot's revision.
    pub revision: i64,
    /// The revision it is compacted at, if any.
    pub compacted_revision: Option<i64>,
    /// Distinct keys, and those whose newest revision is a put.
    pub total_keys: Option<u64>,
    /// Live keys at the revision, when the keyspace could be read.
    pub live_keys: Option<u64>,
    /// Derived from the member IDs, as etcd does at bootstrap.
    pub cluster_id: Option<String>,
    /// The members the snapshot records.
    pub members: Vec<Member>,
    /// Live objects per resource (kubectl names).
    pub objects: BTreeMap<String, u64>,
    /// Live namespaced objects per namespace and resource; a namespace with
    /// a Namespace object and nothing in it has an empty map.
    pub namespaces: BTreeMap<String, BTreeMap<String, u64>>,
    /// What `verify` said.
    pub verify: VerifyResult,
    /// A remote snapshot's URL and what pinned the object read (absent for
    /// a local file), so that `catalog add` of a prefix knows an object it
    /// added before without reading it again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<RemoteObject>,
    /// The restore drill's result, when `catalog add --drill` ran one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drill: Option<DrillResult>,
}

/// The object a remote entry was read from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RemoteObject {
    /// Its URL (redacted as outputs show it).
    pub url: String,
    /// The ETag it was pinned to, if the store gave one.
    pub etag: Option<String>,
    /// The version it was pinned to, if the store keeps versions.
    pub version: Option<String>,
    /// Its size in bytes as stored (before any decompression).
    pub size: u64,
}

impl RemoteObject {
    /// Whether a listed object is this one: the same URL and size, and the
    /// same ETag or the same version (one of them known on both sides).
    pub fn is(&self, url: &str, etag: Option<&str>, version: Option<&str>, size: u64) -> bool {
        let same = |a: &Option<String>, b: Option<&str>| a.is_some() && a.as_deref() == b;
        self.url == url
            && self.size == size
            && (same(&self.etag, etag) || same(&self.version, version))
    }
}

/// What `catalog check` needs of every entry to find series, baselines
/// and the highest revision; stored beside the entry, so that a check reads
/// whole entries only for the few it compares.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Head {
    /// [`ENTRY_VERSION`] when written.
    pub version: u32,
    /// sha256 of the snapshot file.
    pub sha256: String,
    /// The path it was added from.
    pub path: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// The snapshot's revision.
    pub revision: i64,
    /// The cluster ID derived from the members, if any.
    pub cluster_id: Option<String>,
    /// The members the snapshot records.
    pub members: Vec<Member>,
    /// Whether `verify` passed.
    pub verified: bool,
}

impl Entry {
    /// The part of the entry that series and trends are chosen by.
    pub fn head(&self) -> Head {
        Head {
            version: self.version,
            sha256: self.sha256.clone(),
            path: self.path.clone(),
            labels: self.labels.clone(),
            revision: self.revision,
            cluster_id: self.cluster_id.clone(),
            members: self.members.clone(),
            verified: self.verify.passed,
        }
    }

    /// The entry of a snapshot read by [`crate::check::facts::read`].
    pub fn from_read(
        file: &SnapshotFile,
        read: &Read,
        labels: BTreeMap<String, String>,
        added: i64,
    ) -> Entry {
        let (r, f) = (&read.report, &read.facts);
        let sha256 = match &r.summary.sha256 {
            Some(s) => s.clone(),
            None => crate::verify::hex(
                ring::digest::digest(&ring::digest::SHA256, file.bytes()).as_ref(),
            ),
        };
        let problems = r
            .failed_checks()
            .map(|c| c.problems.len() as u64 + c.omitted)
            .sum::<u64>()
            .max(u64::from(!r.passed));
        let db_size_in_use = match (&r.summary.pages, r.summary.page_size) {
            (Some(p), Some(size)) => Some(
                (2 + p.branch_pages + p.leaf_pages + p.overflow_pages + p.freelist_pages) * size,
            ),
            _ => None,
        };
        let ks = r.summary.keyspace.as_ref();
        let header = Db::open(file.db()).ok().and_then(|db| {
            let buckets = read::buckets(&db).ok()?;
            crate::inspect::header::header(&db, &buckets).ok()
        });
        let (cluster_id, members, compacted) = match header {
            Some(h) => (
                h.cluster_id,
                h.members
                    .into_iter()
                    .map(|m| Member {
                        id: m.id,
                        name: m.name,
                        peer_urls: m.peer_urls,
                    })
                    .collect(),
                h.compacted_revision,
            ),
            None => (None, Vec::new(), None),
        };
        let mut namespaces = f.namespace_objects.clone();
        for ns in &f.namespaces {
            namespaces.entry(ns.clone()).or_default();
        }
        Entry {
            version: ENTRY_VERSION,
            sha256,
            path: file.path().display().to_string(),
            added,
            labels,
            file_size: f.file_size,
            db_size_in_use,
            revision: if f.revision != 0 {
                f.revision
            } else {
                ks.map(|k| k.revision).unwrap_or(0)
            },
            compacted_revision: compacted.or_else(|| {
                r.summary
                    .meta
                    .as_ref()
                    .and_then(|m| m.effective_compact_revision())
            }),
            total_keys: ks.map(|k| k.keys),
            live_keys: ks.map(|k| k.live_keys),
            cluster_id,
            members,
            objects: f.objects.clone(),
            namespaces,
            verify: VerifyResult {
                passed: r.passed && r.checks.iter().all(|c| c.status != CheckStatus::Failed),
                problems: if r.passed { 0 } else { problems },
            },
            remote: file.remote_pin().map(|p| RemoteObject {
                url: file.path().display().to_string(),
                etag: p.etag.clone(),
                version: p.version.clone(),
                size: p.size,
            }),
            drill: None,
        }
    }

    /// Live objects in all resources.
    pub fn total_objects(&self) -> u64 {
        self.objects.values().sum()
    }
}

/// Parses `--label k=v`, strictly: a key of letters, digits and `._/-`
/// (starting with a letter or digit, at most 253 bytes), a value of
/// letters, digits and `._:/@+-` (at most 253 bytes; may be empty).
pub fn parse_label(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("label {s:?}: expected KEY=VALUE"))?;
    let key_ok = !k.is_empty()
        && k.len() <= 253
        && k.as_bytes()[0].is_ascii_alphanumeric()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._/-".contains(&b));
    if !key_ok {
        return Err(format!(
            "label {s:?}: the key must be letters, digits and ._/- (starting with a letter or digit, at most 253)"
        ));
    }
    let value_ok = v.len() <= 253
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:/@+-".contains(&b));
    if !value_ok {
        return Err(format!(
            "label {s:?}: the value must be letters, digits and ._:/@+- (at most 253)"
        ));
    }
    Ok((k.to_string(), v.to_string()))
}

/// Labels from repeated `--label` arguments; a key given twice is refused.
pub fn parse_labels(args: &[String]) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for a in args {
        let (k, v) = parse_label(a)?;
        if out.insert(k.clone(), v).is_some() {
            return Err(format!("label {k:?} given twice"));
        }
    }
    Ok(out)
}

/// Why an entry given to `catalog import-entries` is refused.
#[derive(Debug, Clone, thiserror::Error)]
pub enum InvalidEntry {
    /// Not of this version, or without a sha256 (64 lowercase hex digits).
    #[error("entry {0:?}: not an entry of version {ENTRY_VERSION} with a sha256")]
    Entry(String),
    /// A label that `--label` would refuse.
    #[error("{0}")]
    Label(String),
}

/// Whether each of `entries` (as `list -w json` prints them) may be added:
/// the first one that may not, in order.
pub fn check_entries(entries: &[Entry]) -> Result<(), InvalidEntry> {
    for e in entries {
        if e.version != ENTRY_VERSION
            || e.sha256.len() != 64
            || !e
                .sha256
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(InvalidEntry::Entry(e.sha256.clone()));
        }
        for (k, v) in &e.labels {
            parse_label(&format!("{k}={v}")).map_err(InvalidEntry::Label)?;
        }
    }
    Ok(())
}

/// Whether an entry carries every label of `filter`.
pub fn has_labels(e: &Entry, filter: &BTreeMap<String, String>) -> bool {
    filter.iter().all(|(k, v)| e.labels.get(k) == Some(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_strict() {
        assert_eq!(
            parse_label("env=prod").unwrap(),
            ("env".to_string(), "prod".to_string())
        );
        assert!(parse_label("app.kubernetes.io/part-of=x:y@z+1").is_ok());
        assert!(parse_label("env=").is_ok());
        for bad in ["env", "=x", "-a=b", "a b=c", "a=b c", "a=\u{7}", "a=é"] {
            assert!(parse_label(bad).is_err(), "{bad:?}");
        }
        assert!(parse_labels(&["a=1".into(), "a=2".into()]).is_err());
    }
}
