//! Kubernetes values stored in etcd: encodings (`value`; the JSON and CBOR
//! readers `json` and `cbor`, with the API server's rules), the protobuf schema
//! and its walk over the wire (`schema`, `wire`), JSON rendering (`transcode`,
//! `omit`), what decoding may cost (`budget`), resources and keys, redaction,
//! and `--for-apply` (`apply`).

pub mod apply;
pub mod budget;
pub mod cbor;
pub mod json;
pub mod omit;
pub mod redact;
pub mod resource;
pub mod schema;
pub mod transcode;
pub mod value;
pub mod wire;
