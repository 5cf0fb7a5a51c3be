//! `etcdsnap check`: `verify` plus a policy's rules on each snapshot, for
//! backup pipelines; text, JSON or JUnit XML (also to a file beside the
//! text). The rules are the library's ([`crate::check`]).

use std::path::PathBuf;
use std::time::SystemTime;

use anyhow::Context;
use clap::ValueEnum;
use serde::Serialize;

use super::args::{CatalogOpt, PrefixOpt};
use super::render::added_text;
use super::{Outcome, out};
use crate::catalog::entry::parse_labels;
use crate::catalog::store::{Added, add_read};
use crate::catalog::trend::{self, parse_max_drop};
use crate::check::facts::{self, Facts};
use crate::check::junit;
use crate::check::policy::Policy;
use crate::check::rules::{RuleResult, judge};
use crate::input::SnapshotFile;

const EXAMPLES: &str =
    "Rules (a YAML policy of at most 4 MiB, nested at most 64 deep; unknown rules are refused):
  minObjects: {nodes: 3, deployments.apps: 1}      # live objects per resource, at least
  minNamespaces: 1
  requiredNamespaces: [default, kube-system]
  requiredObjects: [deployments.apps/kube-system/coredns, namespaces/default]
  valuesDecode: true                               # every live value decodes and matches its key
  noUnencryptedSecrets: true
  encryptionKeys: [key2]                           # encrypted values name one of these keys
  minBytes: 1048576                                # and maxBytes, minRevision, maxRevision
  maxAge: 26h                                      # from --taken-at, else the file's mtime
--encryption-config FILE adds the key names of the API server's EncryptionConfiguration to
encryptionKeys.
Resource names are read as `get` reads them (cm, deploy, Deployment, widgets.example.com, a CRD's
plural); a name neither built in nor in the snapshot fails its rule, with the closest names.
Without --policy: minNamespaces 1 and requiredNamespaces [default, kube-system]. `verify`
always runs.

Examples:
  etcdsnap check snapshot.db
  etcdsnap check /backups/*.db --policy backup-policy.yaml -w junit > check.xml
  etcdsnap check snapshot.db --policy p.yaml --junit-out report.xml --taken-at 2026-11-30T02:00:00Z
  etcdsnap check snapshot.db --catalog /backups/catalog.redb --label cluster=prod -w junit

--catalog FILE adds each snapshot to the backup catalog and runs the trend rules of
`etcdsnap catalog check` on it (rules named `trend …`).

Exit codes: 0 every rule passed on every snapshot; 1 a rule failed (a damaged snapshot fails the
verify rule); 2 usage error, a bad policy file, or a snapshot that cannot be read at all.";

/// Check snapshots for a backup pipeline: verify plus a policy's rules
#[derive(clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// Snapshot files (zstd/gzip/zip are detected)
    #[arg(required = true)]
    snapshots: Vec<PathBuf>,
    /// The policy file (YAML)
    #[arg(long)]
    policy: Option<PathBuf>,
    /// Output format
    #[arg(short = 'w', long = "write-out", value_enum, default_value = "text")]
    write_out: CheckFormat,
    /// Also write the JUnit XML report to this file (atomically)
    #[arg(long)]
    junit_out: Option<PathBuf>,
    /// When the snapshot was taken (RFC 3339), for maxAge; default: the file's mtime
    #[arg(long)]
    taken_at: Option<String>,
    /// The API server's EncryptionConfiguration: every encrypted value must
    /// name one of its keys (the encryptionKeys rule, with the policy's own)
    #[arg(long)]
    encryption_config: Option<PathBuf>,
    /// Add each snapshot to this backup catalog and run its trend rules
    /// (see `etcdsnap catalog --help`); their results are extra rules
    #[arg(long, value_name = "FILE")]
    catalog: Option<PathBuf>,
    /// With --catalog: a label KEY=VALUE for the entries (repeatable);
    /// entries with the same labels form a series
    #[arg(long = "label", value_name = "KEY=VALUE", requires = "catalog")]
    labels: Vec<String>,
    /// With --catalog: the largest drop allowed in a resource's objects
    #[arg(
        long,
        default_value = "20%",
        value_name = "PERCENT",
        requires = "catalog"
    )]
    max_drop: String,
    #[command(flatten)]
    prefix: PrefixOpt,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum CheckFormat {
    Text,
    Json,
    Junit,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Checked {
    snapshot: String,
    passed: bool,
    rules: Vec<RuleResult>,
    facts: Facts,
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    let mut policy = match &args.policy {
        Some(p) => {
            let text = crate::input::read_bounded_string(p, crate::input::SMALL_FILE_LIMIT)
                .with_context(|| p.display().to_string())?;
            Policy::parse(&p.display().to_string(), &text)?
        }
        None => Policy::default_rules(),
    };
    if let Some(c) = &args.encryption_config {
        let names = crate::kube::decrypt::config::EncryptionConfig::load(c)?.key_names();
        policy
            .encryption_keys
            .get_or_insert_with(Vec::new)
            .extend(names);
    }
    let taken_at = match &args.taken_at {
        Some(t) => Some(SystemTime::from(
            time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                .with_context(|| format!("--taken-at {t:?}: not an RFC 3339 time"))?,
        )),
        None => None,
    };
    let now = SystemTime::now();
    let catalog = match &args.catalog {
        Some(path) => {
            let labels = parse_labels(&args.labels).map_err(anyhow::Error::msg)?;
            let max_drop = parse_max_drop(&args.max_drop).map_err(anyhow::Error::msg)?;
            let opt = CatalogOpt {
                catalog: Some(path.clone()),
                lock_wait: 30,
            };
            // Said before any snapshot is read if damaged or foreign; the
            // lock is then held only while each entry is written.
            drop(opt.open(true)?);
            Some((opt, labels, max_drop))
        }
        None => None,
    };
    let mut runs = Vec::new();
    for path in &args.snapshots {
        let name = path.display().to_string();
        let (rules, f) = match SnapshotFile::open(path) {
            Ok(file) => {
                let read = facts::read(&file, &policy, &args.prefix.prefix);
                let mut rules = judge(&read, &policy, taken_at, now);
                if let Some((opt, labels, max_drop)) = &catalog {
                    let store = opt.open(true)?;
                    let (entry, added) = add_read(&store, &file, &read, labels)?;
                    say!("{}", added_text(&store, &entry, added));
                    let seq = match added {
                        Added::New(s) | Added::Already(s) => s,
                    };
                    rules.extend(trend::judge(&store.heads()?, seq, *max_drop, &mut |s| {
                        store.entry(s)
                    })?);
                }
                (rules, read.facts)
            }
            // A compressed stream that does not decode is a damaged file: the
            // verify rule fails; anything else (missing, unreadable) is I/O.
            Err(e) if e.is_damage() => (
                vec![RuleResult {
                    rule: "verify".into(),
                    passed: false,
                    message: e.to_string(),
                }],
                Facts::default(),
            ),
            Err(e) => return Err(anyhow::Error::new(e).context(name)),
        };
        runs.push(Checked {
            passed: rules.iter().all(|r| r.passed),
            snapshot: name,
            rules,
            facts: f,
        });
    }
    let pairs: Vec<(String, Vec<RuleResult>)> = runs
        .iter()
        .map(|c| (c.snapshot.clone(), c.rules.clone()))
        .collect();
    if let Some(p) = &args.junit_out {
        crate::durable::write_atomic(p, junit::report(&pairs)?.as_bytes())?;
    }
    match args.write_out {
        CheckFormat::Junit => out(&junit::report(&pairs)?)?,
        CheckFormat::Json => out(&(serde_json::to_string_pretty(&runs)? + "\n"))?,
        CheckFormat::Text => {
            let mut s = String::new();
            for c in &runs {
                s.push_str(&format!(
                    "{}: {}\n",
                    crate::report::escape_controls(&c.snapshot),
                    if c.passed { "PASSED" } else { "FAILED" }
                ));
                for r in &c.rules {
                    s.push_str(&format!(
                        "  {} {}: {}\n",
                        if r.passed { "ok  " } else { "FAIL" },
                        r.rule,
                        crate::report::escape_controls(&r.message)
                    ));
                }
            }
            out(&s)?;
        }
    }
    Ok(if runs.iter().all(|c| c.passed) {
        Outcome::Ok
    } else {
        Outcome::Failed
    })
}
