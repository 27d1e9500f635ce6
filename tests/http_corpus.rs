//! Runs every case of `tests/data/http_requests.txt` against a real server socket.

mod support;

use std::time::Duration;

use snowflake_mcp::Config;
use support::TestServer;

struct Case {
    name: String,
    statuses: Vec<u16>,
    close: bool,
    body: Option<Vec<u8>>,
    raw: Vec<u8>,
}

/// Expands `\r \n \t \\ \xNN` escapes and `<<N*TEXT>>` repetitions.
fn unescape(line: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = line;
    while !rest.is_empty() {
        if let Some(inner) = rest.strip_prefix("<<") {
            let end = inner.find(">>").expect("unclosed <<");
            let (count, text) = inner[..end].split_once('*').expect("<<N*TEXT>>");
            let text = unescape(text);
            for _ in 0..count.parse::<usize>().expect("repeat count") {
                out.extend_from_slice(&text);
            }
            rest = &inner[end + 2..];
            continue;
        }
        let mut chars = rest.chars();
        let c = chars.next().unwrap();
        if c != '\\' {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            rest = chars.as_str();
            continue;
        }
        let e = chars.next().expect("dangling backslash");
        match e {
            'r' => out.push(b'\r'),
            'n' => out.push(b'\n'),
            't' => out.push(b'\t'),
            '\\' => out.push(b'\\'),
            'x' => {
                let hex: String = chars.by_ref().take(2).collect();
                out.push(u8::from_str_radix(&hex, 16).expect("\\xNN"));
            }
            other => panic!("unknown escape \\{other}"),
        }
        rest = chars.as_str();
    }
    out
}

fn load() -> Vec<Case> {
    let text = include_str!("data/http_requests.txt");
    let mut cases: Vec<Case> = Vec::new();
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("=== ") {
            cases.push(Case {
                name: name.trim().to_string(),
                statuses: Vec::new(),
                close: false,
                body: None,
                raw: Vec::new(),
            });
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let case = cases.last_mut().expect("content before the first case");
        if let Some(expect) = line.strip_prefix("expect: ") {
            let (words, body) = match expect.split_once(" body=") {
                Some((w, b)) => (w, Some(unescape(b))),
                None => (expect, None),
            };
            for word in words.split_whitespace() {
                match word {
                    "close" => case.close = true,
                    "keep" => case.close = false,
                    n => case.statuses.push(n.parse().expect("status")),
                }
            }
            case.body = body;
            continue;
        }
        case.raw.extend_from_slice(&unescape(line));
    }
    for c in &cases {
        assert!(!c.statuses.is_empty(), "{}: no expect line", c.name);
        assert!(!c.raw.is_empty(), "{}: no request", c.name);
    }
    cases
}

fn method_of(raw: &[u8]) -> String {
    let start = raw
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(0);
    let end = raw[start..].iter().position(|&b| b == b' ').unwrap_or(0);
    String::from_utf8_lossy(&raw[start..start + end]).into_owned()
}

#[tokio::test]
async fn request_corpus() {
    let cases = load();
    assert!(cases.len() >= 80, "corpus has only {} cases", cases.len());
    let server = TestServer::start(Config::default()).await;
    let mut failures = Vec::new();
    for case in &cases {
        let mut c = server.connect().await;
        c.try_send(&case.raw).await;
        let method = method_of(&case.raw);
        let mut got = Vec::new();
        let mut first_body = None;
        for _ in &case.statuses {
            let r = c.read_response_to(&method).await;
            got.push(r.status);
            first_body.get_or_insert(r.body);
        }
        if got != case.statuses {
            failures.push(format!(
                "{}: statuses {got:?}, want {:?}",
                case.name, case.statuses
            ));
            continue;
        }
        if let Some(want) = &case.body {
            if first_body.as_ref() != Some(want) {
                failures.push(format!(
                    "{}: body {:?}",
                    case.name,
                    first_body.map(|b| String::from_utf8_lossy(&b).into_owned())
                ));
            }
        }
        if case.close {
            if !c.is_closed_within(Duration::from_secs(3)).await {
                failures.push(format!("{}: connection left open", case.name));
            }
        } else {
            c.send(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n").await;
            let r = c.read_response().await;
            if r.status != 200 {
                failures.push(format!("{}: follow-up got {}", case.name, r.status));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    let refused = cases.iter().filter(|c| c.statuses[0] >= 400).count();
    println!(
        "{} cases, {} refused as malformed or over a limit",
        cases.len(),
        refused
    );
    server.shutdown().await;
}
