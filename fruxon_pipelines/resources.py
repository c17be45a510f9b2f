"""Dagster resources: the catalog, the vector store, sources' reach, embedders, live progress.

Dagster shows every resource's configured values in its UI (and in the code location's snapshot
and GraphQL), so nothing secret is a configured value: a catalog URL that holds a password is
given as ``dg.EnvVar``, and keys are read from the run's settings when they are used. Clients
are opened in ``setup_for_execution``, once per process and URL (migrations run once).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field, PrivateAttr
from sqlalchemy.engine import make_url

from fruxon_pipelines.catalog.store import Catalog
from fruxon_pipelines.settings import DEFAULT_LANCEDB_CACHE_MB, Settings
from fruxon_pipelines.vectors import VectorStore

# Where a catalog URL with a password is read from, by the runs and sensors that open it.
DATABASE_URL_ENV = "FRUXON_DATABASE_URL"


@lru_cache(maxsize=8)
def _catalog(url: str) -> Catalog:
    return Catalog(url)


@lru_cache(maxsize=8)
def _vector_store(uri: str, cache_mb: int) -> VectorStore:
    return VectorStore(uri, cache_mb)


def _open_quietly(uri: str, cache_mb: int) -> None:
    with contextlib.suppress(Exception):  # the step's own get() raises it, in the step
        _vector_store(uri, cache_mb)


class CatalogResource(dg.ConfigurableResource):
    """The catalog database (knowledge assets, documents, operations)."""

    database_url: str = Field(
        description="SQLAlchemy URL of the catalog; one that holds a password is given as "
        f"EnvVar({DATABASE_URL_ENV!r}), never written out."
    )
    _opened: Catalog = PrivateAttr()

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._opened = _catalog(self.database_url)

    def get(self) -> Catalog:
        return self._opened


class VectorStoreResource(dg.ConfigurableResource):
    """LanceDB: one table per tenant.

    Importing lancedb takes about 0.9 s: the store opens on a thread from resource setup on,
    and ``get`` waits for it. A refresh of named documents (a webhook's) first needs it in the
    embed stage; a full refresh at the start of fetch, for its drift check."""

    uri: str
    cache_mb: int = DEFAULT_LANCEDB_CACHE_MB
    _opening: threading.Thread = PrivateAttr()

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._opening = threading.Thread(
            target=_open_quietly, args=(self.uri, self.cache_mb), daemon=True
        )
        self._opening.start()

    def get(self) -> VectorStore:
        self._opening.join()
        return _vector_store(self.uri, self.cache_mb)  # raises here if it could not open


class SourceAccess(dg.ConfigurableResource):
    """Where sources read from and stage to, and how they may reach the network."""

    files_dir: str
    staging_dir: str
    allow_private_networks: bool = False
    user_agent: str
    http_timeout_seconds: float = 20.0


class EmbeddingResource(dg.ConfigurableResource):
    """Embedders by (provider, model); models load once per process, on first use."""

    batch_size: int = 32

    def embedder(self, provider: str, model: str, api_key: str | None = None) -> Any:
        from fruxon_pipelines.embedding import get_embedder

        return get_embedder(provider, model, api_key)


class ParsingResource(dg.ConfigurableResource):
    """Limits on parsing fetched documents (fruxon_pipelines.parsing.workers)."""

    timeout_seconds: float = 300.0

    @property
    def timeout(self) -> float | None:
        """Seconds one document may take to parse; None for no limit."""
        return self.timeout_seconds or None


class SecretsResource(dg.ConfigurableResource):
    """Opens what is sealed at rest (API keys, provider tokens) in the run that needs it.

    The key is FRUXON_SECRET_KEY from the run's environment, else the key file at
    ``key_path``; the key itself is never resource config, which the Dagster UI shows. The box
    opens on first use, in the step (a run that seals nothing creates no key file, and a key
    that cannot be read fails the step as any other error of it does).
    """

    key_path: str

    def box(self) -> Any:
        from fruxon_pipelines.secretbox import secret_box_at
        from fruxon_pipelines.settings import get_settings

        return secret_box_at(Path(self.key_path), get_settings().secret_key)


class OperationProgress(dg.ConfigurableResource):
    """Live counters on the operation row, at most one write per interval (a few ms each)."""

    catalog: CatalogResource
    min_interval_seconds: float = 1.0
    # Where the operation is read in the REST API (Settings.api_base_url).
    api_base_url: str = ""
    _last_write: float = PrivateAttr(default=0.0)

    def link(self, tenant: str, operation_id: str) -> dict[str, dg.MetadataValue]:
        """Materialization metadata: the operation of this run in the REST API, as a link the
        Dagster UI opens."""
        url = f"{self.api_base_url}/v1/tenants/{tenant}/operations/{operation_id}"
        return {"operation": dg.MetadataValue.url(url)}

    def report(self, operation_id: str, *, force: bool = False, **counters: int) -> None:
        now = time.monotonic()
        if not force and now - self._last_write < self.min_interval_seconds:
            return
        self._last_write = now
        self.catalog.get().update_operation(operation_id, **counters)


def _holds_password(url: str) -> bool:
    """Whether a SQLAlchemy URL carries a password (``user:password@`` or libpq's
    ``password=`` and ``sslpassword=`` parameters)."""
    parsed = make_url(url)
    return parsed.password is not None or any("password" in key for key in parsed.query)


def catalog_url_config(settings: Settings) -> str:
    """The catalog URL as resource config: named by its environment variable when it holds a
    password (the run reads it from its own environment), else written as it is, as the
    default SQLite file under FRUXON_HOME is."""
    url = settings.catalog_url
    if not _holds_password(url):
        return url
    if os.environ.get(DATABASE_URL_ENV) != url:
        raise ValueError(
            f"the catalog URL holds a password, which resources read from {DATABASE_URL_ENV}; "
            "set the URL there"
        )
    return dg.EnvVar(DATABASE_URL_ENV)


def build_resources(settings: Settings) -> dict[str, Any]:
    """Resources for a code location (or a test) from one settings object."""
    settings.staging_dir.mkdir(parents=True, exist_ok=True)
    settings.files_dir.mkdir(parents=True, exist_ok=True)
    catalog = CatalogResource(database_url=catalog_url_config(settings))
    return {
        "catalog": catalog,
        "vector_store": VectorStoreResource(
            uri=settings.vector_uri, cache_mb=settings.lancedb_cache_mb
        ),
        "source_access": SourceAccess(
            files_dir=str(settings.files_dir),
            staging_dir=str(settings.staging_dir),
            allow_private_networks=settings.allow_private_networks,
            user_agent=settings.user_agent,
            http_timeout_seconds=settings.http_timeout_seconds,
        ),
        "embedding": EmbeddingResource(batch_size=settings.embed_batch_size),
        "parsing": ParsingResource(timeout_seconds=settings.parse_timeout_seconds),
        "progress": OperationProgress(catalog=catalog, api_base_url=settings.api_base_url),
        "secrets": SecretsResource(key_path=str(settings.secret_key_path)),
    }
