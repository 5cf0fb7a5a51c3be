//! The restore write path as a hostile user meets it: data dirs that are mount
//! points (real tmpfs mounts; tests run as root and fail when mounting fails),
//! symlinks, holding other files; WAL dirs swapped with the member dir, both or
//! neither; every target checked before anything is written; failures that put
//! the old state back; stale staging from killed runs; durability (real WAL
//! blocks, fsyncs after chown, seen with strace).

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::cluster::{Layout, layout};
use common::*;

const ONE: &str = "m1=http://127.0.0.1:2380";
const THREE: &str = "m1=http://127.0.0.1:2380,m2=http://127.0.0.2:2380,m3=http://127.0.0.3:2380";

fn restore_in(cwd: &Path, args: &[&str]) -> Output {
    let snap = fixture("etcd-3.5.1.db");
    etcdsnap()
        .current_dir(cwd)
        .arg("restore")
        .arg(&snap)
        .args(args)
        .output()
        .unwrap()
}

/// A restore run from a scratch directory (whatever a bug writes to `.` lands there).
fn restore(args: &[&str]) -> Output {
    let cwd = tempfile::tempdir().unwrap();
    restore_in(cwd.path(), args)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Entries of `dir` whose names contain `pat`.
fn named(dir: &Path, pat: &str) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().contains(pat))
        .collect()
}

/// The real etcdutl reads the restored db: its status hash equals that of the db
/// etcdutl itself restores from the same snapshot with the same flags.
fn assert_db_matches_etcdutl(data_dir: &Path, name: &str, initial: &str, token: &str) {
    let eu = tempfile::tempdir().unwrap();
    let peer = initial
        .split(',')
        .find_map(|m| m.strip_prefix(&format!("{name}=")))
        .unwrap();
    let eu_dir = eu.path().join("eu");
    etcdutl_restore(
        &fixture("etcd-3.5.1.db"),
        name,
        initial,
        token,
        peer,
        &eu_dir,
    );
    // Whole fields; totalSize differs (our db is written compact, etcdutl's
    // keeps the snapshot's free pages).
    let st = |p: &Path| {
        let v: serde_json::Value =
            serde_json::from_str(&real_status("3.5", &p.join("member/snap/db"), "json")).unwrap();
        (
            v["hash"].clone(),
            v["revision"].clone(),
            v["totalKey"].clone(),
        )
    };
    assert_eq!(
        st(data_dir),
        st(&eu_dir),
        "etcdutl status of the restored db"
    );
}

/// A sentinel tree standing for a member's earlier data.
fn old_member(dir: &Path) {
    std::fs::create_dir_all(dir.join("snap")).unwrap();
    std::fs::write(dir.join("snap/db"), b"the only copy of the old data").unwrap();
    std::fs::create_dir_all(dir.join("wal")).unwrap();
    std::fs::write(dir.join("wal/0.wal"), b"old wal").unwrap();
}

/// Items 1 and 20: `--force` into a mount point that holds the snapshot being
/// restored, other files and an old member: only `member` is swapped, the old
/// one moved aside, everything else stays; the mount stays a mount.
#[ignore = "real: needs the servers and oracles of .ci/setup (bash .ci/run)"]
#[test]
fn force_into_a_mount_point_swaps_only_member() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("var-lib-etcd");
    let _m = Mount::tmpfs(&d, "256m");
    let snap = d.join("snap1.db");
    std::fs::copy(fixture("etcd-3.5.1.db"), &snap).unwrap();
    std::fs::write(d.join("notes.txt"), b"keep me").unwrap();
    old_member(&d.join("member"));
    let old = tree(&d.join("member"));
    let o = etcdsnap()
        .current_dir(t.path())
        .args([
            "restore",
            s(&snap),
            "--name",
            "m1",
            "--initial-cluster",
            ONE,
        ])
        .args([
            "--initial-cluster-token",
            "t1",
            "--force",
            "--data-dir",
            s(&d),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(is_mount_point(&d), "the mount point stays");
    assert_eq!(
        std::fs::read(&snap).unwrap(),
        std::fs::read(fixture("etcd-3.5.1.db")).unwrap(),
        "the snapshot being restored is untouched"
    );
    assert_eq!(std::fs::read(d.join("notes.txt")).unwrap(), b"keep me");
    let baks = named(&d, "member.etcdsnap-bak-");
    assert_eq!(baks.len(), 1, "the old member is moved aside: {baks:?}");
    assert_eq!(tree(&baks[0]), old, "the old member, intact");
    assert!(named(&d, "staging").is_empty());
    assert_db_matches_etcdutl(&d, "m1", ONE, "t1");
    let mut names: Vec<String> = std::fs::read_dir(&d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with("member.etcdsnap-bak-"))
        .collect();
    names.sort();
    assert_eq!(names, ["member", "notes.txt", "snap1.db"]);
}

/// Item 1: an empty mount point is restored into without --force, as etcdutl does.
#[ignore = "real: needs the servers and oracles of .ci/setup (bash .ci/run)"]
#[test]
fn empty_mount_point_needs_no_force() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("vol");
    let _m = Mount::tmpfs(&d, "256m");
    let o = restore(&[
        "--name",
        "m1",
        "--initial-cluster",
        ONE,
        "--data-dir",
        s(&d),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(is_mount_point(&d));
    assert_db_matches_etcdutl(&d, "m1", ONE, "etcd-cluster");
}

/// Item 1: a failure while writing (the volume is too small for the WAL's real
/// blocks) leaves the old state exactly as it was and no staging tree.
#[test]
fn a_failed_restore_leaves_the_old_state() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("small");
    let _m = Mount::tmpfs(&d, "8m");
    std::fs::write(d.join("notes.txt"), b"keep me").unwrap();
    old_member(&d.join("member"));
    let before = tree(&d);
    let o = restore(&[
        "--name",
        "m1",
        "--initial-cluster",
        ONE,
        "--force",
        "--data-dir",
        s(&d),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(tree(&d), before, "old state back, staging gone");
    assert!(is_mount_point(&d));
}

/// Items 2 and 9: with --wal-dir, a failure swapping the member dir (here the
/// old `member` is itself a mount point, so it cannot be renamed) puts the old
/// WAL back too: both or neither. The OS error is named once.
#[test]
fn wal_and_member_change_together() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("data");
    let w = t.path().join("wal");
    std::fs::create_dir_all(&w).unwrap();
    std::fs::write(w.join("0000000000000000-0000000000000000.wal"), b"old wal").unwrap();
    let _m = Mount::tmpfs(&d.join("member"), "16m");
    old_member(&d.join("member"));
    let (before_d, before_w) = (tree(&d), tree(&w));
    let o = restore(&[
        "--name",
        "m1",
        "--initial-cluster",
        ONE,
        "--force",
        "--data-dir",
        s(&d),
        "--wal-dir",
        s(&w),
    ]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(tree(&w), before_w, "the old WAL is back");
    assert_eq!(tree(&d), before_d, "the old member is back");
    assert!(
        named(t.path(), "etcdsnap").is_empty(),
        "no staging beside the WAL"
    );
    assert_eq!(err.matches("os error").count(), 1, "OS error once: {err}");
}

/// Item 3: a symlinked data dir keeps its link; the restore goes into its target.
#[ignore = "real: needs the servers and oracles of .ci/setup (bash .ci/run)"]
#[test]
fn a_symlinked_data_dir_keeps_its_link() {
    let t = tempfile::tempdir().unwrap();
    let real = t.path().join("volume");
    let _m = Mount::tmpfs(&real, "256m");
    let link = t.path().join("etcd");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    for force in [false, true] {
        let mut args = vec![
            "--name",
            "m1",
            "--initial-cluster",
            ONE,
            "--data-dir",
            s(&link),
        ];
        if force {
            args.push("--force");
        }
        let o = restore(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
        assert!(real.join("member/snap/db").is_file());
    }
    assert_eq!(named(&real, "member.etcdsnap-bak-").len(), 1);
    assert_db_matches_etcdutl(&real, "m1", ONE, "etcd-cluster");
}

/// Item 4: every target is checked before anything is written; a failure on a
/// later member rolls back the members already written.
#[test]
fn all_members_are_checked_first_and_rolled_back() {
    // Members are written in the plan's order: the last one is the obstacle.
    let plan = restore(&["--initial-cluster", THREE, "--dry-run", "-w", "json"]);
    let plan: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    let names: Vec<String> = plan["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap().to_string())
        .collect();
    let (first, last) = (&names[0], &names[2]);
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("out");
    old_member(&out.join(format!("{last}.etcd/member")));
    let o = restore(&["--initial-cluster", THREE, "--out-dir", s(&out)]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("{last}.etcd")),
        "{}",
        stderr(&o)
    );
    for n in &names[..2] {
        assert!(
            !out.join(format!("{n}.etcd")).exists(),
            "{n} written before {last} was checked"
        );
        assert!(!out.join(format!("{n}.env")).exists());
    }
    // The first member holds an old member too; the last one's member cannot
    // be moved (a mount point): with --force, the first two are written, the
    // last fails, and the first two are rolled back.
    old_member(&out.join(format!("{first}.etcd/member")));
    std::fs::write(out.join(format!("{first}.env")), b"ETCD_NAME=old\n").unwrap();
    let _m = Mount::tmpfs(&out.join(format!("{last}.etcd/member")), "16m");
    old_member(&out.join(format!("{last}.etcd/member")));
    let before = tree(&out);
    let o = restore(&["--initial-cluster", THREE, "--out-dir", s(&out), "--force"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(tree(&out), before, "every member as it was");
}

/// Item 5: --data-dir, --wal-dir or --initial-advertise-peer-urls without
/// --name restore member `default`, as etcdutl does, there and nowhere else;
/// without a `default` member they are refused.
#[test]
fn member_flags_without_name_mean_default() {
    let t = tempfile::tempdir().unwrap();
    let cwd = t.path();
    let o = restore_in(cwd, &["--data-dir", "x"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(cwd.join("x/member/snap/db").is_file());
    assert!(!cwd.join("default.etcd").exists());
    let o = restore_in(cwd, &["--wal-dir", "w"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        cwd.join("w/0000000000000000-0000000000000000.wal")
            .is_file()
    );
    assert!(!cwd.join("default.etcd/member/wal").exists());
    let o = restore_in(cwd, &["--initial-cluster", ONE, "--data-dir", "y"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = restore_in(
        cwd,
        &[
            "--initial-cluster",
            ONE,
            "--initial-advertise-peer-urls",
            "http://127.0.0.1:2380",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(!cwd.join("y").exists() && !cwd.join("m1.etcd").exists());
}

/// Item 22: --name with --out-dir writes `<out-dir>/<name>.etcd` (and its .env).
#[test]
fn name_with_out_dir_goes_there() {
    let t = tempfile::tempdir().unwrap();
    let o = restore_in(
        t.path(),
        &["--name", "m1", "--initial-cluster", ONE, "--out-dir", "o"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(t.path().join("o/m1.etcd/member/snap/db").is_file());
    assert!(t.path().join("o/m1.env").is_file());
    assert!(!t.path().join("m1.etcd").exists());
    let o = restore_in(
        t.path(),
        &[
            "--name",
            "m1",
            "--initial-cluster",
            ONE,
            "--out-dir",
            "o",
            "--data-dir",
            "d",
        ],
    );
    assert_eq!(
        o.status.code(),
        Some(2),
        "--data-dir with --out-dir: {}",
        stderr(&o)
    );
}

/// Item 7: the WAL's 64 MB are allocated blocks, not a sparse file.
#[test]
fn wal_is_preallocated_with_real_blocks() {
    use std::os::unix::fs::MetadataExt;
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("m1.etcd");
    let o = restore(&[
        "--name",
        "m1",
        "--initial-cluster",
        ONE,
        "--data-dir",
        s(&d),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let m = std::fs::metadata(d.join("member/wal/0000000000000000-0000000000000000.wal")).unwrap();
    assert_eq!(m.len(), 64_000_000);
    assert!(
        m.blocks() * 512 >= 64_000_000,
        "{} blocks allocated",
        m.blocks()
    );
}

/// Item 7: seen by strace — every file and directory written is fsynced after
/// its chown, and so is the parent of every rename (the staging root, the
/// WAL dir's parent); the .env files are renamed into place and their
/// directory fsynced.
#[test]
fn everything_written_is_fsynced_after_chown() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("out");
    let wal = t.path().join("wals/w1");
    let trace = t.path().join("trace");
    let snap = fixture("etcd-3.5.1.db");
    let o = Command::new("strace")
        .current_dir(t.path())
        .args(["-f", "-qq", "-y", "-o"])
        .arg(&trace)
        .args([
            "-e",
            "trace=openat,mkdirat,mkdir,fsync,fdatasync,fchown,fchownat,chown,lchown,rename,renameat,renameat2,fallocate,close",
        ])
        .arg(env!("CARGO_BIN_EXE_etcdsnap"))
        .args(["restore", s(&snap), "--name", "m1", "--initial-cluster", ONE])
        .args(["--out-dir", s(&out), "--wal-dir", s(&wal), "--owner", "2001:2001"])
        .output()
        .expect("strace is required (apt-get install strace)");
    assert!(o.status.success(), "{}", stderr(&o));
    let log = std::fs::read_to_string(&trace).unwrap();
    // Paths fsynced (strace -y shows the fd's path), in order.
    let fsynced: Vec<(usize, String)> = log
        .lines()
        .enumerate()
        .filter(|(_, l)| l.contains("fsync(") || l.contains("fdatasync("))
        .filter_map(|(i, l)| {
            let a = l.find('<')? + 1;
            let b = l[a..].find('>')? + a;
            Some((i, l[a..b].to_string()))
        })
        .collect();
    let chowned: Vec<(usize, String)> = log
        .lines()
        .enumerate()
        .filter(|(_, l)| l.contains("chown"))
        .filter_map(|(i, l)| {
            let a = l
                .find('"')
                .map(|a| a + 1)
                .or_else(|| l.find('<').map(|a| a + 1))?;
            let b = l[a..].find(['"', '>'])? + a;
            Some((i, l[a..b].to_string()))
        })
        .collect();
    let last_fsync = |p: &str| fsynced.iter().rev().find(|(_, f)| f == p).map(|(i, _)| *i);
    let data = out.join("m1.etcd");
    let must = [
        data.join("member/snap/db"),
        data.join("member/snap/0000000000000001-0000000000000001.snap"),
        data.join("member/snap"),
        data.join("member"),
        data.clone(),
        out.clone(),
        wal.join("0000000000000000-0000000000000000.wal"),
        wal.clone(),
        t.path().join("wals"),
        out.join("m1.env"),
    ];
    let canon = |p: &Path| p.to_string_lossy().into_owned();
    for p in &must {
        let p = canon(p);
        // The file may have been written under its staging name and renamed:
        // fsyncs count under either name.
        let staged_or_final = fsynced
            .iter()
            .any(|(_, f)| f == &p || same_after_staging(f, &p));
        assert!(staged_or_final, "{p} never fsynced:\n{log}");
    }
    // chown happens before the fsyncs of the same path.
    for (ci, path) in &chowned {
        if let Some(fi) = last_fsync(path) {
            assert!(fi > *ci, "{path} fsynced before its chown");
        }
    }
    // The WAL is fallocated.
    assert!(log.contains("fallocate("), "no fallocate:\n{log}");
}

/// Whether `staged` is `fin` written under a staging name
/// (`.member.etcdsnap-staging-<pid>` for `member`, `.<wal>.etcdsnap-staging-<pid>`
/// for a WAL dir, `.<x>.etcdsnap-tmp-*` for an atomically written file).
fn same_after_staging(staged: &str, fin: &str) -> bool {
    let mut out = String::new();
    for comp in staged.split('/') {
        if !out.is_empty() || staged.starts_with('/') {
            out.push('/');
        }
        let c = match comp.strip_prefix('.') {
            Some(rest)
                if rest.contains(".etcdsnap-staging-") || rest.contains(".etcdsnap-tmp-") =>
            {
                rest.split(".etcdsnap-").next().unwrap()
            }
            _ => comp,
        };
        out.push_str(c);
    }
    out.replace("//", "/") == fin
}

/// Item 8: staging left by a killed run (of our own naming) is removed by the
/// next run, which says so; today's and the older naming both.
#[test]
fn stale_staging_is_removed_and_reported() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("m1.etcd");
    let w = t.path().join("w1");
    let stale = [
        d.join(".member.etcdsnap-staging-999999999"),
        t.path().join(".w1.etcdsnap-staging-999999999"),
        t.path().join(".m1.etcd.etcdsnap-tmp-999999999"),
    ];
    for p in &stale {
        std::fs::create_dir_all(p.join("member/snap")).unwrap();
        std::fs::write(p.join("member/snap/db"), b"half").unwrap();
    }
    let o = restore(&[
        "--name",
        "m1",
        "--initial-cluster",
        ONE,
        "--data-dir",
        s(&d),
        "--wal-dir",
        s(&w),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    for p in &stale {
        assert!(!p.exists(), "{} left behind", p.display());
        assert!(
            stderr(&o).contains(p.file_name().unwrap().to_str().unwrap()),
            "not reported: {}",
            stderr(&o)
        );
    }
    assert!(named(t.path(), "etcdsnap").is_empty());
    assert!(named(&d, "etcdsnap").is_empty());
}

fn stdout_lines(o: &Output) -> Vec<&str> {
    std::str::from_utf8(&o.stdout).unwrap().lines().collect()
}

/// Item 28: a truncated snapshot is reported as `verify` reports it, with the
/// same exit code; a refused restore prints no stale-data report.
#[test]
fn truncated_snapshot_reports_what_verify_reports() {
    let t = tempfile::tempdir().unwrap();
    let cut = t.path().join("cut.db");
    let bytes = std::fs::read(fixture("etcd-3.5.1.db")).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let v = run(&["verify", s(&cut)]);
    let d = t.path().join("m1.etcd");
    let o = etcdsnap()
        .current_dir(t.path())
        .args(["restore", s(&cut), "--name", "m1", "--initial-cluster", ONE])
        .args(["--data-dir", s(&d)])
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), v.status.code(), "{err}");
    assert!(!err.contains("missing hash"), "{err}");
    // Every problem verify names, restore names too.
    let problems: Vec<&str> = stdout_lines(&v)
        .into_iter()
        .filter(|l| l.trim_start().starts_with("- "))
        .collect();
    assert!(!problems.is_empty(), "verify said: {}", stdout(&v));
    for p in problems {
        assert!(err.contains(p.trim()), "restore: {err}\nmissing: {p}");
    }
    assert!(!d.exists());
}

#[test]
fn a_refused_restore_prints_no_stale_report() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("m1.etcd");
    old_member(&d.join("member"));
    let o = restore(&[
        "--name",
        "m1",
        "--initial-cluster",
        ONE,
        "--data-dir",
        s(&d),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("not empty"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("stale"), "{}", stderr(&o));
}

/// A WAL dir that is a mount point cannot be renamed: refused before anything
/// is written (exit 2), the volume untouched.
#[test]
fn a_wal_dir_mount_point_is_refused_up_front() {
    let t = tempfile::tempdir().unwrap();
    let w = t.path().join("walvol");
    let _m = Mount::tmpfs(&w, "128m");
    std::fs::write(w.join("keep"), b"x").unwrap();
    let before = tree(&w);
    let d = t.path().join("m1.etcd");
    let o = restore(&[
        "--name",
        "m1",
        "--initial-cluster",
        ONE,
        "--data-dir",
        s(&d),
        "--wal-dir",
        s(&w),
        "--force",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("mount point"), "{}", stderr(&o));
    assert!(!d.exists());
    assert_eq!(tree(&w), before);
}

/// A `.env` value with spaces and quotes reads back unchanged in the shell
/// (`set -a; . FILE`), and the file's data dir is absolute.
#[test]
fn env_values_survive_the_shell() {
    let t = tempfile::tempdir().unwrap();
    let token = "prod restore 'one' $HOME";
    let o = restore_in(
        t.path(),
        &[
            "--initial-cluster",
            ONE,
            "--initial-cluster-token",
            token,
            "--out-dir",
            "o",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let sh = Command::new("sh")
        .current_dir("/")
        .arg("-c")
        .arg(
            "set -a; . \"$0\"; printf '%s\\n%s' \"$ETCD_INITIAL_CLUSTER_TOKEN\" \"$ETCD_DATA_DIR\"",
        )
        .arg(t.path().join("o/m1.env"))
        .output()
        .unwrap();
    assert!(sh.status.success(), "{}", stderr(&sh));
    let got = stdout(&sh);
    let (tok, dir) = got.split_once('\n').unwrap();
    assert_eq!(tok, token);
    assert_eq!(Path::new(dir), t.path().join("o/m1.etcd"));
}

/// The buckets are read while the snapshot is verified: a file whose
/// structure reads fine but whose sha256 fails (one byte flipped) is still
/// refused (exit 1) before anything is staged or swapped in — every old
/// member stays, nothing is moved aside, no staging is left.
#[test]
fn a_snapshot_failing_its_hash_is_refused_before_any_swap() {
    let t = tempfile::tempdir().unwrap();
    let snap = t.path().join("flipped.db");
    let mut bytes = std::fs::read(fixture("etcd-3.5.1.db")).unwrap();
    let at = bytes.len() - 33;
    bytes[at] ^= 0x01;
    std::fs::write(&snap, &bytes).unwrap();
    assert_eq!(run(&["verify", "-q", s(&snap)]).status.code(), Some(1));
    let out = t.path().join("out");
    for m in ["m1", "m2", "m3"] {
        old_member(&out.join(format!("{m}.etcd/member")));
    }
    let o = etcdsnap()
        .current_dir(t.path())
        .args(["restore", s(&snap), "--out-dir", s(&out), "--force"])
        .args(["--initial-cluster", THREE])
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("not restoring"), "{err}");
    for m in ["m1", "m2", "m3"] {
        let d = out.join(format!("{m}.etcd"));
        assert_eq!(
            std::fs::read(d.join("member/snap/db")).unwrap(),
            b"the only copy of the old data"
        );
        let left: Vec<_> = std::fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from("member")], "{m}");
    }
    assert!(named(&out, ".env").is_empty());
}

// ---- interrupted runs, then the member used, then reruns ----

/// The argument list of a one-member restore of the fixture into `d`.
fn restore_args<'a>(initial: &'a str, d: &'a Path, force: bool) -> Vec<&'a str> {
    let mut v = vec!["--name", "m1", "--initial-cluster", initial, "--data-dir"];
    v.push(s(d));
    if force {
        v.push("--force");
    }
    v
}

/// Runs `etcdsnap restore <fixture> ARGS` under strace; with `kill`, the
/// process gets SIGKILL on entry to the `n`th call of `syscall` made by its
/// main thread (counted as strace counts, per thread). Returns the output
/// and strace's log of renames and unlinks.
fn restore_traced(args: &[&str], kill: Option<(&str, usize)>) -> (Output, String) {
    let snap = fixture("etcd-3.5.1.db");
    let mut all = vec!["restore", s(&snap)];
    all.extend_from_slice(args);
    traced(&all, kill)
}

/// `etcdsnap ARGS` under strace (see `restore_traced`).
fn traced(args: &[&str], kill: Option<(&str, usize)>) -> (Output, String) {
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut c = Command::new("strace");
    c.args(["-f", "-qq", "-o"]).arg(log.path());
    c.args(["-e", "trace=rename,renameat,renameat2,unlink,unlinkat"]);
    if let Some((call, n)) = kill {
        c.args(["-e", &format!("inject={call}:when={n}:signal=KILL")]);
    }
    let o = c
        .arg(env!("CARGO_BIN_EXE_etcdsnap"))
        .args(args)
        .output()
        .expect("strace is required (apt-get install strace)");
    (o, std::fs::read_to_string(log.path()).unwrap())
}

/// In a traced run's log: the 1-based number, among the calls of the same
/// syscall by the same thread, of the last call whose line contains `pat`,
/// and that syscall's name.
fn nth_call(log: &str, pat: &str) -> (String, usize) {
    let calls: Vec<(&str, &str, &str)> = log
        .lines()
        .filter_map(|l| {
            let (tid, rest) = l.split_once(' ')?;
            let rest = rest.trim_start();
            let (call, _) = rest.split_once('(')?;
            (!call.starts_with('<') && !call.contains(' ')).then_some((tid, call, rest))
        })
        .collect();
    let i = calls
        .iter()
        .rposition(|(_, _, rest)| rest.contains(pat))
        .unwrap_or_else(|| panic!("no call with {pat:?} in\n{log}"));
    let (tid, call, _) = calls[i];
    let n = calls[..=i]
        .iter()
        .filter(|(t, c, _)| *t == tid && *c == call)
        .count();
    (call.to_string(), n)
}

/// Where a killed `restore --force` over an old member can stop: before the
/// old member goes aside, between the two renames, after both (before the
/// journal goes).
const KILL_POINTS: &[(&str, &str)] = &[
    ("journal in place", ".journal.tmp\""),
    ("old member aside", "member.etcdsnap-bak-"),
    ("new member in", ".member.etcdsnap-staging-"),
    ("journal removed", ".journal\""),
];

/// A one-member layout on free ports, restored into `d` (no --force).
fn restored_member(d: &Path) -> Layout {
    let l = layout(1);
    let o = restore(&restore_args(&l.initial, d, false));
    assert!(o.status.success(), "{}", stderr(&o));
    l
}

/// The entry of `d` that is the directory with inode `ino`.
fn holding(d: &Path, ino: u64) -> PathBuf {
    std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| inode(p) == ino)
        .unwrap_or_else(|| panic!("no entry of {} is inode {ino}", d.display()))
}

fn inode(p: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(p).unwrap().ino()
}

/// `restore --force` over a member
/// is killed at each point of its swap; etcd is started on whatever is in
/// place and written to; then every rerun (restore and install, without and
/// with --force; restore's --dry-run names the journal) keeps the written key:
/// refused (exit 2, naming the journal) with the live member untouched, or,
/// with --force where the journal still matches the disk, done with the live
/// member moved aside whole. A real etcd then boots on the live member and
/// serves the key.
#[ignore = "real: needs the servers and oracles of .ci/setup (bash .ci/run)"]
#[test]
fn a_killed_swap_then_a_used_member_survives_every_rerun() {
    let bt = tempfile::tempdir().unwrap();
    let (_, archive) = one_member_bundle(bt.path());
    // Where each kill point falls in this build: a traced, unkilled run.
    let calib = tempfile::tempdir().unwrap();
    let cd = calib.path().join("m1.etcd");
    let l = restored_member(&cd);
    let (o, log) = restore_traced(&restore_args(&l.initial, &cd, true), None);
    assert!(o.status.success(), "{}", stderr(&o));
    for (what, pat) in KILL_POINTS {
        let (call, n) = nth_call(&log, pat);
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("m1.etcd");
        let l = restored_member(&d);
        let (o, _) = restore_traced(&restore_args(&l.initial, &d, true), Some((&call, n)));
        assert_eq!(o.status.code(), None, "{what}: not killed: {}", stderr(&o));
        // The member as it stands is used: etcd starts on it and is written to.
        {
            let e = live::Etcd::start_dirs(
                "3.5",
                &l.members,
                std::slice::from_ref(&d),
                &l.initial,
                "etcd-cluster",
            );
            e.put("/written/after-the-kill", b"keep me");
        }
        let live_ino = inode(&d.join("member"));
        let live_tree = tree(&d.join("member"));
        let journal = named(&d, ".etcdsnap-swap-")
            .iter()
            .any(|p| p.to_string_lossy().ends_with(".journal"));
        // Every rerun, restore's and install's, with and without --force.
        let pki_dir = t.path().join("pki-dir");
        let snap = fixture("etcd-3.5.1.db");
        let restore_run = |force: bool| -> Vec<String> {
            let mut v = vec!["restore".to_string(), s(&snap).to_string()];
            v.extend(
                restore_args(&l.initial, &d, force)
                    .iter()
                    .map(|a| a.to_string()),
            );
            v
        };
        let install_run = |force: bool| -> Vec<String> {
            let mut v: Vec<String> = ["install", s(&archive), "--data-dir", s(&d), "--pki-dir"]
                .iter()
                .map(|a| a.to_string())
                .collect();
            v.push(s(&pki_dir).to_string());
            if force {
                v.push("--force".into());
            }
            v
        };
        for force in [false, true] {
            let o = etcdsnap()
                .args(restore_run(force))
                .arg("--dry-run")
                .output()
                .unwrap();
            let all = format!("{}{}", stdout(&o), stderr(&o));
            assert!(
                !journal || all.contains("interrupted"),
                "{what}: --dry-run says nothing of the journal: {all}"
            );
            for rerun in [restore_run(force), install_run(force)] {
                let in_place = inode(&d.join("member")) == live_ino;
                let o = etcdsnap().args(&rerun).output().unwrap();
                let err = stderr(&o);
                // Refused (naming the journal, if there is one); or (with
                // --force, when what the journal describes is still what is
                // on disk) done, the live member moved aside whole.
                if o.status.success() {
                    assert!(
                        force,
                        "{what}: {rerun:?} without --force replaced the member"
                    );
                } else {
                    assert_eq!(o.status.code(), Some(2), "{what}: {rerun:?}: {err}");
                    if journal && in_place {
                        assert!(err.contains(".journal"), "{what}: names the journal: {err}");
                    }
                    if in_place {
                        assert_eq!(
                            inode(&d.join("member")),
                            live_ino,
                            "{what}: {rerun:?} moved the live member"
                        );
                    }
                }
                let at = holding(&d, live_ino);
                assert_eq!(
                    tree(&at),
                    live_tree,
                    "{what}: {rerun:?} changed the live member"
                );
            }
        }
        // A real boot on the used member serves the key written.
        let at = holding(&d, live_ino);
        let boot = t.path().join("boot");
        std::fs::create_dir(&boot).unwrap();
        std::fs::rename(&at, boot.join("member")).unwrap();
        let e = live::Etcd::start_dirs("3.5", &l.members, &[boot], &l.initial, "etcd-cluster");
        let got = e.ctl(&["get", "--print-value-only", "/written/after-the-kill"]);
        assert_eq!(stdout(&got).trim(), "keep me", "{what}");
    }
}

/// a journal left in a data dir that is then moved acts only
/// inside the moved dir (its names are relative): the tree now at the old
/// path, never named by the user, is left alone; and the rerun into the
/// moved dir puts its old member back and swaps the new one in.
#[test]
fn a_moved_journal_acts_only_where_it_lives() {
    let calib = tempfile::tempdir().unwrap();
    let cd = calib.path().join("m1.etcd");
    let l = restored_member(&cd);
    let (o, log) = restore_traced(&restore_args(&l.initial, &cd, true), None);
    assert!(o.status.success(), "{}", stderr(&o));
    let (call, n) = nth_call(&log, ".journal\"");
    let t = tempfile::tempdir().unwrap();
    let r4 = t.path().join("r4");
    let d = r4.join("m1.etcd");
    restored_member(&d);
    let before = tree(&d.join("member"));
    let (o, _) = restore_traced(&restore_args(&l.initial, &d, true), Some((&call, n)));
    assert_eq!(o.status.code(), None, "not killed: {}", stderr(&o));
    let broken = t.path().join("r4.broken");
    std::fs::rename(&r4, &broken).unwrap();
    // A fresh restore into the old path, then the rerun into the moved one.
    restored_member(&d);
    let fresh = (inode(&d.join("member")), tree(&d.join("member")));
    let bd = broken.join("m1.etcd");
    let mut dry = restore_args(&l.initial, &bd, true);
    dry.push("--dry-run");
    let o = restore(&dry);
    assert!(
        stdout(&o).contains("interrupted"),
        "--dry-run names the journal: {}",
        stdout(&o)
    );
    let o = restore(&restore_args(&l.initial, &bd, true));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        (inode(&d.join("member")), tree(&d.join("member"))),
        fresh,
        "the tree at the old path was touched"
    );
    assert!(
        named(&d, "etcdsnap").is_empty(),
        "{:?}",
        named(&d, "etcdsnap")
    );
    // In the moved dir: the old member is back (aside) and nothing of ours is left.
    let baks = named(&bd, "member.etcdsnap-bak-");
    assert!(
        baks.iter().any(|b| tree(b) == before),
        "the first member survives aside: {baks:?}"
    );
    let left: Vec<_> = named(&bd, "etcdsnap")
        .into_iter()
        .filter(|p| !p.to_string_lossy().contains("member.etcdsnap-bak-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// `restore --force` onto the data dir of a running etcd
/// (3.5.1) is refused with the PID of the etcd holding it, before anything
/// is written; --dry-run says so too. The member boots afterwards.
#[ignore = "real: needs the servers and oracles of .ci/setup (bash .ci/run)"]
#[test]
fn a_running_etcd_is_noticed() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("m1.etcd");
    let l = restored_member(&d);
    let e = live::Etcd::start_dirs(
        "3.5",
        &l.members,
        std::slice::from_ref(&d),
        &l.initial,
        "etcd-cluster",
    );
    e.put("/written/while-running", b"v");
    let pid = e.pid(0).to_string();
    let ino = inode(&d.join("member"));
    let mut dry = restore_args(&l.initial, &d, true);
    dry.push("--dry-run");
    let o = restore(&dry);
    assert!(
        stdout(&o).contains(&pid),
        "--dry-run names the running etcd: {}",
        stdout(&o)
    );
    let o = restore(&restore_args(&l.initial, &d, true));
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains(&pid) && err.contains("running"), "{err}");
    assert_eq!(inode(&d.join("member")), ino);
    assert!(
        named(&d, "etcdsnap").is_empty(),
        "{:?}",
        named(&d, "etcdsnap")
    );
    // etcd is undisturbed: it still serves and writes.
    e.put("/written/after-the-probe", b"v2");
    let got = e.ctl(&["get", "--print-value-only", "/written/while-running"]);
    assert_eq!(stdout(&got).trim(), "v");
}

/// A one-member bundle (PKI for 127.0.0.1 made with openssl) on free ports.
fn one_member_bundle(dir: &Path) -> (Layout, PathBuf) {
    let (peer, client) = (common::cluster::free_port(), common::cluster::free_port());
    let initial = format!("m1=https://127.0.0.1:{peer}");
    let pki = dir.join("pki");
    std::fs::create_dir_all(&pki).unwrap();
    common::pki::make_pki(&pki);
    let out = dir.join("bundle");
    let o = etcdsnap()
        .args([
            "bundle",
            s(&fixture("etcd-3.5.1.db")),
            "--initial-cluster",
            &initial,
        ])
        .args([
            "--initial-cluster-token",
            "etcd-cluster",
            "--pki",
            s(&pki),
            "--out",
            s(&out),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "bundle: {}", stderr(&o));
    let l = Layout {
        initial: format!("m1=http://127.0.0.1:{peer}"),
        members: vec![("m1".into(), peer, client)],
    };
    (l, out.join("m1.tar.zst"))
}

/// On `install`: `install --force` over an
/// installed member, killed after its data swap (during the PKI placement,
/// and after it); etcd is started on the new member and written to; then
/// `install` (refused for lacking --force), `install --force` and `restore
/// --force` are all refused (exit 2) naming the journal, the live member is
/// neither moved nor changed, and a real etcd boots on it and serves the key.
#[ignore = "real: needs the servers and oracles of .ci/setup (bash .ci/run)"]
#[test]
fn a_killed_install_then_a_used_member_survives_every_rerun() {
    let t = tempfile::tempdir().unwrap();
    let (l, archive) = one_member_bundle(t.path());
    let install = |root: &Path, force: bool| install_args(&archive, root, force);
    let calib = t.path().join("calib");
    let o = etcdsnap().args(install(&calib, false)).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    unsettle(&calib);
    let args = install(&calib, true);
    let (o, log) = traced(&args.iter().map(String::as_str).collect::<Vec<_>>(), None);
    assert!(o.status.success(), "{}", stderr(&o));
    for (what, pat) in [
        (
            "during the PKI placement",
            "/etc/kubernetes/pki/etcd/peer.crt\"",
        ),
        ("data journal removed", "var/lib/etcd/.etcdsnap-swap-"),
    ] {
        let (call, n) = nth_call(&log, pat);
        let root = t.path().join(what.replace(' ', "-"));
        let o = etcdsnap().args(install(&root, false)).output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        unsettle(&root);
        let args = install(&root, true);
        let (o, _) = traced(
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
            Some((&call, n)),
        );
        assert_eq!(o.status.code(), None, "{what}: not killed: {}", stderr(&o));
        let d = root.join("var/lib/etcd");
        {
            let e = live::Etcd::start_dirs(
                "3.5",
                &l.members,
                std::slice::from_ref(&d),
                &l.initial,
                "etcd-cluster",
            );
            e.put("/written/after-the-kill", b"keep me");
        }
        let live_ino = inode(&d.join("member"));
        let live_tree = tree(&d.join("member"));
        let reruns: Vec<Vec<String>> = vec![
            install(&root, false),
            install(&root, true),
            [
                "restore",
                s(&fixture("etcd-3.5.1.db")),
                "--name",
                "m1",
                "--initial-cluster",
                &l.initial,
                "--data-dir",
                s(&d),
                "--force",
            ]
            .iter()
            .map(|a| a.to_string())
            .collect(),
        ];
        for rerun in &reruns {
            let o = etcdsnap().args(rerun).output().unwrap();
            let err = stderr(&o);
            assert_eq!(o.status.code(), Some(2), "{what}: {rerun:?}: {err}");
            assert!(err.contains(".journal"), "{what}: {rerun:?}: {err}");
            assert!(
                !err.contains("the target is as it was") || !err.contains("undid"),
                "{err}"
            );
            assert_eq!(
                inode(&d.join("member")),
                live_ino,
                "{what}: {rerun:?} moved the live member"
            );
            assert_eq!(
                tree(&d.join("member")),
                live_tree,
                "{what}: {rerun:?} changed it"
            );
        }
        let e = live::Etcd::start_dirs(
            "3.5",
            &l.members,
            std::slice::from_ref(&d),
            &l.initial,
            "etcd-cluster",
        );
        let got = e.ctl(&["get", "--print-value-only", "/written/after-the-kill"]);
        assert_eq!(stdout(&got).trim(), "keep me", "{what}");
    }
}

/// On `install`: `install --force` onto the data dir of a
/// running etcd (3.5.1) is refused with its PID, and --dry-run says so.
#[ignore = "real: needs the servers and oracles of .ci/setup (bash .ci/run)"]
#[test]
fn install_notices_a_running_etcd() {
    let t = tempfile::tempdir().unwrap();
    let (l, archive) = one_member_bundle(t.path());
    let root = t.path().join("root");
    let o = etcdsnap()
        .args(["install", s(&archive), "--root", s(&root)])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let d = root.join("var/lib/etcd");
    let e = live::Etcd::start_dirs(
        "3.5",
        &l.members,
        std::slice::from_ref(&d),
        &l.initial,
        "etcd-cluster",
    );
    let pid = e.pid(0).to_string();
    let ino = inode(&d.join("member"));
    for dry in [true, false] {
        let mut c = etcdsnap();
        c.args(["install", s(&archive), "--root", s(&root), "--force"]);
        if dry {
            c.arg("--dry-run");
        }
        let o = c.output().unwrap();
        let all = format!("{}{}", stdout(&o), stderr(&o));
        assert!(
            all.contains(&pid) && all.contains("running"),
            "dry-run {dry}: {all}"
        );
        if !dry {
            assert_eq!(o.status.code(), Some(2), "{all}");
        }
        assert_eq!(inode(&d.join("member")), ino);
    }
    e.put("/still/serving", b"v");
}

/// Ctrl-C: a real SIGINT sent to `restore --force` while it stages (its
/// fsyncs slowed down by strace so the signal lands mid-staging) ends it with
/// exit 2, saying it was interrupted and what it kept; no staging is left and
/// the old member is untouched.
#[test]
fn ctrl_c_while_staging_leaves_no_staging() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("m1.etcd");
    old_member(&d.join("member"));
    let before = tree(&d);
    let snap = fixture("etcd-3.5.1.db");
    let child = Command::new("strace")
        .args(["-f", "-qq", "-o", "/dev/null", "-e", "trace=fsync"])
        .args(["-e", "inject=fsync:delay_enter=200000"])
        .arg(env!("CARGO_BIN_EXE_etcdsnap"))
        .args([
            "restore",
            s(&snap),
            "--name",
            "m1",
            "--initial-cluster",
            ONE,
        ])
        .args(["--force", "--data-dir", s(&d)])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("strace is required (apt-get install strace)");
    // The staging dir names the pid of the restore.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let pid = loop {
        let found = named(&d, ".member.etcdsnap-staging-").into_iter().next();
        if let Some(p) = found {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            break name.rsplit('-').next().unwrap().parse::<i32>().unwrap();
        }
        assert!(std::time::Instant::now() < deadline, "no staging appeared");
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    std::thread::sleep(std::time::Duration::from_millis(300));
    // SAFETY: a plain kill(2) of the child's pid.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let o = child.wait_with_output().unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("interrupted by SIGINT"), "{err}");
    assert!(
        err.contains("were removed") && err.contains("as it was"),
        "{err}"
    );
    assert_eq!(tree(&d), before, "staging left or the old member changed");
}

/// Two restores into one data dir at once: while the first stages (slowed
/// down by strace), the second is refused (exit 2) naming the first's pid and
/// changes nothing; the first completes.
#[ignore = "real: needs the servers and oracles of .ci/setup (bash .ci/run)"]
#[test]
fn a_second_restore_into_the_same_dir_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("m1.etcd");
    old_member(&d.join("member"));
    let snap = fixture("etcd-3.5.1.db");
    let child = Command::new("strace")
        .args(["-f", "-qq", "-o", "/dev/null", "-e", "trace=fsync"])
        .args(["-e", "inject=fsync:delay_enter=100000"])
        .arg(env!("CARGO_BIN_EXE_etcdsnap"))
        .args([
            "restore",
            s(&snap),
            "--name",
            "m1",
            "--initial-cluster",
            ONE,
        ])
        .args(["--force", "--data-dir", s(&d)])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("strace is required (apt-get install strace)");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let pid = loop {
        if let Some(p) = named(&d, ".member.etcdsnap-staging-").into_iter().next() {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            break name.rsplit('-').next().unwrap().to_string();
        }
        assert!(std::time::Instant::now() < deadline, "no staging appeared");
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    let second = restore(&[
        "--name",
        "m1",
        "--initial-cluster",
        ONE,
        "--force",
        "--data-dir",
        s(&d),
    ]);
    let err = stderr(&second);
    assert_eq!(second.status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("pid {pid}")), "{err}");
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        named(&d, "member.etcdsnap-bak-").len(),
        1,
        "one swap, one backup"
    );
    assert_db_matches_etcdutl(&d, "m1", ONE, "etcd-cluster");
}

/// With --wal-dir, a swap killed once both halves are in (before its
/// journals go) is settled only by a run given both directories: one without
/// --wal-dir is refused (exit 2) and changes nothing; one with it puts both
/// old trees back, then swaps both new ones in (the old ones aside, whole).
#[ignore = "real: needs the servers and oracles of .ci/setup (bash .ci/run)"]
#[test]
fn a_killed_swap_with_a_wal_dir_is_settled_only_with_both_dirs() {
    fn as_str(v: &[String]) -> Vec<&str> {
        v.iter().map(String::as_str).collect()
    }
    let args = |d: &Path, w: Option<&Path>| -> Vec<String> {
        let mut v: Vec<String> = [
            "--name",
            "m1",
            "--initial-cluster",
            ONE,
            "--force",
            "--data-dir",
            s(d),
        ]
        .iter()
        .map(|a| a.to_string())
        .collect();
        if let Some(w) = w {
            v.push("--wal-dir".into());
            v.push(s(w).into());
        }
        v
    };
    let setup = |t: &Path| -> (PathBuf, PathBuf) {
        let (d, w) = (t.join("data"), t.join("w"));
        old_member(&d.join("member"));
        std::fs::create_dir_all(&w).unwrap();
        std::fs::write(w.join("0000000000000000-0000000000000000.wal"), b"old wal").unwrap();
        (d, w)
    };
    let calib = tempfile::tempdir().unwrap();
    let (cd, cw) = setup(calib.path());
    let (o, log) = restore_traced(&as_str(&args(&cd, Some(&cw))), None);
    assert!(o.status.success(), "{}", stderr(&o));
    let (call, n) = nth_call(&log, ".w.etcdsnap-swap-");
    let t = tempfile::tempdir().unwrap();
    let (d, w) = setup(t.path());
    let (old_d, old_w) = (tree(&d.join("member")), tree(&w));
    let (o, _) = restore_traced(&as_str(&args(&d, Some(&w))), Some((&call, n)));
    assert_eq!(o.status.code(), None, "not killed: {}", stderr(&o));
    let before = (tree(&d), tree(t.path()));
    let o = restore(&as_str(&args(&d, None)));
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--wal-dir") && err.contains(".journal"),
        "{err}"
    );
    assert_eq!(
        (tree(&d), tree(t.path())),
        before,
        "a refused run changed things"
    );
    let o = restore(&as_str(&args(&d, Some(&w))));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("undid the interrupted swap"),
        "{}",
        stderr(&o)
    );
    let member_baks: Vec<_> = named(&d, "member.etcdsnap-bak-")
        .iter()
        .map(|b| tree(b))
        .collect();
    let wal_baks: Vec<_> = named(t.path(), "w.etcdsnap-bak-")
        .iter()
        .map(|b| tree(b))
        .collect();
    assert_eq!(
        member_baks,
        vec![old_d],
        "the old member aside, once, whole"
    );
    assert_eq!(wal_baks, vec![old_w], "the old WAL aside, once, whole");
    let left: Vec<_> = named(t.path(), "etcdsnap")
        .into_iter()
        .chain(named(&d, "etcdsnap"))
        .filter(|p| !p.to_string_lossy().contains(".etcdsnap-bak-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert_db_matches_etcdutl(&d, "m1", ONE, "etcd-cluster");
}

/// An install killed after its commit point (the data swap's journal
/// removed; the PKI renames' journal still there) is a complete install:
/// the next run, with nothing changed in between, says "already installed",
/// keeps the new PKI files with the new member (never one without the
/// other) and removes the journal.
#[test]
fn an_install_killed_after_its_commit_point_reruns_as_installed() {
    let t = tempfile::tempdir().unwrap();
    let (_, archive) = one_member_bundle(t.path());
    let install = |root: &Path, force: bool| install_args(&archive, root, force);
    let pki_journals = |root: &Path| -> Vec<String> {
        std::fs::read_dir(root.join("etc/kubernetes/pki"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".etcdsnap-pki-swap-") && n.ends_with(".journal"))
            .collect()
    };
    let calib = t.path().join("calib");
    let o = etcdsnap().args(install(&calib, false)).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    unsettle(&calib);
    let args = install(&calib, true);
    let (o, log) = traced(&args.iter().map(String::as_str).collect::<Vec<_>>(), None);
    assert!(o.status.success(), "{}", stderr(&o));
    // Killed at the removal of the PKI journal, the last step: the data
    // swap's journal is already gone.
    let (call, n) = nth_call(&log, ".etcdsnap-pki-swap-");
    // The PKI files in place (what was moved aside is named by the time).
    let pki_files = |root: &Path| {
        let mut t = tree(&root.join("etc/kubernetes/pki/etcd"));
        t.retain(|k, _| !k.contains(".etcdsnap-bak-"));
        t
    };
    let installed = pki_files(&calib);

    let root = t.path().join("killed");
    let o = etcdsnap().args(install(&root, false)).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    unsettle(&root);
    let args = install(&root, true);
    let (o, _) = traced(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        Some((&call, n)),
    );
    assert_eq!(o.status.code(), None, "not killed: {}", stderr(&o));
    assert_eq!(pki_journals(&root).len(), 1, "the PKI journal is left");
    let o = etcdsnap().args(install(&root, false)).output().unwrap();
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("already installed"), "{}", stdout(&o));
    assert_eq!(pki_files(&root), installed);
    assert!(pki_journals(&root).is_empty(), "the journal is removed");
}

/// `install ARCHIVE --root ROOT [--force]`.
fn install_args(archive: &Path, root: &Path, force: bool) -> Vec<String> {
    let mut v: Vec<String> = ["install", s(archive), "--root", s(root)]
        .iter()
        .map(|a| a.to_string())
        .collect();
    if force {
        v.push("--force".into());
    }
    v
}

/// Makes what is installed under `root` differ from the archive (one PKI
/// file changed; members run without TLS in these tests), so that
/// `install --force` replaces it rather than saying "already installed".
fn unsettle(root: &Path) {
    let p = root.join("etc/kubernetes/pki/etcd/peer.crt");
    let mut b = std::fs::read(&p).unwrap();
    b.push(b'\n');
    std::fs::write(&p, b).unwrap();
}

/// Ctrl-C (SIGINT, sent by strace at the install's first fsync) during
/// `install --force`: the run stops with exit 2 and says so, the installed
/// member and PKI are as they were, and nothing of the run is left behind.
#[test]
fn ctrl_c_during_install_leaves_the_target_as_it_was() {
    let t = tempfile::tempdir().unwrap();
    let (_, archive) = one_member_bundle(t.path());
    let root = t.path().join("root");
    let o = etcdsnap()
        .args(["install", s(&archive), "--root", s(&root)])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    unsettle(&root);
    let before = tree(&root);
    let o = Command::new("strace")
        .args(["-f", "-qq", "-o", "/dev/null", "-e", "trace=fsync"])
        .args(["-e", "inject=fsync:signal=INT:when=1"])
        .arg(env!("CARGO_BIN_EXE_etcdsnap"))
        .args(["install", s(&archive), "--root", s(&root), "--force"])
        .output()
        .expect("strace is required (apt-get install strace)");
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("SIGINT"), "{err}");
    assert_eq!(tree(&root), before, "the target changed: {err}");
}
