//! `member list`, `status`, `add-learner`, `replace` and `promote`: growing
//! a cluster one member at a time, and replacing a failed member, the way
//! etcd's runtime reconfiguration wants it, with the checks operators skip
//! done first.
//!
//! Why its own module: adding a member is the one live change where a
//! mistake costs the cluster — adding a voting member before its node can
//! start raises the quorum, a reused name or peer URL makes the new member
//! refuse to start, `--initial-cluster-state=new` on the new node makes it
//! bootstrap a cluster of its own, a stale data dir makes it start as the
//! member it was. So a member is always added as a learner (it does not
//! count towards the quorum until promoted), only while the cluster has
//! quorum, only with a name and peer URL no current member has, and the new
//! node gets its start flags as `ETCD_*` variables with
//! `ETCD_INITIAL_CLUSTER_STATE=existing` and the current members in
//! `ETCD_INITIAL_CLUSTER` (built by [`crate::cluster::flags`], as `restore`
//! builds them), with its static pod and certificates in one join archive
//! that `install` places. Promotion is retried while etcd says the learner
//! has not caught up with the leader, until a deadline.
//!
//! - [`mod@join`]: planning and adding a learner, and what its node needs;
//! - [`mod@replace`]: removing a failed member, then the same join;
//! - [`mod@promote`]: promoting the learner once it has caught up.

pub mod join;
pub mod promote;
pub mod replace;

pub use join::{JoinPlan, JoinRequest, add_learner, plan_learner};
pub use promote::promote;
pub use replace::{ReplacePlan, ReplaceRequest, plan_replace, replace};

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use super::cluster::{MemberState, reach};
use super::connect::{Live, LiveError};
use crate::cluster::membership::MembershipError;
use crate::durable::IoError;

/// Where a new member's data dir is, unless told (kubeadm's).
pub const DEFAULT_DATA_DIR: &str = "/var/lib/etcd";
/// Where a new member's TLS files are, when a URL is https (kubeadm's).
pub const DEFAULT_PKI_DIR: &str = "/etc/kubernetes/pki/etcd";

/// How long MemberAdd is retried while etcd says "unhealthy cluster" (its
/// leader has not been connected to every voting member for 5 s yet).
pub const UNHEALTHY_RETRY: Duration = Duration::from_secs(15);

/// Why a member command cannot do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum MemberError {
    /// The cluster cannot be reached or did not answer.
    #[error(transparent)]
    Live(#[from] LiveError),
    /// The new member's name or peer URL is not one etcd takes.
    #[error(transparent)]
    Membership(#[from] MembershipError),
    /// Too few voting members answer: a change now could not be committed,
    /// or would leave the cluster one failure from losing quorum.
    #[error(
        "the cluster has no quorum: {answering} of {voting} voting members answer (a majority, {needed}, \
         is needed{leader}); not adding a member. Unreachable: {unreachable}"
    )]
    NoQuorum {
        /// Voting members in the member list.
        voting: usize,
        /// How many of them answered Status.
        answering: usize,
        /// The majority.
        needed: usize,
        /// ", and none of them knows a leader" when that is the reason.
        leader: &'static str,
        /// The members that did not answer, with why.
        unreachable: String,
    },
    /// A current member has that name.
    #[error(
        "name {name:?} is in use by member {id:016x}; pick another name (or remove that member first)"
    )]
    NameInUse {
        /// The name.
        name: String,
        /// The member that has it.
        id: u64,
    },
    /// A current member has that peer URL.
    #[error(
        "peer URL {url} is in use by member {id:016x} ({name}); a new member needs a URL of its own \
         (or remove that member first)"
    )]
    UrlInUse {
        /// The URL.
        url: String,
        /// The member that has it.
        id: u64,
        /// Its name (or "not started").
        name: String,
    },
    /// The client URL given is not a URL a member can advertise.
    #[error(
        "--client-url {0:?} is not a URL (scheme://host:port, no spaces or control characters)"
    )]
    ClientUrl(String),
    /// An output file exists and may not be replaced.
    #[error("{} exists; not replacing it (--force replaces it, moving the old one aside)", .0.display())]
    OutputExists(PathBuf),
    /// The output directory is not a directory.
    #[error("--out {}: not a directory", .0.display())]
    OutDir(PathBuf),
    /// The learner was added (or found), but its node's files could not be
    /// written.
    #[error(
        "learner {id:x} is in the cluster, but its node's files cannot be written: {err}. Run the \
         same command again (it finds learner {id:x}, not started, and writes them), or remove the \
         learner: etcdctl member remove {id:x}"
    )]
    FilesAfterAdd {
        /// The learner's ID.
        id: u64,
        /// The write error.
        err: String,
    },
    /// The failed member was removed, but adding the new one failed.
    #[error(
        "member {old} ({old_id:x}) was removed, but adding {name} failed: {err}. Run the same command \
         again: {old} is no longer listed, so it goes on with adding {name}"
    )]
    AddAfterRemove {
        /// The removed member's name.
        old: String,
        /// Its ID.
        old_id: u64,
        /// The new member's name.
        name: String,
        /// Why adding failed.
        err: Box<MemberError>,
    },
    /// The member to replace still answers.
    #[error(
        "member {name} ({id:016x}) still answers at {endpoint}: it is running. Stop etcd on that node \
         first (a removed member that still runs keeps its data and stops only when it learns it was \
         removed), or remove it anyway with --force"
    )]
    OldRunning {
        /// Its name.
        name: String,
        /// Its ID.
        id: u64,
        /// Where it answered.
        endpoint: String,
    },
    /// The member to replace is the new member's own learner, or the only
    /// member.
    #[error("member {0} cannot be replaced: {1}")]
    CannotReplace(String, String),
    /// The CA cannot sign the new member's certificates (as `pki issue`
    /// checks), or a URL host no certificate can match.
    #[error("--ca-dir: {0}")]
    Issue(#[from] crate::pki::issue::IssueError),
    /// The static pod cannot be written for the flags.
    #[error(transparent)]
    Pod(#[from] crate::cluster::podspec::PodError),
    /// No etcd image is known for the cluster's release.
    #[error("no kubeadm etcd image is known for etcd {0}; give one with --image")]
    NoImage(String),
    /// The PKI dir is not kubeadm's `…/etcd` layout.
    #[error(
        "--pki-dir {}: must end in /etcd (kubeadm's layout: the CA and the member's pairs in \
         <pki>/etcd, kube-apiserver's client pair in <pki>)",
        .0.display()
    )]
    PkiDir(PathBuf),
    /// A file could not be read or written.
    #[error(transparent)]
    Io(#[from] IoError),
    /// The join archive cannot be written.
    #[error(transparent)]
    Archive(#[from] crate::bundle::join::JoinError),
    /// No member has that name or ID.
    #[error("no member named {0:?} (or with that hex ID) in the member list")]
    NotFound(String),
    /// The member is already a voting member.
    #[error("member {name} ({id:016x}) is not a learner: nothing to promote")]
    NotLearner {
        /// Its name.
        name: String,
        /// Its ID.
        id: u64,
    },
    /// etcd kept refusing to promote the learner until the deadline.
    #[error(
        "learner {name} ({id:016x}) is not in sync with the leader after {}: {last}. Is etcd running on \
         the new node, started from its env file with an empty data dir? Wait longer (--wait), or remove \
         the learner: etcdctl member remove {id:x}",
        humantime::format_duration(*.waited)
    )]
    NotReady {
        /// Its name.
        name: String,
        /// Its ID.
        id: u64,
        /// How long promotion was retried.
        waited: Duration,
        /// etcd's last answer.
        last: String,
    },
}

/// A member's Status, as `etcdctl endpoint status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct MemberStatus {
    /// The endpoint that answered.
    pub endpoint: String,
    /// etcd's version.
    pub version: String,
    /// The backend's size in bytes.
    pub db_size: i64,
    /// The leader's ID, as this member sees it (0: none).
    #[serde(serialize_with = "hex")]
    pub leader: u64,
    /// The raft term.
    pub raft_term: u64,
    /// The raft index.
    pub raft_index: u64,
    /// The raft applied index.
    pub raft_applied_index: u64,
    /// The member's revision.
    pub revision: i64,
    /// Alarms and errors the member reports.
    pub errors: Vec<String>,
}

/// One member of the member list, and its status when it answered.
#[derive(Debug, Clone, Serialize)]
pub struct MemberRow {
    /// The member ID.
    #[serde(serialize_with = "hex")]
    pub id: u64,
    /// Its name (empty until it has started).
    pub name: String,
    /// Its peer URLs.
    pub peer_urls: Vec<String>,
    /// Its client URLs (empty until it has started).
    pub client_urls: Vec<String>,
    /// Whether it is a learner.
    pub is_learner: bool,
    /// Its Status, when reached.
    pub status: Option<MemberStatus>,
    /// Why it could not be reached.
    pub error: Option<String>,
}

impl MemberRow {
    /// The name, or `ID (not started)`.
    pub fn label(&self) -> String {
        if self.name.is_empty() {
            format!("{:x} (not started)", self.id)
        } else {
            self.name.clone()
        }
    }
}

fn hex<S: serde::Serializer>(id: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{id:x}"))
}

/// The member list, as one member gave it, with each member's status.
#[derive(Debug, Clone, Serialize)]
pub struct MemberList {
    /// The endpoint whose member list this is.
    pub listed_by: String,
    /// The cluster ID.
    #[serde(serialize_with = "hex")]
    pub cluster_id: u64,
    /// The members, by name.
    pub members: Vec<MemberRow>,
}

impl MemberList {
    /// Voting members, and how many of them answered Status.
    pub fn voting(&self) -> (usize, usize) {
        let voting = self.members.iter().filter(|m| !m.is_learner);
        let n = voting.clone().count();
        (n, voting.filter(|m| m.status.is_some()).count())
    }

    /// Refuses unless a majority of the voting members answer and one of
    /// them knows a leader.
    pub fn check_quorum(&self) -> Result<(), MemberError> {
        self.check_quorum_without(None)
    }

    /// [`Self::check_quorum`] not counting member `without` among those
    /// that answer (it still counts towards the majority needed): the
    /// cluster keeps its quorum while that member is gone.
    pub fn check_quorum_without(&self, without: Option<u64>) -> Result<(), MemberError> {
        let voting = self.members.iter().filter(|m| !m.is_learner).count();
        let answering = self
            .members
            .iter()
            .filter(|m| !m.is_learner && m.status.is_some() && Some(m.id) != without)
            .count();
        let needed = voting / 2 + 1;
        let leader_known = self
            .members
            .iter()
            .filter(|m| !m.is_learner && Some(m.id) != without)
            .filter_map(|m| m.status.as_ref())
            .any(|s| s.leader != 0);
        if answering >= needed && leader_known {
            return Ok(());
        }
        let unreachable: Vec<String> = self
            .members
            .iter()
            .filter(|m| !m.is_learner && (m.status.is_none() || Some(m.id) == without))
            .map(|m| {
                format!(
                    "{} ({:016x}): {}",
                    m.label(),
                    m.id,
                    m.error.as_deref().unwrap_or("the member being replaced")
                )
            })
            .collect();
        Err(MemberError::NoQuorum {
            voting,
            answering,
            needed,
            leader: if answering >= needed {
                ", and none of them knows a leader"
            } else {
                ""
            },
            unreachable: if unreachable.is_empty() {
                "none".into()
            } else {
                unreachable.join("; ")
            },
        })
    }

    /// The member with this name, or this hex ID.
    pub fn find(&self, name_or_id: &str) -> Option<&MemberRow> {
        self.members
            .iter()
            .find(|m| !m.name.is_empty() && m.name == name_or_id)
            .or_else(|| {
                let id = u64::from_str_radix(name_or_id, 16).ok()?;
                self.members.iter().find(|m| m.id == id)
            })
    }
}

fn row(m: MemberState) -> MemberRow {
    let (status, error) = match m.conn {
        Ok(c) => {
            let s = &c.status;
            (
                Some(MemberStatus {
                    endpoint: c.endpoint.clone(),
                    version: s.version().to_string(),
                    db_size: s.db_size(),
                    leader: s.leader(),
                    raft_term: s.raft_term(),
                    raft_index: s.raft_index(),
                    raft_applied_index: s.raft_applied_index(),
                    revision: c.revision(),
                    errors: s.errors().to_vec(),
                }),
                None,
            )
        }
        Err(e) => (None, Some(e)),
    };
    MemberRow {
        id: m.id,
        name: m.name,
        peer_urls: m.peer_urls,
        client_urls: m.client_urls,
        is_learner: m.is_learner,
        status,
        error,
    }
}

/// The member list from the first endpoint that answers, each member
/// dialed at its client URLs for its Status.
pub fn list(live: &Live) -> Result<MemberList, MemberError> {
    let r = reach(live)?;
    Ok(MemberList {
        listed_by: r.listed_by,
        cluster_id: r.cluster_id,
        members: r.members.into_iter().map(row).collect(),
    })
}

/// Two peer URLs name the same listener (a trailing slash aside).
fn same_url(a: &str, b: &str) -> bool {
    a.trim_end_matches('/')
        .eq_ignore_ascii_case(b.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quorum_needs_a_majority_of_voters() {
        let st = |leader| MemberStatus {
            endpoint: "e".into(),
            version: "3.5.1".into(),
            db_size: 0,
            leader,
            raft_term: 1,
            raft_index: 1,
            raft_applied_index: 1,
            revision: 1,
            errors: vec![],
        };
        let m = |id, learner, status: Option<MemberStatus>| MemberRow {
            id,
            name: format!("n{id}"),
            peer_urls: vec![],
            client_urls: vec![],
            is_learner: learner,
            error: status.is_none().then(|| "down".to_string()),
            status,
        };
        let l = |members| MemberList {
            listed_by: "e".into(),
            cluster_id: 1,
            members,
        };
        assert!(l(vec![m(1, false, Some(st(1)))]).check_quorum().is_ok());
        // A learner does not count.
        assert!(
            l(vec![m(1, false, Some(st(1))), m(2, true, None)])
                .check_quorum()
                .is_ok()
        );
        assert!(
            l(vec![
                m(1, false, Some(st(1))),
                m(2, false, None),
                m(3, false, None)
            ])
            .check_quorum()
            .is_err()
        );
        assert!(
            l(vec![
                m(1, false, Some(st(0))),
                m(2, false, Some(st(0))),
                m(3, false, None)
            ])
            .check_quorum()
            .is_err()
        );
        assert!(
            l(vec![
                m(1, false, Some(st(1))),
                m(2, false, Some(st(1))),
                m(3, false, None)
            ])
            .check_quorum()
            .is_ok()
        );
    }

    #[test]
    fn quorum_without_the_member_replaced() {
        let st = MemberStatus {
            endpoint: "e".into(),
            version: "3.5.1".into(),
            db_size: 0,
            leader: 1,
            raft_term: 1,
            raft_index: 1,
            raft_applied_index: 1,
            revision: 1,
            errors: vec![],
        };
        let m = |id, up: bool| MemberRow {
            id,
            name: format!("n{id}"),
            peer_urls: vec![],
            client_urls: vec![],
            is_learner: false,
            error: (!up).then(|| "down".to_string()),
            status: up.then(|| st.clone()),
        };
        let l = |members| MemberList {
            listed_by: "e".into(),
            cluster_id: 1,
            members,
        };
        // Three voters, the third down: it may go (two of three stay).
        assert!(
            l(vec![m(1, true), m(2, true), m(3, false)])
                .check_quorum_without(Some(3))
                .is_ok()
        );
        // All three up: without the third, still two of three.
        assert!(
            l(vec![m(1, true), m(2, true), m(3, true)])
                .check_quorum_without(Some(3))
                .is_ok()
        );
        // The second down too: one of three is no majority.
        let err = l(vec![m(1, true), m(2, false), m(3, true)])
            .check_quorum_without(Some(3))
            .unwrap_err()
            .to_string();
        assert!(err.contains("1 of 3 voting members answer"), "{err}");
        assert!(
            err.contains("n3 (0000000000000003): the member being replaced"),
            "{err}"
        );
        // Two voters: without one, one of two is no majority.
        assert!(
            l(vec![m(1, true), m(2, false)])
                .check_quorum_without(Some(2))
                .is_err()
        );
    }
}
