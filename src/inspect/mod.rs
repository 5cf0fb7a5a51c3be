//! `inspect`: the triage view of a snapshot — the cluster it came from, what
//! fills it (per resource, per namespace, the largest objects, events,
//! leases), what defragmentation and compaction would give back, and what is
//! stored in clear or does not decode.
//!
//! The key bucket is read once, on all cores ([`walk`]); the small buckets are
//! read beside it. Values are looked at in place in the mapped file and never
//! collected, so memory grows with the number of keys, not their bytes.

pub mod figures;
pub mod header;
pub mod html;
pub mod layout;
pub mod space;
pub mod walk;

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::backend::LEASE;
use crate::bolt::Db;
use crate::bolt::read::{self, ReadError};
use crate::mvcc::keyspace::{KeySpace, KeySpaceError};
use crate::protowire::{Fields, Value};

pub use figures::{Events, ObjectSize, Security, Usage};
pub use header::Header;
pub use space::Space;

/// Why a snapshot cannot be inspected.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// The buckets cannot be read.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The keyspace cannot be read.
    #[error(transparent)]
    KeySpace(#[from] KeySpaceError),
}

/// What to inspect and how much to show.
#[derive(Debug, Clone)]
pub struct Options {
    /// kube-apiserver's --etcd-prefix.
    pub prefix: String,
    /// How many namespaces and objects the top lists hold.
    pub top: usize,
    /// Only this namespace's objects in the per-resource and object figures.
    pub namespace: Option<String>,
}

/// A figure with the name it is for (a resource, a namespace).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Named<T> {
    /// The resource or namespace.
    pub name: String,
    /// Its figures.
    #[serde(flatten)]
    pub usage: T,
}

/// The leases and the keys attached to them.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Leases {
    /// Leases in the file.
    pub count: u64,
    /// The shortest TTL, in seconds.
    pub ttl_min: Option<i64>,
    /// The median TTL, in seconds.
    pub ttl_median: Option<i64>,
    /// The longest TTL, in seconds.
    pub ttl_max: Option<i64>,
    /// Live keys attached to a lease the file holds.
    pub keys_attached: u64,
    /// Live keys attached to a lease the file does not hold.
    pub keys_on_missing_leases: u64,
    /// The leases with the most keys (ID in hex, TTL, keys).
    pub top: Vec<LeaseKeys>,
}

/// A lease with the live keys attached to it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaseKeys {
    /// The lease ID, in hex.
    pub id: String,
    /// Its TTL in seconds, when the file holds the lease.
    pub ttl: Option<i64>,
    /// Live keys attached.
    pub keys: u64,
}

/// Everything `inspect` shows of a snapshot.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Inspection {
    /// Who the snapshot belongs to.
    pub header: Header,
    /// The namespace the figures are limited to, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Per resource, most bytes (live and history) first.
    pub resources: Vec<Named<Usage>>,
    /// Per namespace, most bytes first, the top N.
    pub namespaces: Vec<Named<Usage>>,
    /// How many namespaces there are in all.
    pub namespace_count: u64,
    /// The largest live objects, largest first.
    pub largest_objects: Vec<ObjectSize>,
    /// What events take.
    pub events: EventsShare,
    /// The leases.
    pub leases: Leases,
    /// Where the bytes go.
    pub space: Space,
    /// The security figures.
    pub security: Security,
    /// Where the bytes go, per resource and namespace: what the space map
    /// of `--html` draws. Per resource, its namespaces with the most bytes
    /// (the top N), the others in one cell.
    pub space_map: Vec<SpaceCell>,
}

/// One cell of the space map: a resource's objects in one namespace.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SpaceCell {
    /// The resource (`configmaps`, `deployments.apps`; `(other keys)`).
    pub resource: String,
    /// The namespace (none: cluster-scoped objects, or the others).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// When the cell holds the resource's remaining namespaces: how many.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub other_namespaces: Option<u64>,
    /// Live objects.
    pub live_objects: u64,
    /// Value bytes of the live objects.
    pub live_bytes: u64,
    /// Value bytes of the older revisions.
    pub history_bytes: u64,
    /// The cell's largest live object (none for the other namespaces'
    /// cell): the third level of the map.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub largest: Option<ObjectSize>,
}

/// The space map's cells: per resource (most bytes first), its namespaces
/// with the most bytes, at most `top`, then one cell for the rest.
/// A resource's cells: (namespace, figures).
type Cells = Vec<(Option<String>, Usage)>;

fn space_map(cells: HashMap<(String, Option<String>), Usage>, top: usize) -> Vec<SpaceCell> {
    let mut per: BTreeMap<String, Cells> = BTreeMap::new();
    for ((r, ns), u) in cells {
        per.entry(r).or_default().push((ns, u));
    }
    let mut resources: Vec<(String, Cells)> = per.into_iter().collect();
    let total = |v: &[(Option<String>, Usage)]| v.iter().map(|(_, u)| u.total_bytes()).sum::<u64>();
    resources.sort_by(|a, b| total(&b.1).cmp(&total(&a.1)).then_with(|| a.0.cmp(&b.0)));
    let mut out = Vec::new();
    for (resource, mut cells) in resources {
        cells.sort_by(|a, b| {
            b.1.total_bytes()
                .cmp(&a.1.total_bytes())
                .then_with(|| a.0.cmp(&b.0))
        });
        let cell = |namespace: Option<String>, other: Option<u64>, u: &Usage| SpaceCell {
            resource: resource.clone(),
            namespace,
            other_namespaces: other,
            live_objects: u.live_objects,
            live_bytes: u.live_bytes,
            history_bytes: u.history_bytes,
            largest: if other.is_some() {
                None
            } else {
                u.largest.clone()
            },
        };
        let keep = top.max(1);
        for (ns, u) in cells.iter().take(keep) {
            out.push(cell(ns.clone(), None, u));
        }
        if cells.len() > keep {
            let mut rest = Usage::default();
            for (_, u) in &cells[keep..] {
                rest.add_counts(u);
            }
            out.push(cell(None, Some((cells.len() - keep) as u64), &rest));
        }
    }
    out
}

/// Kubernetes events, with their share of the file.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventsShare {
    /// The events' figures.
    #[serde(flatten)]
    pub events: Events,
    /// `storedBytes` over the file's size.
    pub share_of_file: f64,
}

/// (lease ID, TTL) of each record of the lease bucket.
fn leases(db: &Db<'_>, buckets: &[read::Bucket<'_>]) -> Result<Vec<(i64, i64)>, ReadError> {
    let mut out = Vec::new();
    if let Some(b) = buckets.iter().find(|b| b.name == LEASE) {
        read::for_each(db, b, |e| {
            let (mut id, mut ttl) = (None, 0i64);
            for f in Fields::new(e.value) {
                match f {
                    Ok((1, Value::Varint(v))) => id = Some(v as i64),
                    Ok((2, Value::Varint(v))) => ttl = v as i64,
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
            // The key is the ID (8 bytes, big-endian) when the record lacks it.
            let id = id.or_else(|| e.key.try_into().ok().map(i64::from_be_bytes));
            if let Some(id) = id {
                out.push((id, ttl));
            }
            std::ops::ControlFlow::Continue(())
        })?;
    }
    Ok(out)
}

fn lease_figures(list: &[(i64, i64)], keys: &HashMap<i64, u64>, top: usize) -> Leases {
    let mut ttls: Vec<i64> = list.iter().map(|l| l.1).collect();
    ttls.sort_unstable();
    let known: HashMap<i64, i64> = list.iter().copied().collect();
    let mut attached = 0;
    let mut missing = 0;
    for (id, n) in keys {
        if known.contains_key(id) {
            attached += n;
        } else {
            missing += n;
        }
    }
    let mut by_keys: Vec<LeaseKeys> = keys
        .iter()
        .map(|(id, n)| LeaseKeys {
            id: format!("{:x}", *id as u64),
            ttl: known.get(id).copied(),
            keys: *n,
        })
        .collect();
    by_keys.sort_by(|a, b| b.keys.cmp(&a.keys).then_with(|| a.id.cmp(&b.id)));
    by_keys.truncate(top);
    Leases {
        count: list.len() as u64,
        ttl_min: ttls.first().copied(),
        ttl_median: ttls.get(ttls.len() / 2).copied(),
        ttl_max: ttls.last().copied(),
        keys_attached: attached,
        keys_on_missing_leases: missing,
        top: by_keys,
    }
}

fn ranked(map: HashMap<String, Usage>) -> Vec<Named<Usage>> {
    let mut v: Vec<Named<Usage>> = map
        .into_iter()
        .map(|(name, usage)| Named { name, usage })
        .collect();
    v.sort_by(|a, b| {
        b.usage
            .total_bytes()
            .cmp(&a.usage.total_bytes())
            .then_with(|| a.name.cmp(&b.name))
    });
    v
}

/// Inspects an opened snapshot.
pub fn inspect(db: &Db<'_>, opts: &Options) -> Result<Inspection, InspectError> {
    let buckets = read::buckets(db)?;
    let ks = KeySpace::open(db)?;
    // The key bucket on all cores; the small buckets beside it.
    let (walked, small) = rayon::join(
        || walk::walk(&ks),
        || -> Result<_, ReadError> {
            let h = header::header(db, &buckets)?;
            let l = leases(db, &buckets)?;
            let others = space::other_buckets(db, &buckets)?;
            let in_use = space::pages_in_use(db, &buckets);
            Ok((h, l, others, in_use))
        },
    );
    let walked = walked?;
    let (mut header, lease_list, others, in_use) = small?;
    header.revision = ks.current_revision;
    if header.compacted_revision.is_none() {
        header.compacted_revision = ks.compact_revision;
    }
    let figs = figures::figures(
        &walked.keys,
        &opts.prefix,
        opts.top,
        opts.namespace.as_deref(),
    );
    let space = space::space(
        db,
        &walked,
        &others,
        header.revision,
        &header.alarms,
        in_use,
    );
    let file = db.data().len() as f64;
    let share = if file > 0.0 {
        figs.events.stored_bytes as f64 / file
    } else {
        0.0
    };
    let leases = lease_figures(&lease_list, &figs.lease_keys, opts.top);
    let security = figs.security();
    let namespace_count = figs.namespaces.len() as u64;
    let mut namespaces = ranked(figs.namespaces);
    namespaces.truncate(opts.top);
    Ok(Inspection {
        header,
        namespace: opts.namespace.clone(),
        resources: ranked(figs.resources),
        namespaces,
        namespace_count,
        largest_objects: figs.largest,
        events: EventsShare {
            events: figs.events,
            share_of_file: share,
        },
        leases,
        space,
        security,
        space_map: space_map(figs.cells, opts.top),
    })
}
