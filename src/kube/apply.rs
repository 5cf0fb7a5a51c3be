//! `--for-apply`: an object from a snapshot made safe to hand to `kubectl apply`.
//!
//! A stored object carries what the API server, the controllers and the
//! cluster's state put there. Applied back as is, some of it does harm: a stale
//! owner uid in `ownerReferences` lets the garbage collector delete the
//! restored object at once, a Pod's `nodeName` pins it to a node that may be
//! gone, a Service's `clusterIP` collides with the IP allocator, a PVC's
//! `volumeName` binds to a volume whose claim uid no longer matches, a Job's
//! generated selector and controller-uid labels are refused. This module
//! removes, per kind, what the server or the cluster owns (the approach of
//! kubectl-neat), and says what it removed so the caller can print it.

use serde_json::{Map, Value};

/// Choices the user can make.
#[derive(Clone, Copy, Debug, Default)]
pub struct ApplyOptions {
    /// Keep `metadata.ownerReferences` (for objects restored together with
    /// their owners, whose uids are then wrong anyway: use with care).
    pub keep_owner_references: bool,
}

/// Metadata fields the API server sets.
const SERVER_METADATA: &[&str] = &[
    "resourceVersion",
    "uid",
    "creationTimestamp",
    "generation",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

/// Annotations controllers write (and `kubectl apply`'s own record, which
/// apply rewrites and which repeats a Secret's data in clear).
const SERVER_ANNOTATIONS: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    "deployment.kubernetes.io/revision",
    "pv.kubernetes.io/bind-completed",
    "pv.kubernetes.io/bound-by-controller",
    "pv.kubernetes.io/provisioned-by",
    "volume.kubernetes.io/selected-node",
    "volume.beta.kubernetes.io/storage-provisioner",
    "volume.kubernetes.io/storage-provisioner",
    "endpoints.kubernetes.io/last-change-trigger-time",
];

/// Labels the Job controller derives from the Job's uid.
const JOB_UID_LABELS: &[&str] = &[
    "controller-uid",
    "batch.kubernetes.io/controller-uid",
    "job-name",
    "batch.kubernetes.io/job-name",
];

/// Removes what the server or the cluster owns; returns the JSON paths
/// removed (`metadata.ownerReferences`, `spec.nodeName`, …), in order.
pub fn for_apply(obj: &mut Value, opts: ApplyOptions) -> Vec<String> {
    let mut dropped = Vec::new();
    let Some(root) = obj.as_object_mut() else {
        return dropped;
    };
    let kind = root
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let group = root
        .get("apiVersion")
        .and_then(Value::as_str)
        .and_then(|v| v.rsplit_once('/').map(|(g, _)| g.to_string()))
        .unwrap_or_default();
    remove(root, "status", "status", &mut dropped);
    if let Some(Value::Object(meta)) = root.get_mut("metadata") {
        strip_metadata(meta, "metadata", opts, &mut dropped);
    }
    let core = group.is_empty();
    if core && kind == "ServiceAccount" {
        remove(root, "secrets", "secrets", &mut dropped);
    }
    if let Some(Value::Object(spec)) = root.get_mut("spec") {
        match (core, kind.as_str()) {
            (true, "Pod") => strip_pod_spec(spec, "spec", &mut dropped),
            (true, "Service") => {
                let headless = spec.get("clusterIP").and_then(Value::as_str) == Some("None");
                if !headless {
                    remove(spec, "clusterIP", "spec.clusterIP", &mut dropped);
                    remove(spec, "clusterIPs", "spec.clusterIPs", &mut dropped);
                }
                remove(
                    spec,
                    "healthCheckNodePort",
                    "spec.healthCheckNodePort",
                    &mut dropped,
                );
            }
            (true, "PersistentVolumeClaim") => {
                remove(spec, "volumeName", "spec.volumeName", &mut dropped);
            }
            (true, "PersistentVolume") => {
                if let Some(Value::Object(claim)) = spec.get_mut("claimRef") {
                    remove(claim, "uid", "spec.claimRef.uid", &mut dropped);
                    remove(
                        claim,
                        "resourceVersion",
                        "spec.claimRef.resourceVersion",
                        &mut dropped,
                    );
                }
            }
            (true, "Namespace") => {
                remove(spec, "finalizers", "spec.finalizers", &mut dropped);
            }
            _ => {}
        }
        // Pod templates: their (null) creationTimestamp.
        if let Some(Value::Object(tmeta)) =
            spec.get_mut("template").and_then(|t| t.get_mut("metadata"))
        {
            remove(
                tmeta,
                "creationTimestamp",
                "spec.template.metadata.creationTimestamp",
                &mut dropped,
            );
        }
    }
    if core
        && kind == "Namespace"
        && root
            .get("spec")
            .is_some_and(|s| s == &Value::Object(Map::new()))
    {
        root.remove("spec");
    }
    if group == "batch" && kind == "Job" {
        strip_job(obj, &mut dropped);
    }
    dropped
}

/// A Job's generated selector and the labels derived from its uid (unless the
/// user chose the selector: `manualSelector`).
fn strip_job(obj: &mut Value, dropped: &mut Vec<String>) {
    if obj.pointer("/spec/manualSelector").and_then(Value::as_bool) == Some(true) {
        return;
    }
    if let Some(Value::Object(spec)) = obj.get_mut("spec") {
        remove(spec, "selector", "spec.selector", dropped);
    }
    for (ptr, at) in [
        (
            "/spec/template/metadata/labels",
            "spec.template.metadata.labels",
        ),
        ("/metadata/labels", "metadata.labels"),
    ] {
        if let Some(Value::Object(labels)) = obj.pointer_mut(ptr) {
            for l in JOB_UID_LABELS {
                remove(labels, l, &format!("{at}.{l}"), dropped);
            }
        }
    }
}

fn strip_metadata(
    meta: &mut Map<String, Value>,
    at: &str,
    opts: ApplyOptions,
    dropped: &mut Vec<String>,
) {
    for k in SERVER_METADATA {
        remove(meta, k, &format!("{at}.{k}"), dropped);
    }
    if meta
        .get("name")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty())
    {
        remove(meta, "generateName", &format!("{at}.generateName"), dropped);
    }
    if !opts.keep_owner_references {
        remove(
            meta,
            "ownerReferences",
            &format!("{at}.ownerReferences"),
            dropped,
        );
    }
    if let Some(Value::Object(ann)) = meta.get_mut("annotations") {
        for a in SERVER_ANNOTATIONS {
            remove(ann, a, &format!("{at}.annotations.{a}"), dropped);
        }
        if ann.is_empty() {
            meta.remove("annotations");
        }
    }
}

/// A Pod's spec: the node it ran on and the service account token volume the
/// admission plugin adds (applied back, the plugin adds a second one and the
/// Pod is refused for a duplicate mount path).
fn strip_pod_spec(spec: &mut Map<String, Value>, at: &str, dropped: &mut Vec<String>) {
    remove(spec, "nodeName", &format!("{at}.nodeName"), dropped);
    let mut token_volumes = Vec::new();
    if let Some(Value::Array(vols)) = spec.get_mut("volumes") {
        vols.retain(|v| {
            let name = v.get("name").and_then(Value::as_str).unwrap_or_default();
            let token = name.starts_with("kube-api-access-") && v.get("projected").is_some();
            if token {
                token_volumes.push(name.to_string());
            }
            !token
        });
        if vols.is_empty() {
            spec.remove("volumes");
        }
    }
    if token_volumes.is_empty() {
        return;
    }
    for list in ["containers", "initContainers", "ephemeralContainers"] {
        if let Some(Value::Array(cs)) = spec.get_mut(list) {
            for c in cs.iter_mut() {
                if let Some(Value::Object(c)) = Some(c)
                    && let Some(Value::Array(mounts)) = c.get_mut("volumeMounts")
                {
                    mounts.retain(|m| {
                        let n = m.get("name").and_then(Value::as_str).unwrap_or_default();
                        !token_volumes.iter().any(|t| t == n)
                    });
                    if mounts.is_empty() {
                        c.remove("volumeMounts");
                    }
                }
            }
        }
    }
    for name in token_volumes {
        dropped.push(format!("{at}.volumes[{name}] (service account token)"));
    }
}

fn remove(map: &mut Map<String, Value>, key: &str, path: &str, dropped: &mut Vec<String>) {
    if map.remove(key).is_some() {
        dropped.push(path.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pod_loses_node_owner_and_token_volume() {
        let mut pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web-1", "generateName": "web-", "uid": "u", "resourceVersion": "9",
                "ownerReferences": [{"uid": "o"}], "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "volumeMounts": [
                {"name": "kube-api-access-abcde", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"},
                {"name": "data", "mountPath": "/data"}]}],
                "volumes": [{"name": "kube-api-access-abcde", "projected": {}}, {"name": "data", "emptyDir": {}}]},
            "status": {"phase": "Running"}
        });
        let dropped = for_apply(&mut pod, ApplyOptions::default());
        assert_eq!(
            pod,
            json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "web-1", "labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
                    "volumes": [{"name": "data", "emptyDir": {}}]}
            })
        );
        assert!(dropped.contains(&"metadata.ownerReferences".to_string()));
        assert!(dropped.contains(&"spec.nodeName".to_string()));
    }

    #[test]
    fn owner_references_kept_on_request_and_headless_service_kept() {
        let mut svc = json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "s", "ownerReferences": [{"uid": "o"}]},
            "spec": {"clusterIP": "None", "clusterIPs": ["None"]}});
        for_apply(
            &mut svc,
            ApplyOptions {
                keep_owner_references: true,
            },
        );
        assert_eq!(svc["spec"]["clusterIP"], "None");
        assert!(svc["metadata"]["ownerReferences"].is_array());
    }
}
