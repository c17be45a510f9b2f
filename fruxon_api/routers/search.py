"""Search inside one asset: vector, full-text or hybrid (reciprocal rank fusion)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter

from fruxon_api.auth import Reader
from fruxon_api.deps import Svc, load_asset
from fruxon_api.problems import Problem, categorized_problem
from fruxon_api.ratelimit import SEARCH
from fruxon_api.schemas import SearchHitOut, SearchRequestBody, SearchResponse

if TYPE_CHECKING:
    from fruxon_pipelines.services.search import QueryNotEmbedded

router = APIRouter(prefix="/v1/tenants/{tenant}/assets/{asset}", tags=["search"])


@router.post(":search", response_model=SearchResponse)
def search(tenant: str, asset: str, body: SearchRequestBody, principal: Reader, svc: Svc):
    from fruxon_pipelines.search import SearchRequest
    from fruxon_pipelines.services.search import QueryNotEmbedded, QueryOverBudget, search_in_asset

    current = load_asset(svc, tenant, asset)
    svc.limits.take(SEARCH, tenant)
    mode = body.searchMode if body.searchMode not in (None, "UNSPECIFIED") else "HYBRID"
    request = SearchRequest(
        query=body.query,
        top_k=body.topK or 10,
        score_threshold=body.scoreThreshold,
        mode=mode,
        vector_weight=0.5 if body.vectorWeight is None else body.vectorWeight,
        fts_weight=0.5 if body.ftsWeight is None else body.ftsWeight,
        rrf_k=body.rrfK or 60,
    )
    try:
        hits = search_in_asset(svc, current, request)
    except QueryOverBudget as exceeded:
        raise Problem(429, "Too Many Requests", str(exceeded)) from exceeded
    except QueryNotEmbedded as refused:
        raise embedding_problem(refused) from refused
    return SearchResponse(
        results=[
            SearchHitOut(
                content=h.content,
                assetId=current.id,
                sourceType=current.source_type,
                chunkId=h.chunk_id,
                chunkIndex=h.chunk_index,
                source=h.source_url,
                sourceUrl=h.source_url,
                score=h.score,
                startCharIdx=h.start_char,
                endCharIdx=h.end_char,
                pageNumber=str(h.page_number) if h.page_number is not None else None,
                startLine=h.start_line,
                endLine=h.end_line,
                documentId=h.document_id,
                headingPath=h.heading_path or None,
                contextText=h.heading_path or None,
            )
            for h in hits
        ]
    )


def embedding_problem(refused: QueryNotEmbedded) -> Problem:
    """The query could not be embedded: 429 when the provider is rate limiting, 502 when it is
    down, and 409 when the asset's embedding credentials or config need fixing."""
    return categorized_problem(refused, str(refused))
