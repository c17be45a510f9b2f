"""Moved to ``fruxon_pipelines.ingest.manifests``; these names stay importable from here for
stage outputs that runs pickled before the move (a re-execution loads them by this path)."""

from fruxon_pipelines.ingest.manifests import (
    ChangeSet,
    ChunkedDocument,
    ChunkManifest,
    FetchedRecord,
    FetchManifest,
    IngestRequest,
)

__all__ = [
    "ChangeSet",
    "ChunkManifest",
    "ChunkedDocument",
    "FetchManifest",
    "FetchedRecord",
    "IngestRequest",
]
