"""The dynamic partitions of the ingestion graph: one key per knowledge asset (its UUID)."""

import dagster as dg

KNOWLEDGE_ASSET_PARTITIONS = "knowledge_asset"

knowledge_assets = dg.DynamicPartitionsDefinition(name=KNOWLEDGE_ASSET_PARTITIONS)
