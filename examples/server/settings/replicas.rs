//! Settings for running several replicas behind a load balancer: the key
//! every replica seals client-carried state with, and how a replica leaves
//! the balancer.

use base64::Engine as _;

use super::table::Spec;
use super::*;

/// The replica settings' rows of the table.
pub(super) fn replica_specs() -> Vec<Spec> {
    let s = table::spec;
    vec![
        Spec {
            key: "state_keys",
            flag: None,
            env: "MCP_STATE_KEYS",
            hint: "KEYS",
            default: "a random key per process".into(),
            help: "keys (32 bytes each, base64 or 64 hex digits, comma-separated; the first seals, all open) every replica seals 2026-07-28 requestState with, so a round may come back to any replica; to rotate, put the new key first and drop the old one later (no flag: a command line is visible to every user)",
            boolean: false,
        },
        Spec {
            boolean: true,
            ..s(
                "proxy_protocol",
                "--proxy-protocol",
                "MCP_PROXY_PROTOCOL",
                "BOOL",
                "false".into(),
                "every connection starts with a PROXY protocol header (v1 or v2, HAProxy's send-proxy-v2) naming the client; connections without one are closed",
            )
        },
        s(
            "trusted_proxies",
            "--trusted-proxies",
            "MCP_TRUSTED_PROXIES",
            "CIDRS",
            "none".into(),
            "networks whose X-Forwarded-For (else Forwarded) is believed, comma-separated (10.0.0.0/8, 192.0.2.7)",
        ),
        Spec {
            key: "tasks_redis",
            flag: None,
            env: "MCP_TASKS_REDIS",
            hint: "URL",
            default: "none: tasks stay in this process".into(),
            help: "a Redis server (redis://[:password@]host:port[/db]) where tasks are kept, so every replica answers tasks/get, tasks/update and tasks/cancel wherever the request lands (needs the redis feature; no flag: the URL may carry a password)",
            boolean: false,
        },
        s(
            "tasks_prefix",
            "--tasks-prefix",
            "MCP_TASKS_PREFIX",
            "TEXT",
            "mcp:".into(),
            "the start of every Redis key and channel the tasks use, so deployments can share one Redis",
        ),
        s(
            "query_task_after",
            "--query-task-after",
            "MCP_QUERY_TASK_AFTER",
            "DURATION",
            "never".into(),
            "for clients that negotiated the tasks extension (2026-07-28), an execute_query still running after this long becomes a task they poll",
        ),
        s(
            "drain_grace",
            "--drain-grace",
            "MCP_DRAIN_GRACE",
            "DURATION",
            "0s".into(),
            "on SIGTERM, how long /ready answers 503 while requests are still served, so a load balancer moves away before the graceful shutdown",
        ),
    ]
}

impl Given {
    /// The trusted proxies' networks (a bare address is one host).
    pub(super) fn trusted_proxies(&self) -> Result<Vec<ipnet::IpNet>, String> {
        self.get("trusted_proxies", Vec::new(), |v| {
            v.split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(|n| {
                    n.parse::<ipnet::IpNet>()
                        .or_else(|_| n.parse::<IpAddr>().map(ipnet::IpNet::from))
                        .map_err(|_| format!("{n:?} is not a network (CIDR) or an address"))
                })
                .collect()
        })
    }

    /// The state keys, checked (never echoed in a message).
    pub(super) fn state_keys(&self) -> Result<Vec<[u8; 32]>, String> {
        self.get("state_keys", Vec::new(), |v| {
            v.split(',')
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .enumerate()
                .map(|(i, k)| {
                    decode_key(k).ok_or_else(|| {
                        format!("key {}: not 32 bytes as base64 or 64 hex digits", i + 1)
                    })
                })
                .collect()
        })
    }
}

/// A 32-byte key from 64 hex digits or base64 (standard or URL-safe,
/// padded or not).
fn decode_key(text: &str) -> Option<[u8; 32]> {
    if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        let mut key = [0u8; 32];
        for (i, byte) in key.iter_mut().enumerate() {
            *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        return Some(key);
    }
    let trimmed = text.trim_end_matches('=');
    let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(trimmed)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(trimmed))
        .ok()?;
    bytes.try_into().ok()
}
