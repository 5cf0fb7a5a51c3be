//! `etcdsnap verify-cluster`: did a cluster restored from a snapshot come up
//! as planned?

use super::Outcome;
use super::args::{ConnArgs, ReportFormat, SnapshotPath, db, open};
use super::render::{cluster_outcome, cluster_run_error, findings_text};
use etcdsnap::live::cluster::parse_initial_cluster;
use etcdsnap::live::report::verify_restored;

/// Check a cluster restored from a snapshot: leader, members, cluster ID,
/// revision, HashKV
#[derive(clap::Args)]
#[command(
    long_about = "After a restore: checks that the cluster has one leader, that every member started with the \
expected name and peer URLs (--initial-cluster, as given to the restore), that every member reports the same \
cluster ID, that every member is at least at the snapshot's revision, and that every member's HashKV at the \
snapshot's revision equals the snapshot's. Each failed point names the member and the figures.\n\nAfter a \
restore with --bump-revision N (--mark-compacted), members start compacted at the snapshot's revision R + N, so \
HashKV cannot be compared; pass the same --bump-revision N: then every member must be at R + N or later, and \
its keys at R + N (read from the member itself, in pages) must be the snapshot's live keys at R with the same \
value, create and mod revision, version and lease (the check named content); HashKV is reported as skipped.\n\nExit \
codes: 0 all pass; 1 a check failed; 2 could not tell (a member compacted past the snapshot's revision), \
usage, connection or I/O error.",
    after_help = "Examples:\n  etcdsnap verify-cluster --expect snapshot.db --endpoints http://10.0.0.1:2379,http://10.0.0.2:2379 --initial-cluster m1=http://10.0.0.1:2380,m2=http://10.0.0.2:2380\n  etcdsnap verify-cluster --expect snapshot.db --endpoints https://10.0.0.1:2379 --cacert ca.crt --cert c.crt --key c.key -w json"
)]
pub struct Args {
    /// The snapshot the cluster was restored from
    #[arg(long, value_name = "SNAPSHOT")]
    expect: SnapshotPath,
    /// The members expected: NAME=PEER_URL,... as given to the restore
    #[arg(long)]
    initial_cluster: Option<String>,
    /// The restore's --bump-revision: compare the keys at the bumped revision
    /// instead of HashKV
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    bump_revision: Option<u64>,
    #[command(flatten)]
    conn: ConnArgs,
    /// Output format
    #[arg(short = 'w', long = "write-out", value_enum, default_value = "table")]
    write_out: ReportFormat,
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    let initial_cluster = match &args.initial_cluster {
        Some(s) => {
            Some(parse_initial_cluster(s).map_err(|e| anyhow::anyhow!("--initial-cluster: {e}"))?)
        }
        None => None,
    };
    let live = args.conn.live()?;
    let file = open(&args.expect)?;
    let db = db(&file)?;
    let report = verify_restored(&live, &db, initial_cluster, args.bump_revision)
        .map_err(|e| cluster_run_error(e, &args.expect))?;
    super::out(&findings_text(&report, args.write_out)?)?;
    cluster_outcome(&report)
}
