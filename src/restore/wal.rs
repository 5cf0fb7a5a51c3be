//! The WAL a restored member starts from, and the .snap file beside its db.
//!
//! Records are framed as etcd frames them: an 8-byte little-endian length
//! (padding count in the top byte), the walpb.Record, zero padding to 8 bytes.
//! Each record's crc chains CRC-32C over the data of all records before it.
//! A restore writes: crc(0), metadata{node, cluster}, an empty snapshot record,
//! one ConfChange(AddNode) entry per member (sorted by ID), the HardState
//! {term 1, vote lowest ID, commit N}, and the snapshot record {N, term 1}.

use super::raftpb::{
    ConfChange, ConfState, Entry, HardState, Metadata, Record, SnapFile, Snapshot,
    SnapshotMetadata, WalSnapshot, encode,
};
use crate::cluster::membership::{Cluster, Member};

/// Size etcd preallocates a WAL segment to.
pub const SEGMENT_BYTES: u64 = 64 * 1000 * 1000;

const METADATA: i64 = 1;
const ENTRY: i64 = 2;
const STATE: i64 = 3;
const CRC: i64 = 4;
const SNAPSHOT: i64 = 5;

pub use super::target::Target;

struct WalBuf {
    out: Vec<u8>,
    crc: u32,
}

impl WalBuf {
    fn record(&mut self, record_type: i64, data: Option<Vec<u8>>) {
        if let Some(d) = &data {
            self.crc = crc32c::crc32c_append(self.crc, d);
        }
        let rec = encode(&Record {
            record_type: Some(record_type),
            crc: Some(self.crc),
            data,
        });
        let pad = (8 - rec.len() % 8) % 8;
        let mut frame = rec.len() as u64;
        if pad > 0 {
            frame |= (0x80 | pad as u64) << 56;
        }
        self.out.extend_from_slice(&frame.to_le_bytes());
        self.out.extend_from_slice(&rec);
        self.out.extend(std::iter::repeat_n(0u8, pad));
    }
}

/// The member's JSON as etcd stores it (Go's encoding: `<`, `>`, `&` escaped).
pub fn member_json(m: &Member) -> String {
    let urls: Vec<String> = m.peer_urls.iter().map(|u| go_json_string(u)).collect();
    format!(
        "{{\"id\":{},\"peerURLs\":[{}],\"name\":{}}}",
        m.id,
        urls.join(","),
        go_json_string(&m.name)
    )
}

/// A JSON string as Go's encoding/json writes it (HTML-safe).
pub fn go_json_string(s: &str) -> String {
    let j = serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into());
    j.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

/// The voters; 3.7's protobuf-go leaves the unset auto_leave out, gogo writes false.
fn conf_state(cluster: &Cluster, target: Target) -> ConfState {
    ConfState {
        voters: cluster.members.iter().map(|m| m.id).collect(),
        auto_leave: (target < Target::V37).then_some(false),
    }
}

/// The bytes of the first WAL segment for `node` (not yet preallocated).
pub fn wal_bytes(cluster: &Cluster, node: u64, target: Target) -> Vec<u8> {
    let n = cluster.members.len() as u64;
    let mut w = WalBuf {
        out: Vec::new(),
        crc: 0,
    };
    w.record(CRC, None);
    w.record(
        METADATA,
        Some(encode(&Metadata {
            node_id: Some(node),
            cluster_id: Some(cluster.cluster_id),
        })),
    );
    w.record(
        SNAPSHOT,
        Some(encode(&WalSnapshot {
            index: Some(0),
            term: Some(0),
            conf_state: None,
        })),
    );
    for (i, m) in cluster.members.iter().enumerate() {
        let cc = ConfChange {
            // 3.7 (protobuf-go) leaves the unset id out; gogo writes 0.
            id: (target < Target::V37).then_some(0),
            change_type: Some(0),
            node_id: Some(m.id),
            context: Some(member_json(m).into_bytes()),
        };
        w.record(
            ENTRY,
            Some(encode(&Entry {
                entry_type: Some(1),
                term: Some(1),
                index: Some(i as u64 + 1),
                data: Some(encode(&cc)),
            })),
        );
    }
    w.record(
        STATE,
        Some(encode(&HardState {
            term: Some(1),
            vote: cluster.members.first().map(|m| m.id),
            commit: Some(n),
        })),
    );
    w.record(
        SNAPSHOT,
        Some(encode(&WalSnapshot {
            index: Some(n),
            term: Some(1),
            conf_state: (target != Target::V34).then(|| conf_state(cluster, target)),
        })),
    );
    w.out
}

/// The v2 store JSON etcdutl writes into the .snap: the members under
/// `/0/members` (3.4/3.5 keep their whole store; 3.6/3.7 build this
/// membership-only one, whose one failed lookup shows as getsFail 1).
pub fn v2_store_json(cluster: &Cluster, target: Target) -> String {
    let gets_fail = u8::from(target >= Target::V36);
    const NO_EXPIRE: &str = "\"ExpireTime\":\"0001-01-01T00:00:00Z\"";
    let node = |path: &str, idx: usize, value: &str, children: &str| {
        format!(
            "{{\"Path\":{},\"CreatedIndex\":{idx},\"ModifiedIndex\":{idx},{NO_EXPIRE},\"Value\":{},\"Children\":{children}}}",
            go_json_string(path),
            go_json_string(value)
        )
    };
    let n = cluster.members.len();
    let mut members = Vec::new();
    let mut events = Vec::new();
    for (i, m) in cluster.members.iter().enumerate() {
        let idx = i + 1;
        let hex = format!("{:x}", m.id);
        let dir = format!("/0/members/{hex}");
        let raft_path = format!("{dir}/raftAttributes");
        let urls: Vec<String> = m.peer_urls.iter().map(|u| go_json_string(u)).collect();
        let raft = format!("{{\"peerURLs\":[{}]}}", urls.join(","));
        let attrs = node(&raft_path, idx, &raft, "null");
        members.push(format!(
            "{}:{}",
            go_json_string(&hex),
            node(&dir, idx, "", &format!("{{\"raftAttributes\":{attrs}}}"))
        ));
        events.push(format!(
            "{{\"action\":\"create\",\"node\":{{\"key\":{},\"value\":{},\"modifiedIndex\":{idx},\"createdIndex\":{idx}}}}}",
            go_json_string(&raft_path),
            go_json_string(&raft)
        ));
    }
    // Go sorts map keys: member directories by their hex ID.
    let mut sorted: Vec<(String, String)> = cluster
        .members
        .iter()
        .map(|m| format!("{:x}", m.id))
        .zip(members)
        .collect();
    sorted.sort();
    let members_dir = node(
        "/0/members",
        1,
        "",
        &format!(
            "{{{}}}",
            sorted
                .into_iter()
                .map(|(_, s)| s)
                .collect::<Vec<_>>()
                .join(",")
        ),
    );
    let zero = node("/0", 0, "", &format!("{{\"members\":{members_dir}}}"));
    let one = node("/1", 0, "", "{}");
    let root = node("/", 0, "", &format!("{{\"0\":{zero},\"1\":{one}}}"));
    let mut queue: Vec<String> = events;
    queue.resize(1000, "null".into());
    format!(
        "{{\"Root\":{root},\"WatcherHub\":{{\"EventHistory\":{{\"Queue\":{{\"Events\":[{}],\"Size\":{n},\"Front\":0,\"Back\":{n},\"Capacity\":1000}},\"StartIndex\":1,\"LastIndex\":{n}}}}},\"CurrentIndex\":{n},\"Stats\":{{\"getsSuccess\":0,\"getsFail\":{gets_fail},\"setsSuccess\":0,\"setsFail\":0,\"deleteSuccess\":0,\"deleteFail\":0,\"updateSuccess\":0,\"updateFail\":0,\"createSuccess\":{n},\"createFail\":0,\"compareAndSwapSuccess\":0,\"compareAndSwapFail\":0,\"compareAndDeleteSuccess\":0,\"compareAndDeleteFail\":0,\"expireCount\":0,\"watchers\":0}},\"CurrentVersion\":2}}",
        queue.join(",")
    )
}

/// The .snap file name and bytes.
pub fn snap_file(cluster: &Cluster, target: Target) -> (String, Vec<u8>) {
    let n = cluster.members.len() as u64;
    let snap = encode(&Snapshot {
        data: Some(v2_store_json(cluster, target).into_bytes()),
        metadata: Some(SnapshotMetadata {
            conf_state: Some(conf_state(cluster, target)),
            index: Some(n),
            term: Some(1),
        }),
    });
    let file = encode(&SnapFile {
        crc: Some(crc32c::crc32c(&snap)),
        data: Some(snap),
    });
    (format!("{:016x}-{:016x}.snap", 1, n), file)
}
