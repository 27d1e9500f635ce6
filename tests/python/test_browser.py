"""CORS and the Origin check as a real browser meets them.

A page served from an allowed origin (http://app.test:PORT) and the same page
from another one (http://evil.test:PORT) talk to the daemon at 127.0.0.1 over
fetch (Streamable HTTP, with preflights) and WebSocket, in headless Debian
Chromium driven by playwright-core (tests/browser/drive.cjs). The allowed
page gets through on both; the other is stopped by the browser (no CORS
answer to its preflight) and by the server (403 on the WebSocket upgrade).
"""

import functools
import http.server
import json
import os
import pathlib
import subprocess
import threading

import pytest

from conftest import demo_daemon

PAGE = pathlib.Path(__file__).parent.parent / "browser"


def required(name):
    value = os.environ.get(name, "")
    assert value and os.path.exists(value), f"{name} must be set: run bash scripts/test.sh"
    return value


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def serve_pages():
    handler = functools.partial(Quiet, directory=str(PAGE))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def pages():
    allowed, other = serve_pages(), serve_pages()
    yield allowed.server_address[1], other.server_address[1]
    allowed.shutdown()
    other.shutdown()


def test_browser_from_allowed_and_other_origins(pages, tmp_path):
    node, playwright = required("NODE"), required("PLAYWRIGHT_CORE")
    allowed_port, other_port = pages
    allowed = f"http://app.test:{allowed_port}"
    with demo_daemon(tmp_path, MCP_CORS_ORIGINS=allowed) as address:
        urls = [
            f"{allowed}/page.html?daemon={address}",
            f"http://evil.test:{other_port}/page.html?daemon={address}",
        ]
        done = subprocess.run(
            [node, str(PAGE / "drive.cjs"), *urls],
            capture_output=True, text=True, timeout=120,
            env={**os.environ, "PLAYWRIGHT_CORE": playwright},
        )
        assert done.returncode == 0, done.stderr
        results = json.loads(done.stdout.strip().splitlines()[-1])

    good, bad = results[urls[0]], results[urls[1]]
    # The allowed origin: the session id header is exposed, the session works.
    assert good["fetch"]["ok"], good
    assert good["fetch"]["status"] == 200
    assert good["fetch"]["session"], good
    assert good["fetch"]["initialized"] and good["fetch"]["listed"], good
    assert good["ws"] == {"ok": True, "protocol": "mcp", "initialized": True}, good
    # The other origin: the browser refuses (no CORS answer), the server refuses the socket.
    assert not bad["fetch"]["ok"], bad
    assert "Failed to fetch" in bad["fetch"]["error"], bad
    assert not bad["ws"]["ok"], bad
    assert any("blocked by CORS policy" in line for line in bad["console"]), bad
    assert any("Unexpected response code: 403" in line for line in bad["console"]), bad
