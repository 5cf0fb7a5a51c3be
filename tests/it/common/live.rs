//! Real etcd members kept running for the live-command tests (tests/it/live.rs,
//! member.rs, member_tls.rs): one fresh member, a cluster booted from data
//! dirs, or a new kubeadm-like cluster with client and peer TLS where each
//! member has its own node root; killed on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::cluster::free_port;
use super::{etcd_bin, pki};

/// (etcd, etcdctl) of an etcd line ("3.4" … "3.7"; see `etcd_bin`).
pub fn bins(line: &str) -> (PathBuf, PathBuf) {
    (etcd_bin(line, "etcd"), etcd_bin(line, "etcdctl"))
}

/// TLS files of a running cluster: CA, client cert, client key.
#[derive(Clone)]
pub struct Tls {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// One member as its node has it. Index `i` of `Etcd::members` is the
/// member of `Etcd::endpoints[i]` and of `kill(i)`.
#[derive(Clone, Debug)]
pub struct Member {
    pub name: String,
    pub peer_url: String,
    pub client_url: String,
    /// The node's root (`<tmp>/node-<name>` for the TLS clusters; the data
    /// dir's parent otherwise).
    pub node: PathBuf,
    /// The node's `/etc/kubernetes/pki/etcd` (`node/etc/kubernetes/pki/etcd`;
    /// it exists only when the member speaks TLS).
    pub pki: PathBuf,
    /// The node's `/var/lib/etcd` (`node/var/lib/etcd` for the TLS clusters).
    pub data_dir: PathBuf,
}

impl Member {
    /// A member that does not exist yet, on node `<base>/node-<name>` with
    /// https client and peer URLs on new loopback ports. Nothing is created.
    pub fn on_node(base: &Path, name: &str) -> Member {
        let node = base.join(format!("node-{name}"));
        Member {
            name: name.into(),
            peer_url: format!("https://127.0.0.1:{}", free_port()),
            client_url: format!("https://127.0.0.1:{}", free_port()),
            pki: node.join("etc/kubernetes/pki/etcd"),
            data_dir: node.join("var/lib/etcd"),
            node,
        }
    }

    /// `NAME=PEER_URL`, its entry in `--initial-cluster`.
    pub fn initial(&self) -> String {
        format!("{}={}", self.name, self.peer_url)
    }

    /// etcd's flags for this member with client and peer TLS from its
    /// node's PKI (kubeadm's file names), client-certificate auth on both.
    pub fn tls_flags(&self, initial_cluster: &str, state: &str, token: &str) -> Vec<String> {
        let f = |n: &str| self.pki.join(n).to_str().unwrap().to_string();
        vec![
            format!("--name={}", self.name),
            format!("--data-dir={}", self.data_dir.display()),
            format!("--listen-client-urls={}", self.client_url),
            format!("--advertise-client-urls={}", self.client_url),
            format!("--listen-peer-urls={}", self.peer_url),
            format!("--initial-advertise-peer-urls={}", self.peer_url),
            format!("--initial-cluster={initial_cluster}"),
            format!("--initial-cluster-state={state}"),
            format!("--initial-cluster-token={token}"),
            format!("--cert-file={}", f("server.crt")),
            format!("--key-file={}", f("server.key")),
            format!("--trusted-ca-file={}", f("ca.crt")),
            "--client-cert-auth=true".into(),
            format!("--peer-cert-file={}", f("peer.crt")),
            format!("--peer-key-file={}", f("peer.key")),
            format!("--peer-trusted-ca-file={}", f("ca.crt")),
            "--peer-client-cert-auth=true".into(),
        ]
    }
}

/// How long after a member starts etcd may refuse a member change (see
/// `Etcd::wait_reconfig_ready`): its 5 s health interval and a second to
/// connect.
const RECONFIG_DELAY: Duration = Duration::from_secs(6);

/// The `--initial-cluster-token` of `Etcd::start_tls_cluster`.
pub const TLS_TOKEN: &str = "tls-cluster";

/// Running members; killed (and waited for) on drop.
pub struct Etcd {
    pub line: String,
    procs: Vec<Child>,
    /// Every member's client URL, stopped ones included (`running_endpoints`
    /// leaves those out).
    pub endpoints: Vec<String>,
    /// Index `i` is `endpoints[i]`'s member.
    pub members: Vec<Member>,
    stopped: Vec<bool>,
    pub ctl_bin: PathBuf,
    pub tls: Option<Tls>,
    /// A directory holding the etcd CA as `pki issue --ca-dir` reads it
    /// (`ca.crt`, `ca.key`: kubeadm's `pki/etcd` names), apart from every
    /// node (TLS clusters only).
    pub ca_dir: Option<PathBuf>,
    pub dir: tempfile::TempDir,
    /// When etcd will take a member change (`wait_reconfig_ready`).
    reconfig_after: Instant,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        for p in &mut self.procs {
            let _ = p.kill();
        }
        for p in &mut self.procs {
            let _ = p.wait();
        }
    }
}

impl Etcd {
    /// One new member on loopback; with `tls`, clients speak https and must
    /// show a certificate signed by the CA (the server serves `server`).
    pub fn start(line: &str, tls: Option<(Tls, PathBuf, PathBuf)>) -> Etcd {
        let (etcd, ctl_bin) = bins(line);
        let dir = tempfile::tempdir().unwrap();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let (client, peer) = (free_port(), free_port());
        let curl = format!("{scheme}://127.0.0.1:{client}");
        let purl = format!("http://127.0.0.1:{peer}");
        let mut args: Vec<String> = [
            "--name",
            "live",
            "--data-dir",
            dir.path().join("data").to_str().unwrap(),
            "--listen-client-urls",
            &curl,
            "--advertise-client-urls",
            &curl,
            "--listen-peer-urls",
            &purl,
            "--initial-advertise-peer-urls",
            &purl,
            "--initial-cluster",
            &format!("live={purl}"),
            "--initial-cluster-state",
            "new",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if let Some((t, server_cert, server_key)) = &tls {
            for (f, p) in [
                ("--cert-file", server_cert),
                ("--key-file", server_key),
                ("--trusted-ca-file", &t.ca),
            ] {
                args.push(f.into());
                args.push(p.to_str().unwrap().into());
            }
            args.push("--client-cert-auth".into());
        }
        let log = std::fs::File::create(dir.path().join("live.log")).unwrap();
        let p = spawn(&etcd, &args, log);
        let member = Member {
            name: "live".into(),
            peer_url: purl,
            client_url: curl.clone(),
            node: dir.path().to_path_buf(),
            pki: dir.path().join("etc/kubernetes/pki/etcd"),
            data_dir: dir.path().join("data"),
        };
        let mut e = Etcd {
            line: line.into(),
            procs: vec![p],
            endpoints: vec![curl],
            members: vec![member],
            stopped: vec![false],
            ctl_bin,
            tls: tls.map(|t| t.0),
            ca_dir: None,
            dir,
            reconfig_after: Instant::now(),
        };
        e.wait_healthy();
        e
    }

    /// Members (name, peer port, client port) started from `dirs` with
    /// `initial` as their --initial-cluster.
    pub fn start_dirs(
        line: &str,
        members: &[(String, u16, u16)],
        dirs: &[PathBuf],
        initial: &str,
        token: &str,
    ) -> Etcd {
        let (etcd, ctl_bin) = bins(line);
        let dir = tempfile::tempdir().unwrap();
        let mut procs = Vec::new();
        let mut endpoints = Vec::new();
        let mut built = Vec::new();
        for ((name, peer, client), d) in members.iter().zip(dirs) {
            let curl = format!("http://127.0.0.1:{client}");
            let purl = format!("http://127.0.0.1:{peer}");
            let args: Vec<String> = [
                "--name",
                name,
                "--data-dir",
                d.to_str().unwrap(),
                "--listen-client-urls",
                &curl,
                "--advertise-client-urls",
                &curl,
                "--listen-peer-urls",
                &purl,
                "--initial-advertise-peer-urls",
                &purl,
                "--initial-cluster",
                initial,
                "--initial-cluster-token",
                token,
                "--initial-cluster-state",
                "new",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            let log = std::fs::File::create(dir.path().join(format!("{name}.log"))).unwrap();
            procs.push(spawn(&etcd, &args, log));
            let node = d.parent().unwrap_or(dir.path()).to_path_buf();
            built.push(Member {
                name: name.clone(),
                peer_url: purl,
                client_url: curl.clone(),
                pki: node.join("etc/kubernetes/pki/etcd"),
                node,
                data_dir: d.clone(),
            });
            endpoints.push(curl);
        }
        let mut e = Etcd {
            line: line.into(),
            stopped: vec![false; procs.len()],
            procs,
            endpoints,
            members: built,
            ctl_bin,
            tls: None,
            ca_dir: None,
            dir,
            reconfig_after: Instant::now(),
        };
        e.wait_healthy();
        e
    }

    /// A new cluster of `n` members (`m1` … `mN`) on loopback, as kubeadm
    /// lays out its control-plane nodes: member `mI` has the node root
    /// `<dir>/node-mI` with its PKI in `etc/kubernetes/pki/etcd` (one shared
    /// etcd CA, RSA-2048 PKCS#1 keys; server and peer certificates with SANs
    /// mI, localhost, 127.0.0.1, ::1; healthcheck-client with clientAuth) and
    /// its data in `var/lib/etcd`; https client and peer URLs, client
    /// certificates required on both (`TLS_TOKEN` is the cluster token).
    /// etcdctl speaks as the healthcheck client of `m1`'s node. Waits until
    /// every member is healthy.
    pub fn start_tls_cluster(line: &str, n: usize) -> Etcd {
        let (_, ctl_bin) = bins(line);
        let dir = tempfile::tempdir().unwrap();
        let ca_dir = dir.path().join("ca");
        pki::make_ca(&ca_dir, pki::Algo::Rsa, "ca", "etcd-ca");
        let members: Vec<Member> = (1..=n)
            .map(|i| Member::on_node(dir.path(), &format!("m{i}")))
            .collect();
        for m in &members {
            pki::kubeadm_etcd_node(&m.pki, pki::Algo::Rsa, &ca_dir.join("ca"), &m.name);
        }
        let initial = members
            .iter()
            .map(Member::initial)
            .collect::<Vec<_>>()
            .join(",");
        let tls = Tls {
            ca: members[0].pki.join("ca.crt"),
            cert: members[0].pki.join("healthcheck-client.crt"),
            key: members[0].pki.join("healthcheck-client.key"),
        };
        let mut e = Etcd {
            line: line.into(),
            procs: Vec::new(),
            endpoints: Vec::new(),
            members: Vec::new(),
            stopped: Vec::new(),
            ctl_bin,
            tls: Some(tls),
            ca_dir: Some(ca_dir),
            dir,
            reconfig_after: Instant::now(),
        };
        for m in members {
            e.start_member(m, &initial, "new");
        }
        e.wait_healthy();
        e
    }

    /// A member that does not exist yet on a new node `<dir>/node-<name>`
    /// (`Member::on_node`): new ports, nothing created.
    pub fn new_node(&self, name: &str) -> Member {
        Member::on_node(self.dir.path(), name)
    }

    /// Starts `m` with its TLS flags (`Member::tls_flags`, token
    /// `TLS_TOKEN`), its data dir created 0700 if missing; adds it to the
    /// members and endpoints. Returns its index; not waited for (it may be a
    /// learner, or wait for the others of a new cluster).
    pub fn start_member(&mut self, m: Member, initial_cluster: &str, state: &str) -> usize {
        let (etcd, _) = bins(&self.line);
        std::fs::create_dir_all(&m.data_dir).unwrap();
        pki::set_mode(&m.data_dir, 0o700);
        let args = m.tls_flags(initial_cluster, state, TLS_TOKEN);
        let log = std::fs::File::create(self.log_path(&m.name)).unwrap();
        self.procs.push(spawn(&etcd, &args, log));
        self.endpoints.push(m.client_url.clone());
        self.members.push(m);
        self.stopped.push(false);
        self.reconfig_after = self.reconfig_after.max(Instant::now() + RECONFIG_DELAY);
        self.procs.len() - 1
    }

    /// Starts `m` with exactly `flags` (as `install` printed them: the
    /// member's whole configuration); adds it to the members and endpoints.
    /// Returns its index; not waited for.
    pub fn start_with_flags(&mut self, m: Member, flags: &[String]) -> usize {
        let (etcd, _) = bins(&self.line);
        let log = std::fs::File::create(self.log_path(&m.name)).unwrap();
        self.procs.push(spawn(&etcd, flags, log));
        self.endpoints.push(m.client_url.clone());
        self.members.push(m);
        self.stopped.push(false);
        self.reconfig_after = self.reconfig_after.max(Instant::now() + RECONFIG_DELAY);
        self.procs.len() - 1
    }

    /// Copies what `etcdsnap pki issue --out ISSUED` wrote for member
    /// `m.name` (`ISSUED/etcd/ca.crt`, `ISSUED/<name>/etcd/*`) into its node's
    /// `pki/etcd`, as an operator installs them on the new node.
    pub fn install_issued(issued: &Path, m: &Member) {
        std::fs::create_dir_all(&m.pki).unwrap();
        std::fs::copy(issued.join("etcd/ca.crt"), m.pki.join("ca.crt")).unwrap();
        let from = issued.join(&m.name).join("etcd");
        for f in std::fs::read_dir(&from).unwrap() {
            let f = f.unwrap();
            std::fs::copy(f.path(), m.pki.join(f.file_name())).unwrap();
        }
    }

    /// Starts one more member from its `.env` file alone, as an operator
    /// would (`set -a; . FILE; exec etcd`: the file's `ETCD_*` variables are
    /// its whole configuration), and adds `endpoint` to the endpoints (the
    /// member as the file describes it to the members: https URLs and TLS
    /// file paths are the file's; etcdctl's TLS stays `tls`).
    /// Returns its index; not waited for (it may be a learner).
    pub fn start_env(&mut self, env_file: &Path, endpoint: &str) -> usize {
        let (etcd, _) = bins(&self.line);
        let name = env_file.file_stem().unwrap().to_string_lossy().into_owned();
        let log = std::fs::File::create(self.log_path(&name)).unwrap();
        let vars = read_env(env_file);
        let var = |k: &str| vars.get(k).cloned().unwrap_or_default();
        let first = |k: &str| var(k).split(',').next().unwrap_or("").to_string();
        let data_dir = PathBuf::from(var("ETCD_DATA_DIR"));
        let pki = match vars
            .get("ETCD_CERT_FILE")
            .or(vars.get("ETCD_PEER_CERT_FILE"))
        {
            Some(f) => Path::new(f).parent().unwrap_or(Path::new("")).to_path_buf(),
            None => data_dir
                .parent()
                .unwrap_or(Path::new(""))
                .join("etc/kubernetes/pki/etcd"),
        };
        let node = if pki.ends_with("etc/kubernetes/pki/etcd") {
            pki.ancestors().nth(4).unwrap().to_path_buf()
        } else {
            data_dir.parent().unwrap_or(Path::new("")).to_path_buf()
        };
        let mut cmd = Command::new("sh");
        cmd.args(["-c", r#"set -a; . "$1"; exec "$2""#, "sh"])
            .arg(env_file)
            .arg(&etcd);
        for (k, _) in std::env::vars() {
            if k.starts_with("ETCD_") {
                cmd.env_remove(k);
            }
        }
        let p = cmd
            .env("ETCD_UNSUPPORTED_ARCH", "")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.procs.push(p);
        self.endpoints.push(endpoint.to_string());
        self.members.push(Member {
            name: var("ETCD_NAME"),
            peer_url: first("ETCD_INITIAL_ADVERTISE_PEER_URLS"),
            client_url: endpoint.to_string(),
            node,
            pki,
            data_dir,
        });
        self.stopped.push(false);
        self.reconfig_after = self.reconfig_after.max(Instant::now() + RECONFIG_DELAY);
        self.procs.len() - 1
    }

    /// Kills member `i` (and waits for it); it stays in the endpoints, but
    /// etcdctl (`ctl_cmd`) no longer calls it.
    pub fn kill(&mut self, i: usize) {
        let _ = self.procs[i].kill();
        let _ = self.procs[i].wait();
        self.stopped[i] = true;
    }

    /// Stops member `i`, calls `while_down` (which may change its data dir
    /// as a damaged disk would), and starts it again with the command line
    /// it ran with (read from /proc); waits until it answers.
    pub fn restart_after(&mut self, i: usize, while_down: impl FnOnce()) {
        let line = std::fs::read(format!("/proc/{}/cmdline", self.procs[i].id())).unwrap();
        let mut parts = line
            .split(|b| *b == 0)
            .filter(|p| !p.is_empty())
            .map(|p| String::from_utf8(p.to_vec()).unwrap());
        let bin = PathBuf::from(parts.next().unwrap());
        let args: Vec<String> = parts.collect();
        self.kill(i);
        while_down();
        let name = self.members[i].name.clone();
        let log = std::fs::File::create(self.log_path(&format!("{name}.restarted"))).unwrap();
        self.procs[i] = spawn(&bin, &args, log);
        self.stopped[i] = false;
        self.wait_healthy();
    }

    /// Member `i` lost with its node: killed, its data dir and its node's
    /// `pki/etcd` deleted (the node root stays, empty of them), its log
    /// moved to `<name>.wiped.log` (a replacement may take its name).
    pub fn wipe(&mut self, i: usize) {
        self.kill(i);
        let m = &self.members[i];
        for d in [&m.data_dir, &m.pki] {
            match std::fs::remove_dir_all(d) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => panic!("wipe {}: {e}", d.display()),
            }
        }
        let _ = std::fs::rename(
            self.log_path(&m.name),
            self.dir.path().join(format!("{}.wiped.log", m.name)),
        );
    }

    /// Whether member `i` was killed or wiped.
    pub fn is_stopped(&self, i: usize) -> bool {
        self.stopped[i]
    }

    /// The client URLs of the members not killed.
    pub fn running_endpoints(&self) -> Vec<String> {
        self.endpoints
            .iter()
            .zip(&self.stopped)
            .filter(|(_, s)| !**s)
            .map(|(e, _)| e.clone())
            .collect()
    }

    /// The index of the (last started) member `name`.
    pub fn index_of(&self, name: &str) -> usize {
        self.members
            .iter()
            .rposition(|m| m.name == name)
            .unwrap_or_else(|| panic!("no member {name}"))
    }

    /// Member `name`'s client URL.
    pub fn endpoint_of(&self, name: &str) -> String {
        self.endpoints[self.index_of(name)].clone()
    }

    /// `--cacert CA --cert C --key K` (etcdctl's and etcdsnap's flags) when
    /// the cluster speaks TLS, else nothing.
    pub fn tls_args(&self) -> Vec<String> {
        match &self.tls {
            Some(t) => [("--cacert", &t.ca), ("--cert", &t.cert), ("--key", &t.key)]
                .iter()
                .flat_map(|(f, p)| [f.to_string(), p.to_str().unwrap().to_string()])
                .collect(),
            None => Vec::new(),
        }
    }

    fn log_path(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.log"))
    }

    /// The tail of member `name`'s log, for assertion messages.
    pub fn log_tail(&self, name: &str) -> String {
        let text = std::fs::read(self.dir.path().join(format!("{name}.log"))).unwrap_or_default();
        let text = String::from_utf8_lossy(&text);
        let start = text.len().saturating_sub(3000);
        text.get(start..).unwrap_or("").to_string()
    }

    pub fn pid(&self, i: usize) -> u32 {
        self.procs[i].id()
    }

    /// etcdctl against every member not killed (with the TLS files when
    /// there are).
    pub fn ctl_cmd(&self) -> Command {
        self.ctl_at(&self.running_endpoints().join(","))
    }

    /// etcdctl against `endpoints` alone (with the TLS files when there are).
    pub fn ctl_at(&self, endpoints: &str) -> Command {
        let mut c = Command::new(&self.ctl_bin);
        c.env("ETCDCTL_API", "3")
            .env_remove("ETCDCTL_ENDPOINTS")
            .arg("--endpoints")
            .arg(endpoints)
            .args(self.tls_args());
        c
    }

    pub fn ctl(&self, args: &[&str]) -> Output {
        let o = self.ctl_cmd().args(args).output().unwrap();
        assert!(
            o.status.success(),
            "etcdctl {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        o
    }

    /// `etcdctl put KEY` with the value on standard input (any bytes).
    pub fn put(&self, key: &str, value: &[u8]) {
        use std::io::Write;
        let mut c = self
            .ctl_cmd()
            .args(["put", key])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        c.stdin.take().unwrap().write_all(value).unwrap();
        let o = c.wait_with_output().unwrap();
        assert!(
            o.status.success(),
            "etcdctl put {key}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }

    /// The cluster's revision (etcdctl get -w json's header).
    pub fn revision(&self) -> i64 {
        let o = self.ctl(&["get", "-w", "json", "nonexistent-key-for-revision"]);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v["header"]["revision"].as_i64().unwrap()
    }

    /// Waits (30 s at most) until every member not killed answers and all
    /// name the same leader, one of them: after the leader was killed, a
    /// write proposed before the new election may time out ("request timed
    /// out, possibly due to previous leader failure").
    pub fn wait_leader(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let o = self
                .ctl_cmd()
                .args(["endpoint", "status", "-w", "json"])
                .output()
                .unwrap();
            if o.status.success() {
                let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
                let st: Vec<(u64, u64)> = v
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|s| {
                        let s = &s["Status"];
                        (
                            s["header"]["member_id"].as_u64().unwrap_or(0),
                            s["leader"].as_u64().unwrap_or(0),
                        )
                    })
                    .collect();
                let leader = st.first().map_or(0, |s| s.1);
                if leader != 0
                    && st.len() == self.running_endpoints().len()
                    && st.iter().all(|s| s.1 == leader)
                    && st.iter().any(|s| s.0 == leader)
                {
                    return;
                }
            }
            let last = if o.status.success() {
                String::from_utf8_lossy(&o.stdout)
            } else {
                String::from_utf8_lossy(&o.stderr)
            };
            assert!(
                Instant::now() < deadline,
                "etcd {}: no leader the running members agree on: {last}",
                self.line
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits until etcd takes a member change: with its default
    /// `--strict-reconfig-check`, a member refuses MemberAdd ("etcdserver:
    /// unhealthy cluster") until it has been connected to every voting
    /// member for 5 s, so a change right after the cluster came up, or
    /// after a member started, is refused. This waits 5 s after the
    /// members last became healthy and 6 s after the last one started.
    pub fn wait_reconfig_ready(&self) {
        let now = Instant::now();
        if self.reconfig_after > now {
            std::thread::sleep(self.reconfig_after - now);
        }
    }

    fn wait_healthy(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ok = self
                .ctl_cmd()
                .args(["endpoint", "health"])
                .output()
                .is_ok_and(|o| o.status.success());
            if ok {
                self.reconfig_after = self
                    .reconfig_after
                    .max(Instant::now() + Duration::from_secs(5));
                return;
            }
            if Instant::now() >= deadline {
                let logs: Vec<String> = self
                    .members
                    .iter()
                    .map(|m| format!("--- {} ---\n{}", m.name, self.log_tail(&m.name)))
                    .collect();
                panic!(
                    "etcd {} did not become healthy; logs in {}\n{}",
                    self.line,
                    self.dir.path().display(),
                    logs.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn spawn(etcd: &Path, args: &[String], log: std::fs::File) -> Child {
    Command::new(etcd)
        .args(args)
        .env("ETCD_UNSUPPORTED_ARCH", "")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// The `ETCD_*` variables of an env file as `sh` reads them (`K=V`, `K='V'`
/// with `'\''` for a quote; the only forms the files we write use).
pub fn read_env(file: &Path) -> std::collections::BTreeMap<String, String> {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            let v = match v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')) {
                Some(q) => q.replace("'\\''", "'"),
                None => v.to_string(),
            };
            (k.trim().to_string(), v)
        })
        .collect()
}
