"""Faults on the real stack: a run worker killed with SIGKILL mid-embed, the code server lost
with its run workers, and the daemon and the API restarted while ingestions run. Nothing is
faked: the kills are real `kill -9`s, the restarts stop and start the real processes.
"""

from __future__ import annotations

import os
import re
import signal

import httpx
import pytest
from sitegen import Site, generate_pages

from e2e.conftest import api_client, wait_for, wait_operation
from fruxon_pipelines.catalog.store import Catalog
from fruxon_pipelines.orchestration.gateway import dagster_instance
from fruxon_pipelines.vectors import VectorStore

pytestmark = pytest.mark.e2e
TENANT = "faults"
MODEL = {"provider": "local", "model": "all-MiniLM-L6-v2", "chunkSize": 64, "chunkOverlap": 8}
RUN_PID = re.compile(r"Started process for run \(pid: (\d+)\)")


# Big enough that its embedding outlasts a commit of the pipeline (ingest/embed.py
# COMMIT_SECONDS), so a fault lands between commits.
BIG_SITE_PAGES = 100


@pytest.fixture(scope="module")
def big_site():
    with Site() as site:
        site.put_pages(generate_pages(BIG_SITE_PAGES, links="all", seed=23))
        yield site


@pytest.fixture(scope="module")
def small_site():
    with Site() as site:
        site.put_pages(generate_pages(5, links="all", seed=29))
        yield site


@pytest.fixture(scope="module")
def api(stack):
    with api_client(stack, [TENANT]) as client:
        yield client


def _base(asset_id: str = "") -> str:
    return f"/v1/tenants/{TENANT}/assets" + (f"/{asset_id}" if asset_id else "")


def _create(api: httpx.Client, site: Site, name: str) -> tuple[str, str]:
    body = {
        "name": name,
        "config": {"sourceType": "web", "parameters": {"urls": [site.url("/")], "maxDepth": 1}},
        "embedding": MODEL,
    }
    response = api.post(_base(), json=body)
    assert response.status_code == 200, response.text
    created = response.json()
    return created["asset"]["id"], created["longOperation"]["name"]


def _operation(api: httpx.Client, asset_id: str, operation_id: str) -> dict:
    return api.get(f"{_base(asset_id)}/operations/{operation_id}").json()


def _embedding_started(api: httpx.Client, asset_id: str, operation_id: str) -> bool:
    operation = _operation(api, asset_id, operation_id)
    assert not operation["done"], "finished before the fault could be injected"
    return operation["tokenCount"] > 0


def _first_commit_made(api: httpx.Client, asset_id: str, operation_id: str) -> bool:
    """Embedded chunks are committed in groups (ingest/embed.py COMMIT_ROWS, COMMIT_SECONDS);
    a document counts as processed once its group is in LanceDB and the catalog."""
    return _embedding_started(api, asset_id, operation_id) and (
        _operation(api, asset_id, operation_id)["itemsProcessed"] > 0
    )


def _index_by_url(stack, asset_id: str) -> set[tuple]:
    """The asset's index keyed by what a clean ingest of the same site reproduces: each chunk's
    page, position and content (ids differ between assets, so they are compared per asset)."""
    catalog = Catalog(stack.settings.catalog_url)
    url_of = {d.id: key for key, d in catalog.documents_by_key(asset_id).items()}
    rows = (
        VectorStore(stack.settings.vector_uri)
        .chunks_of_asset(TENANT, asset_id, ["document_id", "chunk_index", "content_hash"])
        .to_pylist()
    )
    assert all(r["document_id"] in url_of for r in rows), "orphan chunks"
    keys = [(url_of[r["document_id"]], r["chunk_index"], r["content_hash"]) for r in rows]
    assert len(keys) == len(set(keys)), "duplicate chunks"
    return set(keys)


def _assert_consistent(stack, asset_id: str) -> None:
    catalog = Catalog(stack.settings.catalog_url)
    documents = catalog.documents_by_key(asset_id)
    assert {d.status for d in documents.values()} == {"COMPLETED"}
    rows = (
        VectorStore(stack.settings.vector_uri)
        .chunks_of_asset(TENANT, asset_id, ["chunk_id", "document_id"])
        .to_pylist()
    )
    assert len({r["chunk_id"] for r in rows}) == len(rows)
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["document_id"]] = counts.get(row["document_id"], 0) + 1
    assert counts == {d.id: d.chunk_count for d in documents.values()}


def _parent(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("PPid:"))


def _command(pid: int) -> str:
    with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
        return cmdline.read().replace(b"\0", b" ").decode()


def _check_results(stack, run_id: str) -> dict[str, bool]:
    from dagster import DagsterEventType

    instance = dagster_instance(stack.settings)
    records = instance.get_records_for_run(
        run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION
    ).records
    return {
        r.event_log_entry.dagster_event.event_specific_data.check_name: (
            r.event_log_entry.dagster_event.event_specific_data.passed
        )
        for r in records
    }


def test_a_run_worker_killed_mid_embed_fails_and_a_refresh_converges_to_a_clean_ingest(
    stack, api, big_site
):
    asset_id, operation_id = _create(api, big_site, "killed mid-embed")
    wait_for(lambda: _first_commit_made(api, asset_id, operation_id), 240, "the first commit")

    catalog = Catalog(stack.settings.catalog_url)
    run_id = catalog.get_operation(operation_id).run_id
    instance = dagster_instance(stack.settings)
    started = [RUN_PID.search(e.message or "") for e in instance.all_logs(run_id)]
    [pid] = {int(m.group(1)) for m in started if m}
    # The code server forked it from its fork server (orchestration/run_workers.py), which it
    # started and which has imported the definitions: the run did not import them again.
    fork_server = _parent(pid)
    assert "multiprocessing.forkserver" in _command(fork_server)
    assert "'fruxon_pipelines.definitions'" in _command(fork_server)  # its preload
    assert "api grpc" in _command(_parent(fork_server))
    os.kill(pid, signal.SIGKILL)

    failed = wait_operation(api, TENANT, asset_id, operation_id, timeout=180)
    assert failed["status"] == "FAILED", failed
    assert failed["done"] and failed["errorMessage"]
    killed = catalog.get_operation(operation_id)
    documents = catalog.documents_by_key(asset_id)
    assert {d.status for d in documents.values()} != {"COMPLETED"}, "the kill landed mid-run"
    assert (killed.token_count or 0) > 0

    response = api.post(f"{_base(asset_id)}:refresh", json={})
    assert response.status_code == 200, response.text
    refresh_id = response.json()["longOperation"]["name"]
    refreshed = wait_operation(api, TENANT, asset_id, refresh_id, timeout=400)
    assert refreshed["status"] == "COMPLETED", refreshed
    _assert_consistent(stack, asset_id)
    checks = _check_results(stack, catalog.get_operation(refresh_id).run_id)
    assert checks == {"chunk_counts_match": True, "no_orphan_chunks": True}

    # A clean ingest of the same site is the reference: the same chunks, no more, no fewer.
    clean_id, clean_operation = _create(api, big_site, "clean reference")
    clean = wait_operation(api, TENANT, clean_id, clean_operation, timeout=400)
    assert clean["status"] == "COMPLETED", clean
    assert _index_by_url(stack, asset_id) == _index_by_url(stack, clean_id)
    # What the killed run had embedded was kept and reused, not embedded twice.
    assert refreshed["tokenCount"] < clean["tokenCount"]
    for asset in (asset_id, clean_id):
        assert api.delete(_base(asset)).status_code == 204


def test_a_run_whose_code_server_dies_is_failed_within_two_minutes_saying_why(stack, api, big_site):
    # The big site: the small one's few calls can all end inside the progress reporter's 1 s
    # interval, so its first token count is read with the run already done.
    asset_id, operation_id = _create(api, big_site, "its code server dies")
    wait_for(lambda: _embedding_started(api, asset_id, operation_id), 240, "embedding")
    # As when the code server's container dies: SIGKILL to the server and its run workers.
    # The stack starts it again; nothing is left that knows the run.
    with stack.down("dagster-code-server", crash=True):
        pass
    # Run monitoring asks MonitoredRunLauncher every 15 s: the operation ends within the two
    # minutes the deployment promises, not never.
    failed = wait_operation(api, TENANT, asset_id, operation_id, timeout=120)
    assert failed["status"] == "FAILED", failed
    assert "code server" in failed["errorMessage"] and "gone" in failed["errorMessage"], failed
    # The asset is not stuck: a refresh runs on the restarted code server and completes.
    refreshed = api.post(f"{_base(asset_id)}:refresh").json()["longOperation"]
    final = wait_operation(api, TENANT, asset_id, refreshed["name"], timeout=400)
    assert final["status"] == "COMPLETED", final
    _assert_consistent(stack, asset_id)
    assert api.delete(_base(asset_id)).status_code == 204


def _get_retrying(api: httpx.Client, path: str) -> httpx.Response:
    """A client polling through an API restart: connection refusals are retried."""

    def attempt():
        try:
            return api.get(path)
        except httpx.TransportError:
            return None

    return wait_for(attempt, 120, f"GET {path}")


def test_restarting_the_daemon_and_the_api_during_ingestion_loses_nothing(
    stack, api, big_site, small_site
):
    running_id, running_operation = _create(api, big_site, "ingesting through restarts")
    wait_for(lambda: _embedding_started(api, running_id, running_operation), 240, "embedding")
    with stack.down("dagster-daemon"):
        # Asked for while no daemon dequeues runs: the run waits QUEUED.
        queued_id, queued_operation = _create(api, small_site, "queued while the daemon is down")
        with stack.down("fruxon-api"), pytest.raises(httpx.TransportError):
            api.get(_base())
        # The API is back: the first run went on meanwhile (run workers are the code server's).
        state = _get_retrying(api, f"{_base(running_id)}/operations/{running_operation}").json()
        assert state["status"] in {"RUNNING", "COMPLETED"}, state
    for asset_id, operation_id, pages in [
        (running_id, running_operation, BIG_SITE_PAGES + 1),  # the pages and the index
        (queued_id, queued_operation, 6),
    ]:
        final = wait_operation(api, TENANT, asset_id, operation_id, timeout=400)
        assert final["status"] == "COMPLETED", final
        assert final["itemsProcessed"] == final["itemsTotal"] == pages
        _assert_consistent(stack, asset_id)
    for asset in (running_id, queued_id):
        assert api.delete(_base(asset)).status_code == 204
