//! What the server rewrites on its own, left out of a field-level diff by
//! default (`--all-fields` keeps it): an object whose only changes are these
//! is "noise only".
//!
//! - `metadata.resourceVersion` (the key's mod revision: changes on every
//!   write), `metadata.generation`, `metadata.managedFields`;
//! - condition and heartbeat timestamps anywhere under `status`
//!   (`lastHeartbeatTime`, `lastTransitionTime`, `lastProbeTime`,
//!   `lastUpdateTime`);
//! - a Lease's `spec.renewTime` (every holder renews every few seconds).

use serde_json::Value;

/// Timestamps under `status` that move without anything else changing.
pub const STATUS_TIMESTAMPS: &[&str] = &[
    "lastHeartbeatTime",
    "lastTransitionTime",
    "lastProbeTime",
    "lastUpdateTime",
];

/// Fields of `metadata` the server owns and changes on writes.
pub const METADATA_FIELDS: &[&str] = &["resourceVersion", "generation", "managedFields"];

/// Removes the noise fields from a decoded object, in place.
pub fn strip(obj: &mut Value) {
    let Some(root) = obj.as_object_mut() else {
        return;
    };
    if let Some(Value::Object(meta)) = root.get_mut("metadata") {
        for f in METADATA_FIELDS {
            meta.shift_remove(*f);
        }
    }
    if let Some(status) = root.get_mut("status") {
        strip_timestamps(status);
    }
    let is_lease = root.get("kind").and_then(Value::as_str) == Some("Lease");
    if is_lease && let Some(Value::Object(spec)) = root.get_mut("spec") {
        spec.shift_remove("renewTime");
    }
}

/// Removes [`STATUS_TIMESTAMPS`] at any depth (conditions are lists of
/// objects). Iterative: a status may nest deeply.
fn strip_timestamps(v: &mut Value) {
    let mut stack: Vec<&mut Value> = vec![v];
    while let Some(v) = stack.pop() {
        match v {
            Value::Object(m) => {
                for f in STATUS_TIMESTAMPS {
                    m.shift_remove(*f);
                }
                stack.extend(m.values_mut());
            }
            Value::Array(a) => stack.extend(a.iter_mut()),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn strips_server_noise_only() {
        let mut o = json!({
            "kind": "Node",
            "metadata": {"name": "n", "resourceVersion": "5", "generation": 2,
                         "managedFields": [{"manager": "x"}], "labels": {"a": "b"}},
            "status": {"conditions": [{"type": "Ready", "status": "True",
                        "lastHeartbeatTime": "t1", "lastTransitionTime": "t2"}]}
        });
        super::strip(&mut o);
        assert_eq!(
            o,
            json!({
                "kind": "Node",
                "metadata": {"name": "n", "labels": {"a": "b"}},
                "status": {"conditions": [{"type": "Ready", "status": "True"}]}
            })
        );
        let mut l = json!({"kind": "Lease", "spec": {"holderIdentity": "h", "renewTime": "t"}});
        super::strip(&mut l);
        assert_eq!(l, json!({"kind": "Lease", "spec": {"holderIdentity": "h"}}));
        let mut c =
            json!({"kind": "ConfigMap", "data": {"renewTime": "x", "lastTransitionTime": "y"}});
        let before = c.clone();
        super::strip(&mut c);
        assert_eq!(c, before, "user data is never noise");
    }
}
