"""What a run leaves on a document it could not index, whichever stage found out."""

from __future__ import annotations

from typing import Any

from fruxon_pipelines.ingest.manifests import IngestRequest


def mark_failed(
    store: Any, request: IngestRequest, source_key: str, reason: str | None, **columns: Any
) -> None:
    """The document of ``source_key`` is FAILED for ``reason``, as this operation's outcome;
    ``columns`` set more of it in the same write (what is indexed stays unless they say so)."""
    store.upsert_document(
        request.asset_id,
        source_key,
        status="FAILED",
        error_message=reason,
        outcome_operation_id=request.operation_id,
        **columns,
    )
