"""End to end: the real stack (Dagster webserver + daemon, queued coordinator), the real model.

Runs are launched the way users launch them (the `fruxon` CLI, or the launcher the API uses):
through GraphQL, the run queue with its per-asset limit, a run worker process, and terminated
through the run coordinator.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sitegen import Site, generate_pages

from e2e.conftest import wait_for
from fruxon_pipelines.catalog.store import Catalog
from fruxon_pipelines.orchestration.gateway import dagster_instance
from fruxon_pipelines.orchestration.runs import operation_status
from fruxon_pipelines.services.assets import (
    AssetRequest,
    EmbeddingRequest,
    create_asset,
    refresh_asset,
)
from fruxon_pipelines.services.context import Services
from fruxon_pipelines.vectors import VectorStore

pytestmark = pytest.mark.e2e

REAL_MODEL = {"provider": "local", "model": "all-MiniLM-L6-v2", "chunkSize": 96, "chunkOverlap": 16}


@pytest.fixture(scope="module")
def big_site():
    with Site() as site:
        for path, body in generate_pages(30, links="all", seed=7).items():
            site.put(path, body)
        yield site


def _run_status(settings, run_id: str) -> str:
    with dagster_instance(settings) as instance:  # a fresh read of run storage
        run = instance.get_run_by_id(run_id)
    return run.status.value if run else "MISSING"


def test_cli_creates_and_ingests_a_web_asset_with_the_real_model(stack):
    with Site() as site:
        for path, body in generate_pages(6, links="all", seed=3).items():
            site.put(path, body)
        fruxon = str(Path(sys.executable).parent / "fruxon")
        completed = subprocess.run(
            [
                fruxon,
                "assets",
                "create",
                "--tenant",
                "acme",
                "--url",
                site.url("/"),
                "--max-depth",
                "1",
                "--name",
                "docs site",
            ],
            env=stack.environment,
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "COMPLETED" in completed.stdout
    settings = stack.settings
    catalog = Catalog(settings.catalog_url)
    [asset] = [a for a in catalog.list_assets("acme") if a.name == "docs site"]
    documents = catalog.documents_by_key(asset.id)
    assert len(documents) == 7
    assert {d.status for d in documents.values()} == {"COMPLETED"}
    vectors = VectorStore(settings.vector_uri)
    counts = vectors.chunk_counts_by_document("acme", asset.id)
    assert counts == {d.id: d.chunk_count for d in documents.values()}


def test_terminated_run_keeps_its_chunks_and_a_rerun_leaves_no_duplicates(stack, big_site):
    settings = stack.settings
    catalog = Catalog(settings.catalog_url)
    instance = dagster_instance(settings)
    svc = Services.from_settings(settings)
    created = create_asset(
        svc,
        AssetRequest(
            tenant="cancel-test",
            source_type="web",
            parameters={"urls": [big_site.url("/")], "maxDepth": 1},
            created_by="test",
            name="big site",
            embedding=EmbeddingRequest(config=REAL_MODEL),
        ),
    )
    asset, first = created.asset, created.operation
    assert first.run_id, "the create submitted its run to the webserver"

    # Wait until some batches are persisted, then terminate through the run coordinator.
    wait_for(
        lambda: (catalog.get_operation(first.id).token_count or 0) > 0,
        timeout=240,
        what="the first embedded batch",
    )

    def cancel() -> bool:
        return bool(instance.run_coordinator.cancel_run(first.run_id))

    wait_for(cancel, timeout=60, what="the run to accept the cancel")
    wait_for(
        lambda: _run_status(settings, first.run_id) == "CANCELED", timeout=120, what="CANCELED"
    )
    assert operation_status(_run_status(settings, first.run_id)) == "CANCELLED"

    vectors = VectorStore(settings.vector_uri)
    kept = vectors.chunks_of_asset("cancel-test", asset.id, ["chunk_id"]).num_rows
    assert kept > 0, "chunks persisted before the cancel stay in the index"
    documents = catalog.documents_by_key(asset.id)
    in_index = vectors.chunk_counts_by_document("cancel-test", asset.id)
    completed = [d for d in documents.values() if d.status == "COMPLETED"]
    assert len(completed) < len(documents), "the cancel landed before the end"
    for document in completed:  # the catalog never claims more than is indexed
        assert in_index.get(document.id, 0) == document.chunk_count

    second = refresh_asset(svc, asset, "test")
    wait_for(
        lambda: _run_status(settings, second.run_id) in {"SUCCESS", "FAILURE", "CANCELED"},
        timeout=400,
        what="the rerun to finish",
    )
    assert _run_status(settings, second.run_id) == "SUCCESS"

    rows = vectors.chunks_of_asset(
        "cancel-test", asset.id, ["chunk_id", "document_id", "chunk_index"]
    ).to_pylist()
    assert len({r["chunk_id"] for r in rows}) == len(rows)
    assert len({(r["document_id"], r["chunk_index"]) for r in rows}) == len(rows)
    documents = catalog.documents_by_key(asset.id)
    assert {d.status for d in documents.values()} == {"COMPLETED"}
    assert len(rows) == sum(d.chunk_count for d in documents.values())
    rerun = catalog.get_operation(second.id)
    total_tokens = sum(d.token_count for d in documents.values())
    assert 0 < rerun.token_count < total_tokens, "the rerun reused what the first run embedded"
