"""One real stack for all end-to-end tests: webserver, daemon and API on a temporary home."""

from __future__ import annotations

import socket
import time

import pytest

from fruxon_pipelines.settings import Settings
from fruxon_pipelines.stack import Stack


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    home = tmp_path_factory.mktemp("stack")
    env = {
        "FRUXON_HOME": str(home),
        "FRUXON_DAGSTER_PORT": str(_free_port()),
        "FRUXON_API_PORT": str(_free_port()),
        "FRUXON_ALLOW_PRIVATE_NETWORKS": "1",
        "FRUXON_EMBED_BATCH_SIZE": "16",
        # Small enough that a test can send one that is too large.
        "FRUXON_MAX_UPLOAD_BYTES": str(2 * 1024 * 1024),
    }
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        settings = Settings()
        with Stack(settings) as running:
            running.wait_until_ready(timeout=240)
            yield running


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")
