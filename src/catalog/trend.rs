//! The `catalog check` rules: the newest entry of a series compared with the
//! entries before it. A series is the entries with the same label set (a
//! cluster ID change inside it is a failure); entries without labels form
//! one series per cluster ID (nothing else says which cluster they belong
//! to). Figures are compared with the baseline: the last
//! [`BASELINE_ENTRIES`] earlier entries of the same cluster ID that verified
//! (else of that cluster), so that a drop that lasts is still a drop the
//! next time; each finding names the entry it was compared with:
//!
//! - objects of a resource dropped by more than `max_drop` percent below
//!   the most any baseline entry held;
//! - a namespace any baseline entry had vanished;
//! - the revision went backwards (below the highest earlier one);
//! - the cluster ID, or the member set (IDs, names, peer URLs), changed
//!   since the entry just before;
//! - the data shrank below [`SHRINK_LIMIT`] of the previous while the revision
//!   grew: the bytes in use (pages not free) when both entries have them,
//!   else the file size — a defragmented cluster's file shrinks legitimately,
//!   its data in use does not.
//!
//! Each finding names the resource, namespace and figures.

use std::collections::BTreeMap;

use serde::Serialize;

use super::entry::{Entry, Head, Member};
use crate::check::rules::RuleResult;

/// How many earlier entries of a series (that verified) the figures are
/// compared with: a resource's objects against the most any of them held, a
/// namespace against all of them. A week of nightly backups.
pub const BASELINE_ENTRIES: usize = 7;

/// The data in use may shrink to this share of the previous entry's (50 %).
pub const SHRINK_LIMIT: f64 = 0.5;

/// Namespaces named for a resource's drop, at most.
const NAMED: usize = 5;

/// The series an entry belongs to (see the module comment).
pub fn series_key(e: &Head) -> String {
    if e.labels.is_empty() {
        format!("cluster {}", e.cluster_id.as_deref().unwrap_or("unknown"))
    } else {
        labels_text(&e.labels)
    }
}

/// Labels as `k=v,k=v`, sorted by key (a series' name).
pub fn labels_text(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn result(rule: impl Into<String>, passed: bool, message: impl Into<String>) -> RuleResult {
    RuleResult {
        rule: rule.into(),
        passed,
        message: message.into(),
    }
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

fn pct(before: u64, after: u64) -> f64 {
    (before.saturating_sub(after)) as f64 * 100.0 / before as f64
}

fn drop_text(what: &str, before: u64, after: u64) -> String {
    format!("{what}: {before} → {after} (−{:.0} %)", pct(before, after))
}

fn members_text(m: &Member) -> String {
    format!("{} ({}, {})", m.name, m.id, m.peer_urls.join(" "))
}

/// The trend rules for the entry numbered `seq` against the earlier entries
/// of its series, found in `heads` (all of the catalog's, oldest first);
/// `load` reads a whole entry (only the two compared are read).
/// `max_drop` is a percentage.
pub fn judge<E>(
    heads: &[(u64, Head)],
    seq: u64,
    max_drop: f64,
    load: &mut dyn FnMut(u64) -> Result<Entry, E>,
) -> Result<Vec<RuleResult>, E> {
    let keys: Vec<String> = heads.iter().map(|(_, h)| series_key(h)).collect();
    judge_keyed(heads, &keys, seq, max_drop, load)
}

/// [`judge`] with each entry's series key already made.
fn judge_keyed<E>(
    heads: &[(u64, Head)],
    keys: &[String],
    seq: u64,
    max_drop: f64,
    load: &mut dyn FnMut(u64) -> Result<Entry, E>,
) -> Result<Vec<RuleResult>, E> {
    let Some(at) = heads.iter().position(|(s, _)| *s == seq) else {
        return Ok(Vec::new());
    };
    let (new, key) = (&heads[at].1, &keys[at]);
    let before: Vec<(u64, &Head)> = heads
        .iter()
        .zip(keys)
        .filter(|((s, _), k)| *s < seq && *k == key)
        .map(|((s, h), _)| (*s, h))
        .collect();
    let Some(&(_, last)) = before.last() else {
        return Ok(vec![result(
            "trend",
            true,
            format!("the first entry of series {key}: nothing to compare with"),
        )]);
    };
    let mut out = vec![cluster_rule(key, last, new), members_rule(last, new)];
    let same: Vec<(u64, &Head)> = before
        .iter()
        .filter(|(_, e)| e.cluster_id == new.cluster_id)
        .copied()
        .collect();
    let window = baseline(&same);
    let Some(&(_, base_h)) = window.last() else {
        out.push(result(
            "trend",
            true,
            format!(
                "no earlier entry of cluster {} to compare figures with",
                cluster_id_text(new)
            ),
        ));
        return Ok(out);
    };
    out.push(revision_rule(&same, base_h, new));
    let olds = window
        .iter()
        .map(|(s, _)| load(*s))
        .collect::<Result<Vec<Entry>, E>>()?;
    let new = load(seq)?;
    let Some(base) = olds.last() else {
        return Ok(out);
    };
    let span = if olds.len() == 1 {
        "the entry before".to_string()
    } else {
        format!("the last {} entries", olds.len())
    };
    out.extend(object_rules(&olds, base, &new, max_drop, &span));
    out.extend(namespace_rules(&olds, &new, &span));
    out.push(size_rule(base, &new));
    Ok(out)
}

fn cluster_id_text(e: &Head) -> String {
    e.cluster_id.clone().unwrap_or_else(|| "unknown".into())
}

/// An entry named in a finding: its short sha256 and its path.
fn entry_text(e: &Entry) -> String {
    format!("entry {} ({})", short(&e.sha256), e.path)
}

/// The cluster ID against the entry just before.
fn cluster_rule(key: &str, last: &Head, new: &Head) -> RuleResult {
    if last.cluster_id == new.cluster_id {
        result(
            "trend cluster",
            true,
            format!("cluster ID {} as before", cluster_id_text(new)),
        )
    } else {
        result(
            "trend cluster",
            false,
            format!(
                "cluster ID changed in series {key}: {} → {} (entry {} before it)",
                cluster_id_text(last),
                cluster_id_text(new),
                short(&last.sha256)
            ),
        )
    }
}

/// The member set (IDs, names, peer URLs) against the entry just before.
fn members_rule(last: &Head, new: &Head) -> RuleResult {
    let ids = |e: &Head| -> BTreeMap<String, Member> {
        e.members
            .iter()
            .map(|m| (m.id.clone(), m.clone()))
            .collect()
    };
    let (old_m, new_m) = (ids(last), ids(new));
    if old_m == new_m {
        return result(
            "trend members",
            true,
            format!(
                "{} member{} as before",
                new_m.len(),
                if new_m.len() == 1 { "" } else { "s" }
            ),
        );
    }
    let mut parts = Vec::new();
    for (id, m) in &new_m {
        match old_m.get(id) {
            None => parts.push(format!("added {}", members_text(m))),
            Some(o) if o != m => {
                parts.push(format!("changed {} → {}", members_text(o), members_text(m)))
            }
            _ => {}
        }
    }
    for (id, m) in &old_m {
        if !new_m.contains_key(id) {
            parts.push(format!("removed {}", members_text(m)));
        }
    }
    result(
        "trend members",
        false,
        format!("the member set changed: {}", parts.join("; ")),
    )
}

/// The baseline among the earlier entries of the same cluster (`same`,
/// oldest first): those that verified (else all), the last
/// [`BASELINE_ENTRIES`] of them.
fn baseline<'a>(same: &[(u64, &'a Head)]) -> Vec<(u64, &'a Head)> {
    let verified: Vec<(u64, &Head)> = same.iter().filter(|(_, e)| e.verified).copied().collect();
    let pool = if verified.is_empty() {
        same.to_vec()
    } else {
        verified
    };
    pool[pool.len().saturating_sub(BASELINE_ENTRIES)..].to_vec()
}

/// The revision against the highest of the same cluster's earlier entries
/// (`base` when there are none).
fn revision_rule(same: &[(u64, &Head)], base: &Head, new: &Head) -> RuleResult {
    let highest = same
        .iter()
        .map(|(_, h)| *h)
        .max_by_key(|e| e.revision)
        .unwrap_or(base);
    if new.revision >= highest.revision {
        result(
            "trend revision",
            true,
            format!(
                "revision {} (highest before: {})",
                new.revision, highest.revision
            ),
        )
    } else {
        result(
            "trend revision",
            false,
            format!(
                "the revision went backwards: {} < {} (entry {}, {})",
                new.revision,
                highest.revision,
                short(&highest.sha256),
                highest.path
            ),
        )
    }
}

/// Objects per resource, against the most any baseline entry held (the
/// newest such entry), so that a drop that lasts is not forgotten the next
/// time: a failure per resource that dropped more than `max_drop` percent,
/// else one pass. `base` is the newest baseline entry, `span` names the
/// baseline.
fn object_rules(
    olds: &[Entry],
    base: &Entry,
    new: &Entry,
    max_drop: f64,
    span: &str,
) -> Vec<RuleResult> {
    let mut peaks: BTreeMap<&str, (u64, &Entry)> = BTreeMap::new();
    for e in olds {
        for (res, &n) in &e.objects {
            match peaks.get(res.as_str()) {
                Some(&(p, _)) if p > n => {}
                _ => {
                    peaks.insert(res, (n, e));
                }
            }
        }
    }
    let mut out = Vec::new();
    for (res, &(p, peak)) in &peaks {
        let n = new.objects.get(*res).copied().unwrap_or(0);
        if p == 0 || pct(p, n) <= max_drop {
            continue;
        }
        let mut msg = format!(
            "{}, more than the {max_drop} % allowed (compared with {}, the most of {span})",
            drop_text(res, p, n),
            entry_text(peak)
        );
        msg.push_str(&namespace_drops(res, peak, new));
        out.push(result(format!("trend objects {res}"), false, msg));
    }
    if out.is_empty() {
        out.push(result(
            "trend objects",
            true,
            format!(
                "{} resources, none dropped more than {max_drop} % below the most of {span} (objects {} → {}; entry before: {})",
                new.objects.len(),
                base.total_objects(),
                new.total_objects(),
                entry_text(base)
            ),
        ));
    }
    out
}

/// The namespaces where resource `res` lost objects between `peak` and
/// `new`, the largest losses first (at most [`NAMED`] of them), as a text
/// to append to a finding (empty when none did).
fn namespace_drops(res: &str, peak: &Entry, new: &Entry) -> String {
    let mut by_ns: Vec<(String, u64, u64)> = peak
        .namespaces
        .iter()
        .filter_map(|(ns, per)| {
            let b = per.get(res).copied().unwrap_or(0);
            let a = new
                .namespaces
                .get(ns)
                .and_then(|m| m.get(res))
                .copied()
                .unwrap_or(0);
            (a < b).then(|| (ns.clone(), b, a))
        })
        .collect();
    if by_ns.is_empty() {
        return String::new();
    }
    by_ns.sort_by_key(|(ns, b, a)| (std::cmp::Reverse(b - a), ns.clone()));
    let named: Vec<String> = by_ns
        .iter()
        .take(NAMED)
        .map(|(ns, b, a)| drop_text(&format!("namespace {ns}"), *b, *a))
        .collect();
    let mut text = format!("; {}", named.join(", "));
    if by_ns.len() > NAMED {
        text.push_str(&format!(" and {} more namespaces", by_ns.len() - NAMED));
    }
    text
}

/// Namespaces that any baseline entry had (the newest that did) and `new`
/// lacks: a failure per vanished namespace, else one pass.
fn namespace_rules(olds: &[Entry], new: &Entry, span: &str) -> Vec<RuleResult> {
    let mut seen: BTreeMap<&str, &Entry> = BTreeMap::new();
    for e in olds {
        for ns in e.namespaces.keys() {
            seen.insert(ns, e);
        }
    }
    let mut out = Vec::new();
    for (ns, had_it) in &seen {
        if new.namespaces.contains_key(*ns) {
            continue;
        }
        let per = &had_it.namespaces[*ns];
        let had: u64 = per.values().sum();
        let what: Vec<String> = per.iter().map(|(r, n)| format!("{r} {n}")).collect();
        out.push(result(
            format!("trend namespace {ns}"),
            false,
            format!(
                "namespace {ns} vanished (it had {had} objects{}{}); last seen in {}",
                if what.is_empty() { "" } else { ": " },
                what.join(", "),
                entry_text(had_it)
            ),
        ));
    }
    if out.is_empty() {
        out.push(result(
            "trend namespaces",
            true,
            format!("all {} namespaces of {span} are there", seen.len()),
        ));
    }
    out
}

/// The data in use (else the file size) against the newest baseline entry:
/// fails when it shrank below [`SHRINK_LIMIT`] while the revision grew.
fn size_rule(base: &Entry, new: &Entry) -> RuleResult {
    let (what, b, a) = match (base.db_size_in_use, new.db_size_in_use) {
        (Some(b), Some(a)) => ("bytes in use", b, a),
        _ => ("file size", base.file_size, new.file_size),
    };
    let shrank = (a as f64) < b as f64 * SHRINK_LIMIT && new.revision > base.revision;
    result(
        "trend size",
        !shrank,
        if shrank {
            format!(
                "the data shrank sharply while the revision grew: {what} {b} → {a} (below {:.0} % of the entry before; file {} → {}), revision {} → {}",
                SHRINK_LIMIT * 100.0,
                base.file_size,
                new.file_size,
                base.revision,
                new.revision
            )
        } else {
            format!("{what} {b} → {a}")
        },
    )
}

/// A series' newest entry and its trend results.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SeriesReport {
    /// The series' name (its labels, or its cluster ID).
    pub series: String,
    /// sha256 of the newest entry.
    pub sha256: String,
    /// The newest entry's path.
    pub path: String,
    /// The newest entry's revision.
    pub revision: i64,
    /// Whether every rule passed.
    pub passed: bool,
    /// Every rule's result.
    pub rules: Vec<RuleResult>,
}

/// `catalog check`: the newest entry of every series whose labels include
/// `filter`, judged; also fails a newest entry that did not verify.
pub fn check<E>(
    heads: &[(u64, Head)],
    filter: &BTreeMap<String, String>,
    max_drop: f64,
    load: &mut dyn FnMut(u64) -> Result<Entry, E>,
) -> Result<Vec<SeriesReport>, E> {
    let keys: Vec<String> = heads.iter().map(|(_, h)| series_key(h)).collect();
    let mut newest: BTreeMap<String, usize> = BTreeMap::new();
    for (i, ((_, h), key)) in heads.iter().zip(&keys).enumerate() {
        if filter.iter().all(|(k, v)| h.labels.get(k) == Some(v)) {
            newest.insert(key.clone(), i);
        }
    }
    let mut out = Vec::new();
    for (series, i) in newest {
        let (seq, h) = &heads[i];
        let mut rules = vec![if h.verified {
            result("trend verify", true, "the newest entry verified")
        } else {
            let e = load(*seq)?;
            result(
                "trend verify",
                false,
                format!(
                    "the newest entry did not verify ({} problems)",
                    e.verify.problems
                ),
            )
        }];
        // The newest entry's restore drill, when `catalog add --drill` ran one.
        if let Some(d) = load(*seq)?.drill {
            rules.push(if d.passed {
                result(
                    "trend drill",
                    true,
                    format!("the newest entry was served by etcd {}", d.etcd_version),
                )
            } else {
                result(
                    "trend drill",
                    false,
                    format!(
                        "the newest entry failed its restore drill (etcd {}): {}",
                        d.etcd_version,
                        d.not_passed.join("; ")
                    ),
                )
            });
        }
        rules.extend(judge_keyed(heads, &keys, *seq, max_drop, load)?);
        out.push(SeriesReport {
            series,
            sha256: h.sha256.clone(),
            path: h.path.clone(),
            revision: h.revision,
            passed: rules.iter().all(|r| r.passed),
            rules,
        });
    }
    Ok(out)
}

/// Parses `--max-drop`: a percentage, `20%` or `20`, from 0 to 100.
pub fn parse_max_drop(s: &str) -> Result<f64, String> {
    let n = s.trim().strip_suffix('%').unwrap_or(s.trim()).trim();
    match n.parse::<f64>() {
        Ok(v) if (0.0..=100.0).contains(&v) => Ok(v),
        _ => Err(format!(
            "--max-drop {s:?}: expected a percentage from 0 to 100, such as 20%"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::entry::{ENTRY_VERSION, VerifyResult};

    fn entry(sha: &str, rev: i64, cms: &[(&str, u64)]) -> Entry {
        let mut namespaces: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        for (ns, n) in cms {
            namespaces
                .entry(ns.to_string())
                .or_default()
                .insert("configmaps".into(), *n);
        }
        Entry {
            version: ENTRY_VERSION,
            sha256: sha.into(),
            path: format!("{sha}.db"),
            added: 0,
            labels: [("env".to_string(), "prod".to_string())].into(),
            file_size: 1 << 20,
            db_size_in_use: Some(1 << 19),
            revision: rev,
            compacted_revision: None,
            total_keys: None,
            live_keys: None,
            cluster_id: Some("c1".into()),
            members: Vec::new(),
            objects: [("configmaps".to_string(), cms.iter().map(|c| c.1).sum())].into(),
            namespaces,
            verify: VerifyResult {
                passed: true,
                problems: 0,
            },
            remote: None,
            drill: None,
        }
    }

    #[test]
    fn drops_name_resource_and_namespace() {
        let es = [
            (1, entry("aa", 10, &[("team-a", 40), ("team-b", 10)])),
            (2, entry("bb", 20, &[("team-a", 10), ("team-b", 10)])),
        ];
        let heads: Vec<(u64, Head)> = es.iter().map(|(s, e)| (*s, e.head())).collect();
        let mut load = |seq: u64| -> Result<Entry, ()> {
            Ok(es.iter().find(|(s, _)| *s == seq).unwrap().1.clone())
        };
        let r = judge(&heads, 2, 20.0, &mut load).unwrap();
        let f: Vec<&RuleResult> = r.iter().filter(|r| !r.passed).collect();
        assert_eq!(f.len(), 1, "{r:?}");
        assert_eq!(f[0].rule, "trend objects configmaps");
        assert!(
            f[0].message.starts_with("configmaps: 50 → 20 (−60 %)"),
            "{}",
            f[0].message
        );
        assert!(
            f[0].message.contains("namespace team-a: 40 → 10 (−75 %)"),
            "{}",
            f[0].message
        );
        assert!(
            judge(&heads, 2, 60.0, &mut load)
                .unwrap()
                .iter()
                .all(|r| r.passed)
        );
    }

    #[test]
    fn max_drop_is_a_percentage() {
        assert_eq!(parse_max_drop("20%").unwrap(), 20.0);
        assert_eq!(parse_max_drop("7.5").unwrap(), 7.5);
        for bad in ["", "x", "-1%", "101%", "20%%"] {
            assert!(parse_max_drop(bad).is_err(), "{bad:?}");
        }
    }
}
