"""Auto-update over the real stack: webhook deliveries and poll schedules become operations
through the Dagster sensors (daemon), with the real model, and searches see the new text."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import dagster as dg
import httpx
import pytest
from sitegen import Site, generate_pages

from e2e.conftest import api_client, wait_for, wait_operation
from fruxon_pipelines.catalog.store import Catalog
from fruxon_pipelines.orchestration.gateway import IN_PROGRESS_RUN_STATUSES, dagster_instance
from fruxon_pipelines.webhooks import SIGNATURE_HEADER, signature_of

pytestmark = pytest.mark.e2e
TENANT = "fresh"
BASE = f"/v1/tenants/{TENANT}/assets"
MODEL = {"provider": "local", "model": "all-MiniLM-L6-v2", "chunkSize": 128, "chunkOverlap": 16}


@pytest.fixture(scope="module")
def api(stack):
    with api_client(stack, [TENANT]) as client:
        yield client


@pytest.fixture(scope="module")
def catalog(stack):
    return Catalog(stack.settings.catalog_url)


def _site(pages: int, seed: int) -> Site:
    site = Site().start()
    site.pages = generate_pages(pages, links="all", seed=seed)
    site.put_pages(site.pages)
    return site


def _create(api, site: Site, auto_update: dict, name: str) -> dict:
    body = {
        "name": name,
        "config": {"sourceType": "web", "parameters": {"urls": [site.url("/")], "maxDepth": 1}},
        "embedding": MODEL,
        "autoUpdate": auto_update,
    }
    response = api.post(BASE, json=body)
    assert response.status_code == 200, response.text
    created = response.json()
    final = wait_operation(api, TENANT, created["asset"]["id"], created["longOperation"]["name"])
    assert final["status"] == "COMPLETED", final
    return created


def _edit(site: Site, path: str, sentence: str) -> None:
    site.put(path, site.pages[path].replace("</h1>", f"</h1><p>{sentence}</p>", 1))


def _documents(api, asset_id: str) -> dict[str, str]:
    """source URL → document id."""
    items = api.get(f"{BASE}/{asset_id}/documents", params={"PageSize": 500}).json()["items"]
    return {d["sourceUrl"]: d["id"] for d in items}


def _operations(api, asset_id: str, kind: str) -> list[dict]:
    items = api.get(f"{BASE}/{asset_id}/operations", params={"PageSize": 500}).json()["items"]
    return [o for o in items if o["type"] == kind]


def _wait_operations(api, asset_id: str, kind: str, count: int, timeout: float = 120) -> list:
    """Once at least ``count`` operations of ``kind`` exist and all are done."""

    def ready():
        found = _operations(api, asset_id, kind)
        return found if len(found) >= count and all(o["done"] for o in found) else None

    return wait_for(ready, timeout, f"{count} {kind} operation(s) of {asset_id}")


def _found(api, asset_id: str, text: str) -> list[dict]:
    response = api.post(
        f"{BASE}/{asset_id}:search", json={"query": text, "searchMode": "FULL_TEXT", "topK": 3}
    )
    assert response.status_code == 200, response.text
    return [hit for hit in response.json()["results"] if text.lower() in hit["content"].lower()]


def _json(**members) -> bytes:
    return json.dumps(members).encode()


def _deliver(url: str, body: bytes, secret: str | None = None) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers[SIGNATURE_HEADER] = signature_of(secret, body)
    return httpx.post(url, content=body, headers=headers, timeout=30)


@pytest.fixture(scope="module")
def poll_asset(api):
    """Polled hourly at the next minute, in a +05:45 zone; created first so the wait for its
    tick overlaps the webhook tests."""
    zone = ZoneInfo("Asia/Kathmandu")
    now = datetime.now(UTC)
    # The next minute, unless it is so close that the asset might be created after it.
    ahead = timedelta(minutes=1 if now.second < 50 else 2)
    tick = (now + ahead).astimezone(zone).replace(second=0, microsecond=0)
    site = _site(2, seed=31)
    auto_update = {
        "strategy": "POLL",
        "pollFrequency": "HOURLY",
        "pollMinute": str(tick.minute),
        "timezone": "Asia/Kathmandu",
    }
    created = _create(api, site, auto_update, "polled site")
    _edit(site, "/page-1.html", "Saffron herons circle the reservoir at dusk.")
    yield created["asset"], tick
    site.stop()


@pytest.fixture(scope="module")
def signed(api, poll_asset):
    site = _site(5, seed=21)
    created = _create(api, site, {"strategy": "WEBHOOK", "authMode": "HMAC"}, "signed site")
    yield site, created["asset"], created["webhook"]
    site.stop()


def test_a_webhook_with_document_ids_refreshes_only_those(api, signed, catalog):
    site, asset, webhook = signed
    documents = _documents(api, asset["id"])
    _edit(site, "/page-1.html", "Amber gondolas drift past the observatory.")
    _edit(site, "/page-2.html", "Velvet tortoises guard the lighthouse stairs.")
    _edit(site, "/page-3.html", "Nobody asked about the copper kites.")  # not named
    named = [documents[site.url("/page-1.html")], documents[site.url("/page-2.html")]]
    site.clear_log()

    body = _json(documentIds=named)
    accepted = _deliver(webhook["webhookUrl"], body, webhook["signingSecret"])
    assert accepted.status_code == 202, accepted.text

    [operation] = _wait_operations(api, asset["id"], "WEBHOOK", 1)
    assert operation["status"] == "COMPLETED", operation
    assert operation["itemsTotal"] == 2 and operation["tokenCount"] > 0
    assert sorted(p for p in site.requested_paths() if p.endswith(".html")) == [
        "/page-1.html",
        "/page-2.html",
    ]
    assert _found(api, asset["id"], "amber gondolas") and _found(
        api, asset["id"], "velvet tortoises"
    )
    assert not _found(api, asset["id"], "copper kites")
    assert all(
        e.operation_id == operation["id"] for e in catalog.webhook_events_of(operation["id"])
    )


def test_a_bad_signature_gets_401_and_stores_nothing(api, signed, catalog):
    _site_, asset, webhook = signed
    before = len(catalog.waiting_webhook_events())
    body = b'{"urls": []}'
    forged = _deliver(webhook["webhookUrl"], body, "whsec_not-the-secret")
    assert forged.status_code == 401
    assert forged.headers["content-type"].startswith("application/problem+json")
    unsigned = httpx.post(webhook["webhookUrl"], content=body, timeout=30)
    assert unsigned.status_code == 401
    assert len(catalog.waiting_webhook_events()) == before
    assert webhook["signingSecret"] not in forged.text + unsigned.text


def test_rotation_kills_the_old_url(api, signed):
    site, asset, webhook = signed
    rotated = api.post(f"{BASE}/{asset['id']}:regenerateWebhook")
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()
    body = _json(urls=[site.url("/page-3.html")])
    assert _deliver(webhook["webhookUrl"], body, webhook["signingSecret"]).status_code == 404
    assert _deliver(new["webhookUrl"], body, webhook["signingSecret"]).status_code == 401
    assert _deliver(new["webhookUrl"], body, new["signingSecret"]).status_code == 202
    operations = _wait_operations(api, asset["id"], "WEBHOOK", 2)
    assert all(o["status"] == "COMPLETED" for o in operations)
    assert _found(api, asset["id"], "copper kites")


def test_a_burst_of_500_events_is_a_few_operations_and_refreshes_every_document(
    api, catalog, poll_asset
):
    site = _site(10, seed=41)
    created = _create(api, site, {"strategy": "WEBHOOK"}, "busy site")
    asset_id, url = created["asset"]["id"], created["webhook"]["webhookUrl"]
    documents = _documents(api, asset_id)
    paths = [f"/page-{n}.html" for n in range(10)]
    for n, path in enumerate(paths):
        _edit(site, path, f"Burst marker zebra{n}quill was added here.")
    bodies = [
        _json(documentIds=[documents[site.url(paths[i % 10])]])
        if i % 2
        else _json(urls=[site.url(paths[i % 10])])
        for i in range(500)
    ]
    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(lambda b: _deliver(url, b).status_code, bodies))
    assert statuses == [202] * 500

    def settled():
        if any(e.asset_id == asset_id for e in catalog.waiting_webhook_events()):
            return None
        found = _operations(api, asset_id, "WEBHOOK")
        return found if found and all(o["done"] for o in found) else None

    operations = wait_for(settled, 180, "the burst's operations")
    print(f"500 deliveries → {len(operations)} WEBHOOK operation(s)")
    assert 1 <= len(operations) <= 3, operations
    assert all(o["status"] == "COMPLETED" for o in operations)
    for n in range(10):
        assert _found(api, asset_id, f"zebra{n}quill"), n
    site.stop()


def test_a_poll_schedule_fires_within_two_minutes(api, poll_asset):
    asset, tick = poll_asset
    [operation] = _wait_operations(api, asset["id"], "POLL", 1, timeout=180)
    assert operation["status"] == "COMPLETED", operation
    assert operation["createdBy"] == "poll schedule"
    shown = api.get(f"{BASE}/{asset['id']}").json()
    fired = shown["lastPolledAt"] / 1000
    assert tick.timestamp() <= fired <= tick.timestamp() + 120
    assert _found(api, asset["id"], "saffron herons")


def test_a_daemon_restarted_between_receipt_and_launch_still_launches(
    api, stack, catalog, poll_asset
):
    site = _site(2, seed=51)
    created = _create(api, site, {"strategy": "WEBHOOK"}, "restart site")
    asset_id, url = created["asset"]["id"], created["webhook"]["webhookUrl"]
    _edit(site, "/page-0.html", "Indigo walruses hum beneath the pier.")
    # Stopping the daemon stops the runs it launched (they are its code server's children),
    # so let the module's other runs (the poll's above all) finish first.
    instance = dagster_instance(stack.settings)
    wait_for(
        lambda: (
            not instance.get_run_records(
                dg.RunsFilter(statuses=[dg.DagsterRunStatus(s) for s in IN_PROGRESS_RUN_STATUSES]),
                limit=1,
            )
        ),
        240,
        "no run in progress",
    )
    with stack.down("dagster-daemon"):
        body = _json(urls=[site.url("/page-0.html")])
        assert _deliver(url, body).status_code == 202
        assert [e.asset_id for e in catalog.waiting_webhook_events()] == [asset_id]
    [operation] = _wait_operations(api, asset_id, "WEBHOOK", 1, timeout=180)
    assert operation["status"] == "COMPLETED", operation
    assert _found(api, asset_id, "indigo walruses")
    site.stop()
