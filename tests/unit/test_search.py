"""Search modes on a real LanceDB table (hash embedder: fast, deterministic, lexical)."""

from dataclasses import asdict, replace

import pytest

from fruxon_pipelines.embedding import find_model, get_embedder
from fruxon_pipelines.search import SearchHit, SearchRequest, search_asset
from fruxon_pipelines.vectors import ChunkRow, VectorStore

MODEL = find_model("hash", "hash-384")
TEXTS = [
    "Reset a forgotten password from the account settings page.",
    "The warehouse ships parcels every weekday morning.",
    "Invoices are emailed on the first day of each month.",
    "The zanzibar protocol governs escalations after midnight.",
    "Support agents answer chat requests within five minutes.",
]
# Short questions that share the query's (stop) words, and one long chunk that holds the rare word
# once: the hash embedder ranks the long chunk last, BM25 finds nothing else.
FAQ = [
    "Where is the invoice for my order?",
    "Where is the parcel I ordered last week?",
    "Where is the nearest store that is open on Sunday?",
    "Where is the refund for the returned jacket?",
    "Where is the setting that changes the language?",
    "Where is the receipt for the gift card?",
    "Where is the tracking number of the shipment?",
    "Where is the warranty for the coffee machine?",
]
RARE = (
    "Our geology club met in the old library hall on a rainy Thursday evening. Members brought "
    "rocks from the summer trip, compared notes on cleavage and lustre, and one visitor showed a "
    "tiny blue crystal of quetzalcoatlite found in a mine dump near Tombstone, Arizona. "
    "Afterwards everyone shared tea and planned the next field outing to the quarry."
)
RARE_QUERY = "where is the quetzalcoatlite"
MODES = ("VECTOR", "FULL_TEXT", "HYBRID")


def _rows(
    asset_id: str, texts: list[str], model: str = "hash/hash-384", prefix: str = ""
) -> list[ChunkRow]:
    return [
        ChunkRow(
            chunk_id=f"{prefix}{asset_id}-{i}",
            asset_id=asset_id,
            document_id=f"{prefix}{asset_id}-doc{i}",
            chunk_index=i,
            content=text,
            content_hash=f"{asset_id}{i}",
            embedding_model=model,
            heading_path=f"Guide > Part {i}",
            page_number=i + 1 if i % 2 else None,
            start_char=10 * i,
            end_char=10 * i + len(text),
            start_line=i + 1,
            end_line=i + 2,
            token_count=len(text.split()),
            source_url=f"https://x.test/{asset_id}/{i}",
        )
        for i, text in enumerate(texts)
    ]


def _put(store: VectorStore, tenant: str, rows: list[ChunkRow], index: bool = True) -> None:
    store.upsert(tenant, rows, get_embedder("hash", "hash-384").embed([r.content for r in rows]))
    if index:
        store.ensure_full_text_index(tenant, MODEL.dimensions)


@pytest.fixture
def store(tmp_path) -> VectorStore:
    store = VectorStore(str(tmp_path / "lancedb"))
    _put(store, "acme", _rows("a1", TEXTS))
    _put(store, "acme", _rows("a2", ["The zanzibar protocol also exists in asset two."]))
    _put(store, "acme", _rows("faq", [*FAQ, RARE]))
    # Another tenant, even with the same asset id, lives in its own table.
    _put(store, "other", _rows("a1", ["The zanzibar protocol in another tenant."], prefix="x-"))
    _put(store, "other", _rows("a3", ["Zanzibar once more, asset three."]))
    return store


def _search(store, query, tenant="acme", asset="a1", **options) -> list[SearchHit]:
    return search_asset(
        store,
        tenant=tenant,
        asset_id=asset,
        embedding_model=MODEL,
        embedder=get_embedder("hash", "hash-384"),
        request=SearchRequest(query=query, **options),
    )


def _ids(hits: list[SearchHit]) -> list[str]:
    return [h.chunk_id for h in hits]


@pytest.mark.parametrize("mode", MODES)
def test_each_mode_ranks_the_relevant_chunk_first(store, mode):
    hits = _search(store, "forgotten password reset", mode=mode)
    assert hits[0].content.startswith("Reset a forgotten password")
    assert all(0.0 <= h.score <= 1.0 for h in hits)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_the_default_mode_is_hybrid(store):
    assert SearchRequest(query="x").mode == "HYBRID"
    assert _search(store, "zanzibar parcels") == _search(store, "zanzibar parcels", mode="HYBRID")


def test_a_hit_carries_the_stored_chunk(store):
    hit = _search(store, "invoices emailed first day", mode="VECTOR")[0]
    row = _rows("a1", TEXTS)[2]
    # The document's title and date are for filters; a hit's title comes from the catalog.
    stored_only = ("content_hash", "embedding_model", "title", "modified_at")
    expected = {k: v for k, v in asdict(row).items() if k not in stored_only}
    assert {k: v for k, v in asdict(hit).items() if k != "score"} == expected


def test_vector_scores_are_cosine_similarities(store):
    for query in ("zanzibar protocol", "completely unrelated words", RARE_QUERY):
        hits = _search(store, query, asset="faq", mode="VECTOR", top_k=50)
        assert len(hits) == len(FAQ) + 1
        assert all(0.0 <= h.score <= 1.0 for h in hits)
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    # The same text embeds to the same vector: similarity 1, not merely "the best of the lot".
    exact = _search(store, TEXTS[1], mode="VECTOR")[0]
    assert exact.chunk_id == "a1-1" and exact.score == pytest.approx(1.0, abs=1e-5)
    assert _search(store, "parcels", mode="VECTOR")[0].score < 0.9


def test_hybrid_and_full_text_normalise_the_best_hit_to_one(store):
    assert _search(store, "zanzibar", mode="HYBRID")[0].score == 1.0
    assert _search(store, "zanzibar", mode="FULL_TEXT")[0].score == 1.0
    assert _search(store, "parcels weekday", mode="HYBRID")[0].score == 1.0


def test_a_rare_word_is_found_by_full_text_and_survives_fusion(store):
    vector = _ids(_search(store, RARE_QUERY, asset="faq", mode="VECTOR", top_k=50))
    assert vector.index("faq-8") >= 3  # the vector leg ranks it low (last, in fact)
    assert _ids(_search(store, RARE_QUERY, asset="faq", mode="FULL_TEXT")) == ["faq-8"]
    hybrid = _search(store, RARE_QUERY, asset="faq", mode="HYBRID", top_k=3)
    assert len(hybrid) == 3 and "faq-8" in _ids(hybrid)


def test_weights_steer_the_fusion(store):
    text_only = _search(store, "zanzibar parcels", mode="HYBRID", vector_weight=0, fts_weight=1)
    fts = _search(store, "zanzibar parcels", mode="FULL_TEXT")
    assert _ids(text_only) == _ids(fts)

    options = {"asset": "faq", "top_k": 50}
    vector_only = _search(
        store, RARE_QUERY, mode="HYBRID", vector_weight=1, fts_weight=0, **options
    )
    assert _ids(vector_only) == _ids(_search(store, RARE_QUERY, mode="VECTOR", **options))
    assert vector_only[0].chunk_id != "faq-8"
    leaning = _search(
        store, RARE_QUERY, mode="HYBRID", vector_weight=0.1, fts_weight=0.9, **options
    )
    assert leaning[0].chunk_id == "faq-8"


def test_hybrid_scores_are_weighted_reciprocal_rank_fusion(store):
    query, weights, k = "zanzibar protocol parcels ships", (0.3, 0.7), 5
    vector = _ids(_search(store, query, mode="VECTOR", top_k=50))
    text = _ids(_search(store, query, mode="FULL_TEXT", top_k=50))
    assert text and vector
    expected: dict[str, float] = {}
    for weight, leg in zip(weights, (vector, text), strict=True):
        for rank, chunk_id in enumerate(leg, start=1):
            expected[chunk_id] = expected.get(chunk_id, 0.0) + weight / (k + rank)
    best = max(expected.values())
    hybrid = _search(
        store,
        query,
        mode="HYBRID",
        top_k=50,
        vector_weight=weights[0],
        fts_weight=weights[1],
        rrf_k=k,
    )
    assert {h.chunk_id: h.score for h in hybrid} == pytest.approx(
        {c: s / best for c, s in expected.items()}, abs=1e-5
    )
    assert [h.score for h in hybrid] == sorted((h.score for h in hybrid), reverse=True)


def test_degenerate_fusion_parameters_do_not_fail(store):
    equal = _search(store, "zanzibar parcels")
    assert _search(store, "zanzibar parcels", vector_weight=0, fts_weight=0) == equal
    assert _search(store, "zanzibar parcels", rrf_k=0)[0].score == 1.0
    assert _search(store, "zanzibar parcels", rrf_k=-5)[0].score == 1.0


def test_threshold_and_top_k(store):
    assert len(_search(store, "the", mode="VECTOR", top_k=2)) == 2
    assert len(_search(store, "the", mode="VECTOR", top_k=100)) == len(TEXTS)
    assert _search(store, "the", mode="VECTOR", top_k=0) == []
    strict = _search(store, "zanzibar", mode="HYBRID", score_threshold=0.99)
    assert _ids(strict) == ["a1-3"]
    for mode in MODES:
        everything = _search(store, "zanzibar parcels ships", mode=mode, top_k=100)
        kept = _search(store, "zanzibar parcels ships", mode=mode, top_k=100, score_threshold=0.5)
        # The threshold filters the ranked list; it does not re-normalise or re-rank it.
        assert kept == [h for h in everything if h.score >= 0.5]
        assert _search(store, "zanzibar parcels ships", mode=mode, top_k=1) == everything[:1]
    assert _search(store, "zanzibar", mode="VECTOR", score_threshold=1.0) == []


def test_other_assets_and_tenants_are_never_returned(store):
    for mode in MODES:
        hits = _search(store, "zanzibar protocol", mode=mode, top_k=100)
        assert {h.asset_id for h in hits} == {"a1"}
        assert not any(h.chunk_id.startswith("x-") for h in hits)
        other = _search(store, "zanzibar protocol", tenant="other", mode=mode, top_k=100)
        assert _ids(other) == ["x-a1-0"]
        assert _ids(_search(store, "zanzibar", tenant="other", asset="a2", mode=mode)) == []
    assert _search(store, "zanzibar", tenant="nobody") == []
    assert _search(store, "zanzibar", asset="no-such-asset") == []


def test_a_different_model_is_not_mixed_in(store):
    rows = _rows("a1", ["zanzibar written by another model"], model="other/model")
    rows[0] = replace(rows[0], chunk_id="foreign")
    _put(store, "acme", rows, index=False)
    assert all(h.chunk_id != "foreign" for h in _search(store, "zanzibar", mode="VECTOR"))
    assert "foreign" not in _ids(_search(store, "zanzibar written", mode="VECTOR", top_k=100))


def test_deleted_documents_are_not_found(store):
    store.delete_documents("acme", ["a1-doc3"])
    for mode in MODES:
        assert "a1-3" not in _ids(_search(store, "zanzibar protocol", mode=mode, top_k=100))


def test_before_the_full_text_index_exists_hybrid_carries_on_with_vectors(tmp_path):
    store = VectorStore(str(tmp_path / "lancedb"))
    _put(store, "acme", _rows("a1", TEXTS), index=False)
    assert _search(store, "zanzibar", mode="FULL_TEXT") == []
    hybrid = _search(store, "zanzibar protocol", mode="HYBRID")
    assert hybrid[0].chunk_id == "a1-3" and hybrid[0].score == 1.0
    assert _ids(hybrid) == _ids(_search(store, "zanzibar protocol", mode="VECTOR"))


def test_rows_added_after_the_index_are_searchable(store):
    _put(store, "acme", _rows("a1", ["A late paragraph about marzipan."], prefix="late-"), False)
    assert _ids(_search(store, "marzipan", mode="FULL_TEXT")) == ["late-a1-0"]


def test_an_empty_table_or_query_gives_nothing(tmp_path, store):
    empty = VectorStore(str(tmp_path / "empty"))
    for mode in MODES:
        assert _search(empty, "zanzibar", mode=mode) == []
        assert _search(store, "", mode=mode) == []
        assert _search(store, "  \n\t ", mode=mode) == []


@pytest.mark.parametrize(
    "query",
    [
        '"unbalanced',
        '"password"',
        "a AND OR",
        "NOT",
        "+-*:()",
        "content:password",
        "pass* AND ~2 ^3",
        "[1 TO 2] {x}",
        "back\\slash / 'quote' `tick`",
        "ünïcødé 漢字 emoji 🙂",
        "café brûlée",
        "nul\x00byte",
        "!!!",
        " ",
        "word " * 2000,
    ],
)
def test_tricky_queries_never_raise(store, query):
    for mode in MODES:
        hits = _search(store, query, mode=mode)
        assert all(isinstance(h, SearchHit) and 0.0 <= h.score <= 1.0 for h in hits)


def test_punctuation_does_not_hide_the_words(store):
    assert _ids(_search(store, '"forgotten password"', mode="FULL_TEXT"))[0] == "a1-0"
    assert _ids(_search(store, "(zanzibar) AND:", mode="FULL_TEXT")) == ["a1-3"]


def test_a_forked_child_runs_search_legs_on_a_pool_of_its_own():
    import os

    from fruxon_pipelines import search

    assert search._in_background(lambda: 1).result(timeout=10) == 1  # the parent's pool exists
    pid = os.fork()
    if pid == 0:  # the child: the parent's pool threads are not here
        try:
            ok = search._in_background(lambda: 42).result(timeout=10) == 42
        except Exception:
            ok = False
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
