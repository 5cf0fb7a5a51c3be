//! `member replace`: the failed member removed, and its replacement added as
//! a learner with what its node needs — the half of the documented HA
//! procedure operators run most, done with its checks first.
//!
//! Why its own module: the removal is the step that cannot be taken back,
//! so everything that could make the join fail afterwards is checked before
//! it: the cluster keeps its quorum without the failed member, the failed
//! member does not answer (a running member removed keeps serving stale
//! reads until it learns it was removed), the new name and peer URL are
//! free (the failed member's own may be reused), the CA can sign, the
//! outputs can be written. A run that stops after the removal is finished
//! by running it again: the failed member is no longer listed, so the join
//! goes on; one that stops after the add finds the learner and writes its
//! files.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::join::{JoinPlan, JoinRequest, check_spec, member_add, plan_join, write_node_files};
use super::{MemberError, MemberRow, list};
use crate::live::connect::Live;

/// What `member replace` is asked to do.
#[derive(Debug, Clone)]
pub struct ReplaceRequest {
    /// The failed member: its name or hex ID.
    pub old: String,
    /// The new member.
    pub join: JoinRequest,
    /// Remove the failed member even though it answers.
    pub force: bool,
}

/// What `member replace` does (or did).
#[derive(Debug, Clone, Serialize)]
pub struct ReplacePlan {
    /// The member removed, as the member list had it; `None` when no
    /// member has that name or ID any more (a run before removed it).
    pub old: Option<MemberRow>,
    /// The name or ID asked for.
    pub old_asked: String,
    /// Whether it answered (it is removed only with `--force`).
    pub old_running: bool,
    /// Whether it was removed (false until done, and in a dry run).
    pub removed: bool,
    /// The join that follows.
    pub join: JoinPlan,
}

/// Checks everything the replacement needs (see the module comment) and
/// computes what the new node gets. Changes nothing.
pub fn plan_replace(live: &Live, req: &ReplaceRequest) -> Result<ReplacePlan, MemberError> {
    check_spec(&req.join)?;
    let before = list(live)?;
    let old = before.find(&req.old).cloned();
    let mut old_running = false;
    if let Some(o) = &old {
        if o.is_learner && o.name.is_empty() {
            return Err(MemberError::CannotReplace(
                req.old.clone(),
                format!(
                    "{:x} is a learner that never started; remove it with etcdctl member remove {:x}, \
                     or promote it once its node runs",
                    o.id, o.id
                ),
            ));
        }
        let voting = before.members.iter().filter(|m| !m.is_learner).count();
        if !o.is_learner && voting < 2 {
            return Err(MemberError::CannotReplace(
                req.old.clone(),
                "it is the only voting member; restore the cluster from a snapshot instead".into(),
            ));
        }
        if let Some(st) = &o.status {
            old_running = true;
            if !req.force {
                return Err(MemberError::OldRunning {
                    name: o.label(),
                    id: o.id,
                    endpoint: st.endpoint.clone(),
                });
            }
        }
    }
    let join = plan_join(before, &req.join, old.as_ref())?;
    Ok(ReplacePlan {
        old,
        old_asked: req.old.clone(),
        old_running,
        removed: false,
        join,
    })
}

/// Removes the failed member (if still listed), adds the new one as a
/// learner (unless a run before did), writes its node's files.
pub fn replace(live: &Live, mut plan: ReplacePlan) -> Result<ReplacePlan, MemberError> {
    let gone = plan.old.as_ref().map(|o| o.id);
    // Through a member that stays.
    let via = plan
        .join
        .before
        .members
        .iter()
        .filter(|m| Some(m.id) != gone && !m.is_learner)
        .find_map(|m| m.status.as_ref())
        .map(|s| s.endpoint.clone())
        .unwrap_or_else(|| plan.join.before.listed_by.clone());
    if let Some(o) = &plan.old {
        member_remove(live, &via, o.id)?;
        plan.removed = true;
    }
    if !plan.join.found_learner {
        match member_add(live, &via, &plan.join.peer_url) {
            Ok(id) => plan.join.id = id,
            Err(err) => {
                return Err(match &plan.old {
                    Some(o) => MemberError::AddAfterRemove {
                        old: o.label(),
                        old_id: o.id,
                        name: plan.join.name.clone(),
                        err: Box::new(err),
                    },
                    None => err,
                });
            }
        }
    }
    let id = plan.join.id;
    write_node_files(&mut plan.join).map_err(|e| MemberError::FilesAfterAdd {
        id,
        err: e.to_string(),
    })?;
    Ok(plan)
}

/// MemberRemove through `endpoint`, retried while etcd says "unhealthy
/// cluster" (its leader has not heard from enough members lately).
fn member_remove(live: &Live, endpoint: &str, id: u64) -> Result<(), MemberError> {
    let conn = live.connect(endpoint)?;
    let start = Instant::now();
    loop {
        let mut c = conn.client.clone();
        match live.unary(
            &conn,
            "MemberRemove",
            async move { c.member_remove(id).await },
        ) {
            Ok(_) => return Ok(()),
            Err(e)
                if e.to_string().contains("unhealthy cluster")
                    && start.elapsed() < super::join::UNHEALTHY_RETRY =>
            {
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(e) => return Err(e.into()),
        }
    }
}
