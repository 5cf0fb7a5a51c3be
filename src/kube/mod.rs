//! Kubernetes values stored in etcd: encodings, the protobuf schema, JSON
//! rendering, resources and keys, redaction.

pub mod schema;
pub mod transcode;
pub mod value;
