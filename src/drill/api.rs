//! The drill's second half: a kube-apiserver booted on the drill's etcd with
//! throwaway credentials, and every object of the snapshot looked for
//! through the Kubernetes API.
//!
//! That etcd serves the keys proves the bytes; that the API server serves
//! the objects proves they are Kubernetes objects the release can decode
//! (an object it cannot decode is lost to the cluster even if etcd holds
//! it). The API server authenticates a random bearer token of group
//! `system:masters` from a token file, signs service-account tokens with a
//! fresh key, makes its own serving certificate in the sandbox (trusted by
//! our client, nothing else), and listens on 127.0.0.1 only. Its bootstrap
//! writes to the sandbox's etcd (default namespaces, RBAC roles, leases);
//! those objects are not the snapshot's and are not judged: what is judged
//! is that every live object of the snapshot is listed by the API (listed
//! in pages, the preferred version of each group), and for each that is
//! not, why (its own GET's answer).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{DrillError, Running, log_tail, spawn_guarded};
use crate::kube::resource::{ObjectKey, parse_key};
use crate::live::cluster::{Finding, Verdict};
use crate::mvcc::keyspace::{KeySpace, Latest};

/// How long a live API server may take to become ready.
const READY_GRACE: Duration = Duration::from_secs(20);

/// Objects per list page.
const PAGE: usize = 500;
/// Objects not served named in the finding (the rest are counted).
const SHOWN: usize = 5;

/// One resource: objects in the snapshot, and how many of them the API
/// server listed.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceCount {
    /// The resource (`deployments.apps`).
    pub resource: String,
    /// Its live objects in the snapshot.
    pub in_snapshot: u64,
    /// Of those, how many the API server listed.
    pub served: u64,
}

/// One namespace: its live objects in the snapshot (of every resource), and
/// how many of them the API server listed.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceCount {
    /// The namespace.
    pub namespace: String,
    /// Its live objects in the snapshot.
    pub in_snapshot: u64,
    /// Of those, how many the API server listed.
    pub served: u64,
}

/// The per-resource and per-namespace counts of [`served`].
pub(super) type Counts = (Vec<ResourceCount>, Vec<NamespaceCount>);

/// A booted kube-apiserver.
pub(super) struct ApiServer {
    process: Running,
    base: String,
    token: String,
    client: reqwest::Client,
    rt: tokio::runtime::Runtime,
    /// Why `/readyz` still failed after the grace period.
    not_ready: Option<String>,
}

/// (group, plural) → the list path the API serves it at, and whether it is
/// namespaced.
type Served = BTreeMap<(String, String), (String, bool)>;

/// (group, plural) → namespace/name of the live objects of the snapshot.
type Objects = BTreeMap<(String, String), BTreeSet<(Option<String>, String)>>;

/// Boots `bin` in `sandbox` on the etcd at `etcd_url`, and waits for
/// `/readyz` within `timeout`.
pub(super) fn boot(
    bin: &Path,
    sandbox: &Path,
    etcd_url: &str,
    prefix: &str,
    timeout: Duration,
) -> Result<ApiServer, DrillError> {
    // TLS through ring for the clients built here (idempotent).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let shown = bin.display().to_string();
    let setup = |source| DrillError::Sandbox {
        dir: sandbox.to_path_buf(),
        source,
    };
    let dir = sandbox.join("kube-apiserver");
    std::fs::create_dir(&dir).map_err(setup)?;
    let token = random_token().map_err(setup)?;
    let tokens = dir.join("tokens.csv");
    crate::durable::write_new(
        &tokens,
        format!("{token},etcdsnap-drill,etcdsnap-drill,\"system:masters\"\n").as_bytes(),
    )
    .map_err(|e| setup(std::io::Error::other(e.to_string())))?;
    let key = rcgen::KeyPair::generate()
        .map_err(|e| setup(std::io::Error::other(format!("service-account key: {e}"))))?;
    let sa_key = dir.join("sa.key");
    let sa_pub = dir.join("sa.pub");
    crate::durable::write_new(&sa_key, key.serialize_pem().as_bytes())
        .and_then(|()| crate::durable::write_new(&sa_pub, key.public_key_pem().as_bytes()))
        .map_err(|e| setup(std::io::Error::other(e.to_string())))?;
    let port = super::free_port(sandbox)?;
    let certs = dir.join("certs");
    let log_path = dir.join("kube-apiserver.log");
    let p = |x: &Path| x.display().to_string();
    let mut cmd = Command::new(bin);
    cmd.arg(format!("--etcd-servers={etcd_url}"))
        .arg(format!("--etcd-prefix={prefix}"))
        .arg(format!("--token-auth-file={}", p(&tokens)))
        .arg("--service-account-issuer=https://kubernetes.default.svc")
        .arg(format!("--service-account-key-file={}", p(&sa_pub)))
        .arg(format!("--service-account-signing-key-file={}", p(&sa_key)))
        .arg(format!("--cert-dir={}", p(&certs)))
        .arg(format!("--secure-port={port}"))
        .arg("--bind-address=127.0.0.1")
        .arg("--advertise-address=127.0.0.1")
        .arg("--authorization-mode=RBAC")
        .arg("--enable-priority-and-fairness=false")
        // No Service endpoints for a loopback address, no writes of them.
        .arg("--endpoint-reconciler-type=none")
        .arg("--service-cluster-ip-range=10.96.0.0/16");
    let process = spawn_guarded(cmd, &log_path, &shown)?;
    let base = format!("https://127.0.0.1:{port}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(setup)?;
    let mut api = ApiServer {
        process,
        base,
        token,
        client: reqwest::Client::new(),
        rt,
        not_ready: None,
    };
    let start = Instant::now();
    let not_ready = |detail: String| DrillError::NotReady {
        bin: shown.clone(),
        detail,
        log: log_tail(&log_path),
    };
    // Its serving certificate appears in the sandbox as it starts.
    loop {
        crate::interrupt::check().map_err(DrillError::Interrupted)?;
        if let Ok(Some(status)) = api.process.child.try_wait() {
            return Err(not_ready(format!("it exited ({status})")));
        }
        if start.elapsed() > timeout {
            return Err(not_ready(format!("not ready after {timeout:?}")));
        }
        if let Ok(pem) = std::fs::read(certs.join("apiserver.crt"))
            && let Ok(client) = client_trusting(&pem, timeout)
        {
            api.client = client;
            if api.get("/version").is_ok() {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    // Serving: now ready, or (an object it cannot decode keeps a cache from
    // syncing) not ready after a grace period, which is a finding; the
    // objects are looked for either way.
    let live_at = Instant::now();
    loop {
        crate::interrupt::check().map_err(DrillError::Interrupted)?;
        match api.get("/readyz?verbose") {
            Ok(_) => return Ok(api),
            Err(e) if live_at.elapsed() > READY_GRACE.min(timeout) => {
                api.not_ready = Some(e);
                return Ok(api);
            }
            Err(_) => std::thread::sleep(Duration::from_millis(250)),
        }
    }
}

/// An HTTPS client that trusts only the certificates in `pem`.
fn client_trusting(pem: &[u8], timeout: Duration) -> Result<reqwest::Client, String> {
    let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| e.to_string())?;
    reqwest::Client::builder()
        .tls_certs_only(certs)
        .no_proxy()
        .timeout(timeout)
        .build()
        .map_err(|e| e.to_string())
}

/// 32 random bytes as hex.
fn random_token() -> std::io::Result<String> {
    use rand_core::RngCore;
    let mut b = [0u8; 32];
    rand_core::OsRng
        .try_fill_bytes(&mut b)
        .map_err(std::io::Error::other)?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

impl ApiServer {
    /// GET `path` as the drill's admin: the body of a 2xx answer, else the
    /// status and the API's message.
    fn get(&self, path: &str) -> Result<Vec<u8>, String> {
        let url = format!("{}{path}", self.base);
        let req = self
            .client
            .get(&url)
            .bearer_auth(&self.token)
            .header("Accept", "application/json");
        self.rt.block_on(async {
            let resp = req
                .send()
                .await
                .map_err(|e| crate::remote::scrub(&e.to_string()))?;
            let status = resp.status();
            let body = resp.bytes().await.map_err(|e| e.to_string())?;
            if status.is_success() {
                Ok(body.to_vec())
            } else {
                let message = serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v["message"].as_str().map(str::to_string))
                    .unwrap_or_else(|| {
                        String::from_utf8_lossy(&body[..body.len().min(4000)]).into_owned()
                    });
                Err(format!("HTTP {status}: {message}"))
            }
        })
    }

    fn get_json(&self, path: &str) -> Result<serde_json::Value, String> {
        let body = self.get(path)?;
        serde_json::from_slice(&body).map_err(|e| format!("{path}: not JSON: {e}"))
    }

    /// Stops the API server (before its etcd).
    pub(super) fn stop(&mut self) {
        self.process.stop();
    }

    /// The list path of each (group, plural) the API serves with `list`,
    /// in the preferred version of its group (else any version serving it).
    fn discover(&self) -> Result<Served, String> {
        let mut out = BTreeMap::new();
        let mut versions: Vec<(String, String, bool)> = Vec::new();
        versions.push((String::new(), "/api/v1".to_string(), true));
        let groups = self.get_json("/apis")?;
        for g in groups["groups"].as_array().into_iter().flatten() {
            let name = g["name"].as_str().unwrap_or_default().to_string();
            let preferred = g["preferredVersion"]["groupVersion"]
                .as_str()
                .unwrap_or_default();
            for v in g["versions"].as_array().into_iter().flatten() {
                if let Some(gv) = v["groupVersion"].as_str() {
                    versions.push((name.clone(), format!("/apis/{gv}"), gv == preferred));
                }
            }
        }
        // Preferred versions first: they win.
        versions.sort_by_key(|(_, _, preferred)| !preferred);
        for (group, path, _) in versions {
            let list = self.get_json(&path)?;
            for r in list["resources"].as_array().into_iter().flatten() {
                let name = r["name"].as_str().unwrap_or_default();
                let listable = r["verbs"]
                    .as_array()
                    .is_some_and(|v| v.iter().any(|x| x == "list"));
                if name.is_empty() || name.contains('/') || !listable {
                    continue;
                }
                let namespaced = r["namespaced"].as_bool().unwrap_or(false);
                out.entry((group.clone(), name.to_string()))
                    .or_insert((format!("{path}/{name}"), namespaced));
            }
        }
        Ok(out)
    }

    /// Every object listed at `path`, in pages: namespace/name.
    fn list(&self, path: &str) -> Result<BTreeSet<(Option<String>, String)>, String> {
        let mut out = BTreeSet::new();
        let mut cont = String::new();
        loop {
            crate::interrupt::check().map_err(|e| e.to_string())?;
            let mut q = format!("{path}?limit={PAGE}");
            if !cont.is_empty() {
                q.push_str("&continue=");
                q.push_str(&percent(&cont));
            }
            let page = self.get_json(&q)?;
            for item in page["items"].as_array().into_iter().flatten() {
                let m = &item["metadata"];
                let ns = m["namespace"].as_str().map(str::to_string);
                if let Some(name) = m["name"].as_str() {
                    out.insert((ns, name.to_string()));
                }
            }
            match page["metadata"]["continue"].as_str() {
                Some(c) if !c.is_empty() => cont = c.to_string(),
                _ => return Ok(out),
            }
        }
    }
}

/// `s` with every byte outside the unreserved set percent-encoded.
fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The snapshot's live objects at `revision`, by (group, plural).
fn snapshot_objects(
    db: &crate::bolt::Db<'_>,
    revision: i64,
    prefix: &str,
) -> Result<Objects, DrillError> {
    let ks = KeySpace::open(db).map_err(crate::live::report::ClusterRunError::from)?;
    let mut out: Objects = BTreeMap::new();
    ks.latest(Some(revision), |l| {
        if let Latest::Live(r) = l
            && let Some(ObjectKey {
                resource,
                group,
                namespace,
                name,
            }) = parse_key(r.kv.key, prefix)
            && !(group.is_none() && crate::kube::resource::INTERNAL.contains(&resource.as_str()))
        {
            out.entry((group.unwrap_or_default(), resource))
                .or_default()
                .insert((namespace, name));
        }
        std::ops::ControlFlow::Continue(())
    })
    .map_err(crate::live::report::ClusterRunError::from)?;
    Ok(out)
}

fn qualified(group: &str, plural: &str) -> String {
    if group.is_empty() {
        plural.to_string()
    } else {
        format!("{plural}.{group}")
    }
}

fn object_name(group: &str, plural: &str, o: &(Option<String>, String)) -> String {
    let r = qualified(group, plural);
    match &o.0 {
        Some(ns) => format!("{r} {ns}/{}", o.1),
        None => format!("{r} {}", o.1),
    }
}

/// The `api-served` finding: every live object of the snapshot listed by
/// the API server, and the counts per resource.
pub(super) fn served(
    api: &ApiServer,
    db: &crate::bolt::Db<'_>,
    revision: i64,
    prefix: &str,
) -> Result<(Finding, Counts), DrillError> {
    let want = snapshot_objects(db, revision, prefix)?;
    let mut per_ns: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for o in want.values().flatten() {
        if let Some(ns) = &o.0 {
            per_ns.entry(ns.clone()).or_default().0 += 1;
        }
    }
    let mut served_in = |o: &(Option<String>, String)| {
        if let Some(ns) = &o.0 {
            per_ns.entry(ns.clone()).or_default().1 += 1;
        }
    };
    let unknown = |detail: String| Finding {
        check: "api-served",
        member: None,
        verdict: Verdict::Unknown,
        detail,
    };
    let paths = match api.discover() {
        Ok(p) => p,
        Err(e) => {
            return Ok((
                unknown(format!("API discovery failed: {e}")),
                (Vec::new(), Vec::new()),
            ));
        }
    };
    let mut counts = Vec::new();
    let mut not_served: Vec<String> = Vec::new();
    let mut missing_total = 0u64;
    let mut objects = 0u64;
    for ((group, plural), objs) in &want {
        crate::interrupt::check().map_err(DrillError::Interrupted)?;
        objects += objs.len() as u64;
        let resource = qualified(group, plural);
        let Some((path, namespaced)) = paths.get(&(group.clone(), plural.clone())) else {
            missing_total += objs.len() as u64;
            not_served.push(format!(
                "{resource}: {} objects, and the API server serves no such resource",
                objs.len()
            ));
            counts.push(ResourceCount {
                resource,
                in_snapshot: objs.len() as u64,
                served: 0,
            });
            continue;
        };
        let listed = match api.list(path) {
            Ok(l) => Some(l),
            Err(e) => {
                not_served.push(format!("{resource}: the list failed: {e}"));
                None
            }
        };
        let mut served = 0u64;
        for o in objs {
            if listed.as_ref().is_some_and(|l| l.contains(o)) {
                served += 1;
                served_in(o);
                continue;
            }
            crate::interrupt::check().map_err(DrillError::Interrupted)?;
            // Asked one by one (every object when the list failed): the
            // API server's own answer.
            let one = match (&o.0, namespaced) {
                (Some(ns), true) => {
                    let (base, res) = path.rsplit_once('/').unwrap_or((path, plural));
                    format!("{base}/namespaces/{}/{res}/{}", percent(ns), percent(&o.1))
                }
                _ => format!("{path}/{}", percent(&o.1)),
            };
            let why = match api.get(&one) {
                // A failed list, but the object itself is served.
                Ok(_) if listed.is_none() => {
                    served += 1;
                    served_in(o);
                    continue;
                }
                Ok(_) => "served by a GET, but not listed".to_string(),
                Err(e) => e,
            };
            missing_total += 1;
            if not_served.len() < SHOWN {
                not_served.push(format!(
                    "{}: {why}",
                    crate::report::escape_controls(&object_name(group, plural, o))
                ));
            }
        }
        counts.push(ResourceCount {
            resource,
            in_snapshot: objs.len() as u64,
            served,
        });
    }
    if let Some(why) = &api.not_ready {
        // `/readyz?verbose` answers its checks as `[-]name failed: …`.
        let failed: Vec<&str> = why
            .split(['\n', '|'])
            .map(str::trim)
            .filter(|l| l.starts_with("[-]"))
            .collect();
        not_served.insert(
            0,
            format!(
                "the API server never became ready ({})",
                if failed.is_empty() {
                    why.clone()
                } else {
                    failed.join(", ")
                }
            ),
        );
    }
    let finding = if missing_total == 0 && not_served.is_empty() {
        Finding {
            check: "api-served",
            member: None,
            verdict: Verdict::Pass,
            detail: format!(
                "all {objects} objects of {} resources listed by the API server",
                want.len()
            ),
        }
    } else {
        Finding {
            check: "api-served",
            member: None,
            verdict: Verdict::Fail,
            detail: format!(
                "{missing_total} of {objects} objects not served by the API server: {}{}",
                not_served.join("; "),
                if not_served.len() >= SHOWN {
                    "; …"
                } else {
                    ""
                }
            ),
        }
    };
    let namespaces = per_ns
        .into_iter()
        .map(|(namespace, (in_snapshot, served))| NamespaceCount {
            namespace,
            in_snapshot,
            served,
        })
        .collect();
    Ok((finding, (counts, namespaces)))
}

/// Runs `kube-apiserver --version` (`Kubernetes v1.37.2`).
pub(super) fn version(bin: &Path) -> Result<String, DrillError> {
    let out = Command::new(bin)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| DrillError::EtcdVersion {
            bin: bin.display().to_string(),
            detail: e.to_string(),
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("Kubernetes "))
        .map(|v| v.trim().to_string())
        .ok_or_else(|| DrillError::EtcdVersion {
            bin: bin.display().to_string(),
            detail: format!("it printed {:?}", text.lines().next().unwrap_or("")),
        })
}
