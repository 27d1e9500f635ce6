//! Resources, prompts, catalog changes, 2026-07-28 input rounds, output
//! schemas, the context and call accounting.

use std::sync::Arc;

use serde_json::{Value, json};

use super::*;

fn catalog() -> Arc<Session> {
    let server = McpServer::builder("cat", "0")
        .resource(Resource::text("mem://a", "a", "text/plain", "A"))
        .resource(Resource::new(
            "mem://broken",
            "broken",
            |_ctx, _uri| async { Err(ReadError::Failed("disk on fire".into())) },
        ))
        .resource(
            Resource::template("mem://t/{x}", "t", |_ctx, uri, vars| async move {
                if vars[0].1 == "missing" {
                    return Err(ReadError::NotFound);
                }
                Ok(vec![ResourceContents::Text {
                    uri,
                    mime_type: None,
                    text: vars[0].1.clone(),
                }])
            })
            .complete("x", |typed| vec![format!("{typed}1"), format!("{typed}2")]),
        )
        .prompt(
            Prompt::new("p", |_ctx, args| async move {
                Ok(PromptOutput::new(vec![PromptMessage {
                    role: Role::User,
                    content: Content::Text {
                        text: format!("{args:?}"),
                    },
                }]))
            })
            .argument("need", "", true)
            .argument("maybe", "", false),
        )
        .build();
    Arc::new(Session::new(server, None))
}

#[tokio::test]
async fn resources() {
    let s = catalog();
    init(&s, "2025-06-18").await;
    let r = send(&s, req(1, "resources/read", json!({"uri": "mem://a"})))
        .await
        .unwrap();
    assert_eq!(r["result"]["contents"][0]["text"], "A");
    let r = send(&s, req(2, "resources/read", json!({"uri": "mem://t/q"})))
        .await
        .unwrap();
    assert_eq!(
        r["result"]["contents"][0],
        json!({"uri": "mem://t/q", "text": "q"})
    );
    for (uri, code) in [
        ("mem://none", -32002),
        ("mem://t/missing", -32002),
        ("mem://broken", -32603),
    ] {
        let r = send(&s, req(3, "resources/read", json!({"uri": uri})))
            .await
            .unwrap();
        assert_eq!(error_code(&r), code, "{uri}");
        if code == -32002 {
            assert_eq!(r["error"]["data"]["uri"], uri);
        }
    }
    assert_eq!(
        error_code(&send(&s, req(4, "resources/read", json!({}))).await.unwrap()),
        -32602
    );
    assert_eq!(
        error_code(
            &send(&s, req(5, "resources/read", json!({"uri": 1})))
                .await
                .unwrap()
        ),
        -32602
    );
    let r = send(&s, req(6, "resources/templates/list", json!({})))
        .await
        .unwrap();
    assert_eq!(
        r["result"]["resourceTemplates"][0]["uriTemplate"],
        "mem://t/{x}"
    );
    assert_eq!(
        send(&s, req(7, "resources/subscribe", json!({"uri": "mem://a"})))
            .await
            .unwrap()["result"],
        json!({})
    );
    assert!(s.is_subscribed("mem://a"));
    send(
        &s,
        req(8, "resources/unsubscribe", json!({"uri": "mem://a"})),
    )
    .await
    .unwrap();
    assert!(!s.is_subscribed("mem://a"));
    // 2026-07-28: cache hints on reads; subscriptions are gone.
    let m = catalog();
    let r = send(&m, modern(1, "resources/read", json!({"uri": "mem://a"})))
        .await
        .unwrap();
    assert_eq!(
        (&r["result"]["resultType"], &r["result"]["cacheScope"]),
        (&json!("complete"), &json!("private"))
    );
    assert_eq!(
        error_code(
            &send(
                &m,
                modern(2, "resources/subscribe", json!({"uri": "mem://a"}))
            )
            .await
            .unwrap()
        ),
        -32601
    );
}

#[tokio::test]
async fn prompts_and_completion() {
    let s = catalog();
    init(&s, "2025-06-18").await;
    let r = send(
        &s,
        req(
            1,
            "prompts/get",
            json!({"name": "p", "arguments": {"need": "x"}}),
        ),
    )
    .await
    .unwrap();
    assert_eq!(r["result"]["messages"][0]["role"], "user");
    let bad = [
        json!({"name": "p"}),
        json!({"name": "p", "arguments": {"need": "x", "extra": "y"}}),
        json!({"name": "p", "arguments": {"need": 1}}),
        json!({"name": "p", "arguments": ["need"]}),
        json!({"name": "nope"}),
        json!({}),
    ];
    for params in bad {
        let r = send(&s, req(2, "prompts/get", params.clone()))
            .await
            .unwrap();
        assert_eq!(error_code(&r), -32602, "{params}");
    }
    let r = send(&s, req(3, "completion/complete", json!({"ref": {"type": "ref/resource", "uri": "mem://t/{x}"}, "argument": {"name": "x", "value": "v"}}))).await.unwrap();
    assert_eq!(
        r["result"]["completion"],
        json!({"values": ["v1", "v2"], "total": 2, "hasMore": false})
    );
    let r = send(&s, req(4, "completion/complete", json!({"ref": {"type": "ref/prompt", "name": "p"}, "argument": {"name": "need", "value": ""}}))).await.unwrap();
    assert_eq!(r["result"]["completion"]["values"], json!([]));
    for params in [
        json!({"ref": {"type": "ref/other"}, "argument": {"name": "x", "value": ""}}),
        json!({"ref": {"type": "ref/prompt", "name": "zz"}, "argument": {"name": "x", "value": ""}}),
        json!({"ref": {"type": "ref/prompt", "name": "p"}}),
        json!({"argument": {"name": "x", "value": ""}}),
    ] {
        assert_eq!(
            error_code(
                &send(&s, req(5, "completion/complete", params.clone()))
                    .await
                    .unwrap()
            ),
            -32602,
            "{params}"
        );
    }
    let caps = init(&catalog(), "2025-06-18").await;
    assert_eq!(caps["result"]["capabilities"]["completions"], json!({}));
    assert_eq!(
        caps["result"]["capabilities"]["resources"]["subscribe"],
        true
    );
}

#[tokio::test]
async fn catalog_changes_are_seen_and_announced() {
    let server = server(100);
    let s = Arc::new(Session::new(server.clone(), None));
    let fresh = Arc::new(Session::new(server.clone(), None));
    init(&s, "2025-11-25").await;
    // A call dispatched before the tool is removed still runs against its catalog.
    let mut out = Vec::new();
    let msg = req(
        1,
        "tools/call",
        json!({"name": "double", "arguments": {"n": 5}}),
    )
    .to_string();
    let Dispatched::Call(call) = s.dispatch(msg.as_bytes(), &mut out) else {
        panic!()
    };
    let call = call.into_owned(&s);
    assert!(server.remove_tool("double"));
    assert!(!server.remove_tool("double"));
    let answer: Value = serde_json::from_slice(&call.run().await.unwrap()).unwrap();
    assert_eq!(answer["result"]["structuredContent"], json!({"value": 10}));
    let r = send(
        &s,
        req(
            2,
            "tools/call",
            json!({"name": "double", "arguments": {"n": 5}}),
        ),
    )
    .await
    .unwrap();
    assert_eq!(error_code(&r), -32602);
    server.add_tool(Tool::raw(
        "late",
        "Added later.",
        json!({"type": "object"}),
        |_ctx, _| async { ToolOutput::text("late") },
    ));
    let r = send(&s, req(3, "tools/list", json!({}))).await.unwrap();
    let names: Vec<&str> = r["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["wait", "late"]);
    let note = s.notification_for(&ServerEvent::ToolsChanged).unwrap();
    assert_eq!(
        note,
        br#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#
    );
    // No notification to a session that never initialized, or for a resource nobody subscribed to.
    assert!(fresh.notification_for(&ServerEvent::ToolsChanged).is_none());
    assert!(
        s.notification_for(&ServerEvent::ResourceUpdated("mem://x".into()))
            .is_none()
    );
}

#[tokio::test]
async fn input_required_round_trip_on_2026() {
    let server = McpServer::builder("ask", "0")
        .tool(Tool::raw(
            "ask",
            "Asks the client.",
            json!({"type": "object"}),
            |ctx, _| async move {
                match ctx
                    .request(
                        "sampling/createMessage",
                        json!({"messages": [], "maxTokens": 5}),
                    )
                    .await
                {
                    Ok(answer) => ToolOutput::text(
                        answer["content"]["text"].as_str().unwrap_or("?").to_owned(),
                    ),
                    Err(e) => ToolOutput::error(e.message),
                }
            },
        ))
        .build();
    let s = Arc::new(Session::new(server, None));
    let stamped = |caps: Value, extra: Value| {
        let mut p = json!({"name": "ask", "arguments": {}});
        p["_meta"] = json!({
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": caps,
        });
        if let Some(obj) = extra.as_object() {
            for (k, v) in obj {
                p[k] = v.clone();
            }
        }
        req(1, "tools/call", p)
    };
    // Without the capability the call fails with -32021 naming it.
    let r = send(&s, stamped(json!({}), json!({}))).await.unwrap();
    assert_eq!(r["error"]["code"], -32021);
    assert_eq!(
        r["error"]["data"]["requiredCapabilities"],
        json!({"sampling": {}})
    );
    // With it, the call answers input_required ...
    let r = send(&s, stamped(json!({"sampling": {}}), json!({})))
        .await
        .unwrap();
    assert_eq!(r["result"]["resultType"], "input_required");
    assert_eq!(
        r["result"]["inputRequests"]["r0"]["method"],
        "sampling/createMessage"
    );
    assert_eq!(r["result"]["inputRequests"]["r0"]["params"]["maxTokens"], 5);
    // ... and the retry with the answer completes.
    let answer = json!({"inputResponses": {"r0": {"role": "assistant", "content": {"type": "text", "text": "hi"}, "model": "m"}}});
    let r = send(&s, stamped(json!({"sampling": {}}), answer))
        .await
        .unwrap();
    assert_eq!(r["result"]["resultType"], "complete");
    assert_eq!(r["result"]["content"][0]["text"], "hi");
}

#[tokio::test]
async fn named_input_requests_and_sealed_state_on_2026() {
    use crate::mcp::InputRequests;
    let server = McpServer::builder("ask", "0")
        .tool(Tool::raw(
            "two_rounds",
            "Asks for a name, then a color.",
            json!({"type": "object"}),
            |ctx, _| async move {
                let name_form =
                    json!({"type": "object", "properties": {"name": {"type": "string"}}});
                let color_form =
                    json!({"type": "object", "properties": {"color": {"type": "string"}}});
                if ctx.request_state() != Some("round-2") {
                    let first = InputRequests::new()
                        .elicit("step1", "Name?", name_form)
                        .state("round-1");
                    let answers = match ctx.input(first).await {
                        Ok(a) => a,
                        Err(e) => return ToolOutput::error(e.message),
                    };
                    let name = answers["step1"]["content"]["name"]
                        .as_str()
                        .unwrap_or("?")
                        .to_owned();
                    let second = InputRequests::new()
                        .elicit("step2", &format!("{name}, favourite color?"), color_form)
                        .state("round-2");
                    ctx.input(second).await.ok();
                    return ToolOutput::error("unreachable on 2026-07-28");
                }
                let color = ctx
                    .input_response("step2")
                    .and_then(|a| a["content"]["color"].as_str())
                    .unwrap_or("?")
                    .to_owned();
                ToolOutput::text(format!("state-ok {color}"))
            },
        ))
        .build();
    let s = Arc::new(Session::new(server, None));
    let call = |extra: Value| {
        let mut p = json!({"name": "two_rounds", "arguments": {}});
        p["_meta"] = json!({
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {"elicitation": {}},
        });
        for (k, v) in extra.as_object().into_iter().flatten() {
            p[k] = v.clone();
        }
        req(1, "tools/call", p)
    };
    let r1 = send(&s, call(json!({}))).await.unwrap();
    assert_eq!(r1["result"]["resultType"], "input_required");
    assert_eq!(
        r1["result"]["inputRequests"]["step1"]["method"],
        "elicitation/create"
    );
    let state1 = r1["result"]["requestState"].as_str().unwrap().to_owned();
    assert!(
        !state1.contains("round-1"),
        "state is sealed, not plain: {state1}"
    );

    let answer1 = json!({"step1": {"action": "accept", "content": {"name": "Ada"}}});
    let r2 = send(
        &s,
        call(json!({"inputResponses": answer1, "requestState": state1})),
    )
    .await
    .unwrap();
    assert_eq!(r2["result"]["resultType"], "input_required", "{r2}");
    assert_eq!(
        r2["result"]["inputRequests"]["step2"]["params"]["message"],
        "Ada, favourite color?"
    );
    let state2 = r2["result"]["requestState"].as_str().unwrap().to_owned();
    assert_ne!(state1, state2);

    let answer2 = json!({"step2": {"action": "accept", "content": {"color": "teal"}}});
    let r3 = send(
        &s,
        call(json!({"inputResponses": answer2.clone(), "requestState": state2.clone()})),
    )
    .await
    .unwrap();
    assert_eq!(r3["result"]["content"][0]["text"], "state-ok teal");

    // A tampered or non-string state is refused before the tool runs.
    let tampered = format!("{state2}-TAMPERED");
    let r = send(
        &s,
        call(json!({"inputResponses": answer2.clone(), "requestState": tampered})),
    )
    .await
    .unwrap();
    assert_eq!(r["error"]["code"], -32602);
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("requestState")
    );
    let r = send(
        &s,
        call(json!({"inputResponses": answer2, "requestState": 7})),
    )
    .await
    .unwrap();
    assert_eq!(r["error"]["code"], -32602);
}

#[tokio::test]
async fn output_must_match_the_declared_schema() {
    let schema =
        json!({"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]});
    let server = McpServer::builder("out", "0")
        .tool(
            Tool::raw("good", "", json!({"type": "object"}), |_c, _| async {
                ToolOutput::structured(json!({"n": 1}))
            })
            .output_schema(schema.clone()),
        )
        .tool(
            Tool::raw("wrong", "", json!({"type": "object"}), |_c, _| async {
                ToolOutput::structured(json!({"n": "x"}))
            })
            .output_schema(schema.clone()),
        )
        .tool(
            Tool::raw("bare", "", json!({"type": "object"}), |_c, _| async {
                ToolOutput::text("1")
            })
            .output_schema(schema.clone()),
        )
        .tool(
            Tool::raw("fails", "", json!({"type": "object"}), |_c, _| async {
                ToolOutput::error("boom")
            })
            .output_schema(schema),
        )
        .build();
    let s = Arc::new(Session::new(server, None));
    init(&s, "2025-06-18").await;
    let call = |name: &str| req(1, "tools/call", json!({"name": name}));
    let r = send(&s, call("good")).await.unwrap();
    assert_eq!(r["result"]["structuredContent"], json!({"n": 1}));
    let r = send(&s, call("wrong")).await.unwrap();
    assert_eq!(r["result"]["isError"], true);
    assert_eq!(
        r["result"]["content"][0]["text"],
        "tool output does not match its outputSchema: structuredContent.n: expected integer, got string"
    );
    let r = send(&s, call("bare")).await.unwrap();
    assert_eq!(
        r["result"]["content"][0]["text"],
        "tool output does not match its outputSchema: no structuredContent"
    );
    let r = send(&s, call("fails")).await.unwrap();
    assert_eq!(r["result"]["content"][0]["text"], "boom");
}

#[tokio::test]
async fn context_knows_the_client() {
    let server = McpServer::builder("who", "0")
        .tool(Tool::raw(
            "who",
            "",
            json!({"type": "object"}),
            |ctx, _| async move {
                let name = ctx
                    .client_info()
                    .and_then(|c| c["name"].as_str())
                    .unwrap_or("unknown");
                ToolOutput::text(format!("{name} on {}", ctx.protocol_version().as_str()))
            },
        ))
        .build();
    let s = Arc::new(Session::new(server.clone(), None));
    init(&s, "2025-06-18").await;
    assert_eq!(s.client_info().unwrap()["name"], "t");
    let r = send(&s, req(1, "tools/call", json!({"name": "who"})))
        .await
        .unwrap();
    assert_eq!(r["result"]["content"][0]["text"], "t on 2025-06-18");
    let m = Arc::new(Session::new(server, None));
    let mut p = json!({"name": "who"});
    p["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "modern", "version": "2"},
    });
    let r = send(&m, req(2, "tools/call", p)).await.unwrap();
    assert_eq!(r["result"]["content"][0]["text"], "modern on 2026-07-28");
}

#[tokio::test]
async fn a_dropped_call_leaves_no_inflight_entry() {
    let s = session();
    init(&s, "2025-11-25").await;
    let mut out = Vec::new();
    let msg = req(3, "tools/call", json!({"name": "wait"})).to_string();
    let Dispatched::Call(call) = s.dispatch(msg.as_bytes(), &mut out) else {
        panic!()
    };
    let run = call.into_owned(&s).run();
    // Poll it long enough to register, then drop it (as a closed stream does).
    assert!(
        tokio::time::timeout(Duration::from_millis(50), run)
            .await
            .is_err()
    );
    assert!(s.inflight.lock().is_empty());
}

#[tokio::test]
async fn tool_calls_are_counted_by_tool_and_outcome() {
    // A tool whose own data says "isError": true is not a failed tool.
    let server = McpServer::builder("test", "0.1.0")
        .tool(Tool::raw(
            "lies",
            "Structured isError.",
            json!({"type": "object"}),
            |_ctx, _| async { ToolOutput::structured(json!({"isError": true})) },
        ))
        .tool(Tool::raw(
            "fails",
            "Fails.",
            json!({"type": "object"}),
            |_ctx, _| async { ToolOutput::error("no") },
        ))
        .build();
    let s = Arc::new(Session::new(server.clone(), None));
    init(&s, "2025-06-18").await;
    for (id, name) in [(1, "lies"), (2, "fails"), (3, "fails")] {
        send(
            &s,
            req(id, "tools/call", json!({"name": name, "arguments": {}})),
        )
        .await;
    }
    // Arguments that break the input schema: an isError result (MCP's way), a tool error.
    send(
        &s,
        req(4, "tools/call", json!({"name": "lies", "arguments": 7})),
    )
    .await;
    let counts: std::collections::HashMap<String, [u64; 4]> =
        server.tool_calls().into_iter().collect();
    // [ok, tool_error, error, cancelled]
    assert_eq!(counts["lies"], [1, 1, 0, 0], "{counts:?}");
    assert_eq!(counts["fails"], [0, 2, 0, 0]);
    // After abort_calls (a host's shutdown deadline): a JSON-RPC error with the reason.
    server.abort_calls("server shutting down");
    let r = send(
        &s,
        req(5, "tools/call", json!({"name": "lies", "arguments": {}})),
    )
    .await
    .unwrap();
    assert_eq!(error_code(&r), i64::from(crate::mcp::SERVER_STOPPING));
    assert_eq!(r["error"]["message"], "server shutting down");
    let counts: std::collections::HashMap<String, [u64; 4]> =
        server.tool_calls().into_iter().collect();
    assert_eq!(counts["lies"], [1, 1, 1, 0], "{counts:?}");
}

#[tokio::test]
async fn a_tool_gets_its_arguments_whole_small_or_large() {
    // Small arguments are kept with the call's id and `_meta` parts; large
    // ones (a large message, read off the async workers) as serde_json's.
    let server = McpServer::builder("args", "0")
        .tool(Tool::raw(
            "echo",
            "",
            json!({"type": "object"}),
            |_ctx, args: Value| async move {
                let text = args["text"].as_str().unwrap_or_default();
                let head: String = text.chars().take(2).collect();
                ToolOutput::text(format!("{} {head}", text.len()))
            },
        ))
        .build();
    let s = Arc::new(Session::new(server, None));
    init(&s, "2025-06-18").await;
    for len in [0, 3, 900, crate::mcp::LARGE_MESSAGE + 10] {
        let text = "é".repeat(len / 2);
        let args = json!({"text": text, "n": [1, 2.5, null, {"k": "\"q\""}]});
        for version in ["legacy", "modern"] {
            let params = json!({"name": "echo", "arguments": args});
            let call = match version {
                "legacy" => req(7, "tools/call", params),
                _ => modern(7, "tools/call", params),
            };
            let r = send(&s, call).await.expect("an answer");
            let head: String = text.chars().take(2).collect();
            let want = format!("{} {head}", text.len());
            assert_eq!(r["id"], 7, "{version} {len}");
            assert_eq!(r["result"]["content"][0]["text"], want, "{version} {len}");
        }
    }
}
