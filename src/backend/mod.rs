//! etcd's backend: the buckets etcd keeps in its bbolt file and what they hold.

pub mod layout;
pub mod meta;
pub mod status;

/// Bucket names etcd 3.4–3.6 use (all top-level).
pub const KEY: &[u8] = b"key";
pub const META: &[u8] = b"meta";
pub const LEASE: &[u8] = b"lease";
pub const ALARM: &[u8] = b"alarm";
pub const CLUSTER: &[u8] = b"cluster";
pub const MEMBERS: &[u8] = b"members";
pub const MEMBERS_REMOVED: &[u8] = b"members_removed";
pub const AUTH: &[u8] = b"auth";
pub const AUTH_USERS: &[u8] = b"authUsers";
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
