//! `etcdsnap member list|add-learner|promote`: grow a cluster (a one-member
//! restore, or a cluster that lost a member) one learner at a time.

use std::path::PathBuf;

use serde_json::json;

use super::args::{ConnArgs, ReportFormat};
use super::{Outcome, out};
use etcdsnap::live::connect::parse_duration;
use etcdsnap::live::member::{
    JoinPlan, JoinRequest, MemberError, MemberList, add_learner, list, plan_learner, promote,
};
use etcdsnap::report::{Align, Table, escape_controls};

/// List, add (as a learner) and promote members of a live cluster
#[derive(clap::Args)]
#[command(
    long_about = "Grows a cluster one member at a time, as etcd's runtime reconfiguration wants it: `add-learner` \
checks first (a majority of the voting members answer and know a leader; no current member has the name or the \
peer URL), adds the member as a learner (it does not count towards the quorum until promoted) and writes \
NAME.env, the new node's start flags as etcd's ETCD_* variables with ETCD_INITIAL_CLUSTER_STATE=existing and \
the current members in ETCD_INITIAL_CLUSTER. Start etcd on the new node from that file with an empty data dir, \
then `promote` it: MemberPromote is retried while etcd says the learner has not caught up, until --wait.\n\n\
This is the way to finish a restore done on one node: restore it as a one-member cluster, start it, then \
add-learner and promote each other node in turn.\n\nExit codes: 0 done; 1 refused (no quorum, name or URL in \
use, the learner not in sync at the deadline); 2 usage, I/O or connection error.",
    after_help = "Examples:\n  etcdsnap member list --endpoints http://10.0.0.1:2379 -w table\n  etcdsnap member add-learner node2=https://10.0.0.2:2380 --endpoints https://10.0.0.1:2379 --cacert ca.crt --cert c.crt --key c.key --out .\n  etcdsnap member promote node2 --wait 60s --endpoints https://10.0.0.1:2379 --cacert ca.crt --cert c.crt --key c.key"
)]
pub struct Args {
    #[command(subcommand)]
    command: Sub,
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
    /// Add a member as a learner and write its NAME.env
    AddLearner {
        /// The new member: NAME=PEER_URL
        member: String,
        /// The client URL it advertises (default: its peer host, port 2379)
        #[arg(long, value_name = "URL")]
        client_url: Option<String>,
        /// Its data dir on its node (must be empty when it starts)
        #[arg(long, value_name = "DIR", default_value = "/var/lib/etcd")]
        data_dir: PathBuf,
        /// Where its TLS files are on its node, when a URL is https
        #[arg(long, value_name = "DIR", default_value = "/etc/kubernetes/pki/etcd")]
        pki_dir: PathBuf,
        /// Where NAME.env is written
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Replace an existing NAME.env
        #[arg(long)]
        force: bool,
        /// Check and print the plan; change nothing, write nothing
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        conn: ConnArgs,
        /// Output format
        #[arg(short = 'w', long = "write-out", value_enum, default_value = "table")]
        write_out: ReportFormat,
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
        Sub::AddLearner {
            member,
            client_url,
            data_dir,
            pki_dir,
            out: out_dir,
            force,
            dry_run,
            conn,
            write_out,
        } => {
            let Some((name, peer_url)) = member.split_once('=') else {
                anyhow::bail!("add-learner {member:?}: give NAME=PEER_URL");
            };
            let live = conn.live()?;
            let req = JoinRequest {
                name: name.to_string(),
                peer_url: peer_url.to_string(),
                client_url,
                data_dir: Some(std::path::absolute(&data_dir)?),
                pki_dir: Some(pki_dir),
                out_dir,
                force,
            };
            let plan = match plan_learner(&live, &req) {
                Ok(p) => p,
                Err(e) => return refusal(e),
            };
            if dry_run {
                out(&render_plan(&plan, write_out, true))?;
                return Ok(Outcome::Ok);
            }
            let plan = match add_learner(&live, plan) {
                Ok(p) => p,
                Err(e) => return refusal(e),
            };
            out(&render_plan(&plan, write_out, false))?;
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
        | MemberError::NotReady { .. } => {
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

fn render_plan(p: &JoinPlan, format: ReportFormat, dry_run: bool) -> String {
    let env_file = escape_controls(&p.env_file.display().to_string()).into_owned();
    match format {
        ReportFormat::Json => format!(
            "{}\n",
            json!({
                "dry_run": dry_run,
                "name": p.name,
                "peer_url": p.peer_url,
                "id": format!("{:x}", p.id),
                "initial_cluster": p.initial_cluster,
                "flags": p.flags,
                "env_file": p.env_file,
            })
        ),
        ReportFormat::Table => {
            let mut s = String::new();
            let (voting, answering) = p.before.voting();
            s.push_str(&format!(
                "checked: {answering} of {voting} voting members answer; name {} and peer URL {} are free\n",
                escape_controls(&p.name),
                escape_controls(&p.peer_url)
            ));
            if dry_run {
                s.push_str(&format!(
                    "would add {} ({}) as a learner and write {env_file}:\n",
                    escape_controls(&p.name),
                    escape_controls(&p.peer_url)
                ));
            } else {
                s.push_str(&format!(
                    "added {} as learner {:x}; wrote {env_file}:\n",
                    escape_controls(&p.name),
                    p.id
                ));
            }
            for line in p.env.lines() {
                s.push_str("  ");
                s.push_str(&escape_controls(line));
                s.push('\n');
            }
            s.push_str(&format!(
                "next:\n  1. on the new node, with an EMPTY data dir: set -a; . ./{n}.env; etcd\n  \
                 2. etcdsnap member promote {n} --wait 60s (with the same --endpoints and TLS flags)\n",
                n = escape_controls(&p.name)
            ));
            if dry_run {
                s.push_str("dry run: nothing changed, nothing written\n");
            }
            s
        }
    }
}
