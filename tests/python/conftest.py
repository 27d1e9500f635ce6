"""Shared fixtures: where the servers under test are."""

import contextlib
import os
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def example_binary(name: str) -> str:
    """Path of an example binary built by `cargo test` (debug profile)."""
    path = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "debug" / "examples" / name
    if not path.exists():
        pytest.fail(f"{path} is missing: run `cargo build --examples` first")
    return str(path)


@contextlib.contextmanager
def demo_daemon(home, **env):
    """The daemon on a free port with the demo warehouse (no SNOWFLAKE_* and
    an empty HOME, so no connections.toml), `env` added; yields `HOST:PORT`
    and checks it exits 0 on SIGTERM."""
    env = {**os.environ, "HOME": str(home), **env}
    for key in list(env):
        if key.startswith("SNOWFLAKE_"):
            del env[key]
    proc = subprocess.Popen([example_binary("server"), "--port", "0"], stdout=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("listening on http://"), line
        yield line.removeprefix("listening on http://")
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0


@pytest.fixture
def anyio_backend():
    return "asyncio"
