//! Secret values never leave etcdsnap unless asked for.
//!
//! A Secret's `data` and `stringData` values become `<redacted: N bytes>`, and so
//! does the `kubectl.kubernetes.io/last-applied-configuration` annotation, which
//! holds the same data in clear. `--show-secrets` turns this off. An object is
//! a Secret when its key is a Secret's (under any storage prefix) or its kind
//! says Secret, in any group — any `kind` of a JSON object that says it twice.

use base64::Engine;
use serde_json::Value;

/// kubectl's annotation holding the last applied object (which may hold Secret data).
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Whether a decoded object says it is a Secret, of any group (a custom
/// `Secret` kind holds secrets just as well).
pub fn is_secret(obj: &Value) -> bool {
    obj.get("kind").and_then(Value::as_str) == Some("Secret")
}

/// Whether an etcd key is a Secret's.
pub fn is_secret_key(key: &[u8], storage_prefix: &str) -> bool {
    let p = format!("{}/secrets/", storage_prefix.trim_end_matches('/'));
    key.starts_with(p.as_bytes())
}

/// Whether an etcd key is a Secret's under any storage prefix (an OpenShift
/// `/kubernetes.io`, a custom `--etcd-prefix`): a `secrets` segment followed by
/// a namespace and a name. Errs on the safe side for custom resources named
/// `secrets`.
pub fn is_secret_key_any_prefix(key: &[u8]) -> bool {
    let segs: Vec<&[u8]> = key.split(|&b| b == b'/').collect();
    segs.len() >= 3 && segs[segs.len() - 3] == b"secrets"
}

/// Whether a stored value says it is a Secret, of any group: the protobuf
/// envelope's kind, or the `kind` of a JSON or CBOR object.
pub fn value_is_secret(value: &[u8]) -> bool {
    use super::value::{Encoding, decode, detect, parse_unknown};
    match detect(value) {
        Encoding::Protobuf => parse_unknown(value).is_ok_and(|u| u.kind == "Secret"),
        // A JSON object may say `kind` twice: the API server keeps the last,
        // but any of them saying Secret makes it one here.
        Encoding::Json => {
            let mut budget = super::budget::Budget::for_value(value.len());
            super::json::parse(value, &mut budget).is_ok_and(|p| {
                let secret = p.kinds.iter().any(|k| k == "Secret");
                super::budget::drop_deep(p.value);
                secret
            })
        }
        Encoding::Cbor => {
            decode(value).is_ok_and(|v| v.get("kind").and_then(Value::as_str) == Some("Secret"))
        }
        Encoding::Encrypted { .. } | Encoding::Other => false,
    }
}

/// The placeholder for one secret value: its decoded size for base64 text
/// (a Secret's `data`), its length for other text, and the length of its
/// JSON text for anything else (a list, a map, a number).
fn redacted(v: &Value, base64: bool) -> Value {
    let len = match v {
        Value::String(s) if base64 => base64::engine::general_purpose::STANDARD
            .decode(s)
            .map_or(s.len(), |b| b.len()),
        Value::String(s) => s.len(),
        other => other.to_string().len(),
    };
    Value::String(format!("<redacted: {len} bytes>"))
}

/// Replaces secret values in place; returns how many were redacted.
pub fn redact(obj: &mut Value) -> usize {
    redact_as(obj, false)
}

/// [`redact`], also when the caller knows the value is a Secret's (by its key,
/// or by a `kind` the decoded object no longer shows) whatever its kind says.
pub fn redact_as(obj: &mut Value, secret: bool) -> usize {
    if !secret && !is_secret(obj) {
        return 0;
    }
    let mut n = 0;
    for (field, base64) in [("data", true), ("stringData", false)] {
        match obj.get_mut(field) {
            // The usual shape: a map of key to value.
            Some(Value::Object(data)) => {
                for v in data.values_mut() {
                    *v = redacted(v, base64);
                    n += 1;
                }
            }
            None | Some(Value::Null) => {}
            // Any other shape (a list, a string, a number) is replaced whole:
            // whatever it holds may be the secret.
            Some(other) => {
                *other = redacted(other, false);
                n += 1;
            }
        }
    }
    if let Some(Value::Object(ann)) = obj.pointer_mut("/metadata/annotations")
        && let Some(v) = ann.get_mut(LAST_APPLIED)
    {
        *v = redacted(v, false);
        n += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::{is_secret_key_any_prefix, value_is_secret};

    #[test]
    fn secrets_under_any_prefix() {
        for k in [
            "/registry/secrets/ns/a",
            "/kubernetes.io/secrets/ns/a",
            "/a/b/c/secrets/ns/a",
            "secrets/ns/a",
        ] {
            assert!(is_secret_key_any_prefix(k.as_bytes()), "{k}");
        }
        for k in [
            "/registry/configmaps/secrets/a",
            "/registry/configmaps/ns/secrets",
            "/registry/secrets/a",
        ] {
            assert!(!is_secret_key_any_prefix(k.as_bytes()), "{k}");
        }
    }

    #[test]
    fn a_secret_with_a_second_kind_is_still_one() {
        assert!(value_is_secret(
            br#"{"apiVersion":"v1","kind":"Secret","data":{"a":"aGk="},"kind":"ConfigMap"}"#
        ));
        let mut obj = serde_json::json!({"kind": "ConfigMap", "data": {"a": "aGk=", "b": "plain"}});
        assert_eq!(super::redact_as(&mut obj, true), 2);
        assert_eq!(obj["data"]["a"], "<redacted: 2 bytes>");
        assert_eq!(obj["data"]["b"], "<redacted: 5 bytes>");
    }

    #[test]
    fn every_shape_of_data_is_redacted() {
        for data in [
            serde_json::json!(["c2VjcmV0", "hunter2"]),
            serde_json::json!("hunter2"),
            serde_json::json!(12345),
            serde_json::json!({"k": ["hunter2"], "j": {"x": "hunter2"}, "n": 7}),
        ] {
            let mut obj = serde_json::json!({"kind": "Secret", "data": data.clone(),
                "stringData": data});
            assert!(super::redact(&mut obj) >= 2);
            let text = obj.to_string();
            assert!(
                !text.contains("hunter2") && !text.contains("c2VjcmV0"),
                "{text}"
            );
            assert!(!text.contains("12345") && !text.contains(":7"), "{text}");
        }
    }

    #[test]
    fn secrets_by_kind() {
        assert!(value_is_secret(
            br#"{"kind":"Secret","apiVersion":"x.io/v1"}"#
        ));
        assert!(!value_is_secret(
            br#"{"kind":"ConfigMap","apiVersion":"v1"}"#
        ));
        assert!(!value_is_secret(b"k8s:enc:aescbc:v1:k:xx"));
        assert!(!value_is_secret(b"\x00\x01"));
    }
}
