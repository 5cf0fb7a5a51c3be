//! `restore` as a library operation, first half: from what was asked (a
//! [`Request`]) to what would be done (a [`Plan`]: the members, their data
//! dirs, WAL dirs, `.env` files and start flags), without writing anything.
//! [`preview`] adds what `--dry-run` shows (the snapshot's checks, the
//! release written for, what comes back stale, what each target would
//! refuse); [`super::execute`] does the writes. Both hand back a [`Report`],
//! which the command line renders.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::bump::{BumpError, bump};
use super::datadir::RestoreError;
use super::owner::Owner;
use super::source::{self, OpenSnapshotError, SourceError};
use super::stale::{StaleError, StaleReport, report};
use super::target::{self, Target, TargetError};
use crate::bolt::Db;
use crate::bolt::db::OpenError;
use crate::cluster::flags::{FlagsError, client_urls, start_flags};
use crate::cluster::membership::{Cluster, Member, MembershipError};
use crate::durable::swap::{self, SwapError};
use crate::input::{Excess, SnapshotFile};
use crate::verify::{CheckStatus, verify};

/// What `restore` is asked to do: its flags.
#[derive(Debug, Clone)]
pub struct Request {
    /// The snapshot (`-` for standard input).
    pub snapshot: PathBuf,
    /// Every member as `NAME=PEER_URL`, comma-separated.
    pub initial_cluster: String,
    /// The cluster token.
    pub initial_cluster_token: String,
    /// The one member to restore (every member when `None`, unless a
    /// one-member flag is given: then member `default`, as etcdutl).
    pub name: Option<String>,
    /// One member's data dir.
    pub data_dir: Option<PathBuf>,
    /// One member's WAL dir.
    pub wal_dir: Option<PathBuf>,
    /// One member's peer URLs, which must match `initial_cluster`.
    pub initial_advertise_peer_urls: Option<String>,
    /// `--client-urls`: `NAME=URL,…` (one member: `URL,…`).
    pub client_urls: Option<String>,
    /// Where the TLS files are when URLs are https.
    pub pki_dir: PathBuf,
    /// Where the data dirs and `.env` files go.
    pub out_dir: Option<PathBuf>,
    /// The etcd release to write for (`3.4` … `3.7`).
    pub target_version: Option<String>,
    /// Accept a snapshot without a sha256 trailer.
    pub skip_hash_check: bool,
    /// Replace an existing member dir (moved aside, never deleted).
    pub force: bool,
    /// chown the restored files.
    pub owner: Option<Owner>,
    /// Start the keyspace this many revisions later.
    pub bump_revision: Option<u64>,
    /// Mark the bumped revision compacted.
    pub mark_compacted: bool,
    /// Drop the alarms recorded in the snapshot.
    pub clear_alarms: bool,
    /// kube-apiserver's `--etcd-prefix`, for the stale-data report.
    pub prefix: String,
}

impl Request {
    /// A request for every member of `initial_cluster` from `snapshot`, with
    /// the command's defaults for everything else.
    pub fn new(snapshot: impl Into<PathBuf>, initial_cluster: &str) -> Request {
        Request {
            snapshot: snapshot.into(),
            initial_cluster: initial_cluster.to_string(),
            initial_cluster_token: "etcd-cluster".to_string(),
            name: None,
            data_dir: None,
            wal_dir: None,
            initial_advertise_peer_urls: None,
            client_urls: None,
            pki_dir: PathBuf::from("/etc/kubernetes/pki/etcd"),
            out_dir: None,
            target_version: None,
            skip_hash_check: false,
            force: false,
            owner: None,
            bump_revision: None,
            mark_compacted: false,
            clear_alarms: false,
            prefix: "/registry".to_string(),
        }
    }
}

/// Why a restore was not planned or not done. Every error that is said
/// "nothing was restored" left every target as it was.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// `--bump-revision` and `--mark-compacted` disagree.
    #[error("{0}")]
    Bump(#[source] BumpError),
    /// `--initial-cluster` does not parse.
    #[error("{0}")]
    Membership(#[source] MembershipError),
    /// `--data-dir` and `--out-dir` for one member.
    #[error("--data-dir and --out-dir both say where the member goes; give one")]
    DataDirAndOutDir,
    /// The member to restore is not in `--initial-cluster`.
    #[error("couldn't find local name {name:?} in the initial cluster configuration{why}")]
    UnknownMember {
        /// The name looked for.
        name: String,
        /// Why that name, when `--name` was not given.
        why: &'static str,
    },
    /// `--initial-advertise-peer-urls` is not the member's.
    #[error(
        "--initial-cluster has {name}={listed} but missing from --initial-advertise-peer-urls={given}"
    )]
    PeerUrls {
        /// The member.
        name: String,
        /// Its peer URLs in `--initial-cluster`.
        listed: String,
        /// `--initial-advertise-peer-urls`.
        given: String,
    },
    /// `--client-urls` is wrong.
    #[error("{0}")]
    Flags(#[source] FlagsError),
    /// The snapshot could not be opened.
    #[error("{0}")]
    Open(#[source] OpenSnapshotError),
    /// A path could not be made absolute.
    #[error("{}: cannot make it absolute", .path.display())]
    Absolute {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        err: std::io::Error,
    },
    /// The snapshot does not open as a db (`--dry-run`).
    #[error("{path}: not a readable snapshot")]
    NotReadable {
        /// The snapshot.
        path: String,
        /// What the open found.
        #[source]
        err: OpenError,
    },
    /// No release to write for.
    #[error("{0}")]
    Target(#[source] TargetError),
    /// The stale-data report could not be read.
    #[error("{0}")]
    Stale(#[source] StaleError),
    /// A target could not be cleaned of what a killed run left.
    #[error("{0}")]
    Clean(#[source] SwapError),
    /// A member's target refused the write, or its swap failed.
    #[error("restoring member {name}")]
    Member {
        /// The member.
        name: String,
        /// Why.
        #[source]
        err: SwapError,
    },
    /// The restored db could not be built.
    #[error("{0}")]
    Restore(#[source] RestoreError),
    /// The snapshot fails verification: nothing was written.
    #[error("not restoring from a snapshot that fails verification")]
    Unsound(Box<crate::verify::Report>),
    /// The snapshot was refused for another reason: nothing was written.
    #[error("nothing was restored")]
    Refused(#[source] SourceError),
    /// Staging or swapping failed: every member (and `.env` file) was put
    /// back as it was.
    #[error("nothing was restored: every member is as it was")]
    NothingRestored(#[source] Box<RunError>),
    /// An `.env` file could not be written.
    #[error("{0}")]
    Io(#[source] crate::durable::IoError),
    /// A swap could not be finished (its journals removed).
    #[error("{0}")]
    Finish(#[source] SwapError),
}

impl RunError {
    /// The verifier's report when the snapshot failed verification.
    pub fn unsound_report(&self) -> Option<&crate::verify::Report> {
        match self {
            RunError::Unsound(r) => Some(r),
            _ => None,
        }
    }
}

/// Something said while a restore is planned or done, for the operator.
pub enum Event<'a> {
    /// A compressed snapshot held data past the db that was not inflated
    /// (not damage).
    Excess {
        /// The snapshot.
        path: &'a Path,
        /// What was past the db.
        excess: Excess,
    },
    /// What a killed run left was cleaned, one line.
    Cleaned(&'a str),
    /// Every member is staged and the snapshot passed: the swap comes next.
    Staged(&'a Report),
    /// An interrupted run's swap was undone first, one line.
    Undone(&'a str),
}

/// One member in a plan or report.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberPlan {
    /// The member: name, peer URLs, ID.
    #[serde(flatten)]
    pub member: Member,
    /// Its data dir (absolute).
    pub data_dir: String,
    /// Its WAL dir, when given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wal_dir: Option<String>,
    /// Its `.env` file, when one is written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env_file: Option<String>,
    /// Every flag the member must start with (the `.env` file holds the same).
    pub flags: Vec<String>,
    /// Where the old member (and WAL) dir went.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub moved_aside: Vec<String>,
    /// `--dry-run`: why writing this member would be refused (a running etcd,
    /// an interrupted run's journal, a member in place without --force).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
    /// `--dry-run`: what the write would do first (undo an interrupted swap).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub first: Vec<String>,
}

impl MemberPlan {
    /// Where the member's data goes, as the swap takes it.
    pub fn target(&self) -> swap::Target {
        swap::Target {
            data_dir: PathBuf::from(&self.data_dir),
            wal_dir: self.wal_dir.as_ref().map(PathBuf::from),
        }
    }
}

/// What a restore would do (`--dry-run`) or did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The snapshot's path.
    pub snapshot: String,
    /// Whether the snapshot passed every check.
    pub snapshot_checks_passed: bool,
    /// The names of the checks it failed.
    #[serde(skip)]
    pub failed_checks: Vec<&'static str>,
    /// The keyspace's revision.
    pub revision: i64,
    /// The cluster ID.
    #[serde(serialize_with = "hex")]
    pub cluster_id: u64,
    /// The cluster token.
    pub initial_cluster_token: String,
    /// The release whose storage the snapshot holds.
    pub snapshot_release: &'static str,
    /// The release the data dirs are written for.
    pub target_version: &'static str,
    /// Every member restored.
    pub members: Vec<MemberPlan>,
    /// What comes back stale.
    pub stale: StaleReport,
}

fn hex<S: serde::Serializer>(id: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{id:x}"))
}

/// What a restore would do: the request checked, the snapshot opened (not
/// read yet), every member's paths and flags.
pub struct Plan {
    /// The request, as given.
    pub request: Request,
    /// The cluster restored.
    pub cluster: Cluster,
    /// The snapshot.
    pub file: SnapshotFile,
    /// The members restored, in the cluster's order.
    pub members: Vec<MemberPlan>,
    /// Where the `.env` files go, when they are written.
    pub env_dir: Option<PathBuf>,
    /// The bump to apply (`--bump-revision` when above 0).
    pub bump: Option<u64>,
}

impl Plan {
    /// The report of this plan, from what the snapshot's read gave.
    pub fn report(
        &self,
        checks: &crate::verify::Report,
        snapshot_release: Target,
        target: Target,
        stale: StaleReport,
        members: Vec<MemberPlan>,
    ) -> Report {
        Report {
            snapshot: self.file.path().display().to_string(),
            snapshot_checks_passed: checks.passed,
            failed_checks: checks
                .checks
                .iter()
                .filter(|c| c.status == CheckStatus::Failed)
                .map(|c| c.name)
                .collect(),
            revision: checks.summary.keyspace.as_ref().map_or(0, |k| k.revision),
            cluster_id: self.cluster.cluster_id,
            initial_cluster_token: self.cluster.token.clone(),
            snapshot_release: snapshot_release.line(),
            target_version: target.line(),
            members,
            stale,
        }
    }
}

fn absolute(p: &Path) -> Result<PathBuf, RunError> {
    std::path::absolute(p).map_err(|err| RunError::Absolute {
        path: p.to_path_buf(),
        err,
    })
}

/// The members a request restores: one when `--name` or a one-member flag
/// is given (then `default` without `--name`, as etcdutl), else all.
fn select<'c>(req: &Request, cluster: &'c Cluster) -> Result<Vec<&'c Member>, RunError> {
    let one_member_flag = req.data_dir.is_some()
        || req.wal_dir.is_some()
        || req.initial_advertise_peer_urls.is_some();
    let name = match &req.name {
        Some(n) => Some(n.clone()),
        None if one_member_flag => Some("default".to_string()),
        None => None,
    };
    if name.is_some() && req.data_dir.is_some() && req.out_dir.is_some() {
        return Err(RunError::DataDirAndOutDir);
    }
    let Some(name) = name else {
        return Ok(cluster.members.iter().collect());
    };
    let Some(m) = cluster.members.iter().find(|m| m.name == name) else {
        let why = if req.name.is_none() {
            " (--data-dir, --wal-dir and --initial-advertise-peer-urls are one member's: \
             without --name that member is \"default\", as with etcdutl)"
        } else {
            ""
        };
        return Err(RunError::UnknownMember { name, why });
    };
    if let Some(urls) = &req.initial_advertise_peer_urls {
        let mut given: Vec<String> = urls.split(',').map(|u| u.trim().to_string()).collect();
        given.sort();
        if given != m.peer_urls {
            return Err(RunError::PeerUrls {
                name,
                listed: m.peer_urls.join(","),
                given: urls.clone(),
            });
        }
    }
    Ok(vec![m])
}

/// Plans a restore: checks the request, opens the snapshot (an excess
/// past a compressed db is said through `on`), and works out every member's
/// data dir, WAL dir, `.env` file and start flags. Writes nothing, and reads
/// no more of the snapshot than its opening does.
///
/// # Examples
///
/// Plan a restore:
///
/// ```
/// use etcdsnap::restore::plan::{Request, plan};
///
/// let mut req = Request::new(
///     concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/etcd-3.5.1.db"),
///     "m1=https://10.0.0.1:2380,m2=https://10.0.0.2:2380",
/// );
/// req.out_dir = Some("/srv/restore".into());
/// let plan = plan(&req, &mut |_| {}).unwrap();
/// assert_eq!(plan.members.len(), 2);
/// let m1 = plan.members.iter().find(|m| m.member.name == "m1").unwrap();
/// assert_eq!(m1.data_dir, "/srv/restore/m1.etcd");
/// assert_eq!(m1.env_file.as_deref(), Some("/srv/restore/m1.env"));
/// assert!(m1.flags.contains(&"--data-dir=/srv/restore/m1.etcd".to_string()));
/// ```
pub fn plan(req: &Request, on: &mut dyn FnMut(Event<'_>)) -> Result<Plan, RunError> {
    let bump = bump(req.bump_revision, req.mark_compacted).map_err(RunError::Bump)?;
    let cluster = Cluster::parse(&req.initial_cluster, &req.initial_cluster_token)
        .map_err(RunError::Membership)?;
    let members = select(req, &cluster)?;
    let single = is_one_member(req);
    let clients = client_urls(req.client_urls.as_deref(), &members).map_err(RunError::Flags)?;
    let file = source::open(&req.snapshot, &mut |path, excess| {
        on(Event::Excess { path, excess })
    })
    .map_err(RunError::Open)?;
    // .env files: every member's in --out-dir (default .), one member's when --out-dir is given.
    let env_dir = match (&req.out_dir, single) {
        (Some(d), _) => Some(d.clone()),
        (None, false) => Some(PathBuf::from(".")),
        (None, true) => None,
    };
    let wal_dir = match &req.wal_dir {
        Some(w) if single => Some(absolute(w)?),
        _ => None,
    };
    let mut plans = Vec::new();
    for m in &members {
        let data_dir = match (&req.data_dir, &req.out_dir) {
            (Some(d), _) if single => d.clone(),
            (_, Some(o)) => o.join(format!("{}.etcd", m.name)),
            _ => PathBuf::from(format!("{}.etcd", m.name)),
        };
        let data_dir = absolute(&data_dir)?;
        let env_file = match &env_dir {
            Some(d) => Some(absolute(&d.join(format!("{}.env", m.name)))?),
            None => None,
        };
        plans.push(MemberPlan {
            flags: start_flags(
                &cluster,
                m,
                &data_dir,
                wal_dir.as_deref(),
                clients.get(&m.name),
                &req.pki_dir,
            ),
            data_dir: data_dir.display().to_string(),
            wal_dir: wal_dir.as_ref().map(|w| w.display().to_string()),
            env_file: env_file.map(|e| e.display().to_string()),
            member: (*m).clone(),
            moved_aside: Vec::new(),
            refused: None,
            first: Vec::new(),
        });
    }
    Ok(Plan {
        request: req.clone(),
        cluster,
        file,
        members: plans,
        env_dir,
        bump,
    })
}

/// Whether the request names one member (by `--name` or a one-member flag).
fn is_one_member(req: &Request) -> bool {
    req.name.is_some()
        || req.data_dir.is_some()
        || req.wal_dir.is_some()
        || req.initial_advertise_peer_urls.is_some()
}

/// What `--dry-run` shows: the plan with the snapshot verified, the release
/// written for, what comes back stale, and what each member's target would
/// refuse or do first. Writes nothing.
pub fn preview(plan: &Plan) -> Result<Report, RunError> {
    let file = &plan.file;
    let checks = verify(file);
    let db = Db::open(file.db()).map_err(|err| RunError::NotReadable {
        path: file.path().display().to_string(),
        err,
    })?;
    let requested = plan.request.target_version.as_deref();
    let meta = checks.summary.meta.as_ref();
    let snapshot_release = source::release_of(
        meta.and_then(|m| m.storage_version.as_deref()),
        target::cluster_version(&db).as_deref(),
        meta.is_some_and(|m| m.term.is_some_and(|t| t > 0)),
        requested,
    )
    .map_err(RunError::Target)?;
    let target = target::choose(snapshot_release, requested.and_then(Target::parse))
        .map_err(RunError::Target)?;
    let stale = report(&db, &plan.request.prefix).map_err(RunError::Stale)?;
    let mut members = plan.members.clone();
    for m in &mut members {
        match swap::check(&m.target(), plan.request.force) {
            Ok(c) => m.first = c.notes(),
            Err(e) => m.refused = Some(e.to_string()),
        }
    }
    Ok(plan.report(&checks, snapshot_release, target, stale, members))
}
