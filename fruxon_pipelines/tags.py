"""Run tags that tie a Dagster run to the catalog (read by the API and the UI's filters)."""

ASSET_TAG = "fruxon/asset_id"
ASSET_NAME_TAG = "fruxon/asset_name"  # the knowledge asset's display name, set when the run starts
OPERATION_TAG = "fruxon/operation_id"
OPERATION_TYPE_TAG = "fruxon/operation_type"
TENANT_TAG = "fruxon/tenant"
PARTITION_TAG = "dagster/partition"

INGEST_JOB = "ingest"
# The dynamic partitions of the ingestion graph: one key per knowledge asset (its UUID).
KNOWLEDGE_ASSET_PARTITIONS = "knowledge_asset"
# A run launched without an operation (Dagster UI, `dagster job launch`) is a MANUAL operation.
MANUAL = "MANUAL"
