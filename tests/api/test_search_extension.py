"""Search for applications (our extension): a tenant's assets at once, filters inside LanceDB,
context, per-document limits, grouping, reranking and budgets — through the real app, runs in
a real Dagster instance, real LanceDB, a local OpenAI-compatible embedder and a local reranker.
"""

from __future__ import annotations

import email.utils

import pytest
from conftest import OPENAI_MODEL
from pipeline import HASH_EMBEDDING
from pydantic import SecretStr
from rerank_server import RerankServer

TENANT = "/v1/tenants/acme"
OPENAI = {"provider": "openai", "model": OPENAI_MODEL, "chunkSize": 64, "chunkOverlap": 8}
FAVOURITE = "marmalade"

# Three pages of asset A (hash model), three of asset B (the openai model, another width).
PAGES_A = {
    "/docs/zanzibar.html": ("Zanzibar customs", "Parcels to Zanzibar clear customs in Stone Town."),
    "/docs/kettles.html": ("Kettle care", "Descale the kettle monthly with citric acid."),
    "/blog/lanterns.html": ("Paper lanterns", f"Lanterns glow softly; {FAVOURITE} on toast."),
}
PAGES_B = {
    "/b/quokka.html": ("Quokka habitat", "Quokkas live on Rottnest Island near Perth."),
    "/b/tides.html": ("Tide tables", "Spring tides follow the new and the full moon."),
    "/b/ferns.html": ("Fern spores", "Ferns spread by spores instead of seeds."),
}


def _page(title: str, text: str, paragraphs: int = 1) -> str:
    body = "".join(f"<p>{text} Paragraph {i} of the page.</p>" for i in range(paragraphs))
    return f"<html><head><title>{title}</title></head><body><main>{body}</main></body></html>"


@pytest.fixture
def reranker():
    with RerankServer(favourite=FAVOURITE) as server:
        yield server


@pytest.fixture
def app_settings(app_settings, reranker):
    return app_settings.model_copy(
        update={
            "rerank_base_url": reranker.base_url,
            "rerank_api_key": SecretStr(reranker.api_key),
            "rerank_model": "rerank-test",
            "rerank_price_per_million_tokens": 2.0,
        }
    )


def _asset(client, site, pages, embedding, **extra) -> str:
    for path, (title, text) in pages.items():
        site.put(path, _page(title, text, paragraphs=extra.pop("paragraphs", 1)))
    urls = [site.url(path) for path in pages]
    response = client.post(
        f"{TENANT}/assets",
        json={
            "config": {"sourceType": "web", "parameters": {"urls": urls, "maxDepth": 0}},
            "embedding": embedding,
            **extra,
        },
    )
    assert response.status_code == 200, response.text
    return response.json()["asset"]["id"]


@pytest.fixture
def two_assets(client, site, openai_server):
    """Asset A on the hash model and asset B on the openai one, both indexed."""
    a = _asset(client, site, PAGES_A, HASH_EMBEDDING)
    b = _asset(client, site, PAGES_B, OPENAI)
    ended = client.run_queue.run_queued()
    assert len(ended) == 2 and all(run.is_success for run in ended)
    return a, b


def _search(client, body, asset: str | None = None) -> dict:
    path = f"{TENANT}/assets/{asset}:search" if asset else f"{TENANT}/search"
    response = client.post(path, json=body)
    assert response.status_code == 200, response.text
    return response.json()


def _titles(answer: dict) -> list[str]:
    return [hit["title"] for hit in answer["results"]]


def _document_ids(client, asset_id: str) -> dict[str, str]:
    """Title → document id, from the catalog."""
    documents = client.services.catalog.documents_by_key(asset_id).values()
    return {d.title: d.id for d in documents}


def test_one_query_over_two_models_finds_the_right_document_of_each(client, two_assets):
    a, b = two_assets
    query = "zanzibar parcels customs quokka rottnest island"
    answer = _search(client, {"query": query, "topK": 6})
    top = answer["results"][:2]
    assert {(h["assetId"], h["title"]) for h in top} == {
        (a, "Zanzibar customs"),
        (b, "Quokka habitat"),
    }
    assert all(h["sourceType"] == "web" and h["sourceUrl"] and h["documentId"] for h in top)
    assert answer["notes"] == []
    only_b = _search(client, {"query": query, "assetIds": [b]})
    assert {h["assetId"] for h in only_b["results"]} == {b}
    assert only_b["results"][0]["title"] == "Quokka habitat"
    for mode in ("VECTOR", "FULL_TEXT"):
        assert _search(client, {"query": query, "searchMode": mode})["results"]


def test_every_filter_narrows_the_results(client, two_assets, site):
    a, b = two_assets
    everything = {"query": "the page paragraph", "topK": 50, "searchMode": "FULL_TEXT"}
    assert len({h["documentId"] for h in _search(client, everything)["results"]}) == 6
    ids = _document_ids(client, a)

    def titles(filter: dict, asset: str | None = None) -> set[str]:
        return set(_titles(_search(client, everything | {"filter": filter}, asset)))

    assert titles({"documentIds": [ids["Kettle care"]]}) == {"Kettle care"}
    assert titles({"assetIds": [b]}) == set(t for t, _ in PAGES_B.values())
    assert titles({"sourceTypes": ["web"]}) == titles({})
    assert titles({"sourceTypes": ["file"]}) == set()
    assert titles({"urlPrefix": site.url("/docs/")}) == {"Zanzibar customs", "Kettle care"}
    assert titles({"urlGlob": site.url("/*/*s.html")}) == {
        "Kettle care",
        "Paper lanterns",
        "Tide tables",
        "Fern spores",
    }
    assert titles({"urlGlob": site.url("/**")}) == titles({})
    assert titles({"urlGlob": site.url("/docs/*")}) == {"Zanzibar customs", "Kettle care"}
    assert titles({"titleContains": "ZANZIBAR"}) == {"Zanzibar customs"}
    # Pages were served with later Last-Modified dates in the order they were put.
    stamps = {
        d.title: int(email.utils.parsedate_to_datetime(d.last_modified).timestamp() * 1000)
        for asset in (a, b)
        for d in client.services.catalog.documents_by_key(asset).values()
    }
    ordered = sorted(stamps, key=stamps.get)
    middle = stamps[ordered[3]]
    assert titles({"modifiedAfter": middle}) == set(ordered[3:])
    assert titles({"modifiedBefore": middle}) == set(ordered[:3])
    assert titles({"modifiedAfter": stamps[ordered[1]], "modifiedBefore": middle}) == set(
        ordered[1:3]
    )
    # The same filters on one asset's search, and a filter that names another asset.
    assert titles({"urlPrefix": site.url("/docs/")}, a) == {"Zanzibar customs", "Kettle care"}
    assert titles({"assetIds": [b]}, a) == set()
    assert titles({"titleContains": "quokka"}, a) == set()


HOSTILE = [
    "' OR 1=1 --",
    "x' OR '1'='1",
    "\\",
    "\\' OR 1=1; --",
    "'; DROP TABLE chunks; --",
    "%",
    "_",
    "(",
    "[a-",
    "ünï'cødé \" \\ ' ✓",
    "a') OR (asset_id IS NOT NULL",
]


def test_hostile_filter_values_are_inert(client, two_assets):
    a, b = two_assets
    query = {"query": "the page paragraph", "topK": 50, "searchMode": "FULL_TEXT"}
    # One ingestion for every value: the values are the test, the assets only the target.
    for value in HOSTILE:
        hostile = [
            {"documentIds": [value]},
            {"assetIds": [value]},
            {"sourceTypes": [value]},
            {"urlPrefix": value},
            {"urlGlob": value},
            {"titleContains": value},
        ]
        for filter in hostile:
            for asset in (None, a):
                answer = _search(client, query | {"filter": filter}, asset)
                assert answer["results"] == [], (filter, asset)
    # Nothing typed into a filter widens one asset's search to the other's chunks.
    own = _search(client, query | {"filter": {"titleContains": ""}}, a)["results"]
    assert own and {h["assetId"] for h in own} == {a}


def test_context_per_document_limits_and_grouping(client, site):
    long_page = {"/long.html": ("Long guide", "Walruses haul out on sea ice to rest and moult.")}
    a = _asset(client, site, long_page, HASH_EMBEDDING, paragraphs=24)
    _asset(client, site, PAGES_A, HASH_EMBEDDING)
    assert all(run.is_success for run in client.run_queue.run_queued())
    chunks = sorted(
        client.services.vectors.chunks_of_document(
            "acme",
            _document_ids(client, a)["Long guide"],
            ["chunk_index", "content", "start_char", "end_char"],
        ),
        key=lambda c: c["chunk_index"],
    )
    assert len(chunks) >= 5
    query = {"query": "walruses haul out on sea ice paragraph 12", "topK": 10}

    many = _search(client, query)["results"]
    assert sum(h["title"] == "Long guide" for h in many) > 1
    capped = _search(client, query | {"maxChunksPerDocument": 1})["results"]
    assert sum(h["title"] == "Long guide" for h in capped) == 1
    assert len({h["documentId"] for h in capped}) == len(capped)

    expanded = _search(client, query | {"expandContext": {"before": 1, "after": 1}})["results"]
    for hit in expanded:
        if hit["title"] != "Long guide":
            continue
        index = hit["chunkIndex"]
        around = [c for c in chunks if index - 1 <= c["chunk_index"] <= index + 1]
        context = hit["contextText"]
        assert context.startswith(around[0]["content"])
        assert context.endswith(around[-1]["content"])
        assert hit["content"] in context
        # Neighbours overlap; merged, the text is the document's span without repeats.
        assert len(context) == around[-1]["end_char"] - around[0]["start_char"]
    assert _search(client, query)["results"][0]["contextText"] != expanded[0]["contextText"]

    grouped = _search(client, query | {"group": "DOCUMENT"})
    documents = grouped["documents"]
    assert [d["documentId"] for d in documents] == list(
        dict.fromkeys(h["documentId"] for h in grouped["results"])
    )
    long_entry = next(d for d in documents if d["title"] == "Long guide")
    assert len(long_entry["chunks"]) > 1
    assert long_entry["score"] == max(c["score"] for c in long_entry["chunks"])


def test_rerank_orders_by_the_rerankers_scores_and_bills_its_tokens(client, two_assets, reranker):
    a, b = two_assets
    query = {"query": "zanzibar parcels customs", "topK": 6, "rerank": True}
    plain = _search(client, query | {"rerank": False})["results"]
    assert plain[0]["title"] == "Zanzibar customs"

    answer = _search(client, query)
    hits = answer["results"]
    assert hits[0]["title"] == "Paper lanterns" and hits[0]["score"] == 0.99
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    assert {h["assetId"] for h in hits} == {a, b}
    [sent] = reranker.requests
    assert sent["model"] == "rerank-test" and sent["query"] == "zanzibar parcels customs"
    assert len(sent["documents"]) == len(hits)
    # The reranker's own count, booked on the assets whose candidates it read.
    assert answer["rerankTokens"] == reranker.tokens_billed > 0
    assert answer["rerankCost"] == pytest.approx(reranker.tokens_billed * 2.0 / 1e6)
    booked = {x: _reranked_tokens(client, x) for x in (a, b)}
    assert sum(booked.values()) == reranker.tokens_billed and all(booked.values())
    # One asset's search reranks too.
    one = _search(client, query, a)["results"]
    assert one[0]["title"] == "Paper lanterns"


def _reranked_tokens(client, asset_id) -> int:
    """What of the reranked tokens was booked on ``asset_id`` (kind RERANK)."""
    from sqlalchemy import func, select

    from fruxon_pipelines.catalog.models import TokenUsage

    with client.services.catalog.session() as session:
        query = select(func.sum(TokenUsage.tokens)).where(
            TokenUsage.asset_id == asset_id, TokenUsage.kind == "RERANK"
        )
        return session.scalar(query) or 0


def test_rerank_without_a_reranker_is_a_clear_conflict(client, two_assets):
    client.services.settings = client.services.settings.model_copy(update={"rerank_base_url": None})
    response = client.post(f"{TENANT}/search", json={"query": "kettle", "rerank": True})
    assert response.status_code == 409, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "FRUXON_RERANK_BASE_URL" in response.json()["detail"]


def test_an_asset_over_its_budget_is_left_out_with_a_note(client, two_assets, openai_server):
    a, b = two_assets
    patched = client.patch(f"{TENANT}/assets/{b}", json={"budget": {"tokenBudget": 0}})
    assert patched.status_code == 200, patched.text
    billed = openai_server.tokens_billed
    answer = _search(client, {"query": "quokka rottnest zanzibar customs", "topK": 6})
    assert answer["results"] and {h["assetId"] for h in answer["results"]} == {a}
    [note] = answer["notes"]
    assert note["assetId"] == b and note["errorCategory"] == "BUDGET"
    assert "token budget" in note["detail"]
    assert openai_server.tokens_billed == billed  # nothing was embedded for it
    # Its own search is refused, as before.
    refused = client.post(f"{TENANT}/assets/{b}:search", json={"query": "quokka"})
    assert refused.status_code == 429
