//! `etcdsnap compare`: is this snapshot what the cluster had? Per member,
//! HashKV at the snapshot's revision against the hash of the file.

use super::objects::{db, open};
use super::save::ConnArgs;
use super::verify_cluster::render;
use super::{Outcome, ReportFormat, SnapshotPath};
use crate::live::cluster::{exit_of, reach};
use crate::live::compare::{OfflineHashes, compare};
use crate::mvcc::keyspace::KeySpace;

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
    let rev = KeySpace::open(&db)?.current_revision;
    let mut offline = OfflineHashes::new(&db, rev);
    let reached = reach(&live)?;
    let findings = compare(&live, &reached, rev, &mut offline);
    if let Some(e) = offline.damage.take() {
        return Err(
            anyhow::Error::from(e).context(format!("{}: cannot hash", args.snapshot.display()))
        );
    }
    super::out(&render(&findings, args.write_out, rev)?)?;
    finish(exit_of(&findings))
}

/// 0 → ok, 1 → failed, 2 → an error saying so.
pub fn finish(code: u8) -> anyhow::Result<Outcome> {
    match code {
        0 => Ok(Outcome::Ok),
        1 => Ok(Outcome::Failed),
        _ => Err(anyhow::anyhow!(
            "could not tell for every member (see the reasons above)"
        )),
    }
}
