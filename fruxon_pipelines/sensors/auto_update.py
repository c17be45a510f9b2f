"""Auto-update sensors: webhook events and poll schedules become WEBHOOK and POLL operations
(``services.auto_update`` decides which and writes them; the sensors ask Dagster to run them).
"""

from __future__ import annotations

import time

import dagster as dg

from fruxon_pipelines.catalog.models import now_ms
from fruxon_pipelines.domain import OperationType
from fruxon_pipelines.orchestration.gateway import DagsterGateway
from fruxon_pipelines.resources import CatalogResource
from fruxon_pipelines.sensors.launching import ingest_sensor, launching_sensor, run_requests
from fruxon_pipelines.services.auto_update import (
    GRACE_MS,
    poll_operations,
    quiet_assets,
    unlaunched,
    webhook_operations,
)
from fruxon_pipelines.settings import Settings

# Events an operation took are kept this long (what triggered an operation), then pruned.
EVENT_RETENTION_MS = 7 * 24 * 3600 * 1000
PRUNE_EVERY_SECONDS = 600
_last_prune = {"at": float("-inf")}


def build_webhook_sensor(settings: Settings) -> dg.SensorDefinition:
    @ingest_sensor(
        "webhook_events_sensor",
        settings.webhook_sensor_interval_seconds,
        "Turns stored webhook deliveries into one WEBHOOK operation per asset.",
    )
    def webhook_events_sensor(
        context: dg.SensorEvaluationContext, catalog: CatalogResource
    ) -> dg.SensorResult | dg.SkipReason:
        store = catalog.get()
        runs = DagsterGateway(instance=context.instance)
        if time.monotonic() - _last_prune["at"] > PRUNE_EVERY_SECONDS:
            _last_prune["at"] = time.monotonic()
            store.prune_webhook_events(received_before=now_ms() - EVENT_RETENTION_MS)
        wanted = unlaunched(runs, store, OperationType.WEBHOOK.value, grace_ms=GRACE_MS)
        asset_ids = quiet_assets(store, settings.webhook_debounce_seconds)
        made, busy = webhook_operations(runs, store, asset_ids)
        requests = run_requests([*wanted, *made])
        if not requests:
            if asset_ids:
                return dg.SkipReason(f"events of {busy} busy assets wait for their runs")
            return dg.SkipReason("no webhook event is waiting")
        return dg.SensorResult(run_requests=requests)

    return webhook_events_sensor


def build_poll_sensor(settings: Settings) -> dg.SensorDefinition:
    return launching_sensor(
        "poll_schedule_sensor",
        settings.poll_sensor_interval_seconds,
        "Launches a POLL operation for each asset whose poll schedule is due.",
        poll_operations,
        idle="no asset is due for a poll",
    )
