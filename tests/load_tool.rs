//! The load generator (`examples/load.rs`) against the example daemon: each
//! mode (stdio too) runs clean, a call budget is kept exactly, and its answer
//! check catches an answer that lacks what was asked for.

mod support;

use std::collections::HashMap;
use std::process::Command;

use support::daemon::Daemon;

/// Runs the load example with `args`; its exit success and summary pairs.
fn load(args: &[&str]) -> (bool, HashMap<String, String>) {
    let bin = support::daemon::server_binary().with_file_name("load");
    assert!(bin.exists(), "{} not built", bin.display());
    let out = Command::new(bin).args(args).output().expect("run load");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary = stdout.lines().last().unwrap_or_default();
    let pairs = summary
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    (out.status.success(), pairs)
}

#[test]
fn every_mode_runs_clean_and_bad_answers_are_caught() {
    let daemon = Daemon::start(&["--port", "0"], &[]);
    let http = format!("http://{}/mcp", daemon.addr);
    let ws = format!("ws://{}/ws", daemon.addr);
    for (mode, url, extra) in [
        ("stateless", &http, &[][..]),
        ("session", &http, &[][..]),
        ("ws", &ws, &["--in-flight", "4"][..]),
        ("stateless", &http, &["--rate", "200"][..]),
    ] {
        let mut args = vec![
            "--url",
            url,
            "--mode",
            mode,
            "--connections",
            "4",
            "--duration",
            "1",
        ];
        args.extend_from_slice(extra);
        let (ok, s) = load(&args);
        assert!(ok, "{mode} {extra:?}: {s:?}");
        assert_eq!(s["errors"], "0", "{mode}: {s:?}");
        let calls: u64 = s["calls"].parse().expect("calls");
        assert!(calls > 0, "{mode}: {s:?}");
        if extra.contains(&"--rate") {
            // The rate holds the count to about 200 in the second (not the
            // thousands of the open loop); a slow answer delays, never skips.
            assert!((100..=210).contains(&calls), "{s:?}");
        }
        let p99: u64 = s["p99_us"].parse().expect("p99");
        assert!(p99 > 0, "{s:?}");
    }
    // Stdio: a server process per connection, calls in flight on its pipes;
    // `--calls` stops each connection after exactly that many.
    let command = format!(
        "{} --transport stdio",
        support::daemon::server_binary().display()
    );
    for check in ["full", "none"] {
        let (ok, s) = load(&[
            "--mode",
            "stdio",
            "--command",
            &command,
            "--connections",
            "2",
            "--calls",
            "150",
            "--in-flight",
            "4",
            "--check",
            check,
        ]);
        assert!(ok, "stdio {check}: {s:?}");
        assert_eq!(s["errors"], "0", "stdio {check}: {s:?}");
        assert_eq!(s["calls"], "300", "stdio {check}: {s:?}");
    }
    // Every answer must hold its own number; asking for one it cannot hold fails.
    let (ok, s) = load(&[
        "--url",
        &http,
        "--connections",
        "2",
        "--duration",
        "0.5",
        "--expect",
        "{n}-not-there",
    ]);
    assert!(!ok, "{s:?}");
    assert_ne!(s["errors"], "0", "{s:?}");
    assert_eq!(s["calls"], "0", "{s:?}");
}
