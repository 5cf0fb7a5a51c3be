//! `install` of a member's archive straight from a bucket: the tree it
//! leaves is byte for byte the tree `install` of the same archive on disk
//! leaves; every check holds as on disk (an archive that does not match the
//! SHA256SUMS beside it in the bucket is refused and nothing is written);
//! an archive with no SHA256SUMS beside it needs --sha256; the private copy
//! is gone afterwards.

use std::path::Path;
use std::process::{Command, Output};

use crate::bundle::{TOKEN, bundle_in};
use crate::common::objstore::{SECRET_KEY, Versity, with_s3_env};
use crate::common::{etcdsnap, stderr, stdout, tree};

fn install(v: &Versity, archive: &str, root: &Path, tmp: &Path, extra: &[&str]) -> Output {
    let mut c: Command = etcdsnap();
    with_s3_env(&mut c, v, SECRET_KEY);
    c.env("TMPDIR", tmp)
        .args(["install", archive, "--root"])
        .arg(root)
        .args(extra);
    c.output().unwrap()
}

#[test]
#[ignore = "real: versitygw (bash .ci/versitygw)"]
fn install_from_a_bucket_equals_install_from_disk() {
    let d = tempfile::tempdir().unwrap();
    let out = bundle_in(d.path(), "out", TOKEN, &[]);
    let v = Versity::start();
    v.create_bucket("backups");
    for f in ["m1.tar.zst", "m2.tar.zst", "SHA256SUMS"] {
        v.put("backups", &format!("bundles/{f}"), &out.join(f));
    }
    let tmp = d.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();

    // On disk, the oracle.
    let local = d.path().join("local");
    std::fs::create_dir(&local).unwrap();
    let o = crate::common::etcdsnap()
        .args(["install"])
        .arg(out.join("m1.tar.zst"))
        .arg("--root")
        .arg(&local)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));

    let remote = d.path().join("remote");
    std::fs::create_dir(&remote).unwrap();
    let o = install(&v, "s3://backups/bundles/m1.tar.zst", &remote, &tmp, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("s3://backups/bundles/m1.tar.zst"),
        "{}",
        stdout(&o)
    );
    assert_eq!(
        tree(&remote),
        tree(&local),
        "the same files, bytes and modes"
    );
    assert!(tree(&tmp).is_empty(), "the private copy is removed");

    // An archive that is not the one SHA256SUMS lists: refused, nothing
    // written.
    v.put("backups", "bundles/m2.tar.zst", &out.join("m1.tar.zst"));
    let other = d.path().join("other");
    std::fs::create_dir(&other).unwrap();
    let o = install(&v, "s3://backups/bundles/m2.tar.zst", &other, &tmp, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(tree(&other).is_empty());
    assert!(tree(&tmp).is_empty());

    // No SHA256SUMS beside it: --sha256 is needed.
    v.put("backups", "alone/m1.tar.zst", &out.join("m1.tar.zst"));
    let o = install(&v, "s3://backups/alone/m1.tar.zst", &other, &tmp, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("give --sha256"), "{}", stderr(&o));
    assert!(tree(&other).is_empty());

    // A missing object: exit 2, named.
    let o = install(&v, "s3://backups/bundles/m9.tar.zst", &other, &tmp, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("s3://backups/bundles/m9.tar.zst"),
        "{}",
        stderr(&o)
    );
    assert!(tree(&tmp).is_empty());
}
