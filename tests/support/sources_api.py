"""Helpers for tests of the sources API (/v2/documents/public) on an in-process app."""

from __future__ import annotations

from typing import Any

SOURCES = "/v2/documents/public"


def workspace_key(client: Any, scope: str = "write", tenant: str = "acme") -> dict[str, str]:
    """Headers with a fresh workspace API key of ``scope`` for ``tenant``."""
    from fruxon_pipelines.services.api_keys import mint_api_key

    _, key = mint_api_key(client.services.catalog, tenant, scope)
    return {"Authorization": f"Bearer {key}"}


def record(client: Any, headers: dict[str, str], document_id: str) -> dict[str, Any]:
    response = client.get(f"{SOURCES}/{document_id}", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()
