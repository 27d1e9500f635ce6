"""Shared fixtures: where the servers under test are."""

import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def example_binary(name: str) -> str:
    """Path of an example binary built by `cargo test` (debug profile)."""
    path = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "debug" / "examples" / name
    if not path.exists():
        pytest.fail(f"{path} is missing: run `cargo build --examples` first")
    return str(path)


@pytest.fixture
def anyio_backend():
    return "asyncio"
