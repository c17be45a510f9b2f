"""The Notion connector against a local server that speaks Notion's API
(tests/support/providers), through the real ingestion graph; and the OAuth round trip through
the real API."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from conftest import dagster_event_text, written_under
from pipeline import HASH_EMBEDDING, Pipeline
from providers.fake_provider import point_fruxon_at
from providers.notion_server import FakePage, NotionServer, text_block

from fruxon_pipelines.catalog.models import now_ms
from fruxon_pipelines.secretbox import secret_box
from fruxon_pipelines.settings import Settings, get_settings
from fruxon_pipelines.sources.auth import SourceAuth, load_source_auth
from fruxon_pipelines.sources.notion import page_key


@pytest.fixture
def notion(monkeypatch):
    with NotionServer() as server:
        point_fruxon_at(
            monkeypatch,
            server,
            "NOTION",
            {
                "NOTION_API_URL": "",
                "NOTION_AUTHORIZE_URL": "/oauth/authorize",
                "NOTION_TOKEN_URL": "/oauth/token",
            },
        )
        yield server
    get_settings.cache_clear()


@pytest.fixture
def settings(tmp_path, notion):  # the provider's endpoints are settings: set before these
    return Settings(home=tmp_path / "fruxon", allow_private_networks=True, embed_batch_size=8)


def _workspace(notion: NotionServer) -> dict[str, FakePage]:
    """Five pages (one a database row), deep and long enough to page through."""
    notion.page_size_cap = 2  # every listing and block list takes several requests
    pages = {
        "handbook": FakePage(
            "Handbook",
            [
                text_block("heading_1", "Working here"),
                text_block("paragraph", "We review every change before it ships."),
                text_block(
                    "toggle",
                    "On-call",
                    children=[text_block("bulleted_list_item", "Pagers rotate weekly.")],
                ),
                text_block("to_do", "Read the security guide", checked=False),
                text_block("quote", "Small steps, often."),
            ],
        ),
        "owls": FakePage("Owls", [text_block("paragraph", "Owls nest in the archive.")]),
        "kale": FakePage("Kale", [text_block("heading_2", "Lacinato kale grows in winter.")]),
        "row": FakePage(
            "Roadmap item",
            [text_block("paragraph", "Ship the importer in March.")],
            parent={"type": "database_id", "database_id": "0" * 32},
        ),
        "empty": FakePage("Empty", []),
    }
    for page in pages.values():
        notion.add_page(page)
    return pages


def _asset(pipeline: Pipeline, auth: SourceAuth, **parameters) -> str:
    asset_id = pipeline.create_asset("notion", parameters, embedding=HASH_EMBEDDING)
    box = secret_box(pipeline.settings)
    pipeline.catalog.update_asset(asset_id, source_auth=box.seal(auth.sealed_json()))
    return asset_id


def _api_token(notion: NotionServer) -> SourceAuth:
    notion.api_tokens.add("secret_integration_token")
    return SourceAuth(method="API_TOKEN", apiToken="secret_integration_token")


def _texts(pipeline: Pipeline, asset_id: str) -> str:
    return "\n".join(c["content"] for c in pipeline.chunks(asset_id))


def test_every_page_is_ingested_and_a_refresh_reads_only_what_was_edited(pipeline, notion):
    pages = _workspace(notion)
    asset_id = _asset(pipeline, _api_token(notion))

    pipeline.run(asset_id)
    documents = pipeline.documents(asset_id)
    assert set(documents) == {page_key(p.id) for p in pages.values()}
    assert all(d.status == "COMPLETED" for d in documents.values())
    texts = _texts(pipeline, asset_id)
    for phrase in ("Working here", "Pagers rotate weekly.", "Small steps", "Ship the importer"):
        assert phrase in texts  # nested children and the database row, across every page
    assert documents[page_key(pages["owls"].id)].title == "Owls"
    searches = [p for p in notion.api_paths() if p == "/v1/search"]
    assert len(searches) == 3  # 5 pages at 2 per page: paged to the end

    notion.requests.clear()
    notion.edit(pages["owls"], [text_block("paragraph", "Owls now nest in the tower.")])
    notion.pages[pages["kale"].id].in_trash = True
    outcome = pipeline.run(asset_id)
    read = [p for p in notion.api_paths() if p.startswith("/v1/blocks/")]
    assert read == [f"/v1/blocks/{pages['owls'].id}/children"]  # only the edited page is read
    assert outcome.metadata()["documents_changed"] == 1
    assert outcome.metadata()["documents_removed"] == 1
    texts = _texts(pipeline, asset_id)
    assert "Owls now nest in the tower." in texts and "in the archive" not in texts
    assert "Lacinato" not in texts


def test_an_edit_in_the_minute_of_the_indexed_version_is_not_missed(pipeline, notion):
    """Notion rounds ``last_edited_time`` down to the minute: a page read within the minute of
    its stamp is read again by the next refresh, and an edit under the same stamp is found."""
    from providers.notion_server import _now

    page = notion.add_page(
        FakePage("Tides", [text_block("paragraph", "High tide at six.")], last_edited_time=_now())
    )
    settled = notion.add_page(FakePage("Harbour", [text_block("paragraph", "Moorings are free.")]))
    asset_id = _asset(pipeline, _api_token(notion))
    pipeline.run(asset_id)
    stamp = page.last_edited_time
    notion.edit(page, [text_block("paragraph", "High tide at seven.")])
    page.last_edited_time = stamp  # edited again within the same minute
    notion.requests.clear()
    outcome = pipeline.run(asset_id)
    read = [p for p in notion.api_paths() if p.startswith("/v1/blocks/")]
    assert read == [f"/v1/blocks/{page.id}/children"]  # not the page of an hour ago
    assert outcome.metadata()["documents_changed"] == 1
    texts = _texts(pipeline, asset_id)
    assert "High tide at seven." in texts and "High tide at six." not in texts
    assert settled.id not in " ".join(read)


def test_a_429_and_an_expired_token_are_recovered_and_the_new_tokens_kept(pipeline, notion):
    pages = _workspace(notion)
    issued = notion.issue_tokens()
    auth = SourceAuth(accessToken=issued["access_token"], refreshToken=issued["refresh_token"])
    asset_id = _asset(pipeline, auth)
    notion.expire_access_tokens()  # Notion sends no expires_in: only a 401 tells
    notion.fail_next(429, retry_after="0")

    pipeline.run(asset_id)

    assert len(pipeline.documents(asset_id)) == len(pages)
    grants = [r["grant_type"] for r in notion.token_requests]
    assert grants == ["refresh_token"]
    box = secret_box(pipeline.settings)
    kept = load_source_auth(box.open(pipeline.catalog.get_asset(asset_id).source_auth))
    assert kept.refreshToken != issued["refresh_token"]  # Notion rotates: the new one is kept
    assert kept.refreshToken in notion.refresh_tokens
    pipeline.run(asset_id)  # and works on the next run, with no further refresh
    assert [r["grant_type"] for r in notion.token_requests] == ["refresh_token"]


def test_revoked_credentials_fail_the_operation_with_credentials(pipeline, notion):
    _workspace(notion)
    issued = notion.issue_tokens()
    auth = SourceAuth(accessToken=issued["access_token"], refreshToken=issued["refresh_token"])
    asset_id = _asset(pipeline, auth)
    pipeline.run(asset_id)
    indexed = pipeline.chunks(asset_id)

    notion.revoke_all()
    outcome = pipeline.run(asset_id, raise_on_error=False)

    assert not outcome.result.success
    operation = pipeline.catalog.get_operation(outcome.operation_id)
    assert operation.error_category == "CREDENTIALS"
    assert "refresh_token grant" in operation.error_message
    asset = pipeline.catalog.get_asset(asset_id)
    assert asset.last_error_category == "CREDENTIALS"
    assert pipeline.chunks(asset_id) == indexed  # nothing indexed is lost
    from fruxon_api.present import asset_out

    shown = asset_out(asset)
    assert shown.errorCategory == "CREDENTIALS" and "refresh_token" in shown.errorMessage
    assert shown.hasCredentials

    notion.api_tokens.add("secret_new")  # mended: new credentials, and the next run clears it
    box = secret_box(pipeline.settings)
    mended = SourceAuth(method="API_TOKEN", apiToken="secret_new")
    pipeline.catalog.update_asset(asset_id, source_auth=box.seal(mended.sealed_json()))
    pipeline.run(asset_id)
    assert asset_out(pipeline.catalog.get_asset(asset_id)).errorCategory is None


def test_a_page_the_integration_may_not_read_fails_alone(pipeline, notion):
    pages = _workspace(notion)
    pages["owls"].restricted = True
    asset_id = _asset(pipeline, _api_token(notion))

    outcome = pipeline.run(asset_id)

    assert outcome.result.success
    documents = pipeline.documents(asset_id)
    owls = documents[page_key(pages["owls"].id)]
    assert owls.status == "FAILED" and "403" in owls.error_message
    assert sum(d.status == "COMPLETED" for d in documents.values()) == len(pages) - 1


def test_parameters_narrow_the_pages(pipeline, notion):
    pages = _workspace(notion)
    asset_id = _asset(
        pipeline,
        _api_token(notion),
        pageIds=[pages["owls"].id.replace("-", ""), pages["row"].id],
        includeDatabasePages=False,
    )
    pipeline.run(asset_id)
    assert set(pipeline.documents(asset_id)) == {page_key(pages["owls"].id)}


def _follow_consent(client, notion, authorization_url: str) -> str:
    """What the user's browser does: open the login page, allow, come back to our callback."""
    assert authorization_url.startswith(f"{notion.url}/oauth/authorize?")
    login = httpx.get(authorization_url)
    assert login.status_code == 200 and "Allow access" in login.text
    form = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', login.text))
    back = httpx.post(f"{notion.url}/oauth/login", data=form)
    assert back.status_code == 302
    callback = urlsplit(back.headers["location"])
    assert callback.path == "/v1/oauth/notion/callback"
    return f"{callback.path}?{callback.query}"


def test_the_oauth_round_trip_ends_in_an_asset_and_nothing_can_be_replayed(
    client, notion, pipeline, caplog
):
    _workspace(notion)
    refused = client.post("/v1/tenants/acme/assets:authorize", json={"sourceType": "web"})
    assert refused.status_code == 400

    started = client.post("/v1/tenants/acme/assets:authorize", json={"sourceType": "notion"})
    assert started.status_code == 200, started.text
    url = started.json()["authorizationUrl"]
    query = parse_qs(urlsplit(url).query)
    assert query["owner"] == ["user"] and query["response_type"] == ["code"]
    assert query["redirect_uri"] == ["https://fruxon.example.test/v1/oauth/notion/callback"]
    callback = _follow_consent(client, notion, url)

    landed = client.get(callback, follow_redirects=False)
    assert landed.status_code == 303, landed.text
    success = urlsplit(landed.headers["location"])
    key = parse_qs(success.query)["credentialKey"][0]
    page = client.get(f"{success.path}?{success.query}")
    assert page.status_code == 200 and key in page.text
    assert page.headers["cache-control"] == "no-store"

    replayed = client.get(callback, follow_redirects=False)
    assert replayed.status_code == 400 and "already used" in replayed.json()["detail"]
    state = parse_qs(urlsplit(callback).query)["state"][0]
    forged = client.get(f"/v1/oauth/notion/callback?code=x&state={state[:-2]}xx")
    assert forged.status_code == 400 and "not one this server issued" in forged.json()["detail"]

    class anonymous:  # the exchange takes no Authorization header
        @staticmethod
        def get(path: str):
            token = client.headers.pop("Authorization")
            try:
                return client.get(path)
            finally:
                client.headers["Authorization"] = token

    wrong_tenant = anonymous.get(f"/v1/tenants/other/assets:oauthCredentials?credentialKey={key}")
    assert wrong_tenant.status_code == 400  # and it is spent: a key is good for one try
    started = client.post("/v1/tenants/acme/assets:authorize", json={"sourceType": "notion"})
    key = parse_qs(
        urlsplit(
            client.get(
                _follow_consent(client, notion, started.json()["authorizationUrl"]),
                follow_redirects=False,
            ).headers["location"]
        ).query
    )["credentialKey"][0]
    tokens = anonymous.get(f"/v1/tenants/acme/assets:oauthCredentials?credentialKey={key}")
    assert tokens.status_code == 200, tokens.text
    credentials = tokens.json()
    assert set(credentials) == {"accessToken", "refreshToken", "tokenType", "expiresAt"}
    assert notion.bearer_ok({"Authorization": f"Bearer {credentials['accessToken']}"})
    again = anonymous.get(f"/v1/tenants/acme/assets:oauthCredentials?credentialKey={key}")
    assert again.status_code == 400

    created = client.post(
        "/v1/tenants/acme/assets",
        json={
            "config": {"sourceType": "notion", "parameters": {}},
            "embedding": {"provider": "hash", "model": "hash-384"},
            "auth": credentials,
        },
    )
    assert created.status_code == 200, created.text
    asset_id = created.json()["asset"]["id"]
    from fruxon_pipelines.partitions import KNOWLEDGE_ASSET_PARTITIONS

    pipeline.instance.add_dynamic_partitions(KNOWLEDGE_ASSET_PARTITIONS, [asset_id])
    pipeline.run(asset_id)
    assert len(pipeline.documents(asset_id)) == 5

    shown = [started.text, landed.text, created.text, client.get("/v1/tenants/acme/assets").text]
    shown.append(client.get(f"/v1/tenants/acme/assets/{asset_id}").text)
    written = written_under(pipeline.settings)
    events = dagster_event_text(pipeline.instance)
    for secret in (credentials["accessToken"], credentials["refreshToken"], key):
        assert not any(secret in text for text in shown)
        assert secret.encode() not in written
        assert secret not in events
        assert secret not in caplog.text
    assert now_ms()  # the scan covered real output


def test_auth_is_checked_against_the_source_type(client, notion):
    body = {"config": {"sourceType": "notion", "parameters": {}}}
    for auth, named in (
        (None, "auth: required"),
        ({"method": "API_TOKEN"}, "apiToken is required"),
        ({"method": "PASSWORD", "apiToken": "x"}, "auth.method"),
    ):
        response = client.post("/v1/tenants/acme/assets", json=body | {"auth": auth})
        assert response.status_code == 400, response.text
        assert named in response.json()["detail"]
    web = {"config": {"sourceType": "web", "parameters": {"urls": ["https://example.test/"]}}}
    response = client.post("/v1/tenants/acme/assets", json=web | {"auth": {"apiToken": "x"}})
    assert response.status_code == 400 and "take no credentials" in response.json()["detail"]
    kinds = client.get("/v1/tenants/acme/assets:sourceTypes").json()["items"]
    notion_kind = next(k for k in kinds if k["key"] == "notion")
    assert notion_kind["supportsOAuth"] and notion_kind["authMethods"] == ["OAUTH", "API_TOKEN"]
    assert notion_kind["webhookProviders"] == ["notion", "generic"]


def test_a_notion_webhook_event_refreshes_that_page(client, notion, pipeline):
    from fruxon_pipelines.partitions import KNOWLEDGE_ASSET_PARTITIONS
    from fruxon_pipelines.webhooks import merged_request

    pages = _workspace(notion)
    created = client.post(
        "/v1/tenants/acme/assets",
        json={
            "config": {"sourceType": "notion", "parameters": {}},
            "embedding": {"provider": "hash", "model": "hash-384"},
            "auth": {"method": "API_TOKEN", "apiToken": _api_token(notion).apiToken},
            "autoUpdate": {"strategy": "WEBHOOK"},
        },
    )
    assert created.status_code == 200, created.text
    asset_id = created.json()["asset"]["id"]
    webhook = created.json()["webhook"]
    assert webhook["provider"] == "notion"
    path = urlsplit(webhook["webhookUrl"]).path
    pipeline.instance.add_dynamic_partitions(KNOWLEDGE_ASSET_PARTITIONS, [asset_id])
    pipeline.run(asset_id)

    handshake = client.post(
        path, json={"verification_token": "secret_tMrlL1qK5vuQAh1b6cZGhFChZTSYJlce98V0pYn7yBl"}
    )
    assert handshake.status_code == 202 and handshake.json()["eventId"] is None
    notion.edit(pages["kale"], [text_block("paragraph", "Kale survives the frost.")])
    event = {
        "id": "367cba44-b6f3-4c92-81e7-6a2e9659efd4",
        "timestamp": "2026-12-02T00:00:00.000Z",
        "workspace_id": "13950b26-c203-4f3b-b97d-93ec06319565",
        "type": "page.content_updated",
        "entity": {"id": pages["kale"].id.replace("-", ""), "type": "page"},
        "data": {},
    }
    accepted = client.post(path, json=event)
    assert accepted.status_code == 202 and accepted.json()["eventId"]
    assert client.post(path, json={"type": "page.created"}).status_code == 400

    waiting = client.services.catalog.waiting_webhook_events(asset_id)
    request = merged_request(waiting)
    assert request["sourceKeys"] == [page_key(pages["kale"].id)]
    notion.requests.clear()
    pipeline.run(asset_id, source_keys=request["sourceKeys"])
    assert notion.api_paths() == [
        f"/v1/pages/{pages['kale'].id}",
        f"/v1/blocks/{pages['kale'].id}/children",
    ]
    assert "Kale survives the frost." in _texts(pipeline, asset_id)
    assert len(pipeline.documents(asset_id)) == len(pages)


def test_the_sources_api_discovers_registers_and_ingests_only_the_picked_pages(
    client, pipeline, notion
):
    from sources_api import SOURCES, record, workspace_key

    pages = _workspace(notion)
    asset_id = _asset(pipeline, _api_token(notion))
    pipeline.catalog.update_asset(asset_id, selection="REGISTERED")
    key = workspace_key(client)

    found = client.get(f"{SOURCES}/resources/notion", headers=key)
    assert found.status_code == 200, found.text
    by_title = {r["title"]: r for r in found.json()}
    assert set(by_title) == {p.title for p in pages.values()}  # a flat list, rows included
    owls = by_title["Owls"]
    assert owls == {
        "externalId": pages["owls"].id,
        "title": "Owls",
        "originalUrl": f"https://www.notion.so/{pages['owls'].id.replace('-', '')}",
        "mimeType": "text/markdown",
        "iconLink": None,
        "object": "page",
    }

    picked = [by_title["Owls"], by_title["Handbook"]]
    registered = client.post(f"{SOURCES}/resources/notion", headers=key, json={"resources": picked})
    assert registered.status_code == 200, registered.text
    ids = registered.json()["addedDocumentIds"]
    assert len(ids) == 2 and registered.json()["updatedDocumentIds"] == []
    assert record(client, key, ids[0])["linkedJobStatus"] is None  # registered, not queued
    renamed = [dict(picked[0], title="Owls (renamed)")]
    again = client.post(f"{SOURCES}/resources/notion", headers=key, json={"resources": renamed})
    assert again.json() == {"addedDocumentIds": [], "updatedDocumentIds": [ids[0]]}

    notion.requests.clear()
    queued = client.post(SOURCES, headers=key, json={"source": "notion", "documentIdsToAdd": ids})
    assert queued.json() == {"addedDocumentIds": ids, "updatedDocumentIds": []}
    assert {record(client, key, i)["linkedJobStatus"] for i in ids} == {"PENDING"}
    pipeline.run_waiting_operations()
    paths = notion.api_paths()
    for name in ("owls", "handbook"):  # the picked pages are read, by id, and nothing else is
        assert f"/v1/pages/{pages[name].id}" in paths
        assert f"/v1/blocks/{pages[name].id}/children" in paths
    others = [p.id for n, p in pages.items() if n not in ("owls", "handbook")]
    assert not [path for path in paths for page in others if page in path]
    assert "/v1/search" not in paths
    owls_record = record(client, key, ids[0])
    assert owls_record["linkedJobStatus"] == "COMPLETED" and owls_record["success"] is True
    assert "Owls nest in the archive." in owls_record["paragraphs"]
    assert (owls_record["source"], owls_record["externalId"]) == ("notion", pages["owls"].id)

    # What is imported is no longer offered; a full refresh still reads only the picked pages.
    left = {r["title"] for r in client.get(f"{SOURCES}/resources/notion", headers=key).json()}
    assert left == {"Kale", "Roadmap item", "Empty"}
    refreshed = client.post(f"/v1/tenants/acme/assets/{asset_id}:refresh")
    assert refreshed.status_code == 200, refreshed.text
    pipeline.run_waiting_operations()
    assert set(pipeline.documents(asset_id)) == {
        page_key(pages[n].id) for n in ("owls", "handbook")
    }

    # An edit is found by a refresh and flagged; a delete takes the record and its chunks.
    notion.edit(pages["owls"], [text_block("paragraph", "Owls moved to the bell tower.")])
    client.post(f"{SOURCES}/refresh", headers=key, json={"documentIds": ids})
    pipeline.run_waiting_operations()
    assert [record(client, key, i)["changed"] for i in ids] == [True, False]
    assert "Owls moved to the bell tower." in record(client, key, ids[0])["paragraphs"]
    deleted = client.request("DELETE", SOURCES, headers=key, json={"documentIds": [ids[1]]})
    assert [d["id"] for d in deleted.json()["deletedDocuments"]] == [ids[1]]
    assert "Working here" not in _texts(pipeline, asset_id)
    listed = client.get(f"/v1/tenants/acme/assets/{asset_id}/documents").json()["items"]
    assert [d["id"] for d in listed] == [ids[0]]

    # A picked page that leaves the workspace stays listed, FAILED, until it is deleted.
    notion.pages[pages["owls"].id].in_trash = True
    assert client.post(
        f"{SOURCES}/refresh", headers=key, json={"documentIds": [ids[0]]}
    ).json() == [ids[0]]
    pipeline.run_waiting_operations()
    trashed = record(client, key, ids[0])
    assert trashed["linkedJobStatus"] == "FAILED" and trashed["error"]
    assert "Owls moved" not in _texts(pipeline, asset_id)

    bad = [{"title": "x", "externalId": "nope", "originalUrl": "u", "mimeType": "text/markdown"}]
    answer = client.post(f"{SOURCES}/resources/notion", headers=key, json={"resources": bad})
    assert answer.status_code == 400 and "externalId" in answer.json()["detail"]
    missing = [{"title": "x", "externalId": pages["kale"].id}]
    answer = client.post(f"{SOURCES}/resources/notion", headers=key, json={"resources": missing})
    assert answer.status_code == 400 and "originalUrl" in answer.json()["detail"]
    reader = workspace_key(client, "read")
    assert (
        client.post(
            f"{SOURCES}/resources/notion", headers=reader, json={"resources": picked}
        ).status_code
        == 403
    )


def test_discovery_says_when_the_provider_refuses_or_is_down(client, pipeline, notion):
    from sources_api import SOURCES, workspace_key

    _workspace(notion)
    _asset(pipeline, _api_token(notion))
    key = workspace_key(client, "read")
    notion.fail_next(503, times=4)  # more than FRUXON_PROVIDER_MAX_RETRIES (3 here)
    down = client.get(f"{SOURCES}/resources/notion", headers=key)
    assert down.status_code == 502 and down.json()["errorCategory"] == "SOURCE_UNAVAILABLE"
    notion.revoke_all()
    refused = client.get(f"{SOURCES}/resources/notion", headers=key)
    assert refused.status_code == 400 and refused.json()["errorCategory"] == "CREDENTIALS"
    assert "secret_integration_token" not in refused.text
