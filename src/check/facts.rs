//! What the rules judge, read from a snapshot: the `verify` report, and in
//! one pass over the live keys (on the other core, while `verify` runs) the
//! objects per resource (and per namespace), the namespaces, the objects a policy names,
//! Secrets stored unencrypted, the key names of encrypted values and, when a
//! rule asks, the values that do not decode (decoded on all cores). Only
//! figures and names are kept, never values.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;
use std::time::SystemTime;

use serde::Serialize;

use super::policy::{Policy, RequiredObject};
use crate::bolt::Db;
use crate::input::SnapshotFile;
use crate::kube::decrypt::Decryptor;
use crate::kube::deep::check_values;
use crate::kube::resource::parse_key;
use crate::kube::value::{Encoding, detect};
use crate::mvcc::keyspace::{KeySpace, Latest};
use crate::verify::{Report, verify};

/// At most this many undecodable keys are named (the count is exact).
const NAMED: usize = 10;

/// What the policy rules are judged on, gathered in one pass over the keys.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Facts {
    /// The file's size in bytes (decompressed).
    pub file_size: u64,
    /// The keyspace's revision.
    pub revision: i64,
    /// Live objects per resource (kubectl names).
    pub objects: BTreeMap<String, u64>,
    /// The namespaces the snapshot holds.
    pub namespaces: BTreeSet<String>,
    /// Live namespaced objects per namespace and resource (for the
    /// catalog's trend rules; not part of `check`'s JSON).
    #[serde(skip)]
    pub namespace_objects: BTreeMap<String, BTreeMap<String, u64>>,
    /// The CustomResourceDefinitions the snapshot holds (`plural.group`).
    #[serde(skip)]
    pub crds: BTreeSet<String>,
    /// Of the objects the policy requires, those present.
    #[serde(skip)]
    pub present: BTreeSet<RequiredObject>,
    /// Secrets stored unencrypted, per namespace.
    pub unencrypted_secrets: BTreeMap<String, u64>,
    /// Encrypted values per (provider, key name).
    pub encrypted: BTreeMap<String, u64>,
    /// KMS v2 values per key ID the plugin reported when it wrapped them.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub kms_key_ids: BTreeMap<String, u64>,
    /// Live values that do not decode (when a rule asked), and the first
    /// few keys with the reason.
    pub undecodable: u64,
    /// The first undecodable keys and why, at most ten.
    pub undecodable_keys: Vec<(String, String)>,
    /// Why the keys could not be read at all (the verify report says more).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unreadable: Option<String>,
}

/// A snapshot's facts and its `verify` report, read together.
pub struct Read {
    /// What `verify` found.
    pub report: Report,
    /// What the rules are judged on.
    pub facts: Facts,
    /// The file's modification time.
    pub modified: Option<SystemTime>,
}

/// Reads `file` for `policy` (see the module comment).
///
/// `done` is `verify`'s report when it was taken already, beside the
/// transfer of a remote object ([`crate::verify::open_verifying`]).
pub fn read(
    file: &SnapshotFile,
    done: Option<crate::verify::Report>,
    policy: &Policy,
    storage_prefix: &str,
) -> Read {
    let (report, facts) = rayon::join(
        || done.unwrap_or_else(|| verify(file)),
        || gather(file, policy, storage_prefix),
    );
    let facts = facts.unwrap_or_else(|e| Facts {
        unreadable: Some(e),
        ..Facts::default()
    });
    Read {
        modified: file.modified(),
        report,
        facts: Facts {
            file_size: file.bytes().len() as u64,
            ..facts
        },
    }
}

fn gather(file: &SnapshotFile, policy: &Policy, prefix: &str) -> Result<Facts, String> {
    let db = Db::open(file.db()).map_err(|e| e.to_string())?;
    let ks = KeySpace::open(&db).map_err(|e| e.to_string())?;
    let mut f = Facts {
        revision: ks.current_revision,
        ..Facts::default()
    };
    let required: Vec<RequiredObject> = policy
        .required_objects
        .iter()
        .filter_map(|o| RequiredObject::parse(o).ok())
        .collect();
    ks.latest(None, |l| {
        let Latest::Live(r) = l else {
            return ControlFlow::Continue(());
        };
        let Some(ok) = parse_key(r.kv.key, prefix) else {
            return ControlFlow::Continue(());
        };
        let resource = ok.qualified_resource();
        *f.objects.entry(resource.clone()).or_default() += 1;
        if let Some(ns) = &ok.namespace {
            let per = match f.namespace_objects.get_mut(ns.as_str()) {
                Some(per) => per,
                None => f.namespace_objects.entry(ns.clone()).or_default(),
            };
            match per.get_mut(resource.as_str()) {
                Some(n) => *n += 1,
                None => {
                    per.insert(resource.clone(), 1);
                }
            }
        }
        if ok.resource == "namespaces" && ok.namespace.is_none() {
            f.namespaces.insert(ok.name.clone());
        }
        let enc = detect(r.kv.value);
        if let Encoding::Encrypted { provider, key_name } = &enc {
            *f.encrypted
                .entry(format!("{provider}:{key_name}"))
                .or_default() += 1;
            if let Some(id) = crate::kube::decrypt::kms::describe(r.kv.value).and_then(|i| i.key_id)
            {
                *f.kms_key_ids.entry(id).or_default() += 1;
            }
        } else if ok.resource == "secrets" && ok.group.is_none() {
            *f.unencrypted_secrets
                .entry(ok.namespace.clone().unwrap_or_default())
                .or_default() += 1;
        }
        for q in &required {
            if (q.resource == resource || q.resource == ok.resource)
                && q.namespace == ok.namespace
                && q.name == ok.name
            {
                f.present.insert(q.clone());
            }
        }
        if ok.resource == "customresourcedefinitions" && ok.namespace.is_none() {
            f.crds.insert(ok.name.clone());
        }
        ControlFlow::Continue(())
    })
    .map_err(|e| e.to_string())?;
    if policy.values_decode {
        // `verify --deep`'s check: each value decodes and its name and
        // namespace agree with its key (encrypted values are not read).
        let decryptor = Decryptor::new(None, prefix);
        let found = check_values(&ks, &decryptor, prefix).map_err(|e| e.to_string())?;
        f.undecodable = found.problems.total();
        f.undecodable_keys = found
            .problems
            .items
            .iter()
            .take(NAMED)
            .map(|p| (p.key.clone().unwrap_or_default(), p.message.clone()))
            .collect();
    }
    Ok(f)
}
