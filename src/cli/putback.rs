//! `etcdsnap put-back`: one object's stored bytes from a snapshot written
//! back to the live cluster, only where that overwrites nothing newer.

use anyhow::bail;

use super::Outcome;
use super::args::{ConnArgs, IndexOpts, PrefixOpt, ReportFormat, SnapshotPath, db};
use super::render::index_event;
use etcdsnap::kube::namespace::{PlanError, Query, Scope, plan};
use etcdsnap::kube::resource::ResourceRef;
use etcdsnap::kube::value::detect;
use etcdsnap::live::connect::Member;
use etcdsnap::live::namespace::{Dangling, Fate, Options, Report, Stopped, put_back_plan};
use etcdsnap::live::putback::{
    Attempt, Condition, PutBack, SameCluster, check_cluster, is_secret, snapshot_cluster,
    write_or_try,
};
use etcdsnap::lookup::choose::choose_one;
use etcdsnap::lookup::{Finder, Wanted};
use etcdsnap::mvcc::keyspace::KeySpace;
use etcdsnap::report::{escape_bytes, escape_controls};

/// Write one object's (or a whole namespace's) stored bytes from a snapshot
/// back to a live cluster, only where the key is absent (or at
/// --if-mod-revision)
#[derive(clap::Args)]
#[command(
    long_about = "Writes one object's exact stored bytes (no lease) from the snapshot back to the live cluster in \
one transaction that succeeds only when the key is absent, or when its mod revision is --if-mod-revision N. The \
snapshot must be of the same cluster: its cluster ID (etcd's, from the member IDs it records) is compared with \
the live cluster's (or, as that ID no longer matches once members were added or replaced, a member must be \
in both), and another cluster's snapshot is refused unless --allow-other-cluster. For \
when the API server is down, or an object must keep its exact stored form (kubectl apply would re-encode it). \
The API server's watch cache learns of the write through its watch; clients that list from the cache may see \
the old state until it has caught up. On a failed compare the key's current mod revision is printed.\n\n\
Without a TARGET, -n NS puts back a whole namespace (a deleted one, or what is missing of it): every live \
object of NS in the snapshot (only --resource R ones when given) and the Namespace object, each only where \
its key is absent (present keys are left as they are), the Namespace first and owners before what they own, \
in transactions of at most 64 objects. --key-prefix P does the same for every key under P. A Namespace the \
cluster holds as being deleted stops it (the namespace controller would delete what is written). Objects \
that had a lease (Events) are left out unless --include-leased. Objects whose ownerReferences name a uid the \
cluster will not hold are listed first, and nothing is written until --dangling says what to do: \
leave-out (them and what they own) or write (the garbage collector will delete them).\n\nExit \
codes: 0 written (or --dry-run would write; for a namespace, everything absent written); 1 the compare \
failed (nothing written), the object is not in the snapshot, or for a namespace: an object refused, owners \
gone without --dangling, or the namespace terminating; 2 usage, connection or I/O error, a Secret without \
--show-secrets, or another cluster's snapshot without --allow-other-cluster.",
    after_help = "Examples:\n  etcdsnap put-back snapshot.db configmap app-config -n prod --endpoints https://10.0.0.1:2379 --cacert ca.crt --cert c.crt --key c.key --dry-run\n  etcdsnap put-back snapshot.db /registry/deployments/prod/web --endpoints http://127.0.0.1:2379 --if-mod-revision 1234\n  \
etcdsnap put-back snapshot.db -n prod --endpoints http://127.0.0.1:2379 --dry-run\n  \
etcdsnap put-back snapshot.db -n prod --resource configmaps --resource deployments --dangling leave-out --endpoints http://127.0.0.1:2379"
)]
pub struct Args {
    /// Snapshot file
    snapshot: SnapshotPath,
    /// An etcd key (used as is when it starts with `/` or comes without NAME),
    /// or a resource as kubectl names it followed by NAME; none with -n NS
    /// (the whole namespace) or --key-prefix
    #[arg(required_unless_present_any = ["namespace", "key_prefix"])]
    target: Option<String>,
    /// The object's name (with a resource)
    name: Option<String>,
    /// Namespace (with a namespaced resource; default "default"); without
    /// TARGET, the namespace to put back
    #[arg(short, long)]
    namespace: Option<String>,
    /// Without TARGET: only objects of this resource (repeatable)
    #[arg(long = "resource", value_name = "R", requires = "namespace")]
    resources: Vec<String>,
    /// Without TARGET: every live key under this prefix
    #[arg(long, value_name = "P", conflicts_with_all = ["target", "namespace"])]
    key_prefix: Option<String>,
    /// Without TARGET: what to do with objects whose owner is gone (by
    /// default nothing is written while there are any)
    #[arg(long, value_enum, value_name = "CHOICE")]
    dangling: Option<DanglingArg>,
    /// Without TARGET: also write objects that had a lease (Events), without it
    #[arg(long)]
    include_leased: bool,
    /// Without TARGET: the report's format
    #[arg(short = 'w', long = "write-out", value_enum, default_value = "table")]
    write_out: ReportFormat,
    /// The object as it was at this revision of the snapshot
    #[arg(long)]
    revision: Option<i64>,
    /// The object is deleted in the snapshot: take its last live revision
    #[arg(long)]
    deleted: bool,
    /// Write only when the key's current mod revision is N (instead of only
    /// when it is absent)
    #[arg(long, value_name = "N")]
    if_mod_revision: Option<i64>,
    /// Say what would be written and whether the compare would pass; write
    /// nothing
    #[arg(long)]
    dry_run: bool,
    /// Allow writing a Secret
    #[arg(long)]
    show_secrets: bool,
    /// Write although the snapshot's cluster ID (from its member IDs) is not
    /// the live cluster's (a cluster restored with other member names, peer
    /// URLs or token has a new ID)
    #[arg(long)]
    allow_other_cluster: bool,
    #[command(flatten)]
    prefix: PrefixOpt,
    #[command(flatten)]
    index: IndexOpts,
    #[command(flatten)]
    conn: ConnArgs,
}

/// `--dangling`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum DanglingArg {
    /// Leave them out, and what they own
    LeaveOut,
    /// Write them anyway
    Write,
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    let Some(target) = args.target.clone() else {
        return run_many(args);
    };
    for (set, flag) in [
        (!args.resources.is_empty(), "--resource"),
        (args.dangling.is_some(), "--dangling"),
        (args.include_leased, "--include-leased"),
    ] {
        if set {
            bail!("{flag} is for a whole namespace (-n NS without TARGET)");
        }
    }
    let wanted = Wanted::from_args(&target, args.name.as_deref(), args.namespace.as_deref())?;
    if let Some(n) = args.if_mod_revision
        && n <= 0
    {
        bail!("--if-mod-revision {n}: a mod revision is at least 1");
    }
    // Settings and TLS files are checked before the snapshot is read.
    let live = args.conn.live()?;
    let file = args.index.open_snapshot(&args.snapshot)?;
    let db = db(&file)?;
    let ks = KeySpace::open(&db)?;
    let snap_cluster = cluster_and_revision(&file, &db, &ks, args.revision)?;
    let prefix = args.prefix.prefix.clone();
    let matches = |k: &[u8]| wanted.matches(k, &prefix);
    let finder = Finder::new(&file, &ks, !args.index.no_index, &index_event)?;
    let chosen = finder.lookup_then(wanted.select(&matches), |records, _| {
        choose_one(records, args.revision, args.deleted, ks.compact_revision)
            .map(|r| (r.kv.key.to_vec(), r.kv.value.to_vec(), r.revision.main))
    })?;
    let (key, value, at) = match chosen {
        Ok(c) => c,
        Err(msg) => {
            say!(
                "etcdsnap: {}: {} {}: {msg}",
                file.path().display(),
                target,
                args.name.as_deref().unwrap_or_default()
            );
            return Ok(Outcome::Failed);
        }
    };
    if is_secret(&key, &value, &prefix) && !args.show_secrets {
        bail!(
            "{} is a Secret: writing it back puts its data on the cluster as stored; add --show-secrets to allow it",
            escape_bytes(&key)
        );
    }
    let cond = match args.if_mod_revision {
        Some(n) => Condition::ModRevision(n),
        None => Condition::Absent,
    };
    let (m, same) = check_cluster(&live, &snap_cluster)?;
    say_cluster(&args, &file, &m, same)?;
    let what = format!(
        "{} ({} bytes, {}, from snapshot revision {at})",
        escape_bytes(&key),
        value.len(),
        detect(&value).name()
    );
    let attempt = write_or_try(&live, &m, &key, &value, cond, args.dry_run)?;
    render(&what, &m, cond, attempt)
}

/// The cluster the snapshot records, once `revision` (if given) is known to
/// be one the snapshot can serve.
fn cluster_and_revision(
    file: &etcdsnap::input::SnapshotFile,
    db: &etcdsnap::bolt::Db<'_>,
    ks: &KeySpace<'_, '_>,
    revision: Option<i64>,
) -> anyhow::Result<etcdsnap::live::putback::SnapshotCluster> {
    let cluster = snapshot_cluster(db).map_err(|e| {
        anyhow::Error::from(e).context(format!("{}: members", file.path().display()))
    })?;
    if let Some(r) = revision {
        ks.check_revision(r)?;
    }
    Ok(cluster)
}

/// A whole namespace, or every key under a prefix.
fn run_many(args: Args) -> anyhow::Result<Outcome> {
    if args.if_mod_revision.is_some() || args.deleted || args.name.is_some() {
        bail!("--if-mod-revision, --deleted and NAME are for one object (with TARGET)");
    }
    let live = args.conn.live()?;
    let file = args.index.open_snapshot(&args.snapshot)?;
    let db = db(&file)?;
    let ks = KeySpace::open(&db)?;
    let snap_cluster = cluster_and_revision(&file, &db, &ks, args.revision)?;
    let resources: Vec<ResourceRef> = args
        .resources
        .iter()
        .map(|r| ResourceRef::parse(r))
        .collect();
    let scope = match (&args.key_prefix, &args.namespace) {
        (Some(p), _) => Scope::KeyPrefix(p.as_bytes()),
        (None, Some(ns)) => Scope::Namespace {
            name: ns,
            resources: &resources,
        },
        (None, None) => bail!("put-back needs TARGET, -n NS or --key-prefix P"),
    };
    let q = Query {
        scope,
        revision: args.revision,
        prefix: &args.prefix.prefix,
    };
    let plan = match plan(&ks, &q) {
        Ok(p) => p,
        Err(PlanError::Empty(msg)) => {
            say!("etcdsnap: {}: {msg}", file.path().display());
            return Ok(Outcome::Failed);
        }
        Err(e) => return Err(anyhow::anyhow!("{}: {e}", file.path().display())),
    };
    for &i in &plan.unmatched_resources {
        say!(
            "etcdsnap: note: --resource {}: no object of it in the namespace",
            escape_controls(&args.resources[i])
        );
    }
    if let Scope::Namespace { name, .. } = q.scope
        && !plan.objects.iter().any(|o| {
            o.place
                .as_ref()
                .is_some_and(|p| p.resource == "namespaces" && p.name == name)
        })
    {
        say!(
            "etcdsnap: note: the snapshot holds no Namespace object {}; the API server serves the \
             objects, but creates nothing more in the namespace until it exists",
            escape_controls(name)
        );
    }
    let secrets = plan.objects.iter().filter(|o| o.secret).count();
    if secrets > 0 && !args.show_secrets {
        bail!(
            "{secrets} of the {} objects are Secrets: writing them back puts their data on the cluster as \
             stored; add --show-secrets to allow it, or name the other resources with --resource",
            plan.objects.len()
        );
    }
    let undecoded = plan.objects.iter().filter(|o| !o.decoded).count();
    if undecoded > 0 {
        say!(
            "etcdsnap: note: {undecoded} values do not decode (encrypted at rest?): they go back as stored, \
             but their owners are not known"
        );
    }
    let (m, same) = check_cluster(&live, &snap_cluster)?;
    say_cluster(&args, &file, &m, same)?;
    if !args.dry_run {
        etcdsnap::interrupt::install();
    }
    let opts = Options {
        dry_run: args.dry_run,
        dangling: match args.dangling {
            None => Dangling::Stop,
            Some(DanglingArg::LeaveOut) => Dangling::LeaveOut,
            Some(DanglingArg::Write) => Dangling::Write,
        },
        include_leased: args.include_leased,
    };
    let report = put_back_plan(&live, &m, &plan, opts)?;
    render_many(&report, args.write_out)?;
    if report.stopped == Some(Stopped::Interrupted) {
        bail!("interrupted: the objects marked written are on the cluster, the others are not");
    }
    Ok(if report.complete() {
        Outcome::Ok
    } else {
        Outcome::Failed
    })
}

/// The namespace put-back's report: a line per object, then what stopped
/// it, or the figures.
fn render_many(r: &Report, format: ReportFormat) -> anyhow::Result<()> {
    if format == ReportFormat::Json {
        return super::out(&(serde_json::to_string_pretty(r)? + "\n"));
    }
    let mut s = String::new();
    for row in &r.objects {
        let fate = match &row.fate {
            Fate::Written { revision } => format!("written at revision {revision}"),
            Fate::WouldWrite => "would write".into(),
            Fate::AlreadyThere { mod_revision } => {
                format!("already there (mod revision {mod_revision})")
            }
            Fate::Refused { mod_revision } => match mod_revision {
                Some(m) => format!("refused: created meanwhile (mod revision {m})"),
                None => "refused".into(),
            },
            Fate::LeftOut { reason } => format!("left out: {reason}"),
        };
        s += &format!("{:<60} {fate}\n", row.object);
    }
    for d in &r.dangling {
        s += &format!(
            "owner gone: {} names {} {} (uid {}), which the cluster will not hold: the garbage collector \
             would delete it\n",
            d.object, d.owner.kind, d.owner.name, d.owner.uid
        );
    }
    let n = |f: fn(&Fate) -> bool| r.count(f);
    s += &format!(
        "{} written, {} would write, {} already there, {} refused, {} left out (snapshot revision {}, {})\n",
        n(|f| matches!(f, Fate::Written { .. })),
        n(|f| matches!(f, Fate::WouldWrite)),
        n(|f| matches!(f, Fate::AlreadyThere { .. })),
        n(|f| matches!(f, Fate::Refused { .. })),
        n(|f| matches!(f, Fate::LeftOut { .. })),
        r.snapshot_revision,
        r.endpoint
    );
    super::out(&s)?;
    match &r.stopped {
        Some(Stopped::NamespaceTerminating {
            state,
            in_snapshot: false,
        }) => say!(
            "etcdsnap: nothing written: the cluster's Namespace is being deleted ({state}); the namespace \
             controller would delete what is written into it. Wait until it is gone, then run again"
        ),
        Some(Stopped::NamespaceTerminating {
            state,
            in_snapshot: true,
        }) => say!(
            "etcdsnap: nothing written: in the snapshot at revision {}, the Namespace is already being \
             deleted ({state}); written back, it would be deleted again with everything in it. Pass \
             --revision with a revision from before the deletion began (`etcdsnap history` of the \
             Namespace shows it)",
            r.snapshot_revision
        ),
        Some(Stopped::DanglingOwners) => say!(
            "etcdsnap: nothing written: {} objects name owners that are gone; pass --dangling leave-out to \
             leave them (and what they own) out, or --dangling write to write them anyway",
            r.dangling.len()
        ),
        Some(Stopped::Interrupted) | None => {}
    }
    if r.count(|f| matches!(f, Fate::Written { .. })) > 0 {
        say!(
            "etcdsnap: note: the API server's watch cache must catch up with these writes; until it has, \
             clients reading from the cache may not see the objects"
        );
    }
    Ok(())
}

/// Says how the snapshot's cluster compares with the live one: a note, or
/// the refusal (without --allow-other-cluster).
fn say_cluster(
    args: &Args,
    file: &etcdsnap::input::SnapshotFile,
    m: &Member,
    same: SameCluster,
) -> anyhow::Result<()> {
    match same {
        SameCluster::Yes => {}
        SameCluster::SharedMembers {
            snapshot,
            live,
            shared,
        } => say!(
            "etcdsnap: note: the snapshot's member IDs make cluster ID {snapshot:x}, {} answers for \
             cluster {live:x}, but {shared} of its members are in the live member list: the same \
             cluster, whose membership changed",
            m.endpoint
        ),
        SameCluster::No { snapshot, live } if args.allow_other_cluster => say!(
            "etcdsnap: note: the snapshot is of cluster {snapshot:x}, {} answers for cluster {live:x} \
             (--allow-other-cluster)",
            m.endpoint
        ),
        SameCluster::Unknown { live } if args.allow_other_cluster => say!(
            "etcdsnap: note: the snapshot records no member, so its cluster is not known; {} answers \
             for cluster {live:x} (--allow-other-cluster)",
            m.endpoint
        ),
        SameCluster::No { snapshot, live } => bail!(
            "the snapshot {} is of cluster {snapshot:x} (from its member IDs), but {} answers for \
             cluster {live:x}: nothing written. Objects from another cluster's snapshot may not belong \
             here; if this cluster was restored from that snapshot under new member names, peer URLs \
             or token, pass --allow-other-cluster",
            file.path().display(),
            m.endpoint
        ),
        SameCluster::Unknown { live } => bail!(
            "the snapshot {} records no member, so the cluster it is of cannot be told ({} answers for \
             cluster {live:x}): nothing written; pass --allow-other-cluster to write it anyway",
            file.path().display(),
            m.endpoint
        ),
    }
    Ok(())
}

/// Prints what was written, refused, or with --dry-run would be.
fn render(what: &str, m: &Member, cond: Condition, attempt: Attempt) -> anyhow::Result<Outcome> {
    match attempt {
        Attempt::DryRun { current, pass } => {
            let now = match &current {
                Some(c) => format!("at mod revision {}", c.mod_revision),
                None => "absent".into(),
            };
            super::out(&format!(
                "would put {what} on {} if the key is {}: it is {now}, so the write {}\n",
                m.endpoint,
                cond.describe(),
                if pass {
                    "would succeed"
                } else {
                    "would be refused"
                }
            ))?;
            Ok(if pass { Outcome::Ok } else { Outcome::Failed })
        }
        Attempt::Ran(PutBack::Written { revision }) => {
            super::out(&format!(
                "put {what} at cluster revision {revision} (no lease)\n"
            ))?;
            say!(
                "etcdsnap: note: the API server's watch cache must catch up with this write; until it has, \
                 clients reading from the cache may not see the object"
            );
            Ok(Outcome::Ok)
        }
        Attempt::Ran(PutBack::Refused { current }) => {
            let now = match current {
                Some(c) => format!(
                    "it is at mod revision {} (create revision {}, version {})",
                    c.mod_revision, c.create_revision, c.version
                ),
                None => "it is absent".into(),
            };
            say!(
                "etcdsnap: not written: the key must be {}, but {now}; nothing was changed{}",
                cond.describe(),
                match cond {
                    Condition::Absent =>
                        "; to replace it, pass --if-mod-revision with its current mod revision",
                    Condition::ModRevision(_) => "",
                }
            );
            Ok(Outcome::Failed)
        }
    }
}
