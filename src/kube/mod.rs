//! Kubernetes values stored in etcd: encodings (`value`; the JSON and CBOR
//! readers `json` and `cbor`, with the API server's rules), the protobuf schema
//! and its walk over the wire (`schema`, `wire`), JSON rendering (`transcode`,
//! `omit`), what decoding may cost (`budget`), resources and keys, redaction,
//! `--for-apply` (`apply`), values encrypted at rest (`decrypt`) and
//! `verify --deep`'s check of every live object (`deep`, with the
//! allocation-free wire walk `validate`).

pub mod apply;
pub mod budget;
pub mod cbor;
pub mod decrypt;
pub mod deep;
pub mod json;
pub mod namespace;
pub mod omit;
pub mod redact;
pub mod resource;
pub mod schema;
pub mod transcode;
pub mod validate;
pub mod value;
pub mod wire;
