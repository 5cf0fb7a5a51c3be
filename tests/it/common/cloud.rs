//! Google Cloud Storage and Azure Blob on loopback for the `gs://` and
//! `az://` tests: fake-gcs-server (built by `.ci/fake-gcs-server`) and
//! Azurite's blob service (installed by `.ci/azurite`). Objects are put with
//! curl over each emulator's own REST API — GCS's JSON upload, Azure's Put
//! Blob with a SharedKey signature made here with ring's HMAC — so nothing
//! of the client under test (object_store) writes what it then reads.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::cluster::free_port;
use super::objstore::http_date;

/// Azurite's account and key: the emulator's well-known, published pair.
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

fn ci_cache() -> PathBuf {
    std::env::var_os("ETCDSNAP_CI_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/etcdsnap-ci")
        })
}

/// A tool `.ci/setup` installs: fails the test, with the command that
/// installs it, when it is missing.
fn tool(rel: &str, script: &str) -> PathBuf {
    let bin = ci_cache().join(rel);
    assert!(
        bin.is_file(),
        "{} is missing: run `bash .ci/{script}` (or .ci/setup)",
        bin.display()
    );
    bin
}

pub fn fake_gcs_bin() -> PathBuf {
    tool("fake-gcs-server-v1.56.1/fake-gcs-server", "fake-gcs-server")
}

pub fn azurite_blob_bin() -> PathBuf {
    tool("azurite-3.35.0/node_modules/.bin/azurite-blob", "azurite")
}

/// Waits until `port` accepts connections (panics if `child` exits first).
fn wait_listening(child: &mut Child, port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited before listening on {port}: {status}");
        }
        assert!(Instant::now() < deadline, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs curl with `args`; panics unless 2xx.
fn curl(args: &[String]) {
    let out = Command::new("curl")
        .args(["-sS", "-f"])
        .args(args)
        .output()
        .expect("run curl (apt-get install curl)");
    assert!(
        out.status.success(),
        "curl {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Drops every variable of the caller's that would steer a cloud client.
fn clean_env(c: &mut Command) {
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if ["GOOGLE_", "GCE_", "AZURE_", "AZURITE_", "IDENTITY_", "MSI_"]
            .iter()
            .any(|p| k.starts_with(p))
            || k == "SERVICE_ACCOUNT"
        {
            c.env_remove(k);
        }
    }
}

/// fake-gcs-server over a temporary directory, killed when dropped.
pub struct FakeGcs {
    pub child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl Drop for FakeGcs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl FakeGcs {
    pub fn start() -> FakeGcs {
        let bin = fake_gcs_bin();
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let host = format!("127.0.0.1:{port}");
        // The public host is where path-style object URLs (GCS's XML API,
        // which object_store reads with) are served.
        let mut child = Command::new(bin)
            .args(["-scheme", "http", "-host", "127.0.0.1"])
            .args(["-port", &port.to_string(), "-public-host", &host])
            .args(["-backend", "filesystem", "-filesystem-root"])
            .arg(dir.path().join("root"))
            .args(["-log-level", "error"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start fake-gcs-server");
        wait_listening(&mut child, port, "fake-gcs-server");
        FakeGcs { child, port, dir }
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn create_bucket(&self, bucket: &str) {
        curl(&[
            "-X".into(),
            "POST".into(),
            "-H".into(),
            "Content-Type: application/json".into(),
            "--data".into(),
            format!("{{\"name\":\"{bucket}\"}}"),
            format!("{}/storage/v1/b", self.base_url()),
        ]);
    }

    /// A media upload of `file` as `bucket/key` (the JSON API).
    pub fn put(&self, bucket: &str, key: &str, file: &Path) {
        let name = gcs_name(key);
        curl(&[
            "-X".into(),
            "POST".into(),
            "-H".into(),
            "Content-Type: application/octet-stream".into(),
            "--data-binary".into(),
            format!("@{}", file.display()),
            format!(
                "{}/upload/storage/v1/b/{bucket}/o?uploadType=media&name={name}",
                self.base_url()
            ),
        ]);
    }
}

/// `key` as a path segment or query value of GCS's JSON API.
fn gcs_name(key: &str) -> String {
    key.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl FakeGcs {
    /// GETs `bucket/key` with curl (the JSON API's media download, not our
    /// client) into `to`; the HTTP status.
    pub fn get(&self, bucket: &str, key: &str, to: &Path) -> u16 {
        let o = Command::new("curl")
            .args(["-sS", "-o"])
            .arg(to)
            .args(["-w", "%{http_code}"])
            .arg(format!(
                "{}/download/storage/v1/b/{bucket}/o/{}?alt=media",
                self.base_url(),
                gcs_name(key)
            ))
            .output()
            .expect("run curl");
        assert!(o.status.success(), "curl GET {key}: {o:?}");
        String::from_utf8_lossy(&o.stdout).trim().parse().unwrap()
    }
}

/// An etcdsnap command reaching `g` without credentials (the emulator takes
/// none), with nothing of the caller's cloud settings.
pub fn with_gcs_env(c: &mut Command, g: &FakeGcs) {
    clean_env(c);
    c.env("GOOGLE_BASE_URL", g.base_url())
        .env("GOOGLE_SKIP_SIGNATURE", "true")
        .env("GOOGLE_ALLOW_HTTP", "true");
}

/// Azurite's blob service over a temporary directory, killed when dropped.
pub struct Azurite {
    pub child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Azurite {
    pub fn start() -> Azurite {
        let bin = azurite_blob_bin();
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut child = Command::new(bin)
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            .arg("--location")
            .arg(dir.path())
            .args(["--skipApiVersionCheck", "--silent", "--disableTelemetry"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start azurite-blob");
        wait_listening(&mut child, port, "azurite-blob");
        Azurite { child, port, dir }
    }

    /// The blob service URL (the account is the first path segment).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A request signed with the account key (SharedKey, version
    /// 2021-08-06): `path` is `container[/blob]`, `body` a file to PUT.
    fn signed(&self, path: &str, query: &[(&str, &str)], body: Option<&Path>, blob: bool) {
        let date = http_date(SystemTime::now());
        let mut ms = vec![
            ("x-ms-date", date.clone()),
            ("x-ms-version", "2021-08-06".to_string()),
        ];
        if blob {
            ms.push(("x-ms-blob-type", "BlockBlob".to_string()));
        }
        ms.sort();
        let (len, ctype) = match body {
            Some(f) => (
                std::fs::metadata(f).unwrap().len().to_string(),
                "application/octet-stream",
            ),
            None => (String::new(), ""),
        };
        let mut q: Vec<_> = query.to_vec();
        q.sort();
        // Verb, the standard headers (Content-Length and Content-Type the
        // only ones sent), the x-ms- headers, then the resource.
        let mut to_sign = format!("PUT\n\n\n{len}\n\n{ctype}\n\n\n\n\n\n\n");
        for (k, v) in &ms {
            to_sign += &format!("{k}:{v}\n");
        }
        to_sign += &format!("/{AZURITE_ACCOUNT}/{AZURITE_ACCOUNT}/{path}");
        for (k, v) in &q {
            to_sign += &format!("\n{k}:{v}");
        }
        let key = ring::hmac::Key::new(
            ring::hmac::HMAC_SHA256,
            &BASE64.decode(AZURITE_KEY).unwrap(),
        );
        let sig = BASE64.encode(ring::hmac::sign(&key, to_sign.as_bytes()).as_ref());
        let mut args: Vec<String> = vec!["-X".into(), "PUT".into(), "-H".into(), "Expect:".into()];
        for (k, v) in &ms {
            args.extend(["-H".into(), format!("{k}: {v}")]);
        }
        args.extend([
            "-H".into(),
            format!("Authorization: SharedKey {AZURITE_ACCOUNT}:{sig}"),
        ]);
        if let Some(f) = body {
            args.extend([
                "-H".into(),
                format!("Content-Type: {ctype}"),
                "-T".into(),
                f.display().to_string(),
            ]);
        }
        let query: Vec<String> = q.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut url = format!("{}/{AZURITE_ACCOUNT}/{path}", self.url());
        if !query.is_empty() {
            url = format!("{url}?{}", query.join("&"));
        }
        args.push(url);
        curl(&args);
    }

    pub fn create_container(&self, container: &str) {
        self.signed(container, &[("restype", "container")], None, false);
    }

    /// Put Blob of `file` as `container/key` (a block blob in one request).
    pub fn put(&self, container: &str, key: &str, file: &Path) {
        self.signed(&format!("{container}/{key}"), &[], Some(file), true);
    }
}

/// An etcdsnap command reaching `a` in object_store's emulator mode with
/// the account key `key`, with nothing of the caller's cloud settings.
pub fn with_azure_env(c: &mut Command, a: &Azurite, key: &str) {
    clean_env(c);
    c.env("AZURE_STORAGE_USE_EMULATOR", "true")
        .env("AZURITE_BLOB_STORAGE_URL", a.url())
        .env("AZURE_STORAGE_ACCOUNT_NAME", AZURITE_ACCOUNT)
        .env("AZURE_STORAGE_ACCOUNT_KEY", key);
}
