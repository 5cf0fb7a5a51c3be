//! Restoring a snapshot into etcd data dirs. So far: the membership model (IDs
//! exactly as etcd computes them) and the pre-restore report of what comes back
//! stale. Writing the data dirs (db, WAL, .snap) is the next step.

pub mod datadir;
pub mod dbwrite;
pub mod membership;
pub mod raftpb;
pub mod stale;
pub mod wal;
