//! `put-back`: one object's stored bytes written back to the cluster in one
//! transaction that only succeeds when the key is absent (or still at the
//! mod revision the user names), so that it never overwrites a newer write.
//!
//! No lease is attached: the object lives until deleted, as the API server
//! writes objects (Events, whose lease expired, are the exception the user
//! chooses knowingly).
//!
//! The snapshot must come from the cluster it is written to: its cluster ID
//! (computed from the member IDs it records, as etcd computes it) is
//! compared with the one the member answers with, and, as that computed ID
//! no longer matches once members were added or replaced, its member IDs
//! with the live member list ([`same_cluster`]).

use etcd_client::{Compare, CompareOp, Txn, TxnOp, TxnOpResponse};

use super::connect::{Live, LiveError, Member};

/// When the write may happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// The key does not exist (create revision 0).
    Absent,
    /// The key's mod revision is exactly this.
    ModRevision(i64),
}

impl Condition {
    /// What the key must be: `absent`, `at mod revision N`.
    pub fn describe(&self) -> String {
        match self {
            Condition::Absent => "absent".into(),
            Condition::ModRevision(n) => format!("at mod revision {n}"),
        }
    }
}

/// How the transaction ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutBack {
    /// Written at this cluster revision.
    Written {
        /// The cluster revision of the write.
        revision: i64,
    },
    /// The compare failed: the key's current state.
    Refused {
        /// The key as the cluster holds it (none: absent).
        current: Option<Current>,
    },
}

/// The key as the cluster holds it when the compare failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Current {
    /// The revision that last modified the key.
    pub mod_revision: i64,
    /// The revision that created it.
    pub create_revision: i64,
    /// Puts since it was created.
    pub version: i64,
    /// The lease attached (0: none).
    pub lease: i64,
}

/// Writes `value` at `key` on the cluster `m` belongs to, under `cond`.
pub fn put_back(
    live: &Live,
    m: &Member,
    key: &[u8],
    value: &[u8],
    cond: Condition,
) -> Result<PutBack, LiveError> {
    let compare = match cond {
        Condition::Absent => Compare::create_revision(key.to_vec(), CompareOp::Equal, 0),
        Condition::ModRevision(n) => Compare::mod_revision(key.to_vec(), CompareOp::Equal, n),
    };
    let txn = Txn::new()
        .when([compare])
        .and_then([TxnOp::put(key.to_vec(), value.to_vec(), None)])
        .or_else([TxnOp::get(key.to_vec(), None)]);
    let mut c = m.client.clone();
    let resp = live.unary(m, "Txn", async move { c.txn(txn).await })?;
    if resp.succeeded() {
        let revision = resp.header().map_or(0, |h| h.revision());
        return Ok(PutBack::Written { revision });
    }
    let current = resp.op_responses().into_iter().find_map(|r| match r {
        TxnOpResponse::Get(g) => g.kvs().first().map(|kv| Current {
            mod_revision: kv.mod_revision(),
            create_revision: kv.create_revision(),
            version: kv.version(),
            lease: kv.lease(),
        }),
        _ => None,
    });
    Ok(PutBack::Refused { current })
}

/// The key's current state on the cluster, for `--dry-run`.
pub fn current(live: &Live, m: &Member, key: &[u8]) -> Result<Option<Current>, LiveError> {
    let mut c = m.client.clone();
    let k = key.to_vec();
    let resp = live.unary(m, "Range", async move { c.get(k, None).await })?;
    Ok(resp.kvs().first().map(|kv| Current {
        mod_revision: kv.mod_revision(),
        create_revision: kv.create_revision(),
        version: kv.version(),
        lease: kv.lease(),
    }))
}

/// Whether `cond` holds for the key's state `cur` (what the transaction
/// would decide, for `--dry-run`).
pub fn would_pass(cond: Condition, cur: Option<&Current>) -> bool {
    match (cond, cur) {
        (Condition::Absent, c) => c.is_none(),
        (Condition::ModRevision(n), Some(c)) => c.mod_revision == n,
        (Condition::ModRevision(_), None) => false,
    }
}

/// Which cluster a snapshot is of, as far as it records it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnapshotCluster {
    /// etcd's cluster ID computed from the member IDs it records (`None`
    /// when it records no member). It is the cluster's real ID as long as the
    /// membership is the one the cluster started with.
    pub id: Option<u64>,
    /// The member IDs it records.
    pub members: Vec<u64>,
}

/// The members the snapshot records, and the cluster ID they make.
pub fn snapshot_cluster(
    db: &crate::bolt::Db<'_>,
) -> Result<SnapshotCluster, crate::bolt::read::ReadError> {
    let buckets = crate::bolt::read::buckets(db)?;
    let h = crate::inspect::header::header(db, &buckets)?;
    Ok(SnapshotCluster {
        id: h.cluster_id.and_then(|c| u64::from_str_radix(&c, 16).ok()),
        members: h
            .members
            .iter()
            .filter_map(|m| u64::from_str_radix(&m.id, 16).ok())
            .collect(),
    })
}

/// The member IDs of the cluster `m` belongs to (its member list).
pub fn live_member_ids(live: &Live, m: &Member) -> Result<Vec<u64>, LiveError> {
    let mut c = m.client.clone();
    let list = live.unary(m, "MemberList", async move { c.member_list().await })?;
    Ok(list.members().iter().map(|x| x.id()).collect())
}

/// Whether the snapshot's cluster is the live one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameCluster {
    /// The cluster IDs are equal.
    Yes,
    /// The IDs differ but members are shared: the membership changed since
    /// the cluster started (a member added or replaced), which the ID
    /// computed from the snapshot's members does not follow.
    SharedMembers {
        /// The cluster ID computed from the snapshot's members.
        snapshot: u64,
        /// The live cluster's ID.
        live: u64,
        /// How many member IDs both have.
        shared: usize,
    },
    /// The IDs differ and no member is shared: (snapshot's, live).
    No {
        /// The cluster ID computed from the snapshot's members.
        snapshot: u64,
        /// The live cluster's ID.
        live: u64,
    },
    /// The snapshot records no member: the live cluster's ID.
    Unknown {
        /// The live cluster's ID.
        live: u64,
    },
}

/// Compares the snapshot's cluster with the live one (its ID and member
/// IDs).
pub fn same_cluster(snapshot: &SnapshotCluster, live: u64, live_members: &[u64]) -> SameCluster {
    let Some(s) = snapshot.id else {
        return SameCluster::Unknown { live };
    };
    if s == live {
        return SameCluster::Yes;
    }
    let shared = snapshot
        .members
        .iter()
        .filter(|id| live_members.contains(id))
        .count();
    if shared > 0 {
        SameCluster::SharedMembers {
            snapshot: s,
            live,
            shared,
        }
    } else {
        SameCluster::No { snapshot: s, live }
    }
}

/// The first endpoint that answers, in the order given (any member serves
/// the transaction); none answering is the first endpoint's error.
pub fn first_member(live: &Live) -> Result<Member, LiveError> {
    let mut first_err = None;
    for e in &live.spec.endpoints {
        match live.connect(e) {
            Ok(m) => return Ok(m),
            Err(err) => {
                first_err.get_or_insert(err);
            }
        }
    }
    Err(first_err.unwrap_or(LiveError::NoEndpoint))
}

/// Whether the object at `key` is a Secret: by its key under `prefix` or any
/// prefix (a forgotten `--prefix`), or by what its value says it is.
pub fn is_secret(key: &[u8], value: &[u8], prefix: &str) -> bool {
    use crate::kube::redact::{is_secret_key, is_secret_key_any_prefix, value_is_secret};
    is_secret_key(key, prefix) || is_secret_key_any_prefix(key) || value_is_secret(value)
}

/// The first member that answers, and whether `snapshot` is of its cluster
/// ([`same_cluster`] against the live member list).
pub fn check_cluster(
    live: &Live,
    snapshot: &SnapshotCluster,
) -> Result<(Member, SameCluster), LiveError> {
    let m = first_member(live)?;
    let live_members = live_member_ids(live, &m)?;
    let same = same_cluster(snapshot, m.cluster_id(), &live_members);
    Ok((m, same))
}

/// What [`write_or_try`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// A dry run: the key's current state, and whether the write would pass.
    DryRun {
        /// The key as the cluster holds it (none: absent).
        current: Option<Current>,
        /// Whether `cond` holds for it.
        pass: bool,
    },
    /// The transaction ran.
    Ran(PutBack),
}

/// [`put_back`], or with `dry_run` what it would decide ([`current`],
/// [`would_pass`]), writing nothing.
pub fn write_or_try(
    live: &Live,
    m: &Member,
    key: &[u8],
    value: &[u8],
    cond: Condition,
    dry_run: bool,
) -> Result<Attempt, LiveError> {
    if dry_run {
        let current = current(live, m, key)?;
        let pass = would_pass(cond, current.as_ref());
        return Ok(Attempt::DryRun { current, pass });
    }
    Ok(Attempt::Ran(put_back(live, m, key, value, cond)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_ids_compare() {
        let snap = |id: Option<u64>, members: &[u64]| SnapshotCluster {
            id,
            members: members.to_vec(),
        };
        assert_eq!(
            same_cluster(&snap(Some(7), &[1, 2]), 7, &[9]),
            SameCluster::Yes
        );
        assert_eq!(
            same_cluster(&snap(Some(7), &[1, 2]), 8, &[3, 4]),
            SameCluster::No {
                snapshot: 7,
                live: 8
            }
        );
        assert_eq!(
            same_cluster(&snap(Some(7), &[1, 2]), 8, &[2, 3]),
            SameCluster::SharedMembers {
                snapshot: 7,
                live: 8,
                shared: 1
            }
        );
        assert_eq!(
            same_cluster(&snap(None, &[]), 8, &[1]),
            SameCluster::Unknown { live: 8 }
        );
    }
}
