"""Catalog tables: knowledge assets, their documents, and operations with live counters.

Timestamps are integer milliseconds since the epoch (UTC), the wire format of the API, so no
layer ever converts time zones.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def now_ms() -> int:
    return int(time.time() * 1000)


class Base(DeclarativeBase):
    pass


class KnowledgeAsset(Base):
    """One configured source; one partition key of the ingestion graph."""

    __tablename__ = "knowledge_assets"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(512))
    source_type: Mapped[str] = mapped_column(String(32))
    source_config: Mapped[dict[str, Any]] = mapped_column(JSON)
    # provider, model, chunkSize, chunkOverlap: what runs embed with.
    embedding_config: Mapped[dict[str, Any]] = mapped_column(JSON)
    # The model whose vectors searches use while a model change re-ingests (until the new
    # vectors are complete); None: embedding_config's.
    serving_embedding: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    status: Mapped[str] = mapped_column(String(16), default="ACTIVE")
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[int] = mapped_column(BigInteger, default=now_ms)
    modified_at: Mapped[int] = mapped_column(BigInteger, default=now_ms, onupdate=now_ms)
    processed_at: Mapped[int | None] = mapped_column(BigInteger, default=None)
    # AutoUpdateConfig as the API shows it (fruxon_pipelines.autoupdate); None: off.
    auto_update: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    last_polled_at: Mapped[int | None] = mapped_column(BigInteger, default=None)
    # When the poll sensor launches the next POLL operation; None unless polling is on.
    next_poll_at: Mapped[int | None] = mapped_column(BigInteger, default=None, index=True)
    # tokenBudget, dailyTokenBudget, monthlyTokenBudget, costBudget, dailyCostBudget,
    # monthlyCostBudget (fruxon_pipelines.budgets); None: unlimited.
    budget: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    # The asset's own key for its embedding provider (`embedding.apiKey`), sealed by
    # fruxon_pipelines.secretbox; a named LLM config (below) overrides it.
    embedding_api_key: Mapped[str | None] = mapped_column(Text, default=None)
    embedding_llm_config_id: Mapped[str | None] = mapped_column(String(36), default=None)
    # The connector's `auth` block (fruxon_pipelines.sources.auth) as sealed JSON.
    source_auth: Mapped[str | None] = mapped_column(Text, default=None)
    # What a connector carries from one complete run to the next (a changes cursor).
    source_state: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    # The errorCategory of the last run that failed for a reason the user can act on.
    last_error_category: Mapped[str | None] = mapped_column(String(32), default=None)
    # ALL: a refresh ingests everything the source lists. REGISTERED: only the documents in
    # the catalog (registered through the sources API, /v2/documents/public), so a team
    # connects a whole workspace and imports the pages it picks.
    selection: Mapped[str] = mapped_column(String(16), default="ALL", server_default="ALL")


class OAuthFlow(Base):
    """One authorization started by POST /assets:authorize; its id travels, signed, as the
    OAuth ``state`` and is good for one callback within ten minutes."""

    __tablename__ = "oauth_flows"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64))
    source_type: Mapped[str] = mapped_column(String(32))
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON)
    code_verifier: Mapped[str | None] = mapped_column(Text, default=None)  # sealed (PKCE)
    created_at: Mapped[int] = mapped_column(BigInteger, default=now_ms)
    expires_at: Mapped[int] = mapped_column(BigInteger, index=True)
    used_at: Mapped[int | None] = mapped_column(BigInteger, default=None)


class OAuthCredential(Base):
    """Tokens from a completed authorization, waiting for GET /assets:oauthCredentials.

    The credential key is a capability handed to the success page, so only its SHA-256 is kept;
    the tokens are sealed and handed out once."""

    __tablename__ = "oauth_credentials"

    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64))
    source_type: Mapped[str] = mapped_column(String(32))
    tokens: Mapped[str] = mapped_column(Text)  # sealed SourceAuth JSON
    created_at: Mapped[int] = mapped_column(BigInteger, default=now_ms)
    expires_at: Mapped[int] = mapped_column(BigInteger, index=True)
    consumed_at: Mapped[int | None] = mapped_column(BigInteger, default=None)


class LlmConfig(Base):
    """A tenant's stored credential for an embedding provider (`embeddingLlmConfigId`).

    Assets name it instead of carrying a key, so a key is rotated once for every asset that
    uses it; ``revision`` counts rotations (the published revision is always the newest).
    """

    __tablename__ = "llm_configs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(256))
    provider: Mapped[str] = mapped_column(String(32))
    api_key: Mapped[str] = mapped_column(Text)  # sealed by fruxon_pipelines.secretbox
    revision: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[int] = mapped_column(BigInteger, default=now_ms)
    modified_at: Mapped[int] = mapped_column(BigInteger, default=now_ms, onupdate=now_ms)


class Document(Base):
    """One item of a source. Its id is uuid5(asset id, source key): stable across refreshes."""

    __tablename__ = "documents"
    __table_args__ = (
        UniqueConstraint("asset_id", "source_key", name="uq_documents_asset_key"),
        Index("ix_documents_modified_at", "modified_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    asset_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("knowledge_assets.id", ondelete="CASCADE"), index=True
    )
    source_key: Mapped[str] = mapped_column(Text)
    source_url: Mapped[str | None] = mapped_column(Text, default=None)
    title: Mapped[str | None] = mapped_column(Text, default=None)
    file_name: Mapped[str | None] = mapped_column(Text, default=None)
    content_type: Mapped[str | None] = mapped_column(String(255), default=None)
    file_size: Mapped[int | None] = mapped_column(BigInteger, default=None)
    etag: Mapped[str | None] = mapped_column(Text, default=None)
    last_modified: Mapped[str | None] = mapped_column(Text, default=None)
    content_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    # Bumped each time the indexed content changes.
    version: Mapped[int] = mapped_column(Integer, default=0)
    # PENDING → PROCESSING → COMPLETED, or FAILED (error_message says why).
    status: Mapped[str] = mapped_column(String(16), default="PENDING")
    error_message: Mapped[str | None] = mapped_column(Text, default=None)
    chunk_count: Mapped[int] = mapped_column(Integer, default=0)
    token_count: Mapped[int] = mapped_column(Integer, default=0)
    links: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[int] = mapped_column(BigInteger, default=now_ms)
    modified_at: Mapped[int] = mapped_column(BigInteger, default=now_ms, onupdate=now_ms)
    processed_at: Mapped[int | None] = mapped_column(BigInteger, default=None)
    # The operation the sources API last asked to take this document on (set at launch, by
    # that API only, so another run of the asset cannot stand in for the one a poller awaits).
    operation_id: Mapped[str | None] = mapped_column(String(36), default=None)
    # The operation whose outcome ``status`` is (every stage that writes one sets it).
    outcome_operation_id: Mapped[str | None] = mapped_column(String(36), default=None)
    # Whether the last run that read the document found its content changed (not new).
    changed: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # What the sources API was told about the item: mimeType, object, english, baser.
    attributes: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)


class DocumentText(Base):
    """The indexed text of a document as paragraphs (the parser's blocks), and the paragraphs
    before its last change: the sources API shows them as ``paragraphs``/``oldParagraphs``.
    Apart from ``documents`` so listing documents never reads their text."""

    __tablename__ = "document_texts"

    document_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True
    )
    paragraphs: Mapped[list[str]] = mapped_column(JSON, default=list)
    previous_paragraphs: Mapped[list[str]] = mapped_column(JSON, default=list)


class ApiKey(Base):
    """A workspace API key of the sources API (``fini_…``). Only its SHA-256 is stored: the key
    is shown once, by ``fruxon apikey create``. A workspace is a tenant."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    tenant: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(256))
    scope: Mapped[str] = mapped_column(String(16))  # read | write (write includes read)
    # The key's first characters, to tell keys apart in a listing.
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[int] = mapped_column(BigInteger, default=now_ms)
    revoked_at: Mapped[int | None] = mapped_column(BigInteger, default=None)


class Operation(Base):
    """One Dagster run of the ingestion job for an asset, as the API shows it.

    Status is derived from the run (found by its fruxon/operation_id tag) while the run can
    still change; once it has ended, the API settles the outcome here (``final_status`` with
    the run's start, end and error), so reading a finished operation needs no Dagster query.
    The run writes the counters here while it works, throttled.
    """

    __tablename__ = "operations"
    __table_args__ = (Index("ix_operations_asset_created", "asset_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    asset_id: Mapped[str] = mapped_column(String(36), index=True)
    tenant: Mapped[str] = mapped_column(String(64))
    # INGEST, REFRESH, DRY_RUN, WEBHOOK, POLL or MANUAL
    type: Mapped[str] = mapped_column(String(16))
    run_id: Mapped[str | None] = mapped_column(String(64), default=None, index=True)
    created_by: Mapped[str | None] = mapped_column(String(255), default=None)
    # What was asked: {"documentIds": [...], "force": bool}
    request: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    items_processed: Mapped[int] = mapped_column(Integer, default=0)
    items_total: Mapped[int] = mapped_column(Integer, default=0)
    token_count: Mapped[int] = mapped_column(BigInteger, default=0)
    chunk_count: Mapped[int] = mapped_column(Integer, default=0)
    error_message: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[int] = mapped_column(BigInteger, default=now_ms)
    started_at: Mapped[int | None] = mapped_column(BigInteger, default=None)
    completed_at: Mapped[int | None] = mapped_column(BigInteger, default=None)
    cancel_requested_at: Mapped[int | None] = mapped_column(BigInteger, default=None)
    # COMPLETED, FAILED or CANCELLED once the run has ended; None while it may still change.
    final_status: Mapped[str | None] = mapped_column(String(16), default=None)
    # Why it failed, in a word the user can act on (BUDGET, CREDENTIALS, RATE_LIMIT …).
    error_category: Mapped[str | None] = mapped_column(String(32), default=None)
    # A DRY_RUN operation's findings: documents added / changed / removed, tokens, cost.
    dry_run_report: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)


class StoredFile(Base):
    """A file uploaded through `POST /storage`, waiting to become a file asset (`:import`).

    Temporary uploads are swept a day after upload unless an import retained them.
    """

    __tablename__ = "stored_files"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64), index=True)
    file_name: Mapped[str] = mapped_column(Text)
    content_type: Mapped[str | None] = mapped_column(String(255), default=None)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    # Relative to the uploads directory.
    path: Mapped[str] = mapped_column(Text)
    temporary: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[int] = mapped_column(BigInteger, default=now_ms, index=True)


class WebhookRegistration(Base):
    """The URL a source system delivers change events to, one per asset at a time.

    The URL's webhook id is the credential (256 random bits), so only its SHA-256 is stored;
    the signing secret is needed to check signatures, so it is stored encrypted.
    """

    __tablename__ = "webhooks"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    asset_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("knowledge_assets.id", ondelete="CASCADE"), index=True
    )
    provider: Mapped[str] = mapped_column(String(32))
    # API_KEY: the URL alone authenticates; HMAC: a body signature is required as well.
    auth_mode: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="ACTIVE")
    signing_secret: Mapped[str] = mapped_column(Text)  # sealed by fruxon_pipelines.secretbox
    created_at: Mapped[int] = mapped_column(BigInteger, default=now_ms)
    modified_at: Mapped[int] = mapped_column(BigInteger, default=now_ms, onupdate=now_ms)
    expires_at: Mapped[int | None] = mapped_column(BigInteger, default=None)


class WebhookEvent(Base):
    """One accepted delivery, stored before the receiver answers 202.

    The webhook sensor gives waiting events (``operation_id`` None) to one operation per asset;
    an event that names nothing asks for a full refresh.
    """

    __tablename__ = "webhook_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    asset_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("knowledge_assets.id", ondelete="CASCADE"), index=True
    )
    provider: Mapped[str] = mapped_column(String(32))
    # The registration it came through; emptied when that is rotated or revoked (the event
    # still counts), and a revoked registration cannot take new ones.
    webhook_id_hash: Mapped[str | None] = mapped_column(
        String(64), ForeignKey("webhooks.id_hash", ondelete="SET NULL"), default=None
    )
    received_at: Mapped[int] = mapped_column(BigInteger, default=now_ms)
    document_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Items the catalog may not know yet (a web page's URL).
    source_keys: Mapped[list[str]] = mapped_column(JSON, default=list)
    full_refresh: Mapped[bool] = mapped_column(Boolean, default=False)
    operation_id: Mapped[str | None] = mapped_column(String(36), default=None, index=True)


class TokenUsage(Base):
    """Tokens an asset spent on embedding (ingestion batches and search queries), by UTC day.

    A row is written as a reservation of at most what a batch can cost before the embedder is
    called, under a lock on the asset, and corrected to the service's count afterwards, so
    concurrent runs and searches never spend past a budget together.
    """

    __tablename__ = "token_usage"
    __table_args__ = (
        Index("ix_token_usage_asset_day", "asset_id", "day"),
        Index("ix_token_usage_asset_month", "asset_id", "month"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    asset_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("knowledge_assets.id", ondelete="CASCADE")
    )
    kind: Mapped[str] = mapped_column(String(16))  # INGEST or SEARCH
    operation_id: Mapped[str | None] = mapped_column(String(36), default=None)
    at: Mapped[int] = mapped_column(BigInteger)
    day: Mapped[str] = mapped_column(String(10))  # YYYY-MM-DD, UTC
    month: Mapped[str] = mapped_column(String(7))  # YYYY-MM, UTC
    tokens: Mapped[int] = mapped_column(BigInteger)
    settled: Mapped[bool] = mapped_column(Boolean, default=False)


def serving_model_config(asset: KnowledgeAsset) -> dict[str, Any]:
    """The embedding config searches use: the previous model until a change is complete."""
    return asset.serving_embedding or asset.embedding_config
