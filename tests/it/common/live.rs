//! Real etcd members kept running for the live-command tests (tests/it/live.rs):
//! one fresh member, or a cluster booted from data dirs; killed on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::cluster::free_port;
use super::etcd_bin;

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

/// Running members; killed (and waited for) on drop.
pub struct Etcd {
    pub line: String,
    procs: Vec<Child>,
    pub endpoints: Vec<String>,
    pub ctl_bin: PathBuf,
    pub tls: Option<Tls>,
    pub dir: tempfile::TempDir,
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
        let log = std::fs::File::create(dir.path().join("etcd.log")).unwrap();
        let p = spawn(&etcd, &args, log);
        let e = Etcd {
            line: line.into(),
            procs: vec![p],
            endpoints: vec![curl],
            ctl_bin,
            tls: tls.map(|t| t.0),
            dir,
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
            endpoints.push(curl);
        }
        let e = Etcd {
            line: line.into(),
            procs,
            endpoints,
            ctl_bin,
            tls: None,
            dir,
        };
        e.wait_healthy();
        e
    }

    /// Starts one more member from its `.env` file alone, as an operator
    /// would (`set -a; . FILE; exec etcd`: the file's `ETCD_*` variables are
    /// its whole configuration), and adds `endpoint` to the endpoints.
    /// Returns its index; not waited for (it may be a learner).
    pub fn start_env(&mut self, env_file: &Path, endpoint: &str) -> usize {
        let (etcd, _) = bins(&self.line);
        let name = env_file.file_stem().unwrap().to_string_lossy().into_owned();
        let log = std::fs::File::create(self.dir.path().join(format!("{name}.log"))).unwrap();
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
        self.procs.len() - 1
    }

    /// Kills member `i` (and waits for it); it stays in the endpoints.
    pub fn kill(&mut self, i: usize) {
        let _ = self.procs[i].kill();
        let _ = self.procs[i].wait();
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

    /// etcdctl against every endpoint (with the TLS files when there are).
    pub fn ctl_cmd(&self) -> Command {
        let mut c = Command::new(&self.ctl_bin);
        c.env("ETCDCTL_API", "3")
            .env_remove("ETCDCTL_ENDPOINTS")
            .arg("--endpoints")
            .arg(self.endpoints.join(","));
        if let Some(t) = &self.tls {
            c.arg("--cacert")
                .arg(&t.ca)
                .arg("--cert")
                .arg(&t.cert)
                .arg("--key")
                .arg(&t.key);
        }
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

    fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ok = self
                .ctl_cmd()
                .args(["endpoint", "health"])
                .output()
                .is_ok_and(|o| o.status.success());
            if ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "etcd {} did not become healthy; logs in {}",
                self.line,
                self.dir.path().display()
            );
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
