//! One statement over Snowflake's REST protocol: submit it
//! (`/queries/v1/query-request`, with its request id, sequence number and
//! `QUERY_TAG`), wait out "still running" answers (codes 333333/333334:
//! poll the result URL with backoff), abort it
//! (`/queries/v1/abort-request`), and read its rows in the statement's
//! order: the inline part first, then the chunks one by one, only as many
//! as the row limit and the byte cap need.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;

use super::config::Secret;
use super::convert::RowSink;
use super::rest::{ACCEPT_SNOWFLAKE, Call, ChunkBody, Envelope, MAX_CHUNK_BYTES, Rest, request_id};
use crate::warehouse::{ErrorKind, Progress, QueryOptions, QueryResult, WarehouseError};

/// "The statement is still running; ask the result URL."
const IN_PROGRESS: [&str; 2] = ["333333", "333334"];

/// Error codes that mean the session must log in again.
pub(crate) const RELOGIN_CODES: [&str; 3] = ["390112", "390114", "390104"];

/// The first pause between polls of a running statement; it doubles up to
/// [`MAX_POLL_PAUSE`]. (Snowflake itself holds each poll until the
/// statement ends or about 45 s pass, so pauses add little there.)
const FIRST_POLL_PAUSE: Duration = Duration::from_millis(50);

/// The longest pause between polls.
const MAX_POLL_PAUSE: Duration = Duration::from_secs(2);

/// One column of `rowtype`.
#[derive(Debug, Deserialize)]
struct RowType {
    name: String,
    #[serde(rename = "type")]
    type_name: String,
    #[serde(default)]
    precision: Option<i64>,
    #[serde(default)]
    scale: Option<i64>,
}

/// One downloadable part of a result (a pre-signed URL).
#[derive(Deserialize)]
struct ChunkRef {
    url: String,
}

/// A finished statement's answer (the fields this client reads).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Answer {
    #[serde(default)]
    query_id: Option<String>,
    #[serde(default)]
    rowtype: Vec<RowType>,
    #[serde(default)]
    rowset: Option<Box<RawValue>>,
    #[serde(default)]
    rowset_base64: Option<String>,
    #[serde(default)]
    query_result_format: Option<String>,
    #[serde(default)]
    chunks: Vec<ChunkRef>,
    #[serde(default)]
    chunk_headers: Option<BTreeMap<String, String>>,
    #[serde(default)]
    qrmk: Option<String>,
    #[serde(default)]
    total: Option<u64>,
}

impl std::fmt::Debug for Answer {
    // `qrmk` and the chunk headers hold a decryption key: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Answer")
            .field("query_id", &self.query_id)
            .field("columns", &self.rowtype.len())
            .field("chunks", &self.chunks.len())
            .field("total", &self.total)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Running {
    #[serde(default)]
    get_result_url: Option<String>,
}

/// A statement on its way: what is needed to abort it.
#[derive(Clone, Debug)]
pub(crate) struct Ticket {
    /// The request id the statement was submitted with.
    pub request_id: String,
    /// Its text (Snowflake's abort request names both).
    pub sql: String,
}

impl Ticket {
    /// A statement with a fresh request id.
    pub fn new(sql: String) -> Ticket {
        Ticket {
            request_id: request_id(),
            sql,
        }
    }
}

/// Submits a statement and waits for it to end; its answer.
pub(crate) async fn run(
    rest: &Rest,
    token: &Secret,
    ticket: &Ticket,
    sequence: u64,
    tag: Option<&str>,
    progress: Option<&Progress>,
) -> Result<Answer, WarehouseError> {
    let started = Instant::now();
    let submitted_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut body = json!({
        "sqlText": ticket.sql,
        "asyncExec": false,
        "sequenceId": sequence,
        "querySubmissionTime": submitted_ms,
        "isInternal": false,
    });
    if let Some(tag) = tag {
        body["parameters"] = json!({ "QUERY_TAG": tag });
    }
    let guid = request_id();
    let mut answer = rest
        .post(
            Call {
                path: "/queries/v1/query-request",
                query: &[
                    ("requestId", ticket.request_id.as_str()),
                    ("request_guid", guid.as_str()),
                ],
                token: Some(token),
                accept: ACCEPT_SNOWFLAKE,
            },
            &body,
        )
        .await?;
    let mut pause = FIRST_POLL_PAUSE;
    while answer
        .code
        .as_deref()
        .is_some_and(|c| IN_PROGRESS.contains(&c))
    {
        let running: Running = answer.data()?;
        let Some(url) = running.get_result_url else {
            return Err(WarehouseError::new(
                ErrorKind::Unavailable,
                "Snowflake said the statement is running but named no result URL",
            ));
        };
        if let Some(p) = progress {
            p.report(started.elapsed());
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(MAX_POLL_PAUSE);
        let guid = request_id();
        answer = rest
            .get(Call {
                path: &url,
                query: &[("request_guid", guid.as_str())],
                token: Some(token),
                accept: ACCEPT_SNOWFLAKE,
            })
            .await?;
    }
    if !answer.success {
        return Err(statement_failure(&answer));
    }
    answer.data()
}

/// A failed statement's error: session codes are "unavailable" (a new
/// session is needed), the rest are the statement's.
fn statement_failure(answer: &Envelope) -> WarehouseError {
    let relogin = answer
        .code
        .as_deref()
        .is_some_and(|c| RELOGIN_CODES.contains(&c));
    answer.failure(if relogin {
        ErrorKind::Unavailable
    } else {
        ErrorKind::Statement
    })
}

/// Asks Snowflake to stop a statement; `Ok(true)` when it confirmed.
pub(crate) async fn abort(
    rest: &Rest,
    token: &Secret,
    ticket: &Ticket,
) -> Result<bool, WarehouseError> {
    let body = json!({"sqlText": ticket.sql, "requestId": ticket.request_id});
    let answer = rest
        .post_session("/queries/v1/abort-request", token, &body)
        .await?;
    Ok(answer.success)
}

impl Answer {
    /// The statement's query id.
    pub fn query_id(&self) -> Option<String> {
        self.query_id.clone().filter(|q| !q.is_empty())
    }

    fn rowtype(&self) -> Vec<(String, String, Option<i64>, Option<i64>)> {
        self.rowtype
            .iter()
            .map(|c| (c.name.clone(), c.type_name.clone(), c.precision, c.scale))
            .collect()
    }

    /// The headers each chunk download needs: `chunkHeaders` when
    /// present, else the customer key (`qrmk`) as S3's SSE-C headers.
    fn chunk_headers(&self) -> Vec<(String, Secret)> {
        if let Some(h) = &self.chunk_headers
            && !h.is_empty()
        {
            return h
                .iter()
                .map(|(k, v)| (k.clone(), Secret::new(v.clone())))
                .collect();
        }
        match &self.qrmk {
            Some(key) => vec![
                (
                    "x-amz-server-side-encryption-customer-algorithm".to_owned(),
                    Secret::new("AES256"),
                ),
                (
                    "x-amz-server-side-encryption-customer-key".to_owned(),
                    Secret::new(key.clone()),
                ),
            ],
            None => Vec::new(),
        }
    }

    fn is_json(&self) -> bool {
        self.query_result_format
            .as_deref()
            .is_some_and(|f| f.eq_ignore_ascii_case("json"))
            || (self.rowset_base64.is_none() && self.rowset.is_some())
    }

    /// The rows, in order, within the caps: the inline part, then chunk
    /// after chunk while rows are still wanted. Chunks past the caps are
    /// never downloaded.
    pub async fn rows(
        self,
        rest: &Rest,
        options: &QueryOptions,
    ) -> Result<QueryResult, WarehouseError> {
        let rowtype = self.rowtype();
        let json = self.is_json();
        let mut sink = RowSink::new(options);
        sink.set_columns(&rowtype);
        let mut read: u64 = 0;
        let mut wanted = if json {
            let (rows, more) = match &self.rowset {
                Some(raw) => push_json_rowset(&mut sink, raw.get(), &rowtype)?,
                None => (0, true),
            };
            read += rows;
            more
        } else {
            let text = self.rowset_base64.as_deref().unwrap_or_default();
            if text.is_empty() {
                true
            } else {
                use base64::Engine as _;
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .map_err(|e| bad_part("rowsetBase64", e))?;
                let (rows, more) = push_arrow(&mut sink, bytes)?;
                read += rows;
                more
            }
        };
        let headers = self.chunk_headers();
        let mut chunks = self.chunks.iter();
        // Each chunk is read as it arrives, one row or one record batch at
        // a time, and left unread once the caps are reached: what is kept
        // is the rows wanted, not the chunk (one can hold over 100 MB).
        while wanted {
            let Some(chunk) = chunks.next() else { break };
            let mut body = rest.chunk(&chunk.url, &headers, MAX_CHUNK_BYTES).await?;
            let (rows, more) = if json {
                push_json_chunk(&mut sink, &mut body, &rowtype).await?
            } else {
                push_arrow_chunk(&mut sink, &mut body).await?
            };
            read += rows;
            wanted = more;
        }
        // Full with parts left unread: there were more rows.
        let left = chunks.next().is_some() || self.total.is_some_and(|t| t > read);
        if sink.is_full() && left {
            sink.more_rows_exist();
        }
        Ok(sink.finish())
    }
}

/// An Arrow IPC stream fed to the sink as its bytes arrive, one record
/// batch at a time (the inline part whole, a chunk piece by piece).
#[derive(Default)]
struct ArrowRows {
    decoder: arrow_ipc::reader::StreamDecoder,
    rows: u64,
}

impl ArrowRows {
    /// Decodes `bytes`, handing each batch completed to `sink`; false
    /// once the sink wants no more.
    fn feed(&mut self, sink: &mut RowSink<'_>, bytes: Vec<u8>) -> Result<bool, WarehouseError> {
        let mut buffer = arrow_buffer::Buffer::from_vec(bytes);
        while !buffer.is_empty() {
            let decoded = self
                .decoder
                .decode(&mut buffer)
                .map_err(|e| bad_part("Arrow result", e))?;
            if let Some(batch) = decoded {
                self.rows += batch.num_rows() as u64;
                if !sink.push_batch(&batch) {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    /// Rows read, and whether more are wanted (`more`), once the stream
    /// ended whole.
    fn finish(mut self, more: bool) -> Result<(u64, bool), WarehouseError> {
        if more {
            self.decoder
                .finish()
                .map_err(|e| bad_part("Arrow result", e))?;
        }
        Ok((self.rows, more))
    }
}

/// Feeds an Arrow IPC stream held whole to the sink; rows read, and
/// whether more are wanted.
fn push_arrow(sink: &mut RowSink<'_>, bytes: Vec<u8>) -> Result<(u64, bool), WarehouseError> {
    let mut arrow = ArrowRows::default();
    let more = arrow.feed(sink, bytes)?;
    arrow.finish(more)
}

/// Feeds an Arrow IPC stream arriving in pieces to the sink; rows read,
/// and whether more are wanted.
async fn push_arrow_chunk(
    sink: &mut RowSink<'_>,
    body: &mut ChunkBody,
) -> Result<(u64, bool), WarehouseError> {
    let mut arrow = ArrowRows::default();
    while let Some(piece) = body.next().await? {
        if !arrow.feed(sink, piece)? {
            return arrow.finish(false);
        }
    }
    arrow.finish(true)
}

/// Feeds a JSON chunk arriving in pieces to the sink, one row at a time;
/// rows read, and whether more are wanted.
async fn push_json_chunk(
    sink: &mut RowSink<'_>,
    body: &mut ChunkBody,
    rowtype: &[(String, String, Option<i64>, Option<i64>)],
) -> Result<(u64, bool), WarehouseError> {
    let mut split = JsonRows::default();
    let mut rows = 0u64;
    while let Some(piece) = body.next().await? {
        if !split.feed_sink(&piece, sink, rowtype, &mut rows)? {
            return Ok((rows, false));
        }
    }
    split.finish()?;
    Ok((rows, true))
}

/// Feeds the inline JSON rowset (an array of rows) to the sink one row at
/// a time, without a tree of the whole; rows read, and whether more are
/// wanted.
fn push_json_rowset(
    sink: &mut RowSink<'_>,
    raw: &str,
    rowtype: &[(String, String, Option<i64>, Option<i64>)],
) -> Result<(u64, bool), WarehouseError> {
    // Already checked as JSON: an array, its brackets stripped, is rows
    // separated by commas, as a chunk is.
    let inner = raw
        .trim()
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .ok_or_else(|| bad_part("rowset", "it is not an array"))?;
    let mut split = JsonRows::default();
    let mut rows = 0u64;
    // A slice at a time: the rows of one slice are copied, not the whole.
    for piece in inner.as_bytes().chunks(64 * 1024) {
        if !split.feed_sink(piece, sink, rowtype, &mut rows)? {
            return Ok((rows, false));
        }
    }
    split.finish()?;
    Ok((rows, true))
}

/// Splits a JSON chunk (rows separated by commas, without the outer
/// brackets) into its rows' text as its bytes arrive.
#[derive(Default)]
struct JsonRows {
    row: Vec<u8>,
    depth: usize,
    in_string: bool,
    escaped: bool,
}

impl JsonRows {
    /// Reads `bytes`, pushing each row completed onto `out`.
    fn feed(&mut self, bytes: &[u8], out: &mut Vec<Vec<u8>>) -> Result<(), WarehouseError> {
        for &b in bytes {
            if self.depth == 0 {
                match b {
                    b'[' => {
                        self.depth = 1;
                        self.row.push(b);
                    }
                    b',' | b' ' | b'\n' | b'\r' | b'\t' => {}
                    _ => return Err(bad_part("JSON chunk", "a row is not an array")),
                }
                continue;
            }
            self.row.push(b);
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                } else if b == b'\\' {
                    self.escaped = true;
                } else if b == b'"' {
                    self.in_string = false;
                }
                continue;
            }
            match b {
                b'"' => self.in_string = true,
                b'[' | b'{' => self.depth += 1,
                b']' | b'}' => {
                    self.depth -= 1;
                    if self.depth == 0 {
                        out.push(std::mem::take(&mut self.row));
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Reads `bytes` and hands each row completed to `sink`, counting it
    /// in `rows`; false once the sink wants no more.
    fn feed_sink(
        &mut self,
        bytes: &[u8],
        sink: &mut RowSink<'_>,
        rowtype: &[(String, String, Option<i64>, Option<i64>)],
        rows: &mut u64,
    ) -> Result<bool, WarehouseError> {
        let mut ready = Vec::new();
        self.feed(bytes, &mut ready)?;
        for raw in ready {
            let row: Vec<serde_json::Value> =
                serde_json::from_slice(&raw).map_err(|e| bad_part("JSON rows", e))?;
            *rows += 1;
            if !sink.push_json(std::slice::from_ref(&row), rowtype) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Refuses a chunk that ended inside a row.
    fn finish(&self) -> Result<(), WarehouseError> {
        if self.depth == 0 {
            Ok(())
        } else {
            Err(bad_part("JSON chunk", "it ends inside a row"))
        }
    }
}

fn bad_part(what: &str, e: impl std::fmt::Display) -> WarehouseError {
    WarehouseError::new(
        ErrorKind::Unavailable,
        format!("Snowflake's {what} could not be read: {e}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inline_json_rowset_is_read_a_row_at_a_time_until_the_caps() {
        let rowtype = vec![
            ("N".to_owned(), "fixed".to_owned(), Some(38), Some(0)),
            ("S".to_owned(), "text".to_owned(), None, None),
        ];
        let raw = r#" [["1","a"],["2","[b]"],["3",null]] "#;
        let all = QueryOptions {
            max_rows: 10,
            max_bytes: 1 << 20,
            ..QueryOptions::default()
        };
        let mut sink = RowSink::new(&all);
        sink.set_columns(&rowtype);
        assert_eq!(
            push_json_rowset(&mut sink, raw, &rowtype).expect("rows"),
            (3, true)
        );
        let result = sink.finish();
        assert_eq!(result.rows.len(), 3);
        assert_eq!(result.rows[1][1], serde_json::json!("[b]"));
        // Two wanted: the third is read, then refused, and reading stops.
        let two = QueryOptions {
            max_rows: 2,
            ..all.clone()
        };
        let mut sink = RowSink::new(&two);
        sink.set_columns(&rowtype);
        let (_, more) = push_json_rowset(&mut sink, raw, &rowtype).expect("rows");
        assert!(!more);
        assert_eq!(sink.finish().rows.len(), 2);
        let mut sink = RowSink::new(&all);
        assert!(push_json_rowset(&mut sink, r#"{"a":1}"#, &rowtype).is_err());
        assert!(push_json_rowset(&mut sink, "[[1],[2]", &rowtype).is_err());
    }

    #[test]
    fn json_chunks_are_rows_without_brackets_split_as_they_arrive() {
        let text = br#"["1","a],[\"b"],
["2",null] , [["x"],{"k":"]"}]"#;
        // Whole, and one byte at a time: the same rows.
        for step in [text.len(), 1] {
            let mut split = JsonRows::default();
            let mut rows = Vec::new();
            for piece in text.chunks(step) {
                split.feed(piece, &mut rows).expect("rows");
            }
            split.finish().expect("complete");
            let rows: Vec<serde_json::Value> = rows
                .iter()
                .map(|r| serde_json::from_slice(r).expect("a row"))
                .collect();
            assert_eq!(rows.len(), 3, "{rows:?}");
            assert_eq!(rows[0][1], "a],[\"b");
            assert_eq!(rows[1][1], serde_json::Value::Null);
            assert_eq!(rows[2][1]["k"], "]");
        }
        let mut split = JsonRows::default();
        let mut rows = Vec::new();
        split.feed(b"[1],[", &mut rows).expect("a row and a half");
        assert_eq!(rows.len(), 1);
        assert!(split.finish().is_err(), "it ends inside a row");
        assert!(JsonRows::default().feed(b"1,[2]", &mut rows).is_err());
    }

    #[test]
    fn chunk_headers_prefer_the_named_ones() {
        let mut a: Answer = serde_json::from_str(
            r#"{"qrmk":"k","chunkHeaders":{"x-amz-server-side-encryption-customer-key":"named"}}"#,
        )
        .expect("answer");
        let h = a.chunk_headers();
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].1.expose(), "named");
        a.chunk_headers = None;
        let h = a.chunk_headers();
        assert_eq!(h.len(), 2);
        assert_eq!(h[1].1.expose(), "k");
        assert!(!format!("{a:?}").contains("\"k\""), "{a:?}");
    }
}
