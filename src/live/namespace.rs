//! Namespace recovery's live half: a [`Plan`] of a snapshot's objects
//! written back to the cluster where, and only where, their keys are absent.
//!
//! First every key of the plan (and of owners outside it) is read, in
//! bounded read-only transactions. Then, before anything is written:
//! - a Namespace being deleted stops everything, whether the cluster holds
//!   it so (the namespace controller would delete whatever is written into
//!   it) or the snapshot does (written back, it would be deleted again);
//! - objects with a lease (Events) are left out unless asked for, as written
//!   back without their lease they would never expire;
//! - objects whose `ownerReferences` name a uid that neither the cluster
//!   holds nor the put-back writes are listed: the garbage collector would
//!   delete them. The caller chooses to stop, leave them out (and, in turn,
//!   what they own), or write them anyway.
//!
//! Writes go in plan order, in transactions of at most [`BATCH`] objects and
//! [`BATCH_BYTES`] of values (below etcd's default `--max-txn-ops` 128 and
//! request size 1.5 MiB), each guarded by a create-revision-0 compare per
//! key, so nothing present is ever overwritten. A batch whose compare fails
//! (a key created since it was read) is retried key by key, each one written
//! or refused alone. A signal stops the run between two transactions.

use std::collections::{HashMap, HashSet};

use etcd_client::{Compare, CompareOp, Txn, TxnOp, TxnOpResponse};
use serde::Serialize;

use super::connect::{Live, LiveError, Member};
use super::putback::{Condition, PutBack, put_back};
use crate::kube::namespace::{OwnerRef, Plan, terminating};
use crate::report::escape_bytes;

/// Objects per transaction at most.
pub const BATCH: usize = 64;
/// Bytes of values per transaction at most (an object larger goes alone).
pub const BATCH_BYTES: usize = 1 << 20;

/// What to do with objects whose owner no longer exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Dangling {
    /// Write nothing and list them (the default: the user chooses).
    Stop,
    /// Leave them out, and what they own.
    LeaveOut,
    /// Write them anyway (the garbage collector will delete them unless the
    /// owner comes back).
    Write,
}

/// How to put back.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Read and decide, write nothing.
    pub dry_run: bool,
    /// Objects whose owner is gone.
    pub dangling: Dangling,
    /// Write objects that had a lease too (without it).
    pub include_leased: bool,
}

/// What became of one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "fate", rename_all = "camelCase")]
pub enum Fate {
    /// Written at this cluster revision.
    Written {
        /// The cluster revision of its transaction.
        revision: i64,
    },
    /// `--dry-run`: it would be written.
    WouldWrite,
    /// The key is present in the cluster: left as it is.
    #[serde(rename_all = "camelCase")]
    AlreadyThere {
        /// Its mod revision in the cluster.
        mod_revision: i64,
    },
    /// Absent when read, present when written (created meanwhile): the
    /// compare failed and nothing was written.
    #[serde(rename_all = "camelCase")]
    Refused {
        /// Its mod revision in the cluster then, when known.
        mod_revision: Option<i64>,
    },
    /// Not written, and why.
    LeftOut {
        /// Why.
        reason: String,
    },
}

/// One object of the plan and its fate.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// `resource/namespace/name` (escaped).
    pub object: String,
    /// Its key (escaped).
    pub key: String,
    /// Bytes of its value.
    pub bytes: usize,
    /// What became of it.
    #[serde(flatten)]
    pub fate: Fate,
}

/// An object whose owner is gone.
#[derive(Debug, Clone, Serialize)]
pub struct DanglingRef {
    /// The object (`resource/namespace/name`, escaped).
    pub object: String,
    /// The owner it names (names escaped).
    pub owner: OwnerRef,
}

/// Why nothing (more) was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "camelCase")]
pub enum Stopped {
    /// The Namespace is being deleted: in the cluster, or already in the
    /// snapshot (written back, it would be deleted again with its objects).
    #[serde(rename_all = "camelCase")]
    NamespaceTerminating {
        /// What says so.
        state: String,
        /// Whether the snapshot's Namespace says so (else the cluster's).
        in_snapshot: bool,
    },
    /// Objects name owners that are gone, and no choice was made.
    DanglingOwners,
    /// A signal arrived; the objects after `written` were not written.
    Interrupted,
}

/// The put-back's report.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The member that served the reads and writes.
    pub endpoint: String,
    /// The snapshot revision the objects are of.
    pub snapshot_revision: i64,
    /// Every object of the plan, in write order.
    pub objects: Vec<Row>,
    /// Objects whose owner is gone (whatever was done with them).
    pub dangling: Vec<DanglingRef>,
    /// Why the run stopped before writing everything, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<Stopped>,
}

impl Report {
    /// How many objects met a fate like `f`.
    pub fn count(&self, f: impl Fn(&Fate) -> bool) -> usize {
        self.objects.iter().filter(|r| f(&r.fate)).count()
    }

    /// Whether everything the plan meant to write is written (or, dry, would
    /// be): nothing refused, nothing stopped.
    pub fn complete(&self) -> bool {
        self.stopped.is_none() && self.count(|f| matches!(f, Fate::Refused { .. })) == 0
    }
}

/// A key's state in the cluster.
struct Now {
    mod_revision: i64,
    value: Vec<u8>,
}

/// Reads `keys` in read-only transactions of [`BATCH`].
fn read_all(live: &Live, m: &Member, keys: &[&[u8]]) -> Result<Vec<Option<Now>>, LiveError> {
    let mut out = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(BATCH) {
        let ops: Vec<TxnOp> = chunk.iter().map(|k| TxnOp::get(k.to_vec(), None)).collect();
        let mut c = m.client.clone();
        let resp = live.unary(
            m,
            "Txn",
            async move { c.txn(Txn::new().and_then(ops)).await },
        )?;
        let mut got = resp.op_responses().into_iter().map(|r| match r {
            TxnOpResponse::Get(g) => g.kvs().first().map(|kv| Now {
                mod_revision: kv.mod_revision(),
                value: kv.value().to_vec(),
            }),
            _ => None,
        });
        for _ in chunk {
            out.push(got.next().flatten());
        }
    }
    Ok(out)
}

/// Puts back what `plan` holds on the cluster `m` belongs to.
pub fn put_back_plan(
    live: &Live,
    m: &Member,
    plan: &Plan<'_>,
    opts: Options,
) -> Result<Report, LiveError> {
    let n = plan.objects.len();
    let mut keys: Vec<&[u8]> = plan.objects.iter().map(|o| o.key).collect();
    keys.extend(plan.outside_owners.values().map(Vec::as_slice));
    let now = read_all(live, m, &keys)?;
    let mut report = Report {
        endpoint: m.endpoint.clone(),
        snapshot_revision: plan.revision,
        objects: Vec::with_capacity(n),
        dangling: Vec::new(),
        stopped: None,
    };
    let mut fates: Vec<Option<Fate>> = vec![None; n];
    for (i, o) in plan.objects.iter().enumerate() {
        if let Some(cur) = &now[i] {
            fates[i] = Some(Fate::AlreadyThere {
                mod_revision: cur.mod_revision,
            });
            let is_ns = o
                .place
                .as_ref()
                .is_some_and(|p| p.resource == "namespaces" && p.namespace.is_none());
            if is_ns && let Some(state) = terminating(&cur.value) {
                report.stopped = Some(Stopped::NamespaceTerminating {
                    state,
                    in_snapshot: false,
                });
            }
        } else if is_namespace(o)
            && let Some(state) = terminating(o.value)
        {
            // Written back, it would be deleted again with all it holds.
            report.stopped = Some(Stopped::NamespaceTerminating {
                state,
                in_snapshot: true,
            });
        } else if o.lease != 0 && !opts.include_leased {
            fates[i] = Some(Fate::LeftOut {
                reason: format!("it had lease {:x} (Events expire through one)", o.lease),
            });
        }
    }
    // The uids the cluster will hold: those present now (a key present
    // whose value does not decode, encrypted, is taken to hold the
    // snapshot's object), then those written.
    let snapshot_uids = plan
        .objects
        .iter()
        .map(|o| o.uid.clone())
        .chain(plan.outside_owners.keys().map(|u| Some(u.clone())));
    let mut present: HashSet<String> = HashSet::new();
    for (cur, uid) in now.iter().zip(snapshot_uids) {
        if let Some(cur) = cur
            && let Some(u) = match crate::kube::value::decode(&cur.value) {
                Ok(obj) => obj["metadata"]["uid"].as_str().map(str::to_string),
                Err(_) => uid,
            }
        {
            present.insert(u);
        }
    }
    let mut dangling_at: HashMap<usize, OwnerRef> = HashMap::new();
    loop {
        let writing: HashSet<&str> = plan
            .objects
            .iter()
            .zip(&fates)
            .filter(|(_, f)| f.is_none())
            .filter_map(|(o, _)| o.uid.as_deref())
            .collect();
        let mut newly = Vec::new();
        for (i, o) in plan.objects.iter().enumerate() {
            if fates[i].is_some() || dangling_at.contains_key(&i) {
                continue;
            }
            if let Some(gone) = o
                .owners
                .iter()
                .find(|r| !present.contains(&r.uid) && !writing.contains(r.uid.as_str()))
            {
                newly.push((i, gone.clone()));
            }
        }
        if newly.is_empty() {
            break;
        }
        for (i, gone) in newly {
            if opts.dangling == Dangling::LeaveOut {
                fates[i] = Some(Fate::LeftOut {
                    reason: format!(
                        "its owner {} {} (uid {}) is gone",
                        escape_bytes(gone.kind.as_bytes()),
                        escape_bytes(gone.name.as_bytes()),
                        escape_bytes(gone.uid.as_bytes())
                    ),
                });
            }
            dangling_at.insert(i, gone);
        }
        if opts.dangling != Dangling::LeaveOut {
            break;
        }
    }
    let mut dangling: Vec<(usize, OwnerRef)> = dangling_at.into_iter().collect();
    dangling.sort_by_key(|(i, _)| *i);
    report.dangling = dangling
        .into_iter()
        .map(|(i, o)| DanglingRef {
            object: escape_bytes(plan.objects[i].describe().as_bytes()),
            owner: OwnerRef {
                api_version: escape_bytes(o.api_version.as_bytes()),
                kind: escape_bytes(o.kind.as_bytes()),
                name: escape_bytes(o.name.as_bytes()),
                uid: escape_bytes(o.uid.as_bytes()),
            },
        })
        .collect();
    if report.stopped.is_none() && opts.dangling == Dangling::Stop && !report.dangling.is_empty() {
        report.stopped = Some(Stopped::DanglingOwners);
    }
    if report.stopped.is_none() {
        write(live, m, plan, opts, &mut fates, &mut report)?;
    }
    for (o, f) in plan.objects.iter().zip(fates) {
        report.objects.push(Row {
            object: escape_bytes(o.describe().as_bytes()),
            key: escape_bytes(o.key),
            bytes: o.value.len(),
            fate: f.unwrap_or(Fate::LeftOut {
                reason: match &report.stopped {
                    Some(Stopped::Interrupted) => "interrupted before it was written".into(),
                    _ => "nothing was written".into(),
                },
            }),
        });
    }
    Ok(report)
}

/// Whether `o` is a Namespace object.
fn is_namespace(o: &crate::kube::namespace::Object<'_>) -> bool {
    o.place
        .as_ref()
        .is_some_and(|p| p.resource == "namespaces" && p.namespace.is_none())
}

/// Writes the objects whose fate is still open, in order, in batches.
fn write(
    live: &Live,
    m: &Member,
    plan: &Plan<'_>,
    opts: Options,
    fates: &mut [Option<Fate>],
    report: &mut Report,
) -> Result<(), LiveError> {
    let todo: Vec<usize> = (0..fates.len()).filter(|&i| fates[i].is_none()).collect();
    if opts.dry_run {
        for i in todo {
            fates[i] = Some(Fate::WouldWrite);
        }
        return Ok(());
    }
    let mut batches: Vec<Vec<usize>> = Vec::new();
    let mut bytes = 0;
    for i in todo {
        let size = plan.objects[i].value.len();
        match batches.last_mut() {
            Some(b) if b.len() < BATCH && bytes + size <= BATCH_BYTES => {
                b.push(i);
                bytes += size;
            }
            _ => {
                batches.push(vec![i]);
                bytes = size;
            }
        }
    }
    for batch in batches {
        if crate::interrupt::requested().is_some() {
            report.stopped = Some(Stopped::Interrupted);
            return Ok(());
        }
        let compares: Vec<Compare> = batch
            .iter()
            .map(|&i| Compare::create_revision(plan.objects[i].key.to_vec(), CompareOp::Equal, 0))
            .collect();
        let puts: Vec<TxnOp> = batch
            .iter()
            .map(|&i| {
                let o = &plan.objects[i];
                TxnOp::put(o.key.to_vec(), o.value.to_vec(), None)
            })
            .collect();
        let mut c = m.client.clone();
        let txn = Txn::new().when(compares).and_then(puts);
        let resp = live.unary(m, "Txn", async move { c.txn(txn).await })?;
        if resp.succeeded() {
            let revision = resp.header().map_or(0, |h| h.revision());
            for &i in &batch {
                fates[i] = Some(Fate::Written { revision });
            }
            continue;
        }
        // A key was created since it was read: one by one.
        for &i in &batch {
            let o = &plan.objects[i];
            fates[i] = Some(
                match put_back(live, m, o.key, o.value, Condition::Absent)? {
                    PutBack::Written { revision } => Fate::Written { revision },
                    PutBack::Refused { current } => Fate::Refused {
                        mod_revision: current.map(|c| c.mod_revision),
                    },
                },
            );
        }
    }
    Ok(())
}
