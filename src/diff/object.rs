//! Changed keys as Kubernetes objects (`deployments.apps prod/web`), and the
//! counts per resource and namespace that `diff --stat` prints.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use super::keys::Change;
use crate::kube::resource::parse_key;
use crate::report::{escape_bytes, escape_controls};

/// What a changed key is, as a person names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObjectName {
    /// `deployments.apps`; `None` for a key that is not an object's.
    pub resource: Option<String>,
    /// The namespace, for a namespaced object.
    pub namespace: Option<String>,
    /// The object's name, or the whole key (escaped) when not an object.
    pub name: String,
}

impl ObjectName {
    /// The object a key holds, under kube-apiserver's `storage_prefix`.
    pub fn of(key: &[u8], storage_prefix: &str) -> ObjectName {
        match parse_key(key, storage_prefix) {
            Some(ok) => ObjectName {
                resource: Some(ok.qualified_resource()),
                namespace: ok.namespace,
                name: ok.name,
            },
            None => ObjectName {
                resource: None,
                namespace: None,
                name: escape_bytes(key),
            },
        }
    }
}

impl fmt::Display for ObjectName {
    /// `deployments.apps prod/web`, `namespaces kube-system`, or the key;
    /// control characters escaped (names come from the file).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = escape_controls(&self.name);
        match (&self.resource, &self.namespace) {
            (Some(r), Some(ns)) => write!(f, "{r} {}/{name}", escape_controls(ns)),
            (Some(r), None) => write!(f, "{r} {name}"),
            (None, _) => write!(f, "{name}"),
        }
    }
}

/// How a changed object is counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Added, removed, modified or rewritten.
    Change(Change),
    /// Modified, but only in what the noise filter leaves out.
    NoiseOnly,
}

/// Counts of one group (or of all).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    /// Objects added.
    pub added: usize,
    /// Objects removed.
    pub removed: usize,
    /// Objects modified in fields the noise filter keeps.
    pub modified: usize,
    /// Objects modified only in fields the noise filter leaves out.
    pub noise_only: usize,
    /// Keys written again with the same bytes.
    pub rewritten: usize,
}

impl Counts {
    /// Counts one more object with outcome `o`.
    pub fn add(&mut self, o: Outcome) {
        match o {
            Outcome::Change(Change::Added) => self.added += 1,
            Outcome::Change(Change::Removed) => self.removed += 1,
            Outcome::Change(Change::Modified) => self.modified += 1,
            Outcome::Change(Change::Rewritten) => self.rewritten += 1,
            Outcome::NoiseOnly => self.noise_only += 1,
        }
    }

    /// Differences that count for the exit code: added, removed, modified
    /// (after the noise filter), and rewritten when asked for.
    pub fn differences(&self, with_rewritten: bool) -> usize {
        self.added + self.removed + self.modified + if with_rewritten { self.rewritten } else { 0 }
    }

    fn merge(&mut self, o: &Counts) {
        self.added += o.added;
        self.removed += o.removed;
        self.modified += o.modified;
        self.noise_only += o.noise_only;
        self.rewritten += o.rewritten;
    }
}

/// Counts per (resource, namespace); `-` stands for none.
#[derive(Debug, Default)]
pub struct Tally {
    /// Counts per resource and namespace (`-` for none).
    pub groups: BTreeMap<(String, String), Counts>,
}

/// One row of `diff --stat -w json`.
#[derive(Serialize)]
pub struct GroupRow<'t> {
    /// The resource.
    pub resource: &'t str,
    /// The namespace (`-` for none).
    pub namespace: &'t str,
    /// The group's counts.
    #[serde(flatten)]
    pub counts: Counts,
}

impl Tally {
    /// Counts one more object of `name`'s resource and namespace.
    pub fn add(&mut self, name: &ObjectName, o: Outcome) {
        let r = name.resource.clone().unwrap_or_else(|| "-".into());
        let ns = name.namespace.clone().unwrap_or_else(|| "-".into());
        self.groups.entry((r, ns)).or_default().add(o);
    }

    /// The counts over every resource and namespace.
    pub fn total(&self) -> Counts {
        let mut t = Counts::default();
        for c in self.groups.values() {
            t.merge(c);
        }
        t
    }

    /// One row per resource and namespace, in their order.
    pub fn rows(&self) -> Vec<GroupRow<'_>> {
        self.groups
            .iter()
            .map(|((r, ns), c)| GroupRow {
                resource: r,
                namespace: ns,
                counts: *c,
            })
            .collect()
    }

    /// The counts table, one line per group and a total.
    pub fn render(&self) -> String {
        let mut lines: Vec<[String; 7]> = vec![[
            "RESOURCE".into(),
            "NAMESPACE".into(),
            "ADDED".into(),
            "REMOVED".into(),
            "MODIFIED".into(),
            "NOISE-ONLY".into(),
            "REWRITTEN".into(),
        ]];
        let row = |r: &str, ns: &str, c: &Counts| {
            [
                escape_controls(r).into_owned(),
                escape_controls(ns).into_owned(),
                c.added.to_string(),
                c.removed.to_string(),
                c.modified.to_string(),
                c.noise_only.to_string(),
                c.rewritten.to_string(),
            ]
        };
        for ((r, ns), c) in &self.groups {
            lines.push(row(r, ns, c));
        }
        lines.push(row("TOTAL", "", &self.total()));
        let mut width = [0usize; 7];
        for l in &lines {
            for (w, cell) in width.iter_mut().zip(l) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for l in &lines {
            let mut line = String::new();
            for (n, (cell, w)) in l.iter().zip(width).enumerate() {
                if n < 2 {
                    line.push_str(&format!("{cell:<w$}  "));
                } else {
                    line.push_str(&format!("{cell:>w$}  "));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_objects_and_keys() {
        let n = ObjectName::of(b"/registry/deployments/prod/web", "/registry");
        assert_eq!(n.to_string(), "deployments.apps prod/web");
        let n = ObjectName::of(b"/registry/namespaces/kube-system", "/registry");
        assert_eq!(n.to_string(), "namespaces kube-system");
        let n = ObjectName::of(b"compact_rev_key", "/registry");
        assert_eq!(n.to_string(), "compact_rev_key");
        let n = ObjectName::of(b"/registry/configmaps/a/b\x1b[2J", "/registry");
        assert_eq!(n.to_string(), "configmaps a/b\\x1b[2J");
    }
}
