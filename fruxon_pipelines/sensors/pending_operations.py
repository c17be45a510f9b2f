"""Launches operations that were written but never got a run (the webserver was down, say).

The API and CLI write the operation row first and then submit through GraphQL; this sensor is
the crash-safe path behind that: `run_key` = operation id, so each operation runs at most once.
Operations the auto-update sensors write (WEBHOOK, POLL) are theirs to relaunch
(``services.auto_update``).
"""

from collections.abc import Iterable

import dagster as dg

from fruxon_pipelines.jobs import ingest_job
from fruxon_pipelines.orchestration.gateway import DagsterGateway
from fruxon_pipelines.orchestration.runs import operation_run_config, run_tags
from fruxon_pipelines.resources import CatalogResource
from fruxon_pipelines.services.auto_update import RunToRequest, operations_without_runs


def run_requests(wanted: Iterable[RunToRequest]) -> list[dg.RunRequest]:
    """Dagster's run requests for the operations a service wants run."""
    return [
        dg.RunRequest(
            run_key=item.run_key,
            partition_key=item.operation.asset_id,
            run_config=operation_run_config(item.operation),
            tags=run_tags(item.operation),
        )
        for item in wanted
    ]


@dg.sensor(
    job=ingest_job,
    minimum_interval_seconds=5,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Runs operations that were written but never submitted.",
)
def pending_operations_sensor(
    context: dg.SensorEvaluationContext, catalog: CatalogResource
) -> dg.SensorResult | dg.SkipReason:
    runs = DagsterGateway(instance=context.instance)
    requests = run_requests(operations_without_runs(runs, catalog.get()))
    if not requests:
        return dg.SkipReason("no operation is waiting for a run")
    return dg.SensorResult(run_requests=requests)
