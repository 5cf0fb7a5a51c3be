//! `drill` against real etcd 3.4–3.7: the fixture of each release restored
//! into the sandbox and served by that release's etcd, whose own HashKV and
//! Range answers are the oracle; a damaged file is not booted; another
//! release is refused; and a drill stopped by Ctrl-C or killed outright
//! leaves no etcd running and (after the next drill) no sandbox.

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{FIXTURES, etcd_bin, etcdsnap, fixture, stderr, stdout};

/// Sandboxes and their etcd processes under `tmp`: (sandbox dirs, pids of
/// processes whose command line names `tmp`).
fn left_in(tmp: &Path) -> (Vec<String>, Vec<u32>) {
    let dirs = std::fs::read_dir(tmp)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("etcdsnap-drill-"))
        .collect();
    (dirs, processes_naming(tmp))
}

fn processes_naming(tmp: &Path) -> Vec<u32> {
    let needle = tmp.to_str().unwrap().as_bytes().to_vec();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.windows(needle.len()).any(|w| w == needle.as_slice()))
        })
        .collect()
}

#[test]
#[ignore = "real: etcd 3.4-3.7 (bash .ci/setup)"]
fn every_release_serves_its_fixture_and_the_drill_passes() {
    for (name, line) in FIXTURES {
        let tmp = tempfile::tempdir().unwrap();
        let junit = tmp.path().join("out").join("drill.xml");
        std::fs::create_dir(tmp.path().join("out")).unwrap();
        let o = etcdsnap()
            .env("TMPDIR", tmp.path())
            .args([
                "drill",
                fixture(name).to_str().unwrap(),
                "-w",
                "json",
                "--etcd",
            ])
            .arg(etcd_bin(line, "etcd"))
            .arg("--junit-out")
            .arg(&junit)
            .output()
            .unwrap();
        assert_eq!(
            o.status.code(),
            Some(0),
            "{name}: {}{}",
            stdout(&o),
            stderr(&o)
        );
        let j: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(j["snapshotRelease"], *line, "{name}");
        assert!(
            j["etcdVersion"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{line}.")),
            "{name}: {j}"
        );
        let checks: Vec<&str> = j["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                assert_eq!(f["verdict"], "pass", "{name}: {f}");
                f["check"].as_str().unwrap()
            })
            .collect();
        for want in ["one-leader", "revision", "hashkv", "content"] {
            assert!(checks.contains(&want), "{name}: {checks:?}");
        }
        // The revision is the one `etcdutl snapshot status` (etcdctl for
        // 3.4) reads from the file.
        let status: Value =
            serde_json::from_str(&crate::common::real_status(line, &fixture(name), "json"))
                .unwrap();
        assert_eq!(j["revision"], status["revision"], "{name}");
        let xml = std::fs::read_to_string(&junit).unwrap();
        assert!(
            xml.contains(&format!("tests=\"{}\"", checks.len())) && xml.contains("failures=\"0\""),
            "{name}: {xml}"
        );
        assert_eq!(left_in(tmp.path()), (vec![], vec![]), "{name}");
    }
}

#[test]
#[ignore = "real: etcd 3.5 and 3.6 (bash .ci/setup)"]
fn another_release_is_refused_and_a_damaged_file_is_not_booted() {
    let tmp = tempfile::tempdir().unwrap();
    let o = etcdsnap()
        .env("TMPDIR", tmp.path())
        .args([
            "drill",
            fixture("etcd-3.5.1.db").to_str().unwrap(),
            "--etcd",
        ])
        .arg(etcd_bin("3.6", "etcd"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("is etcd 3.6.16, but the snapshot was written by etcd 3.5"),
        "{}",
        stderr(&o)
    );
    assert_eq!(left_in(tmp.path()), (vec![], vec![]));

    // One byte of a page changed: the trailer no longer matches.
    let bad = tmp.path().join("bad.db");
    let mut bytes = std::fs::read(fixture("etcd-3.5.1.db")).unwrap();
    bytes[3 * 4096 + 100] ^= 0x55;
    std::fs::write(&bad, &bytes).unwrap();
    let o = etcdsnap()
        .env("TMPDIR", tmp.path())
        .args(["drill", bad.to_str().unwrap(), "-w", "json", "--etcd"])
        .arg(etcd_bin("3.5", "etcd"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    let f = &j["findings"][0];
    assert_eq!(f["check"], "verify", "{j}");
    assert_eq!(f["verdict"], "fail", "{j}");
    assert!(f["detail"].as_str().unwrap().starts_with("sha256"), "{j}");
    let (dirs, procs) = left_in(tmp.path());
    assert!(dirs.is_empty() && procs.is_empty(), "{dirs:?} {procs:?}");
}

/// Starts a drill of the 3.5 fixture with TMPDIR `tmp` and returns it once
/// its etcd runs in the sandbox (the caller waits for it).
#[allow(clippy::zombie_processes)]
fn drill_until_etcd_runs(tmp: &Path) -> (Child, u32) {
    let mut child = etcdsnap()
        .env("TMPDIR", tmp)
        .args([
            "drill",
            fixture("etcd-3.5.1.db").to_str().unwrap(),
            "--etcd",
        ])
        .arg(etcd_bin("3.5", "etcd"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        let etcd: Vec<u32> = processes_naming(tmp)
            .into_iter()
            .filter(|p| *p != child.id())
            .collect();
        if let Some(pid) = etcd.first() {
            return (child, *pid);
        }
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let o = child.wait_with_output().unwrap();
            panic!("the drill's etcd never ran: {}", stderr(&o));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn wait_gone(pid: u32) {
    let start = Instant::now();
    while Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|s| s.split_whitespace().nth(2) == Some("Z"))
    {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "etcd {pid} still runs"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
#[ignore = "real: etcd 3.5 (bash .ci/setup)"]
fn ctrl_c_stops_etcd_and_removes_the_sandbox() {
    let tmp = tempfile::tempdir().unwrap();
    let (child, etcd) = drill_until_etcd_runs(tmp.path());
    // SAFETY: kill(2) on the pid of a child not yet waited for.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stderr(&o).contains("the drill's etcd was stopped and its sandbox removed"),
        "{}",
        stderr(&o)
    );
    wait_gone(etcd);
    assert_eq!(left_in(tmp.path()), (vec![], vec![]));
}

#[test]
#[ignore = "real: etcd 3.5 (bash .ci/setup)"]
fn a_killed_drill_leaves_no_etcd_and_the_next_removes_its_sandbox() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut child, etcd) = drill_until_etcd_runs(tmp.path());
    child.kill().unwrap();
    child.wait().unwrap();
    // The kernel kills the drill's etcd with it.
    wait_gone(etcd);
    let (dirs, _) = left_in(tmp.path());
    assert_eq!(dirs.len(), 1, "the killed drill's sandbox: {dirs:?}");
    let o = etcdsnap()
        .env("TMPDIR", tmp.path())
        .args([
            "drill",
            fixture("etcd-3.5.1.db").to_str().unwrap(),
            "--etcd",
        ])
        .arg(etcd_bin("3.5", "etcd"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(left_in(tmp.path()), (vec![], vec![]));
}

/// A cluster written through a real kube-apiserver (objects of built-in
/// kinds, a CRD and one of its objects), saved by etcdctl, then drilled
/// with etcd 3.6.16 and that kube-apiserver: the API server serves every
/// object, in the counts the live cluster's API answered (kubectl, the
/// oracle). Then one value no API server can decode is put under a
/// ConfigMap's key: the drill fails naming that object with the API
/// server's own reason.
#[test]
#[ignore = "real: etcd 3.6.16, kube-apiserver and kubectl (bash .ci/setup)"]
fn a_kube_apiserver_serves_every_object_or_the_drill_names_the_one_it_cannot() {
    use crate::common::kube::{Kube, kube_bin};
    let k = Kube::start();
    k.kubectl(&["create", "namespace", "drill"]);
    k.kubectl(&[
        "create",
        "configmap",
        "a",
        "-n",
        "drill",
        "--from-literal=k=v",
    ]);
    k.kubectl(&["create", "configmap", "b", "-n", "drill"]);
    k.kubectl(&[
        "create",
        "secret",
        "generic",
        "s",
        "-n",
        "drill",
        "--from-literal=p=q",
    ]);
    k.kubectl(&[
        "create",
        "deployment",
        "web",
        "-n",
        "drill",
        "--image=registry.example/web:1",
    ]);
    let crd = k.dir.path().join("crd.yaml");
    std::fs::write(
        &crd,
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: widgets.example.com\nspec:\n  group: example.com\n  names: {kind: Widget, plural: widgets, singular: widget}\n  scope: Namespaced\n  versions:\n  - name: v1\n    served: true\n    storage: true\n    schema:\n      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}\n",
    )
    .unwrap();
    k.kubectl(&["apply", "-f", crd.to_str().unwrap()]);
    k.kubectl(&[
        "wait",
        "--for=condition=Established",
        "crd/widgets.example.com",
        "--timeout=60s",
    ]);
    let widget = k.dir.path().join("w.yaml");
    std::fs::write(
        &widget,
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w1, namespace: drill}\nspec: {size: 3}\n",
    )
    .unwrap();
    k.kubectl(&["apply", "-f", widget.to_str().unwrap()]);
    let good = k.dir.path().join("good.db");
    k.etcd.ctl(&["snapshot", "save", good.to_str().unwrap()]);
    // What the live cluster's API server lists, per resource.
    let count = |r: &str| k.get_json(&[r, "-A"])["items"].as_array().unwrap().len() as u64;
    let want: Vec<(&str, u64)> = [
        ("namespaces", count("namespaces")),
        ("configmaps", count("configmaps")),
        ("secrets", count("secrets")),
        ("deployments.apps", count("deployments.apps")),
        ("widgets.example.com", count("widgets.example.com")),
        (
            "customresourcedefinitions.apiextensions.k8s.io",
            count("crd"),
        ),
    ]
    .into();

    let drill = |snap: &Path| {
        etcdsnap()
            .args(["drill", snap.to_str().unwrap(), "-w", "json", "--etcd"])
            .arg(etcd_bin("3.6", "etcd"))
            .arg("--kube-apiserver")
            .arg(kube_bin("kube-apiserver"))
            .output()
            .unwrap()
    };
    let o = drill(&good);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    let served = j["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check"] == "api-served")
        .unwrap();
    assert_eq!(served["verdict"], "pass", "{j:#}");
    for (resource, n) in &want {
        let row = j["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["resource"] == *resource)
            .unwrap_or_else(|| panic!("{resource} not counted: {j:#}"));
        assert_eq!(row["inSnapshot"], *n, "{resource}: {j:#}");
        assert_eq!(row["served"], *n, "{resource}: {j:#}");
    }
    assert!(
        j["kubeApiserverVersion"].as_str().unwrap().starts_with('v'),
        "{j:#}"
    );
    let ns_row = |j: &Value, ns: &str| {
        j["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["namespace"] == ns)
            .unwrap_or_else(|| panic!("namespace {ns} not counted: {j:#}"))
            .clone()
    };
    let row = ns_row(&j, "drill");
    assert!(row["inSnapshot"].as_u64().unwrap() > 0, "{j:#}");
    assert_eq!(row["served"], row["inSnapshot"], "{j:#}");

    // A value no API server decodes, under a ConfigMap's key.
    k.etcd.put(
        "/registry/configmaps/drill/broken",
        b"not a kubernetes object",
    );
    let bad = k.dir.path().join("bad.db");
    k.etcd.ctl(&["snapshot", "save", bad.to_str().unwrap()]);
    let o = drill(&bad);
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    let served = j["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check"] == "api-served")
        .unwrap();
    assert_eq!(served["verdict"], "fail", "{j:#}");
    let detail = served["detail"].as_str().unwrap();
    assert!(detail.starts_with("1 of "), "{detail}");
    assert!(
        detail.contains("configmaps drill/broken: HTTP 500"),
        "{detail}"
    );
    let cm = j["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["resource"] == "configmaps")
        .unwrap();
    assert_eq!(
        cm["served"].as_u64().unwrap() + 1,
        cm["inSnapshot"].as_u64().unwrap(),
        "{j:#}"
    );
    let row = ns_row(&j, "drill");
    assert_eq!(
        row["served"].as_u64().unwrap() + 1,
        row["inSnapshot"].as_u64().unwrap(),
        "{j:#}"
    );
    // etcd itself still serves the key: its checks pass.
    for f in j["findings"].as_array().unwrap() {
        if f["check"] != "api-served" {
            assert_eq!(f["verdict"], "pass", "{f}");
        }
    }
}

/// `catalog add --drill` records each snapshot's drill; `catalog check`
/// judges the newest entry's ("trend drill"), passed for a sound file served
/// by its etcd, failed (naming the failed checks) for a damaged one.
#[test]
#[ignore = "real: etcd 3.5 (bash .ci/setup)"]
fn catalog_add_drill_records_the_drill_and_check_judges_it() {
    let tmp = tempfile::tempdir().unwrap();
    let cat = tmp.path().join("catalog.redb");
    let bad = tmp.path().join("bad.db");
    let mut bytes = std::fs::read(fixture("etcd-3.5.1.db")).unwrap();
    bytes[3 * 4096 + 100] ^= 0x55;
    std::fs::write(&bad, &bytes).unwrap();
    for (file, label) in [
        (fixture("etcd-3.5.1.db"), "env=good"),
        (bad.clone(), "env=bad"),
    ] {
        let o = etcdsnap()
            .env("TMPDIR", tmp.path())
            .args([
                "catalog",
                "--catalog",
                cat.to_str().unwrap(),
                "add",
                file.to_str().unwrap(),
                "--label",
                label,
                "--drill",
                "--etcd",
            ])
            .arg(etcd_bin("3.5", "etcd"))
            .output()
            .unwrap();
        assert_eq!(
            o.status.code(),
            Some(0),
            "{label}: {}{}",
            stdout(&o),
            stderr(&o)
        );
    }
    let check = |label: &str| {
        etcdsnap()
            .args([
                "catalog",
                "--catalog",
                cat.to_str().unwrap(),
                "check",
                "--label",
                label,
            ])
            .output()
            .unwrap()
    };
    let o = check("env=good");
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains("ok   trend drill: the newest entry was served by etcd 3.5.1"),
        "{}",
        stdout(&o)
    );
    let o = check("env=bad");
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    let line = stdout(&o)
        .lines()
        .find(|l| l.contains("trend drill"))
        .unwrap_or_default()
        .to_string();
    assert!(
        line.contains("FAIL")
            && line.contains("failed its restore drill")
            && line.contains("verify: sha256"),
        "{}",
        stdout(&o)
    );
    let (dirs, procs) = left_in(tmp.path());
    assert!(dirs.is_empty() && procs.is_empty(), "{dirs:?} {procs:?}");
}
