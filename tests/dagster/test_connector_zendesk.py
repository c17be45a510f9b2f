"""The Zendesk Help Center connector against a local server that speaks Zendesk's API
(tests/support/providers), through the real ingestion graph and the real API."""

from __future__ import annotations

import re
import time
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from pipeline import HASH_EMBEDDING, Pipeline
from providers.fake_provider import point_fruxon_at
from providers.zendesk_server import FakeArticle, ZendeskServer

from fruxon_pipelines.secretbox import secret_box
from fruxon_pipelines.settings import Settings, get_settings
from fruxon_pipelines.sources.auth import SourceAuth, load_source_auth
from fruxon_pipelines.sources.zendesk import article_key

EMAIL, TOKEN = "agent@acme.example", "zd-api-token-6b1f"


@pytest.fixture
def zendesk(monkeypatch):
    with ZendeskServer() as server:
        point_fruxon_at(
            monkeypatch,
            server,
            "ZENDESK",
            {
                "ZENDESK_API_URL": "",
                "ZENDESK_AUTHORIZE_URL": "/oauth/authorizations/new",
                "ZENDESK_TOKEN_URL": "/oauth/tokens",
            },
        )
        server.user_tokens[EMAIL] = TOKEN
        yield server
    get_settings.cache_clear()


@pytest.fixture
def settings(tmp_path, zendesk):  # the provider's endpoints are settings: set before these
    return Settings(home=tmp_path / "fruxon", allow_private_networks=True, embed_batch_size=8)


def _help_center(zendesk: ZendeskServer) -> dict[str, FakeArticle]:
    zendesk.list_page_cap = 2
    articles = {
        "reset": FakeArticle("Reset your password", "<p>Open <b>Settings</b>, then Security.</p>"),
        "invoice": FakeArticle("Download an invoice", "<p>Invoices live under Billing.</p>", 1002),
        "sso": FakeArticle("Single sign-on", "<h2>SAML</h2><p>Upload the metadata file.</p>"),
        "draft": FakeArticle("Unreleased feature", "<p>Not yet.</p>", draft=True),
        "german": FakeArticle(
            "Passwort zurücksetzen", "<p>Öffnen Sie Einstellungen.</p>", locale="de"
        ),
    }
    for article in articles.values():
        zendesk.add(article)
    return articles


def _asset(pipeline: Pipeline, auth: SourceAuth, **parameters) -> str:
    asset_id = pipeline.create_asset(
        "zendesk", {"subdomain": "acme", **parameters}, embedding=HASH_EMBEDDING
    )
    box = secret_box(pipeline.settings)
    pipeline.catalog.update_asset(asset_id, source_auth=box.seal(auth.sealed_json()))
    return asset_id


API_TOKEN = SourceAuth(method="API_TOKEN", email=EMAIL, apiToken=TOKEN)


def _texts(pipeline: Pipeline, asset_id: str) -> str:
    return "\n".join(c["content"] for c in pipeline.chunks(asset_id))


def test_articles_are_listed_to_the_end_and_refreshed_through_the_incremental_export(
    pipeline, zendesk
):
    articles = _help_center(zendesk)
    asset_id = _asset(pipeline, API_TOKEN, locale="en-us")

    pipeline.run(asset_id)
    documents = pipeline.documents(asset_id)
    wanted = {article_key(articles[k].id) for k in ("reset", "invoice", "sso")}
    assert set(documents) == wanted  # no draft, no other locale
    texts = _texts(pipeline, asset_id)
    assert "Open Settings, then Security." in texts and "Upload the metadata file." in texts
    assert len([p for p in zendesk.api_paths() if p.endswith("/articles")]) == 2  # 4 at 2 a page

    zendesk.requests.clear()
    zendesk.edit(articles["invoice"], "<p>Invoices now live under Account, then Billing.</p>")
    outcome = pipeline.run(asset_id)
    assert zendesk.api_paths() == ["/api/v2/help_center/incremental/articles"]
    assert outcome.metadata()["documents_changed"] == 1
    assert "Invoices now live under Account" in _texts(pipeline, asset_id)

    zendesk.requests.clear()
    pipeline.run(asset_id)  # nothing changed since: the export answers with nothing new
    assert zendesk.api_paths() == ["/api/v2/help_center/incremental/articles"]
    assert len(pipeline.documents(asset_id)) == 3

    del zendesk.articles[articles["sso"].id]
    pipeline.run(asset_id, force=True)  # a full listing removes what is gone
    assert set(pipeline.documents(asset_id)) == wanted - {article_key(articles["sso"].id)}


def test_an_edit_in_the_same_second_as_the_indexed_version_is_not_missed(pipeline, zendesk):
    """``updated_at`` has whole seconds: an edit within the second of the indexed version
    carries the same stamp, and the export names it again; the text tells it apart."""
    articles = _help_center(zendesk)
    # The second the indexed version carries, after the listing's start: the export that
    # follows names the article again whatever the clock does meanwhile.
    stamp = time.time() + 30
    articles["invoice"].updated = stamp
    asset_id = _asset(pipeline, API_TOKEN, locale="en-us")
    pipeline.run(asset_id)
    zendesk.edit(articles["invoice"], "<p>Invoices are e-mailed on the first of the month.</p>")
    articles["invoice"].updated = stamp  # edited again within that second
    outcome = pipeline.run(asset_id)
    assert outcome.metadata()["documents_changed"] == 1
    assert "Invoices are e-mailed on the first of the month." in _texts(pipeline, asset_id)


def test_a_429_and_an_expired_token_are_recovered(pipeline, zendesk):
    _help_center(zendesk)
    issued = zendesk.issue_tokens()
    auth = SourceAuth(accessToken=issued["access_token"], refreshToken=issued["refresh_token"])
    asset_id = _asset(pipeline, auth)
    zendesk.expire_access_tokens()
    zendesk.fail_next(429, retry_after="0")
    zendesk.fail_next(503)

    pipeline.run(asset_id)

    assert len(pipeline.documents(asset_id)) == 4  # drafts skipped, every locale
    assert [r["grant_type"] for r in zendesk.token_requests] == ["refresh_token"]
    kept = load_source_auth(
        secret_box(pipeline.settings).open(pipeline.catalog.get_asset(asset_id).source_auth)
    )
    assert kept.refreshToken in zendesk.refresh_tokens and kept.expiresAt


def test_revoked_credentials_fail_cleanly(pipeline, zendesk):
    _help_center(zendesk)
    asset_id = _asset(pipeline, API_TOKEN)
    pipeline.run(asset_id)
    zendesk.user_tokens.clear()

    outcome = pipeline.run(asset_id, force=True, raise_on_error=False)

    operation = pipeline.catalog.get_operation(outcome.operation_id)
    assert not outcome.result.success and operation.error_category == "CREDENTIALS"
    assert "Couldn't authenticate you" in operation.error_message
    assert len(pipeline.documents(asset_id)) == 4  # nothing indexed is lost


def test_a_zendesk_webhook_refreshes_the_article_it_names(client, zendesk, pipeline):
    from fruxon_pipelines.partitions import KNOWLEDGE_ASSET_PARTITIONS
    from fruxon_pipelines.webhooks import merged_request

    articles = _help_center(zendesk)
    created = client.post(
        "/v1/tenants/acme/assets",
        json={
            "config": {"sourceType": "zendesk", "parameters": {"subdomain": "acme"}},
            "embedding": {"provider": "hash", "model": "hash-384"},
            "auth": {"method": "API_TOKEN", "email": EMAIL, "apiToken": TOKEN},
            "autoUpdate": {"strategy": "WEBHOOK"},
        },
    )
    assert created.status_code == 200, created.text
    asset_id = created.json()["asset"]["id"]
    path = urlsplit(created.json()["webhook"]["webhookUrl"]).path
    assert "/v1/webhooks/zendesk/" in path
    pipeline.instance.add_dynamic_partitions(KNOWLEDGE_ASSET_PARTITIONS, [asset_id])
    pipeline.run(asset_id)

    del zendesk.articles[articles["reset"].id]  # unpublished: the show endpoint 404s
    event = {
        "account_id": 10168721,
        "detail": {"brand_id": "224348602", "id": str(articles["reset"].id)},
        "event": {},
        "id": "01GX4P86AC7T0AFF86QGAHTEFR",
        "subject": f"zen:article:{articles['reset'].id}",
        "time": "2026-12-02T01:11:49.571545199Z",
        "type": "zen:event-type:article.unpublished",
        "zendesk_event_version": "2022-11-06",
    }
    assert client.post(path, json=event).status_code == 202
    vote = event | {"type": "zen:event-type:article.vote_created"}
    assert client.post(path, json=vote).json()["eventId"] is None  # votes change no text

    request = merged_request(client.services.catalog.waiting_webhook_events(asset_id))
    assert request["sourceKeys"] == [article_key(articles["reset"].id)]
    zendesk.requests.clear()
    pipeline.run(asset_id, source_keys=request["sourceKeys"])
    assert zendesk.api_paths() == [f"/api/v2/help_center/articles/{articles['reset'].id}"]
    assert article_key(articles["reset"].id) not in pipeline.documents(asset_id)


def test_oauth_for_zendesk_uses_the_subdomain_and_pkce(client, zendesk):
    bad = client.post(
        "/v1/tenants/acme/assets:authorize",
        json={"sourceType": "zendesk", "parameters": {"subdomain": "evil.example/x"}},
    )
    assert bad.status_code == 400 and "parameters.subdomain" in bad.json()["detail"]
    started = client.post(
        "/v1/tenants/acme/assets:authorize",
        json={"sourceType": "zendesk", "parameters": {"subdomain": "acme"}},
    )
    url = started.json()["authorizationUrl"]
    query = parse_qs(urlsplit(url).query)
    assert query["code_challenge_method"] == ["S256"] and query["scope"] == ["read"]
    login = httpx.get(url)
    form = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', login.text))
    back = urlsplit(httpx.post(f"{zendesk.url}/oauth/login", data=form).headers["location"])
    landed = client.get(f"{back.path}?{back.query}", follow_redirects=False)
    assert landed.status_code == 303, landed.text
    exchange = zendesk.token_requests[-1]
    assert exchange["grant_type"] == "authorization_code" and exchange["code_verifier"]
    key = parse_qs(urlsplit(landed.headers["location"]).query)["credentialKey"][0]
    token = client.headers.pop("Authorization")
    try:
        tokens = client.get(f"/v1/tenants/acme/assets:oauthCredentials?credentialKey={key}")
    finally:
        client.headers["Authorization"] = token
    assert tokens.status_code == 200 and tokens.json()["expiresAt"]


def test_an_api_token_needs_the_agents_email(client, zendesk):
    response = client.post(
        "/v1/tenants/acme/assets",
        json={
            "config": {"sourceType": "zendesk", "parameters": {"subdomain": "acme"}},
            "auth": {"method": "API_TOKEN", "apiToken": TOKEN},
        },
    )
    assert response.status_code == 400 and "auth.email" in response.json()["detail"]


def test_the_sources_api_offers_the_help_center_as_a_category_tree(client, pipeline, zendesk):
    from sources_api import SOURCES, record, workspace_key

    articles = _help_center(zendesk)
    articles["audit"] = zendesk.add(FakeArticle("Audit log", "<p>Every change is kept.</p>", 1003))
    asset_id = _asset(pipeline, API_TOKEN, locale="en-us")
    pipeline.catalog.update_asset(asset_id, selection="REGISTERED")
    key = workspace_key(client)

    tree = client.get(f"{SOURCES}/resources/zendesk", headers=key).json()
    outline = [
        (
            c["title"],
            c["type"],
            [(s["title"], [a["title"] for a in s["children"]]) for s in c["children"]],
        )
        for c in tree
    ]
    assert outline == [
        (
            "General",
            "category",
            [
                ("Getting started", ["Reset your password", "Single sign-on"]),
                ("Billing", ["Download an invoice"]),
            ],
        ),
        ("Admins", "category", [("Security", ["Audit log"])]),
    ]  # drafts and other locales are not offered
    invoice = tree[0]["children"][1]["children"][0]
    assert invoice["type"] == "article" and invoice["externalId"] == str(articles["invoice"].id)
    assert invoice["originalUrl"].endswith(f"/articles/{articles['invoice'].id}")

    added = client.post(f"{SOURCES}/resources/zendesk", headers=key, json={"resources": [invoice]})
    ids = added.json()["addedDocumentIds"]
    client.post(SOURCES, headers=key, json={"source": "zendesk", "documentIdsToAdd": ids})
    pipeline.run_waiting_operations()
    assert record(client, key, ids[0])["linkedJobStatus"] == "COMPLETED"
    billing = client.get(f"{SOURCES}/resources/zendesk", headers=key).json()[0]["children"]
    assert [s["title"] for s in billing] == ["Getting started"]  # the imported one is left out
    assert set(pipeline.documents(asset_id)) == {article_key(articles["invoice"].id)}
