//! The example daemon as an operator runs it: flags, readiness line, health,
//! signals, and accept errors (EMFILE) survived with backoff.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod support;

use support::daemon::server_binary;

struct Daemon {
    child: Child,
    addr: SocketAddr,
}

impl Daemon {
    /// Starts `sh -c "<prefix> exec server <args>"` and waits for its readiness line.
    fn start(shell_prefix: &str, args: &str) -> Daemon {
        let cmd = format!("{shell_prefix} exec '{}' {args}", server_binary().display());
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .parse()
            .unwrap();
        Daemon { child, addr }
    }

    fn get(&self, path: &str) -> (u16, String) {
        get(self.addr, path).expect("request failed")
    }

    fn terminate(mut self) -> (std::process::ExitStatus, String) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let mut err = String::new();
                self.child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut err)
                    .unwrap();
                return (status, err);
            }
            assert!(Instant::now() < deadline, "daemon ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = String::new();
    s.read_to_string(&mut answer)?;
    let status = answer.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

#[test]
fn serves_health_and_stops_on_sigterm() {
    let daemon = Daemon::start("", "--port 0");
    assert!(
        daemon.addr.ip().is_loopback(),
        "default bind must be loopback"
    );
    assert_eq!(
        daemon.get("/health"),
        (200, r#"{"status":"ok"}"#.to_string())
    );
    assert_eq!(daemon.get("/nope").0, 404);
    let (status, stderr) = daemon.terminate();
    assert!(status.success(), "exit {status:?}");
    assert!(stderr.contains("shutting down"), "{stderr}");
}

#[test]
fn bad_flags_name_the_setting() {
    let out = Command::new(server_binary())
        .args(["--port", "99999"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--port") && err.contains("99999"), "{err}");

    let out = Command::new(server_binary())
        .args(["--host", "localhost:1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));

    let out = Command::new(server_binary())
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("--host") && help.contains("127.0.0.1") && help.contains("8000"));
}

#[test]
fn survives_running_out_of_file_descriptors() {
    // 32 descriptors: a few for the runtime, the rest fill up with clients.
    let daemon = Daemon::start("ulimit -n 32;", "--port 0");
    let mut held = Vec::new();
    for _ in 0..60 {
        let s = TcpStream::connect(daemon.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        held.push(s);
    }
    // Some of those are stuck in the backlog: the server cannot accept them (EMFILE).
    std::thread::sleep(Duration::from_millis(300));
    assert!(get_with_timeout(daemon.addr, Duration::from_millis(500)).is_err());
    // Freed descriptors make it serve again, without a restart.
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok((200, _)) = get_with_timeout(daemon.addr, Duration::from_secs(2)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "server did not recover from EMFILE"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, _) = daemon.terminate();
    assert!(status.success());
}

fn get_with_timeout(addr: SocketAddr, timeout: Duration) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
    let mut answer = String::new();
    s.read_to_string(&mut answer)?;
    match answer.get(9..12).and_then(|c| c.parse().ok()) {
        Some(status) => Ok((status, answer)),
        None => Err(std::io::ErrorKind::UnexpectedEof.into()),
    }
}

#[test]
fn stdio_transport_speaks_mcp_and_exits_at_eof() {
    let mut child = Command::new(server_binary())
        .args(["--transport", "stdio"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    writeln!(
        stdin,
        r#"{{"jsonrpc":"2.0","id":1,"method":"initialize","params":{{"protocolVersion":"2025-06-18","capabilities":{{}},"clientInfo":{{"name":"t","version":"1"}}}}}}"#
    )
    .unwrap();
    writeln!(stdin, r#"{{"jsonrpc":"2.0","id":2,"method":"tools/list"}}"#).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["result"]["serverInfo"]["name"], "snowflake-mcp");
    assert_eq!(lines[0]["result"]["protocolVersion"], "2025-06-18");
    let tools: Vec<&str> = lines[1]["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(
        tools.contains(&"server_info") && tools.contains(&"execute_query"),
        "{tools:?}"
    );

    let out = Command::new(server_binary())
        .args(["--transport", "smoke"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--transport"));
}
