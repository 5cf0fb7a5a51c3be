//! `etcdsnap index`: writes a snapshot's key index, so that `get` and
//! `history` find a key without scanning the file. How lookups use indexes,
//! and the cache, are the library's ([`etcdsnap::lookup::finder`]).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::bail;

use super::args::{SnapshotPath, db, open};
use super::{Outcome, out};
use etcdsnap::lookup::finder::{IndexTarget, sidecar_path, write_index};
use etcdsnap::mvcc::keyspace::KeySpace;

/// Write a key index of a snapshot, so that `get` and `history` find a key
/// without scanning the file
#[derive(clap::Args)]
#[command(
    long_about = "Write a key index of a snapshot, so that `get` and `history` find a key without scanning \
the file. etcd stores revisions in revision order, so without an index every lookup reads the start of every \
stored value; with one it reads a few pages. By default the index goes into the user cache \
($ETCDSNAP_CACHE_DIR, else $XDG_CACHE_HOME/etcdsnap, else ~/.cache/etcdsnap), where `get` and `history` \
also leave one after a scan; --beside writes SNAPSHOT.etcdsnap-index next to the snapshot instead (it travels \
with the backup; for a snapshot in a bucket, URL.etcdsnap-index in the bucket, which `get` and `history` fetch \
to read the object by ranges on any machine), -o anywhere. The index is bound to the snapshot's content, and what it says is checked \
against the snapshot before use: a lying or stale index is reported and the lookup scans.",
    after_help = "Examples:\n  etcdsnap index snapshot.db                # into the cache\n  etcdsnap index snapshot.db --beside       # snapshot.db.etcdsnap-index\n  etcdsnap index s3://backups/etcd/snapshot.db --beside   # s3://backups/etcd/snapshot.db.etcdsnap-index\n  etcdsnap index snapshot.db.zst -o /backups/index/snapshot.etcdsnap-index\n\nEnvironment:\n  ETCDSNAP_CACHE_DIR  the cache directory"
)]
pub struct Args {
    /// Snapshot file (`-` for standard input; zstd/gzip/zip are detected).
    /// Compressed input is inflated, and standard input copied, into an
    /// unnamed temporary file in $TMPDIR (else /tmp); inflation stops where the
    /// db ends
    snapshot: SnapshotPath,
    /// Where to write the index (default: the cache directory)
    #[arg(short, long, conflicts_with = "beside")]
    output: Option<PathBuf>,
    /// Write SNAPSHOT.etcdsnap-index beside the snapshot
    #[arg(long)]
    beside: bool,
    /// Replace an existing file that is not a key index
    #[arg(long)]
    force: bool,
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    let start = Instant::now();
    if args.beside && sidecar_path(&args.snapshot).is_none() {
        bail!("reading standard input: --beside has no file to write beside; use -o FILE");
    }
    let file = open(&args.snapshot)?;
    let db = db(&file)?;
    let ks = KeySpace::open(&db)?;
    #[cfg(feature = "remote")]
    if args.beside && etcdsnap::remote::is_remote(&args.snapshot) {
        return beside_in_bucket(&args, &file, &ks, start);
    }
    let target = match (&args.output, args.beside) {
        (Some(p), _) => IndexTarget::Output(p.clone()),
        (None, true) => IndexTarget::Beside,
        (None, false) => IndexTarget::Cache,
    };
    let written = write_index(&file, &ks, &target, args.force)?;
    out(&format!(
        "{}: {} keys, {} revisions, {} bytes, in {:.2} s\n",
        etcdsnap::report::escape_controls(&written.path.display().to_string()),
        written.keys,
        written.entries,
        written.bytes,
        start.elapsed().as_secs_f64()
    ))?;
    Ok(Outcome::Ok)
}

/// `--beside` for a snapshot in a bucket: the index is made in a private
/// temporary directory and uploaded as `URL.etcdsnap-index` (an index there
/// before is replaced: it is ours, and bound to the content it indexes).
#[cfg(feature = "remote")]
fn beside_in_bucket(
    args: &Args,
    file: &etcdsnap::input::SnapshotFile,
    ks: &KeySpace<'_, '_>,
    start: Instant,
) -> anyhow::Result<Outcome> {
    let url = args
        .snapshot
        .to_str()
        .ok_or_else(|| anyhow::anyhow!("the URL is not UTF-8"))?;
    let path_part = url.split(['?', '#']).next().unwrap_or(url);
    let Some((prefix, name)) = path_part.rsplit_once('/') else {
        bail!("{}: names no object", etcdsnap::remote::redact(url));
    };
    let tmp = tempfile::Builder::new()
        .prefix(".etcdsnap-index-")
        .tempdir()?;
    let local = tmp.path().join(format!("{name}.etcdsnap-index"));
    let written = write_index(file, ks, &IndexTarget::Output(local.clone()), true)?;
    etcdsnap::interrupt::install();
    let up = etcdsnap::remote::upload::put_files(&format!("{prefix}/"), &[local], true)?;
    let shown = up
        .first()
        .map(|u| u.url.clone())
        .unwrap_or_else(|| format!("{}.etcdsnap-index", etcdsnap::remote::redact(url)));
    out(&format!(
        "{}: {} keys, {} revisions, {} bytes, in {:.2} s\n",
        etcdsnap::report::escape_controls(&shown),
        written.keys,
        written.entries,
        written.bytes,
        start.elapsed().as_secs_f64()
    ))?;
    Ok(Outcome::Ok)
}
