//! Kubernetes values stored in etcd: encodings, the protobuf schema, JSON
//! rendering, resources and keys, redaction.

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
