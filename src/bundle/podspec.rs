//! The member's kubeadm static-pod manifest fragment (`etcd.yaml`, docs/design/pki.md
//! §2.1): the etcd container's command with the restored member's flags
//! (`--initial-cluster-state=new`, the token, URLs, the certificates under
//! `/etc/kubernetes/pki/etcd`, the data dir `/var/lib/etcd`) and kubeadm's
//! `etcd-data`/`etcd-certs` hostPath volumes mounted at the same paths.

/// A YAML scalar, double-quoted unless it is plainly safe.
fn scalar(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/.:,=_-@+%".contains(c))
        && !s.starts_with(['-', ':', '@', '%']);
    if plain {
        s.to_string()
    } else {
        format!("{:?}", s)
    }
}

/// The static pod for `flags` (the member's start flags for `data_dir` and
/// `pki_etcd_dir`, as `restore::flags::start_flags` makes them).
pub fn etcd_pod(flags: &[String], data_dir: &str, pki_etcd_dir: &str, adv_client: &str) -> String {
    let mut s = String::from(
        "# The restored member's etcd static pod (kubeadm's layout). Put it at\n\
         # /etc/kubernetes/manifests/etcd.yaml once `etcdsnap install` has placed\n\
         # the data dir and the certificates; kubeadm's other fields (probes,\n\
         # resources) may be merged in.\n\
         apiVersion: v1\n\
         kind: Pod\n\
         metadata:\n  name: etcd\n  namespace: kube-system\n",
    );
    s.push_str("  annotations:\n");
    s.push_str(&format!(
        "    kubeadm.kubernetes.io/etcd.advertise-client-urls: {}\n",
        scalar(adv_client)
    ));
    s.push_str("  labels:\n    component: etcd\n    tier: control-plane\n");
    s.push_str("spec:\n  hostNetwork: true\n  priorityClassName: system-node-critical\n");
    s.push_str("  securityContext:\n    seccompProfile:\n      type: RuntimeDefault\n");
    s.push_str("  containers:\n  - name: etcd\n    command:\n    - etcd\n");
    for f in flags {
        s.push_str(&format!("    - {}\n", scalar(f)));
    }
    s.push_str("    volumeMounts:\n");
    s.push_str(&format!(
        "    - mountPath: {}\n      name: etcd-data\n",
        scalar(data_dir)
    ));
    s.push_str(&format!(
        "    - mountPath: {}\n      name: etcd-certs\n",
        scalar(pki_etcd_dir)
    ));
    s.push_str("  volumes:\n");
    s.push_str(&format!(
        "  - hostPath:\n      path: {}\n      type: DirectoryOrCreate\n    name: etcd-data\n",
        scalar(data_dir)
    ));
    s.push_str(&format!(
        "  - hostPath:\n      path: {}\n      type: DirectoryOrCreate\n    name: etcd-certs\n",
        scalar(pki_etcd_dir)
    ));
    s
}
