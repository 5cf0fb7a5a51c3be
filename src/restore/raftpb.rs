//! The protobuf messages a restore writes into the WAL and the .snap file
//! (raftpb, walpb, snappb, etcdserverpb.Metadata), declared with prost.
//!
//! etcd marshals them with gogoproto, which always emits the non-nullable
//! fields even when zero; `Option` fields set to `Some` reproduce that, so the
//! bytes are identical to etcdutl's (`docs/design/formats.md` §7–8).
//! etcd 3.7 (raft v3.7, protobuf-go) leaves ConfChange.id and
//! ConfState.auto_leave unset; `wal` leaves them `None` for that target, so
//! the WAL equals etcdutl 3.7's byte for byte too (tests/it/etcd36.rs).

use prost::Message;

#[derive(Clone, PartialEq, Message)]
/// etcdserverpb.Metadata: the member and cluster IDs in the WAL.
pub struct Metadata {
    #[prost(uint64, optional, tag = "1")]
    /// The member ID.
    pub node_id: Option<u64>,
    #[prost(uint64, optional, tag = "2")]
    /// The cluster ID.
    pub cluster_id: Option<u64>,
}

#[derive(Clone, PartialEq, Message)]
/// raftpb.ConfState: the voters.
pub struct ConfState {
    #[prost(uint64, repeated, packed = "false", tag = "1")]
    /// The voting members' IDs.
    pub voters: Vec<u64>,
    #[prost(bool, optional, tag = "5")]
    /// Unset for etcd 3.7.
    pub auto_leave: Option<bool>,
}

#[derive(Clone, PartialEq, Message)]
/// raftpb.ConfChange: a member added.
pub struct ConfChange {
    #[prost(uint64, optional, tag = "1")]
    /// The change's ID (unset for etcd 3.7).
    pub id: Option<u64>,
    #[prost(int32, optional, tag = "2")]
    /// The change's type.
    pub change_type: Option<i32>,
    #[prost(uint64, optional, tag = "3")]
    /// The member's ID.
    pub node_id: Option<u64>,
    #[prost(bytes = "vec", optional, tag = "4")]
    /// The member as JSON.
    pub context: Option<Vec<u8>>,
}

#[derive(Clone, PartialEq, Message)]
/// raftpb.Entry: one log entry.
pub struct Entry {
    #[prost(int32, optional, tag = "1")]
    /// The entry's type.
    pub entry_type: Option<i32>,
    #[prost(uint64, optional, tag = "2")]
    /// Its term.
    pub term: Option<u64>,
    #[prost(uint64, optional, tag = "3")]
    /// Its index.
    pub index: Option<u64>,
    #[prost(bytes = "vec", optional, tag = "4")]
    /// Its payload.
    pub data: Option<Vec<u8>>,
}

#[derive(Clone, PartialEq, Message)]
/// raftpb.HardState: term, vote and commit.
pub struct HardState {
    #[prost(uint64, optional, tag = "1")]
    /// The term.
    pub term: Option<u64>,
    #[prost(uint64, optional, tag = "2")]
    /// The member voted for.
    pub vote: Option<u64>,
    #[prost(uint64, optional, tag = "3")]
    /// The commit index.
    pub commit: Option<u64>,
}

/// walpb.Snapshot: the WAL's record of a snapshot.
#[derive(Clone, PartialEq, Message)]
pub struct WalSnapshot {
    #[prost(uint64, optional, tag = "1")]
    /// The snapshot's index.
    pub index: Option<u64>,
    #[prost(uint64, optional, tag = "2")]
    /// Its term.
    pub term: Option<u64>,
    #[prost(message, optional, tag = "3")]
    /// The voters at it.
    pub conf_state: Option<ConfState>,
}

#[derive(Clone, PartialEq, Message)]
/// raftpb.SnapshotMetadata.
pub struct SnapshotMetadata {
    #[prost(message, optional, tag = "1")]
    /// The voters at the snapshot.
    pub conf_state: Option<ConfState>,
    #[prost(uint64, optional, tag = "2")]
    /// Its index.
    pub index: Option<u64>,
    #[prost(uint64, optional, tag = "3")]
    /// Its term.
    pub term: Option<u64>,
}

/// raftpb.Snapshot.
#[derive(Clone, PartialEq, Message)]
pub struct Snapshot {
    #[prost(bytes = "vec", optional, tag = "1")]
    /// The snapshot's data.
    pub data: Option<Vec<u8>>,
    #[prost(message, optional, tag = "2")]
    /// Its metadata.
    pub metadata: Option<SnapshotMetadata>,
}

/// snappb.Snapshot: a .snap file.
#[derive(Clone, PartialEq, Message)]
pub struct SnapFile {
    #[prost(uint32, optional, tag = "1")]
    /// The crc of the data.
    pub crc: Option<u32>,
    #[prost(bytes = "vec", optional, tag = "2")]
    /// The marshalled raftpb.Snapshot.
    pub data: Option<Vec<u8>>,
}

/// walpb.Record.
#[derive(Clone, PartialEq, Message)]
pub struct Record {
    #[prost(int64, optional, tag = "1")]
    /// The record's type.
    pub record_type: Option<i64>,
    #[prost(uint32, optional, tag = "2")]
    /// The running crc.
    pub crc: Option<u32>,
    #[prost(bytes = "vec", optional, tag = "3")]
    /// Its payload.
    pub data: Option<Vec<u8>>,
}

/// The message's protobuf bytes.
pub fn encode<M: Message>(m: &M) -> Vec<u8> {
    m.encode_to_vec()
}
