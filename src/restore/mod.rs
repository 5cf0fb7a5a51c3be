//! Restoring a snapshot into etcd data dirs: the report of what comes back
//! stale, the files a member starts from (db, WAL, .snap) and the target
//! release. The membership model and start flags are in [`crate::cluster`],
//! the db writer in [`crate::bolt::write`], and the write path that swaps a
//! member in without ever losing the old data in [`crate::durable::swap`].

pub mod datadir;
pub mod raftpb;
pub mod source;
pub mod stale;
pub mod target;
pub mod wal;
