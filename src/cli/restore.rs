//! `etcdsnap restore --dry-run`: the restore plan — member IDs and cluster ID
//! exactly as etcd computes them, the flags each member must start with, the
//! snapshot's checks, and what will come back stale. Writing the data dirs is
//! not implemented yet; without `--dry-run` the command says so and exits 2.

use anyhow::{Context, bail};
use serde::Serialize;

use super::objects::{db, open};
use super::{Outcome, ReportFormat, SnapshotPath, out};
use crate::restore::membership::{Cluster, Member};
use crate::restore::stale::{StaleReport, report};
use crate::verify::{CheckStatus, verify};

/// Plan a restore: member and cluster IDs, flags per member, stale data
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  etcdsnap restore snapshot.db --dry-run \\\n    --initial-cluster m1=https://10.0.0.1:2380,m2=https://10.0.0.2:2380,m3=https://10.0.0.3:2380 \\\n    --initial-cluster-token prod-restore-1\n  etcdsnap restore snapshot.db --dry-run --name m1 --initial-cluster m1=http://127.0.0.1:2380 -w json"
)]
pub struct Args {
    /// Snapshot file (`-` for standard input; zstd/gzip/zip are detected)
    snapshot: SnapshotPath,
    /// Print the plan; write nothing (required for now)
    #[arg(long)]
    dry_run: bool,
    /// The member to restore (all members when omitted)
    #[arg(long)]
    name: Option<String>,
    /// Every member as NAME=PEER_URL, comma-separated (as etcd's flag)
    #[arg(long, default_value = "default=http://localhost:2380")]
    initial_cluster: String,
    /// The cluster token (as etcd's flag)
    #[arg(long, default_value = "etcd-cluster")]
    initial_cluster_token: String,
    /// The member's peer URLs (with --name; must match --initial-cluster)
    #[arg(long)]
    initial_advertise_peer_urls: Option<String>,
    /// Where each member's data dir would go (`DIR/<name>.etcd`)
    #[arg(long, default_value = ".")]
    out_dir: std::path::PathBuf,
    /// Output format
    #[arg(short = 'w', long = "write-out", value_enum, default_value = "table")]
    write_out: ReportFormat,
    /// kube-apiserver's --etcd-prefix
    #[arg(long, default_value = "/registry")]
    prefix: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MemberPlan {
    #[serde(flatten)]
    member: Member,
    data_dir: String,
    flags: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Plan {
    snapshot: String,
    snapshot_checks_passed: bool,
    revision: i64,
    #[serde(serialize_with = "hex")]
    cluster_id: u64,
    initial_cluster_token: String,
    members: Vec<MemberPlan>,
    stale: StaleReport,
}

fn hex<S: serde::Serializer>(id: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{id:x}"))
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    if !args.dry_run {
        bail!(
            "writing restored data dirs is not implemented yet; `--dry-run` prints the plan (IDs, flags, stale data)"
        );
    }
    let cluster = Cluster::parse(&args.initial_cluster, &args.initial_cluster_token)?;
    let mut members: Vec<&Member> = cluster.members.iter().collect();
    if let Some(name) = &args.name {
        let m = cluster
            .members
            .iter()
            .find(|m| &m.name == name)
            .with_context(|| {
                format!("couldn't find local name {name:?} in the initial cluster configuration")
            })?;
        if let Some(urls) = &args.initial_advertise_peer_urls {
            let mut given: Vec<String> = urls.split(',').map(|u| u.trim().to_string()).collect();
            given.sort();
            if given != m.peer_urls {
                bail!(
                    "--initial-cluster has {name}={} but missing from --initial-advertise-peer-urls={urls}",
                    m.peer_urls.join(",")
                );
            }
        }
        members = vec![m];
    }
    let file = open(&args.snapshot)?;
    let checks = verify(&file);
    let db = db(&file)?;
    let stale = report(&db, &args.prefix)?;
    let revision = checks.summary.keyspace.as_ref().map_or(0, |k| k.revision);
    let plan = Plan {
        snapshot: file.path().display().to_string(),
        snapshot_checks_passed: checks.passed,
        revision,
        cluster_id: cluster.cluster_id,
        initial_cluster_token: cluster.token.clone(),
        members: members
            .into_iter()
            .map(|m| {
                let data_dir = args
                    .out_dir
                    .join(format!("{}.etcd", m.name))
                    .display()
                    .to_string();
                MemberPlan {
                    flags: vec![
                        format!("--name={}", m.name),
                        format!("--initial-cluster={}", cluster.initial_cluster),
                        format!("--initial-cluster-token={}", cluster.token),
                        format!("--initial-advertise-peer-urls={}", m.peer_urls.join(",")),
                        "--initial-cluster-state=new".into(),
                        format!("--data-dir={data_dir}"),
                    ],
                    data_dir,
                    member: m.clone(),
                }
            })
            .collect(),
        stale,
    };
    match args.write_out {
        ReportFormat::Json => out(&(serde_json::to_string_pretty(&plan)? + "\n"))?,
        ReportFormat::Table => out(&render(&plan, &checks))?,
    }
    Ok(if plan.snapshot_checks_passed {
        Outcome::Ok
    } else {
        Outcome::Failed
    })
}

fn render(plan: &Plan, checks: &crate::verify::Report) -> String {
    let mut s = format!(
        "restore plan for {} (revision {})\ncluster ID {:x}, token {:?}\n\n",
        plan.snapshot, plan.revision, plan.cluster_id, plan.initial_cluster_token
    );
    for m in &plan.members {
        s.push_str(&format!(
            "member {} (ID {:x}), peer URLs {}\n  etcd {}\n",
            m.member.name,
            m.member.id,
            m.member.peer_urls.join(","),
            m.flags.join(" \\\n       ")
        ));
    }
    s.push_str("\nsnapshot checks: ");
    if plan.snapshot_checks_passed {
        s.push_str("all passed\n");
    } else {
        let failed: Vec<&str> = checks
            .checks
            .iter()
            .filter(|c| c.status == CheckStatus::Failed)
            .map(|c| c.name)
            .collect();
        s.push_str(&format!(
            "FAILED ({}); run `etcdsnap verify` for details\n",
            failed.join(", ")
        ));
    }
    let st = &plan.stale;
    s.push_str("\nwhat comes back stale:\n");
    for l in &st.leases {
        s.push_str(&format!(
            "  lease {:x} (TTL {} s) with {} live keys attached{}; they expire one TTL after the restored cluster elects a leader\n",
            l.id,
            l.ttl_seconds,
            l.attached_keys,
            if l.examples.is_empty() { String::new() } else { format!(" (e.g. {})", l.examples.join(", ")) }
        ));
    }
    if st.keys_with_missing_lease > 0 {
        s.push_str(&format!(
            "  {} live keys name a lease the snapshot does not hold (etcd warns \"failed to attach a lease\")\n",
            st.keys_with_missing_lease
        ));
    }
    if !st.master_leases.is_empty() {
        s.push_str(&format!(
            "  apiserver master leases: {}\n",
            st.master_leases.join(", ")
        ));
    }
    if !st.kubernetes_endpoints.is_empty() {
        s.push_str(&format!(
            "  the default/kubernetes endpoints: {}\n",
            st.kubernetes_endpoints.join(", ")
        ));
    }
    if !st.nodes.is_empty() {
        s.push_str(&format!(
            "  {} node objects: {}\n",
            st.nodes.len(),
            st.nodes.join(", ")
        ));
    }
    for a in &st.alarms {
        s.push_str(&format!("  alarm {} of member {:x}", a.alarm, a.member_id));
        if a.alarm == "NOSPACE" {
            s.push_str(": the restored cluster stays read-only until `etcdctl alarm disarm`");
        }
        s.push('\n');
    }
    s
}
