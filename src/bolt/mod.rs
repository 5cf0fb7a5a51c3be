//! Our own bbolt: a reader and checker over a mapped file, and a writer of
//! fresh files ([`write`](mod@write)).
//!
//! bbolt-rs cannot read etcd's files (docs/design/architecture.md says why), so this is our
//! own: zero-copy, every offset bounds-checked, and one walk ([`walk::Walker`])
//! shared by readers and checkers so that what we read is exactly what we check.
//! Reading never writes: the writer never edits a file, it streams sorted
//! buckets into a new one (what `restore` writes a member's db with).

pub mod check;
pub mod db;
pub mod meta;
pub mod page;
pub mod read;
pub mod walk;
pub mod write;

pub use db::{Db, OpenError, PageFault};
pub use page::{BucketHeader, LeafElement};
pub use walk::{Stats, Visitor, Walker};
