//! `etcdsnap catalog`: remember each backup (add), look back (list, show,
//! forget), and judge the newest against the ones before it (check). The
//! catalog is the library's ([`etcdsnap::catalog`]); this is its command line.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Subcommand, ValueEnum};

use super::args::{CatalogOpt, PrefixOpt, RemoteArgs};
use super::render::{added_text, verify_text};
use super::{Outcome, out};
use etcdsnap::catalog::entry::{Entry, check_entries, has_labels, parse_labels};
use etcdsnap::catalog::store::{Added, Store, add_read_drilled};
use etcdsnap::catalog::trend::{self, SeriesReport, labels_text, parse_max_drop};
use etcdsnap::check::facts;
use etcdsnap::check::junit;
use etcdsnap::check::policy::Policy;
use etcdsnap::remote::display_name;
use etcdsnap::remote::list::expand;
use etcdsnap::report::{Align, Table, escape_controls};

const EXAMPLES: &str = "The catalog records, per snapshot: its sha256, revision, compacted revision, keys, bytes \
in use, cluster ID and members, live objects per resource and per namespace, the verify result, labels and \
when it was added — figures and names, never values.

Series: entries with the same labels form one series (a cluster ID change inside it fails `check`); \
entries without labels form one series per cluster ID. `check` compares each series' newest entry with \
the ones before it and fails when: objects of a resource dropped by more than --max-drop below the most \
any of the last 7 entries that verified held (so a drop that lasts keeps failing for a week of nightly \
entries; the finding names the entry compared with), a namespace any of them had vanished, the revision \
went backwards, the cluster ID or member set changed, the bytes in use shrank \
below 50 % of the entry before while the revision grew, or the newest entry did not verify.

Examples:
  etcdsnap catalog add /backups/snap-0200.db --label cluster=prod
  etcdsnap catalog list --label cluster=prod
  etcdsnap catalog show 3f2a9c1b
  etcdsnap catalog check --max-drop 10% --label cluster=prod
  etcdsnap check /backups/snap-0200.db --catalog /backups/catalog.redb --label cluster=prod -w junit

Catalog file: --catalog, else $ETCDSNAP_CATALOG, else $XDG_DATA_HOME/etcdsnap/catalog.redb, else \
~/.local/share/etcdsnap/catalog.redb. Only `add` (and `check --catalog`) create it. A damaged or foreign \
file is reported and left as it is.

Exit codes: 0 ok; 1 `check` found a backup that looks wrong, or `show`/`forget` found no such entry; \
2 usage or I/O error, a damaged or foreign catalog, a lock not released in time.";

/// Remember backups and compare the newest with the ones before it
#[derive(clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    #[command(subcommand)]
    command: Sub,
    #[command(flatten)]
    catalog: CatalogOpt,
}

/// `catalog add --drill`: a restore drill of each snapshot added.
#[derive(clap::Args, Clone, Default)]
struct DrillArgs {
    /// Also run the restore drill (`etcdsnap drill`) on each snapshot added
    /// and record its result (`catalog check` then judges the newest
    /// entry's: the rule "trend drill")
    #[cfg(feature = "live")]
    #[arg(long)]
    drill: bool,
    /// With --drill: the etcd binary (default: etcd on PATH)
    #[cfg(feature = "live")]
    #[arg(long, value_name = "BIN", requires = "drill")]
    etcd: Option<PathBuf>,
    /// With --drill: also boot this kube-apiserver on the drill's member
    #[cfg(feature = "live")]
    #[arg(long, value_name = "BIN", requires = "drill")]
    kube_apiserver: Option<PathBuf>,
}

impl DrillArgs {
    /// Runs the drill of `path` when asked, as the catalog records it.
    #[cfg(feature = "live")]
    fn run(
        &self,
        path: &std::path::Path,
        prefix: &str,
    ) -> anyhow::Result<Option<etcdsnap::catalog::entry::DrillResult>> {
        use etcdsnap::live::cluster::Verdict;
        if !self.drill {
            return Ok(None);
        }
        let req = etcdsnap::drill::Request {
            snapshot: path.to_path_buf(),
            etcd: self.etcd.clone(),
            kube_apiserver: self.kube_apiserver.clone(),
            prefix: prefix.to_string(),
            timeout: std::time::Duration::from_secs(60),
            work_dir: None,
        };
        let report = etcdsnap::drill::drill(&req, &mut |_| {})
            .with_context(|| format!("{}: the restore drill", display_name(path)))?;
        Ok(Some(etcdsnap::catalog::entry::DrillResult {
            passed: report.exit_code() == 0,
            etcd_version: report.etcd_version.clone(),
            kube_apiserver_version: report.kube_apiserver_version.clone(),
            not_passed: report
                .findings
                .iter()
                .filter(|f| f.verdict != Verdict::Pass && f.verdict != Verdict::Skipped)
                .map(|f| format!("{}: {}", f.check, f.detail))
                .collect(),
        }))
    }

    /// Without the `live` feature there is no drill.
    #[cfg(not(feature = "live"))]
    fn run(
        &self,
        _path: &std::path::Path,
        _prefix: &str,
    ) -> anyhow::Result<Option<etcdsnap::catalog::entry::DrillResult>> {
        Ok(None)
    }
}

#[derive(Subcommand)]
enum Sub {
    /// Record snapshots (adding the same file twice is a no-op)
    Add {
        /// Snapshot files (zstd/gzip/zip are detected; `s3://BUCKET/KEY` and
        /// `http(s)://URL` are streamed once into a private spool file);
        /// `s3://BUCKET/PREFIX/`, ending in `/`, is every snapshot object
        /// under the prefix not yet in the catalog, oldest first (an object
        /// added before is known by its URL, ETag or version, and size, and
        /// not read again)
        #[arg(required = true)]
        snapshots: Vec<PathBuf>,
        /// A label KEY=VALUE (repeatable); entries with the same labels form a series
        #[arg(long = "label", value_name = "KEY=VALUE")]
        labels: Vec<String>,
        #[command(flatten)]
        prefix: PrefixOpt,
        #[command(flatten)]
        remote: RemoteArgs,
        #[command(flatten)]
        drill: DrillArgs,
    },
    /// List the entries, oldest first
    List {
        /// Only entries with this label (repeatable)
        #[arg(long = "label", value_name = "KEY=VALUE")]
        labels: Vec<String>,
        #[arg(short = 'w', long = "write-out", value_enum, default_value = "table")]
        write_out: ListFormat,
    },
    /// Show one entry: its sha256 or a unique prefix of it
    Show {
        sha: String,
        #[arg(short = 'w', long = "write-out", value_enum, default_value = "table")]
        write_out: ListFormat,
    },
    /// Remove one entry: its sha256 or a unique prefix of it
    Forget { sha: String },
    /// Add entries as `list -w json` prints them (for tests and benchmarks)
    #[command(hide = true)]
    ImportEntries {
        /// A JSON file: an array of entries
        file: PathBuf,
    },
    /// Compare each series' newest entry with the ones before it
    Check {
        /// Largest drop allowed in a resource's objects
        #[arg(long, default_value = "20%", value_name = "PERCENT")]
        max_drop: String,
        /// Only series whose labels include this one (repeatable)
        #[arg(long = "label", value_name = "KEY=VALUE")]
        labels: Vec<String>,
        #[arg(short = 'w', long = "write-out", value_enum, default_value = "text")]
        write_out: CheckFormat,
    },
    /// Draw each series over time as one self-contained HTML page: objects
    /// per resource, bytes in use against file size, revision rate, and
    /// every trend rule's verdict for every entry
    Report {
        /// Write the page to this file (atomically)
        #[arg(long, value_name = "FILE", required = true)]
        html: PathBuf,
        /// Only series whose labels include this one (repeatable)
        #[arg(long = "label", value_name = "KEY=VALUE")]
        labels: Vec<String>,
        /// Largest drop allowed in a resource's objects (as `check`)
        #[arg(long, default_value = "20%", value_name = "PERCENT")]
        max_drop: String,
        /// Resources drawn per series (those with the most objects)
        #[arg(long, default_value_t = 6)]
        top: usize,
        /// Also write each chart as an SVG file into DIR (for wikis and chat):
        /// objects-SERIES.svg, bytes-SERIES.svg, rate-SERIES.svg
        #[arg(long, value_name = "DIR")]
        svg_dir: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ListFormat {
    Table,
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum CheckFormat {
    Text,
    Json,
    Junit,
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    let catalog = &args.catalog;
    match args.command {
        Sub::Add {
            snapshots,
            labels,
            prefix,
            remote,
            drill,
        } => {
            remote.configure();
            add(catalog, &snapshots, &labels, &prefix.prefix, &drill)
        }
        Sub::List { labels, write_out } => list(catalog, &labels, write_out),
        Sub::Show { sha, write_out } => show(catalog, &sha, write_out),
        Sub::Forget { sha } => {
            let store = catalog.open(false)?;
            let Some((full, _)) = lookup(&store, &sha)? else {
                return Ok(Outcome::Failed);
            };
            store.forget(&full)?;
            say!("forgot {full} ({})", store.path().display());
            Ok(Outcome::Ok)
        }
        Sub::ImportEntries { file } => import(catalog, &file),
        Sub::Check {
            max_drop,
            labels,
            write_out,
        } => check(catalog, &max_drop, &labels, write_out),
        Sub::Report {
            html,
            labels,
            max_drop,
            top,
            svg_dir,
        } => report(catalog, &html, &labels, &max_drop, top, svg_dir.as_deref()),
    }
}

/// `catalog report --html`: the page of every series the labels select;
/// exit 0 once the page is written (the gate is `catalog check`).
fn report(
    catalog: &CatalogOpt,
    page: &std::path::Path,
    labels: &[String],
    max_drop: &str,
    top: usize,
    svg_dir: Option<&std::path::Path>,
) -> anyhow::Result<Outcome> {
    let max_drop = parse_max_drop(max_drop).map_err(anyhow::Error::msg)?;
    let filter = parse_labels(labels).map_err(anyhow::Error::msg)?;
    let store = catalog.open_read()?;
    let series = etcdsnap::catalog::report::series(&store, &filter, max_drop)?;
    if series.is_empty() {
        bail!(
            "{}: no entries{} to report",
            store.path().display(),
            if filter.is_empty() {
                String::new()
            } else {
                format!(" with labels {}", labels_text(&filter))
            }
        );
    }
    let html = etcdsnap::catalog::report::html(&series, top.max(1));
    etcdsnap::durable::write_atomic(page, html.as_bytes())?;
    if let Some(d) = svg_dir {
        std::fs::create_dir_all(d)
            .map_err(|e| anyhow::anyhow!("{}: cannot create the directory: {e}", d.display()))?;
        for (name, svg) in etcdsnap::catalog::report::svgs(&series, top.max(1)) {
            etcdsnap::durable::write_atomic(&d.join(name), svg.as_bytes())?;
        }
    }
    let entries: usize = series.iter().map(|s| s.entries.len()).sum();
    let failed: usize = series
        .iter()
        .map(|s| s.entries.iter().filter(|e| !e.passed).count())
        .sum();
    out(&format!(
        "{}: {} series, {entries} entries, {failed} with a failed trend rule\n",
        escape_controls(&page.display().to_string()),
        series.len()
    ))?;
    Ok(Outcome::Ok)
}

fn add(
    catalog: &CatalogOpt,
    snapshots: &[PathBuf],
    labels: &[String],
    prefix: &str,
    drill: &DrillArgs,
) -> anyhow::Result<Outcome> {
    let labels = parse_labels(labels).map_err(anyhow::Error::msg)?;
    // A damaged or foreign catalog is said before any snapshot is
    // read; the lock is then held only while an entry is written.
    let known = catalog.open(true)?.remote_objects()?;
    for source in expand(snapshots, None)? {
        let path = &source.path;
        if let Some(l) = &source.listed {
            let url = display_name(path);
            let etag = l.etag.as_deref();
            let found = known
                .iter()
                .find(|(r, _)| r.is(&url, etag, l.version.as_deref(), l.size));
            if let Some((_, sha)) = found {
                say!(
                    "{} ({}) is already in {}: same ETag and size, not read again",
                    &sha[..12.min(sha.len())],
                    escape_controls(&url),
                    catalog.path()?.display()
                );
                continue;
            }
        }
        let (file, done) =
            etcdsnap::verify::open_verifying(path).with_context(|| display_name(path))?;
        let read = facts::read(&file, done, &Policy::default(), prefix);
        let drilled = drill.run(path, prefix)?;
        let store = catalog.open(true)?;
        let (entry, added) = add_read_drilled(&store, &file, &read, &labels, drilled)?;
        say!("{}", added_text(&store, &entry, added));
    }
    Ok(Outcome::Ok)
}

fn list(catalog: &CatalogOpt, labels: &[String], write_out: ListFormat) -> anyhow::Result<Outcome> {
    let filter = parse_labels(labels).map_err(anyhow::Error::msg)?;
    let store = catalog.open_read()?;
    let entries: Vec<Entry> = store
        .entries()?
        .into_iter()
        .map(|(_, e)| e)
        .filter(|e| has_labels(e, &filter))
        .collect();
    match write_out {
        ListFormat::Json => out(&(serde_json::to_string_pretty(&entries)? + "\n"))?,
        ListFormat::Table => {
            let mut t = Table::new(
                &[
                    "sha256", "added", "revision", "objects", "verify", "cluster", "labels", "path",
                ],
                Align::Left,
            );
            for e in &entries {
                t.row(vec![
                    e.sha256[..12.min(e.sha256.len())].to_string(),
                    time_text(e.added),
                    e.revision.to_string(),
                    e.total_objects().to_string(),
                    verify_text(e),
                    e.cluster_id.clone().unwrap_or_default(),
                    labels_text(&e.labels),
                    escape_controls(&e.path).into_owned(),
                ]);
            }
            out(&t.render())?;
        }
    }
    Ok(Outcome::Ok)
}

fn show(catalog: &CatalogOpt, sha: &str, write_out: ListFormat) -> anyhow::Result<Outcome> {
    let store = catalog.open_read()?;
    let Some((_, seq)) = lookup(&store, sha)? else {
        return Ok(Outcome::Failed);
    };
    let Some(e) = store.get(seq)? else {
        return Ok(Outcome::Failed);
    };
    match write_out {
        ListFormat::Json => out(&(serde_json::to_string_pretty(&e)? + "\n"))?,
        ListFormat::Table => out(&show_text(&e))?,
    }
    Ok(Outcome::Ok)
}

fn import(catalog: &CatalogOpt, file: &std::path::Path) -> anyhow::Result<Outcome> {
    // Entries are small; a long list is still far below this.
    let text = etcdsnap::input::read_bounded(file, 64 * etcdsnap::input::SMALL_FILE_LIMIT)
        .with_context(|| file.display().to_string())?;
    let entries: Vec<Entry> = serde_json::from_slice(&text)
        .with_context(|| format!("{}: not a list of catalog entries", file.display()))?;
    check_entries(&entries).map_err(|why| anyhow::anyhow!("{}: {why}", file.display()))?;
    let store = catalog.open(true)?;
    let added = store.add_all(&entries)?;
    let new = added.iter().filter(|a| matches!(a, Added::New(_))).count();
    say!(
        "added {new} of {} entries to {}",
        entries.len(),
        store.path().display()
    );
    Ok(Outcome::Ok)
}

fn check(
    catalog: &CatalogOpt,
    max_drop: &str,
    labels: &[String],
    write_out: CheckFormat,
) -> anyhow::Result<Outcome> {
    let max_drop = parse_max_drop(max_drop).map_err(anyhow::Error::msg)?;
    let filter = parse_labels(labels).map_err(anyhow::Error::msg)?;
    let store = catalog.open_read()?;
    let heads = store.heads()?;
    let reports = trend::check(&heads, &filter, max_drop, &mut |seq| store.entry(seq))?;
    if reports.is_empty() {
        bail!(
            "{}: no entries{} to check",
            store.path().display(),
            if filter.is_empty() {
                String::new()
            } else {
                format!(" with labels {}", labels_text(&filter))
            }
        );
    }
    print_reports(&reports, write_out)?;
    Ok(if reports.iter().all(|r| r.passed) {
        Outcome::Ok
    } else {
        Outcome::Failed
    })
}

fn time_text(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}

/// The entry a sha256 or prefix names; `None` (said on stderr) when none.
fn lookup(store: &Store, sha: &str) -> anyhow::Result<Option<(String, u64)>> {
    let prefix = sha.to_ascii_lowercase();
    if prefix.len() < 4 || prefix.len() > 64 || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("{sha:?}: expected a sha256 or a prefix of at least 4 hex digits");
    }
    let mut found = store.find(&prefix)?;
    match found.len() {
        0 => {
            say!("etcdsnap: {}: no entry {prefix}", store.path().display());
            Ok(None)
        }
        1 => Ok(found.pop()),
        n => bail!(
            "{prefix}: {n} entries start with it ({}); give more digits",
            found
                .iter()
                .map(|(s, _)| &s[..16.min(s.len())])
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn show_text(e: &Entry) -> String {
    let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    let mut s = String::new();
    let mut line = |k: &str, v: String| s.push_str(&format!("{k:<20}{}\n", escape_controls(&v)));
    line("sha256", e.sha256.clone());
    line("path", e.path.clone());
    line("added", time_text(e.added));
    line("labels", labels_text(&e.labels));
    line("verify", verify_text(e));
    if let Some(d) = &e.drill {
        line(
            "drill",
            if d.passed {
                format!("passed (etcd {})", d.etcd_version)
            } else {
                format!(
                    "FAILED (etcd {}): {}",
                    d.etcd_version,
                    d.not_passed.join("; ")
                )
            },
        );
    }
    line("revision", e.revision.to_string());
    line(
        "compacted revision",
        opt(e.compacted_revision.map(|r| r.to_string())),
    );
    line("total keys", opt(e.total_keys.map(|r| r.to_string())));
    line("live keys", opt(e.live_keys.map(|r| r.to_string())));
    line("file size", e.file_size.to_string());
    line("bytes in use", opt(e.db_size_in_use.map(|r| r.to_string())));
    line("cluster ID", opt(e.cluster_id.clone()));
    for m in &e.members {
        line(
            "member",
            format!("{} {} {}", m.id, m.name, m.peer_urls.join(",")),
        );
    }
    let mut t = Table::new(&["resource", "objects"], Align::Left);
    for (r, n) in &e.objects {
        t.row(vec![r.clone(), n.to_string()]);
    }
    s.push('\n');
    s.push_str(&t.render());
    let mut t = Table::new(&["namespace", "objects", "by resource"], Align::Left);
    for (ns, per) in &e.namespaces {
        t.row(vec![
            ns.clone(),
            per.values().sum::<u64>().to_string(),
            per.iter()
                .map(|(r, n)| format!("{r} {n}"))
                .collect::<Vec<_>>()
                .join(", "),
        ]);
    }
    s.push('\n');
    s.push_str(&t.render());
    s
}

fn print_reports(reports: &[SeriesReport], format: CheckFormat) -> anyhow::Result<()> {
    match format {
        CheckFormat::Json => out(&(serde_json::to_string_pretty(reports)? + "\n")),
        CheckFormat::Junit => {
            let pairs: Vec<(String, Vec<_>)> = reports
                .iter()
                .map(|r| (format!("{} ({})", r.series, r.path), r.rules.clone()))
                .collect();
            out(&junit::report(&pairs)?)
        }
        CheckFormat::Text => {
            let mut s = String::new();
            for r in reports {
                s.push_str(&format!(
                    "series {}: {} (newest: {} {}, revision {})\n",
                    escape_controls(&r.series),
                    if r.passed { "PASSED" } else { "FAILED" },
                    &r.sha256[..12.min(r.sha256.len())],
                    escape_controls(&r.path),
                    r.revision
                ));
                for rule in &r.rules {
                    s.push_str(&format!(
                        "  {} {}: {}\n",
                        if rule.passed { "ok  " } else { "FAIL" },
                        rule.rule,
                        escape_controls(&rule.message)
                    ));
                }
            }
            out(&s)
        }
    }
}
