"""Launch, status, settle and cancel through the one gateway into a real Dagster instance.

The in-process app submits each operation's run to the test instance's queue (as the webserver
would); the test works the queue (as the daemon would) and reads every status through the API.
"""

from __future__ import annotations

import dagster as dg
from pipeline import HASH_EMBEDDING
from sitegen import generate_pages

BASE = "/v1/tenants/acme/assets"


def _site_asset(client, site, **extra):
    for path, body in generate_pages(4, links="all", seed=3).items():
        site.put(path, body)
    response = client.post(
        BASE,
        json={
            "config": {"sourceType": "web", "parameters": {"urls": [site.url("/")], "maxDepth": 1}},
            "embedding": HASH_EMBEDDING,
            **extra,
        },
    )
    assert response.status_code == 200, response.text
    return response.json()


def _operation(client, created):
    asset_id, operation_id = created["asset"]["id"], created["longOperation"]["name"]
    response = client.get(f"{BASE}/{asset_id}/operations/{operation_id}")
    assert response.status_code == 200, response.text
    return response.json()


def test_a_launched_operation_is_queued_runs_and_settles(client, site, instance):
    created = _site_asset(client, site)
    assert created["longOperation"]["status"] == "PENDING"
    operation = client.services.catalog.get_operation(created["longOperation"]["name"])
    run = instance.get_run_by_id(operation.run_id)
    assert run.status == dg.DagsterRunStatus.QUEUED  # submitted, not yet dequeued
    assert run.tags["fruxon/operation_id"] == operation.id

    [ended] = client.run_queue.run_queued()

    assert ended.status == dg.DagsterRunStatus.SUCCESS
    shown = _operation(client, created)
    assert shown["status"] == "COMPLETED" and shown["done"] is True
    assert shown["itemsProcessed"] > 0 and shown["tokenCount"] > 0
    settled = client.services.catalog.get_operation(operation.id)
    assert settled.final_status == "COMPLETED" and settled.completed_at is not None
    # Settled: the outcome is read from the catalog from now on, even with the run gone.
    instance.delete_run(ended.run_id)
    assert _operation(client, created)["status"] == "COMPLETED"


def test_a_cancelled_operation_never_runs_and_a_refresh_may_follow(client, site, instance):
    created = _site_asset(client, site)
    asset_id, operation_id = created["asset"]["id"], created["longOperation"]["name"]
    busy = client.post(f"{BASE}/{asset_id}:refresh")
    assert busy.status_code == 429 and busy.headers["Retry-After"] == "5"

    cancelled = client.post(f"{BASE}/{asset_id}/operations/{operation_id}:cancel")

    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "CANCELLED"
    run_id = client.services.catalog.get_operation(operation_id).run_id
    assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.CANCELED
    assert client.run_queue.run_queued() == []
    refreshed = client.post(f"{BASE}/{asset_id}:refresh")
    assert refreshed.status_code == 200, refreshed.text
    [ended] = client.run_queue.run_queued()
    assert ended.status == dg.DagsterRunStatus.SUCCESS


def test_a_failed_run_says_why_on_its_operation(client, site):
    created = _site_asset(client, site, budget={"tokenBudget": 5})

    client.run_queue.run_queued()

    shown = _operation(client, created)
    assert shown["status"] == "FAILED"
    assert shown["errorCategory"] == "BUDGET"
    assert "token budget" in shown["errorMessage"]
    operations = client.get(f"{BASE}/{created['asset']['id']}/operations").json()
    assert [o["status"] for o in operations["items"]] == ["FAILED"]


def _staged_files(client, asset_id: str) -> list:
    return [p for p in (client.services.settings.staging_dir / asset_id).rglob("*") if p.is_file()]


def test_deleting_the_asset_removes_what_its_failed_run_staged(client, site):
    """A failed run's staged bytes and chunked documents stay for its re-execution from
    failure; deleting the asset leaves none of them behind."""
    created = _site_asset(client, site, budget={"tokenBudget": 5})
    asset_id = created["asset"]["id"]
    client.run_queue.run_queued()
    assert _operation(client, created)["status"] == "FAILED"
    assert _staged_files(client, asset_id), "the failed run's staged files"

    assert client.delete(f"{BASE}/{asset_id}").status_code == 204

    assert not (client.services.settings.staging_dir / asset_id).exists()


def test_a_run_that_finds_its_asset_being_deleted_removes_what_it_staged(client, site):
    """A delete waits only so long for the asset's runs: one still going stages its fetched
    bytes and chunked documents after the delete cleared the directory, so it removes them
    itself when its embed stage finds the asset DELETING."""
    created = _site_asset(client, site)
    asset_id = created["asset"]["id"]
    client.services.catalog.update_asset(asset_id, status="DELETING")

    [ended] = client.run_queue.run_queued()

    assert ended.status == dg.DagsterRunStatus.FAILURE
    assert not _staged_files(client, asset_id)
