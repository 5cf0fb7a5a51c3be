//! The header of an inspection: what the small buckets say about the cluster
//! the snapshot came from (meta, cluster, members, alarms). Each value that
//! does not parse is named in a note instead of failing the command: the
//! structure checks belong to `verify`.

use std::ops::ControlFlow;

use serde::Serialize;

use crate::backend::meta::MetaInfo;
use crate::backend::{ALARM, CLUSTER, MEMBERS, META};
use crate::bolt::Db;
use crate::bolt::read::{self, Bucket, ReadError};
use crate::protowire::{Fields, Value};

/// Who the snapshot belongs to: revisions, versions, cluster and members, alarms.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Header {
    /// The keyspace's current revision.
    pub revision: i64,
    /// The revision it is compacted at, if any.
    pub compacted_revision: Option<i64>,
    /// The last raft index applied.
    pub consistent_index: Option<u64>,
    /// The raft term of that index.
    pub term: Option<u64>,
    /// The storage version (etcd 3.6 and later).
    pub storage_version: Option<String>,
    /// The cluster version the members agreed on.
    pub cluster_version: Option<String>,
    /// etcd derives the cluster ID from the member IDs at bootstrap; the file
    /// does not store it, so this is that derivation over today's members
    /// (it differs when members were replaced since).
    pub cluster_id: Option<String>,
    /// The members, by ID.
    pub members: Vec<Member>,
    /// The alarms raised.
    pub alarms: Vec<Alarm>,
    /// Values of these buckets that could not be read.
    pub notes: Vec<String>,
}

/// A member as the members bucket records it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    /// The member ID, in hex.
    pub id: String,
    /// The member's name (empty until it started).
    pub name: String,
    /// etcd's own names for these fields.
    #[serde(rename = "peerURLs")]
    pub peer_urls: Vec<String>,
    /// Its client URLs.
    #[serde(rename = "clientURLs")]
    pub client_urls: Vec<String>,
    /// Whether it is a learner.
    pub is_learner: bool,
}

/// A raised alarm and the member that raised it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Alarm {
    /// The member that raised it, in hex.
    pub member_id: String,
    /// The alarm (`NOSPACE`, `CORRUPT`).
    pub alarm: String,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct MemberJson {
    id: u64,
    #[serde(default)]
    name: String,
    #[serde(default, rename = "peerURLs")]
    peer_urls: Vec<String>,
    #[serde(default, rename = "clientURLs")]
    client_urls: Vec<String>,
    #[serde(default)]
    is_learner: bool,
}

fn each<'a>(
    db: &Db<'a>,
    buckets: &[Bucket<'a>],
    name: &[u8],
    mut f: impl FnMut(&'a [u8], &'a [u8]),
) -> Result<(), ReadError> {
    if let Some(b) = buckets.iter().find(|b| b.name == name) {
        read::for_each(db, b, |e| {
            if !e.is_bucket() {
                f(e.key, e.value);
            }
            ControlFlow::Continue(())
        })?;
    }
    Ok(())
}

fn alarm(key: &[u8]) -> Option<Alarm> {
    let (mut member, mut kind) = (0u64, 0u64);
    for f in Fields::new(key) {
        match f.ok()? {
            (1, Value::Varint(v)) => member = v,
            (2, Value::Varint(v)) => kind = v,
            _ => {}
        }
    }
    let alarm = match kind {
        0 => "NONE".to_string(),
        1 => "NOSPACE".to_string(),
        2 => "CORRUPT".to_string(),
        n => format!("alarm {n}"),
    };
    Some(Alarm {
        member_id: format!("{member:x}"),
        alarm,
    })
}

/// Reads the header buckets.
pub fn header<'a>(db: &Db<'a>, buckets: &[Bucket<'a>]) -> Result<Header, ReadError> {
    let mut h = Header::default();
    let mut meta = MetaInfo::default();
    each(db, buckets, META, |k, v| {
        if let Some(p) = meta.take(k, v) {
            h.notes.push(p.to_string());
        }
    })?;
    h.compacted_revision = meta.effective_compact_revision();
    h.consistent_index = meta.consistent_index;
    h.term = meta.term;
    h.storage_version = meta.storage_version;
    each(db, buckets, CLUSTER, |k, v| {
        if k == b"clusterVersion" {
            h.cluster_version = Some(String::from_utf8_lossy(v).into_owned());
        }
    })?;
    each(db, buckets, MEMBERS, |k, v| {
        match serde_json::from_slice::<MemberJson>(v) {
            Ok(m) => h.members.push(Member {
                id: format!("{:x}", m.id),
                name: m.name,
                peer_urls: m.peer_urls,
                client_urls: m.client_urls,
                is_learner: m.is_learner,
            }),
            Err(e) => h.notes.push(format!(
                "members/{}: not a member record: {e}",
                crate::problem::printable(k)
            )),
        }
    })?;
    each(db, buckets, ALARM, |k, _| match alarm(k) {
        Some(a) => h.alarms.push(a),
        None => h.notes.push(format!(
            "alarm/{}: not an alarm record",
            crate::problem::printable(k)
        )),
    })?;
    if !h.members.is_empty() {
        let ids: Vec<u64> = h
            .members
            .iter()
            .filter_map(|m| u64::from_str_radix(&m.id, 16).ok())
            .collect();
        h.cluster_id = Some(format!(
            "{:x}",
            crate::cluster::membership::cluster_id(&ids)
        ));
    }
    Ok(h)
}
