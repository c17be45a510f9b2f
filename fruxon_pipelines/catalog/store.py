"""The catalog as callers hold it: one object over every aggregate's repository.

Engine set-up, migrations and the unit of work live in ``catalog.db``; each aggregate's queries
in ``catalog.repos``. The names callers import from here stay importable from here."""

from __future__ import annotations

from fruxon_pipelines.catalog.db import MIGRATIONS_DIR, make_engine, migrate
from fruxon_pipelines.catalog.repos import (
    ApiKeysRepo,
    AssetsRepo,
    BudgetsRepo,
    CredentialsRepo,
    DocumentsRepo,
    FilesRepo,
    OperationsRepo,
    WebhooksRepo,
)
from fruxon_pipelines.catalog.repos.documents import document_id_for

__all__ = ["MIGRATIONS_DIR", "Catalog", "document_id_for", "make_engine", "migrate"]


class Catalog(
    AssetsRepo,
    DocumentsRepo,
    OperationsRepo,
    WebhooksRepo,
    CredentialsRepo,
    BudgetsRepo,
    ApiKeysRepo,
    FilesRepo,
):
    """The catalog database. One instance per process and URL is enough.

    ``Catalog(url)`` migrates the schema (unless ``run_migrations=False``); every method is its
    own transaction, or part of the one of ``with catalog.unit_of_work():``."""
