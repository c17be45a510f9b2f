"""Run tags that tie a Dagster run to the catalog (read by the API and the UI's filters)."""

ASSET_TAG = "fruxon/asset_id"
OPERATION_TAG = "fruxon/operation_id"
OPERATION_TYPE_TAG = "fruxon/operation_type"
TENANT_TAG = "fruxon/tenant"
PARTITION_TAG = "dagster/partition"

INGEST_JOB = "ingest"
# A run launched without an operation (Dagster UI, `dagster job launch`) is a MANUAL operation.
MANUAL = "MANUAL"
