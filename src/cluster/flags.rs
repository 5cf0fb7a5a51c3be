//! The flags a restored member starts with, shared by every command that
//! restores (`restore`, `bundle`): URLs to advertise and to listen on, the
//! data and WAL dirs, the cluster, the TLS files when a URL is https, and
//! the same as an environment file etcd reads.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;

use super::membership::{Cluster, Member};

/// Why a `--client-urls` value cannot give the members their client URLs.
#[derive(Debug, thiserror::Error)]
pub enum FlagsError {
    /// An item has no `NAME=` before its URL; the value is that item.
    #[error("--client-urls {0}: give NAME=URL for each member")]
    Unnamed(String),
    #[error(
        "--client-urls: {0:?} is not a URL (scheme://host:port, no spaces or control characters)"
    )]
    /// The URL given for a member is not one a member can advertise (no
    /// `scheme://host`, a scheme other than http(s)/unix(s), no port, a
    /// path, or spaces or control characters); the value is that URL.
    NotUrl(String),
    /// An item names a member that is not being restored; the value is
    /// that name.
    #[error("--client-urls names {0:?}, which is not a member being restored")]
    NotMember(String),
}

/// `scheme://host:port…` split into (scheme, host, port).
pub fn url_parts(u: &str) -> Option<(&str, &str, Option<&str>)> {
    let (scheme, rest) = u.split_once("://")?;
    let hostport = rest.split('/').next().unwrap_or(rest);
    if let Some(v6) = hostport.strip_prefix('[') {
        let (h, after) = v6.split_once(']')?;
        return Some((scheme, h, after.strip_prefix(':')));
    }
    match hostport.rsplit_once(':') {
        Some((h, p)) => Some((scheme, h, Some(p))),
        None => Some((scheme, hostport, None)),
    }
}

/// The URL etcd can bind for an advertised URL: an IP or `localhost` as is,
/// a host name on every address (etcd refuses names in listen URLs).
pub fn bind_url(u: &str) -> String {
    match url_parts(u) {
        Some((scheme, host, port)) if host != "localhost" && host.parse::<IpAddr>().is_err() => {
            match port {
                Some(p) => format!("{scheme}://0.0.0.0:{p}"),
                None => format!("{scheme}://0.0.0.0"),
            }
        }
        _ => u.to_string(),
    }
}

/// --client-urls: NAME=URL,… for any member, or bare URLs for the one member.
pub fn client_urls(
    spec: Option<&str>,
    members: &[&Member],
) -> Result<HashMap<String, Vec<String>>, FlagsError> {
    let mut map: HashMap<String, Vec<String>> = HashMap::new();
    let Some(spec) = spec else { return Ok(map) };
    for item in spec.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let named = item.split_once('=').filter(|(n, _)| !n.contains("://"));
        let (name, url) = match named {
            Some((n, u)) => (n.to_string(), u.to_string()),
            None if members.len() == 1 => (members[0].name.clone(), item.to_string()),
            None => return Err(FlagsError::Unnamed(item.to_string())),
        };
        if url_parts(&url).is_none() || super::membership::check_url(&name, &url).is_err() {
            return Err(FlagsError::NotUrl(url));
        }
        if !members.iter().any(|m| m.name == name) {
            return Err(FlagsError::NotMember(name));
        }
        map.entry(name).or_default().push(url);
    }
    Ok(map)
}

/// The client URLs member `m` advertises and listens on: the given ones
/// (listening on what etcd can bind for each), else as kubeadm:
/// `<scheme>://<peer host>:2379` advertised, and loopback too.
pub fn client_urls_of(
    m: &Member,
    given_client: Option<&Vec<String>>,
) -> (Vec<String>, Vec<String>) {
    match given_client {
        Some(urls) => (urls.clone(), urls.iter().map(|u| bind_url(u)).collect()),
        None => {
            let (scheme, host) = m
                .peer_urls
                .first()
                .and_then(|u| url_parts(u))
                .map_or(("http", "127.0.0.1"), |(s, h, _)| (s, h));
            let host = if host.contains(':') {
                format!("[{host}]")
            } else {
                host.to_string()
            };
            let adv = format!("{scheme}://{host}:2379");
            let mut listen = vec![format!("{scheme}://127.0.0.1:2379")];
            let bound = bind_url(&adv);
            if !listen.contains(&bound) && host != "localhost" {
                listen.push(bound);
            }
            (vec![adv], listen)
        }
    }
}

/// Every flag a member needs to boot from its restored data: absolute paths,
/// peer and client URLs to advertise and to listen on, the TLS files when a
/// URL is https (kubeadm's paths under `pki`).
pub fn start_flags(
    cluster: &Cluster,
    m: &Member,
    data_dir: &Path,
    wal_dir: Option<&Path>,
    given_client: Option<&Vec<String>>,
    pki: &Path,
) -> Vec<String> {
    let peer = m.peer_urls.join(",");
    let mut listen_peer: Vec<String> = m.peer_urls.iter().map(|u| bind_url(u)).collect();
    listen_peer.dedup();
    let (advertise_client, listen_client) = client_urls_of(m, given_client);
    let mut f = vec![
        format!("--name={}", m.name),
        format!("--data-dir={}", data_dir.display()),
    ];
    if let Some(w) = wal_dir {
        f.push(format!("--wal-dir={}", w.display()));
    }
    f.extend([
        format!("--initial-advertise-peer-urls={peer}"),
        format!("--listen-peer-urls={}", listen_peer.join(",")),
        format!("--advertise-client-urls={}", advertise_client.join(",")),
        format!("--listen-client-urls={}", listen_client.join(",")),
        format!("--initial-cluster={}", cluster.initial_cluster),
        format!("--initial-cluster-token={}", cluster.token),
        "--initial-cluster-state=new".into(),
    ]);
    let https = |urls: &[String]| urls.iter().any(|u| u.starts_with("https://"));
    let file = |n: &str| pki.join(n).display().to_string();
    if https(&advertise_client) || https(&listen_client) {
        f.extend([
            format!("--cert-file={}", file("server.crt")),
            format!("--key-file={}", file("server.key")),
            format!("--trusted-ca-file={}", file("ca.crt")),
            "--client-cert-auth=true".into(),
        ]);
    }
    if https(&m.peer_urls) {
        f.extend([
            format!("--peer-cert-file={}", file("peer.crt")),
            format!("--peer-key-file={}", file("peer.key")),
            format!("--peer-trusted-ca-file={}", file("ca.crt")),
            "--peer-client-cert-auth=true".into(),
        ]);
    }
    f
}

/// The flags as an environment file etcd reads (`ETCD_NAME=…`), one per line,
/// quoted for the shell (`set -a; . ./m.env`) and systemd's EnvironmentFile.
pub fn env_text(flags: &[String]) -> String {
    flags
        .iter()
        .filter_map(|f| f.strip_prefix("--"))
        .filter_map(|f| f.split_once('='))
        .map(|(k, v)| {
            let safe = v
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "/.:,=_-@+%[]".contains(c));
            let v = if safe {
                v.to_string()
            } else {
                format!("'{}'", v.replace('\'', "'\\''"))
            };
            format!("ETCD_{}={v}\n", k.to_uppercase().replace('-', "_"))
        })
        .collect()
}
