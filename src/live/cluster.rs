//! Every member of a cluster reached, and `verify-cluster`: whether a
//! cluster restored from a snapshot came up as planned.
//!
//! Members are found from the endpoints given (each dialed; a Status names
//! the member behind it) and the member list one of them returns; a member
//! no given endpoint reaches is dialed at its advertised client URLs. Each
//! check names the member and the figures when it fails.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::connect::{Live, LiveError, Member};

/// One member of the member list and, when reached, its connection.
pub struct MemberState {
    /// The member ID.
    pub id: u64,
    /// Its name (empty until it started).
    pub name: String,
    /// Its peer URLs.
    pub peer_urls: Vec<String>,
    /// Its client URLs.
    pub client_urls: Vec<String>,
    /// Whether it is a learner.
    pub is_learner: bool,
    /// Its connection, or why it could not be reached.
    pub conn: Result<Member, String>,
}

impl MemberState {
    /// `name` (or the hex ID of a member that has not started yet).
    pub fn label(&self) -> String {
        if self.name.is_empty() {
            format!("{:x} (not started)", self.id)
        } else {
            self.name.clone()
        }
    }
}

/// The cluster as reached.
pub struct Reached {
    /// The endpoint whose member list is used.
    pub listed_by: String,
    /// The cluster ID that member answers with.
    pub cluster_id: u64,
    /// Every member of its member list.
    pub members: Vec<MemberState>,
    /// Given endpoints that answered as a member not in that list.
    pub strays: Vec<Member>,
}

/// Dials every endpoint given, reads the member list from the first that
/// answers, and reaches every listed member.
pub fn reach(live: &Live) -> Result<Reached, LiveError> {
    let mut dialed: Vec<Member> = Vec::new();
    let mut first_err = None;
    for e in &live.spec.endpoints {
        match live.connect(e) {
            Ok(m) => dialed.push(m),
            Err(err) => {
                if first_err.is_none() {
                    first_err = Some(err);
                }
            }
        }
    }
    let Some(lister) = dialed.first() else {
        return Err(first_err.unwrap_or(LiveError::NoEndpoint));
    };
    let listed_by = lister.endpoint.clone();
    let cluster_id = lister.cluster_id();
    let mut c = lister.client.clone();
    let list = live.unary(lister, "MemberList", async move { c.member_list().await })?;
    let mut members = Vec::new();
    for lm in list.members() {
        let conn = match dialed.iter().position(|d| d.id() == lm.id()) {
            Some(i) => Ok(dialed.remove(i)),
            None => {
                let mut errs = Vec::new();
                let mut got = None;
                for u in lm.client_urls() {
                    match live.connect(u) {
                        Ok(m) => {
                            got = Some(m);
                            break;
                        }
                        Err(e) => errs.push(e.to_string()),
                    }
                }
                match got {
                    Some(m) => Ok(m),
                    None if errs.is_empty() => Err("it advertises no client URL".to_string()),
                    None => Err(errs.join("; ")),
                }
            }
        };
        members.push(MemberState {
            id: lm.id(),
            name: lm.name().to_string(),
            peer_urls: lm.peer_urls().to_vec(),
            client_urls: lm.client_urls().to_vec(),
            is_learner: lm.is_learner(),
            conn,
        });
    }
    members.sort_by(|a, b| (&a.name, a.id).cmp(&(&b.name, b.id)));
    Ok(Reached {
        listed_by,
        cluster_id,
        members,
        strays: dialed,
    })
}

/// `name=url,name=url` as etcd's `--initial-cluster` (a name may repeat,
/// one URL each).
pub fn parse_initial_cluster(s: &str) -> Result<BTreeMap<String, BTreeSet<String>>, String> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((name, url)) = part.split_once('=') else {
            return Err(format!("{part:?} is not NAME=PEER_URL"));
        };
        if name.is_empty() || url.is_empty() {
            return Err(format!("{part:?} is not NAME=PEER_URL"));
        }
        out.entry(name.to_string())
            .or_default()
            .insert(url.to_string());
    }
    if out.is_empty() {
        return Err("no member in --initial-cluster".into());
    }
    Ok(out)
}

/// The verdict of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// The check passed.
    Pass,
    /// The check failed.
    Fail,
    /// Could not be told (a member unreachable, a revision compacted away).
    Unknown,
    /// Not asked for.
    Skipped,
}

/// One check about one member (or the whole cluster).
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// The check's name (`reachable`, `one-leader`, `hashkv` …).
    pub check: &'static str,
    /// The member it is about (none: the whole cluster).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    /// Its outcome.
    pub verdict: Verdict,
    /// What was seen.
    pub detail: String,
}

/// Exit code of a set of findings: 0 all pass, 1 a failure, 2 only things
/// that could not be told.
pub fn exit_of(findings: &[Finding]) -> u8 {
    if findings.iter().any(|f| f.verdict == Verdict::Fail) {
        1
    } else if findings.iter().any(|f| f.verdict == Verdict::Unknown) {
        2
    } else {
        0
    }
}

/// Member HashKV at `rev` compared with the snapshot's (computed offline for
/// the member's release by `offline`).
pub fn hash_finding(
    live: &Live,
    check: &'static str,
    label: &str,
    m: &Member,
    rev: i64,
    offline: &mut dyn FnMut(&str) -> Result<crate::mvcc::hashkv::HashKv, String>,
) -> Finding {
    let version = m.status.version().to_string();
    let mk = |verdict, detail: String| Finding {
        check,
        member: Some(label.to_string()),
        verdict,
        detail,
    };
    if m.revision() < rev {
        return mk(
            Verdict::Unknown,
            format!(
                "the member is at revision {}, before the snapshot's {rev}",
                m.revision()
            ),
        );
    }
    let snap = match offline(&version) {
        Ok(h) => h,
        Err(e) => return mk(Verdict::Unknown, format!("etcd {version}: {e}")),
    };
    let mut c = m.client.clone();
    let got = live.unary(m, "HashKV", async move { c.hash_kv(rev).await });
    let got = match got {
        Ok(g) => g,
        Err(e) => {
            let msg = e.to_string();
            let why = if msg.contains("compacted") {
                format!("the member compacted revision {rev} away: {msg}")
            } else {
                msg
            };
            return mk(Verdict::Unknown, why);
        }
    };
    let member_compact = got.compact_version();
    let figures = format!(
        "at revision {rev}: member (etcd {version}) hash {} (compacted at {}), snapshot hash {} \
         (compacted at {})",
        got.hash(),
        member_compact,
        snap.hash,
        snap.compact_revision
    );
    if got.hash() == snap.hash {
        mk(Verdict::Pass, figures)
    } else {
        let note = if member_compact != snap.compact_revision {
            format!(
                "; the member's compaction ({member_compact}) is not the snapshot's ({}): the \
                 history each hashes differs",
                snap.compact_revision
            )
        } else {
            String::new()
        };
        mk(Verdict::Fail, format!("{figures}{note}"))
    }
}

/// What `verify-cluster` expects.
pub struct Expect<'k> {
    /// The snapshot's revision.
    pub revision: i64,
    /// The restore's `--bump-revision`: members start at `revision + bump`,
    /// compacted there; then the content is compared instead of HashKV.
    pub bump: Option<u64>,
    /// The snapshot's live keys at `revision`, sorted by key (used with
    /// `bump`).
    pub keys: Vec<crate::mvcc::keyvalue::KeyValue<'k>>,
    /// Names and peer URLs (`--initial-cluster`), when given.
    pub initial_cluster: Option<BTreeMap<String, BTreeSet<String>>>,
}

/// Runs verify-cluster's checks on a reached cluster.
pub fn verify_cluster(
    live: &Live,
    reached: &Reached,
    expect: &Expect<'_>,
    offline: &mut dyn FnMut(&str) -> Result<crate::mvcc::hashkv::HashKv, String>,
) -> Vec<Finding> {
    let mut out = reachability_findings(reached);
    let reached_ok: Vec<(&MemberState, &Member)> = reached
        .members
        .iter()
        .filter_map(|ms| ms.conn.as_ref().ok().map(|m| (ms, m)))
        .collect();
    out.extend(leader_finding(reached, &reached_ok));
    match &expect.initial_cluster {
        None => out.push(cluster_finding(
            "members",
            Verdict::Skipped,
            "names and peer URLs not checked: pass --initial-cluster".into(),
        )),
        Some(want) => out.extend(member_findings(reached, want)),
    }
    // Cluster ID, revision, hash per member.
    for (ms, m) in &reached_ok {
        out.extend(member_state_findings(live, reached, expect, ms, m, offline));
    }
    out
}

/// A finding about the whole cluster (no member).
fn cluster_finding(check: &'static str, verdict: Verdict, detail: String) -> Finding {
    Finding {
        check,
        member: None,
        verdict,
        detail,
    }
}

/// Members that could not be reached, and endpoints that answer as a
/// member of the cluster's list but are not in it.
fn reachability_findings(reached: &Reached) -> Vec<Finding> {
    let mut out = Vec::new();
    for ms in &reached.members {
        if let Err(e) = &ms.conn {
            out.push(Finding {
                check: "reachable",
                member: Some(ms.label()),
                verdict: Verdict::Fail,
                detail: format!("member {:x} cannot be reached: {e}", ms.id),
            });
        }
    }
    for s in &reached.strays {
        out.push(Finding {
            check: "cluster-id",
            member: Some(s.endpoint.clone()),
            verdict: Verdict::Fail,
            detail: format!(
                "endpoint {} answers as member {:x} of cluster {:x}, which is not in the member list \
                 of cluster {:x} (from {})",
                s.endpoint,
                s.id(),
                s.cluster_id(),
                reached.cluster_id,
                reached.listed_by
            ),
        });
    }
    out
}

/// One leader: every reached member sees one, the same, and that one says
/// it leads.
fn leader_finding(reached: &Reached, reached_ok: &[(&MemberState, &Member)]) -> Option<Finding> {
    let leaders: BTreeSet<u64> = reached_ok
        .iter()
        .map(|(_, m)| m.status.leader())
        .filter(|l| *l != 0)
        .collect();
    let self_leaders: Vec<String> = reached_ok
        .iter()
        .filter(|(_, m)| m.status.leader() == m.id() && m.id() != 0)
        .map(|(ms, _)| ms.label())
        .collect();
    let no_leader: Vec<String> = reached_ok
        .iter()
        .filter(|(_, m)| m.status.leader() == 0)
        .map(|(ms, _)| ms.label())
        .collect();
    let name_of = |id: u64| {
        reached
            .members
            .iter()
            .find(|m| m.id == id)
            .map_or(format!("{id:x} (not a member)"), |m| m.label())
    };
    if !no_leader.is_empty() {
        Some(cluster_finding(
            "one-leader",
            Verdict::Fail,
            format!("no leader seen by {}", no_leader.join(", ")),
        ))
    } else if leaders.len() != 1 || self_leaders.len() != 1 {
        let seen: Vec<String> = reached_ok
            .iter()
            .map(|(ms, m)| format!("{} → {}", ms.label(), name_of(m.status.leader())))
            .collect();
        Some(cluster_finding(
            "one-leader",
            Verdict::Fail,
            format!("members disagree on the leader: {}", seen.join(", ")),
        ))
    } else {
        leaders.first().map(|l| {
            cluster_finding(
                "one-leader",
                Verdict::Pass,
                format!("{} leads", name_of(*l)),
            )
        })
    }
}

/// Names and peer URLs of the member list against `--initial-cluster`
/// (`want`: name to peer URLs).
fn member_findings(reached: &Reached, want: &BTreeMap<String, BTreeSet<String>>) -> Vec<Finding> {
    let mut out = Vec::new();
    for ms in &reached.members {
        let have: BTreeSet<String> = ms.peer_urls.iter().cloned().collect();
        let detail = match want.get(&ms.name) {
            _ if ms.name.is_empty() => Some(format!(
                "member {:x} (peer URLs {}) has not started: it has no name",
                ms.id,
                ms.peer_urls.join(",")
            )),
            None => Some(format!(
                "member {} ({:x}, peer URLs {}) is not in --initial-cluster",
                ms.name,
                ms.id,
                ms.peer_urls.join(",")
            )),
            Some(w) if *w != have => Some(format!(
                "member {} has peer URLs {}, expected {}",
                ms.name,
                ms.peer_urls.join(","),
                w.iter().cloned().collect::<Vec<_>>().join(",")
            )),
            Some(_) => None,
        };
        if let Some(d) = detail {
            out.push(Finding {
                check: "members",
                member: Some(ms.label()),
                verdict: Verdict::Fail,
                detail: d,
            });
        }
    }
    for name in want.keys() {
        if !reached.members.iter().any(|m| &m.name == name) {
            out.push(Finding {
                check: "members",
                member: Some(name.clone()),
                verdict: Verdict::Fail,
                detail: format!("expected member {name} is not in the member list"),
            });
        }
    }
    if out.is_empty() {
        out.push(cluster_finding(
            "members",
            Verdict::Pass,
            format!(
                "{} members, names and peer URLs as --initial-cluster",
                reached.members.len()
            ),
        ));
    }
    out
}

/// One reached member's cluster ID, then its revision and HashKV against the
/// snapshot's (or, with a bump, its content: [`bumped_findings`]).
fn member_state_findings(
    live: &Live,
    reached: &Reached,
    expect: &Expect<'_>,
    ms: &MemberState,
    m: &Member,
    offline: &mut dyn FnMut(&str) -> Result<crate::mvcc::hashkv::HashKv, String>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let label = ms.label();
    let f = |check, verdict, detail| Finding {
        check,
        member: Some(label.clone()),
        verdict,
        detail,
    };
    if m.cluster_id() == reached.cluster_id {
        out.push(f(
            "cluster-id",
            Verdict::Pass,
            format!("cluster {:x}", m.cluster_id()),
        ));
    } else {
        out.push(f(
            "cluster-id",
            Verdict::Fail,
            format!(
                "cluster {:x}, while {} says {:x}",
                m.cluster_id(),
                reached.listed_by,
                reached.cluster_id
            ),
        ));
    }
    if let Some(bump) = expect.bump {
        out.extend(bumped_findings(live, m, &label, expect, bump));
        return out;
    }
    if m.revision() >= expect.revision {
        out.push(f(
            "revision",
            Verdict::Pass,
            format!(
                "revision {} >= the snapshot's {}",
                m.revision(),
                expect.revision
            ),
        ));
    } else {
        out.push(f(
            "revision",
            Verdict::Fail,
            format!(
                "revision {} is before the snapshot's {}",
                m.revision(),
                expect.revision
            ),
        ));
    }
    let mut h = hash_finding(live, "hashkv", &label, m, expect.revision, offline);
    if h.verdict == Verdict::Unknown && h.detail.contains("compacted") {
        h.detail.push_str(&bump_hint(live, m, expect.revision));
    }
    out.push(h);
    out
}

/// What to pass when a member is compacted past the snapshot's revision:
/// restored with a bump of N, it is compacted at exactly revision + N (until
/// the next compaction), which its HashKV at its current revision tells.
fn bump_hint(live: &Live, m: &Member, rev: i64) -> String {
    let mut c = m.client.clone();
    let compacted = live
        .unary(m, "HashKV", async move { c.hash_kv(0).await })
        .map(|r| r.compact_version());
    match compacted {
        Ok(at) if at > rev => format!(
            "; the member is compacted at {at}: if the cluster was restored with --bump-revision \
             {n}, pass --bump-revision {n}",
            n = at - rev
        ),
        _ => "; if the cluster was restored with --bump-revision N, pass --bump-revision N".into(),
    }
}

/// The checks of a member restored with a revision bump: its revision, and
/// its keys at the bumped revision against the snapshot's (HashKV is not
/// comparable: the member starts compacted at the bumped revision).
fn bumped_findings(
    live: &Live,
    m: &Member,
    label: &str,
    expect: &Expect<'_>,
    bump: u64,
) -> Vec<Finding> {
    let f = |check, verdict, detail| Finding {
        check,
        member: Some(label.to_string()),
        verdict,
        detail,
    };
    let rev = expect.revision;
    let target = rev.saturating_add(i64::try_from(bump).unwrap_or(i64::MAX));
    let mut out = Vec::new();
    out.push(if m.revision() >= target {
        f(
            "revision",
            Verdict::Pass,
            format!(
                "revision {} >= the snapshot's {rev} + the bump {bump} = {target}",
                m.revision()
            ),
        )
    } else {
        f(
            "revision",
            Verdict::Fail,
            format!(
                "revision {} is before the snapshot's {rev} + the bump {bump} = {target}: not \
                 restored with --bump-revision {bump}?",
                m.revision()
            ),
        )
    });
    out.push(f(
        "hashkv",
        Verdict::Skipped,
        format!(
            "not comparable after a revision bump: the member starts compacted at {target}, so \
             HashKV at {rev} is refused and HashKV at {target} covers the bump's marker; the keys \
             were compared instead (content)"
        ),
    ));
    out.push(content_finding(live, m, label, target, rev, &expect.keys));
    out
}

/// The `content` check: the keys `m` serves at `target` against `keys`, the
/// snapshot's live keys at `rev` (sorted by key).
pub fn content_finding(
    live: &Live,
    m: &Member,
    label: &str,
    target: i64,
    rev: i64,
    keys: &[crate::mvcc::keyvalue::KeyValue<'_>],
) -> Finding {
    let f = |check, verdict, detail| Finding {
        check,
        member: Some(label.to_string()),
        verdict,
        detail,
    };
    match super::content::compare_content(live, m, target, keys) {
        Ok(r) if r.matches() => f(
            "content",
            Verdict::Pass,
            format!(
                "the {} keys served at revision {target} are the snapshot's live keys at {rev} \
                     (value, create and mod revision, version, lease)",
                r.same
            ),
        ),
        Ok(r) => f(
            "content",
            Verdict::Fail,
            format!(
                "at revision {target} against the snapshot at {rev}: {} missing, {} not in the \
                     snapshot, {} different, {} the same; {}",
                r.missing,
                r.extra,
                r.differ,
                r.same,
                r.examples.join("; ")
            ),
        ),
        Err(e) => f(
            "content",
            Verdict::Unknown,
            format!("the member's keys at revision {target} cannot be read: {e}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_cluster_parses() {
        let m = parse_initial_cluster("a=http://1:2380,b=http://2:2380,a=http://9:2380").unwrap();
        assert_eq!(m["a"].len(), 2);
        assert_eq!(m["b"].iter().next().unwrap(), "http://2:2380");
        assert!(parse_initial_cluster("a").is_err());
        assert!(parse_initial_cluster("=x").is_err());
        assert!(parse_initial_cluster("").is_err());
    }

    #[test]
    fn exit_codes() {
        let f = |verdict| Finding {
            check: "x",
            member: None,
            verdict,
            detail: String::new(),
        };
        assert_eq!(exit_of(&[f(Verdict::Pass), f(Verdict::Skipped)]), 0);
        assert_eq!(exit_of(&[f(Verdict::Unknown), f(Verdict::Pass)]), 2);
        assert_eq!(exit_of(&[f(Verdict::Unknown), f(Verdict::Fail)]), 1);
    }
}
