"""Search in knowledge assets: vector, full-text, or both fused by reciprocal rank.

- VECTOR: cosine similarity (1 − cosine distance, within [0, 1]).
- FULL_TEXT: LanceDB's native BM25, normalised by the best hit (the top result scores 1.0).
- HYBRID: reciprocal rank fusion of both legs, each weighted
  (``w / (k + rank)``), normalised so the best hit scores 1.0; one empty leg leaves the other.
Assets that share an embedding model are searched together (one scope, one query per leg);
scopes of different models are fused by reciprocal rank again, since their similarities are
not comparable. ``score_threshold`` applies after ranking, then ``max_chunks_per_document``,
then ``top_k`` cuts. Nothing a caller types makes this
raise: full-text queries keep their words only, and a full-text leg LanceDB still refuses (or that
has no index yet) is empty, so HYBRID falls back to the vector leg.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

from fruxon_pipelines.embedding.base import Embedder, EmbeddingModel
from fruxon_pipelines.vectors import VectorStore, in_list, quote

log = logging.getLogger(__name__)

SearchMode = Literal["VECTOR", "FULL_TEXT", "HYBRID"]
# Characters a full-text query may not carry into LanceDB's parser; words are what match.
_QUERY_NOISE = re.compile(r"[^\w\s]+", re.UNICODE)


@dataclass(frozen=True)
class SearchRequest:
    query: str
    top_k: int = 10
    score_threshold: float | None = None
    mode: SearchMode = "HYBRID"
    vector_weight: float = 0.5
    fts_weight: float = 0.5
    rrf_k: int = 60
    # A LanceDB pre-filter on top of the scope (``search_filter.SearchFilter.where``).
    where: str | None = None
    max_chunks_per_document: int | None = None
    # Candidates each leg fetches; None: enough for top_k (a reranker asks for more).
    depth: int | None = None

    @property
    def embeds(self) -> bool:
        """Whether the query is embedded: a vector leg that counts."""
        return self.mode == "VECTOR" or (self.mode == "HYBRID" and _weights(self)[0] > 0)

    @property
    def candidates(self) -> int:
        if self.depth:
            return self.depth
        wanted = self.top_k * (4 if self.max_chunks_per_document else 1)
        return max(wanted * 4, 20)


@dataclass(frozen=True)
class SearchScope:
    """What one query per leg searches: assets of one tenant whose chunks share one model."""

    tenant: str
    asset_ids: tuple[str, ...]
    model: EmbeddingModel

    def where(self, extra: str | None = None) -> str:
        assets = (
            VectorStore.scope(self.asset_ids[0])
            if len(self.asset_ids) == 1
            else in_list("asset_id", self.asset_ids)
        )
        where = f"{assets} AND embedding_model = {quote(self.model.key)}"
        return f"{where} AND ({extra})" if extra else where


@dataclass(frozen=True)
class SearchHit:
    chunk_id: str
    document_id: str
    asset_id: str
    chunk_index: int
    content: str
    score: float
    source_url: str | None
    heading_path: str | None
    page_number: int | None
    start_char: int | None
    end_char: int | None
    start_line: int | None
    end_line: int | None
    token_count: int | None


def _hit(row: dict[str, Any], score: float) -> SearchHit:
    return SearchHit(score=round(float(score), 6), **{k: row[k] for k in VectorStore.HIT_COLUMNS})


def full_text_query(query: str) -> str:
    """The query's words only: punctuation would be operators to the FTS parser."""
    return " ".join(_QUERY_NOISE.sub(" ", query).split())


def _vector_leg(store, scope: SearchScope, where: str, vector, limit) -> list[SearchHit]:
    rows = store.vector_search(scope.tenant, where, vector, limit)
    return [_hit(r, min(1.0, max(0.0, 1.0 - float(r["_distance"])))) for r in rows]


def _text_leg(store, scope: SearchScope, where: str, query, limit) -> list[SearchHit]:
    words = full_text_query(query)
    if not words:
        return []
    try:
        rows = store.full_text_search(scope.tenant, scope.model.dimensions, where, words, limit)
    except ValueError as error:  # LanceDB's "invalid input": a query its parser still refuses
        log.warning("full-text search refused %r: %s", words, error)
        return []
    best = max((float(r["_score"]) for r in rows), default=0.0)
    return [_hit(r, float(r["_score"]) / best if best > 0 else 0.0) for r in rows]


def _weights(request: SearchRequest) -> tuple[float, float]:
    weights = (max(request.vector_weight, 0.0), max(request.fts_weight, 0.0))
    # Both weighted 0 would score every hit 0: weigh the legs equally instead.
    return weights if any(weights) else (0.5, 0.5)


def fuse(legs: list[tuple[float, list[SearchHit]]], rrf_k: int) -> list[SearchHit]:
    """Reciprocal rank fusion: each hit scores ``Σ weight / (k + rank)`` over the ranked lists
    it is in, normalised so the best hit scores 1.0."""
    k = max(rrf_k, 0)  # rank starts at 1, so k = 0 still never divides by zero
    fused: dict[str, float] = {}
    hits: dict[str, SearchHit] = {}
    for weight, leg in legs:
        if weight <= 0:
            continue  # a leg weighted 0 contributes nothing, not even its candidates
        for rank, hit in enumerate(leg, start=1):
            fused[hit.chunk_id] = fused.get(hit.chunk_id, 0.0) + weight / (k + rank)
            hits.setdefault(hit.chunk_id, hit)
    best = max(fused.values(), default=0.0)
    ranked = sorted(fused.items(), key=lambda item: item[1], reverse=True)
    return [
        replace(hits[cid], score=round(score / best, 6) if best else 0.0) for cid, score in ranked
    ]


_leg_pool: ThreadPoolExecutor | None = None
_leg_pool_lock = threading.Lock()


def _forget_leg_pool() -> None:
    """A forked child has none of the parent's pool threads: it starts its own."""
    global _leg_pool, _leg_pool_lock
    _leg_pool, _leg_pool_lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_leg_pool)


def _in_background(function, *args) -> Future:
    """Run a search leg on the shared pool: LanceDB releases the GIL while it searches, so the
    two legs of a HYBRID search overlap instead of adding up."""
    global _leg_pool
    with _leg_pool_lock:
        if _leg_pool is None:
            _leg_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="search-leg")
    return _leg_pool.submit(function, *args)


def rank_scope(
    store: VectorStore,
    scope: SearchScope,
    vector: np.ndarray | None,
    request: SearchRequest,
) -> list[SearchHit]:
    """Every candidate of ``scope`` in order, before thresholds and cuts. ``vector`` is the
    query embedded with the scope's model (None when ``request.embeds`` is false)."""
    query = request.query.strip()
    if not query or request.top_k <= 0:
        return []
    where, limit = scope.where(request.where), request.candidates
    if request.mode == "VECTOR":
        return _vector_leg(store, scope, where, vector, limit)
    if request.mode == "FULL_TEXT":
        return _text_leg(store, scope, where, query, limit)
    vector_weight, fts_weight = _weights(request)
    text_leg = (
        _in_background(_text_leg, store, scope, where, query, limit) if fts_weight > 0 else None
    )
    vector_hits = _vector_leg(store, scope, where, vector, limit) if vector_weight > 0 else []
    text_hits = text_leg.result() if text_leg is not None else []
    return fuse([(vector_weight, vector_hits), (fts_weight, text_hits)], request.rrf_k)


def finish(hits: list[SearchHit], request: SearchRequest) -> list[SearchHit]:
    """The threshold, then at most ``max_chunks_per_document`` of each document, then top_k."""
    if request.score_threshold is not None:
        hits = [h for h in hits if h.score >= request.score_threshold]
    if request.max_chunks_per_document:
        taken: dict[str, int] = {}
        kept = []
        for hit in hits:
            if taken.get(hit.document_id, 0) < request.max_chunks_per_document:
                taken[hit.document_id] = taken.get(hit.document_id, 0) + 1
                kept.append(hit)
        hits = kept
    return hits[: request.top_k]


def search_asset(
    store: VectorStore,
    *,
    tenant: str,
    asset_id: str,
    embedding_model: EmbeddingModel,
    embedder: Embedder,
    request: SearchRequest,
) -> list[SearchHit]:
    if not request.query.strip() or request.top_k <= 0:
        return []
    vector = embedder.embed([request.query.strip()])[0] if request.embeds else None
    scope = SearchScope(tenant, (asset_id,), embedding_model)
    return finish(rank_scope(store, scope, vector, request), request)
