"""The Google Drive connector against a local server that speaks the Drive API v3
(tests/support/providers), through the real ingestion graph and the real API."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from pipeline import HASH_EMBEDDING, Pipeline
from providers.drive_server import DOC, FOLDER, SHEET, DriveServer, FakeFile
from providers.fake_provider import point_fruxon_at

from fruxon_pipelines.search_filter import SearchFilter
from fruxon_pipelines.secretbox import secret_box
from fruxon_pipelines.settings import Settings, get_settings
from fruxon_pipelines.sources.auth import SourceAuth, load_source_auth
from fruxon_pipelines.sources.google_drive import file_key


@pytest.fixture
def drive(monkeypatch):
    with DriveServer() as server:
        point_fruxon_at(
            monkeypatch,
            server,
            "GOOGLE",
            {
                "GOOGLE_DRIVE_API_URL": "",
                "GOOGLE_AUTHORIZE_URL": "/oauth/authorize",
                "GOOGLE_TOKEN_URL": "/oauth/token",
            },
        )
        yield server
    get_settings.cache_clear()


@pytest.fixture
def settings(tmp_path, drive):  # the provider's endpoints are settings: set before these
    return Settings(home=tmp_path / "fruxon", allow_private_networks=True, embed_batch_size=8)


def _folder_tree(drive: DriveServer) -> dict[str, FakeFile]:
    drive.page_cap = 2
    team = drive.add(FakeFile("Team", FOLDER, ["root"]))
    specs = drive.add(FakeFile("Specs", FOLDER, [team.id]))
    files = {
        "team": team,
        "specs": specs,
        "guide": drive.add(
            FakeFile("Guide", DOC, [team.id], b"<html><body><h1>Guide</h1><p>Ship on Tuesdays.</p>")
        ),
        "budget": drive.add(FakeFile("Budget", SHEET, [team.id], b"item,cost\nlaptops,1200\n")),
        "notes": drive.add(
            FakeFile(
                "notes.md", "text/markdown", [specs.id], b"# Notes\n\nCache keys expire hourly.\n"
            )
        ),
        "photo": drive.add(FakeFile("cat.jpg", "image/jpeg", [team.id], b"\xff\xd8\xff")),
        "elsewhere": drive.add(FakeFile("Other", DOC, ["root"], b"<p>Not in the folder.</p>")),
        "huge": drive.add(FakeFile("Huge", DOC, [specs.id], b"<p>x</p>", too_large_to_export=True)),
    }
    return files


def _asset(pipeline: Pipeline, drive: DriveServer, folder: str) -> tuple[str, dict]:
    issued = drive.issue_tokens()
    auth = SourceAuth(accessToken=issued["access_token"], refreshToken=issued["refresh_token"])
    asset_id = pipeline.create_asset("google_drive", {"folderId": folder}, embedding=HASH_EMBEDDING)
    box = secret_box(pipeline.settings)
    pipeline.catalog.update_asset(asset_id, source_auth=box.seal(auth.sealed_json()))
    return asset_id, issued


def _texts(pipeline: Pipeline, asset_id: str) -> str:
    return "\n".join(c["content"] for c in pipeline.chunks(asset_id))


def test_a_folder_is_walked_to_the_end_and_refreshed_through_the_change_list(pipeline, drive):
    files = _folder_tree(drive)
    asset_id, _ = _asset(pipeline, drive, files["team"].id)

    pipeline.run(asset_id)
    documents = pipeline.documents(asset_id)
    assert set(documents) == {file_key(files[k].id) for k in ("guide", "budget", "notes", "huge")}
    huge = documents[file_key(files["huge"].id)]
    assert huge.status == "FAILED" and "exportSizeLimitExceeded" not in (huge.error_message or "x")
    assert "too large to be exported" in huge.error_message
    texts = _texts(pipeline, asset_id)
    assert "Ship on Tuesdays." in texts and "laptops" in texts and "Cache keys expire" in texts
    assert "Not in the folder" not in texts

    drive.requests.clear()
    drive.edit(files["notes"], b"# Notes\n\nCache keys now expire daily.\n")
    drive.trash(files["budget"])
    drive.edit(files["elsewhere"], b"<p>Still not in the folder.</p>")
    moved_in = drive.add(FakeFile("Moved", DOC, ["root"], b"<p>Filed under team now.</p>"))
    drive.move(moved_in, files["specs"].id)
    outcome = pipeline.run(asset_id)

    paths = drive.api_paths()
    assert "/drive/v3/files" not in paths  # no listing: the change list said what changed
    assert f"/drive/v3/files/{files['guide'].id}/export" not in paths
    meta = outcome.metadata()
    assert (meta["documents_added"], meta["documents_changed"], meta["documents_removed"]) == (
        1,
        1,
        1,
    )
    texts = _texts(pipeline, asset_id)
    assert "now expire daily" in texts and "Filed under team now." in texts
    assert "laptops" not in texts and "Still not in the folder" not in texts

    drive.requests.clear()
    drive.trash(files["specs"])  # a whole folder leaves: only a full listing can tell
    pipeline.run(asset_id, allow_mass_deletion=True)  # 4 documents to 1: past the guard
    assert "/drive/v3/files" in drive.api_paths()
    assert set(pipeline.documents(asset_id)) == {file_key(files["guide"].id)}


def test_a_rename_reaches_the_chunks_title_and_date_without_embedding_again(pipeline, drive):
    files = _folder_tree(drive)
    asset_id, _ = _asset(pipeline, drive, files["team"].id)
    pipeline.run(asset_id)
    columns = ["chunk_id", "document_id", "title", "modified_at", "content"]
    before = {c["chunk_id"]: c for c in pipeline.chunks(asset_id, columns)}
    notes_id = pipeline.documents(asset_id)[file_key(files["notes"].id)].id
    assert {c["title"] for c in before.values() if c["document_id"] == notes_id} == {"notes.md"}

    drive.rename(files["notes"], "cache-notes.md")
    outcome = pipeline.run(asset_id)

    meta = outcome.metadata()
    assert (meta["documents_changed"], meta["chunks_embedded"]) == (0, 0)
    after = {c["chunk_id"]: c for c in pipeline.chunks(asset_id, columns)}
    assert set(after) == set(before)  # the same chunks, vectors kept
    for chunk_id, chunk in after.items():
        old = before[chunk_id]
        if chunk["document_id"] == notes_id:
            assert chunk["title"] == "cache-notes.md"
            assert chunk["modified_at"] > old["modified_at"]  # the rename's modifiedTime
        else:
            assert (chunk["title"], chunk["modified_at"]) == (old["title"], old["modified_at"])
    # the catalog, where hits take their title from, has it too
    assert pipeline.documents(asset_id)[file_key(files["notes"].id)].title == "cache-notes.md"
    # what a search's titleContains filter selects
    tenant = pipeline.catalog.get_asset(asset_id).tenant
    table = pipeline.vectors._existing_table(tenant, 384)
    where = SearchFilter(title_contains="CACHE-notes").where()
    found = pipeline.vectors._select(table, where, ["document_id"]).column("document_id")
    assert set(found.to_pylist()) == {notes_id}


def test_an_expired_token_and_rate_limits_are_recovered(pipeline, drive):
    files = _folder_tree(drive)
    asset_id, issued = _asset(pipeline, drive, files["team"].id)
    drive.expire_access_tokens()
    drive.fail_next(403)  # rateLimitExceeded: Drive's way of saying 429
    drive.fail_next(503)

    pipeline.run(asset_id)

    assert len(pipeline.documents(asset_id)) == 4
    assert [r["grant_type"] for r in drive.token_requests] == ["refresh_token"]
    kept = load_source_auth(
        secret_box(pipeline.settings).open(pipeline.catalog.get_asset(asset_id).source_auth)
    )
    assert kept.refreshToken == issued["refresh_token"]  # Google keeps the refresh token
    assert kept.accessToken != issued["access_token"]


def test_revoked_access_fails_with_credentials_and_a_missing_folder_is_invalid_config(
    pipeline, drive
):
    files = _folder_tree(drive)
    missing, _ = _asset(pipeline, drive, "1NoSuchFolder")
    outcome = pipeline.run(missing, raise_on_error=False)
    operation = pipeline.catalog.get_operation(outcome.operation_id)
    assert (
        operation.error_category == "INVALID_CONFIG" and "1NoSuchFolder" in operation.error_message
    )

    asset_id, _ = _asset(pipeline, drive, files["team"].id)
    drive.revoke_all()
    outcome = pipeline.run(asset_id, raise_on_error=False)
    operation = pipeline.catalog.get_operation(outcome.operation_id)
    assert operation.error_category == "CREDENTIALS"
    assert pipeline.catalog.get_asset(asset_id).last_error_category == "CREDENTIALS"


def test_a_drive_push_notification_refreshes_through_the_change_list(client, drive, pipeline):
    from fruxon_pipelines.partitions import KNOWLEDGE_ASSET_PARTITIONS
    from fruxon_pipelines.webhooks import merged_request

    files = _folder_tree(drive)
    started = client.post("/v1/tenants/acme/assets:authorize", json={"sourceType": "google_drive"})
    url = started.json()["authorizationUrl"]
    query = parse_qs(urlsplit(url).query)
    assert query["access_type"] == ["offline"] and query["code_challenge_method"] == ["S256"]
    assert query["scope"] == ["https://www.googleapis.com/auth/drive.readonly"]
    form = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', httpx.get(url).text))
    back = urlsplit(httpx.post(f"{drive.url}/oauth/login", data=form).headers["location"])
    landed = client.get(f"{back.path}?{back.query}", follow_redirects=False)
    key = parse_qs(urlsplit(landed.headers["location"]).query)["credentialKey"][0]
    token = client.headers.pop("Authorization")
    try:
        tokens = client.get(f"/v1/tenants/acme/assets:oauthCredentials?credentialKey={key}").json()
    finally:
        client.headers["Authorization"] = token

    created = client.post(
        "/v1/tenants/acme/assets",
        json={
            "config": {"sourceType": "google_drive", "parameters": {"folderId": files["team"].id}},
            "embedding": {"provider": "hash", "model": "hash-384"},
            "auth": tokens,
            "autoUpdate": {"strategy": "WEBHOOK", "authMode": "HMAC"},
        },
    )
    assert created.status_code == 200, created.text
    asset_id = created.json()["asset"]["id"]
    webhook = created.json()["webhook"]
    path = urlsplit(webhook["webhookUrl"]).path
    pipeline.instance.add_dynamic_partitions(KNOWLEDGE_ASSET_PARTITIONS, [asset_id])
    pipeline.run(asset_id)

    channel = {
        "X-Goog-Channel-ID": "4ba78bf0-6a47-11e2-bcfd-0800200c9a66",
        "X-Goog-Channel-Token": webhook["signingSecret"],  # the channel's token
        "X-Goog-Resource-ID": "ret08u3rv24htgh289g",
        "X-Goog-Message-Number": "1",
    }
    sync = client.post(path, headers=channel | {"X-Goog-Resource-State": "sync"})
    assert sync.status_code == 202 and sync.json()["eventId"] is None
    forged = channel | {"X-Goog-Channel-Token": "guess", "X-Goog-Resource-State": "change"}
    assert client.post(path, headers=forged).status_code == 401
    drive.edit(files["guide"], b"<h1>Guide</h1><p>Ship on Thursdays.</p>")
    change = channel | {"X-Goog-Resource-State": "change", "X-Goog-Message-Number": "2"}
    assert client.post(path, headers=change).status_code == 202

    request = merged_request(client.services.catalog.waiting_webhook_events(asset_id))
    assert request["documentIds"] == [] and request["sourceKeys"] == []  # a refresh, ...
    drive.requests.clear()
    pipeline.run(asset_id)
    assert "/drive/v3/changes" in drive.api_paths()  # ... which reads the change list
    assert "Ship on Thursdays." in _texts(pipeline, asset_id)
