"""Token budgets, cost accounting and the `openai` provider against a local OpenAI-compatible
server on 127.0.0.1 (real HTTP, real JSON, injected 429s)."""

from __future__ import annotations

import pytest
from conftest import dagster_event_text, written_under
from sitegen import generate_pages

from fruxon_pipelines import embedding
from fruxon_pipelines.budgets import BudgetExceeded, merged_budget, token_limits
from fruxon_pipelines.catalog.models import now_ms
from fruxon_pipelines.embedding.openai import EmbeddingServiceError, OpenAIEmbedder
from fruxon_pipelines.settings import get_settings

MODEL = "text-embedding-3-small"
PRICE = 0.02
OPENAI = {"provider": "openai", "model": MODEL, "chunkSize": 64, "chunkOverlap": 8}
DAY = 24 * 3600 * 1000


@pytest.fixture
def server(openai_server):
    return openai_server


def test_embedder_counts_the_servers_tokens_and_waits_out_429s(server):
    waits = []
    info = embedding.find_model("openai", MODEL)
    embedder = OpenAIEmbedder(
        info, base_url=server.base_url, api_key=server.api_key, sleep=waits.append
    )
    server.fail_next(429, times=2, retry_after="1")
    server.fail_next(503)
    vectors, tokens = embedder.embed_counted(["alpha beta gamma", "delta epsilon"])
    assert tokens == 5 == server.tokens_billed
    assert vectors.shape == (2, 64)
    assert waits[:2] == [1.0, 1.0] and len(waits) == 3  # Retry-After, then a backoff
    assert embedder.token_bound(["alpha beta gamma"]) >= 3
    wrong = OpenAIEmbedder(info, base_url=server.base_url, api_key="sk-wrong", sleep=waits.append)
    with pytest.raises(EmbeddingServiceError) as raised:
        wrong.embed_counted(["x"])
    assert raised.value.category == "CREDENTIALS"


def _site_asset(pipeline, site, **budget):
    for path, body in generate_pages(6, links="all", seed=5).items():
        site.put(path, body)
    asset_id = pipeline.create_asset(
        "web", {"urls": [site.url("/")], "maxDepth": 1}, embedding=OPENAI
    )
    if budget:
        pipeline.catalog.update_asset(asset_id, budget=budget)
    return asset_id


def test_ingest_tokens_and_cost_are_the_servers_usage(pipeline, site, server):
    asset_id = _site_asset(pipeline, site)
    outcome = pipeline.run(asset_id)
    operation = pipeline.catalog.get_operation(outcome.operation_id)
    assert operation.token_count == server.tokens_billed > 0
    assert outcome.metadata()["cost_usd"] == pytest.approx(server.tokens_billed * PRICE / 1e6)
    usage = pipeline.catalog.token_usage(asset_id, now_ms())
    assert usage.total == usage.daily == usage.monthly == server.tokens_billed


def test_a_budget_is_never_exceeded_and_raising_it_lets_the_next_refresh_finish(
    pipeline, site, server
):
    full = _site_asset(pipeline, site)
    pipeline.run(full)
    needed = server.tokens_billed
    server.tokens_billed = 0

    budget = needed // 2
    asset_id = _site_asset(pipeline, site, tokenBudget=budget)
    outcome = pipeline.run(asset_id, raise_on_error=False)

    assert not outcome.result.success
    operation = pipeline.catalog.get_operation(outcome.operation_id)
    assert operation.error_category == "BUDGET"
    assert (
        "total token budget" in operation.error_message and "exceeded by" in operation.error_message
    )
    spent = pipeline.catalog.token_usage(asset_id, now_ms()).total
    assert 0 < spent == server.tokens_billed <= budget  # never more than the budget, by zero
    assert pipeline.chunks(asset_id)  # what was embedded stays
    documents = pipeline.documents(asset_id).values()
    assert any(d.status == "FAILED" and "not indexed" in d.error_message for d in documents)

    pipeline.catalog.update_asset(asset_id, budget={"tokenBudget": needed * 10})
    pipeline.run(asset_id)
    assert {d.status for d in pipeline.documents(asset_id).values()} == {"COMPLETED"}
    # What the first run embedded was kept: the whole asset cost what one full ingest costs.
    assert pipeline.catalog.token_usage(asset_id, now_ms()).total == needed


def test_daily_and_monthly_windows_roll_over_at_utc_midnight(pipeline):
    asset_id = pipeline.create_asset("web", {"urls": ["https://example.test/"]})
    catalog = pipeline.catalog
    limits = {"daily": 100, "monthly": 150}
    jan_31 = 1_801_353_600_000  # 2027-01-31T00:00:00Z
    late = jan_31 + DAY - 1  # 23:59:59.999 the same day

    catalog.reserve_tokens(asset_id, 60, now=jan_31, kind="INGEST", limits=limits)
    with pytest.raises(BudgetExceeded, match="daily"):
        catalog.reserve_tokens(asset_id, 41, now=late, kind="INGEST", limits=limits)
    catalog.reserve_tokens(asset_id, 40, now=late, kind="INGEST", limits=limits)  # exactly 100
    feb_1 = jan_31 + DAY
    with pytest.raises(BudgetExceeded, match="daily"):  # a new day: 101 is still over 100
        catalog.reserve_tokens(asset_id, 101, now=feb_1, kind="SEARCH", limits=limits)
    catalog.reserve_tokens(asset_id, 100, now=feb_1, kind="SEARCH", limits=limits)  # new month
    with pytest.raises(BudgetExceeded, match="monthly"):
        catalog.reserve_tokens(asset_id, 51, now=feb_1 + DAY, kind="INGEST", limits=limits)
    usage = catalog.token_usage(asset_id, feb_1)
    assert (usage.total, usage.daily, usage.monthly) == (200, 100, 100)


def test_currency_budgets_convert_with_the_price_and_the_stricter_limit_wins():
    budget = merged_budget(None, {"dailyTokenBudget": 90_000}, {"dailyCostBudget": 0.001})
    assert token_limits(budget, PRICE) == {"daily": 50_000}
    assert token_limits(budget, 0.0) == {"daily": 90_000}  # a free model: tokens only
    assert merged_budget(budget, {"dailyTokenBudget": None}) == {"dailyCostBudget": 0.001}


def test_search_is_429_past_the_budget_and_a_patch_lifts_it(client, server):
    created = client.post(
        "/v1/tenants/acme/assets",
        json={
            "config": {"sourceType": "web", "parameters": {"urls": ["https://example.test/"]}},
            "embedding": OPENAI,
            "budget": {"tokenBudget": 0},
        },
    )
    assert created.status_code == 200, created.text
    asset = created.json()["asset"]
    assert asset["budget"]["tokenBudget"] == 0 and asset["budget"]["pricePerMillionTokens"] == PRICE
    base = f"/v1/tenants/acme/assets/{asset['id']}"
    query = {"query": "owls nest in the archive", "searchMode": "VECTOR"}
    refused = client.post(f"{base}:search", json=query)
    assert refused.status_code == 429, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert "total token budget" in refused.json()["detail"] and server.tokens_billed == 0
    assert (
        client.post(f"{base}:search", json=query | {"searchMode": "FULL_TEXT"}).status_code == 200
    )

    patched = client.patch(base, json={"budget": {"tokenBudget": 1000}})
    assert patched.status_code == 200 and patched.json()["longOperation"] is None
    assert client.post(f"{base}:search", json=query).status_code == 200
    shown = client.get(base).json()["budget"]
    assert shown["totalTokenCount"] == shown["dailyTokensUsed"] == server.tokens_billed == 5
    assert shown["totalCost"] == pytest.approx(5 * PRICE / 1e6)


def test_budgets_are_validated_and_models_are_listed_with_prices(client, server):
    bad = client.patch(
        "/v1/tenants/acme/assets/00000000-0000-0000-0000-000000000000",
        json={"budget": {"tokenBudget": 1}},
    )
    assert bad.status_code == 404
    body = {"config": {"sourceType": "web", "parameters": {"urls": ["https://example.test/"]}}}
    for budget, named in (
        ({"budget": {"tokenBudget": -1}}, "budget.tokenBudget"),
        ({"budget": {"weeklyTokenBudget": 5}}, "budget.weeklyTokenBudget"),
        ({"currencyBudget": {"costBudget": "lots"}}, "currencyBudget.costBudget"),
        ({"budget": 7}, "budget"),
    ):
        response = client.post("/v1/tenants/acme/assets", json=body | budget)
        assert response.status_code == 400, response.text
        assert named in response.json()["detail"]
    models = client.get("/v1/tenants/acme/assets:embeddingModels").json()["items"]
    remote = next(m for m in models if m["provider"] == "openai")
    assert (remote["model"], remote["dimensions"], remote["pricePerMillionTokens"]) == (
        MODEL,
        64,
        PRICE,
    )


def test_a_dry_run_changes_nothing_and_predicts_what_the_refresh_spends(pipeline, site):
    pages = generate_pages(6, links="all", seed=9)
    for path, body in pages.items():
        site.put(path, body)
    asset_id = pipeline.create_asset("web", {"urls": [site.url("/")], "maxDepth": 1})
    pipeline.run(asset_id)
    for path in ("/page-1.html", "/page-2.html"):
        site.put(path, pages[path].replace("</h1>", "</h1><p>Brand new words for owls.</p>", 1))
    site.put("/page-9.html", generate_pages(1, seed=77)["/page-0.html"])
    site.put("/", pages["/"].replace("</body>", '<a href="/page-9.html">new</a></body>'))
    site.remove("/page-5.html")
    before = {k: (d.status, d.content_hash) for k, d in pipeline.documents(asset_id).items()}
    chunks_before = sorted(c["chunk_id"] for c in pipeline.chunks(asset_id))

    dry = pipeline.run(asset_id, dry_run=True)

    report = pipeline.catalog.get_operation(dry.operation_id).dry_run_report
    assert {d["sourceKey"] for d in report["changed"]} >= {
        site.url("/page-1.html"),
        site.url("/page-2.html"),
    }
    assert [d["sourceKey"] for d in report["added"]] == [site.url("/page-9.html")]
    assert [d["sourceKey"] for d in report["removed"]] == [site.url("/page-5.html")]
    assert report["tokens"] > 0 and report["tokensExact"] is True
    after = {k: (d.status, d.content_hash) for k, d in pipeline.documents(asset_id).items()}
    assert after == before
    assert sorted(c["chunk_id"] for c in pipeline.chunks(asset_id)) == chunks_before

    real = pipeline.run(asset_id)
    operation = pipeline.catalog.get_operation(real.operation_id)
    assert operation.token_count == report["tokens"]
    metadata = real.metadata()
    assert metadata["documents_added"] == len(report["added"])
    assert metadata["documents_changed"] == len(report["changed"])
    assert metadata["documents_removed"] == len(report["removed"])


def test_refresh_takes_dry_run_as_a_dry_run_operation(client):
    created = client.post(
        "/v1/tenants/acme/assets",
        json={"config": {"sourceType": "web", "parameters": {"urls": ["https://example.test/"]}}},
    ).json()
    asset_id = created["asset"]["id"]
    operation = client.services.catalog.get_operation(created["longOperation"]["name"])
    client.services.catalog.update_operation(operation.id, final_status="COMPLETED")
    response = client.post(f"/v1/tenants/acme/assets/{asset_id}:refresh", json={"dryRun": True})
    assert response.status_code == 200, response.text
    dry = response.json()["longOperation"]
    assert dry["metadata"]["type"] == "DRY_RUN"
    stored = client.services.catalog.get_operation(dry["name"])
    assert stored.request["dryRun"] is True and stored.type == "DRY_RUN"
    assert (
        client.post(
            f"/v1/tenants/acme/assets/{asset_id}:refresh", json={"dryRun": "maybe"}
        ).status_code
        == 400
    )


def _vector_search(pipeline, asset_id: str, config: dict, query: str) -> list:
    from fruxon_pipelines.search import SearchRequest, search_asset

    model = embedding.find_model(config["provider"], config["model"])
    return search_asset(
        pipeline.vectors,
        tenant="acme",
        asset_id=asset_id,
        embedding_model=model,
        embedder=embedding.get_embedder(model.provider, model.model),
        request=SearchRequest(query=query, mode="VECTOR", top_k=50),
    )


def test_a_model_change_serves_the_old_vectors_until_the_new_ones_are_complete(
    pipeline, site, server
):
    from pipeline import HASH_EMBEDDING

    for path, body in generate_pages(6, links="all", seed=13).items():
        site.put(path, body)
    asset_id = pipeline.create_asset("web", {"urls": [site.url("/")], "maxDepth": 1})
    pipeline.run(asset_id)
    old_key, new_key = "hash/hash-384", f"openai/{MODEL}"
    old_rows = pipeline.vectors.chunk_counts_by_document("acme", asset_id, old_key)
    hits_before = _vector_search(pipeline, asset_id, HASH_EMBEDDING, "the")
    assert hits_before

    spent_on_hash = pipeline.catalog.token_usage(asset_id, now_ms()).total
    # What PATCH does on a model change: the new model for runs, the old one for searches.
    pipeline.catalog.update_asset(
        asset_id, embedding_config=OPENAI, serving_embedding=HASH_EMBEDDING,
        budget={"tokenBudget": spent_on_hash + 2000},
    )  # fmt: skip
    stopped = pipeline.run(asset_id, force=True, raise_on_error=False)
    assert not stopped.result.success  # the budget ran out half-way
    asset = pipeline.catalog.get_asset(asset_id)
    assert asset.serving_embedding == HASH_EMBEDDING
    assert sum(pipeline.vectors.chunk_counts_by_document("acme", asset_id, new_key).values()) > 0
    assert pipeline.vectors.chunk_counts_by_document("acme", asset_id, old_key) == old_rows
    hits_during = _vector_search(pipeline, asset_id, HASH_EMBEDDING, "the")
    assert [h.chunk_id for h in hits_during] == [h.chunk_id for h in hits_before]

    pipeline.catalog.update_asset(asset_id, budget=None)
    finished = pipeline.run(asset_id)
    assert finished.check_results() == {"chunk_counts_match": True, "no_orphan_chunks": True}
    assert pipeline.catalog.get_asset(asset_id).serving_embedding is None
    assert pipeline.vectors.chunk_counts_by_document("acme", asset_id, old_key) == {}
    new_rows = pipeline.vectors.chunk_counts_by_document("acme", asset_id, new_key)
    assert new_rows == old_rows  # the same chunks, every one with the new model's vector
    assert _vector_search(pipeline, asset_id, OPENAI, "the")


# Embedding credentials: an asset's own key, a tenant's LLM config, and neither ever shown.

ASSET_KEY, CONFIG_KEY, ROTATED_KEY = "sk-asset-7f3a9c", "sk-config-51be02", "sk-rotated-c04d17"


def _without_server_key(monkeypatch, server) -> None:
    """The server-wide key is one the endpoint refuses: only an asset's key can work."""
    monkeypatch.setenv("FRUXON_OPENAI_API_KEY", "sk-server-wide-refused")
    get_settings.cache_clear()
    embedding._embedders.clear()
    server.accepted_keys.clear()


def test_an_assets_own_key_and_its_llm_config_embed_and_are_never_shown(
    client, pipeline, site, server, monkeypatch
):
    from fruxon_pipelines.partitions import KNOWLEDGE_ASSET_PARTITIONS

    _without_server_key(monkeypatch, server)
    server.accept(ASSET_KEY, CONFIG_KEY, ROTATED_KEY)
    for path, body in generate_pages(4, links="all", seed=21).items():
        site.put(path, body)
    created = client.post(
        "/v1/tenants/acme/assets",
        json={
            "config": {"sourceType": "web", "parameters": {"urls": [site.url("/")]}},
            "embedding": OPENAI | {"apiKey": ASSET_KEY},
        },
    )
    assert created.status_code == 200, created.text
    asset_id = created.json()["asset"]["id"]
    pipeline.instance.add_dynamic_partitions(KNOWLEDGE_ASSET_PARTITIONS, [asset_id])
    pipeline.run(asset_id)
    assert server.keys_used() and set(server.keys_used()) == {ASSET_KEY}

    base = f"/v1/tenants/acme/assets/{asset_id}"
    query = {"query": "the", "searchMode": "VECTOR"}
    assert client.post(f"{base}:search", json=query).json()["results"]
    assert server.keys_used()[-1] == ASSET_KEY

    made = client.post(
        "/v1/tenants/acme/llmConfigs",
        json={"name": "team key", "provider": "openai", "apiKey": CONFIG_KEY},
    )
    assert made.status_code == 201, made.text
    config = made.json()
    assert set(config) == {"id", "name", "provider", "revision", "createdAt", "modifiedAt"}
    patched = client.patch(base, json={"embeddingLlmConfigId": config["id"]})
    assert patched.status_code == 200, patched.text
    assert patched.json()["longOperation"] is None  # who pays changed, not the vectors
    assert patched.json()["asset"]["embeddingLlmConfigId"] == config["id"]
    assert client.post(f"{base}:search", json=query).status_code == 200
    assert server.keys_used()[-1] == CONFIG_KEY  # the config overrides the asset's own key

    rotated = client.post(
        f"/v1/tenants/acme/llmConfigs/{config['id']}:rotateKey", json={"apiKey": ROTATED_KEY}
    )
    assert rotated.status_code == 200 and rotated.json()["revision"] == 2
    pipeline.run(asset_id, force=True)
    assert server.keys_used()[-1] == ROTATED_KEY  # the next run uses the published revision

    shown = [
        created.text,
        patched.text,
        made.text,
        rotated.text,
        client.get(base).text,
        client.get("/v1/tenants/acme/assets").text,
        client.get("/v1/tenants/acme/llmConfigs").text,
    ]
    written = written_under(pipeline.settings)
    events = dagster_event_text(pipeline.instance)
    assert "Finished execution of run" in events  # the runs' whole event logs
    for key in (ASSET_KEY, CONFIG_KEY, ROTATED_KEY):
        assert not any(key in text for text in shown)
        assert key.encode() not in written
        assert key not in events

    assert client.delete(f"/v1/tenants/acme/llmConfigs/{config['id']}").status_code == 204
    refused = client.post(f"{base}:search", json=query)
    assert refused.status_code == 409 and refused.json()["errorCategory"] == "CREDENTIALS"
    assert client.post(f"{base}:search", json=query | {"searchMode": "FULL_TEXT"}).is_success
    failed = pipeline.run(asset_id, force=True, raise_on_error=False)
    assert not failed.result.success
    operation = pipeline.catalog.get_operation(failed.operation_id)
    assert operation.error_category == "CREDENTIALS"
    assert "no longer exists" in operation.error_message


def test_a_refused_key_fails_the_operation_with_credentials(pipeline, site, server, monkeypatch):
    _without_server_key(monkeypatch, server)
    asset_id = _site_asset(pipeline, site)
    outcome = pipeline.run(asset_id, raise_on_error=False)
    assert not outcome.result.success
    operation = pipeline.catalog.get_operation(outcome.operation_id)
    assert operation.error_category == "CREDENTIALS"
    assert "401" in operation.error_message and "Incorrect API key" in operation.error_message
    assert server.tokens_billed == 0


def test_embedding_credentials_are_validated(client, server):
    from fruxon_pipelines.secretbox import secret_box

    svc = client.services
    others = svc.catalog.create_llm_config(
        tenant="other",
        name="theirs",
        provider="openai",
        sealed_api_key=secret_box(svc.settings).seal("sk-theirs"),
    )
    body = {"config": {"sourceType": "web", "parameters": {"urls": ["https://example.test/"]}}}
    for extra, named in (
        ({"embedding": {"apiKey": "sk-x"}}, "embedding.apiKey"),  # the local model takes none
        ({"embedding": OPENAI | {"apiKey": " "}}, "embedding.apiKey"),
        ({"embedding": OPENAI, "embeddingLLMConfigId": "not-a-uuid"}, "embeddingLLMConfigId"),
        ({"embedding": OPENAI, "embeddingLlmConfigId": others.id}, "embeddingLlmConfigId"),
    ):
        response = client.post("/v1/tenants/acme/assets", json=body | extra)
        assert response.status_code == 400, response.text
        assert named in response.json()["detail"]
    mine = client.post(
        "/v1/tenants/acme/llmConfigs", json={"name": "k", "provider": "openai", "apiKey": "sk-k"}
    ).json()
    local = client.post("/v1/tenants/acme/assets", json=body | {"embeddingLLMConfigId": mine["id"]})
    assert local.status_code == 400 and "for 'openai'" in local.json()["detail"]
    wrong_provider = client.post(
        "/v1/tenants/acme/llmConfigs", json={"name": "k", "provider": "local", "apiKey": "sk-k"}
    )
    assert wrong_provider.status_code == 400
    assert client.get(f"/v1/tenants/acme/llmConfigs/{others.id}").status_code == 404
    assert [c["id"] for c in client.get("/v1/tenants/acme/llmConfigs").json()] == [mine["id"]]
