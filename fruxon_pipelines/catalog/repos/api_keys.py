"""Workspace API keys (the sources API): stored by hash, revoked rather than deleted."""

from __future__ import annotations

from sqlalchemy import select, update

from fruxon_pipelines.catalog.db import Database
from fruxon_pipelines.catalog.models import ApiKey, now_ms


class ApiKeysRepo(Database):
    def add_api_key(self, key: ApiKey) -> ApiKey:
        return self._add(key)

    def api_key_by_hash(self, key_hash: str) -> ApiKey | None:
        with self.session() as session:
            return session.scalar(select(ApiKey).where(ApiKey.key_hash == key_hash))

    def list_api_keys(self, tenant: str | None = None) -> list[ApiKey]:
        return self._of_tenant(ApiKey, tenant)

    def revoke_api_key(self, key_id: str) -> bool:
        """Whether a key that was live is revoked now (False: unknown or revoked already)."""
        revoked = self._run(
            update(ApiKey)
            .where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
            .values(revoked_at=now_ms())
        )
        return revoked == 1
