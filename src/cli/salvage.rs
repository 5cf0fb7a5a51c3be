//! `etcdsnap salvage`: every intact record of a damaged snapshot, written to
//! a new snapshot etcd can restore, and a report of what is lost.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context;

use super::args::{PrefixOpt, SnapshotPath};
use super::{Outcome, out};
use etcdsnap::durable;
use etcdsnap::input::SnapshotFile;
use etcdsnap::report::escape_controls;
use etcdsnap::salvage::report::{BucketStatus, LostKey, LostWhy, Report};
use etcdsnap::salvage::{build_deferred, collect, merge, output};

/// Output formats of the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// Recover every intact record of a damaged snapshot into a new one
#[derive(clap::Args)]
#[command(
    long_about = "Reads every page of a damaged snapshot — reachable from its tree or not: freed and orphaned pages \
may hold the newest copy of a leaf — and takes every record of etcd's key bucket that checks out completely (a \
revision key; a KeyValue that decodes whole, whose mod_revision is the key's revision, with consistent \
create_revision and version; a Kubernetes value that decodes). Per key it keeps the newest intact revision, and \
older ones as history where no change can have been lost in between; deletions are honoured; nothing is made \
up. The other buckets (meta, members, cluster, lease, auth, alarm) are rebuilt from what survives; the report \
says which could not be. The result is written with the sha256 trailer `etcdctl snapshot save` appends, passes \
`etcdsnap verify` and restores like any snapshot. The input is never modified.\n\nThe report lists what was \
recovered and what is lost: keys whose newest record is damaged, keys that may have a newer revision that is \
lost (revisions after theirs are missing), with the Kubernetes resource, namespace and name of /registry keys, \
and the revisions of which nothing survived.\n\nExit codes: 0 nothing lost; 1 something lost (OUTPUT is still \
written); 2 nothing usable, usage or I/O error.\n\nWith --from, other files of the same cluster (another member's db or snapshot, an older backup) \
fill what the damaged file lost: a revision any of them holds intact is taken, and the report says which file \
gave each key. Two copies of one revision with different bytes are a conflict: neither is written, the key is \
listed as lost (exit 1). A source whose members bucket shares no member with the damaged file's is refused \
unless --force-source.",
    after_help = "Examples:\n  etcdsnap salvage damaged.db -o recovered.db\n  etcdsnap salvage damaged.db --from member-2.db backup.db.zst -o recovered.db\n  etcdsnap salvage damaged.db -o recovered.db --report lost.json -w json\n  etcdsnap verify recovered.db && etcdsnap restore recovered.db …"
)]
pub struct Args {
    /// The damaged snapshot (`-` for standard input; zstd/gzip/zip are detected)
    snapshot: SnapshotPath,
    /// Where to write the recovered snapshot
    #[arg(short = 'o', long = "output", value_name = "OUTPUT")]
    output: PathBuf,
    /// Replace an existing OUTPUT: it is moved aside to
    /// OUTPUT.etcdsnap-bak-<UTC time> first
    #[arg(long)]
    force: bool,
    /// Also write the report to FILE (in the -w format; mode 0600, replaced atomically)
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Report format
    #[arg(short = 'w', long = "write-out", value_enum, default_value = "text")]
    write_out: Format,
    /// Fill what the damaged file lost from other files of the same cluster
    /// (another member's db or snapshot, an older backup; compressed too):
    /// per revision, copies must agree byte for byte
    #[arg(long = "from", value_name = "SOURCE", num_args = 1..)]
    from: Vec<PathBuf>,
    /// Take a --from source even when its members bucket shares no member
    /// with the damaged file's (another cluster's records would be mixed in)
    #[arg(long = "force-source", requires = "from")]
    force_source: bool,
    #[command(flatten)]
    prefix: PrefixOpt,
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    // Ctrl-C or SIGTERM: the partial output is removed (the write stops at
    // its next chunk; reading stops between the steps), an existing output
    // is left as it was, and that is said.
    etcdsnap::interrupt::install();
    let output = args.output.display().to_string();
    let r = salvage(args);
    if let Some(sig) = etcdsnap::interrupt::requested() {
        match &r {
            Err(_) => eprintln!(
                "etcdsnap: {sig}: nothing was written; {output} is as it was (a partial output was removed)"
            ),
            Ok(_) => eprintln!(
                "etcdsnap: {sig} came after {output} was in place: the salvage was completed"
            ),
        }
    }
    r
}

fn salvage(args: Args) -> anyhow::Result<Outcome> {
    // Any failure to read, damaged compression included, is "nothing usable" (2).
    let file = SnapshotFile::open(&args.snapshot).map_err(|e| anyhow::anyhow!("{e}"))?;
    let name = args.snapshot.display().to_string();
    let findings = collect(file.bytes(), &name)?;
    etcdsnap::interrupt::check()?;
    let mut opened = Vec::with_capacity(args.from.len());
    for path in &args.from {
        let f = SnapshotFile::open(path).map_err(|e| anyhow::anyhow!("{e}"))?;
        opened.push((path.display().to_string(), f));
    }
    let mut sources = Vec::with_capacity(opened.len());
    for (n, f) in &opened {
        let found = collect(f.bytes(), n)?;
        let checked = match merge::same_cluster(&findings, &name, &found, n) {
            Ok(c) => c,
            Err(e) if args.force_source => {
                eprintln!("warning: {e}");
                false
            }
            Err(e) => return Err(e.into()),
        };
        sources.push((n.clone(), found, checked));
    }
    let mut salvaged = if sources.is_empty() {
        build_deferred(findings, None, &name, &args.prefix.prefix)
    } else {
        let (joined, provenance) = merge::join(findings, &name, sources);
        build_deferred(joined, Some(&provenance), &name, &args.prefix.prefix)
    };
    // A --from source is an input too: never the output.
    if let Some(p) = args
        .from
        .iter()
        .find(|p| output::same_file(p, &args.output))
    {
        return Err(output::WriteError::IsInput(p.clone()).into());
    }
    etcdsnap::interrupt::check()?;
    let written = output::write(&mut salvaged, &args.snapshot, &args.output, args.force)?;
    salvaged.report.output = Some(args.output.display().to_string());
    salvaged.report.moved_aside = written.moved_aside.map(|p| p.display().to_string());
    let text = match args.write_out {
        Format::Json => {
            serde_json::to_string_pretty(&salvaged.report).context("cannot encode the report")?
                + "\n"
        }
        Format::Text => render(&salvaged.report),
    };
    if let Some(path) = &args.report {
        durable::write_atomic(path, text.as_bytes())?;
    }
    out(&text)?;
    let outcome = if salvaged.report.complete {
        Outcome::Ok
    } else {
        Outcome::Failed
    };
    // The process ends now: its heap goes back whole at exit rather than a
    // few hundred thousand records and strings freed one by one.
    std::mem::forget(salvaged);
    Ok(outcome)
}

fn status_name(s: BucketStatus) -> &'static str {
    match s {
        BucketStatus::Recovered => "recovered",
        BucketStatus::Partial => "partly recovered (damaged elements)",
        BucketStatus::Scanned => "found on an unreachable page (may be an older copy)",
        BucketStatus::Derived => "derived (consistent_index = newest revision)",
        BucketStatus::NotFound => "not found (written empty)",
    }
}

fn render(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{}", escape_controls(&r.file));
    if let Some(o) = &r.output {
        let _ = writeln!(s, "  written to        {}", escape_controls(o));
    }
    if let Some(m) = &r.moved_aside {
        let _ = writeln!(s, "  old output moved  {}", escape_controls(m));
    }
    let _ = writeln!(
        s,
        "  pages             {} of {} bytes ({}), {} leaf, {} branch, {} unreadable, {} valid meta",
        r.scan.pages,
        r.page_size,
        match r.page_size_source {
            etcdsnap::salvage::scan::PageSizeSource::Meta => "from the meta page",
            etcdsnap::salvage::scan::PageSizeSource::PageIds => "guessed from page ids",
        },
        r.scan.leaf_pages,
        r.scan.branch_pages,
        r.scan.unreadable_pages,
        r.valid_meta_pages
    );
    let c = &r.records;
    let _ = writeln!(
        s,
        "  key records       {} intact revisions ({} copies), {} written; {} compacted, {} not provably contiguous",
        c.intact, c.copies, c.written, c.compacted, c.unchained
    );
    for (why, n) in &c.rejected {
        let _ = writeln!(s, "    left out        {n} × {why}");
    }
    let _ = writeln!(
        s,
        "  keys              {} recovered: {} live, {} deleted; {} history revisions",
        r.keys.recovered, r.keys.live, r.keys.deleted, r.keys.history_revisions
    );
    let _ = writeln!(
        s,
        "  revision          {} (compacted at {})",
        c.revision,
        c.compact_revision
            .map_or("unknown".to_string(), |x| x.to_string())
    );
    for b in &r.buckets {
        let _ = writeln!(
            s,
            "  bucket {:<16}{} entries, {}{}",
            b.name,
            b.entries,
            status_name(b.status),
            if b.conflicts.is_empty() {
                String::new()
            } else {
                format!(
                    "; {} keys left out (copies differ): {}",
                    b.conflicts.len(),
                    escape_controls(&b.conflicts.join(", "))
                )
            }
        );
    }
    let not_found: Vec<&str> = r
        .buckets
        .iter()
        .filter(|b| b.status == BucketStatus::NotFound)
        .map(|b| b.name.as_str())
        .collect();
    if !not_found.is_empty() {
        let _ = writeln!(
            s,
            "  not rebuilt       {} (nothing of them found; written empty)",
            not_found.join(", ")
        );
    }
    if r.ambiguous_leaves > 0 {
        let _ = writeln!(
            s,
            "  left out          {} leaves shaped like more than one bucket",
            r.ambiguous_leaves
        );
    }
    if r.missing_revisions > 0 {
        let ranges: Vec<String> = r
            .missing_ranges
            .iter()
            .take(20)
            .map(|(a, b)| {
                if a == b {
                    a.to_string()
                } else {
                    format!("{a}-{b}")
                }
            })
            .collect();
        let _ = writeln!(
            s,
            "  missing           {} revisions of which nothing survived: {}{}",
            r.missing_revisions,
            ranges.join(", "),
            if r.missing_ranges.len() > 20 {
                ", …"
            } else {
                ""
            }
        );
    }
    if r.missing_explained > 0 {
        let _ = writeln!(
            s,
            "  of which          {} known to be one key's change (its creation, a damaged record naming it, a gap in its versions): that key's history only",
            r.missing_explained
        );
    }
    if !r.newest_revisions_known {
        let _ = writeln!(
            s,
            "  newest revisions  unknown: the key bucket's last leaf did not survive, so every key may have a newer revision"
        );
    }
    if !r.sources.is_empty() {
        let _ = writeln!(s, "\nSources:");
        for src in &r.sources {
            let _ = writeln!(
                s,
                "  {}: {} revisions written, newest revision of {} keys{}",
                escape_controls(&src.file),
                src.revisions_written,
                src.keys_newest,
                if src.cluster_checked {
                    ""
                } else {
                    " (cluster not checked)"
                }
            );
        }
    }
    if !r.conflicts.is_empty() {
        let _ = writeln!(
            s,
            "\nConflicts ({} revisions held with different bytes; left out):",
            r.conflicts.len()
        );
        for c in &r.conflicts {
            let _ = writeln!(
                s,
                "  revision {}.{} of {} in {}",
                c.revision,
                c.sub,
                escape_controls(&c.keys.join(", ")),
                escape_controls(&c.sources.join(", "))
            );
        }
    }
    if !r.lost.is_empty() {
        let _ = writeln!(s, "\nLost ({} keys):", r.lost.len());
        for l in &r.lost {
            lost_line(&mut s, l);
        }
    }
    if !r.possibly_stale.is_empty() {
        let _ = writeln!(
            s,
            "\nMay be out of date ({} keys): a change after their newest revision is lost and not known to be another key's{}:",
            r.possibly_stale.len(),
            if r.missing_revisions > r.missing_explained {
                format!(
                    " ({} lost revisions not known to be one key's change)",
                    r.missing_revisions - r.missing_explained
                )
            } else {
                String::new()
            }
        );
        for l in r.possibly_stale.iter().take(STALE_SHOWN) {
            lost_line(&mut s, l);
        }
        if r.possibly_stale.len() > STALE_SHOWN {
            let _ = writeln!(
                s,
                "  … and {} more (-w json or --report lists them all)",
                r.possibly_stale.len() - STALE_SHOWN
            );
        }
    }
    let _ = writeln!(
        s,
        "\n{}",
        if r.complete {
            "COMPLETE: nothing known lost"
        } else {
            "INCOMPLETE: something is lost (see above); the recovered snapshot holds what survived"
        }
    );
    s
}

/// Keys listed in the text report as possibly out of date (JSON lists all).
const STALE_SHOWN: usize = 20;

/// One line of the text report for a lost or possibly stale key.
fn lost_line(s: &mut String, l: &LostKey) {
    let why = match l.why {
        LostWhy::NewestDamaged => format!(
            "newest record (revision {}) damaged",
            l.newest_seen_revision
        ),
        LostWhy::MayBeStale => "may have a newer, lost revision".to_string(),
    };
    let kept = match l.recovered_revision {
        Some(rev) if l.recovered_deleted => format!("kept: deleted at {rev}"),
        Some(rev) => format!("kept: revision {rev}"),
        None => "nothing kept".to_string(),
    };
    let object = match (&l.resource, &l.name) {
        (Some(res), Some(n)) => match &l.namespace {
            Some(ns) => format!(" [{res} {ns}/{n}]"),
            None => format!(" [{res} {n}]"),
        },
        _ => String::new(),
    };
    let _ = writeln!(
        s,
        "  {}{}: {why}; {kept}",
        escape_controls(&l.key),
        escape_controls(&object)
    );
}
