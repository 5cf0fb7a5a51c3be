//! `etcdsnap bundle`: one archive per member with its restored data dir (the
//! bytes `restore --out-dir` writes), the PKI files its node needs, and its
//! start flags, checked by `pki check` first; and `etcdsnap bundle inspect`,
//! which prints a bundle's manifest and the result of every check.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, bail};
use serde::Serialize;

use super::args::open;
use super::{Outcome, ReportFormat, out};
use crate::bundle::manifest::{Manifest, MemberInfo, RestoreInfo, SnapshotInfo};
use crate::bundle::read::{Key, listed_sum, open_and_check, read_sums};
use crate::bundle::write::{self, Encryption, Item};
use crate::bundle::{FORMAT_VERSION, SUMS_NAME, archive::Discard, archive_name};
use crate::cluster::flags::{client_urls, client_urls_of, env_text, start_flags};
use crate::cluster::membership::Cluster;
use crate::cluster::podspec;
use crate::durable;
use crate::durable::swap;
use crate::pki::MemberUrls;
use crate::restore::datadir::Options;
use crate::restore::source::{Opened, Refused, SourceError, verify_beside};

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
    /// age identity file, for encrypted archives
    #[arg(long, conflicts_with = "passphrase_file")]
    identity: Option<PathBuf>,
    /// File whose first line is the passphrase, for encrypted archives
    #[arg(long)]
    passphrase_file: Option<PathBuf>,
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
    /// Where the archives and SHA256SUMS go
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
    #[arg(long, value_parser = super::restore::parse_owner)]
    owner: Option<(u32, u32)>,
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
    /// age identity file, for encrypted archives
    #[arg(long, conflicts_with = "passphrase_file")]
    identity: Option<PathBuf>,
    /// File whose first line is the passphrase, for encrypted archives
    #[arg(long)]
    passphrase_file: Option<PathBuf>,
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
            // partial archives are removed (see crate::interrupt).
            if !args.make.dry_run {
                crate::interrupt::install();
            }
            let r = make(args.make);
            if let Some(sig) = crate::interrupt::requested()
                && r.is_err()
            {
                say!("etcdsnap: {sig}: the scratch files were removed; no archive was written");
            }
            r
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MadeArchive {
    member: String,
    member_id: String,
    file: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    sha256: String,
    files: usize,
    private_keys: Vec<String>,
    flags: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Made {
    dry_run: bool,
    snapshot: String,
    snapshot_sha256: String,
    revision: i64,
    target_version: &'static str,
    cluster_id: String,
    encrypted: bool,
    force_pki: bool,
    pki_findings: Vec<crate::pki::Finding>,
    archives: Vec<MadeArchive>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sums: Option<String>,
}

/// kubeadm's metrics listener, which its probes hit: loopback port 2381
/// (`[::1]` when the member is reached over IPv6).
fn metrics_url(m: &crate::cluster::membership::Member) -> String {
    let v6 = m
        .peer_urls
        .first()
        .and_then(|u| crate::cluster::flags::url_parts(u))
        .is_some_and(|(_, h, _)| h.contains(':'));
    if v6 {
        "http://[::1]:2381".into()
    } else {
        "http://127.0.0.1:2381".into()
    }
}

const DATA_DIR: &str = "/var/lib/etcd";
const PKI_DIR: &str = "/etc/kubernetes/pki";
/// The db every member ships: its item (the frame compressed once) and its
/// `status` hash and revision.
#[derive(Default)]
struct SharedDb {
    item: Option<Item>,
    status: (u32, i64),
}

/// The db's entry in every archive.
const DB_ENTRY: &str = "data/member/snap/db";

fn read_passphrase(p: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(p).with_context(|| format!("{}", p.display()))?;
    let pass = text.lines().next().unwrap_or("").to_string();
    if pass.is_empty() {
        bail!("{}: the first line (the passphrase) is empty", p.display());
    }
    Ok(pass)
}

fn make(a: MakeArgs) -> anyhow::Result<Outcome> {
    let (Some(snapshot), Some(ic), Some(token), Some(pki), Some(out_dir)) = (
        a.snapshot.as_ref(),
        a.initial_cluster.as_deref(),
        a.initial_cluster_token.as_deref(),
        a.pki.as_ref(),
        a.out.as_ref(),
    ) else {
        bail!("SNAPSHOT, --initial-cluster, --initial-cluster-token, --pki and --out are required");
    };
    if a.bump_revision.is_some_and(|b| b > 0) != a.mark_compacted {
        bail!("--mark-compacted required if --bump-revision > 0 (and the other way round)");
    }
    let cluster = Cluster::parse(ic, token)?;
    let members: Vec<_> = cluster.members.iter().collect();
    let clients = client_urls(a.client_urls.as_deref(), &members)?;
    let enc = if !a.encrypt_to.is_empty() {
        let mut rs = Vec::new();
        for r in &a.encrypt_to {
            rs.push(
                r.parse::<age::x25519::Recipient>()
                    .map_err(|e| anyhow::anyhow!("--encrypt-to {r}: not an age recipient: {e}"))?,
            );
        }
        Encryption::Recipients(rs)
    } else if let Some(p) = &a.passphrase_file {
        Encryption::Passphrase(age::secrecy::SecretString::from(read_passphrase(p)?))
    } else {
        Encryption::None
    };
    // The PKI first: it is cheap, and a bundle that would not boot is refused.
    let urls: Vec<MemberUrls> = members
        .iter()
        .map(|m| MemberUrls {
            name: m.name.clone(),
            peer_urls: m.peer_urls.clone(),
            client_urls: client_urls_of(m, clients.get(&m.name)).0,
        })
        .collect();
    let pki_report = crate::pki::check::check_dir(pki, &urls, SystemTime::now())?;
    let errors = pki_report.errors();
    for f in &pki_report.findings {
        say!(
            "etcdsnap: pki {:?}: {}{}: {}",
            f.severity,
            f.file.display(),
            f.subject
                .as_deref()
                .map(|s| format!(" ({s})"))
                .unwrap_or_default(),
            f.reason
        );
    }
    if errors > 0 && !a.force_pki {
        say!(
            "etcdsnap: not bundling: `pki check` found {errors} error(s) in {} (--force-pki packs them anyway, and the manifest records it)",
            pki.display()
        );
        return Ok(Outcome::Failed);
    }
    let layout = &pki_report.layout;
    let mut pki_files = Vec::new();
    for m in &members {
        let files = layout.node_files(&m.name, a.include_ca_key);
        if files.is_empty() {
            bail!("{}: no PKI files for member {}", pki.display(), m.name);
        }
        pki_files.push(files);
    }
    // Archives are never replaced unless asked, checked before any work.
    let names: Vec<PathBuf> = members
        .iter()
        .map(|m| out_dir.join(archive_name(&m.name, enc.is_some())))
        .collect();
    let sums_path = out_dir.join(SUMS_NAME);
    if !a.force && !a.dry_run {
        for p in names.iter().chain(std::iter::once(&sums_path)) {
            if std::fs::symlink_metadata(p).is_ok() {
                bail!("{}: exists; use --force to replace it", p.display());
            }
        }
    }
    let owner = a.owner.unwrap_or((0, 0));
    if let Some(i) = &a.image
        && !podspec::is_image_ref(i)
    {
        bail!("--image {i:?} is not an image reference");
    }
    let flags_of = |m: &crate::cluster::membership::Member| {
        start_flags(
            &cluster,
            m,
            Path::new(DATA_DIR),
            None,
            clients.get(&m.name),
            &Path::new(PKI_DIR).join("etcd"),
        )
    };
    let opts = Options {
        bump_revision: a.bump_revision.filter(|b| *b > 0),
        clear_alarms: a.clear_alarms,
        force: false,
        owner: None,
    };
    let scratch = out_dir.join(format!(".etcdsnap-bundle-staging-{}", std::process::id()));
    // The snapshot, read once for every member: verified on one core while
    // the other builds every member's data dir from it into the scratch dir
    // (restore::source). The db, the same for every member, is built once,
    // verified, and hashed and compressed once as its own zstd frame, which
    // goes into every archive; the other members stage only their .snap and
    // WAL.
    let file = open(snapshot)?;
    let stage = |o: Opened<'_>| -> anyhow::Result<SharedDb> {
        if a.dry_run {
            return Ok(SharedDb::default());
        }
        let restored = o.restored(&cluster, &opts)?;
        let src = restored.source(&cluster);
        durable::mkdir_0700(&scratch)?;
        let mut shared = SharedDb::default();
        for m in &members {
            let dir = scratch.join(&m.name);
            write::stage_data_dir(&src, m, &dir, shared.item.is_none())
                .with_context(|| format!("restoring member {}", m.name))?;
            if shared.item.is_none() {
                let db_path = dir.join("member/snap/db");
                let f = crate::input::SnapshotFile::open(&db_path)?;
                let st = crate::backend::status::status(&crate::bolt::Db::open(f.db())?)?;
                shared.status = (st.hash, st.revision);
                drop(f);
                let frame = scratch.join("db.zst-frame");
                shared.item = Some(write::frame_item(DB_ENTRY, &db_path, &frame, 0o600, owner)?);
                // Shipped from the frame: not walked again below.
                std::fs::remove_file(&db_path)
                    .with_context(|| format!("{}: removing", db_path.display()))?;
            }
        }
        Ok(shared)
    };
    if !a.dry_run {
        std::fs::create_dir_all(out_dir).with_context(|| format!("{}", out_dir.display()))?;
        for line in swap::clean_stale_prefixed(out_dir, ".etcdsnap-bundle-staging-")? {
            say!("etcdsnap: {line}");
        }
    }
    let passed = match verify_beside(&file, false, a.target_version.as_deref(), stage) {
        Ok(p) => p,
        Err(Refused { err, .. }) => {
            let _ = std::fs::remove_dir_all(&scratch);
            if let SourceError::Unsound { report, .. } = err {
                eprint!("{}", crate::cli::render::render_table(&report, true));
                eprintln!("etcdsnap: not bundling a snapshot that fails verification");
                return Ok(Outcome::Failed);
            }
            return Err(err.into());
        }
    };
    let shared = match passed.work {
        Ok(s) => s,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&scratch);
            return Err(e);
        }
    };
    let image = match (&a.image, podspec::default_image(passed.target.line())) {
        (Some(i), _) => i.clone(),
        (None, Some(i)) => i.to_string(),
        (None, None) => {
            let _ = std::fs::remove_dir_all(&scratch);
            bail!(
                "no kubeadm etcd image is known for etcd {}: give --image for the static pod",
                passed.target.line()
            );
        }
    };
    let snapshot_sha = passed.sha256.clone();
    let mut made = Made {
        dry_run: a.dry_run,
        snapshot: file.path().display().to_string(),
        snapshot_sha256: snapshot_sha.clone(),
        revision: passed.revision,
        target_version: passed.target.line(),
        cluster_id: format!("{:x}", cluster.cluster_id),
        encrypted: enc.is_some(),
        force_pki: errors > 0,
        pki_findings: pki_report.findings.clone(),
        archives: Vec::new(),
        sums: None,
    };
    if a.dry_run {
        for ((m, files), path) in members.iter().zip(&pki_files).zip(&names) {
            made.archives.push(MadeArchive {
                member: m.name.clone(),
                member_id: format!("{:x}", m.id),
                file: path.display().to_string(),
                sha256: String::new(),
                files: files.len(),
                private_keys: files
                    .iter()
                    .filter(|f| f.private_key)
                    .map(|f| format!("pki/{}", f.dest.display()))
                    .collect(),
                flags: flags_of(m),
            });
        }
        print_made(&made, a.write_out)?;
        return Ok(Outcome::Ok);
    }
    let result = (|| -> anyhow::Result<Vec<(String, String)>> {
        let mut sums = Vec::new();
        for ((m, files), path) in members.iter().zip(&pki_files).zip(&names) {
            let dir = scratch.join(&m.name);
            let (db_hash, db_revision) = shared.status;
            let flags = flags_of(m);
            let (adv_client, _) = client_urls_of(m, clients.get(&m.name));
            let mut items: Vec<Item> = write::data_items(&dir, owner)?;
            items.extend(shared.item.clone());
            let mut pki_items = Vec::new();
            for f in files {
                let mode = if f.private_key { 0o600 } else { 0o644 };
                let p = format!("pki/{}", f.dest.display());
                pki_items.push(write::file_item(&p, &f.source, mode, owner)?);
            }
            items.extend(write::parent_dirs(&pki_items, owner));
            items.extend(pki_items);
            items.push(write::bytes_item(
                "etcd.env",
                env_text(&flags).into_bytes(),
                0o600,
                owner,
            ));
            // The pod adds kubeadm's metrics listener, which its probes
            // hit; the flags (etcd.env, the manifest) leave it out, so
            // members started from them on one host do not clash on it.
            let mut pod_flags = flags.clone();
            pod_flags.push(format!("--listen-metrics-urls={}", metrics_url(m)));
            let yaml = podspec::etcd_pod(&podspec::PodInput {
                flags: &pod_flags,
                image: &image,
                line: passed.target.line(),
                data_dir: DATA_DIR,
                pki_etcd_dir: &format!("{PKI_DIR}/etcd"),
                advertise_client: &adv_client.join(","),
            })?;
            items.push(write::bytes_item(
                "etcd.yaml",
                yaml.into_bytes(),
                0o600,
                owner,
            ));
            items.sort_by(|x, y| x.entry.path.cmp(&y.entry.path));
            let manifest = Manifest {
                format: FORMAT_VERSION,
                etcdsnap_version: env!("CARGO_PKG_VERSION").to_string(),
                member: MemberInfo {
                    name: m.name.clone(),
                    id: format!("{:x}", m.id),
                    peer_urls: m.peer_urls.clone(),
                    client_urls: adv_client.clone(),
                },
                cluster_id: format!("{:x}", cluster.cluster_id),
                initial_cluster: cluster.initial_cluster.clone(),
                initial_cluster_token: cluster.token.clone(),
                snapshot: SnapshotInfo {
                    sha256: snapshot_sha.clone(),
                    revision: passed.revision,
                    release: passed.snapshot_release.line().to_string(),
                },
                restore: RestoreInfo {
                    target_version: passed.target.line().to_string(),
                    bump_revision: opts.bump_revision,
                    mark_compacted: a.mark_compacted,
                    clear_alarms: a.clear_alarms,
                    db_hash,
                    db_revision,
                },
                force_pki: errors > 0,
                data_dir: DATA_DIR.into(),
                pki_dir: PKI_DIR.into(),
                flags: flags.clone(),
                files: items.iter().map(|i| i.entry.clone()).collect(),
            };
            manifest
                .validate()
                .context("the manifest written breaks the format's rules")?;
            let sha = write::write_archive(path, &manifest, &items, &enc, a.force)?;
            let keys: Vec<String> = files
                .iter()
                .filter(|f| f.private_key)
                .map(|f| format!("pki/{}", f.dest.display()))
                .collect();
            if !enc.is_some() && !keys.is_empty() {
                say!(
                    "etcdsnap: warning: {} holds private keys unencrypted ({}): keep it 0600, or bundle with --encrypt-to / --passphrase-file",
                    path.display(),
                    keys.join(", ")
                );
            }
            let file_name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            sums.push((file_name, sha.clone()));
            made.archives.push(MadeArchive {
                member: m.name.clone(),
                member_id: format!("{:x}", m.id),
                file: path.display().to_string(),
                sha256: sha,
                files: items.len() + 1,
                private_keys: keys,
                flags,
            });
        }
        let text = write::sums_text(&sums);
        durable::write_atomic(&sums_path, text.as_bytes())?;
        durable::set_mode(&sums_path, 0o644)?;
        Ok(sums)
    })();
    let _ = std::fs::remove_dir_all(&scratch);
    result?;
    made.sums = Some(sums_path.display().to_string());
    print_made(&made, a.write_out)?;
    Ok(Outcome::Ok)
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

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Check {
    name: &'static str,
    passed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    problem: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Inspected {
    archive: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    sha256: Option<String>,
    encrypted: bool,
    checks: Vec<Check>,
    #[serde(skip_serializing_if = "Option::is_none")]
    manifest: Option<Manifest>,
}

fn inspect(a: InspectArgs) -> anyhow::Result<Outcome> {
    let key = match (&a.identity, &a.passphrase_file) {
        (Some(i), _) => Key::Identity(i.clone()),
        (None, Some(p)) => Key::Passphrase(p.clone()),
        _ => Key::None,
    };
    let meta = std::fs::metadata(&a.bundle).with_context(|| format!("{}", a.bundle.display()))?;
    let mut archives: Vec<PathBuf> = Vec::new();
    let mut results: Vec<Inspected> = Vec::new();
    let mut unreadable = false;
    if meta.is_dir() {
        let sums = read_sums(&a.bundle)?;
        let listed: Vec<&str> = sums.iter().map(|(n, _)| n.as_str()).collect();
        for (n, _) in &sums {
            archives.push(a.bundle.join(n));
        }
        // Archives SHA256SUMS does not vouch for fail.
        let mut stray = Vec::new();
        for e in std::fs::read_dir(&a.bundle)? {
            let n = e?.file_name().to_string_lossy().into_owned();
            if (n.ends_with(".tar.zst") || n.ends_with(".tar.zst.age"))
                && !listed.contains(&n.as_str())
            {
                stray.push(n);
            }
        }
        stray.sort();
        for n in stray {
            results.push(Inspected {
                archive: a.bundle.join(&n).display().to_string(),
                sha256: None,
                encrypted: n.ends_with(".age"),
                checks: vec![Check {
                    name: "listed in SHA256SUMS",
                    passed: false,
                    problem: Some(format!("{n} is not listed in {SUMS_NAME}")),
                }],
                manifest: None,
            });
        }
    } else {
        archives.push(a.bundle.clone());
    }
    for path in archives {
        let mut checks = Vec::new();
        let want = match listed_sum(&path) {
            Ok(s) => {
                checks.push(Check {
                    name: "listed in SHA256SUMS",
                    passed: true,
                    problem: None,
                });
                Some(s)
            }
            Err(e) => {
                checks.push(Check {
                    name: "listed in SHA256SUMS",
                    passed: false,
                    problem: Some(e.to_string()),
                });
                None
            }
        };
        let mut r = Inspected {
            archive: path.display().to_string(),
            sha256: None,
            encrypted: false,
            checks: Vec::new(),
            manifest: None,
        };
        match open_and_check(&path, &key, &mut Discard) {
            Ok(o) => {
                checks.push(Check {
                    name: "every entry matches manifest.json",
                    passed: true,
                    problem: None,
                });
                if let Some(w) = &want {
                    checks.push(Check {
                        name: "sha256 matches SHA256SUMS",
                        passed: *w == o.sha256,
                        problem: (*w != o.sha256)
                            .then(|| format!("sha256 {}, {SUMS_NAME} lists {w}", o.sha256)),
                    });
                }
                let ids = ids_problem(&o.manifest);
                checks.push(Check {
                    name: "member and cluster IDs match the initial cluster",
                    passed: ids.is_none(),
                    problem: ids,
                });
                r.sha256 = Some(o.sha256);
                r.encrypted = o.encrypted;
                r.manifest = Some(o.manifest);
            }
            Err(e) => {
                if !e.is_check_failure() {
                    unreadable = true;
                }
                checks.push(Check {
                    name: "every entry matches manifest.json",
                    passed: false,
                    problem: Some(e.to_string()),
                });
            }
        }
        r.checks = checks;
        results.push(r);
    }
    let passed = results.iter().all(|r| r.checks.iter().all(|c| c.passed));
    match a.write_out {
        ReportFormat::Json => out(&(serde_json::to_string_pretty(&results)? + "\n"))?,
        ReportFormat::Table => out(&render_inspect(&results))?,
    }
    Ok(if unreadable {
        // exit 2: could not read (a key missing or unusable, I/O).
        return Err(anyhow::anyhow!("could not read every archive"));
    } else if passed {
        Outcome::Ok
    } else {
        Outcome::Failed
    })
}

/// The start files of an archive, kept in memory while it is checked.
#[derive(Default)]
struct StartFiles {
    files: Vec<(String, Vec<u8>)>,
}

/// The start files are small; a larger one is refused, not held.
const MAX_START_FILE: u64 = 1 << 20;

impl crate::bundle::archive::Sink for StartFiles {
    fn manifest(&mut self, _: &Manifest) -> Result<(), String> {
        Ok(())
    }
    fn dir(&mut self, _: &crate::bundle::manifest::FileEntry) -> std::io::Result<()> {
        Ok(())
    }
    fn file(
        &mut self,
        e: &crate::bundle::manifest::FileEntry,
        data: &mut dyn std::io::Read,
    ) -> std::io::Result<()> {
        if e.path == "etcd.env" || e.path == "etcd.yaml" {
            if e.size > MAX_START_FILE {
                return Err(std::io::Error::other(format!(
                    "{}: {} bytes, more than a start file holds ({MAX_START_FILE})",
                    e.path, e.size
                )));
            }
            let mut v = Vec::new();
            std::io::Read::read_to_end(&mut std::io::Read::take(data, MAX_START_FILE), &mut v)?;
            self.files.push((e.path.clone(), v));
            Ok(())
        } else {
            std::io::copy(data, &mut std::io::sink()).map(|_| ())
        }
    }
}

fn extract(a: ExtractArgs) -> anyhow::Result<Outcome> {
    if !a.start_files {
        bail!("say what to extract: --start-files");
    }
    let key = match (&a.identity, &a.passphrase_file) {
        (Some(i), _) => Key::Identity(i.clone()),
        (None, Some(p)) => Key::Passphrase(p.clone()),
        _ => Key::None,
    };
    // Refuse before reading when a file is there and --force is not given.
    let targets = ["etcd.env", "etcd.yaml"].map(|n| a.out.join(n));
    if !a.force {
        for t in &targets {
            if std::fs::symlink_metadata(t).is_ok() {
                bail!(
                    "{}: exists; use --force to replace it (the old one is moved aside)",
                    t.display()
                );
            }
        }
    }
    let want = match listed_sum(&a.archive) {
        Ok(s) => s,
        Err(e) => {
            say!("etcdsnap: {e}");
            return Ok(Outcome::Failed);
        }
    };
    let mut sink = StartFiles::default();
    let opened = match open_and_check(&a.archive, &key, &mut sink) {
        Ok(o) => o,
        Err(e) if e.is_check_failure() => {
            say!("etcdsnap: {e}");
            return Ok(Outcome::Failed);
        }
        Err(e) => return Err(e.into()),
    };
    if opened.sha256 != want {
        say!(
            "etcdsnap: {}: sha256 {}, {SUMS_NAME} lists {want}: not extracting",
            a.archive.display(),
            opened.sha256
        );
        return Ok(Outcome::Failed);
    }
    if !a.out.exists() {
        durable::mkdir_0700(&a.out)?;
        durable::sync_path(durable::parent_of(&a.out))?;
    }
    let stamp = durable::utc_stamp();
    let mut lines = String::new();
    for (name, bytes) in &sink.files {
        let dest = a.out.join(name);
        if std::fs::symlink_metadata(&dest).is_ok() {
            let bak = a.out.join(format!("{name}.etcdsnap-bak-{stamp}"));
            std::fs::rename(&dest, &bak)
                .with_context(|| format!("{}: moving aside", dest.display()))?;
            lines.push_str(&format!(
                "  moved {} to {}\n",
                e(&dest.display().to_string()),
                e(&bak.display().to_string())
            ));
        }
        durable::write_atomic(&dest, bytes)?;
        durable::set_mode(&dest, 0o600)?;
        lines.push_str(&format!(
            "  wrote {} ({} bytes)\n",
            e(&dest.display().to_string()),
            bytes.len()
        ));
    }
    out(&format!(
        "{}: member {} (ID {}), every check passed\n{}",
        e(&a.archive.display().to_string()),
        e(&opened.manifest.member.name),
        e(&opened.manifest.member.id),
        lines
    ))?;
    Ok(Outcome::Ok)
}

fn ids_problem(m: &Manifest) -> Option<String> {
    let c = match Cluster::parse(&m.initial_cluster, &m.initial_cluster_token) {
        Ok(c) => c,
        Err(e) => return Some(format!("initialCluster: {e}")),
    };
    let Some(x) = c.members.iter().find(|x| x.name == m.member.name) else {
        return Some(format!("member {} is not in initialCluster", m.member.name));
    };
    if m.member_id() != Some(x.id) {
        return Some(format!("member ID {} is not {:x}", m.member.id, x.id));
    }
    if u64::from_str_radix(&m.cluster_id, 16).ok() != Some(c.cluster_id) {
        return Some(format!(
            "cluster ID {} is not {:x}",
            m.cluster_id, c.cluster_id
        ));
    }
    None
}

/// Every field of a manifest is text from the archive: each goes to the
/// terminal through [`crate::report::escape_controls`], so a crafted
/// manifest can neither clear the screen nor draw a fake check line.
fn e(s: &str) -> std::borrow::Cow<'_, str> {
    crate::report::escape_controls(s)
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
            s.push_str(&format!(
                "  snapshot sha256 {} (etcd {}, revision {}); db for etcd {}, status hash {:08x}, revision {}\n",
                e(&m.snapshot.sha256),
                e(&m.snapshot.release),
                m.snapshot.revision,
                e(&m.restore.target_version),
                m.restore.db_hash,
                m.restore.db_revision
            ));
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
                        crate::bundle::manifest::Kind::Dir => "dir".to_string(),
                        crate::bundle::manifest::Kind::File => f.size.to_string(),
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
