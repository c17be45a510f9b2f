"""Stored files (POST /storage): temporary until an asset retains them, then swept."""

from __future__ import annotations

from sqlalchemy import delete, select, update

from fruxon_pipelines.catalog.db import Database
from fruxon_pipelines.catalog.models import StoredFile


class FilesRepo(Database):
    def add_stored_file(self, stored: StoredFile) -> StoredFile:
        return self._add(stored)

    def get_stored_file(self, file_id: str) -> StoredFile | None:
        return self._get(StoredFile, file_id)

    def retain_stored_file(self, file_id: str) -> None:
        self._run(update(StoredFile).where(StoredFile.id == file_id).values(temporary=False))

    def expired_temporary_files(self, created_before: int) -> list[StoredFile]:
        return self._all(
            select(StoredFile).where(
                StoredFile.temporary.is_(True), StoredFile.created_at < created_before
            )
        )

    def delete_stored_file(self, file_id: str) -> None:
        self._run(delete(StoredFile).where(StoredFile.id == file_id))
