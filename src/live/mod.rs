//! The commands that talk to a live cluster (`save`, `put-back`, `compare`,
//! `verify-cluster`, `member`), over etcd's gRPC API with the etcd-client crate.
//!
//! Only this module opens network connections: the offline commands never
//! reach a code path that dials. [`connect`] holds the dialing rules (etcdctl's
//! flags and environment, TLS, timeouts); each command has its module.

pub mod cluster;
pub mod compare;
pub mod connect;
pub mod content;
pub mod insecure;
pub mod kms;
pub mod member;
pub mod namespace;
pub mod putback;
pub mod report;
pub mod save;

pub use connect::{ConnectSpec, GivenSettings, Live, LiveError, Member};
