"""Operations: one Dagster run of the ingestion job each, with the counters the run writes."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any, TypeVar

from sqlalchemy import and_, bindparam, inspect, select, update
from sqlalchemy.orm import Session

from fruxon_pipelines.catalog.db import Database, _joined
from fruxon_pipelines.catalog.models import KnowledgeAsset, Operation, now_ms

Model = TypeVar("Model")


def _columns_of(model: type) -> list[tuple[Any, str]]:
    """Each column of ``model``'s table with the attribute it maps to."""
    mapper = inspect(model)
    return [(column, mapper.get_property_by_column(column).key) for column in model.__table__.c]


def _transient(model: type[Model], columns: list[tuple[Any, str]], row: Any, start: int) -> Model:
    """A transient ``model`` holding ``row``'s values from ``start`` on, set as the ORM sets a
    loaded row's: into the instance's dict, without attribute events."""
    instance = model.__mapper__.class_manager.new_instance()  # type: ignore[attr-defined]
    values = instance.__dict__
    for i, (_, key) in enumerate(columns, start):
        values[key] = row[i]
    return instance


_ASSET_COLUMNS = _columns_of(KnowledgeAsset)
_OPERATION_COLUMNS = _columns_of(Operation)
# The asset, and its operation when the asset has it, in one statement.
_ASSET_AND_OPERATION = (
    select(*(c for c, _ in _ASSET_COLUMNS), *(c for c, _ in _OPERATION_COLUMNS))
    .select_from(
        KnowledgeAsset.__table__.outerjoin(
            Operation.__table__,
            and_(
                Operation.__table__.c.id == bindparam("operation_id"),
                Operation.__table__.c.asset_id == KnowledgeAsset.__table__.c.id,
            ),
        )
    )
    .where(KnowledgeAsset.__table__.c.id == bindparam("asset_id"))
)


def add_once(session: Session, operation: Operation) -> Operation:
    """``operation`` added, unless a sensor's earlier, interrupted tick added it already."""
    existing = session.get(Operation, operation.id)
    if existing is not None:
        return existing
    session.add(operation)
    return operation


class OperationsRepo(Database):
    def create_operation(
        self,
        *,
        asset_id: str,
        tenant: str,
        type: str,
        created_by: str | None = None,
        request: dict[str, Any] | None = None,
        operation_id: str | None = None,
    ) -> Operation:
        """A new operation row: its id is what the client gets, before any run exists."""
        return self._add(
            Operation(
                id=operation_id or str(uuid.uuid4()),
                asset_id=asset_id,
                tenant=tenant,
                type=type,
                created_by=created_by,
                request=request or {},
            )
        )

    def get_operation(self, operation_id: str) -> Operation | None:
        return self._get(Operation, operation_id)

    def get_asset_and_operation(
        self, asset_id: str, operation_id: str
    ) -> tuple[KnowledgeAsset | None, Operation | None]:
        """Both rows in one statement: what every read of an operation (every poll) starts
        with. An operation of another asset is None.

        Read with SQLAlchemy Core and returned as transient instances, in no session: the
        ORM's two ``Session.get`` cost a poll 0.41 ms of its ~1.2 ms, this 0.14
        (bench/bench_polling.py). Their attributes are set as the ORM sets a loaded row's,
        not through the constructor, whose attribute events cost as much again. Read them;
        change rows with the catalog's methods (added to a session, these would be
        inserted)."""
        if _joined(self.url) is not None:  # inside a unit of work: its session's view
            with self.session() as session:
                operation = session.get(Operation, operation_id)
                if operation is not None and operation.asset_id != asset_id:
                    operation = None
                return session.get(KnowledgeAsset, asset_id), operation
        with self.engine.connect() as connection:
            row = connection.execute(
                _ASSET_AND_OPERATION, {"asset_id": asset_id, "operation_id": operation_id}
            ).first()
        if row is None:
            return None, None
        split = len(_ASSET_COLUMNS)
        asset = _transient(KnowledgeAsset, _ASSET_COLUMNS, row, 0)
        if row[split] is None:  # the operation's id: no such operation of this asset
            return asset, None
        return asset, _transient(Operation, _OPERATION_COLUMNS, row, split)

    def ensure_operation(
        self, *, operation_id: str, asset_id: str, tenant: str, type: str, run_id: str
    ) -> None:
        """The run's own row: created here for runs launched from the Dagster UI or CLI."""
        with self.session() as session:
            operation = session.get(Operation, operation_id)
            if operation is None:
                session.add(
                    Operation(
                        id=operation_id,
                        asset_id=asset_id,
                        tenant=tenant,
                        type=type,
                        run_id=run_id,
                        started_at=now_ms(),
                    )
                )
            else:
                operation.run_id = run_id
                operation.started_at = operation.started_at or now_ms()
                # A retried run starts counting again: its counters describe this attempt.
                operation.completed_at = None
                operation.error_message = None
                operation.error_category = None
                operation.final_status = None  # a re-executed run reopens the operation

    def list_operations(self, asset_id: str, limit: int | None = None) -> list[Operation]:
        """The asset's operations, newest first."""
        query = (
            select(Operation)
            .where(Operation.asset_id == asset_id)
            .order_by(Operation.created_at.desc(), Operation.id)
        )
        if limit is not None:
            query = query.limit(limit)
        return self._all(query)

    def operations_without_run(
        self,
        *,
        created_before: int,
        limit: int = 100,
        types: Iterable[str] | None = None,
        exclude_types: Iterable[str] = (),
    ) -> list[Operation]:
        """Operations written but never submitted (and not cancelled), oldest first."""
        query = select(Operation).where(
            Operation.run_id.is_(None),
            Operation.cancel_requested_at.is_(None),
            Operation.final_status.is_(None),
            Operation.created_at < created_before,
        )
        if types is not None:
            query = query.where(Operation.type.in_(list(types)))
        if exclude_types:
            query = query.where(Operation.type.not_in(list(exclude_types)))
        return self._all(query.order_by(Operation.created_at).limit(limit))

    def update_operation(self, operation_id: str, **fields: Any) -> None:
        self._run(update(Operation).where(Operation.id == operation_id).values(**fields))
