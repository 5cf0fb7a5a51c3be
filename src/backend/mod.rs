//! etcd's backend: the buckets etcd keeps in its bbolt file and what they hold.

pub mod layout;
pub mod meta;
pub mod status;

/// Bucket names etcd 3.4–3.6 use (all top-level).
pub const KEY: &[u8] = b"key";
/// The bucket of etcd's own records (consistent index, term, compaction, storage version).
pub const META: &[u8] = b"meta";
/// The bucket of leases (ID to lease record).
pub const LEASE: &[u8] = b"lease";
/// The bucket of raised alarms (NOSPACE, CORRUPT).
pub const ALARM: &[u8] = b"alarm";
/// The bucket of cluster-wide records (cluster version, downgrade).
pub const CLUSTER: &[u8] = b"cluster";
/// The bucket of members (ID to name and URLs).
pub const MEMBERS: &[u8] = b"members";
/// The bucket of removed member IDs.
pub const MEMBERS_REMOVED: &[u8] = b"members_removed";
/// The bucket of the auth switch and revision.
pub const AUTH: &[u8] = b"auth";
/// The bucket of auth users.
pub const AUTH_USERS: &[u8] = b"authUsers";
/// The bucket of auth roles.
pub const AUTH_ROLES: &[u8] = b"authRoles";

/// Buckets without which the file is not an etcd v3 backend.
pub const REQUIRED_BUCKETS: &[&[u8]] = &[KEY, META];
/// Buckets every etcd 3.4+ server creates at start; their absence is noted.
pub const USUAL_BUCKETS: &[&[u8]] = &[
    ALARM,
    AUTH,
    AUTH_ROLES,
    AUTH_USERS,
    CLUSTER,
    LEASE,
    MEMBERS,
    MEMBERS_REMOVED,
];
