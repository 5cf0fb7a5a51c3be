//! Restoring a snapshot into etcd data dirs: the membership model (IDs exactly
//! as etcd computes them), the report of what comes back stale, the files a
//! member starts from (db, WAL, .snap), and the write path that swaps them in
//! without ever losing the old data (`swap`, over `durable`'s fsync steps).

pub mod bump;
pub mod datadir;
pub mod dbwrite;
pub mod durable;
pub mod execute;
pub mod flags;
pub mod membership;
pub mod owner;
pub mod plan;
pub mod raftpb;
pub mod source;
pub mod stale;
pub mod swap;
pub mod target;
pub mod wal;
