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

/// The oracle on disk: a bundle of the 3.5.1 fixture in `dir/out` (its PKI
/// in `dir/pki-TOKEN`, reused by the bundles to buckets) and the tree
/// `install` of its m2 archive leaves in `dir/local`.
fn on_disk(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let out = bundle_in(dir, "out", TOKEN, &[]);
    let local = dir.join("local");
    std::fs::create_dir(&local).unwrap();
    let o = etcdsnap()
        .arg("install")
        .arg(out.join("m2.tar.zst"))
        .arg("--root")
        .arg(&local)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    (out, local)
}

/// `bundle` of the same fixture and PKI as [`on_disk`] to `out`.
fn bundle_args(c: &mut Command, dir: &Path, out: &str, extra: &[&str]) {
    c.arg("bundle")
        .arg(crate::common::fixture("etcd-3.5.1.db"))
        .args(["--initial-cluster", crate::bundle::IC])
        .args(["--initial-cluster-token", TOKEN, "--pki"])
        .arg(dir.join(format!("pki-{TOKEN}")))
        .args(["--out", out])
        .args(extra);
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

/// `bundle --out s3://BUCKET/DIR/` uploads the archives and then
/// SHA256SUMS; installing from there leaves the tree a bundle and install
/// on disk leave; a second bundle to the same prefix is refused without
/// --force and leaves the objects as they were.
#[test]
#[ignore = "real: versitygw (bash .ci/versitygw)"]
fn bundle_to_a_bucket_then_install_from_it() {
    let d = tempfile::tempdir().unwrap();
    let (_, local) = on_disk(d.path());

    let v = Versity::start();
    v.create_bucket("backups");
    let tmp = d.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let bundle = |extra: &[&str]| {
        let mut c: Command = etcdsnap();
        with_s3_env(&mut c, &v, SECRET_KEY);
        c.env("TMPDIR", &tmp);
        bundle_args(&mut c, d.path(), "s3://backups/nightly", extra);
        c.output().unwrap()
    };
    let o = bundle(&[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("s3://backups/nightly/m2.tar.zst"),
        "{}",
        stdout(&o)
    );
    assert!(
        stderr(&o).contains("uploaded s3://backups/nightly/SHA256SUMS"),
        "{}",
        stderr(&o)
    );
    assert!(tree(&tmp).is_empty(), "the scratch directory is removed");
    let objects = tree(&v.dir.path().join("root/backups/nightly"));
    let sums_before = std::fs::read(v.dir.path().join("root/backups/nightly/SHA256SUMS")).unwrap();

    let remote = d.path().join("remote");
    std::fs::create_dir(&remote).unwrap();
    let o = install(&v, "s3://backups/nightly/m2.tar.zst", &remote, &tmp, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(tree(&remote), tree(&local));

    // Again without --force: refused, nothing changed.
    let o = bundle(&[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
    assert_eq!(tree(&v.dir.path().join("root/backups/nightly")), objects);
    // With --force: replaced.
    let o = bundle(&["--force"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("replacing"), "{}", stderr(&o));
    let sums_after = std::fs::read(v.dir.path().join("root/backups/nightly/SHA256SUMS")).unwrap();
    assert_eq!(sums_after.len(), sums_before.len());
}

/// `bundle --out gs://…` (resumable upload sessions on fake-gcs-server),
/// then `install gs://…`: the tree equals an install of the same archive
/// from disk; a second bundle is refused without --force (the objects
/// unchanged, as curl reads SHA256SUMS) and replaces them with it.
#[test]
#[ignore = "real: fake-gcs-server (bash .ci/fake-gcs-server) and curl"]
fn bundle_to_gcs_then_install_from_it() {
    use crate::common::cloud::{FakeGcs, with_gcs_env};
    let d = tempfile::tempdir().unwrap();
    let (out, local) = on_disk(d.path());

    let g = FakeGcs::start();
    g.create_bucket("backups");
    let tmp = d.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let gcs = |args: &mut dyn FnMut(&mut Command)| {
        let mut c: Command = etcdsnap();
        with_gcs_env(&mut c, &g);
        c.env("TMPDIR", &tmp);
        args(&mut c);
        c.output().unwrap()
    };
    let bundle = |extra: &[&str]| {
        gcs(&mut |c| {
            bundle_args(c, d.path(), "gs://backups/nightly", extra);
        })
    };
    let sums = || {
        let to = d.path().join("sums");
        assert_eq!(g.get("backups", "nightly/SHA256SUMS", &to), 200);
        std::fs::read(&to).unwrap()
    };
    let o = bundle(&[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("uploaded gs://backups/nightly/SHA256SUMS"),
        "{}",
        stderr(&o)
    );
    assert_eq!(sums(), std::fs::read(out.join("SHA256SUMS")).unwrap());
    let remote = d.path().join("remote");
    std::fs::create_dir(&remote).unwrap();
    let o = gcs(&mut |c| {
        c.args(["install", "gs://backups/nightly/m2.tar.zst", "--root"])
            .arg(&remote);
    });
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(tree(&remote), tree(&local));

    let before = sums();
    let o = bundle(&[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
    assert_eq!(sums(), before);
    let o = bundle(&["--force"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("replacing"), "{}", stderr(&o));
    assert_eq!(sums().len(), before.len());
}
