//! `gs://` uploads as a resumable upload session of GCS's JSON API, behind
//! `object_store`'s [`MultipartUpload`] so that [`super::upload`] drives it
//! as it drives S3's and Azure's multipart uploads.
//!
//! Why not `object_store`'s own GCS multipart upload: it uses the XML API's
//! multipart upload, which the GCS emulator the tests run
//! (fake-gcs-server 1.56) does not implement, so `save --to gs://` could not
//! be proven against a real server. A resumable session is Google's own
//! recommendation for large uploads and what its Go client does; the
//! emulator implements it, as GCS does.
//!
//! The session: a POST opens it (`uploadType=resumable`, and unless
//! `force`, `ifGenerationMatch=0`: GCS itself refuses to replace an object
//! that exists by then, so no other writer is overwritten), then each chunk
//! is a PUT at its offset (`Content-Range: bytes A-B/*`, answered 308), in
//! order. The object exists only once a PUT declares the total size, which
//! only [`MultipartUpload::complete`] sends: the last chunk is held back
//! until then. [`MultipartUpload::abort`] DELETEs the session. A process
//! killed outright leaves the session, which holds no object and which GCS
//! drops after a week.
//!
//! Credentials and endpoint are `object_store`'s (its GCS builder's
//! credential chain and bearer token, `GOOGLE_BASE_URL` or
//! `--gcs-endpoint`, `GOOGLE_SKIP_SIGNATURE` for an emulator); requests go
//! through its HTTP client, so the custom CA and plain-HTTP settings are
//! those of every other request.

use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use http::{Method, Request, StatusCode};
use object_store::client::{HttpClient, HttpConnector, HttpRequestBody, ReqwestConnector};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::{ClientOptions, MultipartUpload, PutPayload, PutResult, UploadPart};

/// Google's endpoint when none is set.
const DEFAULT_BASE: &str = "https://storage.googleapis.com";
/// Attempts of each request (a network failure, 429 or 5xx is tried again).
const ATTEMPTS: u32 = 5;

/// The previous chunk's PUT (the final one: with the object's metadata):
/// the next waits for it.
type Chain = Shared<BoxFuture<'static, Result<Option<bytes::Bytes>, Failed>>>;

/// Why a chunk's PUT failed: the status GCS answered (none: no answer),
/// and what it said.
#[derive(Debug, Clone)]
struct Failed {
    status: Option<StatusCode>,
    text: Arc<str>,
}

impl Failed {
    fn into_error(self) -> object_store::Error {
        match self.status {
            Some(s) => refused(s, self.text.as_bytes(), "the resumable upload"),
            None => generic(self.text),
        }
    }
}

/// A resumable upload session under way.
pub struct Resumable {
    client: HttpClient,
    bearer: Option<String>,
    session: String,
    /// Bytes handed to PUTs so far (the held chunk not included).
    sent: u64,
    /// The chunk held back for the final PUT.
    held: Option<PutPayload>,
    chain: Chain,
}

impl std::fmt::Debug for Resumable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The session URL is a credential of its own: never shown.
        f.debug_struct("Resumable")
            .field("sent", &self.sent)
            .finish_non_exhaustive()
    }
}

fn generic(e: impl std::fmt::Display) -> object_store::Error {
    object_store::Error::Generic {
        store: "GCS",
        source: e.to_string().into(),
    }
}

/// Opens a resumable session for `bucket`/`key`: the endpoint and the
/// credentials as `object_store`'s GCS builder finds them (`endpoint`,
/// `--gcs-endpoint`, wins). Unless `force`, GCS refuses to complete it
/// over an existing object (412, [`object_store::Error::AlreadyExists`]).
pub async fn start(
    bucket: &str,
    key: &str,
    client: ClientOptions,
    endpoint: Option<&str>,
    force: bool,
) -> object_store::Result<Resumable> {
    let builder = GoogleCloudStorageBuilder::from_env()
        .with_bucket_name(bucket)
        .with_client_options(client.clone());
    let base = endpoint
        .map(str::to_string)
        .or_else(|| builder.get_config_value(&GoogleConfigKey::BaseUrl))
        .unwrap_or_else(|| DEFAULT_BASE.to_string());
    let skip = builder
        .get_config_value(&GoogleConfigKey::SkipSignature)
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let bearer = if skip {
        None
    } else {
        let store = builder.build()?;
        Some(store.credentials().get_credential().await?.bearer.clone())
    };
    let http = ReqwestConnector::default().connect(&client)?;
    let mut url = format!(
        "{}/upload/storage/v1/b/{}/o?uploadType=resumable&name={}",
        base.trim_end_matches('/'),
        encode(bucket),
        encode(key)
    );
    if !force {
        url.push_str("&ifGenerationMatch=0");
    }
    let r = send(
        &http,
        bearer.as_deref(),
        Method::POST,
        &url,
        &[
            (
                "X-Upload-Content-Type",
                "application/octet-stream".to_string(),
            ),
            ("Content-Type", "application/json".to_string()),
        ],
        Vec::<u8>::new().into(),
    )
    .await?;
    let (status, headers, body) = r;
    if !status.is_success() {
        return Err(refused(status, &body, key));
    }
    let session = headers
        .get(http::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| generic("the resumable upload session has no Location"))?
        .to_string();
    Ok(Resumable {
        client: http,
        bearer,
        session,
        sent: 0,
        held: None,
        chain: futures_util::future::ready(Ok(None)).boxed().shared(),
    })
}

/// The error of a refused request, as `object_store` says it for its own.
fn refused(status: StatusCode, body: &[u8], key: &str) -> object_store::Error {
    let text = String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned();
    match status {
        StatusCode::NOT_FOUND => object_store::Error::NotFound {
            path: key.to_string(),
            source: text.into(),
        },
        StatusCode::PRECONDITION_FAILED => object_store::Error::AlreadyExists {
            path: key.to_string(),
            source: text.into(),
        },
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => object_store::Error::PermissionDenied {
            path: key.to_string(),
            source: format!("HTTP {status}: {text}").into(),
        },
        _ => generic(format!("HTTP {status}: {text}")),
    }
}

/// Percent-encodes a query value (RFC 3986 unreserved characters kept).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Sends one request, again after a network failure, 429 or 5xx (backoff
/// 0.2 s doubling): the status, headers and body of the last answer.
async fn send(
    client: &HttpClient,
    bearer: Option<&str>,
    method: Method,
    url: &str,
    headers: &[(&str, String)],
    body: PutPayload,
) -> object_store::Result<(StatusCode, http::HeaderMap, bytes::Bytes)> {
    let mut wait = Duration::from_millis(200);
    let mut attempt = 1;
    loop {
        let mut req = Request::builder().method(method.clone()).uri(url);
        if let Some(b) = bearer {
            req = req.header("Authorization", format!("Bearer {b}"));
        }
        for (k, v) in headers {
            req = req.header(*k, v.as_str());
        }
        req = req.header("Content-Length", body.content_length().to_string());
        let req = req
            .body(HttpRequestBody::from(body.clone()))
            .map_err(generic)?;
        let result = match client.execute(req).await {
            Ok(resp) => {
                let (parts, b) = resp.into_parts();
                match b.bytes().await {
                    Ok(bytes) => Ok((parts.status, parts.headers, bytes)),
                    Err(e) => Err(generic(e)),
                }
            }
            Err(e) => Err(generic(e)),
        };
        let again = match &result {
            Ok((s, ..)) => *s == StatusCode::TOO_MANY_REQUESTS || s.is_server_error(),
            Err(_) => true,
        };
        if !again || attempt >= ATTEMPTS {
            return result;
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(5));
        attempt += 1;
    }
}

impl Resumable {
    /// The PUT of bytes `start..start+len` (of `total`, if known: the
    /// final one), after the previous chunk's.
    fn put_chunk(&mut self, data: PutPayload, total: Option<u64>) -> Chain {
        let start = self.sent;
        let len = data.content_length() as u64;
        self.sent += len;
        let range = match (len, total) {
            (0, Some(t)) => format!("bytes */{t}"),
            (_, Some(t)) => format!("bytes {start}-{}/{t}", start + len - 1),
            (_, None) => format!("bytes {start}-{}/*", start + len - 1),
        };
        let client = self.client.clone();
        let bearer = self.bearer.clone();
        let session = self.session.clone();
        let previous = self.chain.clone();
        async move {
            previous.await?;
            let (status, headers, body) = send(
                &client,
                bearer.as_deref(),
                Method::PUT,
                &session,
                &[("Content-Range", range)],
                data,
            )
            .await
            .map_err(|e| Failed {
                status: None,
                text: e.to_string().into(),
            })?;
            let failed = |text: String| Failed {
                status: Some(status),
                text: text.into(),
            };
            if total.is_some() {
                if !status.is_success() {
                    return Err(failed(String::from_utf8_lossy(&body).into_owned()));
                }
                return Ok(Some(body));
            }
            if status != StatusCode::PERMANENT_REDIRECT {
                return Err(failed(String::from_utf8_lossy(&body).into_owned()));
            }
            // GCS says how much of the upload it holds: it must be all.
            let held = headers
                .get(http::header::RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(|r| r.rsplit('-').next())
                .and_then(|n| n.parse::<u64>().ok())
                .map_or(0, |last| last + 1);
            if held != start + len {
                return Err(Failed {
                    status: None,
                    text: format!(
                        "GCS holds {held} bytes of the upload, not the {} sent",
                        start + len
                    )
                    .into(),
                });
            }
            Ok(None)
        }
        .boxed()
        .shared()
    }
}

#[async_trait::async_trait]
impl MultipartUpload for Resumable {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        // The chunk before this one goes up now; this one waits, as it may
        // be the last.
        let Some(previous) = self.held.replace(data) else {
            return futures_util::future::ready(Ok(())).boxed();
        };
        let chain = self.put_chunk(previous, None);
        self.chain = chain.clone();
        async move { chain.await.map(drop).map_err(Failed::into_error) }.boxed()
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        let last = self.held.take().unwrap_or_default();
        let total = self.sent + last.content_length() as u64;
        // The final PUT; its answer is the object.
        let chain = self.put_chunk(last, Some(total));
        self.chain = chain.clone();
        let body = chain.await.map_err(Failed::into_error)?.unwrap_or_default();
        // The object's resource: its ETag and generation (GCS's version).
        let meta: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let field = |k: &str| meta.get(k).and_then(|v| v.as_str()).map(str::to_string);
        Ok(PutResult {
            e_tag: field("etag"),
            version: field("generation"),
            extensions: Default::default(),
        })
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        // Chunks under way are let finish (or fail) first.
        let _ = self.chain.clone().await;
        let (status, _, body) = send(
            &self.client,
            self.bearer.as_deref(),
            Method::DELETE,
            &self.session,
            &[],
            PutPayload::default(),
        )
        .await?;
        // GCS answers a cancelled session with 499.
        if status.is_success() || status.as_u16() == 499 || status == StatusCode::NOT_FOUND {
            Ok(())
        } else {
            Err(refused(status, &body, "the resumable upload"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::encode;

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(encode("nightly/snap 1.db"), "nightly%2Fsnap%201.db");
        assert_eq!(encode("a&b=c?é"), "a%26b%3Dc%3F%C3%A9");
    }
}
