//! `member list`, `member add-learner` and `member promote`: growing a
//! cluster one member at a time, the way etcd's runtime reconfiguration
//! wants it, with the checks operators skip done first.
//!
//! Why its own module: adding a member is the one live change where a
//! mistake costs the cluster — adding a voting member before its node can
//! start raises the quorum, a reused name or peer URL makes the new member
//! refuse to start, `--initial-cluster-state=new` on the new node makes it
//! bootstrap a cluster of its own. So a member is always added as a learner
//! (it does not count towards the quorum until promoted), only while the
//! cluster has quorum, only with a name and peer URL no current member has,
//! and the new node gets its start flags as `ETCD_*` variables with
//! `ETCD_INITIAL_CLUSTER_STATE=existing` and the current members in
//! `ETCD_INITIAL_CLUSTER` (built by [`crate::cluster::flags`], as `restore`
//! builds them). Promotion is retried while etcd says the learner has not
//! caught up with the leader, until a deadline.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::cluster::{MemberState, reach};
use super::connect::{Live, LiveError};
use crate::cluster::flags::{env_text, start_flags};
use crate::cluster::membership::{Cluster, MembershipError, is_plain_name};
use crate::durable::{self, IoError};

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
    /// The env file exists and may not be replaced.
    #[error("{} exists; not replacing it (--force replaces it)", .0.display())]
    EnvExists(PathBuf),
    /// The output directory is not a directory.
    #[error("--out {}: not a directory", .0.display())]
    OutDir(PathBuf),
    /// The learner was added, but its env file could not be written.
    #[error(
        "learner {id:x} was added, but its env file cannot be written: {err}; remove the learner \
         (etcdctl member remove {id:x}) and run add-learner again"
    )]
    EnvAfterAdd {
        /// The learner's ID.
        id: u64,
        /// The write error.
        err: IoError,
    },
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
        let (voting, answering) = self.voting();
        let needed = voting / 2 + 1;
        let leader_known = self
            .members
            .iter()
            .filter(|m| !m.is_learner)
            .filter_map(|m| m.status.as_ref())
            .any(|s| s.leader != 0);
        if answering >= needed && leader_known {
            return Ok(());
        }
        let unreachable: Vec<String> = self
            .members
            .iter()
            .filter(|m| !m.is_learner && m.status.is_none())
            .map(|m| {
                format!(
                    "{} ({:016x}): {}",
                    m.label(),
                    m.id,
                    m.error.as_deref().unwrap_or("?")
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

/// What adding a learner does, and what its node needs.
#[derive(Debug, Clone, Serialize)]
pub struct JoinPlan {
    /// The new member's name.
    pub name: String,
    /// Its peer URL.
    pub peer_url: String,
    /// The member ID etcd gave it (0 until it is added).
    #[serde(serialize_with = "hex")]
    pub id: u64,
    /// The `--initial-cluster` it starts with: the current members and itself.
    pub initial_cluster: String,
    /// Its start flags.
    pub flags: Vec<String>,
    /// The same as `ETCD_*` variables (the `NAME.env` text).
    pub env: String,
    /// Where the env file goes.
    pub env_file: PathBuf,
    /// The member list before the change.
    pub before: MemberList,
}

/// What `add-learner` is asked to do.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    /// The new member's name.
    pub name: String,
    /// Its peer URL.
    pub peer_url: String,
    /// The client URL it advertises (default: its peer host, port 2379).
    pub client_url: Option<String>,
    /// Its data dir on its node ([`DEFAULT_DATA_DIR`] unless given).
    pub data_dir: Option<PathBuf>,
    /// Its TLS files' directory, when a URL is https ([`DEFAULT_PKI_DIR`]).
    pub pki_dir: Option<PathBuf>,
    /// Where `NAME.env` is written.
    pub out_dir: PathBuf,
    /// Replace an existing `NAME.env`.
    pub force: bool,
}

/// Checks a learner can be added now (quorum; name and peer URL free; the
/// env file can be placed) and computes what its node needs. Changes nothing.
pub fn plan_learner(live: &Live, req: &JoinRequest) -> Result<JoinPlan, MemberError> {
    // The name and URL, as --initial-cluster takes them.
    let own = Cluster::parse(&format!("{}={}", req.name, req.peer_url), "")?;
    if !is_plain_name(&req.name) {
        return Err(MembershipError::Name(req.name.clone()).into());
    }
    if let Some(u) = &req.client_url
        && (crate::cluster::flags::url_parts(u).is_none()
            || crate::cluster::membership::check_url(&req.name, u).is_err())
    {
        return Err(MemberError::ClientUrl(u.clone()));
    }
    let before = list(live)?;
    for m in &before.members {
        if m.name == req.name {
            return Err(MemberError::NameInUse {
                name: req.name.clone(),
                id: m.id,
            });
        }
        if m.peer_urls.iter().any(|u| same_url(u, &req.peer_url)) {
            return Err(MemberError::UrlInUse {
                url: req.peer_url.clone(),
                id: m.id,
                name: m.label(),
            });
        }
    }
    before.check_quorum()?;
    if !req.out_dir.is_dir() {
        return Err(MemberError::OutDir(req.out_dir.clone()));
    }
    let env_file = req.out_dir.join(format!("{}.env", req.name));
    if !req.force && std::fs::symlink_metadata(&env_file).is_ok() {
        return Err(MemberError::EnvExists(env_file));
    }
    // The current members (a learner not started yet has no name and
    // cannot be listed; etcd allows one learner at a time anyway), then the
    // new one.
    let mut entries: Vec<String> = before
        .members
        .iter()
        .filter(|m| !m.name.is_empty())
        .flat_map(|m| m.peer_urls.iter().map(move |u| format!("{}={u}", m.name)))
        .collect();
    entries.push(format!("{}={}", req.name, req.peer_url));
    let initial_cluster = entries.join(",");
    let cluster = Cluster::parse(&initial_cluster, "")?;
    let member = own
        .members
        .first()
        .ok_or(MemberError::Membership(MembershipError::Empty))?;
    let client = req.client_url.clone().map(|u| vec![u]);
    let data_dir = req
        .data_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
    let pki = req
        .pki_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_PKI_DIR));
    let flags = joining_flags(start_flags(
        &cluster,
        member,
        &data_dir,
        None,
        client.as_ref(),
        &pki,
    ));
    Ok(JoinPlan {
        name: req.name.clone(),
        peer_url: req.peer_url.clone(),
        id: 0,
        initial_cluster,
        env: env_text(&flags),
        flags,
        env_file,
        before,
    })
}

/// A restored member's flags turned into a joining member's: the cluster
/// exists (no token: it is the existing cluster's).
fn joining_flags(flags: Vec<String>) -> Vec<String> {
    flags
        .into_iter()
        .filter(|f| !f.starts_with("--initial-cluster-token="))
        .map(|f| {
            if f == "--initial-cluster-state=new" {
                "--initial-cluster-state=existing".to_string()
            } else {
                f
            }
        })
        .collect()
}

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

/// Two peer URLs name the same listener (a trailing slash aside).
fn same_url(a: &str, b: &str) -> bool {
    a.trim_end_matches('/')
        .eq_ignore_ascii_case(b.trim_end_matches('/'))
}

/// Adds the planned member as a learner (MemberAdd with IsLearner) and
/// writes its env file (0600, atomically). Returns the plan with the ID.
pub fn add_learner(live: &Live, mut plan: JoinPlan) -> Result<JoinPlan, MemberError> {
    let lister = live.connect(&plan.before.listed_by)?;
    let start = Instant::now();
    let resp = loop {
        let mut c = lister.client.clone();
        let urls = vec![plan.peer_url.clone()];
        match live.unary(&lister, "MemberAdd", async move {
            c.member_add(
                urls,
                Some(etcd_client::MemberAddOptions::new().with_is_learner()),
            )
            .await
        }) {
            Ok(r) => break r,
            // etcd refuses a change until the leader has been connected to
            // every voting member for a while (5 s): just after a promote.
            Err(e)
                if e.to_string().contains("unhealthy cluster")
                    && start.elapsed() < UNHEALTHY_RETRY =>
            {
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(e) => return Err(e.into()),
        }
    };
    plan.id = resp.member().map_or(0, |m| m.id());
    let id = plan.id;
    durable::write_atomic(&plan.env_file, plan.env.as_bytes())
        .map_err(|err| MemberError::EnvAfterAdd { id, err })?;
    Ok(plan)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joining_flags_say_existing_and_drop_the_token() {
        let f = joining_flags(vec![
            "--name=n2".into(),
            "--initial-cluster=n1=http://a:1,n2=http://b:1".into(),
            "--initial-cluster-token=".into(),
            "--initial-cluster-state=new".into(),
        ]);
        assert_eq!(
            f,
            [
                "--name=n2",
                "--initial-cluster=n1=http://a:1,n2=http://b:1",
                "--initial-cluster-state=existing"
            ]
        );
    }

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
}
