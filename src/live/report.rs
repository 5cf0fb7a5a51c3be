//! `compare` and `verify-cluster` as one call each: open the keyspace, reach
//! the members, run the checks, hash the snapshot offline as each member's
//! release computes it, and give back the findings with the overall verdict
//! (what the exit code says). The commands only render them.

use std::collections::{BTreeMap, BTreeSet};

use super::LiveError;
use super::cluster::{Expect, Finding, exit_of, reach, verify_cluster};
use super::compare::{OfflineHashes, compare};
use super::connect::Live;
use crate::bolt::Db;
use crate::mvcc::hashkv::HashKvError;
use crate::mvcc::keyspace::{KeySpace, KeySpaceError, Latest};

/// The verdict over a set of findings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overall {
    /// Every check passed (or was skipped).
    Pass,
    /// A check failed.
    Fail,
    /// Nothing failed, but something could not be told (a member compacted
    /// past the revision, behind, unreachable).
    CannotTell,
}

/// What `compare` or `verify-cluster` found.
#[derive(Debug)]
pub struct ClusterReport {
    /// The snapshot's revision.
    pub revision: i64,
    /// Each check's result.
    pub findings: Vec<Finding>,
}

impl ClusterReport {
    /// The exit code the findings give: 0 all pass, 1 a failure, 2 only
    /// things that could not be told.
    pub fn exit_code(&self) -> u8 {
        exit_of(&self.findings)
    }

    /// The verdict.
    pub fn overall(&self) -> Overall {
        match self.exit_code() {
            0 => Overall::Pass,
            1 => Overall::Fail,
            _ => Overall::CannotTell,
        }
    }
}

/// Why a cluster check ran to no report.
#[derive(Debug, thiserror::Error)]
pub enum ClusterRunError {
    /// The snapshot's keyspace could not be read.
    #[error("{0}")]
    KeySpace(#[from] KeySpaceError),
    /// No member could be reached (or the settings are wrong).
    #[error("{0}")]
    Live(#[from] LiveError),
    /// The snapshot is damaged where the offline hash reads.
    #[error("{0}")]
    Hash(HashKvError),
}

/// `compare`: every member's HashKV at the snapshot's revision against the
/// snapshot's, hashed offline under the member's release's rules.
pub fn compare_snapshot(live: &Live, db: &Db<'_>) -> Result<ClusterReport, ClusterRunError> {
    let revision = KeySpace::open(db)?.current_revision;
    let mut offline = OfflineHashes::new(db, revision);
    let reached = reach(live)?;
    let findings = compare(live, &reached, revision, &mut offline);
    if let Some(e) = offline.damage.take() {
        return Err(ClusterRunError::Hash(e));
    }
    Ok(ClusterReport { revision, findings })
}

/// `verify-cluster`: did the cluster restored from the snapshot in `db`
/// come up as planned (leader, members as `initial_cluster` names them,
/// cluster ID, revision, and HashKV; with the restore's `bump`, the keys at
/// the bumped revision instead of HashKV)?
pub fn verify_restored(
    live: &Live,
    db: &Db<'_>,
    initial_cluster: Option<BTreeMap<String, BTreeSet<String>>>,
    bump: Option<u64>,
) -> Result<ClusterReport, ClusterRunError> {
    let ks = KeySpace::open(db)?;
    let revision = ks.current_revision;
    let mut keys = Vec::new();
    if bump.is_some() {
        ks.latest(Some(revision), |l| {
            if let Latest::Live(r) = l {
                keys.push(r.kv);
            }
            std::ops::ControlFlow::Continue(())
        })?;
        keys.sort_by(|a, b| a.key.cmp(b.key));
    }
    let mut offline = OfflineHashes::new(db, revision);
    let reached = reach(live)?;
    let expect = Expect {
        revision,
        initial_cluster,
        bump,
        keys,
    };
    let findings = verify_cluster(live, &reached, &expect, &mut |v| offline.for_version(v));
    if let Some(e) = offline.damage.take() {
        return Err(ClusterRunError::Hash(e));
    }
    Ok(ClusterReport { revision, findings })
}
