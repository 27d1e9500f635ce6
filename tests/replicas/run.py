"""Replicas behind a real load balancer, under load, while one drains and one dies.

Starts Debian's redis-server (tasks), three replicas of the example daemon
(one state key, tasks in Redis, PROXY protocol v2 from the balancer) and
Debian's HAProxy in front of them (round robin, health checks on /ready,
legacy sessions stuck to their replica by Mcp-Session-Id, L7 retries).
Then, through the balancer, for --seconds:

- stateless clients: the official Python SDK in 2026-07-28 mode, calling
  execute_query with a number each answer must carry back;
- legacy clients: the SDK in legacy mode (2025-11-25 sessions); a session
  whose replica went away is answered 404 (or, for a call in flight when it
  went, its answer stream ends) and the client initializes again;
- task clients: raw 2026-07-28 requests with the tasks extension: a slow
  query becomes a task, polled with tasks/get wherever the balancer sends
  it, until it ends;
- WebSocket clients: the SDK 1.x WebSocket client (its own venv, a child
  process: ws_clients.py), reconnecting when their replica goes.

At 30% of the run replica r1 gets SIGTERM (it drains: /ready 503, served
on for --drain-grace, waits for its tasks, exits); at 50% replica r2 is
killed (SIGKILL). The report counts calls, errors, re-initialized
sessions, tasks and, from HAProxy's own statistics, which replica served
what. It fails (exit 1) on any error of a stateless call or of a session on
a surviving replica, on a lost task (unknown to every replica before its
ttl), on a task that failed for another reason than its replica's death,
or when a replica served nothing.

    python tests/replicas/run.py --server target/debug/examples/server \
        --ws-python .venv-ws/bin/python --clients 200 --seconds 60
"""

import argparse
import asyncio
import csv
import io
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import httpx2 as httpx
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError
from mcp_types import CONNECTION_CLOSED

HERE = pathlib.Path(__file__).resolve().parent
STATE_KEY = "11" * 32
TASKS_EXT = "io.modelcontextprotocol/tasks"
SLOW_ROWS = 1_500_000
SLOW_SQL = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {n}) "
    "SELECT count(*) AS n FROM c"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check, what: str, within: float = 15.0):
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > within:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.05)


class Stack:
    """Redis, the replicas and HAProxy, in a temporary directory."""

    def __init__(self, server: str, replicas: int, drain_grace: str):
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="mcp-replicas-"))
        self.procs: list[subprocess.Popen] = []
        self.redis_socket = self.dir / "redis.sock"
        self.redis = self._start(
            ["redis-server", "--port", "0", "--save", "", "--appendonly", "no", "--unixsocket", str(self.redis_socket)],
            "redis",
        )
        wait_for(self.redis_socket.exists, "redis-server")
        self.replicas: dict[str, tuple[subprocess.Popen, int]] = {}
        for i in range(1, replicas + 1):
            port = free_port()
            env = {
                **os.environ,
                "HOME": str(self.dir),
                "MCP_STATE_KEYS": STATE_KEY,
                "MCP_TASKS_REDIS": f"redis+unix://{self.redis_socket}",
                "MCP_LOG": "warn",
            }
            env = {k: v for k, v in env.items() if not k.startswith("SNOWFLAKE_")}
            proc = self._start(
                [
                    server, "--port", str(port), "--proxy-protocol", "true",
                    "--drain-grace", drain_grace, "--query-task-after", "200ms",
                    "--max-requests-per-client", "64", "--max-sessions", "5000",
                    # Sized for the run: every client (all from one address)
                    # may wait on the last replica.
                    "--max-queued-requests", "2048", "--max-queued-per-client", "2048",
                    "--max-connections-per-client", "1024",
                ],
                f"r{i}",
                env=env,
                stdout=subprocess.PIPE,
            )
            line = proc.stdout.readline().strip()
            if not line.startswith("listening on http://"):
                raise SystemExit(f"replica r{i} did not start: {line!r}")
            self.replicas[f"r{i}"] = (proc, port)
        self.front = free_port()
        self.stats = free_port()
        config = self.dir / "haproxy.cfg"
        config.write_text(self.haproxy_config())
        check = subprocess.run(["haproxy", "-c", "-q", "-f", str(config)], capture_output=True, text=True)
        if check.returncode != 0:
            raise SystemExit(f"haproxy config refused: {check.stderr}")
        self.haproxy = self._start(["haproxy", "-db", "-f", str(config)], "haproxy")
        wait_for(lambda: self._all_up(), "HAProxy to see every replica up")

    def _start(self, argv, name, env=None, stdout=subprocess.DEVNULL) -> subprocess.Popen:
        log = open(self.dir / f"{name}.log", "w")
        proc = subprocess.Popen(argv, stdout=stdout, stderr=log, env=env, text=True)
        self.procs.append(proc)
        return proc

    def haproxy_config(self) -> str:
        servers = "\n".join(
            f"    server {name} 127.0.0.1:{port}" for name, (_, port) in self.replicas.items()
        )
        return f"""global
    maxconn 4000
    log stderr format raw local0 info

defaults
    mode http
    log global
    option httplog
    option dontlog-normal
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout tunnel 60s
    timeout http-keep-alive 30s
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response response-timeout

frontend mcp
    bind 127.0.0.1:{self.front}
    default_backend replicas

backend replicas
    balance roundrobin
    # The whole request in the buffer before it goes out: a request whose
    # replica dies under it can then be sent again to another (retry-on).
    option http-buffer-request
    option httpchk GET /ready
    http-check expect status 200
    default-server check inter 300ms fall 1 rise 2 send-proxy-v2 check-send-proxy
    stick-table type string len 64 size 100k expire 30m
    stick on req.hdr(mcp-session-id)
    stick store-response res.hdr(mcp-session-id)
    http-response set-header X-Replica %[srv_name]
{servers}

listen stats
    bind 127.0.0.1:{self.stats}
    stats enable
    stats uri /stats
"""

    def server_stats(self) -> dict[str, dict]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.stats}/stats;csv", timeout=5) as r:
            text = r.read().decode()
        rows = csv.DictReader(io.StringIO(text.lstrip("# ")))
        return {
            row["svname"]: row
            for row in rows
            if row["pxname"] == "replicas" and row["svname"] not in ("FRONTEND", "BACKEND")
        }

    def _all_up(self) -> bool:
        try:
            return all(s["status"] == "UP" for s in self.server_stats().values())
        except OSError:
            return False

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.front}{path}"

    def stop(self):
        # Redis last: the replicas write their last task states on the way out.
        for group in (self.procs[1:], self.procs[:1]):
            for proc in reversed(group):
                if proc.poll() is None:
                    proc.terminate()
            for proc in group:
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()


class Tally:
    def __init__(self):
        self.ok = 0
        self.errors: list[str] = []
        self.reinit = 0


def describe(e: BaseException) -> str:
    """The innermost errors of `e` (the SDK raises exception groups)."""
    inner = getattr(e, "exceptions", None)
    if inner:
        return "; ".join(describe(x) for x in inner)
    return f"{type(e).__name__}: {e}"


def answered(result) -> object:
    """The number an execute_query answer carries, or what went wrong."""
    if result.is_error or not isinstance(result.structured_content, dict):
        return f"a failed call: {result.content[0].text if result.content else result}"
    return result.structured_content["rows"][0][0]


def session_gone(e: MCPError, replica: str | None, killed: str) -> bool:
    """Whether `e` is how a legacy session learns that its replica left.

    Either a later request was answered 404 (the SDK's -32600 naming the
    session), or the call was in flight on the replica when it went: its SSE
    answer ended without the result, and the SDK's resumptions (GET with
    Last-Event-ID) found no replica that knows the session. The second counts
    only for a session on the killed replica (HAProxy's X-Replica on its
    answers): a draining replica finishes the calls it has, so there and on
    the survivors it is an error."""
    if e.error.code == -32600 and "session" in e.error.message:
        return True
    return (
        e.error.code == CONNECTION_CLOSED
        and "reconnection attempts were exhausted" in e.error.message
        and replica == killed
    )


def replica_recorder(seen: dict):
    """An httpx response hook keeping the replica that answered a session first."""

    async def hook(response):
        if "replica" not in seen and response.headers.get("mcp-session-id"):
            seen["replica"] = response.headers.get("x-replica")

    return hook


async def caller(url: str, mode: str, n: int, stop: float, tally: Tally, killed: str):
    """An SDK client in `mode` (2026-07-28 or legacy) calling until `stop`;
    a legacy session whose replica went away initializes again."""
    k = n * 1_000_000
    while time.monotonic() < stop:
        seen: dict = {}
        try:
            http = create_mcp_http_client()
            http.event_hooks = {"response": [replica_recorder(seen)]}
            async with http, Client(streamable_http_client(url, http_client=http), mode=mode) as client:
                while time.monotonic() < stop:
                    k += 1
                    try:
                        result = await client.call_tool("execute_query", {"query": f"SELECT {k} AS v"})
                    except MCPError as e:
                        if mode == "legacy" and session_gone(e, seen.get("replica"), killed):
                            # Its replica is gone: initialize again (the spec's way).
                            tally.reinit += 1
                            break
                        raise
                    got = answered(result)
                    if got != k:
                        tally.errors.append(f"{mode}: asked {k}, got {got}")
                    else:
                        tally.ok += 1
        except Exception as e:  # noqa: BLE001 - every failure is counted, none hidden
            where = seen.get("replica", "no replica yet")
            tally.errors.append(f"{mode} at {time.monotonic():.1f} (session on {where}): {describe(e)}")
            await asyncio.sleep(0.2)


def rpc_body(method: str, params: dict, rid: int) -> dict:
    params = dict(params)
    params["_meta"] = {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {"extensions": {TASKS_EXT: {}}},
    }
    return {"jsonrpc": "2.0", "id": rid, "method": method, "params": params}


async def post(http: httpx.AsyncClient, url: str, method: str, params: dict, name: str, rid: int):
    headers = {
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": "2026-07-28",
        "Mcp-Method": method,
        "Mcp-Name": name,
    }
    r = await http.post(url, json=rpc_body(method, params, rid), headers=headers)
    if r.headers.get("content-type", "").startswith("text/event-stream"):
        for line in r.text.splitlines():
            if line.startswith("data: "):
                m = json.loads(line[6:])
                if m.get("id") == rid:
                    return r, m
        raise RuntimeError(f"no answer in the stream: {r.text[:200]}")
    return r, r.json()


class Tasks:
    def __init__(self):
        self.created = 0
        self.completed = 0
        self.failed_with_replica = 0
        self.lost: list[str] = []
        self.errors: list[str] = []
        self.by_replica: dict[str, int] = {}


async def task_client(url: str, n: int, stop: float, tasks: Tasks, killed: str):
    rid = n * 1_000_000
    async with httpx.AsyncClient(timeout=30) as http:
        while time.monotonic() < stop:
            rid += 1
            rows = SLOW_ROWS + n
            try:
                r, created = await post(
                    http, url, "tools/call",
                    {"name": "execute_query", "arguments": {"query": SLOW_SQL.format(n=rows)}},
                    "execute_query", rid,
                )
                result = created.get("result", {})
                if result.get("resultType") != "task":
                    # It finished before the threshold: a plain answer is fine.
                    if result.get("structuredContent", {}).get("rows") == [[rows]]:
                        continue
                    tasks.errors.append(f"task call: {created}")
                    continue
                owner = r.headers.get("x-replica", "?")
                tasks.created += 1
                tasks.by_replica[owner] = tasks.by_replica.get(owner, 0) + 1
                task_id = result["taskId"]
                while True:
                    await asyncio.sleep(0.2)
                    rid += 1
                    _, got = await post(http, url, "tasks/get", {"taskId": task_id}, task_id, rid)
                    if "error" in got:
                        tasks.lost.append(f"{task_id} (created on {owner}): {got['error']}")
                        break
                    status = got["result"]["status"]
                    if status == "completed":
                        if got["result"]["result"]["structuredContent"]["rows"] == [[rows]]:
                            tasks.completed += 1
                        else:
                            tasks.errors.append(f"task {task_id}: wrong result {got['result']}")
                        break
                    if status == "failed":
                        message = got["result"].get("error", {}).get("message", "")
                        if owner == killed and "stopped before it finished" in message:
                            tasks.failed_with_replica += 1
                        else:
                            tasks.errors.append(f"task {task_id} on {owner} failed: {message}")
                        break
                    if status not in ("working", "input_required"):
                        tasks.errors.append(f"task {task_id}: status {status}")
                        break
            except Exception as e:  # noqa: BLE001
                tasks.errors.append(f"task client at {time.monotonic():.1f}: {describe(e)}")
                await asyncio.sleep(0.2)


async def load(stack: Stack, args) -> dict:
    url = stack.url("/mcp")
    n_tasks = max(1, args.clients // 10)
    n_ws = args.clients // 4 if args.ws_python else 0
    n_legacy = args.clients // 4
    n_stateless = args.clients - n_tasks - n_ws - n_legacy
    started = time.monotonic()
    stop = started + args.seconds
    ws = None
    if n_ws:
        ws = subprocess.Popen(
            [args.ws_python, str(HERE / "ws_clients.py"), "--url", f"ws://127.0.0.1:{stack.front}/ws",
             "--clients", str(n_ws), "--seconds", str(args.seconds)],
            stdout=subprocess.PIPE, text=True,
        )
    stateless_t, legacy_t, tasks = Tally(), Tally(), Tasks()
    events: dict[str, float] = {}

    async def chaos():
        await asyncio.sleep(args.seconds * 0.3)
        stack.replicas["r1"][0].send_signal(signal.SIGTERM)
        events["r1 SIGTERM (drain)"] = time.monotonic() - started
        await asyncio.sleep(args.seconds * 0.2)
        stack.replicas["r2"][0].send_signal(signal.SIGKILL)
        events["r2 SIGKILL"] = time.monotonic() - started

    workers = [caller(url, "2026-07-28", i, stop, stateless_t, "r2") for i in range(n_stateless)]
    workers += [caller(url, "legacy", i, stop, legacy_t, "r2") for i in range(n_legacy)]
    workers += [task_client(url, i, stop, tasks, "r2") for i in range(n_tasks)]
    await asyncio.gather(chaos(), *workers)
    r1 = stack.replicas["r1"][0]
    try:
        r1_exit = r1.wait(timeout=30)
    except subprocess.TimeoutExpired:
        r1_exit = None
    ws_report = {}
    if ws:
        out, _ = ws.communicate(timeout=args.seconds + 60)
        ws_report = json.loads(out.strip().splitlines()[-1])
    stats = stack.server_stats()
    served = {
        name: {
            "status": s["status"],
            "sessions": int(s["stot"] or 0),
            "2xx": int(s["hrsp_2xx"] or 0),
            "4xx": int(s["hrsp_4xx"] or 0),
            "5xx": int(s["hrsp_5xx"] or 0),
        }
        for name, s in stats.items()
    }
    return {
        "clients": {"stateless": n_stateless, "legacy": n_legacy, "tasks": n_tasks, "websocket": n_ws},
        "seconds": args.seconds,
        "events": events,
        "stateless": {"ok": stateless_t.ok, "errors": len(stateless_t.errors), "first_errors": stateless_t.errors[:5]},
        "legacy": {
            "ok": legacy_t.ok, "errors": len(legacy_t.errors), "first_errors": legacy_t.errors[:5],
            "reinitialized_after_replica_left": legacy_t.reinit,
        },
        "tasks": {
            "created": tasks.created, "completed": tasks.completed,
            "failed_with_killed_replica": tasks.failed_with_replica,
            "lost": len(tasks.lost), "first_lost": tasks.lost[:5],
            "errors": len(tasks.errors), "first_errors": tasks.errors[:5],
            "created_on": tasks.by_replica,
        },
        "websocket": ws_report,
        "r1_exit_status": r1_exit,
        "served_by_replica (HAProxy)": served,
    }


def load_round(load: str, url: str, connections: int, seconds: float) -> dict:
    out = subprocess.run(
        [load, "--url", url, "--mode", "stateless", "--connections", str(connections), "--duration", str(seconds)],
        capture_output=True, text=True, timeout=seconds + 60,
    )
    line = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""
    fields = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
    if out.returncode != 0 or "calls_per_s" not in fields:
        raise SystemExit(f"load against {url} failed: {out.stderr[-500:]} {line}")
    return {k: float(fields[k]) for k in ("calls_per_s", "p50_us", "p99_us", "errors")}


def throughput(stack: Stack, args) -> dict:
    """The balancer's cost: stateless calls through HAProxy to 3 replicas,
    and straight to one replica of the same build (no PROXY header), in
    alternating rounds."""
    single_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNOWFLAKE_")}
    env["HOME"] = str(stack.dir)
    single = stack._start(
        [args.server, "--port", str(single_port), "--max-requests-per-client", "64",
         "--max-queued-per-client", "2048", "--log", "warn"],
        "single", env=env, stdout=subprocess.PIPE,
    )
    if not single.stdout.readline().startswith("listening on http://"):
        raise SystemExit("the single replica did not start")
    targets = {
        "3 replicas behind HAProxy": stack.url("/mcp"),
        "1 replica, no balancer": f"http://127.0.0.1:{single_port}/mcp",
    }
    rounds: dict[str, list[dict]] = {name: [] for name in targets}
    for _ in range(args.rounds):
        for name, url in targets.items():
            rounds[name].append(load_round(args.throughput_load, url, args.connections, args.round_seconds))
    summary = {}
    for name, results in rounds.items():
        rps = sorted(r["calls_per_s"] for r in results)
        p99 = sorted(r["p99_us"] for r in results)
        summary[name] = {
            "calls_per_s_median": rps[len(rps) // 2],
            "p99_us_median": p99[len(p99) // 2],
            "rounds": results,
        }
    a, b = (summary[n]["calls_per_s_median"] for n in targets)
    summary["balanced / single (calls per second)"] = round(a / b, 2)
    return summary


def verdict(report: dict) -> list[str]:
    problems = []
    if report["stateless"]["errors"]:
        problems.append("stateless calls failed")
    if report["legacy"]["errors"]:
        problems.append("legacy calls failed (other than sessions whose replica went away)")
    # Each legacy client loses its session at most when r1 drains and when r2
    # dies (and once more for one made in the instant between): more means
    # sessions are not stuck to their replica.
    if report["legacy"]["reinitialized_after_replica_left"] > 3 * report["clients"]["legacy"]:
        problems.append("legacy sessions re-initialized far more than two replicas leaving explains (stickiness broken?)")
    t = report["tasks"]
    if t["lost"]:
        problems.append("tasks lost")
    if t["errors"]:
        problems.append("tasks failed")
    if t["created"] == 0:
        problems.append("no task was created")
    ws = report["websocket"]
    if ws and (ws.get("errors") or not ws.get("ok")):
        problems.append("WebSocket calls failed")
    if report["r1_exit_status"] != 0:
        problems.append(f"the drained replica exited with {report['r1_exit_status']}")
    for name, s in report["served_by_replica (HAProxy)"].items():
        if s["2xx"] == 0:
            problems.append(f"replica {name} served nothing")
    ok = report["stateless"]["ok"] + report["legacy"]["ok"]
    if ok == 0:
        problems.append("no call succeeded")
    return problems


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", required=True, help="the example daemon's binary (built with the redis feature)")
    parser.add_argument("--ws-python", help="a Python with the SDK 1.x (its WebSocket client); none: no WebSocket clients")
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--drain-grace", default="3s")
    parser.add_argument("--report", help="also write the report (JSON) here")
    parser.add_argument("--throughput-load", help="the load generator (examples/load.rs): measure the balancer's cost instead")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--round-seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    stack = Stack(args.server, 3, args.drain_grace)
    try:
        if args.throughput_load:
            report = throughput(stack, args)
            print(json.dumps(report, indent=2))
            shutil.rmtree(stack.dir, ignore_errors=True)
            return
        report = asyncio.run(load(stack, args))
    finally:
        stack.stop()
    text = json.dumps(report, indent=2)
    print(text)
    if args.report:
        pathlib.Path(args.report).write_text(text)
    problems = verdict(report)
    if problems:
        print(f"FAILED: {'; '.join(problems)} (logs in {stack.dir})", file=sys.stderr)
        sys.exit(1)
    print("replicas: every check held", file=sys.stderr)
    shutil.rmtree(stack.dir, ignore_errors=True)


if __name__ == "__main__":
    main()
