//! Hostile files for every reader: inline buckets nested thousands deep and
//! leaves whose elements all point at one big span must give exit 1 with a
//! located error, quickly, never an abort; and the
//! crafted files are written out as fuzz seeds.

use crate::common;
use crate::craft;

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use common::*;

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p.to_str().unwrap().to_string()
}

/// The exit code a damaged file gives `command` (1 for every reader).
fn damage_codes(_command: &str) -> &'static [i32] {
    &[1]
}

/// A hang guard for the commands run here (killed past it): never a timing
/// check — how fast the readers refuse is measured in benches/.
const HANG: Duration = Duration::from_secs(120);

/// Runs a command; asserts it was not killed by a signal and exited with the
/// code for a damaged file.
fn expect_damage(args: &[&str]) -> Output {
    let o = run(args);
    assert_eq!(
        o.status.signal(),
        None,
        "{args:?} was killed by a signal: {}",
        stderr(&o)
    );
    assert!(
        o.status
            .code()
            .is_some_and(|c| damage_codes(args[0]).contains(&c)),
        "{args:?}: exit {:?}: stdout {} stderr {}",
        o.status.code(),
        stdout(&o),
        stderr(&o)
    );
    o
}

/// The four readers every hostile file is run through.
fn readers(file: &str) -> Vec<Vec<String>> {
    [
        vec!["status", file],
        vec!["verify", file],
        vec!["ls", file],
        vec!["get", file, "/registry/pods/default/big"],
    ]
    .iter()
    .map(|a| a.iter().map(|s| s.to_string()).collect())
    .collect()
}

/// Whether a message says where: a page or offset, or a bucket and key.
fn located(out: &str) -> bool {
    out.contains("page ") || out.contains("offset ") || out.contains("bucket key, key \"")
}

#[test]
fn deeply_nested_inline_buckets_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    for levels in [5_000usize, 20_000] {
        let bytes = craft::nested_db(levels);
        assert!(bytes.len() > levels * 49, "{levels} levels");
        for trailer in [false, true] {
            let b = if trailer {
                craft::with_trailer(bytes.clone())
            } else {
                bytes.clone()
            };
            let f = write(dir.path(), &format!("nested-{levels}-{trailer}.db"), &b);
            for args in readers(&f) {
                let args: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
                let o = expect_damage(&args);
                let out = stdout(&o) + &stderr(&o);
                assert!(located(&out), "{args:?}: not located: {out}");
                if args[0] != "ls" && args[0] != "get" {
                    assert!(out.contains("nest"), "{args:?}: {out}");
                }
            }
        }
    }
}

#[test]
fn overlapping_element_data_fails_quickly() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = craft::overlapping_db(2_000, 1 << 20);
    for trailer in [false, true] {
        let b = if trailer {
            craft::with_trailer(bytes.clone())
        } else {
            bytes.clone()
        };
        let f = write(dir.path(), &format!("overlap-{trailer}.db"), &b);
        for args in readers(&f) {
            let args: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
            let o = expect_damage(&args);
            let out = stdout(&o) + &stderr(&o);
            assert!(located(&out), "{args:?}: not located: {out}");
            assert!(out.contains("overlap"), "{args:?}: {out}");
        }
    }
}

/// Writes the crafted files as fuzz seeds into `target/fuzz-seeds/` (where
/// `fuzz/run.sh` takes them from), each checked to fail `verify` and to fit
/// the fuzzers' `-max_len`: nested inline buckets just past the depth limit
/// and thousands deep, elements sharing one span, with and without trailer.
#[test]
fn fuzz_seeds() {
    const MAX_LEN: usize = 2 << 20; // fuzz/run.sh's -max_len
    let dir = root().join("target/fuzz-seeds");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let seeds = [
        ("nested-70", craft::nested_db(70)),
        ("nested-2500", craft::nested_db(2_500)),
        ("nested-10000", craft::nested_db(10_000)),
        ("overlap-40x4k", craft::overlapping_db(40, 4096)),
        ("overlap-2000x256k", craft::overlapping_db(2_000, 256 << 10)),
    ];
    for (name, bytes) in seeds {
        for (suffix, b) in [("", bytes.clone()), (".sha", craft::with_trailer(bytes))] {
            assert!(b.len() <= MAX_LEN, "{name}{suffix}: {} bytes", b.len());
            let r = etcdsnap::verify::verify_bytes(name, &b, etcdsnap::input::Compression::None);
            assert!(!r.passed, "{name}{suffix} passes verify");
            std::fs::write(dir.join(format!("{name}{suffix}.db")), &b).unwrap();
        }
    }
}

/// Runs `etcdsnap ARGS` with its address space capped (so that an unbounded
/// read fails instead of filling the machine) and a deadline; returns the
/// exit code (None: killed at the deadline), stderr and the time taken.
fn bounded_run(args: &[&str], deadline: Duration) -> (Option<i32>, String, Duration) {
    use std::process::{Command, Stdio};
    let t = Instant::now();
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("ulimit -v 4000000; exec \"$@\"")
        .arg("sh")
        .arg(env!("CARGO_BIN_EXE_etcdsnap"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        use std::io::Read;
        let _ = err.read_to_string(&mut s);
        s
    });
    let code = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st.code();
        }
        if t.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (code, reader.join().unwrap(), t.elapsed())
}

/// `--policy` and `--encryption-config` given a device, a FIFO nobody writes,
/// a directory or a YAML nested 100,000 deep: refused at once (exit 2) with
/// the file named, memory bounded by what is read; never a hang.
#[test]
fn small_files_that_are_not_small_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let deep_flow = write(
        dir.path(),
        "deep-flow.yaml",
        format!(
            "minNamespaces: 1\nminObjects: {}{}\n",
            "[".repeat(100_000),
            "]".repeat(100_000)
        )
        .as_bytes(),
    );
    let deep_map = write(
        dir.path(),
        "deep-map.yaml",
        format!(
            "# deep\nresources: {}1{}\n",
            "{a: ".repeat(100_000),
            "}".repeat(100_000)
        )
        .as_bytes(),
    );
    let snap = fixture("etcd-3.5.1.db");
    let snap = snap.to_str().unwrap();
    let fifo = fifo.to_str().unwrap();
    let d = dir.path().to_str().unwrap();
    let mut failures = Vec::new();
    for flag in ["--policy", "--encryption-config"] {
        for (file, says) in [
            ("/dev/zero", "character device"),
            (fifo, "FIFO"),
            (d, "directory"),
            (deep_flow.as_str(), "line 2: nested deeper than 64 levels"),
            (deep_map.as_str(), "line 2: nested deeper than 64 levels"),
        ] {
            let (code, err, took) = bounded_run(&["check", snap, flag, file], HANG);
            eprintln!("check {flag} {file}: exit {code:?} in {took:?}");
            if code != Some(2) || !err.contains(file) || !err.contains(says) {
                failures.push(format!("{flag} {file}: exit {code:?} in {took:?}: {err}"));
            }
        }
    }
    // `decode` reads a FIFO as given (`decode <(etcdctl get …)`), capped.
    let (code, err, took) = bounded_run(&["decode", "/dev/zero"], HANG);
    eprintln!("decode /dev/zero: exit {code:?} in {took:?}");
    if code != Some(2) || !err.contains("/dev/zero: cannot read: larger than") {
        failures.push(format!(
            "decode /dev/zero: exit {code:?} in {took:?}: {err}"
        ));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
