//! Namespace recovery's offline half: which objects of a snapshot make up a
//! namespace (or lie under a key prefix), in the order they must go back,
//! and whom each names as its owner.
//!
//! The order matters because of the garbage collector: an object whose
//! `metadata.ownerReferences` name a uid that no object in the cluster has is
//! deleted by it shortly after it appears. Writing owners before the objects
//! they own (the Namespace first, then a Deployment before its ReplicaSets
//! before their Pods) means that at every moment a dependent's owner is
//! already there. Owners that are not in the plan at all (filtered out by
//! `--resource`, cluster-scoped, or gone) are found in the snapshot when it
//! holds them, so that the live half (`live::namespace`) can ask the cluster
//! whether an object with that uid still exists.
//!
//! Values that do not decode (encrypted at rest without a key given, or
//! damaged) are still planned, as stored bytes go back unchanged; only their
//! uid and owners are unknown, which the plan says.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::ControlFlow;

use serde::Serialize;
use serde_json::Value as Json;

use super::redact::{is_secret_key, is_secret_key_any_prefix, value_is_secret};
use super::resource::{ObjectKey, ResourceRef, parse_key};
use super::value::decode;
use crate::mvcc::keyspace::{KeySpace, KeySpaceError, Latest};

/// Which objects to put back.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'q> {
    /// The objects of one namespace (all resources when `resources` is
    /// empty), and the Namespace object itself.
    Namespace {
        /// The namespace's name.
        name: &'q str,
        /// Only these resources (kubectl names).
        resources: &'q [ResourceRef],
    },
    /// Every live key under this prefix.
    KeyPrefix(&'q [u8]),
}

/// What to plan.
#[derive(Debug, Clone, Copy)]
pub struct Query<'q> {
    /// The objects.
    pub scope: Scope<'q>,
    /// The state at this revision (default: the snapshot's).
    pub revision: Option<i64>,
    /// The storage prefix (kube-apiserver's `--etcd-prefix`).
    pub prefix: &'q str,
}

/// One entry of `metadata.ownerReferences`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OwnerRef {
    /// The owner's apiVersion.
    pub api_version: String,
    /// The owner's kind.
    pub kind: String,
    /// The owner's name.
    pub name: String,
    /// The owner's uid: what the garbage collector looks for.
    pub uid: String,
}

/// One object to put back, as the snapshot holds it.
#[derive(Debug, Clone)]
pub struct Object<'a> {
    /// Its key.
    pub key: &'a [u8],
    /// Its stored bytes, written back unchanged.
    pub value: &'a [u8],
    /// The revision that last wrote it in the snapshot.
    pub mod_revision: i64,
    /// The lease it had (Events expire through one).
    pub lease: i64,
    /// Its place as resource / namespace / name, when the key reads as one.
    pub place: Option<ObjectKey>,
    /// `metadata.uid`, when the value decodes.
    pub uid: Option<String>,
    /// `metadata.ownerReferences`.
    pub owners: Vec<OwnerRef>,
    /// Whether it is a Secret (by its key or what its value says).
    pub secret: bool,
    /// Whether the value decoded (when not, uid and owners are unknown).
    pub decoded: bool,
}

impl Object<'_> {
    /// `resource/namespace/name` for reports, or the key when it does not
    /// read as an object.
    pub fn describe(&self) -> String {
        match &self.place {
            Some(p) => match &p.namespace {
                Some(ns) => format!("{}/{ns}/{}", p.qualified_resource(), p.name),
                None => format!("{}/{}", p.qualified_resource(), p.name),
            },
            None => String::from_utf8_lossy(self.key).into_owned(),
        }
    }
}

/// What to write, in order, and where owners outside it are.
#[derive(Debug, Clone, Default)]
pub struct Plan<'a> {
    /// The objects in write order: the Namespace object first, then each
    /// object after the objects of the plan that own it, then by key.
    pub objects: Vec<Object<'a>>,
    /// For each owner uid the objects name that the snapshot holds outside
    /// the plan, the key it is at.
    pub outside_owners: BTreeMap<String, Vec<u8>>,
    /// The places in the resources given of those that matched no object
    /// of the namespace.
    pub unmatched_resources: Vec<usize>,
    /// The revision the plan is of.
    pub revision: i64,
}

/// Why there is no plan.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The keyspace could not be read.
    #[error("{0}")]
    KeySpace(#[from] KeySpaceError),
    /// Nothing in the snapshot is in scope.
    #[error("{0}")]
    Empty(String),
}

/// The uid and owners of a decoded object.
fn meta(obj: &Json) -> (Option<String>, Vec<OwnerRef>) {
    let m = &obj["metadata"];
    let uid = m["uid"].as_str().map(str::to_string);
    let s = |v: &Json, f: &str| v[f].as_str().unwrap_or_default().to_string();
    let owners = m["ownerReferences"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|o| OwnerRef {
                    api_version: s(o, "apiVersion"),
                    kind: s(o, "kind"),
                    name: s(o, "name"),
                    uid: s(o, "uid"),
                })
                .collect()
        })
        .unwrap_or_default();
    (uid, owners)
}

/// The uid stored in `value`, when it decodes (for the live copy of an
/// owner).
pub fn uid_of(value: &[u8]) -> Option<String> {
    decode(value).ok().and_then(|o| meta(&o).0)
}

/// Whether a Namespace's stored `value` says it is being deleted
/// (`metadata.deletionTimestamp` set, or phase Terminating): the
/// timestamp, or the phase.
pub fn terminating(value: &[u8]) -> Option<String> {
    let o = decode(value).ok()?;
    if let Some(t) = o["metadata"]["deletionTimestamp"].as_str() {
        return Some(format!("deletionTimestamp {t}"));
    }
    (o["status"]["phase"].as_str() == Some("Terminating")).then(|| "phase Terminating".into())
}

/// Plans the put-back of what `q` names in `ks`.
pub fn plan<'a>(ks: &KeySpace<'_, 'a>, q: &Query<'_>) -> Result<Plan<'a>, PlanError> {
    let revision = q.revision.unwrap_or(ks.current_revision);
    let ns_key = match q.scope {
        Scope::Namespace { name, .. } => Some(format!(
            "{}/namespaces/{name}",
            q.prefix.trim_end_matches('/')
        )),
        Scope::KeyPrefix(_) => None,
    };
    let mut matched: BTreeSet<usize> = BTreeSet::new();
    // Every live object in scope (selected or not): the uids owners are
    // looked up in first.
    let mut chosen = Vec::new();
    let mut context: HashMap<String, Vec<u8>> = HashMap::new();
    ks.latest(q.revision, |l| {
        let Latest::Live(r) = l else {
            return ControlFlow::Continue(());
        };
        let key = r.kv.key;
        let place = parse_key(key, q.prefix);
        let (in_scope, selected) = match q.scope {
            Scope::Namespace { name, resources } => {
                if ns_key.as_deref().map(str::as_bytes) == Some(key) {
                    (true, true)
                } else if let Some(p) = place
                    .as_ref()
                    .filter(|p| p.namespace.as_deref() == Some(name))
                {
                    let hit = resources.iter().position(|r| r.matches(p));
                    if let Some(i) = hit {
                        matched.insert(i);
                    }
                    (true, resources.is_empty() || hit.is_some())
                } else {
                    (false, false)
                }
            }
            Scope::KeyPrefix(p) => {
                let s = key.starts_with(p);
                (s, s)
            }
        };
        if !in_scope {
            return ControlFlow::Continue(());
        }
        let decoded = decode(r.kv.value).ok();
        let (uid, owners) = decoded.as_ref().map(meta).unwrap_or_default();
        if let Some(u) = &uid {
            context.insert(u.clone(), key.to_vec());
        }
        if selected {
            let secret = is_secret_key(key, q.prefix)
                || is_secret_key_any_prefix(key)
                || value_is_secret(r.kv.value);
            chosen.push(Object {
                key,
                value: r.kv.value,
                mod_revision: r.kv.mod_revision,
                lease: r.kv.lease,
                place,
                uid,
                owners,
                secret,
                decoded: decoded.is_some(),
            });
        }
        ControlFlow::Continue(())
    })?;
    if chosen.is_empty() {
        let what = match q.scope {
            Scope::Namespace { name, .. } => format!("namespace {name:?}"),
            Scope::KeyPrefix(p) => format!("key prefix {}", crate::report::escape_bytes(p)),
        };
        return Err(PlanError::Empty(format!(
            "no live object of {what} at revision {revision}"
        )));
    }
    let unmatched_resources = match q.scope {
        Scope::Namespace { resources, .. } => resources
            .iter()
            .enumerate()
            .map(|(i, _)| i)
            .filter(|i| !matched.contains(i))
            .collect(),
        Scope::KeyPrefix(_) => Vec::new(),
    };
    let in_plan: HashMap<&str, usize> = chosen
        .iter()
        .enumerate()
        .filter_map(|(i, o)| o.uid.as_deref().map(|u| (u, i)))
        .collect();
    // Owners outside the plan: in scope but not selected, else anywhere in
    // the snapshot under the owner's name.
    let mut outside_owners = BTreeMap::new();
    let mut wanted: HashMap<String, BTreeSet<String>> = HashMap::new();
    for o in chosen.iter().flat_map(|o| &o.owners) {
        if in_plan.contains_key(o.uid.as_str()) {
            continue;
        }
        match context.get(&o.uid) {
            Some(k) => {
                outside_owners.insert(o.uid.clone(), k.clone());
            }
            None => {
                wanted
                    .entry(o.name.clone())
                    .or_default()
                    .insert(o.uid.clone());
            }
        }
    }
    if !wanted.is_empty() {
        ks.latest(q.revision, |l| {
            if let Latest::Live(r) = l
                && let Some(p) = parse_key(r.kv.key, q.prefix)
                && let Some(uids) = wanted.get(&p.name)
                && let Some(u) = uid_of(r.kv.value)
                && uids.contains(&u)
            {
                outside_owners.insert(u, r.kv.key.to_vec());
            }
            ControlFlow::Continue(())
        })?;
    }
    let objects = ordered(chosen, ns_key.as_deref().map(str::as_bytes));
    Ok(Plan {
        objects,
        outside_owners,
        unmatched_resources,
        revision,
    })
}

/// The objects with the Namespace object first, then each after its owners
/// in the plan (by depth of ownership), then by key. An ownership cycle
/// (which the API server would not let form) ends at the plan's size.
fn ordered<'a>(mut objects: Vec<Object<'a>>, ns_key: Option<&[u8]>) -> Vec<Object<'a>> {
    let index: HashMap<String, usize> = objects
        .iter()
        .enumerate()
        .filter_map(|(i, o)| o.uid.clone().map(|u| (u, i)))
        .collect();
    let n = objects.len();
    let mut depth = vec![0usize; n];
    // Relaxation: at most n rounds, each raising a dependent past its owners.
    for _ in 0..n {
        let mut changed = false;
        for i in 0..n {
            let d = objects[i]
                .owners
                .iter()
                .filter_map(|o| index.get(&o.uid))
                .filter(|&&j| j != i)
                .map(|&j| depth[j] + 1)
                .max()
                .unwrap_or(0)
                .min(n);
            if d > depth[i] {
                depth[i] = d;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| {
        let first = |i: usize| Some(objects[i].key) != ns_key;
        (first(a), depth[a], objects[a].key).cmp(&(first(b), depth[b], objects[b].key))
    });
    let mut slots: Vec<Option<Object<'a>>> = objects.drain(..).map(Some).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj<'a>(key: &'a str, uid: &str, owners: &[&str]) -> Object<'a> {
        Object {
            key: key.as_bytes(),
            value: b"",
            mod_revision: 1,
            lease: 0,
            place: None,
            uid: Some(uid.into()),
            owners: owners
                .iter()
                .map(|u| OwnerRef {
                    api_version: "v1".into(),
                    kind: "K".into(),
                    name: "n".into(),
                    uid: (*u).into(),
                })
                .collect(),
            secret: false,
            decoded: true,
        }
    }

    #[test]
    fn namespace_first_then_owners_before_dependents() {
        let objects = vec![
            obj("/registry/pods/ns/a", "pod", &["rs"]),
            obj("/registry/configmaps/ns/z", "cm", &[]),
            obj("/registry/replicasets/ns/a", "rs", &["dep"]),
            obj("/registry/deployments/ns/a", "dep", &[]),
            obj("/registry/namespaces/ns", "ns", &[]),
            obj("/registry/configmaps/ns/gone", "x", &["missing"]),
        ];
        let keys: Vec<&str> = ordered(objects, Some(b"/registry/namespaces/ns"))
            .iter()
            .map(|o| std::str::from_utf8(o.key).unwrap())
            .collect();
        assert_eq!(
            keys,
            [
                "/registry/namespaces/ns",
                "/registry/configmaps/ns/gone",
                "/registry/configmaps/ns/z",
                "/registry/deployments/ns/a",
                "/registry/replicasets/ns/a",
                "/registry/pods/ns/a",
            ]
        );
    }

    #[test]
    fn an_ownership_cycle_ends() {
        let objects = vec![obj("/a", "a", &["b"]), obj("/b", "b", &["a"])];
        assert_eq!(ordered(objects, None).len(), 2);
    }
}
