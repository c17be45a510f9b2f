"""Search modes on a real LanceDB table (hash embedder: fast, deterministic, lexical)."""

import pytest

from fruxon_pipelines.embedding import find_model, get_embedder
from fruxon_pipelines.search import SearchRequest, search_asset
from fruxon_pipelines.vectors import ChunkRow, VectorStore

MODEL = find_model("hash", "hash-384")
TEXTS = [
    "Reset a forgotten password from the account settings page.",
    "The warehouse ships parcels every weekday morning.",
    "Invoices are emailed on the first day of each month.",
    "The zanzibar protocol governs escalations after midnight.",
    "Support agents answer chat requests within five minutes.",
]


def _rows(asset_id: str, texts: list[str], model: str = "hash/hash-384") -> list[ChunkRow]:
    return [
        ChunkRow(
            chunk_id=f"{asset_id}-{i}",
            asset_id=asset_id,
            document_id=f"{asset_id}-doc{i}",
            chunk_index=0,
            content=text,
            content_hash=f"{asset_id}{i}",
            embedding_model=model,
            heading_path="Guide",
            page_number=None,
            start_char=0,
            end_char=len(text),
            start_line=1,
            end_line=1,
            token_count=10,
            source_url=f"https://x.test/{i}",
        )
        for i, text in enumerate(texts)
    ]


@pytest.fixture
def store(tmp_path) -> VectorStore:
    store = VectorStore(str(tmp_path / "lancedb"))
    embedder = get_embedder("hash", "hash-384")
    for tenant, asset, texts in [
        ("acme", "a1", TEXTS),
        ("acme", "a2", ["The zanzibar protocol also exists in asset two."]),
        ("other", "a3", ["The zanzibar protocol in another tenant."]),
    ]:
        rows = _rows(asset, texts)
        store.upsert(tenant, rows, embedder.embed([r.content for r in rows]))
        store.ensure_full_text_index(tenant, MODEL.dimensions)
    return store


def _search(store, query, tenant="acme", asset="a1", **options):
    return search_asset(
        store,
        tenant=tenant,
        asset_id=asset,
        embedding_model=MODEL,
        embedder=get_embedder("hash", "hash-384"),
        request=SearchRequest(query=query, **options),
    )


@pytest.mark.parametrize("mode", ["VECTOR", "FULL_TEXT", "HYBRID"])
def test_each_mode_ranks_the_relevant_chunk_first(store, mode):
    hits = _search(store, "forgotten password reset", mode=mode)
    assert hits[0].content.startswith("Reset a forgotten password")
    assert all(0.0 <= h.score <= 1.0 for h in hits)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_hybrid_and_full_text_normalise_the_best_hit_to_one(store):
    assert _search(store, "zanzibar", mode="HYBRID")[0].score == 1.0
    assert _search(store, "zanzibar", mode="FULL_TEXT")[0].score == 1.0


def test_weights_steer_the_fusion(store):
    text_only = _search(store, "zanzibar parcels", mode="HYBRID", vector_weight=0, fts_weight=1)
    fts = _search(store, "zanzibar parcels", mode="FULL_TEXT")
    assert [h.chunk_id for h in text_only] == [h.chunk_id for h in fts]


def test_threshold_and_top_k(store):
    assert len(_search(store, "the", mode="VECTOR", top_k=2)) == 2
    strict = _search(store, "zanzibar", mode="HYBRID", score_threshold=0.99)
    assert [h.chunk_id for h in strict] == ["a1-3"]


def test_other_assets_and_tenants_are_never_returned(store):
    for mode in ("VECTOR", "FULL_TEXT", "HYBRID"):
        assert {h.asset_id for h in _search(store, "zanzibar protocol", mode=mode)} == {"a1"}
    assert _search(store, "zanzibar", tenant="nobody") == []


def test_a_different_model_is_not_mixed_in(store):
    embedder = get_embedder("hash", "hash-384")
    rows = _rows("a1", ["zanzibar written by another model"], model="other/model")
    rows[0].chunk_id = "foreign"
    store.upsert("acme", rows, embedder.embed([rows[0].content]))
    assert all(h.chunk_id != "foreign" for h in _search(store, "zanzibar", mode="VECTOR"))


@pytest.mark.parametrize("query", ['"unbalanced', "a AND OR", "+-*:()", "ünïcødé 漢字", "!!!", " "])
def test_tricky_queries_never_raise(store, query):
    for mode in ("VECTOR", "FULL_TEXT", "HYBRID"):
        _search(store, query, mode=mode)
