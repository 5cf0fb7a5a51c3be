//! KMS plugins reached over their unix sockets, as kube-apiserver reaches
//! them, to unwrap the data keys of KMS-encrypted values
//! ([`crate::kube::decrypt::Unwrap`]).
//!
//! The APIs are the plugins' gRPC services: KMS v2 (`v2.KeyManagementService`
//! `Decrypt`: ciphertext, uid, key_id, annotations → plaintext) and v1
//! (`v1beta1.KeyManagementService` `Decrypt`: version, cipher → plain). The
//! few messages are declared here with prost's derive, so no protoc is
//! needed. Each endpoint gets one connection, made on first use; every call
//! is bounded by the provider's `timeout` (default 3 s, as the API server's).
//! Nothing is ever sent to a plugin but the wrapped key and what the value's
//! envelope says about it; what comes back is held only in memory.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tonic::transport::{Channel, Endpoint, Uri};

use super::connect::parse_duration;
use crate::kube::decrypt::Unwrap;
use crate::kube::decrypt::kms::{KmsPlugin, UnwrapRequest};

/// KMS v2's `DecryptRequest`.
#[derive(Clone, PartialEq, prost::Message)]
struct DecryptRequestV2 {
    #[prost(bytes = "vec", tag = "1")]
    ciphertext: Vec<u8>,
    #[prost(string, tag = "2")]
    uid: String,
    #[prost(string, tag = "3")]
    key_id: String,
    #[prost(btree_map = "string, bytes", tag = "4")]
    annotations: std::collections::BTreeMap<String, Vec<u8>>,
}

/// KMS v2's `DecryptResponse`.
#[derive(Clone, PartialEq, prost::Message)]
struct DecryptResponseV2 {
    #[prost(bytes = "vec", tag = "1")]
    plaintext: Vec<u8>,
}

/// KMS v1beta1's `DecryptRequest`.
#[derive(Clone, PartialEq, prost::Message)]
struct DecryptRequestV1 {
    #[prost(string, tag = "1")]
    version: String,
    #[prost(bytes = "vec", tag = "2")]
    cipher: Vec<u8>,
}

/// KMS v1beta1's `DecryptResponse`.
#[derive(Clone, PartialEq, prost::Message)]
struct DecryptResponseV1 {
    #[prost(bytes = "vec", tag = "1")]
    plain: Vec<u8>,
}

/// The default call timeout of a kms provider.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);

/// Reaches the plugins an EncryptionConfiguration names.
#[derive(Debug)]
pub struct Plugins {
    /// One call at a time: the runtime is single-threaded, and keys are
    /// unwrapped once each.
    rt: Mutex<tokio::runtime::Runtime>,
    channels: Mutex<HashMap<String, Channel>>,
}

impl Plugins {
    /// A client for plugins (no connection is made until one is asked).
    pub fn new() -> std::io::Result<Plugins> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(Plugins {
            rt: Mutex::new(rt),
            channels: Mutex::new(HashMap::new()),
        })
    }

    /// The socket path of a `unix://` endpoint.
    fn socket(endpoint: &str) -> Result<String, String> {
        let path = endpoint
            .strip_prefix("unix://")
            .ok_or_else(|| format!("endpoint {endpoint:?} is not unix://PATH"))?;
        if path.is_empty() {
            return Err(format!("endpoint {endpoint:?} names no socket"));
        }
        Ok(path.to_string())
    }

    /// The channel to `endpoint`, connected on first use.
    async fn channel(&self, endpoint: &str, timeout: Duration) -> Result<Channel, String> {
        if let Some(c) = self
            .channels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(endpoint)
        {
            return Ok(c.clone());
        }
        let path = Self::socket(endpoint)?;
        let shown = path.clone();
        // The URI is not used: the connector dials the socket.
        let c = Endpoint::from_static("http://kms.invalid")
            .connect_timeout(timeout)
            .timeout(timeout)
            .connect_with_connector(tower::service_fn(move |_: Uri| {
                let path = path.clone();
                async move {
                    tokio::net::UnixStream::connect(path)
                        .await
                        .map(hyper_util::rt::TokioIo::new)
                }
            }))
            .await
            .map_err(|e| format!("cannot connect to {shown}: {}", source_chain(&e)))?;
        self.channels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(endpoint.to_string(), c.clone());
        Ok(c)
    }

    async fn call<Req, Resp>(
        &self,
        plugin: &KmsPlugin,
        path: &'static str,
        req: Req,
    ) -> Result<Resp, String>
    where
        Req: prost::Message + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        let endpoint = plugin
            .endpoint
            .as_deref()
            .ok_or("the kms provider names no endpoint")?;
        let timeout = match &plugin.timeout {
            Some(t) => parse_duration("timeout", t).map_err(|e| e.to_string())?,
            None => DEFAULT_TIMEOUT,
        };
        let channel = self.channel(endpoint, timeout).await?;
        let mut grpc = tonic::client::Grpc::new(channel);
        grpc.ready()
            .await
            .map_err(|e| format!("not ready: {}", source_chain(&e)))?;
        let codec = tonic_prost::ProstCodec::<Req, Resp>::default();
        let resp = tokio::time::timeout(
            timeout,
            grpc.unary(
                tonic::Request::new(req),
                http::uri::PathAndQuery::from_static(path),
                codec,
            ),
        )
        .await
        .map_err(|_| format!("no answer within {timeout:?}"))?
        .map_err(|s| {
            format!(
                "{:?}: {}",
                s.code(),
                crate::report::escape_controls(s.message())
            )
        })?;
        Ok(resp.into_inner())
    }
}

/// An error and its sources, one line.
fn source_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

impl Unwrap for Plugins {
    fn unwrap_key(&self, plugin: &KmsPlugin, req: &UnwrapRequest<'_>) -> Result<Vec<u8>, String> {
        let rt = self.rt.lock().unwrap_or_else(|p| p.into_inner());
        rt.block_on(async {
            if plugin.version == "v1" {
                let r: DecryptResponseV1 = self
                    .call(
                        plugin,
                        "/v1beta1.KeyManagementService/Decrypt",
                        DecryptRequestV1 {
                            version: "v1beta1".into(),
                            cipher: req.wrapped.to_vec(),
                        },
                    )
                    .await?;
                return Ok(r.plain);
            }
            let r: DecryptResponseV2 = self
                .call(
                    plugin,
                    "/v2.KeyManagementService/Decrypt",
                    DecryptRequestV2 {
                        ciphertext: req.wrapped.to_vec(),
                        uid: String::new(),
                        key_id: req.key_id.to_string(),
                        annotations: req.annotations.iter().cloned().collect(),
                    },
                )
                .await?;
            Ok(r.plaintext)
        })
    }
}
