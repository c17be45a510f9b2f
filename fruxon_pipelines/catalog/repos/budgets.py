"""Token budgets: reservations booked before embedding, settled to what was actually spent."""

from __future__ import annotations

from sqlalchemy import case, delete, func, select, update
from sqlalchemy.orm import Session

from fruxon_pipelines.budgets import Usage, check, windows_of
from fruxon_pipelines.catalog.db import Database
from fruxon_pipelines.catalog.models import KnowledgeAsset, TokenUsage


def _usage(session: Session, asset_id: str, now: int) -> Usage:
    """The asset's tokens in total, on ``now``'s UTC day and in its month."""
    day, month = windows_of(now)
    row = session.execute(
        select(
            func.coalesce(func.sum(TokenUsage.tokens), 0),
            func.coalesce(func.sum(case((TokenUsage.day == day, TokenUsage.tokens), else_=0)), 0),
            func.coalesce(
                func.sum(case((TokenUsage.month == month, TokenUsage.tokens), else_=0)), 0
            ),
        ).where(TokenUsage.asset_id == asset_id)
    ).one()
    return Usage(total=int(row[0]), daily=int(row[1]), monthly=int(row[2]))


class BudgetsRepo(Database):
    def token_usage(self, asset_id: str, now: int) -> Usage:
        with self.session() as session:
            return _usage(session, asset_id, now)

    def reserve_tokens(
        self,
        asset_id: str,
        tokens: int,
        *,
        now: int,
        kind: str,
        limits: dict[str, int],
        operation_id: str | None = None,
    ) -> int:
        """Book at most ``tokens`` against the asset's budgets, or raise BudgetExceeded.

        The asset's row is written first: that takes the write lock (SQLite) or the row lock
        (PostgreSQL), so concurrent reservations of one asset see each other's rows."""
        with self.session() as session:
            session.execute(
                update(KnowledgeAsset)
                .where(KnowledgeAsset.id == asset_id)
                .values(modified_at=KnowledgeAsset.modified_at)
            )
            check(_usage(session, asset_id, now), limits, tokens)
            row = TokenUsage(asset_id=asset_id, kind=kind, operation_id=operation_id, at=now)
            row.day, row.month = windows_of(now)  # the windows the daily and monthly limits count
            row.tokens, row.settled = tokens, False  # at most this, until settled
            session.add(row)
            session.flush()
            return row.id

    def settle_tokens(self, reservation_id: int, tokens: int) -> None:
        """The reservation becomes what was actually spent (the service's count)."""
        self._run(
            update(TokenUsage)
            .where(TokenUsage.id == reservation_id)
            .values(tokens=tokens, settled=True)
        )

    def release_tokens(self, reservation_id: int) -> None:
        self._run(delete(TokenUsage).where(TokenUsage.id == reservation_id))
