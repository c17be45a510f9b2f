"""Stage 3, chunk: parse changed documents and split them into token-bounded chunks.

The parsing itself, and the pool of parse workers it uses for many documents, live in
`fruxon_pipelines.parsing.workers`.
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from fruxon_pipelines.catalog.models import KnowledgeAsset
from fruxon_pipelines.embedding.catalogue import model_of
from fruxon_pipelines.ingest.manifests import ChangeSet, ChunkManifest
from fruxon_pipelines.ingest.outcomes import mark_failed
from fruxon_pipelines.parsing.workers import chunk_records

DEFAULT_CHUNK_SIZE = 256
DEFAULT_CHUNK_OVERLAP = 32


def chunking_settings(embedding_config: dict, max_tokens: int) -> tuple[int, int]:
    """Chunk size never exceeds what the model reads (its special tokens included)."""
    size = int(embedding_config.get("chunkSize") or DEFAULT_CHUNK_SIZE)
    overlap = int(embedding_config.get("chunkOverlap", DEFAULT_CHUNK_OVERLAP) or 0)
    size = max(1, min(size, max_tokens - 2))
    overlap = max(0, min(overlap, size // 2))
    return size, overlap


@dataclass
class Chunked:
    manifest: ChunkManifest
    chunk_size: int
    chunk_overlap: int
    chunks: int = 0
    # The start of the first chunk, for the Dagster UI.
    preview: str = ""


def chunk_documents(
    store: Any,
    asset: KnowledgeAsset,
    changes: ChangeSet,
    *,
    timeout: float | None,
    log: logging.Logger,
    spool_dir: Path | None = None,
) -> Chunked:
    """Parse and chunk the added and changed documents with the asset's embedding settings.

    A document that cannot be parsed is FAILED with the reason (not in a dry run) and the
    others go on; ``timeout`` is how long one document may take to parse (None: no limit).
    With a ``spool_dir`` the chunked documents go to a file there as they come, not into
    memory (``ChunkManifest.iter_documents`` reads them back).
    """
    request = changes.request
    config = asset.embedding_config
    model = model_of(config)
    size, overlap = chunking_settings(config, model.max_tokens)

    manifest = ChunkManifest(request=request, documents=[], changes=changes)
    result = Chunked(manifest=manifest, chunk_size=size, chunk_overlap=overlap)
    spool = manifest.spool(spool_dir) if spool_dir and changes.to_process else None
    with spool or nullcontext():
        add = spool.add if spool is not None else manifest.documents.append
        for record, chunked, message in chunk_records(
            changes.to_process, model, size, overlap, timeout=timeout
        ):
            if chunked is None:
                log.warning(f"{record.source_key}: {message}")
                if not request.dry_run:
                    mark_failed(store, request, record.source_key, message)
                manifest.parse_failures += 1
                continue
            result.chunks += len(chunked.chunks)
            if not result.preview and chunked.chunks:
                result.preview = chunked.chunks[0].content[:300]
            add(chunked)
    manifest.staged_paths = [r.staged_path for r in changes.to_process if r.staged_path]
    manifest.changes = replace(changes, to_process=[])
    return result
