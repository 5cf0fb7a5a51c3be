//! `etcdsnap put-back`: one object's stored bytes from a snapshot written
//! back to the live cluster, only where that overwrites nothing newer.

use anyhow::bail;

use super::Outcome;
use super::args::{ConnArgs, IndexOpts, PrefixOpt, SnapshotPath, db};
use super::render::index_event;
use etcdsnap::kube::value::detect;
use etcdsnap::live::connect::Member;
use etcdsnap::live::putback::{
    Attempt, Condition, PutBack, SameCluster, check_cluster, is_secret, snapshot_cluster,
    write_or_try,
};
use etcdsnap::lookup::choose::choose_one;
use etcdsnap::lookup::{Finder, Wanted};
use etcdsnap::mvcc::keyspace::KeySpace;
use etcdsnap::report::escape_bytes;

/// Write one object's stored bytes from a snapshot back to a live cluster,
/// only if the key is absent (or at --if-mod-revision)
#[derive(clap::Args)]
#[command(
    long_about = "Writes one object's exact stored bytes (no lease) from the snapshot back to the live cluster in \
one transaction that succeeds only when the key is absent, or when its mod revision is --if-mod-revision N. The \
snapshot must be of the same cluster: its cluster ID (etcd's, from the member IDs it records) is compared with \
the live cluster's (or, as that ID no longer matches once members were added or replaced, a member must be \
in both), and another cluster's snapshot is refused unless --allow-other-cluster. For \
when the API server is down, or an object must keep its exact stored form (kubectl apply would re-encode it). \
The API server's watch cache learns of the write through its watch; clients that list from the cache may see \
the old state until it has caught up. On a failed compare the key's current mod revision is printed.\n\nExit \
codes: 0 written (or --dry-run would write); 1 the compare failed (nothing written) or the object is not in \
the snapshot; 2 usage, connection or I/O error, a Secret without --show-secrets, or another cluster's \
snapshot without --allow-other-cluster.",
    after_help = "Examples:\n  etcdsnap put-back snapshot.db configmap app-config -n prod --endpoints https://10.0.0.1:2379 --cacert ca.crt --cert c.crt --key c.key --dry-run\n  etcdsnap put-back snapshot.db /registry/deployments/prod/web --endpoints http://127.0.0.1:2379 --if-mod-revision 1234"
)]
pub struct Args {
    /// Snapshot file
    snapshot: SnapshotPath,
    /// An etcd key (used as is when it starts with `/` or comes without NAME),
    /// or a resource as kubectl names it followed by NAME
    target: String,
    /// The object's name (with a resource)
    name: Option<String>,
    /// Namespace (with a namespaced resource; default "default")
    #[arg(short, long)]
    namespace: Option<String>,
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

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    let wanted = Wanted::from_args(
        &args.target,
        args.name.as_deref(),
        args.namespace.as_deref(),
    )?;
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
    let snap_cluster = snapshot_cluster(&db).map_err(|e| {
        anyhow::Error::from(e).context(format!("{}: members", file.path().display()))
    })?;
    if let Some(r) = args.revision {
        ks.check_revision(r)?;
    }
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
                args.target,
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
