"""Operations: the one launch path, the one status path, cancel.

An operation is written first (its id is what the caller gets) and its run submitted after
the write has committed; a run the orchestrator could not take now is launched later by the
pending-operations sensor. Its status is derived from its run and, once the run has ended,
settled in the catalog, so reading a finished operation never asks Dagster again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fruxon_pipelines.catalog.models import KnowledgeAsset, Operation, now_ms
from fruxon_pipelines.catalog.store import Catalog
from fruxon_pipelines.domain import (
    ACTIVE_OPERATION_STATUSES,
    TERMINAL_OPERATION_STATUSES,
    OperationStatus,
    OperationType,
)
from fruxon_pipelines.orchestration.gateway import LaunchError, RunGateway, RunInfo
from fruxon_pipelines.services.errors import Busy, NotFound, parse_uuid

if TYPE_CHECKING:
    from fruxon_pipelines.services.context import Services

logger = logging.getLogger("fruxon.operations")
# How long a run's status read from Dagster answers polls of its operation. Clients poll
# running operations many times a second between them; one Dagster read per interval serves
# them all, and a status at most this old is what a poller sees anyway.
RUN_STATUS_TTL_SECONDS = 0.5


@dataclass
class OperationState:
    status: OperationStatus
    started_at: int | None
    completed_at: int | None
    error: str | None

    @property
    def done(self) -> bool:
        return self.status in TERMINAL_OPERATION_STATUSES


class OperationStatuses:
    """The status path: derive from the run, remember briefly, settle once ended."""

    def __init__(self, catalog: Catalog, gateway: RunGateway) -> None:
        self.catalog = catalog
        self.gateway = gateway
        self._recent: dict[str, tuple[float, OperationState]] = {}
        self._lock = threading.Lock()

    def known(self, operation: Operation) -> OperationState | None:
        """The state without asking the orchestrator: settled, or read less than the TTL ago."""
        if operation.final_status in TERMINAL_OPERATION_STATUSES:
            return self.of(operation)
        recent = self._recent.get(operation.id)
        if recent is not None and time.monotonic() - recent[0] < RUN_STATUS_TTL_SECONDS:
            return recent[1]
        return None

    def of(self, operation: Operation, runs: dict[str, RunInfo] | None = None) -> OperationState:
        """The operation's state. ``runs`` (from ``gateway.runs_of_asset``) saves a query per
        operation when many are read; an operation that has settled needs none."""
        if operation.final_status in TERMINAL_OPERATION_STATUSES:
            return OperationState(
                OperationStatus(operation.final_status),
                operation.started_at,
                operation.completed_at,
                operation.error_message,
            )
        if runs is None:
            run = self.gateway.run_of_operation(operation)
        else:
            run = runs.get(operation.id) or (
                runs.get(operation.run_id) if operation.run_id else None
            )
        if run is None:
            if operation.cancel_requested_at:
                return OperationState(
                    OperationStatus.CANCELLED, None, operation.cancel_requested_at, None
                )
            return OperationState(OperationStatus.PENDING, None, None, None)
        status = run.status
        if operation.cancel_requested_at and run.cancellable:
            self.gateway.terminate(run.run_id)  # a cancel that found the run STARTING, again
        error = None
        if status == OperationStatus.FAILED:
            error = operation.error_message or self.gateway.failure_message(run.run_id)
        done = status in TERMINAL_OPERATION_STATUSES
        state = OperationState(status, run.started_at, run.ended_at if done else None, error)
        if done:
            self._settle(operation, state)
            self._recent.pop(operation.id, None)
        elif not operation.cancel_requested_at:
            self._remember(operation.id, state)
        return state

    def _remember(self, operation_id: str, state: OperationState) -> None:
        now = time.monotonic()
        with self._lock:
            if len(self._recent) > 10_000:  # bounded: drop what has expired
                self._recent = {
                    k: v for k, v in self._recent.items() if now - v[0] < RUN_STATUS_TTL_SECONDS
                }
            self._recent[operation_id] = (now, state)

    def _settle(self, operation: Operation, state: OperationState) -> None:
        """Write an ended run's outcome to the operation once: it can no longer change."""
        fields = {
            "final_status": state.status.value,
            "started_at": state.started_at,
            "completed_at": state.completed_at,
            "error_message": state.error,
        }
        self.catalog.update_operation(operation.id, **fields)
        for name, value in fields.items():
            setattr(operation, name, value)


# Launch ---------------------------------------------------------------------------------------


def start_operation(
    svc: Services,
    asset: KnowledgeAsset,
    operation_type: str,
    created_by: str | None,
    *,
    required: bool = False,
    **details: Any,
) -> Operation:
    """Write an operation of ``asset`` (``details``: what :func:`write_operation` takes) and
    submit its run: the one launch path.

    ``required``: a run the orchestrator cannot take now raises :class:`LaunchError` (the CLI
    says so; the row stays, and the pending-operations sensor runs it once the stack is up)
    instead of staying PENDING quietly (the API)."""
    with svc.catalog.unit_of_work():
        operation = write_operation(svc, asset, operation_type, created_by, **details)
    launch(svc, operation, required=required)
    return operation


def write_operation(
    svc: Services,
    asset: KnowledgeAsset,
    operation_type: str,
    created_by: str | None,
    *,
    document_ids: Iterable[str] = (),
    force: bool = False,
    dry_run: bool = False,
    link_documents: bool = False,
    document_attributes: dict[str, Any] | None = None,
) -> Operation:
    """The operation's row, in the caller's unit of work; its run is submitted by :func:`launch`
    once that has committed. ``link_documents`` marks its documents as the ones the sources API
    awaits, and ``document_attributes`` are merged into theirs, in the same transaction."""
    ids = list(document_ids)
    request: dict[str, Any] = {"documentIds": ids, "force": force}
    if dry_run:
        request["dryRun"] = True
    operation = svc.catalog.create_operation(
        asset_id=asset.id,
        tenant=asset.tenant,
        type=OperationType(operation_type).value,  # a plain string in the row and run tags
        created_by=created_by,
        request=request,
    )
    if link_documents:
        svc.catalog.link_documents(ids, operation.id)
    if document_attributes is not None:
        for document in svc.catalog.documents_by_id(asset.id, ids):
            merged = (document.attributes or {}) | document_attributes
            svc.catalog.upsert_document(asset.id, document.source_key, attributes=merged)
    return operation


def launch(svc: Services, operation: Operation, *, required: bool = False) -> str | None:
    """Submit an operation's run. If the orchestrator is away, the pending-operations sensor
    will: the reason is returned (``required``: raised as :class:`LaunchError`)."""
    try:
        run_id = svc.gateway.submit(operation)
    except LaunchError as error:
        if required:
            raise
        logger.warning("operation %s stays PENDING: %s", operation.id, error)
        return str(error)
    svc.catalog.update_operation(operation.id, run_id=run_id)
    operation.run_id = run_id
    return None


# Read -----------------------------------------------------------------------------------------


def load_operation(svc: Services, asset: KnowledgeAsset, operation_id: str) -> Operation:
    operation = svc.catalog.get_operation(parse_uuid(operation_id, "operation"))
    if operation is None or operation.asset_id != asset.id:
        raise NotFound(f"operation {operation_id} does not exist")
    return operation


def asset_and_operation(
    svc: Services, tenant: str, asset_id: str, operation_id: str
) -> tuple[KnowledgeAsset, Operation]:
    """The tenant's asset and its operation, in the two primary-key reads a poll costs."""
    from fruxon_pipelines.services.assets import visible_asset

    asset, operation = svc.catalog.get_asset_and_operation(
        parse_uuid(asset_id, "asset"), parse_uuid(operation_id, "operation")
    )
    asset = visible_asset(asset, tenant, asset_id)
    if operation is None or operation.asset_id != asset.id:
        raise NotFound(f"operation {operation_id} does not exist")
    return asset, operation


def list_operations(svc: Services, asset_id: str, limit: int | None = None) -> list[Operation]:
    """The asset's operations, newest first."""
    return svc.catalog.list_operations(asset_id, limit=limit)


def states_of(svc: Services, asset_id: str, operations: list[Operation]) -> list[OperationState]:
    """The states of some of the asset's operations, from one read of its runs."""
    if not operations:
        return []
    runs = svc.gateway.runs_of_asset(asset_id)
    return [svc.statuses.of(op, runs) for op in operations]


def active_operations(svc: Services, asset_id: str, limit: int | None = None) -> list[Operation]:
    """The asset's PENDING or RUNNING operations, newest first."""
    operations = list_operations(svc, asset_id, limit)
    return [
        op
        for op, state in zip(operations, states_of(svc, asset_id, operations), strict=True)
        if state.status in ACTIVE_OPERATION_STATUSES
    ]


def ensure_idle(svc: Services, asset_id: str) -> None:
    """Raise :class:`Busy` while another operation of the asset is pending or running."""
    if active_operations(svc, asset_id, limit=20):
        raise Busy("another operation of this asset is pending or running; retry when it is done")


# Cancel and wait ------------------------------------------------------------------------------


def cancel_operation(svc: Services, operation: Operation) -> OperationState:
    """Ask the operation's run to stop; idempotent (an ended operation is left as it is). A run
    that cannot be cancelled yet is asked again on later reads."""
    if svc.statuses.of(operation).status in ACTIVE_OPERATION_STATUSES:
        request_cancel(svc, operation)
    return svc.statuses.of(operation)


def request_cancel(svc: Services, operation: Operation) -> None:
    if operation.cancel_requested_at is None:
        operation.cancel_requested_at = now_ms()
        svc.catalog.update_operation(
            operation.id, cancel_requested_at=operation.cancel_requested_at
        )
    # The operation's own run (one record by its tag), not every run of the asset.
    run = svc.gateway.run_of_operation(operation)
    if run is not None and run.cancellable:
        svc.gateway.terminate(run.run_id)


def wait_for_operation(
    svc: Services,
    operation_id: str,
    on_progress: Callable[[Operation, OperationState], None] | None = None,
    interval_seconds: float = 0.5,
) -> OperationState:
    """Until the operation has ended (settled through the status path, as the API would);
    ``on_progress`` sees its counters on the way."""
    while True:
        operation = svc.catalog.get_operation(operation_id)
        if operation is None:
            raise NotFound(f"operation {operation_id} does not exist")
        state = svc.statuses.of(operation)
        if on_progress is not None:
            on_progress(operation, state)
        if state.done:
            return state
        time.sleep(interval_seconds)
