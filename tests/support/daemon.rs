//! The example daemon as a child process: readiness line, stderr kept, signals.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The example binary `cargo test` builds next to the test binaries, or
/// the one `SNOWFLAKE_MCP_SERVER_BIN` names (a measurement of another build,
/// as `scripts/wake_latency.sh` makes).
pub fn server_binary() -> std::path::PathBuf {
    if let Some(path) = std::env::var_os("SNOWFLAKE_MCP_SERVER_BIN") {
        return path.into();
    }
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target directory");
    let path = dir.join("examples").join("server");
    assert!(path.exists(), "{} not built", path.display());
    path
}

/// A running daemon; killed on drop.
pub struct Daemon {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Everything it wrote on stderr so far (drained by a thread, so a
    /// chatty log never blocks it).
    stderr: Arc<Mutex<String>>,
    drain: Option<std::thread::JoinHandle<()>>,
    /// Its stderr, never read ([`Daemon::start_unread`]).
    _unread: Option<std::process::ChildStderr>,
}

impl Daemon {
    /// Starts the daemon with `args` and `env` (on top of this process's
    /// environment) and waits for its readiness line.
    pub fn start(args: &[&str], env: &[(&str, &str)]) -> Daemon {
        Daemon::launch(args, env, true)
    }

    /// [`Daemon::start`], with a stderr nobody reads: once the pipe is
    /// full, every write to it blocks (a paused terminal, a stuck log
    /// collector).
    pub fn start_unread(args: &[&str], env: &[(&str, &str)]) -> Daemon {
        Daemon::launch(args, env, false)
    }

    fn launch(args: &[&str], env: &[(&str, &str)], read_stderr: bool) -> Daemon {
        let mut command = Command::new(server_binary());
        command
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("start the daemon");
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&stderr);
        let mut pipe = child.stderr.take().expect("stderr");
        let (drain, unread) = if read_stderr {
            let drain = std::thread::spawn(move || {
                let mut chunk = [0u8; 4096];
                while let Ok(n) = pipe.read(&mut chunk) {
                    if n == 0 {
                        break;
                    }
                    sink.lock()
                        .expect("stderr lock")
                        .push_str(&String::from_utf8_lossy(&chunk[..n]));
                }
            });
            (Some(drain), None)
        } else {
            (None, Some(pipe))
        };
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("readiness line");
        let Some(addr) = line
            .trim()
            .strip_prefix("listening on http://")
            .and_then(|a| a.parse().ok())
        else {
            let _ = child.kill();
            let _ = child.wait();
            if let Some(drain) = drain {
                let _ = drain.join();
            }
            panic!(
                "unexpected first line {line:?}; stderr: {}",
                stderr.lock().expect("stderr lock")
            );
        };
        Daemon {
            child,
            addr,
            stderr,
            drain,
            _unread: unread,
        }
    }

    /// Sends a signal (`TERM`, `INT`).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits for the process to exit (at most `within`), then returns its
    /// status, how long that took and all it wrote on stderr.
    pub fn wait_exit(&mut self, within: Duration) -> (std::process::ExitStatus, Duration, String) {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                if let Some(drain) = self.drain.take() {
                    let _ = drain.join();
                }
                return (status, start.elapsed(), self.stderr());
            }
            assert!(
                start.elapsed() < within,
                "the daemon did not exit within {within:?}; stderr: {}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Its peak resident memory so far (`VmHWM`), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        self.status_kib("VmHWM:")
    }

    /// Its resident memory now (`VmRSS`), in KiB.
    pub fn rss_kib(&self) -> u64 {
        self.status_kib("VmRSS:")
    }

    /// A memory figure of its `/proc` status, in KiB.
    fn status_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("the daemon's /proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("{field} in {status}"))
    }

    /// How many file descriptors it has open.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .expect("the daemon's fds")
            .count()
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("wait").is_none()
    }

    /// What it wrote on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().expect("stderr lock").clone()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
