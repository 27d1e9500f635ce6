"""Fixtures for the WebSocket client tests (Python SDK 1.x, its own venv)."""

import os
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def example_binary(name: str) -> str:
    """Path of an example binary built by `cargo build --examples` (debug profile)."""
    path = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "debug" / "examples" / name
    if not path.exists():
        pytest.fail(f"{path} is missing: run `cargo build --examples` first")
    return str(path)


def _serve(name: str, args: list[str]):
    proc = subprocess.Popen([example_binary(name), *args], stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline().strip()
    if not line.startswith("listening on http://"):
        proc.kill()
        pytest.fail(f"{name} did not start: {line!r}")
    return proc, "ws://" + line.removeprefix("listening on http://") + "/ws"


@pytest.fixture
def conformance_ws():
    """`examples/conformance.rs` on a free port; yields its /ws URL."""
    proc, url = _serve("conformance", ["--transport", "http", "--port", "0"])
    try:
        yield url
    finally:
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture
def daemon():
    """The example daemon on a free port; yields (process, /ws URL)."""
    proc, url = _serve("server", ["--port", "0"])
    try:
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture
def anyio_backend():
    return "asyncio"
