"""Launches operations that were written but never got a run (the webserver was down, say).

The API and CLI write the operation row first and then submit through GraphQL; this sensor is
the crash-safe path behind that: `run_key` = operation id, so each operation runs at most once.
"""

import dagster as dg

from fruxon_pipelines.catalog.models import now_ms
from fruxon_pipelines.jobs import ingest_job
from fruxon_pipelines.launcher import operation_run_config, run_tags
from fruxon_pipelines.partitions import KNOWLEDGE_ASSET_PARTITIONS
from fruxon_pipelines.resources import CatalogResource
from fruxon_pipelines.tags import OPERATION_TAG

# An operation younger than this is still being submitted by the API or CLI.
GRACE_MS = 10_000


@dg.sensor(
    job=ingest_job,
    minimum_interval_seconds=5,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Runs operations that were written but never submitted.",
)
def pending_operations_sensor(
    context: dg.SensorEvaluationContext, catalog: CatalogResource
) -> dg.SensorResult | dg.SkipReason:
    store = catalog.get()
    requests = []
    for operation in store.operations_without_run(created_before=now_ms() - GRACE_MS):
        runs = context.instance.get_run_records(
            dg.RunsFilter(tags={OPERATION_TAG: operation.id}), limit=1
        )
        if runs:
            store.update_operation(operation.id, run_id=runs[0].dagster_run.run_id)
            continue
        if not context.instance.has_dynamic_partition(
            KNOWLEDGE_ASSET_PARTITIONS, operation.asset_id
        ):
            continue  # the asset is gone; its operation never runs
        requests.append(
            dg.RunRequest(
                run_key=operation.id,
                partition_key=operation.asset_id,
                run_config=operation_run_config(operation),
                tags=run_tags(operation),
            )
        )
    if not requests:
        return dg.SkipReason("no operation is waiting for a run")
    return dg.SensorResult(run_requests=requests)
