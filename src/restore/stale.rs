//! What a restore brings back stale, reported before restoring so the operator
//! knows what to clean: leases (and the keys attached to them, such as events
//! and master leases), the apiservers' `/registry/masterleases/` entries, the
//! `default/kubernetes` endpoints, node objects, and alarms — a NOSPACE alarm
//! keeps the restored cluster read-only until it is disarmed.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use serde::Serialize;

use crate::bolt::Db;
use crate::bolt::read::{self, ReadError};
use crate::mvcc::keyspace::{KeySpace, KeySpaceError, Latest};
use crate::protowire::{Fields, Value};

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
/// A lease in the snapshot and the live keys attached to it.
pub struct LeaseInfo {
    #[serde(serialize_with = "hex")]
    /// The lease ID.
    pub id: i64,
    /// Its TTL.
    pub ttl_seconds: i64,
    /// The remaining TTL a lease checkpoint recorded (leasepb.Lease
    /// remaining_TTL); 0 when none was: etcd then grants the full TTL again.
    pub remaining_ttl_seconds: i64,
    /// How many live keys name it.
    pub attached_keys: u64,
    /// A few of the attached keys, for the report.
    pub examples: Vec<String>,
}

fn hex<S: serde::Serializer>(id: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{id:x}"))
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
/// An alarm recorded in the snapshot.
pub struct AlarmInfo {
    #[serde(serialize_with = "hex_u64")]
    /// The member that raised it.
    pub member_id: u64,
    /// The alarm (`NOSPACE`, `CORRUPT`).
    pub alarm: String,
}

fn hex_u64<S: serde::Serializer>(id: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{id:x}"))
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
/// What comes back stale after a restore.
pub struct StaleReport {
    /// Every lease with live keys attached.
    pub leases: Vec<LeaseInfo>,
    /// Live keys attached to a lease the `lease` bucket does not hold.
    pub keys_with_missing_lease: u64,
    /// The apiservers' master leases.
    pub master_leases: Vec<String>,
    /// The addresses in the `default/kubernetes` endpoints.
    pub kubernetes_endpoints: Vec<String>,
    /// The node objects.
    pub nodes: Vec<String>,
    /// The alarms.
    pub alarms: Vec<AlarmInfo>,
}

#[derive(Debug, thiserror::Error)]
/// Why the stale-data report could not be read.
pub enum StaleError {
    #[error(transparent)]
    /// The snapshot could not be read.
    Read(#[from] ReadError),
    #[error(transparent)]
    /// The keyspace could not be read.
    KeySpace(#[from] KeySpaceError),
}

fn alarm_name(n: u64) -> String {
    match n {
        0 => "NONE".into(),
        1 => "NOSPACE".into(),
        2 => "CORRUPT".into(),
        other => format!("alarm {other}"),
    }
}

/// Builds the report from the snapshot's live keys and its lease and alarm buckets.
pub fn report(db: &Db<'_>, storage_prefix: &str) -> Result<StaleReport, StaleError> {
    let p = storage_prefix.trim_end_matches('/');
    let mut r = StaleReport::default();
    let mut leases: BTreeMap<i64, LeaseInfo> = BTreeMap::new();
    for b in read::buckets(db)? {
        match b.name {
            b"lease" => read::for_each(db, &b, |e| {
                let (mut id, mut ttl, mut remaining) = (0i64, 0i64, 0i64);
                for f in Fields::new(e.value).flatten() {
                    match f {
                        (1, Value::Varint(v)) => id = v as i64,
                        (2, Value::Varint(v)) => ttl = v as i64,
                        (3, Value::Varint(v)) => remaining = v as i64,
                        _ => {}
                    }
                }
                leases.insert(
                    id,
                    LeaseInfo {
                        id,
                        ttl_seconds: ttl,
                        remaining_ttl_seconds: remaining,
                        attached_keys: 0,
                        examples: Vec::new(),
                    },
                );
                ControlFlow::Continue(())
            })?,
            b"alarm" => read::for_each(db, &b, |e| {
                let (mut member, mut alarm) = (0u64, 0u64);
                for f in Fields::new(e.key).flatten() {
                    match f {
                        (1, Value::Varint(v)) => member = v,
                        (2, Value::Varint(v)) => alarm = v,
                        _ => {}
                    }
                }
                r.alarms.push(AlarmInfo {
                    member_id: member,
                    alarm: alarm_name(alarm),
                });
                ControlFlow::Continue(())
            })?,
            _ => {}
        }
    }
    let ks = KeySpace::open(db)?;
    let masters = format!("{p}/masterleases/");
    let endpoints = [
        format!("{p}/services/endpoints/default/kubernetes"),
        format!("{p}/endpointslices/default/kubernetes"),
    ];
    let nodes = format!("{p}/minions/");
    ks.latest(None, |l| {
        let Latest::Live(rec) = l else {
            return ControlFlow::Continue(());
        };
        let key = String::from_utf8_lossy(rec.kv.key);
        if rec.kv.lease != 0 {
            match leases.get_mut(&rec.kv.lease) {
                Some(info) => {
                    info.attached_keys += 1;
                    if info.examples.len() < 5 {
                        info.examples.push(key.to_string());
                    }
                }
                None => r.keys_with_missing_lease += 1,
            }
        }
        if key.starts_with(&masters) {
            r.master_leases.push(key.to_string());
        } else if endpoints.iter().any(|e| key.starts_with(e.as_str())) {
            r.kubernetes_endpoints.push(key.to_string());
        } else if let Some(n) = key.strip_prefix(&nodes) {
            r.nodes.push(n.to_string());
        }
        ControlFlow::Continue(())
    })?;
    r.leases = leases.into_values().collect();
    r.master_leases.sort();
    r.nodes.sort();
    Ok(r)
}
