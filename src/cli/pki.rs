//! `etcdsnap pki check` and `etcdsnap pki issue`: etcd's TLS files judged
//! offline as Go's TLS will judge them when the members start, and new
//! member certificates signed by the cluster's own CA when members move.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::bail;

use super::{Outcome, ReportFormat, out};
use etcdsnap::pki::check::{Report, check_dir};
use etcdsnap::pki::issue::{Action, IssueOptions, Issued, issue};
use etcdsnap::pki::layout::Kind;
use etcdsnap::pki::{MemberUrls, Severity};

const PKI_EXAMPLES: &str = "Examples:
  # a copy of /etc/kubernetes/pki, judged for the members' new addresses:
  etcdsnap pki check ./pki --initial-cluster m1=https://10.0.0.9:2380,m2=https://10.0.0.10:2380
  # the certificates as they will be in 60 days:
  etcdsnap pki check ./pki --at 2027-01-30T00:00:00Z -w json
  # new member certificates signed by the existing etcd CA:
  etcdsnap pki issue --ca-dir ./pki --initial-cluster m1=https://10.0.0.9:2380 --out ./new-pki";

/// Check and issue etcd's TLS certificates (kubeadm and GKE on-prem layouts)
#[derive(clap::Args)]
#[command(after_help = PKI_EXAMPLES)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    Check(CheckArgs),
    Issue(IssueArgs),
}

const CHECK_EXAMPLES: &str = "Examples:
  etcdsnap pki check /backup/etc-kubernetes-pki
  etcdsnap pki check ./pki --initial-cluster m1=https://10.0.0.9:2380,m2=https://10.0.0.10:2380,m3=https://10.0.0.11:2380
  etcdsnap pki check ./pki --initial-cluster m1=https://10.0.0.9:2380 --client-urls m1=https://etcd-1.example:2379
  etcdsnap pki check ./pki --at 2027-06-01T00:00:00Z -w json

Layouts, recognised by file names: kubeadm's /etc/kubernetes/pki (etcd/ca.crt, etcd/server.*, etcd/peer.*,
etcd/healthcheck-client.*, apiserver-etcd-client.*) or its etcd/ subdirectory; GKE on-prem's etcdCA.crt,
etcd.crt, etcd.key; and PKI_DIR/<member name>/ holding one of those per member (shared files such as the
CA taken from PKI_DIR).

Exit codes: 0 no errors (warnings alone: 0); 1 an error finding; 2 could not run (no PKI there, bad flags).";

/// Check every certificate and key of a PKI as etcd's Go TLS will judge them
///
/// Each certificate: it parses (PEM or DER; RSA, ECDSA, Ed25519 keys in
/// PKCS#1, SEC1 or PKCS#8), it is valid at --at (expired or not yet valid:
/// error; expiring within 30 days: warning), its signature verifies with
/// the etcd CA's key, its private key matches it, its extended key usages
/// fit its role; key files not group/world readable (warning). With
/// --initial-cluster, each member's peer certificate must cover its peer
/// URL hosts and its server certificate its client URL hosts, as Go's
/// VerifyHostname matches them.
#[derive(clap::Args)]
#[command(after_help = CHECK_EXAMPLES)]
pub struct CheckArgs {
    /// The PKI directory (a copy of /etc/kubernetes/pki, its etcd/ subdir,
    /// GKE on-prem's certificates dir, or one subdirectory per member)
    pki_dir: PathBuf,
    /// Every member as NAME=PEER_URL, comma-separated (as etcd's flag);
    /// without it the per-member SAN checks are skipped
    #[arg(long)]
    initial_cluster: Option<String>,
    /// Client URLs each member serves, as NAME=URL,...; default as restore
    /// and bundle start members: https://<peer host>:2379 and loopback
    #[arg(long)]
    client_urls: Option<String>,
    /// Judge validity at this time (RFC 3339, e.g. 2027-01-30T00:00:00Z)
    /// instead of now
    #[arg(long, value_parser = parse_time)]
    at: Option<SystemTime>,
    /// Output format
    #[arg(short = 'w', long = "write-out", value_enum, default_value = "table")]
    write_out: ReportFormat,
}

const ISSUE_EXAMPLES: &str = "Examples:
  # members moved to new addresses: certificates for them, signed by the cluster's etcd CA
  etcdsnap pki issue --ca-dir /backup/etc-kubernetes-pki \\
    --initial-cluster m1=https://10.0.0.9:2380,m2=https://10.0.0.10:2380,m3=https://10.0.0.11:2380 \\
    --out ./new-pki
  etcdsnap pki check ./new-pki --initial-cluster m1=https://10.0.0.9:2380,m2=https://10.0.0.10:2380,m3=https://10.0.0.11:2380

Writes PKI_DIR/etcd/ca.crt (the CA certificate, shared) and for each member
PKI_DIR/<name>/etcd/{server,peer,healthcheck-client}.{crt,key}: keys 0600, certificates 0644, directories 0755.
Keys follow the CA's type: RSA-2048 (PKCS#1) for an RSA CA, ECDSA P-256 (SEC1) for an ECDSA CA.";

/// Issue member certificates signed by the cluster's existing etcd CA
///
/// kubeadm's profiles: server and peer certificates with CN = member name,
/// serverAuth and clientAuth, SANs = DNS the member name and localhost (and
/// URL hosts that are names), IP the URL hosts, 127.0.0.1 and ::1; the
/// healthcheck client kube-etcd-healthcheck-client and kube-apiserver's
/// client kube-apiserver-etcd-client (<name>/apiserver-etcd-client.*) with
/// clientAuth. Random serials; NotBefore 5 minutes ago. Refused: a CA that
/// is expired or not yet valid, --days past the CA's end, URL hosts no SAN
/// can match (wildcards, IPv6 zones, non-ASCII names). Nothing existing is overwritten
/// without --force; with it, old files are moved aside as
/// <file>.etcdsnap-bak-<UTC time>. Keys are never printed.
#[derive(clap::Args)]
#[command(after_help = ISSUE_EXAMPLES)]
pub struct IssueArgs {
    /// A PKI directory holding the etcd CA certificate and its key (any
    /// layout pki check recognises: etcd/ca.{crt,key}, ca.{crt,key}, etcdCA.*)
    #[arg(long)]
    ca_dir: PathBuf,
    /// Every member as NAME=PEER_URL, comma-separated (as etcd's flag)
    #[arg(long)]
    initial_cluster: String,
    /// Client URLs each member serves, as NAME=URL,...; default
    /// https://<peer host>:2379 and loopback
    #[arg(long)]
    client_urls: Option<String>,
    /// Where to write (created if missing)
    #[arg(long)]
    out: PathBuf,
    /// Validity in days
    #[arg(long, default_value_t = 365)]
    days: u32,
    /// Replace existing files (moved aside first, never deleted)
    #[arg(long)]
    force: bool,
    /// Output format
    #[arg(short = 'w', long = "write-out", value_enum, default_value = "table")]
    write_out: ReportFormat,
}

fn parse_time(s: &str) -> Result<SystemTime, String> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("{s:?} is not an RFC 3339 time (2027-01-30T00:00:00Z): {e}"))?;
    let secs = t.unix_timestamp();
    let base = SystemTime::UNIX_EPOCH;
    Ok(if secs >= 0 {
        base + std::time::Duration::from_secs(secs as u64)
    } else {
        base - std::time::Duration::from_secs(secs.unsigned_abs())
    })
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    match args.command {
        Command::Check(a) => run_check(a),
        Command::Issue(a) => run_issue(a),
    }
}

fn run_check(a: CheckArgs) -> anyhow::Result<Outcome> {
    let ms = match &a.initial_cluster {
        Some(ic) => MemberUrls::from_flags(ic, a.client_urls.as_deref())?,
        None if a.client_urls.is_some() => bail!("--client-urls needs --initial-cluster"),
        None => Vec::new(),
    };
    let at = a.at.unwrap_or_else(SystemTime::now);
    let report = check_dir(&a.pki_dir, &ms, at)?;
    match a.write_out {
        ReportFormat::Json => out(&format!("{}\n", serde_json::to_string_pretty(&report)?))?,
        ReportFormat::Table => out(&table(&report, &a.pki_dir))?,
    }
    Ok(if report.errors() > 0 {
        Outcome::Failed
    } else {
        Outcome::Ok
    })
}

fn rel(p: &Path, base: &Path) -> String {
    p.strip_prefix(base).unwrap_or(p).display().to_string()
}

/// The findings as aligned columns, then the notes and a verdict line.
fn table(r: &Report, base: &Path) -> String {
    let esc = |s: &str| etcdsnap::report::escape_controls(s).into_owned();
    let mut rows: Vec<[String; 5]> = vec![[
        "SEVERITY".into(),
        "FILE".into(),
        "MEMBER".into(),
        "SUBJECT".into(),
        "REASON".into(),
    ]];
    for f in &r.findings {
        rows.push([
            match f.severity {
                Severity::Error => "error".into(),
                Severity::Warning => "warning".into(),
            },
            esc(&rel(&f.file, base)),
            esc(f.member.as_deref().unwrap_or("-")),
            esc(f.subject.as_deref().unwrap_or("-")),
            esc(&f.reason),
        ]);
    }
    let mut s = String::new();
    if !r.findings.is_empty() {
        let mut w = [0usize; 4];
        for row in &rows {
            for (i, c) in row.iter().take(4).enumerate() {
                w[i] = w[i].max(c.chars().count());
            }
        }
        for row in &rows {
            for (i, c) in row.iter().enumerate() {
                if i < 4 {
                    s.push_str(&format!("{c:<width$}  ", width = w[i]));
                } else {
                    s.push_str(c);
                }
            }
            s.push('\n');
        }
    }
    for n in &r.notes {
        s.push_str(&format!("note: {n}\n"));
    }
    let kind = |k: Kind| match k {
        Kind::Kubeadm => "kubeadm layout",
        Kind::GkeOnPrem => "GKE on-prem layout",
    };
    let layout = match (&r.layout.top, r.layout.members.len()) {
        (Some(t), 0) => kind(t.kind).to_string(),
        (Some(t), n) => format!("{}, {n} member subdirectories", kind(t.kind)),
        (None, n) => format!("{n} member subdirectories"),
    };
    s.push_str(&format!(
        "{}: {} checked ({layout}): {}, {}\n",
        esc(&base.display().to_string()),
        plural(r.certificates.len(), "certificate"),
        plural(r.errors(), "error"),
        plural(r.warnings(), "warning")
    ));
    s
}

fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

fn run_issue(a: IssueArgs) -> anyhow::Result<Outcome> {
    let ms = MemberUrls::from_flags(&a.initial_cluster, a.client_urls.as_deref())?;
    let issued = issue(&IssueOptions {
        ca_dir: a.ca_dir.clone(),
        out: a.out.clone(),
        members: ms,
        days: a.days,
        force: a.force,
        now: SystemTime::now(),
    })?;
    match a.write_out {
        ReportFormat::Json => out(&format!("{}\n", serde_json::to_string_pretty(&issued)?))?,
        ReportFormat::Table => out(&issue_table(&issued, &a.out))?,
    }
    Ok(Outcome::Ok)
}

fn issue_table(i: &Issued, base: &Path) -> String {
    let esc = |s: &str| etcdsnap::report::escape_controls(s).into_owned();
    let mut s = format!(
        "signed by {} ({} keys), valid {} to {}\n",
        esc(&i.ca.display().to_string()),
        i.key_type,
        i.not_before,
        i.not_after
    );
    for f in &i.files {
        let action = match &f.action {
            Action::Created => "created".to_string(),
            Action::Unchanged => "unchanged".to_string(),
            Action::Replaced { backup } => {
                format!("replaced (old one moved to {})", rel(backup, base))
            }
        };
        let mut line = format!("{:04o}  {}  {action}", f.mode, rel(&f.path, base));
        if let Some(sub) = &f.subject {
            line.push_str(&format!("  {sub}"));
        }
        if !f.sans.is_empty() {
            line.push_str(&format!("  [{}]", f.sans.join(", ")));
        }
        s.push_str(&esc(&line));
        s.push('\n');
    }
    s
}
