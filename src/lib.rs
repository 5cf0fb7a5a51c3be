//! etcdsnap: an offline toolkit and verifier for etcd snapshot files.
//!
//! Library first, thin binary. Layers, each knowing only the ones below it:
//! [`input`] (mapping, decompression, trailer), [`problem`] and [`protowire`] at
//! the bottom; [`bolt`] (bbolt pages); [`mvcc`] (revisions, KeyValue, the
//! keyspace); [`backend`] (etcd's buckets, `status`, layout checks); [`verify`]
//! (all checks together); [`kube`] (Kubernetes values and resources);
//! [`inspect`] (the triage view: what fills a snapshot, what to reclaim);
//! [`restore`] (membership, WAL, .snap, data dirs); [`diff`] (two states of a
//! keyspace compared as objects); [`report`] and [`cli`] on top.

pub mod backend;
pub mod bolt;
pub mod bundle;
pub mod catalog;
pub mod check;
pub mod cli;
pub mod diff;
pub mod input;
pub mod inspect;
pub mod interrupt;
pub mod kube;
#[cfg(feature = "live")]
pub mod live;
pub mod lookup;
pub mod mvcc;
pub mod pki;
pub mod problem;
pub mod protowire;
pub mod report;
pub mod restore;
pub mod verify;
pub mod yaml;
