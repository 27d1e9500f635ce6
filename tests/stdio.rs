//! The stdio transport over in-memory pipes: framing, limits, concurrency, EOF.

use std::time::Duration;

use serde_json::{Value, json};
use snowflake_mcp::mcp::{McpServer, Tool, ToolOutput};
use snowflake_mcp::transport::stdio::serve;

/// The longest line the stdio transport accepts (4 MiB, as documented).
const MAX_LINE_BYTES: usize = 4 * 1024 * 1024;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

fn server() -> McpServer {
    McpServer::builder("stdio-test", "0")
        .tool(Tool::raw(
            "slow",
            "Sleeps 200 ms.",
            json!({"type": "object"}),
            |_ctx, _| async {
                tokio::time::sleep(Duration::from_millis(200)).await;
                ToolOutput::text("slow done")
            },
        ))
        .build()
}

const INIT: &str = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"0"}}}"#;

/// Runs the transport with `input`, returns every output line as JSON.
async fn run(input: Vec<u8>) -> Vec<Value> {
    let (mut client_in, server_in) = tokio::io::duplex(1 << 20);
    let (server_out, client_out) = tokio::io::duplex(1 << 20);
    let task = tokio::spawn(serve(server(), server_in, server_out));
    client_in.write_all(&input).await.unwrap();
    drop(client_in); // EOF
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("exits at EOF")
        .unwrap()
        .unwrap();
    let mut lines = BufReader::new(client_out).lines();
    let mut out = Vec::new();
    while let Some(line) = lines.next_line().await.unwrap() {
        out.push(serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}")));
    }
    out
}

#[tokio::test]
async fn answers_in_flight_calls_before_exiting_at_eof() {
    let input = format!(
        "{INIT}\n\n   \n{}\n{}\n",
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"slow"}}"#,
        r#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#
    );
    let out = run(input.into_bytes()).await;
    let ids: Vec<&Value> = out.iter().map(|v| &v["id"]).collect();
    // The ping overtakes the slow call; the call is still answered before exit.
    assert_eq!(ids, [&json!(0), &json!(2), &json!(1)]);
    assert_eq!(out[2]["result"]["content"][0]["text"], "slow done");
}

#[tokio::test]
async fn bad_lines_get_errors_and_the_session_goes_on() {
    let mut input = format!("{INIT}\nnot json\n").into_bytes();
    input.extend(std::iter::repeat_n(b'x', MAX_LINE_BYTES + 10));
    input.extend_from_slice(b"\r\n{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"ping\"}\r\n");
    input.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"ping\"}"); // no final newline
    let out = run(input).await;
    assert_eq!(out.len(), 5, "{out:?}");
    assert_eq!(out[1]["error"]["code"], -32700);
    assert_eq!(out[2]["error"]["code"], -32600);
    assert!(
        out[2]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("longer than")
    );
    assert_eq!((&out[3]["id"], &out[3]["result"]), (&json!(3), &json!({})));
    assert_eq!(out[4]["id"], 4);
}

#[tokio::test]
async fn a_thread_fed_reader_serves_a_blocking_source_to_its_end() {
    use snowflake_mcp::transport::stdio::ThreadStdin;
    // More than one 64 KiB read of the thread, lines split across reads.
    let mut input = format!("{INIT}\n");
    for id in 1..=6000 {
        input.push_str(&format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"ping"}}"#));
        input.push('\n');
    }
    assert!(input.len() > 2 * 64 * 1024);
    let reader = ThreadStdin::spawn(std::io::Cursor::new(input.into_bytes()));
    let (server_out, client_out) = tokio::io::duplex(1 << 22);
    tokio::time::timeout(Duration::from_secs(10), serve(server(), reader, server_out))
        .await
        .expect("ends at the source's end")
        .expect("served");
    let mut lines = BufReader::new(client_out).lines();
    let mut ids = std::collections::BTreeSet::new();
    while let Some(line) = lines.next_line().await.unwrap() {
        let v: Value = serde_json::from_str(&line).unwrap();
        assert!(v.get("error").is_none(), "{v}");
        ids.insert(v["id"].as_i64().unwrap());
    }
    assert_eq!(ids.len(), 6001, "every line answered once");
}
