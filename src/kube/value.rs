//! A stored Kubernetes value: how it is encoded, and its object as JSON.
//!
//! kube-apiserver stores built-in types as protobuf (`k8s\0` + runtime.Unknown
//! {typeMeta, raw, contentEncoding, contentType}), custom resources and a few
//! aggregated types as JSON, custom resources under the CBOR serialization gate
//! as self-described CBOR, and values encrypted at rest as
//! `k8s:enc:<provider>:v1:<key name>:` + ciphertext. Anything else is plain bytes.

use base64::Engine;
use prost_reflect::DynamicMessage;
use serde::Serialize;
use serde_json::{Map, Value as Json};

use super::schema::{SchemaError, schema};
use super::transcode::message_to_json_checked;
use crate::protowire::{Fields, Value};

pub const PROTOBUF_MAGIC: &[u8] = b"k8s\x00";
pub const ENCRYPTED_PREFIX: &[u8] = b"k8s:enc:";
pub const CBOR_SELF_DESCRIBED: &[u8] = &[0xd9, 0xd9, 0xf7];

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "encoding", rename_all = "lowercase")]
pub enum Encoding {
    Protobuf,
    Json,
    Cbor,
    Encrypted {
        provider: String,
        #[serde(rename = "keyName")]
        key_name: String,
    },
    Other,
}

impl Encoding {
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

#[derive(Debug, Clone, thiserror::Error)]
pub enum DecodeError {
    #[error("the protobuf envelope (runtime.Unknown) is malformed: {0}")]
    Envelope(String),
    #[error("no built-in schema for apiVersion {api_version:?} kind {kind:?}")]
    UnknownKind { api_version: String, kind: String },
    #[error("{api_version}/{kind}: the object's protobuf does not decode: {detail}")]
    Object {
        api_version: String,
        kind: String,
        detail: String,
    },
    #[error("the value is not valid JSON: {0}")]
    Json(String),
    #[error("the value is not valid CBOR: {0}")]
    Cbor(String),
    #[error(
        "the value is encrypted at rest ({provider}, key {key_name}); decrypting is not supported yet"
    )]
    Encrypted { provider: String, key_name: String },
    #[error("the value is not a Kubernetes object (no protobuf, JSON or CBOR encoding)")]
    NotAnObject,
    #[error(transparent)]
    Schema(#[from] SchemaError),
}

/// The envelope of a protobuf value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Unknown<'a> {
    pub api_version: String,
    pub kind: String,
    pub raw: &'a [u8],
    pub content_encoding: String,
    pub content_type: String,
}

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
            (2, Value::Bytes(b)) => u.raw = b,
            (3, Value::Bytes(b)) => u.content_encoding = String::from_utf8_lossy(b).into(),
            (4, Value::Bytes(b)) => u.content_type = String::from_utf8_lossy(b).into(),
            _ => {}
        }
    }
    Ok(u)
}

/// Decodes a stored value into the object's JSON (apiVersion and kind first).
pub fn decode(value: &[u8]) -> Result<Json, DecodeError> {
    decode_checked(value).map(|d| d.object)
}

/// A decoded object, and where it held fields the schema does not know.
#[derive(Debug, Clone)]
pub struct Decoded {
    pub object: Json,
    /// JSON paths of objects with fields newer than the built-in schema.
    pub unknown_fields_at: Vec<String>,
    /// How the type was chosen, when the envelope did not name it.
    pub note: Option<&'static str>,
}

/// Like [`decode`], also reporting fields the schema does not know.
pub fn decode_checked(value: &[u8]) -> Result<Decoded, DecodeError> {
    let plain = |object| Decoded {
        object,
        unknown_fields_at: Vec::new(),
        note: None,
    };
    match detect(value) {
        Encoding::Protobuf => decode_protobuf(value),
        Encoding::Json => serde_json::from_slice(value)
            .map(plain)
            .map_err(|e| DecodeError::Json(e.to_string())),
        Encoding::Cbor => decode_cbor(value).map(plain),
        Encoding::Encrypted { provider, key_name } => {
            Err(DecodeError::Encrypted { provider, key_name })
        }
        Encoding::Other => Err(DecodeError::NotAnObject),
    }
}

/// The one type the API machinery writes with an empty envelope type: a watch
/// stream's event (never stored in etcd, but what a captured watch frame holds).
const UNTYPED: &str = "apimachinery.pkg.apis.meta.v1.WatchEvent";

fn decode_protobuf(value: &[u8]) -> Result<Decoded, DecodeError> {
    let u = parse_unknown(value)?;
    if u.api_version.is_empty()
        && u.kind.is_empty()
        && let Some(desc) = schema()?.pool().get_message_by_name(UNTYPED)
        && let Ok(msg) = DynamicMessage::decode(desc, u.raw)
    {
        let (json, unknown_fields_at) = message_to_json_checked(&msg);
        // Only a clean fit counts; anything else is reported as untyped below.
        if unknown_fields_at.is_empty() {
            return Ok(Decoded {
                object: json,
                unknown_fields_at,
                note: Some(
                    "the envelope names no type; decoded as a watch event (meta/v1 WatchEvent)",
                ),
            });
        }
    }
    let desc = schema()?
        .message_for(&u.api_version, &u.kind)
        .ok_or_else(|| DecodeError::UnknownKind {
            api_version: u.api_version.clone(),
            kind: u.kind.clone(),
        })?;
    let msg = DynamicMessage::decode(desc, u.raw).map_err(|e| DecodeError::Object {
        api_version: u.api_version.clone(),
        kind: u.kind.clone(),
        detail: e.to_string(),
    })?;
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
        note: None,
    })
}

fn decode_cbor(value: &[u8]) -> Result<Json, DecodeError> {
    let v: ciborium::Value =
        ciborium::from_reader(value).map_err(|e| DecodeError::Cbor(e.to_string()))?;
    cbor_to_json(v, 0)
}

fn cbor_to_json(v: ciborium::Value, depth: usize) -> Result<Json, DecodeError> {
    use ciborium::Value as C;
    if depth > 256 {
        return Err(DecodeError::Cbor("nested deeper than 256 levels".into()));
    }
    Ok(match v {
        C::Null => Json::Null,
        C::Bool(b) => Json::Bool(b),
        C::Integer(i) => {
            let n: i128 = i.into();
            if let Ok(x) = i64::try_from(n) {
                Json::from(x)
            } else if let Ok(x) = u64::try_from(n) {
                Json::from(x)
            } else {
                Json::String(n.to_string())
            }
        }
        C::Float(f) => serde_json::Number::from_f64(f).map_or(Json::Null, Json::Number),
        C::Text(s) => Json::String(s),
        // Kubernetes encodes strings as CBOR byte strings in some places; show text when it is.
        C::Bytes(b) => match String::from_utf8(b) {
            Ok(s) => Json::String(s),
            Err(e) => {
                Json::String(base64::engine::general_purpose::STANDARD.encode(e.into_bytes()))
            }
        },
        C::Tag(_, inner) => cbor_to_json(*inner, depth + 1)?,
        C::Array(items) => Json::Array(
            items
                .into_iter()
                .map(|x| cbor_to_json(x, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        C::Map(entries) => {
            let mut m = Map::new();
            for (k, v) in entries {
                // Kubernetes objects use text keys. A scalar key is shown as
                // its JSON text; a composite one is refused undecoded: turning
                // nested keys into strings escapes each level again, which
                // grows exponentially with depth.
                let key = match k {
                    C::Array(_) | C::Map(_) | C::Tag(..) => {
                        return Err(DecodeError::Cbor(
                            "a map key is an array, map or tagged value (objects use text keys)"
                                .into(),
                        ));
                    }
                    scalar => match cbor_to_json(scalar, depth + 1)? {
                        Json::String(s) => s,
                        other => other.to_string(),
                    },
                };
                m.insert(key, cbor_to_json(v, depth + 1)?);
            }
            Json::Object(m)
        }
        _ => Json::Null,
    })
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
        // Scalar keys still decode.
        let mut v = CBOR_SELF_DESCRIBED.to_vec();
        let obj = ciborium::Value::Map(vec![(7.into(), "seven".into())]);
        ciborium::into_writer(&obj, &mut v).unwrap();
        assert_eq!(decode(&v).unwrap()["7"], "seven");
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
        assert!(matches!(
            decode(b"k8s:enc:aesgcm:v1:k:..."),
            Err(DecodeError::Encrypted { .. })
        ));
        assert!(parse_unknown(b"k8s\x00\x0a\xff").is_err());
    }
}
