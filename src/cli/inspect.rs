//! `etcdsnap inspect`: the triage view of a snapshot (see [`etcdsnap::inspect`]),
//! as tables for a person or one JSON document.

use super::args::{PrefixOpt, RemoteArgs, ReportFormat, SnapshotPath, db, open};
use super::{Outcome, out};
use etcdsnap::input::refuse_damaged;
use etcdsnap::inspect::{InspectError, Inspection, Named, Options, Usage, inspect};
use etcdsnap::report::{Align, Table, humanize_bytes};

/// Triage a snapshot: cluster, what fills it, what defrag/compaction give back, security
#[derive(clap::Args)]
#[command(
    long_about = "Reads the snapshot once, on all cores, and prints: the header (revision, compaction, consistent \
index, term, versions, cluster ID, members, alarms); per resource and per namespace the live objects and bytes and \
the revisions kept in history; the largest objects; events and their share of the file; leases; space (pages in use \
and free, what `etcdctl defrag` would give back, what a compaction at the current revision would remove, and the \
commands to run); security (Secrets stored unencrypted, encrypted values per provider and key name, values that do \
not decode). Sizes of objects are value bytes, as `ls` shows them. A snapshot that `verify` finds damaged \
(its sha256 trailer, bbolt pages, etcd's buckets) is refused with exit 1: its figures would mislead.",
    after_help = "Examples:\n  etcdsnap inspect snapshot.db\n  etcdsnap inspect snapshot.db --top 20\n  etcdsnap inspect snapshot.db -n kube-system\n  etcdsnap inspect snapshot.db -w json"
)]
pub struct Args {
    /// Snapshot file (`-` for standard input; zstd/gzip/zip are detected;
    /// `s3://BUCKET/KEY`, `gs://BUCKET/KEY`, `az://CONTAINER/KEY` and `http(s)://URL` are
    /// streamed once into a private spool file first)
    snapshot: SnapshotPath,
    /// How many namespaces, objects and leases the top lists show
    #[arg(long, default_value_t = 10)]
    top: usize,
    /// Only this namespace's objects in the resource, object and security figures
    #[arg(short, long)]
    namespace: Option<String>,
    /// Output format
    #[arg(short = 'w', long = "write-out", value_enum, default_value = "table")]
    write_out: ReportFormat,
    /// Also write the inspection as one self-contained HTML page (a map of
    /// where the bytes go, the space story, sortable tables, the security
    /// figures; no network request of any kind) to FILE
    #[arg(long, value_name = "FILE")]
    html: Option<std::path::PathBuf>,
    /// Also write the page's charts as SVG files into DIR (for wikis and
    /// chat): space-map.svg
    #[arg(long, value_name = "DIR")]
    svg_dir: Option<std::path::PathBuf>,
    #[command(flatten)]
    opts: PrefixOpt,
    #[command(flatten)]
    remote: RemoteArgs,
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    args.remote.configure();
    let file = open(&args.snapshot)?;
    // Figures of a damaged file would look plausible: `verify`'s checks run
    // beside the reading, and their verdict comes first.
    let (intact, report) = rayon::join(
        || refuse_damaged(&file),
        || -> anyhow::Result<Inspection> {
            let db = db(&file)?;
            inspect(
                &db,
                &Options {
                    prefix: args.opts.prefix.clone(),
                    top: args.top,
                    namespace: args.namespace.clone(),
                },
            )
            // The inner error, so that exit_code sees a damaged file by its type.
            .map_err(|e| match e {
                InspectError::Read(r) => anyhow::Error::from(r),
                InspectError::KeySpace(k) => anyhow::Error::from(k),
            })
        },
    );
    intact?;
    let report = report?;
    if let Some(p) = &args.html {
        let page = etcdsnap::inspect::html::render(
            &report,
            &etcdsnap::remote::display_name(&args.snapshot),
        );
        etcdsnap::durable::write_atomic(p, page.as_bytes())?;
    }
    if let Some(d) = &args.svg_dir {
        std::fs::create_dir_all(d)
            .map_err(|e| anyhow::anyhow!("{}: cannot create the directory: {e}", d.display()))?;
        etcdsnap::durable::write_atomic(
            &d.join("space-map.svg"),
            etcdsnap::inspect::html::space_map_svg(&report).as_bytes(),
        )?;
    }
    match args.write_out {
        ReportFormat::Json => out(&(serde_json::to_string_pretty(&report)? + "\n"))?,
        ReportFormat::Table => out(&render(&report))?,
    }
    Ok(Outcome::Ok)
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map_or_else(|| "-".into(), T::to_string)
}

fn dash(s: String) -> String {
    if s.is_empty() { "-".into() } else { s }
}

fn usage_table(first: &str, rows: &[Named<Usage>]) -> String {
    let mut t = Table::new(
        &[
            first,
            "live objects",
            "live bytes",
            "history revisions",
            "history bytes",
            "largest object",
        ],
        Align::Left,
    );
    for r in rows {
        let u = &r.usage;
        t.row(vec![
            r.name.clone(),
            u.live_objects.to_string(),
            humanize_bytes(u.live_bytes),
            u.history_revisions.to_string(),
            humanize_bytes(u.history_bytes),
            u.largest.as_ref().map_or_else(
                || "-".into(),
                |l| format!("{} ({})", l.key, humanize_bytes(l.bytes)),
            ),
        ]);
    }
    t.render()
}

/// The `inspect` report as text, section by section.
pub fn render(r: &Inspection) -> String {
    let mut s = cluster_section(r);
    s.push_str(&usage_sections(r));
    s.push_str(&events_and_leases(r));
    s.push_str(&space_section(r));
    s.push_str(&security_section(r));
    s
}

/// The header: revision, versions, cluster ID, alarms, members, notes.
fn cluster_section(r: &Inspection) -> String {
    let mut s = String::new();
    let h = &r.header;
    s.push_str("Cluster\n");
    let mut t = Table::new(&["field", "value"], Align::Left);
    t.row(vec!["revision".into(), h.revision.to_string()]);
    t.row(vec![
        "compacted revision".into(),
        opt(&h.compacted_revision),
    ]);
    t.row(vec!["consistent index".into(), opt(&h.consistent_index)]);
    t.row(vec!["term".into(), opt(&h.term)]);
    t.row(vec!["storage version".into(), opt(&h.storage_version)]);
    t.row(vec!["cluster version".into(), opt(&h.cluster_version)]);
    t.row(vec![
        "cluster ID (from member IDs)".into(),
        opt(&h.cluster_id),
    ]);
    let alarms = if h.alarms.is_empty() {
        "none".to_string()
    } else {
        h.alarms
            .iter()
            .map(|a| format!("{} on {}", a.alarm, a.member_id))
            .collect::<Vec<_>>()
            .join(", ")
    };
    t.row(vec!["alarms".into(), alarms]);
    s.push_str(&t.render());
    if !h.members.is_empty() {
        let mut t = Table::new(
            &["id", "name", "peer urls", "client urls", "learner"],
            Align::Left,
        );
        for m in &h.members {
            t.row(vec![
                m.id.clone(),
                m.name.clone(),
                dash(m.peer_urls.join(",")),
                // etcd 3.5 keeps client URLs outside the db.
                dash(m.client_urls.join(",")),
                m.is_learner.to_string(),
            ]);
        }
        s.push_str(&t.render());
    }
    for n in &h.notes {
        s.push_str(&format!("note: {n}\n"));
    }
    s
}

/// What fills the keyspace: resources, namespaces, the largest objects.
fn usage_sections(r: &Inspection) -> String {
    let mut s = String::new();
    match &r.namespace {
        Some(ns) => s.push_str(&format!("\nResources (namespace {ns})\n")),
        None => s.push_str("\nResources\n"),
    }
    s.push_str(&usage_table("resource", &r.resources));
    s.push_str(&format!(
        "\nNamespaces (top {} of {})\n",
        r.namespaces.len(),
        r.namespace_count
    ));
    s.push_str(&usage_table("namespace", &r.namespaces));
    s.push_str(&format!(
        "\nLargest objects (top {})\n",
        r.largest_objects.len()
    ));
    let mut t = Table::new(&["key", "bytes"], Align::Left);
    for o in &r.largest_objects {
        t.row(vec![o.key.clone(), humanize_bytes(o.bytes)]);
    }
    s.push_str(&t.render());
    s
}

/// Events and leases, one line each.
fn events_and_leases(r: &Inspection) -> String {
    let mut s = String::new();
    let e = &r.events;
    s.push_str(&format!(
        "\nEvents: {} live ({}), {} revisions stored taking {} = {:.1} % of the file\n",
        e.events.live_objects,
        humanize_bytes(e.events.live_bytes),
        e.events.revisions,
        humanize_bytes(e.events.stored_bytes),
        e.share_of_file * 100.0
    ));
    let l = &r.leases;
    s.push_str(&format!(
        "Leases: {} (TTL min {} / median {} / max {} s), {} live keys attached{}\n",
        l.count,
        opt(&l.ttl_min),
        opt(&l.ttl_median),
        opt(&l.ttl_max),
        l.keys_attached,
        if l.keys_on_missing_leases > 0 {
            format!(
                ", {} on leases the file does not hold",
                l.keys_on_missing_leases
            )
        } else {
            String::new()
        }
    ));
    s
}

/// File size, pages, and what defrag and compaction give back.
fn space_section(r: &Inspection) -> String {
    let mut s = String::new();
    let sp = &r.space;
    s.push_str("\nSpace\n");
    let mut t = Table::new(&["field", "value"], Align::Left);
    t.row(vec![
        "file size".into(),
        format!(
            "{} ({} bytes)",
            humanize_bytes(sp.file_bytes),
            sp.file_bytes
        ),
    ]);
    t.row(vec![
        "pages".into(),
        format!("{} of {} bytes", sp.pages, sp.page_size),
    ]);
    t.row(vec!["pages in use".into(), opt(&sp.pages_in_use)]);
    t.row(vec!["pages free".into(), opt(&sp.free_pages)]);
    t.row(vec![
        "defrag gives back".into(),
        humanize_bytes(sp.defrag_gain_bytes),
    ]);
    t.row(vec![
        "history (compaction removes)".into(),
        format!(
            "{} revisions, {}",
            sp.history_revisions,
            humanize_bytes(sp.history_bytes)
        ),
    ]);
    t.row(vec![
        "compaction + defrag gives back".into(),
        humanize_bytes(sp.defrag_gain_bytes + sp.compaction_gain_bytes),
    ]);
    s.push_str(&t.render());
    s.push_str(&sp.advice);
    s.push('\n');
    s
}

/// Unencrypted Secrets, encrypted values per key, values that do not decode.
fn security_section(r: &Inspection) -> String {
    let mut s = String::new();
    let sec = &r.security;
    s.push_str("\nSecurity\n");
    if sec.unencrypted_secrets.is_empty() {
        s.push_str("Secrets stored unencrypted: none\n");
    } else {
        let total: u64 = sec.unencrypted_secrets.values().sum();
        let per: Vec<String> = sec
            .unencrypted_secrets
            .iter()
            .map(|(ns, n)| format!("{ns}: {n}"))
            .collect();
        s.push_str(&format!(
            "Secrets stored unencrypted: {total} ({})\n",
            per.join(", ")
        ));
    }
    if sec.encrypted.is_empty() {
        s.push_str("Encrypted values: none\n");
    } else {
        let mut t = Table::new(
            &["provider", "key name", "KMS key ID", "values"],
            Align::Left,
        );
        for e in &sec.encrypted {
            t.row(vec![
                e.provider.clone(),
                e.key_name.clone(),
                e.key_id.clone().unwrap_or_else(|| "-".into()),
                e.values.to_string(),
            ]);
        }
        s.push_str("Encrypted values\n");
        s.push_str(&t.render());
    }
    s.push_str(&format!(
        "Values that do not decode: {}\n",
        sec.undecodable_values
    ));
    for u in &sec.undecodable {
        s.push_str(&format!("  {}: {}\n", u.key, u.reason));
    }
    s
}
