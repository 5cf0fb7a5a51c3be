//! A real Kubernetes API server (kube-apiserver v1.37.2, built by `.ci/kube`)
//! over a real etcd 3.6.16, so tests can write objects through the API with
//! kubectl and compare what etcdsnap reads from a snapshot of that etcd with
//! what the API server itself answers. Everything is killed on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::cluster::free_port;
use super::live::Etcd;

/// The Kubernetes release `.ci/kube` builds.
pub const KUBE_VERSION: &str = "1.37.2";

/// `kube-apiserver` or `kubectl` from `.ci/kube`'s cache
/// (`${ETCDSNAP_CI_CACHE:-~/.cache/etcdsnap-ci}/kube-v1.37.2/`). Missing fails
/// the test with the command that builds it.
pub fn kube_bin(name: &str) -> PathBuf {
    cached(&format!("kube-v{KUBE_VERSION}/{name}"))
}

/// The test KMS plugin (tools/kms-plugin) that `.ci/kube` builds.
pub fn kms_plugin_bin() -> PathBuf {
    cached("kms-plugin/kms-plugin")
}

fn cached(rel: &str) -> PathBuf {
    let cache = std::env::var_os("ETCDSNAP_CI_CACHE")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache/etcdsnap-ci")
        });
    let p = cache.join(rel);
    assert!(
        p.exists(),
        "{} is missing: run `bash .ci/kube` (or bash .ci/setup)",
        p.display()
    );
    p
}

/// The test KMS plugin on a unix socket, killed on drop.
pub struct KmsPlugin(Child);

impl KmsPlugin {
    /// Starts it: `api` v2 or v1, `keys` as its -keys flag, `extra` flags;
    /// waits (10 s at most) for its socket.
    pub fn start(socket: &Path, api: &str, keys: &str, extra: &[&str]) -> KmsPlugin {
        let _ = std::fs::remove_file(socket);
        let child = Command::new(kms_plugin_bin())
            .arg(format!("-socket={}", socket.display()))
            .arg(format!("-api={api}"))
            .arg(format!("-keys={keys}"))
            .args(extra)
            .stdin(Stdio::null())
            .spawn()
            .expect("start the test KMS plugin");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            assert!(Instant::now() < deadline, "the KMS plugin made no socket");
            std::thread::sleep(Duration::from_millis(50));
        }
        KmsPlugin(child)
    }
}

impl Drop for KmsPlugin {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// kube-apiserver with `args`, its output appended to `dir`'s log.
fn spawn_apiserver(bin: &Path, args: &[String], dir: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("kube-apiserver.log"))
        .unwrap();
    Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start kube-apiserver")
}

/// The admin's bearer token (group system:masters) in the token file.
const TOKEN: &str = "etcdsnap-test-admin-token";

/// An etcd 3.6.16 member and a kube-apiserver storing into it.
pub struct Kube {
    /// Killed (and waited for) first on drop; the etcd member after it.
    apiserver: Child,
    pub etcd: Etcd,
    pub port: u16,
    pub dir: tempfile::TempDir,
    kubectl: PathBuf,
    /// The API server's binary and flags, for [`Kube::restart`].
    command: (PathBuf, Vec<String>),
}

impl Drop for Kube {
    fn drop(&mut self) {
        let _ = self.apiserver.kill();
        let _ = self.apiserver.wait();
        // `etcd` drops after this, killing its member.
    }
}

impl Kube {
    /// Starts etcd, then kube-apiserver on 127.0.0.1 with token auth, RBAC,
    /// a fresh service-account key, and waits (60 s at most) for `/readyz`.
    pub fn start() -> Kube {
        Kube::start_with(&[])
    }

    /// [`Kube::start`] with `extra` flags for the API server.
    pub fn start_with(extra: &[String]) -> Kube {
        let apiserver = kube_bin("kube-apiserver");
        let kubectl = kube_bin("kubectl");
        let etcd = Etcd::start("3.6", None);
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let sa_key = d.join("sa.key");
        let o = Command::new("openssl")
            .args(["genrsa", "-out"])
            .arg(&sa_key)
            .arg("2048")
            .output()
            .expect("run openssl (apt-get install -y openssl)");
        assert!(
            o.status.success(),
            "openssl genrsa: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let tokens = d.join("tokens.csv");
        std::fs::write(
            &tokens,
            format!("{TOKEN},etcdsnap-admin,etcdsnap-admin-uid,\"system:masters\"\n"),
        )
        .unwrap();
        std::fs::write(d.join("kubeconfig"), "").unwrap();
        let port = free_port();
        let p = |x: &Path| x.to_str().unwrap().to_string();
        let args: Vec<String> = vec![
            format!("--etcd-servers={}", etcd.endpoints[0]),
            format!("--token-auth-file={}", p(&tokens)),
            "--service-account-issuer=https://kubernetes.default.svc".into(),
            format!("--service-account-key-file={}", p(&sa_key)),
            format!("--service-account-signing-key-file={}", p(&sa_key)),
            format!("--cert-dir={}", p(&d.join("certs"))),
            format!("--secure-port={port}"),
            "--bind-address=127.0.0.1".into(),
            "--advertise-address=127.0.0.1".into(),
            "--authorization-mode=RBAC".into(),
            "--enable-priority-and-fairness=false".into(),
            // No kubernetes Service endpoints for a loopback address.
            "--endpoint-reconciler-type=none".into(),
            "--service-cluster-ip-range=10.96.0.0/16".into(),
        ];
        let mut args = args;
        args.extend_from_slice(extra);
        let child = spawn_apiserver(&apiserver, &args, d);
        let mut k = Kube {
            apiserver: child,
            etcd,
            port,
            dir,
            kubectl,
            command: (apiserver, args),
        };
        k.wait_ready();
        k
    }

    /// Stops the API server and starts it again with the same flags on the
    /// same etcd (it reads its config files anew), and waits for it.
    pub fn restart(&mut self) {
        let _ = self.apiserver.kill();
        let _ = self.apiserver.wait();
        self.apiserver = spawn_apiserver(&self.command.0, &self.command.1, self.dir.path());
        self.wait_ready();
    }

    fn log_tail(&self) -> String {
        let text =
            std::fs::read_to_string(self.dir.path().join("kube-apiserver.log")).unwrap_or_default();
        let start = text.len().saturating_sub(4000);
        text.get(start..).unwrap_or("").to_string()
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let url = format!("https://127.0.0.1:{}/readyz", self.port);
        loop {
            if let Ok(Some(st)) = self.apiserver.try_wait() {
                panic!(
                    "kube-apiserver exited ({st}) before it was ready:\n{}",
                    self.log_tail()
                );
            }
            let o = Command::new("curl")
                .args(["-ksf", "-o", "/dev/null", "--max-time", "2", "-H"])
                .arg(format!("Authorization: Bearer {TOKEN}"))
                .arg(&url)
                .output()
                .expect("run curl (apt-get install -y curl)");
            if o.status.success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "kube-apiserver not ready on {url} within 60 s:\n{}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// kubectl against this API server as the admin (no kubeconfig of the
    /// user is read).
    pub fn kubectl_cmd(&self) -> Command {
        let d = self.dir.path();
        let mut c = Command::new(&self.kubectl);
        c.env("KUBECONFIG", d.join("kubeconfig"))
            .arg(format!("--server=https://127.0.0.1:{}", self.port))
            .arg(format!("--token={TOKEN}"))
            .arg("--insecure-skip-tls-verify")
            .arg(format!("--cache-dir={}", d.join("kubectl-cache").display()));
        c
    }

    /// Runs kubectl with `args`; a failure fails the test with its stderr.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        let o = self.kubectl_cmd().args(args).output().expect("run kubectl");
        assert!(
            o.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        o
    }

    /// `kubectl get ARGS -o json`, parsed.
    pub fn get_json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = vec!["get"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["-o", "json"]);
        let o = self.kubectl(&a);
        serde_json::from_slice(&o.stdout).expect("kubectl get -o json prints JSON")
    }

    /// `kubectl create -f` of the object `v` (written to a file in the
    /// API server's directory).
    pub fn create_json(&self, v: &serde_json::Value) -> Output {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let f = self
            .dir
            .path()
            .join(format!("object-{}.json", N.fetch_add(1, Ordering::Relaxed)));
        std::fs::write(&f, v.to_string()).expect("write the object");
        self.kubectl(&["create", "-f", f.to_str().expect("UTF-8 path")])
    }
}
