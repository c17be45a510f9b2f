"""The ingestion graph on a generated web site, materialized through a real Dagster instance.

Pipeline logic only: the deterministic hash embedder stands in for the model here (the
end-to-end tests run the real one).
"""

from __future__ import annotations

import time

from sitegen import generate_pages, sitemap_xml


def _publish(site, pages: dict[str, str]) -> None:
    for path, body in pages.items():
        site.put(path, body)


def _sitemap(site, urls: list[str], changed: str | None = None) -> None:
    """/sitemap.xml listing ``urls``, each last modified long ago but ``changed``, just now."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 5))
    stamps = dict.fromkeys(urls, "2024-01-01") | ({changed: now} if changed else {})
    site.put("/sitemap.xml", sitemap_xml(urls, stamps), "application/xml")


def _web(site, **extra) -> dict:
    return {"urls": [site.url("/")], "maxDepth": 3, **extra}


def test_full_ingest_indexes_every_page_and_checks_pass(pipeline, site):
    _publish(site, generate_pages(8, links="tree"))
    asset_id = pipeline.create_asset("web", _web(site, maxDepth=4))

    outcome = pipeline.run(asset_id)

    documents = pipeline.documents(asset_id)
    assert len(documents) == 9  # index + 8 pages
    assert {d.status for d in documents.values()} == {"COMPLETED"}
    chunks = pipeline.chunks(asset_id)
    assert len(chunks) == sum(d.chunk_count for d in documents.values()) > 9
    assert len({c["chunk_id"] for c in chunks}) == len(chunks)
    metadata = outcome.metadata()
    assert metadata["documents_added"] == 9
    assert metadata["tokens_embedded"] > 0
    assert outcome.check_results() == {"chunk_counts_match": True, "no_orphan_chunks": True}
    operation = pipeline.catalog.get_operation(outcome.operation_id)
    assert operation.items_processed == operation.items_total == 9
    assert operation.token_count == metadata["tokens_embedded"]
    # Main content only: navigation, footer and scripts never reach the index.
    text = " ".join(c["content"] for c in chunks)
    for furniture in ("window.analytics", "All rights reserved", "Skip to content"):
        assert furniture not in text
    assert "Example Corp knowledge base" in text


def test_unchanged_site_refresh_is_all_304_and_embeds_nothing(pipeline, site):
    _publish(site, generate_pages(5, links="chain"))
    asset_id = pipeline.create_asset("web", _web(site, maxDepth=10))
    pipeline.run(asset_id)
    before = {c["chunk_id"] for c in pipeline.chunks(asset_id)}
    site.clear_log()

    outcome = pipeline.run(asset_id)

    statuses = [status for method, _, status, _ in site.requests if method == "GET"]
    assert statuses and set(statuses) <= {304, 404}  # robots.txt may be absent
    metadata = outcome.metadata()
    assert metadata["tokens_embedded"] == 0
    assert metadata["documents_unchanged"] == 6
    assert pipeline.catalog.get_operation(outcome.operation_id).token_count == 0
    assert {c["chunk_id"] for c in pipeline.chunks(asset_id)} == before


def test_a_sitemap_lastmod_before_the_last_run_skips_the_page_without_a_request(pipeline, site):
    """The catalog's memory of when each page was last read (the operation that read or
    confirmed it) against the sitemap's <lastmod>: only the page changed since is requested."""
    pages = generate_pages(5, links="chain")
    _publish(site, pages)
    urls = [site.url(path) for path in pages if path != "/"]  # maxDepth 0: no link followed

    _sitemap(site, urls)
    asset_id = pipeline.create_asset("web", {"urls": [site.url("/sitemap.xml")]})
    pipeline.run(asset_id)
    site.clear_log()
    unchanged = pipeline.run(asset_id)
    assert site.requested_paths() == ["/sitemap.xml"]  # not one page: all older than the run
    assert unchanged.metadata()["documents_unchanged"] == len(urls)

    edited = urls[2]
    site.put("/page-2.html", pages["/page-2.html"].replace("</h1>", "</h1><p>Tide table.</p>"))
    _sitemap(site, urls, changed=edited)
    site.clear_log()
    outcome = pipeline.run(asset_id)
    assert site.requested_paths() == ["/sitemap.xml", "/page-2.html"]
    assert outcome.metadata()["documents_changed"] == 1
    assert any("Tide table." in c["content"] for c in pipeline.chunks(asset_id))


def test_one_page_edit_reembeds_only_that_pages_changed_chunks(pipeline, site):
    pages = generate_pages(4, links="all")
    _publish(site, pages)
    asset_id = pipeline.create_asset("web", _web(site))
    pipeline.run(asset_id)
    before = {c["chunk_id"]: c for c in pipeline.chunks(asset_id)}
    edited_url = site.url("/page-2.html")
    edited = next(d for d in pipeline.documents(asset_id).values() if d.source_url == edited_url)
    page_chunks_before = [c for c in before.values() if c["document_id"] == edited.id]
    assert len(page_chunks_before) >= 3

    new_paragraph = "<p>Breaking: the lighthouse keeper repainted every railing in cobalt.</p>"
    site.put("/page-2.html", pages["/page-2.html"].replace("</h1>", "</h1>" + new_paragraph, 1))
    outcome = pipeline.run(asset_id)

    metadata = outcome.metadata()
    assert metadata["documents_changed"] == 1
    assert metadata["documents_unchanged"] == len(pages) - 1
    after = {c["chunk_id"]: c for c in pipeline.chunks(asset_id)}
    new_ids = set(after) - set(before)
    assert new_ids, "the edit must produce new chunks"
    assert {after[i]["document_id"] for i in new_ids} == {edited.id}
    # Only the changed chunks were embedded, not the whole page.
    assert 0 < metadata["chunks_embedded"] == len(new_ids) < len(page_chunks_before)
    assert any("cobalt" in after[i]["content"] for i in new_ids)
    # Chunks of other pages were not touched.
    others = {i for i, c in before.items() if c["document_id"] != edited.id}
    assert others <= set(after)
    assert outcome.check_results() == {"chunk_counts_match": True, "no_orphan_chunks": True}


def test_upstream_removal_deletes_exactly_that_documents_chunks(pipeline, site):
    _publish(site, generate_pages(4, links="all"))
    asset_id = pipeline.create_asset("web", _web(site))
    pipeline.run(asset_id)
    before = pipeline.chunks(asset_id)
    removed = next(
        d for d in pipeline.documents(asset_id).values() if d.source_url.endswith("/page-3.html")
    )

    site.remove("/page-3.html")
    outcome = pipeline.run(asset_id)

    assert outcome.metadata()["documents_removed"] == 1
    after = pipeline.chunks(asset_id)
    expected = [c for c in before if c["document_id"] != removed.id]
    assert sorted(c["chunk_id"] for c in after) == sorted(c["chunk_id"] for c in expected)
    assert removed.source_key not in pipeline.documents(asset_id)


def test_mass_deletion_guard_fails_the_run_and_deletes_nothing(pipeline, site):
    pages = generate_pages(6, links="all")
    _publish(site, pages)
    asset_id = pipeline.create_asset("web", _web(site))
    pipeline.run(asset_id)
    before = pipeline.chunks(asset_id)
    for path in list(pages)[2:]:
        site.remove(path)

    outcome = pipeline.run(asset_id, raise_on_error=False)

    assert not outcome.result.success
    failure = next(e for e in outcome.result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "shrank by more than half" in failure.event_specific_data.error.message
    assert len(pipeline.chunks(asset_id)) == len(before)
    assert len(pipeline.documents(asset_id)) == len(pages)

    pipeline.run(asset_id, allow_mass_deletion=True)
    assert len(pipeline.documents(asset_id)) == 2


def test_refresh_of_one_document_fetches_only_it(pipeline, site):
    _publish(site, generate_pages(4, links="all"))
    asset_id = pipeline.create_asset("web", _web(site))
    pipeline.run(asset_id)
    target = next(
        d for d in pipeline.documents(asset_id).values() if d.source_url.endswith("/page-1.html")
    )
    site.clear_log()

    pipeline.run(asset_id, document_ids=[target.id], force=True)

    fetched = {path for method, path, _, _ in site.requests if method == "GET"}
    assert fetched - {"/robots.txt"} == {"/page-1.html"}


def test_robots_disallow_gives_a_failed_document_with_the_reason(pipeline, site):
    _publish(site, generate_pages(3, links="all"))
    site.set_robots("User-agent: *\nDisallow: /page-2.html\n")
    asset_id = pipeline.create_asset("web", _web(site))

    outcome = pipeline.run(asset_id)

    assert outcome.result.success
    blocked = next(d for d in pipeline.documents(asset_id).values() if "page-2" in d.source_key)
    assert blocked.status == "FAILED"
    assert "robots.txt" in blocked.error_message
    assert blocked.chunk_count == 0
    assert all(path != "/page-2.html" for _, path, _, _ in site.requests)


def test_rerun_and_force_never_duplicate_chunks(pipeline, site):
    _publish(site, generate_pages(3, links="all"))
    asset_id = pipeline.create_asset("web", _web(site))
    pipeline.run(asset_id)
    first = sorted(c["chunk_id"] for c in pipeline.chunks(asset_id))

    outcome = pipeline.run(asset_id, force=True)

    assert outcome.metadata()["chunks_reused"] == 0  # force re-embeds everything
    assert sorted(c["chunk_id"] for c in pipeline.chunks(asset_id)) == first
    assert outcome.check_results() == {"chunk_counts_match": True, "no_orphan_chunks": True}


def test_a_source_of_several_windows_streams_through_the_embed_stage(pipeline, site):
    """More documents than one window of the embed stage (ingest/embed.py WINDOW_DOCUMENTS):
    chunked documents pass through a spool file that the run removes, batches are committed
    in groups (far fewer table versions than batches), text repeated in a later window is
    embedded once, forced or not, and an edit to a page of the second window is merged."""
    from fruxon_pipelines.ingest.embed import WINDOW_DOCUMENTS

    pages = generate_pages(WINDOW_DOCUMENTS + 100, links="chain")
    last = f"/page-{WINDOW_DOCUMENTS + 99}.html"
    pages[last] = pages["/page-0.html"]  # the same text, a window later
    _publish(site, pages)
    urls = [site.url(path) for path in pages if path != "/"]

    _sitemap(site, urls)
    asset_id = pipeline.create_asset("web", {"urls": [site.url("/sitemap.xml")]})
    outcome = pipeline.run(asset_id)

    chunks = pipeline.chunks(asset_id)
    distinct = len({c["content_hash"] for c in chunks})
    metadata = outcome.metadata()
    assert metadata["documents_indexed"] == len(urls)
    assert metadata["chunks"] == len(chunks) > distinct  # the copied page's chunks
    assert metadata["chunks_embedded"] == distinct
    assert outcome.check_results() == {"chunk_counts_match": True, "no_orphan_chunks": True}
    batches = -(-distinct // pipeline.settings.embed_batch_size)
    table = pipeline.vectors._existing_table("acme", 384)
    assert len(table.list_versions()) < batches / 4, (len(table.list_versions()), batches)
    staged = [p for p in pipeline.settings.staging_dir.rglob("*") if p.is_file()]
    assert not staged, "the spool or fetched bytes stay"

    forced = pipeline.run(asset_id, force=True).metadata()
    assert forced["chunks_embedded"] == distinct
    assert forced["chunks_reused"] == len(chunks) - distinct

    edited = f"/page-{WINDOW_DOCUMENTS + 50}.html"
    site.put(edited, pages[edited].replace("</h1>", "</h1><p>Slack water at noon.</p>"))
    _sitemap(site, urls, changed=site.url(edited))
    refresh = pipeline.run(asset_id)
    assert refresh.metadata()["documents_changed"] == 1
    assert refresh.check_results() == {"chunk_counts_match": True, "no_orphan_chunks": True}
    after = pipeline.chunks(asset_id)
    assert len({c["chunk_id"] for c in after}) == len(after)
    assert any("Slack water at noon." in c["content"] for c in after)


def _recorded_embedder_calls(monkeypatch, during_call=None) -> list[list[str]]:
    """The hash embedder's calls, each as its texts, as the run makes them; ``during_call``
    is called with the calls so far inside each."""
    from fruxon_pipelines.embedding.hashing import HashEmbedder

    calls: list[list[str]] = []
    embed = HashEmbedder.embed

    def recorded(self, texts):
        calls.append(list(texts))
        if during_call is not None:
            during_call(calls)
        return embed(self, texts)

    monkeypatch.setattr(HashEmbedder, "embed", recorded)
    return calls


def _cancel_held_by_the_embed_stage(monkeypatch, asked: list[bool]) -> None:
    """``persisted_before_cancel`` with a cancel that is asked once ``asked`` holds a value:
    honoured, as Dagster's signal is, when the held block ends."""
    import contextlib

    import dagster as dg

    import fruxon_pipelines.assets.embed as embed_asset

    @contextlib.contextmanager
    def held_like_a_signal():
        yield
        if asked:
            raise dg.DagsterExecutionInterruptedError()

    monkeypatch.setattr(embed_asset, "persisted_before_cancel", held_like_a_signal)


def test_embedder_calls_group_texts_of_similar_length(pipeline, site, monkeypatch):
    """Each embedder call is one batch of texts of similar length (ordered by token count
    across SORTED_CALLS calls), so it is padded little; rows are handed over per call."""
    from fruxon_pipelines.embedding.tokenizer import get_tokenizer
    from fruxon_pipelines.ingest.embed import SORTED_CALLS

    calls = _recorded_embedder_calls(monkeypatch)
    _publish(site, generate_pages(60, links="all", seed=3))
    asset_id = pipeline.create_asset("web", _web(site, maxDepth=1))
    outcome = pipeline.run(asset_id)

    size = pipeline.settings.embed_batch_size
    tokens = [get_tokenizer().count(texts) for texts in calls]
    assert len(calls) > SORTED_CALLS, "more than one group of calls"
    assert all(len(texts) == size for texts in calls[:-1])
    groups = [sum(tokens[i : i + SORTED_CALLS], []) for i in range(0, len(calls), SORTED_CALLS)]
    assert all(group == sorted(group) for group in groups), "a group's calls by length"
    # Document order is not already by length: the test would see an unsorted pipeline.
    chunks = pipeline.chunks(asset_id)
    in_order = get_tokenizer().count([c["content"] for c in chunks][: size * SORTED_CALLS])
    assert in_order != sorted(in_order)
    assert outcome.metadata()["chunks_embedded"] == sum(map(len, calls))
    assert outcome.check_results() == {"chunk_counts_match": True, "no_orphan_chunks": True}


def test_a_cancel_during_a_group_s_calls_stops_after_the_group_with_its_documents_done(
    pipeline, site, monkeypatch
):
    """A document's rows spread over its group's calls (texts ordered by length), so the
    cancel is held until the whole group is handed over: the documents the group covered
    finish, and no call of the next group is made."""
    from fruxon_pipelines.ingest.embed import SORTED_CALLS

    asked: list[bool] = []
    _cancel_held_by_the_embed_stage(monkeypatch, asked)

    def asked_in_the_second_call(calls: list[list[str]]) -> None:
        if len(calls) == 2:
            asked.append(True)

    calls = _recorded_embedder_calls(monkeypatch, asked_in_the_second_call)
    _publish(site, generate_pages(60, links="all", seed=3))
    asset_id = pipeline.create_asset("web", _web(site, maxDepth=1))
    outcome = pipeline.run(asset_id, raise_on_error=False)

    assert not outcome.result.success
    assert len(calls) == SORTED_CALLS, "the group's calls, and none after"
    documents = list(pipeline.documents(asset_id).values())
    done = [d for d in documents if d.status == "COMPLETED"]
    assert done and len(done) < len(documents)
    by_document: dict[str, int] = {}
    for chunk in pipeline.chunks(asset_id):
        by_document[chunk["document_id"]] = by_document.get(chunk["document_id"], 0) + 1
    assert all(by_document.get(d.id) == d.chunk_count > 0 for d in done)


def test_a_full_refresh_clears_what_earlier_runs_left_staged(pipeline, site):
    """A failed run's staged bytes stay for its re-execution from failure; the next full
    refresh fetches afresh and clears them, for an asset of registered documents as for one
    that ingests everything its source lists (it once kept them for good)."""
    _publish(site, generate_pages(2, links="all", seed=4))
    for selection in ("ALL", "REGISTERED"):
        asset_id = pipeline.create_asset("web", _web(site, maxDepth=1), selection=selection)
        if selection == "REGISTERED":
            url = site.url("/page-0.html")
            pipeline.catalog.register_documents(asset_id, [(url, {"source_url": url})])
        left_over = pipeline.settings.staging_dir / asset_id / "staged-by-a-failed-run"
        left_over.parent.mkdir(parents=True)
        left_over.write_bytes(b"fetched bytes")

        pipeline.run(asset_id)

        assert not left_over.exists(), selection
        assert {d.status for d in pipeline.documents(asset_id).values()} == {"COMPLETED"}


def _indexed(pipeline, asset_id: str) -> list[tuple[str, int, str]]:
    """(source key, chunk index, content hash) of every chunk of the asset, duplicates kept."""
    key_of = {d.id: key for key, d in pipeline.documents(asset_id).items()}
    return sorted(
        (key_of[c["document_id"]], c["chunk_index"], c["content_hash"])
        for c in pipeline.chunks(asset_id)
    )


def test_a_budget_spent_in_the_middle_of_a_group_keeps_what_it_paid_for(
    pipeline, site, monkeypatch
):
    """A document's rows spread over its group's calls, so a budget spent in the group's
    fourth call leaves documents partly written: their rows stay (paid for), their documents
    are FAILED until the next refresh, which reuses those rows and pays only for the rest.
    After it the index is exactly the full ingest's."""
    from fruxon_pipelines.catalog.models import now_ms
    from fruxon_pipelines.embedding.tokenizer import get_tokenizer
    from fruxon_pipelines.ingest.embed import SORTED_CALLS

    _publish(site, generate_pages(60, links="all", seed=3))
    calls = _recorded_embedder_calls(monkeypatch)
    reference = pipeline.create_asset("web", _web(site, maxDepth=1))
    pipeline.run(reference)
    needed = pipeline.catalog.token_usage(reference, now_ms()).total
    assert len(calls) > SORTED_CALLS
    count = get_tokenizer().count
    first_three = sum(sum(count(texts)) for texts in calls[:3])
    fourth = count(calls[3])
    assert len(fourth) > 2
    budget = first_three + sum(fourth[:2])  # two texts of the fourth call fit, not the third

    calls.clear()
    asset_id = pipeline.create_asset("web", _web(site, maxDepth=1))
    pipeline.catalog.update_asset(asset_id, budget={"tokenBudget": budget})
    outcome = pipeline.run(asset_id, raise_on_error=False)

    assert not outcome.result.success
    assert pipeline.catalog.get_operation(outcome.operation_id).error_category == "BUDGET"
    assert pipeline.catalog.token_usage(asset_id, now_ms()).total == budget
    assert len(calls) == 3 + 2, "three calls, then the fourth's texts one by one until one fails"
    documents = pipeline.documents(asset_id).values()
    failed = {d.id for d in documents if d.status == "FAILED"}
    assert all("not indexed: " in d.error_message for d in documents if d.id in failed)
    written = {c["document_id"] for c in pipeline.chunks(asset_id)}
    assert failed & written, "a document partly written when the budget ran out"
    assert set(_indexed(pipeline, asset_id)) <= set(_indexed(pipeline, reference))

    pipeline.catalog.update_asset(asset_id, budget={"tokenBudget": needed * 10})
    outcome = pipeline.run(asset_id)
    assert {d.status for d in pipeline.documents(asset_id).values()} == {"COMPLETED"}
    assert pipeline.catalog.token_usage(asset_id, now_ms()).total == needed  # none paid twice
    assert _indexed(pipeline, asset_id) == _indexed(pipeline, reference)
    assert outcome.check_results() == {"chunk_counts_match": True, "no_orphan_chunks": True}


def test_with_a_remote_endpoint_a_cancel_waits_for_one_call_only(pipeline, site, openai_server,
                                                                   monkeypatch):  # fmt: skip
    """A remote endpoint pads nothing on our side and one of its calls can take a minute with
    retries: a cancel is held for one call, not a group."""
    from conftest import OPENAI_MODEL

    _cancel_held_by_the_embed_stage(monkeypatch, asked=[True])  # asked before the first call
    _publish(site, generate_pages(60, links="all", seed=3))
    embedding = {"provider": "openai", "model": OPENAI_MODEL, "chunkSize": 64, "chunkOverlap": 8}
    asset_id = pipeline.create_asset("web", _web(site, maxDepth=1), embedding=embedding)
    outcome = pipeline.run(asset_id, raise_on_error=False)

    assert not outcome.result.success
    assert len(openai_server.requests) == 1
