//! Leaves of etcd's small buckets recognised by their contents, for when no
//! surviving tree says which bucket a leaf belongs to.
//!
//! bbolt leaves do not name their bucket: only the root bucket's leaf and the
//! branch pages above a leaf do. When those are broken (the root page, a
//! branch page, both meta pages) or the leaf sits on a freed page, the `key`
//! and `meta` buckets are still found by their shape ([`super::record`],
//! `META_KEYS`); this module does the same for `members`, `members_removed`,
//! `cluster`, `lease`, `auth`, `authUsers` and `authRoles`. Each recogniser
//! checks one element against the exact format etcd writes (the invariants are
//! written beside each check); a leaf is attributed to a bucket only when
//! every readable element of it fits that bucket and no other. A leaf that
//! fits several is left out and counted.
//!
//! Several leaves may be found for one bucket: the current one and older
//! copies on freed pages. Their entries are joined: an entry every copy
//! holding its key agrees on is taken; a key held with different values is
//! left out of the bucket and counted (nothing says which copy is newer).
//! A bucket that a trusted tree reaches (a valid meta page's root) is taken
//! from that tree alone; one found under a scanned root leaf (itself maybe an
//! older copy) counts as one more copy.

use std::collections::{BTreeMap, BTreeSet};

use crate::protowire::{Fields, Value};

use super::record::RawElement;
use super::report::BucketStatus;

/// The buckets recognised here, in the order tried.
pub const RECOGNISED: &[&[u8]] = &[
    b"members",
    b"members_removed",
    b"cluster",
    b"lease",
    b"auth",
    b"authUsers",
    b"authRoles",
];

/// Whether the element `key` → `value` is shaped like an entry of etcd's
/// bucket `bucket` (one of [`RECOGNISED`]; `false` for any other name).
pub fn fits(bucket: &[u8], key: &[u8], value: &[u8]) -> bool {
    match bucket {
        b"members" => is_member(key, value),
        b"members_removed" => member_id(key).is_some() && value == b"removed",
        b"cluster" => is_cluster_entry(key, value),
        b"lease" => is_lease(key, value),
        b"auth" => is_auth_entry(key, value),
        b"authUsers" => is_user(key, value),
        b"authRoles" => is_role(key, value),
        _ => false,
    }
}

/// What a leaf's readable elements are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Every element fits this bucket, and no other.
    Bucket(&'static [u8]),
    /// Every element fits more than one bucket.
    Ambiguous,
    /// No bucket fits them all (or there are none).
    Unknown,
}

/// The bucket whose shape every element of `readable` has. Elements that
/// are sub-buckets fit no bucket (etcd nests none).
pub fn recognise(readable: &[&RawElement<'_>]) -> Shape {
    if readable.is_empty() {
        return Shape::Unknown;
    }
    let mut fitting = RECOGNISED.iter().copied().filter(|b| {
        readable
            .iter()
            .all(|e| e.flags & crate::bolt::page::BUCKET_LEAF_FLAG == 0 && fits(b, e.key, e.value))
    });
    match (fitting.next(), fitting.next()) {
        (Some(b), None) => Shape::Bucket(b),
        (Some(_), Some(_)) => Shape::Ambiguous,
        _ => Shape::Unknown,
    }
}

/// A member ID as etcd writes it as a key: `types.ID.String()`, lower-case
/// hex without leading zeroes, 1 to 16 digits, never 0.
fn member_id(key: &[u8]) -> Option<u64> {
    let ok = !key.is_empty()
        && key.len() <= 16
        && key[0] != b'0'
        && key.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'));
    if !ok {
        return None;
    }
    u64::from_str_radix(std::str::from_utf8(key).ok()?, 16).ok()
}

/// `members`: key a member ID ([`member_id`]), value the JSON etcd marshals
/// `membership.Member` to: an object with `id` (a number, the key's ID) and
/// `peerURLs` (an array of strings), and optionally `isLearner` (a bool),
/// `name` (a string) and `clientURLs` (an array of strings); no other field.
fn is_member(key: &[u8], value: &[u8]) -> bool {
    let Some(id) = member_id(key) else {
        return false;
    };
    let Ok(serde_json::Value::Object(m)) = serde_json::from_slice::<serde_json::Value>(value)
    else {
        return false;
    };
    let strings = |v: &serde_json::Value| {
        v.as_array()
            .is_some_and(|a| a.iter().all(serde_json::Value::is_string))
    };
    m.get("id").and_then(serde_json::Value::as_u64) == Some(id)
        && m.get("peerURLs").is_some_and(strings)
        && m.iter().all(|(k, v)| match k.as_str() {
            "id" | "peerURLs" => true,
            "isLearner" => v.is_boolean(),
            "name" => v.is_string(),
            "clientURLs" => strings(v),
            _ => false,
        })
}

/// `cluster`: `clusterVersion` holds a version as `semver.Version.String()`
/// writes it for etcd's cluster version: `MAJOR.MINOR.PATCH`, decimal
/// numbers; `downgrade` the JSON of `DowngradeInfo`: an object with
/// `target-version` (a string) and `enabled` (a bool) and nothing else.
fn is_cluster_entry(key: &[u8], value: &[u8]) -> bool {
    match key {
        b"clusterVersion" => {
            let parts: Vec<&[u8]> = value.split(|c| *c == b'.').collect();
            parts.len() == 3
                && parts
                    .iter()
                    .all(|p| !p.is_empty() && p.len() <= 9 && p.iter().all(u8::is_ascii_digit))
        }
        b"downgrade" => {
            let Ok(serde_json::Value::Object(m)) =
                serde_json::from_slice::<serde_json::Value>(value)
            else {
                return false;
            };
            m.get("target-version")
                .is_some_and(serde_json::Value::is_string)
                && m.get("enabled").is_some_and(serde_json::Value::is_boolean)
                && m.len() == 2
        }
        _ => false,
    }
}

/// The fields of a protobuf message, `None` if it does not frame whole.
fn fields(value: &[u8]) -> Option<Vec<(u32, Value<'_>)>> {
    Fields::new(value).collect::<Result<Vec<_>, _>>().ok()
}

/// `lease`: key the lease ID as 8 big-endian bytes; value a
/// `leasepb.Lease`: field 1 `ID` (varint, equal to the key: a lease ID is
/// never 0, so proto3 always writes it), field 2 `TTL` and field 3
/// `RemainingTTL` (varints, not negative), each at most once, nothing else.
fn is_lease(key: &[u8], value: &[u8]) -> bool {
    let Ok(id) = <[u8; 8]>::try_from(key) else {
        return false;
    };
    let id = u64::from_be_bytes(id);
    let Some(fs) = fields(value) else {
        return false;
    };
    let mut seen = [false; 4];
    for (n, v) in &fs {
        let Value::Varint(x) = v else {
            return false;
        };
        let n = *n as usize;
        if n > 3 || seen[n] {
            return false;
        }
        seen[n] = true;
        if (n == 1 && *x != id) || (n > 1 && (*x as i64) < 0) {
            return false;
        }
    }
    id != 0 && seen[1]
}

/// `auth`: `authEnabled` is one byte, 0 or 1; `authRevision` 8 bytes (a
/// big-endian counter).
fn is_auth_entry(key: &[u8], value: &[u8]) -> bool {
    match key {
        b"authEnabled" => value == [0] || value == [1],
        b"authRevision" => value.len() == 8,
        _ => false,
    }
}

/// The name field (1, bytes, exactly once) of a user or role equals `key`,
/// which is not empty.
fn name_is_key(fs: &[(u32, Value<'_>)], key: &[u8]) -> bool {
    let mut names = fs.iter().filter(|(n, _)| *n == 1);
    !key.is_empty()
        && matches!(names.next(), Some((_, Value::Bytes(b))) if *b == key)
        && names.next().is_none()
}

/// `authUsers`: key the user name; value an `authpb.User`: field 1 `name`
/// (bytes, the key), field 2 `password` (bytes: a bcrypt hash, which starts
/// with `$`; no password is written as an absent field), field 3 `roles`
/// (strings, repeated), field 4 `options` (`UserAddOptions`: field 1
/// `no_password`, a varint 0 or 1). A user has a password or options (a
/// message of the name alone is a role's shape too). A `$` can never start
/// a role's permission (it would be field 4 of wire type 4), so a password
/// tells the two apart.
fn is_user(key: &[u8], value: &[u8]) -> bool {
    let Some(fs) = fields(value) else {
        return false;
    };
    let options_ok = |b: &[u8]| {
        fields(b).is_some_and(|o| {
            o.len() <= 1
                && o.iter()
                    .all(|(n, v)| *n == 1 && matches!(v, Value::Varint(0 | 1)))
        })
    };
    let fields_ok = fs.iter().all(|(n, v)| match (n, v) {
        (1, Value::Bytes(_)) => true,
        (2, Value::Bytes(p)) => p.first() == Some(&b'$'),
        (3, Value::Bytes(r)) => !r.is_empty() && std::str::from_utf8(r).is_ok(),
        (4, Value::Bytes(o)) => options_ok(o),
        _ => false,
    });
    let count = |f: u32| fs.iter().filter(|(n, _)| *n == f).count();
    fields_ok && name_is_key(&fs, key) && count(2) <= 1 && count(4) <= 1 && count(2) + count(4) >= 1
}

/// `authRoles`: key the role name; value an `authpb.Role`: field 1 `name`
/// (bytes, the key), field 2 `keyPermission` (repeated `Permission`: field 1
/// `permType`, a varint 0–2 (READ, WRITE, READWRITE), field 2 `key` and
/// field 3 `range_end`, bytes, each at most once).
fn is_role(key: &[u8], value: &[u8]) -> bool {
    let Some(fs) = fields(value) else {
        return false;
    };
    let permission_ok = |b: &[u8]| {
        let Some(p) = fields(b) else {
            return false;
        };
        let mut seen = [false; 4];
        p.iter().all(|(n, v)| {
            let n = *n as usize;
            let ok = match (n, v) {
                (1, Value::Varint(t)) => *t <= 2,
                (2 | 3, Value::Bytes(_)) => true,
                _ => false,
            };
            let first = ok && !seen[n];
            if ok {
                seen[n] = true;
            }
            first
        })
    };
    fs.iter().all(|(n, v)| match (n, v) {
        (1, Value::Bytes(_)) => true,
        (2, Value::Bytes(p)) => permission_ok(p),
        _ => false,
    }) && name_is_key(&fs, key)
}

/// One leaf's elements, key and value.
type LeafCopy<'a> = Vec<(&'a [u8], &'a [u8])>;
/// A bucket's entries, by key.
type Entries<'a> = BTreeMap<&'a [u8], &'a [u8]>;

/// Leaves recognised by content, by bucket, and what was left out.
#[derive(Debug, Default)]
pub struct Scanned<'a> {
    copies: BTreeMap<&'static [u8], Vec<LeafCopy<'a>>>,
    /// Leaves every readable element of which fits more than one bucket.
    pub ambiguous_leaves: u64,
}

/// What joining the copies of the recognised buckets left out.
#[derive(Debug, Clone, Default)]
pub struct LeftOut {
    /// Leaves that fit more than one bucket.
    pub ambiguous_leaves: u64,
    /// Per bucket, the keys held by copies with different values.
    pub conflicts: BTreeMap<&'static [u8], Vec<Vec<u8>>>,
}

impl<'a> Scanned<'a> {
    /// Takes an unlabelled leaf's readable elements if they have one
    /// bucket's shape; returns that shape.
    pub fn add(&mut self, readable: &[&RawElement<'a>]) -> Shape {
        let shape = recognise(readable);
        match shape {
            Shape::Bucket(b) => self
                .copies
                .entry(b)
                .or_default()
                .push(readable.iter().map(|e| (e.key, e.value)).collect()),
            Shape::Ambiguous => self.ambiguous_leaves += 1,
            Shape::Unknown => {}
        }
        shape
    }

    /// Fills `buckets` (the buckets a tree gave, with their status) with the
    /// recognised ones: a bucket a trusted tree gave (`Recovered`,
    /// `Partial`) is kept as it is; one only found (`Scanned`, under a
    /// scanned root leaf) is joined with the recognised copies; the others
    /// are made of the recognised copies alone, `Scanned`. Keys held with
    /// different values are left out.
    pub fn fill(
        self,
        buckets: &mut BTreeMap<&'static [u8], (BucketStatus, Entries<'a>)>,
    ) -> LeftOut {
        let mut left = LeftOut {
            ambiguous_leaves: self.ambiguous_leaves,
            conflicts: BTreeMap::new(),
        };
        for (bucket, mut copies) in self.copies {
            match buckets.get(bucket) {
                Some((BucketStatus::Scanned, found)) => {
                    copies.push(found.iter().map(|(k, v)| (*k, *v)).collect());
                }
                Some(_) => continue,
                None => {}
            }
            let (entries, conflicts) = join(&copies);
            if !conflicts.is_empty() {
                left.conflicts
                    .insert(bucket, conflicts.into_iter().map(<[u8]>::to_vec).collect());
            }
            buckets.insert(bucket, (BucketStatus::Scanned, entries));
        }
        left
    }
}

/// The union of `copies`' entries, without the keys that two copies hold
/// with different values; and those keys.
fn join<'a>(copies: &[LeafCopy<'a>]) -> (Entries<'a>, BTreeSet<&'a [u8]>) {
    let mut entries: Entries<'a> = BTreeMap::new();
    let mut conflicted: BTreeSet<&'a [u8]> = BTreeSet::new();
    for (k, v) in copies.iter().flatten() {
        if conflicted.contains(k) {
            continue;
        }
        match entries.get(k) {
            Some(old) if old != v => {
                entries.remove(k);
                conflicted.insert(k);
            }
            _ => {
                entries.insert(k, v);
            }
        }
    }
    (entries, conflicted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(x: u64, out: &mut Vec<u8>) {
        crate::protowire::put_varint(out, x);
    }

    fn bytes_field(n: u8, b: &[u8], out: &mut Vec<u8>) {
        out.push(n << 3 | 2);
        varint(b.len() as u64, out);
        out.extend_from_slice(b);
    }

    fn lease(id: u64, ttl: u64, remaining: u64) -> Vec<u8> {
        let mut v = Vec::new();
        for (n, x) in [(1u8, id), (2, ttl), (3, remaining)] {
            if x != 0 {
                v.push(n << 3);
                varint(x, &mut v);
            }
        }
        v
    }

    fn user(name: &[u8], password: Option<&[u8]>, roles: &[&str], no_password: bool) -> Vec<u8> {
        let mut v = Vec::new();
        bytes_field(1, name, &mut v);
        if let Some(p) = password {
            bytes_field(2, p, &mut v);
        }
        for r in roles {
            bytes_field(3, r.as_bytes(), &mut v);
        }
        if no_password {
            bytes_field(4, &[0x08, 0x01], &mut v);
        }
        v
    }

    fn role(name: &[u8], perms: &[(u64, &[u8], &[u8])]) -> Vec<u8> {
        let mut v = Vec::new();
        bytes_field(1, name, &mut v);
        for (t, k, e) in perms {
            let mut p = Vec::new();
            if *t != 0 {
                p.push(0x08);
                varint(*t, &mut p);
            }
            bytes_field(2, k, &mut p);
            if !e.is_empty() {
                bytes_field(3, e, &mut p);
            }
            bytes_field(2, &p, &mut v);
        }
        v
    }

    const HASH: &[u8] = b"$2a$10$abcdefghijklmnopqrstuuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0";

    fn el<'a>(key: &'a [u8], value: &'a [u8]) -> RawElement<'a> {
        RawElement {
            flags: 0,
            key,
            value,
        }
    }

    fn shape(pairs: &[(&[u8], &[u8])]) -> Shape {
        let els: Vec<RawElement<'_>> = pairs.iter().map(|(k, v)| el(k, v)).collect();
        let refs: Vec<&RawElement<'_>> = els.iter().collect();
        recognise(&refs)
    }

    #[test]
    fn members() {
        let v = br#"{"id":10276657743932975437,"peerURLs":["http://127.0.0.1:2380"],"name":"m1","clientURLs":["http://127.0.0.1:2379"]}"#;
        assert!(fits(b"members", b"8e9e05c52164694d", v));
        let learner = br#"{"id":1,"peerURLs":[],"isLearner":true}"#;
        assert!(fits(b"members", b"1", learner));
        // Near misses: another ID, a padded or upper-case key, the ID as a
        // string, no peerURLs, an unknown field, JSON cut short.
        assert!(!fits(b"members", b"8e9e05c52164694e", v));
        assert!(!fits(b"members", b"01", learner));
        assert!(!fits(b"members", b"8E9E05C52164694D", v));
        assert!(!fits(b"members", b"1", br#"{"id":"1","peerURLs":[]}"#));
        assert!(!fits(b"members", b"1", br#"{"id":1}"#));
        assert!(!fits(b"members", b"1", br#"{"id":1,"peerURLs":[],"x":0}"#));
        assert!(!fits(b"members", b"1", br#"{"id":1,"peerURLs":[1]}"#));
        assert!(!fits(b"members", b"8e9e05c52164694d", &v[..v.len() - 1]));
        assert!(!fits(b"members", b"0", br#"{"id":0,"peerURLs":[]}"#));
        assert!(!fits(
            b"members",
            b"10000000000000000",
            br#"{"id":0,"peerURLs":[]}"#
        ));
        assert_eq!(
            shape(&[(b"8e9e05c52164694d", v), (b"1", learner)]),
            Shape::Bucket(b"members")
        );
    }

    #[test]
    fn members_removed() {
        assert!(fits(b"members_removed", b"8e9e05c52164694d", b"removed"));
        assert!(!fits(b"members_removed", b"8e9e05c52164694d", b"removed\0"));
        assert!(!fits(b"members_removed", b"xyz", b"removed"));
        assert_eq!(
            shape(&[(b"a", b"removed"), (b"b", b"removed")]),
            Shape::Bucket(b"members_removed")
        );
    }

    #[test]
    fn cluster() {
        assert!(fits(b"cluster", b"clusterVersion", b"3.5.0"));
        assert!(fits(
            b"cluster",
            b"downgrade",
            br#"{"target-version":"","enabled":false}"#
        ));
        for bad in [&b"3.5"[..], b"3.5.0-rc", b"v3.5.0", b"3..0", b""] {
            assert!(!fits(b"cluster", b"clusterVersion", bad), "{bad:?}");
        }
        assert!(!fits(b"cluster", b"downgrade", br#"{"enabled":false}"#));
        assert!(!fits(
            b"cluster",
            b"downgrade",
            br#"{"target-version":"","enabled":false,"x":1}"#
        ));
        assert!(!fits(b"cluster", b"version", b"3.5.0"));
    }

    #[test]
    fn lease_entries() {
        let id = 0x694d_7b5e_1a2b_3c4du64;
        let v = lease(id, 60, 0);
        assert!(fits(b"lease", &id.to_be_bytes(), &v));
        assert!(fits(b"lease", &id.to_be_bytes(), &lease(id, 60, 42)));
        // Another ID, a 7- or 9-byte key, no ID, a cut value, a string
        // field, a field past 3, ID 0, a repeated field.
        assert!(!fits(b"lease", &(id + 1).to_be_bytes(), &v));
        assert!(!fits(b"lease", &id.to_be_bytes()[1..], &v));
        let mut nine = id.to_be_bytes().to_vec();
        nine.push(0);
        assert!(!fits(b"lease", &nine, &v));
        assert!(!fits(b"lease", &id.to_be_bytes(), &lease(0, 60, 0)));
        assert!(!fits(b"lease", &id.to_be_bytes(), &v[..v.len() - 1]));
        let mut s = v.clone();
        bytes_field(2, b"x", &mut s);
        assert!(!fits(b"lease", &id.to_be_bytes(), &s));
        let mut f4 = v.clone();
        f4.extend_from_slice(&[0x20, 1]);
        assert!(!fits(b"lease", &id.to_be_bytes(), &f4));
        assert!(!fits(b"lease", &[0; 8], &[0x08, 0x00]));
        let mut twice = v.clone();
        twice.extend_from_slice(&[0x10, 1]);
        assert!(!fits(b"lease", &id.to_be_bytes(), &twice));
        // The ID of a negative int64, as proto3 writes it (ten bytes).
        let neg = 0x8000_0000_0000_0001u64;
        assert!(fits(b"lease", &neg.to_be_bytes(), &lease(neg, 5, 0)));
    }

    #[test]
    fn auth_entries() {
        assert!(fits(b"auth", b"authEnabled", &[1]));
        assert!(fits(b"auth", b"authEnabled", &[0]));
        assert!(fits(b"auth", b"authRevision", &7u64.to_be_bytes()));
        assert!(!fits(b"auth", b"authEnabled", &[2]));
        assert!(!fits(b"auth", b"authEnabled", &[0, 0]));
        assert!(!fits(b"auth", b"authRevision", &[0; 7]));
        assert!(!fits(b"auth", b"authOther", &[1]));
        assert_eq!(
            shape(&[
                (b"authEnabled", &[0]),
                (b"authRevision", &3u64.to_be_bytes())
            ]),
            Shape::Bucket(b"auth")
        );
    }

    #[test]
    fn users() {
        let u = user(b"alice", Some(HASH), &["reader"], false);
        assert!(fits(b"authUsers", b"alice", &u));
        assert!(fits(b"authUsers", b"bob", &user(b"bob", None, &[], true)));
        // The name is not the key; no password nor options (a role's
        // shape); a password that is not a hash; two names; a cut value;
        // options with another field; an empty name.
        assert!(!fits(b"authUsers", b"alicf", &u));
        assert!(!fits(
            b"authUsers",
            b"bob",
            &user(b"bob", None, &["r"], false)
        ));
        assert!(!fits(
            b"authUsers",
            b"bob",
            &user(b"bob", Some(b"pw"), &[], false)
        ));
        let mut two = u.clone();
        bytes_field(1, b"alice", &mut two);
        assert!(!fits(b"authUsers", b"alice", &two));
        assert!(!fits(b"authUsers", b"alice", &u[..u.len() - 1]));
        let mut odd = user(b"bob", None, &[], false);
        bytes_field(4, &[0x10, 0x01], &mut odd);
        assert!(!fits(b"authUsers", b"bob", &odd));
        assert!(!fits(b"authUsers", b"", &user(b"", Some(HASH), &[], false)));
        // A user is never a role, and the other way round.
        assert!(!fits(b"authRoles", b"alice", &u));
        let r = role(b"reader", &[(0, b"/a", b"/b")]);
        assert!(!fits(b"authUsers", b"reader", &r));
        assert_eq!(shape(&[(b"alice", &u)]), Shape::Bucket(b"authUsers"));
    }

    #[test]
    fn roles() {
        let r = role(b"reader", &[(0, b"/a", b"/b"), (2, b"k", b"")]);
        assert!(fits(b"authRoles", b"reader", &r));
        assert!(fits(b"authRoles", b"root", &role(b"root", &[])));
        // Another name; a permission type past READWRITE; a permission with
        // an unknown field; a field past 2; a cut value.
        assert!(!fits(b"authRoles", b"readers", &r));
        assert!(!fits(b"authRoles", b"x", &role(b"x", &[(3, b"k", b"")])));
        let mut odd = Vec::new();
        bytes_field(1, b"x", &mut odd);
        bytes_field(2, &[0x22, 0x00], &mut odd);
        assert!(!fits(b"authRoles", b"x", &odd));
        let mut f3 = role(b"x", &[]);
        bytes_field(3, b"y", &mut f3);
        assert!(!fits(b"authRoles", b"x", &f3));
        assert!(!fits(b"authRoles", b"reader", &r[..r.len() - 1]));
        assert_eq!(shape(&[(b"reader", &r)]), Shape::Bucket(b"authRoles"));
        // A role of its name alone is a role: a user always has a password
        // or options.
        let bare = role(b"root", &[]);
        assert_eq!(shape(&[(b"root", &bare)]), Shape::Bucket(b"authRoles"));
    }

    #[test]
    fn mixed_unknown_and_sub_buckets() {
        let id = 5u64;
        let l = lease(id, 60, 0);
        assert_eq!(
            shape(&[(&id.to_be_bytes(), &l), (b"a", b"removed")]),
            Shape::Unknown
        );
        assert_eq!(shape(&[]), Shape::Unknown);
        let mut sub = el(b"authEnabled", &[1]);
        sub.flags = crate::bolt::page::BUCKET_LEAF_FLAG;
        assert_eq!(recognise(&[&sub]), Shape::Unknown);
    }

    #[test]
    fn copies_join_and_conflicts_are_left_out() {
        let mut s = Scanned::default();
        let (a, b) = (lease(1, 60, 0), lease(2, 60, 0));
        let b2 = lease(2, 60, 30);
        let c = lease(3, 60, 0);
        let (k1, k2, k3) = (1u64.to_be_bytes(), 2u64.to_be_bytes(), 3u64.to_be_bytes());
        let old = [el(&k1, &a), el(&k2, &b)];
        let new = [el(&k1, &a), el(&k2, &b2), el(&k3, &c)];
        assert_eq!(
            s.add(&old.iter().collect::<Vec<_>>()),
            Shape::Bucket(b"lease")
        );
        s.add(&new.iter().collect::<Vec<_>>());
        let bare = role(b"r", &[]);
        let amb = [el(b"r", &bare)];
        // A name-only message with a user's key is a role's shape alone.
        s.add(&amb.iter().collect::<Vec<_>>());
        let mut buckets = BTreeMap::new();
        let members: BTreeMap<&[u8], &[u8]> = BTreeMap::new();
        buckets.insert(&b"members"[..], (BucketStatus::Recovered, members));
        let left = s.fill(&mut buckets);
        let (status, lease) = &buckets[&b"lease"[..]];
        assert_eq!(*status, BucketStatus::Scanned);
        assert_eq!(
            lease.keys().copied().collect::<Vec<_>>(),
            vec![&k1[..], &k3[..]]
        );
        assert_eq!(left.conflicts.get(&b"lease"[..]), Some(&vec![k2.to_vec()]));
        assert!(buckets.contains_key(&b"authRoles"[..]));
        assert_eq!(buckets[&b"members"[..]].0, BucketStatus::Recovered);
    }

    #[test]
    fn trusted_tree_wins_scanned_root_joins() {
        let k = 1u64.to_be_bytes();
        let (v1, v2) = (lease(1, 60, 0), lease(1, 90, 0));
        let k2 = 2u64.to_be_bytes();
        let v3 = lease(2, 60, 0);
        let els = [el(&k, &v1), el(&k2, &v3)];
        for (status, want) in [
            (BucketStatus::Recovered, 1usize),
            (BucketStatus::Scanned, 1usize),
        ] {
            let mut s = Scanned::default();
            s.add(&els.iter().collect::<Vec<_>>());
            let mut tree: BTreeMap<&[u8], &[u8]> = BTreeMap::new();
            tree.insert(&k, &v2);
            let mut buckets = BTreeMap::new();
            buckets.insert(&b"lease"[..], (status, tree));
            let left = s.fill(&mut buckets);
            let got = &buckets[&b"lease"[..]].1;
            assert_eq!(got.len(), want);
            if status == BucketStatus::Recovered {
                assert_eq!(got[&k[..]], &v2[..]);
            } else {
                // Key 1 conflicts: left out; key 2 joins.
                assert!(got.contains_key(&k2[..]));
                assert_eq!(left.conflicts[&b"lease"[..]], vec![k.to_vec()]);
            }
        }
    }
}
