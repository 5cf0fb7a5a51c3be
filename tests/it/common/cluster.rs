//! Real etcd clusters on loopback for the tests that boot what we wrote:
//! ports, `--initial-cluster`, and `boot_spec` (start every member, wait for
//! health, record members, leader, keys, a write, stop).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;
use serde_json::{Value, json};

/// A loopback port nothing listens on, never the same one twice in this
/// process (the tests run in parallel in one binary), and below Linux's
/// ephemeral range (32768 and up), so that no outgoing connection of a
/// running server can take it between this call and the server's bind.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const FIRST: u32 = 20_000;
    const SPAN: u32 = 12_000;
    let start = std::process::id().wrapping_mul(7919) % SPAN;
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        assert!(
            n < SPAN,
            "no free loopback port left in {FIRST}..{}",
            FIRST + SPAN
        );
        let port = (FIRST + (start + n) % SPAN) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Members (name, peer port, client port) on 127.0.0.1 and their
/// `--initial-cluster` (http).
pub struct Layout {
    pub initial: String,
    pub members: Vec<(String, u16, u16)>,
}

pub fn layout(n: usize) -> Layout {
    layout_scheme(n, "http")
}

/// `layout` with peer URLs of `scheme` (http or https).
pub fn layout_scheme(n: usize, scheme: &str) -> Layout {
    let members: Vec<(String, u16, u16)> = (1..=n)
        .map(|i| (format!("m{i}"), free_port(), free_port()))
        .collect();
    let initial = members
        .iter()
        .map(|(name, peer, _)| format!("{name}={scheme}://127.0.0.1:{peer}"))
        .collect::<Vec<_>>()
        .join(",");
    Layout { initial, members }
}

impl Layout {
    /// `--client-urls` naming each member's client port.
    pub fn client_urls(&self, scheme: &str) -> String {
        self.members
            .iter()
            .map(|(n, _, c)| format!("{n}={scheme}://127.0.0.1:{c}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Starts the members of `spec` on etcd `line`, waits until every one is
/// healthy, records what the cluster serves, takes one write, and stops them.
///
/// `spec`: `{"token", "members": [...], "timetolive"?: [lease hex], "tls"?:
/// {"cacert", "cert", "key"}}`. A member is one of
/// - `{"name", "peer_port", "client_port", "data_dir"}`: started with the flags
///   a restored member must use (http on loopback, `--initial-cluster-state new`);
/// - `{"name", "client_port", "env_file", "cwd", "log"}`: started from its `.env`
///   file alone, as an operator would (`set -a; . FILE; etcd`, run in `cwd`);
/// - `{"name", "peer_port", "client_port", "flags", "log"}`: started with exactly
///   those flags (as a command printed them).
///
/// Returns `{"healthy": true, "members": [{"id", "name", "peerURLs"}], "revision",
/// "kvs": [{"key", "value" (base64)}], "leaders", "write_ok", "timetolive"}`;
/// asserts the members became healthy (the assertion carries their logs).
pub fn boot_spec(line: &str, spec: &Value) -> Value {
    let etcd = super::etcd_bin(line, "etcd");
    let etcdctl = super::etcd_bin(line, "etcdctl");
    let members = spec["members"].as_array().expect("spec members");
    let s = |v: &Value| v.as_str().unwrap().to_string();
    let initial = members
        .iter()
        .filter(|m| m.get("peer_port").is_some())
        .map(|m| format!("{}=http://127.0.0.1:{}", s(&m["name"]), m["peer_port"]))
        .collect::<Vec<_>>()
        .join(",");
    let mut procs = Procs(Vec::new());
    let mut logs = Vec::new();
    for m in members {
        let log_path = match m.get("log") {
            Some(l) => PathBuf::from(s(l)),
            None => PathBuf::from(format!("{}.log", s(&m["data_dir"]))),
        };
        let log = std::fs::File::create(&log_path).unwrap();
        let mut cmd;
        if let Some(flags) = m.get("flags") {
            cmd = Command::new(&etcd);
            cmd.args(flags.as_array().unwrap().iter().map(s));
        } else if let Some(env_file) = m.get("env_file") {
            cmd = Command::new("sh");
            cmd.args(["-c", r#"set -a; . "$1"; exec "$2""#, "sh"])
                .arg(s(env_file))
                .arg(&etcd)
                .current_dir(s(&m["cwd"]));
        } else {
            let client = format!("http://127.0.0.1:{}", m["client_port"]);
            let peer = format!("http://127.0.0.1:{}", m["peer_port"]);
            cmd = Command::new(&etcd);
            cmd.args(["--name", &s(&m["name"]), "--data-dir", &s(&m["data_dir"])])
                .args([
                    "--listen-client-urls",
                    &client,
                    "--advertise-client-urls",
                    &client,
                ])
                .args([
                    "--listen-peer-urls",
                    &peer,
                    "--initial-advertise-peer-urls",
                    &peer,
                ])
                .args(["--initial-cluster", &initial])
                .args(["--initial-cluster-token", &s(&spec["token"])])
                .args(["--initial-cluster-state", "new"]);
        }
        let child = cmd
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", etcd.display()));
        procs.0.push(child);
        logs.push((s(&m["name"]), log_path));
    }
    let tls = spec.get("tls").filter(|t| !t.is_null());
    let scheme = if tls.is_some() { "https" } else { "http" };
    let endpoints = members
        .iter()
        .map(|m| format!("{scheme}://127.0.0.1:{}", m["client_port"]))
        .collect::<Vec<_>>()
        .join(",");
    let ctl = |args: &[&str]| {
        let mut c = Command::new(&etcdctl);
        c.env("ETCDCTL_API", "3").args(["--endpoints", &endpoints]);
        if let Some(t) = tls {
            c.args([
                "--cacert",
                &s(&t["cacert"]),
                "--cert",
                &s(&t["cert"]),
                "--key",
                &s(&t["key"]),
            ]);
        }
        c.args(["--command-timeout", "30s"])
            .args(args)
            .output()
            .unwrap()
    };
    // Health: polled until every member answers, or one exits, or a minute
    // passes (a hang guard, not a timing check).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        if ctl(&["endpoint", "health"]).status.success() {
            break;
        }
        let exited = procs.0.iter_mut().any(|p| p.try_wait().unwrap().is_some());
        if exited || std::time::Instant::now() > deadline {
            let tails: Vec<String> = logs
                .iter()
                .map(|(name, p)| {
                    let text =
                        String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned();
                    let tail: String = text
                        .chars()
                        .rev()
                        .take(3000)
                        .collect::<Vec<_>>()
                        .into_iter()
                        .rev()
                        .collect();
                    format!("--- {name}:\n{tail}")
                })
                .collect();
            panic!(
                "etcd {line} members did not become healthy:\n{}",
                tails.join("\n")
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    let json_of = |args: &[&str]| -> Value {
        let o = ctl(args);
        assert!(
            o.status.success(),
            "etcdctl {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let list = json_of(&["-w", "json", "member", "list"]);
    let kvs = json_of(&["-w", "json", "get", "", "--from-key"]);
    let status = json_of(&["-w", "json", "endpoint", "status"]);
    let mut leaders: Vec<String> = status
        .as_array()
        .unwrap()
        .iter()
        .map(|st| format!("{:x}", st["Status"]["leader"].as_u64().unwrap()))
        .collect();
    leaders.sort();
    leaders.dedup();
    let mut ttls = serde_json::Map::new();
    for lease in spec
        .get("timetolive")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let o = ctl(&["-w", "json", "lease", "timetolive", lease.as_str().unwrap()]);
        let v = if o.status.success() {
            serde_json::from_slice(&o.stdout).unwrap()
        } else {
            Value::Null
        };
        ttls.insert(s(lease), v);
    }
    let put = ctl(&["put", "/etcdsnap/after-restore", "ok"]);
    let got = ctl(&["get", "/etcdsnap/after-restore", "--print-value-only"]);
    let b64 = base64::engine::general_purpose::STANDARD;
    json!({
        "healthy": true,
        "members": list["members"].as_array().unwrap().iter().map(|m| json!({
            "id": format!("{:x}", m["ID"].as_u64().unwrap()),
            "name": m.get("name").cloned().unwrap_or(json!("")),
            "peerURLs": m.get("peerURLs").cloned().unwrap_or(json!([])),
        })).collect::<Vec<_>>(),
        "revision": kvs["header"]["revision"].as_i64().unwrap(),
        "kvs": kvs.get("kvs").and_then(Value::as_array).into_iter().flatten().map(|kv| json!({
            "key": String::from_utf8_lossy(&b64.decode(kv["key"].as_str().unwrap()).unwrap()),
            "value": kv.get("value").cloned().unwrap_or(json!("")),
        })).collect::<Vec<_>>(),
        "leaders": leaders,
        "write_ok": put.status.success() && String::from_utf8_lossy(&got.stdout).trim() == "ok",
        "timetolive": ttls,
    })
}

/// Started members: asked to stop (SIGTERM) and waited for on drop, killed if
/// one does not stop within 20 s.
struct Procs(Vec<std::process::Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for p in &self.0 {
            // SAFETY: kill(2) with a PID this process spawned and has not yet reaped.
            unsafe { libc::kill(p.id() as i32, libc::SIGTERM) };
        }
        for p in &mut self.0 {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
            while p.try_wait().ok().flatten().is_none() {
                if std::time::Instant::now() > deadline {
                    let _ = p.kill();
                    let _ = p.wait();
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
    }
}

/// Boots members from data dirs with the flags `boot_spec` gives
/// (http on loopback), asking for the remaining TTL of `leases` (hex IDs).
pub fn boot_dirs(
    line: &str,
    members: &[(String, u16, u16)],
    dirs: &[PathBuf],
    token: &str,
    leases: &[&str],
) -> Value {
    let spec = json!({
        "token": token,
        "timetolive": leases,
        "members": members.iter().zip(dirs).map(|((name, peer, client), d)| json!({
            "name": name, "peer_port": peer, "client_port": client, "data_dir": d.to_str().unwrap(),
        })).collect::<Vec<_>>(),
    });
    boot_spec(line, &spec)
}

/// Boots each member with exactly `flags` (as a command printed them); with
/// `tls` = (CA, client cert, client key), etcdctl speaks https.
pub fn boot_flags(
    line: &str,
    members: &[(String, u16, u16)],
    flags: &[Vec<String>],
    logs: &Path,
    tls: Option<(&Path, &Path, &Path)>,
) -> Value {
    let tls = tls.map(|(ca, cert, key)| {
        json!({"cacert": ca.to_str().unwrap(), "cert": cert.to_str().unwrap(), "key": key.to_str().unwrap()})
    });
    let spec = json!({
        "token": "unused",
        "tls": tls,
        "members": members.iter().zip(flags).map(|((name, peer, client), f)| json!({
            "name": name, "peer_port": peer, "client_port": client, "flags": f,
            "log": logs.join(format!("{name}.log")).to_str().unwrap(),
        })).collect::<Vec<_>>(),
    });
    boot_spec(line, &spec)
}

/// key -> value of a boot record's keys.
pub fn served(out: &Value) -> HashMap<String, Vec<u8>> {
    out["kvs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|kv| {
            let v = base64::engine::general_purpose::STANDARD
                .decode(kv["value"].as_str().unwrap())
                .unwrap();
            (kv["key"].as_str().unwrap().to_string(), v)
        })
        .collect()
}

/// (name, id, first peer URL) of each member, sorted: `urls` is the field
/// holding the peer URLs (`peerURLs` in a boot record, `peerUrls` in a plan).
pub fn member_triples(members: &Value, urls: &str) -> Vec<(String, String, String)> {
    let mut v: Vec<(String, String, String)> = members
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let s = |x: &Value| x.as_str().unwrap().to_string();
            (s(&m["name"]), s(&m["id"]), s(&m[urls][0]))
        })
        .collect();
    v.sort();
    v
}

/// The 3.5.1 fixture's live keys and values as real etcd serves them:
/// etcdutl 3.5.1 restores the fixture, etcd 3.5.1 boots from that, etcdctl
/// lists every key (once per test binary). The oracle of the tests that
/// boot what we restored or installed.
pub fn fixture_kvs() -> &'static HashMap<String, Vec<u8>> {
    static KVS: std::sync::OnceLock<HashMap<String, Vec<u8>>> = std::sync::OnceLock::new();
    KVS.get_or_init(|| {
        let l = layout(1);
        let dir = tempfile::tempdir().unwrap();
        let eu = dir.path().join("etcdutl.etcd");
        let (name, peer, _) = &l.members[0];
        super::etcdutl_restore(
            &super::fixture("etcd-3.5.1.db"),
            name,
            &l.initial,
            "etcdsnap-oracle",
            &format!("http://127.0.0.1:{peer}"),
            &eu,
        );
        let out = boot_dirs("3.5", &l.members, &[eu], "etcdsnap-oracle", &[]);
        served(&out)
    })
}

/// The keys a booted cluster served (without the boot check's own write)
/// are exactly `expected`, with equal values; the cluster took a write.
pub fn check_served(out: &Value, expected: &HashMap<String, Vec<u8>>) {
    let mut served = served(out);
    served.remove("/etcdsnap/after-restore");
    assert!(!expected.is_empty());
    for (k, v) in expected {
        assert_eq!(served.get(k), Some(v), "key {k} not served with its value");
    }
    assert_eq!(served.len(), expected.len(), "served keys differ in number");
    assert_eq!(out["write_ok"], true);
}
