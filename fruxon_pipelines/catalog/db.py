"""The catalog database: engine set-up, migrations, and sessions that can join a unit of work.

Every catalog method runs in ``Database.session()``. On its own that is one transaction per
method, as callers have always had. Inside ``with catalog.unit_of_work():`` every method called
in the same thread (or asyncio task) shares the unit's session instead, so what they write is
committed together when the block ends, or not at all when it raises.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, Executable, Select, create_engine, event, select
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

_migrated: set[str] = set()
_migrate_lock = threading.Lock()

# The session of the unit of work open in this context, by database URL: a unit of work on one
# catalog database never captures the methods of another.
_units: ContextVar[Mapping[str, Session] | None] = ContextVar("fruxon_catalog_units", default=None)


def _joined(url: str) -> Session | None:
    """The session of the unit of work open on ``url`` in this context, if any."""
    return (_units.get() or {}).get(url)


Row = TypeVar("Row")


def make_engine(url: str) -> Engine:
    """An engine with SQLite set up for a daemon, a webserver and runs writing at once."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def migrate(url: str) -> None:
    """Bring the catalog schema to the newest revision (idempotent, once per process and URL)."""
    with _migrate_lock:
        if url in _migrated:
            return
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
        engine = make_engine(url)
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
        engine.dispose()
        _migrated.add(url)


class Database:
    """One catalog database: its engine, its sessions, and the unit of work that joins them.

    The repositories (``catalog/repos``) are mixins of this class; ``Catalog`` combines them,
    so every method of every aggregate shares this one session factory."""

    def __init__(self, url: str, *, run_migrations: bool = True) -> None:
        if run_migrations:
            migrate(url)
        self.url = url
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """The session of the current unit of work, or a new transaction of its own.

        Joined, the method's writes are flushed when its block ends, as they were committed
        before: generated columns (defaults, ids) are filled in when it returns, and a
        constraint it breaks fails it rather than a later method or the commit."""
        joined = _joined(self.url)
        if joined is None:
            with self._sessions.begin() as session:
                yield session
            return
        yield joined
        joined.flush()

    @contextmanager
    def savepoint(self) -> Iterator[Session]:
        """Like ``session()``, but inside a unit of work the block is a SAVEPOINT: a method that
        recovers from an IntegrityError itself (retry, or None) undoes only its own writes and
        the unit goes on. Outside a unit the method's own transaction already does that."""
        with self.session() as session:
            if session is not _joined(self.url):
                yield session
                return
            with session.begin_nested():
                yield session

    @contextmanager
    def unit_of_work(self) -> Iterator[Session]:
        """One session and one transaction for every catalog method called inside the block
        (in this thread or asyncio task): committed when it ends, rolled back if it raises.
        A unit opened inside another on the same database joins it.

        On SQLite the unit takes the write lock when it begins (``BEGIN IMMEDIATE``, waiting
        up to the busy timeout): it reads one consistent state and its writes cannot fail half
        way for a lock; other writers wait until it ends, so keep units short (no network
        calls inside). On PostgreSQL it is one READ COMMITTED transaction whose row locks
        (``reserve_tokens`` locks the asset's row) are held until it ends.

        Rows returned inside a unit stay in its session until it ends: change them with the
        catalog's methods, not by setting attributes (those would be written at commit). The
        session is not thread-safe: do not hand the unit's context to other threads or tasks
        (``contextvars.copy_context``, ``asyncio.create_task``) while it is open."""
        joined = _joined(self.url)
        if joined is not None:
            yield joined
            return
        with self._sessions.begin() as session:
            if self.engine.dialect.name == "sqlite":
                # pysqlite issues BEGIN only before the first write: reads would run outside
                # the transaction and a SAVEPOINT before any write would end it.
                session.connection().exec_driver_sql("BEGIN IMMEDIATE")
            token = _units.set({**(_units.get() or {}), self.url: session})
            try:
                yield session
            finally:
                _units.reset(token)

    # Shapes every aggregate repeats --------------------------------------------------------

    def _get(self, model: type[Row], key: Any) -> Row | None:
        """The row of ``model`` with primary key ``key``, or None."""
        with self.session() as session:
            return session.get(model, key)

    def _add(self, row: Row) -> Row:
        """``row`` inserted as it is."""
        with self.session() as session:
            session.add(row)
        return row

    def _all(self, query: Select[tuple[Row]]) -> list[Row]:
        """Every row ``query`` selects, as ORM objects."""
        with self.session() as session:
            return list(session.scalars(query))

    def _run(self, statement: Executable) -> int:
        """Execute an UPDATE or DELETE; how many rows it touched."""
        with self.session() as session:
            return session.execute(statement).rowcount or 0

    def _of_tenant(self, model: type[Row], tenant: str | None) -> list[Row]:
        """``tenant``'s rows of ``model`` (every tenant's when None), oldest first."""
        query = select(model).order_by(model.created_at)  # type: ignore[attr-defined]
        if tenant is not None:
            query = query.where(model.tenant == tenant)  # type: ignore[attr-defined]
        return self._all(query)
