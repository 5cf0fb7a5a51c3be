//! `etcdsnap hashkv`: offline, the hash `etcdctl endpoint hashkv --rev R`
//! reports for a member whose backend is the snapshot, printed as etcdctl
//! prints it (the snapshot's path where etcdctl puts the endpoint).

use serde_json::json;

use super::args::{SnapshotPath, db, open};
use super::{Outcome, out};
use etcdsnap::mvcc::hashkv::{HashKv, HashKvError, ServerRules, hash_kv_with};
use etcdsnap::report::{Align, Table, escape_controls};

/// Compute the HashKV a member with this snapshot reports (etcdctl endpoint hashkv)
#[derive(clap::Args)]
#[command(
    long_about = "Computes offline the hash that `etcdctl endpoint hashkv --rev R` reports for a member whose \
backend is this snapshot: CRC-32C over the key bucket's name and its (revision, KeyValue) entries up to R, \
leaving out the revisions at or below the compaction that etcd's key index does not keep.\n\n\
The hash depends on the member's etcd release: 3.4.34+, 3.5.16+ and 3.6+ (the default) leave out a \
tombstone that sits exactly at the compaction revision; older releases (3.4.23, 3.5.1 …) hash it. On files \
written by those older releases the two rules agree (their compaction deletes that tombstone); they can \
differ on a file from a newer release when no key is live at R. Releases before 3.4.27 / 3.5.10 also \
refuse R equal to the compaction revision. --server-version picks the rules.\n\n\
At R equal to the compaction revision, a running 3.6 member answers from the hash it recorded while \
compacting (over data the compaction removed, in no snapshot); etcdsnap answers what a member started \
from the snapshot answers, as `etcdutl hashkv` does.\n\n\
Output as etcdctl's: simple `PATH, HASH, HASH_REVISION`; json `[{\"Endpoint\": PATH, \"HashKV\": \
{\"header\": {\"revision\": N}, \"hash\": H, \"compact_revision\": C, \"hash_revision\": R}}]` \
(compact_revision -1: never compacted).\n\nExit codes: 0 ok; 1 the snapshot is damaged; 2 usage or I/O \
error, a compacted or future revision.",
    after_help = "Examples:\n  etcdsnap hashkv snapshot.db\n  etcdsnap hashkv snapshot.db --revision 1200 -w json\n  etcdsnap hashkv snapshot.db --server-version 3.5.1"
)]
pub struct Args {
    /// Snapshot file (`-` for standard input; zstd/gzip/zip are detected).
    /// Compressed input is inflated, and standard input copied, into an
    /// unnamed temporary file in $TMPDIR (else /tmp); inflation stops where the
    /// db ends
    snapshot: SnapshotPath,
    /// The revision to hash (0: the snapshot's revision)
    #[arg(long, default_value_t = 0)]
    revision: i64,
    /// The member's etcd release whose rules apply: 3.6 (and later), or a full
    /// 3.4/3.5 version such as 3.5.1 (those lines changed within patch releases)
    #[arg(long, default_value = "3.6")]
    server_version: String,
    /// Output format
    #[arg(short = 'w', long = "write-out", value_enum, default_value = "simple")]
    write_out: Format,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Simple,
    Json,
    Table,
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    let rules = ServerRules::for_version(&args.server_version)?;
    if args.revision < 0 {
        anyhow::bail!("--revision {} is negative", args.revision);
    }
    let file = open(&args.snapshot)?;
    let db = db(&file)?;
    let h = match hash_kv_with(&db, args.revision, rules) {
        Ok(h) => h,
        // Damage keeps its type, so that the exit code says so.
        Err(HashKvError::KeySpace(e)) => {
            return Err(
                anyhow::Error::from(e).context(format!("{}: cannot hash", args.snapshot.display()))
            );
        }
        Err(e) => return Err(e.into()),
    };
    out(&render(
        &args.snapshot.display().to_string(),
        &h,
        args.write_out,
    ))?;
    Ok(Outcome::Ok)
}

fn render(endpoint: &str, h: &HashKv, format: Format) -> String {
    match format {
        Format::Simple => format!(
            "{}, {}, {}\n",
            escape_controls(endpoint),
            h.hash,
            h.hash_revision
        ),
        Format::Table => {
            let mut t = Table::new(&["endpoint", "hash", "hash revision"], Align::Right);
            t.row(vec![
                escape_controls(endpoint).into_owned(),
                h.hash.to_string(),
                h.hash_revision.to_string(),
            ]);
            t.render()
        }
        Format::Json => {
            let v = json!([{
                "Endpoint": endpoint,
                "HashKV": {
                    "header": {"revision": h.revision},
                    "hash": h.hash,
                    "compact_revision": h.compact_revision,
                    "hash_revision": h.hash_revision,
                }
            }]);
            format!("{v}\n")
        }
    }
}
