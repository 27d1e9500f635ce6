//! Every dispatch path and error of the session, message by message.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use crate::mcp::{
    Content, Prompt, PromptMessage, PromptOutput, ReadError, Resource, ResourceContents, Role,
    ServerEvent, Tool, ToolOutput,
};

fn server(page_size: usize) -> McpServer {
    #[derive(serde::Deserialize)]
    struct Args {
        n: i64,
    }
    McpServer::builder("test", "0.1.0")
        .page_size(page_size)
        .tool(
            Tool::typed(
                "double",
                "Doubles n.",
                json!({"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}),
                |_ctx, a: Args| async move { ToolOutput::structured(json!({"value": a.n * 2})) },
            )
            .title("Double")
            .output_schema(json!({"type": "object"})),
        )
        .tool(Tool::raw("wait", "Waits until cancelled.", json!({"type": "object"}), |ctx, _| async move {
            ctx.cancelled().await;
            ToolOutput::text("cancelled")
        }))
        .build()
}

fn session() -> Arc<Session> {
    Arc::new(Session::new(server(100), None))
}

async fn send(s: &Arc<Session>, msg: Value) -> Option<Value> {
    s.handle(msg.to_string().as_bytes())
        .await
        .map(|b| serde_json::from_slice(&b).expect("answer is JSON"))
}

async fn init(s: &Arc<Session>, version: &str) -> Value {
    send(s, json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}))
    .await
    .unwrap()
}

fn req(id: i64, method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

fn modern(id: i64, method: &str, mut params: Value) -> Value {
    params["_meta"] = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28"});
    req(id, method, params)
}

fn error_code(answer: &Value) -> i64 {
    answer["error"]["code"]
        .as_i64()
        .unwrap_or_else(|| panic!("not an error: {answer}"))
}

#[tokio::test]
async fn parse_errors_and_invalid_requests() {
    let s = session();
    let a: Value = serde_json::from_slice(&s.handle(b"{oops").await.unwrap()).unwrap();
    assert_eq!((error_code(&a), &a["id"]), (-32700, &Value::Null));
    let a: Value =
        serde_json::from_slice(&s.handle(br#"{"id":5,"method":"ping"}"#).await.unwrap()).unwrap();
    assert_eq!((error_code(&a), &a["id"]), (-32600, &json!(5)));
}

#[tokio::test]
async fn lifecycle() {
    let s = session();
    // Ping works before initialize; other requests do not.
    assert_eq!(
        send(&s, req(1, "ping", json!({}))).await.unwrap()["result"],
        json!({})
    );
    let a = send(&s, req(2, "tools/list", json!({}))).await.unwrap();
    assert_eq!(error_code(&a), -32600);
    assert!(
        a["error"]["message"]
            .as_str()
            .unwrap()
            .contains("initialize")
    );
    // Negotiation: a version we speak is echoed, another gets our newest handshake version.
    assert_eq!(
        init(&s, "2024-11-05").await["result"]["protocolVersion"],
        "2024-11-05"
    );
    let s2 = session();
    let r = init(&s2, "2099-01-01").await;
    assert_eq!(r["result"]["protocolVersion"], "2025-11-25");
    assert_eq!(r["result"]["serverInfo"]["name"], "test");
    assert_eq!(r["result"]["capabilities"]["tools"]["listChanged"], true);
    // Notifications get no answer.
    assert!(
        send(
            &s,
            json!({"jsonrpc": "2.0", "method": "notifications/initialized"})
        )
        .await
        .is_none()
    );
    assert!(
        send(
            &s,
            json!({"jsonrpc": "2.0", "method": "notifications/unknown"})
        )
        .await
        .is_none()
    );
    // Responses (to requests we never sent) get none either.
    assert!(
        send(&s, json!({"jsonrpc": "2.0", "id": 9, "result": {}}))
            .await
            .is_none()
    );
    assert_eq!(
        error_code(&send(&s, req(3, "no/such", json!({}))).await.unwrap()),
        -32601
    );
    assert_eq!(
        error_code(
            &send(&s, req(4, "logging/setLevel", json!({"level": "loud"})))
                .await
                .unwrap()
        ),
        -32602
    );
    assert_eq!(
        send(&s, req(5, "logging/setLevel", json!({"level": "warning"})))
            .await
            .unwrap()["result"],
        json!({})
    );
    assert_eq!(
        error_code(&send(&s, req(6, "tools/list", json!(7))).await.unwrap()),
        -32600
    );
}

#[tokio::test]
async fn tools_list_pages_and_variants() {
    let s = Arc::new(Session::new(server(1), None));
    init(&s, "2025-06-18").await;
    let first = send(&s, req(1, "tools/list", json!({}))).await.unwrap();
    assert_eq!(first["result"]["tools"][0]["name"], "double");
    assert_eq!(first["result"]["tools"][0]["title"], "Double");
    assert!(first["result"]["tools"][0]["outputSchema"].is_object());
    let cursor = first["result"]["nextCursor"].as_str().unwrap().to_owned();
    let second = send(&s, req(2, "tools/list", json!({"cursor": cursor})))
        .await
        .unwrap();
    assert_eq!(second["result"]["tools"][0]["name"], "wait");
    assert!(second["result"].get("nextCursor").is_none());
    for bad in ["page-0", "page-2", "page-01", "zzz", ""] {
        let a = send(&s, req(3, "tools/list", json!({"cursor": bad})))
            .await
            .unwrap();
        assert_eq!(error_code(&a), -32602, "{bad}");
    }
    // Older clients do not see fields their version lacks.
    let old = session();
    init(&old, "2025-03-26").await;
    let r = send(&old, req(1, "tools/list", json!({}))).await.unwrap();
    assert!(r["result"]["tools"][0].get("title").is_none());
    assert!(r["result"]["tools"][0].get("outputSchema").is_none());
    // 2026-07-28 needs no handshake and stamps cache hints and resultType.
    let m = session();
    let r = send(&m, modern(1, "tools/list", json!({}))).await.unwrap();
    assert_eq!(r["result"]["resultType"], "complete");
    assert_eq!(r["result"]["ttlMs"], 0);
    assert_eq!(r["result"]["cacheScope"], "public");
}

#[tokio::test]
async fn tools_call_results_and_errors() {
    let s = session();
    init(&s, "2025-06-18").await;
    let r = send(
        &s,
        req(
            1,
            "tools/call",
            json!({"name": "double", "arguments": {"n": 21}}),
        ),
    )
    .await
    .unwrap();
    assert_eq!(r["result"]["structuredContent"], json!({"value": 42}));
    assert_eq!(r["result"]["content"][0]["text"], r#"{"value":42}"#);
    assert!(r["result"].get("isError").is_none());
    // Schema failures are tool results that say which field and why.
    let r = send(
        &s,
        req(
            2,
            "tools/call",
            json!({"name": "double", "arguments": {"n": "x"}}),
        ),
    )
    .await
    .unwrap();
    assert_eq!(r["result"]["isError"], true);
    assert_eq!(
        r["result"]["content"][0]["text"],
        "invalid arguments: arguments.n: expected integer, got string"
    );
    let r = send(&s, req(3, "tools/call", json!({"name": "double"})))
        .await
        .unwrap();
    assert_eq!(
        r["result"]["content"][0]["text"],
        "invalid arguments: arguments.n: required"
    );
    // Unknown tools and malformed calls are JSON-RPC errors.
    assert_eq!(
        error_code(
            &send(&s, req(4, "tools/call", json!({"name": "nope"})))
                .await
                .unwrap()
        ),
        -32602
    );
    assert_eq!(
        error_code(&send(&s, req(5, "tools/call", json!({}))).await.unwrap()),
        -32602
    );
    assert_eq!(
        error_code(
            &send(&s, req(6, "tools/call", json!({"name": 3})))
                .await
                .unwrap()
        ),
        -32602
    );
    // structuredContent only where the version has it; resultType only on 2026-07-28.
    let old = session();
    init(&old, "2025-03-26").await;
    let r = send(
        &old,
        req(
            1,
            "tools/call",
            json!({"name": "double", "arguments": {"n": 1}}),
        ),
    )
    .await
    .unwrap();
    assert!(r["result"].get("structuredContent").is_none());
    let m = session();
    let r = send(
        &m,
        modern(
            1,
            "tools/call",
            json!({"name": "double", "arguments": {"n": 1}}),
        ),
    )
    .await
    .unwrap();
    assert_eq!(r["result"]["resultType"], "complete");
    assert_eq!(r["result"]["structuredContent"], json!({"value": 2}));
}

#[tokio::test]
async fn modern_requests() {
    let s = session();
    let r = send(&s, modern(1, "server/discover", json!({})))
        .await
        .unwrap();
    assert!(
        r["result"]["supportedVersions"]
            .as_array()
            .unwrap()
            .contains(&json!("2026-07-28"))
    );
    assert_eq!(r["result"]["resultType"], "complete");
    let mut p = json!({});
    p["_meta"] = json!({"io.modelcontextprotocol/protocolVersion": "2031-01-01"});
    let r = send(&s, req(2, "tools/list", p)).await.unwrap();
    assert_eq!(error_code(&r), -32022);
    assert!(
        r["error"]["data"]["supported"]
            .as_array()
            .unwrap()
            .contains(&json!("2026-07-28"))
    );
    assert_eq!(r["error"]["data"]["requested"], "2031-01-01");
    // A handshake-era version stamped in _meta is not a modern request either.
    let mut p = json!({});
    p["_meta"] = json!({"io.modelcontextprotocol/protocolVersion": "2025-11-25"});
    assert_eq!(
        error_code(&send(&s, req(3, "tools/list", p)).await.unwrap()),
        -32022
    );
    // Methods 2026-07-28 removed.
    assert_eq!(
        error_code(&send(&s, modern(4, "ping", json!({}))).await.unwrap()),
        -32601
    );
    assert_eq!(
        error_code(
            &send(&s, modern(5, "logging/setLevel", json!({"level": "info"})))
                .await
                .unwrap()
        ),
        -32601
    );
}

#[tokio::test]
async fn meta_is_read_with_the_message_and_its_faults_are_named() {
    let s = session();
    init(&s, "2025-11-25").await;
    let refused = |params: Value| {
        let s = Arc::clone(&s);
        async move {
            let r = send(&s, req(9, "tools/list", params)).await.unwrap();
            assert_eq!(error_code(&r), -32602, "{r}");
            r["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        }
    };
    assert!(
        refused(json!({"_meta": [1]}))
            .await
            .contains("must be an object")
    );
    let version = json!({"_meta": {"io.modelcontextprotocol/protocolVersion": 7}});
    assert!(refused(version).await.contains("must be a string"));
    let level = json!({"_meta": {"io.modelcontextprotocol/logLevel": "loud"}});
    assert!(refused(level).await.contains("is not a level"));
    // A progress token is repeated in each notification: a string or a
    // number, no longer than an id may be.
    let token = json!({"_meta": {"progressToken": {"a": 1}}});
    assert!(refused(token).await.contains("a string or a number"));
    let long = "p".repeat(crate::jsonrpc::MAX_ID_BYTES + 1);
    let token = json!({"_meta": {"progressToken": long}});
    assert!(refused(token).await.contains("longer than 1024 bytes"));
    let most = "p".repeat(crate::jsonrpc::MAX_ID_BYTES);
    for fine in [json!(most), json!(7), json!(-1.5), Value::Null] {
        let r = send(
            &s,
            req(9, "tools/list", json!({"_meta": {"progressToken": fine}})),
        )
        .await
        .unwrap();
        assert!(r.get("result").is_some(), "{r}");
    }
    // A broken `_meta` breaks the message: a parse error, no id to answer.
    let r = s
        .handle(br#"{"jsonrpc":"2.0","id":9,"method":"tools/list","params":{"_meta":{"a":}}}"#)
        .await
        .map(|b| serde_json::from_slice::<Value>(&b).expect("JSON"))
        .unwrap();
    assert_eq!(error_code(&r), -32700, "{r}");
    // Members read in the same pass reach dispatch: the stamped version
    // (escaped in its name) makes this a 2026-07-28 request, refused for
    // a version this server does not speak.
    let text = br#"{"jsonrpc":"2.0","id":10,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersio\u006e":"2031-01-01"}}}"#;
    let r: Value = serde_json::from_slice(&s.handle(text).await.unwrap()).unwrap();
    assert_eq!(error_code(&r), -32022, "{r}");
    assert_eq!(r["error"]["data"]["requested"], "2031-01-01");
}

#[tokio::test]
async fn batches_only_on_2025_03_26() {
    let s = session();
    init(&s, "2025-06-18").await;
    let batch = json!([req(1, "ping", json!({})), req(2, "ping", json!({}))]);
    let r = send(&s, batch.clone()).await.unwrap();
    assert_eq!(error_code(&r), -32600);
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("2025-03-26")
    );

    let s = session();
    init(&s, "2025-03-26").await;
    let mixed = json!([
        req(1, "ping", json!({})),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        req(
            2,
            "tools/call",
            json!({"name": "double", "arguments": {"n": 2}})
        ),
        json!({"bad": true}),
    ]);
    let r = send(&s, mixed).await.unwrap();
    let answers = r.as_array().unwrap();
    assert_eq!(answers.len(), 3);
    assert_eq!(answers[0]["id"], 1);
    assert_eq!(answers[1]["result"]["content"][0]["text"], r#"{"value":4}"#);
    assert_eq!(error_code(&answers[2]), -32600);
    let only_notes = json!([{"jsonrpc": "2.0", "method": "notifications/initialized"}]);
    assert!(send(&s, only_notes).await.is_none());
    assert_eq!(error_code(&send(&s, json!([])).await.unwrap()), -32600);
}

#[tokio::test]
async fn cancellation_stops_the_call_without_an_answer() {
    let s = session();
    init(&s, "2025-11-25").await;
    let call = {
        let s = Arc::clone(&s);
        tokio::spawn(async move { send(&s, req(7, "tools/call", json!({"name": "wait"}))).await })
    };
    // Wait for the call to register, then cancel it.
    for _ in 0..100 {
        if !s.inflight.lock().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let cancel = json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 7, "reason": "user"}});
    assert!(send(&s, cancel).await.is_none());
    let answer = tokio::time::timeout(Duration::from_secs(5), call)
        .await
        .unwrap()
        .unwrap();
    assert!(
        answer.is_none(),
        "a cancelled call must not be answered: {answer:?}"
    );
    assert!(s.inflight.lock().is_empty());
}

mod catalog;

#[test]
fn a_connection_party_is_named_when_asked_and_the_first_party_set_wins() {
    let by_connection = Session::new(server(10), None);
    by_connection.set_party_connection(std::net::SocketAddr::from(([127, 0, 0, 9], 4321)));
    by_connection.set_party("later");
    assert_eq!(by_connection.party(), Some("conn-127.0.0.9:4321"));
    let named = Session::new(server(10), None);
    named.set_party("first");
    named.set_party_connection(std::net::SocketAddr::from(([127, 0, 0, 9], 1)));
    assert_eq!(named.party(), Some("first"));
    assert_eq!(Session::new(server(10), None).party(), None);
}

#[tokio::test]
async fn a_large_tool_output_is_answered_inside_its_response() {
    // Past 64 KiB a tool's output is encoded on a heavy-work thread straight
    // into the response that carries it; it must read as the small ones do.
    let text: String = "row \"quoted\" \\ and\nnew line, ".repeat(8_000);
    let rows = json!({"rows": [[text.clone()]], "n": 7});
    let (t, r) = (text.clone(), rows.clone());
    let s = Arc::new(Session::new(
        McpServer::builder("test", "0.1.0")
            .tool(Tool::raw(
                "big",
                "Answers a lot.",
                json!({"type": "object"}),
                move |_ctx, _| {
                    let (t, r) = (t.clone(), r.clone());
                    async move { ToolOutput::structured(r).with_text(t) }
                },
            ))
            .tool(Tool::raw(
                "bad",
                "Fails with a lot.",
                json!({"type": "object"}),
                {
                    let t = text.clone();
                    move |_ctx, _| {
                        let t = t.clone();
                        async move { ToolOutput::error(t) }
                    }
                },
            ))
            .build(),
        None,
    ));
    init(&s, "2025-06-18").await;
    for id in [json!(1), json!("a \"quoted\" id"), json!(-7.5e3)] {
        let call = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": "big", "arguments": {}}});
        let bytes = s
            .handle(call.to_string().as_bytes())
            .await
            .expect("an answer");
        assert!(bytes.len() > 400_000, "{}", bytes.len());
        assert!(
            bytes.capacity() - bytes.len() <= bytes.len() / 16,
            "{}",
            bytes.capacity()
        );
        let a: Value = serde_json::from_slice(&bytes).expect("JSON");
        assert_eq!(a["jsonrpc"], "2.0");
        assert_eq!(a["id"], id);
        assert_eq!(a["result"]["content"][0]["text"], json!(text));
        assert_eq!(a["result"]["structuredContent"], rows);
        assert!(
            a["result"].get("isError").is_none(),
            "{}",
            a["result"]["isError"]
        );
    }
    let call = req(9, "tools/call", json!({"name": "bad", "arguments": {}}));
    let a = send(&s, call).await.expect("an answer");
    assert_eq!(
        (a["id"].clone(), a["result"]["isError"].clone()),
        (json!(9), json!(true))
    );
    assert_eq!(a["result"]["content"][0]["text"], json!(text));
    // The 2026-07-28 form of the same call carries its resultType.
    let a = send(
        &s,
        modern(10, "tools/call", json!({"name": "big", "arguments": {}})),
    )
    .await
    .expect("an answer");
    assert_eq!(
        (a["id"].clone(), a["result"]["resultType"].clone()),
        (json!(10), json!("complete"))
    );
    assert_eq!(a["result"]["structuredContent"], rows);
}
