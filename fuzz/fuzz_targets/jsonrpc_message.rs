//! Arbitrary bytes, one message per line, through an MCP session.
//!
//! Must never panic, must answer every request exactly once with a
//! well-formed response carrying the request's id, and must answer no
//! notification. What counts as a request is decided independently, with
//! serde_json's `Value`.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};
use snowflake_mcp::mcp::{
    Content, Dispatched, McpServer, Prompt, PromptMessage, PromptOutput, Resource,
    ResourceContents, Role, Session, Tool, ToolOutput,
};

fn server() -> &'static McpServer {
    static SERVER: OnceLock<McpServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        McpServer::builder("fuzz", "0")
            .page_size(1)
            .tool(Tool::raw(
                "echo",
                "Echoes.",
                json!({"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}),
                |_ctx, args| async move { ToolOutput::structured(args) },
            ))
            .tool(Tool::raw("other", "Other.", json!({"type": "object"}), |_ctx, _| async {
                ToolOutput::error("no")
            }))
            .resource(Resource::text("mem://a", "a", "text/plain", "A"))
            .resource(
                Resource::template("mem://t/{x}", "t", |_ctx, uri, vars| async move {
                    Ok(vec![ResourceContents::Text { uri, mime_type: None, text: vars[0].1.clone() }])
                })
                .complete("x", |typed| vec![typed.to_owned()]),
            )
            .prompt(
                Prompt::new("p", |_ctx, args| async move {
                    Ok(PromptOutput::new(vec![PromptMessage {
                        role: Role::User,
                        content: Content::Text { text: format!("{args:?}") },
                    }]))
                })
                .argument("need", "", true),
            )
            .build()
    })
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    })
}

/// What a message is, judged without our parser.
enum Expect {
    /// Exactly one answer with this id (`Value::Null` when the id is unreadable).
    Answer(Value),
    /// No answer.
    Silent,
    /// A batch: zero or one answer (an array, or an error object).
    Batch,
}

/// Whether a JSON object has an envelope member (`id`, `method`, ...) twice.
struct HasDuplicate(bool);

impl<'de> serde::Deserialize<'de> for HasDuplicate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = HasDuplicate;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<HasDuplicate, A::Error> {
                let mut seen = std::collections::HashSet::new();
                let mut dup = false;
                while let Some(k) = map.next_key::<String>()? {
                    map.next_value::<serde::de::IgnoredAny>()?;
                    // Only the envelope's own members are read (and checked for repeats).
                    let known = ["jsonrpc", "id", "method", "params", "result", "error"];
                    dup |= known.contains(&k.as_str()) && !seen.insert(k);
                }
                Ok(HasDuplicate(dup))
            }
        }
        d.deserialize_map(V)
    }
}

/// `bytes` with every `\uD800`-`\uDFFF` escape replaced by `\uFFFD`: RFC
/// 8259's grammar allows a lone surrogate escape (our scanner accepts it,
/// and echoes such ids as they came), serde_json refuses one; the oracle
/// judges what remains.
fn without_surrogates(bytes: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let mut i = 0;
    while i + 6 <= out.len() {
        if out[i] == b'\\' {
            let hex = &out[i + 2..i + 6];
            let surrogate = out[i + 1] == b'u'
                && std::str::from_utf8(hex)
                    .ok()
                    .and_then(|h| u16::from_str_radix(h, 16).ok())
                    .is_some_and(|c| (0xD800..=0xDFFF).contains(&c));
            if surrogate {
                out[i + 2..i + 6].copy_from_slice(b"FFFD");
            }
            // Skip the escaped character either way.
            i += 2;
            continue;
        }
        i += 1;
    }
    out
}

/// `bytes` as a JSON value, lone surrogate escapes allowed.
fn lenient(bytes: &[u8]) -> Option<Value> {
    serde_json::from_slice(bytes)
        .ok()
        .or_else(|| serde_json::from_slice(&without_surrogates(bytes)).ok())
}

fn expect(line: &[u8]) -> Expect {
    let Some(v) = lenient(line) else {
        return Expect::Answer(Value::Null);
    };
    let line = &without_surrogates(line)[..];
    // Our parser refuses duplicate members (serde's Value keeps the last one).
    if v.is_object() && serde_json::from_slice::<HasDuplicate>(line).is_ok_and(|d| d.0) {
        return Expect::Answer(Value::Null);
    }
    let Some(obj) = v.as_object() else {
        return if v.is_array() {
            Expect::Batch
        } else {
            Expect::Answer(Value::Null)
        };
    };
    let valid_id = |id: &Value| id.is_string() || id.is_number();
    let is_request = obj.get("method").is_some_and(Value::is_string)
        && obj.get("jsonrpc") == Some(&json!("2.0"))
        && obj.get("id").is_some_and(valid_id)
        && !obj.contains_key("result")
        && !obj.contains_key("error")
        && obj
            .get("params")
            .is_none_or(|p| p.is_object() || p.is_array());
    let is_notification = obj.get("method").is_some_and(Value::is_string)
        && obj.get("jsonrpc") == Some(&json!("2.0"))
        && !obj.contains_key("id")
        && !obj.contains_key("result")
        && !obj.contains_key("error")
        && obj
            .get("params")
            .is_none_or(|p| p.is_object() || p.is_array());
    let is_response = obj.get("jsonrpc") == Some(&json!("2.0"))
        && !obj.contains_key("method")
        && (obj.contains_key("result") != obj.contains_key("error"))
        && obj
            .get("id")
            .is_some_and(|id| valid_id(id) || (id.is_null() && obj.contains_key("error")));
    if is_request {
        Expect::Answer(obj["id"].clone())
    } else if is_notification || is_response {
        Expect::Silent
    } else {
        // Invalid request: answered, with the id when it is a valid one.
        Expect::Answer(
            obj.get("id")
                .filter(|id| valid_id(id))
                .cloned()
                .unwrap_or(Value::Null),
        )
    }
}

fn check_answer(answer: &[u8], id: &Value) {
    let v: Value = lenient(answer).expect("answer is JSON");
    assert_eq!(v["jsonrpc"], "2.0");
    assert!(
        v.get("result").is_some() != v.get("error").is_some(),
        "result xor error: {v}"
    );
    if let Some(e) = v.get("error") {
        assert!(e["code"].is_i64() && e["message"].is_string(), "{v}");
    }
    // Duplicate keys make serde_json's Value keep the last; our parser refuses
    // them (invalid request, id unknown), so a null id is acceptable there.
    assert!(
        &v["id"] == id || v["id"].is_null(),
        "answer id {} for request id {id}",
        v["id"]
    );
}

fuzz_target!(|data: &[u8]| {
    let session = Arc::new(Session::new(server().clone(), None));
    let mut out = Vec::new();
    for line in data.split(|&b| b == b'\n') {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        out.clear();
        let answer = match session.dispatch(line, &mut out) {
            Dispatched::Done => (!out.is_empty()).then(|| out.clone()),
            Dispatched::Call(call) => {
                let call = call.into_owned(&session);
                let answer = runtime().block_on(call.run());
                assert!(answer.is_some(), "an uncancelled call is answered");
                answer
            }
            Dispatched::Batch => runtime().block_on(session.handle(line)),
        };
        match expect(line) {
            Expect::Answer(id) => check_answer(&answer.expect("a request gets an answer"), &id),
            Expect::Silent => assert!(
                answer.is_none(),
                "notification answered: {:?}",
                answer.map(String::from_utf8)
            ),
            Expect::Batch => {
                if let Some(a) = answer {
                    let v: Value = serde_json::from_slice(&a).expect("batch answer is JSON");
                    assert!(v.is_array() || v.get("error").is_some());
                }
            }
        }
    }
});
