//! Reaching one etcd member: endpoints, TLS files, timeouts.
//!
//! Why its own module: every live command dials the same way (etcdctl's
//! flags and `ETCDCTL_*` variables, flags winning), and every call it makes
//! must end within a bound — a member that does not answer is an error
//! within the dial timeout, never a hang. The client (etcd-client over
//! tonic/rustls) is driven by a current-thread tokio runtime; each call is
//! wrapped in a timeout here rather than trusted to the channel, whose
//! balancer waits for a ready endpoint indefinitely.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};

use super::insecure::ClientIdentity;

/// etcdctl's defaults: `--dial-timeout 2s`, `--command-timeout 5s`.
pub const DEFAULT_DIAL_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one request to a member may take unless told otherwise.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a live cluster cannot be reached or answered.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// No endpoint given.
    #[error("no endpoint given: pass --endpoints or set ETCDCTL_ENDPOINTS")]
    NoEndpoint,
    /// A TLS file cannot be read.
    #[error("{what} {}: {source}", .path.display())]
    File {
        /// Which file (`--cacert`, `--cert`, `--key`).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A TLS file is not usable PEM.
    #[error("{what} {}: {why}", .path.display())]
    Pem {
        /// Which file (`--cacert`, `--cert`, `--key`).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// Only one of --cert and --key.
    #[error("--cert and --key go together: {0}")]
    HalfIdentity(&'static str),
    /// --insecure-skip-tls-verify cannot be honoured.
    #[error("--insecure-skip-tls-verify: {0}")]
    Insecure(String),
    /// The endpoint cannot be dialled.
    #[error("{endpoint}: {why}")]
    Dial {
        /// The endpoint.
        endpoint: String,
        /// What is wrong.
        why: String,
    },
    /// A setting has a value it cannot take.
    #[error("bad {name} {value:?}: {why}")]
    BadSetting {
        /// The setting.
        name: &'static str,
        /// The value given.
        value: String,
        /// Why it cannot be taken.
        why: String,
    },
    /// The network runtime cannot start.
    #[error("cannot start the network runtime: {0}")]
    Runtime(std::io::Error),
    // The client's error is rendered here (not chained as a source: its
    // Display repeats tonic's debug form of the whole chain).
    /// The client cannot connect to the endpoint.
    #[error("{endpoint}: {}", describe_rpc_error(.err))]
    Client {
        /// The endpoint.
        endpoint: String,
        /// The client's error.
        err: etcd_client::Error,
    },
    /// A call to the member failed.
    #[error("{endpoint}: {call}: {}", describe_rpc_error(.err))]
    Call {
        /// The endpoint.
        endpoint: String,
        /// The call (`Status`, `MemberList` …).
        call: &'static str,
        /// The client's error.
        err: etcd_client::Error,
    },
    /// A call got no answer in time.
    #[error(
        "{endpoint}: no answer to {call} within {} (is the endpoint right, the member up, and TLS as \
         the member expects: http vs https, --cacert/--cert/--key?)",
        humantime::format_duration(*.after)
    )]
    Timeout {
        /// The endpoint.
        endpoint: String,
        /// The call (`Status`, `MemberList` …).
        call: &'static str,
        /// How long it waited.
        after: Duration,
    },
}

/// The gRPC status message, with its code, when the error is one.
fn describe_rpc_error(e: &etcd_client::Error) -> String {
    match e {
        etcd_client::Error::GRpcStatus(s) => {
            // The status, then the innermost cause (the OS or TLS error),
            // not tonic's debug rendering of the whole chain.
            let mut msg = format!("{:?}: {}", s.code(), s.message());
            let mut cause = std::error::Error::source(s);
            let mut last = None;
            while let Some(c) = cause {
                last = Some(c.to_string());
                cause = c.source();
            }
            if let Some(l) = last
                && !msg.contains(&l)
            {
                msg.push_str(": ");
                msg.push_str(&l);
            }
            msg
        }
        other => other.to_string(),
    }
}

/// TLS files, as etcdctl takes them.
#[derive(Clone, Debug, Default)]
pub struct TlsFiles {
    /// The CA bundle to verify members with (`--cacert`).
    pub cacert: Option<PathBuf>,
    /// The client certificate (`--cert`).
    pub cert: Option<PathBuf>,
    /// The client key (`--key`).
    pub key: Option<PathBuf>,
    /// Accept any server certificate (`--insecure-skip-tls-verify`).
    pub insecure_skip_verify: bool,
}

impl TlsFiles {
    fn any(&self) -> bool {
        self.cacert.is_some() || self.cert.is_some() || self.key.is_some()
    }
}

/// How to reach the cluster: endpoints, TLS, timeouts.
#[derive(Clone, Debug)]
pub struct ConnectSpec {
    /// The endpoints to reach.
    pub endpoints: Vec<String>,
    /// The TLS files.
    pub tls: TlsFiles,
    /// How long dialling may take.
    pub dial_timeout: Duration,
    /// How long one request may take.
    pub command_timeout: Duration,
}

/// The flags a user gave; `None` means "not given" (the environment or the
/// default applies).
#[derive(Clone, Debug, Default)]
pub struct GivenSettings {
    /// `--endpoints`, else `ETCDCTL_ENDPOINTS`.
    pub endpoints: Vec<String>,
    /// `--cacert`, else `ETCDCTL_CACERT`.
    pub cacert: Option<PathBuf>,
    /// `--cert`, else `ETCDCTL_CERT`.
    pub cert: Option<PathBuf>,
    /// `--key`, else `ETCDCTL_KEY`.
    pub key: Option<PathBuf>,
    /// `--insecure-skip-tls-verify`.
    pub insecure_skip_verify: bool,
    /// `--dial-timeout` as given.
    pub dial_timeout: Option<String>,
    /// `--command-timeout` as given.
    pub command_timeout: Option<String>,
}

/// A Go-style duration (`2s`, `500ms`, `1m30s`), as etcdctl's flags take.
pub fn parse_duration(name: &'static str, s: &str) -> Result<Duration, LiveError> {
    let bad = |why: String| LiveError::BadSetting {
        name,
        value: s.to_string(),
        why,
    };
    // humantime wants a space between units ("1m 30s"); Go writes "1m30s".
    let mut spaced = String::new();
    let mut prev_alpha = false;
    for ch in s.trim().chars() {
        if ch.is_ascii_digit() && prev_alpha {
            spaced.push(' ');
        }
        prev_alpha = ch.is_ascii_alphabetic();
        spaced.push(ch);
    }
    let d = humantime::parse_duration(&spaced).map_err(|e| bad(e.to_string()))?;
    if d.is_zero() {
        return Err(bad("must be more than zero".into()));
    }
    Ok(d)
}

impl ConnectSpec {
    /// Flags first, then `ETCDCTL_ENDPOINTS` (comma-separated),
    /// `ETCDCTL_CACERT`, `ETCDCTL_CERT`, `ETCDCTL_KEY`,
    /// `ETCDCTL_DIAL_TIMEOUT`, `ETCDCTL_COMMAND_TIMEOUT`,
    /// `ETCDCTL_INSECURE_SKIP_TLS_VERIFY`, then etcdctl's defaults.
    pub fn resolve(
        given: GivenSettings,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<ConnectSpec, LiveError> {
        let env = |n: &str| env(n).filter(|v| !v.is_empty());
        let mut endpoints: Vec<String> = given
            .endpoints
            .iter()
            .flat_map(|e| e.split(','))
            .map(|e| e.trim().to_string())
            .filter(|e| !e.is_empty())
            .collect();
        if endpoints.is_empty()
            && let Some(v) = env("ETCDCTL_ENDPOINTS")
        {
            endpoints = v
                .split(',')
                .map(|e| e.trim().to_string())
                .filter(|e| !e.is_empty())
                .collect();
        }
        if endpoints.is_empty() {
            return Err(LiveError::NoEndpoint);
        }
        let path = |flag: Option<PathBuf>, var: &str| flag.or_else(|| env(var).map(PathBuf::from));
        let tls = TlsFiles {
            cacert: path(given.cacert, "ETCDCTL_CACERT"),
            cert: path(given.cert, "ETCDCTL_CERT"),
            key: path(given.key, "ETCDCTL_KEY"),
            insecure_skip_verify: given.insecure_skip_verify
                || env("ETCDCTL_INSECURE_SKIP_TLS_VERIFY").is_some_and(|v| v == "true"),
        };
        let duration =
            |flag: Option<String>, var: &str, name, default| match flag.or_else(|| env(var)) {
                Some(s) => parse_duration(name, &s),
                None => Ok(default),
            };
        Ok(ConnectSpec {
            endpoints,
            tls,
            dial_timeout: duration(
                given.dial_timeout,
                "ETCDCTL_DIAL_TIMEOUT",
                "dial timeout",
                DEFAULT_DIAL_TIMEOUT,
            )?,
            command_timeout: duration(
                given.command_timeout,
                "ETCDCTL_COMMAND_TIMEOUT",
                "command timeout",
                DEFAULT_COMMAND_TIMEOUT,
            )?,
        })
    }
}

/// The runtime the live commands run their calls on, and the settings.
pub struct Live {
    rt: tokio::runtime::Runtime,
    /// How members are reached.
    pub spec: ConnectSpec,
    tls: Option<TlsOptions>,
    /// With --insecure-skip-tls-verify: our own TLS settings (no server check).
    insecure: Option<rustls::ClientConfig>,
}

/// The rustls settings for --insecure-skip-tls-verify (the client identity
/// read as for the normal path; a CA, if given, is not used).
fn insecure_config(files: &TlsFiles) -> Result<rustls::ClientConfig, LiveError> {
    let identity = client_identity(files)?;
    super::insecure::client_config(identity.as_ref()).map_err(LiveError::Insecure)
}

/// One member reached: its endpoint, a client bound to it alone, and its
/// Status (asked at connect time, within the dial timeout).
pub struct Member {
    /// The endpoint it was reached at.
    pub endpoint: String,
    /// The client connected to it.
    pub client: Client,
    /// Its answer to Status.
    pub status: etcd_client::StatusResponse,
}

impl Member {
    /// The member's ID, as its Status header says.
    pub fn id(&self) -> u64 {
        self.status.header().map_or(0, |h| h.member_id())
    }
    /// The member's cluster ID, as its Status header says.
    pub fn cluster_id(&self) -> u64 {
        self.status.header().map_or(0, |h| h.cluster_id())
    }
    /// The member's current revision.
    pub fn revision(&self) -> i64 {
        self.status.header().map_or(0, |h| h.revision())
    }
}

/// A TLS file's bytes, and how to report what is wrong in it.
fn read_tls_file<'p>(
    what: &'static str,
    path: &'p Path,
) -> Result<(Vec<u8>, impl Fn(String) -> LiveError + 'p), LiveError> {
    let bytes =
        crate::input::read_bounded(path, crate::input::SMALL_FILE_LIMIT).map_err(|source| {
            LiveError::File {
                what,
                path: path.to_path_buf(),
                source,
            }
        })?;
    let pem_err = move |why: String| LiveError::Pem {
        what,
        path: path.to_path_buf(),
        why,
    };
    Ok((bytes, pem_err))
}

/// PEM text of a certificate file that may be PEM or DER.
fn certificate_pem(what: &'static str, path: &Path) -> Result<Vec<u8>, LiveError> {
    let (bytes, pem_err) = read_tls_file(what, path)?;
    if crate::pki::parse::is_pem(&bytes) {
        let blocks = crate::pki::parse::pem_blocks(&bytes).map_err(|e| pem_err(e.to_string()))?;
        if !blocks.iter().any(|b| b.label == "CERTIFICATE") {
            return Err(pem_err("holds no CERTIFICATE block".into()));
        }
        // Only the certificates: rustls's reader skips other blocks, but say
        // nothing about them either way.
        let text: String = blocks
            .iter()
            .filter(|b| b.label == "CERTIFICATE")
            .map(|b| crate::pki::parse::pem("CERTIFICATE", &b.der))
            .collect();
        return Ok(text.into_bytes());
    }
    if x509_parser::parse_x509_certificate(&bytes).is_err() {
        return Err(pem_err("neither PEM nor a DER certificate".into()));
    }
    Ok(crate::pki::parse::pem("CERTIFICATE", &bytes).into_bytes())
}

/// The client key as PKCS#8 PEM (what rustls reads), from a PKCS#1, SEC1
/// or PKCS#8 key in PEM or DER.
fn key_pem(path: &Path) -> Result<Vec<u8>, LiveError> {
    let what = "client key";
    let (bytes, pem_err) = read_tls_file(what, path)?;
    let key = crate::pki::parse::read_key(&bytes).map_err(|e| pem_err(e.to_string()))?;
    let der = key.pkcs8_der().map_err(|e| pem_err(e.to_string()))?;
    Ok(crate::pki::parse::pem("PRIVATE KEY", &der).into_bytes())
}

fn tls_options(files: &TlsFiles) -> Result<Option<TlsOptions>, LiveError> {
    if !files.any() {
        return Ok(None);
    }
    let mut tls = TlsOptions::new();
    if let Some(ca) = &files.cacert {
        tls = tls.ca_certificate(Certificate::from_pem(certificate_pem("CA file", ca)?));
    }
    if let Some(id) = client_identity(files)? {
        tls = tls.identity(Identity::from_pem(id.cert_pem, id.key_pem));
    }
    Ok(Some(tls))
}

/// The client certificate and key (PEM, the key as PKCS#8), when given; both
/// or neither.
fn client_identity(files: &TlsFiles) -> Result<Option<ClientIdentity>, LiveError> {
    match (&files.cert, &files.key) {
        (Some(c), Some(k)) => Ok(Some(ClientIdentity {
            cert_pem: certificate_pem("client certificate", c)?,
            key_pem: key_pem(k)?,
        })),
        (Some(_), None) => Err(LiveError::HalfIdentity("--cert given without --key")),
        (None, Some(_)) => Err(LiveError::HalfIdentity("--key given without --cert")),
        (None, None) => Ok(None),
    }
}

impl Live {
    /// Reads the TLS files (so that a bad file is reported before any dial)
    /// and starts the runtime.
    pub fn new(spec: ConnectSpec) -> Result<Live, LiveError> {
        let tls = tls_options(&spec.tls)?;
        let insecure = if spec.tls.insecure_skip_verify {
            Some(insecure_config(&spec.tls)?)
        } else {
            None
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(LiveError::Runtime)?;
        Ok(Live {
            rt,
            spec,
            tls,
            insecure,
        })
    }

    /// Runs `fut` to its end or to `after`.
    pub fn call<T>(
        &self,
        endpoint: &str,
        call: &'static str,
        after: Duration,
        fut: impl Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T, LiveError> {
        let _guard = self.rt.enter();
        match self.rt.block_on(tokio::time::timeout(after, fut)) {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(err)) => Err(LiveError::Call {
                endpoint: endpoint.to_string(),
                call,
                err,
            }),
            Err(_) => Err(LiveError::Timeout {
                endpoint: endpoint.to_string(),
                call,
                after,
            }),
        }
    }

    /// A unary call with the command timeout.
    pub fn unary<T>(
        &self,
        m: &Member,
        call: &'static str,
        fut: impl Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T, LiveError> {
        self.call(&m.endpoint, call, self.spec.command_timeout, fut)
    }

    /// The runtime, for streams driven step by step.
    pub fn runtime(&self) -> &tokio::runtime::Runtime {
        &self.rt
    }

    /// Dials `endpoint` alone and asks its Status, within the dial timeout.
    pub fn connect(&self, endpoint: &str) -> Result<Member, LiveError> {
        let https = endpoint.starts_with("https://");
        let http = endpoint.starts_with("http://");
        let mut opts = ConnectOptions::new()
            .with_connect_timeout(self.spec.dial_timeout)
            .with_keep_alive(Duration::from_secs(30), self.spec.command_timeout);
        // etcdctl's rule: TLS for https:// URLs, and for bare host:port when
        // TLS files are given.
        let url = if http || https {
            endpoint.to_string()
        } else if self.tls.is_some() || self.insecure.is_some() {
            format!("https://{endpoint}")
        } else {
            format!("http://{endpoint}")
        };
        let insecure = match &self.insecure {
            Some(config) if url.starts_with("https://") => Some(config.clone()),
            _ => None,
        };
        if url.starts_with("https://") && insecure.is_none() {
            opts = opts.with_tls(self.tls.clone().unwrap_or_default());
        }
        let _guard = self.rt.enter();
        let dial_timeout = self.spec.dial_timeout;
        let client_err = |err| LiveError::Client {
            endpoint: endpoint.to_string(),
            err,
        };
        let dial = async move {
            match insecure {
                None => Client::connect([url.as_str()], Some(opts))
                    .await
                    .map_err(client_err),
                Some(config) => {
                    let channel = super::insecure::channel(&url, config, dial_timeout)
                        .await
                        .map_err(|why| LiveError::Dial {
                            endpoint: endpoint.to_string(),
                            why,
                        })?;
                    Client::from_channel(etcd_client::Channel::Tonic(channel), Some(opts))
                        .await
                        .map_err(client_err)
                }
            }
        };
        let client = self
            .rt
            .block_on(tokio::time::timeout(self.spec.dial_timeout, dial))
            .map_err(|_| LiveError::Timeout {
                endpoint: endpoint.to_string(),
                call: "dial",
                after: self.spec.dial_timeout,
            })??;
        let mut c = client.clone();
        let status = self.call(endpoint, "Status", self.spec.dial_timeout, async move {
            c.status().await
        })?;
        Ok(Member {
            endpoint: endpoint.to_string(),
            client,
            status,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let v: Vec<(String, String)> = pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        move |n| v.iter().find(|(k, _)| k == n).map(|(_, x)| x.clone())
    }

    #[test]
    fn flags_win_over_environment() {
        let env = env_of(&[
            ("ETCDCTL_ENDPOINTS", "http://a:1,http://b:2"),
            ("ETCDCTL_DIAL_TIMEOUT", "1m30s"),
            ("ETCDCTL_CACERT", "/env/ca"),
        ]);
        let s = ConnectSpec::resolve(GivenSettings::default(), &env).unwrap();
        assert_eq!(s.endpoints, ["http://a:1", "http://b:2"]);
        assert_eq!(s.dial_timeout, Duration::from_secs(90));
        assert_eq!(s.tls.cacert.as_deref(), Some(Path::new("/env/ca")));
        let given = GivenSettings {
            endpoints: vec!["http://c:3".into()],
            cacert: Some("/flag/ca".into()),
            dial_timeout: Some("500ms".into()),
            ..Default::default()
        };
        let s = ConnectSpec::resolve(given, &env).unwrap();
        assert_eq!(s.endpoints, ["http://c:3"]);
        assert_eq!(s.dial_timeout, Duration::from_millis(500));
        assert_eq!(s.tls.cacert.as_deref(), Some(Path::new("/flag/ca")));
        assert_eq!(s.command_timeout, DEFAULT_COMMAND_TIMEOUT);
    }

    #[test]
    fn no_endpoint_and_bad_durations_are_errors() {
        assert!(matches!(
            ConnectSpec::resolve(GivenSettings::default(), env_of(&[])),
            Err(LiveError::NoEndpoint)
        ));
        for bad in ["", "0s", "soon", "5"] {
            let given = GivenSettings {
                endpoints: vec!["x:1".into()],
                dial_timeout: Some(bad.into()),
                ..Default::default()
            };
            if bad.is_empty() {
                continue;
            }
            assert!(
                ConnectSpec::resolve(given, env_of(&[])).is_err(),
                "{bad:?} accepted"
            );
        }
    }
}
