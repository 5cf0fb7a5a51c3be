//! `etcdsnap restore`: data dirs that real etcd 3.5.1 and 3.4.23 clusters boot
//! from, with the IDs etcdutl computes, every key served, and a db whose status
//! hash equals that of etcdutl's own restore.

use crate::common;

use std::path::Path;
use std::process::Command;

use common::cluster::*;
use common::pki::make_pki;
use common::*;
use serde_json::{Value, json};

fn boot(version: &str, l: &Layout, dirs: &[std::path::PathBuf], token: &str) -> Value {
    boot_dirs(version, &l.members, dirs, token, &[])
}

fn restore_all(
    version_flag: &str,
    l: &Layout,
    token: &str,
    extra: &[&str],
) -> (tempfile::TempDir, Value) {
    let dir = tempfile::tempdir().unwrap();
    let snap = fixture("etcd-3.5.1.db");
    let mut args = vec![
        "restore",
        snap.to_str().unwrap(),
        "--out-dir",
        dir.path().to_str().unwrap(),
        "--initial-cluster",
        &l.initial,
        "--initial-cluster-token",
        token,
        "--target-version",
        version_flag,
        "-w",
        "json",
    ];
    args.extend_from_slice(extra);
    let o = run(&args);
    assert!(o.status.success(), "restore failed: {}", stderr(&o));
    (dir, serde_json::from_slice(&o.stdout).unwrap())
}

/// Restores three members for `version`, boots them on that etcd line, and
/// checks what a restored cluster must show.
fn three_members_boot(version: &str) {
    let l = layout(3);
    let token = format!("etcdsnap-{version}");
    let (dir, plan) = restore_all(version, &l, &token, &[]);
    let dirs: Vec<_> = l
        .members
        .iter()
        .map(|(n, _, _)| dir.path().join(format!("{n}.etcd")))
        .collect();
    let out = boot(version, &l, &dirs, &token);
    // Members as requested, with our IDs (equal to etcdutl's: tests/it/restore_plan.rs).
    let got = member_triples(&out["members"], "peerURLs");
    let want = member_triples(&plan["members"], "peerUrls");
    assert_eq!(got, want);
    assert_eq!(out["leaders"].as_array().unwrap().len(), 1, "one leader");
    check_served(&out, fixture_kvs());
    assert!(out["revision"].as_i64().unwrap() >= 48);
}

#[ignore = "real: needs the servers and oracles of .ci/setup (bash .ci/run)"]
#[test]
fn three_members_boot_on_etcd_3_5() {
    three_members_boot("3.5");
}

#[ignore = "real: needs the servers and oracles of .ci/setup (bash .ci/run)"]
#[test]
fn three_members_boot_on_etcd_3_4() {
    three_members_boot("3.4");
}

#[ignore = "real: needs the servers and oracles of .ci/setup (bash .ci/run)"]
#[test]
fn single_member_with_bump_boots() {
    let l = layout(1);
    let token = "etcdsnap-single";
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("m1.etcd");
    let (name, peer, _) = &l.members[0];
    let snap = fixture("etcd-3.5.1.db");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let o = run(&[
        "restore",
        snap.to_str().unwrap(),
        "--name",
        name,
        "--initial-cluster",
        &l.initial,
        "--initial-cluster-token",
        token,
        "--initial-advertise-peer-urls",
        &peer_url,
        "--data-dir",
        data_dir.to_str().unwrap(),
        "--bump-revision",
        "1000",
        "--mark-compacted",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // A second restore into the same dir is refused without --force.
    let again = run(&[
        "restore",
        snap.to_str().unwrap(),
        "--name",
        name,
        "--initial-cluster",
        &l.initial,
        "--initial-cluster-token",
        token,
        "--data-dir",
        data_dir.to_str().unwrap(),
    ]);
    assert_eq!(again.status.code(), Some(2));
    assert!(stderr(&again).contains("not empty"), "{}", stderr(&again));
    let out = boot("3.5", &l, &[data_dir], token);
    assert!(
        out["revision"].as_i64().unwrap() >= 48 + 1000,
        "bumped revision: {}",
        out["revision"]
    );
    check_served(&out, fixture_kvs());
}

/// For a 3.5 target, the db's status hash equals that of etcdutl 3.5.1's
/// restore with the same flags, and the WAL and .snap files are byte-identical.
#[ignore = "real: needs the servers and oracles of .ci/setup (bash .ci/run)"]
#[test]
fn files_match_etcdutl_restore() {
    let l = layout(3);
    let token = "etcdsnap-parity";
    let (dir, _) = restore_all("3.5", &l, token, &[]);
    for (name, peer, _) in &l.members {
        let eu = dir.path().join(format!("etcdutl-{name}"));
        etcdutl_restore(
            &fixture("etcd-3.5.1.db"),
            name,
            &l.initial,
            token,
            &format!("http://127.0.0.1:{peer}"),
            &eu,
        );
        let ours = dir.path().join(format!("{name}.etcd"));
        let hash = |p: &Path| {
            let o = run(&[
                "status",
                p.join("member/snap/db").to_str().unwrap(),
                "-w",
                "json",
            ]);
            let v: Value = serde_json::from_slice(&o.stdout).unwrap();
            (
                v["hash"].clone(),
                v["revision"].clone(),
                v["totalKey"].clone(),
            )
        };
        assert_eq!(hash(&ours), hash(&eu), "{name}: status of the restored db");
        // The real etcdutl reads both dbs with the same whole hash.
        let real = |p: &Path| -> Value {
            serde_json::from_str(&real_status("3.5", &p.join("member/snap/db"), "json")).unwrap()
        };
        let (r_ours, r_eu) = (real(&ours), real(&eu));
        assert_eq!(r_ours["hash"], r_eu["hash"], "etcdutl's hash of our db");
        assert_eq!(r_ours["revision"], r_eu["revision"]);
        assert_eq!(r_ours["totalKey"], r_eu["totalKey"]);
        for rel in [
            "member/wal/0000000000000000-0000000000000000.wal",
            "member/snap/0000000000000001-0000000000000003.snap",
        ] {
            assert_eq!(
                std::fs::read(ours.join(rel)).unwrap(),
                std::fs::read(eu.join(rel)).unwrap(),
                "{name}: {rel}"
            );
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&ours), 0o700);
            assert_eq!(mode(&ours.join("member/snap")), 0o700);
            assert_eq!(mode(&ours.join("member/snap/db")), 0o600);
        }
    }
}

/// Killed (SIGKILL) at any moment, a restore leaves the member absent or
/// complete — and both happen over the spread of kill times; the next run
/// removes whatever staging the killed one left, says so, and leaves none.
/// A complete member's db reads, in the real etcdutl, as etcdutl's own restore.
#[ignore = "real: needs the servers and oracles of .ci/setup (bash .ci/run)"]
#[test]
fn a_killed_restore_never_leaves_a_half_written_dir() {
    let snap = fixture("etcd-3.5.1.db");
    let initial = "m1=http://127.0.0.1:2380";
    let expected = {
        let d = tempfile::tempdir().unwrap();
        let eu = d.path().join("eu");
        etcdutl_restore(
            &snap,
            "m1",
            initial,
            "etcd-cluster",
            "http://127.0.0.1:2380",
            &eu,
        );
        status_fields(&eu)
    };
    let restore = |target: &Path| {
        let mut c = etcdsnap();
        c.args(["restore", snap.to_str().unwrap(), "--name", "m1"])
            .args(["--initial-cluster", initial, "--data-dir"])
            .arg(target);
        c
    };
    let leftovers = |dir: &Path| -> Vec<String> {
        let mut v = Vec::new();
        for d in [dir.to_path_buf(), dir.join("m1.etcd")] {
            if let Ok(rd) = std::fs::read_dir(&d) {
                for e in rd {
                    let n = e.unwrap().file_name().to_string_lossy().into_owned();
                    if n.contains("etcdsnap-staging")
                        || n.contains("etcdsnap-tmp")
                        || n.contains("etcdsnap-swap")
                    {
                        v.push(n);
                    }
                }
            }
        }
        v
    };
    let (mut complete, mut absent, mut cleaned) = (0, 0, 0);
    for i in 0..40u64 {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("m1.etcd");
        let mut child = restore(&target)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Spread the kills over the run (a restore of the fixture takes ~50 ms).
        std::thread::sleep(std::time::Duration::from_micros((i * 1597) % 60_000));
        let _ = child.kill();
        let _ = child.wait();
        let member = target.join("member");
        if member.exists() {
            assert_eq!(
                status_fields(&target),
                expected,
                "kill {i}: a present member's db differs from etcdutl's restore"
            );
            let wal = member.join("wal/0000000000000000-0000000000000000.wal");
            assert_eq!(
                std::fs::metadata(&wal).unwrap().len(),
                64_000_000,
                "kill {i}: WAL incomplete"
            );
            assert!(
                member
                    .join("snap/0000000000000001-0000000000000001.snap")
                    .exists()
            );
            complete += 1;
        } else {
            absent += 1;
        }
        // The next run cleans up after the killed one and says so.
        let left = leftovers(dir.path());
        let mut next = restore(&target);
        next.arg("--force");
        let o = next.output().unwrap();
        assert!(o.status.success(), "kill {i}: next run: {}", stderr(&o));
        if !left.is_empty() {
            cleaned += 1;
            for n in &left {
                assert!(
                    stderr(&o).contains(n.as_str()),
                    "kill {i}: {n} removed without a word: {}",
                    stderr(&o)
                );
            }
        }
        assert_eq!(leftovers(dir.path()), Vec::<String>::new(), "kill {i}");
        assert_eq!(
            status_fields(&target),
            expected,
            "kill {i}: after the next run"
        );
    }
    eprintln!("killed restores: {complete} complete, {absent} absent, {cleaned} cleaned up");
    assert!(
        complete > 0,
        "no kill came after the swap: spread the kills"
    );
    assert!(absent > 0, "no kill came before the swap: spread the kills");
    assert!(cleaned > 0, "no kill left staging behind: spread the kills");
}

/// (hash, revision, totalKey) of `data_dir`'s db, as the real etcdutl 3.5.1 reads it.
fn status_fields(data_dir: &Path) -> (Value, Value, Value) {
    let v: Value = serde_json::from_str(&real_status(
        "3.5",
        &data_dir.join("member/snap/db"),
        "json",
    ))
    .unwrap();
    (
        v["hash"].clone(),
        v["revision"].clone(),
        v["totalKey"].clone(),
    )
}

#[test]
fn suggest_bump_explains_a_safe_value() {
    let snap = fixture("etcd-3.5.1.db");
    let o = run(&[
        "restore",
        snap.to_str().unwrap(),
        "--suggest-bump",
        "--live-revision",
        "10048",
    ]);
    assert!(o.status.success());
    let s = stdout(&o);
    assert!(s.contains("10000 past the snapshot"), "{s}");
    assert!(s.contains("--bump-revision 12000 --mark-compacted"), "{s}");
    let o = run(&[
        "restore",
        snap.to_str().unwrap(),
        "--bump-revision",
        "5",
        "--initial-cluster",
        "m1=http://127.0.0.1:2380",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--mark-compacted"));
}

/// A snapshot taken while a NOSPACE alarm was raised: the alarm is reported
/// before restoring, kept by default (as etcdutl keeps it), dropped with
/// --clear-alarms.
#[ignore = "real: needs the servers and oracles of .ci/setup (bash .ci/run)"]
#[test]
fn nospace_alarm_is_reported_and_can_be_cleared() {
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("nospace.db");
    let st = Command::new("python3")
        .arg(root().join("fixtures/nospace_snapshot.py"))
        .arg(&snap)
        .status()
        .unwrap();
    assert!(st.success(), "nospace_snapshot.py failed");
    let s = snap.to_str().unwrap();
    let plan = run(&["restore", s, "--dry-run", "-w", "json"]);
    let plan: Value = serde_json::from_slice(&plan.stdout).unwrap();
    assert_eq!(plan["stale"]["alarms"][0]["alarm"], "NOSPACE");
    let alarms_in = |data_dir: &Path| {
        let bytes = std::fs::read(data_dir.join("member/snap/db")).unwrap();
        let db = etcdsnap::bolt::Db::open(&bytes).unwrap();
        let b = etcdsnap::bolt::read::bucket(&db, b"alarm")
            .unwrap()
            .unwrap();
        let mut n = 0;
        etcdsnap::bolt::read::for_each(&db, &b, |_| {
            n += 1;
            std::ops::ControlFlow::Continue(())
        })
        .unwrap();
        n
    };
    let kept = dir.path().join("kept.etcd");
    let o = run(&[
        "restore",
        s,
        "--name",
        "default",
        "--data-dir",
        kept.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("NOSPACE"),
        "reported before writing: {}",
        stderr(&o)
    );
    assert_eq!(alarms_in(&kept), 1);
    let cleared = dir.path().join("cleared.etcd");
    let o = run(&[
        "restore",
        s,
        "--name",
        "default",
        "--data-dir",
        cleared.to_str().unwrap(),
        "--clear-alarms",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(alarms_in(&cleared), 0);
}

/// --owner chowns every restored file and directory (needs root, which CI is).
#[cfg(unix)]
#[test]
fn owner_is_applied_to_the_whole_tree() {
    use std::os::unix::fs::MetadataExt;
    if euid_is_not_root() {
        panic!("this test needs root (CI runs as root)");
    }
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("owned.etcd");
    let snap = fixture("etcd-3.5.1.db");
    let o = run(&[
        "restore",
        snap.to_str().unwrap(),
        "--name",
        "default",
        "--data-dir",
        target.to_str().unwrap(),
        "--owner",
        "2001:2001",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    for rel in [
        "",
        "member",
        "member/snap",
        "member/snap/db",
        "member/wal",
        "member/wal/0000000000000000-0000000000000000.wal",
    ] {
        let m = std::fs::metadata(target.join(rel)).unwrap();
        assert_eq!((m.uid(), m.gid()), (2001, 2001), "{rel}");
    }
}

#[cfg(unix)]
fn euid_is_not_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    // A file we create is owned by our effective uid.
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::metadata(f.path()).unwrap().uid() != 0
}

/// Starts each member as an operator would from its `.env` file alone:
/// `set -a; . FILE; etcd`, in `cwd` (not where the restore ran).
fn boot_from_env(version: &str, l: &Layout, envs: &[std::path::PathBuf], cwd: &Path) -> Value {
    boot_from_env_tls(version, l, envs, cwd, None)
}

/// `boot_from_env`, etcdctl speaking https with the files in `pki` when given.
fn boot_from_env_tls(
    version: &str,
    l: &Layout,
    envs: &[std::path::PathBuf],
    cwd: &Path,
    pki: Option<&Path>,
) -> Value {
    let logs = tempfile::tempdir().unwrap();
    let tls = pki.map(|p| {
        json!({
            "cacert": p.join("ca.crt").to_str().unwrap(),
            "cert": p.join("server.crt").to_str().unwrap(),
            "key": p.join("server.key").to_str().unwrap(),
        })
    });
    let spec = json!({
        "token": "unused",
        "tls": tls,
        "members": l.members.iter().zip(envs).map(|((name, peer, client), env)| json!({
            "name": name, "peer_port": peer, "client_port": client,
            "env_file": env.to_str().unwrap(), "cwd": cwd.to_str().unwrap(),
            "log": logs.path().join(format!("{name}.log")).to_str().unwrap(),
        })).collect::<Vec<_>>(),
    });
    boot_spec(version, &spec)
}

/// Items 6 and 24: every member's `.env` file boots it with the restored data
/// (absolute paths although --out-dir was relative, listen and advertise
/// URLs), run from another directory: etcd 3.5.1, three members.
#[ignore = "real: needs the servers and oracles of .ci/setup (bash .ci/run)"]
#[test]
fn env_files_boot_every_member_from_another_dir() {
    let l = layout(3);
    let token = "etcdsnap-env";
    let work = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let clients = l
        .members
        .iter()
        .map(|(n, _, c)| format!("{n}=http://127.0.0.1:{c}"))
        .collect::<Vec<_>>()
        .join(",");
    let o = etcdsnap()
        .current_dir(work.path())
        .args(["restore", fixture("etcd-3.5.1.db").to_str().unwrap()])
        .args(["--out-dir", "out", "--initial-cluster", &l.initial])
        .args(["--initial-cluster-token", token, "--client-urls", &clients])
        .args(["-w", "json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let plan: Value = serde_json::from_slice(&o.stdout).unwrap();
    let envs: Vec<_> = l
        .members
        .iter()
        .map(|(n, _, _)| work.path().join(format!("out/{n}.env")))
        .collect();
    let out = boot_from_env("3.5", &l, &envs, elsewhere.path());
    let got = member_triples(&out["members"], "peerURLs");
    let want = member_triples(&plan["members"], "peerUrls");
    assert_eq!(got, want);
    check_served(&out, fixture_kvs());
}

/// Items 6 and 24 with --wal-dir, on etcd 3.4.23: the `.env` file names the
/// WAL dir (absolute), etcd boots from it, and it equals the printed flags.
#[ignore = "real: needs the servers and oracles of .ci/setup (bash .ci/run)"]
#[test]
fn env_file_with_wal_dir_boots_on_etcd_3_4() {
    let l = layout(1);
    let (name, peer, client) = &l.members[0];
    let work = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let o = etcdsnap()
        .current_dir(work.path())
        .args(["restore", fixture("etcd-3.5.1.db").to_str().unwrap()])
        .args(["--name", name, "--initial-cluster", &l.initial])
        .args([
            "--out-dir",
            "out",
            "--wal-dir",
            "wal",
            "--target-version",
            "3.4",
        ])
        .args(["--client-urls", &format!("http://127.0.0.1:{client}")])
        .args([
            "--initial-advertise-peer-urls",
            &format!("http://127.0.0.1:{peer}"),
        ])
        .args(["-w", "json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let plan: Value = serde_json::from_slice(&o.stdout).unwrap();
    let env = work.path().join(format!("out/{name}.env"));
    let text = std::fs::read_to_string(&env).unwrap();
    let wal = work.path().join("wal");
    assert!(
        text.contains(&format!("ETCD_WAL_DIR={}\n", wal.display())),
        "{text}"
    );
    // The printed flags say the same as the .env file.
    let flags: Vec<String> = plan["members"][0]["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let (k, v) = f.as_str().unwrap()[2..].split_once('=').unwrap();
            format!("ETCD_{}={v}", k.to_uppercase().replace('-', "_"))
        })
        .collect();
    assert_eq!(text.lines().collect::<Vec<_>>(), flags);
    let out = boot_from_env("3.4", &l, &[env], elsewhere.path());
    let got = member_triples(&out["members"], "peerURLs");
    let want = member_triples(&plan["members"], "peerUrls");
    assert_eq!(got, want);
    check_served(&out, fixture_kvs());
    // etcd used the WAL dir: it never made one inside the data dir.
    assert!(wal.join("0000000000000000-0000000000000000.wal").exists());
    assert!(
        !work
            .path()
            .join(format!("out/{name}.etcd/member/wal"))
            .exists()
    );
}

/// Item 18: a lease whose remaining TTL a checkpoint recorded (leasepb.Lease
/// field 3) expires after that remainder, not one full TTL: the report says
/// so, and the real etcd 3.4.23 booted from the restore serves that
/// remainder (etcd 3.5.1 drops it, which the report says too).
/// (etcd 3.4/3.5 checkpoint only every 5 minutes, so the snapshot is the
/// fixture with its lease's value given a remaining TTL of 120 s.)
#[ignore = "real: needs the servers and oracles of .ci/setup (bash .ci/run)"]
#[test]
fn a_checkpointed_lease_expires_after_its_remainder() {
    use etcdsnap::bolt::write::{BucketData, write_db};
    use etcdsnap::bolt::{Db, read};
    use std::borrow::Cow;
    let bytes = std::fs::read(fixture("etcd-3.5.1.db")).unwrap();
    let db = Db::open(&bytes[..bytes.len() - 32]).unwrap();
    let mut buckets = Vec::new();
    let mut lease_id = String::new();
    for b in read::buckets(&db).unwrap() {
        let mut entries = Vec::new();
        read::for_each(&db, &b, |e| {
            let mut v = e.value.to_vec();
            if b.name == b"lease" {
                let mut f = etcdsnap::protowire::Fields::new(e.value);
                if let Some(Ok((1, etcdsnap::protowire::Value::Varint(id)))) = f.next() {
                    lease_id = format!("{id:x}");
                }
                v.extend_from_slice(&[3 << 3, 120]); // remaining_TTL = 120
            }
            entries.push((Cow::Owned(e.key.to_vec()), Cow::Owned(v)));
            std::ops::ControlFlow::Continue(())
        })
        .unwrap();
        buckets.push(BucketData {
            name: Cow::Owned(b.name.to_vec()),
            entries,
        });
    }
    assert!(!lease_id.is_empty(), "the fixture holds a lease");
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("checkpointed.db");
    let mut f = std::fs::File::create(&snap).unwrap();
    write_db(&mut f, db.page_size(), &buckets).unwrap();
    drop(f);
    let s = snap.to_str().unwrap();
    let o = run(&["restore", s, "--dry-run"]);
    let report = stdout(&o);
    assert!(
        report.contains(
            "they expire 120 s after the restored cluster elects a leader (the remaining TTL \
             a lease checkpoint recorded, which etcd 3.4, 3.6 and 3.7 honour; etcd 3.5.1 \
             ignores it and grants the full TTL)"
        ),
        "{report}"
    );
    // The real etcd agrees: 3.4.23 serves the remainder, 3.5.1 (as the
    // report says) drops it and grants the full TTL again.
    for (version, want) in [("3.4", 100..=120), ("3.5", 3590..=3600)] {
        let l = layout(1);
        let data_dir = dir.path().join(format!("m1-{version}.etcd"));
        let o = run(&[
            "restore",
            s,
            "--skip-hash-check",
            "--target-version",
            version,
            "--name",
            &l.members[0].0,
            "--initial-cluster",
            &l.initial,
            "--initial-cluster-token",
            "etcdsnap-lease",
            "--data-dir",
            data_dir.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let out = boot_dirs(
            version,
            &l.members,
            &[data_dir],
            "etcdsnap-lease",
            &[&lease_id],
        );
        let ttl = out["timetolive"][&lease_id]["ttl"]
            .as_i64()
            .unwrap_or_else(|| panic!("etcdctl lease timetolive: {:#}", out["timetolive"]));
        assert!(
            want.contains(&ttl),
            "etcd {version} serves a remaining TTL of {ttl} s, expected {want:?}"
        );
    }
}

/// Item 24 with https URLs: the `.env` file carries kubeadm's TLS flags (the
/// files under --pki-dir) and the member boots from it, run from another
/// directory, serving the restored data to a client with a certificate.
#[ignore = "real: needs the servers and oracles of .ci/setup (bash .ci/run)"]
#[test]
fn env_file_with_https_urls_boots_with_tls() {
    let l = layout(1);
    let (name, peer, client) = &l.members[0];
    let work = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let pki = work.path().join("pki");
    std::fs::create_dir(&pki).unwrap();
    make_pki(&pki);
    let initial = format!("{name}=https://127.0.0.1:{peer}");
    let o = etcdsnap()
        .current_dir(work.path())
        .args(["restore", fixture("etcd-3.5.1.db").to_str().unwrap()])
        .args(["--name", name, "--initial-cluster", &initial])
        .args(["--out-dir", "out", "--pki-dir", pki.to_str().unwrap()])
        .args(["--client-urls", &format!("https://127.0.0.1:{client}")])
        .args(["-w", "json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let plan: Value = serde_json::from_slice(&o.stdout).unwrap();
    let env = work.path().join(format!("out/{name}.env"));
    let text = std::fs::read_to_string(&env).unwrap();
    assert!(text.contains("ETCD_PEER_CLIENT_CERT_AUTH=true"), "{text}");
    let out = boot_from_env_tls("3.5", &l, &[env], elsewhere.path(), Some(&pki));
    let got = member_triples(&out["members"], "peerURLs");
    let want = member_triples(&plan["members"], "peerUrls");
    assert_eq!(got, want);
    check_served(&out, fixture_kvs());
}

/// `--out-dir` that does not exist yet, several members: their data dirs are
/// staged by parallel threads that each create the missing parents, and one
/// of them used to fail with "File exists" (about every other run with five
/// members). Twelve runs, every one must restore every member.
#[test]
fn out_dir_created_by_parallel_members() {
    let initial = (1..=5)
        .map(|i| format!("m{i}=http://127.0.0.1:{}", 2379 + i))
        .collect::<Vec<_>>()
        .join(",");
    let snap = fixture("etcd-3.5.1.db");
    for round in 0..12 {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("a/b");
        let o = run(&[
            "restore",
            snap.to_str().unwrap(),
            "--out-dir",
            out.to_str().unwrap(),
            "--initial-cluster",
            &initial,
            "--initial-cluster-token",
            "t",
        ]);
        assert!(o.status.success(), "round {round}: {}", stderr(&o));
        for i in 1..=5 {
            assert!(out.join(format!("m{i}.etcd/member/snap/db")).is_file());
        }
    }
}
