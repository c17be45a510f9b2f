"""The one gateway to Dagster's run machinery: submit, find by tag, status, terminate,
partitions.

Services speak to :class:`RunGateway`, a small protocol in the domain's words (operations,
assets, :class:`RunInfo`); :class:`DagsterGateway` is its implementation over a Dagster
instance. The services, the API, the CLI and the sensors reach runs only through it (the
stack supervisor, ``stack.py``, also starts Dagster's processes and creates its storage).
Nothing here changes the process's environment: the instance is loaded from
``FRUXON_HOME/dagster`` by path, and Dagster is imported only when a gateway first needs it.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from fruxon_pipelines.catalog.models import Operation
from fruxon_pipelines.domain import OperationStatus
from fruxon_pipelines.orchestration.runs import (
    INGEST_JOB,
    LOCATION_NAME,
    REPOSITORY_NAME,
    operation_run_config,
    operation_status,
    run_tags,
)
from fruxon_pipelines.settings import Settings
from fruxon_pipelines.tags import KNOWLEDGE_ASSET_PARTITIONS, OPERATION_TAG, PARTITION_TAG

logger = logging.getLogger("fruxon.orchestration")
PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent
# Dagster's run statuses from which a run can still be asked to stop (cancel_run terminates any
# run that is not queued, STARTING and NOT_STARTED included).
CANCELLABLE_RUN_STATUSES = ("QUEUED", "NOT_STARTED", "STARTING", "STARTED")
# A run in one of these holds its asset: the next run of it waits.
IN_PROGRESS_RUN_STATUSES = (*CANCELLABLE_RUN_STATUSES, "CANCELING")


class LaunchError(RuntimeError):
    """The run could not be submitted (the webserver is away, say)."""


@dataclass(frozen=True)
class RunInfo:
    """What the house needs of one Dagster run."""

    run_id: str
    run_status: str  # Dagster's own (QUEUED, STARTED, SUCCESS …)
    started_at: int | None  # ms since the epoch
    ended_at: int | None
    operation_id: str | None

    @property
    def status(self) -> OperationStatus:
        """The operation status this run's status stands for."""
        return operation_status(self.run_status)

    @property
    def cancellable(self) -> bool:
        return self.run_status in CANCELLABLE_RUN_STATUSES


class RunGateway(Protocol):
    """What services ask of the orchestrator."""

    def submit(self, operation: Operation) -> str:
        """Submit the operation's run; its run id. Raises :class:`LaunchError`."""

    def runs_of_asset(self, asset_id: str) -> dict[str, RunInfo]:
        """The asset's runs by operation id and by run id (newest wins)."""

    def run_of_operation(self, operation: Operation) -> RunInfo | None:
        """The operation's newest run: by its tag, else (MANUAL) by its run id."""

    def failure_message(self, run_id: str) -> str | None:
        """Why a failed run failed, in words a user can act on."""

    def terminate(self, run_id: str) -> None:
        """Ask a run to stop (a queued one never starts)."""

    def asset_is_busy(self, asset_id: str) -> bool:
        """A run of the asset is queued or in progress (a run started in the UI too)."""

    def add_partition(self, asset_id: str) -> None: ...

    def delete_partition(self, asset_id: str) -> None: ...

    def has_partition(self, asset_id: str) -> bool: ...


def prepare_dagster_home(settings: Settings) -> Path:
    """DAGSTER_HOME under FRUXON_HOME, holding the project's dagster.yaml (copied when it
    changed). The process's environment is left alone: the stack hands DAGSTER_HOME to its
    children, and this process loads the instance by path."""
    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    template = PROJECT_ROOT / (settings.dagster_yaml or "dagster.yaml")  # relative: to the project
    target = home / "dagster.yaml"
    if template.exists() and (not target.exists() or target.read_bytes() != template.read_bytes()):
        shutil.copyfile(template, target)
    return home


def dagster_instance(settings: Settings) -> Any:
    """The stack's Dagster instance (``FRUXON_HOME/dagster``), loaded by path."""
    from dagster import DagsterInstance

    return DagsterInstance.from_config(str(prepare_dagster_home(settings)))


# A submit the webserver has not answered by then is given up (the operation stays PENDING):
# well under the grace after which a sensor launches an operation that has no run (10 s,
# services.auto_update.GRACE_MS), so a slow submit that lands late is found by its tag there
# rather than launched twice. Dagster's client waits 300 s by default.
SUBMIT_TIMEOUT_SECONDS = 5


def graphql_submitter(settings: Settings) -> Callable[[Operation], str]:
    """Submits through the webserver's GraphQL endpoint, so the run goes through the queued run
    coordinator, its per-asset limit and the UI like any other."""

    def submit(operation: Operation) -> str:
        from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError

        client = DagsterGraphQLClient(
            settings.dagster_host, port_number=settings.dagster_port, timeout=SUBMIT_TIMEOUT_SECONDS
        )
        try:
            return client.submit_job_execution(
                INGEST_JOB,
                repository_location_name=LOCATION_NAME,
                repository_name=REPOSITORY_NAME,
                run_config=operation_run_config(operation),
                tags=run_tags(operation),
            )
        except (DagsterGraphQLClientError, OSError) as error:
            raise LaunchError(
                f"could not submit the run to the Dagster webserver at "
                f"{settings.dagster_host}:{settings.dagster_port} ({error}); is the stack "
                "running (make run)?"
            ) from error

    return submit


class DagsterGateway:
    """:class:`RunGateway` over a Dagster instance: the stack's (loaded on first use) or one
    handed in (a sensor's ``context.instance``, a test's instance)."""

    def __init__(
        self,
        settings: Settings | None = None,
        instance: Any | None = None,
        submitter: Callable[[Operation], str] | None = None,
    ) -> None:
        if settings is None and instance is None:
            raise ValueError("a gateway needs the stack's settings or an instance")
        self.settings = settings
        self._instance = instance
        self._submitter = submitter
        self._lock = threading.Lock()

    @property
    def instance(self) -> Any:
        with self._lock:
            if self._instance is None:
                self._instance = dagster_instance(self.settings)
            return self._instance

    # Submit and stop --------------------------------------------------------------------------

    def submit(self, operation: Operation) -> str:
        if self._submitter is None:
            if self.settings is None:
                raise LaunchError("this gateway only reads runs (it has no webserver to submit to)")
            self._submitter = graphql_submitter(self.settings)
        return self._submitter(operation)

    def terminate(self, run_id: str) -> None:
        try:
            self.instance.run_coordinator.cancel_run(run_id)
        except Exception:  # a run that just finished cannot be cancelled: nothing to do
            logger.info("cancel of run %s did not apply", run_id, exc_info=True)

    # Find and read ----------------------------------------------------------------------------

    def runs_of_asset(self, asset_id: str) -> dict[str, RunInfo]:
        from dagster import RunsFilter

        found: dict[str, RunInfo] = {}
        for record in self.instance.get_run_records(
            RunsFilter(tags={PARTITION_TAG: asset_id}), limit=5000
        ):
            run = _run_info(record)
            found.setdefault(run.run_id, run)
            if run.operation_id:
                found.setdefault(run.operation_id, run)  # newest first: keep the newest
        return found

    def run_of_operation(self, operation: Operation) -> RunInfo | None:
        from dagster import RunsFilter

        records = self.instance.get_run_records(
            RunsFilter(tags={OPERATION_TAG: operation.id}), limit=1
        )
        if records:
            return _run_info(records[0])
        if operation.run_id:
            record = self.instance.get_run_record_by_id(operation.run_id)
            return _run_info(record) if record is not None else None
        return None

    def asset_is_busy(self, asset_id: str) -> bool:
        from dagster import DagsterRunStatus, RunsFilter

        active = [DagsterRunStatus(status) for status in IN_PROGRESS_RUN_STATUSES]
        records = self.instance.get_run_records(
            RunsFilter(tags={PARTITION_TAG: asset_id}, statuses=active), limit=1
        )
        return bool(records)

    def failure_message(self, run_id: str) -> str | None:
        """The first step failure's message (what a user needs), else the run failure's."""
        from dagster import DagsterEventType

        for event_type in (DagsterEventType.STEP_FAILURE, DagsterEventType.RUN_FAILURE):
            records = self.instance.get_records_for_run(run_id, of_type=event_type, limit=1)
            for record in records.records:
                event = record.event_log_entry.dagster_event
                data = getattr(event, "event_specific_data", None)
                error = getattr(data, "error", None)
                if error is not None:
                    return error.message.strip()
                if event is not None and event.message:
                    return event.message
        return None

    # Partitions -------------------------------------------------------------------------------

    def add_partition(self, asset_id: str) -> None:
        self.instance.add_dynamic_partitions(KNOWLEDGE_ASSET_PARTITIONS, [asset_id])

    def delete_partition(self, asset_id: str) -> None:
        self.instance.delete_dynamic_partition(KNOWLEDGE_ASSET_PARTITIONS, asset_id)

    def has_partition(self, asset_id: str) -> bool:
        return self.instance.has_dynamic_partition(KNOWLEDGE_ASSET_PARTITIONS, asset_id)


def _run_info(record: Any) -> RunInfo:
    run = record.dagster_run
    return RunInfo(
        run_id=run.run_id,
        run_status=run.status.value,
        started_at=int(record.start_time * 1000) if record.start_time else None,
        ended_at=int(record.end_time * 1000) if record.end_time else None,
        operation_id=run.tags.get(OPERATION_TAG),
    )
