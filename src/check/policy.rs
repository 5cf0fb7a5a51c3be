//! The check policy: a YAML file of rules, parsed with serde, every unknown
//! field refused (an unknown rule name is an error naming its line, never a
//! rule silently skipped). Without a file, [`Policy::default_rules`]: at
//! least one namespace, and `default` and `kube-system` exist. `verify` runs
//! whatever the policy says.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::kube::resource::ResourceRef;

/// A policy file's rules; every one is optional.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Policy {
    /// Minimum live objects per resource (kubectl names: `nodes`,
    /// `deployments.apps`, `widgets.example.com`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub min_objects: BTreeMap<String, u64>,
    /// Minimum number of namespaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_namespaces: Option<u64>,
    /// Namespaces that must exist.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required_namespaces: Vec<String>,
    /// Objects that must exist, as `RESOURCE/NAME` (cluster-scoped) or
    /// `RESOURCE/NAMESPACE/NAME`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required_objects: Vec<String>,
    /// Every live Kubernetes value decodes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub values_decode: bool,
    /// No Secret is stored unencrypted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_unencrypted_secrets: bool,
    /// Every encrypted value names one of these keys
    /// (`k8s:enc:<provider>:v1:<key name>:`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_keys: Option<Vec<String>>,
    /// Every KMS v2 value was wrapped under one of these key IDs (the KMS
    /// keys that must still exist to read the backup).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_ids: Option<Vec<String>>,
    /// Bounds on the file's size, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_bytes: Option<u64>,
    /// The most bytes the file may have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<u64>,
    /// Bounds on the keyspace's revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_revision: Option<i64>,
    /// The highest revision allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_revision: Option<i64>,
    /// The oldest a snapshot may be (`26h`, `7d`, `90m`): from `--taken-at`,
    /// else the file's modification time.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "opt_duration"
    )]
    pub max_age: Option<Duration>,
}

/// A policy file that cannot be read or is not a valid policy.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {reason}")]
pub struct PolicyError {
    /// The policy file.
    pub file: String,
    /// What is wrong with it.
    pub reason: String,
}

impl Policy {
    /// The rules used when no policy file is given.
    pub fn default_rules() -> Policy {
        Policy {
            min_namespaces: Some(1),
            required_namespaces: vec!["default".into(), "kube-system".into()],
            ..Policy::default()
        }
    }

    /// Parses a policy file's text (`file` names it in errors). Errors name
    /// the line and column serde reports, and say what is wrong.
    pub fn parse(file: &str, text: &str) -> Result<Policy, PolicyError> {
        let err = |reason: String| PolicyError {
            file: file.to_string(),
            reason,
        };
        if text.trim().is_empty() {
            return Err(err("empty policy: give at least one rule".into()));
        }
        crate::yaml::check_depth(text, crate::yaml::MAX_READ_DEPTH)
            .map_err(|e| err(format!("{e}: refused before parsing")))?;
        let mut p: Policy =
            serde_yaml_ng::from_str(text).map_err(|e| err(with_line(&e.to_string(), text)))?;
        let mut required = Vec::new();
        for o in &p.required_objects {
            let mut q = RequiredObject::parse(o)
                .map_err(|why| err(format!("requiredObjects: {o:?}: {why}")))?;
            q.resource = canonical_resource(&q.resource);
            required.push(q.to_string());
        }
        p.required_objects = required;
        let mut min_objects = BTreeMap::new();
        for (r, n) in std::mem::take(&mut p.min_objects) {
            if r.is_empty() || r.contains('/') || r.starts_with('.') || r.ends_with('.') {
                return Err(err(format!(
                    "minObjects: {r:?} is not a resource name (nodes, deployments.apps, …)"
                )));
            }
            let name = canonical_resource(&r);
            if let Some(first) = min_objects.insert(name.clone(), n)
                && first != n
            {
                return Err(err(format!(
                    "minObjects: {r:?} is {name}, given twice with different minimums"
                )));
            }
        }
        p.min_objects = min_objects;
        if let (Some(a), Some(b)) = (p.min_bytes, p.max_bytes)
            && a > b
        {
            return Err(err(format!("minBytes {a} is above maxBytes {b}")));
        }
        if let (Some(a), Some(b)) = (p.min_revision, p.max_revision)
            && a > b
        {
            return Err(err(format!("minRevision {a} is above maxRevision {b}")));
        }
        Ok(p)
    }
}

/// serde's message, with the line of an unknown rule when serde gave none
/// (it does not for the first key of a mapping).
fn with_line(msg: &str, text: &str) -> String {
    if msg.contains(" line ") {
        return msg.to_string();
    }
    let field = msg
        .strip_prefix("unknown field `")
        .and_then(|r| r.split_once('`'))
        .map(|(f, _)| f);
    let line = field.and_then(|f| {
        text.lines().position(|l| {
            let l = l.trim_start();
            l.strip_prefix(f)
                .is_some_and(|r| r.trim_start().starts_with(':'))
        })
    });
    match line {
        Some(i) => format!("line {}: {msg}", i + 1),
        None => msg.to_string(),
    }
}

/// A resource name as `get` reads it (plural, singular or short name, in
/// any case, optionally group-qualified: `cm`, `Deployment`,
/// `deploy.apps`), as the snapshot's keys name it: the plural, qualified by
/// its group for a built-in resource of a named group (`configmaps`,
/// `deployments.apps`). Other names (custom resources) are only lowercased;
/// whether the snapshot knows them is for the rules to say.
pub fn canonical_resource(name: &str) -> String {
    match ResourceRef::parse(name).built_in() {
        Some(b)
            if b.group.is_empty()
                || matches!(b.plural, "customresourcedefinitions" | "apiservices") =>
        {
            b.plural.to_string()
        }
        Some(b) => format!("{}.{}", b.plural, b.group),
        None => name.to_ascii_lowercase(),
    }
}

/// `RESOURCE/NAME` or `RESOURCE/NAMESPACE/NAME`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RequiredObject {
    /// The resource as the policy names it.
    pub resource: String,
    /// The namespace (none for a cluster-scoped object).
    pub namespace: Option<String>,
    /// The object's name.
    pub name: String,
}

impl RequiredObject {
    /// Reads `resource/name` or `resource/namespace/name`.
    pub fn parse(s: &str) -> Result<RequiredObject, &'static str> {
        let parts: Vec<&str> = s.split('/').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err("an empty part: write RESOURCE/NAME or RESOURCE/NAMESPACE/NAME");
        }
        match parts[..] {
            [r, n] => Ok(RequiredObject {
                resource: r.into(),
                namespace: None,
                name: n.into(),
            }),
            [r, ns, n] => Ok(RequiredObject {
                resource: r.into(),
                namespace: Some(ns.into()),
                name: n.into(),
            }),
            _ => Err("write RESOURCE/NAME or RESOURCE/NAMESPACE/NAME"),
        }
    }
}

impl std::fmt::Display for RequiredObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{}/{ns}/{}", self.resource, self.name),
            None => write!(f, "{}/{}", self.resource, self.name),
        }
    }
}

mod opt_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&humantime::format_duration(*d).to_string()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map(Some).map_err(|e| {
            serde::de::Error::custom(format!("maxAge {text:?}: {e} (write 26h, 7d, 90m)"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_policy_parses() {
        let p = Policy::parse(
            "p.yaml",
            "minObjects:\n  nodes: 3\n  deployments.apps: 1\nminNamespaces: 2\n\
             requiredNamespaces: [default]\nrequiredObjects: [deployments.apps/kube-system/coredns, namespaces/default]\n\
             valuesDecode: true\nnoUnencryptedSecrets: true\nencryptionKeys: [k1]\n\
             minBytes: 1\nmaxBytes: 100\nminRevision: 1\nmaxRevision: 9\nmaxAge: 26h\n",
        )
        .unwrap();
        assert_eq!(p.min_objects["nodes"], 3);
        assert_eq!(p.max_age, Some(Duration::from_secs(26 * 3600)));
        assert_eq!(p.required_objects.len(), 2);
    }

    #[test]
    fn an_unknown_rule_is_refused_with_its_line() {
        let e = Policy::parse("p.yaml", "minObjects:\n  nodes: 3\nminNodes: 3\n").unwrap_err();
        let s = e.to_string();
        assert!(
            s.contains("p.yaml") && s.contains("minNodes") && s.contains("line 3"),
            "{s}"
        );
        let e = Policy::parse("p.yaml", "# policy\nminNodes: 3\n").unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
    }

    #[test]
    fn bad_values_are_refused() {
        for text in [
            "maxAge: soon\n",
            "minObjects:\n  nodes: -1\n",
            "requiredObjects: [a/b/c/d]\n",
            "requiredObjects: [pods//x]\n",
            "minBytes: 10\nmaxBytes: 1\n",
            "",
            "- a\n",
        ] {
            assert!(Policy::parse("p", text).is_err(), "{text:?}");
        }
    }
}
