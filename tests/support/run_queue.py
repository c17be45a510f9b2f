"""A real Dagster instance's run queue, worked by the test instead of the daemon.

The API's gateway submits each operation's run to it as the webserver would (a QUEUED run with
the operation's tags and run config, through the instance's queued run coordinator); the test
then runs what is queued, in order, in its own process, through Dagster's own `execute_run`.
So launch, status, settle and cancel are all the real code paths below the end-to-end suite:
only the daemon that dequeues, and the run worker process, are the test's.
"""

from __future__ import annotations

from typing import Any

import dagster as dg
from dagster._core.definitions.job_base import InMemoryJob
from dagster._core.events import DagsterEvent, DagsterEventType
from dagster._core.execution.api import execute_run
from dagster._core.remote_origin import (
    InProcessCodeLocationOrigin,
    RemoteJobOrigin,
    RemoteRepositoryOrigin,
)
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

from fruxon_pipelines.catalog.models import Operation
from fruxon_pipelines.definitions import INGESTION_ASSETS, INGESTION_CHECKS
from fruxon_pipelines.jobs import ingest_job
from fruxon_pipelines.orchestration.runs import (
    INGEST_JOB,
    LOCATION_NAME,
    REPOSITORY_NAME,
    operation_run_config,
    run_tags,
)

# What `dagster.yaml` configures for the stack; the test instance queues runs the same way.
QUEUED_INSTANCE = {
    "run_coordinator": {"module": "dagster._core.run_coordinator", "class": "QueuedRunCoordinator"}
}


class InProcessRunQueue:
    """Submit to, and work, the run queue of ``instance``."""

    def __init__(self, instance: dg.DagsterInstance, resources: dict[str, Any]) -> None:
        self.instance = instance
        defs = dg.Definitions(
            assets=INGESTION_ASSETS,
            asset_checks=INGESTION_CHECKS,
            jobs=[ingest_job],
            resources=resources,
        )
        self.job = defs.resolve_job_def(INGEST_JOB)
        self.origin = RemoteJobOrigin(
            repository_origin=RemoteRepositoryOrigin(
                code_location_origin=InProcessCodeLocationOrigin(
                    loadable_target_origin=LoadableTargetOrigin(
                        module_name="fruxon_pipelines.definitions"
                    ),
                    location_name=LOCATION_NAME,
                ),
                repository_name=REPOSITORY_NAME,
            ),
            job_name=INGEST_JOB,
        )

    def submit(self, operation: Operation) -> str:
        """What the webserver does with a submitted run: queue it."""
        run = self.instance.create_run_for_job(
            self.job,
            run_config=operation_run_config(operation),
            tags=run_tags(operation),
            status=dg.DagsterRunStatus.QUEUED,
            remote_job_origin=self.origin,
        )
        return run.run_id

    def run_queued(self) -> list[dg.DagsterRun]:
        """Run every queued run, oldest first, as the daemon would dequeue them; the ended
        runs."""
        queued = self.instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.QUEUED]))
        ended = []
        for run in reversed(queued):  # get_runs is newest first
            starting = DagsterEvent(
                event_type_value=DagsterEventType.PIPELINE_STARTING.value, job_name=run.job_name
            )
            self.instance.report_dagster_event(starting, run_id=run.run_id)
            execute_run(
                InMemoryJob(self.job), self.instance.get_run_by_id(run.run_id), self.instance
            )
            ended.append(self.instance.get_run_by_id(run.run_id))
        return ended
