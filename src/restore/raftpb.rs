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
pub struct Metadata {
    #[prost(uint64, optional, tag = "1")]
    pub node_id: Option<u64>,
    #[prost(uint64, optional, tag = "2")]
    pub cluster_id: Option<u64>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ConfState {
    #[prost(uint64, repeated, packed = "false", tag = "1")]
    pub voters: Vec<u64>,
    #[prost(bool, optional, tag = "5")]
    pub auto_leave: Option<bool>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ConfChange {
    #[prost(uint64, optional, tag = "1")]
    pub id: Option<u64>,
    #[prost(int32, optional, tag = "2")]
    pub change_type: Option<i32>,
    #[prost(uint64, optional, tag = "3")]
    pub node_id: Option<u64>,
    #[prost(bytes = "vec", optional, tag = "4")]
    pub context: Option<Vec<u8>>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Entry {
    #[prost(int32, optional, tag = "1")]
    pub entry_type: Option<i32>,
    #[prost(uint64, optional, tag = "2")]
    pub term: Option<u64>,
    #[prost(uint64, optional, tag = "3")]
    pub index: Option<u64>,
    #[prost(bytes = "vec", optional, tag = "4")]
    pub data: Option<Vec<u8>>,
}

#[derive(Clone, PartialEq, Message)]
pub struct HardState {
    #[prost(uint64, optional, tag = "1")]
    pub term: Option<u64>,
    #[prost(uint64, optional, tag = "2")]
    pub vote: Option<u64>,
    #[prost(uint64, optional, tag = "3")]
    pub commit: Option<u64>,
}

/// walpb.Snapshot: the WAL's record of a snapshot.
#[derive(Clone, PartialEq, Message)]
pub struct WalSnapshot {
    #[prost(uint64, optional, tag = "1")]
    pub index: Option<u64>,
    #[prost(uint64, optional, tag = "2")]
    pub term: Option<u64>,
    #[prost(message, optional, tag = "3")]
    pub conf_state: Option<ConfState>,
}

#[derive(Clone, PartialEq, Message)]
pub struct SnapshotMetadata {
    #[prost(message, optional, tag = "1")]
    pub conf_state: Option<ConfState>,
    #[prost(uint64, optional, tag = "2")]
    pub index: Option<u64>,
    #[prost(uint64, optional, tag = "3")]
    pub term: Option<u64>,
}

/// raftpb.Snapshot.
#[derive(Clone, PartialEq, Message)]
pub struct Snapshot {
    #[prost(bytes = "vec", optional, tag = "1")]
    pub data: Option<Vec<u8>>,
    #[prost(message, optional, tag = "2")]
    pub metadata: Option<SnapshotMetadata>,
}

/// snappb.Snapshot: a .snap file.
#[derive(Clone, PartialEq, Message)]
pub struct SnapFile {
    #[prost(uint32, optional, tag = "1")]
    pub crc: Option<u32>,
    #[prost(bytes = "vec", optional, tag = "2")]
    pub data: Option<Vec<u8>>,
}

/// walpb.Record.
#[derive(Clone, PartialEq, Message)]
pub struct Record {
    #[prost(int64, optional, tag = "1")]
    pub record_type: Option<i64>,
    #[prost(uint32, optional, tag = "2")]
    pub crc: Option<u32>,
    #[prost(bytes = "vec", optional, tag = "3")]
    pub data: Option<Vec<u8>>,
}

pub fn encode<M: Message>(m: &M) -> Vec<u8> {
    m.encode_to_vec()
}
