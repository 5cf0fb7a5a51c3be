//! `etcdsnap member list|status|add-learner|replace|promote`: grow a cluster
//! (a one-member restore) one learner at a time, and replace a failed member.

use std::path::PathBuf;

use serde_json::json;

use super::args::{ConnArgs, ReportFormat};
use super::{Outcome, out};
use etcdsnap::live::connect::parse_duration;
use etcdsnap::live::member::join::{DEFAULT_DAYS, NodeFile};
use etcdsnap::live::member::{
    JoinPlan, JoinRequest, MemberError, MemberList, ReplacePlan, ReplaceRequest, add_learner, list,
    plan_learner, plan_replace, promote, replace,
};
use etcdsnap::report::{Align, Table, escape_controls, humanize_bytes};

/// List members and their status, add a learner, replace a failed member, promote
#[derive(clap::Args)]
#[command(
    long_about = "Grows a cluster one member at a time, and replaces a failed member, as etcd's runtime \
reconfiguration wants it.\n\n`replace OLD --new NAME=PEER_URL` checks first (the cluster keeps a majority of its \
voting members without OLD, and they know a leader; OLD does not answer; no other member has the name or the \
peer URL; with --ca-dir, the CA can sign), removes OLD, adds NAME as a learner (it does not count towards the \
quorum until promoted) and writes what NAME's node needs: NAME.env (etcd's ETCD_* variables with \
ETCD_INITIAL_CLUSTER_STATE=existing and the current members in ETCD_INITIAL_CLUSTER) and NAME.tar.zst, a join \
archive listed in SHA256SUMS that `etcdsnap install` places on the node: the same flags, the kubeadm static pod, \
and with --ca-dir the member's server, peer, healthcheck-client and apiserver-etcd-client certificates signed by \
that CA. It holds no data: the new member syncs from the leader, and install refuses a data dir that holds a \
member. `add-learner NAME=PEER_URL` is the same join without a removal: the way to finish a restore done on one \
node (restore it as a one-member cluster, start it, then add and promote each other node in turn).\n\n\
Start etcd on the new node from those files with an empty data dir, then `promote` it: MemberPromote is retried \
while etcd says the learner has not caught up, until --wait. Run again after a failure, a command picks up \
where it stopped: a member already removed is not looked for, a learner already added (not started, same peer \
URL) is not added twice.\n\nExit codes: 0 done; 1 refused (no quorum, OLD still answers, name or URL in use, \
the learner not in sync at the deadline, a member not answering `status`); 2 usage, I/O or connection error.",
    after_help = "Examples:\n  etcdsnap member list --endpoints https://10.0.0.1:2379 --cacert ca.crt --cert c.crt --key c.key\n  \
etcdsnap member status --endpoints https://10.0.0.1:2379 --cacert ca.crt --cert c.crt --key c.key -w json\n  \
etcdsnap member replace node3 --new node3b=https://10.0.0.4:2380 --ca-dir /etc/kubernetes/pki --out . \\\n      \
--endpoints https://10.0.0.1:2379 --cacert ca.crt --cert c.crt --key c.key --dry-run\n  \
etcdsnap install node3b.tar.zst          # on the new node\n  \
etcdsnap member promote node3b --wait 60s --endpoints https://10.0.0.1:2379 --cacert ca.crt --cert c.crt --key c.key\n  \
etcdsnap member add-learner node2=http://10.0.0.2:2380 --endpoints http://10.0.0.1:2379 --out ."
)]
pub struct Args {
    #[command(subcommand)]
    command: Sub,
}

/// Where the new member's files go and what they hold.
#[derive(clap::Args)]
struct JoinArgs {
    /// The client URL it advertises (default: its peer host, port 2379)
    #[arg(long, value_name = "URL")]
    client_url: Option<String>,
    /// Its data dir on its node (must be empty when it starts)
    #[arg(long, value_name = "DIR", default_value = "/var/lib/etcd")]
    data_dir: PathBuf,
    /// Where its etcd TLS files are on its node, when a URL is https (ends in /etcd)
    #[arg(long, value_name = "DIR", default_value = "/etc/kubernetes/pki/etcd")]
    pki_dir: PathBuf,
    /// The etcd CA (a PKI dir as `pki issue --ca-dir` takes it): sign the
    /// member's certificates with it and put them in the archive
    #[arg(long, value_name = "DIR")]
    ca_dir: Option<PathBuf>,
    /// Validity of the certificates, in days
    #[arg(long, default_value_t = DEFAULT_DAYS)]
    days: u32,
    /// The static pod's image (default: kubeadm's for the cluster's etcd release)
    #[arg(long)]
    image: Option<String>,
    /// Where NAME.env, NAME.tar.zst and SHA256SUMS are written
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Check and print the plan; change nothing, write nothing
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    conn: ConnArgs,
    /// Output format
    #[arg(short = 'w', long = "write-out", value_enum, default_value = "table")]
    write_out: ReportFormat,
}

impl JoinArgs {
    fn request(&self, spec: &str, force: bool) -> anyhow::Result<JoinRequest> {
        let Some((name, peer_url)) = spec.split_once('=') else {
            anyhow::bail!("{spec:?}: give NAME=PEER_URL");
        };
        Ok(JoinRequest {
            name: name.to_string(),
            peer_url: peer_url.to_string(),
            client_url: self.client_url.clone(),
            data_dir: Some(std::path::absolute(&self.data_dir)?),
            pki_dir: Some(std::path::absolute(&self.pki_dir)?),
            out_dir: self.out.clone(),
            force,
            ca_dir: self.ca_dir.clone(),
            image: self.image.clone(),
            days: self.days,
        })
    }
}

#[derive(clap::Subcommand)]
enum Sub {
    /// The member list, with each member's status (etcdctl member list and
    /// endpoint status)
    List {
        #[command(flatten)]
        conn: ConnArgs,
        /// Output format
        #[arg(short = 'w', long = "write-out", value_enum, default_value = "table")]
        write_out: ReportFormat,
    },
    /// Each member's status, dialed at its client URLs (etcdctl endpoint
    /// status --cluster); exit 1 when one does not answer
    Status {
        #[command(flatten)]
        conn: ConnArgs,
        /// Output format
        #[arg(short = 'w', long = "write-out", value_enum, default_value = "table")]
        write_out: ReportFormat,
    },
    /// Add a member as a learner and write what its node needs
    AddLearner {
        /// The new member: NAME=PEER_URL
        member: String,
        /// Replace existing outputs (the old ones are moved aside)
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        join: JoinArgs,
    },
    /// Remove a failed member, add its replacement as a learner, write what
    /// the new node needs
    Replace {
        /// The failed member: its name or hex ID
        old: String,
        /// The new member: NAME=PEER_URL
        #[arg(long = "new", value_name = "NAME=PEER_URL")]
        new: String,
        /// Remove OLD even though it answers, and replace existing outputs
        /// (the old ones are moved aside)
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        join: JoinArgs,
    },
    /// Promote a learner once it has caught up with the leader
    Promote {
        /// The learner's name (or hex ID)
        member: String,
        /// How long to retry while etcd says the learner is not in sync
        #[arg(long, value_name = "DURATION", default_value = "0s")]
        wait: String,
        #[command(flatten)]
        conn: ConnArgs,
        /// Output format
        #[arg(short = 'w', long = "write-out", value_enum, default_value = "table")]
        write_out: ReportFormat,
    },
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    match args.command {
        Sub::List { conn, write_out } => {
            let live = conn.live()?;
            let l = list(&live)?;
            out(&render_list(&l, write_out))?;
            Ok(Outcome::Ok)
        }
        Sub::Status { conn, write_out } => {
            let live = conn.live()?;
            let l = list(&live)?;
            out(&render_status(&l, write_out))?;
            Ok(if l.members.iter().all(|m| m.status.is_some()) {
                Outcome::Ok
            } else {
                Outcome::Failed
            })
        }
        Sub::AddLearner {
            member,
            force,
            join,
        } => {
            let req = join.request(&member, force)?;
            let live = join.conn.live()?;
            let plan = match plan_learner(&live, &req) {
                Ok(p) => p,
                Err(e) => return refusal(e),
            };
            if join.dry_run {
                out(&render_plan(&plan, join.write_out, true))?;
                return Ok(Outcome::Ok);
            }
            let plan = match add_learner(&live, plan) {
                Ok(p) => p,
                Err(e) => return refusal(e),
            };
            out(&render_plan(&plan, join.write_out, false))?;
            Ok(Outcome::Ok)
        }
        Sub::Replace {
            old,
            new,
            force,
            join,
        } => {
            let req = ReplaceRequest {
                old,
                join: join.request(&new, force)?,
                force,
            };
            let live = join.conn.live()?;
            let plan = match plan_replace(&live, &req) {
                Ok(p) => p,
                Err(e) => return refusal(e),
            };
            if join.dry_run {
                out(&render_replace(&plan, join.write_out, true))?;
                return Ok(Outcome::Ok);
            }
            let plan = match replace(&live, plan) {
                Ok(p) => p,
                Err(e) => return refusal(e),
            };
            out(&render_replace(&plan, join.write_out, false))?;
            Ok(Outcome::Ok)
        }
        Sub::Promote {
            member,
            wait,
            conn,
            write_out,
        } => {
            let wait = if wait.trim() == "0s" || wait.trim() == "0" {
                std::time::Duration::ZERO
            } else {
                parse_duration("--wait", &wait)?
            };
            let live = conn.live()?;
            match promote(&live, &member, wait) {
                Ok(l) => {
                    say!("etcdsnap: promoted {member}");
                    out(&render_list(&l, write_out))?;
                    Ok(Outcome::Ok)
                }
                Err(e) => refusal(e),
            }
        }
    }
}

/// A refusal is exit 1 (said on stderr); anything else stays an error.
fn refusal(e: MemberError) -> anyhow::Result<Outcome> {
    match e {
        MemberError::NoQuorum { .. }
        | MemberError::NameInUse { .. }
        | MemberError::UrlInUse { .. }
        | MemberError::NotLearner { .. }
        | MemberError::NotReady { .. }
        | MemberError::OldRunning { .. }
        | MemberError::CannotReplace(..) => {
            say!("etcdsnap: refused: {e}");
            Ok(Outcome::Failed)
        }
        e => Err(e.into()),
    }
}

fn render_list(l: &MemberList, format: ReportFormat) -> String {
    match format {
        ReportFormat::Json => {
            let members: Vec<_> = l
                .members
                .iter()
                .map(|m| {
                    json!({
                        "ID": m.id,
                        "name": m.name,
                        "peerURLs": m.peer_urls,
                        "clientURLs": m.client_urls,
                        "isLearner": m.is_learner,
                        "status": m.status,
                        "error": m.error,
                    })
                })
                .collect();
            format!(
                "{}\n",
                json!({"cluster_id": format!("{:x}", l.cluster_id), "members": members})
            )
        }
        ReportFormat::Table => {
            let mut t = Table::new(
                &[
                    "ID",
                    "STATUS",
                    "NAME",
                    "PEER ADDRS",
                    "CLIENT ADDRS",
                    "IS LEARNER",
                    "IS LEADER",
                    "VERSION",
                    "RAFT INDEX",
                    "REVISION",
                ],
                Align::Left,
            );
            for m in &l.members {
                let st = m.status.as_ref();
                t.row(vec![
                    format!("{:x}", m.id),
                    if m.name.is_empty() {
                        "unstarted".into()
                    } else if st.is_some() {
                        "started".into()
                    } else {
                        "unreachable".into()
                    },
                    escape_controls(&m.name).into_owned(),
                    escape_controls(&m.peer_urls.join(",")).into_owned(),
                    escape_controls(&m.client_urls.join(",")).into_owned(),
                    m.is_learner.to_string(),
                    st.map_or("-".into(), |s| (s.leader == m.id).to_string()),
                    st.map_or("-".into(), |s| escape_controls(&s.version).into_owned()),
                    st.map_or("-".into(), |s| s.raft_index.to_string()),
                    st.map_or("-".into(), |s| s.revision.to_string()),
                ]);
            }
            let mut s = t.render();
            for m in &l.members {
                if let Some(e) = &m.error
                    && !m.name.is_empty()
                {
                    s.push_str(&format!(
                        "{} ({:x}): {}\n",
                        escape_controls(&m.name),
                        m.id,
                        escape_controls(e)
                    ));
                }
            }
            s
        }
    }
}

fn e(s: &str) -> String {
    escape_controls(s).into_owned()
}

fn shown(p: &std::path::Path) -> String {
    e(&p.display().to_string())
}

fn render_plan(p: &JoinPlan, format: ReportFormat, dry_run: bool) -> String {
    match format {
        ReportFormat::Json => format!("{}\n", json!({"dry_run": dry_run, "join": p})),
        ReportFormat::Table => {
            let mut s = String::new();
            let (voting, answering) = p.before.voting();
            s.push_str(&format!(
                "checked: {answering} of {voting} voting members answer and know a leader\n"
            ));
            s.push_str(&join_lines(p, dry_run));
            s
        }
    }
}

fn render_replace(r: &ReplacePlan, format: ReportFormat, dry_run: bool) -> String {
    match format {
        ReportFormat::Json => format!("{}\n", json!({"dry_run": dry_run, "replace": r})),
        ReportFormat::Table => {
            let mut s = String::new();
            let p = &r.join;
            let gone = r.old.as_ref().map(|o| o.id);
            let voting = p.before.members.iter().filter(|m| !m.is_learner).count();
            let staying = p
                .before
                .members
                .iter()
                .filter(|m| !m.is_learner && m.status.is_some() && Some(m.id) != gone)
                .count();
            match &r.old {
                Some(o) => {
                    s.push_str(&format!(
                        "checked: without {} ({:x}), {staying} of {voting} voting members answer and know a \
                         leader (a majority, {}, is needed)\n",
                        e(&o.label()),
                        o.id,
                        voting / 2 + 1
                    ));
                    if r.old_running {
                        s.push_str(&format!(
                            "checked: {} still answers; removed anyway (--force)\n",
                            e(&o.label())
                        ));
                    } else {
                        s.push_str(&format!(
                            "checked: {} does not answer: {}\n",
                            e(&o.label()),
                            e(o.error.as_deref().unwrap_or("?"))
                        ));
                    }
                    if dry_run {
                        s.push_str(&format!("would remove {} ({:x})\n", e(&o.label()), o.id));
                    } else if r.removed {
                        s.push_str(&format!("removed {} ({:x})\n", e(&o.label()), o.id));
                    }
                }
                None => s.push_str(&format!(
                    "no member named {} (or with that ID) is listed: nothing to remove (a run before \
                     removed it?)\n",
                    e(&r.old_asked)
                )),
            }
            s.push_str(&join_lines(p, dry_run));
            s
        }
    }
}

/// The table lines of a join: the checks, what was done, the files, next steps.
fn join_lines(p: &JoinPlan, dry_run: bool) -> String {
    let mut s = String::new();
    let name = e(&p.name);
    s.push_str(&format!(
        "checked: name {name} and peer URL {} are free\n",
        e(&p.peer_url)
    ));
    if !p.certs.is_empty() {
        s.push_str("checked: the CA can sign the member's certificates\n");
    }
    let (out_env, out_archive) = (shown(&p.env_file), shown(&p.archive));
    if dry_run {
        if p.found_learner {
            s.push_str(&format!(
                "would use learner {:x} (added before, not started) for {name}\n",
                p.id
            ));
        } else {
            s.push_str(&format!(
                "would add {name} ({}) as a learner\n",
                e(&p.peer_url)
            ));
        }
        s.push_str(&format!("would write {out_env} and {out_archive}:\n"));
    } else {
        if p.found_learner {
            s.push_str(&format!(
                "found learner {:x} (added before, not started) for {name}\n",
                p.id
            ));
        } else {
            s.push_str(&format!("added {name} as learner {:x}\n", p.id));
        }
        s.push_str(&format!("wrote {out_env}:\n"));
    }
    for line in p.env.lines() {
        s.push_str("  ");
        s.push_str(&e(line));
        s.push('\n');
    }
    if !dry_run {
        s.push_str(&format!(
            "wrote {out_archive} (sha256 {}, listed in SHA256SUMS beside it):\n",
            p.archive_sha256.as_deref().unwrap_or("?")
        ));
    }
    s.push_str(&format!(
        "  etcd.env, etcd.yaml (static pod, image {}), an empty data dir {}\n",
        e(&p.image),
        shown(&p.data_dir)
    ));
    for NodeFile { path, sans, .. } in &p.certs {
        s.push_str(&format!("  {}", e(path)));
        if !sans.is_empty() {
            s.push_str(&format!(" ({})", e(&sans.join(", "))));
        }
        s.push('\n');
    }
    if p.certs.is_empty()
        && p.flags
            .iter()
            .any(|f| f.starts_with("--cert-file=") || f.starts_with("--peer-cert-file="))
    {
        s.push_str(&format!(
            "  no certificates (no --ca-dir): put the member's own in {} (etcdsnap pki issue makes them)\n",
            shown(&p.pki_dir)
        ));
    }
    let archive_name = p
        .archive
        .file_name()
        .map(|n| e(&n.to_string_lossy()))
        .unwrap_or_default();
    s.push_str(&format!(
        "next:\n  1. on {name}'s node, with SHA256SUMS beside the archive: etcdsnap install {archive_name}\n     \
         (or by hand, with an EMPTY data dir: set -a; . ./{name}.env; etcd)\n  \
         2. etcdsnap member promote {name} --wait 60s (with the same --endpoints and TLS flags)\n"
    ));
    if dry_run {
        s.push_str("dry run: nothing changed, nothing written\n");
    } else {
        s.push_str(&format!(
            "until it is promoted the learner does not count towards the quorum; if {name} never starts, \
             remove it: etcdctl member remove {:x}\n",
            p.id
        ));
    }
    s
}

fn render_status(l: &MemberList, format: ReportFormat) -> String {
    match format {
        ReportFormat::Json => {
            let rows: Vec<_> = l
                .members
                .iter()
                .map(|m| match &m.status {
                    Some(st) => json!({
                        "Endpoint": st.endpoint,
                        "Status": {
                            "header": {
                                "cluster_id": l.cluster_id,
                                "member_id": m.id,
                                "revision": st.revision,
                                "raft_term": st.raft_term,
                            },
                            "version": st.version,
                            "dbSize": st.db_size,
                            "leader": st.leader,
                            "raftIndex": st.raft_index,
                            "raftTerm": st.raft_term,
                            "raftAppliedIndex": st.raft_applied_index,
                            "errors": st.errors,
                            "isLearner": m.is_learner,
                        }
                    }),
                    None => json!({
                        "Endpoint": m.client_urls.first(),
                        "ID": format!("{:x}", m.id),
                        "name": m.name,
                        "error": m.error,
                    }),
                })
                .collect();
            format!("{}\n", serde_json::Value::Array(rows))
        }
        ReportFormat::Table => {
            let mut t = Table::new(
                &[
                    "ENDPOINT",
                    "ID",
                    "VERSION",
                    "DB SIZE",
                    "IS LEADER",
                    "IS LEARNER",
                    "RAFT TERM",
                    "RAFT INDEX",
                    "RAFT APPLIED INDEX",
                    "ERRORS",
                ],
                Align::Left,
            );
            for m in &l.members {
                match &m.status {
                    Some(st) => t.row(vec![
                        e(&st.endpoint),
                        format!("{:x}", m.id),
                        e(&st.version),
                        humanize_bytes(u64::try_from(st.db_size).unwrap_or(0)),
                        (st.leader == m.id).to_string(),
                        m.is_learner.to_string(),
                        st.raft_term.to_string(),
                        st.raft_index.to_string(),
                        st.raft_applied_index.to_string(),
                        e(&st.errors.join(", ")),
                    ]),
                    None => t.row(vec![
                        e(&m.client_urls.join(",")),
                        format!("{:x}", m.id),
                        "-".into(),
                        "-".into(),
                        "-".into(),
                        m.is_learner.to_string(),
                        "-".into(),
                        "-".into(),
                        "-".into(),
                        e(m.error.as_deref().unwrap_or("not started")),
                    ]),
                }
            }
            t.render()
        }
    }
}
