"""What the stages hand each other. Small: bytes wait in the staging directory, not here."""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from fruxon_pipelines.chunking import Chunk
from fruxon_pipelines.sources.base import ItemMetadata


@dataclass
class FetchedRecord(ItemMetadata):
    """One item as the fetch stage saw it; ``staged_path`` holds its bytes when fetched."""

    source_key: str
    document_id: str
    status: str  # fetched | unchanged | failed | gone
    content_hash: str | None = None
    size: int | None = None
    staged_path: str | None = None


@dataclass
class IngestRequest:
    asset_id: str
    tenant: str
    operation_id: str
    force: bool
    # Only these documents were asked for: the listing is partial, nothing is "removed".
    partial: bool
    allow_mass_deletion: bool = False
    # Work out what would change and what it would cost; write nothing, embed nothing.
    dry_run: bool = False
    # The connector's state after this listing (a changes cursor), kept once the run completes:
    # saved earlier, a failed run would make the next one skip what this one did not finish.
    source_state: dict | None = None
    # Only registered documents are ingested: one the source no longer has stays, FAILED,
    # until its owner deletes it (it was picked by hand; it does not vanish on its own).
    registered_only: bool = False
    # Indexed documents whose chunks in LanceDB disagree with the catalog (the asset checks'
    # chunk_counts_match): read again without validators and indexed again, whatever changed.
    reindex_ids: list[str] = field(default_factory=list)
    # Documents the catalog does not have but LanceDB holds chunks of (an interrupted delete;
    # the asset checks' no_orphan_chunks): their chunks are deleted by a full listing's diff.
    orphan_ids: list[str] = field(default_factory=list)


@dataclass
class FetchManifest:
    request: IngestRequest
    records: list[FetchedRecord]


@dataclass
class ChangeSet:
    request: IngestRequest
    to_process: list[FetchedRecord]
    added: int = 0
    changed: int = 0
    unchanged: int = 0
    removed: int = 0
    failed: int = 0
    # Source keys by kind of change (the dry-run report names them).
    added_keys: list[str] = field(default_factory=list)
    changed_keys: list[str] = field(default_factory=list)
    removed_keys: list[str] = field(default_factory=list)

    def process(self, record: FetchedRecord, *, new: bool) -> None:
        """``record`` goes on to be chunked and embedded, as an added or a changed document."""
        self.to_process.append(record)
        if new:
            self.added += 1
            self.added_keys.append(record.source_key)
        else:
            self.changed += 1
            self.changed_keys.append(record.source_key)


@dataclass
class ChunkedDocument:
    record: FetchedRecord
    chunks: list[Chunk]
    # The parsed text, one entry per block (heading, paragraph, list item, table …).
    paragraphs: list[str] = field(default_factory=list)


@dataclass
class ChunkManifest:
    request: IngestRequest
    documents: list[ChunkedDocument]
    changes: ChangeSet
    parse_failures: int = 0
    # The chunked documents after ``documents``, pickled one after another in the staging
    # directory: neither the chunk nor the embed stage holds a whole source's chunks in memory.
    spool_path: str | None = None
    spooled: int = 0
    # The fetched bytes this run staged, removed once it is done. ``changes`` no longer lists
    # the records (each chunked document carries its own): for a big source that list was
    # most of what the embed stage loaded.
    staged_paths: list[str] = field(default_factory=list)

    @property
    def document_count(self) -> int:
        return len(self.documents) + self.spooled

    def iter_documents(self) -> Iterator[ChunkedDocument]:
        """Every chunked document, in order, read one at a time."""
        yield from self.documents
        if self.spool_path is None:
            return
        try:
            spool = open(self.spool_path, "rb")  # noqa: SIM115 (closed below)
        except FileNotFoundError as gone:
            from fruxon_pipelines.ingest import RunStopped

            raise RunStopped(
                "this run's chunked documents are gone from the staging directory (a later full "
                "refresh of the asset, or its deletion, clears it): refresh the asset rather than "
                "re-execute this step"
            ) from gone
        with spool:
            for _ in range(self.spooled):
                # Written by this run's chunk stage (like the stage outputs Dagster pickles).
                yield pickle.load(spool)  # noqa: S301

    def spool(self, directory: Path) -> DocumentSpool:
        """Append documents to a spool file in ``directory`` instead of ``documents``."""
        directory.mkdir(parents=True, exist_ok=True)
        self.spool_path = str(directory / f"chunks-{self.request.operation_id}.pickle")
        return DocumentSpool(self)

    def remove_spool(self) -> None:
        if self.spool_path:
            Path(self.spool_path).unlink(missing_ok=True)


class DocumentSpool:
    """Writes a manifest's chunked documents to its spool file as they come."""

    def __init__(self, manifest: ChunkManifest) -> None:
        self.manifest = manifest
        assert manifest.spool_path is not None
        self._file = open(manifest.spool_path, "wb")  # noqa: SIM115 (closed by close())

    def add(self, document: ChunkedDocument) -> None:
        pickle.dump(document, self._file, protocol=pickle.HIGHEST_PROTOCOL)
        self.manifest.spooled += 1

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> DocumentSpool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
