"""What the three sensors share: each launches ingest runs for the operations a service wants
run, on an interval, running from the start (``DefaultSensorStatus.RUNNING``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import dagster as dg

from fruxon_pipelines.jobs import ingest_job
from fruxon_pipelines.orchestration.gateway import DagsterGateway
from fruxon_pipelines.orchestration.runs import operation_run_config, run_tags
from fruxon_pipelines.resources import CatalogResource
from fruxon_pipelines.services.auto_update import RunToRequest

# What a sensor asks a service: the runs Dagster should start now, given its runs and the catalog.
WantedRuns = Callable[[DagsterGateway, Any], Iterable[RunToRequest]]


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


def ingest_sensor(
    name: str, interval_seconds: int, description: str
) -> Callable[[Callable[..., Any]], dg.SensorDefinition]:
    """``@dg.sensor`` for a sensor that launches the ingest job every ``interval_seconds``."""
    return dg.sensor(
        name=name,
        job=ingest_job,
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=description,
    )


def launching_sensor(
    name: str, interval_seconds: int, description: str, wanted: WantedRuns, idle: str
) -> dg.SensorDefinition:
    """A sensor that requests the runs ``wanted`` names each tick, or skips saying ``idle``."""

    @ingest_sensor(name, interval_seconds, description)
    def sensor(
        context: dg.SensorEvaluationContext, catalog: CatalogResource
    ) -> dg.SensorResult | dg.SkipReason:
        runs = DagsterGateway(instance=context.instance)
        requests = run_requests(wanted(runs, catalog.get()))
        if not requests:
            return dg.SkipReason(idle)
        return dg.SensorResult(run_requests=requests)

    return sensor
