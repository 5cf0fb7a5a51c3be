//! Object storage on loopback for the remote-source tests: a real S3 server
//! (versitygw, built by `.ci/versitygw`, objects put with curl's own SigV4
//! signing, an independent S3 client) and a small HTTP/1.1 file server of
//! ours that honours Range, gives ETag and Last-Modified, and can misbehave
//! on purpose: cut a body short, or pause in the middle of one until the test
//! says go (to replace the object, kill the server or interrupt the reader
//! mid-read).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::cluster::free_port;

pub const ACCESS_KEY: &str = "etcdsnapTESTKEY";
pub const SECRET_KEY: &str = "etcdsnap-test-secret-9f3c1a7e";

/// The versitygw binary `.ci/versitygw` builds (fails the test, with the
/// command that installs it, when it is missing).
pub fn versitygw_bin() -> PathBuf {
    let cache = std::env::var_os("ETCDSNAP_CI_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/etcdsnap-ci")
        });
    let bin = cache.join("versitygw-v1.8.0/versitygw");
    assert!(
        bin.is_file(),
        "{} is missing: run `bash .ci/versitygw` (or .ci/setup)",
        bin.display()
    );
    bin
}

/// A versitygw S3 gateway over a temporary directory, killed when dropped.
pub struct Versity {
    pub child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
    /// With TLS: the CA that signed the server's certificate.
    pub ca: Option<PathBuf>,
}

/// What a versitygw is started with besides its defaults.
#[derive(Default)]
pub struct VersityOpts {
    /// Serve HTTPS with this certificate and key, signed by this CA
    /// (`cert`, `key`, `ca`).
    pub tls: Option<(PathBuf, PathBuf, PathBuf)>,
    /// Write the server's access log (one line a request, naming the S3
    /// operation and key) to this file.
    pub access_log: Option<PathBuf>,
}

impl Drop for Versity {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Versity {
    pub fn start() -> Versity {
        Versity::start_with(VersityOpts::default())
    }

    pub fn start_with(opts: VersityOpts) -> Versity {
        let bin = versitygw_bin();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        let port = free_port();
        let mut c = Command::new(bin);
        c.env("ROOT_ACCESS_KEY", ACCESS_KEY)
            .env("ROOT_SECRET_KEY", SECRET_KEY)
            .args(["--port", &format!("127.0.0.1:{port}"), "--quiet"]);
        let mut ca = None;
        if let Some((cert, key, ca_file)) = &opts.tls {
            c.arg("--cert").arg(cert).arg("--key").arg(key);
            ca = Some(ca_file.clone());
        }
        if let Some(log) = &opts.access_log {
            c.arg("--access-log").arg(log);
        }
        let child = c
            .arg("posix")
            .arg(&root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start versitygw");
        let v = Versity {
            child,
            port,
            dir,
            ca,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "versitygw did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        v
    }

    pub fn endpoint(&self) -> String {
        let scheme = if self.ca.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// curl with the S3 signing settings (and the CA, with TLS).
    fn curl_base(&self) -> Command {
        let mut c = Command::new("curl");
        if let Some(ca) = &self.ca {
            c.arg("--cacert").arg(ca);
        }
        c
    }

    /// A signed S3 request with curl (`--aws-sigv4`); panics unless 2xx.
    pub fn curl(&self, method: &str, path: &str, body: Option<&Path>) {
        let mut c = self.curl_base();
        c.args(["-sS", "-f", "-X", method])
            .args(["-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"])
            .args(["--aws-sigv4", "aws:amz:us-east-1:s3"])
            .args(["--user", &format!("{ACCESS_KEY}:{SECRET_KEY}")]);
        if let Some(b) = body {
            c.arg("-T").arg(b);
        }
        c.arg(format!("{}{path}", self.endpoint()));
        let out = c.output().expect("run curl (apt-get install curl)");
        assert!(
            out.status.success(),
            "curl {method} {path}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn create_bucket(&self, bucket: &str) {
        self.curl("PUT", &format!("/{bucket}"), None);
    }

    pub fn put(&self, bucket: &str, key: &str, file: &Path) {
        self.curl("PUT", &format!("/{bucket}/{key}"), Some(file));
    }

    /// Puts each (key, file) in one curl process (one connection, each
    /// request signed); panics unless every one is 2xx.
    pub fn put_many(&self, bucket: &str, objects: &[(String, PathBuf)]) {
        let mut config = String::new();
        for (key, file) in objects {
            config += &format!(
                "url = \"{}/{bucket}/{key}\"\nupload-file = \"{}\"\n",
                self.endpoint(),
                file.display()
            );
        }
        let cfg = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(cfg.path(), config).unwrap();
        let out = self
            .curl_base()
            .args(["-sS", "-f", "--fail-early"])
            .args(["-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"])
            .args(["--aws-sigv4", "aws:amz:us-east-1:s3"])
            .args(["--user", &format!("{ACCESS_KEY}:{SECRET_KEY}")])
            .arg("-K")
            .arg(cfg.path())
            .output()
            .expect("run curl (apt-get install curl)");
        assert!(
            out.status.success(),
            "curl PUT of {} objects: {}",
            objects.len(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// An etcdsnap command with the S3 settings of `v` in its environment (and
/// nothing of the caller's AWS settings).
pub fn with_s3_env(c: &mut Command, v: &Versity, secret: &str) {
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("AWS_") {
            c.env_remove(k);
        }
    }
    c.env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL", v.endpoint())
        .env("AWS_ALLOW_HTTP", "true");
    // Only the roots a test gives (no user's SSL_CERT_FILE).
    c.env_remove("SSL_CERT_FILE").env_remove("SSL_CERT_DIR");
}

/// What the HTTP server does with the body of a GET of one file.
#[derive(Clone)]
pub enum Fault {
    /// Send the object's bytes up to offset N (of the file, whatever range
    /// was asked), then close the connection: every GET, so a resumed read
    /// never gets further.
    Cut(usize),
    /// As `Cut`, for the first GET only; later ones are whole.
    CutOnce(usize),
    /// Answer the next N requests for the name with 503 SlowDown (as S3
    /// throttles), then serve normally.
    Throttle(usize),
    /// Send the first N bytes, tell the test (`paused`), wait for its go,
    /// then send the rest of the bytes read when the request came in.
    Pause(usize),
}

/// Our HTTP/1.1 file server on loopback: GET and HEAD of the files of a
/// directory, with Range, ETag (size and mtime) and Last-Modified.
pub struct HttpServer {
    pub port: u16,
    pub dir: tempfile::TempDir,
    faults: Arc<Mutex<HashMap<String, Fault>>>,
    stop: Arc<AtomicBool>,
    pub paused: Receiver<()>,
    go: Sender<()>,
    /// How many requests were answered 503 SlowDown.
    pub throttled: Arc<AtomicUsize>,
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.go.send(());
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

impl HttpServer {
    pub fn start() -> HttpServer {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        let faults: Arc<Mutex<HashMap<String, Fault>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (paused_tx, paused) = channel();
        let (go, go_rx) = channel();
        let go_rx = Arc::new(Mutex::new(go_rx));
        let (root, f, s) = (dir.path().to_path_buf(), faults.clone(), stop.clone());
        let throttled = Arc::new(AtomicUsize::new(0));
        let t = throttled.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (root, f, s, p, g, t) = (
                    root.clone(),
                    f.clone(),
                    s.clone(),
                    paused_tx.clone(),
                    go_rx.clone(),
                    t.clone(),
                );
                std::thread::spawn(move || serve(conn, &root, &f, &s, &p, &g, &t));
            }
        });
        HttpServer {
            port,
            dir,
            faults,
            stop,
            paused,
            go,
            throttled,
        }
    }

    pub fn url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/{name}", self.port)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn fault(&self, name: &str, fault: Fault) {
        self.faults.lock().unwrap().insert(name.into(), fault);
    }

    /// Lets a paused body go on.
    pub fn go(&self) {
        self.go.send(()).unwrap();
    }

    /// Stops the server: it accepts nothing more, and a paused body ends
    /// with its connection closed, short.
    pub fn kill(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.go.send(());
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

pub fn http_date(t: std::time::SystemTime) -> String {
    // RFC 7231 IMF-fixdate, by hand (no date crate in the tests).
    let secs = t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if mo <= 2 { 1 } else { 0 };
    let wd = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][days.rem_euclid(7) as usize];
    let mn = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][(mo - 1) as usize];
    format!("{wd}, {d:02} {mn} {y} {h:02}:{m:02}:{s:02} GMT")
}

fn serve(
    conn: TcpStream,
    root: &Path,
    faults: &Mutex<HashMap<String, Fault>>,
    stop: &AtomicBool,
    paused: &Sender<()>,
    go: &Mutex<Receiver<()>>,
    throttled: &AtomicUsize,
) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut conn = conn;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let (method, target) = (
            parts.next().unwrap_or("").to_string(),
            parts.next().unwrap_or("/").to_string(),
        );
        let mut range = None;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':')
                && k.eq_ignore_ascii_case("range")
            {
                range = Some(v.trim().to_string());
            }
        }
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let name = target
            .split('?')
            .next()
            .unwrap_or("")
            .trim_start_matches('/')
            .to_string();
        let throttle = {
            let mut f = faults.lock().unwrap();
            match f.get_mut(&name) {
                Some(Fault::Throttle(n)) => {
                    *n -= 1;
                    if *n == 0 {
                        f.remove(&name);
                    }
                    true
                }
                _ => false,
            }
        };
        if throttle {
            let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";
            let _ = write!(
                conn,
                "HTTP/1.1 503 Slow Down\r\nContent-Length: {}\r\nContent-Type: application/xml\r\n\r\n{}",
                body.len(),
                if method == "HEAD" { "" } else { body }
            );
            throttled.fetch_add(1, Ordering::SeqCst);
            continue;
        }
        let file = root.join(&name);
        let (Ok(bytes), Ok(meta)) = (std::fs::read(&file), std::fs::metadata(&file)) else {
            let body = "not found\n";
            let _ = write!(
                conn,
                "HTTP/1.1 404 Not Found\r\nContent-Length: {}\r\nContent-Type: text/plain\r\n\r\n{}",
                body.len(),
                if method == "HEAD" { "" } else { body }
            );
            continue;
        };
        let mtime = meta.modified().unwrap();
        let nanos = mtime
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let etag = format!("\"{:x}-{:x}\"", bytes.len(), nanos);
        let (status, start, end) = match range.as_deref().and_then(|r| r.strip_prefix("bytes=")) {
            Some(r) => {
                let (a, b) = r.split_once('-').unwrap();
                let a: usize = a.parse().unwrap_or(0);
                let b: usize = b.parse().unwrap_or(bytes.len() - 1).min(bytes.len() - 1);
                ("206 Partial Content", a, b + 1)
            }
            None => ("200 OK", 0, bytes.len()),
        };
        let mut head = format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nETag: {etag}\r\nLast-Modified: {}\r\nAccept-Ranges: bytes\r\nContent-Type: application/octet-stream\r\n",
            end - start,
            http_date(mtime)
        );
        if status.starts_with("206") {
            head += &format!(
                "Content-Range: bytes {start}-{}/{}\r\n",
                end - 1,
                bytes.len()
            );
        }
        head += "\r\n";
        if conn.write_all(head.as_bytes()).is_err() {
            return;
        }
        if method == "HEAD" {
            continue;
        }
        let body = &bytes[start..end];
        let fault = faults.lock().unwrap().get(&name).cloned();
        match fault {
            None | Some(Fault::Throttle(_)) => {
                if conn.write_all(body).is_err() {
                    return;
                }
            }
            Some(f @ (Fault::Cut(_) | Fault::CutOnce(_))) => {
                let (Fault::Cut(n) | Fault::CutOnce(n)) = f else {
                    unreachable!()
                };
                if matches!(f, Fault::CutOnce(_)) {
                    faults.lock().unwrap().remove(&name);
                }
                let n = n.saturating_sub(start);
                let _ = conn.write_all(&body[..n.min(body.len())]);
                let _ = conn.flush();
                let _ = conn.shutdown(std::net::Shutdown::Both);
                return;
            }
            Some(Fault::Pause(n)) => {
                let n = n.min(body.len());
                let _ = conn.write_all(&body[..n]);
                let _ = conn.flush();
                // Only the first GET pauses.
                faults.lock().unwrap().remove(&name);
                let _ = paused.send(());
                let _ = go.lock().unwrap().recv();
                if stop.load(Ordering::SeqCst) {
                    let _ = conn.shutdown(std::net::Shutdown::Both);
                    return;
                }
                if conn.write_all(&body[n..]).is_err() {
                    return;
                }
            }
        }
        let _ = conn.flush();
    }
}
