"""The ingestion job (the four stages of one knowledge asset, in one process) and the index
checks job (the asset checks alone, to look for drift without ingesting)."""

import dagster as dg

from fruxon_pipelines.assets.checks import chunk_counts_match, no_orphan_chunks
from fruxon_pipelines.assets.chunk import document_chunks
from fruxon_pipelines.assets.diff import document_changes
from fruxon_pipelines.assets.embed import vector_index
from fruxon_pipelines.assets.fetch import fetched_documents
from fruxon_pipelines.partitions import knowledge_assets
from fruxon_pipelines.tags import INGEST_JOB

INGESTION_ASSETS = [fetched_documents, document_changes, document_chunks, vector_index]

# In-process: the four stages form a chain, and a process per step costs seconds each.
ingest_job = dg.define_asset_job(
    INGEST_JOB,
    selection=dg.AssetSelection.assets(*INGESTION_ASSETS),
    executor_def=dg.in_process_executor,
    description="Fetch → diff → chunk → embed one knowledge asset (one partition).",
)

INGESTION_CHECKS = [chunk_counts_match, no_orphan_chunks]
INDEX_CHECKS_JOB = "index_checks"

# What a data engineer runs (or schedules) to ask whether an asset's index and its catalog
# still agree, without fetching anything; a full refresh repairs what it finds.
index_checks_job = dg.define_asset_job(
    INDEX_CHECKS_JOB,
    selection=dg.AssetSelection.checks(*INGESTION_CHECKS),
    executor_def=dg.in_process_executor,
    partitions_def=knowledge_assets,
    description="The asset checks of one knowledge asset: chunk counts and orphan chunks.",
)
