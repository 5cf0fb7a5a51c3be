//! `history`'s report: every revision of one key that the snapshot still
//! holds, and with an EncryptionConfiguration what each encrypted value
//! decrypts to (or why it does not).

use serde::Serialize;

use super::choose::{SeveralKeys, single_key};
use super::prepare::decrypted_encoding;
use crate::kube::decrypt::Decryptor;
use crate::kube::value::{Encoding, detect};
use crate::mvcc::keyspace::{Record, RecordInfo};
use crate::mvcc::revision::Revision;

/// One key's history.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct History {
    /// The key (lossy UTF-8).
    pub key: String,
    /// The key's bytes (for printing, escaped).
    #[serde(skip)]
    pub raw_key: Vec<u8>,
    /// The revision history before which was compacted away, if any.
    pub compact_revision: Option<i64>,
    /// The revisions held, oldest first.
    pub revisions: Vec<HistoryRevision>,
}

/// A revision, and with a config what its value decrypts to.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryRevision {
    /// What the record says.
    #[serde(flatten)]
    pub info: RecordInfo,
    /// The encoding of the decrypted value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plaintext: Option<&'static str>,
    /// Why an encrypted value did not decrypt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decrypt_error: Option<String>,
    /// The revision, main and sub.
    #[serde(skip)]
    pub revision: Revision,
    /// The value's encoding as a table shows it: `-` for a deletion, an
    /// encrypted one as `provider>plaintext`, or `enc:provider!` when it did
    /// not decrypt.
    #[serde(skip)]
    pub encoding: String,
    /// In a salvaged view: where the record came from (`tree`, `page N`,
    /// or a source's name), set by the caller.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
}

/// What [`history`] found.
#[derive(Debug, Clone)]
pub struct HistoryReport {
    /// Why values did not decrypt, in revision order.
    pub decrypt_errors: Vec<String>,
    /// The key's history; `None` when no record was given; an error when
    /// they are of several keys.
    pub history: Result<Option<History>, SeveralKeys>,
}

/// The history of the key `records` (one key's, in revision order) hold.
pub fn history(
    records: &[Record<'_>],
    decryptor: &Decryptor,
    compact_revision: Option<i64>,
) -> HistoryReport {
    let decrypted: Vec<(Option<&'static str>, Option<String>)> = records
        .iter()
        .map(|r| {
            if r.tombstone {
                (None, None)
            } else {
                decrypted_encoding(decryptor, r.kv.key, r.kv.value)
            }
        })
        .collect();
    let decrypt_errors = decrypted.iter().filter_map(|d| d.1.clone()).collect();
    let history = single_key(records).map(|key| {
        key.map(|key| History {
            key: String::from_utf8_lossy(key).into_owned(),
            raw_key: key.to_vec(),
            compact_revision,
            revisions: records
                .iter()
                .zip(decrypted)
                .map(|(r, d)| revision(r, d))
                .collect(),
        })
    });
    HistoryReport {
        decrypt_errors,
        history,
    }
}

fn revision(r: &Record<'_>, d: (Option<&'static str>, Option<String>)) -> HistoryRevision {
    let encoding = match (r.tombstone, detect(r.kv.value), &d) {
        (true, ..) => "-".into(),
        (_, Encoding::Encrypted { provider, .. }, (Some(plain), _)) => {
            format!("{provider}>{plain}")
        }
        (_, Encoding::Encrypted { provider, .. }, (None, Some(_))) => {
            format!("enc:{provider}!")
        }
        (_, e, _) => e.name().into(),
    };
    HistoryRevision {
        info: RecordInfo::from(r),
        plaintext: d.0,
        decrypt_error: d.1,
        revision: r.revision,
        encoding,
        from: None,
    }
}
