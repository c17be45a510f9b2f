"""Search inside one knowledge asset: vector, full-text, or both fused by reciprocal rank.

- VECTOR: cosine similarity (1 − cosine distance, within [0, 1]).
- FULL_TEXT: LanceDB's native BM25, normalised by the best hit (the top result scores 1.0).
- HYBRID: reciprocal rank fusion of both legs, each weighted
  (``w / (k + rank)``), normalised so the best hit scores 1.0; one empty leg leaves the other.
``score_threshold`` applies after ranking, then ``top_k`` cuts. Nothing a caller types makes this
raise: full-text queries keep their words only, and a full-text leg LanceDB still refuses (or that
has no index yet) is empty, so HYBRID falls back to the vector leg.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace
from typing import Any, Literal

from fruxon_pipelines.embedding.base import Embedder, EmbeddingModel
from fruxon_pipelines.vectors import VectorStore

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


def _vector_leg(store, tenant, asset_id, model, embedder, query, limit) -> list[SearchHit]:
    vector = embedder.embed([query])[0]
    where = store.scope(asset_id, f"{model.provider}/{model.model}")
    rows = store.vector_search(tenant, where, vector, limit)
    return [_hit(r, min(1.0, max(0.0, 1.0 - float(r["_distance"])))) for r in rows]


def _text_leg(store, tenant, asset_id, model, query, limit) -> list[SearchHit]:
    words = full_text_query(query)
    if not words:
        return []
    try:
        where = store.scope(asset_id, f"{model.provider}/{model.model}")
        rows = store.full_text_search(tenant, model.dimensions, where, words, limit)
    except ValueError as error:  # LanceDB's "invalid input": a query its parser still refuses
        log.warning("full-text search refused %r: %s", words, error)
        return []
    best = max((float(r["_score"]) for r in rows), default=0.0)
    return [_hit(r, float(r["_score"]) / best if best > 0 else 0.0) for r in rows]


def _weights(request: SearchRequest) -> tuple[float, float]:
    weights = (max(request.vector_weight, 0.0), max(request.fts_weight, 0.0))
    # Both weighted 0 would score every hit 0: weigh the legs equally instead.
    return weights if any(weights) else (0.5, 0.5)


def _fuse(request: SearchRequest, vector: list[SearchHit], text: list[SearchHit]):
    weights = _weights(request)
    k = max(request.rrf_k, 0)  # rank starts at 1, so k = 0 still never divides by zero
    fused: dict[str, float] = {}
    hits: dict[str, SearchHit] = {}
    for weight, leg in zip(weights, (vector, text), strict=True):
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


def search_asset(
    store: VectorStore,
    *,
    tenant: str,
    asset_id: str,
    embedding_model: EmbeddingModel,
    embedder: Embedder,
    request: SearchRequest,
) -> list[SearchHit]:
    query = request.query.strip()
    if not query or request.top_k <= 0:
        return []
    candidates = max(request.top_k * 4, 20)
    model = embedding_model
    if request.mode == "VECTOR":
        hits = _vector_leg(store, tenant, asset_id, model, embedder, query, candidates)
    elif request.mode == "FULL_TEXT":
        hits = _text_leg(store, tenant, asset_id, model, query, candidates)
    else:
        vector_weight, fts_weight = _weights(request)
        hits = _fuse(
            request,
            _vector_leg(store, tenant, asset_id, model, embedder, query, candidates)
            if vector_weight > 0
            else [],
            _text_leg(store, tenant, asset_id, model, query, candidates) if fts_weight > 0 else [],
        )
    if request.score_threshold is not None:
        hits = [h for h in hits if h.score >= request.score_threshold]
    return hits[: request.top_k]
