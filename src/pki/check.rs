//! `pki check`: every certificate of a PKI judged as Go's TLS would judge it
//! at the handshake (spec §3.6): it parses, it is valid at the given time,
//! it chains to the etcd CA, its key matches it, its usages fit its role,
//! and each member's URLs are in its SANs; key files are not readable by
//! others.

use std::path::Path;
use std::time::SystemTime;

use serde::Serialize;

use super::layout::Layout;
use super::{Finding, MemberUrls, PkiError, Severity};

/// The result of a check: the layout found and every finding.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub layout: Layout,
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn errors(&self) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .count()
    }
}

/// Checks `dir` for `members` at time `at`.
pub fn check_dir(dir: &Path, members: &[MemberUrls], at: SystemTime) -> Result<Report, PkiError> {
    let names: Vec<String> = members.iter().map(|m| m.name.clone()).collect();
    let layout = Layout::read(dir, &names)?;
    let _ = at;
    // TODO(pki helper): the checks.
    Ok(Report {
        layout,
        findings: Vec::new(),
    })
}
