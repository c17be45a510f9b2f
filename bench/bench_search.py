"""Scenario 7: search latency over one asset of >= 100,000 chunks, VECTOR, FULL_TEXT and HYBRID.

The index is fruxon's own LanceDB table (``VectorStore``, the schema every run writes), in a
scratch directory. Its text is real: every page of Debian's Python 3.11 documentation, chunked
by fruxon's chunker at several window sizes (254, 200, 160, 128, 96 tokens, each with its own
overlap), so no two rows share a text. Embedding 100,000 chunks would take about an hour here,
so only ``--real`` of them (default 1,000) are embedded by the real model; every other row gets
the vector of one of those plus Gaussian noise (σ = 0.35 per unit vector, renormalised): a
clustered distribution like the real one, which is all latency depends on.

Queries are 50 section headings of the docs. Each mode is timed over the queries (two warm-up
passes first) through ``fruxon_pipelines.search.search_asset`` — the code behind
``POST …/assets/{asset}:search`` — with the real query embedder, and again with the query
vectors computed beforehand (the embedder then only looks them up), which leaves out the
query-embedding time. Both before and after ``VectorStore.ensure_indices`` builds the ANN index.

Run: `.venv/bin/python bench/bench_search.py [--quick] [--rows 100000] [--real 1000]`
"""

from __future__ import annotations

import argparse
import random
import time
import uuid

import numpy as np
from common import TENANT, median, percentile, quick_flag, scratch_home, write_result
from corpus import DOCS

WINDOWS = [(254, 32), (200, 50), (160, 40), (128, 64), (96, 24), (224, 96)]
QUERIES = 50
NOISE = 0.35


def real_chunks(limit: int) -> list[tuple[str, str, str, int]]:
    """(url, heading, text, tokens) of distinct real chunks, up to ``limit``."""
    from fruxon_pipelines.chunking import chunk_elements
    from fruxon_pipelines.embedding import get_tokenizer
    from fruxon_pipelines.parsing import parse_document

    tokenizer = get_tokenizer()
    pages = sorted(p for p in DOCS.rglob("*.html") if "genindex" not in p.name)
    parsed = []
    for page in pages:
        url = f"http://docs.local/{page.relative_to(DOCS)}"
        try:
            parsed.append((url, parse_document(page.read_bytes(), "text/html", url=url)))
        except Exception:
            continue
    seen: set[str] = set()
    out = []
    for size, overlap in WINDOWS:
        for url, elements in parsed:
            for chunk in chunk_elements(
                elements, tokenizer, chunk_size=size, chunk_overlap=overlap
            ):
                if chunk.content in seen:
                    continue
                seen.add(chunk.content)
                out.append((url, chunk.heading_path, chunk.content, chunk.token_count))
                if len(out) >= limit:
                    return out
    return out


class PrecomputedQueries:
    """Answers embed() with vectors computed before timing starts: the search without the
    query-embedding time. Any other text is an error, so nothing slips through unmeasured."""

    def __init__(self, vectors: dict[str, np.ndarray]) -> None:
        self._vectors = vectors

    def embed(self, texts):
        return np.stack([self._vectors[t] for t in texts])


def build_index(store, asset_id: str, rows: int, real: int, embedder) -> tuple[list[str], dict]:
    from fruxon_pipelines.vectors import ChunkRow

    started = time.perf_counter()
    chunks = real_chunks(rows)
    if len(chunks) < rows:
        raise RuntimeError(f"only {len(chunks)} distinct chunks in {DOCS}; asked for {rows}")
    parse_s = time.perf_counter() - started
    rng = np.random.default_rng(7)
    started = time.perf_counter()
    base = embedder.embed([text for _, _, text, _ in chunks[:real]])
    embed_s = time.perf_counter() - started
    started = time.perf_counter()
    batch = 10_000
    document_ids = {}
    for start in range(0, rows, batch):
        part = chunks[start : start + batch]
        vectors = base[rng.integers(0, real, len(part))]
        vectors = vectors + rng.normal(0, NOISE / np.sqrt(vectors.shape[1]), vectors.shape)
        vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
        if start == 0:
            vectors[:real] = base  # the embedded chunks keep their own vectors
        records = []
        for i, (url, heading, text, tokens) in enumerate(part):
            document_id = document_ids.setdefault(url, str(uuid.uuid5(uuid.NAMESPACE_URL, url)))
            records.append(
                ChunkRow(
                    chunk_id=str(uuid.uuid4()),
                    asset_id=asset_id,
                    document_id=document_id,
                    chunk_index=start + i,
                    content=text,
                    content_hash=str(start + i),
                    embedding_model="local/all-MiniLM-L6-v2",
                    heading_path=heading,
                    page_number=None,
                    start_char=0,
                    end_char=len(text),
                    start_line=1,
                    end_line=1,
                    token_count=tokens,
                    source_url=url,
                )
            )
        store.upsert(TENANT, records, vectors)
    write_s = time.perf_counter() - started
    headings = sorted({h.split(" > ")[-1] for _, h, _, _ in chunks if h})
    queries = random.Random(7).sample(headings, QUERIES)
    timings = {"parse_and_chunk_s": round(parse_s, 1), "embed_real_s": round(embed_s, 1)}
    timings["write_s"] = round(write_s, 1)
    return queries, timings


def time_modes(
    store, asset_id: str, embedder, queries: list[str], label: str, top: dict | None = None
) -> list[dict]:
    """Rows of p50/p99 per mode; ``top`` collects each query's VECTOR top-10 chunk ids."""
    from fruxon_pipelines.embedding import find_model
    from fruxon_pipelines.search import SearchRequest, search_asset

    model = find_model("local", "all-MiniLM-L6-v2")
    precomputed = PrecomputedQueries(dict(zip(queries, embedder.embed(queries), strict=True)))
    embed_ms = []
    for query in queries:
        started = time.perf_counter()
        embedder.embed([query])
        embed_ms.append((time.perf_counter() - started) * 1000)
    rows = [
        {
            "index": label,
            "mode": "query embedding alone",
            "p50_ms": round(median(embed_ms), 1),
            "p99_ms": round(percentile(embed_ms, 99), 1),
        }
    ]
    for mode in ("VECTOR", "FULL_TEXT", "HYBRID"):
        for with_embedding, query_embedder in ((True, embedder), (False, precomputed)):
            if mode == "FULL_TEXT" and not with_embedding:
                continue  # a full-text search embeds nothing
            times = []
            for attempt in range(3):
                for query in queries:
                    started = time.perf_counter()
                    hits = search_asset(
                        store,
                        tenant=TENANT,
                        asset_id=asset_id,
                        embedding_model=model,
                        embedder=query_embedder,
                        request=SearchRequest(query=query, top_k=10, mode=mode),
                    )
                    if attempt == 2:  # the first two passes warm caches
                        times.append((time.perf_counter() - started) * 1000)
                        if top is not None and mode == "VECTOR" and not with_embedding:
                            top[query] = [h.chunk_id for h in hits]
                    if not hits and mode != "FULL_TEXT":
                        raise RuntimeError(f"{mode} found nothing for {query!r}")
            rows.append(
                {
                    "index": label,
                    "mode": mode,
                    "query_embedding": "included" if with_embedding else "excluded",
                    "p50_ms": round(median(times), 1),
                    "p99_ms": round(percentile(times, 99), 1),
                }
            )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--real", type=int, default=None)
    args = parser.parse_args()
    quick = args.quick or quick_flag()
    rows = args.rows or (20_000 if quick else 100_000)
    real = args.real or (300 if quick else 1_000)

    from fruxon_pipelines.embedding import get_embedder
    from fruxon_pipelines.vectors import VectorStore

    store = VectorStore(str(scratch_home("search") / "lancedb"))
    embedder = get_embedder("local", "all-MiniLM-L6-v2")
    asset_id = str(uuid.uuid4())
    queries, setup = build_index(store, asset_id, rows, real, embedder)
    started = time.perf_counter()
    store.ensure_indices(TENANT, embedder.info.dimensions, vector=False)
    setup["full_text_index_build_s"] = round(time.perf_counter() - started, 1)
    exact: dict[str, list[str]] = {}
    approximate: dict[str, list[str]] = {}
    results = time_modes(store, asset_id, embedder, queries, "flat vector scan", exact)
    started = time.perf_counter()
    store.ensure_indices(TENANT, embedder.info.dimensions)
    setup["vector_index_build_s"] = round(time.perf_counter() - started, 1)
    results += time_modes(
        store, asset_id, embedder, queries, "IVF-HNSW-SQ vector index", approximate
    )
    # recall@10 of the index against the exact flat scan, over the same queries
    setup["vector_index_recall_at_10"] = round(
        float(np.mean([len(set(approximate[q]) & set(exact[q])) / 10 for q in queries])), 3
    )
    for row in results:
        print(row)
    write_result(
        "search",
        {"rows": rows, "real_vectors": real, "queries": len(queries), "setup": setup,
         "results": results, "quick": quick},
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
