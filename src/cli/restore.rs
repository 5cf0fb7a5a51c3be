//! `etcdsnap restore`: data dirs for one member or every member from one
//! verified read, with member and cluster IDs exactly as etcd computes them,
//! and the flags each member must start with. `--dry-run` prints the plan and
//! the report of what comes back stale without writing anything.

use anyhow::{Context, bail};
use serde::Serialize;

use super::objects::{db, open};
use super::{Outcome, ReportFormat, SnapshotPath, out};
use crate::restore::datadir::{Options, Source, restored_buckets, write_member};
use crate::restore::membership::{Cluster, Member};
use crate::restore::stale::{StaleReport, report};
use crate::restore::wal::Target;
use crate::verify::{CheckStatus, verify};

const RESTORE_EXAMPLES: &str = "Examples:
  # every member at once, into ./restore/<name>.etcd, with <name>.env files:
  etcdsnap restore snapshot.db --out-dir restore \\
    --initial-cluster m1=https://10.0.0.1:2380,m2=https://10.0.0.2:2380,m3=https://10.0.0.3:2380 \\
    --initial-cluster-token prod-restore-1
  # one member, as etcdutl does:
  etcdsnap restore snapshot.db --name m1 --initial-cluster m1=http://127.0.0.1:2380 \\
    --initial-advertise-peer-urls http://127.0.0.1:2380 --data-dir /var/lib/etcd --owner 2001:2001
  # what would be written, and what comes back stale:
  etcdsnap restore snapshot.db --dry-run --initial-cluster m1=http://127.0.0.1:2380
  etcdsnap restore snapshot.db --suggest-bump --live-revision 183200";

/// Restore data dirs for one or every member (etcdutl snapshot restore, all members at once)
#[derive(clap::Args)]
#[command(after_help = RESTORE_EXAMPLES)]
pub struct Args {
    /// Snapshot file (`-` for standard input; zstd/gzip/zip are detected)
    snapshot: SnapshotPath,
    /// Print the plan and the stale-data report; write nothing
    #[arg(long)]
    dry_run: bool,
    /// The member's data dir (with --name; default `<name>.etcd`)
    #[arg(long)]
    data_dir: Option<std::path::PathBuf>,
    /// The member's WAL dir (with --name; default `<data-dir>/member/wal`)
    #[arg(long)]
    wal_dir: Option<std::path::PathBuf>,
    /// Accept a snapshot without a sha256 trailer (a copy of member/snap/db)
    #[arg(long)]
    skip_hash_check: bool,
    /// Replace a non-empty data dir
    #[arg(long)]
    force: bool,
    /// chown the restored files, as UID:GID (e.g. 2001:2001)
    #[arg(long, value_parser = parse_owner)]
    owner: Option<(u32, u32)>,
    /// Start the keyspace this many revisions later, so watchers never see
    /// revisions go backwards (needs --mark-compacted)
    #[arg(long)]
    bump_revision: Option<u64>,
    /// Mark the bumped revision compacted (needs --bump-revision)
    #[arg(long)]
    mark_compacted: bool,
    /// Explain a safe --bump-revision and exit
    #[arg(long)]
    suggest_bump: bool,
    /// The live cluster's newest revision, for --suggest-bump
    #[arg(long)]
    live_revision: Option<i64>,
    /// Drop the alarms recorded in the snapshot (a NOSPACE alarm keeps a
    /// restored cluster read-only)
    #[arg(long)]
    clear_alarms: bool,
    /// Layout to write: 3.4, 3.5 or 3.6 (default: the snapshot's storage
    /// version, else 3.5)
    #[arg(long, value_parser = ["3.4", "3.5", "3.6"])]
    target_version: Option<String>,
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
    /// Where every member's data dir goes (`DIR/<name>.etcd`, `DIR/<name>.env`)
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

fn parse_owner(s: &str) -> Result<(u32, u32), String> {
    let (u, g) = s.split_once(':').ok_or("expected UID:GID")?;
    Ok((
        u.parse().map_err(|_| format!("bad uid {u:?}"))?,
        g.parse().map_err(|_| format!("bad gid {g:?}"))?,
    ))
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    if args.bump_revision.is_some_and(|b| b > 0) != args.mark_compacted {
        bail!("--mark-compacted required if --bump-revision > 0 (and the other way round)");
    }
    if args.suggest_bump {
        return suggest_bump(&args);
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
    if !file.has_trailer() && !args.skip_hash_check && !args.dry_run {
        bail!(
            "{}: snapshot missing hash but --skip-hash-check=false (a copy of a data dir's member/snap/db has no sha256 trailer)",
            file.path().display()
        );
    }
    let checks = verify(&file);
    let db = db(&file)?;
    let stale = report(&db, &args.prefix)?;
    let revision = checks.summary.keyspace.as_ref().map_or(0, |k| k.revision);
    let single = args.name.is_some();
    let plan = Plan {
        snapshot: file.path().display().to_string(),
        snapshot_checks_passed: checks.passed,
        revision,
        cluster_id: cluster.cluster_id,
        initial_cluster_token: cluster.token.clone(),
        members: members
            .into_iter()
            .map(|m| {
                let data_dir = match (&args.data_dir, single) {
                    (Some(d), true) => d.display().to_string(),
                    (None, true) => format!("{}.etcd", m.name),
                    _ => args
                        .out_dir
                        .join(format!("{}.etcd", m.name))
                        .display()
                        .to_string(),
                };
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
    if args.dry_run {
        match args.write_out {
            ReportFormat::Json => out(&(serde_json::to_string_pretty(&plan)? + "\n"))?,
            ReportFormat::Table => out(&render(&plan, &checks))?,
        }
        return Ok(if plan.snapshot_checks_passed {
            Outcome::Ok
        } else {
            Outcome::Failed
        });
    }
    if !plan.snapshot_checks_passed {
        eprint!("{}", crate::cli::verify::render_table(&checks, true));
        eprintln!("etcdsnap: not restoring from a snapshot that fails verification");
        return Ok(Outcome::Failed);
    }
    let target = match args.target_version.as_deref() {
        Some("3.4") => Target::V34,
        Some("3.6") => Target::V36,
        Some(_) => Target::V35,
        None => match checks
            .summary
            .meta
            .as_ref()
            .and_then(|m| m.storage_version.as_deref())
        {
            Some(v) if v.starts_with("3.6") => Target::V36,
            _ => Target::V35,
        },
    };
    let opts = Options {
        bump_revision: args.bump_revision.filter(|b| *b > 0),
        clear_alarms: args.clear_alarms,
        force: args.force,
        owner: args.owner,
    };
    // The operator sees what comes back stale before anything is written.
    if args.write_out == ReportFormat::Table {
        let full = render(&plan, &checks);
        if let Some(i) = full.find("what comes back stale:") {
            eprint!("{}", &full[i..]);
        }
    }
    let buckets = restored_buckets(&db, &cluster, target, &opts)?;
    let src = Source {
        buckets: &buckets,
        page_size: db.page_size(),
        cluster: &cluster,
        target,
    };
    let bar = super::objects::progress(plan.members.len() as u64, "writing data dirs");
    for m in &plan.members {
        bar.set_message(format!("writing {}", m.member.name));
        let data_dir = std::path::PathBuf::from(&m.data_dir);
        let wal_dir = if single {
            args.wal_dir.as_deref()
        } else {
            None
        };
        write_member(&src, &m.member, &data_dir, wal_dir, &opts)
            .with_context(|| format!("restoring member {}", m.member.name))?;
        if !single {
            let env = args.out_dir.join(format!("{}.env", m.member.name));
            let text: String = m
                .flags
                .iter()
                .filter_map(|f| f.strip_prefix("--"))
                .filter_map(|f| f.split_once('='))
                .map(|(k, v)| format!("ETCD_{}={v}\n", k.to_uppercase().replace('-', "_")))
                .collect();
            crate::cli::objects::write_atomic(&env, text.as_bytes())?;
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    match args.write_out {
        ReportFormat::Json => out(&(serde_json::to_string_pretty(&plan)? + "\n"))?,
        ReportFormat::Table => {
            let mut s = format!(
                "restored {} (revision {}) for cluster ID {:x}\n",
                plan.snapshot, plan.revision, plan.cluster_id
            );
            for m in &plan.members {
                s.push_str(&format!(
                    "  {} (ID {:x}) -> {}\n    start with: etcd {}\n",
                    m.member.name,
                    m.member.id,
                    m.data_dir,
                    m.flags.join(" ")
                ));
            }
            out(&s)?;
        }
    }
    Ok(Outcome::Ok)
}

fn suggest_bump(args: &Args) -> anyhow::Result<Outcome> {
    let file = open(&args.snapshot)?;
    let db = db(&file)?;
    let ks = crate::mvcc::keyspace::KeySpace::open(&db)?;
    let r = ks.current_revision;
    let mut s = format!(
        "The snapshot's revision is {r}. Clients that watched the live cluster (Kubernetes informers and\n\
         watch caches) hold revisions up to the live cluster's newest. Restored without a bump, the\n\
         revision goes back to {r} and those clients miss or misorder changes until they re-list.\n\
         With --bump-revision N --mark-compacted the restored keyspace starts at {r} + N, marked\n\
         compacted there, so every client gets \"required revision has been compacted\" and re-lists.\n"
    );
    let n = match args.live_revision {
        Some(live) if live > r => {
            let gap = (live - r) as u64;
            let n = (gap + gap / 5).max(1000).next_multiple_of(1000);
            s.push_str(&format!(
                "The live cluster reached revision {live}, {gap} past the snapshot: N must exceed {gap};\n\
                 with a 20% margin for writes not seen yet: N = {n}.\n"
            ));
            n
        }
        _ => {
            s.push_str(
                "Without the live cluster's revision (--live-revision), a bump of 1,000,000,000 is safe for\n\
                 any cluster that made fewer writes than that since the snapshot.\n",
            );
            1_000_000_000
        }
    };
    s.push_str(&format!(
        "suggested: --bump-revision {n} --mark-compacted\n"
    ));
    out(&s)?;
    Ok(Outcome::Ok)
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
