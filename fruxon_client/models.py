"""The API's wire models: camelCase JSON, exactly the documented fields.

One definition serves both sides: the API (``fruxon_api``) validates requests and documents its
responses with these classes, and the SDK builds its requests and reads the answers with them.
So this module imports nothing but pydantic: the client installs without the server.
Request bodies forbid unknown fields; responses ignore fields a newer server adds.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Generic, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from fruxon_client.checks import matching

# autoUpdateConfig ----------------------------------------------------------------------------

Strategy = Literal["UNSPECIFIED", "WEBHOOK", "POLL"]
PollFrequency = Literal["HOURLY", "DAILY", "WEEKLY", "MONTHLY"]
Weekday = Literal["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY"]
WEEKDAYS: tuple[str, ...] = Weekday.__args__  # type: ignore[attr-defined]
# How a webhook delivery proves itself: the URL alone (it holds an unguessable id), or an
# HMAC-SHA256 signature of the body as well.
WebhookAuthMode = Literal["API_KEY", "HMAC"]
DAY_OF_MONTH = re.compile(r"^_([1-9]|[12][0-9]|3[01])$")


def _number_text(value: Any, low: int, high: int) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"must be a number from {low} to {high}")
    text = str(value).strip()
    if not text.isdigit() or not low <= int(text) <= high:
        raise ValueError(f"must be a number from {low} to {high}")
    return str(int(text))


# Validation context of a request's config (fruxon_pipelines.autoupdate.parse_auto_update).
REQUEST = {"request": True}


class AutoUpdateConfig(BaseModel):
    """The wire shape of `autoUpdateConfig`; `authMode` is our extension (default API_KEY).

    A request's config is checked strictly (``context=REQUEST``: no unknown members, a time
    zone this machine knows); a response's is read as sent, so that a client does not break on
    a member a newer server adds, nor on a zone its own zone database lacks."""

    # Unknown members are refused by parse_auto_update; the schema says so all the same.
    model_config = ConfigDict(extra="ignore", json_schema_extra={"additionalProperties": False})

    strategy: Strategy = "UNSPECIFIED"
    provider: str | None = None
    externalContext: str | None = None
    filter: str | None = None
    pollFrequency: PollFrequency | None = None
    pollDay: Weekday | None = None
    pollDayOfMonth: Annotated[str | None, matching(DAY_OF_MONTH, "must be one of _1 … _31")] = None
    pollHour: str | None = None
    pollMinute: str | None = None
    timezone: str | None = None
    authMode: WebhookAuthMode | None = None

    @field_validator("pollHour", mode="before")
    @classmethod
    def _hour(cls, value: Any) -> str | None:
        return _number_text(value, 0, 23)

    @field_validator("pollMinute", mode="before")
    @classmethod
    def _minute(cls, value: Any) -> str | None:
        return _number_text(value, 0, 59)

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None or not (info.context or {}).get("request"):
            return value
        try:
            if len(value) > 64:
                raise ValueError(value)
            ZoneInfo(value)
        # A directory of the zone database ("America") or an odd path raises OSError.
        except (ZoneInfoNotFoundError, ValueError, OSError) as error:
            raise ValueError(f"{value!r} is not an IANA time zone (e.g. Europe/Berlin)") from error
        return value

    @model_validator(mode="after")
    def _complete(self) -> AutoUpdateConfig:
        if self.strategy == "POLL":
            needs = {"WEEKLY": "pollDay", "MONTHLY": "pollDayOfMonth"}
            if self.pollFrequency is None:
                raise ValueError("pollFrequency: required when strategy is POLL")
            missing = needs.get(self.pollFrequency)
            if missing and getattr(self, missing) is None:
                raise ValueError(f"{missing}: required when pollFrequency is {self.pollFrequency}")
            self.pollMinute = self.pollMinute or "0"
            if self.pollFrequency != "HOURLY":
                self.pollHour = self.pollHour or "0"
            self.timezone = self.timezone or "UTC"
        if self.strategy == "WEBHOOK":
            # The provider defaults to the source type's own (check_auto_update).
            self.authMode = self.authMode or "API_KEY"
        return self

    @property
    def enabled(self) -> bool:
        return self.strategy != "UNSPECIFIED"


# Requests and responses ----------------------------------------------------------------------

T = TypeVar("T")
Selection = Literal["ALL", "REGISTERED"]


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Wire(BaseModel):
    model_config = ConfigDict(extra="ignore")


# Requests -------------------------------------------------------------------------------------

# Taken as an object and validated by fruxon_pipelines.autoupdate (so that errors name
# `autoUpdate.<field>`, cross-field rules included); documented with the model's schema.
AutoUpdateIn = Annotated[
    dict[str, Any] | None,
    WithJsonSchema(
        {
            "anyOf": [{"$ref": "#/components/schemas/AutoUpdateConfig"}, {"type": "null"}],
            "description": "How the asset keeps itself fresh; null or absent: no change.",
        }
    ),
]


class AssetConfig(Request):
    sourceType: str = Field(min_length=1)
    parameters: dict[str, Any] = Field(default_factory=dict)


class EmbeddingConfigIn(Request):
    provider: str | None = None
    model: str | None = Field(
        default=None,
        description="A model of the provider's (GET …/assets:embeddingModels lists them).",
    )
    chunkSize: int | None = None
    chunkOverlap: int | None = None
    apiKey: str | None = Field(
        default=None,
        description="The provider's key: sealed at rest, never returned.",
        repr=False,
    )


class CreateAssetRequest(Request):
    config: AssetConfig
    name: str | None = None
    auth: dict[str, Any] | None = Field(default=None, repr=False)  # credentials
    embedding: EmbeddingConfigIn | None = None
    budget: dict[str, Any] | None = None
    currencyBudget: dict[str, Any] | None = None
    autoUpdate: AutoUpdateIn = None
    embeddingLLMConfigId: str | None = None  # the spelling of Fruxon's create docs
    embeddingLlmConfigId: str | None = None  # the spelling of every other request
    # Our extension: ALL ingests what the source lists; REGISTERED only the documents
    # registered through the sources API (/v2/documents/public) — a web asset's start URLs.
    selection: Selection | None = None


class FilePayload(Request):
    """The `Payload` part of `POST /assets:file` (PascalCase in the Fruxon docs; both accepted)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    Vectorize: bool = True
    Name: str | None = None
    DisplayName: str | None = None
    EmbeddingConfig: EmbeddingConfigIn | None = None
    SessionId: str | None = None


class PatchAssetRequest(Request):
    displayName: str | None = None
    budget: dict[str, Any] | None = None
    currencyBudget: dict[str, Any] | None = None
    embedding: EmbeddingConfigIn | None = None
    sourceConfig: dict[str, Any] | None = None
    embeddingLlmConfigId: str | None = None  # null: embed with embedding.apiKey (or none)
    embeddingLLMConfigId: str | None = None
    autoUpdate: AutoUpdateIn = None
    disableAutoUpdate: bool | None = None
    # Our extension: replaces the source's credentials.
    auth: dict[str, Any] | None = Field(default=None, repr=False)
    selection: Selection | None = None  # our extension, as on create


class RefreshRequest(Request):
    documentIds: list[str] | None = None
    force: bool | None = None
    # Our extension: a DRY_RUN operation that reports what would change and cost, and does
    # nothing else (its report is the operation's `dryRun` once COMPLETED).
    dryRun: bool | None = None


FilterValue = Annotated[str, Field(max_length=512)]


class SearchFilterIn(Request):
    """Our extension: narrows a search inside LanceDB, before ranking. Every field given must
    hold (AND); a list matches any of its values."""

    documentIds: list[FilterValue] = Field(default_factory=list, max_length=1000)
    assetIds: list[FilterValue] = Field(default_factory=list, max_length=1000)
    sourceTypes: list[FilterValue] = Field(default_factory=list, max_length=20)
    urlPrefix: str | None = Field(
        default=None, max_length=2048, description="The source URL starts with this text."
    )
    urlGlob: str | None = Field(
        default=None,
        max_length=2048,
        description="The whole source URL matches: * any run of characters but /, ** any run, "
        "? one character.",
    )
    titleContains: str | None = Field(
        default=None, max_length=512, description="The document's title contains this (any case)."
    )
    modifiedAfter: int | None = Field(
        default=None, ge=0, description="Epoch ms, inclusive: the document changed upstream since."
    )
    modifiedBefore: int | None = Field(
        default=None, ge=0, description="Epoch ms, exclusive: it last changed upstream before."
    )


class ContextWindowIn(Request):
    before: int = Field(default=0, ge=0, le=10)
    after: int = Field(default=0, ge=0, le=10)


class SearchRequestBody(Request):
    query: str = Field(min_length=1, max_length=8192)
    topK: int | None = Field(default=None, ge=1, le=200)
    scoreThreshold: float | None = Field(default=None, ge=0, le=1)
    searchMode: Literal["UNSPECIFIED", "VECTOR", "FULL_TEXT", "HYBRID"] | None = None
    vectorWeight: float | None = Field(default=None, ge=0, le=1)
    ftsWeight: float | None = Field(default=None, ge=0, le=1)
    rrfK: int | None = Field(default=None, ge=1, le=10_000)
    # Our extensions.
    filter: SearchFilterIn | None = None
    maxChunksPerDocument: int | None = Field(
        default=None, ge=1, le=100, description="At most this many hits of one document."
    )
    expandContext: ContextWindowIn | None = Field(
        default=None,
        description="contextText: the hit with this many neighbouring chunks of its document.",
    )
    group: Literal["CHUNK", "DOCUMENT"] | None = Field(
        default=None, description="DOCUMENT: also `documents`, one entry per document."
    )
    rerank: bool = Field(
        default=False, description="Order the best candidates by the configured reranker."
    )


class TenantSearchRequest(SearchRequestBody):
    """Our extension: one query over the tenant's assets (all of them, or ``assetIds``)."""

    assetIds: list[FilterValue] | None = Field(default=None, max_length=1000)


# Responses ------------------------------------------------------------------------------------


class AssetConfigOut(Wire):
    sourceType: str
    parameters: dict[str, Any]


class EmbeddingOut(Wire):
    provider: str
    model: str
    chunkSize: int
    chunkOverlap: int


class BudgetOut(Wire):
    tokenBudget: float | None = None
    monthlyTokenBudget: float | None = None
    dailyTokenBudget: float | None = None
    totalTokenCount: float | None = None
    monthlyTokensUsed: float | None = None
    dailyTokensUsed: float | None = None
    costBudget: float | None = None
    monthlyCostBudget: float | None = None
    dailyCostBudget: float | None = None
    totalCost: float | None = None
    monthlyCostUsed: float | None = None
    dailyCostUsed: float | None = None
    pricePerMillionTokens: float | None = None


class AssetOut(Wire):
    id: str
    displayName: str
    type: str
    vectorized: bool = True
    config: AssetConfigOut
    # Fruxon's links to its own integrations and consoles: fruxon has none, so always null.
    integrationId: str | None = Field(default=None, description="Always null in fruxon.")
    assetLink: str | None = Field(default=None, description="Always null in fruxon.")
    createdAt: int
    modifiedAt: int
    autoUpdate: bool = False
    autoUpdateConfig: AutoUpdateConfig
    lastPolledAt: int | None = Field(
        default=None, description="When the poll schedule last checked the source (epoch ms)."
    )
    embeddingLlmConfigId: str | None = None
    supportsAutoUpdate: bool
    supportsWebhookRegistration: bool
    supportsPollSchedule: bool
    embedding: EmbeddingOut
    budget: BudgetOut
    processedAt: int | None = None
    errorCategory: str | None = None  # CREDENTIALS, PERMISSIONS, RATE_LIMIT, … (our extension)
    errorMessage: str | None = None
    hasCredentials: bool = False  # whether `auth` is stored (never the credentials themselves)
    selection: Selection = "ALL"  # our extension: what a refresh ingests (see CreateAssetRequest)


class LongOperation(Wire):
    name: str
    status: str
    resourceName: str
    resourceType: str = "asset"
    startedAt: int | None = None
    completedAt: int | None = None
    error: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class WebhookRegistrationOut(Wire):
    """Shown once: on the create, PATCH or :regenerateWebhook that minted it."""

    id: str
    provider: str
    authMode: str
    status: str
    expiresAt: int | None
    createdAt: int
    modifiedAt: int
    # Secrets both, kept out of reprs: with authMode API_KEY the URL is the credential; with
    # HMAC the signing secret is the key (None with API_KEY).
    webhookUrl: str = Field(repr=False)
    signingSecret: str | None = Field(repr=False)


class AssetWithOperation(Wire):
    asset: AssetOut
    longOperation: LongOperation | None = None
    webhook: WebhookRegistrationOut | None = None


class WebhookAccepted(Wire):
    eventId: int | None = None  # None: the delivery asked for nothing (a handshake)
    status: Literal["ACCEPTED"] = "ACCEPTED"


class OperationOut(Wire):
    id: str
    assetId: str
    tenantId: str
    type: str
    status: str
    done: bool
    startedAt: int | None
    completedAt: int | None
    itemsProcessed: int
    itemsTotal: int
    tokenCount: int
    chunkCount: int
    cost: float
    errorMessage: str | None
    # Our extension: BUDGET, CREDENTIALS, RATE_LIMIT … when the operation FAILED for that.
    errorCategory: str | None = None
    createdBy: str | None
    # DRY_RUN operations, once COMPLETED: {added, changed, removed: [{documentId, sourceKey}],
    # unchanged, failed, chunksToEmbed, tokens, tokensExact, cost}.
    dryRun: dict[str, Any] | None = None


class DocumentOut(Wire):
    id: str
    assetId: str
    fileName: str | None
    contentType: str | None
    sourceUrl: str | None
    fileSize: int | None
    chunkCount: int
    status: str
    errorMessage: str | None
    createdAt: int
    modifiedAt: int
    processedAt: int | None


class ChunkOut(Wire):
    chunkId: str
    chunkIndex: int
    content: str
    contextText: str | None
    headingPath: str | None
    pageNumber: str | None
    startCharIdx: int | None
    endCharIdx: int | None
    startLine: int | None
    endLine: int | None
    tokenCount: int | None
    codeIntel: dict[str, Any] | None = None


class ChunkPage(Wire):
    documentId: str
    chunks: list[ChunkOut]
    totalChunks: int
    nextPageToken: str | None


class Page(Wire, Generic[T]):
    items: list[T]
    nextPageToken: str | None
    totalCount: int


class SearchHitOut(Wire):
    content: str
    assetId: str
    sourceType: str
    chunkId: str
    chunkIndex: int
    source: str | None
    sourceUrl: str | None
    score: float
    startCharIdx: int | None
    endCharIdx: int | None
    pageNumber: str | None
    startLine: int | None
    endLine: int | None
    documentId: str
    headingPath: str | None
    contextText: str | None
    title: str | None = None  # our extension: the document's


class SearchDocumentOut(Wire):
    """One document of a grouped search, with its best chunks (our extension)."""

    documentId: str
    assetId: str
    sourceType: str
    title: str | None
    sourceUrl: str | None
    score: float
    chunks: list[SearchHitOut]


class SearchNoteOut(Wire):
    """An asset a tenant's search left out, and why (our extension)."""

    assetId: str
    errorCategory: str
    detail: str


class SearchResponse(Wire):
    results: list[SearchHitOut]
    documents: list[SearchDocumentOut] | None = None
    notes: list[SearchNoteOut] = Field(default_factory=list)
    rerankTokens: int | None = None
    rerankCost: float | None = None  # USD


class UsageOut(Wire):
    assetId: str
    totalTokenCount: int
    totalChunkCount: int
    operationCount: int


# The sources API (/v2/documents/public): Fini's documents API over the same documents --------


class SourceRecord(BaseModel):
    """A document as the sources API shows it ("source record")."""

    id: str
    originalUrl: str | None = None
    title: str | None = None
    storageUrl: str | None = None
    source: str
    externalId: str
    english: bool = False
    baser: bool = False
    paragraphs: list[str] = Field(default_factory=list)
    oldParagraphs: list[str] = Field(default_factory=list)
    success: bool
    error: str = ""
    createdAt: str
    updatedAt: str
    mimeType: str | None = None
    type: str | None = None
    linkedJobId: str | None = None
    linkedKnowledgeId: str | None = None
    linkedOperation: str | None = None
    linkedReason: str | None = None
    linkedJobStatus: Literal["PENDING", "IN_PROGRESS", "COMPLETED", "FAILED"] | None = None
    changed: bool = False
    # Our extension: the knowledge asset the document belongs to (the Assets API's view).
    knowledgeAssetId: str


class SourcePage(BaseModel):
    documents: list[SourceRecord]
    hasMore: bool


class IngestSourcesRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    source: str = "web"
    documentIdsToAdd: list[Text] = Field(default_factory=list, max_length=1000)
    documentIdsToRefresh: list[Text] = Field(default_factory=list, max_length=1000)
    english: bool = False
    baser: bool = False


class QueuedSources(BaseModel):
    addedDocumentIds: list[str]
    updatedDocumentIds: list[str]


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


Text = Annotated[str, AfterValidator(_no_nul)]


class ProviderResourceIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    originalUrl: Text = Field(min_length=1, max_length=2048)
    title: Text = Field(min_length=1, max_length=1024)
    externalId: Text = Field(min_length=1, max_length=256)
    mimeType: Text = Field(min_length=1, max_length=255)
    object: Text | None = Field(default=None, max_length=32)
    type: Text | None = Field(default=None, max_length=32)


class RegisterResourcesRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    resources: list[ProviderResourceIn] = Field(min_length=1, max_length=1000)


class DeepCrawlRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    links: list[Annotated[str, Field(max_length=2048)]] = Field(min_length=1, max_length=100)
    limit: int = Field(default=250, ge=1, le=5000)


class DeepCrawlResult(BaseModel):
    data: list[str]
    message: str


class SourceIdsRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    documentIds: list[str] = Field(min_length=1, max_length=1000)


class DeleteSourcesRequest(SourceIdsRequest):
    deleteArticles: bool = False


class DeletedSource(BaseModel):
    id: str
    title: str | None = None
    originalUrl: str | None = None


class DeletedSources(BaseModel):
    deletedDocuments: list[DeletedSource]
    # Knowledge articles are not a fruxon concept: always empty.
    deletedArticles: list[dict[str, Any]] = Field(default_factory=list)
