//! Which etcd release a restore writes for, and what crossing releases needs.
//!
//! A snapshot's release is its storage version (`meta/storageVersion`, written
//! by 3.6+ servers a few seconds after the cluster runs that release); without
//! one, a cluster version (`cluster/clusterVersion`) of 3.6 or later (a
//! snapshot taken in those seconds); else a `term` means 3.5 storage, and
//! neither means 3.4. The default target is that
//! release. etcd moves one minor release at a time, up or down, so a target
//! more than one minor release away from the snapshot is refused before
//! anything is written. Going down, the storage is rewritten as the lower
//! release expects (what `etcdutl migrate --target-version` does to
//! `storageVersion`, plus the cluster version and downgrade state a finished
//! `etcdctl downgrade` leaves): see [`downgrade_edits`].

/// Which etcd line the files are for. 3.4's walpb.Snapshot has no ConfState;
/// 3.7 (raft v3.7, protobuf-go) leaves ConfChange.id and ConfState.auto_leave
/// unset where 3.5/3.6 (gogo) write zeros.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    /// etcd 3.4.
    V34,
    /// etcd 3.5.
    V35,
    /// etcd 3.6.
    V36,
    /// etcd 3.7.
    V37,
}

impl Target {
    /// Every release, oldest first.
    pub const ALL: [Target; 4] = [Target::V34, Target::V35, Target::V36, Target::V37];

    /// The release as `3.N`.
    pub fn line(self) -> &'static str {
        match self {
            Target::V34 => "3.4",
            Target::V35 => "3.5",
            Target::V36 => "3.6",
            Target::V37 => "3.7",
        }
    }

    /// The release of `3.N`, if known.
    pub fn parse(line: &str) -> Option<Target> {
        Target::ALL.into_iter().find(|t| t.line() == line)
    }

    fn minor(self) -> u32 {
        self as u32 + 4
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
/// Why no release can be written for.
pub enum TargetError {
    #[error(
        "the snapshot's storage version {0:?} is a release this tool does not know (3.4 to 3.7); \
         give --target-version to say which release to write for"
    )]
    /// The storage version is not a known release.
    Unknown(String),
    #[error(
        "a {snapshot} snapshot cannot be restored for etcd {target}: etcd moves one minor release at \
         a time ({}), so restore for {step} and move on from there as etcd does",
        if .target < .snapshot { "downgrades" } else { "upgrades" }
    )]
    /// The release asked for is more than one minor release away.
    TooFar {
        /// The snapshot's release.
        snapshot: &'static str,
        /// The release asked for.
        target: &'static str,
        /// The release to restore for first.
        step: &'static str,
    },
}

/// The release whose storage a snapshot holds (see the module comment).
pub fn snapshot_release(
    storage_version: Option<&str>,
    cluster_version: Option<&str>,
    has_term: bool,
) -> Result<Target, TargetError> {
    let line = |v: &str| v.split('.').take(2).collect::<Vec<_>>().join(".");
    match storage_version {
        Some(v) => Target::parse(&line(v)).ok_or_else(|| TargetError::Unknown(v.to_string())),
        None => match cluster_version.and_then(|v| Target::parse(&line(v))) {
            Some(t) if t >= Target::V36 => Ok(t),
            _ if has_term => Ok(Target::V35),
            _ => Ok(Target::V34),
        },
    }
}

/// `cluster/clusterVersion` of a snapshot, if it has a readable one.
pub fn cluster_version(db: &crate::bolt::Db<'_>) -> Option<String> {
    use crate::bolt::read;
    let cluster = read::buckets(db)
        .ok()?
        .into_iter()
        .find(|b| b.name == b"cluster")?;
    let mut found = None;
    read::for_each(db, &cluster, |e| {
        if e.key == b"clusterVersion" {
            found = std::str::from_utf8(e.value).ok().map(str::to_string);
            return std::ops::ControlFlow::Break(());
        }
        std::ops::ControlFlow::Continue(())
    })
    .ok()?;
    found
}

/// The target for a snapshot of release `snapshot`: `requested` if etcd can
/// get there (one minor release up or down), else an error; by default the
/// snapshot's own release (3.4 snapshots are restored for 3.5, as before).
pub fn choose(snapshot: Target, requested: Option<Target>) -> Result<Target, TargetError> {
    let Some(t) = requested else {
        return Ok(snapshot.max(Target::V35));
    };
    if t.minor().abs_diff(snapshot.minor()) > 1 {
        let step = if t < snapshot {
            Target::ALL[snapshot as usize - 1]
        } else {
            Target::ALL[snapshot as usize + 1]
        };
        return Err(TargetError::TooFar {
            snapshot: snapshot.line(),
            target: t.line(),
            step: step.line(),
        });
    }
    Ok(t)
}

/// One change to a bucket entry (`None` deletes the key).
pub type Edit = (&'static [u8], &'static [u8], Option<String>);

/// What a downgrade from `snapshot` to `target` changes in the db:
/// `meta/storageVersion` set to `<target>.0` (3.6+) or deleted (3.5, 3.4);
/// `cluster/clusterVersion` lowered to `<target>.0` when it is above (a lower
/// release panics "invalid downgrade" on a higher one); `cluster/downgrade`
/// removed (the downgrade it describes is what this restore completes).
pub fn downgrade_edits(
    snapshot: Target,
    target: Target,
    cluster_version: Option<&[u8]>,
) -> Vec<Edit> {
    let mut edits = Vec::new();
    if target >= snapshot {
        return edits;
    }
    let version = format!("{}.0", target.line());
    edits.push((
        &b"meta"[..],
        &b"storageVersion"[..],
        (target >= Target::V36).then(|| version.clone()),
    ));
    let above = cluster_version
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| {
            let mut it = v.split('.').map(|p| p.parse::<u32>().ok());
            Some((it.next()??, it.next()??))
        })
        .is_some_and(|(maj, min)| (maj, min) > (3, target.minor()));
    if above {
        edits.push((&b"cluster"[..], &b"clusterVersion"[..], Some(version)));
    }
    edits.push((&b"cluster"[..], &b"downgrade"[..], None));
    edits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_of_a_snapshot() {
        assert_eq!(snapshot_release(Some("3.6.0"), None, true), Ok(Target::V36));
        assert_eq!(snapshot_release(Some("3.7.0"), None, true), Ok(Target::V37));
        assert_eq!(snapshot_release(None, Some("3.5.0"), true), Ok(Target::V35));
        assert_eq!(snapshot_release(None, None, false), Ok(Target::V34));
        // Taken before the server wrote its storage version.
        assert_eq!(snapshot_release(None, Some("3.6.0"), true), Ok(Target::V36));
        assert_eq!(snapshot_release(None, Some("3.9.0"), true), Ok(Target::V35));
        assert!(snapshot_release(Some("3.8.0"), None, true).is_err());
    }

    #[test]
    fn one_minor_release_at_a_time() {
        use Target::*;
        assert_eq!(choose(V37, None), Ok(V37));
        assert_eq!(choose(V34, None), Ok(V35));
        assert_eq!(choose(V36, Some(V35)), Ok(V35));
        assert_eq!(choose(V35, Some(V36)), Ok(V36));
        assert_eq!(choose(V37, Some(V36)), Ok(V36));
        let e = choose(V37, Some(V35)).unwrap_err().to_string();
        assert!(e.contains("restore for 3.6"), "{e}");
        assert!(choose(V36, Some(V34)).is_err());
        assert!(choose(V35, Some(V37)).is_err());
    }

    #[test]
    fn downgrade_rewrites_the_version_markers() {
        use Target::*;
        assert!(downgrade_edits(V36, V36, Some(b"3.6.0")).is_empty());
        let e = downgrade_edits(V36, V35, Some(b"3.6.0"));
        assert_eq!(e[0], (&b"meta"[..], &b"storageVersion"[..], None));
        assert_eq!(e[1].2.as_deref(), Some("3.5.0"));
        let e = downgrade_edits(V37, V36, Some(b"3.6.0"));
        assert_eq!(e[0].2.as_deref(), Some("3.6.0"));
        assert_eq!(e.len(), 2, "clusterVersion already 3.6 stays");
    }
}
