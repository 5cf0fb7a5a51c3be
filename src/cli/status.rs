//! `etcdsnap status`: what `etcdutl snapshot status` prints, the same values.

use anyhow::Context;

use super::{Outcome, SnapshotPath, StatusFormat, out};
use crate::backend::status::{Status, StatusError, status};
use crate::bolt::Db;
use crate::input::SnapshotFile;
use crate::report::{Align, Table, humanize_bytes};

/// Print a snapshot's hash, revision, total keys and size, as etcdutl does
#[derive(clap::Args)]
#[command(
    long_about = "Prints what `etcdutl snapshot status` (etcd 3.5) prints for the same file, with the same JSON \
field names and values:\n\n  hash       CRC-32C over every bucket name, key and value, in order\n  revision   the \
highest revision in the key bucket\n  totalKey   the number of entries in all buckets (the etcd 3.4/3.5 meaning; \
etcd 3.6 counts distinct live keys instead, which `etcdsnap verify` reports as liveKeys)\n  totalSize  the \
database size without the sha256 trailer\n  version    the storage version, only when the file records one \
(etcd 3.6)\n\nLike etcdutl, the bbolt structure is checked first and any problem fails the command (exit 1).",
    after_help = "Examples:\n  etcdsnap status snapshot.db\n  etcdsnap status snapshot.db -w json\n  etcdsnap status backup.db.zst -w table"
)]
pub struct Args {
    /// Snapshot file (`-` for standard input; zstd/gzip/zip are detected). Compressed
    /// input is inflated, and standard input copied, into an unnamed temporary file in
    /// $TMPDIR (else /tmp); inflation stops where the db ends
    snapshot: SnapshotPath,
    /// Output format
    #[arg(short = 'w', long = "write-out", value_enum, default_value = "simple")]
    write_out: StatusFormat,
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    let name = args.snapshot.display();
    let file = match SnapshotFile::open(&args.snapshot) {
        Ok(f) => f,
        // A compressed stream that does not decode is a damaged file (exit 1).
        Err(e) if e.is_damage() => {
            eprintln!("etcdsnap: {e}");
            return Ok(Outcome::Failed);
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(excess) = file.excess() {
        if excess.is_damage() {
            eprintln!("etcdsnap: {name}: {}", excess.describe());
            return Ok(Outcome::Failed);
        }
        eprintln!("etcdsnap: note: {name}: {}", excess.describe());
    }
    let db = match Db::open(file.db()) {
        Ok(db) => db,
        Err(e) => {
            eprintln!("etcdsnap: {name}: invalid database: {e}");
            return Ok(Outcome::Failed);
        }
    };
    match status(&db) {
        Ok(s) => {
            out(&render(&s, args.write_out)?)?;
            Ok(Outcome::Ok)
        }
        Err(StatusError::Integrity(problems)) => {
            let mut msg = format!(
                "etcdsnap: {name}: snapshot file integrity check failed. {} errors found.\n",
                problems.total()
            );
            for p in &problems.items {
                msg.push_str(&format!("  {p}\n"));
            }
            if problems.omitted > 0 {
                msg.push_str(&format!("  … and {} more\n", problems.omitted));
            }
            eprint!("{msg}");
            Ok(Outcome::Failed)
        }
    }
}

pub fn render(s: &Status, format: StatusFormat) -> anyhow::Result<String> {
    let version = s.version.as_deref();
    Ok(match format {
        StatusFormat::Json => {
            serde_json::to_string(s).context("cannot encode the status as JSON")? + "\n"
        }
        StatusFormat::Simple => {
            let mut line = format!(
                "{:x}, {}, {}, {}",
                s.hash,
                s.revision,
                s.total_key,
                humanize_bytes(s.total_size)
            );
            if let Some(v) = version {
                line.push_str(&format!(", {v}"));
            }
            line + "\n"
        }
        StatusFormat::Fields => {
            let mut t = format!(
                "\"Hash\" : {}\n\"Revision\" : {}\n\"Keys\" : {}\n\"Size\" : {}\n",
                s.hash, s.revision, s.total_key, s.total_size
            );
            if let Some(v) = version {
                t.push_str(&format!("\"Version\" : {v}\n"));
            }
            t
        }
        StatusFormat::Table => {
            let mut headers = vec!["hash", "revision", "total keys", "total size"];
            let mut row = vec![
                format!("{:x}", s.hash),
                s.revision.to_string(),
                s.total_key.to_string(),
                humanize_bytes(s.total_size),
            ];
            if let Some(v) = version {
                headers.push("version");
                row.push(v.to_string());
            }
            let mut t = Table::new(&headers, Align::Right);
            t.row(row);
            t.render()
        }
    })
}
