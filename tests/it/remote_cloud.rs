//! Snapshots in Google Cloud Storage (`gs://`, on fake-gcs-server) and Azure
//! Blob (`az://`, on Azurite), objects put with curl over each emulator's own
//! API: every whole-file command and `get` print for the remote object what
//! they print for the same bytes on disk, with the same exit code; missing
//! objects and buckets, refused or missing credentials, unreachable
//! endpoints and objects replaced mid-read exit 2, name the URL, never print
//! a secret and leave no spool file behind.

use std::path::Path;
use std::process::{Command, Output};

use crate::common::cloud::{AZURITE_KEY, Azurite, FakeGcs, with_azure_env, with_gcs_env};
use crate::common::{etcdsnap, fixture, stderr, stdout};
use crate::remote::{
    COMMANDS, args_for, assert_no_spool, assert_same, copies, replace_mid_read, run_env,
};

/// `get` command lines compared (`get` has no `--spool-dir`: its spool goes
/// to `$TMPDIR`).
const GETS: [&[&str]; 3] = [
    &["get", "{}", "configmap", "app-config", "-n", "default"],
    &[
        "get",
        "{}",
        "configmap",
        "app-config",
        "-n",
        "default",
        "-o",
        "json",
    ],
    &[
        "get",
        "{}",
        "/registry/configmaps/default/app-config",
        "-o",
        "raw",
    ],
];

/// `get` on `local` and on `url` (with `env`): equal stdout and exit codes,
/// no spool left in `$TMPDIR`.
fn assert_same_get(cmd: &[&str], local: &Path, url: &str, env: &dyn Fn(&mut Command)) {
    let l = etcdsnap()
        .args(args_for(cmd, local.to_str().unwrap()))
        .output()
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut c = etcdsnap();
    env(&mut c);
    let r = c
        .args(args_for(cmd, url))
        .env("TMPDIR", tmp.path())
        .output()
        .unwrap();
    assert_eq!(
        r.stdout,
        l.stdout,
        "{cmd:?} on {url}: stdout differs from the local file's\nremote stderr: {}",
        stderr(&r)
    );
    assert_eq!(
        r.status.code(),
        l.status.code(),
        "{cmd:?} on {url}: exit codes differ\nremote stderr: {}\nlocal stderr: {}",
        stderr(&r),
        stderr(&l)
    );
    assert_no_spool(tmp.path());
}

/// Puts every test copy with `put` and compares each command on
/// `url_of(name)` with the local copy.
fn outputs_equal_local_files(
    put: &dyn Fn(&str, &Path),
    url_of: &dyn Fn(&str) -> String,
    env: &dyn Fn(&mut Command),
) {
    let dir = tempfile::tempdir().unwrap();
    let mut damaged = 0;
    let mut ok_gets = 0;
    for (name, path) in copies(dir.path()) {
        put(&name, &path);
        let url = url_of(&name);
        for cmd in COMMANDS {
            if assert_same(cmd, &path, &url, env) == 1 {
                damaged += 1;
            }
        }
        for cmd in GETS {
            assert_same_get(cmd, &path, &url, env);
            ok_gets += 1;
        }
    }
    // The cut copy fails every command (exit 1), locally and remotely.
    assert!(damaged >= COMMANDS.len(), "{damaged} runs exited 1");
    assert_eq!(ok_gets, 6 * GETS.len());
}

#[test]
#[ignore = "real: fake-gcs-server (bash .ci/fake-gcs-server) and curl"]
fn gcs_outputs_equal_local_files() {
    let g = FakeGcs::start();
    g.create_bucket("backups");
    outputs_equal_local_files(
        &|name, path| g.put("backups", &format!("nightly/{name}"), path),
        &|name| format!("gs://backups/nightly/{name}"),
        &|c| with_gcs_env(c, &g),
    );
}

#[test]
#[ignore = "real: azurite (bash .ci/azurite) and curl"]
fn azure_outputs_equal_local_files() {
    let a = Azurite::start();
    a.create_container("backups");
    outputs_equal_local_files(
        &|name, path| a.put("backups", &format!("nightly/{name}"), path),
        &|name| format!("az://backups/nightly/{name}"),
        &|c| with_azure_env(c, &a, AZURITE_KEY),
    );
}

/// Each command on each URL exits 2 with stderr naming the URL and saying
/// `what`; nothing on stdout, no spool left.
fn assert_fails(urls: &[&str], what: &str, env: &dyn Fn(&mut Command), secrets: &[&str]) {
    let spool = tempfile::tempdir().unwrap();
    for url in urls {
        for cmd in ["verify", "status", "inspect", "check"] {
            let o = run_env(&[cmd, url, "-v"], spool.path(), env);
            check_failure(&o, cmd, url, what, secrets);
        }
        let tmp = tempfile::tempdir().unwrap();
        let mut c = etcdsnap();
        env(&mut c);
        let o = c
            .args(["get", url, "configmap", "app-config"])
            .env("TMPDIR", tmp.path())
            .output()
            .unwrap();
        check_failure(&o, "get", url, what, secrets);
        assert_no_spool(tmp.path());
    }
    assert_no_spool(spool.path());
}

fn check_failure(o: &Output, cmd: &str, url: &str, what: &str, secrets: &[&str]) {
    let all = format!("{}{}", stdout(o), stderr(o));
    assert_eq!(o.status.code(), Some(2), "{cmd} {url}: {all}");
    assert!(
        stderr(o).contains(&format!("{url}: {what}")),
        "{cmd} {url}: expected `{url}: {what}`: {all}"
    );
    assert_eq!(stdout(o), "", "{cmd} {url}");
    for s in secrets {
        assert!(!all.contains(s), "{cmd} {url}: secret printed: {all}");
    }
}

#[test]
#[ignore = "real: fake-gcs-server (bash .ci/fake-gcs-server) and curl"]
fn gcs_missing_object_or_bucket_exits_2_naming_the_url() {
    let g = FakeGcs::start();
    g.create_bucket("backups");
    g.put("backups", "a.db", &fixture("etcd-3.5.1.db"));
    assert_fails(
        &["gs://backups/none.db", "gs://no-such-bucket/a.db"],
        "not found",
        &|c| with_gcs_env(c, &g),
        &[],
    );
}

#[test]
#[ignore = "real: azurite (bash .ci/azurite) and curl"]
fn azure_missing_blob_or_container_exits_2_naming_the_url() {
    let a = Azurite::start();
    a.create_container("backups");
    a.put("backups", "a.db", &fixture("etcd-3.5.1.db"));
    assert_fails(
        &["az://backups/none.db"],
        "not found: HTTP 404 Not Found, BlobNotFound",
        &|c| with_azure_env(c, &a, AZURITE_KEY),
        &[AZURITE_KEY],
    );
    assert_fails(
        &["az://no-such-container/a.db"],
        "not found: HTTP 404 Not Found, ContainerNotFound",
        &|c| with_azure_env(c, &a, AZURITE_KEY),
        &[AZURITE_KEY],
    );
}

/// A wrong account key (well-formed: the server refuses the signature), a
/// malformed one (refused before any request) and a SAS token the server
/// refuses: exit 2, and neither key nor signature is printed.
#[test]
#[ignore = "real: azurite (bash .ci/azurite) and curl"]
fn azure_bad_credentials_exit_2_and_never_print_them() {
    let a = Azurite::start();
    a.create_container("backups");
    a.put("backups", "a.db", &fixture("etcd-3.5.1.db"));
    let url = "az://backups/a.db";
    // 64 bytes, base64: a key of the right shape, not the account's.
    let wrong = "d3JvbmdrZXktOWYzYzFhN2UtNGIxZDdjMGU5YS13cm9uZ2tleS05ZjNjMWE3ZS00YjFkN2MwZTlhLXc=";
    assert_fails(
        &[url],
        "access denied: HTTP 403 Forbidden",
        &|c| with_azure_env(c, &a, wrong),
        &[wrong, AZURITE_KEY],
    );
    let malformed = "not-base64-secret-7c0e9a4b1d!";
    assert_fails(
        &[url],
        "cannot set up the client",
        &|c| with_azure_env(c, &a, malformed),
        &[malformed, "secret-7c0e9a4b1d"],
    );
    let sig = "c2lnbmF0dXJlLXNlY3JldC0xMjM0NTY3ODkw";
    let sas =
        format!("sv=2021-08-06&ss=b&srt=sco&sp=r&se=2030-01-01T00:00:00Z&spr=https,http&sig={sig}");
    assert_fails(
        &[url],
        "access denied: HTTP 403 Forbidden",
        &|c| {
            with_azure_env(c, &a, AZURITE_KEY);
            c.env_remove("AZURE_STORAGE_ACCOUNT_KEY")
                .env("AZURE_STORAGE_SAS_KEY", &sas);
        },
        &[sig, AZURITE_KEY],
    );
    // The right key still reads (the cases above failed for their credentials).
    let spool = tempfile::tempdir().unwrap();
    let o = run_env(&["verify", url], spool.path(), &|c| {
        with_azure_env(c, &a, AZURITE_KEY)
    });
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

/// Not emulator mode: the account's endpoint given as `AZURE_STORAGE_ENDPOINT`
/// (as for a private endpoint or Azure Stack), with the account name and key;
/// plain http only when allowed; no key and no managed identity: exit 2.
#[test]
#[ignore = "real: azurite (bash .ci/azurite) and curl"]
fn azure_endpoint_setting_reads_without_emulator_mode() {
    let a = Azurite::start();
    a.create_container("backups");
    a.put("backups", "a.db", &fixture("etcd-3.6.16.db"));
    let env = |c: &mut Command| {
        with_azure_env(c, &a, AZURITE_KEY);
        c.env_remove("AZURE_STORAGE_USE_EMULATOR")
            .env_remove("AZURITE_BLOB_STORAGE_URL")
            .env(
                "AZURE_STORAGE_ENDPOINT",
                format!("{}/devstoreaccount1", a.url()),
            );
    };
    let local = fixture("etcd-3.6.16.db");
    // Plain http is refused unless asked for.
    let spool = tempfile::tempdir().unwrap();
    let o = run_env(&["verify", "az://backups/a.db"], spool.path(), &env);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("az://backups/a.db: cannot read: the endpoint is plain http, refused unless AZURE_ALLOW_HTTP=true"),
        "{}",
        stderr(&o)
    );
    let env = |c: &mut Command| {
        env(c);
        c.env("AZURE_ALLOW_HTTP", "true");
    };
    assert_same(
        &["status", "{}", "-w", "json"],
        &local,
        "az://backups/a.db",
        &env,
    );
    // No credentials: object_store asks the managed identity endpoint, here
    // a closed loopback port.
    let closed = format!(
        "http://127.0.0.1:{}/token",
        crate::common::cluster::free_port()
    );
    assert_fails(
        &["az://backups/a.db"],
        "access denied: no access token",
        &|c| {
            env(c);
            c.env_remove("AZURE_STORAGE_ACCOUNT_KEY")
                .env("AZURE_MSI_ENDPOINT", &closed);
        },
        &[],
    );
}

/// GCS's own emulator settings: a service account file naming the
/// endpoint (`gcs_base_url`) with `disable_oauth`; a service account key
/// that does not parse is refused without being printed; without any
/// credentials (and no metadata server) the read is refused, exit 2.
#[test]
#[ignore = "real: fake-gcs-server (bash .ci/fake-gcs-server) and curl"]
fn gcs_service_account_settings_and_missing_credentials() {
    let g = FakeGcs::start();
    g.create_bucket("backups");
    g.put("backups", "a.db", &fixture("etcd-3.6.16.db"));
    let url = "gs://backups/a.db";
    let local = fixture("etcd-3.6.16.db");
    let dir = tempfile::tempdir().unwrap();
    let account = dir.path().join("emulator.json");
    std::fs::write(
        &account,
        format!(
            r#"{{"gcs_base_url": "{}", "disable_oauth": true, "client_email": "", "private_key": "", "private_key_id": ""}}"#,
            g.base_url()
        ),
    )
    .unwrap();
    let by_file = |c: &mut Command| {
        with_gcs_env(c, &g);
        c.env_remove("GOOGLE_BASE_URL")
            .env_remove("GOOGLE_SKIP_SIGNATURE")
            .env("GOOGLE_SERVICE_ACCOUNT", &account);
    };
    assert_same(&["status", "{}", "-w", "json"], &local, url, &by_file);

    let marker = "PRIVATEKEYMATERIAL7c0e9a";
    let key = format!(
        r#"{{"client_email": "backup@p.iam.gserviceaccount.com", "private_key_id": "k1", "private_key": "-----BEGIN PRIVATE KEY-----\n{marker}\n-----END PRIVATE KEY-----\n"}}"#
    );
    assert_fails(
        &[url],
        "cannot set up the client",
        &|c| {
            with_gcs_env(c, &g);
            c.env_remove("GOOGLE_SKIP_SIGNATURE")
                .env("GOOGLE_SERVICE_ACCOUNT_KEY", &key);
        },
        &[marker],
    );

    // No credentials: object_store asks the metadata server, here a closed
    // loopback port, and no application default credentials in $HOME.
    let home = tempfile::tempdir().unwrap();
    let closed = format!("127.0.0.1:{}", crate::common::cluster::free_port());
    assert_fails(
        &[url],
        "access denied: no access token",
        &|c| {
            with_gcs_env(c, &g);
            c.env_remove("GOOGLE_SKIP_SIGNATURE")
                .env("HOME", home.path())
                .env("GCE_METADATA_HOST", &closed)
                .env("GCE_METADATA_IP", &closed);
        },
        &[],
    );
}

#[test]
#[ignore = "real: fake-gcs-server and azurite (.ci/setup) and curl"]
fn unreachable_endpoints_exit_2() {
    let mut g = FakeGcs::start();
    let mut a = Azurite::start();
    g.child.kill().unwrap();
    g.child.wait().unwrap();
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    assert_fails(
        &["gs://backups/a.db"],
        "cannot read",
        &|c| with_gcs_env(c, &g),
        &[],
    );
    assert_fails(
        &["az://backups/a.db"],
        "cannot read",
        &|c| with_azure_env(c, &a, AZURITE_KEY),
        &[AZURITE_KEY],
    );
}

/// 64 MiB objects, replaced under their key while the reader is stopped
/// mid-transfer: the generation/ETag pin refuses what was read.
#[test]
#[ignore = "real: fake-gcs-server and azurite (.ci/setup) and curl"]
fn object_replaced_mid_read_is_refused() {
    let g = FakeGcs::start();
    let a = Azurite::start();
    g.create_bucket("backups");
    a.create_container("backups");
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (dir.path().join("old"), dir.path().join("new"));
    let total = 64usize << 20;
    std::fs::write(&old, vec![1u8; total]).unwrap();
    std::fs::write(&new, vec![2u8; 4096]).unwrap();
    g.put("backups", "big.db", &old);
    a.put("backups", "big.db", &old);
    type Case<'a> = (&'a str, Box<dyn Fn(&mut Command) + 'a>, Box<dyn Fn() + 'a>);
    let cases: [Case; 2] = [
        (
            "gs://backups/big.db",
            Box::new(|c: &mut Command| with_gcs_env(c, &g)),
            Box::new(|| g.put("backups", "big.db", &new)),
        ),
        (
            "az://backups/big.db",
            Box::new(|c: &mut Command| with_azure_env(c, &a, AZURITE_KEY)),
            Box::new(|| a.put("backups", "big.db", &new)),
        ),
    ];
    for (url, env, replace) in cases {
        let spool = tempfile::tempdir().unwrap();
        let mut c = etcdsnap();
        env(&mut c);
        c.args(["verify", url]);
        let o = replace_mid_read(c, spool.path(), total, replace);
        assert_eq!(o.status.code(), Some(2), "{url}: {}", stderr(&o));
        assert!(
            stderr(&o).contains(&format!("{url}: the object changed while it was read")),
            "{}",
            stderr(&o)
        );
        assert_eq!(stdout(&o), "");
        assert_no_spool(spool.path());
    }
}

/// `--gcs-endpoint` and `--azure-endpoint` reach the emulators with no
/// endpoint in the environment (GOOGLE_BASE_URL, AZURE_STORAGE_ENDPOINT and
/// the emulator mode removed): outputs equal the local file's; without the
/// flag the same command does not reach them.
#[test]
#[ignore = "real: fake-gcs-server and azurite (bash .ci/setup)"]
fn endpoint_flags_reach_gcs_and_azure_without_the_environment() {
    let local = fixture("etcd-3.6.16.db");
    let g = FakeGcs::start();
    g.create_bucket("backups");
    g.put("backups", "a.db", &local);
    let gcs_env = |c: &mut Command| {
        with_gcs_env(c, &g);
        c.env_remove("GOOGLE_BASE_URL");
    };
    let base = g.base_url();
    assert_same_get(
        &["status", "{}", "-w", "json", "--gcs-endpoint", &base],
        &local,
        "gs://backups/a.db",
        &gcs_env,
    );
    let a = Azurite::start();
    a.create_container("backups");
    a.put("backups", "a.db", &local);
    let az_env = |c: &mut Command| {
        with_azure_env(c, &a, AZURITE_KEY);
        c.env_remove("AZURE_STORAGE_USE_EMULATOR")
            .env_remove("AZURITE_BLOB_STORAGE_URL")
            .env("AZURE_ALLOW_HTTP", "true");
    };
    let account = format!("{}/devstoreaccount1", a.url());
    assert_same_get(
        &["status", "{}", "-w", "json", "--azure-endpoint", &account],
        &local,
        "az://backups/a.db",
        &az_env,
    );
    // Without the flags: not the emulators (Google's and Azure's public
    // endpoints, unreachable here, or refused), never their answer.
    for (url, env) in [
        ("gs://backups/a.db", &gcs_env as &dyn Fn(&mut Command)),
        ("az://backups/a.db", &az_env),
    ] {
        let mut c = etcdsnap();
        env(&mut c);
        let o = c.args(["status", url, "-w", "json"]).output().unwrap();
        assert_eq!(
            o.status.code(),
            Some(2),
            "{url}: {}{}",
            stdout(&o),
            stderr(&o)
        );
    }
}
