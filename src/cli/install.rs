//! `etcdsnap install`: one member's bundle archive placed on its node — its
//! digest held against `SHA256SUMS` (or `--sha256`) and its member against
//! the node before anything is written, then checked entry by entry against
//! its manifest while it is staged, the data dir swapped in as `restore`
//! does and the PKI files placed with old ones moved aside; the start flags
//! printed for where things went. A rerun over the same, unchanged install
//! says so and writes nothing. User guide: docs/guide/install.md.

use std::path::PathBuf;

use super::args::restore::key;
use super::{Outcome, ReportFormat, out};
use etcdsnap::bundle::install::{Options, Report, install};
use etcdsnap::restore::owner::Owner;

const INSTALL_EXAMPLES: &str = "Examples:
  etcdsnap install m1.tar.zst.age --identity key.txt --owner 2001:2001
  etcdsnap install s3://backups/bundles/m1.tar.zst.age --identity key.txt
  etcdsnap install m1.tar.zst --root /mnt/image --dry-run";

/// Check a member's bundle archive and place its data dir and PKI files
#[derive(clap::Args)]
#[command(after_help = INSTALL_EXAMPLES)]
pub struct Args {
    /// The member's archive (`<name>.tar.zst` or `.tar.zst.age`), with
    /// SHA256SUMS beside it (or give --sha256); in a bucket
    /// (`s3://BUCKET/DIR/m1.tar.zst`, also gs://, az://) it is copied with
    /// the SHA256SUMS beside it into a private temporary directory first
    bundle: PathBuf,
    /// Install into the tree at this directory (an image, a mounted disk):
    /// the paths below are resolved inside it as chroot would, symlinks too
    #[arg(long)]
    root: Option<PathBuf>,
    /// The data dir (only `<data-dir>/member` is replaced; a mount point or
    /// a symlink stays one)
    #[arg(long, default_value = "/var/lib/etcd")]
    data_dir: PathBuf,
    /// The PKI dir, kubeadm's (`etcd/server.crt`… below it)
    #[arg(long, default_value = "/etc/kubernetes/pki")]
    pki_dir: PathBuf,
    /// chown what is placed, as UID:GID (default: the owner the bundle records)
    #[arg(long)]
    owner: Option<Owner>,
    /// age identity file, for an encrypted archive
    #[arg(long, conflicts_with = "passphrase_file")]
    identity: Option<PathBuf>,
    /// File whose first line is the passphrase, for an encrypted archive
    #[arg(long)]
    passphrase_file: Option<PathBuf>,
    /// Replace an existing member dir (moved aside to
    /// `member.etcdsnap-bak-<UTC time>`, never deleted)
    #[arg(long)]
    force: bool,
    /// Check the archive and print the plan; write nothing
    #[arg(long)]
    dry_run: bool,
    /// The archive's sha256 (64 hex digits), when no SHA256SUMS is beside
    /// it (one that is must agree)
    #[arg(long, value_name = "DIGEST")]
    sha256: Option<String>,
    /// The member this node is: refuses another member's archive, and
    /// confirms one whose URLs name neither this node's addresses nor its
    /// hostname
    #[arg(long, value_name = "NAME")]
    as_member: Option<String>,
    /// Output format
    #[arg(short = 'w', long = "write-out", value_enum, default_value = "table")]
    write_out: ReportFormat,
    #[command(flatten)]
    remote: super::args::RemoteArgs,
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    args.remote.configure();
    let key = key(args.identity.as_ref(), args.passphrase_file.as_ref());
    let opts = Options {
        root: args.root.clone(),
        data_dir: args.data_dir.clone(),
        pki_dir: args.pki_dir.clone(),
        owner: args.owner,
        key,
        force: args.force,
        dry_run: args.dry_run,
        sha256: args.sha256.clone(),
        as_member: args.as_member.clone(),
    };
    // Ctrl-C or SIGTERM while extracting or staging: what was staged is
    // removed and the target left as it was (see etcdsnap::interrupt).
    if !args.dry_run {
        etcdsnap::interrupt::install();
    }
    // An archive in a bucket: copied with the SHA256SUMS beside it into a
    // private directory first, then installed from there with every check.
    #[cfg(feature = "remote")]
    let fetched = match args.bundle.to_str() {
        Some(url) if etcdsnap::remote::is_remote(&args.bundle) => {
            let f = etcdsnap::remote::named::fetch_with_sums(url)?;
            if !f.sums && args.sha256.is_none() {
                anyhow::bail!(
                    "{}: no SHA256SUMS beside it to check it against: give --sha256",
                    etcdsnap::remote::redact(url)
                );
            }
            Some(f)
        }
        _ => None,
    };
    #[cfg(feature = "remote")]
    let archive = fetched
        .as_ref()
        .map_or(args.bundle.clone(), |f| f.path.clone());
    #[cfg(not(feature = "remote"))]
    let archive = args.bundle.clone();
    let result = install(&archive, &opts);
    // The report names the object, not its private copy.
    #[cfg(feature = "remote")]
    let result = result.map(|mut r| {
        if fetched.is_some() {
            r.archive = etcdsnap::remote::display_name(&args.bundle);
        }
        r
    });
    if let Some(sig) = etcdsnap::interrupt::requested() {
        match &result {
            Err(_) => say!(
                "etcdsnap: {sig}: what was being staged was removed; the data dir and the PKI are as they were"
            ),
            Ok(_) => say!("etcdsnap: {sig} came after the swap: the install was completed"),
        }
    }
    let report = match result {
        Ok(r) => r,
        Err(e) if e.is_check_failure() => {
            say!("etcdsnap: install refused: {e}");
            say!("etcdsnap: nothing was changed");
            return Ok(Outcome::Failed);
        }
        Err(e) => {
            return Err(
                anyhow::Error::new(e).context("nothing was installed: the target is as it was")
            );
        }
    };
    for line in &report.cleaned {
        say!("etcdsnap: {line}");
    }
    for w in &report.warnings {
        say!("etcdsnap: warning: {w}");
    }
    match args.write_out {
        ReportFormat::Json => out(&(serde_json::to_string_pretty(&report)? + "\n"))?,
        ReportFormat::Table => out(&render(&report))?,
    }
    Ok(if report.refusal.is_some() {
        Outcome::Failed
    } else {
        Outcome::Ok
    })
}

/// What the member's data is: the revision restored, or, for a join
/// archive, none (the member syncs from its running cluster).
fn what(r: &Report) -> String {
    match (&r.join, r.revision) {
        (Some(j), _) => format!(
            "a join archive (no data, no revision: it joins the running cluster, version {})",
            j.cluster_version
        ),
        (None, Some(rev)) => format!("revision {rev}"),
        (None, None) => "no revision".into(),
    }
}

/// Where the member's data goes: `<data dir>/member`, or for a join
/// archive the data dir, left empty.
fn data_line(r: &Report) -> String {
    if r.join.is_some() {
        format!(
            "  data dir: {} (empty: etcd creates the member when it joins)\n",
            r.data_dir
        )
    } else {
        format!("  data dir: {}/member\n", r.data_dir)
    }
}

fn render(r: &Report) -> String {
    if r.already_installed {
        let mut s = format!(
            "already installed: member {} (ID {}) of cluster {}, {}, from {}\n  archive sha256 {} matches {}; the {} and PKI files in place are this archive's, unchanged since; nothing written\n{}  pki dir: {}\n",
            r.member,
            r.member_id,
            r.cluster_id,
            what(r),
            r.archive,
            r.sha256,
            r.vouched_by,
            if r.join.is_some() {
                "empty data dir"
            } else {
                "member"
            },
            data_line(r),
            r.pki_dir
        );
        s.push_str(&format!("  start with: etcd {}\n", r.flags.join(" ")));
        return s;
    }
    let mut s = format!(
        "{} member {} (ID {}) of cluster {}, {}, from {}\n  archive sha256 {} matches {}; every entry matches manifest.json{}\n  this node: {}\n",
        if r.dry_run {
            "would install"
        } else {
            "installed"
        },
        r.member,
        r.member_id,
        r.cluster_id,
        what(r),
        r.archive,
        r.sha256,
        r.vouched_by,
        if r.encrypted {
            " (decrypted with age)"
        } else {
            ""
        },
        r.node
    );
    s.push_str(&data_line(r));
    for b in &r.data_moved_aside {
        s.push_str(&format!("    the old member moved aside to {b}\n"));
    }
    if let Some(why) = &r.refusal {
        s.push_str(&format!("    refused: {why}\n"));
    }
    s.push_str(&format!("  pki dir: {}\n", r.pki_dir));
    for p in &r.pki_files {
        s.push_str(&format!("    {}", p.dest));
        if let Some(b) = &p.moved_aside {
            s.push_str(&format!(" (the old one moved aside to {b})"));
        }
        s.push('\n');
    }
    s.push_str(&format!("  start with: etcd {}\n", r.flags.join(" ")));
    s
}
