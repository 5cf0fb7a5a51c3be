//! The member's etcd static pod (`etcd.yaml`): what kubeadm writes to
//! `/etc/kubernetes/manifests/etcd.yaml` (docs/design/pki.md §2.1), for the restored
//! member's flags — a Pod kubelet runs as it is, not a fragment to merge:
//! the image, kubeadm's metadata, `hostNetwork`, the priority class, the
//! seccomp profile, resource requests, HTTP probes on the member's
//! `--listen-metrics-urls` (the paths its etcd release serves), and the
//! `etcd-data`/`etcd-certs` hostPath volumes mounted at the same paths.
//!
//! The document is built as a JSON value and written by [`crate::yaml`],
//! whose output every Kubernetes YAML reader reads back exactly; a value
//! with a control character is refused rather than written.

use serde_json::{Map, Value, json};

/// Why no static pod can be written for a member's flags and paths.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PodError {
    /// The flags have no http `--listen-metrics-urls`, which the probes
    /// need.
    #[error(
        "etcd.yaml: no --listen-metrics-urls=http://HOST:PORT among the flags: kubelet's probes \
         need an http metrics listener"
    )]
    NoMetrics,
    /// A value that would go into the document holds a control character.
    #[error("etcd.yaml: {what} {value:?} holds a control character")]
    Control {
        /// What the value is (`flag`, `image`, `data dir`, …).
        what: &'static str,
        /// The value as given.
        value: String,
    },
    /// The image is not a plausible image reference; the value is the image
    /// as given.
    #[error("etcd.yaml: image {0:?} is not an image reference")]
    Image(String),
}

/// The image kubeadm runs for etcd release line `line` (`3.4`–`3.6`: the
/// `registry.k8s.io/etcd` tag a kubeadm release of that line shipped);
/// `None` for a line no kubeadm ships (`--image` is then needed).
pub fn default_image(line: &str) -> Option<&'static str> {
    match line {
        "3.4" => Some("registry.k8s.io/etcd:3.4.13-0"),
        "3.5" => Some("registry.k8s.io/etcd:3.5.16-0"),
        "3.6" => Some("registry.k8s.io/etcd:3.6.4-0"),
        _ => None,
    }
}

/// Whether `s` is a plausible image reference: non-empty, no whitespace or
/// control characters, at most 4096 bytes.
pub fn is_image_ref(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 4096
        && !s.starts_with(['-', ':', '/', '@'])
        && s.chars().all(|c| c.is_ascii_graphic())
}

/// `http://HOST:PORT` of the first http URL of `--listen-metrics-urls`.
fn metrics_listener(flags: &[String]) -> Option<(String, u16)> {
    let v = flags
        .iter()
        .find_map(|f| f.strip_prefix("--listen-metrics-urls="))?;
    v.split(',').find_map(|u| {
        let (scheme, host, port) = super::flags::url_parts(u.trim())?;
        if scheme != "http" {
            return None;
        }
        let port: u16 = port?.parse().ok()?;
        let host = if host.is_empty() || host == "0.0.0.0" {
            "127.0.0.1"
        } else if host == "::" {
            "::1"
        } else {
            host
        };
        Some((host.to_string(), port))
    })
}

fn probe(host: &str, port: u16, path: &str, fields: &[(&str, i64)]) -> Value {
    let mut m = Map::new();
    for (k, v) in fields {
        if *k == "failureThreshold" {
            m.insert((*k).into(), json!(v));
        }
    }
    m.insert(
        "httpGet".into(),
        json!({"host": host, "path": path, "port": port, "scheme": "HTTP"}),
    );
    for (k, v) in fields {
        if *k != "failureThreshold" {
            m.insert((*k).into(), json!(v));
        }
    }
    Value::Object(m)
}

/// The probes kubeadm sets for etcd release line `line` on the metrics
/// listener: `/livez` and `/readyz` from 3.6 (which serves them); before,
/// `/health` (3.4 and 3.5.1 answer 404 on `/livez`).
fn probes(line: &str, host: &str, port: u16) -> Vec<(&'static str, Value)> {
    let live = [
        ("failureThreshold", 8),
        ("initialDelaySeconds", 10),
        ("periodSeconds", 10),
        ("timeoutSeconds", 15),
    ];
    let start = [
        ("failureThreshold", 24),
        ("initialDelaySeconds", 10),
        ("periodSeconds", 10),
        ("timeoutSeconds", 15),
    ];
    if matches!(line, "3.4" | "3.5") {
        vec![
            (
                "livenessProbe",
                probe(
                    host,
                    port,
                    "/health?exclude=NOSPACE&serializable=true",
                    &live,
                ),
            ),
            (
                "startupProbe",
                probe(host, port, "/health?serializable=false", &start),
            ),
        ]
    } else {
        vec![
            ("livenessProbe", probe(host, port, "/livez", &live)),
            (
                "readinessProbe",
                probe(
                    host,
                    port,
                    "/readyz",
                    &[
                        ("failureThreshold", 3),
                        ("periodSeconds", 1),
                        ("timeoutSeconds", 15),
                    ],
                ),
            ),
            ("startupProbe", probe(host, port, "/readyz", &start)),
        ]
    }
}

/// What goes into one static pod.
pub struct PodInput<'a> {
    /// The member's start flags (`cluster::flags::start_flags` plus
    /// `--listen-metrics-urls`).
    pub flags: &'a [String],
    /// The container image etcd runs from (e.g. [`default_image`]'s).
    pub image: &'a str,
    /// The etcd release line the data dir is written for (`3.5`).
    pub line: &'a str,
    /// The member's data dir on the host, mounted at the same path as the
    /// `etcd-data` volume.
    pub data_dir: &'a str,
    /// The host directory of the member's etcd certificates and keys,
    /// mounted at the same path as the `etcd-certs` volume.
    pub pki_etcd_dir: &'a str,
    /// The client URLs the member advertises, comma-separated.
    pub advertise_client: &'a str,
}

fn no_control(what: &'static str, s: &str) -> Result<(), PodError> {
    if s.chars().any(char::is_control) {
        return Err(PodError::Control {
            what,
            value: s.to_string(),
        });
    }
    Ok(())
}

/// The static pod as kubeadm writes it, for `p`.
pub fn etcd_pod(p: &PodInput<'_>) -> Result<String, PodError> {
    for f in p.flags {
        no_control("flag", f)?;
    }
    for (what, s) in [
        ("image", p.image),
        ("etcd release", p.line),
        ("data dir", p.data_dir),
        ("PKI dir", p.pki_etcd_dir),
        ("advertised client URL", p.advertise_client),
    ] {
        no_control(what, s)?;
    }
    if !is_image_ref(p.image) {
        return Err(PodError::Image(p.image.to_string()));
    }
    let (host, port) = metrics_listener(p.flags).ok_or(PodError::NoMetrics)?;
    let mut command = vec![Value::from("etcd")];
    command.extend(p.flags.iter().map(|f| Value::from(f.as_str())));
    let mut container = Map::new();
    container.insert("command".into(), Value::Array(command));
    container.insert("image".into(), p.image.into());
    container.insert("imagePullPolicy".into(), "IfNotPresent".into());
    let mut probes = probes(p.line, &host, port).into_iter();
    if let Some((k, v)) = probes.next() {
        container.insert(k.into(), v);
    }
    container.insert("name".into(), "etcd".into());
    for (k, v) in probes {
        if k == "readinessProbe" {
            container.insert(k.into(), v);
        } else {
            // startupProbe after resources, as the keys sort.
            container.insert(
                "resources".into(),
                json!({"requests": {"cpu": "100m", "memory": "100Mi"}}),
            );
            container.insert(k.into(), v);
        }
    }
    container.insert(
        "volumeMounts".into(),
        json!([
            {"mountPath": p.data_dir, "name": "etcd-data"},
            {"mountPath": p.pki_etcd_dir, "name": "etcd-certs"},
        ]),
    );
    let pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "annotations": {
                "kubeadm.kubernetes.io/etcd.advertise-client-urls": p.advertise_client,
            },
            "labels": {"component": "etcd", "tier": "control-plane"},
            "name": "etcd",
            "namespace": "kube-system",
        },
        "spec": {
            "containers": [Value::Object(container)],
            "hostNetwork": true,
            "priorityClassName": "system-node-critical",
            "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
            "volumes": [
                {
                    "hostPath": {"path": p.pki_etcd_dir, "type": "DirectoryOrCreate"},
                    "name": "etcd-certs",
                },
                {
                    "hostPath": {"path": p.data_dir, "type": "DirectoryOrCreate"},
                    "name": "etcd-data",
                },
            ],
        },
    });
    Ok(format!(
        "# The restored member's etcd static pod, as kubeadm writes it: put it at\n\
         # /etc/kubernetes/manifests/etcd.yaml once `etcdsnap install` has placed\n\
         # the data dir and the certificates.\n{}",
        crate::yaml::to_string(&pod)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags() -> Vec<String> {
        vec![
            "--name=m1".into(),
            "--listen-metrics-urls=http://127.0.0.1:2381".into(),
        ]
    }

    #[test]
    fn probes_follow_the_metrics_listener_and_the_release() {
        let f = flags();
        let p = PodInput {
            flags: &f,
            image: "registry.k8s.io/etcd:3.6.4-0",
            line: "3.6",
            data_dir: "/var/lib/etcd",
            pki_etcd_dir: "/etc/kubernetes/pki/etcd",
            advertise_client: "https://10.0.0.1:2379",
        };
        let y = etcd_pod(&p).unwrap();
        assert!(y.contains("path: /livez"), "{y}");
        assert!(y.contains("port: 2381"), "{y}");
        let y = etcd_pod(&PodInput { line: "3.5", ..p }).unwrap();
        assert!(!y.contains("/livez"), "{y}");
        assert!(!y.contains("readinessProbe"), "{y}");
    }

    #[test]
    fn refuses_what_it_cannot_write() {
        let f = vec!["--name=m1".to_string()];
        let p = PodInput {
            flags: &f,
            image: "etcd:1",
            line: "3.6",
            data_dir: "/var/lib/etcd",
            pki_etcd_dir: "/p",
            advertise_client: "",
        };
        assert_eq!(etcd_pod(&p), Err(PodError::NoMetrics));
        let f = vec!["--x=a\nb".to_string()];
        assert!(matches!(
            etcd_pod(&PodInput { flags: &f, ..p }),
            Err(PodError::Control { .. })
        ));
        let f = flags();
        assert!(matches!(
            etcd_pod(&PodInput {
                flags: &f,
                image: "",
                ..p
            }),
            Err(PodError::Image(_))
        ));
    }
}
