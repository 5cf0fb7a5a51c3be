//! The Kubernetes protobuf schema: a descriptor set of every built-in type,
//! and the lookup from a stored object's apiVersion/kind to its message.
//!
//! `k8s-descriptors.bin.zst` is generated, not hand-written: the .proto files of
//! Kubernetes 1.30–1.35 that the crates.io package `k8s-rs-pb` 0.5.0 ships, and
//! on top the generated.proto files of kubernetes/api and kubernetes/apimachinery
//! at release 1.36 and at the commits `k8s-descriptors.txt` names, compiled with
//! protox into one descriptor set: the union across sources, newer wins, and
//! every message holds the fields any release gave it — an object a 1.33 API
//! server stored decodes with the fields 1.34 removed (tests/it/k8s_testdata.rs
//! decodes every release's frozen testdata from 1.30 on). The command that
//! remakes it is in `k8s-descriptors.txt` and tools/k8s-descriptors.

use std::collections::HashMap;
use std::sync::OnceLock;

use prost_reflect::{DescriptorPool, MessageDescriptor};

static DESCRIPTORS_ZST: &[u8] = include_bytes!("k8s-descriptors.bin.zst");

/// The built-in Kubernetes protobuf schema: message descriptors by API version and kind.
pub struct Schema {
    pool: DescriptorPool,
    /// (version, kind) -> messages with that name in a package ending in version.
    by_kind: HashMap<(String, String), Vec<MessageDescriptor>>,
}

/// The built-in schema cannot be loaded (a build defect, not an input's).
#[derive(Debug, Clone, thiserror::Error)]
#[error("the built-in Kubernetes schema cannot be loaded: {0}")]
pub struct SchemaError(String);

/// The schema, loaded once on first use.
pub fn schema() -> Result<&'static Schema, SchemaError> {
    static SCHEMA: OnceLock<Result<Schema, SchemaError>> = OnceLock::new();
    SCHEMA.get_or_init(load).as_ref().map_err(Clone::clone)
}

fn load() -> Result<Schema, SchemaError> {
    let bytes = zstd::decode_all(DESCRIPTORS_ZST).map_err(|e| SchemaError(e.to_string()))?;
    let pool = DescriptorPool::decode(&bytes[..]).map_err(|e| SchemaError(e.to_string()))?;
    let mut by_kind: HashMap<(String, String), Vec<MessageDescriptor>> = HashMap::new();
    for m in pool.all_messages() {
        let version = m
            .package_name()
            .rsplit('.')
            .next()
            .unwrap_or_default()
            .to_string();
        by_kind
            .entry((version, m.name().to_string()))
            .or_default()
            .push(m);
    }
    Ok(Schema { pool, by_kind })
}

/// The package segment that names a group's folder in k8s.io/api, where it is
/// not simply the group's first label.
fn group_segment(group: &str) -> &str {
    match group {
        "" => "core",
        "internal.apiserver.k8s.io" => "apiserverinternal",
        "apiextensions.k8s.io" => "apiextensions",
        "apiregistration.k8s.io" => "apiregistration",
        "meta.k8s.io" => "meta",
        other => other.split('.').next().unwrap_or(other),
    }
}

impl Schema {
    /// Every message descriptor.
    pub fn pool(&self) -> &DescriptorPool {
        &self.pool
    }

    /// The message for `apiVersion` (`v1`, `apps/v1`) and `kind`.
    pub fn message_for(&self, api_version: &str, kind: &str) -> Option<MessageDescriptor> {
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", api_version),
        };
        let candidates = self.by_kind.get(&(version.to_string(), kind.to_string()))?;
        let segment = group_segment(group);
        candidates
            .iter()
            .find(|m| {
                let pkg = m.package_name();
                let mut parts = pkg.rsplit('.');
                parts.next();
                parts.next() == Some(segment)
            })
            .or_else(|| (candidates.len() == 1).then(|| &candidates[0]))
            .cloned()
    }
}
