"""The ingestion job: the four stages of one knowledge asset, in one process."""

import dagster as dg

from fruxon_pipelines.assets.chunk import document_chunks
from fruxon_pipelines.assets.diff import document_changes
from fruxon_pipelines.assets.embed import vector_index
from fruxon_pipelines.assets.fetch import fetched_documents
from fruxon_pipelines.tags import INGEST_JOB

INGESTION_ASSETS = [fetched_documents, document_changes, document_chunks, vector_index]

# In-process: the four stages form a chain, and a process per step costs seconds each.
ingest_job = dg.define_asset_job(
    INGEST_JOB,
    selection=dg.AssetSelection.assets(*INGESTION_ASSETS),
    executor_def=dg.in_process_executor,
    description="Fetch → diff → chunk → embed one knowledge asset (one partition).",
)
