//! `etcdsnap restore`: data dirs for one member or every member from one
//! verified read, with member and cluster IDs exactly as etcd computes them,
//! and the flags each member must start with. `--dry-run` prints the plan and
//! the report of what comes back stale without writing anything.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Serialize;

use super::args::{db, open};
use super::{Outcome, ReportFormat, SnapshotPath, out};
use crate::cluster::flags::{client_urls, env_text, start_flags};
use crate::cluster::membership::{Cluster, Member};
use crate::durable::{self, swap};
use crate::restore::datadir::{Options, stage_members};
use crate::restore::source::{Opened, Passed, Refused, SourceError, verify_beside};
use crate::restore::stale::{StaleReport, report};
use crate::restore::target::{self, Target};
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

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MemberPlan {
    #[serde(flatten)]
    member: Member,
    data_dir: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    wal_dir: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    env_file: Option<String>,
    /// Every flag the member must start with (the `.env` file holds the same).
    flags: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    moved_aside: Vec<String>,
    /// --dry-run: why writing this member would be refused (a running etcd,
    /// an interrupted run's journal, a member in place without --force).
    #[serde(skip_serializing_if = "Option::is_none")]
    refused: Option<String>,
    /// --dry-run: what the write would do first (undo an interrupted swap).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    first: Vec<String>,
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
    /// The release whose storage the snapshot holds.
    snapshot_release: &'static str,
    /// The release the data dirs are written for.
    target_version: &'static str,
    members: Vec<MemberPlan>,
    stale: StaleReport,
}

/// What the staging side of a restore hands back once every member is
/// staged.
struct Prepared {
    stale: StaleReport,
    staged: Vec<swap::Staged>,
}

fn hex<S: serde::Serializer>(id: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{id:x}"))
}

pub(super) fn parse_owner(s: &str) -> Result<(u32, u32), String> {
    let (u, g) = s.split_once(':').ok_or("expected UID:GID")?;
    Ok((
        u.parse().map_err(|_| format!("bad uid {u:?}"))?,
        g.parse().map_err(|_| format!("bad gid {g:?}"))?,
    ))
}

fn absolute(p: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(p).with_context(|| format!("{}: cannot make it absolute", p.display()))
}

/// "for etcd 3.6 (…)": the release written for, and why.
fn target_line(plan: &Plan) -> String {
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
    // targets left as they were (see crate::interrupt), and said so.
    if !args.dry_run && !args.suggest_bump {
        crate::interrupt::install();
    }
    let r = restore(args);
    if let Some(sig) = crate::interrupt::requested() {
        match &r {
            Err(_) => eprintln!(
                "etcdsnap: {sig}: the files being staged were removed; every data dir (and WAL dir) is as it was, nothing was swapped in"
            ),
            Ok(_) => eprintln!("etcdsnap: {sig} came after the swap: the restore was completed"),
        }
    }
    r
}

fn restore(args: Args) -> anyhow::Result<Outcome> {
    if args.bump_revision.is_some_and(|b| b > 0) != args.mark_compacted {
        bail!("--mark-compacted required if --bump-revision > 0 (and the other way round)");
    }
    if args.suggest_bump {
        return suggest_bump(&args);
    }
    let cluster = Cluster::parse(&args.initial_cluster, &args.initial_cluster_token)?;
    // One member's flags without --name mean member `default`, as with etcdutl.
    let one_member_flag = args.data_dir.is_some()
        || args.wal_dir.is_some()
        || args.initial_advertise_peer_urls.is_some();
    let name = match &args.name {
        Some(n) => Some(n.clone()),
        None if one_member_flag => Some("default".to_string()),
        None => None,
    };
    if name.is_some() && args.data_dir.is_some() && args.out_dir.is_some() {
        bail!("--data-dir and --out-dir both say where the member goes; give one");
    }
    let mut members: Vec<&Member> = cluster.members.iter().collect();
    if let Some(name) = &name {
        let m = cluster
            .members
            .iter()
            .find(|m| &m.name == name)
            .with_context(|| {
                let why = if args.name.is_none() {
                    " (--data-dir, --wal-dir and --initial-advertise-peer-urls are one member's: \
                     without --name that member is \"default\", as with etcdutl)"
                } else {
                    ""
                };
                format!(
                    "couldn't find local name {name:?} in the initial cluster configuration{why}"
                )
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
    let single = name.is_some();
    let clients = client_urls(args.client_urls.as_deref(), &members)?;
    let file = open(&args.snapshot)?;
    let requested = args.target_version.as_deref().and_then(Target::parse);
    // Which release the snapshot is at; an unknown storage version leaves it
    // to the operator's word.
    let release_of = |storage_version: Option<&str>,
                      cluster_version: Option<&str>,
                      has_term: bool|
     -> anyhow::Result<Target> {
        Ok(
            target::snapshot_release(storage_version, cluster_version, has_term).or_else(|e| {
                match args.target_version.as_deref() {
                    Some(t) => Target::parse(t).ok_or(e),
                    None => Err(e),
                }
            })?,
        )
    };
    let out_dir = args.out_dir.clone();
    // .env files: every member's in --out-dir (default .), one member's when --out-dir is given.
    let env_dir = match (&out_dir, single) {
        (Some(d), _) => Some(d.clone()),
        (None, false) => Some(PathBuf::from(".")),
        (None, true) => None,
    };
    let wal_dir = match &args.wal_dir {
        Some(w) if single => Some(absolute(w)?),
        _ => None,
    };
    let mut member_plans = Vec::new();
    for m in &members {
        let data_dir = match (&args.data_dir, &out_dir) {
            (Some(d), _) if single => d.clone(),
            (_, Some(o)) => o.join(format!("{}.etcd", m.name)),
            _ => PathBuf::from(format!("{}.etcd", m.name)),
        };
        let data_dir = absolute(&data_dir)?;
        let env_file = match &env_dir {
            Some(d) => Some(absolute(&d.join(format!("{}.env", m.name)))?),
            None => None,
        };
        member_plans.push(MemberPlan {
            flags: start_flags(
                &cluster,
                m,
                &data_dir,
                wal_dir.as_deref(),
                clients.get(&m.name),
                &args.pki_dir,
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
    let plan_of = |checks: &crate::verify::Report,
                   snapshot_release: Target,
                   target: Target,
                   stale: StaleReport,
                   members: Vec<MemberPlan>| Plan {
        snapshot: file.path().display().to_string(),
        snapshot_checks_passed: checks.passed,
        revision: checks.summary.keyspace.as_ref().map_or(0, |k| k.revision),
        cluster_id: cluster.cluster_id,
        initial_cluster_token: cluster.token.clone(),
        snapshot_release: snapshot_release.line(),
        target_version: target.line(),
        members,
        stale,
    };
    if args.dry_run {
        let checks = verify(&file);
        let db = db(&file)?;
        let meta = checks.summary.meta.as_ref();
        let snapshot_release = release_of(
            meta.and_then(|m| m.storage_version.as_deref()),
            target::cluster_version(&db).as_deref(),
            meta.is_some_and(|m| m.term.is_some_and(|t| t > 0)),
        )?;
        let target = target::choose(snapshot_release, requested)?;
        let stale = report(&db, &args.prefix)?;
        let mut member_plans = member_plans;
        for m in &mut member_plans {
            let t = swap::Target {
                data_dir: PathBuf::from(&m.data_dir),
                wal_dir: m.wal_dir.as_ref().map(PathBuf::from),
            };
            match swap::check(&t, args.force) {
                Ok(c) => m.first = c.notes(),
                Err(e) => m.refused = Some(e.to_string()),
            }
        }
        let plan = plan_of(&checks, snapshot_release, target, stale, member_plans);
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
    let opts = Options {
        bump_revision: args.bump_revision.filter(|b| *b > 0),
        clear_alarms: args.clear_alarms,
        force: args.force,
        owner: args.owner,
    };
    let targets: Vec<swap::Target> = member_plans
        .iter()
        .map(|m| swap::Target {
            data_dir: PathBuf::from(&m.data_dir),
            wal_dir: m.wal_dir.as_ref().map(PathBuf::from),
        })
        .collect();
    // The snapshot is verified while every member's data dir is staged from
    // it (restore::source); a damaged file is reported as `verify` reports
    // it, and whatever was staged from it is discarded: nothing is swapped in
    // before the snapshot passed and every member's files are staged and
    // fsynced.
    let stage_all = |o: Opened<'_>| -> anyhow::Result<Prepared> {
        let stale = report(&o.db, &args.prefix)?;
        // What a killed run left is cleaned (and said) before the targets are judged.
        for t in &targets {
            for line in swap::clean_stale(t)? {
                eprintln!("etcdsnap: {line}");
            }
        }
        if let Some(d) = &env_dir {
            for line in swap::clean_stale_temp_files(d)? {
                eprintln!("etcdsnap: {line}");
            }
        }
        // Every target is checked before anything is written.
        let mut checked = Vec::new();
        for (t, m) in targets.iter().zip(&member_plans) {
            checked.push(
                swap::check(t, args.force)
                    .with_context(|| format!("restoring member {}", m.member.name))?,
            );
        }
        let restored = o.restored(&cluster, &opts)?;
        let src = restored.source(&cluster);
        // Every member's db is the same: the first is built and verified,
        // the others are checked copies of it.
        let staged = stage_members(&src, &members, checked, opts.owner)
            .context("nothing was restored: every member is as it was")?;
        Ok(Prepared { stale, staged })
    };
    let discard = |p: Option<anyhow::Result<Prepared>>| {
        if let Some(Ok(p)) = p {
            p.staged.into_iter().for_each(swap::Staged::discard);
        }
    };
    let passed = match verify_beside(
        &file,
        args.skip_hash_check,
        args.target_version.as_deref(),
        stage_all,
    ) {
        Ok(p) => p,
        Err(Refused {
            err: SourceError::Unsound { report, .. },
            work,
        }) => {
            discard(work);
            eprint!("{}", crate::cli::render::render_table(&report, true));
            eprintln!("etcdsnap: not restoring from a snapshot that fails verification");
            return Ok(Outcome::Failed);
        }
        Err(Refused { err, work }) => {
            discard(work);
            return Err(anyhow::Error::new(err).context("nothing was restored"));
        }
    };
    let Passed {
        checks,
        snapshot_release,
        target,
        work,
        ..
    } = passed;
    let Prepared { stale, staged } = work?;
    let mut plan = plan_of(&checks, snapshot_release, target, stale, member_plans);
    // The restore goes ahead: the operator sees what comes back stale first.
    if args.write_out == ReportFormat::Table {
        let full = render(&plan, &checks);
        if let Some(i) = full.find("what comes back stale:") {
            eprint!("{}", &full[i..]);
        }
    }
    let mut committed = Vec::new();
    let mut env_before: Vec<(PathBuf, Option<Vec<u8>>)> = Vec::new();
    let mut staged = staged.into_iter();
    let written = (|| -> anyhow::Result<()> {
        for (m, s) in plan.members.iter().zip(staged.by_ref()) {
            let c =
                swap::commit(s).with_context(|| format!("restoring member {}", m.member.name))?;
            for line in &c.undone {
                eprintln!("etcdsnap: {line}");
            }
            committed.push(c);
        }
        for m in &plan.members {
            if let Some(env) = &m.env_file {
                let env = PathBuf::from(env);
                env_before.push((env.clone(), std::fs::read(&env).ok()));
                durable::write_atomic(&env, env_text(&m.flags).as_bytes())?;
            }
        }
        Ok(())
    })();
    if let Err(e) = written {
        // Put every member (and .env file) back as it was.
        staged.for_each(swap::Staged::discard);
        for c in committed.into_iter().rev() {
            c.rollback();
        }
        for (env, old) in env_before.iter().rev() {
            let _ = match old {
                Some(bytes) => durable::write_atomic(env, bytes).map_err(|e| e.to_string()),
                None => std::fs::remove_file(env).map_err(|e| e.to_string()),
            };
        }
        return Err(e.context("nothing was restored: every member is as it was"));
    }
    for (m, c) in plan.members.iter_mut().zip(committed) {
        m.moved_aside = c.backups.iter().map(|b| b.display().to_string()).collect();
        c.finish()?;
    }
    match args.write_out {
        ReportFormat::Json => out(&(serde_json::to_string_pretty(&plan)? + "\n"))?,
        ReportFormat::Table => {
            let mut s = format!(
                "restored {} (revision {}) for cluster ID {:x}\n  {}\n",
                plan.snapshot,
                plan.revision,
                plan.cluster_id,
                target_line(&plan)
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
        .map(|n| crate::report::escape_controls(n))
        .collect::<Vec<_>>()
        .join(", ")
}
