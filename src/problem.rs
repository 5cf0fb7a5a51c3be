//! A located problem found while checking a file.
//!
//! Every checker in the crate reports through this one type so that reports,
//! exit codes and messages look the same whichever layer found the problem: the
//! page id and byte offset where bbolt structure is concerned, the bucket and key
//! where etcd's layout is.

use serde::Serialize;

/// One thing found wrong, with where it is: page and offset, bucket, key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Page id, when the problem is tied to a page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page: Option<u64>,
    /// Byte offset in the database file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// Bucket path (top-level bucket name, nested names joined by `/`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// The key concerned, printable (non-printable bytes as `\xNN`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl Problem {
    /// A problem with only its message.
    pub fn new(message: impl Into<String>) -> Problem {
        Problem {
            page: None,
            offset: None,
            bucket: None,
            key: None,
            message: message.into(),
        }
    }

    /// The problem is at `offset` of page `page`.
    pub fn at_page(mut self, page: u64, offset: u64) -> Problem {
        self.page = Some(page);
        self.offset = Some(offset);
        self
    }

    /// The problem is at byte `offset` of the file.
    pub fn at_offset(mut self, offset: u64) -> Problem {
        self.offset = Some(offset);
        self
    }

    /// The problem is in bucket `bucket`.
    pub fn in_bucket(mut self, bucket: impl Into<String>) -> Problem {
        self.bucket = Some(bucket.into());
        self
    }

    /// The problem is about `key` (shown escaped).
    pub fn with_key(mut self, key: &[u8]) -> Problem {
        self.key = Some(printable(key));
        self
    }

    /// Where the problem is, as `page 5 (offset 20480), bucket key, key "…"`.
    pub fn location(&self) -> String {
        let mut parts = Vec::new();
        match (self.page, self.offset) {
            (Some(p), Some(o)) => parts.push(format!("page {p} (offset {o})")),
            (Some(p), None) => parts.push(format!("page {p}")),
            (None, Some(o)) => parts.push(format!("offset {o}")),
            (None, None) => {}
        }
        if let Some(b) = &self.bucket {
            parts.push(format!("bucket {b}"));
        }
        if let Some(k) = &self.key {
            parts.push(format!("key \"{k}\""));
        }
        parts.join(", ")
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let loc = self.location();
        if loc.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{loc}: {}", self.message)
        }
    }
}

/// Renders bytes for a message: printable ASCII as is, the rest as `\xNN`;
/// long keys are cut at 200 bytes.
pub fn printable(bytes: &[u8]) -> String {
    const MAX: usize = 200;
    let mut s = String::with_capacity(bytes.len().min(MAX) + 8);
    for &b in bytes.iter().take(MAX) {
        if (0x20..0x7f).contains(&b) && b != b'\\' && b != b'"' {
            s.push(b as char);
        } else {
            s.push_str(&format!("\\x{b:02x}"));
        }
    }
    if bytes.len() > MAX {
        s.push_str(&format!("…(+{} bytes)", bytes.len() - MAX));
    }
    s
}

/// Collects problems up to a cap, counting the ones past it, so that a file full
/// of damage gives a readable report in bounded memory.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Problems {
    /// The problems kept.
    pub items: Vec<Problem>,
    /// Problems found beyond those kept.
    pub omitted: u64,
}

impl Problems {
    /// Problems kept in full; those past it are only counted.
    pub const CAP: usize = 200;

    /// Keeps `p`, or counts it once [`Self::CAP`] are kept.
    pub fn push(&mut self, p: Problem) {
        if self.items.len() < Self::CAP {
            self.items.push(p);
        } else {
            self.omitted += 1;
        }
    }

    /// Whether no problem was found.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty() && self.omitted == 0
    }

    /// Every problem found, kept or only counted.
    pub fn total(&self) -> u64 {
        self.items.len() as u64 + self.omitted
    }
}
