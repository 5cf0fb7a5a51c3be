//! `etcdsnap status`: what `etcdutl snapshot status` prints, the same values,
//! as etcdutl 3.5 (and etcdctl 3.4), 3.6 or 3.7 print them.

use anyhow::Context;

use super::args::{RemoteArgs, SnapshotPath, StatusFormat};
use super::{Outcome, out};
use etcdsnap::backend::status::{Status, StatusError, status};
use etcdsnap::bolt::Db;
use etcdsnap::input::SnapshotFile;
use etcdsnap::report::{Align, Table, humanize_bytes};

/// Print a snapshot's hash, revision, total keys and size, as etcdutl does
#[derive(clap::Args)]
#[command(
    long_about = "Prints what `etcdutl snapshot status` prints for the same file, with the same JSON field names \
and values, as the release that wrote the file (its storage version; files without one as etcdutl 3.5) or the \
release --etcd-version names:\n\n  hash       CRC-32C over every bucket name, key and value, in order\n  revision   \
the highest revision in the key bucket\n  totalKey   3.4/3.5: the number of entries in all buckets; 3.6/3.7: the \
number of distinct live keys (a key-bucket value that is not a KeyValue fails the command, as it fails etcdutl \
3.6+)\n  totalSize  the database size without the sha256 trailer\n  version    3.6/3.7 only: the storage version \
(empty when the file has none)\n\n3.7 draws the table with box characters.\n\n\
Like etcdutl, the bbolt structure is checked first and any problem fails the command (exit 1).",
    after_help = "Examples:\n  etcdsnap status snapshot.db\n  etcdsnap status snapshot.db -w json\n  etcdsnap status backup.db.zst -w table\n  etcdsnap status snapshot.db --etcd-version 3.5"
)]
pub struct Args {
    /// Snapshot file (`-` for standard input; zstd/gzip/zip are detected). Compressed
    /// input is inflated, and standard input copied, into an unnamed temporary file in
    /// $TMPDIR (else /tmp); inflation stops where the db ends. `s3://BUCKET/KEY`,
    /// `gs://BUCKET/KEY`, `az://CONTAINER/KEY` and `http(s)://URL` are streamed once
    /// into a private spool file first
    snapshot: SnapshotPath,
    /// Output format
    #[arg(short = 'w', long = "write-out", value_enum, default_value = "simple")]
    write_out: StatusFormat,
    /// Print as this etcd release's etcdutl does (default: the release the
    /// file's storage version names, else 3.5; 3.4 prints as 3.5)
    #[arg(long, value_parser = ["3.4", "3.5", "3.6", "3.7"])]
    etcd_version: Option<String>,
    #[command(flatten)]
    remote: RemoteArgs,
}

/// Which etcdutl's output `status` reproduces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// etcdctl 3.4 and etcdutl 3.5: totalKey counts every entry.
    V35,
    /// etcdutl 3.6: live keys, version column always.
    V36,
    /// etcdutl 3.7: as 3.6, table drawn with box characters.
    V37,
}

impl Flavor {
    fn pick(requested: Option<&str>, storage_version: Option<&str>) -> Flavor {
        let line = requested.or_else(|| {
            storage_version.map(|v| match v.split('.').take(2).collect::<Vec<_>>()[..] {
                ["3", "6"] => "3.6",
                ["3", m] if m.parse::<u32>().is_ok_and(|m| m >= 7) => "3.7",
                _ => "3.5",
            })
        });
        match line {
            Some("3.6") => Flavor::V36,
            Some("3.7") => Flavor::V37,
            _ => Flavor::V35,
        }
    }
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    args.remote.configure();
    let name = etcdsnap::remote::display_name(&args.snapshot);
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
            let flavor = Flavor::pick(args.etcd_version.as_deref(), s.version.as_deref());
            if flavor != Flavor::V35
                && let Err(e) = &s.live_keys
            {
                eprintln!("etcdsnap: {name}: {e} (etcdutl 3.6+ fails here too)");
                return Ok(Outcome::Failed);
            }
            out(&render_as(&s, args.write_out, flavor)?)?;
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

/// The output of the given release's etcdutl for this status.
pub fn render_as(s: &Status, format: StatusFormat, flavor: Flavor) -> anyhow::Result<String> {
    if flavor == Flavor::V35 {
        // etcdutl 3.5 and etcdctl 3.4 have no version column.
        let mut s = s.clone();
        s.version = None;
        return render(&s, format);
    }
    let total_key = *s.live_keys.as_ref().unwrap_or(&0);
    let version = s.version.as_deref().unwrap_or("");
    Ok(match format {
        StatusFormat::Json => {
            let v = serde_json::json!({
                "hash": s.hash,
                "revision": s.revision,
                "totalKey": total_key,
                "totalSize": s.total_size,
                "version": version,
            });
            serde_json::to_string(&v).context("cannot encode the status as JSON")? + "\n"
        }
        StatusFormat::Simple => format!(
            "{:x}, {}, {}, {}, {version}\n",
            s.hash,
            s.revision,
            total_key,
            humanize_bytes(s.total_size)
        ),
        StatusFormat::Fields => format!(
            "\"Hash\" : {}\n\"Revision\" : {}\n\"Keys\" : {}\n\"Size\" : {}\n\"Version\" : {version}\n",
            s.hash, s.revision, total_key, s.total_size
        ),
        StatusFormat::Table => {
            let mut t = Table::new(
                &["hash", "revision", "total keys", "total size", "version"],
                Align::Right,
            );
            t.row(vec![
                format!("{:x}", s.hash),
                s.revision.to_string(),
                total_key.to_string(),
                humanize_bytes(s.total_size),
                version.to_string(),
            ]);
            let ascii = t.render();
            if flavor == Flavor::V37 {
                box_drawn(&ascii)
            } else {
                ascii
            }
        }
    })
}

/// An ASCII `+-|` table redrawn with the light box characters etcdutl 3.7's
/// table writer uses (`┌─┬─┐ │ ├─┼─┤ └─┴─┘`).
fn box_drawn(ascii: &str) -> String {
    let lines: Vec<&str> = ascii.lines().collect();
    let rules = lines.iter().filter(|l| l.starts_with('+')).count();
    let mut seen = 0;
    let mut out = String::new();
    for line in lines {
        if line.starts_with('+') {
            seen += 1;
            let (l, m, r) = match seen {
                1 => ('┌', '┬', '┐'),
                n if n == rules => ('└', '┴', '┘'),
                _ => ('├', '┼', '┤'),
            };
            let n = line.chars().count();
            for (i, c) in line.chars().enumerate() {
                out.push(match c {
                    '+' if i == 0 => l,
                    '+' if i + 1 == n => r,
                    '+' => m,
                    _ => '─',
                });
            }
        } else {
            // Status cells (hex, numbers, a version) hold no '|' of their own.
            out.push_str(&line.replace('|', "│"));
        }
        out.push('\n');
    }
    out
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

#[cfg(test)]
mod tests {
    use super::Flavor;

    #[test]
    fn flavor_follows_the_request_then_the_storage_version() {
        assert_eq!(Flavor::pick(None, None), Flavor::V35);
        assert_eq!(Flavor::pick(None, Some("3.6.0")), Flavor::V36);
        assert_eq!(Flavor::pick(None, Some("3.7.0")), Flavor::V37);
        // A later release prints as the newest one we know.
        assert_eq!(Flavor::pick(None, Some("3.8.0")), Flavor::V37);
        assert_eq!(Flavor::pick(None, Some("junk")), Flavor::V35);
        assert_eq!(Flavor::pick(Some("3.5"), Some("3.6.0")), Flavor::V35);
        assert_eq!(Flavor::pick(Some("3.4"), None), Flavor::V35);
        assert_eq!(Flavor::pick(Some("3.7"), None), Flavor::V37);
    }
}
