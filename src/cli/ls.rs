//! `etcdsnap ls`: the keys of a snapshot as Kubernetes objects, streamed.
//!
//! etcd keeps keys in revision order, so the listing reads the key bucket newest
//! first: a key's first sighting is its latest state, and each line is printed
//! as soon as it is known — most recently changed first. `--sort key` waits for
//! the whole scan and sorts by key.
//!
//! A snapshot in a bucket listed under a key prefix (or a resource's), with
//! a key index of it cached, is read by ranges: the leaves of the keys under
//! the prefix, not the object (`etcdsnap::lookup::ranged`); the rows then
//! come at the end, in the same order.

use std::io::Write;
use std::ops::ControlFlow;

use super::Outcome;
use super::args::{
    DecryptArgs, PrefixOpt, RemoteArgs, ReportFormat, SalvageOpts, SnapshotPath, salvage_outcome,
    view_or_file,
};
use etcdsnap::kube::value::Encoding;
use etcdsnap::lookup::list::{Query, Row, list};
use etcdsnap::mvcc::keyspace::KeySpace;
use etcdsnap::report::escape_controls;

/// List keys with resource, namespace, name, size, revision and encoding
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  etcdsnap ls snapshot.db\n  etcdsnap ls snapshot.db --resource deploy -n prod\n  etcdsnap ls snapshot.db /registry/configmaps/ --deleted\n  etcdsnap ls snapshot.db --revision 1200 -w json\n  etcdsnap ls damaged.db --salvage --from member-2.db"
)]
pub struct Args {
    /// Snapshot file (`-` for standard input; zstd/gzip/zip are detected).
    /// Compressed input is inflated, and standard input copied, into an
    /// unnamed temporary file in $TMPDIR (else /tmp); inflation stops where the
    /// db ends
    snapshot: SnapshotPath,
    /// Only keys starting with this prefix
    key_prefix: Option<String>,
    /// Only this resource (kubectl names: pods, deploy, widgets.example.com …)
    #[arg(long)]
    resource: Option<String>,
    /// Only this namespace
    #[arg(short, long)]
    namespace: Option<String>,
    /// Keys deleted at the snapshot's (or --revision's) revision whose last live
    /// revision is still in the file (recoverable with `get --deleted`)
    #[arg(long)]
    deleted: bool,
    /// The state at this revision
    #[arg(long)]
    revision: Option<i64>,
    /// Order: newest change first (streams), or by key (after the scan)
    #[arg(long, value_enum, default_value = "revision")]
    sort: Sort,
    /// Output format (json: one array, streamed)
    #[arg(short = 'w', long = "write-out", value_enum, default_value = "table")]
    write_out: ReportFormat,
    #[command(flatten)]
    opts: PrefixOpt,
    #[command(flatten)]
    decrypt: DecryptArgs,
    #[command(flatten)]
    salvage: SalvageOpts,
    #[command(flatten)]
    remote: RemoteArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Sort {
    Revision,
    Key,
}

/// Prints the header before the first row (or at the end), so that an error
/// found before any row comes alone.
struct Printer {
    format: ReportFormat,
    deleted: bool,
    /// A salvaged view: the table has a FROM column.
    from: bool,
    headed: bool,
    rows: usize,
    out: std::io::BufWriter<std::io::StdoutLock<'static>>,
}

impl Printer {
    fn header(&mut self) -> std::io::Result<()> {
        if std::mem::replace(&mut self.headed, true) {
            return Ok(());
        }
        let deleted = self.deleted;
        match self.format {
            ReportFormat::Json => writeln!(self.out, "["),
            ReportFormat::Table if self.from => {
                let last = if deleted {
                    format!("{:<10} FROM", "DELETED-AT")
                } else {
                    "FROM".into()
                };
                writeln!(
                    self.out,
                    "{:<8} {:<28} {:<20} {:<40} {:>9} {:<10} {last}",
                    "REV", "RESOURCE", "NAMESPACE", "NAME", "SIZE", "ENCODING"
                )
            }
            ReportFormat::Table => {
                let last = if deleted { "DELETED-AT" } else { "" };
                writeln!(
                    self.out,
                    "{:<8} {:<28} {:<20} {:<40} {:>9} {:<10} {last}",
                    "REV", "RESOURCE", "NAMESPACE", "NAME", "SIZE", "ENCODING"
                )
            }
        }
    }

    fn row(&mut self, r: &Row) -> std::io::Result<()> {
        self.header()?;
        match self.format {
            ReportFormat::Json => {
                if self.rows > 0 {
                    writeln!(self.out, ",")?;
                }
                write!(
                    self.out,
                    "  {}",
                    serde_json::to_string(r).unwrap_or_default()
                )?;
            }
            ReportFormat::Table => {
                let enc = match (&r.encoding, r.plaintext, &r.decrypt_error) {
                    (Encoding::Encrypted { provider, .. }, Some(plain), _) => {
                        format!("{provider}>{plain}")
                    }
                    (Encoding::Encrypted { provider, .. }, None, Some(_)) => {
                        format!("enc:{provider}!")
                    }
                    (Encoding::Encrypted { provider, .. }, ..) => format!("enc:{provider}"),
                    (e, ..) => e.name().to_string(),
                };
                // Names come from the file: escaped, so none can move the
                // cursor or start a line of its own.
                let dash = |s: &Option<String>| {
                    s.as_deref()
                        .map_or_else(|| "-".into(), |s| escape_controls(s).into_owned())
                };
                let name = escape_controls(r.name.as_deref().unwrap_or(&r.key)).into_owned();
                let mut last = r.deleted_at.map(|d| d.to_string()).unwrap_or_default();
                if self.from {
                    if self.deleted {
                        last = format!("{last:<10} ");
                    }
                    last.push_str(&escape_controls(r.from.as_deref().unwrap_or("-")));
                }
                writeln!(
                    self.out,
                    "{:<8} {:<28} {:<20} {:<40} {:>9} {:<10} {}",
                    r.mod_revision,
                    dash(&r.resource),
                    dash(&r.namespace),
                    name,
                    r.size,
                    enc,
                    last
                )?;
                // Stream: a person watching sees lines as they are found.
                if self.rows < 64 || self.rows.is_multiple_of(256) {
                    self.out.flush()?;
                }
            }
        }
        self.rows += 1;
        Ok(())
    }

    fn footer(&mut self) -> std::io::Result<()> {
        self.header()?;
        if self.format == ReportFormat::Json {
            if self.rows > 0 {
                writeln!(self.out)?;
            }
            writeln!(self.out, "]")?;
        }
        self.out.flush()
    }
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    args.remote.configure();
    let decryptor = args.decrypt.decryptor(&args.opts.prefix)?;
    let view = args.salvage.view(&args.snapshot, &args.opts.prefix)?;
    let query = Query {
        revision: args.revision,
        deleted: args.deleted,
        key_prefix: args.key_prefix.as_deref(),
        resource: args.resource.as_deref(),
        namespace: args.namespace.as_deref(),
        prefix: &args.opts.prefix,
    };
    let mut printer = Printer {
        format: args.write_out,
        deleted: args.deleted,
        from: view.is_some(),
        headed: false,
        rows: 0,
        out: std::io::BufWriter::with_capacity(64 << 10, std::io::stdout().lock()),
    };
    #[cfg(feature = "remote")]
    if view.is_none()
        && let Some(mut listed) = by_ranges(&args.snapshot, &query, &decryptor)
    {
        for e in &listed.decrypt_errors {
            say!("etcdsnap: {e}");
        }
        if args.sort == Sort::Key {
            listed.rows.sort_by(|a, b| a.key.cmp(&b.key));
        }
        for row in &listed.rows {
            printer.row(row)?;
        }
        printer.footer()?;
        return Ok(Outcome::Ok);
    }
    let mut file = None;
    let db = view_or_file(&view, &args.snapshot, &mut file)?;
    let ks = KeySpace::open(&db)?;
    let mut buffered: Vec<Row> = Vec::new();
    let mut io_err: Option<std::io::Error> = None;
    list(
        &ks,
        &query,
        &decryptor,
        &mut |mut row| {
            if let Some(v) = &view {
                row.from = Some(v.origin(row.revision).map_or("-".into(), |o| o.to_string()));
            }
            if args.sort == Sort::Key {
                buffered.push(row);
                return ControlFlow::Continue(());
            }
            match printer.row(&row) {
                Ok(()) => ControlFlow::Continue(()),
                Err(e) => {
                    io_err = Some(e);
                    ControlFlow::Break(())
                }
            }
        },
        &mut |e| say!("etcdsnap: {e}"),
    )?;
    if let Some(e) = io_err {
        return Err(e.into());
    }
    buffered.sort_by(|a, b| a.key.cmp(&b.key));
    for row in &buffered {
        printer.row(row)?;
    }
    printer.footer()?;
    Ok(salvage_outcome(view.as_ref(), Outcome::Ok))
}

/// The listing of a bucket's object under a key prefix, read by ranges
/// through its key index (`etcdsnap::lookup::ranged`): the rows, and the
/// values that did not decrypt. `None` when that cannot answer — no key
/// prefix, no index, compressed, a budget exceeded, an error — and the
/// object is then read whole, which answers (or fails) as for a local file.
#[cfg(feature = "remote")]
fn by_ranges(
    snapshot: &SnapshotPath,
    query: &Query<'_>,
    decryptor: &etcdsnap::kube::decrypt::Decryptor,
) -> Option<etcdsnap::lookup::list::Listed> {
    use etcdsnap::lookup::{Select, list::list_records, ranged};
    let key_prefix = query.key_prefix()?;
    let r = ranged::open(snapshot)?;
    let under = |k: &[u8]| k.starts_with(key_prefix.as_bytes());
    ranged::lookup(
        &r,
        Select::Matching(&under),
        &super::render::index_event,
        |ks, records, _| list_records(ks, records, query, decryptor),
    )?
    .ok()?
}
