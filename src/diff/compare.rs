//! One changed key compared as objects: both sides decoded (protobuf, JSON
//! and CBOR alike), the noise filter applied, Secrets summarised by data key
//! and redacted, then a unified YAML diff and/or a JSON Patch. A side that
//! does not decode (encrypted at rest, not an object, damaged) is compared
//! by its bytes, and the result says so.

use serde_json::Value;

use super::fields;
use super::keys::{Change, KeyChange};
use super::noise;
use super::object::{ObjectName, Outcome};
use super::secret::{SecretKeys, secret_keys};
use crate::kube::redact::{is_secret, is_secret_key, is_secret_key_any_prefix, redact_as};
use crate::kube::value::{decode_checked, detect, set_resource_version};
use crate::mvcc::keyspace::Record;

/// What to compare and produce.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// kube-apiserver's `--etcd-prefix`.
    pub storage_prefix: String,
    /// Keep the fields [`noise`] leaves out.
    pub all_fields: bool,
    /// Show Secret data instead of `<redacted: N bytes>`.
    pub show_secrets: bool,
    /// Lines of context in the unified diff.
    pub context: usize,
    /// Produce the unified YAML diff.
    pub text: bool,
    /// Produce the JSON Patch, and the objects of added and removed keys.
    pub json: bool,
}

/// The comparison of one changed key.
#[derive(Debug, Clone)]
pub struct ObjectDiff<'a> {
    /// The key's change.
    pub change: KeyChange<'a>,
    /// The object the key holds.
    pub name: ObjectName,
    /// How the change counts.
    pub outcome: Outcome,
    /// For a Secret: which data keys changed (never their values).
    pub secret: Option<SecretKeys>,
    /// Why the values were compared by bytes, when they were.
    pub by_bytes: Option<String>,
    /// The unified YAML diff (when asked; empty for a noise-only change).
    pub text: String,
    /// RFC 6902 patch, old → new, of the objects as shown (when asked and
    /// both sides decode).
    pub patch: Option<Value>,
    /// The object of an added or removed key, as shown (when asked).
    pub object: Option<Value>,
}

/// A decoded side: the object with noise stripped (unless asked to keep it),
/// not yet redacted, and whether it is a Secret.
struct Side {
    object: Value,
    secret: bool,
}

fn decode_side(r: &Record<'_>, opts: &Options) -> Result<Side, String> {
    let d = decode_checked(r.kv.value).map_err(|e| e.to_string())?;
    let mut object = d.object;
    set_resource_version(&mut object, r.kv.mod_revision);
    if !opts.all_fields {
        noise::strip(&mut object);
    }
    let secret = d.says_secret
        || is_secret(&object)
        || is_secret_key(r.kv.key, &opts.storage_prefix)
        || is_secret_key_any_prefix(r.kv.key);
    Ok(Side { object, secret })
}

fn shown(mut side: Side, opts: &Options) -> Value {
    if !opts.show_secrets {
        redact_as(&mut side.object, side.secret);
    }
    side.object
}

fn yaml(v: &Value) -> String {
    crate::report::to_yaml(v).unwrap_or_default()
}

fn label(name: &ObjectName, r: &Record<'_>) -> String {
    format!("{name} @ {}", r.kv.mod_revision)
}

/// Compares one changed key. Rewritten keys are not decoded (same bytes).
pub fn compare<'a>(c: &KeyChange<'a>, opts: &Options) -> ObjectDiff<'a> {
    let name = ObjectName::of(c.key(), &opts.storage_prefix);
    let mut d = ObjectDiff {
        change: *c,
        name,
        outcome: Outcome::Change(c.change),
        secret: None,
        by_bytes: None,
        text: String::new(),
        patch: None,
        object: None,
    };
    match (c.change, &c.old, &c.new) {
        (Change::Modified, Some(old), Some(new)) => modified(&mut d, old, new, opts),
        (Change::Added, None, Some(r)) | (Change::Removed, Some(r), None) => {
            one_side(&mut d, r, opts)
        }
        _ => {}
    }
    d
}

fn one_side(d: &mut ObjectDiff<'_>, r: &Record<'_>, opts: &Options) {
    if !(opts.text || opts.json) {
        return;
    }
    let side = match decode_side(r, opts) {
        Ok(s) => s,
        Err(e) => {
            d.by_bytes = Some(format!(
                "{e} ({}, {} bytes)",
                detect(r.kv.value).name(),
                r.kv.value.len()
            ));
            return;
        }
    };
    if side.secret {
        let s = if d.change.change == Change::Added {
            secret_keys(None, Some(&side.object))
        } else {
            secret_keys(Some(&side.object), None)
        };
        d.secret = Some(s);
    }
    let obj = shown(side, opts);
    if opts.text {
        let (a, b) = if d.change.change == Change::Added {
            (String::new(), yaml(&obj))
        } else {
            (yaml(&obj), String::new())
        };
        let lab = label(&d.name, r);
        let (la, lb) = if d.change.change == Change::Added {
            ("/dev/null".to_string(), lab)
        } else {
            (lab, "/dev/null".to_string())
        };
        d.text = fields::unified(&a, &b, opts.context, &la, &lb);
    }
    if opts.json {
        d.object = Some(obj);
    }
}

fn modified(d: &mut ObjectDiff<'_>, old: &Record<'_>, new: &Record<'_>, opts: &Options) {
    let (a, b) = match (decode_side(old, opts), decode_side(new, opts)) {
        (Ok(a), Ok(b)) => (a, b),
        (a, b) => {
            let (side, err) = match (a, b) {
                (Err(e), _) => ("old", e),
                (_, Err(e)) => ("new", e),
                _ => ("", String::new()),
            };
            let how = |r: &Record<'_>| {
                format!("{}, {} bytes", detect(r.kv.value).name(), r.kv.value.len())
            };
            d.by_bytes = Some(format!(
                "{side} value: {err}; compared by bytes ({} → {})",
                how(old),
                how(new)
            ));
            return;
        }
    };
    let same = a.object == b.object;
    if same && !d.change.lease_changed() {
        d.outcome = Outcome::NoiseOnly;
    }
    if a.secret || b.secret {
        d.secret = Some(secret_keys(Some(&a.object), Some(&b.object)));
    }
    if d.outcome == Outcome::NoiseOnly || !(opts.text || opts.json) {
        return;
    }
    let (a, b) = (shown(a, opts), shown(b, opts));
    if opts.text {
        d.text = fields::unified(
            &yaml(&a),
            &yaml(&b),
            opts.context,
            &label(&d.name, old),
            &label(&d.name, new),
        );
    }
    if opts.json {
        d.patch = Some(fields::patch(&a, &b));
    }
}
