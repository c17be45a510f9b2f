"""A dry run predicts the refresh it stands for: the same documents added, changed and removed.

Both go through the real graph (a site served on 127.0.0.1, a real Dagster instance, the hash
embedder). The dry run's lists are what its operation reports (`dryRun` in the API); the
refresh's are what its diff stage handed on, and what the catalog shows before and after it.
"""

from __future__ import annotations

from sitegen import generate_pages

NEW_WORDS = "</h1><p>The lighthouse keeper repainted every railing in cobalt.</p>"


def _listed(report_items: list[dict[str, str]]) -> dict[str, str]:
    """source key → document id, of one list of a dry-run report."""
    return {item["sourceKey"]: item["documentId"] for item in report_items}


def _states(documents: dict) -> dict[str, tuple]:
    return {key: (d.id, d.status, d.content_hash, d.version) for key, d in documents.items()}


def _catalog_changes(before: dict, after: dict) -> dict[str, set[str]]:
    """What a refresh did, read from the catalog: documents by source key before and after."""
    return {
        "added": set(after) - set(before),
        "changed": {
            key
            for key in set(before) & set(after)
            if before[key].content_hash != after[key].content_hash
        },
        "removed": set(before) - set(after),
    }


def test_a_dry_run_names_what_the_refresh_then_adds_changes_and_removes(pipeline, site):
    pages = generate_pages(6, links="all", seed=21)
    site.put_pages(pages)
    asset_id = pipeline.create_asset("web", {"urls": [site.url("/")], "maxDepth": 1})
    pipeline.run(asset_id)
    # One page edited, one added (linked from the index, which changes with it), one removed,
    # the rest left as they are.
    site.put("/page-1.html", pages["/page-1.html"].replace("</h1>", NEW_WORDS, 1))
    site.put("/page-9.html", generate_pages(1, seed=99)["/page-0.html"])
    site.put("/", pages["/"].replace("</body>", '<a href="/page-9.html">new</a></body>'))
    site.remove("/page-4.html")
    before = pipeline.documents(asset_id)

    dry = pipeline.run(asset_id, dry_run=True)
    report = pipeline.catalog.get_operation(dry.operation_id).dry_run_report
    assert _states(pipeline.documents(asset_id)) == _states(before)  # a dry run writes nothing

    refresh = pipeline.run(asset_id)
    after = pipeline.documents(asset_id)
    handed_on = refresh.result.output_for_node("document_changes")

    expected = {
        "added": {site.url("/page-9.html")},
        "changed": {site.url("/"), site.url("/page-1.html")},
        "removed": {site.url("/page-4.html")},
    }
    predicted = {kind: set(_listed(report[kind])) for kind in expected}
    done = {
        "added": set(handed_on.added_keys),
        "changed": set(handed_on.changed_keys),
        "removed": set(handed_on.removed_keys),
    }
    assert predicted == done == _catalog_changes(before, after) == expected
    # Document ids too: the ones the catalog has (had, for the removed page) for those keys.
    ids = {key: doc.id for key, doc in (before | after).items()}
    for kind in expected:
        assert _listed(report[kind]) == {key: ids[key] for key in expected[kind]}
    # The counts the refresh reports are the ones the dry run predicted.
    metadata = refresh.metadata()
    predicted_counts = (report["unchanged"], report["failed"])
    counts = (metadata["documents_unchanged"], metadata["documents_failed"])
    assert predicted_counts == counts == (len(pages) - 3, 0)  # all but "/", page-1 and page-4
    assert metadata["documents_added"] == len(report["added"])
    assert metadata["documents_changed"] == len(report["changed"])
    assert metadata["documents_removed"] == len(report["removed"])
    assert pipeline.catalog.get_operation(refresh.operation_id).token_count == report["tokens"]


def test_a_dry_run_counts_a_registered_document_gone_at_the_source_as_the_refresh_does(
    pipeline, site
):
    """An asset of registered documents keeps one its source no longer has, FAILED: the dry
    run must count that failure as the refresh does (it once counted none)."""
    pages = generate_pages(3, links="all", seed=8)
    site.put_pages(pages)
    asset_id = pipeline.create_asset("web", {"urls": [site.url("/")]}, selection="REGISTERED")
    registered = [site.url(f"/page-{i}.html") for i in range(3)]
    pipeline.catalog.register_documents(
        asset_id, [(url, {"source_url": url}) for url in registered]
    )
    pipeline.run(asset_id)
    assert {d.status for d in pipeline.documents(asset_id).values()} == {"COMPLETED"}
    site.put("/page-1.html", pages["/page-1.html"].replace("</h1>", NEW_WORDS, 1))
    site.remove("/page-2.html")

    dry = pipeline.run(asset_id, dry_run=True)
    report = pipeline.catalog.get_operation(dry.operation_id).dry_run_report
    refresh = pipeline.run(asset_id)
    handed_on = refresh.result.output_for_node("document_changes")

    assert set(_listed(report["changed"])) == set(handed_on.changed_keys) == {registered[1]}
    assert report["added"] == report["removed"] == [] == handed_on.removed_keys
    metadata = refresh.metadata()
    predicted_counts = (report["unchanged"], report["failed"])
    counts = (metadata["documents_unchanged"], metadata["documents_failed"])
    assert predicted_counts == counts == (1, 1)  # page-0 unchanged; page-2 failed, kept
    gone = pipeline.documents(asset_id)[registered[2]]
    assert gone.status == "FAILED" and gone.chunk_count == 0
