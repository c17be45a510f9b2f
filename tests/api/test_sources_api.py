"""The sources API (Fini's documents API, /v2/documents/public) on the in-process app: workspace
API keys, the web flow through the real ingestion graph, listing, and the documented errors.

The app writes operations as it would for a stack; the test runs them through the real graph on
a real Dagster instance (`Pipeline.run_waiting_operations`) and the app reads their runs there.
"""

from __future__ import annotations

import pytest
from conftest import written_under
from pipeline import HASH_EMBEDDING
from sources_api import SOURCES, record, workspace_key
from typer.testing import CliRunner

from fruxon_pipelines.catalog.store import document_id_for
from fruxon_pipelines.settings import get_settings


def _page(title: str, *paragraphs: str, links: tuple[str, ...] = ()) -> str:
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    anchors = "".join(f'<a href="{href}">{href}</a>' for href in links)
    return (
        f"<html><head><title>{title}</title></head><body><main><h1>{title}</h1>{body}"
        f"{anchors}</main></body></html>"
    )


@pytest.fixture
def settings(tmp_path, catalog_url):
    """Every test here runs on a SQLite and on a PostgreSQL catalog."""
    from fruxon_pipelines.settings import Settings

    return Settings(
        home=tmp_path / "fruxon",
        allow_private_networks=True,
        embed_batch_size=8,
        database_url=catalog_url,
    )


@pytest.fixture
def web_asset(pipeline, client):
    """The workspace's web asset, made beforehand to embed with the fast hash model."""
    return pipeline.create_asset(
        "web", {"urls": ["http://127.0.0.1/"]}, embedding=HASH_EMBEDDING, selection="REGISTERED"
    )


# Keys ----------------------------------------------------------------------------------------


def test_keys_are_scoped_hashed_and_revocable_from_the_cli(client, settings, monkeypatch):
    from fruxon_cli import app

    monkeypatch.setenv("FRUXON_HOME", str(settings.home))
    monkeypatch.setenv("FRUXON_DATABASE_URL", settings.catalog_url)
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        made = runner.invoke(app, ["apikey", "create", "--tenant", "acme", "--scope", "read"])
        assert made.exit_code == 0, made.output
        read_key = made.stdout.strip().splitlines()[-1]
        assert read_key.startswith("fini_")
        reader = {"Authorization": f"Bearer {read_key}"}

        assert client.get(SOURCES, headers=reader).json() == {"documents": [], "hasMore": False}
        refused = client.post(SOURCES, headers=reader, json={"documentIdsToAdd": ["https://a.b/"]})
        assert refused.status_code == 403
        assert refused.headers["content-type"] == "application/problem+json"
        assert "write scope" in refused.json()["detail"]

        listing = runner.invoke(app, ["apikey", "list", "--tenant", "acme"])
        assert read_key[:11] in listing.stdout and read_key not in listing.stdout
        assert read_key.encode() not in written_under(settings)  # only its hash is kept

        key_id = listing.stdout.split()[0]
        assert runner.invoke(app, ["apikey", "revoke", key_id]).exit_code == 0
        revoked = client.get(SOURCES, headers=reader)
        assert revoked.status_code == 401 and "revoked" in revoked.json()["detail"]
        assert runner.invoke(app, ["apikey", "revoke", key_id]).exit_code == 2
        bad_scope = runner.invoke(app, ["apikey", "create", "--tenant", "acme", "--scope", "admin"])
        assert bad_scope.exit_code == 2
    finally:
        get_settings.cache_clear()

    for headers in ({"Authorization": ""}, {"Authorization": "Bearer fini_not-a-key"}):
        answer = client.get(SOURCES, headers=headers)
        assert answer.status_code == 401
        assert answer.headers["www-authenticate"] == "Bearer"
    # A token of the Assets API is no workspace key.
    assert client.get(SOURCES).status_code == 401
    writer = workspace_key(client, "write")
    assert client.get(SOURCES, headers=writer).status_code == 200  # write includes read


# The web flow --------------------------------------------------------------------------------


def test_web_urls_are_ingested_refreshed_detected_as_changed_and_deleted(
    client, pipeline, site, web_asset
):
    site.put("/pricing", _page("Pricing", "Plans start at ten euros.", "Annual plans save more."))
    site.put("/faq", _page("FAQ", "Refunds take five days."))
    key = workspace_key(client)
    pricing, faq = site.url("/pricing"), site.url("/faq")

    queued = client.post(
        SOURCES, headers=key, json={"source": "web", "documentIdsToAdd": [pricing, faq]}
    )
    assert queued.status_code == 200, queued.text
    ids = queued.json()["addedDocumentIds"]
    assert ids == [document_id_for(web_asset, pricing), document_id_for(web_asset, faq)]
    assert queued.json()["updatedDocumentIds"] == []
    waiting = record(client, key, ids[0])
    assert (waiting["linkedJobStatus"], waiting["success"], waiting["paragraphs"]) == (
        "PENDING",
        False,
        [],
    )

    pipeline.run_waiting_operations()
    done = record(client, key, ids[0])
    assert done["linkedJobStatus"] == "COMPLETED" and done["success"] is True
    assert done["error"] == "" and done["changed"] is False
    assert "Plans start at ten euros." in done["paragraphs"]
    assert (done["source"], done["externalId"], done["originalUrl"]) == ("web", pricing, pricing)
    assert done["title"] == "Pricing" and done["mimeType"] == "text/html"
    assert done["createdAt"].endswith("Z") and "T" in done["updatedAt"]
    assert done["knowledgeAssetId"] == web_asset

    # The same documents, with the same status, through the Assets API.
    documents = client.get(f"/v1/tenants/acme/assets/{web_asset}/documents").json()["items"]
    assert {d["id"]: d["status"] for d in documents} == dict.fromkeys(ids, "COMPLETED")

    # Edit one page and refresh both: only the edited one is changed.
    site.put(
        "/pricing", _page("Pricing", "Plans start at twelve euros.", "Annual plans save more.")
    )
    assert client.post(f"{SOURCES}/refresh", headers=key, json={"documentIds": ids}).json() == ids
    assert record(client, key, ids[0])["linkedJobStatus"] == "PENDING"
    pipeline.run_waiting_operations()
    edited = record(client, key, ids[0])
    assert edited["linkedJobStatus"] == "COMPLETED" and edited["changed"] is True
    assert "Plans start at twelve euros." in edited["paragraphs"]
    assert "Plans start at ten euros." in edited["oldParagraphs"]
    assert edited["linkedJobId"] != done["linkedJobId"]
    assert record(client, key, ids[1])["changed"] is False
    changed = client.get(SOURCES, headers=key, params={"changed": "true"}).json()["documents"]
    assert [d["id"] for d in changed] == [ids[0]]

    # A URL asked for again goes to documentIdsToRefresh's answer.
    again = client.post(SOURCES, headers=key, json={"documentIdsToRefresh": [faq]}).json()
    assert again == {"addedDocumentIds": [], "updatedDocumentIds": [ids[1]]}
    site.remove("/faq")
    pipeline.run_waiting_operations()
    gone = record(client, key, ids[1])  # registered by hand: it stays, and says why
    assert gone["linkedJobStatus"] == "FAILED" and gone["success"] is False and gone["error"]

    deleted = client.request("DELETE", SOURCES, headers=key, json={"documentIds": [ids[0]]})
    assert deleted.json() == {
        "deletedDocuments": [{"id": ids[0], "title": "Pricing", "originalUrl": pricing}],
        "deletedArticles": [],
    }
    assert client.get(f"{SOURCES}/{ids[0]}", headers=key).status_code == 404
    assert ids[0] not in {c["document_id"] for c in pipeline.chunks(web_asset)}
    left = client.get(f"/v1/tenants/acme/assets/{web_asset}/documents").json()["items"]
    assert [d["id"] for d in left] == [ids[1]]


def test_the_web_asset_is_made_on_first_use_and_shown_by_the_assets_api(client, site):
    key = workspace_key(client)
    url = site.url("/start")
    added = client.post(SOURCES, headers=key, json={"documentIdsToAdd": [url]}).json()
    assets = client.get("/v1/tenants/acme/assets").json()["items"]
    assert [(a["displayName"], a["type"], a["selection"]) for a in assets] == [
        ("Web sources", "web", "REGISTERED")
    ]
    source = record(client, key, added["addedDocumentIds"][0])
    assert source["knowledgeAssetId"] == assets[0]["id"]
    # Another workspace's key sees nothing of it, not even that it exists.
    other = workspace_key(client, "write", tenant="globex")
    assert client.get(SOURCES, headers=other).json()["documents"] == []
    assert client.get(f"{SOURCES}/{source['id']}", headers=other).status_code == 404
    refresh = client.post(f"{SOURCES}/refresh", headers=other, json={"documentIds": [source["id"]]})
    assert refresh.status_code == 400 and "no source" in refresh.json()["detail"]
    # Its own web URL goes to its own asset.
    theirs = client.post(SOURCES, headers=other, json={"documentIdsToAdd": [url]}).json()
    assert theirs["addedDocumentIds"] != added["addedDocumentIds"]


# Listing -------------------------------------------------------------------------------------


def test_listing_pages_by_cursor_both_ways_and_filters(client, site, web_asset):
    key = workspace_key(client)
    urls = [site.url(f"/guide/{n}") for n in range(7)]
    client.post(SOURCES, headers=key, json={"documentIdsToAdd": urls[:4]})
    client.post(SOURCES, headers=key, json={"documentIdsToAdd": urls[4:]})
    everything = client.get(SOURCES, headers=key, params={"limit": 50}).json()
    order = [d["id"] for d in everything["documents"]]
    assert len(order) == 7 and everything["hasMore"] is False
    updated = [d["updatedAt"] for d in everything["documents"]]
    assert updated == sorted(updated, reverse=True)  # newest change first

    seen, cursor = [], None
    while True:
        params = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        page = client.get(SOURCES, headers=key, params=params).json()
        seen += [d["id"] for d in page["documents"]]
        if not page["hasMore"]:
            break
        cursor = page["documents"][-1]["id"]
    assert seen == order  # `next` walks to older records, every one once

    back = client.get(
        SOURCES, headers=key, params={"limit": 2, "cursor": order[4], "direction": "previous"}
    ).json()
    assert [d["id"] for d in back["documents"]] == order[2:4] and back["hasMore"] is True

    by_url = client.get(SOURCES, headers=key, params={"url": "GUIDE/3"}).json()["documents"]
    assert [d["originalUrl"] for d in by_url] == [urls[3]]
    assert client.get(SOURCES, headers=key, params={"source": "notion"}).json()["documents"] == []
    assert len(client.get(SOURCES, headers=key, params={"source": "web"}).json()["documents"]) == 7
    assert (
        client.get(SOURCES, headers=key, params={"id": order[0]}).json()["documents"][0]["id"]
        == (order[0])
    )
    for params in ({"source": "dropbox"}, {"cursor": "nope"}, {"direction": "up"}, {"limit": 0}):
        answer = client.get(SOURCES, headers=key, params=params)
        assert answer.status_code == 400, params
        assert answer.headers["content-type"] == "application/problem+json"


# Errors --------------------------------------------------------------------------------------


def test_the_documented_errors_are_clear_400s_and_change_nothing(client, site, web_asset):
    key = workspace_key(client)
    url = site.url("/a")
    document = client.post(SOURCES, headers=key, json={"documentIdsToAdd": [url]}).json()
    document_id = document["addedDocumentIds"][0]
    operations_before = len(client.services.catalog.list_operations(web_asset))

    cases = [
        ({"source": "web", "documentIdsToAdd": [document_id]}, "takes URLs"),
        ({"source": "notion", "documentIdsToAdd": [url]}, "takes source ids"),
        ({"source": "notion", "documentIdsToAdd": ["page-7"]}, "not a source id"),
        ({"source": "dropbox", "documentIdsToAdd": [url]}, "unsupported source"),
        ({"source": "web"}, "at least one"),
        ({"documentIdsToAdd": ["ftp://example.com/x"]}, "not an http(s) URL"),
        ({"documentIdsToRefresh": [site.url("/never-added")]}, "not web sources"),
        ({"source": "zendesk", "documentIdsToAdd": [document_id]}, "is a web source"),
        ({"documentIdsToAdd": "https://a.b/"}, "documentIdsToAdd"),
    ]
    for body, words in cases:
        answer = client.post(SOURCES, headers=key, json=body)
        assert answer.status_code == 400, (body, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
        assert words in answer.json()["detail"], (body, answer.json()["detail"])
    assert len(client.services.catalog.list_operations(web_asset)) == operations_before

    assert client.get(f"{SOURCES}/not-a-uuid", headers=key).status_code == 400
    unknown = "0b7c3a6e-9f9e-4a51-8c57-9b5f4f1d2a10"
    assert client.get(f"{SOURCES}/{unknown}", headers=key).status_code == 404
    for path, body in (
        ("/refresh", {"documentIds": [unknown]}),
        ("/refresh", {"documentIds": []}),
        ("/deep-crawl/links", {"links": []}),
        ("/deep-crawl/links", {"links": ["not a url"]}),
    ):
        assert client.post(SOURCES + path, headers=key, json=body).status_code == 400, path
    assert (
        client.request("DELETE", SOURCES, headers=key, json={"documentIds": [unknown]}).status_code
        == 400
    )
    for provider, words in (("googledrive", "no discovery"), ("dropbox", "unsupported provider")):
        answer = client.get(f"{SOURCES}/resources/{provider}", headers=key)
        assert answer.status_code == 400 and words in answer.json()["detail"]
    not_connected = client.get(f"{SOURCES}/resources/notion", headers=key)
    assert not_connected.status_code == 400 and "not connected" in not_connected.json()["detail"]
    assert record(client, key, document_id)["linkedJobStatus"] == "PENDING"  # untouched


def test_a_deep_crawl_lists_urls_and_ingests_nothing(client, site):
    links = [f"/docs/{n}" for n in range(6)]
    site.put("/docs/", _page("Docs", "Start here.", links=tuple(links)))
    for path in links:
        site.put(path, _page(path, "A page.", links=("/docs/",)))
    key = workspace_key(client)

    found = client.post(
        f"{SOURCES}/deep-crawl/links", headers=key, json={"links": [site.url("/docs/")], "limit": 4}
    )
    assert found.status_code == 200, found.text
    assert found.json()["data"] == [site.url(p) for p in links[:4]]
    assert found.json()["message"]
    everything = client.post(
        f"{SOURCES}/deep-crawl/links", headers=key, json={"links": [site.url("/docs/")]}
    ).json()["data"]
    assert sorted(everything) == sorted(site.url(p) for p in links)  # the seed left out
    assert client.get(SOURCES, headers=key).json()["documents"] == []
    assert client.services.catalog.list_assets("acme") == []


def test_a_record_follows_the_operation_it_asked_for_not_another_run(
    client, pipeline, site, web_asset
):
    site.put("/a", _page("A", "Alpha text."))
    site.put("/b", _page("B", "Beta text."))
    key = workspace_key(client)
    a, b = client.post(
        SOURCES, headers=key, json={"documentIdsToAdd": [site.url("/a"), site.url("/b")]}
    ).json()["addedDocumentIds"]
    pipeline.run_waiting_operations()

    asked = client.post(f"{SOURCES}/refresh", headers=key, json={"documentIds": [a]}).json()
    job = record(client, key, a)["linkedJobId"]
    pipeline.run(web_asset)  # another refresh of the asset runs first and reads `a` too
    waiting = record(client, key, a)
    assert asked == [a] and (waiting["linkedJobStatus"], waiting["linkedJobId"]) == ("PENDING", job)
    pipeline.run_waiting_operations()
    assert record(client, key, a)["linkedJobStatus"] == "COMPLETED"

    # A cancelled request reads FAILED, and says so.
    client.post(f"{SOURCES}/refresh", headers=key, json={"documentIds": [b]})
    job = record(client, key, b)["linkedJobId"]
    cancel = client.post(f"/v1/tenants/acme/assets/{web_asset}/operations/{job}:cancel")
    assert cancel.status_code == 200, cancel.text
    cancelled = record(client, key, b)
    assert cancelled["linkedJobStatus"] == "FAILED" and "cancelled" in cancelled["error"]

    # A source deleted before its queued run starts leaves the others of that run unharmed.
    site.put("/c", _page("C", "Gamma text."))
    site.put("/d", _page("D", "Delta text."))
    c, d = client.post(
        SOURCES, headers=key, json={"documentIdsToAdd": [site.url("/c"), site.url("/d")]}
    ).json()["addedDocumentIds"]
    client.request("DELETE", SOURCES, headers=key, json={"documentIds": [c]})
    pipeline.run_waiting_operations()
    assert record(client, key, d)["linkedJobStatus"] == "COMPLETED"
    assert client.get(f"{SOURCES}/{c}", headers=key).status_code == 404

    # A webhook naming a page nobody registered does not ingest it into this asset.
    site.put("/e", _page("E", "Epsilon text."))
    pipeline.run(web_asset, source_keys=[site.url("/e")])
    assert site.url("/e") not in pipeline.documents(web_asset)


def test_text_that_would_break_the_database_is_refused(client, web_asset):
    key = workspace_key(client)
    long_url = "https://example.com/" + "a" * 3000
    for body in (
        {"documentIdsToAdd": [long_url]},
        {"documentIdsToAdd": ["https://example.com/\x00"]},
    ):
        answer = client.post(SOURCES, headers=key, json=body)
        assert answer.status_code == 400, answer.text
    assert client.get(SOURCES, headers=key, params={"title": "a\x00b"}).status_code == 400
    assert (
        client.post(
            f"{SOURCES}/deep-crawl/links", headers=key, json={"links": [long_url]}
        ).status_code
        == 400
    )
