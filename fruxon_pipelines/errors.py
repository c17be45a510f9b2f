"""Failures a user can act on, each with the `errorCategory` the API shows for it.

A stage that hits one records the category and message on the operation and fails the run
(`failing_with_category`), so the operation reads FAILED with a readable reason instead of a
stack trace.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

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


@contextmanager
def failing_with_category(store: Any, operation_id: str, asset_id: str) -> Iterator[None]:
    """Turn a CategorizedError inside the block into a failed run whose operation, and asset,
    say why (the asset's category stays until a run completes)."""
    import dagster as dg

    try:
        yield
    except CategorizedError as error:
        store.update_operation(
            operation_id, error_category=error.category, error_message=str(error)
        )
        store.update_asset(asset_id, last_error=str(error), last_error_category=error.category)
        raise dg.Failure(description=str(error)) from error
