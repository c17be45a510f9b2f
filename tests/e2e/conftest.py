"""One real stack for all end-to-end tests: webserver, daemon and API on a temporary home."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fruxon_api.auth import READ, WRITE, issue_token
from fruxon_pipelines.settings import Settings
from fruxon_pipelines.stack import Stack, free_port

OPENAI_MODEL = {"model": "text-embedding-3-small", "dimensions": 64, "pricePerMillionTokens": 0.02}


@pytest.fixture(scope="session")
def openai_server():
    """The OpenAI-compatible endpoint the stack's `openai` provider talks to."""
    import secrets

    from openai_server import OpenAIServer

    # A key worth scanning for (tests/e2e/test_secrets.py).
    with OpenAIServer(api_key=f"sk-{secrets.token_hex(20)}") as server:
        yield server


@pytest.fixture(scope="session")
def notion_server():
    """The Notion API the stack's notion connector talks to."""
    from providers.notion_server import NotionServer

    with NotionServer() as server:
        yield server


def _stack_env(home, openai_server, notion_server) -> dict[str, str]:
    return {
        "FRUXON_OPENAI_BASE_URL": openai_server.base_url,
        "FRUXON_OPENAI_API_KEY": openai_server.api_key,
        "FRUXON_OPENAI_MODELS": json.dumps([OPENAI_MODEL]),
        "FRUXON_NOTION_API_URL": notion_server.url,
        "FRUXON_HOME": str(home),
        "FRUXON_DAGSTER_PORT": str(free_port()),
        "FRUXON_API_PORT": str(free_port()),
        "FRUXON_CODE_SERVER_PORT": str(free_port()),
        "FRUXON_ALLOW_PRIVATE_NETWORKS": "1",
        "FRUXON_EMBED_BATCH_SIZE": "16",
        # A poll due in the next minute fires within seconds of it.
        "FRUXON_POLL_SENSOR_INTERVAL_SECONDS": "5",
        # Small enough that a test can send one that is too large.
        "FRUXON_MAX_UPLOAD_BYTES": str(2 * 1024 * 1024),
    }


def _started(env: dict[str, str], log_dir) -> Iterator[Stack]:
    """A stack started with ``env`` set only while it starts: the processes keep their copy,
    and the CLI tests hand ``stack.environment`` to theirs. Left set, it would configure every
    later test on this xdist worker (its ports, upload limit and models), and differently by
    the order the tests are dealt. Output goes to files: the secrets scan reads every line the
    processes wrote."""
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        running = Stack(Settings(), log_dir=log_dir)
        running.start()
    try:
        running.wait_until_ready(timeout=240)
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="session")
def sqlite_stack(tmp_path_factory, openai_server, notion_server):
    """The embedded stack as `make run` starts it: SQLite catalog, SQLite Dagster storage."""
    home = tmp_path_factory.mktemp("stack")
    yield from _started(_stack_env(home, openai_server, notion_server), home / "logs")


@pytest.fixture(scope="session")
def stack(sqlite_stack):
    """The stack a test runs against; test_api.py runs on both backends (it overrides this)."""
    return sqlite_stack


POSTGRES_MAX_CONCURRENT_RUNS = 4


@pytest.fixture(scope="session")
def postgres_stack(tmp_path_factory, postgres, openai_server, notion_server):
    """The same stack with everything on PostgreSQL: the catalog, and Dagster's run, event and
    schedule storage (deploy/dagster-postgres.yaml), with room for four runs at once."""
    import yaml

    from fruxon_pipelines.orchestration.gateway import PROJECT_ROOT

    home = tmp_path_factory.mktemp("pg-stack")
    env = _stack_env(home / "fruxon", openai_server, notion_server)
    instance = yaml.safe_load((PROJECT_ROOT / "deploy" / "dagster-postgres.yaml").read_text())
    instance["concurrency"]["runs"]["max_concurrent_runs"] = POSTGRES_MAX_CONCURRENT_RUNS
    # The URL written out, not read from the environment: the tests open this instance too.
    instance["storage"]["postgres"]["postgres_url"] = postgres.create_database("stack_dagster")
    instance_yaml = home / "dagster.yaml"
    instance_yaml.write_text(yaml.safe_dump(instance))
    env |= {
        "FRUXON_DATABASE_URL": postgres.create_database("stack_catalog"),
        "FRUXON_DAGSTER_YAML": str(instance_yaml),
    }
    yield from _started(env, home / "logs")


def workspace_key(stack, tenant: str) -> str:
    """A sources API write key made the way an operator makes one: `fruxon apikey create`."""
    fruxon = str(Path(sys.executable).parent / "fruxon")
    made = subprocess.run(
        [fruxon, "apikey", "create", "--tenant", tenant, "--scope", "write"],
        env=stack.environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    return made.stdout.strip()


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def api_client(stack, tenants, scopes=(READ, WRITE)) -> httpx.Client:
    token = issue_token(stack.settings, tenants=list(tenants), scopes=list(scopes))
    return httpx.Client(
        base_url=stack.api_url(), headers={"Authorization": f"Bearer {token}"}, timeout=60
    )


def wait_operation(
    api: httpx.Client, tenant: str, asset_id: str, operation_id: str, timeout: float = 300
) -> dict:
    """The operation once it is done (COMPLETED, FAILED or CANCELLED)."""

    def done():
        response = api.get(f"/v1/tenants/{tenant}/assets/{asset_id}/operations/{operation_id}")
        assert response.status_code == 200, response.text
        body = response.json()
        return body if body["done"] else None

    return wait_for(done, timeout, f"operation {operation_id}")
