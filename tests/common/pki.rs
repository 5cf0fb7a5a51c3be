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
