//! Go's `(*x509.Certificate).VerifyHostname` and its `HostnameError`
//! message, rewritten from the rules in the spec (§3.4): an IP matches
//! only IP SANs (IPv4 equals its IPv4-mapped IPv6 form); names match DNS
//! SANs case-insensitively, a trailing dot ignored, `*` as a whole first
//! label matching exactly one label when both sides are valid host names,
//! else exact match only; the subject's CN is never used.

use std::net::IpAddr;

use super::cert::Cert;

/// `Ok` when `host` (a URL host, IPv6 possibly in brackets) is covered by
/// the certificate's SANs; else Go's error string.
pub fn verify_hostname(c: &Cert, host: &str) -> Result<(), String> {
    let candidate = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .filter(|_| host.len() >= 3)
        .unwrap_or(host);
    if let Ok(ip) = candidate.parse::<IpAddr>() {
        if c.ips.iter().any(|s| same_ip(*s, ip)) {
            return Ok(());
        }
        return Err(hostname_error(c, candidate));
    }
    let name = host.to_ascii_lowercase();
    let valid_name = valid_hostname(&name, false);
    for san in &c.dns_names {
        let ok = if valid_name && valid_hostname(san, true) {
            match_hostnames(san, &name)
        } else {
            match_exactly(san, &name)
        };
        if ok {
            return Ok(());
        }
    }
    Err(hostname_error(c, host))
}

/// `net.IP.Equal`: IPv4 and its IPv4-mapped IPv6 form are the same.
fn same_ip(a: IpAddr, b: IpAddr) -> bool {
    canonical(a) == canonical(b)
}

fn canonical(a: IpAddr) -> IpAddr {
    match a {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(a, IpAddr::V4),
        v4 => v4,
    }
}

/// Go's `net.IP.String()`: IPv4-mapped addresses print as IPv4.
pub fn go_ip_string(a: IpAddr) -> String {
    canonical(a).to_string()
}

/// `x509.HostnameError.Error()`.
fn hostname_error(c: &Cert, host: &str) -> String {
    if !c.has_san_ext && match_hostnames(&c.common_name, host) {
        return "x509: certificate relies on legacy Common Name field, use SANs instead".into();
    }
    let valid = if host.parse::<IpAddr>().is_ok() {
        if c.ips.is_empty() {
            return format!(
                "x509: cannot validate certificate for {host} because it doesn't contain any IP SANs"
            );
        }
        c.ips
            .iter()
            .map(|i| go_ip_string(*i))
            .collect::<Vec<_>>()
            .join(", ")
    } else {
        c.dns_names.join(", ")
    };
    if valid.is_empty() {
        return format!("x509: certificate is not valid for any names, but wanted to match {host}");
    }
    format!("x509: certificate is valid for {valid}, not {host}")
}

/// Go's `validHostname`: labels of `[A-Za-z0-9_-]`, no leading `-`; a
/// pattern may have `*` as its whole first label.
fn valid_hostname(host: &str, is_pattern: bool) -> bool {
    let host = if is_pattern {
        host
    } else {
        host.strip_suffix('.').unwrap_or(host)
    };
    if host.is_empty() || host == "*" {
        return false;
    }
    for (i, part) in host.split('.').enumerate() {
        if part.is_empty() {
            return false;
        }
        if is_pattern && i == 0 && part == "*" {
            continue;
        }
        for (j, ch) in part.chars().enumerate() {
            let ok = ch.is_ascii_alphanumeric() || ch == '_' || (ch == '-' && j != 0);
            if !ok {
                return false;
            }
        }
    }
    true
}

fn match_exactly(a: &str, b: &str) -> bool {
    if a.is_empty() || a == "." || b.is_empty() || b == "." {
        return false;
    }
    a.eq_ignore_ascii_case(b)
}

fn match_hostnames(pattern: &str, host: &str) -> bool {
    let pattern = pattern.to_ascii_lowercase();
    let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    if pattern.is_empty() || host.is_empty() {
        return false;
    }
    let p: Vec<&str> = pattern.split('.').collect();
    let h: Vec<&str> = host.split('.').collect();
    if p.len() != h.len() {
        return false;
    }
    p.iter()
        .zip(&h)
        .enumerate()
        .all(|(i, (pp, hp))| (i == 0 && *pp == "*") || pp == hp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(dns: &[&str], ips: &[&str]) -> Cert {
        Cert {
            der: vec![],
            subject: "CN=x".into(),
            common_name: "x".into(),
            raw_subject: vec![],
            raw_issuer: vec![],
            not_before: 0,
            not_after: 0,
            version: 3,
            basic_constraints: None,
            eku: None,
            has_san_ext: true,
            dns_names: dns.iter().map(|s| s.to_string()).collect(),
            ips: ips.iter().map(|s| s.parse().unwrap()).collect(),
            public: None,
            key_alg: String::new(),
            sig_alg: String::new(),
            sig_params: None,
            signature: vec![],
            tbs: vec![],
        }
    }

    #[test]
    fn go_rules() {
        let c = cert(
            &["*.a.b", "Node1", "localhost"],
            &["10.0.0.5", "127.0.0.1", "::1"],
        );
        assert!(verify_hostname(&c, "x.a.b").is_ok());
        assert!(verify_hostname(&c, "X.A.B.").is_ok());
        assert!(verify_hostname(&c, "a.b").is_err());
        assert!(verify_hostname(&c, "y.x.a.b").is_err());
        assert!(verify_hostname(&c, "node1").is_ok());
        assert!(verify_hostname(&c, "[::1]").is_ok());
        assert!(verify_hostname(&c, "::ffff:10.0.0.5").is_ok());
        assert_eq!(
            verify_hostname(&c, "10.0.0.9").unwrap_err(),
            "x509: certificate is valid for 10.0.0.5, 127.0.0.1, ::1, not 10.0.0.9"
        );
        assert_eq!(
            verify_hostname(&c, "other").unwrap_err(),
            "x509: certificate is valid for *.a.b, Node1, localhost, not other"
        );
        let dns_only = cert(&["m1"], &[]);
        assert_eq!(
            verify_hostname(&dns_only, "10.0.0.9").unwrap_err(),
            "x509: cannot validate certificate for 10.0.0.9 because it doesn't contain any IP SANs"
        );
        let f = cert(&["f*.a.b"], &[]);
        assert!(verify_hostname(&f, "fo.a.b").is_err());
    }
}
