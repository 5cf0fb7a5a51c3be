//! `etcdsnap bundle`: one archive per member with its restored data dir (the
//! bytes `restore --out-dir` writes), the PKI files its node needs, and its
//! start flags, checked by `pki check` first; and `etcdsnap bundle inspect`,
//! which prints a bundle's manifest and the result of every check.

use std::path::PathBuf;

use anyhow::bail;

use super::args::restore::{ArchiveKey, refused_snapshot};
use super::{Outcome, ReportFormat, out};
use etcdsnap::bundle::extract::extract_start_files;
use etcdsnap::bundle::inspect::Inspected;
use etcdsnap::bundle::make::{Event, Made, MakeError, Request};
use etcdsnap::restore::owner::Owner;

const BUNDLE_EXAMPLES: &str = "Examples:
  etcdsnap bundle snapshot.db --pki pki-backup --out bundles \\
    --initial-cluster m1=https://10.0.0.1:2380,m2=https://10.0.0.2:2380,m3=https://10.0.0.3:2380 \\
    --initial-cluster-token prod-restore-1 --encrypt-to age1...
  etcdsnap bundle inspect bundles --identity key.txt
  # then on each node:
  etcdsnap install bundles/m1.tar.zst.age --identity key.txt --owner 2001:2001";

/// Pack each member's restored data dir, PKI files and start flags into one archive
#[derive(clap::Args)]
#[command(
    after_help = BUNDLE_EXAMPLES,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Args {
    #[command(subcommand)]
    sub: Option<Sub>,
    #[command(flatten)]
    make: MakeArgs,
}

#[derive(clap::Subcommand)]
enum Sub {
    Inspect(InspectArgs),
    Extract(ExtractArgs),
}

/// Write an archive's start files (etcd.env, etcd.yaml) to a directory,
/// after the archive's checks (every entry against its manifest, its sha256
/// against SHA256SUMS), decrypting an encrypted archive
#[derive(clap::Args)]
struct ExtractArgs {
    /// One archive (`<member>.tar.zst` or `.tar.zst.age`), SHA256SUMS beside it
    archive: PathBuf,
    /// Extract the start files: etcd.env (the flags as an environment file)
    /// and etcd.yaml (the static pod)
    #[arg(long, required = true)]
    start_files: bool,
    /// Where to write them (created 0700 if missing)
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    key: ArchiveKey,
    /// Replace existing files (the old ones are moved aside as
    /// <file>.etcdsnap-bak-<UTC time>)
    #[arg(long)]
    force: bool,
}

#[derive(clap::Args)]
struct MakeArgs {
    /// Snapshot file (zstd/gzip/zip are detected)
    #[arg(required = true)]
    snapshot: Option<PathBuf>,
    /// Every member as NAME=PEER_URL, comma-separated (as etcd's flag)
    #[arg(long, required = true)]
    initial_cluster: Option<String>,
    /// The cluster token (as etcd's flag)
    #[arg(long, required = true)]
    initial_cluster_token: Option<String>,
    /// Client URLs each member advertises and listens on, as NAME=URL,...;
    /// default as kubeadm: the peer host, port 2379
    #[arg(long)]
    client_urls: Option<String>,
    /// The PKI to pack (a copy of /etc/kubernetes/pki, or one subdirectory
    /// per member); checked with `pki check` first
    #[arg(long, required = true)]
    pki: Option<PathBuf>,
    /// Where the archives and SHA256SUMS go: a directory, or a bucket's
    /// prefix (s3://BUCKET/DIR/, also gs://, az://): made in a private
    /// temporary directory, then uploaded, SHA256SUMS last; existing objects
    /// are refused unless --force
    #[arg(long, required = true)]
    out: Option<PathBuf>,
    /// Start the keyspace this many revisions later (needs --mark-compacted)
    #[arg(long)]
    bump_revision: Option<u64>,
    /// Mark the bumped revision compacted (needs --bump-revision)
    #[arg(long)]
    mark_compacted: bool,
    /// The etcd release to write for: 3.4, 3.5, 3.6 or 3.7 (as `restore`)
    #[arg(long, value_parser = ["3.4", "3.5", "3.6", "3.7"])]
    target_version: Option<String>,
    /// Drop the alarms recorded in the snapshot
    #[arg(long)]
    clear_alarms: bool,
    /// The etcd image of the static pod (etcd.yaml); default kubeadm's
    /// registry.k8s.io/etcd image of the release the data dir is written for
    /// (3.4, 3.5, 3.6; 3.7 needs --image)
    #[arg(long)]
    image: Option<String>,
    /// The owner recorded for every file, as UID:GID (install may override)
    #[arg(long)]
    owner: Option<Owner>,
    /// Pack the etcd CA's private key too (never by default)
    #[arg(long)]
    include_ca_key: bool,
    /// Pack although `pki check` finds errors (recorded in the manifest)
    #[arg(long)]
    force_pki: bool,
    /// Encrypt each archive to this age recipient (age1…; repeatable)
    #[arg(long, conflicts_with = "passphrase_file")]
    encrypt_to: Vec<String>,
    /// Encrypt each archive with the passphrase on this file's first line
    #[arg(long)]
    passphrase_file: Option<PathBuf>,
    /// Replace existing archives and SHA256SUMS
    #[arg(long)]
    force: bool,
    /// Check and print the plan; write nothing
    #[arg(long)]
    dry_run: bool,
    /// Output format
    #[arg(short = 'w', long = "write-out", value_enum, default_value = "table")]
    write_out: ReportFormat,
}

/// Print a bundle's manifests and the result of every check
#[derive(clap::Args)]
struct InspectArgs {
    /// A bundle directory (every archive SHA256SUMS lists) or one archive
    bundle: PathBuf,
    #[command(flatten)]
    key: ArchiveKey,
    /// Output format
    #[arg(short = 'w', long = "write-out", value_enum, default_value = "table")]
    write_out: ReportFormat,
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    match args.sub {
        Some(Sub::Inspect(a)) => inspect(a),
        Some(Sub::Extract(a)) => extract(a),
        None => {
            // Ctrl-C or SIGTERM while building: the scratch dir and the
            // partial archives are removed (see etcdsnap::interrupt).
            if !args.make.dry_run {
                etcdsnap::interrupt::install();
            }
            let r = make(args.make);
            if let Some(sig) = etcdsnap::interrupt::requested()
                && r.is_err()
            {
                say!("etcdsnap: {sig}: the scratch files were removed; no archive was written");
            }
            r
        }
    }
}

fn make(a: MakeArgs) -> anyhow::Result<Outcome> {
    let (Some(snapshot), Some(initial_cluster), Some(initial_cluster_token), Some(pki), Some(out)) = (
        a.snapshot,
        a.initial_cluster,
        a.initial_cluster_token,
        a.pki,
        a.out,
    ) else {
        bail!("SNAPSHOT, --initial-cluster, --initial-cluster-token, --pki and --out are required");
    };
    // A bucket's prefix: the archives are made in a private directory, then
    // uploaded, SHA256SUMS last (see remote::upload::put_files).
    #[cfg(feature = "remote")]
    let (bucket, scratch) = if etcdsnap::remote::is_remote(&out) {
        let url = out.to_string_lossy().into_owned();
        let prefix = if url.ends_with('/') { url } else { url + "/" };
        etcdsnap::remote::upload::check_url(&format!("{prefix}SHA256SUMS"))?;
        let dir = tempfile::Builder::new()
            .prefix(".etcdsnap-bundle-")
            .tempdir()?;
        (Some(prefix), Some(dir))
    } else {
        (None, None)
    };
    #[cfg(feature = "remote")]
    let out = scratch.as_ref().map_or(out, |d| d.path().join("bundle"));
    let req = Request {
        snapshot,
        initial_cluster,
        initial_cluster_token,
        client_urls: a.client_urls,
        pki,
        out,
        bump_revision: a.bump_revision,
        mark_compacted: a.mark_compacted,
        target_version: a.target_version,
        clear_alarms: a.clear_alarms,
        image: a.image,
        owner: a.owner,
        include_ca_key: a.include_ca_key,
        force_pki: a.force_pki,
        encrypt_to: a.encrypt_to,
        passphrase_file: a.passphrase_file,
        force: a.force,
        dry_run: a.dry_run,
    };
    match etcdsnap::bundle::make::make(&req, &mut say_event) {
        Ok(made) => {
            #[cfg(feature = "remote")]
            let made = match &bucket {
                Some(prefix) if !made.dry_run => upload(made, prefix, a.force)?,
                _ => made,
            };
            print_made(&made, a.write_out)?;
            Ok(Outcome::Ok)
        }
        Err(MakeError::Unsound(report)) => Ok(refused_snapshot(
            &report,
            "not bundling a snapshot that fails verification",
        )),
        Err(e @ MakeError::PkiErrors { .. }) => {
            say!("etcdsnap: {e}");
            Ok(Outcome::Failed)
        }
        Err(e) => Err(e.into()),
    }
}

/// Uploads what `bundle` made in its scratch directory to `prefix` (the
/// archives, then SHA256SUMS) and names the objects in its report.
#[cfg(feature = "remote")]
fn upload(
    mut made: etcdsnap::bundle::make::Made,
    prefix: &str,
    force: bool,
) -> anyhow::Result<etcdsnap::bundle::make::Made> {
    let mut files: Vec<PathBuf> = made
        .archives
        .iter()
        .map(|a| PathBuf::from(&a.file))
        .collect();
    files.extend(made.sums.iter().map(PathBuf::from));
    let uploaded = etcdsnap::remote::upload::put_files(prefix, &files, force)?;
    let shown = etcdsnap::remote::redact(prefix);
    let name = |f: &str| {
        std::path::Path::new(f)
            .file_name()
            .map(|n| format!("{shown}{}", n.to_string_lossy()))
            .unwrap_or_default()
    };
    for a in &mut made.archives {
        a.file = name(&a.file);
    }
    made.sums = made.sums.as_deref().map(name);
    for u in &uploaded {
        say!(
            "etcdsnap: uploaded {} ({} bytes{})",
            u.url,
            u.bytes,
            if u.replaced {
                ", replacing the object there"
            } else {
                ""
            }
        );
    }
    Ok(made)
}

/// What the library says while it bundles, on stderr.
fn say_event(e: Event<'_>) {
    match e {
        Event::Excess { path, excess } => eprintln!(
            "etcdsnap: note: {}: {}",
            etcdsnap::report::escape_controls(&path.display().to_string()),
            excess.describe()
        ),
        Event::PkiFinding(f) => say!(
            "etcdsnap: pki {:?}: {}{}: {}",
            f.severity,
            f.file.display(),
            f.subject
                .as_deref()
                .map(|s| format!(" ({s})"))
                .unwrap_or_default(),
            f.reason
        ),
        Event::Cleaned(line) => say!("etcdsnap: {line}"),
        Event::Unencrypted { archive, keys } => say!(
            "etcdsnap: warning: {} holds private keys unencrypted ({}): keep it 0600, or bundle with --encrypt-to / --passphrase-file",
            archive.display(),
            keys.join(", ")
        ),
    }
}

fn print_made(made: &Made, w: ReportFormat) -> anyhow::Result<()> {
    match w {
        ReportFormat::Json => out(&(serde_json::to_string_pretty(made)? + "\n")),
        ReportFormat::Table => {
            let mut s = format!(
                "{} {} (revision {}, sha256 {}) for cluster ID {}, etcd {}{}\n",
                if made.dry_run {
                    "would bundle"
                } else {
                    "bundled"
                },
                e(&made.snapshot),
                made.revision,
                made.snapshot_sha256,
                made.cluster_id,
                made.target_version,
                if made.encrypted {
                    ", encrypted (age)"
                } else {
                    ""
                }
            );
            if made.force_pki {
                s.push_str("  PKI errors packed anyway (--force-pki; recorded in each manifest)\n");
            }
            for a in &made.archives {
                s.push_str(&format!(
                    "  {} (ID {}) -> {} ({} entries{})\n",
                    e(&a.member),
                    a.member_id,
                    e(&a.file),
                    a.files,
                    if a.sha256.is_empty() {
                        String::new()
                    } else {
                        format!(", sha256 {}", a.sha256)
                    }
                ));
                s.push_str(&format!(
                    "    private keys: {}\n",
                    e(&a.private_keys.join(", "))
                ));
                s.push_str(&format!("    start with: etcd {}\n", e_flags(&a.flags)));
            }
            if let Some(sums) = &made.sums {
                s.push_str(&format!("  checksums: {}\n", e(sums)));
            }
            out(&s)
        }
    }
}

fn inspect(a: InspectArgs) -> anyhow::Result<Outcome> {
    let inspection = etcdsnap::bundle::inspect::inspect(&a.bundle, &a.key.key())?;
    match a.write_out {
        ReportFormat::Json => out(&(serde_json::to_string_pretty(&inspection.archives)? + "\n"))?,
        ReportFormat::Table => out(&render_inspect(&inspection.archives))?,
    }
    if inspection.unreadable {
        // exit 2: could not read (a key missing or unusable, I/O).
        bail!("could not read every archive");
    }
    Ok(if inspection.passed() {
        Outcome::Ok
    } else {
        Outcome::Failed
    })
}

fn extract(a: ExtractArgs) -> anyhow::Result<Outcome> {
    if !a.start_files {
        bail!("say what to extract: --start-files");
    }
    let x = match extract_start_files(&a.archive, &a.out, &a.key.key(), a.force) {
        Ok(x) => x,
        Err(err) if err.is_refusal() => {
            say!("etcdsnap: {err}");
            return Ok(Outcome::Failed);
        }
        Err(err) => return Err(err.into()),
    };
    let mut lines = String::new();
    for w in &x.written {
        let dest = w.path.display().to_string();
        if let Some(bak) = &w.moved_aside {
            lines.push_str(&format!(
                "  moved {} to {}\n",
                e(&dest),
                e(&bak.display().to_string())
            ));
        }
        lines.push_str(&format!("  wrote {} ({} bytes)\n", e(&dest), w.bytes));
    }
    out(&format!(
        "{}: member {} (ID {}), every check passed\n{}",
        e(&a.archive.display().to_string()),
        e(&x.manifest.member.name),
        e(&x.manifest.member.id),
        lines
    ))?;
    Ok(Outcome::Ok)
}

/// Every field of a manifest is text from the archive: each goes to the
/// terminal through [`etcdsnap::report::escape_controls`], so a crafted
/// manifest can neither clear the screen nor draw a fake check line.
fn e(s: &str) -> std::borrow::Cow<'_, str> {
    etcdsnap::report::escape_controls(s)
}

fn e_list(v: &[String]) -> String {
    v.iter()
        .map(|x| e(x).into_owned())
        .collect::<Vec<_>>()
        .join(",")
}

fn e_flags(v: &[String]) -> String {
    v.iter()
        .map(|x| e(x).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

fn render_inspect(rs: &[Inspected]) -> String {
    let mut s = String::new();
    for r in rs {
        s.push_str(&format!("{}\n", e(&r.archive)));
        if let Some(m) = &r.manifest {
            s.push_str(&format!(
                "  member {} (ID {}) of cluster {}, token \"{}\"\n  peer URLs {}, client URLs {}\n",
                e(&m.member.name),
                e(&m.member.id),
                e(&m.cluster_id),
                e(&m.initial_cluster_token),
                e_list(&m.member.peer_urls),
                e_list(&m.member.client_urls)
            ));
            s.push_str(&format!("  initial cluster {}\n", e(&m.initial_cluster)));
            if let (Some(snap), Some(rs)) = (&m.snapshot, &m.restore) {
                s.push_str(&format!(
                    "  snapshot sha256 {} (etcd {}, revision {}); db for etcd {}, status hash {:08x}, revision {}\n",
                    e(&snap.sha256),
                    e(&snap.release),
                    snap.revision,
                    e(&rs.target_version),
                    rs.db_hash,
                    rs.db_revision
                ));
            }
            if let Some(j) = &m.join {
                s.push_str(&format!(
                    "  join archive (format {}): no data and no revision; the member starts from an empty data dir and joins its running cluster (--initial-cluster-state={}, cluster version {})\n",
                    m.format,
                    e(&j.initial_cluster_state),
                    e(&j.cluster_version)
                ));
            }
            s.push_str(&format!(
                "  made by etcdsnap {}{}{}\n",
                e(&m.etcdsnap_version),
                if r.encrypted { ", encrypted (age)" } else { "" },
                if m.force_pki {
                    ", PKI errors packed anyway (--force-pki)"
                } else {
                    ""
                }
            ));
            s.push_str(&format!(
                "  data dir {}, PKI dir {}\n",
                e(&m.data_dir),
                e(&m.pki_dir)
            ));
            s.push_str("  files:\n");
            for f in &m.files {
                s.push_str(&format!(
                    "    {:04o} {}:{} {:>10} {}\n",
                    f.mode,
                    f.uid,
                    f.gid,
                    match f.kind {
                        etcdsnap::bundle::manifest::Kind::Dir => "dir".to_string(),
                        etcdsnap::bundle::manifest::Kind::File => f.size.to_string(),
                    },
                    e(&f.path)
                ));
            }
            s.push_str(&format!("  start with: etcd {}\n", e_flags(&m.flags)));
        }
        s.push_str("  checks:\n");
        for c in &r.checks {
            s.push_str(&format!(
                "    {} {}{}\n",
                if c.passed { "ok    " } else { "FAILED" },
                c.name,
                c.problem
                    .as_deref()
                    .map(|p| format!(": {}", e(p)))
                    .unwrap_or_default()
            ));
        }
    }
    s
}
