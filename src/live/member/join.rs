//! Adding a member as a learner, and what its node needs to start: the
//! `NAME.env` file (etcd's own `ETCD_*` variables) and one join archive
//! (`NAME.tar.zst`, listed in `SHA256SUMS`) holding the same flags, the
//! kubeadm static pod and, given the etcd CA, the member's certificates,
//! which `install` places on the node with an empty data dir.
//!
//! Why apart from `replace`: growing a restored one-member cluster is the
//! same join without a removal, so both plan with `plan_join` and add with
//! [`add_learner`]. A rerun after a run that added the learner but could not
//! write its files finds that learner (not started, the same peer URL) and
//! writes them, rather than adding a second one or refusing.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use super::{MemberError, MemberList, MemberRow, hex, list, same_url};
use crate::bundle::join::{Join, write_join};
use crate::cluster::flags::{client_urls_of, env_text, start_flags, url_parts};
use crate::cluster::membership::{Cluster, MembershipError, check_url, is_plain_name};
use crate::cluster::podspec::{PodInput, default_image, etcd_pod};
use crate::durable::{self, IoError};
use crate::live::connect::Live;
use crate::pki::MemberUrls;
use crate::pki::issue::{IssueOptions, sign};

/// Where a new member's data dir is, unless told (kubeadm's).
pub const DEFAULT_DATA_DIR: &str = "/var/lib/etcd";
/// Where a new member's TLS files are, when a URL is https (kubeadm's).
pub const DEFAULT_PKI_DIR: &str = "/etc/kubernetes/pki/etcd";
/// How long the new member's certificates are valid, unless told (kubeadm's).
pub const DEFAULT_DAYS: u32 = 365;

/// How long MemberAdd is retried while etcd says "unhealthy cluster" (its
/// leader has not been connected to every voting member for 5 s yet).
pub const UNHEALTHY_RETRY: Duration = Duration::from_secs(15);

/// What joining a member is asked to do.
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
    /// Its etcd TLS files' directory on its node ([`DEFAULT_PKI_DIR`]).
    pub pki_dir: Option<PathBuf>,
    /// Where `NAME.env` and the join archive are written.
    pub out_dir: PathBuf,
    /// Replace existing outputs (moved aside).
    pub force: bool,
    /// The etcd CA (a PKI directory as `pki issue --ca-dir` takes it): the
    /// member's certificates are signed with it and go into the archive.
    pub ca_dir: Option<PathBuf>,
    /// The static pod's image (default: kubeadm's for the cluster's release).
    pub image: Option<String>,
    /// The certificates' validity in days.
    pub days: u32,
}

/// One certificate or key for the node, as the archive holds it.
#[derive(Debug, Clone, Serialize)]
pub struct NodeFile {
    /// Its path in the archive (`pki/etcd/server.crt`, …).
    pub path: String,
    /// Mode (0600 keys, 0644 certificates).
    pub mode: u32,
    /// The certificate's SANs (certificates only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sans: Vec<String>,
    /// The bytes.
    #[serde(skip)]
    pub bytes: Vec<u8>,
}

/// What joining a member does, and what its node needs.
#[derive(Debug, Clone, Serialize)]
pub struct JoinPlan {
    /// The new member's name.
    pub name: String,
    /// Its peer URL.
    pub peer_url: String,
    /// The client URLs it advertises.
    pub client_urls: Vec<String>,
    /// The member ID etcd gave it (0 until it is added).
    #[serde(serialize_with = "hex")]
    pub id: u64,
    /// A learner with this peer URL that has not started was already in
    /// the member list (a rerun): it is used, not added again.
    pub found_learner: bool,
    /// The `--initial-cluster` it starts with: the current members and itself.
    pub initial_cluster: String,
    /// Its start flags.
    pub flags: Vec<String>,
    /// The same as `ETCD_*` variables (the `NAME.env` text).
    pub env: String,
    /// The static pod's image.
    pub image: String,
    /// The static pod (`etcd.yaml` in the archive).
    #[serde(skip)]
    pub pod: String,
    /// Its data dir on its node.
    pub data_dir: PathBuf,
    /// Its etcd TLS files' directory on its node.
    pub pki_dir: PathBuf,
    /// The certificates signed for it (with a CA).
    pub certs: Vec<NodeFile>,
    /// The cluster's etcd release (the first voting member's that answered).
    pub cluster_version: String,
    /// Where the env file goes.
    pub env_file: PathBuf,
    /// Where the join archive goes.
    pub archive: PathBuf,
    /// The archive's sha256 once written.
    pub archive_sha256: Option<String>,
    /// The member list before the change.
    pub before: MemberList,
    /// Existing outputs may be replaced (moved aside).
    #[serde(skip)]
    pub force: bool,
}

/// Checks a learner can be added now (quorum; name and peer URL free; the
/// outputs can be placed; the CA can sign) and computes what its node
/// needs. Changes nothing.
pub fn plan_learner(live: &Live, req: &JoinRequest) -> Result<JoinPlan, MemberError> {
    check_spec(req)?;
    let before = list(live)?;
    plan_join(before, req, None)
}

/// The name and URLs, as etcd takes them.
pub(super) fn check_spec(req: &JoinRequest) -> Result<(), MemberError> {
    Cluster::parse(&format!("{}={}", req.name, req.peer_url), "")?;
    if !is_plain_name(&req.name) {
        return Err(MembershipError::Name(req.name.clone()).into());
    }
    if let Some(u) = &req.client_url
        && (url_parts(u).is_none() || check_url(&req.name, u).is_err())
    {
        return Err(MemberError::ClientUrl(u.clone()));
    }
    Ok(())
}

/// [`plan_learner`] on a member list read already; `replacing` is the
/// member about to be removed: its name and peer URL are free, it is not
/// in the new member's `--initial-cluster`, and the quorum must hold
/// without it.
pub(super) fn plan_join(
    before: MemberList,
    req: &JoinRequest,
    replacing: Option<&MemberRow>,
) -> Result<JoinPlan, MemberError> {
    let gone = replacing.map(|r| r.id);
    let mut found: Option<u64> = None;
    for m in before.members.iter().filter(|m| Some(m.id) != gone) {
        if !m.name.is_empty() && m.name == req.name {
            return Err(MemberError::NameInUse {
                name: req.name.clone(),
                id: m.id,
            });
        }
        if m.peer_urls.iter().any(|u| same_url(u, &req.peer_url)) {
            let unstarted_learner =
                m.is_learner && m.name.is_empty() && m.peer_urls.len() == 1 && m.status.is_none();
            if unstarted_learner {
                found = Some(m.id);
                continue;
            }
            return Err(MemberError::UrlInUse {
                url: req.peer_url.clone(),
                id: m.id,
                name: m.label(),
            });
        }
    }
    before.check_quorum_without(gone)?;
    if !req.out_dir.is_dir() {
        return Err(MemberError::OutDir(req.out_dir.clone()));
    }
    let env_file = req.out_dir.join(format!("{}.env", req.name));
    let archive = req
        .out_dir
        .join(crate::bundle::archive_name(&req.name, false));
    if !req.force {
        for p in [&env_file, &archive] {
            if std::fs::symlink_metadata(p).is_ok() {
                return Err(MemberError::OutputExists(p.clone()));
            }
        }
    }
    let data_dir = req
        .data_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
    let pki_dir = req
        .pki_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_PKI_DIR));
    if pki_dir.file_name().is_none_or(|n| n != "etcd") || !pki_dir.is_absolute() {
        return Err(MemberError::PkiDir(pki_dir));
    }
    // The started members but the one replaced (a learner not started yet
    // has no name and cannot be listed; etcd allows one learner at a time
    // anyway), then the new one.
    let mut entries: Vec<String> = before
        .members
        .iter()
        .filter(|m| !m.name.is_empty() && Some(m.id) != gone)
        .flat_map(|m| m.peer_urls.iter().map(move |u| format!("{}={u}", m.name)))
        .collect();
    entries.push(format!("{}={}", req.name, req.peer_url));
    let initial_cluster = entries.join(",");
    let cluster = Cluster::parse(&initial_cluster, "")?;
    let member = cluster
        .members
        .iter()
        .find(|m| m.name == req.name)
        .ok_or(MemberError::Membership(MembershipError::Empty))?;
    let given_client = req.client_url.clone().map(|u| vec![u]);
    let (client_urls, _) = client_urls_of(member, given_client.as_ref());
    let flags = joining_flags(start_flags(
        &cluster,
        member,
        &data_dir,
        None,
        given_client.as_ref(),
        &pki_dir,
    ));
    let cluster_version = cluster_version(&before);
    let line = release_line(&cluster_version);
    let image = match &req.image {
        Some(i) => i.clone(),
        None => default_image(&line)
            .ok_or_else(|| MemberError::NoImage(cluster_version.clone()))?
            .to_string(),
    };
    // The pod adds kubeadm's metrics listener, which its probes hit (as
    // `bundle` writes it).
    let mut pod_flags = flags.clone();
    pod_flags.push(format!(
        "--listen-metrics-urls={}",
        metrics_url(&req.peer_url)
    ));
    let pod = etcd_pod(&PodInput {
        flags: &pod_flags,
        image: &image,
        line: &line,
        data_dir: &data_dir.display().to_string(),
        pki_etcd_dir: &pki_dir.display().to_string(),
        advertise_client: &client_urls.join(","),
    })?;
    let certs = match &req.ca_dir {
        Some(ca) => certificates(ca, req, &client_urls)?,
        None => Vec::new(),
    };
    Ok(JoinPlan {
        name: req.name.clone(),
        peer_url: req.peer_url.clone(),
        client_urls,
        id: found.unwrap_or(0),
        found_learner: found.is_some(),
        initial_cluster,
        env: env_text(&flags),
        flags,
        image,
        pod,
        data_dir,
        pki_dir,
        certs,
        cluster_version,
        env_file,
        archive,
        archive_sha256: None,
        before,
        force: req.force,
    })
}

/// The member's server, peer, healthcheck-client and apiserver-etcd-client
/// pairs signed by the CA at `ca` (kubeadm's profiles, as `pki issue`
/// signs them: the CA and the hosts are checked first), and the CA
/// certificate, at their places in the archive.
fn certificates(
    ca: &Path,
    req: &JoinRequest,
    client_urls: &[String],
) -> Result<Vec<NodeFile>, MemberError> {
    let signed = sign(&IssueOptions {
        ca_dir: ca.to_path_buf(),
        out: PathBuf::new(),
        members: vec![MemberUrls {
            name: req.name.clone(),
            peer_urls: vec![req.peer_url.clone()],
            client_urls: client_urls.to_vec(),
        }],
        days: req.days,
        force: false,
        now: SystemTime::now(),
    })?;
    let mut files: Vec<NodeFile> = signed
        .files
        .into_iter()
        .filter_map(|f| {
            let p = f.path.to_str()?.to_string();
            // `etcd/ca.crt`, `NAME/etcd/server.crt`, `NAME/apiserver-etcd-client.key`.
            let rest = match p.strip_prefix(&format!("{}/", req.name)) {
                Some(rest) => rest.to_string(),
                None => p,
            };
            Some(NodeFile {
                path: format!("pki/{rest}"),
                mode: f.mode,
                sans: f.sans,
                bytes: f.bytes,
            })
        })
        .collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

/// The release of the first voting member that answered (`3.5.1`).
fn cluster_version(l: &MemberList) -> String {
    l.members
        .iter()
        .filter(|m| !m.is_learner)
        .find_map(|m| m.status.as_ref())
        .map(|s| s.version.clone())
        .unwrap_or_default()
}

/// `3.5` of `3.5.1`.
fn release_line(v: &str) -> String {
    v.split('.').take(2).collect::<Vec<_>>().join(".")
}

/// kubeadm's metrics listener on the member's loopback.
fn metrics_url(peer_url: &str) -> &'static str {
    if url_parts(peer_url).is_some_and(|(_, h, _)| h.contains(':')) {
        "http://[::1]:2381"
    } else {
        "http://127.0.0.1:2381"
    }
}

/// A restored member's flags turned into a joining member's: the cluster
/// exists (no token: it is the existing cluster's).
pub(super) fn joining_flags(flags: Vec<String>) -> Vec<String> {
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

/// Adds the planned member as a learner (MemberAdd with IsLearner) unless
/// the plan found it added already, then writes its node's files
/// ([`write_node_files`]). Returns the plan with the ID.
pub fn add_learner(live: &Live, mut plan: JoinPlan) -> Result<JoinPlan, MemberError> {
    if !plan.found_learner {
        plan.id = member_add(live, &plan.before.listed_by, &plan.peer_url)?;
    }
    let id = plan.id;
    write_node_files(&mut plan).map_err(|e| MemberError::FilesAfterAdd {
        id,
        err: e.to_string(),
    })?;
    Ok(plan)
}

/// MemberAdd as a learner, through `endpoint`, retried while etcd says
/// "unhealthy cluster" (just after a promote or a removal); the new ID.
pub(super) fn member_add(live: &Live, endpoint: &str, peer_url: &str) -> Result<u64, MemberError> {
    let lister = live.connect(endpoint)?;
    let start = Instant::now();
    loop {
        let mut c = lister.client.clone();
        let urls = vec![peer_url.to_string()];
        match live.unary(&lister, "MemberAdd", async move {
            c.member_add(
                urls,
                Some(etcd_client::MemberAddOptions::new().with_is_learner()),
            )
            .await
        }) {
            Ok(r) => return Ok(r.member().map_or(0, |m| m.id())),
            Err(e)
                if e.to_string().contains("unhealthy cluster")
                    && start.elapsed() < UNHEALTHY_RETRY =>
            {
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Writes `NAME.env` (0600, atomically) and the join archive with its
/// `SHA256SUMS` line; an existing output is moved aside first when the plan
/// allows replacing it (it was checked before anything changed).
pub fn write_node_files(plan: &mut JoinPlan) -> Result<(), MemberError> {
    let pki_root = plan
        .pki_dir
        .parent()
        .ok_or_else(|| MemberError::PkiDir(plan.pki_dir.clone()))?;
    let join = Join {
        name: plan.name.clone(),
        member_id: plan.id,
        peer_urls: vec![plan.peer_url.clone()],
        client_urls: plan.client_urls.clone(),
        cluster_id: plan.before.cluster_id,
        initial_cluster: plan.initial_cluster.clone(),
        initial_cluster_token: String::new(),
        data_dir: plan.data_dir.display().to_string(),
        pki_dir: pki_root.display().to_string(),
        flags: plan.flags.clone(),
        env: plan.env.clone(),
        pod: plan.pod.clone(),
        pki: plan
            .certs
            .iter()
            .map(|c| {
                let below = c.path.strip_prefix("pki/").unwrap_or(&c.path);
                (below.to_string(), c.bytes.clone())
            })
            .collect(),
        owner: (0, 0),
        cluster_version: plan.cluster_version.clone(),
    };
    let out = durable::parent_of(&plan.archive).to_path_buf();
    let written = write_join(&out, &join, plan.force)?;
    plan.archive_sha256 = Some(written.sha256);
    if std::fs::symlink_metadata(&plan.env_file).is_ok() {
        let aside = PathBuf::from(format!(
            "{}.etcdsnap-bak-{}",
            plan.env_file.display(),
            durable::utc_stamp()
        ));
        std::fs::rename(&plan.env_file, &aside).map_err(IoError::at(&plan.env_file))?;
    }
    durable::write_atomic(&plan.env_file, plan.env.as_bytes())?;
    Ok(())
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
    fn release_lines() {
        assert_eq!(release_line("3.5.1"), "3.5");
        assert_eq!(release_line("3.6.16"), "3.6");
        assert_eq!(release_line(""), "");
    }
}
