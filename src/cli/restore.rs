//! `etcdsnap restore`: data dirs for one member or every member from one
//! verified read, with member and cluster IDs exactly as etcd computes them,
//! and the flags each member must start with. `--dry-run` prints the plan and
//! the report of what comes back stale without writing anything.

use super::args::open;
use super::args::restore::refused_snapshot;
use super::{Outcome, ReportFormat, SnapshotPath, out};
use etcdsnap::restore::bump::{Suggestion, bump, suggest};
use etcdsnap::restore::execute::execute;
use etcdsnap::restore::owner::Owner;
use etcdsnap::restore::plan::{Event, Report, Request, plan, preview};
use etcdsnap::restore::target::Target;

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
    /// Snapshot file (`-` for standard input; zstd/gzip/zip are detected).
    /// Compressed input is inflated, and standard input copied, into an
    /// unnamed temporary file in $TMPDIR (else /tmp); inflation stops where the
    /// db ends
    snapshot: SnapshotPath,
    /// Print the plan and the stale-data report; write nothing
    #[arg(long)]
    dry_run: bool,
    /// One member's data dir (default `<name>.etcd`; without --name, member
    /// `default`, as etcdutl). Only `<data-dir>/member` is replaced: a data dir
    /// that is a mount point or a symlink stays one, other files in it stay
    #[arg(long)]
    data_dir: Option<std::path::PathBuf>,
    /// One member's WAL dir (default `<data-dir>/member/wal`; without --name,
    /// member `default`); swapped together with the member dir
    #[arg(long)]
    wal_dir: Option<std::path::PathBuf>,
    /// Accept a snapshot without a sha256 trailer (a copy of member/snap/db)
    #[arg(long)]
    skip_hash_check: bool,
    /// Replace an existing member dir (and WAL dir): the old ones are renamed
    /// to `member.etcdsnap-bak-<UTC time>` beside them, never deleted
    #[arg(long)]
    force: bool,
    /// chown the restored files, as UID:GID (e.g. 2001:2001)
    #[arg(long)]
    owner: Option<Owner>,
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
    /// The etcd release to write for: 3.4, 3.5, 3.6 or 3.7 (default: the
    /// release that wrote the snapshot, from its storage or cluster version;
    /// 3.5 for older files). One minor release up or down from the
    /// snapshot's; going down rewrites the storage version as `etcdutl
    /// migrate` would
    #[arg(long, value_parser = ["3.4", "3.5", "3.6", "3.7"])]
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
    /// The member's peer URLs (must match --initial-cluster; without --name,
    /// member `default`)
    #[arg(long)]
    initial_advertise_peer_urls: Option<String>,
    /// Client URLs each member advertises and listens on, as NAME=URL,...
    /// (one member: URL,...); default as kubeadm: the peer host, port 2379
    #[arg(long)]
    client_urls: Option<String>,
    /// Where the TLS files are when URLs are https (kubeadm's layout:
    /// server.crt/key, peer.crt/key, ca.crt)
    #[arg(long, default_value = "/etc/kubernetes/pki/etcd")]
    pki_dir: std::path::PathBuf,
    /// Where the data dirs and `.env` files go (`DIR/<name>.etcd`,
    /// `DIR/<name>.env`; default `.`); with --name, that member's only
    #[arg(long)]
    out_dir: Option<std::path::PathBuf>,
    /// Output format
    #[arg(short = 'w', long = "write-out", value_enum, default_value = "table")]
    write_out: ReportFormat,
    /// kube-apiserver's --etcd-prefix
    #[arg(long, default_value = "/registry")]
    prefix: String,
}

/// "for etcd 3.6 (…)": the release written for, and why.
fn target_line(plan: &Report) -> String {
    let (s, t) = (plan.snapshot_release, plan.target_version);
    let why = if s == t {
        "the release that wrote the snapshot".to_string()
    } else if Target::parse(t) < Target::parse(s) {
        format!("down from the snapshot's {s}: storage version rewritten for {t}")
    } else {
        format!("up from the snapshot's {s}")
    };
    format!("for etcd {t} ({why})")
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    // Ctrl-C or SIGTERM while staging: the staged files are removed and the
    // targets left as they were (see etcdsnap::interrupt), and said so.
    if !args.dry_run && !args.suggest_bump {
        etcdsnap::interrupt::install();
    }
    let r = restore(args);
    if let Some(sig) = etcdsnap::interrupt::requested() {
        match &r {
            Err(_) => eprintln!(
                "etcdsnap: {sig}: the files being staged were removed; every data dir (and WAL dir) is as it was, nothing was swapped in"
            ),
            Ok(_) => eprintln!("etcdsnap: {sig} came after the swap: the restore was completed"),
        }
    }
    r
}

fn request(args: Args) -> Request {
    Request {
        snapshot: args.snapshot,
        initial_cluster: args.initial_cluster,
        initial_cluster_token: args.initial_cluster_token,
        name: args.name,
        data_dir: args.data_dir,
        wal_dir: args.wal_dir,
        initial_advertise_peer_urls: args.initial_advertise_peer_urls,
        client_urls: args.client_urls,
        pki_dir: args.pki_dir,
        out_dir: args.out_dir,
        target_version: args.target_version,
        skip_hash_check: args.skip_hash_check,
        force: args.force,
        owner: args.owner,
        bump_revision: args.bump_revision,
        mark_compacted: args.mark_compacted,
        clear_alarms: args.clear_alarms,
        prefix: args.prefix,
    }
}

fn restore(args: Args) -> anyhow::Result<Outcome> {
    bump(args.bump_revision, args.mark_compacted)?;
    if args.suggest_bump {
        return suggest_bump(&args);
    }
    let (dry_run, write_out) = (args.dry_run, args.write_out);
    let plan = plan(&request(args), &mut say_event(write_out))?;
    if dry_run {
        let report = preview(&plan)?;
        print(&report, write_out, render)?;
        return Ok(if report.snapshot_checks_passed {
            Outcome::Ok
        } else {
            Outcome::Failed
        });
    }
    let report = match execute(&plan, &mut say_event(write_out)) {
        Ok(r) => r,
        Err(e) => {
            if let Some(report) = e.unsound_report() {
                return Ok(refused_snapshot(
                    report,
                    "not restoring from a snapshot that fails verification",
                ));
            }
            return Err(e.into());
        }
    };
    print(&report, write_out, render_restored)?;
    Ok(Outcome::Ok)
}

/// What the library says while it plans and restores, on stderr.
fn say_event(write_out: ReportFormat) -> impl FnMut(Event<'_>) + Send {
    move |e| match e {
        Event::Excess { path, excess } => eprintln!(
            "etcdsnap: note: {}: {}",
            etcdsnap::report::escape_controls(&path.display().to_string()),
            excess.describe()
        ),
        Event::Cleaned(line) | Event::Undone(line) => eprintln!("etcdsnap: {line}"),
        // The restore goes ahead: the operator sees what comes back stale first.
        Event::Staged(report) => {
            if write_out == ReportFormat::Table {
                let full = render(report);
                if let Some(i) = full.find("what comes back stale:") {
                    eprint!("{}", &full[i..]);
                }
            }
        }
    }
}

fn print(report: &Report, w: ReportFormat, table: fn(&Report) -> String) -> anyhow::Result<()> {
    match w {
        ReportFormat::Json => out(&(serde_json::to_string_pretty(report)? + "\n")),
        ReportFormat::Table => out(&table(report)),
    }
}

fn render_restored(plan: &Report) -> String {
    let mut s = format!(
        "restored {} (revision {}) for cluster ID {:x}\n  {}\n",
        plan.snapshot,
        plan.revision,
        plan.cluster_id,
        target_line(plan)
    );
    for m in &plan.members {
        s.push_str(&format!(
            "  {} (ID {:x}) -> {}\n",
            m.member.name, m.member.id, m.data_dir
        ));
        for b in &m.moved_aside {
            s.push_str(&format!("    the old data moved aside to {b}\n"));
        }
        if let Some(e) = &m.env_file {
            s.push_str(&format!("    environment for etcd: {e}\n"));
        }
        s.push_str(&format!("    start with: etcd {}\n", m.flags.join(" ")));
    }
    s
}

fn suggest_bump(args: &Args) -> anyhow::Result<Outcome> {
    let file = open(&args.snapshot)?;
    let Suggestion {
        revision: r,
        live,
        bump: n,
    } = suggest(&file, args.live_revision)?;
    let mut s = format!(
        "The snapshot's revision is {r}. Clients that watched the live cluster (Kubernetes informers and\n\
         watch caches) hold revisions up to the live cluster's newest. Restored without a bump, the\n\
         revision goes back to {r} and those clients miss or misorder changes until they re-list.\n\
         With --bump-revision N --mark-compacted the restored keyspace starts at {r} + N, marked\n\
         compacted there, so every client gets \"required revision has been compacted\" and re-lists.\n"
    );
    match live {
        Some((live, gap)) => s.push_str(&format!(
            "The live cluster reached revision {live}, {gap} past the snapshot: N must exceed {gap};\n\
             with a 20% margin for writes not seen yet: N = {n}.\n"
        )),
        None => s.push_str(
            "Without the live cluster's revision (--live-revision), a bump of 1,000,000,000 is safe for\n\
             any cluster that made fewer writes than that since the snapshot.\n",
        ),
    }
    s.push_str(&format!(
        "suggested: --bump-revision {n} --mark-compacted\n"
    ));
    out(&s)?;
    Ok(Outcome::Ok)
}

fn render(plan: &Report) -> String {
    let mut s = format!(
        "restore plan for {} (revision {})\ncluster ID {:x}, token {:?}\n{}\n\n",
        plan.snapshot,
        plan.revision,
        plan.cluster_id,
        plan.initial_cluster_token,
        target_line(plan)
    );
    for m in &plan.members {
        s.push_str(&format!(
            "member {} (ID {:x}), peer URLs {}\n  etcd {}\n",
            m.member.name,
            m.member.id,
            m.member.peer_urls.join(","),
            m.flags.join(" \\\n       ")
        ));
        if let Some(r) = &m.refused {
            s.push_str(&format!("  refused: {r}\n"));
        }
        for f in &m.first {
            s.push_str(&format!("  first: {f}\n"));
        }
    }
    s.push_str("\nsnapshot checks: ");
    if plan.snapshot_checks_passed {
        s.push_str("all passed\n");
    } else {
        s.push_str(&format!(
            "FAILED ({}); run `etcdsnap verify` for details\n",
            plan.failed_checks.join(", ")
        ));
    }
    let st = &plan.stale;
    s.push_str("\nwhat comes back stale:\n");
    for l in &st.leases {
        // etcd's lessor restarts a lease's clock from its checkpointed
        // remaining TTL when one was recorded, else from the full TTL.
        let when = if l.remaining_ttl_seconds > 0 {
            format!(
                "{} s after the restored cluster elects a leader (the remaining TTL a lease \
                 checkpoint recorded, which etcd 3.4, 3.6 and 3.7 honour; etcd 3.5.1 ignores it \
                 and grants the full TTL)",
                l.remaining_ttl_seconds
            )
        } else {
            "one TTL after the restored cluster elects a leader".to_string()
        };
        s.push_str(&format!(
            "  lease {:x} (TTL {} s) with {} live keys attached{}; they expire {when}\n",
            l.id,
            l.ttl_seconds,
            l.attached_keys,
            if l.examples.is_empty() {
                String::new()
            } else {
                format!(" (e.g. {})", esc_join(&l.examples))
            }
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
            esc_join(&st.master_leases)
        ));
    }
    if !st.kubernetes_endpoints.is_empty() {
        s.push_str(&format!(
            "  the default/kubernetes endpoints: {}\n",
            esc_join(&st.kubernetes_endpoints)
        ));
    }
    if !st.nodes.is_empty() {
        s.push_str(&format!(
            "  {} node objects: {}\n",
            st.nodes.len(),
            esc_join(&st.nodes)
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

/// Names from the snapshot (keys, node names), escaped for the terminal and
/// joined.
fn esc_join(names: &[String]) -> String {
    names
        .iter()
        .map(|n| etcdsnap::report::escape_controls(n))
        .collect::<Vec<_>>()
        .join(", ")
}
