//! A changed Secret, said without its values: which `data` (and
//! `stringData`) keys were added, removed or changed. The values
//! themselves appear only with `--show-secrets`.

use serde::Serialize;
use serde_json::{Map, Value};

/// The keys of a Secret's data that changed, sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SecretKeys {
    /// Data keys only in the new Secret.
    pub added: Vec<String>,
    /// Data keys only in the old Secret.
    pub removed: Vec<String>,
    /// Data keys in both, with other values.
    pub changed: Vec<String>,
}

impl SecretKeys {
    /// Whether no data key changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }

    /// `data keys: changed password; added token` (empty when nothing changed).
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        for (what, keys) in [
            ("changed", &self.changed),
            ("added", &self.added),
            ("removed", &self.removed),
        ] {
            if !keys.is_empty() {
                parts.push(format!("{what} {}", keys.join(", ")));
            }
        }
        if parts.is_empty() {
            return String::new();
        }
        format!("data keys: {}", parts.join("; "))
    }
}

/// The data entries of a Secret: `data` keys as they are, `stringData` keys
/// as `stringData.KEY`.
fn entries(obj: Option<&Value>) -> Map<String, Value> {
    let mut out = Map::new();
    let Some(obj) = obj else {
        return out;
    };
    for (field, prefix) in [("data", ""), ("stringData", "stringData.")] {
        match obj.get(field) {
            Some(Value::Object(d)) => {
                for (k, v) in d {
                    out.insert(format!("{prefix}{k}"), v.clone());
                }
            }
            None | Some(Value::Null) => {}
            // A list or a string where a map belongs: one entry, the field.
            Some(other) => {
                out.insert(field.to_string(), other.clone());
            }
        }
    }
    out
}

/// Which data keys differ between two (unredacted) Secrets; either side may
/// be absent (an added or removed Secret).
pub fn secret_keys(old: Option<&Value>, new: Option<&Value>) -> SecretKeys {
    let (a, b) = (entries(old), entries(new));
    let mut s = SecretKeys::default();
    for (k, v) in &a {
        match b.get(k) {
            None => s.removed.push(k.clone()),
            Some(w) if w != v => s.changed.push(k.clone()),
            Some(_) => {}
        }
    }
    for k in b.keys() {
        if !a.contains_key(k) {
            s.added.push(k.clone());
        }
    }
    s.added.sort();
    s.removed.sort();
    s.changed.sort();
    s
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn names_keys_never_values() {
        let old = json!({"data": {"a": "MQ==", "b": "Mg==", "c": "Mw=="}});
        let new = json!({"data": {"a": "MQ==", "b": "NQ==", "d": "NA=="}});
        let s = super::secret_keys(Some(&old), Some(&new));
        assert_eq!(s.describe(), "data keys: changed b; added d; removed c");
        assert!(!s.describe().contains("NQ=="));
    }
}
