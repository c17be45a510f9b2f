"""The domain's vocabulary in one place: statuses, operation types, error categories.

No Dagster, no SQL: every layer (catalog, services, orchestration, the API, the CLI) names a
status through these, so a set like "the statuses of an operation still at work" is written
once. They are ``StrEnum``s: a member equals its string, so catalog columns and wire values
stay plain strings.
"""

from __future__ import annotations

import re
from enum import StrEnum

# A tenant (a workspace) is named by 1-64 letters, digits, "-" or "_".
TENANT_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


# What an asset embeds with when its request names nothing (chunk sizes in model tokens).
DEFAULT_EMBEDDING = {
    "provider": "local",
    "model": "all-MiniLM-L6-v2",
    "chunkSize": 256,
    "chunkOverlap": 32,
}


class OperationStatus(StrEnum):
    """An operation's status, derived from its Dagster run's (see ``orchestration``)."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


# Still at work: a new refresh of the asset waits (429), a delete cancels them.
ACTIVE_OPERATION_STATUSES = frozenset({OperationStatus.PENDING, OperationStatus.RUNNING})
# Ended: the outcome can no longer change, so it is settled in the catalog.
TERMINAL_OPERATION_STATUSES = frozenset(
    {OperationStatus.COMPLETED, OperationStatus.FAILED, OperationStatus.CANCELLED}
)


class OperationType(StrEnum):
    """Why an operation runs: who or what asked for it."""

    INGEST = "INGEST"  # an asset's first ingestion, or a re-ingestion after a model change
    REFRESH = "REFRESH"
    DRY_RUN = "DRY_RUN"
    WEBHOOK = "WEBHOOK"
    POLL = "POLL"
    MANUAL = "MANUAL"  # a run started from the Dagster UI


class AssetStatus(StrEnum):
    ACTIVE = "ACTIVE"
    DELETING = "DELETING"  # being deleted: invisible to every interface, runs stop


class DocumentStatus(StrEnum):
    """PENDING → PROCESSING → COMPLETED, or FAILED (the document's error says why)."""

    PENDING = "PENDING"
    PROCESSING = "PROCESSING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


class ErrorCategory(StrEnum):
    """The `errorCategory` the API shows for a failure a user can act on."""

    CREDENTIALS = "CREDENTIALS"
    PERMISSIONS = "PERMISSIONS"
    RATE_LIMIT = "RATE_LIMIT"
    SOURCE_UNAVAILABLE = "SOURCE_UNAVAILABLE"
    INVALID_CONFIG = "INVALID_CONFIG"
    BUDGET = "BUDGET"


class CategorizedError(RuntimeError):
    """A failure of a whole operation, with the category that tells the user what to fix."""

    def __init__(self, message: str, category: str) -> None:
        super().__init__(message)
        self.category = category
