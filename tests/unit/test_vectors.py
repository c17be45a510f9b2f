"""LanceDB tables per tenant and width: upserts by chunk id, deletes across widths."""

from dataclasses import replace

import numpy as np

from fruxon_pipelines.vectors import ChunkRow, DocumentFields, VectorStore


def _row(chunk_id: str, document_id: str = "d1", asset_id: str = "a1") -> ChunkRow:
    return ChunkRow(
        chunk_id=chunk_id,
        asset_id=asset_id,
        document_id=document_id,
        chunk_index=0,
        content="text",
        content_hash=chunk_id,
        embedding_model="m/m",
        heading_path="",
        page_number=None,
        start_char=0,
        end_char=4,
        start_line=1,
        end_line=1,
        token_count=1,
        source_url=None,
    )


def _one_chunk_documents(count: int, seed: int) -> tuple[list[ChunkRow], np.ndarray]:
    """``count`` documents of one chunk each, with random unit vectors of width 16."""
    matrix = np.random.default_rng(seed).normal(size=(count, 16)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    return [_row(f"c{i}", document_id=f"d{i}") for i in range(count)], matrix


def test_upsert_twice_keeps_one_row_per_chunk(tmp_path):
    store = VectorStore(str(tmp_path))
    rows = [_row("c1"), _row("c2")]
    store.upsert("acme", rows, np.ones((2, 8), np.float32))
    store.upsert("acme", rows, np.zeros((2, 8), np.float32))
    assert store.chunk_counts_by_document("acme", "a1") == {"d1": 2}
    assert store.table_name("acme", 8) != store.table_name("other", 8)


def test_a_finished_model_change_leaves_no_rows_of_other_models(tmp_path):
    store = VectorStore(str(tmp_path))
    store.upsert("acme", [_row("c1"), _row("x", document_id="d2")], np.ones((2, 8), np.float32))
    new = replace(_row("n1"), embedding_model="openai/other")
    store.upsert("acme", [new], np.ones((1, 4), np.float32))

    assert store.chunk_counts_by_document("acme", "a1", "openai/other") == {"d1": 1}
    store.delete_other_models("acme", "a1", "openai/other")

    assert store.chunk_counts_by_document("acme", "a1") == {"d1": 1}


def test_a_tenant_named_like_another_tenants_table_does_not_break_it(tmp_path):
    store = VectorStore(str(tmp_path))
    store.upsert("acme", [_row("c1")], np.ones((1, 8), np.float32))
    store.upsert("acme__d1", [_row("c2")], np.ones((1, 8), np.float32))

    assert store.chunk_counts_by_document("acme", "a1") == {"d1": 1}
    store.delete_asset("acme", "a1")
    assert store.chunk_counts_by_document("acme__d1", "a1") == {"d1": 1}


def test_past_the_threshold_a_vector_index_is_built_and_new_rows_are_folded_in(
    tmp_path, monkeypatch
):
    import fruxon_pipelines.vectors as vectors_module

    monkeypatch.setattr(vectors_module, "VECTOR_INDEX_MIN_ROWS", 600)
    store = VectorStore(str(tmp_path))
    rows, matrix = _one_chunk_documents(1000, seed=3)

    store.upsert("acme", rows[:500], matrix[:500])
    store.ensure_indices("acme", 16)
    table = store._existing_table("acme", 16)
    # 500 rows: a flat scan, pre-filtered through bitmaps of the scope's columns
    assert {(i.index_type, tuple(i.columns)) for i in table.list_indices()} == {
        ("FTS", ("content",)),
        ("Bitmap", ("asset_id",)),
        ("Bitmap", ("embedding_model",)),
    }

    store.upsert("acme", rows[500:700], matrix[500:700])
    store.ensure_indices("acme", 16)
    kinds = {i.index_type for i in table.list_indices()}
    assert kinds == {"FTS", "Bitmap", "IvfHnswSq"}
    vector_index = next(i for i in table.list_indices() if i.index_type == "IvfHnswSq")
    assert table.index_stats(vector_index.name).num_unindexed_rows == 0

    # 300 more rows are 30 % of the table, past the 10 % share: optimize() folds them in.
    store.upsert("acme", rows[700:], matrix[700:])
    assert table.index_stats(vector_index.name).num_unindexed_rows == 300
    store.ensure_indices("acme", 16)
    assert table.index_stats(vector_index.name).num_unindexed_rows == 0

    # The index answers: each of these rows finds itself first.
    for i in (3, 650, 999):
        hits = store.vector_search("acme", store.scope("a1"), matrix[i], 5)
        assert hits[0]["chunk_id"] == f"c{i}"


def test_many_small_upserts_are_compacted_and_still_found(tmp_path, monkeypatch):
    import fruxon_pipelines.vectors as vectors_module

    monkeypatch.setattr(vectors_module, "SMALL_FRAGMENTS_LIMIT", 8)
    store = VectorStore(str(tmp_path))
    rows, matrix = _one_chunk_documents(40, seed=5)
    for start in range(0, 8, 4):  # two commits: under the limit, nothing to compact
        store.upsert("acme", rows[start : start + 4], matrix[start : start + 4])
    store.ensure_indices("acme", 16)
    table = store._existing_table("acme", 16)
    assert table.stats()["fragment_stats"]["num_fragments"] == 2

    for start in range(8, 40, 4):  # eight more, ten in all: past the limit
        store.upsert("acme", rows[start : start + 4], matrix[start : start + 4])
    store.ensure_indices("acme", 16)
    # Lance compacts the rows its indexes covered apart from those they did not: two at most
    assert table.stats()["fragment_stats"]["num_fragments"] <= 2
    for index in table.list_indices():
        assert table.index_stats(index.name).num_unindexed_rows == 0, index.name
    for i in (0, 21, 39):
        assert (
            store.vector_search("acme", store.scope("a1"), matrix[i], 3)[0]["chunk_id"] == f"c{i}"
        )


def test_document_fields_are_rewritten_only_where_they_differ_and_none_keeps_them(tmp_path):
    store = VectorStore(str(tmp_path))
    rows = [
        _row("c1", document_id="d1"),  # stored without title or date, as before they existed
        _row("c2", document_id="d1"),
        _row("c3", document_id="d2"),
        _row("c4", document_id="d3", asset_id="a2"),  # another asset: out of reach
    ]
    vectors = np.eye(4, 16, dtype=np.float32)
    store.upsert("acme", rows, vectors)
    table = store._existing_table("acme", 16)

    fields = {
        "d1": DocumentFields("Guide", 1_700_000_000_000),
        "d2": DocumentFields(None, None, indexed_at=42),  # the source tells no time
        "d3": DocumentFields("Other", 5),
    }
    assert store.refresh_document_fields("acme", "a1", fields) == 3
    stored = {r["chunk_id"]: r for r in table.to_arrow().to_pylist()}
    assert [(stored[c]["title"], stored[c]["modified_at"]) for c in ("c1", "c2")] == [
        ("Guide", 1_700_000_000_000)
    ] * 2
    # a row without a time gets when it was indexed; the other asset is out of reach
    assert (stored["c3"]["title"], stored["c3"]["modified_at"]) == (None, 42)
    assert (stored["c4"]["title"], stored["c4"]["modified_at"]) == (None, None)
    assert np.array_equal(np.array(stored["c1"]["vector"], np.float32), vectors[0])
    assert store.vector_search("acme", store.scope("a1"), vectors[1], 1)[0]["chunk_id"] == "c2"

    # the same again, or None for both, writes nothing: no new table version
    version = table.version
    assert store.refresh_document_fields("acme", "a1", {"d1": DocumentFields("Guide", None)}) == 0
    assert store.refresh_document_fields("acme", "a1", {"d2": DocumentFields(None, None, 7)}) == 0
    assert table.version == version
