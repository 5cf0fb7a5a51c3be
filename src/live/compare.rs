//! `compare`: is this snapshot what the cluster had? Every member is asked
//! for HashKV at the snapshot's revision, and the answer is compared with
//! the hash computed offline from the file under the rules of the member's
//! release (its Status says which).

use std::collections::HashMap;

use super::cluster::{Finding, Reached, Verdict, hash_finding};
use super::connect::Live;
use crate::bolt::Db;
use crate::mvcc::hashkv::{HashKv, HashKvError, ServerRules, hash_kv_with};

/// The offline hash at `rev` for a member release, computed once per set of
/// rules.
pub struct OfflineHashes<'d, 'a> {
    db: &'d Db<'a>,
    rev: i64,
    done: HashMap<(bool, bool), Result<HashKv, String>>,
    /// Damage met while hashing (the file is not sound).
    pub damage: Option<HashKvError>,
}

impl<'d, 'a> OfflineHashes<'d, 'a> {
    /// Offline hashes of `db` at `rev`, none computed yet.
    pub fn new(db: &'d Db<'a>, rev: i64) -> Self {
        OfflineHashes {
            db,
            rev,
            done: HashMap::new(),
            damage: None,
        }
    }

    /// The snapshot's hash as a member running etcd `version` computes it.
    pub fn for_version(&mut self, version: &str) -> Result<HashKv, String> {
        let rules = ServerRules::for_version(version).map_err(|e| e.to_string())?;
        let key = (
            rules.tombstone == crate::mvcc::hashkv::TombstoneRule::New,
            rules.refuse_at_compaction,
        );
        if let Some(r) = self.done.get(&key) {
            return r.clone();
        }
        let r = match hash_kv_with(self.db, self.rev, rules) {
            Ok(h) => Ok(h),
            Err(e) => {
                if matches!(e, HashKvError::KeySpace(_)) {
                    self.damage = Some(e.clone());
                }
                Err(format!("the snapshot: {e}"))
            }
        };
        self.done.insert(key, r.clone());
        r
    }
}

/// One finding per member: match, mismatch, or why it could not be told.
pub fn compare(
    live: &Live,
    reached: &Reached,
    rev: i64,
    offline: &mut OfflineHashes<'_, '_>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    for ms in &reached.members {
        match &ms.conn {
            Ok(m) => out.push(hash_finding(
                live,
                "hashkv",
                &ms.label(),
                m,
                rev,
                &mut |v| offline.for_version(v),
            )),
            Err(e) => out.push(Finding {
                check: "hashkv",
                member: Some(ms.label()),
                verdict: Verdict::Unknown,
                detail: format!("member {:x} cannot be reached: {e}", ms.id),
            }),
        }
    }
    out
}
