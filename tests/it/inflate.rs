//! Compressed input is inflated no further than the db can need: the meta
//! page's high-water mark × page size, plus the 32-byte trailer.
//! Each run gets a temporary directory on a small tmpfs, so an
//! unbounded inflation fails with "no space" instead of filling the disk.

use crate::common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

/// A tmpfs of `mib` MiB mounted on a fresh directory; unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn new(mib: u32) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let o = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("run mount");
        assert!(
            o.status.success(),
            "mounting a tmpfs failed (the tests run as root): {}",
            String::from_utf8_lossy(&o.stderr)
        );
        Tmpfs { dir }
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// Runs etcdsnap with TMPDIR on a tmpfs of `mib` MiB.
fn run_in_tmp(mib: u32, args: &[&str]) -> Output {
    let tmp = Tmpfs::new(mib);
    etcdsnap()
        .env("TMPDIR", tmp.path())
        .args(args)
        .output()
        .expect("run etcdsnap")
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn a_gzip_of_zeros_stops_early() {
    // 200 members of 64 MiB of zeros each: 12.5 GiB from about 13 MB.
    let member = gzip(&vec![0u8; 64 << 20]);
    let mut bomb = Vec::with_capacity(member.len() * 200);
    for _ in 0..200 {
        bomb.extend_from_slice(&member);
    }
    assert!(bomb.len() > 12 << 20, "{}", bomb.len());
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "zeros.db.gz", &bomb);
    for cmd in ["verify", "status"] {
        // It stops at the first page it cannot use (exit 1 naming the meta
        // page) inside an 8 MiB TMPDIR: it did not inflate 12.5 GiB. How
        // fast is measured in benches/, not asserted here.
        let o = run_in_tmp(8, &[cmd, f.to_str().unwrap()]);
        let out = stdout(&o) + &stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{cmd}: {out}");
        assert!(out.contains("meta"), "{cmd}: {out}");
    }
}

#[ignore = "real: needs the servers and oracles of .ci/setup (bash .ci/run)"]
#[test]
fn the_growth_slack_of_a_data_dir_copy_is_not_inflated() {
    // A data dir's db: the db pages, then 40 MiB the file grew by.
    let good = std::fs::read(fixture("etcd-3.5.1.db")).unwrap();
    let mut db = good[..good.len() - 32].to_vec();
    db.extend(vec![0u8; 40 << 20]);
    let dir = tempfile::tempdir().unwrap();
    let zst = write(dir.path(), "db.zst", &zstd::encode_all(&db[..], 3).unwrap());
    let o = run_in_tmp(8, &["verify", zst.to_str().unwrap()]);
    let out = stdout(&o) + &stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("growth slack"), "{out}");
    // status gives etcdutl's values for the file uncompressed.
    let plain = write(dir.path(), "db", &db);
    let want = real_status("3.5", &plain, "json");
    let o = run_in_tmp(8, &["status", "-w", "json", zst.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), want.trim());
}

#[test]
fn garbage_after_the_trailer_is_damage() {
    let good = std::fs::read(fixture("etcd-3.5.1.db")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (name, tail) in [
        ("zeros", vec![0u8; 40 << 20]),
        ("short", b"garbage".to_vec()),
    ] {
        let mut b = good.clone();
        b.extend(&tail);
        let zst = write(
            dir.path(),
            &format!("{name}.zst"),
            &zstd::encode_all(&b[..], 3).unwrap(),
        );
        let gz = write(dir.path(), &format!("{name}.gz"), &gzip(&b));
        for f in [zst, gz] {
            for cmd in ["verify", "status", "ls", "restore"] {
                let o = run_in_tmp(
                    8,
                    &[cmd, f.to_str().unwrap(), "--dry-run"]
                        [..if cmd == "restore" { 3 } else { 2 }],
                );
                let out = stdout(&o) + &stderr(&o);
                assert_eq!(o.status.code(), Some(1), "{cmd} {}: {out}", f.display());
                assert!(out.contains("after the sha256 trailer"), "{cmd}: {out}");
            }
        }
    }
    // The file as written: fine, and inflated in full.
    let zst = write(
        dir.path(),
        "good.zst",
        &zstd::encode_all(&good[..], 3).unwrap(),
    );
    let o = run_in_tmp(8, &["verify", zst.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(stdout(&o).contains("OK: every check passed"));
}

#[test]
fn help_says_where_the_temporary_file_goes() {
    for cmd in [
        "verify", "status", "ls", "get", "history", "index", "restore",
    ] {
        let o = run(&[cmd, "--help"]);
        assert!(stdout(&o).contains("TMPDIR"), "{cmd}: {}", stdout(&o));
    }
}

/// A compressed stream that does not decode is a damaged file: exit 1 for
/// `verify` and `status`, as for any corruption; a file that cannot be
/// opened stays exit 2.
#[test]
fn a_damaged_compressed_stream_is_exit_1() {
    let good = std::fs::read(fixture("etcd-3.5.1.db")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gz = gzip(&good);
    let zst = zstd::encode_all(&good[..], 3).unwrap();
    let cut_gz = write(dir.path(), "cut.gz", &gz[..gz.len() / 2]);
    let cut_zst = write(dir.path(), "cut.zst", &zst[..zst.len() / 2]);
    let mut bad = zst.clone();
    let mid = bad.len() / 2;
    bad[mid..mid + 64].fill(0xff);
    let bad_zst = write(dir.path(), "bad.zst", &bad);
    for f in [cut_gz, cut_zst, bad_zst] {
        for cmd in ["verify", "status"] {
            let o = run(&[cmd, f.to_str().unwrap()]);
            let out = stdout(&o) + &stderr(&o);
            assert_eq!(o.status.code(), Some(1), "{cmd} {}: {out}", f.display());
            if !f.ends_with("bad.zst") {
                assert!(out.contains("decompress"), "{cmd}: {out}");
            }
        }
    }
}

/// The same for an uncompressed file: whole blocks appended after a
/// snapshot's trailer are damage for `verify`, not a data dir's slack.
#[test]
fn blocks_after_a_plain_snapshots_trailer_fail_verify() {
    let good = std::fs::read(fixture("etcd-3.5.1.db")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut b = good.clone();
    b.extend(vec![0x5au8; 4096 - 32]); // whole blocks in all: no trailer at the end
    let f = write(dir.path(), "appended.db", &b);
    let o = run(&["verify", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("after the sha256 trailer"),
        "{}",
        stdout(&o)
    );
    // A data dir's db with zeros after its pages stays fine.
    let mut slack = good[..good.len() - 32].to_vec();
    slack.extend(vec![0u8; 8192]);
    let f = write(dir.path(), "slack.db", &slack);
    let o = run(&["verify", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
}
