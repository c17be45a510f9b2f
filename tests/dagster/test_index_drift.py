"""The catalog and LanceDB disagreeing: the asset checks find it, a full refresh repairs it.

Drift is what an interrupted delete or a lost write leaves behind: chunks of a document the
catalog no longer has, and a document with fewer chunks in the index than the catalog records.
"""

from __future__ import annotations

from sitegen import generate_pages

PASSING = {"chunk_counts_match": True, "no_orphan_chunks": True}


def _index(pipeline, asset_id: str) -> set[tuple]:
    return {
        (r["chunk_id"], r["document_id"], r["chunk_index"], r["content_hash"])
        for r in pipeline.chunks(asset_id)
    }


def test_drift_is_found_by_the_checks_and_a_full_refresh_repairs_it(pipeline, site):
    site.put_pages(generate_pages(4, links="all", seed=11))
    asset_id = pipeline.create_asset("web", {"urls": [site.url("/")], "maxDepth": 1})
    assert pipeline.run(asset_id).check_results() == PASSING
    assert pipeline.run_checks(asset_id) == PASSING
    clean = _index(pipeline, asset_id)
    documents = pipeline.documents(asset_id)

    # A page deleted upstream whose delete reached the catalog but not the index …
    deleted = documents[site.url("/page-0.html")]
    site.remove("/page-0.html")
    pipeline.catalog.delete_documents([deleted.id])
    # … and a document that lost its first chunk from the index.
    damaged = documents[site.url("/page-1.html")]
    assert damaged.chunk_count > 1
    tenant = pipeline.catalog.get_asset(asset_id).tenant
    for table in pipeline.vectors._tenant_tables(tenant):
        table.delete(f"document_id = '{damaged.id}' AND chunk_index = 0")

    assert pipeline.run_checks(asset_id) == {"chunk_counts_match": False, "no_orphan_chunks": False}

    repaired = pipeline.run(asset_id)
    assert repaired.check_results() == PASSING
    assert pipeline.run_checks(asset_id) == PASSING
    # Exactly the clean index without the deleted page: same chunk ids, nothing duplicated.
    expected = {row for row in clean if row[1] != deleted.id}
    assert _index(pipeline, asset_id) == expected
    rows = pipeline.chunks(asset_id)
    assert len(rows) == len(expected)
    after = pipeline.documents(asset_id)
    assert after[site.url("/page-1.html")].status == "COMPLETED"
    assert site.url("/page-0.html") not in after


def test_an_unchanged_refresh_of_a_consistent_index_reads_nothing_again(pipeline, site):
    """The repair costs nothing when there is nothing to repair: validators are still sent."""
    site.put_pages(generate_pages(3, links="all", seed=5))
    asset_id = pipeline.create_asset("web", {"urls": [site.url("/")], "maxDepth": 1})
    pipeline.run(asset_id)
    again = pipeline.run(asset_id).metadata()
    assert again["documents_indexed"] == 0 and again["tokens_embedded"] == 0
