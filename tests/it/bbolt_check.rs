//! `verify`'s bolt checks against Go's `bbolt check` (bbolt 1.4.3 as etcd
//! 3.6.16 uses it, 1.5.0 as etcd 3.7.3 does; built by .ci/etcd-build): every
//! good file passes both; every damaged copy that `bbolt check` flags (a
//! reported error, or a crash), `verify` flags too. `verify` may find more.

use crate::common;

use std::path::Path;
use std::process::Command;

use common::*;
use etcdsnap::input::Compression;
use etcdsnap::verify::{CheckStatus, Report, verify_bytes};

const TRAILER: usize = 32;

/// `bbolt check` of that line on `db` (no trailer): Some(output) when it flags
/// the file (non-zero exit, including a Go panic or being killed after 20 s).
fn bbolt_flags(line: &str, db: &Path) -> Option<String> {
    let o = Command::new("timeout")
        .arg("20")
        .arg(etcd_bin(line, "bbolt"))
        .arg("check")
        .arg(db)
        .output()
        .expect("run bbolt check");
    let text = format!("{}{}", stdout(&o), stderr(&o));
    if o.status.success() {
        assert!(
            text.trim() == "OK",
            "bbolt {line} check exit 0 but said: {text}"
        );
        None
    } else {
        Some(text)
    }
}

fn verify(bytes: &[u8]) -> Report {
    std::panic::catch_unwind(|| verify_bytes("copy", bytes, Compression::None))
        .expect("verify panicked")
}

fn bolt_failed(r: &Report) -> bool {
    r.checks
        .iter()
        .any(|c| c.name.starts_with("bolt-") && c.status == CheckStatus::Failed)
}

fn good_files_pass_both(name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(fixture(name)).unwrap();
    let db = dir.path().join(name);
    std::fs::write(&db, &bytes[..bytes.len() - TRAILER]).unwrap();
    for line in ["3.6", "3.7"] {
        assert_eq!(bbolt_flags(line, &db), None, "bbolt {line} on {name}");
    }
    assert!(verify(&bytes).passed, "verify on {name}");
}
per_release!(
    #[ignore = "real: needs the servers and oracles of .ci/setup (bash .ci/run)"]
    good_files_pass_both:
    v3_4("etcd-3.4.23.db"),
    v3_5("etcd-3.5.1.db"),
    v3_6("etcd-3.6.16.db"),
    v3_7("etcd-3.7.3.db"),
);

/// Damaged copies of every fixture: bytes flipped in page headers, element
/// tables and bodies, whole pages zeroed, files cut short. Whatever either
/// bbolt flags, verify's structure checks flag.
fn whatever_bbolt_check_flags_verify_flags(name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng::new(0x3637_bb01);
    let (mut flagged, mut total, mut only_verify) = (0, 0, 0);
    let full = std::fs::read(fixture(name)).unwrap();
    let base = &full[..full.len() - TRAILER];
    let page = 4096;
    let pages = base.len() / page;
    for case in 0..40 {
        let mut b = base.to_vec();
        let what = match case % 5 {
            0 => {
                let p = 2 + rng.below(pages as u64 - 2) as usize;
                let off = p * page + rng.below(16) as usize;
                b[off] ^= 1 << rng.below(8);
                format!("page {p} header byte {off} flipped")
            }
            1 | 2 => {
                let p = 2 + rng.below(pages as u64 - 2) as usize;
                let off = p * page + 16 + rng.below(64) as usize;
                b[off] = b[off].wrapping_add(1 + rng.below(255) as u8);
                format!("page {p} element byte {off} changed")
            }
            3 => {
                let p = 2 + rng.below(pages as u64 - 2) as usize;
                b[p * page..(p + 1) * page].fill(0);
                format!("page {p} zeroed")
            }
            _ => {
                let cut = page * (2 + rng.below(pages as u64 - 2) as usize);
                b.truncate(cut);
                format!("cut to {cut} bytes")
            }
        };
        let path = dir.path().join(format!("{name}.{case}"));
        std::fs::write(&path, &b).unwrap();
        let r = verify(&b);
        let v = !r.passed;
        total += 1;
        for line in ["3.6", "3.7"] {
            if let Some(out) = bbolt_flags(line, &path) {
                flagged += 1;
                assert!(
                    v,
                    "{name}, {what}: bbolt {line} check flags it, verify passes it:\n{}",
                    out.lines().take(5).collect::<Vec<_>>().join("\n")
                );
                let failed: Vec<&str> = r.failed_checks().map(|c| c.name).collect();
                assert!(
                    bolt_failed(&r),
                    "{name}, {what}: bbolt {line} flags it, verify only via {failed:?}:\n{}",
                    out.lines().take(5).collect::<Vec<_>>().join("\n")
                );
            } else if v {
                only_verify += 1;
            }
        }
    }
    eprintln!(
        "{total} damaged copies: {flagged} bbolt verdicts of damage (all also flagged by verify); \
         {only_verify} verdicts where only verify flags"
    );
    assert!(
        flagged > total / 2,
        "too few damaged copies flagged by bbolt: {flagged}"
    );
}
per_release!(
    #[ignore = "real: needs the servers and oracles of .ci/setup (bash .ci/run)"]
    whatever_bbolt_check_flags_verify_flags:
    v3_4("etcd-3.4.23.db"),
    v3_5("etcd-3.5.1.db"),
    v3_6("etcd-3.6.16.db"),
    v3_7("etcd-3.7.3.db"),
);
