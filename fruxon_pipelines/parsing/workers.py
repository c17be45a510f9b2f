"""Parsing and chunking of fetched documents, in the run's process or in parse workers.

Parsing is CPU-bound Python (trafilatura, unstructured), one document at a time per process.
With many documents and more than one CPU, documents are parsed in a pool of worker processes,
one per CPU: on 2 cores this halves the chunk stage, which is most of what an ingest spends
besides embedding (bench/bench_sync.py). Results keep the listing's order.

The workers are forked from a fork server, never from the run's process. That process has
threads (LanceDB's runtime, onnxruntime's pool, Dagster's log and heartbeat threads, the test
suite's HTTP servers), and a child forked from it inherits every lock one of them held at that
moment, held for good: the child waits on it forever, and so does the run (CI hung on it). The
fork server is a fresh single-threaded process that has imported this module and nothing of
Dagster's, so a worker still starts in the time of a fork.

This module stays light for that reason: no Dagster, no parsers at import.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.context import BaseContext
from pathlib import Path

from fruxon_pipelines.chunking import chunk_elements
from fruxon_pipelines.embedding import EmbeddingModel, tokenizer_for
from fruxon_pipelines.embedding.local import default_threads
from fruxon_pipelines.ingest.manifests import ChunkedDocument, FetchedRecord
from fruxon_pipelines.parsing.document import parse_document

# Below this many documents a pool costs more (starting workers, pickling chunks back) than it
# saves.
PARALLEL_PARSE_MIN_DOCUMENTS = 8
# Documents handed to each parse worker ahead of the one the stage waits for: enough that a
# worker never idles between documents, few enough that finished ones do not pile up.
SUBMITTED_AHEAD_PER_WORKER = 4


def parse_and_chunk(
    record: FetchedRecord, model: EmbeddingModel, size: int, overlap: int
) -> tuple[ChunkedDocument | None, str | None]:
    """(the document's chunks and paragraphs, None), or (None, why) for a document that cannot
    be parsed: one bad document never fails the run. Runs in a parse worker or in the run's
    own process."""
    try:
        data = Path(record.staged_path).read_bytes()
        elements = parse_document(
            data, record.content_type, file_name=record.file_name, url=record.source_url
        )
        tokenizer = tokenizer_for(model)
        chunks = chunk_elements(elements, tokenizer, chunk_size=size, chunk_overlap=overlap)
        paragraphs = [e.text.strip() for e in elements if e.text.strip()]
        return ChunkedDocument(record=record, chunks=chunks, paragraphs=paragraphs), None
    except Exception as error:
        return None, str(error) or type(error).__name__


def parse_worker_context() -> BaseContext:
    """Where parse workers come from: a fork server that has imported only this module."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    # __main__ as by default: a main started from a script path (Dagster's console script, in
    # a Kubernetes run pod) is then imported once, in the server, not again in every worker.
    context.set_forkserver_preload(["__main__", __name__])
    return context


def chunk_records(
    records: Sequence[FetchedRecord],
    model: EmbeddingModel,
    size: int,
    overlap: int,
    workers: int | None = None,
    timeout: float | None = None,
) -> Iterator[tuple[FetchedRecord, ChunkedDocument | None, str | None]]:
    """Each record with its chunks (or None and why), in the records' order. ``workers``
    defaults to one per CPU this process may use.

    With a ``timeout`` (seconds), every document is parsed in a worker, so that one whose
    parse outlives it can be given up on: its worker is killed and the document fails with
    the reason, the others are parsed. Without one, a few documents are parsed in this
    process (a pool costs more than it saves for them), and a parser that never returns
    holds the run."""
    if not records:
        return
    workers = min(workers or default_threads(), len(records))
    args = (model, size, overlap)
    if len(records) < PARALLEL_PARSE_MIN_DOCUMENTS:
        workers = 1
    if timeout is None and workers < 2:
        for record in records:
            yield record, *parse_and_chunk(record, *args)
        return
    yield from _chunk_in_workers(records, args, workers, timeout)


def _chunk_in_workers(
    records: Sequence[FetchedRecord], args: tuple, workers: int, timeout: float | None
) -> Iterator[tuple[FetchedRecord, ChunkedDocument | None, str | None]]:
    """chunk_records in a pool of parse workers.

    Results are taken in the records' order, so the wait for a document starts when the one
    before it is done, by which time it is being parsed: a wait past ``timeout`` is that
    document's own parse (plus, for a pool's first, its worker's start). A worker that dies
    (killed for its memory, or crashed in a parser) breaks its pool; with one worker that was
    the waited-for document's doing, with several it is parsed again alone to find out.
    Either way the pool is stopped, what it had finished is kept, the document fails with the
    reason, and a new pool parses the rest."""
    finished: dict[int, tuple[ChunkedDocument | None, str | None]] = {}
    start = 0
    alone: int | None = None
    while start < len(records):
        todo = (
            [alone]
            if alone is not None
            else [i for i in range(start, len(records)) if i not in finished]
        )
        alone = None
        size = max(1, min(workers, len(todo)))
        pool = ProcessPoolExecutor(max_workers=size, mp_context=parse_worker_context())
        try:
            # Submitted a few ahead of the one waited for, not all at once: a finished result
            # waits in memory only until it is taken, so the parent never holds a source.
            queue, queued = iter(todo), set(todo)
            futures: dict[int, Future] = {}
            for i in range(start, len(records)):
                if i in finished:
                    yield records[i], *finished.pop(i)
                    continue
                if i not in queued:  # the one document parsed alone is done: a new pool
                    start = i
                    pool.shutdown()
                    break
                try:
                    # A pool broken by a worker's death refuses new documents too.
                    while len(futures) < SUBMITTED_AHEAD_PER_WORKER * size:
                        j = next(queue, None)
                        if j is None:
                            break
                        futures[j] = pool.submit(parse_and_chunk, records[j], *args)
                    result = futures.pop(i).result(timeout=timeout)
                except (FutureTimeout, BrokenProcessPool) as error:
                    _stop_workers(pool)
                    finished |= _done_after(futures, i - 1)
                    if i in finished:  # it was parsed before the pool broke: go on from it
                        start = i
                        break
                    if isinstance(error, BrokenProcessPool) and size > 1:
                        start = alone = i
                        break
                    yield records[i], None, _lost_because(error, timeout)
                    start = i + 1
                    break
                yield records[i], *result
            else:
                start = len(records)
                pool.shutdown()
        except BaseException:
            # Cancelled, interrupted or failed: what is still being parsed is of no use, and
            # waiting for it (as the pool's own shutdown does) would hold a cancelled run for
            # as long as its slowest document takes, or for ever.
            _stop_workers(pool)
            raise


def _done_after(
    futures: dict[int, Future], index: int
) -> dict[int, tuple[ChunkedDocument | None, str | None]]:
    """The results a stopped pool had finished for the documents after ``index``."""
    return {
        j: future.result()
        for j, future in futures.items()
        if j > index and future.done() and not future.cancelled() and future.exception() is None
    }


def _lost_because(error: BaseException, timeout: float | None) -> str:
    if isinstance(error, BrokenProcessPool):
        return "its parse worker died (out of memory, or a crash in the parser)"
    return f"parsing took longer than {timeout:g} s"


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Kill the pool's workers mid-document and drop what is queued (Python 3.14 names this
    ``kill_workers``; 3.11 has only the private map of processes)."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    for process in processes:
        if process.is_alive():
            process.kill()
    # A worker killed while it wrote a result leaves half a message in the result pipe: the
    # pool's thread would wait for the rest for ever (and hold the process at exit), since this
    # process still has the pipe's writing end open. Closed, the read ends.
    writer = getattr(getattr(pool, "_result_queue", None), "_writer", None)
    if writer is not None:
        writer.close()
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.join(timeout=10)
