"""Search, as the API (and any other interface) asks for it: in one asset, or over a tenant.

Assets are searched in groups that share an embedding model and the credentials it is called
with, so the query is embedded once per group; each asset of a group is booked the query's
tokens within its own budgets. Groups of different models are fused by reciprocal rank
(``fruxon_pipelines.search``). Asked for, the best candidates are reranked, hits carry their
neighbouring chunks as context, and hits are grouped by document.

One asset's search refuses what it cannot do (QueryOverBudget, QueryNotEmbedded). A tenant's
search leaves an asset it cannot search out of the answer with a note instead, and refuses only
when no asset could be searched at all.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from fruxon_pipelines.budgets import BudgetExceeded, token_limits
from fruxon_pipelines.catalog.models import KnowledgeAsset, now_ms, serving_model_config
from fruxon_pipelines.domain import AssetStatus
from fruxon_pipelines.embedding import KEYED_PROVIDERS, find_model
from fruxon_pipelines.embedding.catalogue import model_of
from fruxon_pipelines.errors import BUDGET, INVALID_CONFIG, CategorizedError
from fruxon_pipelines.search import SearchHit, SearchRequest, SearchScope, finish, fuse, rank_scope
from fruxon_pipelines.search_filter import SearchFilter

if TYPE_CHECKING:
    from fruxon_pipelines.embedding.base import EmbeddingModel
    from fruxon_pipelines.rerank import Reranked
    from fruxon_pipelines.services.context import Services


class QueryNotEmbedded(CategorizedError):
    """The query could not be embedded: the embedding provider refused it (its credentials, a
    rate limit, an outage: ``category`` says which)."""


class QueryOverBudget(QueryNotEmbedded):
    """Embedding the query would exceed a token budget of the asset."""

    def __init__(self, message: str) -> None:
        super().__init__(message, BUDGET)


class RerankUnavailable(CategorizedError):
    """``rerank`` was asked for and cannot be done: none is configured, or it failed."""


@dataclass(frozen=True)
class Filters:
    """What the caller narrows a search to, as sent; ``asset_ids`` and ``source_types`` are
    resolved against the tenant's assets, the rest is a LanceDB pre-filter."""

    asset_ids: tuple[str, ...] | None = None  # None: any; () none
    source_types: tuple[str, ...] = ()
    narrowing: SearchFilter = field(default_factory=SearchFilter)


@dataclass(frozen=True)
class Shaping:
    """What is done with the ranked hits: reranking, context, grouping by document."""

    rerank: bool = False
    context_before: int = 0
    context_after: int = 0


@dataclass(frozen=True)
class FoundChunk:
    """A hit with what the answer shows beside it."""

    hit: SearchHit
    source_type: str
    title: str | None
    context_text: str | None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.hit, name)  # the hit's own fields


@dataclass(frozen=True)
class SearchNote:
    """An asset left out of a tenant's search, and why."""

    asset_id: str
    category: str
    message: str


@dataclass
class SearchResult:
    chunks: list[FoundChunk]
    notes: list[SearchNote] = field(default_factory=list)
    rerank_tokens: int = 0
    rerank_cost: float = 0.0  # USD, at FRUXON_RERANK_PRICE_PER_MILLION_TOKENS


def search_in_asset(
    svc: Services, asset: KnowledgeAsset, request: SearchRequest, **options: Any
) -> SearchResult:
    """The hits of ``request`` in ``asset`` (already found visible to the caller); ``options``
    are ``filters`` and ``shaping``.

    Raises QueryOverBudget or QueryNotEmbedded when the query cannot be embedded."""
    return _search(svc, [asset], request, strict=True, **options)


def search_tenant(
    svc: Services, tenant: str, request: SearchRequest, **options: Any
) -> SearchResult:
    """The hits of ``request`` over every asset of ``tenant`` (or those the filters name)."""
    assets = [a for a in svc.catalog.list_assets(tenant) if a.status != AssetStatus.DELETING]
    return _search(svc, assets, request, strict=False, **options)


def _search(
    svc: Services,
    assets: list[KnowledgeAsset],
    request: SearchRequest,
    *,
    strict: bool,
    filters: Filters | None = None,
    shaping: Shaping | None = None,
) -> SearchResult:
    filters, shaping = filters or Filters(), shaping or Shaping()
    assets = _narrowed(assets, filters)
    request = replace(request, where=filters.narrowing.where())
    reranker = None
    if shaping.rerank:
        reranker = _reranker(svc)
        request = replace(request, depth=max(svc.settings.rerank_candidates, request.candidates))
    result = SearchResult([])
    if not assets or not request.query.strip() or request.top_k <= 0:
        return result
    ranked: list[list[SearchHit]] = []
    failures: list[CategorizedError] = []
    for model, group in _groups(assets):
        try:
            vector = _embed_query(svc, model, group, request, result.notes, strict)
        except QueryNotEmbedded as error:
            if strict:
                raise
            failures.append(error)
            result.notes += [SearchNote(a.id, error.category, str(error)) for a in group]
            continue
        if vector is None and request.embeds:
            continue  # every asset of the group is over its budget (noted)
        scope = SearchScope(assets[0].tenant, tuple(a.id for a in group), model)
        ranked.append(rank_scope(svc.vectors, scope, vector, request))
    if failures and not ranked:
        raise failures[0]
    hits = ranked[0] if len(ranked) == 1 else fuse([(1.0, r) for r in ranked], request.rrf_k)
    by_id = {a.id: a for a in assets}
    if shaping.rerank and hits:
        hits = _reranked(svc, reranker, hits, request, by_id, result, strict)
    hits = finish(hits, request)
    result.chunks = _shaped(svc, hits, by_id, shaping)
    return result


def _narrowed(assets: list[KnowledgeAsset], filters: Filters) -> list[KnowledgeAsset]:
    if filters.asset_ids is not None:
        wanted = set(filters.asset_ids)
        assets = [a for a in assets if a.id in wanted]
    if filters.source_types:
        types = set(filters.source_types)
        assets = [a for a in assets if a.source_type in types]
    return assets


def _credential(asset: KnowledgeAsset, provider: str) -> str | None:
    """Whose key embeds for the asset: assets that share one share the query's embedding."""
    if provider not in KEYED_PROVIDERS:
        return None
    if asset.embedding_llm_config_id:
        return f"config:{asset.embedding_llm_config_id}"
    return f"asset:{asset.id}" if asset.embedding_api_key else None


def _groups(assets: Iterable[KnowledgeAsset]) -> list[tuple[EmbeddingModel, list[KnowledgeAsset]]]:
    """Assets by the model their searches use (the previous one until a change is complete)
    and by the key it is called with."""
    groups: dict[tuple[str, str, str | None], list[KnowledgeAsset]] = defaultdict(list)
    for asset in assets:
        config = serving_model_config(asset)
        provider = config["provider"]
        groups[(provider, config["model"], _credential(asset, provider))].append(asset)
    return [(find_model(p, m), group) for (p, m, _), group in groups.items()]


def _reserve_each(
    svc: Services,
    tokens: dict[str, int],
    assets: dict[str, KnowledgeAsset],
    kind: str,
) -> tuple[dict[str, int], dict[str, BudgetExceeded]]:
    """A reservation of ``tokens[asset]`` on each asset's budgets (cost limits at the price of
    the model its searches use); the refusals apart."""
    reserved, refused = {}, {}
    now = now_ms()
    for asset_id, count in tokens.items():
        asset = assets[asset_id]
        limits = token_limits(asset.budget, _search_model(asset).price_per_million_tokens)
        try:
            reserved[asset_id] = svc.catalog.reserve_tokens(
                asset_id, count, now=now, kind=kind, limits=limits
            )
        except BudgetExceeded as exceeded:
            refused[asset_id] = exceeded
    return reserved, refused


def _embed_query(
    svc: Services,
    model: EmbeddingModel,
    group: list[KnowledgeAsset],
    request: SearchRequest,
    notes: list[SearchNote],
    strict: bool,
) -> Any:
    """The query embedded with ``model`` once, booked on every asset of ``group``; an asset
    over budget leaves the group (``strict``: the search is refused). None: nothing to embed,
    or no asset left."""
    if not request.embeds:
        return None
    from fruxon_pipelines.credentials import embedding_api_key
    from fruxon_pipelines.embedding import bounded_call, get_embedder
    from fruxon_pipelines.secretbox import secret_box

    query = request.query.strip()
    try:
        api_key = embedding_api_key(secret_box(svc.settings), svc.catalog, group[0], model.provider)
        embedder = get_embedder(model.provider, model.model, api_key)
        bound, call = bounded_call(embedder, [query])
    except CategorizedError as error:
        raise QueryNotEmbedded(f"the query cannot be embedded: {error}", error.category) from error
    members = {a.id: a for a in group}
    reserved, refused = _reserve_each(svc, dict.fromkeys(members, bound), members, "SEARCH")
    for asset_id, exceeded in refused.items():
        if strict:
            raise QueryOverBudget(f"the query cannot be embedded: {exceeded}") from exceeded
        notes.append(SearchNote(asset_id, BUDGET, f"left out: {exceeded}"))
    group[:] = [a for a in group if a.id in reserved]
    if not group:
        return None
    try:
        matrix, used = call()
    except BaseException as error:
        for reservation in reserved.values():
            svc.catalog.release_tokens(reservation)
        if isinstance(error, CategorizedError):
            message = f"the query cannot be embedded: {error}"
            raise QueryNotEmbedded(message, error.category) from error
        raise
    for reservation in reserved.values():
        svc.catalog.settle_tokens(reservation, used)
    return matrix[0]


def _reranker(svc: Services) -> Any:
    from fruxon_pipelines.rerank import HttpReranker

    settings = svc.settings
    if not settings.rerank_base_url:
        raise RerankUnavailable(
            "rerank is not configured on this server: set FRUXON_RERANK_BASE_URL", INVALID_CONFIG
        )
    key = settings.rerank_api_key.get_secret_value() if settings.rerank_api_key else None
    return HttpReranker(settings.rerank_base_url, api_key=key, model=settings.rerank_model)


def _reranked(
    svc: Services,
    reranker: Any,
    hits: list[SearchHit],
    request: SearchRequest,
    assets: dict[str, KnowledgeAsset],
    result: SearchResult,
    strict: bool,
) -> list[SearchHit]:
    """The best candidates in the reranker's order, scored by it. Each asset is booked the
    tokens of its own candidates (and the query read with each), within its budgets."""
    from fruxon_pipelines.rerank import RerankError, estimate_tokens

    query = request.query.strip()
    candidates = hits[: svc.settings.rerank_candidates]
    shares: dict[str, int] = defaultdict(int)
    for hit in candidates:
        shares[hit.asset_id] += estimate_tokens(query, [hit.content])
    reserved, refused = _reserve_each(svc, shares, assets, "RERANK")
    for asset_id, exceeded in refused.items():
        if strict:
            raise QueryOverBudget(f"the results cannot be reranked: {exceeded}") from exceeded
        result.notes.append(SearchNote(asset_id, BUDGET, f"left out: {exceeded}"))
    candidates = [h for h in candidates if h.asset_id in reserved]
    try:
        answer: Reranked = reranker.rerank(query, [h.content for h in candidates], len(candidates))
    except BaseException as error:
        for reservation in reserved.values():
            svc.catalog.release_tokens(reservation)
        if isinstance(error, RerankError):
            raise RerankUnavailable(f"the reranker failed: {error}", error.category) from error
        raise
    # The server's count, shared out as the estimate shares it; the last takes the remainder.
    estimated, left = sum(shares[a] for a in reserved) or 1, answer.tokens
    for position, (asset_id, reservation) in enumerate(reserved.items(), start=1):
        share = answer.tokens * shares[asset_id] // estimated
        share = left if position == len(reserved) else min(share, left)
        svc.catalog.settle_tokens(reservation, share)
        left -= share
    result.rerank_tokens = answer.tokens
    result.rerank_cost = answer.tokens * svc.settings.rerank_price_per_million_tokens / 1_000_000
    return [replace(candidates[index], score=round(score, 6)) for index, score in answer.order]


def _search_model(asset: KnowledgeAsset) -> EmbeddingModel:
    """The model the asset's searches use: the previous one until a change is complete."""
    config = serving_model_config(asset)
    return model_of(config)


def _shaped(
    svc: Services, hits: list[SearchHit], assets: dict[str, KnowledgeAsset], shaping: Shaping
) -> list[FoundChunk]:
    titles = svc.catalog.titles_of({h.document_id for h in hits}) if hits else {}
    context = _contexts(svc, hits, assets, shaping)
    return [
        FoundChunk(
            hit,
            assets[hit.asset_id].source_type,
            titles.get(hit.document_id),
            context.get(hit.chunk_id, hit.heading_path or None),
        )
        for hit in hits
    ]


def _contexts(
    svc: Services, hits: list[SearchHit], assets: dict[str, KnowledgeAsset], shaping: Shaping
) -> dict[str, str]:
    """Each hit's text with ``context_before`` chunks before it and ``context_after`` after,
    of the same document and model, merged in order without the overlap chunks share."""
    if not hits or not (shaping.context_before or shaping.context_after):
        return {}
    models = {a.id: _search_model(a) for a in {assets[h.asset_id] for h in hits}}
    windows = {}
    for hit in hits:
        first = max(0, hit.chunk_index - shaping.context_before)
        last = hit.chunk_index + shaping.context_after
        windows[hit.chunk_id] = (hit.document_id, models[hit.asset_id].key, first, last)
    tenant = assets[hits[0].asset_id].tenant
    rows = []
    for width in {m.dimensions for m in models.values()}:
        rows += svc.vectors.neighbours(tenant, width, set(windows.values()))
    by_document: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_document[row["document_id"]].append(row)
    merged = {}
    for hit in hits:
        document_id, _, first, last = windows[hit.chunk_id]
        around = [r for r in by_document[document_id] if first <= r["chunk_index"] <= last]
        merged[hit.chunk_id] = merge_chunks(around) or hit.content
    return merged


def merge_chunks(chunks: Sequence[dict[str, Any]]) -> str:
    """Consecutive chunks of one document as one text: each adds only what lies past the end
    of the text so far (chunks overlap), on a new line where the document had one."""
    text, end, line = "", None, None
    for chunk in sorted(chunks, key=lambda c: c["chunk_index"]):
        if end is None:
            text, end = chunk["content"], chunk["end_char"]
        elif chunk["end_char"] > end:
            if chunk["start_char"] >= end:
                text += "\n" if chunk["start_line"] > line else " "
                text += chunk["content"]
            else:
                text += chunk["content"][end - chunk["start_char"] :]
            end = chunk["end_char"]
        line = chunk.get("end_line", chunk["start_line"])
    return text
