"""File source: one file stored under FRUXON_HOME/files (uploaded or registered by the CLI)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath

from pydantic import BaseModel, ConfigDict, Field, field_validator

from fruxon_pipelines.sources.base import FetchedItem, KnownDocument, Source, SourceError


class FileParameters(BaseModel):
    """`path` is relative to the files directory; it can never point outside it."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(min_length=1, description="Stored file, relative to the files directory.")
    fileName: str | None = Field(default=None, description="Name shown for the document.")
    contentType: str | None = Field(default=None, description="Media type; else from the name.")

    @field_validator("path")
    @classmethod
    def _stays_inside(cls, value: str) -> str:
        pure = PurePosixPath(value)
        if pure.is_absolute() or ".." in pure.parts:
            raise ValueError("path must be relative to the files directory, without '..'")
        return value


class FileSource(Source):
    def __init__(self, params: FileParameters, *, files_dir: Path) -> None:
        self.params = params
        self.path = files_dir / params.path

    @property
    def source_key(self) -> str:
        return f"file:{self.params.path}"

    def list_items(self, known: Mapping[str, KnownDocument], force: bool) -> Iterator[FetchedItem]:
        key = self.source_key
        name = self.params.fileName or PurePosixPath(self.params.path).name
        if not self.path.is_file():
            if not known:
                raise SourceError(f"the stored file {self.params.path!r} does not exist")
            yield FetchedItem(source_key=key, status="gone", file_name=name)
            return
        data = self.path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        previous = known.get(key)
        if previous is not None and previous.content_hash == digest and not force:
            yield FetchedItem(source_key=key, status="unchanged", file_name=name, title=name)
            return
        yield FetchedItem(
            source_key=key,
            status="fetched",
            file_name=name,
            title=name,
            content_type=self.params.contentType,
            data=data,
        )

    def fetch_keys(
        self, keys: set[str], known: Mapping[str, KnownDocument], force: bool
    ) -> Iterator[FetchedItem]:
        if self.source_key in keys:
            yield from self.list_items(known, force)
