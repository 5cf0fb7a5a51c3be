//! Promoting a learner once it has caught up with the leader: MemberPromote
//! retried while etcd answers "not in sync", until a deadline, then the
//! member list once the promoted member answers.
//!
//! Why apart: it is the step operators run later, often much later, than
//! the join, and the one whose failure (the new node never started) must
//! say how to undo the join.

use std::time::{Duration, Instant};

use super::{MemberError, MemberList, MemberRow, list};
use crate::live::connect::{Live, LiveError};

/// etcd's "learner not ready" answer to MemberPromote
/// (FailedPrecondition: "can only promote a learner member which is in sync
/// with leader").
fn learner_not_ready(e: &LiveError) -> bool {
    match e {
        LiveError::Call {
            err: etcd_client::Error::GRpcStatus(s),
            ..
        } => {
            s.code() == tonic::Code::FailedPrecondition
                && s.message().contains("in sync with leader")
        }
        _ => false,
    }
}

/// Promotes the learner named `name_or_id` (its name or hex ID), retrying
/// while etcd says it has not caught up with the leader, until `wait` has
/// passed; then the member list.
pub fn promote(live: &Live, name_or_id: &str, wait: Duration) -> Result<MemberList, MemberError> {
    let start = Instant::now();
    // A learner's name is in the member list once it has started and
    // published it: until then, look again.
    let (before, id, name) = loop {
        let before = list(live)?;
        if let Some(target) = before.find(name_or_id) {
            let (id, name) = (target.id, target.label());
            if !target.is_learner {
                return Err(MemberError::NotLearner { name, id });
            }
            break (before, id, name);
        }
        if start.elapsed() >= wait {
            let unstarted: Vec<&MemberRow> = before
                .members
                .iter()
                .filter(|m| m.is_learner && m.name.is_empty())
                .collect();
            return Err(match unstarted.as_slice() {
                [one] => MemberError::NotReady {
                    name: name_or_id.to_string(),
                    id: one.id,
                    waited: wait,
                    last: format!(
                        "it has not started (no member named {name_or_id:?} yet; learner {:x}, peer URL {}, \
                         has not joined)",
                        one.id,
                        one.peer_urls.join(",")
                    ),
                },
                _ => MemberError::NotFound(name_or_id.to_string()),
            });
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let lister = live.connect(&before.listed_by)?;
    loop {
        let mut c = lister.client.clone();
        match live.unary(&lister, "MemberPromote", async move {
            c.member_promote(id).await
        }) {
            Ok(_) => break,
            Err(e) => {
                let msg = e.to_string();
                if !learner_not_ready(&e) {
                    return Err(e.into());
                }
                if start.elapsed() >= wait {
                    let last = match &e {
                        LiveError::Call {
                            err: etcd_client::Error::GRpcStatus(s),
                            ..
                        } => s.message().to_string(),
                        _ => msg,
                    };
                    return Err(MemberError::NotReady {
                        name,
                        id,
                        waited: wait,
                        last,
                    });
                }
                std::thread::sleep(Duration::from_millis(500).min(wait));
            }
        }
    }
    // The member list once the promoted member answers (it serves clients
    // a moment after it joined), or as it is at the deadline.
    let until = Instant::now()
        + wait
            .saturating_sub(start.elapsed())
            .max(Duration::from_secs(5));
    loop {
        let after = list(live)?;
        let answers = after
            .members
            .iter()
            .any(|m| m.id == id && m.status.is_some());
        if answers || Instant::now() >= until {
            return Ok(after);
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}
