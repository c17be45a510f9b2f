"""The dynamic partitions of the ingestion graph: one key per knowledge asset (its UUID)."""

import dagster as dg

from fruxon_pipelines.tags import KNOWLEDGE_ASSET_PARTITIONS

__all__ = ["KNOWLEDGE_ASSET_PARTITIONS", "knowledge_assets"]

knowledge_assets = dg.DynamicPartitionsDefinition(name=KNOWLEDGE_ASSET_PARTITIONS)
