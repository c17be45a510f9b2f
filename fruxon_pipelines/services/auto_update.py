"""Auto-update: stored webhook deliveries and due poll schedules become WEBHOOK and POLL
operations, which the sensors hand to Dagster as run requests.

Deliveries have a faster path too: the API launches an asset's WEBHOOK operation itself once
its events have been quiet for the debounce (``launch_webhook_operations``). Whoever claims the
events first, the API or the webhook sensor, writes the operation and launches it; the sensor
launches what the API could not (the webserver away, the asset busy, the API restarted).

Each operation is written (and what triggered it consumed) in one catalog transaction before
its run is asked for. Its id is derived from its run key, so a tick evaluated again writes the
same row; should the daemon die between the write and the run, the sensor that wrote it asks
again under the same run key (after ``GRACE_MS``, which the API's own launches need). An asset
with a run queued or in progress is left alone: its waiting events, or its due poll, go into
the operation after that run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fruxon_pipelines.autoupdate import AutoUpdateConfig, next_poll_ms
from fruxon_pipelines.catalog.models import Operation, now_ms
from fruxon_pipelines.catalog.store import Catalog
from fruxon_pipelines.domain import AssetStatus, OperationType
from fruxon_pipelines.orchestration.gateway import RunGateway
from fruxon_pipelines.orchestration.runs import operation_id_for
from fruxon_pipelines.webhooks import merged_request

if TYPE_CHECKING:
    from fruxon_pipelines.services.context import Services

# A tick waits for a burst to go quiet at most this long (the gRPC timeout is 60 s).
MAX_DEBOUNCE_SECONDS = 10.0
# An operation younger than this is still being submitted by the API or CLI.
GRACE_MS = 10_000
# Operations that sensors write: theirs to relaunch, under the run key they first asked with
# (Dagster dedupes run keys per sensor, so two sensors must never ask for one operation).
SENSOR_OPERATION_TYPES = (OperationType.WEBHOOK.value, OperationType.POLL.value)


@dataclass(frozen=True)
class RunToRequest:
    """An operation the orchestrator is to run, under ``run_key`` (at most once)."""

    operation: Operation
    run_key: str


def unsubmitted(
    runs: RunGateway,
    catalog: Catalog,
    operations: Iterable[Operation],
    run_key_of: Callable[[Operation], str],
) -> list[RunToRequest]:
    """Those of ``operations`` that have no run yet; the others learn their run id."""
    wanted = []
    for operation in operations:
        run = runs.run_of_operation(operation)  # by its tag: it has no run id yet
        if run is not None:
            catalog.update_operation(operation.id, run_id=run.run_id)
            continue
        if not runs.has_partition(operation.asset_id):
            continue  # the asset is gone; its operation never runs
        wanted.append(RunToRequest(operation, run_key_of(operation)))
    return wanted


def operations_without_runs(runs: RunGateway, catalog: Catalog) -> list[RunToRequest]:
    """Operations the API or CLI wrote but whose run never got to Dagster (the webserver was
    away), past a grace period: run key = operation id."""
    operations = catalog.operations_without_run(
        created_before=now_ms() - GRACE_MS, exclude_types=SENSOR_OPERATION_TYPES
    )
    return unsubmitted(runs, catalog, operations, run_key_of=lambda op: op.id)


def unlaunched(
    runs: RunGateway, catalog: Catalog, kind: str, grace_ms: int = 0
) -> list[RunToRequest]:
    """A sensor's operations that an interrupted tick wrote but never got a run (older than
    ``grace_ms``: the API's WEBHOOK operations are being submitted for that long)."""
    operations = catalog.operations_without_run(created_before=now_ms() - grace_ms, types=(kind,))
    return unsubmitted(runs, catalog, operations, run_key_of=lambda op: op.request["runKey"])


def debounce_wait(quiet: float, waited: float, debounce_seconds: float) -> float:
    """Seconds still to wait before launching events quiet for ``quiet`` s, after ``waited`` s
    of waiting already (0 or less: launch now; a burst that goes on waits at most
    ``MAX_DEBOUNCE_SECONDS``). The sensor and the API wait by this one rule."""
    return min(debounce_seconds - quiet, MAX_DEBOUNCE_SECONDS - waited)


def quiet_assets(catalog: Catalog, debounce_seconds: float) -> list[str]:
    """Assets with waiting events, once none has arrived for ``debounce_seconds`` (a bounded
    wait), longest-waiting first."""
    waiting = catalog.assets_with_waiting_events()
    started = time.monotonic()
    while waiting and debounce_seconds > 0:
        quiet = (now_ms() - max(newest for _, newest in waiting)) / 1000
        left = debounce_wait(quiet, time.monotonic() - started, debounce_seconds)
        if left <= 0:
            break
        time.sleep(left)
        waiting = catalog.assets_with_waiting_events()
    return [asset_id for asset_id, _ in waiting]


def webhook_operations(
    runs: RunGateway, catalog: Catalog, asset_ids: Sequence[str]
) -> tuple[list[RunToRequest], int]:
    """One WEBHOOK operation per idle asset for its waiting events; and how many assets were
    busy (their events wait)."""
    wanted, busy = [], 0
    for asset_id in asset_ids:
        asset = catalog.get_asset(asset_id)
        if asset is None or asset.status == AssetStatus.DELETING:
            continue
        if not runs.has_partition(asset_id):
            continue
        if runs.asset_is_busy(asset_id):
            busy += 1
            continue
        batch = catalog.waiting_webhook_events(asset_id)
        if not batch:
            continue
        request = merged_request(batch)
        partial = bool(request["documentIds"] or request["sourceKeys"])
        if request["documentIds"]:
            alive = {d.id for d in catalog.documents_by_id(asset_id, request["documentIds"])}
            request["documentIds"] = [d for d in request["documentIds"] if d in alive]
        event_ids = [e.id for e in batch]
        if partial and not request["documentIds"] and not request["sourceKeys"]:
            catalog.discard_webhook_events(event_ids)  # every document they named is gone
            continue
        run_key = f"webhook:{asset_id}:{batch[-1].id}"
        operation = Operation(
            id=operation_id_for(run_key),
            asset_id=asset_id,
            tenant=asset.tenant,
            type=OperationType.WEBHOOK.value,
            created_by="webhook",
            request=request | {"runKey": run_key},
        )
        stored = catalog.assign_webhook_events(event_ids, operation)
        if stored is not None:  # None: the API or the sensor took these events first
            wanted.append(RunToRequest(stored, run_key))
    return wanted, busy


def poll_operations(runs: RunGateway, catalog: Catalog) -> list[RunToRequest]:
    """A POLL operation for every idle asset whose next poll is due; missed ticks are one."""
    now = now_ms()
    wanted = unlaunched(runs, catalog, OperationType.POLL.value)
    for asset in catalog.assets_due_for_poll(now):
        config = AutoUpdateConfig.model_validate(asset.auto_update or {})
        if config.strategy != "POLL":
            continue  # storing another strategy clears next_poll_at itself; nothing is due
        if not runs.has_partition(asset.id):
            continue
        if runs.asset_is_busy(asset.id):
            continue  # still due: polled once the current run is over
        run_key = f"poll:{asset.id}:{asset.next_poll_at}"
        operation = Operation(
            id=operation_id_for(run_key),
            asset_id=asset.id,
            tenant=asset.tenant,
            type=OperationType.POLL.value,
            created_by="poll schedule",
            request={"documentIds": [], "force": False, "runKey": run_key},
        )
        stored = catalog.start_poll(
            operation, asset, polled_at=now, next_poll_at=next_poll_ms(config, now)
        )
        if stored is not None:  # None: a PATCH changed the schedule meanwhile
            wanted.append(RunToRequest(stored, run_key))
    return wanted


def launch_webhook_operations(svc: Services, asset_id: str) -> list[Operation]:
    """The API's path from a delivery to a run: write the WEBHOOK operation of the asset's
    waiting events (if the asset is idle and the sensor has not taken them) and submit its run.
    A run that cannot be submitted now is the webhook sensor's after ``GRACE_MS``."""
    from fruxon_pipelines.services.operations import launch

    made, _busy = webhook_operations(svc.gateway, svc.catalog, [asset_id])
    for item in made:
        launch(svc, item.operation)
    return [item.operation for item in made]


def quiet_for(catalog: Catalog, asset_id: str) -> float | None:
    """Seconds since the asset's newest waiting event arrived; None when none is waiting."""
    newest = catalog.newest_waiting_event_at(asset_id)
    return None if newest is None else (now_ms() - newest) / 1000
