//! `verify --deep`'s `kube-values` check: every live value under the storage
//! prefix is a Kubernetes object that decodes (after decryption when an
//! encryption config is given), and its `metadata.name` and
//! `metadata.namespace` agree with its key — what the API server needs to
//! serve it. Values are decoded on all cores in chunks bounded by what their
//! decoding may build ([`super::budget`]), as `get --all` decodes them.
//! Protobuf values, nearly all of a cluster, are checked by a walk of the wire
//! that builds nothing ([`super::validate`]); what it is unsure of, and JSON
//! and CBOR values, are decoded in full.

use std::ops::ControlFlow;

use rayon::prelude::*;
use serde_json::Value;

use super::budget::{CHUNK_BUDGET, MAX_DECODE_THREADS, chunks_by_cost, drop_deep, worst_case};
use super::decrypt::{DecryptError, Decryptor};
use super::resource::{ObjectKey, parse_key};
use super::validate::{Fast, check_protobuf};
use super::value::{PROTOBUF_MAGIC, decode_checked};
use crate::mvcc::keyspace::{KeySpace, KeySpaceError, Latest, Record};
use crate::problem::{Problem, Problems};
use crate::verify::{Check, CheckStatus};

/// The check's name in reports.
pub const NAME: &str = "kube-values";

/// What the walk found, before it becomes a [`Check`].
#[derive(Debug, Default)]
pub struct Findings {
    /// Values that do not decode or do not match their keys.
    pub problems: Problems,
    /// Live values under the prefix that were decoded.
    pub checked: u64,
    /// Of those, values that were decrypted first.
    pub decrypted: u64,
    /// Encrypted values that could not be checked: no config given.
    pub encrypted_without_config: u64,
    /// KMS values (their data key is in the external KMS).
    pub kms: u64,
    /// Live keys outside the storage prefix (not Kubernetes objects).
    pub outside: u64,
}

/// What one value gave.
enum One {
    Decoded { decrypted: bool },
    NoConfig,
    Kms,
    Problem(Problem),
}

/// Checks every live value of the keyspace as a Kubernetes object.
pub fn check_values(
    ks: &KeySpace<'_, '_>,
    decryptor: &Decryptor,
    prefix: &str,
) -> Result<Findings, KeySpaceError> {
    let mut findings = Findings::default();
    let mut records: Vec<(Record<'_>, ObjectKey)> = Vec::new();
    ks.latest(None, |l| {
        if let Latest::Live(r) = l {
            match parse_key(r.kv.key, prefix) {
                Some(ok) => records.push((r, ok)),
                None => findings.outside += 1,
            }
        }
        ControlFlow::Continue(())
    })?;
    // Newest change first, as the keyspace streams them (sorting 200k keys
    // that point into the file cost more than checking them); the problems
    // kept are sorted by key at the end.
    let threads = rayon::current_num_threads().min(MAX_DECODE_THREADS);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .ok();
    let cost = |(r, _): &(Record<'_>, ObjectKey)| worst_case(r.kv.value.len());
    for chunk in chunks_by_cost(&records, cost, CHUNK_BUDGET, 256) {
        let run = || -> Vec<One> {
            chunk
                .par_iter()
                .map(|(r, ok)| one(r, ok, decryptor))
                .collect()
        };
        let results = match &pool {
            Some(p) => p.install(run),
            None => run(),
        };
        for o in results {
            match o {
                One::Decoded { decrypted } => {
                    findings.checked += 1;
                    findings.decrypted += u64::from(decrypted);
                }
                One::NoConfig => findings.encrypted_without_config += 1,
                One::Kms => findings.kms += 1,
                One::Problem(p) => {
                    findings.checked += 1;
                    findings.problems.push(p);
                }
            }
        }
    }
    findings
        .problems
        .items
        .sort_by(|a, b| a.key.as_deref().cmp(&b.key.as_deref()));
    Ok(findings)
}

fn one(r: &Record<'_>, ok: &ObjectKey, decryptor: &Decryptor) -> One {
    let at = |msg: String| {
        One::Problem(
            Problem::new(format!("revision {}: {msg}", r.revision.main)).with_key(r.kv.key),
        )
    };
    let plain = match decryptor.plaintext(r.kv.key, r.kv.value) {
        Ok(p) => p,
        Err(DecryptError::NoConfig { .. }) => return One::NoConfig,
        Err(DecryptError::Kms { .. }) => return One::Kms,
        // The error names the key already; the problem's location does too.
        Err(e) => return at(reason(&e)),
    };
    let decrypted = plain.via.is_some();
    if plain.bytes.starts_with(PROTOBUF_MAGIC)
        && let Fast::Decodes { name, namespace } = check_protobuf(&plain.bytes)
    {
        return match mismatch(&name, &namespace, ok) {
            Some(m) => at(m),
            None => One::Decoded { decrypted },
        };
    }
    let decoded = match decode_checked(&plain.bytes) {
        Ok(d) => d,
        Err(e) => {
            let how = plain
                .via
                .as_ref()
                .map(|(p, k)| format!(" (decrypted with {p} key {k:?})"))
                .unwrap_or_default();
            return at(format!("does not decode{how}: {e}"));
        }
    };
    let meta = decoded.object.get("metadata");
    let field = |f: &str| meta.and_then(|m| m.get(f)).and_then(Value::as_str);
    let mismatch = mismatch(
        field("name").unwrap_or(""),
        field("namespace").unwrap_or(""),
        ok,
    );
    drop_deep(decoded.object);
    match mismatch {
        Some(m) => at(m),
        None => One::Decoded { decrypted },
    }
}

/// The error's text without the key it starts with (the problem names it).
fn reason(e: &DecryptError) -> String {
    let text = e.to_string();
    match text.split_once(": ") {
        Some((_, rest)) => rest.to_string(),
        None => text,
    }
}

/// How the object's name or namespace disagrees with its key, if it does.
fn mismatch(name: &str, namespace: &str, key: &ObjectKey) -> Option<String> {
    let mut out = Vec::new();
    // The API server's own allocator and lease records carry no name.
    let internal =
        key.group.is_none() && super::resource::INTERNAL.contains(&key.resource.as_str());
    if name != key.name && !(internal && name.is_empty()) {
        out.push(format!(
            "metadata.name is {name:?} but the key names {:?}",
            key.name
        ));
    }
    let key_ns = key.namespace.as_deref().unwrap_or("");
    if namespace != key_ns {
        out.push(match &key.namespace {
            Some(ns) => format!("metadata.namespace is {namespace:?} but the key says {ns:?}"),
            None => format!(
                "metadata.namespace is {namespace:?} but the key is a cluster-scoped object's"
            ),
        });
    }
    (!out.is_empty()).then(|| out.join("; "))
}

/// The check as `verify` reports it.
pub fn kube_values_check(
    ks: Result<KeySpace<'_, '_>, KeySpaceError>,
    decryptor: &Decryptor,
    prefix: &str,
) -> Check {
    let skipped = |why: String| Check {
        name: NAME,
        status: CheckStatus::Skipped,
        detail: why,
        problems: Vec::new(),
        omitted: 0,
    };
    let ks = match ks {
        Ok(ks) => ks,
        Err(e) => return skipped(format!("the keyspace cannot be read: {e}")),
    };
    let f = match check_values(&ks, decryptor, prefix) {
        Ok(f) => f,
        Err(e) => return skipped(format!("the keyspace cannot be read: {e}")),
    };
    let mut detail = format!(
        "{} live objects under {prefix} decode{} and match their keys",
        f.checked,
        if f.decrypted > 0 {
            format!(" ({} after decryption)", f.decrypted)
        } else {
            String::new()
        }
    );
    let mut unchecked = Vec::new();
    if f.encrypted_without_config > 0 {
        unchecked.push(format!(
            "{} encrypted (no --encryption-config)",
            f.encrypted_without_config
        ));
    }
    if f.kms > 0 {
        unchecked.push(format!("{} KMS-encrypted (need the KMS plugin)", f.kms));
    }
    if !unchecked.is_empty() {
        detail.push_str(&format!("; not checked: {}", unchecked.join(", ")));
    }
    if f.problems.is_empty() {
        return Check {
            name: NAME,
            status: CheckStatus::Passed,
            detail,
            problems: Vec::new(),
            omitted: 0,
        };
    }
    let n = f.problems.total();
    Check {
        name: NAME,
        status: CheckStatus::Failed,
        detail: format!(
            "{n} {} of {} live objects: values that do not decode or do not match their keys",
            if n == 1 { "problem" } else { "problems" },
            f.checked
        ),
        problems: f.problems.items,
        omitted: f.problems.omitted,
    }
}

/// The kube-values check stopped without a result (its thread panicked).
#[derive(Debug, Clone, thiserror::Error)]
#[error("the kube-values check stopped unexpectedly")]
pub struct DeepStopped;

/// `verify`'s report of `file`, with the kube-values check added when `deep`:
/// it reads the file on the other cores while `verify` reads it on one (a
/// reader of the file never trusts what it has not checked), and a failure of
/// it fails the report.
///
/// `done` is the report when it was taken already, beside the transfer of a
/// remote object ([`crate::verify::open_verifying`]).
pub fn verify_with_values(
    file: &crate::input::SnapshotFile,
    done: Option<crate::verify::Report>,
    deep: bool,
    decryptor: &Decryptor,
    prefix: &str,
) -> Result<crate::verify::Report, DeepStopped> {
    let (mut report, values) = std::thread::scope(|s| {
        let values = deep.then(|| s.spawn(|| values_of_file(file, decryptor, prefix)));
        let report = done.unwrap_or_else(|| crate::verify::verify(file));
        (report, values.map(|h| h.join()))
    });
    if let Some(values) = values {
        report.checks.push(values.map_err(|_| DeepStopped)?);
        report.passed = report
            .checks
            .iter()
            .all(|c| c.status != CheckStatus::Failed);
    }
    Ok(report)
}

/// The kube-values check of a file, or why it could not run.
fn values_of_file(file: &crate::input::SnapshotFile, decryptor: &Decryptor, prefix: &str) -> Check {
    match crate::bolt::Db::open(file.db()) {
        Ok(db) => kube_values_check(KeySpace::open(&db), decryptor, prefix),
        Err(_) => Check {
            name: NAME,
            status: CheckStatus::Skipped,
            detail: "skipped: the bbolt file cannot be opened".into(),
            problems: Vec::new(),
            omitted: 0,
        },
    }
}
