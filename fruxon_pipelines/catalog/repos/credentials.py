"""Credentials a tenant keeps with us: LLM configs (embedding keys) and OAuth flows with the
credentials they produce. Every secret here is sealed before it reaches the catalog."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import InstrumentedAttribute, Session

from fruxon_pipelines.catalog.db import Database
from fruxon_pipelines.catalog.models import (
    KnowledgeAsset,
    LlmConfig,
    OAuthCredential,
    OAuthFlow,
    now_ms,
)

# Expired flows and credentials are kept this long, then go when a new flow starts.
_EXPIRED_KEPT_MS = 86_400_000


def _use_once(
    session: Session, key: InstrumentedAttribute, value: str, used: InstrumentedAttribute, now: int
) -> bool:
    """Mark the row whose ``key`` is ``value`` used at ``now`` if it is neither used nor expired.

    One statement, so of two callers racing with one ``state`` or one key, only one gets it."""
    model: Any = key.class_
    done = session.execute(
        update(model)
        .where(key == value, used.is_(None), model.expires_at > now)
        .values({used: now})
    )
    return done.rowcount == 1


class CredentialsRepo(Database):
    # Tenants' LLM configs (stored embedding credentials) -------------------------------------

    def create_llm_config(
        self, *, tenant: str, name: str, provider: str, sealed_api_key: str
    ) -> LlmConfig:
        return self._add(
            LlmConfig(
                id=str(uuid.uuid4()),
                tenant=tenant,
                name=name,
                provider=provider,
                api_key=sealed_api_key,
                revision=1,
            )
        )

    def get_llm_config(self, config_id: str) -> LlmConfig | None:
        return self._get(LlmConfig, config_id)

    def list_llm_configs(self, tenant: str | None = None) -> list[LlmConfig]:
        return self._of_tenant(LlmConfig, tenant)

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
            session.execute(delete(OAuthFlow).where(OAuthFlow.expires_at < now - _EXPIRED_KEPT_MS))
            session.execute(
                delete(OAuthCredential).where(OAuthCredential.expires_at < now - _EXPIRED_KEPT_MS)
            )
            session.add(flow)

    def claim_oauth_flow(self, flow_id: str) -> OAuthFlow | None:
        """The flow, marked used, if it is unused and unexpired; else None (a replayed or late
        ``state``). One statement, so two callbacks racing cannot both claim it."""
        with self.session() as session:
            claimed = _use_once(session, OAuthFlow.id, flow_id, OAuthFlow.used_at, now_ms())
            return session.get(OAuthFlow, flow_id) if claimed else None

    def add_oauth_credential(self, credential: OAuthCredential) -> None:
        self._add(credential)

    def take_oauth_credential(self, key_hash: str) -> OAuthCredential | None:
        """The credential, consumed, if it was neither consumed nor expired; else None."""
        now = now_ms()
        with self.session() as session:
            key, consumed = OAuthCredential.key_hash, OAuthCredential.consumed_at
            if not _use_once(session, key, key_hash, consumed, now):
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
