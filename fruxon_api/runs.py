"""The only API module that talks to Dagster: launch, read status, cancel, partitions."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from fruxon_pipelines.catalog.models import Operation, now_ms
from fruxon_pipelines.catalog.store import Catalog
from fruxon_pipelines.launcher import (
    LaunchError,
    dagster_instance,
    operation_status,
    run_failure_message,
    submit_run,
)
from fruxon_pipelines.partitions import KNOWLEDGE_ASSET_PARTITIONS
from fruxon_pipelines.settings import Settings
from fruxon_pipelines.tags import OPERATION_TAG, PARTITION_TAG

logger = logging.getLogger("fruxon_api.runs")
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED"}
# How long a run's status read from Dagster answers polls of its operation. Clients poll
# running operations many times a second between them; one Dagster read per interval serves
# them all, and a status at most this old is what a poller sees anyway.
RUN_STATUS_TTL_SECONDS = 0.5


@dataclass
class OperationState:
    status: str
    run: Any | None  # DagsterRun
    started_at: int | None
    completed_at: int | None
    error: str | None


class Runs:
    def __init__(self, settings: Settings, catalog: Catalog | None = None) -> None:
        self.settings = settings
        # Where ended operations settle their outcome; without one, every read asks Dagster.
        self.catalog = catalog
        self._instance: Any | None = None
        self._lock = threading.Lock()
        self._recent: dict[str, tuple[float, OperationState]] = {}

    @property
    def instance(self) -> Any:
        with self._lock:
            if self._instance is None:
                self._instance = dagster_instance(self.settings)
            return self._instance

    # Partitions -------------------------------------------------------------------------------

    def add_partition(self, asset_id: str) -> None:
        self.instance.add_dynamic_partitions(KNOWLEDGE_ASSET_PARTITIONS, [asset_id])

    def delete_partition(self, asset_id: str) -> None:
        self.instance.delete_dynamic_partition(KNOWLEDGE_ASSET_PARTITIONS, asset_id)

    # Launch -----------------------------------------------------------------------------------

    def launch(self, catalog: Catalog, operation: Operation) -> None:
        """Submit the operation's run; if the webserver is away, the launcher sensor will."""
        try:
            run_id = submit_run(self.settings, operation)
        except LaunchError as error:
            logger.warning("operation %s stays PENDING: %s", operation.id, error)
            return
        catalog.update_operation(operation.id, run_id=run_id)
        operation.run_id = run_id

    # Status -----------------------------------------------------------------------------------

    def runs_of_asset(self, asset_id: str) -> dict[str, Any]:
        """Every run of the asset's partition by operation id (and by run id, for MANUAL)."""
        from dagster import RunsFilter

        found: dict[str, Any] = {}
        for record in self.instance.get_run_records(
            RunsFilter(tags={PARTITION_TAG: asset_id}), limit=5000
        ):
            run = record.dagster_run
            found.setdefault(run.run_id, record)
            operation_id = run.tags.get(OPERATION_TAG)
            if operation_id:
                found.setdefault(operation_id, record)  # newest first: keep the newest
        return found

    def run_of_operation(self, operation: Operation) -> Any | None:
        """The operation's newest run record: by its tag, else (MANUAL) by its run id."""
        from dagster import RunsFilter

        records = self.instance.get_run_records(
            RunsFilter(tags={OPERATION_TAG: operation.id}), limit=1
        )
        if records:
            return records[0]
        if operation.run_id:
            return self.instance.get_run_record_by_id(operation.run_id)
        return None

    def known_state(self, operation: Operation) -> OperationState | None:
        """The state without asking Dagster: settled, or read less than the TTL ago."""
        if operation.final_status in TERMINAL:
            return self.state(operation)
        recent = self._recent.get(operation.id)
        if recent is not None and time.monotonic() - recent[0] < RUN_STATUS_TTL_SECONDS:
            return recent[1]
        return None

    def state(self, operation: Operation, runs: dict[str, Any] | None = None) -> OperationState:
        """The operation's state. ``runs`` (from :meth:`runs_of_asset`) saves a query per
        operation when many are read; an operation that has settled needs none."""
        if operation.final_status in TERMINAL:
            return OperationState(
                operation.final_status,
                None,
                operation.started_at,
                operation.completed_at,
                operation.error_message,
            )
        if runs is None:
            record = self.run_of_operation(operation)
        else:
            record = runs.get(operation.id) or (
                runs.get(operation.run_id) if operation.run_id else None
            )
        if record is None:
            if operation.cancel_requested_at:
                return OperationState("CANCELLED", None, None, operation.cancel_requested_at, None)
            return OperationState("PENDING", None, None, None, None)
        run = record.dagster_run
        status = operation_status(run.status.value)
        if operation.cancel_requested_at and status in {"PENDING", "RUNNING"}:
            self._retry_cancel(run)
        started = int(record.start_time * 1000) if record.start_time else None
        ended = int(record.end_time * 1000) if record.end_time else None
        error = None
        if status == "FAILED":
            error = operation.error_message or run_failure_message(self.instance, run.run_id)
        state = OperationState(status, run, started, ended if status in TERMINAL else None, error)
        if status in TERMINAL:
            self._settle(operation, state)
            self._recent.pop(operation.id, None)
        elif not operation.cancel_requested_at:
            self._remember(operation.id, state)
        return state

    def _remember(self, operation_id: str, state: OperationState) -> None:
        now = time.monotonic()
        if len(self._recent) > 10_000:  # bounded: drop what has expired
            self._recent = {
                k: v for k, v in self._recent.items() if now - v[0] < RUN_STATUS_TTL_SECONDS
            }
        self._recent[operation_id] = (now, state)

    def _settle(self, operation: Operation, state: OperationState) -> None:
        """Write an ended run's outcome to the operation once: it can no longer change."""
        if self.catalog is None:
            return
        fields = {
            "final_status": state.status,
            "started_at": state.started_at,
            "completed_at": state.completed_at,
            "error_message": state.error,
        }
        self.catalog.update_operation(operation.id, **fields)
        for name, value in fields.items():
            setattr(operation, name, value)

    # Cancel -----------------------------------------------------------------------------------

    def cancel(self, catalog: Catalog, operation: Operation) -> None:
        """Ask the run to stop; a run that cannot be cancelled yet is retried on later reads."""
        if operation.cancel_requested_at is None:
            catalog.update_operation(operation.id, cancel_requested_at=now_ms())
            operation.cancel_requested_at = now_ms()
        record = self.runs_of_asset(operation.asset_id).get(operation.id)
        if record is not None:
            self._retry_cancel(record.dagster_run)

    def _retry_cancel(self, run: Any) -> None:
        from dagster import DagsterRunStatus

        # STARTING and NOT_STARTED too: cancel_run terminates any run that is not queued.
        if run.status in (
            DagsterRunStatus.QUEUED,
            DagsterRunStatus.NOT_STARTED,
            DagsterRunStatus.STARTING,
            DagsterRunStatus.STARTED,
        ):
            try:
                self.instance.run_coordinator.cancel_run(run.run_id)
            except Exception:  # a run that just finished cannot be cancelled: nothing to do
                logger.info("cancel of run %s did not apply", run.run_id, exc_info=True)
