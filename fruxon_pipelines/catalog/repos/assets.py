"""Knowledge assets: the configured sources, their deletion, and their poll schedules."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy import delete, select, update

from fruxon_pipelines.catalog.db import Database
from fruxon_pipelines.catalog.models import (
    Document,
    KnowledgeAsset,
    Operation,
    TokenUsage,
    WebhookEvent,
    WebhookRegistration,
    now_ms,
)
from fruxon_pipelines.catalog.repos.operations import add_once

# Ids bound into one IN (…): under every backend's limit on parameters (SQLite's was 999).
IDS_PER_QUERY = 500


class AssetsRepo(Database):
    def create_asset(
        self,
        *,
        tenant: str,
        name: str,
        source_type: str,
        source_config: dict[str, Any],
        embedding_config: dict[str, Any],
        asset_id: str | None = None,
        **columns: Any,
    ) -> KnowledgeAsset:
        """A new asset; ``columns`` sets further columns (budget, sealed credentials) in the
        same write."""
        asset = KnowledgeAsset(
            id=asset_id or str(uuid.uuid4()), tenant=tenant, name=name, **columns
        )
        asset.source_type, asset.source_config = source_type, source_config
        asset.embedding_config = embedding_config
        return self._add(asset)

    def get_asset(self, asset_id: str) -> KnowledgeAsset | None:
        return self._get(KnowledgeAsset, asset_id)

    def list_assets(self, tenant: str | None = None) -> list[KnowledgeAsset]:
        return self._of_tenant(KnowledgeAsset, tenant)

    def existing_asset_ids(self, asset_ids: Iterable[str]) -> set[str]:
        """Which of ``asset_ids`` the catalog has as assets, whatever their status."""
        wanted, found = list(asset_ids), set()
        with self.session() as session:
            for start in range(0, len(wanted), IDS_PER_QUERY):
                chosen = KnowledgeAsset.id.in_(wanted[start : start + IDS_PER_QUERY])
                found.update(session.scalars(select(KnowledgeAsset.id).where(chosen)))
        return found

    def update_asset(self, asset_id: str, **fields: Any) -> KnowledgeAsset:
        with self.session() as session:
            asset = session.get(KnowledgeAsset, asset_id)
            for name, value in fields.items():
                setattr(asset, name, value)
            session.flush()
            return asset

    def delete_asset(self, asset_id: str) -> None:
        """The asset, its documents (cascade) and its operations."""
        with self.session() as session:
            for model in (Document, WebhookEvent, TokenUsage, WebhookRegistration, Operation):
                session.execute(delete(model).where(model.asset_id == asset_id))
            session.execute(delete(KnowledgeAsset).where(KnowledgeAsset.id == asset_id))

    def mark_asset_processed(self, asset_id: str, error: str | None = None) -> None:
        self._run(
            update(KnowledgeAsset)
            .where(KnowledgeAsset.id == asset_id)
            .values(processed_at=now_ms(), last_error=error, last_error_category=None)
        )

    # Auto-update: poll schedules ------------------------------------------------------------

    def assets_due_for_poll(self, now: int, limit: int = 500) -> list[KnowledgeAsset]:
        return self._all(
            select(KnowledgeAsset)
            .where(
                KnowledgeAsset.next_poll_at.is_not(None),
                KnowledgeAsset.next_poll_at <= now,
                KnowledgeAsset.status != "DELETING",
            )
            .order_by(KnowledgeAsset.next_poll_at)
            .limit(limit)
        )

    def start_poll(
        self, operation: Operation, seen: KnowledgeAsset, *, polled_at: int, next_poll_at: int
    ) -> Operation | None:
        """Write the POLL operation and move the asset's schedule on, in one transaction, if
        the asset is still as ``seen`` (a PATCH in between wins: None, nothing written)."""
        with self.session() as session:
            moved = session.execute(
                update(KnowledgeAsset)
                .where(
                    KnowledgeAsset.id == operation.asset_id,
                    KnowledgeAsset.next_poll_at == seen.next_poll_at,
                    KnowledgeAsset.modified_at == seen.modified_at,
                )
                .values(
                    last_polled_at=polled_at,
                    next_poll_at=next_poll_at,
                    # A poll is not a settings change: modifiedAt stays.
                    modified_at=KnowledgeAsset.modified_at,
                )
            )
            if moved.rowcount != 1:
                return None
            return add_once(session, operation)
