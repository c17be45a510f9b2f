"""Auto-update sensors: webhook events and poll schedules become WEBHOOK and POLL operations.

Both write the operation row (and consume what triggered it) in one catalog transaction
before asking Dagster for the run. The operation's id is derived from the run key, so a tick
evaluated again writes the same row; should the daemon die between the write and the run,
the pending-operations sensor launches the row. An asset with a run queued or in progress is
left alone: its waiting events, or its due poll, go into the operation after that run.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import dagster as dg

from fruxon_pipelines.autoupdate import AutoUpdateConfig, next_poll_ms
from fruxon_pipelines.catalog.models import Operation, now_ms
from fruxon_pipelines.catalog.store import Catalog
from fruxon_pipelines.jobs import ingest_job
from fruxon_pipelines.launcher import operation_id_for
from fruxon_pipelines.partitions import KNOWLEDGE_ASSET_PARTITIONS
from fruxon_pipelines.resources import CatalogResource
from fruxon_pipelines.sensors.pending_operations import (
    operation_run_request,
    unsubmitted_run_requests,
)
from fruxon_pipelines.settings import Settings
from fruxon_pipelines.tags import PARTITION_TAG
from fruxon_pipelines.webhooks import merged_request

ACTIVE_RUN_STATUSES = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]
# A tick waits for a burst to go quiet at most this long (the gRPC timeout is 60 s).
MAX_DEBOUNCE_SECONDS = 10.0
# Events an operation took are kept this long (what triggered an operation), then pruned.
EVENT_RETENTION_MS = 7 * 24 * 3600 * 1000
PRUNE_EVERY_SECONDS = 600
_last_prune = {"at": float("-inf")}


def asset_is_busy(instance: dg.DagsterInstance, asset_id: str) -> bool:
    """A run of the asset is queued or in progress (by partition: runs started in the UI too)."""
    records = instance.get_run_records(
        dg.RunsFilter(tags={PARTITION_TAG: asset_id}, statuses=ACTIVE_RUN_STATUSES), limit=1
    )
    return bool(records)


def _quiet_assets(store: Catalog, debounce_seconds: float) -> list[str]:
    """Assets with waiting events, once none has arrived for ``debounce_seconds`` (a bounded
    wait), longest-waiting first."""
    waiting = store.assets_with_waiting_events()
    deadline = time.monotonic() + MAX_DEBOUNCE_SECONDS
    while waiting and debounce_seconds > 0:
        quiet = (now_ms() - max(newest for _, newest in waiting)) / 1000
        left = deadline - time.monotonic()
        if quiet >= debounce_seconds or left <= 0:
            break
        time.sleep(min(debounce_seconds - quiet, left))
        waiting = store.assets_with_waiting_events()
    return [asset_id for asset_id, _ in waiting]


def webhook_run_requests(
    instance: dg.DagsterInstance, store: Catalog, asset_ids: Sequence[str]
) -> tuple[list[dg.RunRequest], int]:
    """One WEBHOOK operation per idle asset for its waiting events; returns the run requests
    and how many assets were busy (their events wait)."""
    requests, busy = [], 0
    for asset_id in asset_ids:
        asset = store.get_asset(asset_id)
        if asset is None or asset.status == "DELETING":
            continue
        if not instance.has_dynamic_partition(KNOWLEDGE_ASSET_PARTITIONS, asset_id):
            continue
        if asset_is_busy(instance, asset_id):
            busy += 1
            continue
        batch = store.waiting_webhook_events(asset_id)
        if not batch:
            continue
        request = merged_request(batch)
        partial = bool(request["documentIds"] or request["sourceKeys"])
        if request["documentIds"]:
            alive = {d.id for d in store.documents_by_id(asset_id, request["documentIds"])}
            request["documentIds"] = [d for d in request["documentIds"] if d in alive]
        event_ids = [e.id for e in batch]
        if partial and not request["documentIds"] and not request["sourceKeys"]:
            store.discard_webhook_events(event_ids)  # every document they named is gone
            continue
        run_key = f"webhook:{asset_id}:{batch[-1].id}"
        operation = Operation(
            id=operation_id_for(run_key),
            asset_id=asset_id,
            tenant=asset.tenant,
            type="WEBHOOK",
            created_by="webhook",
            request=request | {"runKey": run_key},
        )
        stored = store.assign_webhook_events(event_ids, operation)
        requests.append(operation_run_request(stored, run_key))
    return requests, busy


def _unlaunched(instance: dg.DagsterInstance, store: Catalog, kind: str) -> list[dg.RunRequest]:
    """This sensor's operations that an interrupted tick wrote but never got a run: asked for
    again under their own run key, which Dagster launches at most once per sensor."""
    operations = store.operations_without_run(created_before=now_ms(), types=(kind,))
    return unsubmitted_run_requests(
        instance, store, operations, run_key_of=lambda op: op.request["runKey"]
    )


def build_webhook_sensor(settings: Settings) -> dg.SensorDefinition:
    @dg.sensor(
        name="webhook_events_sensor",
        job=ingest_job,
        minimum_interval_seconds=settings.webhook_sensor_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Turns stored webhook deliveries into one WEBHOOK operation per asset.",
    )
    def webhook_events_sensor(
        context: dg.SensorEvaluationContext, catalog: CatalogResource
    ) -> dg.SensorResult | dg.SkipReason:
        store = catalog.get()
        if time.monotonic() - _last_prune["at"] > PRUNE_EVERY_SECONDS:
            _last_prune["at"] = time.monotonic()
            store.prune_webhook_events(received_before=now_ms() - EVENT_RETENTION_MS)
        requests = _unlaunched(context.instance, store, "WEBHOOK")
        asset_ids = _quiet_assets(store, settings.webhook_debounce_seconds)
        made, busy = webhook_run_requests(context.instance, store, asset_ids)
        requests += made
        if not requests:
            if asset_ids:
                return dg.SkipReason(f"events of {busy} busy assets wait for their runs")
            return dg.SkipReason("no webhook event is waiting")
        return dg.SensorResult(run_requests=requests)

    return webhook_events_sensor


def poll_run_requests(instance: dg.DagsterInstance, store: Catalog) -> list[dg.RunRequest]:
    """A POLL operation for every idle asset whose next poll is due; missed ticks are one."""
    now = now_ms()
    requests = _unlaunched(instance, store, "POLL")
    for asset in store.assets_due_for_poll(now):
        config = AutoUpdateConfig.model_validate(asset.auto_update or {})
        if config.strategy != "POLL":
            continue  # set_auto_update clears next_poll_at itself; nothing is due
        if not instance.has_dynamic_partition(KNOWLEDGE_ASSET_PARTITIONS, asset.id):
            continue
        if asset_is_busy(instance, asset.id):
            continue  # still due: polled once the current run is over
        run_key = f"poll:{asset.id}:{asset.next_poll_at}"
        operation = Operation(
            id=operation_id_for(run_key),
            asset_id=asset.id,
            tenant=asset.tenant,
            type="POLL",
            created_by="poll schedule",
            request={"documentIds": [], "force": False, "runKey": run_key},
        )
        stored = store.start_poll(
            operation, asset, polled_at=now, next_poll_at=next_poll_ms(config, now)
        )
        if stored is not None:  # None: a PATCH changed the schedule meanwhile
            requests.append(operation_run_request(stored, run_key))
    return requests


def build_poll_sensor(settings: Settings) -> dg.SensorDefinition:
    @dg.sensor(
        name="poll_schedule_sensor",
        job=ingest_job,
        minimum_interval_seconds=settings.poll_sensor_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Launches a POLL operation for each asset whose poll schedule is due.",
    )
    def poll_schedule_sensor(
        context: dg.SensorEvaluationContext, catalog: CatalogResource
    ) -> dg.SensorResult | dg.SkipReason:
        requests = poll_run_requests(context.instance, catalog.get())
        if not requests:
            return dg.SkipReason("no asset is due for a poll")
        return dg.SensorResult(run_requests=requests)

    return poll_schedule_sensor
