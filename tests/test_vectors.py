"""LanceDB tables per tenant and width: upserts by chunk id, deletes across widths."""

import numpy as np

from fruxon_pipelines.vectors import ChunkRow, VectorStore


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


def test_upsert_twice_keeps_one_row_per_chunk(tmp_path):
    store = VectorStore(str(tmp_path))
    rows = [_row("c1"), _row("c2")]
    store.upsert("acme", rows, np.ones((2, 8), np.float32))
    store.upsert("acme", rows, np.zeros((2, 8), np.float32))
    assert store.chunk_counts_by_document("acme", "a1") == {"d1": 2}
    assert store.table_name("acme", 8) != store.table_name("other", 8)


def test_a_model_change_of_width_leaves_no_rows_in_the_old_table(tmp_path):
    store = VectorStore(str(tmp_path))
    store.upsert("acme", [_row("c1"), _row("x", document_id="d2")], np.ones((2, 8), np.float32))
    store.upsert("acme", [_row("c1")], np.ones((1, 4), np.float32))

    store.delete_documents_of_other_widths("acme", 4, ["d1"])

    assert store.chunk_counts_by_document("acme", "a1") == {"d1": 1, "d2": 1}


def test_a_tenant_named_like_another_tenants_table_does_not_break_it(tmp_path):
    store = VectorStore(str(tmp_path))
    store.upsert("acme", [_row("c1")], np.ones((1, 8), np.float32))
    store.upsert("acme__d1", [_row("c2")], np.ones((1, 8), np.float32))

    assert store.chunk_counts_by_document("acme", "a1") == {"d1": 1}
    store.delete_asset("acme", "a1")
    assert store.chunk_counts_by_document("acme__d1", "a1") == {"d1": 1}
