//! The property the `start_files` fuzz target checks, shared with
//! `tests/bundle.rs` (which runs it over hostile inputs on every test run):
//! whatever names, URLs, token, client URLs and image reach the start-file
//! writers, either they are refused when parsed, or `etcd.env` and
//! `etcd.yaml` come out with no raw control character (but the line
//! breaks), the env file holds one `ETCD_…=` line per flag, and the pod
//! reads back (YAML) with the flags as its command, exactly.
//!
//! Input: fields separated by NUL: initial cluster, token, client URLs
//! (empty: none), image (empty: the default), release line.

use std::path::Path;

use etcdsnap::cluster::flags::{client_urls, env_text, start_flags};
use etcdsnap::cluster::membership::Cluster;
use etcdsnap::cluster::podspec::{PodInput, default_image, etcd_pod, is_image_ref};

fn no_raw_controls(what: &str, s: &str) {
    assert!(
        !s.chars().any(|c| c.is_control() && c != '\n'),
        "{what} holds a raw control character: {s:?}"
    );
}

pub fn check(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\0');
    let ic = parts.next().unwrap_or("");
    let token = parts.next().unwrap_or("");
    let clients = parts.next().unwrap_or("");
    let image = parts.next().unwrap_or("");
    let line = parts.next().unwrap_or("3.5");
    let Ok(cluster) = Cluster::parse(ic, token) else {
        return;
    };
    let members: Vec<_> = cluster.members.iter().collect();
    let spec = (!clients.is_empty()).then_some(clients);
    let Ok(given) = client_urls(spec, &members) else {
        return;
    };
    for m in &members {
        let flags = start_flags(
            &cluster,
            m,
            Path::new("/var/lib/etcd"),
            None,
            given.get(&m.name),
            Path::new("/etc/kubernetes/pki/etcd"),
        );
        let env = env_text(&flags);
        no_raw_controls("etcd.env", &env);
        assert_eq!(env.lines().count(), flags.len(), "{env}");
        for l in env.lines() {
            assert!(l.starts_with("ETCD_") && l.contains('='), "{l:?}");
        }
        let mut pod_flags = flags.clone();
        pod_flags.push("--listen-metrics-urls=http://127.0.0.1:2381".into());
        let image = if image.is_empty() {
            default_image(line).unwrap_or("registry.k8s.io/etcd:3.5.16-0")
        } else {
            image
        };
        let pod = etcd_pod(&PodInput {
            flags: &pod_flags,
            image,
            line,
            data_dir: "/var/lib/etcd",
            pki_etcd_dir: "/etc/kubernetes/pki/etcd",
            advertise_client: "https://127.0.0.1:2379",
        });
        let pod = match pod {
            Ok(p) => p,
            Err(e) => {
                // Only an image or release line the caller gave may be refused.
                assert!(
                    !is_image_ref(image) || line.chars().any(char::is_control),
                    "refused valid input: {e}"
                );
                continue;
            }
        };
        no_raw_controls("etcd.yaml", &pod);
        let v: serde_json::Value =
            serde_yaml_ng::from_str(&pod).unwrap_or_else(|e| panic!("{e}: {pod}"));
        let command: Vec<&str> = v["spec"]["containers"][0]["command"]
            .as_array()
            .expect("a command")
            .iter()
            .map(|c| c.as_str().expect("a string"))
            .collect();
        assert_eq!(command[0], "etcd");
        assert_eq!(
            command[1..],
            pod_flags.iter().map(String::as_str).collect::<Vec<_>>()[..]
        );
        assert_eq!(v["spec"]["containers"][0]["image"], image);
    }
}
