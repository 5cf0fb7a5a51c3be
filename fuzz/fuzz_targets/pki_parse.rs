//! Fuzzes what `pki check` and `pki issue` read from outside: certificate
//! files (PEM blocks or DER, through x509-parser and our field copies),
//! private key files (PEM with headers, PKCS#1, SEC1, PKCS#8, encrypted
//! forms, DER), the signature and hostname checks on whatever parsed, and
//! the whole check of a GKE-layout dir whose three files hold the input.
//! Seeds: fuzz/seeds/pki_parse (openssl-made certificates and keys of
//! every form, PEM and DER).
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use etcdsnap::pki::{MemberUrls, cert, hostname, parse};
use libfuzzer_sys::fuzz_target;

fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("etcdsnap-fuzz-pki-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("fuzz dir");
        d
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(certs) = cert::read_certs(data) {
        for c in &certs {
            let _ = c.check_signature_from(c);
            for h in ["127.0.0.1", "[::1]", "m1", "x.example.com", "*.example.com", ""] {
                let _ = hostname::verify_hostname(c, h);
            }
        }
    }
    if let Ok(k) = parse::read_key(data) {
        let _ = k.describe();
        let _ = k.pkcs8_der();
        let _ = k.kubeadm_pem();
    }
    let d = dir();
    for name in ["etcdCA.crt", "etcd.crt", "etcd.key"] {
        std::fs::write(d.join(name), data).expect("write");
    }
    let members = [MemberUrls {
        name: "m1".into(),
        peer_urls: vec!["https://127.0.0.1:2380".into()],
        client_urls: vec!["https://m1:2379".into()],
    }];
    let _ = etcdsnap::pki::check::check_dir(d, &members, std::time::SystemTime::now());
});
