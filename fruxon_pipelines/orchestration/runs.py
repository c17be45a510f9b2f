"""How an operation becomes a run: its job, tags and run config, and the operation status a run
status stands for. Plain data, no Dagster import: the gateway and the sensors share it."""

from __future__ import annotations

import uuid
from typing import Any

from fruxon_pipelines.catalog.models import Operation
from fruxon_pipelines.domain import OperationStatus, OperationType
from fruxon_pipelines.tags import (
    ASSET_TAG,
    INGEST_JOB,
    OPERATION_TAG,
    OPERATION_TYPE_TAG,
    PARTITION_TAG,
    TENANT_TAG,
)

__all__ = [
    "INGEST_JOB",
    "LOCATION_NAME",
    "REPOSITORY_NAME",
    "ingest_run_config",
    "operation_id_for",
    "operation_run_config",
    "operation_status",
    "run_tags",
]

LOCATION_NAME = "fruxon"
REPOSITORY_NAME = "__repository__"

# Dagster run status → operation status; anything else (STARTED, CANCELING) is RUNNING.
OPERATION_STATUS = {
    "QUEUED": OperationStatus.PENDING,
    "NOT_STARTED": OperationStatus.PENDING,
    "STARTING": OperationStatus.PENDING,
    "SUCCESS": OperationStatus.COMPLETED,
    "FAILURE": OperationStatus.FAILED,
    "CANCELED": OperationStatus.CANCELLED,
}

# Operations launched by sensors get ids derived from the sensor's run key, so a tick that is
# evaluated again after a crash writes the same operation, never a second one.
SENSOR_OPERATIONS = uuid.UUID("6f1d2c1e-8f7a-5b9e-9a53-7c1f0e6b2d40")


def operation_status(run_status: str | None) -> OperationStatus:
    """Operation status derived from its run's; no run yet is PENDING."""
    if run_status is None:
        return OperationStatus.PENDING
    return OPERATION_STATUS.get(run_status, OperationStatus.RUNNING)


def operation_id_for(run_key: str) -> str:
    return str(uuid.uuid5(SENSOR_OPERATIONS, run_key))


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


def operation_run_config(operation: Operation) -> dict:
    request = operation.request or {}
    return ingest_run_config(
        request.get("documentIds"),
        bool(request.get("force")),
        request.get("sourceKeys"),
        dry_run=bool(request.get("dryRun")),
    )


def run_tags(operation: Operation) -> dict[str, str]:
    """The tags that tie a run to its knowledge asset and operation."""
    tags = {
        PARTITION_TAG: operation.asset_id,
        ASSET_TAG: operation.asset_id,
        TENANT_TAG: operation.tenant,
        OPERATION_TAG: operation.id,
        OPERATION_TYPE_TAG: str(operation.type),
    }
    if operation.type == OperationType.POLL:
        tags["dagster/priority"] = "-1"  # scheduled polls yield to refreshes people asked for
    return tags
