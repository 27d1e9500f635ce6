//! Snowflake's REST protocol, the transport part: one HTTP client per
//! warehouse, the account's base URL, request ids, the `Authorization`
//! header, the `{success, code, message, data}` envelope, and bodies read
//! with a byte bound (gzip included, whether or not the server said so).
//!
//! Nothing here logs a request or a body: login bodies carry passwords and
//! tokens, and every other request carries the session token.

use std::io::Read as _;
use std::time::Duration;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::config::Secret;
use crate::warehouse::{ErrorKind, WarehouseError};

/// Most bytes of a JSON answer (login, statement, poll): 64 MiB.
pub(crate) const MAX_ANSWER_BYTES: usize = 64 * 1024 * 1024;

/// Most bytes of one result chunk once decompressed: 256 MiB.
pub(crate) const MAX_CHUNK_BYTES: usize = 256 * 1024 * 1024;

/// How long one HTTP exchange may take (Snowflake holds a statement or a
/// result poll for about 45 s before it answers "still running").
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// What the client sends as `Accept` for statements: Arrow results.
pub(crate) const ACCEPT_SNOWFLAKE: &str = "application/snowflake";

/// What the client sends as `Accept` for session requests.
pub(crate) const ACCEPT_JSON: &str = "application/json";

/// Snowflake's answer envelope; `data` is kept raw and read by the caller.
#[derive(Debug, Deserialize)]
pub(crate) struct Envelope {
    /// Whether the request succeeded.
    #[serde(default)]
    pub success: bool,
    /// Snowflake's code (`390112`, `333334`, `002003`, ...), when it sent one.
    #[serde(default, deserialize_with = "code_text")]
    pub code: Option<String>,
    /// Snowflake's message.
    #[serde(default)]
    pub message: Option<String>,
    /// The payload.
    #[serde(default)]
    pub data: Option<Box<RawValue>>,
}

/// Codes arrive as strings, sometimes as numbers.
fn code_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let v: Option<serde_json::Value> = Option::deserialize(d)?;
    Ok(match v {
        Some(serde_json::Value::String(s)) => Some(s),
        Some(serde_json::Value::Number(n)) => Some(format!("{:0>6}", n.to_string())),
        _ => None,
    })
}

impl Envelope {
    /// `data` read as `T`.
    pub fn data<'a, T: Deserialize<'a>>(&'a self) -> Result<T, WarehouseError> {
        let raw = self.data.as_deref().map_or("null", RawValue::get);
        serde_json::from_str(raw).map_err(|e| {
            WarehouseError::new(
                ErrorKind::Unavailable,
                format!("unexpected answer from Snowflake: {e}"),
            )
        })
    }

    /// The failure this envelope reports, as a warehouse error with the code.
    pub fn failure(&self, kind: ErrorKind) -> WarehouseError {
        let message = self
            .message
            .clone()
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| "Snowflake refused the request".to_owned());
        let e = WarehouseError::new(kind, message);
        match &self.code {
            Some(code) => e.with_code(code.clone()),
            None => e,
        }
    }
}

/// A fresh request id (a UUID v4), as Snowflake's clients send with each request.
pub(crate) fn request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The HTTP side of one warehouse: shared by all its sessions.
pub(crate) struct Rest {
    client: reqwest_middleware::ClientWithMiddleware,
    base: reqwest::Url,
}

impl std::fmt::Debug for Rest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rest")
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

/// Where a request goes and with which credentials.
pub(crate) struct Call<'a> {
    /// A path of the account's URL (`/queries/v1/query-request`) or a full URL.
    pub path: &'a str,
    /// Query parameters.
    pub query: &'a [(&'a str, &'a str)],
    /// The token for `Authorization: Snowflake Token="..."`.
    pub token: Option<&'a Secret>,
    /// The `Accept` header.
    pub accept: &'static str,
}

impl Rest {
    /// The client for an account (or for `base_url` when set: proxies,
    /// PrivateLink, tests).
    pub fn new(account: &str, base_url: Option<&str>) -> Result<Rest, WarehouseError> {
        let base = match base_url {
            Some(url) => url.to_owned(),
            None => format!(
                "https://{}.snowflakecomputing.com",
                account.to_ascii_lowercase().replace('_', "-")
            ),
        };
        let base = reqwest::Url::parse(&base).map_err(|e| {
            WarehouseError::new(
                ErrorKind::Unavailable,
                format!("Snowflake URL {base:?}: {e}"),
            )
        })?;
        // Wire logging stays off: it would log tokens and passwords.
        let client = reqwest::ClientBuilder::new()
            .user_agent(concat!("snowflake-mcp/", env!("CARGO_PKG_VERSION")))
            .gzip(true)
            .referer(false)
            .connection_verbose(false)
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(EXCHANGE_TIMEOUT)
            .build()
            .map_err(|e| WarehouseError::new(ErrorKind::Unavailable, e.to_string()))?;
        // Connection failures and 429/5xx answers are tried again (a
        // statement keeps its request id, so Snowflake runs it once).
        let retries =
            reqwest_retry::policies::ExponentialBackoff::builder().build_with_max_retries(3);
        let client = reqwest_middleware::ClientBuilder::new(client)
            .with(reqwest_retry::RetryTransientMiddleware::new_with_policy(
                retries,
            ))
            .build();
        Ok(Rest { client, base })
    }

    fn url(&self, call: &Call<'_>) -> Result<reqwest::Url, WarehouseError> {
        let joined = if call.path.starts_with("http://") || call.path.starts_with("https://") {
            reqwest::Url::parse(call.path)
        } else {
            self.base.join(call.path)
        };
        let mut url = joined.map_err(|e| {
            WarehouseError::new(ErrorKind::Unavailable, format!("bad Snowflake URL: {e}"))
        })?;
        if !call.query.is_empty() {
            url.query_pairs_mut().extend_pairs(call.query);
        }
        Ok(url)
    }

    fn headers(call: &Call<'_>) -> Result<reqwest::header::HeaderMap, WarehouseError> {
        use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, HeaderValue};
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static(call.accept));
        if let Some(token) = call.token {
            let mut value =
                HeaderValue::from_str(&format!("Snowflake Token=\"{}\"", token.expose())).map_err(
                    |_| {
                        WarehouseError::new(
                            ErrorKind::Unavailable,
                            "the session token is not a valid header value",
                        )
                    },
                )?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        Ok(headers)
    }

    /// POSTs a JSON body; the answer's envelope.
    pub async fn post(
        &self,
        call: Call<'_>,
        body: &serde_json::Value,
    ) -> Result<Envelope, WarehouseError> {
        let url = self.url(&call)?;
        let bytes = serde_json::to_vec(body)
            .map_err(|e| WarehouseError::new(ErrorKind::Unavailable, e.to_string()))?;
        let request = self
            .client
            .post(url)
            .headers(Self::headers(&call)?)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(bytes);
        let response = request.send().await.map_err(transport)?;
        envelope(response).await
    }

    /// POSTs `body` to a session request at `path` (renewal, heartbeat,
    /// abort, logout) with a fresh request id and JSON answers.
    pub async fn post_session(
        &self,
        path: &str,
        token: &Secret,
        body: &serde_json::Value,
    ) -> Result<Envelope, WarehouseError> {
        let id = request_id();
        self.post(
            Call {
                path,
                query: &[("requestId", id.as_str())],
                token: Some(token),
                accept: ACCEPT_JSON,
            },
            body,
        )
        .await
    }

    /// GETs a path of the account (a result URL); the answer's envelope.
    pub async fn get(&self, call: Call<'_>) -> Result<Envelope, WarehouseError> {
        let url = self.url(&call)?;
        let response = self
            .client
            .get(url)
            .headers(Self::headers(&call)?)
            .send()
            .await
            .map_err(transport)?;
        envelope(response).await
    }

    /// Downloads one result chunk from its (pre-signed) URL with the
    /// headers the statement's answer named; its bytes, decompressed, at
    /// most `limit`.
    pub async fn chunk(
        &self,
        url: &str,
        headers: &[(String, Secret)],
        limit: usize,
    ) -> Result<ChunkBody, WarehouseError> {
        use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            let (Ok(name), Ok(mut value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value.expose()),
            ) else {
                return Err(WarehouseError::new(
                    ErrorKind::Unavailable,
                    format!("Snowflake named a chunk header that cannot be sent ({name})"),
                ));
            };
            value.set_sensitive(true);
            map.insert(name, value);
        }
        let url = reqwest::Url::parse(url).map_err(|e| {
            WarehouseError::new(ErrorKind::Unavailable, format!("bad chunk URL: {e}"))
        })?;
        let response = self
            .client
            .get(url)
            .headers(map)
            .send()
            .await
            .map_err(transport)?;
        let status = response.status();
        if !status.is_success() {
            return Err(WarehouseError::new(
                ErrorKind::Unavailable,
                format!("a result chunk could not be downloaded (HTTP {status})"),
            ));
        }
        Ok(ChunkBody::new(response, limit))
    }
}

fn transport(e: reqwest_middleware::Error) -> WarehouseError {
    // What actually failed (refused, reset, timed out) is in the causes:
    // "after 3 retries" alone says nothing. The HTTP client's own errors in
    // the chain are skipped (they name the URL; their causes are kept).
    let mut causes = Vec::new();
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        if c.downcast_ref::<reqwest::Error>().is_none()
            && c.downcast_ref::<reqwest_middleware::Error>().is_none()
        {
            causes.push(c.to_string());
        }
        cause = c.source();
    }
    let mut text = match e {
        reqwest_middleware::Error::Reqwest(e) => e.without_url().to_string(),
        other => other.to_string(),
    };
    for c in causes {
        if !text.contains(&c) {
            text.push_str(": ");
            text.push_str(&c);
        }
    }
    WarehouseError::new(ErrorKind::Unavailable, format!("request failed: {text}"))
}

/// Reads a response body, failing past `limit` bytes.
async fn read_bounded(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, WarehouseError> {
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(too_large(limit));
    }
    let mut body = Vec::new();
    while let Some(part) = response.chunk().await.map_err(|e| {
        WarehouseError::new(
            ErrorKind::Unavailable,
            format!("reading Snowflake's answer failed: {}", e.without_url()),
        )
    })? {
        if body.len() + part.len() > limit {
            return Err(too_large(limit));
        }
        body.extend_from_slice(&part);
    }
    Ok(body)
}

/// A result chunk's body, read as it arrives: its bytes decompressed
/// (gzip found by its first bytes, as [`gunzip_if_needed`] does), piece by
/// piece, at most `limit` of them in all. Dropping it stops the download.
pub(crate) struct ChunkBody {
    response: reqwest::Response,
    gunzip: Option<flate2::write::MultiGzDecoder<Vec<u8>>>,
    /// Bytes received and not yet handed on (or not yet decompressed).
    pending: Vec<u8>,
    at: usize,
    /// Whether the first two bytes have been seen (whether it is gzip is known).
    started: bool,
    /// Whether the response ended.
    ended: bool,
    /// Bytes handed on so far.
    read: usize,
    limit: usize,
}

/// Most compressed bytes decompressed at once: what one step may produce
/// is bounded by it (deflate expands at most about 1,032 times).
const GUNZIP_STEP: usize = 4 * 1024;

impl ChunkBody {
    fn new(response: reqwest::Response, limit: usize) -> ChunkBody {
        ChunkBody {
            response,
            gunzip: None,
            pending: Vec::new(),
            at: 0,
            started: false,
            ended: false,
            read: 0,
            limit,
        }
    }

    /// The next piece of the chunk's bytes; `None` once they are all read.
    pub(crate) async fn next(&mut self) -> Result<Option<Vec<u8>>, WarehouseError> {
        loop {
            let piece = if self.at < self.pending.len() && self.started {
                match self.gunzip.as_mut() {
                    // Plain bytes go on as they are (`at` moves only
                    // through gzip).
                    None => std::mem::take(&mut self.pending),
                    Some(gz) => {
                        let end = self.pending.len().min(self.at + GUNZIP_STEP);
                        std::io::Write::write_all(gz, &self.pending[self.at..end])
                            .map_err(not_gzip)?;
                        self.at = end;
                        std::mem::take(gz.get_mut())
                    }
                }
            } else if self.ended {
                // What the decoder still holds, or a body of one byte.
                let piece = match self.gunzip.as_mut() {
                    Some(gz) => {
                        gz.try_finish().map_err(not_gzip)?;
                        std::mem::take(gz.get_mut())
                    }
                    None => std::mem::take(&mut self.pending),
                };
                self.pending.clear();
                self.at = 0;
                if piece.is_empty() {
                    return Ok(None);
                }
                piece
            } else {
                let part = self.response.chunk().await.map_err(|e| {
                    WarehouseError::new(
                        ErrorKind::Unavailable,
                        format!("reading a result chunk failed: {}", e.without_url()),
                    )
                })?;
                match part {
                    None => self.ended = true,
                    Some(part) => {
                        if self.at == self.pending.len() {
                            self.pending.clear();
                            self.at = 0;
                        }
                        self.pending.extend_from_slice(&part);
                        if !self.started && self.pending.len() >= 2 {
                            self.started = true;
                            if self.pending.starts_with(&[0x1f, 0x8b]) {
                                self.gunzip = Some(flate2::write::MultiGzDecoder::new(Vec::new()));
                            }
                        }
                    }
                }
                continue;
            };
            self.read += piece.len();
            if self.read > self.limit {
                return Err(too_large(self.limit));
            }
            if !piece.is_empty() {
                return Ok(Some(piece));
            }
        }
    }
}

fn not_gzip(e: std::io::Error) -> WarehouseError {
    WarehouseError::new(
        ErrorKind::Unavailable,
        format!("a result chunk is not valid gzip: {e}"),
    )
}

fn too_large(limit: usize) -> WarehouseError {
    WarehouseError::new(
        ErrorKind::Unavailable,
        format!("Snowflake's answer is larger than {} MiB", limit >> 20),
    )
}

/// Result chunks are stored gzipped; a proxy may drop `Content-Encoding`
/// and hand them on still compressed. Decompressed here, within `limit`.
pub(crate) fn gunzip_if_needed(body: Vec<u8>, limit: usize) -> Result<Vec<u8>, WarehouseError> {
    if !body.starts_with(&[0x1f, 0x8b]) {
        return Ok(body);
    }
    let mut out = Vec::new();
    let decoder = flate2::read::MultiGzDecoder::new(body.as_slice());
    decoder
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| {
            WarehouseError::new(
                ErrorKind::Unavailable,
                format!("a result chunk is not valid gzip: {e}"),
            )
        })?;
    if out.len() > limit {
        return Err(too_large(limit));
    }
    Ok(out)
}

/// The envelope of an answer (whatever its HTTP status: Snowflake puts its
/// errors in the envelope, with 200 or 4xx).
async fn envelope(response: reqwest::Response) -> Result<Envelope, WarehouseError> {
    let status = response.status();
    let body = read_bounded(response, MAX_ANSWER_BYTES).await?;
    let body = gunzip_if_needed(body, MAX_ANSWER_BYTES)?;
    serde_json::from_slice::<Envelope>(&body).map_err(|_| {
        WarehouseError::new(
            ErrorKind::Unavailable,
            format!("Snowflake answered HTTP {status} without its JSON envelope"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_read_codes_as_text() {
        let e: Envelope = serde_json::from_str(
            r#"{"success":false,"code":390112,"message":"expired","data":null}"#,
        )
        .expect("envelope");
        assert_eq!(e.code.as_deref(), Some("390112"));
        let e: Envelope =
            serde_json::from_str(r#"{"success":true,"code":"333334","data":{"a":1}}"#).expect("ok");
        assert_eq!(e.code.as_deref(), Some("333334"));
        let v: serde_json::Value = e.data().expect("data");
        assert_eq!(v["a"], 1);
        let f = Envelope {
            success: false,
            code: Some("002003".into()),
            message: Some("no such table".into()),
            data: None,
        }
        .failure(ErrorKind::Statement);
        assert_eq!(f.to_string(), "002003: no such table");
    }

    fn body_of(bytes: Vec<u8>, limit: usize) -> ChunkBody {
        ChunkBody::new(reqwest::Response::from(http::Response::new(bytes)), limit)
    }

    async fn pieces(mut body: ChunkBody) -> Result<Vec<Vec<u8>>, WarehouseError> {
        let mut out = Vec::new();
        while let Some(piece) = body.next().await? {
            out.push(piece);
        }
        Ok(out)
    }

    #[tokio::test]
    async fn a_chunk_is_read_in_bounded_pieces_gzip_or_not() {
        use std::io::Write as _;
        // 64 MiB of zeros packed into about 64 KB: handed on a few MiB at a
        // time, never whole.
        let total = 64 << 20;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(&vec![0; total]).expect("write");
        let packed = enc.finish().expect("gzip");
        let got = pieces(body_of(packed.clone(), total)).await.expect("fits");
        assert_eq!(got.iter().map(Vec::len).sum::<usize>(), total);
        let largest = got.iter().map(Vec::len).max().unwrap_or(0);
        assert!(largest <= GUNZIP_STEP * 1100, "a piece of {largest} bytes");
        assert!(got.iter().all(|p| p.iter().all(|&b| b == 0)));
        // Past the limit: refused, without decompressing the rest.
        let e = pieces(body_of(packed.clone(), total - 1)).await;
        assert!(e.is_err(), "a bomb stops at the limit");
        // Truncated gzip is refused.
        let cut = packed[..packed.len() / 2].to_vec();
        assert!(pieces(body_of(cut, total)).await.is_err());
        // Plain bytes pass as they are, a one-byte body too.
        let plain = pieces(body_of(b"[1],[2]".to_vec(), 100))
            .await
            .expect("plain");
        assert_eq!(plain.concat(), b"[1],[2]");
        let one = pieces(body_of(b"x".to_vec(), 100)).await.expect("one byte");
        assert_eq!(one.concat(), b"x");
        assert!(
            pieces(body_of(Vec::new(), 100))
                .await
                .expect("empty")
                .is_empty()
        );
        assert!(pieces(body_of(b"[1],[2]".to_vec(), 6)).await.is_err());
    }

    #[test]
    fn gzip_is_undone_within_the_limit() {
        use std::io::Write as _;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&vec![b'x'; 10_000]).expect("write");
        let packed = enc.finish().expect("gzip");
        assert_eq!(
            gunzip_if_needed(packed.clone(), 10_000)
                .expect("fits")
                .len(),
            10_000
        );
        assert!(
            gunzip_if_needed(packed, 9_999).is_err(),
            "a bomb stops at the limit"
        );
        assert_eq!(gunzip_if_needed(b"[1]".to_vec(), 3).expect("plain"), b"[1]");
        assert!(gunzip_if_needed(vec![0x1f, 0x8b, 0, 0], 100).is_err());
    }
}
