"""FRUXON_* configuration: one settings object, every field documented in README.md."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, SecretStr, StringConstraints
from pydantic_settings import BaseSettings, SettingsConfigDict

# The memory a process gives LanceDB's caches unless told otherwise (lancedb_cache_mb).
DEFAULT_LANCEDB_CACHE_MB = 512

PRODUCT_USER_AGENT = "fruxon/0.1 (+https://github.com/fruxon/fruxon; knowledge-index crawler)"


class OpenAIModelSetting(BaseModel):
    """One model of the OpenAI-compatible endpoint, as FRUXON_OPENAI_MODELS lists it."""

    model: str = Field(min_length=1)
    dimensions: int = Field(ge=1, le=8192)
    maxTokens: int = Field(default=8191, ge=16)
    pricePerMillionTokens: float = Field(default=0.0, ge=0)
    description: str = ""


def _path_under_home(name: str, doc: str | None = None) -> property:
    """A read-only Settings attribute: ``name`` below the resolved home."""

    def path(settings: Settings) -> Path:
        return settings.resolved_home / name

    return property(path, doc=doc)


class Settings(BaseSettings):
    """Everything has a working default for the embedded stack under ``home``."""

    model_config = SettingsConfigDict(env_prefix="FRUXON_", extra="ignore")

    home: Path = Field(default=Path(".fruxon"), description="Root of all local state.")
    database_url: str | None = Field(
        default=None, description="Catalog URL (SQLAlchemy). Default: SQLite under home."
    )
    dagster_yaml: Path | None = Field(
        default=None,
        description="The dagster.yaml copied into DAGSTER_HOME (deploy/dagster-postgres.yaml "
        "puts Dagster's storage on PostgreSQL). Default: the project's dagster.yaml.",
    )
    lancedb_uri: str | None = Field(
        default=None, description="LanceDB URI. Default: a directory under home."
    )
    lancedb_cache_mb: int = Field(
        default=DEFAULT_LANCEDB_CACHE_MB,
        ge=16,
        description="Memory each process gives LanceDB's index and metadata caches (three "
        "quarters and a quarter). LanceDB's own default is 7 GiB, which a long-running API "
        "fills with table versions an ingestion keeps writing.",
    )
    dagster_host: str = "127.0.0.1"
    dagster_port: int = 3000
    code_server_port: int = Field(
        default=4000,
        description="The stack's Dagster code server (gRPC on dagster_host): the webserver and "
        "the daemon load the definitions from it, and run workers are its own (forked from its "
        "fork server), so a restarted daemon leaves running ingestions alone.",
    )
    run_worker_start: Literal["forkserver", "spawn"] = Field(
        default="forkserver",
        description="How the code server starts a run's process: forked from a fork server "
        "that has imported the definitions and LanceDB once (POST → RUNNING median 0.84 s "
        "against 2.72 s spawned, bench/bench_launch.py), "
        "or spawned, importing them again for every run (Dagster's own way).",
    )
    dagster_asset_owners: list[
        Annotated[str, StringConstraints(pattern=r"^(team:[\w.-]+|[^@\s]+@[^@\s]+\.[^@\s]+)$")]
    ] = Field(
        default_factory=lambda: ["team:data-platform"],
        description="Owners the Dagster UI shows on the ingestion assets: e-mail addresses or "
        "team:<name>, as a JSON list.",
    )
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_workers: int = Field(
        default=1, ge=1, description="API worker processes (uvicorn --workers)."
    )
    jwt_public_key: str | None = Field(
        default=None,
        description="PEM public key: verify RS256 tokens with it, not the local HS256 secret.",
    )
    max_upload_bytes: int = 50 * 1024 * 1024
    allow_private_networks: bool = Field(
        default=False,
        description="Let web sources reach private, loopback and link-local addresses.",
    )
    http_timeout_seconds: float = 20.0
    user_agent: str = PRODUCT_USER_AGENT
    embed_batch_size: int = 32
    parse_timeout_seconds: float = Field(
        default=300.0,
        ge=0,
        description="How long one document may take to parse before it is given up on (FAILED, "
        "with the reason) and its parse worker killed; 0: no limit, and runs with fewer than "
        "8 documents parse them in the run's own process.",
    )
    local_price_per_million_tokens: float = Field(
        default=0.0, ge=0, description="Price the `local` model is accounted at (USD)."
    )
    openai_base_url: str = Field(
        default="https://api.openai.com/v1",
        description="Base URL of the OpenAI-compatible embeddings API (OpenAI, Azure OpenAI, "
        "Ollama, vLLM, TEI): POST {base}/embeddings.",
    )
    openai_api_key: SecretStr | None = Field(
        default=None, description="Bearer key for the `openai` provider (an asset's own wins)."
    )
    openai_models: list[OpenAIModelSetting] = Field(
        default_factory=list,
        description='JSON list: [{"model", "dimensions", "maxTokens", "pricePerMillionTokens"}].',
    )
    openai_max_retries: int = Field(default=6, ge=0, description="Retries on 429 and 5xx.")
    rerank_base_url: str | None = Field(
        default=None,
        description="Base URL of a reranker speaking POST {base}/rerank ({model, query, "
        "documents, top_n}: Cohere, Jina, vLLM, TEI). Unset: a search with rerank is refused.",
    )
    rerank_api_key: SecretStr | None = Field(default=None, description="Bearer key for it.")
    rerank_model: str | None = Field(default=None, description="The model the reranker runs.")
    rerank_price_per_million_tokens: float = Field(
        default=0.0, ge=0, description="What a reranked token costs (USD), for usage reports."
    )
    rerank_candidates: int = Field(
        default=50, ge=1, le=1000, description="How many of the best hits go to the reranker."
    )
    public_url: str | None = Field(
        default=None,
        description="Base URL the outside world reaches the API at; webhook URLs are built on "
        "it. Default: http://api_host:api_port.",
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description="Encrypts secrets at rest (webhook signing secrets). Default: a random key "
        "generated into home/secret_key on first use.",
    )
    search_rate_limit_per_minute: int = Field(
        default=600,
        ge=0,
        description="Searches a tenant may make a minute, per API process (0: no limit).",
    )
    refresh_rate_limit_per_minute: int = Field(
        default=60,
        ge=0,
        description="Refresh requests (Assets and sources API) a tenant may make a minute, "
        "per API process (0: no limit).",
    )
    webhook_sensor_interval_seconds: int = Field(
        default=1,
        ge=1,
        description="Least time between two webhook sensor ticks. The daemon evaluates sensors "
        "every 5 s at most, so anything up to 5 means every evaluation (a 5 here would often "
        "mean 10: an evaluation 4.99 s after the last one is skipped).",
    )
    webhook_debounce_seconds: float = Field(
        default=1.0,
        ge=0,
        description="The API (and the webhook sensor) waits until an asset's events have been "
        "quiet this long (at most 10 s), so a burst becomes one operation.",
    )
    webhook_api_launch: bool = Field(
        default=True,
        description="The API launches an asset's WEBHOOK operation itself once its deliveries "
        "are quiet, instead of waiting for the webhook sensor's next evaluation (up to 5 s); "
        "the sensor still launches what the API could not.",
    )
    webhook_max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    poll_sensor_interval_seconds: int = Field(
        default=30, ge=1, description="How often the poll sensor looks for assets that are due."
    )
    # Provider connectors. Client ids and secrets come from the app registered with each
    # provider; endpoints are settings so a deployment (or a test) can point them elsewhere.
    # `{subdomain}`, `{site}` and `{cloudId}` are filled from the asset's parameters.
    google_client_id: str | None = None
    google_client_secret: SecretStr | None = None
    google_authorize_url: str = "https://accounts.google.com/o/oauth2/v2/auth"
    google_token_url: str = "https://oauth2.googleapis.com/token"
    google_drive_api_url: str = "https://www.googleapis.com"
    notion_client_id: str | None = None
    notion_client_secret: SecretStr | None = None
    notion_authorize_url: str = "https://api.notion.com/v1/oauth/authorize"
    notion_token_url: str = "https://api.notion.com/v1/oauth/token"
    notion_api_url: str = "https://api.notion.com"
    zendesk_client_id: str | None = None
    zendesk_client_secret: SecretStr | None = None
    zendesk_authorize_url: str = "https://{subdomain}.zendesk.com/oauth/authorizations/new"
    zendesk_token_url: str = "https://{subdomain}.zendesk.com/oauth/tokens"
    zendesk_api_url: str = Field(
        default="https://{subdomain}.zendesk.com",
        description="The Help Center API; each account has its own host, from the asset's "
        "subdomain, so the OAuth URLs above carry it too.",
    )
    atlassian_client_id: str | None = None
    atlassian_client_secret: SecretStr | None = None
    atlassian_authorize_url: str = "https://auth.atlassian.com/authorize"
    atlassian_token_url: str = "https://auth.atlassian.com/oauth/token"
    atlassian_resources_url: str = "https://api.atlassian.com/oauth/token/accessible-resources"
    confluence_oauth_api_url: str = "https://api.atlassian.com/ex/confluence/{cloudId}"
    confluence_site_url: str = "https://{site}.atlassian.net"
    oauth_success_url: str | None = Field(
        default=None,
        description="Where the OAuth callback redirects with ?credentialKey=…; default: the "
        "API's own success page.",
    )
    provider_max_retries: int = Field(
        default=5, ge=0, description="Retries of a provider request on 429 and 5xx."
    )

    @property
    def resolved_home(self) -> Path:
        return self.home.expanduser().resolve()

    dagster_home = _path_under_home("dagster")
    files_dir = _path_under_home("files", "Uploaded and registered files of file sources.")
    staging_dir = _path_under_home(
        "staging", "Fetched bytes waiting to be parsed, content-addressed per knowledge asset."
    )
    model_cache_dir = _path_under_home(
        "cache", "Files derived from installed models (the fused embedding graph); rebuilt if lost."
    )
    jwt_secret_path = _path_under_home("jwt_secret")
    secret_key_path = _path_under_home("secret_key")

    @property
    def uploads_dir(self) -> str:
        return str(self.resolved_home / "storage")

    @property
    def api_base_url(self) -> str:
        """Where clients and providers reach the API (webhook URLs start with it)."""
        if self.public_url:
            return self.public_url.rstrip("/")
        return f"http://{self.api_host}:{self.api_port}"

    @property
    def catalog_url(self) -> str:
        return self.database_url or f"sqlite:///{self.resolved_home / 'catalog.db'}"

    @property
    def vector_uri(self) -> str:
        return self.lancedb_uri or str(self.resolved_home / "lancedb")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
