"""Launching and watching ingestion runs from outside Dagster (CLI now, the API later).

An operation row is written first; the run is then submitted through the webserver's GraphQL
endpoint, so it goes through the queued run coordinator and its per-asset limit like any other.
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fruxon_pipelines.catalog.models import Operation
from fruxon_pipelines.catalog.store import Catalog
from fruxon_pipelines.partitions import KNOWLEDGE_ASSET_PARTITIONS
from fruxon_pipelines.settings import Settings
from fruxon_pipelines.tags import (
    ASSET_TAG,
    INGEST_JOB,
    OPERATION_TAG,
    OPERATION_TYPE_TAG,
    PARTITION_TAG,
    TENANT_TAG,
)

LOCATION_NAME = "fruxon"
REPOSITORY_NAME = "__repository__"
PROJECT_ROOT = Path(__file__).resolve().parent.parent


class LaunchError(RuntimeError):
    pass


def prepare_dagster_home(settings: Settings) -> Path:
    """DAGSTER_HOME under FRUXON_HOME, holding the project's dagster.yaml; set in os.environ."""
    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    template = PROJECT_ROOT / (settings.dagster_yaml or "dagster.yaml")  # relative: to the project
    target = home / "dagster.yaml"
    if template.exists() and (not target.exists() or target.read_bytes() != template.read_bytes()):
        shutil.copyfile(template, target)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def dagster_instance(settings: Settings) -> Any:
    from dagster import DagsterInstance

    prepare_dagster_home(settings)
    return DagsterInstance.get()


def register_partition(instance: Any, asset_id: str) -> None:
    instance.add_dynamic_partitions(KNOWLEDGE_ASSET_PARTITIONS, [asset_id])


def ingest_run_config(
    document_ids: list[str] | None = None,
    force: bool = False,
    source_keys: list[str] | None = None,
    dry_run: bool = False,
) -> dict:
    config: dict[str, Any] = {"document_ids": list(document_ids or []), "force": force}
    if source_keys:
        config["source_keys"] = list(source_keys)
    if dry_run:
        config["dry_run"] = True
    return {"ops": {"fetched_documents": {"config": config}}}


# Operations launched by sensors get ids derived from the sensor's run key, so a tick that is
# evaluated again after a crash writes the same operation, never a second one.
SENSOR_OPERATIONS = uuid.UUID("6f1d2c1e-8f7a-5b9e-9a53-7c1f0e6b2d40")


def operation_id_for(run_key: str) -> str:
    return str(uuid.uuid5(SENSOR_OPERATIONS, run_key))


@dataclass
class LaunchedRun:
    operation: Operation
    run_id: str


def run_tags(operation: Operation) -> dict[str, str]:
    """The tags that tie a run to its knowledge asset and operation."""
    tags = {
        PARTITION_TAG: operation.asset_id,
        ASSET_TAG: operation.asset_id,
        TENANT_TAG: operation.tenant,
        OPERATION_TAG: operation.id,
        OPERATION_TYPE_TAG: operation.type,
    }
    if operation.type == "POLL":
        tags["dagster/priority"] = "-1"  # scheduled polls yield to refreshes people asked for
    return tags


def operation_run_config(operation: Operation) -> dict:
    request = operation.request or {}
    return ingest_run_config(
        request.get("documentIds"),
        bool(request.get("force")),
        request.get("sourceKeys"),
        dry_run=bool(request.get("dryRun")),
    )


def submit_run(settings: Settings, operation: Operation) -> str:
    """Submit the operation's run through the webserver (queue, limits and UI included)."""
    from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError

    client = DagsterGraphQLClient(settings.dagster_host, port_number=settings.dagster_port)
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
            f"{settings.dagster_host}:{settings.dagster_port} ({error}); is the stack running "
            "(make run)?"
        ) from error


def launch_ingest(
    settings: Settings,
    catalog: Catalog,
    *,
    asset_id: str,
    operation_type: str,
    document_ids: list[str] | None = None,
    force: bool = False,
    created_by: str | None = None,
) -> LaunchedRun:
    """Write the operation, then submit its run to the webserver; returns both ids."""
    asset = catalog.get_asset(asset_id)
    if asset is None:
        raise LaunchError(f"knowledge asset {asset_id} does not exist")
    operation = catalog.create_operation(
        asset_id=asset_id,
        tenant=asset.tenant,
        type=operation_type,
        created_by=created_by,
        request={"documentIds": list(document_ids or []), "force": force},
    )
    run_id = submit_run(settings, operation)
    catalog.update_operation(operation.id, run_id=run_id)
    operation.run_id = run_id
    return LaunchedRun(operation=operation, run_id=run_id)


OPERATION_STATUS = {
    "QUEUED": "PENDING",
    "NOT_STARTED": "PENDING",
    "STARTING": "PENDING",
    "SUCCESS": "COMPLETED",
    "FAILURE": "FAILED",
    "CANCELED": "CANCELLED",
}


def operation_status(run_status: str | None) -> str:
    """Operation status derived from its run's; anything unknown is RUNNING."""
    if run_status is None:
        return "PENDING"
    return OPERATION_STATUS.get(run_status, "RUNNING")


def run_failure_message(instance: Any, run_id: str) -> str | None:
    """The first step failure's message (what a user needs), else the run failure's."""
    from dagster import DagsterEventType

    for event_type in (DagsterEventType.STEP_FAILURE, DagsterEventType.RUN_FAILURE):
        records = instance.get_records_for_run(run_id, of_type=event_type, limit=1).records
        for record in records:
            event = record.event_log_entry.dagster_event
            data = getattr(event, "event_specific_data", None)
            error = getattr(data, "error", None)
            if error is not None:
                return error.message.strip()
            if event is not None and event.message:
                return event.message
    return None
