"""Search: inside one asset (Fruxon's debugging surface), and over a tenant's assets (our
extension); vector, full-text or hybrid (reciprocal rank fusion), with filters, context,
grouping by document and reranking."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter

from fruxon_api.auth import Reader
from fruxon_api.deps import Svc, load_asset
from fruxon_api.present import search_response
from fruxon_api.problems import Problem, categorized_problem
from fruxon_api.ratelimit import SEARCH
from fruxon_client.models import SearchRequestBody, SearchResponse, TenantSearchRequest

if TYPE_CHECKING:
    from fruxon_pipelines.services.search import Filters, Shaping

router = APIRouter(prefix="/v1/tenants/{tenant}", tags=["search"])


@router.post("/assets/{asset}:search", response_model=SearchResponse)
def search(tenant: str, asset: str, body: SearchRequestBody, principal: Reader, svc: Svc):
    from fruxon_pipelines.services.search import search_in_asset

    current = load_asset(svc, tenant, asset)
    svc.limits.take(SEARCH, tenant)
    return _answer(
        body, lambda request, **options: search_in_asset(svc, current, request, **options)
    )


@router.post("/search", response_model=SearchResponse)
def search_tenant(tenant: str, body: TenantSearchRequest, principal: Reader, svc: Svc):
    """One query over every asset of the tenant, or the `assetIds` given (our extension).

    Assets with different embedding models are searched with the query embedded once per
    model and fused by reciprocal rank. An asset that cannot be searched (over its budget, its
    embedding provider refusing) is left out with a note in `notes`."""
    from fruxon_pipelines.services.search import search_tenant as search_assets

    svc.limits.take(SEARCH, tenant)
    return _answer(body, partial(search_assets, svc, tenant))


def _answer(body: SearchRequestBody, run: Any) -> SearchResponse:
    from fruxon_pipelines.services.search import (
        QueryNotEmbedded,
        QueryOverBudget,
        RerankUnavailable,
    )

    try:
        found = run(_request(body), filters=_filters(body), shaping=_shaping(body))
    except QueryOverBudget as exceeded:
        raise Problem(429, "Too Many Requests", str(exceeded)) from exceeded
    except (QueryNotEmbedded, RerankUnavailable) as refused:
        raise categorized_problem(refused, str(refused)) from refused
    return search_response(found, group_by_document=body.group == "DOCUMENT")


def _request(body: SearchRequestBody) -> Any:
    from fruxon_pipelines.search import SearchRequest

    mode = body.searchMode if body.searchMode not in (None, "UNSPECIFIED") else "HYBRID"
    return SearchRequest(
        query=body.query,
        top_k=body.topK or 10,
        score_threshold=body.scoreThreshold,
        mode=mode,
        vector_weight=0.5 if body.vectorWeight is None else body.vectorWeight,
        fts_weight=0.5 if body.ftsWeight is None else body.ftsWeight,
        rrf_k=body.rrfK or 60,
        max_chunks_per_document=body.maxChunksPerDocument,
    )


def _filters(body: SearchRequestBody) -> Filters:
    from fruxon_pipelines.search_filter import SearchFilter
    from fruxon_pipelines.services.search import Filters

    given = body.filter
    asset_ids = set(given.assetIds) if given and given.assetIds else None
    chosen = getattr(body, "assetIds", None)
    if chosen is not None:  # the tenant search's own list, narrowed further by the filter's
        asset_ids = set(chosen) if asset_ids is None else asset_ids & set(chosen)
    if given is None:
        return Filters(asset_ids=_only(asset_ids))
    return Filters(
        asset_ids=_only(asset_ids),
        source_types=tuple(given.sourceTypes),
        narrowing=SearchFilter(
            document_ids=tuple(given.documentIds),
            url_prefix=given.urlPrefix or None,
            url_glob=given.urlGlob or None,
            title_contains=given.titleContains or None,
            modified_after=given.modifiedAfter,
            modified_before=given.modifiedBefore,
        ),
    )


def _only(asset_ids: set[str] | None) -> Any:
    """None: any asset; an empty set (lists that share nothing) must match none."""
    if asset_ids is None:
        return None
    return tuple(sorted(asset_ids))


def _shaping(body: SearchRequestBody) -> Shaping:
    from fruxon_pipelines.services.search import Shaping

    window = body.expandContext
    return Shaping(
        rerank=body.rerank,
        context_before=window.before if window else 0,
        context_after=window.after if window else 0,
    )
