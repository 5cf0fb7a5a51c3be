//! Refusing a damaged snapshot before reading it for figures or differences.
//!
//! Commands that summarise or compare a snapshot (`inspect`, `diff`) would
//! otherwise print plausible numbers or report a flipped byte as a changed
//! object. They run the checks `verify` runs without `--deep` (the sha256
//! trailer when there is one, the bbolt meta and page checks, etcd's bucket,
//! key and meta checks) and stop with an [`InputError::Damaged`] when any
//! fails. The checks read every page once; the digest runs on its own thread.

use super::{InputError, SnapshotFile};
use crate::verify::{CheckStatus, verify};

/// How many problems the error names; `verify` lists them all.
const NAMED: usize = 3;

/// Fails with [`InputError::Damaged`] when `verify` finds the file damaged.
pub fn refuse_damaged(file: &SnapshotFile) -> Result<(), InputError> {
    let report = verify(file);
    if report.passed {
        return Ok(());
    }
    let mut found = Vec::new();
    let mut total = 0u64;
    for c in report
        .checks
        .iter()
        .filter(|c| c.status == CheckStatus::Failed)
    {
        total += c.problems.len() as u64 + c.omitted;
        if c.problems.is_empty() {
            found.push(format!("{}: {}", c.name, c.detail));
        }
        for p in &c.problems {
            found.push(format!("{}: {p}", c.name));
        }
    }
    let shown = found.len().min(NAMED);
    let mut detail = found[..shown].join("; ");
    if (total as usize) > shown {
        detail.push_str(&format!(
            "; {} more (`etcdsnap verify` lists them)",
            total as usize - shown
        ));
    }
    Err(InputError::Damaged {
        path: file.path().to_path_buf(),
        detail: crate::report::escape_controls(&detail).into_owned(),
    })
}
