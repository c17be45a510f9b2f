"""Failures a user can act on, each with the `errorCategory` the API shows for it.

The names live in ``fruxon_pipelines.domain``; they are re-exported here for the modules that
import them from this place. A stage that hits a ``CategorizedError`` fails its run with the
category and message recorded on the operation (``fruxon_pipelines.assets.failures``).
"""

from __future__ import annotations

from fruxon_pipelines.domain import CategorizedError, ErrorCategory

CREDENTIALS = ErrorCategory.CREDENTIALS
PERMISSIONS = ErrorCategory.PERMISSIONS
RATE_LIMIT = ErrorCategory.RATE_LIMIT
SOURCE_UNAVAILABLE = ErrorCategory.SOURCE_UNAVAILABLE
INVALID_CONFIG = ErrorCategory.INVALID_CONFIG
BUDGET = ErrorCategory.BUDGET

__all__ = [
    "BUDGET",
    "CREDENTIALS",
    "INVALID_CONFIG",
    "PERMISSIONS",
    "RATE_LIMIT",
    "SOURCE_UNAVAILABLE",
    "CategorizedError",
    "ErrorCategory",
]
