"""Auto-update webhooks: an asset's registration and the deliveries waiting for an operation."""

from __future__ import annotations

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError

from fruxon_pipelines.catalog.db import Database
from fruxon_pipelines.catalog.models import (
    KnowledgeAsset,
    Operation,
    WebhookEvent,
    WebhookRegistration,
)
from fruxon_pipelines.catalog.repos.operations import add_once


class _Taken(Exception):
    """Another writer claimed some of the events: this claim is undone."""


class WebhooksRepo(Database):
    def replace_webhook(self, registration: WebhookRegistration) -> None:
        """Make ``registration`` the asset's only webhook: any earlier URL stops working."""
        with self.session() as session:
            session.execute(
                delete(WebhookRegistration).where(
                    WebhookRegistration.asset_id == registration.asset_id
                )
            )
            session.add(registration)

    def delete_webhooks(self, asset_id: str) -> None:
        self._run(delete(WebhookRegistration).where(WebhookRegistration.asset_id == asset_id))

    def webhook_of_asset(self, asset_id: str) -> WebhookRegistration | None:
        with self.session() as session:
            return session.scalars(
                select(WebhookRegistration).where(WebhookRegistration.asset_id == asset_id)
            ).first()

    def find_webhook(
        self, id_hash: str
    ) -> tuple[WebhookRegistration | None, KnowledgeAsset | None]:
        with self.session() as session:
            registration = session.get(WebhookRegistration, id_hash)
            if registration is None:
                return None, None
            return registration, session.get(KnowledgeAsset, registration.asset_id)

    def add_webhook_event(self, event: WebhookEvent) -> int | None:
        """Store a delivery; None when its webhook was revoked meanwhile (the event's
        foreign key to the registration refuses it, so no revoked URL can add one)."""
        try:
            with self.savepoint() as session:
                session.add(event)
                session.flush()
                return event.id
        except IntegrityError:
            return None

    def waiting_webhook_events(
        self, asset_id: str | None = None, limit: int = 5000
    ) -> list[WebhookEvent]:
        """Events not yet given to an operation (of one asset, or all), oldest first."""
        query = select(WebhookEvent).where(WebhookEvent.operation_id.is_(None))
        if asset_id is not None:
            query = query.where(WebhookEvent.asset_id == asset_id)
        return self._all(query.order_by(WebhookEvent.id).limit(limit))

    def newest_waiting_event_at(self, asset_id: str) -> int | None:
        """Receipt time (ms) of the asset's newest waiting event; None when none waits."""
        with self.session() as session:
            return session.execute(
                select(func.max(WebhookEvent.received_at)).where(
                    WebhookEvent.asset_id == asset_id, WebhookEvent.operation_id.is_(None)
                )
            ).scalar()

    def assets_with_waiting_events(self, limit: int = 500) -> list[tuple[str, int]]:
        """(asset id, receipt time of its newest waiting event), longest-waiting asset first.

        Per asset, so that a busy asset's backlog never hides another asset's events."""
        with self.session() as session:
            rows = session.execute(
                select(
                    WebhookEvent.asset_id,
                    func.min(WebhookEvent.id),
                    func.max(WebhookEvent.received_at),
                )
                .where(WebhookEvent.operation_id.is_(None))
                .group_by(WebhookEvent.asset_id)
                .order_by(func.min(WebhookEvent.id))
                .limit(limit)
            )
            return [(asset_id, newest) for asset_id, _oldest, newest in rows]

    def assign_webhook_events(self, event_ids: list[int], operation: Operation) -> Operation | None:
        """Hand the events to the operation and write it, in one transaction; None, writing
        nothing, when any of them was already taken (the API and the webhook sensor racing for
        one burst: the claim is one UPDATE, so only one of them gets the events and launches;
        events the other read besides wait for the next operation)."""
        try:
            with self.savepoint() as session:
                claimed = session.execute(
                    update(WebhookEvent)
                    .where(WebhookEvent.id.in_(event_ids), WebhookEvent.operation_id.is_(None))
                    .values(operation_id=operation.id)
                ).rowcount
                if claimed != len(set(event_ids)):
                    raise _Taken
                return add_once(session, operation)
        except _Taken:
            return None

    def discard_webhook_events(self, event_ids: list[int]) -> None:
        self._run(delete(WebhookEvent).where(WebhookEvent.id.in_(event_ids)))

    def webhook_events_of(self, operation_id: str) -> list[WebhookEvent]:
        return self._all(select(WebhookEvent).where(WebhookEvent.operation_id == operation_id))

    def prune_webhook_events(self, received_before: int) -> int:
        """Forget events that an operation took long ago (waiting ones are kept)."""
        return self._run(
            delete(WebhookEvent).where(
                WebhookEvent.operation_id.is_not(None),
                WebhookEvent.received_at < received_before,
            )
        )
