//! The backup catalog: a local redb database that remembers each snapshot a
//! backup job checked — its sha256, `status` figures, cluster and members,
//! live objects per resource and per namespace, the verify result, labels
//! and when it was added — so that the next backup can be compared with the
//! ones before it.
//!
//! Why it exists: a snapshot that verifies can still be wrong (half the
//! objects gone, an older cluster state, another cluster); only a memory of
//! earlier backups shows it. The pieces: [`entry`] (what an entry holds —
//! figures and names, never values — and how it is read from a snapshot),
//! [`store`] (the redb file: schema key, lock wait, damage reported, never
//! recreated), [`trend`] (the `catalog check` rules).

pub mod checked;
pub mod entry;
pub mod report;
pub mod store;
pub mod trend;
