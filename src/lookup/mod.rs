//! Finding one object, or one key's history, in a snapshot: which keys the
//! command line names ([`Wanted`]), where their records are read from (a key
//! index beside the snapshot or in the user's cache, one made by a scan and
//! then cached, or the scan itself: [`finder`]), which revision of them is
//! the answer ([`choose()`]), and what of a decoded object is shown
//! ([`prepare()`]: redaction, `resourceVersion`, `--for-apply`).
//!
//! These are decisions of the library, not of a command: `get`, `history` and
//! `put-back` make them alike, so they live here once, with typed errors.
//!
//! Floor 7 (`docs/design/architecture.md`): it builds on `mvcc` (the
//! keyspace and the key index format), `kube` (resources, redaction,
//! decryption; floor 6), `input` and `durable` (the cached index is written
//! atomically, its directory fsynced). Above `kube` is the capabilities'
//! floor, where it sits as the object-lookup capability; none of the others
//! imports it, and it imports none of them: only `cli` calls it.

pub mod all;
pub mod choose;
pub mod finder;
pub mod history;
pub mod list;
pub mod prepare;
#[cfg(feature = "remote")]
pub mod ranged;

pub use choose::{NotChosen, SeveralKeys, Wanted, choose, single_key};
pub use finder::{Finder, IndexEvent, Select};
pub use prepare::{Prepare, ResourceCheck, UnknownResource, decrypted_encoding, prepare};
