//! A stored Kubernetes value: how it is encoded, and its object as JSON.
//!
//! kube-apiserver stores built-in types as protobuf (`k8s\0` + runtime.Unknown
//! {typeMeta, raw, contentEncoding, contentType}), custom resources and a few
//! aggregated types as JSON, custom resources under the CBOR serialization gate
//! as self-described CBOR, and values encrypted at rest as
//! `k8s:enc:<provider>:v1:<key name>:` + ciphertext. Anything else is plain bytes.
//! Each is decoded as the API server decodes it (see `json`, `cbor`, `wire`),
//! within a [`Budget`] of the value's size.

use prost_reflect::DynamicMessage;
use serde::Serialize;
use serde_json::{Map, Value as Json};

use super::budget::{Budget, TooLarge};
use super::schema::{SchemaError, schema};
use super::transcode::message_to_json_checked;
use super::wire::{repair_utf8, survey};
use crate::protowire::{Fields, Value};

/// The start of a value in the API server's protobuf envelope.
pub const PROTOBUF_MAGIC: &[u8] = b"k8s\x00";
/// The start of a value encrypted at rest (`k8s:enc:<provider>:v1:<key>:`).
pub const ENCRYPTED_PREFIX: &[u8] = b"k8s:enc:";
/// The self-described CBOR tag (55799) that starts a stored CBOR value.
pub const CBOR_SELF_DESCRIBED: &[u8] = &[0xd9, 0xd9, 0xf7];

/// How a stored value is encoded, from its first bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "encoding", rename_all = "lowercase")]
pub enum Encoding {
    /// The API server's protobuf envelope (`k8s\0`).
    Protobuf,
    /// A JSON object.
    Json,
    /// Self-described CBOR.
    Cbor,
    /// Encrypted at rest: the provider and key name its prefix names.
    Encrypted {
        /// The provider (`aescbc`, `aesgcm`, `secretbox`, `kms`).
        provider: String,
        /// The key name.
        #[serde(rename = "keyName")]
        key_name: String,
    },
    /// None of those.
    Other,
}

impl Encoding {
    /// The encoding's name as outputs show it.
    pub fn name(&self) -> &'static str {
        match self {
            Encoding::Protobuf => "protobuf",
            Encoding::Json => "json",
            Encoding::Cbor => "cbor",
            Encoding::Encrypted { .. } => "encrypted",
            Encoding::Other => "other",
        }
    }
}

/// Recognises a stored value's encoding from its first bytes.
pub fn detect(value: &[u8]) -> Encoding {
    if value.starts_with(PROTOBUF_MAGIC) {
        Encoding::Protobuf
    } else if let Some(rest) = value.strip_prefix(ENCRYPTED_PREFIX) {
        let (provider, key_name) = encryption_header(rest);
        Encoding::Encrypted { provider, key_name }
    } else if value.starts_with(CBOR_SELF_DESCRIBED) {
        Encoding::Cbor
    } else if value
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|&b| b == b'{')
    {
        Encoding::Json
    } else {
        Encoding::Other
    }
}

/// `aescbc:v1:key1:…` → ("aescbc", "key1"); `kms:v2:provider:…` → ("kms/v2", "provider").
fn encryption_header(rest: &[u8]) -> (String, String) {
    let mut parts = rest.splitn(4, |&b| b == b':');
    let p = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let v = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let key = parts
        .next()
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .unwrap_or_default();
    let provider = if p == "kms" { format!("kms/{v}") } else { p };
    (provider, key)
}

/// Why a stored value does not decode.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DecodeError {
    /// The envelope itself does not decode.
    #[error("the protobuf envelope (runtime.Unknown) is malformed: {0}")]
    Envelope(String),
    /// The envelope names a type the built-in schema does not have.
    #[error("no built-in schema for apiVersion {api_version:?} kind {kind:?}")]
    UnknownKind {
        /// The envelope's apiVersion.
        api_version: String,
        /// The envelope's kind.
        kind: String,
    },
    /// The object's protobuf does not decode.
    #[error("{api_version}/{kind}: the object's protobuf does not decode: {detail}")]
    Object {
        /// The envelope's apiVersion.
        api_version: String,
        /// The envelope's kind.
        kind: String,
        /// What the decoder said.
        detail: String,
    },
    /// Not valid JSON.
    #[error("the value is not valid JSON: {0}")]
    Json(String),
    /// Not valid CBOR.
    #[error("the value is not valid CBOR: {0}")]
    Cbor(String),
    /// Encrypted at rest, and not decrypted.
    #[error(
        "the value is encrypted at rest ({provider}, key {key_name}): `get`, `ls`, `history` and `verify --deep` decrypt it with the API server's EncryptionConfiguration (--encryption-config FILE)"
    )]
    Encrypted {
        /// The provider.
        provider: String,
        /// The key name.
        key_name: String,
    },
    /// Not a Kubernetes object.
    #[error("the value is not a Kubernetes object (no protobuf, JSON or CBOR encoding)")]
    NotAnObject,
    /// The value would take more memory than allowed.
    #[error(transparent)]
    TooLarge(#[from] TooLarge),
    /// The built-in schema cannot be loaded.
    #[error(transparent)]
    Schema(#[from] SchemaError),
}

/// The envelope of a protobuf value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Unknown<'a> {
    /// The object's apiVersion.
    pub api_version: String,
    /// The object's kind.
    pub kind: String,
    /// The object's protobuf bytes.
    pub raw: &'a [u8],
    /// Whether the envelope has a `raw` field at all.
    pub has_raw: bool,
    /// The envelope's contentEncoding.
    pub content_encoding: String,
    /// The envelope's contentType.
    pub content_type: String,
}

/// Reads the protobuf envelope (`runtime.Unknown`) after its magic.
pub fn parse_unknown(value: &[u8]) -> Result<Unknown<'_>, DecodeError> {
    let body = value
        .strip_prefix(PROTOBUF_MAGIC)
        .ok_or_else(|| DecodeError::Envelope("missing k8s\\0 magic".into()))?;
    let env = |e: crate::protowire::WireError| DecodeError::Envelope(e.to_string());
    let mut u = Unknown::default();
    for f in Fields::new(body) {
        match f.map_err(env)? {
            (1, Value::Bytes(tm)) => {
                for g in Fields::new(tm) {
                    match g.map_err(env)? {
                        (1, Value::Bytes(b)) => u.api_version = String::from_utf8_lossy(b).into(),
                        (2, Value::Bytes(b)) => u.kind = String::from_utf8_lossy(b).into(),
                        _ => {}
                    }
                }
            }
            (2, Value::Bytes(b)) => {
                u.raw = b;
                u.has_raw = true;
            }
            (3, Value::Bytes(b)) => u.content_encoding = String::from_utf8_lossy(b).into(),
            (4, Value::Bytes(b)) => u.content_type = String::from_utf8_lossy(b).into(),
            _ => {}
        }
    }
    Ok(u)
}

/// Decodes a stored value into the object's JSON (apiVersion and kind first).
///
/// ```
/// use etcdsnap::{bolt::Db, input::SnapshotFile, kube::value, mvcc::keyspace::KeySpace};
///
/// let file = SnapshotFile::open("fixtures/etcd-3.5.1.db".as_ref())?;
/// let db = Db::open(file.db())?;
/// let keys = KeySpace::open(&db)?;
/// let history = keys.history(b"/registry/configmaps/default/app-config")?;
/// let stored = history.last().ok_or("no revision")?.kv.value;
/// // The API server's protobuf envelope: "k8s\0", then the object.
/// assert_eq!(value::detect(stored), value::Encoding::Protobuf);
/// let object = value::decode(stored)?;
/// assert_eq!(object["kind"], "ConfigMap");
/// assert_eq!(object["metadata"]["name"], "app-config");
/// assert_eq!(object["metadata"]["namespace"], "default");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn decode(value: &[u8]) -> Result<Json, DecodeError> {
    decode_checked(value).map(|d| d.object)
}

/// A decoded object, and where it held fields the schema does not know.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// The object, apiVersion and kind first.
    pub object: Json,
    /// JSON paths of objects with fields no release the built-in schema covers has.
    pub unknown_fields_at: Vec<String>,
    /// Something the reader should know (how the type was chosen when the
    /// envelope did not name it; strings that were not UTF-8).
    pub note: Option<String>,
    /// Whether the value says it is a Secret, of any group: the envelope's
    /// kind, or any top-level `kind` of a JSON object (one that says it twice
    /// included), whatever the decoded object's `kind` shows.
    pub says_secret: bool,
}

/// [`decode_checked`] for a value as `etcdctl get --print-value-only`
/// prints it: etcdctl ends it with a newline, which for a protobuf value
/// reads as a field cut short. When the value does not decode with that
/// byte and does without it, it was etcdctl's and is left out.
pub fn decode_printed(value: &[u8]) -> Result<Decoded, DecodeError> {
    let decoded = decode_checked(value);
    if decoded.is_err()
        && let Some(stripped) = value.strip_suffix(b"\n")
        && let Ok(d) = decode_checked(stripped)
    {
        return Ok(d);
    }
    decoded
}

/// Like [`decode`], also reporting fields the schema does not know.
pub fn decode_checked(value: &[u8]) -> Result<Decoded, DecodeError> {
    let plain = |object: Json, says_secret: bool| Decoded {
        object,
        unknown_fields_at: Vec::new(),
        note: None,
        says_secret,
    };
    let mut budget = Budget::for_value(value.len());
    match detect(value) {
        Encoding::Protobuf => decode_protobuf(value, &mut budget),
        Encoding::Json => decode_json(value, &mut budget).map(|p| {
            let secret = p.kinds.iter().any(|k| k == "Secret");
            plain(p.value, secret)
        }),
        Encoding::Cbor => decode_cbor(value, &mut budget).map(|o| {
            let secret = o.get("kind").and_then(Json::as_str) == Some("Secret");
            plain(o, secret)
        }),
        Encoding::Encrypted { provider, key_name } => {
            Err(DecodeError::Encrypted { provider, key_name })
        }
        Encoding::Other => Err(DecodeError::NotAnObject),
    }
}

/// A JSON value, read as the API server reads it ([`super::json`]).
pub fn decode_json(value: &[u8], budget: &mut Budget) -> Result<super::json::Parsed, DecodeError> {
    super::json::parse(value, budget).map_err(|e| match e {
        super::json::JsonError::TooLarge(t) => DecodeError::TooLarge(t),
        other => DecodeError::Json(other.to_string()),
    })
}

/// A CBOR value, read with the API server's rules ([`super::cbor`]).
pub fn decode_cbor(value: &[u8], budget: &mut Budget) -> Result<Json, DecodeError> {
    super::cbor::parse(value, budget).map_err(|e| match e {
        super::cbor::CborError::TooLarge(t) => DecodeError::TooLarge(t),
        other => DecodeError::Cbor(other.to_string()),
    })
}

/// The one type the API machinery writes with an empty envelope type: a watch
/// stream's event (never stored in etcd, but what a captured watch frame holds).
const UNTYPED: &str = "apimachinery.pkg.apis.meta.v1.WatchEvent";

fn decode_protobuf(value: &[u8], budget: &mut Budget) -> Result<Decoded, DecodeError> {
    let u = parse_unknown(value)?;
    if !u.content_encoding.is_empty() {
        return Err(DecodeError::Envelope(format!(
            "content encoding {:?} is not supported (the object is stored compressed or transformed)",
            u.content_encoding
        )));
    }
    if !u.has_raw {
        return Err(DecodeError::Envelope(
            "the envelope holds no object (no raw field)".into(),
        ));
    }
    if u.api_version.is_empty()
        && u.kind.is_empty()
        && let Some(desc) = schema()?.pool().get_message_by_name(UNTYPED)
    {
        survey(&desc, u.raw, budget)?;
        if let Ok(msg) = DynamicMessage::decode(desc, u.raw) {
            let (json, unknown_fields_at) = message_to_json_checked(&msg);
            // Only a clean fit counts; anything else is reported as untyped below.
            if unknown_fields_at.is_empty() {
                return Ok(Decoded {
                    object: json,
                    unknown_fields_at,
                    note: Some(
                        "the envelope names no type; decoded as a watch event (meta/v1 WatchEvent)"
                            .into(),
                    ),
                    says_secret: false,
                });
            }
        }
    }
    let desc = schema()?
        .message_for(&u.api_version, &u.kind)
        .ok_or_else(|| DecodeError::UnknownKind {
            api_version: u.api_version.clone(),
            kind: u.kind.clone(),
        })?;
    let found = survey(&desc, u.raw, budget)?;
    let repaired;
    let (raw, note) = if found.invalid_utf8_at.is_empty() {
        (u.raw, None)
    } else {
        repaired = repair_utf8(&desc, u.raw);
        let at = &found.invalid_utf8_at;
        let shown: Vec<&str> = at.iter().take(3).map(String::as_str).collect();
        let note = format!(
            "{} string{} not UTF-8 ({}{}), shown with U+FFFD for each invalid byte as the API server serves {}",
            at.len(),
            if at.len() == 1 { " is" } else { "s are" },
            shown.join(", "),
            if at.len() > 3 { ", …" } else { "" },
            if at.len() == 1 { "it" } else { "them" },
        );
        (&repaired[..], Some(note))
    };
    let msg = DynamicMessage::decode(desc, raw).map_err(|e| DecodeError::Object {
        api_version: u.api_version.clone(),
        kind: u.kind.clone(),
        detail: e.to_string(),
    })?;
    let says_secret = u.kind == "Secret";
    let mut obj = Map::new();
    obj.insert("apiVersion".into(), Json::String(u.api_version));
    obj.insert("kind".into(), Json::String(u.kind));
    let (json, unknown_fields_at) = message_to_json_checked(&msg);
    if let Json::Object(fields) = json {
        obj.extend(fields);
    }
    Ok(Decoded {
        object: Json::Object(obj),
        unknown_fields_at,
        note,
        says_secret,
    })
}

/// Sets `metadata.resourceVersion` to the key's mod revision, where the API
/// server's storage layer puts it (after uid; a missing `metadata` is made,
/// as an unstructured object's setter makes it; a `metadata` that is not an
/// object is left alone).
pub fn set_resource_version(obj: &mut Json, rev: i64) {
    let Some(root) = obj.as_object_mut() else {
        return;
    };
    let meta = root
        .entry("metadata")
        .or_insert_with(|| Json::Object(Map::new()));
    let Some(meta) = meta.as_object_mut() else {
        return;
    };
    let value = Json::String(rev.to_string());
    if let Some(v) = meta.get_mut("resourceVersion") {
        *v = value;
        return;
    }
    let before = ["name", "generateName", "namespace", "selfLink", "uid"];
    let at = meta
        .keys()
        .rposition(|k| before.contains(&k.as_str()))
        .map_or(0, |i| i + 1);
    meta.shift_insert(at, "resourceVersion".into(), value);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn composite_cbor_map_keys_are_refused_at_once() {
        // Maps whose key is a map whose key is a map …, 30 deep (found by
        // fuzzing: stringifying such keys took time exponential in depth).
        let mut nested = ciborium::Value::Map(vec![("k".into(), "v".into())]);
        for _ in 0..30 {
            nested = ciborium::Value::Map(vec![(nested, 1.into()), ("x".into(), "y".into())]);
        }
        let mut v = CBOR_SELF_DESCRIBED.to_vec();
        ciborium::into_writer(&nested, &mut v).unwrap();
        let t = std::time::Instant::now();
        assert!(decode(&v).is_err());
        assert!(t.elapsed() < std::time::Duration::from_secs(2));
        // Non-string scalar keys are refused too, as the API server refuses them.
        let mut v = CBOR_SELF_DESCRIBED.to_vec();
        let obj = ciborium::Value::Map(vec![(7.into(), "seven".into())]);
        ciborium::into_writer(&obj, &mut v).unwrap();
        assert!(decode(&v).is_err());
    }

    #[test]
    fn decodes_self_described_cbor() {
        // 55799 tag + {"apiVersion": "example.com/v1", "kind": "Widget", "spec": {"size": 3}}
        let mut v = CBOR_SELF_DESCRIBED.to_vec();
        let obj = ciborium::Value::Map(vec![
            ("apiVersion".into(), "example.com/v1".into()),
            ("kind".into(), "Widget".into()),
            (
                "spec".into(),
                ciborium::Value::Map(vec![("size".into(), 3.into())]),
            ),
        ]);
        ciborium::into_writer(&obj, &mut v).unwrap();
        assert_eq!(detect(&v), Encoding::Cbor);
        let j = decode(&v).unwrap();
        assert_eq!(j["kind"], "Widget");
        assert_eq!(j["spec"]["size"], 3);
        assert!(decode(&[0xd9, 0xd9, 0xf7, 0xff]).is_err());
    }

    #[test]
    fn recognises_encodings() {
        assert_eq!(detect(b"{\"a\":1}"), Encoding::Json);
        assert_eq!(detect(b"hello"), Encoding::Other);
        assert_eq!(
            detect(b"k8s:enc:secretbox:v1:k2:xyz"),
            Encoding::Encrypted {
                provider: "secretbox".into(),
                key_name: "k2".into()
            }
        );
        let e = decode(b"k8s:enc:aesgcm:v1:k:...").unwrap_err();
        assert!(matches!(e, DecodeError::Encrypted { .. }));
        // Says where decryption is, not that there is none.
        assert!(e.to_string().contains("--encryption-config"), "{e}");
        assert!(parse_unknown(b"k8s\x00\x0a\xff").is_err());
    }
}
