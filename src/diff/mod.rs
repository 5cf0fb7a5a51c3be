//! What changed between two states of a keyspace: two snapshots, or two
//! revisions inside one.
//!
//! Why it exists: "what changed since last night's backup?" otherwise means
//! restoring two clusters and diffing their YAML by hand. The pieces, each
//! small: [`state`] collects one side's live keys, [`keys`] merges the two
//! sides key by key, [`object`] names and counts changed objects, [`noise`]
//! drops what the server rewrites on its own, [`fields`] renders field-level
//! differences (unified YAML, RFC 6902 patch), [`secret`] says which Secret
//! keys changed without their values, [`compare`] puts them together for
//! one changed key, and [`run`] does a whole diff: both sides read beside
//! `verify`'s checks, then every changed key compared, chunk by chunk.

pub mod compare;
pub mod fields;
pub mod keys;
pub mod noise;
pub mod object;
pub mod run;
pub mod secret;
pub mod state;
