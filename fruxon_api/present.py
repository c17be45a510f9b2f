"""Catalog rows → wire models."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel
from pydantic.alias_generators import to_snake

from fruxon_client.models import (
    AssetConfigOut,
    AssetOut,
    BudgetOut,
    ChunkOut,
    DocumentOut,
    EmbeddingOut,
    LongOperation,
    OperationOut,
    SearchDocumentOut,
    SearchHitOut,
    SearchNoteOut,
    SearchResponse,
    WebhookRegistrationOut,
)
from fruxon_pipelines.autoupdate import wire_config
from fruxon_pipelines.budgets import COST_FIELDS, TOKEN_FIELDS, Usage
from fruxon_pipelines.catalog.models import Document, KnowledgeAsset, Operation
from fruxon_pipelines.embedding.catalogue import model_of
from fruxon_pipelines.services.operations import OperationState
from fruxon_pipelines.sources.registry import SOURCE_TYPES
from fruxon_pipelines.webhooks import MintedWebhook, webhook_url

if TYPE_CHECKING:
    from fruxon_pipelines.services.search import FoundChunk, SearchResult

W = TypeVar("W", bound=BaseModel)


# Field names are few and fixed; converting them on every response was ~4 % of a poll.
_snake_case = lru_cache(maxsize=None)(to_snake)


def from_row(model: type[W], row: Any, **values: Any) -> W:
    """``model`` with ``values``, and every other field read from ``row``'s attribute of the
    same name in snake case (``createdAt`` from ``created_at``)."""
    for name in model.model_fields.keys() - values.keys():
        values[name] = getattr(row, _snake_case(name))
    return model(**values)


def price_of(asset: KnowledgeAsset) -> float:
    config = asset.embedding_config
    return model_of(config).price_per_million_tokens


def budget_out(asset: KnowledgeAsset, usage: Usage | None) -> BudgetOut:
    """Limits as set, spending so far (UTC day and month), costs at the current price."""
    price = price_of(asset)
    budget = asset.budget or {}
    used = usage or Usage(0, 0, 0)

    def cost(tokens: int) -> float:
        return tokens * price / 1_000_000

    return BudgetOut(
        **{k: budget.get(k) for k in (*TOKEN_FIELDS, *COST_FIELDS)},
        totalTokenCount=used.total,
        dailyTokensUsed=used.daily,
        monthlyTokensUsed=used.monthly,
        totalCost=cost(used.total),
        dailyCostUsed=cost(used.daily),
        monthlyCostUsed=cost(used.monthly),
        pricePerMillionTokens=price,
    )


def asset_out(asset: KnowledgeAsset, usage: Usage | None = None) -> AssetOut:
    kind = SOURCE_TYPES[asset.source_type]
    auto_update = wire_config(asset.auto_update)
    return AssetOut(
        id=asset.id,
        displayName=asset.name,
        type=asset.source_type,
        config=AssetConfigOut(sourceType=asset.source_type, parameters=asset.source_config),
        createdAt=asset.created_at,
        modifiedAt=asset.modified_at,
        autoUpdate=auto_update["strategy"] != "UNSPECIFIED",
        autoUpdateConfig=auto_update,
        lastPolledAt=asset.last_polled_at,
        embeddingLlmConfigId=asset.embedding_llm_config_id,
        supportsAutoUpdate=kind.supports_webhook or kind.supports_poll,
        supportsWebhookRegistration=kind.supports_webhook,
        supportsPollSchedule=kind.supports_poll,
        embedding=EmbeddingOut(**asset.embedding_config),
        budget=budget_out(asset, usage),
        processedAt=asset.processed_at,
        # Why the last run failed, when the user can act on it; cleared by a completed run.
        errorCategory=asset.last_error_category,
        errorMessage=asset.last_error if asset.last_error_category else None,
        hasCredentials=asset.source_auth is not None,
        selection=asset.selection,
    )


def operation_out(operation: Operation, state: OperationState, price: float) -> OperationOut:
    failed, completed = state.status == "FAILED", state.status == "COMPLETED"
    return from_row(
        OperationOut,
        operation,
        tenantId=operation.tenant,
        status=state.status,
        done=state.done,
        startedAt=state.started_at or operation.started_at,
        completedAt=state.completed_at,
        # Priced on read, from the asset's current model price.
        cost=operation.token_count * price / 1_000_000,
        errorMessage=state.error,
        errorCategory=operation.error_category if failed else None,
        dryRun=operation.dry_run_report if completed else None,
    )


def long_operation(operation: Operation, state: OperationState) -> LongOperation:
    return LongOperation(
        name=operation.id,
        status=state.status,
        resourceName=operation.asset_id,
        startedAt=state.started_at,
        completedAt=state.completed_at,
        error=state.error,
        metadata={"type": operation.type, "assetId": operation.asset_id},
    )


def document_out(document: Document) -> DocumentOut:
    name = document.file_name or document.title or document.source_url
    return from_row(DocumentOut, document, fileName=name)


def chunk_out(row: dict[str, Any]) -> ChunkOut:
    page = row.get("page_number")
    return ChunkOut(
        chunkId=row["chunk_id"],
        chunkIndex=row["chunk_index"],
        content=row["content"],
        contextText=row.get("heading_path") or None,
        headingPath=row.get("heading_path") or None,
        pageNumber=str(page) if page is not None else None,
        startCharIdx=row.get("start_char"),
        endCharIdx=row.get("end_char"),
        startLine=row.get("start_line"),
        endLine=row.get("end_line"),
        tokenCount=row.get("token_count"),
    )


def webhook_out(minted: MintedWebhook, base_url: str) -> WebhookRegistrationOut:
    registration = minted.registration
    return from_row(
        WebhookRegistrationOut,
        registration,
        id=minted.webhook_id,
        webhookUrl=webhook_url(base_url, registration.provider, minted.webhook_id),
        signingSecret=minted.signing_secret if registration.auth_mode == "HMAC" else None,
    )


# The names Fruxon's wire gives a chunk's source and offsets.
_HIT_ALIASES = {"source": "source_url", "startCharIdx": "start_char", "endCharIdx": "end_char"}


def hit_out(found: FoundChunk) -> SearchHitOut:
    """A hit; ``found`` answers for the hit's fields and what is shown beside it."""
    aliased = {wire: getattr(found, name) for wire, name in _HIT_ALIASES.items()}
    page, heading = found.page_number, found.heading_path
    shown = {"pageNumber": None if page is None else str(page), "headingPath": heading or None}
    return from_row(SearchHitOut, found, **aliased, **shown)


def search_response(result: SearchResult, *, group_by_document: bool) -> SearchResponse:
    """The hits in order; grouped, also each document once, in the order of its best hit."""
    hits = [hit_out(found) for found in result.chunks]
    documents: dict[str, SearchDocumentOut] = {}
    # A document entry takes its fields (id, title, URL, score …) from its best hit.
    shared = SearchDocumentOut.model_fields.keys() - {"chunks"}
    for hit in hits if group_by_document else []:
        if hit.documentId not in documents:
            documents[hit.documentId] = SearchDocumentOut(
                **hit.model_dump(include=shared), chunks=[]
            )
        documents[hit.documentId].chunks.append(hit)
    return SearchResponse(
        results=hits,
        documents=list(documents.values()) if group_by_document else None,
        notes=[
            SearchNoteOut(assetId=n.asset_id, errorCategory=n.category, detail=n.message)
            for n in result.notes
        ],
        rerankTokens=result.rerank_tokens or None,
        rerankCost=result.rerank_cost if result.rerank_tokens else None,
    )
