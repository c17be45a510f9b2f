"""The Confluence Cloud connector against a local server that speaks the REST API v2
(tests/support/providers), through the real ingestion graph and the real API."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from pipeline import HASH_EMBEDDING, Pipeline
from providers.confluence_server import ConfluenceServer, FakeConfluencePage
from providers.fake_provider import point_fruxon_at

from fruxon_pipelines.secretbox import secret_box
from fruxon_pipelines.settings import Settings, get_settings
from fruxon_pipelines.sources.auth import SourceAuth, load_source_auth
from fruxon_pipelines.sources.confluence import page_key

EMAIL, TOKEN = "writer@acme.example", "atl-api-token-19c2"
API_TOKEN = SourceAuth(method="API_TOKEN", email=EMAIL, apiToken=TOKEN)


@pytest.fixture
def confluence(monkeypatch):
    with ConfluenceServer() as server:
        point_fruxon_at(
            monkeypatch,
            server,
            "ATLASSIAN",
            {
                "CONFLUENCE_SITE_URL": "",
                "CONFLUENCE_OAUTH_API_URL": "/ex/confluence/{cloudId}",
                "ATLASSIAN_RESOURCES_URL": "/oauth/token/accessible-resources",
                "ATLASSIAN_AUTHORIZE_URL": "/oauth/authorize",
                "ATLASSIAN_TOKEN_URL": "/oauth/token",
            },
        )
        server.users[EMAIL] = TOKEN
        yield server
    get_settings.cache_clear()


@pytest.fixture
def settings(tmp_path, confluence):  # the provider's endpoints are settings: set before these
    return Settings(home=tmp_path / "fruxon", allow_private_networks=True, embed_batch_size=8)


def _wiki(confluence: ConfluenceServer) -> dict[str, FakeConfluencePage]:
    confluence.page_cap = 2
    pages = {
        "runbook": FakeConfluencePage(
            "Runbook",
            "<h2>Restarting</h2><p>Drain the node first, then restart.</p>"
            '<ac:structured-macro ac:name="code"><ac:plain-text-body>'
            "<![CDATA[kubectl drain node-7]]></ac:plain-text-body></ac:structured-macro>",
            "65537",
        ),
        "design": FakeConfluencePage("Design", "<p>Queues decouple the writers.</p>", "65537"),
        "oncall": FakeConfluencePage("On-call", "<p>Hand over at nine.</p>", "65537"),
        "ops": FakeConfluencePage("Budget", "<p>Spend stays under plan.</p>", "65538"),
    }
    for page in pages.values():
        confluence.add(page)
    return pages


def _asset(pipeline: Pipeline, auth: SourceAuth, **parameters) -> str:
    asset_id = pipeline.create_asset("confluence", parameters, embedding=HASH_EMBEDDING)
    box = secret_box(pipeline.settings)
    pipeline.catalog.update_asset(asset_id, source_auth=box.seal(auth.sealed_json()))
    return asset_id


def _texts(pipeline: Pipeline, asset_id: str) -> str:
    return "\n".join(c["content"] for c in pipeline.chunks(asset_id))


def test_pages_are_paged_to_the_end_and_a_refresh_parses_only_new_versions(pipeline, confluence):
    pages = _wiki(confluence)
    asset_id = _asset(pipeline, API_TOKEN, site="acme", spaceKeys=["ENG"])

    first = pipeline.run(asset_id)
    assert set(pipeline.documents(asset_id)) == {
        page_key(pages[k].id) for k in ("runbook", "design", "oncall")
    }
    texts = _texts(pipeline, asset_id)
    assert "Drain the node first" in texts and "kubectl drain node-7" in texts  # CDATA kept
    listings = [p for p in confluence.api_paths() if p.endswith("/pages")]
    assert len(listings) == 2  # 3 pages at 2 a page, followed through the next link
    assert first.metadata()["documents_added"] == 3

    confluence.edit(pages["design"], "<p>Queues decouple writers from readers.</p>")
    pages["oncall"].status = "trashed"
    outcome = pipeline.run(asset_id)
    meta = outcome.metadata()
    assert (meta["documents_changed"], meta["documents_unchanged"], meta["documents_removed"]) == (
        1,
        1,
        1,
    )
    texts = _texts(pipeline, asset_id)
    assert "from readers" in texts and "Hand over at nine" not in texts


def test_oauth_finds_the_cloud_id_and_survives_an_expired_token_and_a_429(pipeline, confluence):
    _wiki(confluence)
    issued = confluence.issue_tokens()
    auth = SourceAuth(accessToken=issued["access_token"], refreshToken=issued["refresh_token"])
    asset_id = _asset(pipeline, auth, site="acme")
    confluence.expire_access_tokens()
    confluence.fail_next(429, retry_after="0")

    pipeline.run(asset_id)

    assert len(pipeline.documents(asset_id)) == 4  # both spaces
    assert "/oauth/token/accessible-resources" in confluence.api_paths()
    assert all(p.startswith("/ex/confluence/") for p in confluence.api_paths() if "/wiki/" in p)
    kept = load_source_auth(
        secret_box(pipeline.settings).open(pipeline.catalog.get_asset(asset_id).source_auth)
    )
    assert kept.refreshToken in confluence.refresh_tokens  # rotated, and the new one kept
    assert issued["refresh_token"] not in confluence.refresh_tokens


def test_a_revoked_refresh_token_fails_with_credentials(pipeline, confluence):
    _wiki(confluence)
    issued = confluence.issue_tokens()
    auth = SourceAuth(accessToken=issued["access_token"], refreshToken=issued["refresh_token"])
    asset_id = _asset(pipeline, auth, cloudId="1324a887-45db-1bf4-1e99-ef0ff456d421")
    confluence.revoke_all()

    outcome = pipeline.run(asset_id, raise_on_error=False)

    operation = pipeline.catalog.get_operation(outcome.operation_id)
    assert operation.error_category == "CREDENTIALS"
    assert "403 (invalid_grant)" in operation.error_message


def test_an_unknown_space_is_invalid_config(pipeline, confluence):
    _wiki(confluence)
    asset_id = _asset(pipeline, API_TOKEN, site="acme", spaceKeys=["NOPE"])
    outcome = pipeline.run(asset_id, raise_on_error=False)
    operation = pipeline.catalog.get_operation(outcome.operation_id)
    assert operation.error_category == "INVALID_CONFIG" and "NOPE" in operation.error_message


def test_a_confluence_webhook_refreshes_the_page_it_names(client, confluence, pipeline):
    from fruxon_pipelines.partitions import KNOWLEDGE_ASSET_PARTITIONS
    from fruxon_pipelines.webhooks import merged_request

    pages = _wiki(confluence)
    created = client.post(
        "/v1/tenants/acme/assets",
        json={
            "config": {"sourceType": "confluence", "parameters": {"site": "acme"}},
            "embedding": {"provider": "hash", "model": "hash-384"},
            "auth": {"method": "API_TOKEN", "email": EMAIL, "apiToken": TOKEN},
            "autoUpdate": {"strategy": "WEBHOOK"},
        },
    )
    assert created.status_code == 200, created.text
    asset_id = created.json()["asset"]["id"]
    path = urlsplit(created.json()["webhook"]["webhookUrl"]).path
    pipeline.instance.add_dynamic_partitions(KNOWLEDGE_ASSET_PARTITIONS, [asset_id])
    pipeline.run(asset_id)

    confluence.edit(pages["runbook"], "<p>Cordon, drain, restart.</p>")
    event = {
        "timestamp": 1764637200000,
        "userAccountId": "5b10ac8d82e05b22cc7d4ef5",
        "page": {"id": int(pages["runbook"].id), "spaceKey": "ENG", "title": "Runbook"},
    }
    assert client.post(path, json=event).status_code == 202
    comment = {"timestamp": 1764637200001, "comment": {"id": 5}}
    assert client.post(path, json=comment).json()["eventId"] is None
    assert client.post(path, json={"page": "x"}).status_code == 400

    request = merged_request(client.services.catalog.waiting_webhook_events(asset_id))
    confluence.requests.clear()
    pipeline.run(asset_id, source_keys=request["sourceKeys"])
    assert f"/wiki/api/v2/pages/{pages['runbook'].id}" in confluence.api_paths()
    assert not any(p.endswith("/pages") for p in confluence.api_paths())
    assert "Cordon, drain, restart." in _texts(pipeline, asset_id)


def test_parameters_are_checked(client, confluence):
    body = {"config": {"sourceType": "confluence", "parameters": {}}}
    auth = {"auth": {"method": "API_TOKEN", "email": EMAIL, "apiToken": TOKEN}}
    missing = client.post("/v1/tenants/acme/assets", json=body | auth)
    assert missing.status_code == 400 and "site or cloudId" in missing.json()["detail"]
    moved = body | auth
    moved["config"] = {"sourceType": "confluence", "parameters": {"site": "evil.example/x"}}
    assert client.post("/v1/tenants/acme/assets", json=moved).status_code == 400


def test_the_sources_api_offers_spaces_with_their_pages(client, pipeline, confluence):
    from sources_api import SOURCES, record, workspace_key

    pages = _wiki(confluence)
    asset_id = _asset(pipeline, API_TOKEN, site="acme")
    pipeline.catalog.update_asset(asset_id, selection="REGISTERED")
    key = workspace_key(client)

    spaces = client.get(f"{SOURCES}/resources/confluence", headers=key).json()
    assert [(s["externalId"], s["title"], [p["title"] for p in s["pages"]]) for s in spaces] == [
        ("ENG", "Engineering", ["Runbook", "Design", "On-call"]),
        ("OPS", "Operations", ["Budget"]),
    ]  # paged through (2 per page) to the end
    runbook = spaces[0]["pages"][0]
    assert runbook["externalId"] == pages["runbook"].id and runbook["mimeType"] == "text/html"
    assert runbook["originalUrl"].endswith(f"/wiki/spaces/X/pages/{pages['runbook'].id}")

    ids = client.post(
        f"{SOURCES}/resources/confluence", headers=key, json={"resources": [runbook]}
    ).json()["addedDocumentIds"]
    client.post(SOURCES, headers=key, json={"source": "confluence", "documentIdsToAdd": ids})
    pipeline.run_waiting_operations()
    done = record(client, key, ids[0])
    assert done["linkedJobStatus"] == "COMPLETED"
    assert any("kubectl drain node-7" in p for p in done["paragraphs"])
    left = client.get(f"{SOURCES}/resources/confluence", headers=key).json()
    assert [p["title"] for p in left[0]["pages"]] == ["Design", "On-call"]
    assert set(pipeline.documents(asset_id)) == {page_key(pages["runbook"].id)}
