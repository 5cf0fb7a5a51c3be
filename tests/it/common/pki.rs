//! Test PKIs made by an independent implementation, the `openssl` command
//! line.

use std::path::Path;
use std::process::Command;

use super::stderr;

/// A CA and, signed by it, kubeadm's etcd server and peer certificates for
/// 127.0.0.1 (server.crt/key, peer.crt/key, ca.crt), made with openssl.
pub fn make_pki(dir: &Path) {
    let ssl = |args: &[&str]| {
        let o = Command::new("openssl")
            .current_dir(dir)
            .args(args)
            .output()
            .expect("openssl is required (apt-get install openssl)");
        assert!(o.status.success(), "openssl {args:?}: {}", stderr(&o));
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    ssl(&[
        &["req", "-x509"][..],
        &ec,
        &[
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=etcd-ca",
        ],
    ]
    .concat());
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n",
    )
    .unwrap();
    for n in ["server", "peer"] {
        let (key, csr, crt) = (format!("{n}.key"), format!("{n}.csr"), format!("{n}.crt"));
        ssl(&[
            &["req"][..],
            &ec,
            &["-keyout", &key, "-out", &csr, "-subj", &format!("/CN={n}")],
        ]
        .concat());
        ssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &crt,
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ]);
    }
}

/// Key types of the kubeadm-profile test PKIs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algo {
    /// RSA-2048, keys in PKCS#1 (`RSA PRIVATE KEY`), as kubeadm's default.
    Rsa,
    /// ECDSA P-256, keys in SEC1 (`EC PRIVATE KEY`).
    Ec,
}

/// Runs openssl in `dir`, panicking with its stderr on failure.
pub fn openssl(dir: &Path, args: &[&str]) -> String {
    let o = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl is required (apt-get install openssl)");
    assert!(o.status.success(), "openssl {args:?}: {}", stderr(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A new private key at `path` (relative to `dir`), mode 0600.
pub fn genkey(dir: &Path, algo: Algo, path: &str) {
    match algo {
        Algo::Rsa => openssl(dir, &["genrsa", "-traditional", "-out", path, "2048"]),
        Algo::Ec => openssl(
            dir,
            &[
                "ecparam",
                "-name",
                "prime256v1",
                "-genkey",
                "-noout",
                "-out",
                path,
            ],
        ),
    };
    set_mode(&dir.join(path), 0o600);
}

pub fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A CA as kubeadm makes its etcd CA: `<base>.crt`/`<base>.key` under
/// `dir`, CN `cn`, CA:true, keyCertSign, SAN DNS:`cn`, ten years.
pub fn make_ca(dir: &Path, algo: Algo, base: &str, cn: &str) {
    if let Some(parent) = Path::new(base).parent() {
        std::fs::create_dir_all(dir.join(parent)).unwrap();
    }
    let key = format!("{base}.key");
    let crt = format!("{base}.crt");
    genkey(dir, algo, &key);
    let scratch = tempfile::tempdir().unwrap();
    let cnf = scratch.path().join("ca.cnf");
    std::fs::write(
        &cnf,
        format!(
            "[req]\ndistinguished_name = dn\nprompt = no\nx509_extensions = v3_ca\n\
             [dn]\nCN = {cn}\n\
             [v3_ca]\nbasicConstraints = critical,CA:TRUE\n\
             keyUsage = critical,digitalSignature,keyEncipherment,keyCertSign\n\
             subjectKeyIdentifier = hash\nsubjectAltName = DNS:{cn}\n"
        ),
    )
    .unwrap();
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-new",
            "-config",
            cnf.to_str().unwrap(),
            "-key",
            &key,
            "-out",
            &crt,
            "-days",
            "3650",
            "-sha256",
        ],
    );
    set_mode(&dir.join(&crt), 0o644);
}

/// One leaf certificate to make.
#[derive(Clone, Debug)]
pub struct Leaf {
    pub cn: String,
    /// openssl's subjectAltName value (`DNS:m1,IP:10.0.0.5`), or none.
    pub sans: Option<String>,
    /// openssl's extendedKeyUsage value (`serverAuth,clientAuth`).
    pub eku: String,
    /// `YYYYMMDDHHMMSSZ`.
    pub start: String,
    pub end: String,
    /// Signature digest (`sha256`; `sha1` for a refused one).
    pub md: String,
}

impl Leaf {
    /// kubeadm's server/peer profile for a member at `ip`.
    pub fn member(name: &str, ip: &str) -> Leaf {
        Leaf {
            cn: name.into(),
            sans: Some(format!(
                "DNS:{name},DNS:localhost,IP:{ip},IP:127.0.0.1,IP:::1"
            )),
            eku: "serverAuth,clientAuth".into(),
            ..Leaf::client("x")
        }
    }

    /// kubeadm's server/peer profile for a member on loopback: SANs
    /// DNS `name` and localhost, IP 127.0.0.1 and ::1.
    pub fn loopback_member(name: &str) -> Leaf {
        Leaf {
            sans: Some(format!("DNS:{name},DNS:localhost,IP:127.0.0.1,IP:::1")),
            ..Leaf::member(name, "127.0.0.1")
        }
    }

    /// kubeadm's client profile (healthcheck, apiserver-etcd-client).
    pub fn client(cn: &str) -> Leaf {
        Leaf {
            cn: cn.into(),
            sans: None,
            eku: "clientAuth".into(),
            start: openssl_time(-300),
            end: openssl_time(365 * 86_400),
            md: "sha256".into(),
        }
    }
}

/// Now plus `delta` seconds as openssl's `YYYYMMDDHHMMSSZ`.
pub fn openssl_time(delta: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let t = time::OffsetDateTime::from_unix_timestamp(now + delta).unwrap();
    format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// A leaf `<base>.crt`/`<base>.key` under `dir`, signed by the CA
/// `<ca>.crt`/`<ca>.key` (paths relative to `dir`), made with `openssl ca`
/// (which takes any start and end dates).
pub fn make_leaf(dir: &Path, algo: Algo, base: &str, ca: &str, leaf: &Leaf) {
    if let Some(parent) = Path::new(base).parent() {
        std::fs::create_dir_all(dir.join(parent)).unwrap();
    }
    let key = format!("{base}.key");
    genkey(dir, algo, &key);
    sign_leaf(dir, &key, base, ca, leaf);
}

/// Signs `<base>.crt` for the existing key `key` (a certificate whose key
/// is another one's, or one signed by another CA).
pub fn sign_leaf(dir: &Path, key: &str, base: &str, ca: &str, leaf: &Leaf) {
    let scratch = tempfile::tempdir().unwrap();
    let s = scratch.path();
    std::fs::create_dir(s.join("new")).unwrap();
    std::fs::write(s.join("index.txt"), "").unwrap();
    std::fs::write(s.join("serial"), "01\n").unwrap();
    let mut ext = format!(
        "keyUsage = critical,digitalSignature,keyEncipherment\nextendedKeyUsage = {}\n\
         authorityKeyIdentifier = keyid\n",
        leaf.eku
    );
    if let Some(sans) = &leaf.sans {
        ext.push_str(&format!("subjectAltName = {sans}\n"));
    }
    std::fs::write(
        s.join("ca.cnf"),
        format!(
            "[ca]\ndefault_ca = d\n[d]\ndatabase = {idx}\nnew_certs_dir = {new}\nserial = {serial}\n\
             default_md = {md}\npolicy = p\nunique_subject = no\ncopy_extensions = none\n\
             [p]\ncommonName = supplied\n[ext]\n{ext}",
            idx = s.join("index.txt").display(),
            new = s.join("new").display(),
            serial = s.join("serial").display(),
            md = leaf.md,
        ),
    )
    .unwrap();
    let csr = s.join("leaf.csr");
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-key",
            key,
            "-subj",
            &format!("/CN={}", leaf.cn),
            "-out",
            csr.to_str().unwrap(),
        ],
    );
    let crt = format!("{base}.crt");
    openssl(
        dir,
        &[
            "ca",
            "-batch",
            "-notext",
            "-rand_serial",
            "-config",
            s.join("ca.cnf").to_str().unwrap(),
            "-extensions",
            "ext",
            "-cert",
            &format!("{ca}.crt"),
            "-keyfile",
            &format!("{ca}.key"),
            "-in",
            csr.to_str().unwrap(),
            "-out",
            &crt,
            "-startdate",
            &leaf.start,
            "-enddate",
            &leaf.end,
            "-md",
            &leaf.md,
        ],
    );
    set_mode(&dir.join(&crt), 0o644);
}

/// A copy of kubeadm's whole `/etc/kubernetes/pki` for one control-plane
/// node `name` at `ip`: the etcd CA and its server, peer and
/// healthcheck-client pairs, the apiserver's etcd client pair, and the
/// files that are not etcd's (the cluster CA, sa.*, front-proxy-*).
pub fn kubeadm_pki(dir: &Path, algo: Algo, name: &str, ip: &str) {
    make_ca(dir, algo, "etcd/ca", "etcd-ca");
    make_leaf(dir, algo, "etcd/server", "etcd/ca", &Leaf::member(name, ip));
    make_leaf(dir, algo, "etcd/peer", "etcd/ca", &Leaf::member(name, ip));
    make_leaf(
        dir,
        algo,
        "etcd/healthcheck-client",
        "etcd/ca",
        &Leaf::client("kube-etcd-healthcheck-client"),
    );
    make_leaf(
        dir,
        algo,
        "apiserver-etcd-client",
        "etcd/ca",
        &Leaf::client("kube-apiserver-etcd-client"),
    );
    // Not etcd's: must be left alone.
    make_ca(dir, algo, "ca", "kubernetes");
    make_ca(dir, algo, "front-proxy-ca", "front-proxy-ca");
    make_leaf(
        dir,
        algo,
        "front-proxy-client",
        "front-proxy-ca",
        &Leaf::client("front-proxy-client"),
    );
    genkey(dir, Algo::Rsa, "sa.key");
    openssl(dir, &["rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub"]);
}

/// One node's `/etc/kubernetes/pki/etcd` as kubeadm fills it, in `dir`:
/// `ca.crt`/`ca.key` copied from the CA `<ca>.crt`/`<ca>.key` (an absolute
/// base path: one CA shared by every node), and, signed by it, `server`,
/// `peer` (kubeadm's member profile on loopback) and `healthcheck-client`.
pub fn kubeadm_etcd_node(dir: &Path, algo: Algo, ca: &Path, name: &str) {
    std::fs::create_dir_all(dir).unwrap();
    let ca_base = ca.to_str().unwrap();
    for ext in ["crt", "key"] {
        let to = dir.join(format!("ca.{ext}"));
        std::fs::copy(format!("{ca_base}.{ext}"), &to).unwrap();
        set_mode(&to, if ext == "key" { 0o600 } else { 0o644 });
    }
    for base in ["server", "peer"] {
        make_leaf(dir, algo, base, ca_base, &Leaf::loopback_member(name));
    }
    make_leaf(
        dir,
        algo,
        "healthcheck-client",
        ca_base,
        &Leaf::client("kube-etcd-healthcheck-client"),
    );
}

/// Per-member subdirectories: `dir/etcd/ca.{crt,key}` shared, and
/// `dir/<name>/etcd/{server,peer,healthcheck-client}.*` for each
/// `(name, ip)`.
pub fn per_member_pki(dir: &Path, algo: Algo, members: &[(&str, &str)]) {
    make_ca(dir, algo, "etcd/ca", "etcd-ca");
    for (name, ip) in members {
        for base in ["server", "peer"] {
            make_leaf(
                dir,
                algo,
                &format!("{name}/etcd/{base}"),
                "etcd/ca",
                &Leaf::member(name, ip),
            );
        }
        make_leaf(
            dir,
            algo,
            &format!("{name}/etcd/healthcheck-client"),
            "etcd/ca",
            &Leaf::client("kube-etcd-healthcheck-client"),
        );
    }
}

/// GKE on-prem's layout: `etcdCA.crt`, `etcd.crt`, `etcd.key` (the leaf
/// serves and is a client: serverAuth and clientAuth, SANs of a member at
/// `ip`). The CA key is kept outside, in `ca_dir`.
pub fn gke_pki(dir: &Path, ca_dir: &Path, algo: Algo, name: &str, ip: &str) {
    make_ca(ca_dir, algo, "etcdCA", "etcd-ca");
    std::fs::copy(ca_dir.join("etcdCA.crt"), dir.join("etcdCA.crt")).unwrap();
    let ca = ca_dir.join("etcdCA").display().to_string();
    make_leaf(dir, algo, "etcd", &ca, &Leaf::member(name, ip));
}

/// Every certificate and key of `dir` (recursively) rewritten in DER, same
/// names and modes.
pub fn to_der(dir: &Path) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            to_der(&p);
            continue;
        }
        let name = p.to_str().unwrap().to_string();
        let tmp = format!("{name}.der");
        match p.extension().and_then(|e| e.to_str()) {
            Some("crt") => {
                openssl(
                    dir,
                    &["x509", "-in", &name, "-outform", "DER", "-out", &tmp],
                );
            }
            Some("key") => {
                let text = std::fs::read_to_string(&p).unwrap();
                let cmd = if text.contains("RSA PRIVATE KEY") {
                    "rsa"
                } else if text.contains("EC PRIVATE KEY") {
                    "ec"
                } else {
                    "pkey"
                };
                openssl(dir, &[cmd, "-in", &name, "-outform", "DER", "-out", &tmp]);
            }
            _ => continue,
        }
        let mode = std::fs::metadata(&p).unwrap().permissions();
        std::fs::rename(&tmp, &p).unwrap();
        std::fs::set_permissions(&p, mode).unwrap();
    }
}

/// `openssl ARGS -in FILE -out FILE` done through a temporary file (openssl
/// truncates its output first), keeping FILE's mode.
pub fn openssl_inplace(dir: &Path, file: &str, args: &[&str]) {
    let tmp = format!("{file}.tmp");
    let mut all = args.to_vec();
    all.extend(["-in", file, "-out", &tmp]);
    openssl(dir, &all);
    let mode = std::fs::metadata(dir.join(file)).unwrap().permissions();
    std::fs::rename(dir.join(&tmp), dir.join(file)).unwrap();
    std::fs::set_permissions(dir.join(file), mode).unwrap();
}
