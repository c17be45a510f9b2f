"""Launches operations that were written but never got a run (the webserver was down, say).

The API and CLI write the operation row first and then submit through GraphQL; this sensor is
the crash-safe path behind that: `run_key` = operation id, so each operation runs at most once.
Operations the auto-update sensors write (WEBHOOK, POLL) are theirs to relaunch, under the run
key they first asked with: Dagster dedupes run keys per sensor, so two sensors must never ask
for one operation.
"""

from collections.abc import Callable, Iterable

import dagster as dg

from fruxon_pipelines.catalog.models import Operation, now_ms
from fruxon_pipelines.catalog.store import Catalog
from fruxon_pipelines.jobs import ingest_job
from fruxon_pipelines.launcher import operation_run_config, run_tags
from fruxon_pipelines.partitions import KNOWLEDGE_ASSET_PARTITIONS
from fruxon_pipelines.resources import CatalogResource
from fruxon_pipelines.tags import OPERATION_TAG

# An operation younger than this is still being submitted by the API or CLI.
GRACE_MS = 10_000
SENSOR_OPERATION_TYPES = ("WEBHOOK", "POLL")


def operation_run_request(operation: Operation, run_key: str) -> dg.RunRequest:
    return dg.RunRequest(
        run_key=run_key,
        partition_key=operation.asset_id,
        run_config=operation_run_config(operation),
        tags=run_tags(operation),
    )


def unsubmitted_run_requests(
    instance: dg.DagsterInstance,
    store: Catalog,
    operations: Iterable[Operation],
    run_key_of: Callable[[Operation], str],
) -> list[dg.RunRequest]:
    """Run requests for those of ``operations`` that have no run yet; the others learn their
    run id."""
    requests = []
    for operation in operations:
        runs = instance.get_run_records(dg.RunsFilter(tags={OPERATION_TAG: operation.id}), limit=1)
        if runs:
            store.update_operation(operation.id, run_id=runs[0].dagster_run.run_id)
            continue
        if not instance.has_dynamic_partition(KNOWLEDGE_ASSET_PARTITIONS, operation.asset_id):
            continue  # the asset is gone; its operation never runs
        requests.append(operation_run_request(operation, run_key_of(operation)))
    return requests


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
    operations = store.operations_without_run(
        created_before=now_ms() - GRACE_MS, exclude_types=SENSOR_OPERATION_TYPES
    )
    requests = unsubmitted_run_requests(
        context.instance, store, operations, run_key_of=lambda op: op.id
    )
    if not requests:
        return dg.SkipReason("no operation is waiting for a run")
    return dg.SensorResult(run_requests=requests)
