//! etcd's MVCC data model: revision keys and `KeyValue` records.

pub mod hashkv;
pub mod index;
pub mod keyspace;
pub mod keyvalue;
pub mod revision;

pub use keyvalue::{KeyValue, KeyValueError};
pub use revision::{Revision, RevisionKey, RevisionKeyError};
