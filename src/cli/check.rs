//! `etcdsnap check`: `verify` plus a policy's rules on each snapshot, for
//! backup pipelines; text, JSON or JUnit XML (also to a file beside the
//! text). The rules are the library's ([`etcdsnap::check`]).

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use clap::ValueEnum;

use super::args::{PrefixOpt, RemoteArgs};
use super::render::added_text;
use super::{Outcome, out};
use etcdsnap::catalog::checked::{CatalogSeries, check_snapshots};
use etcdsnap::catalog::entry::parse_labels;
use etcdsnap::catalog::trend::parse_max_drop;
use etcdsnap::check::junit;
use etcdsnap::check::policy::Policy;
use etcdsnap::check::rules::RuleResult;
use etcdsnap::remote::list::{expand, is_prefix};

const EXAMPLES: &str =
    "Rules (a YAML policy of at most 4 MiB, nested at most 64 deep; unknown rules are refused):
  minObjects: {nodes: 3, deployments.apps: 1}      # live objects per resource, at least
  minNamespaces: 1
  requiredNamespaces: [default, kube-system]
  requiredObjects: [deployments.apps/kube-system/coredns, namespaces/default]
  valuesDecode: true                               # every live value decodes and matches its key
  noUnencryptedSecrets: true
  encryptionKeys: [key2]                           # encrypted values name one of these keys
  kmsKeyIds: [\"1\"]                                 # KMS v2 values name one of these key IDs
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
  etcdsnap check s3://etcd-backups/prod/ --newest 7 --junit-out check.xml

A URL ending in / is a prefix: every object under it is checked (one JUnit testsuite each), oldest
first, except directory markers and checksum or signature files (SHA256SUMS, *.sha256, *.sig…);
any other object is read as a snapshot, so a stray one fails its check.

--catalog FILE adds each snapshot to the backup catalog and runs the trend rules of
`etcdsnap catalog check` on it (rules named `trend …`).

Exit codes: 0 every rule passed on every snapshot; 1 a rule failed (a damaged snapshot fails the
verify rule); 2 usage error, a bad policy file, or a snapshot that cannot be read at all.";

/// Check snapshots for a backup pipeline: verify plus a policy's rules
#[derive(clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// Snapshot files (zstd/gzip/zip are detected; `s3://BUCKET/KEY`,
    /// `gs://BUCKET/KEY`, `az://CONTAINER/KEY` and `http(s)://URL` are streamed
    /// once into a private spool file first; a bucket URL ending in `/`,
    /// `s3://BUCKET/PREFIX/`, is every snapshot object under the prefix,
    /// oldest first)
    #[arg(required = true)]
    snapshots: Vec<PathBuf>,
    /// Of each prefix (`s3://BUCKET/PREFIX/`), only the newest N objects by
    /// last modification
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    newest: Option<u64>,
    /// The policy file (YAML)
    #[arg(long)]
    policy: Option<PathBuf>,
    /// Output format
    #[arg(short = 'w', long = "write-out", value_enum, default_value = "text")]
    write_out: CheckFormat,
    /// Also write the JUnit XML report to this file (atomically)
    #[arg(long)]
    junit_out: Option<PathBuf>,
    /// Also write the verdict as one self-contained HTML page to this file
    /// (per snapshot every rule's result, the failed first; no network
    /// request of any kind), the page a CI job attaches
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
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
    #[command(flatten)]
    remote: RemoteArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum CheckFormat {
    Text,
    Json,
    Junit,
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    args.remote.configure();
    if args.newest.is_some() && !args.snapshots.iter().any(|s| is_prefix(s)) {
        bail!("--newest applies to prefixes (s3://BUCKET/PREFIX/, ending in /); none given");
    }
    let newest = args
        .newest
        .map(|n| usize::try_from(n).unwrap_or(usize::MAX));
    let snapshots: Vec<PathBuf> = expand(&args.snapshots, newest)?
        .into_iter()
        .map(|s| s.path)
        .collect();
    let mut policy = match &args.policy {
        Some(p) => {
            let text = etcdsnap::input::read_bounded_string(p, etcdsnap::input::SMALL_FILE_LIMIT)
                .with_context(|| p.display().to_string())?;
            Policy::parse(&p.display().to_string(), &text)?
        }
        None => Policy::default_rules(),
    };
    if let Some(c) = &args.encryption_config {
        let names = etcdsnap::kube::decrypt::config::EncryptionConfig::load(c)?.key_names();
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
        Some(path) => Some(CatalogSeries {
            labels: parse_labels(&args.labels).map_err(anyhow::Error::msg)?,
            max_drop: parse_max_drop(&args.max_drop).map_err(anyhow::Error::msg)?,
            path: path.clone(),
            wait: Duration::from_secs(30),
        }),
        None => None,
    };
    let runs = check_snapshots(
        &snapshots,
        &policy,
        &args.prefix.prefix,
        taken_at,
        now,
        catalog.as_ref(),
        &mut |store, entry, added| say!("{}", added_text(store, entry, added)),
    )?;
    let pairs: Vec<(String, Vec<RuleResult>)> = runs
        .iter()
        .map(|c| (c.snapshot.clone(), c.rules.clone()))
        .collect();
    if let Some(p) = &args.junit_out {
        etcdsnap::durable::write_atomic(p, junit::report(&pairs)?.as_bytes())?;
    }
    if let Some(p) = &args.html {
        etcdsnap::durable::write_atomic(p, etcdsnap::check::html::report(&pairs).as_bytes())?;
    }
    match args.write_out {
        CheckFormat::Junit => out(&junit::report(&pairs)?)?,
        CheckFormat::Json => out(&(serde_json::to_string_pretty(&runs)? + "\n"))?,
        CheckFormat::Text => {
            let mut s = String::new();
            for c in &runs {
                s.push_str(&format!(
                    "{}: {}\n",
                    etcdsnap::report::escape_controls(&c.snapshot),
                    if c.passed { "PASSED" } else { "FAILED" }
                ));
                for r in &c.rules {
                    s.push_str(&format!(
                        "  {} {}: {}\n",
                        if r.passed { "ok  " } else { "FAIL" },
                        r.rule,
                        etcdsnap::report::escape_controls(&r.message)
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
