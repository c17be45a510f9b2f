"""Auto-update sensors: webhook events and poll schedules become WEBHOOK and POLL operations.

Both write the operation row (and consume what triggered it) in one catalog transaction
before asking Dagster for the run. The operation's id is derived from the run key, so a tick
evaluated again writes the same row; should the daemon die between the write and the run,
the pending-operations sensor launches the row. An asset with a run queued or in progress is
left alone: its waiting events, or its due poll, go into the operation after that run.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence

import dagster as dg

from fruxon_pipelines.autoupdate import AutoUpdateConfig, next_poll_ms
from fruxon_pipelines.catalog.models import Operation, WebhookEvent, now_ms
from fruxon_pipelines.catalog.store import Catalog
from fruxon_pipelines.jobs import ingest_job
from fruxon_pipelines.launcher import operation_id_for, operation_run_config, run_tags
from fruxon_pipelines.partitions import KNOWLEDGE_ASSET_PARTITIONS
from fruxon_pipelines.resources import CatalogResource
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


def _run_request(run_key: str, operation: Operation, **tags: str) -> dg.RunRequest:
    return dg.RunRequest(
        run_key=run_key,
        partition_key=operation.asset_id,
        run_config=operation_run_config(operation),
        tags=run_tags(operation) | tags,
    )


def _quiet_events(store: Catalog, debounce_seconds: float) -> list[WebhookEvent]:
    """The waiting events, once none has arrived for ``debounce_seconds`` (bounded wait)."""
    events = store.waiting_webhook_events()
    deadline = time.monotonic() + MAX_DEBOUNCE_SECONDS
    while events and debounce_seconds > 0:
        quiet = (now_ms() - max(e.received_at for e in events)) / 1000
        left = deadline - time.monotonic()
        if quiet >= debounce_seconds or left <= 0:
            break
        time.sleep(min(debounce_seconds - quiet, left))
        events = store.waiting_webhook_events()
    return events


def webhook_run_requests(
    instance: dg.DagsterInstance, store: Catalog, events: Sequence[WebhookEvent]
) -> tuple[list[dg.RunRequest], int]:
    """One WEBHOOK operation per idle asset for its waiting events; returns the run requests
    and how many assets were busy (their events wait)."""
    by_asset: dict[str, list[WebhookEvent]] = defaultdict(list)
    for event in events:
        by_asset[event.asset_id].append(event)
    requests, busy = [], 0
    for asset_id, batch in by_asset.items():
        asset = store.get_asset(asset_id)
        if asset is None or asset.status == "DELETING":
            continue
        if not instance.has_dynamic_partition(KNOWLEDGE_ASSET_PARTITIONS, asset_id):
            continue
        if asset_is_busy(instance, asset_id):
            busy += 1
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
            request=request,
        )
        stored = store.assign_webhook_events(event_ids, operation)
        requests.append(_run_request(run_key, stored))
    return requests, busy


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
        events = _quiet_events(store, settings.webhook_debounce_seconds)
        if not events:
            return dg.SkipReason("no webhook event is waiting")
        requests, busy = webhook_run_requests(context.instance, store, events)
        if not requests:
            return dg.SkipReason(f"{len(events)} events wait for {busy} busy assets")
        # The cursor only shows progress in the UI; the catalog says what is consumed.
        return dg.SensorResult(run_requests=requests, cursor=str(events[-1].id))

    return webhook_events_sensor


def poll_run_requests(instance: dg.DagsterInstance, store: Catalog) -> list[dg.RunRequest]:
    """A POLL operation for every idle asset whose next poll is due; missed ticks are one."""
    now = now_ms()
    requests = []
    for asset in store.assets_due_for_poll(now):
        config = AutoUpdateConfig.model_validate(asset.auto_update or {})
        if config.strategy != "POLL":
            store.update_asset(asset.id, next_poll_at=None)
            continue
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
            request={"documentIds": [], "force": False},
        )
        stored = store.start_poll(operation, polled_at=now, next_poll_at=next_poll_ms(config, now))
        # Scheduled polls yield to refreshes people asked for.
        requests.append(_run_request(run_key, stored, **{"dagster/priority": "-1"}))
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
