//! The per-key folds of [`super::walk`] turned into what a person triaging a
//! cluster reads: usage per resource and per namespace, the largest objects,
//! events, which keys hang on leases, and the security figures (Secrets in
//! clear, encrypted values per provider and key name, values that do not
//! decode). Computed on all cores; each value is only looked at, never kept.

use std::collections::{BTreeMap, HashMap};

use rayon::prelude::*;
use serde::Serialize;

use super::walk::{Folds, KeyFold};
use crate::kube::resource::{ObjectKey, parse_key};
use crate::kube::value::{DecodeError, Encoding, detect, parse_unknown};

/// Live objects and history of a resource or namespace.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    /// Live objects.
    pub live_objects: u64,
    /// Value bytes of the live objects (what `ls` shows as SIZE).
    pub live_bytes: u64,
    /// Stored revisions other than the live one (older values, tombstones,
    /// deleted keys).
    pub history_revisions: u64,
    /// Value bytes of those revisions.
    pub history_bytes: u64,
    /// The largest live object.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub largest: Option<ObjectSize>,
}

impl Usage {
    fn add(&mut self, o: &Usage) {
        self.live_objects += o.live_objects;
        self.live_bytes += o.live_bytes;
        self.history_revisions += o.history_revisions;
        self.history_bytes += o.history_bytes;
        if let Some(l) = &o.largest {
            self.offer(l);
        }
    }
    fn offer(&mut self, o: &ObjectSize) {
        if self
            .largest
            .as_ref()
            .is_none_or(|l| (o.bytes, &l.key) > (l.bytes, &o.key))
        {
            self.largest = Some(o.clone());
        }
    }
    /// Adds `o`'s counts (not its largest object).
    pub fn add_counts(&mut self, o: &Usage) {
        self.live_objects += o.live_objects;
        self.live_bytes += o.live_bytes;
        self.history_revisions += o.history_revisions;
        self.history_bytes += o.history_bytes;
    }
    /// Live and history bytes together.
    pub fn total_bytes(&self) -> u64 {
        self.live_bytes + self.history_bytes
    }
}

/// One object's stored size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectSize {
    /// The etcd key.
    pub key: String,
    /// Its resource, when the key is an object's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// Its namespace, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Bytes of its value.
    pub bytes: u64,
}

/// What Kubernetes events take.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Events {
    /// Live Event objects.
    pub live_objects: u64,
    /// Value bytes of those.
    pub live_bytes: u64,
    /// Stored revisions of event keys, live and past.
    pub revisions: u64,
    /// Bytes the events' revisions take in the key bucket (record and key).
    pub stored_bytes: u64,
}

/// Live values encrypted with one provider and key name.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Encrypted {
    /// The provider (`aescbc`, `aesgcm`, `secretbox`, `kms`).
    pub provider: String,
    /// The key name the values name (for KMS, the provider's name).
    pub key_name: String,
    /// KMS v2: the key ID the plugin reported when it wrapped their data key
    /// (which KMS key must still exist to read them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// How many live values.
    pub values: u64,
}

/// A live value that does not decode, and why.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Undecodable {
    /// The etcd key.
    pub key: String,
    /// Why it does not decode.
    pub reason: String,
}

/// The security figures: Secrets stored unencrypted, encryption keys in use, undecodable values.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Security {
    /// Live Secrets stored without encryption, per namespace.
    pub unencrypted_secrets: BTreeMap<String, u64>,
    /// Live values encrypted at rest, per provider and key name.
    pub encrypted: Vec<Encrypted>,
    /// Live values under the prefix that do not decode (count).
    pub undecodable_values: u64,
    /// The first of them, by key.
    pub undecodable: Vec<Undecodable>,
}

/// The figures of the keyspace (restricted to one namespace if asked).
#[derive(Debug, Clone, Default)]
pub struct Figures {
    /// Per resource.
    pub resources: HashMap<String, Usage>,
    /// Per namespace.
    pub namespaces: HashMap<String, Usage>,
    /// The largest live objects, largest first.
    pub largest: Vec<ObjectSize>,
    /// What events take.
    pub events: Events,
    /// Live keys per lease ID.
    pub lease_keys: HashMap<i64, u64>,
    /// Live Secrets stored unencrypted, per namespace.
    pub unencrypted_secrets: BTreeMap<String, u64>,
    /// Live encrypted values per (provider, key name).
    pub encrypted: BTreeMap<(String, String, Option<String>), u64>,
    /// Live values that do not decode.
    pub undecodable_values: u64,
    /// The first of those, with why.
    pub undecodable: Vec<Undecodable>,
    /// Per resource and namespace (none: cluster-scoped): what the space
    /// map draws.
    pub cells: HashMap<(String, Option<String>), Usage>,
    top: usize,
}

/// Why a live value under the prefix does not decode: its envelope (protobuf),
/// its syntax (JSON) or its encoding (none known). CBOR and encrypted values
/// are not opened here.
pub fn undecodable(value: &[u8]) -> Option<String> {
    match detect(value) {
        Encoding::Protobuf => match parse_unknown(value) {
            Err(e) => Some(e.to_string()),
            Ok(u) if u.kind.is_empty() => {
                Some(DecodeError::Envelope("the envelope names no kind".into()).to_string())
            }
            Ok(_) => None,
        },
        Encoding::Json => serde_json::from_slice::<serde::de::IgnoredAny>(value)
            .err()
            .map(|e| DecodeError::Json(e.to_string()).to_string()),
        Encoding::Cbor | Encoding::Encrypted { .. } => None,
        Encoding::Other => Some(DecodeError::NotAnObject.to_string()),
    }
}

/// The resource name of keys that are not Kubernetes objects.
pub const OTHER_KEYS: &str = "(other keys)";
/// Examples of undecodable values kept.
const UNDECODABLE_EXAMPLES: usize = 20;

impl Figures {
    fn new(top: usize) -> Figures {
        Figures {
            top,
            ..Figures::default()
        }
    }

    fn take(&mut self, key: &[u8], f: &KeyFold<'_>, ok: Option<ObjectKey>) {
        let live = !f.tombstone;
        let live_bytes = if live { f.value.len() as u64 } else { 0 };
        let usage = Usage {
            live_objects: u64::from(live),
            live_bytes,
            history_revisions: u64::from(f.revisions) - u64::from(live),
            history_bytes: f.value_bytes - live_bytes,
            largest: None,
        };
        let resource = ok.as_ref().map(ObjectKey::qualified_resource);
        let namespace = ok.as_ref().and_then(|o| o.namespace.clone());
        let size = live.then(|| ObjectSize {
            key: String::from_utf8_lossy(key).into_owned(),
            resource: resource.clone(),
            namespace: namespace.clone(),
            bytes: live_bytes,
        });
        let r = self
            .resources
            .entry(resource.clone().unwrap_or_else(|| OTHER_KEYS.into()))
            .or_default();
        r.add(&usage);
        let cell = self
            .cells
            .entry((
                resource.clone().unwrap_or_else(|| OTHER_KEYS.into()),
                namespace.clone(),
            ))
            .or_default();
        cell.add(&usage);
        if let Some(s) = &size {
            cell.offer(s);
        }
        if let Some(s) = &size {
            r.offer(s);
        }
        if let Some(ns) = &namespace {
            let n = self.namespaces.entry(ns.clone()).or_default();
            n.add(&usage);
            if let Some(s) = &size {
                n.offer(s);
            }
        }
        if ok.as_ref().is_some_and(|o| o.resource == "events") {
            self.events.live_objects += usage.live_objects;
            self.events.live_bytes += usage.live_bytes;
            self.events.revisions += u64::from(f.revisions);
            self.events.stored_bytes += f.element_bytes;
        }
        if !live {
            return;
        }
        if f.lease != 0 {
            *self.lease_keys.entry(f.lease).or_default() += 1;
        }
        if let Some(s) = size {
            self.offer_top(s);
        }
        let Some(ok) = ok else { return };
        match detect(f.value) {
            Encoding::Encrypted { provider, key_name } => {
                let key_id = crate::kube::decrypt::kms::describe(f.value).and_then(|i| i.key_id);
                *self
                    .encrypted
                    .entry((provider, key_name, key_id))
                    .or_default() += 1;
            }
            _ if ok.resource == "secrets" && ok.group.is_none() => {
                *self
                    .unencrypted_secrets
                    .entry(ok.namespace.clone().unwrap_or_default())
                    .or_default() += 1;
            }
            _ => {}
        }
        if let Some(reason) = undecodable(f.value) {
            self.undecodable_values += 1;
            self.undecodable.push(Undecodable {
                key: String::from_utf8_lossy(key).into_owned(),
                reason,
            });
            self.trim_undecodable();
        }
    }

    fn offer_top(&mut self, s: ObjectSize) {
        if self.top == 0 {
            return;
        }
        self.largest.push(s);
        if self.largest.len() >= 2 * self.top.max(16) {
            self.trim_top();
        }
    }

    fn trim_top(&mut self) {
        self.largest
            .sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.key.cmp(&b.key)));
        self.largest.truncate(self.top);
    }

    fn trim_undecodable(&mut self) {
        if self.undecodable.len() >= 2 * UNDECODABLE_EXAMPLES {
            self.undecodable.sort_by(|a, b| a.key.cmp(&b.key));
            self.undecodable.truncate(UNDECODABLE_EXAMPLES);
        }
    }

    fn merge(mut self, o: Figures) -> Figures {
        for (k, u) in o.resources {
            self.resources.entry(k).or_default().add(&u);
        }
        for (k, u) in o.namespaces {
            self.namespaces.entry(k).or_default().add(&u);
        }
        for (k, u) in o.cells {
            self.cells.entry(k).or_default().add(&u);
        }
        self.largest.extend(o.largest);
        self.trim_top();
        self.events.live_objects += o.events.live_objects;
        self.events.live_bytes += o.events.live_bytes;
        self.events.revisions += o.events.revisions;
        self.events.stored_bytes += o.events.stored_bytes;
        for (k, n) in o.lease_keys {
            *self.lease_keys.entry(k).or_default() += n;
        }
        for (k, n) in o.unencrypted_secrets {
            *self.unencrypted_secrets.entry(k).or_default() += n;
        }
        for (k, n) in o.encrypted {
            *self.encrypted.entry(k).or_default() += n;
        }
        self.undecodable_values += o.undecodable_values;
        self.undecodable.extend(o.undecodable);
        self.trim_undecodable();
        self
    }

    fn finish(mut self) -> Figures {
        self.trim_top();
        self.undecodable.sort_by(|a, b| a.key.cmp(&b.key));
        self.undecodable.truncate(UNDECODABLE_EXAMPLES);
        self
    }

    /// The security figures gathered so far.
    pub fn security(&self) -> Security {
        Security {
            unencrypted_secrets: self.unencrypted_secrets.clone(),
            encrypted: self
                .encrypted
                .iter()
                .map(|((p, k, id), n)| Encrypted {
                    provider: p.clone(),
                    key_name: k.clone(),
                    key_id: id.clone(),
                    values: *n,
                })
                .collect(),
            undecodable_values: self.undecodable_values,
            undecodable: self.undecodable.clone(),
        }
    }
}

/// Folds every key into figures, on all cores. With `namespace`, only the
/// objects of that namespace count.
pub fn figures(keys: &Folds<'_>, prefix: &str, top: usize, namespace: Option<&str>) -> Figures {
    keys.par_iter()
        .fold(
            || Figures::new(top),
            |mut acc, (key, f)| {
                let ok = parse_key(key, prefix);
                if let Some(ns) = namespace
                    && ok.as_ref().and_then(|o| o.namespace.as_deref()) != Some(ns)
                {
                    return acc;
                }
                acc.take(key, f, ok);
                acc
            },
        )
        .reduce(|| Figures::new(top), Figures::merge)
        .finish()
}
