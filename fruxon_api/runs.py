"""The only API module that talks to Dagster: launch, read status, cancel, partitions."""

from __future__ import annotations

import logging
import threading
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


@dataclass
class OperationState:
    status: str
    run: Any | None  # DagsterRun
    started_at: int | None
    completed_at: int | None
    error: str | None


class Runs:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._instance: Any | None = None
        self._lock = threading.Lock()

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

    def state(self, operation: Operation, runs: dict[str, Any] | None = None) -> OperationState:
        if runs is None:
            runs = self.runs_of_asset(operation.asset_id)
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
        return OperationState(status, run, started, ended if status in TERMINAL else None, error)

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
