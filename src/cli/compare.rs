//! `etcdsnap compare`: is this snapshot what the cluster had? Per member,
//! HashKV at the snapshot's revision against the hash of the file.

use super::Outcome;
use super::args::{ConnArgs, ReportFormat, SnapshotPath, db, open};
use super::render::{cluster_outcome, cluster_run_error, findings_text};
use etcdsnap::live::report::compare_snapshot;

/// Compare a snapshot with every member of a live cluster (HashKV at the
/// snapshot's revision)
#[derive(clap::Args)]
#[command(
    long_about = "Asks every member of the cluster (the member list, from the endpoints given) for HashKV at the \
snapshot's revision and compares it with the hash of the file, computed offline under the rules of the \
member's etcd release (its Status gives the version). A member that compacted past that revision, or has not \
reached it, cannot tell.\n\nExit codes: 0 every member matches; 1 a member does not match; 2 could not tell \
(compacted, behind, unreachable), usage or I/O error.",
    after_help = "Examples:\n  etcdsnap compare snapshot.db --endpoints https://10.0.0.1:2379 --cacert ca.crt --cert c.crt --key c.key\n  ETCDCTL_ENDPOINTS=http://127.0.0.1:2379 etcdsnap compare snapshot.db -w json"
)]
pub struct Args {
    /// Snapshot file
    snapshot: SnapshotPath,
    #[command(flatten)]
    conn: ConnArgs,
    /// Output format
    #[arg(short = 'w', long = "write-out", value_enum, default_value = "table")]
    write_out: ReportFormat,
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    let live = args.conn.live()?;
    let file = open(&args.snapshot)?;
    let db = db(&file)?;
    let report = compare_snapshot(&live, &db).map_err(|e| cluster_run_error(e, &args.snapshot))?;
    super::out(&findings_text(&report, args.write_out)?)?;
    cluster_outcome(&report)
}
