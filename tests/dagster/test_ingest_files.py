"""File knowledge assets: every supported type ingested from a committed fixture."""

from __future__ import annotations

import shutil

import pytest
from conftest import FIXTURES
from pipeline import HASH_EMBEDDING, Pipeline
from sitegen import generate_pages

from fruxon_pipelines.embedding.catalogue import MODELS


def _file_asset(pipeline: Pipeline, name: str, embedding: dict | None = None) -> str:
    target = pipeline.settings.files_dir / "uploads" / name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(FIXTURES / name, target)
    parameters = {"path": f"uploads/{name}", "fileName": name}
    return pipeline.create_asset("file", parameters, embedding=embedding)


@pytest.mark.parametrize(
    "name",
    ["sample.pdf", "sample.docx", "sample.html", "sample.md", "sample.txt", "sample.csv"],
)
def test_each_file_type_is_ingested(pipeline, name):
    asset_id = _file_asset(pipeline, name)

    outcome = pipeline.run(asset_id)

    [document] = pipeline.documents(asset_id).values()
    assert document.status == "COMPLETED", document.error_message
    assert document.chunk_count > 0
    assert document.file_name == name
    assert outcome.check_results() == {"chunk_counts_match": True, "no_orphan_chunks": True}


def test_a_run_is_tagged_with_its_asset_and_links_each_stage_to_its_operation(pipeline):
    asset_id = _file_asset(pipeline, "sample.md")
    pipeline.catalog.update_asset(asset_id, name="Release notes")

    outcome = pipeline.run(asset_id)

    run = pipeline.instance.get_run_by_id(outcome.result.run_id)
    assert run.tags["fruxon/asset_name"] == "Release notes"
    assert run.tags["fruxon/tenant"] == "acme"
    assert run.tags["dagster/partition"] == asset_id  # partition keys stay the asset ids
    api = pipeline.settings.api_base_url  # FRUXON_PUBLIC_URL, else the API host and port
    expected = f"{api}/v1/tenants/acme/operations/{outcome.operation_id}"
    for stage in ("fetched_documents", "document_changes", "document_chunks", "vector_index"):
        assert outcome.metadata(stage)["operation"] == expected, stage


def test_pdf_chunks_carry_page_numbers(pipeline):
    small_chunks = {**HASH_EMBEDDING, "chunkSize": 24, "chunkOverlap": 0}
    asset_id = _file_asset(pipeline, "sample.pdf", small_chunks)
    pipeline.run(asset_id)
    pages = {c["page_number"] for c in pipeline.chunks(asset_id, ["page_number"])}
    assert {1, 2} <= pages


def test_unchanged_file_is_not_reparsed_or_reembedded(pipeline):
    asset_id = _file_asset(pipeline, "sample.md")
    pipeline.run(asset_id)

    outcome = pipeline.run(asset_id)

    metadata = outcome.metadata()
    assert metadata["documents_unchanged"] == 1
    assert metadata["tokens_embedded"] == 0
    assert outcome.metadata("document_chunks")["documents_parsed"] == 0


def test_corrupt_file_ends_as_a_failed_document_not_a_crashed_run(pipeline):
    asset_id = _file_asset(pipeline, "corrupt.pdf")

    outcome = pipeline.run(asset_id)

    assert outcome.result.success
    [document] = pipeline.documents(asset_id).values()
    assert document.status == "FAILED"
    assert document.error_message
    assert document.chunk_count == 0


PARSE_ARGS = (MODELS[0], 254, 32)


def _fetched_records(names: list[str]) -> list:
    from fruxon_pipelines.ingest.manifests import FetchedRecord
    from fruxon_pipelines.parsing import content_type_for

    return [
        FetchedRecord(
            source_key=f"{i}-{name}",
            document_id=str(i),
            status="fetched",
            file_name=name,
            content_type=content_type_for(name),
            staged_path=str(FIXTURES / name),
        )
        for i, name in enumerate(names)
    ]


def test_parse_workers_give_what_one_process_gives_and_keep_failures_per_document():
    from fruxon_pipelines.parsing.workers import PARALLEL_PARSE_MIN_DOCUMENTS, chunk_records

    names = ["sample.html", "sample.md", "sample.txt", "sample.csv", "sample.docx", "corrupt.pdf"]
    names = (names * 2)[: max(PARALLEL_PARSE_MIN_DOCUMENTS, 8)]
    records = _fetched_records(names)
    args = PARSE_ARGS
    pooled = list(chunk_records(records, *args, workers=2))
    one_by_one = [list(chunk_records([record], *args))[0] for record in records]
    assert [r.source_key for r, _, _ in pooled] == [r.source_key for r in records]
    assert [(c, m) for _, c, m in pooled] == [(c, m) for _, c, m in one_by_one]
    failed = [r.file_name for r, chunked, message in pooled if chunked is None]
    assert failed == ["corrupt.pdf"] * names.count("corrupt.pdf")
    assert all(m for _, c, m in pooled if c is None)
    assert all(c.chunks and c.paragraphs for r, c, _ in pooled if r.file_name != "corrupt.pdf")


# Run in a child interpreter so that a deadlock fails the test instead of hanging the suite.
LOCK_HELD_AT_POOL_START = """
import sys, threading
from pathlib import Path
from fruxon_pipelines.ingest.manifests import FetchedRecord
from fruxon_pipelines.embedding.catalogue import MODELS
from fruxon_pipelines.parsing import partitioning
from fruxon_pipelines.parsing.workers import PARALLEL_PARSE_MIN_DOCUMENTS, chunk_records

fixture = Path(sys.argv[1])
records = [
    FetchedRecord(source_key=str(i), document_id=str(i), status="fetched",
                  file_name=fixture.name, content_type="text/csv", staged_path=str(fixture))
    for i in range(PARALLEL_PARSE_MIN_DOCUMENTS)
]
held, release = threading.Event(), threading.Event()

def prepare_unstructured_elsewhere():
    with partitioning._unstructured_lock:
        held.set()
        release.wait()

threading.Thread(target=prepare_unstructured_elsewhere, daemon=True).start()
held.wait()
results = list(chunk_records(records, MODELS[0], 254, 32, workers=2))
release.set()
assert all(chunked and chunked.chunks for _, chunked, _ in results), results
print("parsed", len(results))
"""


def test_parse_workers_do_not_inherit_a_lock_another_thread_holds():
    """A run's process has threads; a worker forked from it would inherit, held for good, any
    lock one of them held at that moment. Here a thread holds the lock that guards
    unstructured's set-up while the pool starts: forked workers wait on it forever, workers
    from the fork server parse."""
    import os
    import signal
    import subprocess
    import sys

    # A session of its own: on a deadlock, the child and its workers are killed as one group
    # (a worker left behind would hold the output pipes open).
    child = subprocess.Popen(
        [sys.executable, "-c", LOCK_HELD_AT_POOL_START, str(FIXTURES / "sample.csv")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = child.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.communicate()
        pytest.fail("the parse workers never finished: they inherited the held lock")
    assert child.returncode == 0, err[-2000:]
    assert "parsed 8" in out


INTERRUPTED_MID_PARSE = """
import json, multiprocessing, os, signal, sys, threading, time
from pathlib import Path
from fruxon_pipelines.ingest.manifests import FetchedRecord
from fruxon_pipelines.embedding.catalogue import MODELS
from fruxon_pipelines.parsing.workers import (
    PARALLEL_PARSE_MIN_DOCUMENTS, chunk_records, parse_and_chunk,
)

page = Path(sys.argv[1])
records = [
    FetchedRecord(source_key=str(i), document_id=str(i), status="fetched", file_name=page.name,
                  content_type="text/html", staged_path=str(page))
    for i in range(PARALLEL_PARSE_MIN_DOCUMENTS)
]
args = (MODELS[0], 254, 32)
parse_and_chunk(records[0], *args)  # the parsers imported: what follows times only the parse
started = time.perf_counter()
parse_and_chunk(records[0], *args)
one_document = time.perf_counter() - started

sent = {}
def interrupt():  # what Dagster's termination does to a run's main thread
    time.sleep(1.5)
    sent["at"] = time.perf_counter()
    os.kill(os.getpid(), signal.SIGINT)

threading.Thread(target=interrupt).start()
try:
    list(chunk_records(records, *args, workers=2))
    latency = None
except KeyboardInterrupt:
    latency = time.perf_counter() - sent["at"]
print(json.dumps({"one_document": one_document, "latency": latency,
                  "workers_left": len(multiprocessing.active_children())}))
"""


def test_an_interrupted_chunk_stage_stops_its_parse_workers_at_once(tmp_path):
    """A cancelled run interrupts its main thread. The pool's own shutdown would then wait for
    every queued document to be parsed (for ever, if one never ends); instead the workers are
    killed, and the interrupt goes on within a fraction of one document's parse."""
    import json
    import subprocess
    import sys

    sections = "".join(
        f"<h2>Section {i}</h2><p>Harbour {i} opens at dawn for the ships of the bay.</p>"
        for i in range(30_000)
    )
    page = tmp_path / "big.html"
    page.write_text(f"<html><body>{sections}</body></html>")
    child = subprocess.run(
        [sys.executable, "-c", INTERRUPTED_MID_PARSE, str(page)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert child.returncode == 0, child.stderr[-2000:]
    outcome = json.loads(child.stdout.strip().splitlines()[-1])
    assert outcome["latency"] is not None, "the parse ended before the interrupt"
    assert outcome["latency"] < outcome["one_document"], outcome
    assert outcome["workers_left"] == 0


def _slow_page(sections: int = 100_000) -> str:
    """A real page that takes over half a minute to parse (trafilatura and lxml on 100,000
    sections; 30,000 take about 5 s), where the sample pages take a fraction of a second."""
    body = "".join(
        f"<h2>Section {i}</h2><p>Harbour {i} opens at dawn for the ships of the bay.</p>"
        for i in range(sections)
    )
    return f"<html><body>{body}</body></html>"


def _with_page_at(tmp_path, index: int, html: str, count: int) -> list:
    """``count`` records of the sample page with ``html`` at ``index`` (source key "page")."""
    from dataclasses import replace

    page = tmp_path / "page.html"
    page.write_text(html)
    records = _fetched_records(["sample.html"] * (count - 1))
    records.insert(index, replace(records[0], source_key="page", staged_path=str(page)))
    return records


@pytest.mark.parametrize("workers", [1, 2])
def test_a_parse_worker_killed_mid_document_fails_only_what_it_was_parsing(tmp_path, workers):
    """SIGKILL (what the kernel sends a worker out of memory) to the workers while the fourth
    document parses. One worker: that document was its doing, and fails with the reason. Two:
    either worker's document may have done it, so the fourth is parsed again alone, and
    indexed. The documents after it are parsed by a new pool either way."""
    import multiprocessing
    import signal

    from fruxon_pipelines.parsing.workers import chunk_records

    sections = 100_000 if workers == 1 else 30_000
    records = _with_page_at(tmp_path, 3, _slow_page(sections), count=8)
    results, killed = [], []
    for result in chunk_records(records, MODELS[0], 254, 32, workers=workers, timeout=600):
        results.append(result)
        if len(results) == 3:  # the fourth is being parsed now
            killed = multiprocessing.active_children()
            for worker in killed:
                worker.kill()

    # (the pool may end a second worker itself, once the first is gone)
    assert any(worker.exitcode == -signal.SIGKILL for worker in killed)
    assert [record.source_key for record, _, _ in results] == [r.source_key for r in records]
    failed = {record.source_key: why for record, chunked, why in results if chunked is None}
    if workers == 1:
        assert failed == {"page": "its parse worker died (out of memory, or a crash in the parser)"}
    else:
        assert failed == {}
    assert all(chunked.chunks for _, chunked, _ in results if chunked is not None)
    assert multiprocessing.active_children() == []


def test_a_document_that_parses_past_the_deadline_fails_alone_and_the_rest_are_kept(tmp_path):
    """Two workers, a 10 s deadline: the slow page fails with the reason and its worker is
    killed; the other worker had meanwhile parsed the pages behind it, and what it finished
    is kept (not parsed again, not lost with the pool); the records' order is kept."""
    import multiprocessing

    from fruxon_pipelines.parsing.workers import PARALLEL_PARSE_MIN_DOCUMENTS, chunk_records

    records = _with_page_at(tmp_path, 3, _slow_page(), count=PARALLEL_PARSE_MIN_DOCUMENTS)

    results = list(chunk_records(records, MODELS[0], 254, 32, workers=2, timeout=10))

    assert [record.source_key for record, _, _ in results] == [r.source_key for r in records]
    failed = {record.source_key: why for record, chunked, why in results if chunked is None}
    assert failed == {"page": "parsing took longer than 10 s"}
    assert all(chunked.chunks for _, chunked, _ in results if chunked is not None)
    assert multiprocessing.active_children() == []


def test_a_crawl_with_a_page_that_parses_past_the_deadline_indexes_the_rest(
    settings, instance, site
):
    """The chunk stage with FRUXON_PARSE_TIMEOUT_SECONDS=10 and a crawl of five pages (one
    worker): the slow page is FAILED with the reason, the pages behind it are parsed by a new
    worker and indexed, and the run succeeds."""
    site.put_pages(generate_pages(3, links="all", seed=5))
    site.put("/slow.html", _slow_page())
    paths = ["/slow.html", "/page-0.html", "/page-1.html", "/page-2.html"]
    links = "".join(f'<p><a href="{path}">The harbour guide, {path}</a></p>' for path in paths)
    site.put("/", f"<html><body><h1>Harbour guides</h1>{links}</body></html>")
    pipeline = Pipeline(settings.model_copy(update={"parse_timeout_seconds": 10}), instance)
    asset_id = pipeline.create_asset("web", {"urls": [site.url("/")], "maxDepth": 1})

    outcome = pipeline.run(asset_id)

    assert outcome.result.success
    documents = pipeline.documents(asset_id)
    assert documents[site.url("/slow.html")].status == "FAILED"
    assert documents[site.url("/slow.html")].error_message == "parsing took longer than 10 s"
    others = {url: d.status for url, d in documents.items() if url != site.url("/slow.html")}
    assert len(others) == 4 and set(others.values()) == {"COMPLETED"}, others


def test_parse_workers_chunk_for_a_model_their_fork_server_never_configured():
    """The fork server outlives the configuration it started with (here: a model the OpenAI
    endpoint serves, configured afterwards); workers are handed the catalogue entry, so they
    chunk for it instead of failing every document as an unknown model."""
    from dataclasses import replace

    from fruxon_pipelines.embedding.catalogue import find_model
    from fruxon_pipelines.parsing.workers import chunk_records

    records = _fetched_records(["sample.html", "sample.md"])
    list(chunk_records(records, MODELS[0], 254, 32, workers=1, timeout=60))  # server started
    remote = replace(MODELS[0], provider="openai", model="configured-after-the-fork-server")
    with pytest.raises(ValueError, match="unknown embedding model"):
        find_model(remote.provider, remote.model)

    results = list(chunk_records(records, remote, 254, 32, workers=1, timeout=60))

    assert [why for _, _, why in results] == [None, None]
    assert all(chunked.chunks for _, chunked, _ in results)
