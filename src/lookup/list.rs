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
use crate::mvcc::keyspace::{KeySpace, KeySpaceError, Latest};
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
    let prefix = query.prefix;
    if let Some(r) = query.revision {
        ks.check_revision(r)?;
    }
    let resource = query.resource.map(ResourceRef::parse);
    let mut check = match (query.resource, &resource) {
        (Some(typed), Some(r)) => ResourceCheck::new(typed, r),
        _ => None,
    };
    let key_prefix = query
        .key_prefix
        .map(str::to_string)
        .or_else(|| resource.as_ref().and_then(|r| r.key_prefix(prefix)));
    let mut rows = 0usize;
    ks.latest(query.revision, |latest| {
        let (deleted_at, r) = match &latest {
            Latest::Live(r) => (None, r),
            Latest::Deleted {
                last_live,
                deleted_at,
            } => (Some(deleted_at.main), last_live),
        };
        if let Some(c) = check.as_mut()
            && let Some(ok) = parse_key(r.kv.key, prefix)
        {
            c.observe(&ok);
        }
        if query.deleted != deleted_at.is_some() {
            return ControlFlow::Continue(());
        }
        if let Some(p) = &key_prefix
            && !r.kv.key.starts_with(p.as_bytes())
        {
            return ControlFlow::Continue(());
        }
        let ok = parse_key(r.kv.key, prefix);
        if let Some(res) = &resource
            && !ok.as_ref().is_some_and(|o| res.matches(o))
        {
            return ControlFlow::Continue(());
        }
        if let Some(ns) = query.namespace
            && ok.as_ref().and_then(|o| o.namespace.as_deref()) != Some(ns)
        {
            return ControlFlow::Continue(());
        }
        let (plaintext, error) = decrypted_encoding(decryptor, r.kv.key, r.kv.value);
        if let Some(e) = &error {
            decrypt_error(e);
        }
        rows += 1;
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
    })?;
    if rows == 0
        && let Some(c) = &check
    {
        c.check()?;
    }
    Ok(rows)
}
