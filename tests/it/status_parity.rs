//! `etcdsnap status` against the real `etcdutl snapshot status` (3.5.1) and
//! `etcdctl snapshot status` (3.4.23), run at test time on the same files:
//! the committed fixtures, freshly made snapshots, compressed copies and
//! trailer-less data-dir copies.

use crate::common;

use std::io::Write;
use std::path::Path;

use common::*;

fn assert_parity(line: &str, file: &Path) {
    for format in ["json", "table", "simple", "fields"] {
        // etcdctl 3.4's fields output is the same as etcdutl's; compare all four.
        let want = real_status(line, file, format);
        let o = run(&["status", file.to_str().unwrap(), "-w", format]);
        assert!(o.status.success(), "etcdsnap status failed: {}", stderr(&o));
        assert_eq!(
            stdout(&o),
            want,
            "status -w {format} differs from etcd {line} on {}",
            file.display()
        );
    }
}

fn committed_fixtures_match_the_real_tools(name: &str, line: &str) {
    let f = fixture(name);
    assert_parity(line, &f);
    // The neighbouring line's tool on the same file, as --etcd-version says.
    let other = match line {
        "3.4" => "3.5",
        "3.5" => "3.4",
        "3.6" => "3.7",
        _ => "3.6",
    };
    let want = real_status(other, &f, "json");
    let p = f.to_str().unwrap();
    let o = run(&["status", p, "-w", "json", "--etcd-version", other]);
    assert_eq!(stdout(&o), want, "{name} as etcd {other}");
}
per_release!(
    #[ignore = "real: needs the servers and oracles of .ci/setup (bash .ci/run)"]
    committed_fixtures_match_the_real_tools:
    v3_4("etcd-3.4.23.db", "3.4"),
    v3_5("etcd-3.5.1.db", "3.5"),
    v3_6("etcd-3.6.16.db", "3.6"),
    v3_7("etcd-3.7.3.db", "3.7"),
);

/// Fresh snapshots of every release, made once by fixtures/make_fixtures.py.
fn fresh_fixtures() -> &'static std::path::Path {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let st = std::process::Command::new("python3")
            .arg(root().join("fixtures/make_fixtures.py"))
            .arg("--out")
            .arg(dir.path())
            .status()
            .expect("run fixtures/make_fixtures.py");
        assert!(
            st.success(),
            "make_fixtures.py failed (are both etcd versions installed?)"
        );
        dir
    })
    .path()
}

fn fresh_snapshots_from_real_servers_match(name: &str, line: &str) {
    assert_parity(line, &fresh_fixtures().join(name));
}
per_release!(
    #[ignore = "real: needs the servers and oracles of .ci/setup (bash .ci/run)"]
    fresh_snapshots_from_real_servers_match:
    v3_4("etcd-3.4.23.db", "3.4"),
    v3_5("etcd-3.5.1.db", "3.5"),
    v3_6("etcd-3.6.16.db", "3.6"),
    v3_7("etcd-3.7.3.db", "3.7"),
);

fn data_dir_copy_without_trailer_matches(name: &str, line: &str) {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(fixture(name)).unwrap();
    let db = dir.path().join(format!("{name}.member-snap-db"));
    std::fs::write(&db, &bytes[..bytes.len() - 32]).unwrap();
    assert_parity(line, &db);
}
per_release!(
    #[ignore = "real: needs the servers and oracles of .ci/setup (bash .ci/run)"]
    data_dir_copy_without_trailer_matches:
    v3_4("etcd-3.4.23.db", "3.4"),
    v3_5("etcd-3.5.1.db", "3.5"),
    v3_6("etcd-3.6.16.db", "3.6"),
    v3_7("etcd-3.7.3.db", "3.7"),
);

fn compressed_inputs_give_the_same_status(name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let plain = fixture(name);
    let bytes = std::fs::read(&plain).unwrap();
    let want = stdout(&run(&["status", plain.to_str().unwrap(), "-w", "json"]));

    let zst = dir.path().join(format!("{name}.zst"));
    std::fs::write(&zst, zstd::encode_all(&bytes[..], 3).unwrap()).unwrap();

    let gz = dir.path().join(format!("{name}.gz"));
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(&bytes).unwrap();
    std::fs::write(&gz, enc.finish().unwrap()).unwrap();

    // k3s names its zip after the snapshot and stores the one file inside.
    let zip_path = dir.path().join("on-demand-node1-1700000000");
    {
        let f = std::fs::File::create(&zip_path).unwrap();
        let mut w = zip::ZipWriter::new(f);
        w.start_file(
            "on-demand-node1-1700000000",
            zip::write::SimpleFileOptions::default(),
        )
        .unwrap();
        w.write_all(&bytes).unwrap();
        w.finish().unwrap();
    }

    for p in [&zst, &gz, &zip_path] {
        let o = run(&["status", p.to_str().unwrap(), "-w", "json"]);
        assert!(o.status.success(), "{}: {}", p.display(), stderr(&o));
        assert_eq!(stdout(&o), want, "{}", p.display());
        let v = run(&["verify", p.to_str().unwrap(), "-q"]);
        assert_eq!(v.status.code(), Some(0), "{}", stdout(&v));
    }

    // Standard input works too.
    let o = etcdsnap()
        .args(["status", "-", "-w", "json"])
        .stdin(std::fs::File::open(&zst).unwrap())
        .output()
        .unwrap();
    assert_eq!(stdout(&o), want);
}
per_release!(
    compressed_inputs_give_the_same_status:
    v3_4("etcd-3.4.23.db"),
    v3_5("etcd-3.5.1.db"),
    v3_6("etcd-3.6.16.db"),
    v3_7("etcd-3.7.3.db"),
);
