//! What of a found object is shown: Secret data redacted unless asked for,
//! `metadata.resourceVersion` filled as the API server serves it,
//! `--for-apply`'s stripping; and whether a resource named on the command
//! line exists in the snapshot at all.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::kube::apply::{ApplyOptions, for_apply};
use crate::kube::decrypt::Decryptor;
use crate::kube::redact;
use crate::kube::resource::{ObjectKey, ResourceRef, closest_names};
use crate::kube::value::set_resource_version;

/// How an object is prepared for output.
#[derive(Clone, Copy, Debug, Default)]
pub struct Prepare {
    /// Print Secret data in clear.
    pub show_secrets: bool,
    /// The key or the stored value says Secret, whatever the decoded kind.
    pub secret: bool,
    /// `--for-apply`.
    pub apply: Option<ApplyOptions>,
    /// The key's mod revision: `metadata.resourceVersion`, as the API server
    /// serves it (not with `--for-apply`).
    pub mod_revision: Option<i64>,
}

/// Redacts, fills `resourceVersion`, applies `--for-apply`; returns what
/// `--for-apply` dropped.
pub fn prepare(obj: &mut Value, p: Prepare) -> Vec<String> {
    if !p.show_secrets {
        redact::redact_as(obj, p.secret);
    }
    if let Some(rev) = p.mod_revision {
        set_resource_version(obj, rev);
    }
    match p.apply {
        Some(opts) => for_apply(obj, opts),
        None => Vec::new(),
    }
}

/// The encoding of a value as the listings show it: with a config, an
/// encrypted value shows its provider and the plaintext's encoding
/// (`aesgcm>protobuf`), or why it did not open.
pub fn decrypted_encoding(
    decryptor: &Decryptor,
    key: &[u8],
    value: &[u8],
) -> (Option<&'static str>, Option<String>) {
    if !decryptor.has_config() || !value.starts_with(crate::kube::value::ENCRYPTED_PREFIX) {
        return (None, None);
    }
    match decryptor.plaintext(key, value) {
        Ok(p) => (Some(crate::kube::value::detect(&p.bytes).name()), None),
        Err(e) => (None, Some(e.to_string())),
    }
}

/// A resource named on the command line that is neither built in nor in the
/// snapshot.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "unknown resource {typed:?}: not a built-in resource, and the snapshot holds no custom resource (or CRD) of that name; {hint}"
)]
pub struct UnknownResource {
    /// The name as typed.
    pub typed: String,
    /// The closest names, or where to look.
    pub hint: String,
}

/// Whether a resource named on the command line exists: built-in ones always
/// do; a custom one when the snapshot holds its CRD or an object of it, as
/// seen from the keys a command reads ([`ResourceCheck::observe`]). An
/// unknown one is an [`UnknownResource`] naming the closest names.
pub struct ResourceCheck {
    typed: String,
    resource: ResourceRef,
    seen: bool,
    crds: BTreeSet<String>,
    customs: BTreeSet<String>,
}

impl ResourceCheck {
    /// `None` for a built-in resource (nothing to check).
    pub fn new(typed: &str, resource: &ResourceRef) -> Option<ResourceCheck> {
        resource.built_in().is_none().then(|| ResourceCheck {
            typed: typed.to_string(),
            resource: resource.clone(),
            seen: false,
            crds: Default::default(),
            customs: Default::default(),
        })
    }

    /// Takes note of a key the command read.
    pub fn observe(&mut self, key: &ObjectKey) {
        if self.resource.matches(key) {
            self.seen = true;
        }
        if key.resource == "customresourcedefinitions" {
            self.crds.insert(key.name.clone());
        } else if let Some(g) = &key.group
            && key.resource != "apiservices"
        {
            self.customs.insert(format!("{}.{g}", key.resource));
        }
    }

    /// Whether the keys observed show the resource.
    pub fn known(&self) -> bool {
        let ResourceRef::Custom { plural, group } = &self.resource else {
            return true;
        };
        self.seen
            || self.crds.iter().any(|c| match group {
                Some(g) => *c == format!("{plural}.{g}"),
                None => c.split_once('.').is_some_and(|(p, _)| p == plural),
            })
    }

    /// `Ok` when known, else the error naming the closest names.
    pub fn check(&self) -> Result<(), UnknownResource> {
        if self.known() {
            return Ok(());
        }
        let others: Vec<String> = self.crds.union(&self.customs).cloned().collect();
        let close = closest_names(&self.typed, &others);
        let hint = if close.is_empty() {
            "`etcdsnap ls` shows the resources the snapshot holds".to_string()
        } else {
            format!("did you mean {}?", close.join(", "))
        };
        Err(UnknownResource {
            typed: self.typed.clone(),
            hint,
        })
    }
}
