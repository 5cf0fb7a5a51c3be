//! Judges a snapshot's [`Facts`] and `verify` report against a [`Policy`]:
//! one result per rule, each with the message a pipeline log should show.

use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::facts::{Facts, Read};
use super::policy::{Policy, RequiredObject};
use crate::kube::resource::{BUILT_IN, closest_names};

/// One rule's verdict on one snapshot.
#[derive(Debug, Clone, Serialize)]
pub struct RuleResult {
    /// The rule as the policy names it, with its subject
    /// (`minObjects nodes`, `requiredNamespaces kube-system`).
    pub rule: String,
    /// Whether the rule passed.
    pub passed: bool,
    /// What a pipeline log should show.
    pub message: String,
}

fn result(rule: impl Into<String>, passed: bool, message: impl Into<String>) -> RuleResult {
    RuleResult {
        rule: rule.into(),
        passed,
        message: message.into(),
    }
}

/// Every rule's result for one snapshot read. `taken_at` is `--taken-at`
/// (else the file's modification time); `now` the time to judge age at.
pub fn judge(
    read: &Read,
    policy: &Policy,
    taken_at: Option<SystemTime>,
    now: SystemTime,
) -> Vec<RuleResult> {
    let (r, f) = (&read.report, &read.facts);
    let mut out = Vec::new();
    let failed: Vec<String> = r
        .failed_checks()
        .map(|c| match c.problems.first() {
            Some(p) => format!("{}: {}", c.name, p),
            None => format!("{}: {}", c.name, c.detail),
        })
        .collect();
    out.push(result(
        "verify",
        r.passed,
        if r.passed {
            "every check passed".to_string()
        } else {
            failed.join("; ")
        },
    ));
    if let Some(why) = &f.unreadable {
        out.push(result(
            "keys",
            false,
            format!("the keys cannot be read: {why}"),
        ));
        return out;
    }
    content_rules(policy, f, &mut out);
    value_rules(policy, f, &mut out);
    bound_rules(policy, f, &mut out);
    if let Some(max) = policy.max_age {
        out.push(age_rule(max, taken_at.or(read.modified), now));
    }
    out
}

/// minObjects, minNamespaces, requiredNamespaces, requiredObjects.
fn content_rules(policy: &Policy, f: &Facts, out: &mut Vec<RuleResult>) {
    for (res, min) in &policy.min_objects {
        let rule = format!("minObjects {res}");
        match resolve(res, f) {
            Ok(name) => {
                let n = f.objects.get(&name).copied().unwrap_or(0);
                out.push(result(
                    rule,
                    n >= *min,
                    format!("{n} live {name} (at least {min})"),
                ));
            }
            Err(why) => out.push(result(rule, false, why)),
        }
    }
    if let Some(min) = policy.min_namespaces {
        let n = f.namespaces.len() as u64;
        out.push(result(
            "minNamespaces",
            n >= min,
            format!("{n} namespaces (at least {min})"),
        ));
    }
    for ns in &policy.required_namespaces {
        let ok = f.namespaces.contains(ns);
        out.push(result(
            format!("requiredNamespaces {ns}"),
            ok,
            if ok {
                format!("namespace {ns} exists")
            } else {
                format!("namespace {ns} is missing")
            },
        ));
    }
    for o in policy
        .required_objects
        .iter()
        .filter_map(|o| RequiredObject::parse(o).ok())
    {
        let ok = f.present.contains(&o);
        out.push(result(
            format!("requiredObjects {o}"),
            ok,
            if ok {
                format!("{o} exists")
            } else {
                format!("{o} is missing")
            },
        ));
    }
}

/// valuesDecode, noUnencryptedSecrets, encryptionKeys, kmsKeyIds.
fn value_rules(policy: &Policy, f: &Facts, out: &mut Vec<RuleResult>) {
    if policy.values_decode {
        let mut msg = format!(
            "{} live values do not decode or do not match their keys",
            f.undecodable
        );
        for (k, why) in &f.undecodable_keys {
            msg.push_str(&format!("; {k}: {why}"));
        }
        out.push(result("valuesDecode", f.undecodable == 0, msg));
    }
    if policy.no_unencrypted_secrets {
        let n: u64 = f.unencrypted_secrets.values().sum();
        let per: Vec<String> = f
            .unencrypted_secrets
            .iter()
            .map(|(ns, k)| format!("{ns}: {k}"))
            .collect();
        out.push(result(
            "noUnencryptedSecrets",
            n == 0,
            if n == 0 {
                "no Secret is stored unencrypted".to_string()
            } else {
                format!("{n} Secrets stored unencrypted ({})", per.join(", "))
            },
        ));
    }
    if let Some(keys) = &policy.encryption_keys {
        let unknown: Vec<String> = f
            .encrypted
            .iter()
            .filter(|(pk, _)| {
                let name = pk.split_once(':').map_or(pk.as_str(), |(_, k)| k);
                !keys.iter().any(|k| k == name)
            })
            .map(|(pk, n)| format!("{n} values under {pk}"))
            .collect();
        out.push(result(
            "encryptionKeys",
            unknown.is_empty(),
            if unknown.is_empty() {
                format!("every encrypted value names one of {}", keys.join(", "))
            } else {
                format!("keys not in the policy: {}", unknown.join(", "))
            },
        ));
    }
    if let Some(ids) = &policy.kms_key_ids {
        let unknown: Vec<String> = f
            .kms_key_ids
            .iter()
            .filter(|(id, _)| !ids.contains(id))
            .map(|(id, n)| format!("{n} values under key ID {id:?}"))
            .collect();
        out.push(result(
            "kmsKeyIds",
            unknown.is_empty(),
            if unknown.is_empty() {
                format!(
                    "every KMS v2 value ({}) was wrapped under one of {}",
                    f.kms_key_ids.values().sum::<u64>(),
                    ids.join(", ")
                )
            } else {
                format!("KMS key IDs not in the policy: {}", unknown.join(", "))
            },
        ));
    }
}

/// minBytes, maxBytes, minRevision, maxRevision.
fn bound_rules(policy: &Policy, f: &Facts, out: &mut Vec<RuleResult>) {
    if let Some(min) = policy.min_bytes {
        out.push(result(
            "minBytes",
            f.file_size >= min,
            format!("{} bytes (at least {min})", f.file_size),
        ));
    }
    if let Some(max) = policy.max_bytes {
        out.push(result(
            "maxBytes",
            f.file_size <= max,
            format!("{} bytes (at most {max})", f.file_size),
        ));
    }
    if let Some(min) = policy.min_revision {
        out.push(result(
            "minRevision",
            f.revision >= min,
            format!("revision {} (at least {min})", f.revision),
        ));
    }
    if let Some(max) = policy.max_revision {
        out.push(result(
            "maxRevision",
            f.revision <= max,
            format!("revision {} (at most {max})", f.revision),
        ));
    }
}

/// maxAge: the snapshot taken at `taken` (unknown: a failure) is at most
/// `max` old at `now`.
fn age_rule(max: Duration, taken: Option<SystemTime>, now: SystemTime) -> RuleResult {
    let (ok, msg) = match taken {
        None => (
            false,
            "the time it was taken is unknown (give --taken-at)".to_string(),
        ),
        Some(t) => {
            let age = now.duration_since(t).unwrap_or(Duration::ZERO);
            let secs = Duration::from_secs(age.as_secs());
            (
                age <= max,
                format!(
                    "taken {} ago (at most {})",
                    humantime::format_duration(secs),
                    humantime::format_duration(max)
                ),
            )
        }
    };
    result("maxAge", ok, msg)
}

/// The name the snapshot's keys give the policy's resource `res` (already
/// canonical for a built-in resource): a built-in resource, a custom resource
/// the snapshot holds objects or a CRD of, or a plural without its group
/// that names exactly one of those. Anything else is unknown: an error
/// saying so, with the closest names.
fn resolve(res: &str, f: &Facts) -> Result<String, String> {
    let built_in = BUILT_IN.iter().any(|b| {
        res == b.plural
            || res.strip_prefix(b.plural).and_then(|g| g.strip_prefix('.')) == Some(b.group)
    });
    if built_in || f.objects.contains_key(res) || f.crds.contains(res) {
        return Ok(res.to_string());
    }
    // Custom resources the snapshot knows: CRDs, and objects of a group.
    let mut customs: Vec<String> = f.crds.iter().cloned().collect();
    customs.extend(
        f.objects
            .keys()
            .filter(|k| {
                k.contains('.')
                    && !BUILT_IN
                        .iter()
                        .any(|b| k.starts_with(&format!("{}.", b.plural)))
            })
            .cloned(),
    );
    customs.sort();
    customs.dedup();
    if !res.contains('.') {
        let by_plural: Vec<&String> = customs
            .iter()
            .filter(|c| c.split_once('.').is_some_and(|(p, _)| p == res))
            .collect();
        match by_plural[..] {
            [one] => return Ok(one.clone()),
            [_, _, ..] => {
                return Err(format!(
                    "{res:?} names several custom resources: {}; qualify it with its group",
                    by_plural
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            [] => {}
        }
    }
    let close = closest_names(res, &customs);
    Err(format!(
        "unknown resource {res:?}: not a built-in resource, and the snapshot holds no custom resource or CRD of that name{}",
        if close.is_empty() {
            String::new()
        } else {
            format!("; did you mean {}?", close.join(", "))
        }
    ))
}
