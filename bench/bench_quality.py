"""Scenario 9: retrieval quality on a test collection with human relevance judgments.

The collection is BEIR SciFact (bench/data/scifact, see its README): 5,183 scientific
abstracts, the 300 test claims as queries and their 339 judgments. Each abstract is one page
(title, blank line, text) of a plain-text site served from 127.0.0.1 with a sitemap, and fruxon
ingests it as users do: one web asset created through the REST API, a real Dagster run, the
default chunking (at most 254 model tokens, the model's 256 less [CLS] and [SEP]; 32 of overlap)
and the default embedder (all-MiniLM-L6-v2, int8 ONNX). Every query is then sent to
``POST …/assets/{asset}:search`` in each mode: VECTOR, FULL_TEXT and HYBRID (weights 0.5 / 0.5,
rrfK 60, the API's defaults).

The peers index the very chunks fruxon made (read back from LanceDB) with the same model through
their sentence-transformers integrations (fp32 torch), in LanceDB, and answer with their default
retrievers: LangChain ``LanceDB.as_retriever()`` and LlamaIndex ``VectorStoreIndex.as_retriever()``;
and, as their documented hybrids, LangChain ``EnsembleRetriever`` (``BM25Retriever`` + the vector
retriever, 0.5 / 0.5) and LlamaIndex ``QueryFusionRetriever`` (``BM25Retriever`` + the vector
retriever, reciprocal rank). The chunk vectors are computed once and served to both peers from
a cache (the same model on the same texts gives the same numbers); queries are embedded live.

Scoring is per DOCUMENT: every system returns its best ``DEPTH`` chunks; a document ranks where
its best chunk does (later chunks of it are dropped), and the document ranking is scored with
``pytrec_eval`` (trec_eval's nDCG@10 and recall@100, as BEIR does). Published figures are for
whole abstracts as the retrieval unit, so they are a reference, not the same experiment.

After the main figures, cheap what-ifs recombine the two legs fruxon returned (no new
retrieval): the fusion at other candidate depths, weights and rrfK, fused per document, and
fused by score. ``--investigate`` adds the costly one: the document title prepended to every
chunk (re-embedded with fruxon's embedder, full-text indexed again), in a scratch LanceDB table.

``--quick``: the first 50 queries, the documents they judge and 300 others (about 360 pages);
its figures are not comparable with the full collection's (fewer distractors).

Run: `.venv/bin/python bench/bench_quality.py [--quick] [--investigate]`
       (the peers run in their own process: `… --peers <workdir>`)
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench_sync import _chunks, _operation
from common import TENANT, median, percentile, quick_flag, running_stack, scratch_home, write_result
from corpus import Corpus, CorpusServer

# The collection is not in the repository: data brought in from public repositories is kept
# beside the project, not committed. FRUXON_BENCH_SCIFACT names the folder (bench/data/scifact
# by default; its README says which files go there and where they come from).
DATA = Path(
    os.environ.get("FRUXON_BENCH_SCIFACT") or Path(__file__).resolve().parent / "data" / "scifact"
)
# Chunks every system returns per query: the API's topK maximum, enough for ~100 documents.
DEPTH = 200
MODES = ("VECTOR", "FULL_TEXT", "HYBRID")
QUICK_QUERIES = 50
QUICK_OTHER_DOCUMENTS = 300
EMBED_BATCH = 32
# nDCG@10 on SciFact with whole abstracts as documents.
PUBLISHED = {
    "BM25 (BEIR paper, Thakur et al. 2021)": 0.665,
    "all-MiniLM-L6-v2 (MTEB leaderboard, approximate)": 0.645,
}

Run = dict[str, list[str]]  # query id → document ids, best first
Leg = dict[str, list[tuple[str, str, float]]]  # query id → (chunk id, document id, score)


# --- the collection ---------------------------------------------------------------------------


@dataclass
class Collection:
    documents: dict[str, tuple[str, str]]  # id → (title, text)
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]  # query id → {document id: graded relevance}

    @property
    def judgments(self) -> int:
        return sum(len(j) for j in self.qrels.values())


def load_collection(data: Path = DATA) -> Collection:
    documents = {}
    with gzip.open(data / "corpus.jsonl.gz", "rt", encoding="utf-8") as lines:
        for line in lines:
            row = json.loads(line)
            documents[row["_id"]] = (row["title"], row["text"])
    queries = {}
    for line in (data / "queries.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        queries[row["_id"]] = row["text"]
    qrels: dict[str, dict[str, int]] = {}
    for line in (data / "qrels" / "test.tsv").read_text().splitlines()[1:]:
        query_id, document_id, grade = line.split("\t")
        qrels.setdefault(query_id, {})[document_id] = int(grade)
    return Collection(documents, {q: queries[q] for q in qrels}, qrels)


def quick_subset(full: Collection) -> Collection:
    """The first queries, every document they judge, and evenly spaced others as distractors."""
    query_ids = sorted(full.qrels, key=int)[:QUICK_QUERIES]
    qrels = {q: full.qrels[q] for q in query_ids}
    judged = {d for judgments in qrels.values() for d in judgments}
    others = [d for d in sorted(full.documents, key=int) if d not in judged]
    step = max(1, len(others) // QUICK_OTHER_DOCUMENTS)
    kept = judged | set(others[::step][:QUICK_OTHER_DOCUMENTS])
    documents = {d: full.documents[d] for d in sorted(kept, key=int)}
    return Collection(documents, {q: full.queries[q] for q in query_ids}, qrels)


def page_of(document_id: str) -> str:
    return f"scifact/{document_id}.txt"


def document_of(url: str) -> str:
    return url.rsplit("/", 1)[-1].removesuffix(".txt")


def write_site(collection: Collection, root: Path) -> Corpus:
    """One plain-text page per abstract: its title, a blank line, its text."""
    (root / "original" / "scifact").mkdir(parents=True, exist_ok=True)
    pages = []
    for document_id, (title, text) in collection.documents.items():
        page = page_of(document_id)
        (root / "original" / page).write_text(f"{title}\n\n{text}\n", encoding="utf-8")
        pages.append(page)
    return Corpus(root=root, pages=pages)


# --- scoring ----------------------------------------------------------------------------------


def documents_in_order(document_ids: Iterable[str]) -> list[str]:
    """A document ranks where its best chunk does; its later chunks are dropped."""
    return list(dict.fromkeys(document_ids))


def evaluate(run: Run, qrels: dict[str, dict[str, int]]) -> dict[str, float | list[float]]:
    """Mean nDCG@10 and recall@100 over every judged query (one with no answer scores 0), and
    the per-query nDCG@10 for paired comparisons."""
    import pytrec_eval

    evaluator = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.100"})
    # Scores that only encode the rank: trec_eval sorts by score, and ties would reorder.
    scored = {q: {d: float(DEPTH - i) for i, d in enumerate(run.get(q, [])[:100])} for q in qrels}
    measures = evaluator.evaluate({q: docs for q, docs in scored.items() if docs})
    ndcg = [measures.get(q, {}).get("ndcg_cut_10", 0.0) for q in qrels]
    recall = [measures.get(q, {}).get("recall_100", 0.0) for q in qrels]
    return {
        "ndcg_at_10": round(sum(ndcg) / len(qrels), 4),
        "recall_at_100": round(sum(recall) / len(qrels), 4),
        "documents_ranked_mean": round(sum(len(run.get(q, [])) for q in qrels) / len(qrels), 1),
        "per_query_ndcg": ndcg,
    }


def paired_p(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Two-sided paired t-test p-value of per-query scores (None when they never differ)."""
    from scipy.stats import ttest_rel

    if all(x == y for x, y in zip(a, b, strict=True)):
        return None
    return round(float(ttest_rel(a, b).pvalue), 4)


# --- fruxon -----------------------------------------------------------------------------------


def search_legs(client, asset_id: str, queries: dict[str, str], mode: str, **body) -> tuple:
    """(the mode's ranked chunks per query, each query's latency in ms) through the REST API."""
    path = f"/v1/tenants/{TENANT}/assets/{asset_id}:search"
    ranked: Leg = {}
    latencies = []
    for query_id, text in queries.items():
        started = time.perf_counter()
        response = client.post(
            path, json={"query": text, "searchMode": mode, "topK": DEPTH, **body}
        )
        latencies.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
        ranked[query_id] = [
            (hit["chunkId"], document_of(hit["sourceUrl"]), float(hit["score"]))
            for hit in response.json()["results"]
        ]
    return ranked, latencies


def run_of(leg: Leg) -> Run:
    return {q: documents_in_order(d for _, d, _ in hits) for q, hits in leg.items()}


def run_fruxon(collection: Collection, corpus: Corpus) -> dict:
    """Ingest through the API, then every query in every mode; the legs and the chunks."""
    with CorpusServer(corpus) as server, running_stack("quality") as (_stack, settings, client):
        body = {
            "name": "BEIR SciFact",
            "config": {
                "sourceType": "web",
                "parameters": {
                    "urls": [server.sitemap_url],
                    "maxDepth": 0,
                    "maxPages": len(corpus.pages) + 10,
                },
            },
        }
        ingest = _operation(client, "", f"/v1/tenants/{TENANT}/assets", body)
        asset_id = ingest["asset_id"]
        asset = client.get(f"/v1/tenants/{TENANT}/assets/{asset_id}").json()
        chunks = _chunks(settings, asset_id)
        legs, latency = {}, {}
        started = time.perf_counter()
        # A reranker is measured where the environment names one (FRUXON_RERANK_BASE_URL …):
        # none installs from the registries to run offline here.
        reranked = {"HYBRID + rerank": {"rerank": True}} if settings.rerank_base_url else {}
        for mode, body in [*((m, {}) for m in MODES), *reranked.items()]:
            search_mode = mode.split()[0]
            legs[mode], latencies = search_legs(
                client, asset_id, collection.queries, search_mode, **body
            )
            latency[mode] = {
                "p50_ms": round(median(latencies), 1),
                "p99_ms": round(percentile(latencies, 99), 1),
            }
        searching = time.perf_counter() - started
    return {
        "ingest": ingest,
        "embedding": asset.get("embedding"),
        "chunks": chunks,
        "legs": legs,
        "latency": latency,
        "search_seconds": round(searching, 1),
        "vector_uri": settings.vector_uri,
        "asset_id": asset_id,
    }


def chunking_stats(chunks: list[dict], documents: int) -> dict:
    per_document: dict[str, int] = {}
    for row in chunks:
        key = document_of(row["source_url"])
        per_document[key] = per_document.get(key, 0) + 1
    return {
        "documents_indexed": len(per_document),
        "documents": documents,
        "chunks": len(chunks),
        "tokens": sum(r["token_count"] for r in chunks),
        "largest_chunk_tokens": max((r["token_count"] for r in chunks), default=0),
        "chunks_per_document_mean": round(len(chunks) / max(1, len(per_document)), 2),
        "documents_with_several_chunks": sum(n > 1 for n in per_document.values()),
    }


# --- what-ifs on the legs fruxon returned -----------------------------------------------------


def fuse_chunks(vector: Leg, text: Leg, *, weights=(0.5, 0.5), rrf_k=60, depth=DEPTH) -> Run:
    """fruxon's fusion (weighted reciprocal rank over chunks) on each leg's first ``depth``."""
    run: Run = {}
    for query_id in vector:
        fused: dict[str, float] = {}
        document: dict[str, str] = {}
        for weight, leg in zip(weights, (vector[query_id], text.get(query_id, [])), strict=True):
            for rank, (chunk_id, document_id, _) in enumerate(leg[:depth], start=1):
                fused[chunk_id] = fused.get(chunk_id, 0.0) + weight / (rrf_k + rank)
                document[chunk_id] = document_id
        ranked = sorted(fused, key=fused.__getitem__, reverse=True)
        run[query_id] = documents_in_order(document[c] for c in ranked)
    return run


def fuse_documents(vector: Run, text: Run, *, weights=(0.5, 0.5), rrf_k=60) -> Run:
    """Reciprocal rank fusion of the two legs after each is reduced to documents."""
    run: Run = {}
    for query_id in vector:
        fused: dict[str, float] = {}
        for weight, leg in zip(weights, (vector[query_id], text.get(query_id, [])), strict=True):
            for rank, document_id in enumerate(leg, start=1):
                fused[document_id] = fused.get(document_id, 0.0) + weight / (rrf_k + rank)
        run[query_id] = sorted(fused, key=fused.__getitem__, reverse=True)
    return run


def fuse_scores(vector: Leg, text: Leg, *, alpha: float = 0.5, per_document: bool = True) -> Run:
    """Convex combination of the legs' scores, each min-max normalised over its candidates for
    the query; per document (its best chunk's score) or per chunk. A key missing from a leg
    scores that leg's minimum."""
    run: Run = {}
    for query_id in vector:
        combined: dict[str, float] = {}
        document: dict[str, str] = {}
        for weight, leg in ((alpha, vector[query_id]), (1 - alpha, text.get(query_id, []))):
            best: dict[str, float] = {}
            for chunk_id, document_id, score in leg:
                key = document_id if per_document else chunk_id
                best.setdefault(key, score)
                document[key] = document_id
            if not best:
                continue
            low, high = min(best.values()), max(best.values())
            for key in combined.keys() | best.keys():
                score = best.get(key, low)
                normalised = (score - low) / (high - low) if high > low else 0.0
                combined[key] = combined.get(key, 0.0) + weight * normalised
        ranked = sorted(combined, key=combined.__getitem__, reverse=True)
        run[query_id] = documents_in_order(document[k] for k in ranked)
    return run


def what_ifs(legs: dict[str, Leg]) -> list[tuple[str, Run]]:
    vector, text = legs["VECTOR"], legs["FULL_TEXT"]
    vector_documents, text_documents = run_of(vector), run_of(text)
    attempts: list[tuple[str, Run]] = [
        ("chunk RRF 0.5/0.5, k 60, legs cut to 200 (recomputes HYBRID)", fuse_chunks(vector, text)),
        ("chunk RRF, legs cut to 40 (what topK 10 fetches)", fuse_chunks(vector, text, depth=40)),
    ]
    for weights in ((0.7, 0.3), (0.3, 0.7)):
        label = f"chunk RRF weights {weights[0]}/{weights[1]}"
        attempts.append((label, fuse_chunks(vector, text, weights=weights)))
    for rrf_k in (10, 200):
        attempts.append((f"chunk RRF k {rrf_k}", fuse_chunks(vector, text, rrf_k=rrf_k)))
    attempts.append(
        ("document RRF 0.5/0.5, k 60", fuse_documents(vector_documents, text_documents))
    )
    # Min-max score fusion (Bruch et al. 2023 find it beats RRF when the legs' scores carry
    # information; fruxon's legs return cosine and BM25 / best).
    attempts.append(
        ("score fusion per chunk, vector 0.5", fuse_scores(vector, text, per_document=False))
    )
    for alpha in (0.5, 0.7):
        label = f"score fusion per document, vector {alpha}"
        attempts.append((label, fuse_scores(vector, text, alpha=alpha)))
    return attempts


# --- investigation: the title in every chunk (re-embedded) ------------------------------------


def titled_chunk_runs(fruxon: dict, collection: Collection) -> list[tuple[str, Run]]:
    """Rebuild the index in a scratch table with the document title before each chunk that does
    not start with it, re-embedded by fruxon's embedder, and rank as fruxon's legs do."""
    import lancedb
    import numpy as np
    import pyarrow as pa
    from lancedb.index import FTS

    from fruxon_pipelines.embedding import DEFAULT_MODEL, DEFAULT_PROVIDER, get_embedder
    from fruxon_pipelines.search import full_text_query

    embedder = get_embedder(DEFAULT_PROVIDER, DEFAULT_MODEL)
    texts, documents = [], []
    for row in fruxon["chunks"]:
        document_id = document_of(row["source_url"])
        title = collection.documents[document_id][0]
        content = row["content"]
        texts.append(content if content.startswith(title) else f"{title}\n\n{content}")
        documents.append(document_id)
    vectors = np.concatenate(
        [embedder.embed(texts[i : i + EMBED_BATCH]) for i in range(0, len(texts), EMBED_BATCH)]
    )
    db = lancedb.connect(str(scratch_home("titled")))
    table = db.create_table(
        "chunks",
        pa.table(
            {
                "chunk_id": [str(i) for i in range(len(texts))],
                "document_id": documents,
                "content": texts,
                "vector": pa.FixedSizeListArray.from_arrays(
                    pa.array(vectors.astype(np.float32).ravel()), vectors.shape[1]
                ),
            }
        ),
    )
    table.create_index("content", config=FTS(), replace=True)
    vector_leg: Leg = {}
    text_leg: Leg = {}
    for query_id, query in collection.queries.items():
        found = (
            table.search(embedder.embed([query])[0], vector_column_name="vector")
            .distance_type("cosine")
            .limit(DEPTH)
            .to_list()
        )
        vector_leg[query_id] = [
            (r["chunk_id"], r["document_id"], 1 - r["_distance"]) for r in found
        ]
        words = full_text_query(query)
        found = table.search(words, query_type="fts").limit(DEPTH).to_list() if words else []
        text_leg[query_id] = [(r["chunk_id"], r["document_id"], r["_score"]) for r in found]
    return [
        ("title before every chunk: VECTOR", run_of(vector_leg)),
        ("title before every chunk: FULL_TEXT", run_of(text_leg)),
        ("title before every chunk: HYBRID (chunk RRF)", fuse_chunks(vector_leg, text_leg)),
    ]


# --- peers (own process: torch, LangChain and LlamaIndex stay out of the parent) --------------


def run_peers(workdir: Path) -> dict:
    """Index the chunks in each framework and answer every query with its retrievers."""
    from bench_peers import _model_path
    from langchain_core.embeddings import Embeddings
    from langchain_huggingface import HuggingFaceEmbeddings

    chunks = json.loads((workdir / "chunks.json").read_text())
    queries: dict[str, str] = json.loads((workdir / "queries.json").read_text())
    texts = [c["text"] for c in chunks]
    metadatas = [{"doc_id": c["doc_id"]} for c in chunks]
    seconds: dict[str, float] = {}

    hf = HuggingFaceEmbeddings(
        model_name=_model_path(),
        model_kwargs={"device": "cpu"},
        encode_kwargs={"batch_size": EMBED_BATCH},
    )
    started = time.perf_counter()
    cache = dict(zip(texts, hf.embed_documents(texts), strict=True))
    seconds["embed_chunks"] = round(time.perf_counter() - started, 1)

    class CachedEmbeddings(Embeddings):
        """The chunk vectors computed above; queries embedded live."""

        def embed_documents(self, batch: list[str]) -> list[list[float]]:
            return [cache[t] for t in batch]

        def embed_query(self, text: str) -> list[float]:
            return hf.embed_query(text)

    retrievers: dict[str, Callable[[str], list[str]]] = {}
    started = time.perf_counter()
    retrievers.update(_langchain_retrievers(workdir, texts, metadatas, CachedEmbeddings()))
    retrievers.update(_llamaindex_retrievers(workdir, texts, metadatas, cache))
    seconds["index"] = round(time.perf_counter() - started, 1)

    runs: dict[str, Run] = {}
    latency: dict[str, dict[str, float]] = {}
    for name, retrieve in retrievers.items():
        latencies = []
        runs[name] = {}
        for query_id, text in queries.items():
            started = time.perf_counter()
            runs[name][query_id] = documents_in_order(retrieve(text))
            latencies.append((time.perf_counter() - started) * 1000)
        latency[name] = {
            "p50_ms": round(median(latencies), 1),
            "p99_ms": round(percentile(latencies, 99), 1),
        }
    return {"runs": runs, "latency": latency, "seconds": seconds}


def _langchain_retrievers(workdir: Path, texts, metadatas, embeddings) -> dict:
    from langchain_classic.retrievers import EnsembleRetriever
    from langchain_community.retrievers import BM25Retriever
    from langchain_community.vectorstores import LanceDB

    store = LanceDB(
        uri=str(workdir / "langchain"), embedding=embeddings, table_name="chunks", mode="overwrite"
    )
    store.add_texts(texts, metadatas=metadatas)
    vector = store.as_retriever(search_kwargs={"k": DEPTH})
    bm25 = BM25Retriever.from_texts(texts, metadatas=metadatas, k=DEPTH)
    # Its default: weighted reciprocal rank fusion, c = 60, as fruxon's HYBRID.
    ensemble = EnsembleRetriever(retrievers=[bm25, vector], weights=[0.5, 0.5])

    def ids(retriever) -> Callable[[str], list[str]]:
        return lambda query: [d.metadata["doc_id"] for d in retriever.invoke(query)]

    return {
        "LangChain LanceDB.as_retriever()": ids(vector),
        "LangChain EnsembleRetriever (BM25Retriever + vector)": ids(ensemble),
    }


def _llamaindex_retrievers(workdir: Path, texts, metadatas, cache) -> dict:
    from bench_peers import _model_path
    from llama_index.core import StorageContext, VectorStoreIndex
    from llama_index.core.llms import MockLLM
    from llama_index.core.retrievers import QueryFusionRetriever
    from llama_index.core.schema import TextNode
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding
    from llama_index.retrievers.bm25 import BM25Retriever
    from llama_index.vector_stores.lancedb import LanceDBVectorStore

    class CachedEmbedding(HuggingFaceEmbedding):
        def _get_text_embeddings(self, batch: list[str]) -> list[list[float]]:
            return [cache[t] for t in batch]

    embed = CachedEmbedding(
        model_name=_model_path(), device="cpu", embed_batch_size=EMBED_BATCH, max_length=256
    )
    # The document id is for scoring only: kept out of what is embedded and BM25-indexed.
    nodes = [
        TextNode(
            text=t,
            metadata=m,
            excluded_embed_metadata_keys=["doc_id"],
            excluded_llm_metadata_keys=["doc_id"],
        )
        for t, m in zip(texts, metadatas, strict=True)
    ]
    store = LanceDBVectorStore(
        uri=str(workdir / "llamaindex"), table_name="chunks", mode="overwrite"
    )
    index = VectorStoreIndex(
        nodes, storage_context=StorageContext.from_defaults(vector_store=store), embed_model=embed
    )
    vector = index.as_retriever(similarity_top_k=DEPTH)
    bm25 = BM25Retriever.from_defaults(nodes=nodes, similarity_top_k=DEPTH)
    fusion = QueryFusionRetriever(
        [vector, bm25],
        similarity_top_k=DEPTH,
        num_queries=1,  # no LLM-generated query variants: the retrieval alone
        mode="reciprocal_rerank",
        use_async=False,
        llm=MockLLM(),
    )

    def ids(retriever) -> Callable[[str], list[str]]:
        return lambda query: [n.node.metadata["doc_id"] for n in retriever.retrieve(query)]

    return {
        "LlamaIndex VectorStoreIndex.as_retriever()": ids(vector),
        "LlamaIndex QueryFusionRetriever (BM25Retriever + vector)": ids(fusion),
    }


def peers_in_subprocess(chunks: list[dict], queries: dict[str, str]) -> dict:
    workdir = scratch_home("quality-peers")
    rows = [{"doc_id": document_of(r["source_url"]), "text": r["content"]} for r in chunks]
    (workdir / "chunks.json").write_text(json.dumps(rows))
    (workdir / "queries.json").write_text(json.dumps(queries))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env["TOKENIZERS_PARALLELISM"] = "false"
    subprocess.run([sys.executable, __file__, "--peers", str(workdir)], env=env, check=True)
    return json.loads((workdir / "peer_runs.json").read_text())


# --- main -------------------------------------------------------------------------------------


def system(name: str, kind: str, run: Run, qrels, latency: dict | None = None) -> dict:
    return {"name": name, "kind": kind, **evaluate(run, qrels), **(latency or {})}


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--peers":
        workdir = Path(sys.argv[2])
        (workdir / "peer_runs.json").write_text(json.dumps(run_peers(workdir)))
        return 0
    quick = quick_flag()
    started = time.perf_counter()
    if not (DATA / "corpus.jsonl.gz").exists():
        print(f"skipped: no SciFact collection in {DATA} (see bench/data/scifact/README.md)")
        return 0
    full = load_collection()
    collection = quick_subset(full) if quick else full
    corpus = write_site(collection, scratch_home("quality-site"))

    fruxon = run_fruxon(collection, corpus)
    qrels = collection.qrels
    systems = [
        system(f"fruxon {mode}", "fruxon", run_of(fruxon["legs"][mode]), qrels, lat)
        for mode, lat in fruxon["latency"].items()
    ]
    peers_started = time.perf_counter()
    peers = peers_in_subprocess(fruxon["chunks"], collection.queries)
    peers_seconds = time.perf_counter() - peers_started
    for name, run in peers["runs"].items():
        systems.append(system(name, "peer", run, qrels, peers["latency"][name]))

    attempts = what_ifs(fruxon["legs"])
    if "--investigate" in sys.argv[1:]:
        attempts += titled_chunk_runs(fruxon, collection)
    experiments = [{"name": name, **evaluate(run, qrels)} for name, run in attempts]

    by_name = {s["name"]: s for s in systems}
    hybrid = by_name["fruxon HYBRID"]
    for entry in experiments:
        entry["vs_hybrid_p"] = paired_p(entry["per_query_ndcg"], hybrid["per_query_ndcg"])
    best_leg = max((by_name["fruxon VECTOR"], by_name["fruxon FULL_TEXT"]), key=_ndcg)
    peer_defaults = [s for s in systems if s["kind"] == "peer" and "as_retriever" in s["name"]]
    peer_best = max((s for s in systems if s["kind"] == "peer"), key=_ndcg)
    goal = {
        "hybrid_at_least_best_single_mode": hybrid["ndcg_at_10"] >= best_leg["ndcg_at_10"],
        "best_single_mode": best_leg["name"],
        "hybrid_minus_best_single_mode": round(hybrid["ndcg_at_10"] - best_leg["ndcg_at_10"], 4),
        "hybrid_vs_best_single_mode_p": paired_p(
            hybrid["per_query_ndcg"], best_leg["per_query_ndcg"]
        ),
        "hybrid_at_least_peer_defaults": all(
            hybrid["ndcg_at_10"] >= s["ndcg_at_10"] for s in peer_defaults
        ),
        "best_peer": peer_best["name"],
        "hybrid_minus_best_peer": round(hybrid["ndcg_at_10"] - peer_best["ndcg_at_10"], 4),
        "hybrid_vs_best_peer_p": paired_p(hybrid["per_query_ndcg"], peer_best["per_query_ndcg"]),
    }
    for entry in systems + experiments:
        entry.pop("per_query_ndcg")
    result = {
        "quick": quick,
        "collection": {
            "name": "BEIR SciFact (test)",
            "documents": len(collection.documents),
            "queries": len(collection.queries),
            "judgments": collection.judgments,
        },
        "depth_chunks": DEPTH,
        "embedding": fruxon["embedding"],
        "chunking": chunking_stats(fruxon["chunks"], len(collection.documents)),
        "systems": systems,
        "goal": goal,
        "experiments": experiments,
        "published_ndcg_at_10": PUBLISHED,
        "rerank": (
            f"{os.environ.get('FRUXON_RERANK_MODEL') or 'the configured model'} over "
            "FRUXON_RERANK_BASE_URL"
            if "fruxon HYBRID + rerank" in by_name
            else "not measured: no reranker is configured (FRUXON_RERANK_BASE_URL), and none "
            "that runs offline installs from the package registries here"
        ),
        "seconds": {
            "fruxon_ingest": fruxon["ingest"]["seconds"],
            "fruxon_queries": fruxon["search_seconds"],
            "peers_embed_chunks": peers["seconds"]["embed_chunks"],
            "peers_index": peers["seconds"]["index"],
            "peers_total": round(peers_seconds, 1),
            "total": round(time.perf_counter() - started, 1),
        },
    }
    print(json.dumps(result, indent=2))
    write_result("quality", result)
    return 0


def _ndcg(entry: dict) -> float:
    return entry["ndcg_at_10"]


if __name__ == "__main__":
    raise SystemExit(main())
