//! `ls`'s listing: the latest state of each key (newest change first, as
//! etcd's revision order gives it), filtered by key prefix, resource and
//! namespace, live or deleted, as rows a report prints; with an
//! EncryptionConfiguration, what each encrypted value decrypts to.

use std::ops::ControlFlow;

use serde::Serialize;

use super::prepare::{ResourceCheck, UnknownResource, decrypted_encoding};
use crate::kube::decrypt::Decryptor;
use crate::kube::resource::{ResourceRef, parse_key};
use crate::kube::value::{Encoding, detect};
use crate::mvcc::keyspace::{KeySpace, KeySpaceError, Latest, Record};
use crate::mvcc::revision::Revision;

/// What to list.
#[derive(Debug, Clone, Default)]
pub struct Query<'q> {
    /// The state at this revision (default: the snapshot's).
    pub revision: Option<i64>,
    /// Keys deleted at that revision whose last live revision is still held,
    /// instead of the live keys.
    pub deleted: bool,
    /// Only keys starting with this.
    pub key_prefix: Option<&'q str>,
    /// Only this resource, as typed (kubectl names).
    pub resource: Option<&'q str>,
    /// Only this namespace.
    pub namespace: Option<&'q str>,
    /// The storage prefix (kube-apiserver's `--etcd-prefix`).
    pub prefix: &'q str,
}

/// One key of the listing.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    /// The key (lossy UTF-8).
    pub key: String,
    /// Its resource, group-qualified (`deployments.apps`), if a Kubernetes key.
    pub resource: Option<String>,
    /// Its namespace.
    pub namespace: Option<String>,
    /// Its name.
    pub name: Option<String>,
    /// The value's size.
    pub size: usize,
    /// The revision of the state shown.
    pub mod_revision: i64,
    /// Its version.
    pub version: i64,
    /// How the value is stored.
    #[serde(flatten)]
    pub encoding: Encoding,
    /// With --encryption-config: the decrypted value's encoding.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plaintext: Option<&'static str>,
    /// With --encryption-config: why the value did not decrypt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decrypt_error: Option<String>,
    /// For a deleted key: the deletion's revision.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<i64>,
    /// Its lease (0: none).
    #[serde(skip_serializing_if = "is_zero")]
    pub lease: i64,
    /// The revision of the state shown, main and sub.
    #[serde(skip)]
    pub revision: Revision,
    /// In a salvaged view: where the record came from (`tree`, `page N`,
    /// or a source's name), set by the caller.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// Why a listing stopped.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    /// The keyspace could not be read (or the revision is not there).
    #[error("{0}")]
    KeySpace(#[from] KeySpaceError),
    /// Nothing listed, and the resource is neither built in nor in the snapshot.
    #[error(transparent)]
    Unknown(#[from] UnknownResource),
}

impl Query<'_> {
    /// The key prefix every listed key has: the one given, else the
    /// resource's (`/registry/deployments/` for `--resource deploy`).
    /// A lookup through a key index gathers the keys under it
    /// ([`list_records`]).
    pub fn key_prefix(&self) -> Option<String> {
        self.key_prefix.map(str::to_string).or_else(|| {
            self.resource
                .map(ResourceRef::parse)
                .and_then(|r| r.key_prefix(self.prefix))
        })
    }
}

/// Lists the keys `query` selects, newest change first: each row goes to
/// `row` as soon as it is known (`Break` stops the listing); each value that
/// does not decrypt is told to `decrypt_error` first. Returns the rows given.
pub fn list(
    ks: &KeySpace<'_, '_>,
    query: &Query<'_>,
    decryptor: &Decryptor,
    row: &mut dyn FnMut(Row) -> ControlFlow<()>,
    decrypt_error: &mut dyn FnMut(&str),
) -> Result<usize, ListError> {
    if let Some(r) = query.revision {
        ks.check_revision(r)?;
    }
    let mut lister = Lister::new(query, decryptor);
    ks.latest(query.revision, |latest| {
        lister.take(&latest, row, decrypt_error)
    })?;
    if let Some(c) = lister.unlisted_resource() {
        c.check()?;
    }
    Ok(lister.rows)
}

/// The rows of a listing made at once ([`list_records`]).
#[derive(Debug, Default)]
pub struct Listed {
    /// The rows, newest change first.
    pub rows: Vec<Row>,
    /// Why values did not decrypt, in the order met.
    pub decrypt_errors: Vec<String>,
}

/// [`list`] from the records of some keys, each key's oldest first (what a
/// lookup through a key index gathers): the same rows in the same order,
/// provided `records` holds every record of every key under
/// [`Query::key_prefix`]. `Ok(None)` when those keys cannot answer alone —
/// nothing listed and a resource that is neither built in nor seen among
/// them — and then nothing was given to `row`: the caller lists from the
/// whole keyspace, which may know the resource.
pub fn list_records(
    ks: &KeySpace<'_, '_>,
    records: &[Record<'_>],
    query: &Query<'_>,
    decryptor: &Decryptor,
) -> Result<Option<Listed>, ListError> {
    let at = query.revision.unwrap_or(ks.current_revision);
    ks.check_revision(at)?;
    let mut lister = Lister::new(query, decryptor);
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    for latest in latest_of(records, at) {
        // Never breaks: every row is kept.
        let _ = lister.take(
            &latest,
            &mut |r| {
                rows.push(r);
                ControlFlow::Continue(())
            },
            &mut |e| errors.push(e.to_string()),
        );
    }
    if lister.unlisted_resource().is_some_and(|c| !c.known()) {
        return Ok(None);
    }
    Ok(Some(Listed {
        rows,
        decrypt_errors: errors,
    }))
}

/// Each key's state at revision `at` from its records, newest change first
/// as [`KeySpace::latest`] streams them: a key whose newest record at `at`
/// is a put is live; one whose newest is a tombstone is deleted at the
/// newest tombstone, shown with the newest put before it (none: not
/// listed). The order is that of the record shown (for a deleted key, its
/// last put), newest first.
fn latest_of<'a>(records: &[Record<'a>], at: i64) -> Vec<Latest<'a>> {
    let mut by_key: Vec<&Record<'a>> = records.iter().filter(|r| r.revision.main <= at).collect();
    by_key.sort_by(|a, b| a.kv.key.cmp(b.kv.key).then(b.revision.cmp(&a.revision)));
    let mut out = Vec::new();
    for same in by_key.chunk_by(|a, b| a.kv.key == b.kv.key) {
        let newest = same[0];
        if !newest.tombstone {
            out.push(Latest::Live(*newest));
        } else if let Some(put) = same.iter().find(|r| !r.tombstone) {
            out.push(Latest::Deleted {
                last_live: **put,
                deleted_at: newest.revision,
            });
        }
    }
    out.sort_by_key(|l| std::cmp::Reverse(l.record().revision));
    out
}

/// The filters of a listing and the rows it made, one key state at a time.
struct Lister<'q, 'd> {
    query: &'q Query<'q>,
    decryptor: &'d Decryptor,
    resource: Option<ResourceRef>,
    check: Option<ResourceCheck>,
    key_prefix: Option<String>,
    rows: usize,
}

impl<'q, 'd> Lister<'q, 'd> {
    fn new(query: &'q Query<'q>, decryptor: &'d Decryptor) -> Lister<'q, 'd> {
        let resource = query.resource.map(ResourceRef::parse);
        let check = match (query.resource, &resource) {
            (Some(typed), Some(r)) => ResourceCheck::new(typed, r),
            _ => None,
        };
        Lister {
            query,
            decryptor,
            resource,
            check,
            key_prefix: query.key_prefix(),
            rows: 0,
        }
    }

    /// The check of a custom resource when nothing was listed: its
    /// [`ResourceCheck::check`] then decides.
    fn unlisted_resource(&self) -> Option<&ResourceCheck> {
        self.check.as_ref().filter(|_| self.rows == 0)
    }

    /// Takes one key's state: a row when the query selects it.
    fn take(
        &mut self,
        latest: &Latest<'_>,
        row: &mut dyn FnMut(Row) -> ControlFlow<()>,
        decrypt_error: &mut dyn FnMut(&str),
    ) -> ControlFlow<()> {
        let query = self.query;
        let prefix = query.prefix;
        let (deleted_at, r) = match latest {
            Latest::Live(r) => (None, r),
            Latest::Deleted {
                last_live,
                deleted_at,
            } => (Some(deleted_at.main), last_live),
        };
        if let Some(c) = self.check.as_mut()
            && let Some(ok) = parse_key(r.kv.key, prefix)
        {
            c.observe(&ok);
        }
        if query.deleted != deleted_at.is_some() {
            return ControlFlow::Continue(());
        }
        if let Some(p) = &self.key_prefix
            && !r.kv.key.starts_with(p.as_bytes())
        {
            return ControlFlow::Continue(());
        }
        let ok = parse_key(r.kv.key, prefix);
        if let Some(res) = &self.resource
            && !ok.as_ref().is_some_and(|o| res.matches(o))
        {
            return ControlFlow::Continue(());
        }
        if let Some(ns) = query.namespace
            && ok.as_ref().and_then(|o| o.namespace.as_deref()) != Some(ns)
        {
            return ControlFlow::Continue(());
        }
        let (plaintext, error) = decrypted_encoding(self.decryptor, r.kv.key, r.kv.value);
        if let Some(e) = &error {
            decrypt_error(e);
        }
        self.rows += 1;
        row(Row {
            key: String::from_utf8_lossy(r.kv.key).into_owned(),
            resource: ok.as_ref().map(|o| o.qualified_resource()),
            namespace: ok.as_ref().and_then(|o| o.namespace.clone()),
            name: ok.as_ref().map(|o| o.name.clone()),
            size: r.kv.value.len(),
            mod_revision: r.revision.main,
            version: r.kv.version,
            encoding: detect(r.kv.value),
            plaintext,
            decrypt_error: error,
            deleted_at,
            lease: r.kv.lease,
            revision: r.revision,
            from: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bolt::Db;
    use crate::input::SnapshotFile;

    fn shown(rows: &[Row]) -> Vec<String> {
        rows.iter()
            .map(|r| format!("{:?} {}", r.revision, serde_json::json!(r)))
            .collect()
    }

    /// A listing from the records of the keys under its prefix equals the
    /// listing of the whole keyspace, row for row and in order, for every
    /// fixture (3.4–3.7: compacted, deleted and recreated keys), live and
    /// deleted, at the snapshot's revision and at older ones.
    #[test]
    fn records_under_the_prefix_list_as_the_whole_keyspace_does() {
        let decryptor = Decryptor::new(None, "/registry");
        let mut compared = 0;
        for v in ["3.4.23", "3.5.1", "3.6.16", "3.7.3"] {
            let path = format!("fixtures/etcd-{v}.db");
            let file = SnapshotFile::open(path.as_ref()).expect("fixture");
            let db = Db::open(file.db()).expect("db");
            let ks = KeySpace::open(&db).expect("keyspace");
            let cur = ks.current_revision;
            let low = ks.compact_revision.unwrap_or(1).max(1);
            for prefix in [
                "/registry/",
                "/registry/configmaps/",
                "/registry/configmaps/bulk/",
                "/",
            ] {
                let records = ks
                    .collect(|kv| kv.key.starts_with(prefix.as_bytes()))
                    .expect("records");
                for deleted in [false, true] {
                    for revision in [None, Some(low), Some((low + cur) / 2), Some(cur - 1)] {
                        let q = Query {
                            revision,
                            deleted,
                            key_prefix: Some(prefix),
                            prefix: "/registry",
                            ..Query::default()
                        };
                        let mut whole = Vec::new();
                        list(
                            &ks,
                            &q,
                            &decryptor,
                            &mut |r| {
                                whole.push(r);
                                ControlFlow::Continue(())
                            },
                            &mut |_| {},
                        )
                        .expect("list");
                        let rows = list_records(&ks, &records, &q, &decryptor)
                            .expect("list_records")
                            .expect("answers")
                            .rows;
                        assert_eq!(
                            shown(&rows),
                            shown(&whole),
                            "{v} {prefix} {deleted} {revision:?}"
                        );
                        compared += whole.len();
                    }
                }
            }
        }
        assert!(compared > 100, "{compared} rows compared");
    }
}
