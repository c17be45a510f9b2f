"""Search inside one asset: vector, full-text or hybrid (reciprocal rank fusion)."""

from fastapi import APIRouter

from fruxon_api.auth import Reader
from fruxon_api.deps import Svc, load_asset
from fruxon_api.problems import Problem, categorized_problem
from fruxon_api.ratelimit import SEARCH
from fruxon_api.schemas import SearchHitOut, SearchRequestBody, SearchResponse
from fruxon_pipelines.budgets import BudgetExceeded, MeteredEmbedder, token_limits
from fruxon_pipelines.catalog.models import serving_model_config
from fruxon_pipelines.credentials import embedding_api_key
from fruxon_pipelines.embedding import find_model, get_embedder
from fruxon_pipelines.errors import CategorizedError
from fruxon_pipelines.secretbox import secret_box

router = APIRouter(prefix="/v1/tenants/{tenant}/assets/{asset}", tags=["search"])


@router.post(":search", response_model=SearchResponse)
def search(tenant: str, asset: str, body: SearchRequestBody, principal: Reader, svc: Svc):
    from fruxon_pipelines.search import SearchRequest, search_asset

    current = load_asset(svc, tenant, asset)
    svc.limits.take(SEARCH, tenant)
    config = serving_model_config(current)  # the previous model until a change is complete
    model = find_model(config["provider"], config["model"])
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
        api_key = (
            None  # nothing to embed, so no key to need
            if mode == "FULL_TEXT"
            else embedding_api_key(secret_box(svc.settings), svc.catalog, current, model.provider)
        )
        # The query's embedding is booked against the asset's budgets (FULL_TEXT embeds nothing).
        embedder = MeteredEmbedder(
            get_embedder(model.provider, model.model, api_key),
            svc.catalog,
            current.id,
            kind="SEARCH",
            limits=lambda: token_limits(current.budget, model.price_per_million_tokens),
        )
        hits = search_asset(
            svc.vectors,
            tenant=tenant,
            asset_id=current.id,
            embedding_model=model,
            embedder=embedder,
            request=request,
        )
    except BudgetExceeded as exceeded:
        raise Problem(
            429, "Too Many Requests", f"the query cannot be embedded: {exceeded}"
        ) from exceeded
    except CategorizedError as error:
        raise embedding_problem(error) from error
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


def embedding_problem(error: CategorizedError) -> Problem:
    """The query could not be embedded: 429 when the provider is rate limiting, 502 when it is
    down, and 409 when the asset's embedding credentials or config need fixing."""
    return categorized_problem(error, f"the query cannot be embedded: {error}")
