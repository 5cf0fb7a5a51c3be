//! `drill`: the restore drill a backup policy asks for, in one call. The
//! snapshot is restored into a private sandbox, the etcd release that wrote
//! it is booted there on loopback, and the running member is checked against
//! the file: one leader, the member as restored, the revision, HashKV at the
//! revision (computed offline under that release's rules), and every live key
//! read back through the API with its value and revisions (`content`).
//!
//! With a kube-apiserver (the private `api` module), that API server is booted on the member
//! and every live object of the snapshot is looked for through the
//! Kubernetes API.
//!
//! The strongest proof a backup is good is that etcd itself serves it, and
//! Kubernetes its objects; the drill gives that proof without touching any
//! cluster. Everything it starts
//! is its own: the sandbox is a 0700 directory named for the process
//! (`etcdsnap-drill-PID-*` in the temporary directory), etcd listens on
//! 127.0.0.1 only, in its own process group, and is killed by the kernel if
//! the drill dies (`PR_SET_PDEATHSIG`). On success, failure, error and
//! Ctrl-C the member is stopped and the sandbox removed; the sandboxes of
//! drills that were killed outright are removed by the next drill.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;

mod api;
pub use api::{NamespaceCount, ResourceCount};

use crate::interrupt;
use crate::live::LiveError;
use crate::live::cluster::{Finding, Verdict, content_finding, exit_of, parse_initial_cluster};
use crate::live::connect::{ConnectSpec, Live, TlsFiles};
use crate::live::report::{ClusterRunError, verify_restored};
use crate::mvcc::keyspace::{KeySpace, Latest};
use crate::restore::execute::execute;
use crate::restore::plan::{Request as RestoreRequest, RunError, plan};

/// The sandboxes' name prefix in the temporary directory.
const SANDBOX_PREFIX: &str = "etcdsnap-drill-";
/// The member's name in the sandbox.
const NAME: &str = "drill";
/// How long the member may take to stop after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// Lines of the member's log an error quotes.
const LOG_LINES: usize = 8;

/// What to drill.
#[derive(Debug, Clone)]
pub struct Request {
    /// The snapshot (a path or a URL, as every command reads).
    pub snapshot: PathBuf,
    /// The etcd binary (default: `etcd` on `PATH`); its release must be the
    /// one that wrote the snapshot.
    pub etcd: Option<PathBuf>,
    /// A kube-apiserver binary to boot on the member: every object of the
    /// snapshot is then looked for through the Kubernetes API.
    pub kube_apiserver: Option<PathBuf>,
    /// kube-apiserver's `--etcd-prefix`.
    pub prefix: String,
    /// How long each server may take to be ready, and each request.
    pub timeout: Duration,
    /// Where the sandbox goes (default: the temporary directory).
    pub work_dir: Option<PathBuf>,
}

/// What the drill found.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The snapshot, as named.
    pub snapshot: String,
    /// The etcd binary booted.
    pub etcd: String,
    /// Its version (`etcd --version`).
    pub etcd_version: String,
    /// The release that wrote the snapshot (`3.N`).
    pub snapshot_release: String,
    /// The snapshot's revision.
    pub revision: i64,
    /// The kube-apiserver booted (`v1.37.2`), when one was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kube_apiserver_version: Option<String>,
    /// One finding per check.
    pub findings: Vec<Finding>,
    /// Per resource: live objects in the snapshot and how many the API
    /// server listed (with a kube-apiserver).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<ResourceCount>,
    /// Per namespace: live objects in the snapshot and how many the API
    /// server listed (with a kube-apiserver).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<NamespaceCount>,
}

impl Report {
    /// 0 every check passed, 1 one failed, 2 something could not be told.
    pub fn exit_code(&self) -> u8 {
        exit_of(&self.findings)
    }

    /// The report as JUnit XML: one testsuite for the snapshot, one testcase
    /// per check.
    pub fn junit(&self) -> Result<String, quick_junit::SerializeError> {
        use quick_junit::{NonSuccessKind, Report as Junit, TestCase, TestCaseStatus, TestSuite};
        let mut report = Junit::new("etcdsnap drill");
        let mut suite = TestSuite::new(self.snapshot.as_str());
        for f in &self.findings {
            let status = match f.verdict {
                Verdict::Pass => TestCaseStatus::success(),
                Verdict::Skipped | Verdict::Unknown => {
                    let mut s = TestCaseStatus::skipped();
                    s.set_message(f.detail.as_str());
                    s
                }
                Verdict::Fail => {
                    let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                    s.set_message(f.detail.as_str());
                    s.set_type(f.check);
                    s
                }
            };
            let mut case = TestCase::new(f.check, status);
            case.set_classname(self.snapshot.as_str());
            suite.add_test_case(case);
        }
        report.add_test_suite(suite);
        report.to_string()
    }
}

/// Why the drill could not be run to its end (a failed check is a finding,
/// not an error).
#[derive(Debug, thiserror::Error)]
pub enum DrillError {
    /// No etcd to boot.
    #[error(
        "no etcd binary on PATH: give --etcd BIN, an etcd of the release that wrote the snapshot"
    )]
    NoEtcd,
    /// The binary does not say its version.
    #[error("{bin}: cannot tell its release (`--version`): {detail}")]
    EtcdVersion {
        /// The binary.
        bin: String,
        /// What went wrong.
        detail: String,
    },
    /// The binary is another release than the snapshot's.
    #[error(
        "{bin} is etcd {version}, but the snapshot was written by etcd {wrote}: give --etcd with an etcd {wrote} binary"
    )]
    WrongRelease {
        /// The binary.
        bin: String,
        /// Its version.
        version: String,
        /// The snapshot's release.
        wrote: String,
    },
    /// The sandbox cannot be made, or a port cannot be had.
    #[error("cannot set up the sandbox in {}: {source}", dir.display())]
    Sandbox {
        /// Where.
        dir: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The restore into the sandbox failed.
    #[error("restoring into the sandbox: {0}")]
    Restore(#[source] RunError),
    /// etcd did not start, or did not answer in time.
    #[error("{bin} did not become ready in the sandbox: {detail}{log}")]
    NotReady {
        /// The binary.
        bin: String,
        /// What was seen.
        detail: String,
        /// The end of its log, its lines joined by ` | `.
        log: String,
    },
    /// The checks could not be run.
    #[error("{0}")]
    Cluster(#[from] ClusterRunError),
    /// The member could not be asked.
    #[error("{0}")]
    Live(#[from] LiveError),
    /// The restored snapshot cannot be read back (it passed verification).
    #[error("the snapshot cannot be read: {0}")]
    Unreadable(String),
    /// Ctrl-C or SIGTERM.
    #[error("{0}; the drill's etcd was stopped and its sandbox removed")]
    Interrupted(interrupt::Interrupted),
}

impl DrillError {
    /// Whether the snapshot itself is at fault (exit 1) rather than access,
    /// set-up or the environment (exit 2).
    pub fn is_damage(&self) -> bool {
        matches!(
            self,
            DrillError::Restore(RunError::Unsound(_)) | DrillError::Unreadable(_)
        )
    }
}

/// Runs the drill; `say` gets one line per step (for progress on stderr).
pub fn drill(req: &Request, say: &mut dyn FnMut(&str)) -> Result<Report, DrillError> {
    interrupt::install();
    let interrupted = |e| DrillError::Interrupted(e);
    let etcd = match &req.etcd {
        Some(b) => b.clone(),
        None => on_path("etcd").ok_or(DrillError::NoEtcd)?,
    };
    let shown_bin = etcd.display().to_string();
    let version = etcd_version(&etcd)?;
    let kube_version = match &req.kube_apiserver {
        Some(b) => Some(api::version(b)?),
        None => None,
    };
    let work = req.work_dir.clone().unwrap_or_else(std::env::temp_dir);
    remove_stale_sandboxes(&work, say);
    let sandbox = Sandbox::new(&work)?;
    let (peer, client) = (free_port(&work)?, free_port(&work)?);
    let peer_url = format!("http://127.0.0.1:{peer}");
    let client_url = format!("http://127.0.0.1:{client}");
    let initial_cluster = format!("{NAME}={peer_url}");

    say(&format!(
        "restoring {} into the sandbox {}",
        crate::remote::display_name(&req.snapshot),
        sandbox.path.display()
    ));
    let data_dir = sandbox.path.join("member.etcd");
    let mut restore = RestoreRequest::new(&req.snapshot, &initial_cluster);
    restore.name = Some(NAME.to_string());
    restore.data_dir = Some(data_dir.clone());
    restore.initial_advertise_peer_urls = Some(peer_url.clone());
    restore.client_urls = Some(client_url.clone());
    let planned = plan(&restore, &mut |_| {}).map_err(DrillError::Restore)?;
    let restored = match execute(&planned, &mut |_| {}) {
        Ok(r) => r,
        Err(RunError::Unsound(report)) => {
            return Ok(unsound(req, &shown_bin, &version, &report));
        }
        Err(e) => return Err(DrillError::Restore(e)),
    };
    interrupt::check().map_err(interrupted)?;
    let wrote = restored.snapshot_release.to_string();
    if release_line(&version) != Some(wrote.as_str()) {
        return Err(DrillError::WrongRelease {
            bin: shown_bin,
            version,
            wrote,
        });
    }

    say(&format!("booting etcd {version} on {client_url}"));
    let log_path = sandbox.path.join("etcd.log");
    let mut cmd = Command::new(&etcd);
    cmd.arg("--name")
        .arg(NAME)
        .arg("--data-dir")
        .arg(&data_dir)
        .args(["--listen-client-urls", &client_url])
        .args(["--advertise-client-urls", &client_url])
        .args(["--listen-peer-urls", &peer_url])
        .args(["--initial-advertise-peer-urls", &peer_url])
        .args(["--initial-cluster", &initial_cluster])
        .args([
            "--initial-cluster-token",
            &planned.cluster.token,
            "--listen-metrics-urls",
            "",
        ])
        .env_remove("ETCD_DATA_DIR");
    let mut member = spawn_guarded(cmd, &log_path, &shown_bin)?;

    let live = Live::new(ConnectSpec {
        endpoints: vec![client_url.clone()],
        tls: TlsFiles::default(),
        dial_timeout: Duration::from_secs(2),
        command_timeout: req.timeout,
    })?;
    wait_ready(
        &live,
        &client_url,
        &mut member,
        req.timeout,
        &shown_bin,
        &log_path,
    )?;
    say("comparing what etcd serves with the snapshot");

    let db = crate::bolt::Db::open(planned.file.db())
        .map_err(|e| DrillError::Unreadable(e.to_string()))?;
    let want = parse_initial_cluster(&initial_cluster).ok();
    let mut report = verify_restored(&live, &db, want, None)?;
    interrupt::check().map_err(interrupted)?;
    report
        .findings
        .push(content(&live, &client_url, &db, report.revision)?);
    let (mut resources, mut namespaces) = (Vec::new(), Vec::new());
    if let Some(bin) = &req.kube_apiserver {
        interrupt::check().map_err(interrupted)?;
        say(&format!(
            "booting kube-apiserver {} on the member",
            kube_version.as_deref().unwrap_or("?")
        ));
        let mut apiserver = api::boot(bin, &sandbox.path, &client_url, &req.prefix, req.timeout)?;
        say("listing every resource of the snapshot through the API");
        let (finding, counts) = api::served(&apiserver, &db, report.revision, &req.prefix)?;
        report.findings.push(finding);
        (resources, namespaces) = counts;
        apiserver.stop();
    }
    member.stop();
    interrupt::check().map_err(interrupted)?;
    Ok(Report {
        snapshot: crate::remote::display_name(&req.snapshot),
        etcd: shown_bin,
        etcd_version: version,
        snapshot_release: wrote,
        revision: report.revision,
        kube_apiserver_version: kube_version,
        findings: report.findings,
        resources,
        namespaces,
    })
}

/// Starts `cmd` with its output in `log`, in its own process group (a
/// terminal's Ctrl-C reaches the drill, which stops it) and killed by the
/// kernel if the drill dies first; stopped when the guard drops.
fn spawn_guarded(mut cmd: Command, log: &Path, bin: &str) -> Result<Running, DrillError> {
    let setup = |source| DrillError::Sandbox {
        dir: crate::durable::parent_of(log).to_path_buf(),
        source,
    };
    let out = std::fs::File::create(log).map_err(setup)?;
    cmd.stdin(Stdio::null())
        .stdout(out.try_clone().map_err(setup)?)
        .stderr(out);
    // SAFETY: setpgid and prctl are async-signal-safe; nothing else runs
    // between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::setpgid(0, 0);
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(|e| DrillError::NotReady {
        bin: bin.to_string(),
        detail: format!("cannot start it: {e}"),
        log: String::new(),
    })?;
    Ok(Running { child })
}

/// The report of a snapshot that fails verification: nothing is booted.
fn unsound(req: &Request, bin: &str, version: &str, report: &crate::verify::Report) -> Report {
    let findings = report
        .checks
        .iter()
        .filter(|c| c.status == crate::verify::CheckStatus::Failed)
        .map(|c| Finding {
            check: "verify",
            member: None,
            verdict: Verdict::Fail,
            detail: format!(
                "{}: {}{}",
                c.name,
                c.detail,
                c.problems
                    .first()
                    .map(|p| format!(" ({p})"))
                    .unwrap_or_default()
            ),
        })
        .collect();
    Report {
        snapshot: crate::remote::display_name(&req.snapshot),
        etcd: bin.to_string(),
        etcd_version: version.to_string(),
        snapshot_release: String::new(),
        revision: report.summary.keyspace.as_ref().map_or(0, |k| k.revision),
        kube_apiserver_version: None,
        findings,
        resources: Vec::new(),
        namespaces: Vec::new(),
    }
}

/// Every live key of the snapshot read back from the member at the
/// snapshot's revision: value, revisions, version and lease equal, nothing
/// more.
fn content(
    live: &Live,
    endpoint: &str,
    db: &crate::bolt::Db<'_>,
    revision: i64,
) -> Result<Finding, DrillError> {
    let ks = KeySpace::open(db).map_err(ClusterRunError::from)?;
    let mut keys = Vec::new();
    ks.latest(Some(revision), |l| {
        if let Latest::Live(r) = l {
            keys.push(r.kv);
        }
        std::ops::ControlFlow::Continue(())
    })
    .map_err(ClusterRunError::from)?;
    keys.sort_by(|a, b| a.key.cmp(b.key));
    let m = live.connect(endpoint)?;
    Ok(content_finding(live, &m, NAME, revision, revision, &keys))
}

/// Polls the member's Status until it answers with a leader, it exits, the
/// timeout passes or a signal comes.
fn wait_ready(
    live: &Live,
    endpoint: &str,
    member: &mut Running,
    timeout: Duration,
    bin: &str,
    log: &Path,
) -> Result<(), DrillError> {
    let start = Instant::now();
    let not_ready = |detail: String| DrillError::NotReady {
        bin: bin.to_string(),
        detail,
        log: log_tail(log),
    };
    loop {
        interrupt::check().map_err(DrillError::Interrupted)?;
        if let Ok(Some(status)) = member.child.try_wait() {
            return Err(not_ready(format!("it exited ({status})")));
        }
        match live.connect(endpoint) {
            Ok(m) if m.status.leader() != 0 => return Ok(()),
            Ok(_) | Err(_) if start.elapsed() < timeout => {
                std::thread::sleep(Duration::from_millis(100))
            }
            Ok(_) => return Err(not_ready(format!("no leader after {timeout:?}"))),
            Err(e) => return Err(not_ready(format!("no answer after {timeout:?}: {e}"))),
        }
    }
}

/// The last lines of the member's log, indented, for an error.
fn log_tail(log: &Path) -> String {
    let mut text = String::new();
    let Ok(f) = std::fs::File::open(log) else {
        return text;
    };
    let _ = f.take(1 << 20).read_to_string(&mut text);
    let lines: Vec<&str> = text.lines().collect();
    let tail = &lines[lines.len().saturating_sub(LOG_LINES)..];
    if tail.is_empty() {
        return String::new();
    }
    let escaped: Vec<String> = tail
        .iter()
        .map(|l| crate::report::escape_controls(l).into_owned())
        .collect();
    format!("; the end of its log: {}", escaped.join(" | "))
}

/// The release line (`3.N`) of an `etcd --version` version.
fn release_line(version: &str) -> Option<&str> {
    let mut parts = version.splitn(3, '.');
    let (major, minor) = (parts.next()?, parts.next()?);
    let len = major.len() + 1 + minor.len();
    (major == "3").then(|| &version[..len])
}

/// The version `etcd --version` prints (`etcd Version: 3.5.1`).
fn etcd_version(bin: &Path) -> Result<String, DrillError> {
    let bad = |detail: String| DrillError::EtcdVersion {
        bin: bin.display().to_string(),
        detail,
    };
    let out = Command::new(bin)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| bad(e.to_string()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("etcd Version: "))
        .map(|v| v.trim().to_string())
        .filter(|v| release_line(v).is_some())
        .ok_or_else(|| {
            bad(format!(
                "it printed {:?}",
                text.lines().next().unwrap_or("")
            ))
        })
}

/// `name` found in the directories of `PATH`.
fn on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p).map(|d| d.join(name)).find(|f| {
            std::fs::metadata(f).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

/// A loopback port free now (the member binds it a moment later).
fn free_port(work: &Path) -> Result<u16, DrillError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|source| DrillError::Sandbox {
            dir: work.to_path_buf(),
            source,
        })
}

/// The sandbox: removed when dropped.
struct Sandbox {
    path: PathBuf,
}

impl Sandbox {
    fn new(work: &Path) -> Result<Sandbox, DrillError> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("{SANDBOX_PREFIX}{}-", std::process::id()))
            .tempdir_in(work)
            .map_err(|source| DrillError::Sandbox {
                dir: work.to_path_buf(),
                source,
            })?;
        // Kept by path: dropped (removed) by this guard after the member stopped.
        Ok(Sandbox { path: dir.keep() })
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// The booted member: stopped when dropped.
struct Running {
    child: Child,
}

impl Running {
    /// SIGTERM to its group, then SIGKILL after the grace period; waits.
    fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: signalling the process group our child leads.
        unsafe { libc::kill(-pid, libc::SIGTERM) };
        let start = Instant::now();
        while start.elapsed() < STOP_GRACE {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // SAFETY: as above.
        unsafe { libc::kill(-pid, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Removes the sandboxes of drills whose process is gone (killed outright:
/// their etcd died with them).
fn remove_stale_sandboxes(work: &Path, say: &mut dyn FnMut(&str)) {
    let Ok(entries) = std::fs::read_dir(work) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(SANDBOX_PREFIX)) else {
            continue;
        };
        let Some(pid) = rest
            .split('-')
            .next()
            .and_then(|p| p.parse::<libc::pid_t>().ok())
        else {
            continue;
        };
        // SAFETY: signal 0 only asks whether the process exists.
        let gone = pid > 0
            && unsafe { libc::kill(pid, 0) } != 0
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
        if gone
            && e.file_type().is_ok_and(|t| t.is_dir())
            && std::fs::remove_dir_all(e.path()).is_ok()
        {
            say(&format!(
                "removed {}, left by a drill that was killed",
                e.path().display()
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_lines() {
        assert_eq!(release_line("3.5.1"), Some("3.5"));
        assert_eq!(release_line("3.10.0-rc.1"), Some("3.10"));
        assert_eq!(release_line("2.3.8"), None);
        assert_eq!(release_line("3"), None);
    }
}
