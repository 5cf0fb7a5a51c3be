//! `etcdsnap drill`: the restore drill in one command (restore into a
//! sandbox, boot etcd there, compare what it serves with the snapshot).

use std::path::PathBuf;
use std::time::Duration;

use super::Outcome;
use super::args::{ReportFormat, SnapshotPath};
use super::render::findings_text;
use etcdsnap::drill::{Request, drill};
use etcdsnap::live::report::ClusterReport;

/// Prove a backup by serving it: restore into a sandbox, boot etcd, compare
#[derive(clap::Args)]
#[command(
    long_about = "The restore drill a backup policy asks for, in one command. The snapshot is verified and \
restored into a private sandbox (a 0700 directory in the temporary directory), the etcd release that wrote it \
(--etcd, else etcd on PATH; another release is refused) is booted there on 127.0.0.1, and the running member is \
compared with the file: one leader, the member as restored, the revision, HashKV at the snapshot's revision \
(computed offline under that release's rules), and every live key read back through the API with its value, \
create and mod revision, version and lease (content).\n\nWith --kube-apiserver BIN, that API server is then booted on the member (a random admin token, a \
fresh service-account key, its own serving certificate, 127.0.0.1 only), and every live object of the snapshot \
must be listed through the API (discovery, the preferred version of each group, in pages); each object it does not \
serve is named with the API server's own answer to a GET of it (api-served), and -w json counts the objects per \
resource.\n\nNothing outside the sandbox is touched. The member is \
stopped and the sandbox removed on success, failure, error and Ctrl-C; the member is killed by the kernel if the \
drill itself is killed, and the next drill removes the sandbox such a drill left.\n\nExit codes: 0 every check \
passed; 1 a check failed or the snapshot is damaged; 2 could not tell, usage, set-up or I/O error (no etcd, \
another release, a member that does not start).",
    after_help = "Examples:\n  etcdsnap drill snapshot.db\n  etcdsnap drill snapshot.db --etcd /usr/local/bin/etcd --junit-out drill.xml\n  etcdsnap drill s3://etcd-backups/prod/nightly.db -w json\n  etcdsnap drill snapshot.db --etcd ./etcd --kube-apiserver ./kube-apiserver"
)]
pub struct Args {
    /// The snapshot (a path, `-`, or a URL)
    snapshot: SnapshotPath,
    /// The etcd binary to boot: the release that wrote the snapshot
    /// (default: etcd on PATH)
    #[arg(long, value_name = "BIN")]
    etcd: Option<PathBuf>,
    /// Also boot this kube-apiserver on the member and look for every
    /// object of the snapshot through the Kubernetes API
    #[arg(long, value_name = "BIN")]
    kube_apiserver: Option<PathBuf>,
    #[command(flatten)]
    prefix: super::args::PrefixOpt,
    /// How long the member may take to be ready, and each request to it
    #[arg(long, default_value = "60s", value_parser = parse_timeout)]
    timeout: Duration,
    /// Also write the findings as JUnit XML to FILE (atomically)
    #[arg(long, value_name = "FILE")]
    junit_out: Option<PathBuf>,
    /// Output format
    #[arg(short = 'w', long = "write-out", value_enum, default_value = "table")]
    write_out: ReportFormat,
    #[command(flatten)]
    remote: super::args::RemoteArgs,
}

fn parse_timeout(s: &str) -> Result<Duration, String> {
    etcdsnap::live::connect::parse_duration("--timeout", s).map_err(|e| e.to_string())
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    args.remote.configure();
    let req = Request {
        snapshot: args.snapshot.clone(),
        etcd: args.etcd.clone(),
        kube_apiserver: args.kube_apiserver.clone(),
        prefix: args.prefix.prefix.clone(),
        timeout: args.timeout,
        work_dir: None,
    };
    let progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let report = drill(&req, &mut |line| {
        if progress {
            say!("etcdsnap: {line}");
        }
    })?;
    if let Some(p) = &args.junit_out {
        etcdsnap::durable::write_atomic(p, report.junit()?.as_bytes())?;
    }
    let text = match args.write_out {
        ReportFormat::Json => serde_json::to_string_pretty(&report)? + "\n",
        ReportFormat::Table => {
            let shown = ClusterReport {
                revision: report.revision,
                findings: report.findings.clone(),
            };
            format!(
                "{}: etcd {} ({}){} served the snapshot written by etcd {} at revision {}\n{}",
                etcdsnap::report::escape_controls(&report.snapshot),
                report.etcd_version,
                etcdsnap::report::escape_controls(&report.etcd),
                report
                    .kube_apiserver_version
                    .as_ref()
                    .map(|v| format!(" and kube-apiserver {v}"))
                    .unwrap_or_default(),
                if report.snapshot_release.is_empty() {
                    "?"
                } else {
                    &report.snapshot_release
                },
                report.revision,
                findings_text(&shown, ReportFormat::Table)?
            )
        }
    };
    super::out(&text)?;
    match report.exit_code() {
        0 => Ok(Outcome::Ok),
        1 => Ok(Outcome::Failed),
        _ => Err(anyhow::anyhow!("could not tell (see the reasons above)")),
    }
}
