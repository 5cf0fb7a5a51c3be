//! `etcdsnap diff`: what changed between two snapshots, or two revisions of
//! one, as objects and fields. The comparison is the library's
//! ([`etcdsnap::diff`]); this module reads the arguments, runs it on all cores
//! and prints.

use std::io::{IsTerminal, Write};

use anyhow::bail;
use serde::Serialize;

use super::args::{PrefixOpt, SnapshotPath, open};
use super::render::progress;
use super::{Outcome, STACK_SIZE};
use etcdsnap::diff::compare::{ObjectDiff, Options};
use etcdsnap::diff::keys::{Change, KeyChange};
use etcdsnap::diff::object::{Outcome as Counted, Tally};
use etcdsnap::diff::run::{Filter, compare_all, read_changes};
use etcdsnap::kube::resource::ResourceRef;
use etcdsnap::kube::value::detect;
use etcdsnap::lookup::ResourceCheck;
use etcdsnap::mvcc::keyspace::Record;
use etcdsnap::report::escape_bytes;

/// Show what changed between two snapshots (or two revisions of one)
#[derive(clap::Args)]
#[command(
    after_help = "Compares the live keys of OLD and NEW, grouped as objects by resource and namespace: added (+), \
removed (-), modified (~), and with --rewritten keys written again with the same bytes (=). Modified objects \
get a unified diff of their YAML; fields the server rewrites on its own (metadata.resourceVersion, generation, \
managedFields, status condition timestamps, a Lease's renewTime) are left out unless --all-fields, and an \
object that changed only there counts as noise only and is not printed. Secret values never appear without \
--show-secrets: which data keys changed is said instead.\n\nExamples:\n  etcdsnap diff last-night.db this-morning.db\n  \
etcdsnap diff old.db new.db --stat\n  etcdsnap diff old.db new.db --resource deploy -n prod\n  etcdsnap diff \
snapshot.db --from-revision 1200 --to-revision 1450 -n kube-system --name-only\n  etcdsnap diff old.db new.db -w json\n\n\
A snapshot that `verify` finds damaged (its sha256 trailer, bbolt pages, etcd's buckets) is refused: \
\"damaged\", exit 1, no differences printed. Snapshots of different clusters (member IDs giving different \
cluster IDs) are compared with a warning naming both IDs (on stderr; with -w json a first record \
{\"warning\", \"oldClusterId\", \"newClusterId\"}, and a \"warning\" field with --stat).\n\n\
Exit codes: 0 no differences, 1 differences or a damaged snapshot, 2 error."
)]
pub struct Args {
    /// The old snapshot (`-` for standard input; zstd/gzip/zip are detected)
    old: SnapshotPath,
    /// The new snapshot; with --from-revision, the key prefix instead
    new: Option<String>,
    /// Only keys starting with this prefix
    key_prefix: Option<String>,
    /// Compare two revisions of OLD: this one with --to-revision (default: the
    /// snapshot's revision); the second argument is then a key prefix
    #[arg(long)]
    from_revision: Option<i64>,
    /// With --from-revision: the newer revision
    #[arg(long, requires = "from_revision")]
    to_revision: Option<i64>,
    /// Only this resource (kubectl names: pods, deploy, widgets.example.com …)
    #[arg(long)]
    resource: Option<String>,
    /// Only this namespace
    #[arg(short, long)]
    namespace: Option<String>,
    /// Only the counts per resource and namespace
    #[arg(long, conflicts_with = "name_only")]
    stat: bool,
    /// One changed object per line: `+`, `-`, `~` (and `=` with --rewritten)
    #[arg(long)]
    name_only: bool,
    /// Output format (json: one record per changed object, with an RFC 6902
    /// patch from the old object to the new)
    #[arg(short = 'w', long = "write-out", value_enum, default_value = "text")]
    write_out: DiffFormat,
    /// Color the diff: auto (on a terminal, unless NO_COLOR is set), always, never
    #[arg(long, value_enum, default_value = "auto")]
    color: Color,
    /// Keep the fields the noise filter leaves out
    #[arg(long)]
    all_fields: bool,
    /// Show keys written again with the same bytes (hidden by default)
    #[arg(long)]
    rewritten: bool,
    /// Print Secret data instead of `<redacted: N bytes>`
    #[arg(long)]
    show_secrets: bool,
    /// Lines of context around each change
    #[arg(short = 'U', long, default_value = "3")]
    context: usize,
    #[command(flatten)]
    opts: PrefixOpt,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum DiffFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Color {
    Auto,
    Always,
    Never,
}

/// One side as named on the command line.
struct SideArg {
    path: SnapshotPath,
    revision: Option<i64>,
}

/// Runs `diff`. Exit codes are diff(1)'s, and a damaged snapshot is refused
/// with 1 too ("damaged", and no differences printed), as every command does.
pub fn run(args: Args) -> anyhow::Result<Outcome> {
    run_diff(args)
}

/// The cluster ID a snapshot's member IDs give, when it holds members.
fn cluster_id(db: &etcdsnap::bolt::Db<'_>) -> Option<String> {
    let buckets = etcdsnap::bolt::read::buckets(db).ok()?;
    etcdsnap::inspect::header::header(db, &buckets)
        .ok()?
        .cluster_id
}

fn run_diff(args: Args) -> anyhow::Result<Outcome> {
    let (old, new, key_prefix) = match args.from_revision {
        Some(r1) => {
            if args.key_prefix.is_some() {
                bail!("with --from-revision, give one snapshot and at most a key prefix");
            }
            (
                SideArg {
                    path: args.old.clone(),
                    revision: Some(r1),
                },
                None,
                args.new.clone(),
            )
        }
        None => {
            let Some(new) = &args.new else {
                bail!("give two snapshots (OLD NEW), or one with --from-revision");
            };
            (
                SideArg {
                    path: args.old.clone(),
                    revision: None,
                },
                Some(SideArg {
                    path: new.into(),
                    revision: None,
                }),
                args.key_prefix.clone(),
            )
        }
    };
    if let Some(n) = &new
        && n.path.as_os_str() == "-"
        && old.path.as_os_str() == "-"
    {
        bail!("only one snapshot can come from standard input");
    }
    let prefix = args.opts.prefix.clone();
    let old_file = open(&old.path)?;
    let new_file = match &new {
        Some(n) => Some(open(&n.path)?),
        None => None,
    };
    let filter = Filter {
        prefix: &prefix,
        key_prefix: key_prefix.as_deref(),
        resource: args.resource.as_deref(),
        namespace: args.namespace.as_deref(),
    };
    let read = read_changes(
        &old_file,
        old.revision,
        new_file.as_ref(),
        args.to_revision,
        &filter,
    )?;
    let clusters = read
        .new_db
        .as_ref()
        .and_then(|n| Some((cluster_id(&read.old_db)?, cluster_id(n)?)))
        .filter(|(a, b)| a != b);
    if let Some((a, b)) = &clusters {
        say!(
            "etcdsnap: warning: the snapshots come from different clusters: {} has cluster ID {a}, {} has cluster ID {b}",
            old_file.path().display(),
            new_file
                .as_ref()
                .map_or(old_file.path(), |f| f.path())
                .display()
        );
    }
    if let Some(typed) = &args.resource
        && let Some(mut c) = ResourceCheck::new(typed, &ResourceRef::parse(typed))
    {
        for ok in &read.seen {
            c.observe(ok);
        }
        if !c.known() {
            c.check()?;
        }
    }
    report(&args, &read.changed, read.keys_compared, clusters.as_ref())
}

/// Compares the changed keys as objects on all cores, a bounded chunk at a
/// time, and prints each as soon as its chunk is done.
fn report(
    args: &Args,
    changed: &[KeyChange<'_>],
    keys_compared: usize,
    clusters: Option<&(String, String)>,
) -> anyhow::Result<Outcome> {
    let text = args.write_out == DiffFormat::Text && !args.stat && !args.name_only;
    let json = args.write_out == DiffFormat::Json && !args.stat && !args.name_only;
    let opts = Options {
        storage_prefix: args.opts.prefix.clone(),
        all_fields: args.all_fields,
        show_secrets: args.show_secrets,
        context: args.context,
        text,
        json,
    };
    let color = match args.color {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => {
            std::io::stdout().is_terminal()
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        }
    };
    let mut w = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    let mut records = 0usize;
    let warning = clusters.map(|(a, b)| {
        serde_json::json!({
            "warning": "the snapshots come from different clusters",
            "oldClusterId": a,
            "newClusterId": b,
        })
    });
    if json {
        w.write_all(b"[")?;
        if let Some(warning) = &warning {
            w.write_all(b"\n  ")?;
            serde_json::to_writer(&mut w, warning).map_err(std::io::Error::from)?;
            records += 1;
        }
    }
    let bar = progress(changed.len() as u64, "comparing");
    let tally = compare_all(changed, &opts, STACK_SIZE, |done| {
        bar.inc(done.len() as u64);
        for d in done {
            let shown = match d.outcome {
                Counted::NoiseOnly => false,
                Counted::Change(Change::Rewritten) => args.rewritten,
                Counted::Change(_) => true,
            };
            if !shown || args.stat {
                continue;
            }
            if args.name_only {
                writeln!(w, "{} {}", d.change.change.sign(), d.name)?;
            } else if json {
                w.write_all(if records == 0 { b"\n  " } else { b",\n  " })?;
                serde_json::to_writer(&mut w, &record(d)).map_err(std::io::Error::from)?;
            } else {
                write_text(&mut w, d, color)?;
            }
            records += 1;
        }
        std::io::Result::Ok(())
    })?;
    bar.finish_and_clear();
    if json {
        w.write_all(if records == 0 { b"]\n" } else { b"\n]\n" })?;
    }
    summary(args, &mut w, &tally, warning, keys_compared)
}

/// The counts (`--stat` on stdout, the totals on stderr) and the exit code.
fn summary(
    args: &Args,
    w: &mut impl Write,
    tally: &Tally,
    warning: Option<serde_json::Value>,
    keys_compared: usize,
) -> anyhow::Result<Outcome> {
    let total = tally.total();
    if args.stat {
        if args.write_out == DiffFormat::Json {
            let mut out = serde_json::json!({"groups": tally.rows(), "total": total});
            if let Some(warning) = warning {
                out["warning"] = warning;
            }
            serde_json::to_writer_pretty(&mut *w, &out).map_err(std::io::Error::from)?;
            w.write_all(b"\n")?;
        } else {
            w.write_all(tally.render().as_bytes())?;
        }
    }
    w.flush()?;
    say!(
        "etcdsnap: {} added, {} removed, {} modified, {} noise only, {} rewritten{} ({keys_compared} keys compared)",
        total.added,
        total.removed,
        total.modified,
        total.noise_only,
        total.rewritten,
        if args.rewritten || total.rewritten == 0 {
            ""
        } else {
            " (not shown; --rewritten shows them)"
        }
    );
    Ok(if total.differences(args.rewritten) > 0 {
        Outcome::Failed
    } else {
        Outcome::Ok
    })
}

/// One side of a changed key, for `-w json`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SideInfo {
    mod_revision: i64,
    create_revision: i64,
    version: i64,
    lease: i64,
    size: usize,
    encoding: &'static str,
}

fn side(r: &Option<Record<'_>>) -> Option<SideInfo> {
    r.as_ref().map(|r| SideInfo {
        mod_revision: r.kv.mod_revision,
        create_revision: r.kv.create_revision,
        version: r.kv.version,
        lease: r.kv.lease,
        size: r.kv.value.len(),
        encoding: detect(r.kv.value).name(),
    })
}

/// The `-w json` record of one changed object.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonRecord<'d> {
    change: Change,
    key: String,
    resource: Option<&'d str>,
    namespace: Option<&'d str>,
    name: &'d str,
    old: Option<SideInfo>,
    new: Option<SideInfo>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    lease_changed: bool,
    /// `fields` (decoded objects) or `bytes` (a side did not decode).
    compared: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'d str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret_keys: Option<&'d etcdsnap::diff::secret::SecretKeys>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch: Option<&'d serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    object: Option<&'d serde_json::Value>,
}

fn record<'d>(d: &'d ObjectDiff<'_>) -> JsonRecord<'d> {
    JsonRecord {
        change: d.change.change,
        key: escape_bytes(d.change.key()),
        resource: d.name.resource.as_deref(),
        namespace: d.name.namespace.as_deref(),
        name: &d.name.name,
        old: side(&d.change.old),
        new: side(&d.change.new),
        lease_changed: d.change.lease_changed(),
        compared: if d.by_bytes.is_some() || d.change.change == Change::Rewritten {
            "bytes"
        } else {
            "fields"
        },
        reason: d.by_bytes.as_deref(),
        secret_keys: d.secret.as_ref(),
        patch: d.patch.as_ref(),
        object: d.object.as_ref(),
    }
}

const RED: &str = "\x1b[31m";
const GREEN: &str = "\x1b[32m";
const CYAN: &str = "\x1b[36m";
const BOLD: &str = "\x1b[1m";
const RESET: &str = "\x1b[0m";

/// One changed object as text: a header line, what is said about it, its diff.
fn write_text(w: &mut impl Write, d: &ObjectDiff<'_>, color: bool) -> std::io::Result<()> {
    let c = &d.change;
    let revs = match (&c.old, &c.new) {
        (Some(a), Some(b)) => format!("revision {} → {}", a.kv.mod_revision, b.kv.mod_revision),
        (Some(a), None) => format!("revision {}", a.kv.mod_revision),
        (None, Some(b)) => format!("revision {}", b.kv.mod_revision),
        (None, None) => String::new(),
    };
    let what = match c.change {
        Change::Rewritten => ", rewritten with the same bytes",
        _ => "",
    };
    let (on, off) = if color { (BOLD, RESET) } else { ("", "") };
    writeln!(w, "{on}{} {} ({revs}{what}){off}", c.change.sign(), d.name)?;
    if let (Some(a), Some(b)) = (&c.old, &c.new)
        && a.kv.lease != b.kv.lease
    {
        writeln!(w, "  lease: {} → {}", a.kv.lease, b.kv.lease)?;
    }
    if let Some(s) = &d.secret
        && !s.is_empty()
    {
        writeln!(w, "  secret {}", s.describe())?;
    }
    if let Some(reason) = &d.by_bytes {
        writeln!(w, "  {}", etcdsnap::report::escape_controls(reason))?;
    }
    for line in d.text.lines() {
        let paint = if !color {
            ""
        } else if line.starts_with("+++") || line.starts_with("---") {
            BOLD
        } else if line.starts_with('+') {
            GREEN
        } else if line.starts_with('-') {
            RED
        } else if line.starts_with("@@") {
            CYAN
        } else {
            ""
        };
        if paint.is_empty() {
            writeln!(w, "{line}")?;
        } else {
            writeln!(w, "{paint}{line}{RESET}")?;
        }
    }
    Ok(())
}
