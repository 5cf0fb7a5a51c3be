//! Snapshots read where they live: `s3://bucket/key`, `gs://bucket/key`,
//! `az://container/key` and `http(s)://…` (presigned URLs included) as
//! sources wherever a command reads a whole snapshot file.
//!
//! Backups usually sit in object storage; copying one down by hand before
//! every `verify` is a step people skip. This module streams the object once
//! into a private spool file (created exclusively, 0600, in `$TMPDIR` or the
//! configured spool directory) and hands that file to [`crate::input`], which
//! opens it exactly as a local file (memory map, compression detection, the
//! sha256 trailer rule): what a command prints is what it prints for the same
//! bytes on disk. Memory stays bounded: chunks go to the spool as they arrive,
//! hashed on the way. The spool's name is removed as soon as the transfer
//! ends, on success, on error and on Ctrl-C (the open descriptor keeps the
//! bytes for the reader).
//!
//! Throttling (429, 503 SlowDown), server errors and connections refused
//! are tried again a bounded number of times with exponential backoff, then
//! reported; a body cut mid-way is resumed where it stopped, by a Range
//! request that must answer with the ETag of the first.
//!
//! The object is pinned at open: the ETag, version, size and modification
//! time of the GET that streams it are compared with a HEAD once the last
//! byte arrived; an object replaced meanwhile is refused, as is a body
//! shorter than announced. The client is Apache Arrow's `object_store`
//! (its S3, GCS and Azure stores, each with its cloud's standard settings
//! from the environment, and its HTTP store), on a current-thread tokio
//! runtime; signing and TLS use `ring`.
//! Errors name the URL with any query string (a presigned URL's signature)
//! and user info replaced, and never carry credentials.
//!
//! A URL ending in `/` names a whole prefix ([`list`]: its snapshot
//! objects, listed through every page).
//!
//! A lookup with a key index reads only the pages it needs ([`ranged`]);
//! `verify` walks the pages of an object while it streams in ([`growing`]).
//! Writing is [`upload`]: a multipart upload that becomes an object only
//! when its writer says the bytes checked out (`save --to`).

use std::path::Path;

#[cfg(feature = "remote")]
mod fetch;
#[cfg(feature = "remote")]
pub mod growing;
pub mod list;
#[cfg(feature = "remote")]
pub mod named;
#[cfg(feature = "remote")]
pub mod ranged;
#[cfg(feature = "remote")]
mod resumable;
#[cfg(feature = "remote")]
mod stores;
#[cfg(feature = "remote")]
pub mod upload;
#[cfg(feature = "remote")]
pub use fetch::{Options, RemoteError, Spooled, configure, fetch, fetch_beside};
#[cfg(feature = "remote")]
pub use growing::Growing;

/// What identifies the bytes of a remote object as read: the ETag and
/// version it was pinned to (either may be missing) and its size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    /// The ETag, if the store gave one.
    pub etag: Option<String>,
    /// The version, if the store keeps versions.
    pub version: Option<String>,
    /// The object's size in bytes (as stored, before any decompression).
    pub size: u64,
}

/// The URL schemes read, as they start a source.
const SCHEMES: [&str; 5] = ["s3://", "gs://", "az://", "http://", "https://"];

/// Whether `arg` names a remote source (`s3://`, `gs://`, `az://`,
/// `http://`, `https://`) rather than a local path.
pub fn is_remote(arg: &Path) -> bool {
    arg.to_str().is_some_and(|s| {
        let lower = s.get(..8).unwrap_or(s).to_ascii_lowercase();
        SCHEMES.iter().any(|scheme| lower.starts_with(scheme))
    })
}

/// How outputs name a snapshot argument: a remote source's redacted URL, a
/// local path as it was given.
pub fn display_name(arg: &Path) -> String {
    match arg.to_str() {
        Some(url) if is_remote(arg) => redact(url),
        _ => arg.display().to_string(),
    }
}

/// The URL as errors and outputs show it: the query string (a presigned
/// URL's signature and credential scope) and any user info replaced.
pub fn redact(url: &str) -> String {
    let (base, had_query) = match url.split_once('?') {
        Some((b, _)) => (b, true),
        None => (url, false),
    };
    let base = match base.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = match rest.find('/') {
                Some(i) => rest.split_at(i),
                None => (rest, ""),
            };
            match authority.rsplit_once('@') {
                Some((_, host)) => format!("{scheme}://REDACTED@{host}{path}"),
                None => base.to_string(),
            }
        }
        None => base.to_string(),
    };
    if had_query {
        format!("{base}?REDACTED")
    } else {
        base
    }
}

/// An error text with the raw URL's query (a presigned signature) removed.
#[cfg_attr(not(feature = "remote"), allow(dead_code))]
pub(crate) fn scrub(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    // Any `?query` that follows a URL in the text is replaced up to the next
    // space or quote.
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i);
        out.push_str(head);
        let end = tail
            .find(|c: char| c.is_whitespace() || c == '"' || c == '\'' || c == ')' || c == ',')
            .unwrap_or(tail.len());
        let (url, after) = tail.split_at(end);
        match url.split_once('?') {
            Some((b, _)) => {
                out.push_str(b);
                out.push_str("?REDACTED");
            }
            None => out.push_str(url),
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_recognised_and_redacted() {
        assert!(is_remote(Path::new("s3://b/k")));
        assert!(is_remote(Path::new("HTTPS://h/k")));
        assert!(is_remote(Path::new("gs://b/k")));
        assert!(is_remote(Path::new("az://c/k")));
        assert!(!is_remote(Path::new("gs:/b/k")));
        assert!(!is_remote(Path::new("snap.db")));
        assert!(!is_remote(Path::new("./s3://x")));
        assert_eq!(
            redact("https://h/b/k.db?X-Amz-Signature=abc&X-Amz-Credential=AK"),
            "https://h/b/k.db?REDACTED"
        );
        assert_eq!(redact("https://u:p@h/k"), "https://REDACTED@h/k");
        assert_eq!(redact("s3://b/k"), "s3://b/k");
        assert_eq!(
            scrub("GET http://h/k?sig=1 failed"),
            "GET http://h/k?REDACTED failed"
        );
    }
}
