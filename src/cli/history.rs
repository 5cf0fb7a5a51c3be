//! `etcdsnap history`: every revision of one key that the snapshot still holds.

use anyhow::bail;

use super::args::{
    DecryptArgs, IndexOpts, RemoteArgs, ReportFormat, SalvageOpts, SnapshotPath, db,
    salvage_outcome,
};
use super::render::index_event;
use super::{Outcome, out};
use etcdsnap::kube::decrypt::Decryptor;
use etcdsnap::lookup::history::{History, history};
use etcdsnap::lookup::{Finder, Wanted};
use etcdsnap::mvcc::keyspace::KeySpace;
use etcdsnap::report::{Align, Table, escape_bytes, escape_controls};
use etcdsnap::salvage::view::View;

/// List every revision of one key that the snapshot still holds
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  etcdsnap history snapshot.db /registry/deployments/default/web\n  etcdsnap history snapshot.db deploy web -n default\n  etcdsnap get snapshot.db /registry/deployments/default/web --revision 41\n  etcdsnap history damaged.db deploy web -n default --salvage\n\nEnvironment:\n  ETCDSNAP_CACHE_DIR  where key indexes are kept (see --no-index)"
)]
pub struct Args {
    /// Snapshot file (`-` for standard input; zstd/gzip/zip are detected).
    /// Compressed input is inflated, and standard input copied, into an
    /// unnamed temporary file in $TMPDIR (else /tmp); inflation stops where the
    /// db ends
    snapshot: SnapshotPath,
    /// An etcd key (used as is when it starts with `/` or comes without NAME),
    /// or a resource as kubectl names it (pods, deploy, deployments.apps,
    /// widgets.example.com …) followed by NAME, as `get` takes them
    target: String,
    /// The object's name (with a resource)
    name: Option<String>,
    /// Namespace (with a namespaced resource; default "default")
    #[arg(short, long)]
    namespace: Option<String>,
    /// kube-apiserver's --etcd-prefix (OpenShift: /kubernetes.io); with
    /// RESOURCE NAME only
    #[arg(long, requires = "name")]
    prefix: Option<String>,
    /// Output format
    #[arg(short = 'w', long = "write-out", value_enum, default_value = "table")]
    write_out: ReportFormat,
    #[command(flatten)]
    index: IndexOpts,
    #[command(flatten)]
    decrypt: DecryptArgs,
    #[command(flatten)]
    salvage: SalvageOpts,
    #[command(flatten)]
    remote: RemoteArgs,
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    args.remote.configure();
    let wanted = Wanted::from_args(
        &args.target,
        args.name.as_deref(),
        args.namespace.as_deref(),
    )?;
    let decryptor = args.decrypt.any_prefix()?;
    let prefix = args.prefix.clone().unwrap_or_else(|| "/registry".into());
    if let Some(view) = args.salvage.view(&args.snapshot, &prefix)? {
        let db = etcdsnap::bolt::Db::open(view.db())?;
        let ks = KeySpace::open(&db)?;
        let matches = |k: &[u8]| wanted.matches(k, &prefix);
        let finder = Finder::scanning(&ks, &index_event);
        let shown = finder.lookup_then(wanted.select(&matches), |records, _| {
            show(&args, &args.snapshot, Some(&view), &ks, &decryptor, records)
        })??;
        return Ok(salvage_outcome(Some(&view), shown));
    }
    let matches = |k: &[u8]| wanted.matches(k, &prefix);
    #[cfg(feature = "remote")]
    if !args.index.no_index
        && let Some(r) = etcdsnap::lookup::ranged::open(&args.snapshot)
        && let Some(outcome) = etcdsnap::lookup::ranged::lookup(
            &r,
            wanted.select(&matches),
            &index_event,
            |ks, records, _| show(&args, r.file.path(), None, ks, &decryptor, records),
        )
    {
        return outcome;
    }
    let file = args.index.open_snapshot(&args.snapshot)?;
    let db = db(&file)?;
    let ks = KeySpace::open(&db)?;
    let finder = Finder::new(&file, &ks, !args.index.no_index, &index_event)?;
    finder.lookup_then(wanted.select(&matches), |records, _| {
        show(&args, file.path(), None, &ks, &decryptor, records)
    })?
}

fn show(
    args: &Args,
    path: &std::path::Path,
    view: Option<&View>,
    ks: &KeySpace<'_, '_>,
    decryptor: &Decryptor,
    records: &[etcdsnap::mvcc::keyspace::Record<'_>],
) -> anyhow::Result<Outcome> {
    let report = history(records, decryptor, ks.compact_revision);
    for e in &report.decrypt_errors {
        say!("etcdsnap: {e}");
    }
    let h = match report.history {
        Ok(h) => h,
        Err(several) => bail!("{} {several}", asked(args)),
    };
    let Some(mut h) = h else {
        say!(
            "etcdsnap: {}: {}: not found in the snapshot",
            path.display(),
            asked(args)
        );
        return Ok(Outcome::Failed);
    };
    if let Some(v) = view {
        for r in &mut h.revisions {
            r.from = Some(v.origin(r.revision).map_or("-".into(), |o| o.to_string()));
        }
    }
    match args.write_out {
        ReportFormat::Json => out(&(serde_json::to_string_pretty(&h)? + "\n"))?,
        ReportFormat::Table => out(&table(&h))?,
    }
    Ok(Outcome::Ok)
}

/// The history as a table under its key.
fn table(h: &History) -> String {
    let mut headers = vec![
        "revision",
        "event",
        "create rev",
        "version",
        "lease",
        "size",
        "encoding",
    ];
    // A salvaged view: where each revision came from.
    let from = h.revisions.iter().any(|r| r.from.is_some());
    if from {
        headers.push("from");
    }
    let mut t = Table::new(&headers, Align::Left);
    for r in &h.revisions {
        let deleted = r.info.deleted;
        let mut row = vec![
            format!("{}", r.revision),
            if deleted { "DELETE" } else { "PUT" }.into(),
            if deleted {
                "-".into()
            } else {
                r.info.create_revision.to_string()
            },
            if deleted {
                "-".into()
            } else {
                r.info.version.to_string()
            },
            if r.info.lease == 0 {
                "-".into()
            } else {
                format!("{:x}", r.info.lease)
            },
            r.info.value_size.to_string(),
            r.encoding.clone(),
        ];
        if from {
            row.push(escape_controls(r.from.as_deref().unwrap_or("-")).into_owned());
        }
        t.row(row);
    }
    let mut s = format!("{}\n", escape_bytes(&h.raw_key));
    s.push_str(&t.render());
    if let Some(c) = h.compact_revision {
        s.push_str(&format!("history before revision {c} was compacted\n"));
    }
    s
}

/// The arguments as the user gave them, for messages.
fn asked(args: &Args) -> String {
    let mut s = escape_controls(&args.target).into_owned();
    if let Some(n) = &args.name {
        s.push(' ');
        s.push_str(&escape_controls(n));
    }
    if let (Some(_), Some(ns)) = (&args.name, &args.namespace) {
        s.push_str(" -n ");
        s.push_str(&escape_controls(ns));
    }
    s
}
