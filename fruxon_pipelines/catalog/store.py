"""Catalog access: engine set-up, migrations, and the queries the pipeline and API share."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Engine,
    case,
    create_engine,
    delete,
    event,
    func,
    select,
    tuple_,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from fruxon_pipelines.budgets import Usage, check, windows_of
from fruxon_pipelines.catalog.models import (
    ApiKey,
    Document,
    DocumentText,
    KnowledgeAsset,
    LlmConfig,
    OAuthCredential,
    OAuthFlow,
    Operation,
    StoredFile,
    TokenUsage,
    WebhookEvent,
    WebhookRegistration,
    now_ms,
)

# Namespace of document ids: uuid5(asset id as UUID, source key) is stable across refreshes.
MIGRATIONS_DIR = Path(__file__).parent / "migrations"

_migrated: set[str] = set()
_migrate_lock = threading.Lock()


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


def _batches(items: list, size: int = 500) -> Iterator[list]:
    """``items`` in slices that keep an IN list under SQLite's bound-parameter limit."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _tenant_documents_query(tenant: str) -> Any:
    """(document, asset) rows of the tenant's assets that are not being deleted."""
    return (
        select(Document, KnowledgeAsset)
        .join(KnowledgeAsset, KnowledgeAsset.id == Document.asset_id)
        .where(KnowledgeAsset.tenant == tenant, KnowledgeAsset.status != "DELETING")
    )


def document_id_for(asset_id: str, source_key: str) -> str:
    return str(uuid.uuid5(uuid.UUID(asset_id), source_key))


class Catalog:
    """The catalog database. One instance per process and URL is enough."""

    def __init__(self, url: str, *, run_migrations: bool = True) -> None:
        if run_migrations:
            migrate(url)
        self.url = url
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions.begin() as session:
            yield session

    # Knowledge assets -------------------------------------------------------------------------

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
            id=asset_id or str(uuid.uuid4()),
            tenant=tenant,
            name=name,
            source_type=source_type,
            source_config=source_config,
            embedding_config=embedding_config,
            **columns,
        )
        with self.session() as session:
            session.add(asset)
        return asset

    def get_asset(self, asset_id: str) -> KnowledgeAsset | None:
        with self.session() as session:
            return session.get(KnowledgeAsset, asset_id)

    def list_assets(self, tenant: str | None = None) -> list[KnowledgeAsset]:
        query = select(KnowledgeAsset).order_by(KnowledgeAsset.created_at)
        if tenant is not None:
            query = query.where(KnowledgeAsset.tenant == tenant)
        with self.session() as session:
            return list(session.scalars(query))

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
            session.execute(delete(Document).where(Document.asset_id == asset_id))
            session.execute(delete(WebhookEvent).where(WebhookEvent.asset_id == asset_id))
            session.execute(delete(TokenUsage).where(TokenUsage.asset_id == asset_id))
            session.execute(
                delete(WebhookRegistration).where(WebhookRegistration.asset_id == asset_id)
            )
            session.execute(delete(Operation).where(Operation.asset_id == asset_id))
            session.execute(delete(KnowledgeAsset).where(KnowledgeAsset.id == asset_id))

    def mark_asset_processed(self, asset_id: str, error: str | None = None) -> None:
        with self.session() as session:
            session.execute(
                update(KnowledgeAsset)
                .where(KnowledgeAsset.id == asset_id)
                .values(processed_at=now_ms(), last_error=error, last_error_category=None)
            )

    # Workspace API keys (the sources API) -----------------------------------------------------

    def add_api_key(self, key: ApiKey) -> ApiKey:
        with self.session() as session:
            session.add(key)
        return key

    def api_key_by_hash(self, key_hash: str) -> ApiKey | None:
        with self.session() as session:
            return session.scalar(select(ApiKey).where(ApiKey.key_hash == key_hash))

    def list_api_keys(self, tenant: str | None = None) -> list[ApiKey]:
        query = select(ApiKey).order_by(ApiKey.created_at)
        if tenant is not None:
            query = query.where(ApiKey.tenant == tenant)
        with self.session() as session:
            return list(session.scalars(query))

    def revoke_api_key(self, key_id: str) -> bool:
        """Whether a key that was live is revoked now (False: unknown or revoked already)."""
        with self.session() as session:
            done = session.execute(
                update(ApiKey)
                .where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
                .values(revoked_at=now_ms())
            )
            return done.rowcount == 1

    # Tenants' LLM configs (stored embedding credentials) -------------------------------------

    def create_llm_config(
        self, *, tenant: str, name: str, provider: str, sealed_api_key: str
    ) -> LlmConfig:
        config = LlmConfig(
            id=str(uuid.uuid4()),
            tenant=tenant,
            name=name,
            provider=provider,
            api_key=sealed_api_key,
            revision=1,
        )
        with self.session() as session:
            session.add(config)
        return config

    def get_llm_config(self, config_id: str) -> LlmConfig | None:
        with self.session() as session:
            return session.get(LlmConfig, config_id)

    def list_llm_configs(self, tenant: str | None = None) -> list[LlmConfig]:
        query = select(LlmConfig).order_by(LlmConfig.created_at)
        if tenant is not None:
            query = query.where(LlmConfig.tenant == tenant)
        with self.session() as session:
            return list(session.scalars(query))

    def rotate_llm_config(self, config_id: str, sealed_api_key: str) -> LlmConfig | None:
        """Publish a new key: the next batch or search of every asset naming it uses it."""
        with self.session() as session:
            config = session.get(LlmConfig, config_id)
            if config is not None:
                config.api_key = sealed_api_key
                config.revision += 1
                session.flush()
            return config

    def delete_llm_config(self, config_id: str) -> list[str]:
        """Remove the config; returns the ids of assets that still name it (they then fail
        with CREDENTIALS until given another key, rather than quietly using the server's)."""
        with self.session() as session:
            session.execute(delete(LlmConfig).where(LlmConfig.id == config_id))
            return list(
                session.scalars(
                    select(KnowledgeAsset.id).where(
                        KnowledgeAsset.embedding_llm_config_id == config_id
                    )
                )
            )

    # OAuth flows and the credentials they produce ----------------------------------------------

    def add_oauth_flow(self, flow: OAuthFlow) -> None:
        with self.session() as session:
            # Expired flows and credentials go whenever a new flow starts.
            now = now_ms()
            session.execute(delete(OAuthFlow).where(OAuthFlow.expires_at < now - 86_400_000))
            session.execute(
                delete(OAuthCredential).where(OAuthCredential.expires_at < now - 86_400_000)
            )
            session.add(flow)

    def claim_oauth_flow(self, flow_id: str) -> OAuthFlow | None:
        """The flow, marked used, if it is unused and unexpired; else None (a replayed or late
        ``state``). One statement, so two callbacks racing cannot both claim it."""
        now = now_ms()
        with self.session() as session:
            claimed = session.execute(
                update(OAuthFlow)
                .where(
                    OAuthFlow.id == flow_id,
                    OAuthFlow.used_at.is_(None),
                    OAuthFlow.expires_at > now,
                )
                .values(used_at=now)
            ).rowcount
            return session.get(OAuthFlow, flow_id) if claimed == 1 else None

    def add_oauth_credential(self, credential: OAuthCredential) -> None:
        with self.session() as session:
            session.add(credential)

    def take_oauth_credential(self, key_hash: str) -> OAuthCredential | None:
        """The credential, consumed, if it was neither consumed nor expired; else None."""
        now = now_ms()
        with self.session() as session:
            taken = session.execute(
                update(OAuthCredential)
                .where(
                    OAuthCredential.key_hash == key_hash,
                    OAuthCredential.consumed_at.is_(None),
                    OAuthCredential.expires_at > now,
                )
                .values(consumed_at=now)
            ).rowcount
            if taken != 1:
                return None
            row = session.execute(
                select(
                    OAuthCredential.tenant, OAuthCredential.source_type, OAuthCredential.tokens
                ).where(OAuthCredential.key_hash == key_hash)
            ).one()
            # Handed out once: the sealed tokens do not stay behind either.
            session.execute(
                update(OAuthCredential)
                .where(OAuthCredential.key_hash == key_hash)
                .values(tokens="")
            )
            return OAuthCredential(
                key_hash=key_hash,
                tenant=row.tenant,
                source_type=row.source_type,
                tokens=row.tokens,
                expires_at=0,
                consumed_at=now,
            )

    # Documents --------------------------------------------------------------------------------

    def documents_by_key(self, asset_id: str) -> dict[str, Document]:
        with self.session() as session:
            rows = session.scalars(select(Document).where(Document.asset_id == asset_id))
            return {row.source_key: row for row in rows}

    def documents_by_id(self, asset_id: str, document_ids: Iterable[str]) -> list[Document]:
        ids = list(document_ids)
        with self.session() as session:
            return list(
                session.scalars(
                    select(Document).where(Document.asset_id == asset_id, Document.id.in_(ids))
                )
            )

    def upsert_document(self, asset_id: str, source_key: str, **fields: Any) -> Document:
        """Create or update the document of (asset, source key); returns the stored row."""
        with self.session() as session:
            document = _set_document(session, asset_id, source_key, fields)
            session.flush()
            return document

    def delete_documents(self, document_ids: Iterable[str]) -> None:
        ids = list(document_ids)
        if not ids:
            return
        with self.session() as session:
            session.execute(delete(Document).where(Document.id.in_(ids)))

    def register_documents(
        self, asset_id: str, items: list[tuple[str, dict[str, Any]]]
    ) -> tuple[list[str], list[str]]:
        """Documents picked to be ingested, by source key with their metadata: new ones are
        created PENDING, known ones get the metadata. Returns (added ids, updated ids)."""
        try:
            return self._register_documents(asset_id, items)
        except IntegrityError:  # a concurrent registration won the insert: now it is an update
            return self._register_documents(asset_id, items)

    def _register_documents(
        self, asset_id: str, items: list[tuple[str, dict[str, Any]]]
    ) -> tuple[list[str], list[str]]:
        added, updated = [], []
        with self.session() as session:
            for source_key, fields in items:
                document_id = document_id_for(asset_id, source_key)
                document = session.get(Document, document_id)
                if document is None:
                    document = Document(
                        id=document_id, asset_id=asset_id, source_key=source_key, status="PENDING"
                    )
                    session.add(document)
                    added.append(document_id)
                elif document_id not in added and document_id not in updated:
                    updated.append(document_id)
                for name, value in fields.items():
                    setattr(document, name, value)
                session.flush()
        return added, updated

    def settle_documents(
        self, asset_id: str, source_keys: Iterable[str], operation_id: str, **fields: Any
    ) -> None:
        """Record that ``operation_id`` read these documents and found what ``fields`` say, in
        one statement per 500 (not one per document). ``modified_at`` stays: reading a document
        again is no change of it."""
        keys = list(source_keys)
        values = {
            "outcome_operation_id": operation_id,
            "modified_at": Document.modified_at,
            **fields,
        }
        with self.session() as session:
            for batch in _batches(keys):
                session.execute(
                    update(Document)
                    .where(Document.asset_id == asset_id, Document.source_key.in_(batch))
                    .values(**values)
                )

    def link_documents(self, document_ids: Iterable[str], operation_id: str) -> None:
        """These documents are what ``operation_id`` was asked to take on."""
        with self.session() as session:
            for batch in _batches(list(document_ids)):
                session.execute(
                    update(Document)
                    .where(Document.id.in_(batch))
                    .values(operation_id=operation_id, modified_at=Document.modified_at)
                )

    def complete_document(
        self, asset_id: str, source_key: str, paragraphs: list[str], **fields: Any
    ) -> Document:
        """The document's indexed state and its paragraphs, in one transaction: a reader never
        sees it COMPLETED without its text. When it changed (``fields["changed"]``) the
        paragraphs it replaces are kept as the previous ones."""
        with self.session() as session:
            document = _set_document(session, asset_id, source_key, fields)
            text = session.get(DocumentText, document.id)
            if text is None:
                session.add(
                    DocumentText(
                        document_id=document.id, paragraphs=paragraphs, previous_paragraphs=[]
                    )
                )
            else:
                if fields.get("changed"):
                    text.previous_paragraphs = text.paragraphs
                text.paragraphs = paragraphs
            session.flush()
            return document

    def document_texts(self, document_ids: Iterable[str]) -> dict[str, DocumentText]:
        ids = list(document_ids)
        with self.session() as session:
            rows = session.scalars(select(DocumentText).where(DocumentText.document_id.in_(ids)))
            return {row.document_id: row for row in rows}

    def tenant_documents(
        self, tenant: str, document_ids: Iterable[str]
    ) -> dict[str, tuple[Document, KnowledgeAsset]]:
        """The tenant's documents among ``document_ids`` (of assets not being deleted)."""
        query = _tenant_documents_query(tenant).where(Document.id.in_(list(document_ids)))
        with self.session() as session:
            return {doc.id: (doc, asset) for doc, asset in session.execute(query)}

    def tenant_documents_by_key(
        self, tenant: str, source_type: str, source_keys: Iterable[str]
    ) -> dict[str, tuple[Document, KnowledgeAsset]]:
        """The tenant's documents of ``source_type`` assets with these source keys; where two
        assets hold one key, the asset created first."""
        query = (
            _tenant_documents_query(tenant)
            .where(
                KnowledgeAsset.source_type == source_type,
                Document.source_key.in_(list(source_keys)),
            )
            .order_by(KnowledgeAsset.created_at.desc())  # the first-created asset's row wins
        )
        with self.session() as session:
            return {doc.source_key: (doc, asset) for doc, asset in session.execute(query)}

    def tenant_documents_page(
        self,
        tenant: str,
        *,
        limit: int,
        after: Document | None = None,
        newer: bool = False,
        source_types: Iterable[str] | None = None,
        document_id: str | None = None,
        title: str | None = None,
        url: str | None = None,
        changed: bool | None = None,
    ) -> tuple[list[tuple[Document, KnowledgeAsset]], bool]:
        """One page of the tenant's documents, newest change first (``modified_at``, then
        source key, then id, all descending), and whether more follow in that direction.

        ``after``: the page starts beyond this document — toward older ones, or toward newer
        ones when ``newer`` (the page is still returned newest first)."""
        order = (Document.modified_at, Document.source_key, Document.id)
        query = _tenant_documents_query(tenant)
        if source_types is not None:
            query = query.where(KnowledgeAsset.source_type.in_(list(source_types)))
        if document_id is not None:
            query = query.where(Document.id == document_id)
        if title:
            query = query.where(func.lower(Document.title).contains(title.lower(), autoescape=True))
        if url:
            query = query.where(
                func.lower(Document.source_url).contains(url.lower(), autoescape=True)
            )
        if changed is not None:
            query = query.where(Document.changed.is_(changed))
        if after is not None:
            mark = tuple_(*order)
            at = tuple_(after.modified_at, after.source_key, after.id)
            query = query.where(mark > at if newer else mark < at)
        if newer:
            query = query.order_by(*(c.asc() for c in order))
        else:
            query = query.order_by(*(c.desc() for c in order))
        with self.session() as session:
            rows = [tuple(row) for row in session.execute(query.limit(limit + 1))]
        more = len(rows) > limit
        rows = rows[:limit]
        if newer:
            rows.reverse()
        return rows, more

    def indexed_chunk_counts(self, asset_id: str) -> dict[str, int]:
        """Chunk count the catalog expects in the index, per COMPLETED document."""
        with self.session() as session:
            rows = session.execute(
                select(Document.id, Document.chunk_count).where(
                    Document.asset_id == asset_id, Document.status == "COMPLETED"
                )
            )
            return {document_id: count for document_id, count in rows}

    def count_documents(self, asset_id: str) -> int:
        with self.session() as session:
            return session.scalar(
                select(func.count()).select_from(Document).where(Document.asset_id == asset_id)
            )

    # Operations -------------------------------------------------------------------------------

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
        operation = Operation(
            id=operation_id or str(uuid.uuid4()),
            asset_id=asset_id,
            tenant=tenant,
            type=type,
            created_by=created_by,
            request=request or {},
        )
        with self.session() as session:
            session.add(operation)
        return operation

    def get_operation(self, operation_id: str) -> Operation | None:
        with self.session() as session:
            return session.get(Operation, operation_id)

    def get_asset_and_operation(
        self, asset_id: str, operation_id: str
    ) -> tuple[KnowledgeAsset | None, Operation | None]:
        """Both rows in one transaction: what every read of an operation starts with."""
        with self.session() as session:
            return session.get(KnowledgeAsset, asset_id), session.get(Operation, operation_id)

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
        with self.session() as session:
            return list(session.scalars(query))

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
        with self.session() as session:
            return list(session.scalars(query.order_by(Operation.created_at).limit(limit)))

    def update_operation(self, operation_id: str, **fields: Any) -> None:
        with self.session() as session:
            session.execute(update(Operation).where(Operation.id == operation_id).values(**fields))

    @staticmethod
    def _operation_once(session: Session, operation: Operation) -> Operation:
        """``operation`` added, unless a sensor's earlier, interrupted tick added it already."""
        existing = session.get(Operation, operation.id)
        if existing is not None:
            return existing
        session.add(operation)
        return operation

    # Auto-update: webhooks ------------------------------------------------------------------

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
        with self.session() as session:
            session.execute(
                delete(WebhookRegistration).where(WebhookRegistration.asset_id == asset_id)
            )

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
            with self.session() as session:
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
        with self.session() as session:
            return list(session.scalars(query.order_by(WebhookEvent.id).limit(limit)))

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

    def assign_webhook_events(self, event_ids: list[int], operation: Operation) -> Operation:
        """Write the operation and hand it the events, in one transaction."""
        with self.session() as session:
            stored = self._operation_once(session, operation)
            session.execute(
                update(WebhookEvent)
                .where(WebhookEvent.id.in_(event_ids), WebhookEvent.operation_id.is_(None))
                .values(operation_id=stored.id)
            )
            return stored

    def discard_webhook_events(self, event_ids: list[int]) -> None:
        with self.session() as session:
            session.execute(delete(WebhookEvent).where(WebhookEvent.id.in_(event_ids)))

    def webhook_events_of(self, operation_id: str) -> list[WebhookEvent]:
        with self.session() as session:
            return list(
                session.scalars(
                    select(WebhookEvent).where(WebhookEvent.operation_id == operation_id)
                )
            )

    def prune_webhook_events(self, received_before: int) -> int:
        """Forget events that an operation took long ago (waiting ones are kept)."""
        with self.session() as session:
            result = session.execute(
                delete(WebhookEvent).where(
                    WebhookEvent.operation_id.is_not(None),
                    WebhookEvent.received_at < received_before,
                )
            )
            return result.rowcount or 0

    # Auto-update: poll schedules ------------------------------------------------------------

    def assets_due_for_poll(self, now: int, limit: int = 500) -> list[KnowledgeAsset]:
        with self.session() as session:
            return list(
                session.scalars(
                    select(KnowledgeAsset)
                    .where(
                        KnowledgeAsset.next_poll_at.is_not(None),
                        KnowledgeAsset.next_poll_at <= now,
                        KnowledgeAsset.status != "DELETING",
                    )
                    .order_by(KnowledgeAsset.next_poll_at)
                    .limit(limit)
                )
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
            return self._operation_once(session, operation)

    # Token budgets ---------------------------------------------------------------------------

    def token_usage(self, asset_id: str, now: int) -> Usage:
        with self.session() as session:
            return self._usage(session, asset_id, now)

    @staticmethod
    def _usage(session: Session, asset_id: str, now: int) -> Usage:
        day, month = windows_of(now)
        row = session.execute(
            select(
                func.coalesce(func.sum(TokenUsage.tokens), 0),
                func.coalesce(
                    func.sum(case((TokenUsage.day == day, TokenUsage.tokens), else_=0)), 0
                ),
                func.coalesce(
                    func.sum(case((TokenUsage.month == month, TokenUsage.tokens), else_=0)), 0
                ),
            ).where(TokenUsage.asset_id == asset_id)
        ).one()
        return Usage(total=int(row[0]), daily=int(row[1]), monthly=int(row[2]))

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
            check(self._usage(session, asset_id, now), limits, tokens)
            day, month = windows_of(now)
            row = TokenUsage(
                asset_id=asset_id,
                kind=kind,
                operation_id=operation_id,
                at=now,
                day=day,
                month=month,
                tokens=tokens,
                settled=False,
            )
            session.add(row)
            session.flush()
            return row.id

    def settle_tokens(self, reservation_id: int, tokens: int) -> None:
        """The reservation becomes what was actually spent (the service's count)."""
        with self.session() as session:
            session.execute(
                update(TokenUsage)
                .where(TokenUsage.id == reservation_id)
                .values(tokens=tokens, settled=True)
            )

    def release_tokens(self, reservation_id: int) -> None:
        with self.session() as session:
            session.execute(delete(TokenUsage).where(TokenUsage.id == reservation_id))

    # Stored files (POST /storage) -------------------------------------------------------------

    def add_stored_file(self, stored: StoredFile) -> StoredFile:
        with self.session() as session:
            session.add(stored)
        return stored

    def get_stored_file(self, file_id: str) -> StoredFile | None:
        with self.session() as session:
            return session.get(StoredFile, file_id)

    def retain_stored_file(self, file_id: str) -> None:
        with self.session() as session:
            session.execute(
                update(StoredFile).where(StoredFile.id == file_id).values(temporary=False)
            )

    def expired_temporary_files(self, created_before: int) -> list[StoredFile]:
        with self.session() as session:
            return list(
                session.scalars(
                    select(StoredFile).where(
                        StoredFile.temporary.is_(True), StoredFile.created_at < created_before
                    )
                )
            )

    def delete_stored_file(self, file_id: str) -> None:
        with self.session() as session:
            session.execute(delete(StoredFile).where(StoredFile.id == file_id))


def _set_document(
    session: Session, asset_id: str, source_key: str, fields: dict[str, Any]
) -> Document:
    """The document of (asset, source key) in this session, created if new, with ``fields``."""
    document_id = document_id_for(asset_id, source_key)
    document = session.get(Document, document_id)
    if document is None:
        document = Document(id=document_id, asset_id=asset_id, source_key=source_key)
        session.add(document)
    for name, value in fields.items():
        setattr(document, name, value)
    return document
