"""Auto-update through the API in-process: configs, webhook minting, rotation, the receiver.

A real app on a temporary FRUXON_HOME (SQLite catalog, Dagster instance); no webserver runs,
so operations stay PENDING, which these tests do not need. The stack tests run the sensors.
"""

from __future__ import annotations

import sqlite3

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from fruxon_api.app import create_app
from fruxon_pipelines.catalog.models import now_ms
from fruxon_pipelines.webhooks import (
    SIGNATURE_HEADER,
    WebhookRevoked,
    accept_delivery,
    signature_of,
    webhook_id_hash,
)

TENANT = "acme"
BASE = f"/v1/tenants/{TENANT}/assets"


def _web(client, auto_update=None, url="https://docs.example.test/"):
    body = {"config": {"sourceType": "web", "parameters": {"urls": [url]}}}
    if auto_update is not None:
        body["autoUpdate"] = auto_update
    return client.post(BASE, json=body)


def _path(webhook: dict) -> str:
    return webhook["webhookUrl"].removeprefix("https://fruxon.example.test")


def _events(client) -> int:
    return len(client.services.catalog.waiting_webhook_events())


def test_webhook_is_minted_on_create_and_shown_only_then(client):
    response = _web(client, {"strategy": "WEBHOOK", "authMode": "HMAC"})
    assert response.status_code == 200, response.text
    created = response.json()
    webhook = created["webhook"]
    assert webhook["provider"] == "generic" and webhook["authMode"] == "HMAC"
    assert webhook["status"] == "ACTIVE" and webhook["signingSecret"].startswith("whsec_")
    assert webhook["webhookUrl"] == (
        f"https://fruxon.example.test/v1/webhooks/generic/{webhook['id']}"
    )
    assert len(webhook["id"]) >= 43  # 256 random bits, url-safe base64
    asset = created["asset"]
    assert asset["autoUpdate"] is True and asset["autoUpdateConfig"]["strategy"] == "WEBHOOK"
    shown = client.get(f"{BASE}/{asset['id']}").text + client.get(BASE).text
    assert webhook["id"] not in shown and webhook["signingSecret"] not in shown
    # At rest: neither the id nor the secret is readable in the catalog file.
    raw = sqlite3.connect(client.services.settings.catalog_url.split("///", 1)[1])
    dump = "\n".join(raw.iterdump())
    assert webhook["id"] not in dump and webhook["signingSecret"] not in dump
    # A PATCH that keeps the same webhook settings keeps the URL and shows nothing.
    same = {"strategy": "WEBHOOK", "authMode": "HMAC", "filter": "guides"}
    patched = client.patch(f"{BASE}/{asset['id']}", json={"autoUpdate": same}).json()
    assert patched["webhook"] is None
    assert patched["asset"]["autoUpdateConfig"]["filter"] == "guides"
    body = b"{}"
    headers = {SIGNATURE_HEADER: signature_of(webhook["signingSecret"], body)}
    assert client.post(_path(webhook), content=body, headers=headers).status_code == 202


def test_signed_delivery_is_stored_and_a_bad_signature_stores_nothing(client):
    created = _web(client, {"strategy": "WEBHOOK", "authMode": "HMAC"}).json()
    webhook, path = created["webhook"], _path(created["webhook"])
    body = b'{"urls": ["https://docs.example.test/guide"]}'
    good = {SIGNATURE_HEADER: signature_of(webhook["signingSecret"], body)}
    for headers in ({}, {SIGNATURE_HEADER: "sha256=" + "0" * 64}, {SIGNATURE_HEADER: "nonsense"}):
        refused = client.post(path, content=body, headers=headers)
        assert refused.status_code == 401, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
    # Signed for another body: refused too.
    assert client.post(path, content=b"{}", headers=good).status_code == 401
    assert _events(client) == 0
    accepted = client.post(path, content=body, headers=good)
    assert accepted.status_code == 202, accepted.text
    [event] = client.services.catalog.waiting_webhook_events()
    assert event.id == accepted.json()["eventId"]
    assert event.source_keys == ["https://docs.example.test/guide"] and not event.full_refresh


def test_url_alone_authenticates_in_api_key_mode_and_payloads_are_checked(client):
    created = _web(client, {"strategy": "WEBHOOK"}).json()
    assert created["webhook"]["authMode"] == "API_KEY"
    assert created["webhook"]["signingSecret"] is None
    path = _path(created["webhook"])
    assert client.post(path).status_code == 202  # empty body: a full refresh
    assert client.post(path, json={}).status_code == 202
    bad = [
        (b"not json", "not JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"documentIds": "abc"}', "documentIds"),
        (b'{"documentIds": ["not-a-uuid"]}', "not a UUID"),
        (b'{"documentIds": ["2b1d0f0e-6a52-4c43-9a43-0d6f4b7c9e11"]}', "not in this asset"),
        (b'{"urls": ["https://elsewhere.example.test/x"]}', "not a page this asset crawls"),
        (b'{"pages": []}', "unknown members"),
        (b"[" * 100_000, "not JSON"),  # nesting deeper than the parser's recursion
        (b'{"documentIds": [' + b"9" * 5000 + b"]}", "not JSON"),  # beyond the digit limit
    ]
    for body, said in bad:
        response = client.post(path, content=body)
        assert response.status_code == 400, (body, response.text)
        assert said in response.json()["detail"], response.text
    events = client.services.catalog.waiting_webhook_events()
    assert len(events) == 2 and all(e.full_refresh for e in events)
    too_big = client.post(
        path, content=b" " * (client.services.settings.webhook_max_body_bytes + 1)
    )
    assert too_big.status_code == 413


def test_rotation_kills_the_old_url_at_once(client):
    created = _web(client, {"strategy": "WEBHOOK"}).json()
    old = _path(created["webhook"])
    asset_id = created["asset"]["id"]
    rotated = client.post(f"{BASE}/{asset_id}:regenerateWebhook")
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()
    assert new["id"] != created["webhook"]["id"] and new["authMode"] == "API_KEY"
    assert client.post(old).status_code == 404
    assert client.post(_path(new)).status_code == 202
    # Another provider in the path is not this webhook either.
    assert client.post(_path(new).replace("/generic/", "/notion/")).status_code == 404


def test_regenerate_is_400_without_webhook_auto_update(client):
    asset_id = _web(client).json()["asset"]["id"]
    response = client.post(f"{BASE}/{asset_id}:regenerateWebhook")
    assert response.status_code == 400 and "WEBHOOK" in response.json()["detail"]
    polled = _web(client, {"strategy": "POLL", "pollFrequency": "DAILY"}).json()
    assert client.post(f"{BASE}/{polled['asset']['id']}:regenerateWebhook").status_code == 400
    assert (
        client.post(f"{BASE}/{asset_id}:regenerateWebhook".replace(asset_id, "x")).status_code
        == 400
    )


def test_disable_wins_and_revokes_the_url(client):
    created = _web(client, {"strategy": "WEBHOOK"}).json()
    asset_id, path = created["asset"]["id"], _path(created["webhook"])
    response = client.patch(
        f"{BASE}/{asset_id}",
        json={"disableAutoUpdate": True, "autoUpdate": {"strategy": "POLL"}},  # invalid: unread
    )
    assert response.status_code == 200, response.text
    asset = response.json()["asset"]
    assert asset["autoUpdate"] is False and asset["autoUpdateConfig"]["strategy"] == "UNSPECIFIED"
    assert client.post(path).status_code == 404
    # Enabling again mints a new URL, shown in the PATCH response.
    again = client.patch(f"{BASE}/{asset_id}", json={"autoUpdate": {"strategy": "WEBHOOK"}})
    assert again.json()["webhook"]["id"] not in path
    assert client.post(_path(again.json()["webhook"])).status_code == 202


def test_poll_schedule_is_stored_with_its_next_time(client):
    before = now_ms()
    config = {
        "strategy": "POLL",
        "pollFrequency": "HOURLY",
        "pollMinute": "7",
        "timezone": "Asia/Kathmandu",
    }
    created = _web(client, config).json()
    asset = created["asset"]
    assert created["webhook"] is None and asset["autoUpdate"] is True
    assert asset["autoUpdateConfig"] | config == asset["autoUpdateConfig"]
    assert asset["lastPolledAt"] is None and asset["supportsPollSchedule"] is True
    stored = client.services.catalog.get_asset(asset["id"])
    assert before < stored.next_poll_at <= before + 3600_000
    # Switching to webhooks stops the schedule.
    client.patch(f"{BASE}/{asset['id']}", json={"autoUpdate": {"strategy": "WEBHOOK"}})
    assert client.services.catalog.get_asset(asset["id"]).next_poll_at is None


@pytest.mark.parametrize(
    ("auto_update", "named"),
    [
        ({"strategy": "POLL"}, "autoUpdate.pollFrequency"),
        ({"strategy": "POLL", "pollFrequency": "WEEKLY"}, "autoUpdate.pollDay"),
        (
            {"strategy": "POLL", "pollFrequency": "DAILY", "timezone": "Nowhere/Special"},
            "autoUpdate.timezone",
        ),
        ({"strategy": "WEBHOOK", "provider": "zendesk"}, "autoUpdate.provider"),
        ({"strategy": "WEBHOOK", "authMode": "BASIC"}, "autoUpdate.authMode"),
        ({"strategy": "NEVER"}, "autoUpdate.strategy"),
        ("daily", "autoUpdate"),
    ],
)
def test_invalid_auto_update_is_a_400_naming_the_field(client, auto_update, named):
    response = _web(client, auto_update)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert named in response.json()["detail"]
    assert client.get(BASE).json()["totalCount"] == 0  # nothing was created


def test_file_assets_take_webhooks_but_not_polls(client, tmp_path):
    upload = client.post(
        f"{BASE}:file",
        files={"File": ("notes.txt", b"Some notes about owls.", "text/plain")},
    )
    assert upload.status_code == 200, upload.text
    asset = upload.json()["asset"]
    assert (asset["supportsWebhookRegistration"], asset["supportsPollSchedule"]) == (True, False)
    refused = client.patch(
        f"{BASE}/{asset['id']}", json={"autoUpdate": {"strategy": "POLL", "pollFrequency": "DAILY"}}
    )
    assert refused.status_code == 400 and "autoUpdate.strategy" in refused.json()["detail"]
    enabled = client.patch(f"{BASE}/{asset['id']}", json={"autoUpdate": {"strategy": "WEBHOOK"}})
    path = _path(enabled.json()["webhook"])
    assert client.post(path, json={"urls": ["https://docs.example.test/"]}).status_code == 400
    assert client.post(path, json={}).status_code == 202


def test_deleting_the_asset_removes_its_webhook_and_events(client):
    created = _web(client, {"strategy": "WEBHOOK"}).json()
    path = _path(created["webhook"])
    assert client.post(path).status_code == 202
    assert client.delete(f"{BASE}/{created['asset']['id']}").status_code == 204
    assert client.post(path).status_code == 404
    assert _events(client) == 0


def test_a_delivery_racing_a_revocation_is_refused(client):
    created = _web(client, {"strategy": "WEBHOOK"}).json()
    asset_id = created["asset"]["id"]
    catalog = client.services.catalog
    registration, asset = catalog.find_webhook(webhook_id_hash(created["webhook"]["id"]))
    # The receiver looked the URL up; then a PATCH revoked it before the event was stored.
    catalog.delete_webhooks(asset_id)
    with pytest.raises(WebhookRevoked):
        accept_delivery(catalog, asset, registration, b"{}")
    assert _events(client) == 0


def test_events_survive_a_rotation(client):
    created = _web(client, {"strategy": "WEBHOOK"}).json()
    assert client.post(_path(created["webhook"])).status_code == 202
    client.post(f"{BASE}/{created['asset']['id']}:regenerateWebhook")
    [event] = client.services.catalog.waiting_webhook_events()
    assert event.full_refresh and event.webhook_id_hash is None


def test_a_changed_secret_key_is_a_503_that_says_so(client, app_settings):
    created = _web(client, {"strategy": "WEBHOOK", "authMode": "HMAC"}).json()
    webhook = created["webhook"]
    other = create_app(app_settings.model_copy(update={"secret_key": SecretStr("another key")}))
    body = b"{}"
    headers = {SIGNATURE_HEADER: signature_of(webhook["signingSecret"], body)}
    with TestClient(other) as stranger:
        response = stranger.post(_path(webhook), content=body, headers=headers)
    assert response.status_code == 503, response.text
    assert "FRUXON_SECRET_KEY" in response.json()["detail"]
    assert webhook["id"] not in response.text  # the problem's instance is redacted too
