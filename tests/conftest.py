"""Shared fixtures: a FRUXON_HOME per test, a real Dagster instance, real LanceDB and SQLite."""

from __future__ import annotations

import faulthandler
import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

# Tests mirror the packages (unit/, catalog/, dagster/, api/, e2e/); what they share to stand up
# real parts (sites, provider servers, PostgreSQL, the run queue) is in support/.
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent / "support"))

# Nothing may phone home while tests parse documents or load models.
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

FIXTURES = Path(__file__).parent / "fixtures"
OPENAI_MODEL = "text-embedding-3-small"


# pytest-timeout's alarm (600 s, pyproject.toml) cannot stop a test whose main thread is blocked
# in C, nor fire a second time in the teardown that follows it. Past this, the worker prints
# every thread's stack and exits: xdist reports the test as crashed and goes on, instead of
# the suite hanging until CI's own limit with nothing to show.
HANG_SECONDS = 900
_hang_report = os.fdopen(os.dup(sys.stderr.fileno()), "w")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    faulthandler.dump_traceback_later(HANG_SECONDS, exit=True, file=_hang_report)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


@pytest.fixture
def settings(tmp_path: Path):
    from fruxon_pipelines.settings import Settings

    # Parsing in the test's own process, where the parsers stay imported from test to test:
    # with the default deadline every run parses in a fresh worker that imports them again
    # (a third more time for the pipeline tests). The deadline has tests of its own, and the
    # e2e stack runs with the default.
    return Settings(
        home=tmp_path / "fruxon",
        allow_private_networks=True,
        embed_batch_size=8,
        parse_timeout_seconds=0,
    )


@pytest.fixture(scope="session")
def postgres() -> Iterator:
    """One real PostgreSQL server (Debian's package) for the session; tests get databases."""
    from postgres import PostgresServer

    with PostgresServer() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_url(request, tmp_path: Path) -> str:
    """A fresh, empty catalog database: SQLite in the test's directory, or a new database on
    the session's PostgreSQL server. Tests that take it run on both."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'catalog.db'}"
    server = request.getfixturevalue("postgres")
    return server.create_database(f"t{uuid.uuid4().hex[:16]}")


@pytest.fixture(autouse=True)
def _no_dagster_instance_outlives_its_test() -> Iterator:
    """Fail the test that leaves a Dagster instance open, not a random later one.

    An instance that is entered as a context manager sets Dagster's current definitions-state
    storage for the thread. Left open (a sensor context built from an instance ref and never
    closed), it is closed whenever the garbage collector gets to it, and that restores the
    storage of a test long finished: the next `materialize` then fails with "undefined
    DagsterInstance weakref" in whichever test happens to be running.
    """
    from dagster._core.storage.defs_state.base import DefsStateStorage

    before = DefsStateStorage.get()
    yield
    assert DefsStateStorage.get() is before, "a Dagster instance was left open by this test"


@pytest.fixture
def instance() -> Iterator:
    """A temporary Dagster instance whose runs queue as the stack's do."""
    import dagster as dg
    from run_queue import QUEUED_INSTANCE

    with dg.instance_for_test(overrides=QUEUED_INSTANCE) as instance:
        yield instance


@pytest.fixture
def pipeline(settings, instance):
    """The ingestion graph on this test's FRUXON_HOME and Dagster instance."""
    from pipeline import Pipeline

    return Pipeline(settings, instance)


def written_under(settings) -> bytes:
    """Every byte under FRUXON_HOME but the key file (catalog, vectors, staging), for scans
    that no secret was written in the clear."""
    return b"".join(
        p.read_bytes()
        for p in sorted(settings.resolved_home.rglob("*"))
        if p.is_file() and p.name != "secret_key"
    )


def dagster_event_text(instance) -> str:
    """The whole event log of every run on ``instance``, as text."""
    return "".join(
        str(record) for run in instance.get_runs() for record in instance.all_logs(run.run_id)
    )


@pytest.fixture
def openai_server(monkeypatch) -> Iterator:
    """A local OpenAI-compatible embeddings server, configured as the `openai` provider with
    one model (64 dimensions, $0.02 per million tokens)."""
    import json

    from openai_server import OpenAIServer

    from fruxon_pipelines import embedding
    from fruxon_pipelines.settings import get_settings

    with OpenAIServer() as running:
        models = [{"model": OPENAI_MODEL, "dimensions": 64, "pricePerMillionTokens": 0.02}]
        monkeypatch.setenv("FRUXON_OPENAI_BASE_URL", running.base_url)
        monkeypatch.setenv("FRUXON_OPENAI_API_KEY", running.api_key)
        monkeypatch.setenv("FRUXON_OPENAI_MODELS", json.dumps(models))
        monkeypatch.setenv("FRUXON_OPENAI_MAX_RETRIES", "3")
        get_settings.cache_clear()
        embedding._embedders.clear()
        yield running
    get_settings.cache_clear()
    embedding._embedders.clear()


@pytest.fixture
def site() -> Iterator:
    from sitegen import Site

    with Site() as site:
        yield site


@pytest.fixture
def app_settings(settings):
    """Settings for an in-process API: no Dagster webserver answers (the test's instance takes
    the runs), webhook URLs on a public address. The API's own launch of webhook operations
    is off: it fires on a timer, and only its own tests (``api_client``) turn it on."""
    from fruxon_pipelines.stack import free_port

    return settings.model_copy(
        update={
            "dagster_port": free_port(),
            "public_url": "https://fruxon.example.test/",
            "webhook_api_launch": False,
        }
    )


@pytest.fixture
def api_client(instance):
    """``api_client(app_settings)``: the real app in-process (TestClient) with a read/write
    token for tenant acme; the app's services are at ``client.services``. It launches through
    the real gateway into the test's Dagster instance, whose queue the test works
    (``client.run_queue.run_queued()``)."""
    from contextlib import contextmanager

    from fastapi.testclient import TestClient
    from run_queue import InProcessRunQueue

    from fruxon_api.app import create_app
    from fruxon_api.auth import READ, WRITE, issue_token
    from fruxon_pipelines.orchestration.gateway import DagsterGateway
    from fruxon_pipelines.resources import build_resources

    @contextmanager
    def api_client(app_settings):
        queue = InProcessRunQueue(instance, build_resources(app_settings))
        gateway = DagsterGateway(app_settings, instance, submitter=queue.submit)
        app = create_app(app_settings, gateway)
        token = issue_token(app_settings, tenants=["acme"], scopes=[READ, WRITE])
        with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as c:
            c.services = app.state.services
            c.run_queue = queue
            yield c

    return api_client


@pytest.fixture
def client(app_settings, api_client):
    """The real app in-process on ``app_settings`` (see ``api_client``)."""
    with api_client(app_settings) as c:
        yield c
