"""Secrets scan on the real stack: every secret a deployment holds is used for real (a Notion
API token through an ingestion, a webhook's signing secret and URL through a delivery, a
workspace key, a bearer token, the OpenAI key through an embedding), then every byte the
processes logged and wrote under FRUXON_HOME, and every later API answer, is searched for them.
"""

from __future__ import annotations

import json
import secrets

import httpx
import pytest
from providers.notion_server import FakePage, text_block
from sitegen import Site

from e2e.conftest import OPENAI_MODEL, api_client, wait_operation
from fruxon_pipelines.catalog.store import Catalog
from fruxon_pipelines.services.api_keys import mint_api_key
from fruxon_pipelines.webhooks import SIGNATURE_HEADER, signature_of

pytestmark = pytest.mark.e2e
TENANT = "secrets"


def test_no_secret_is_logged_stored_in_the_clear_or_returned_twice(stack, notion_server):
    notion_token = f"secret_{secrets.token_hex(16)}"
    notion_server.api_tokens.add(notion_token)
    notion_server.add_page(FakePage("Manual", [text_block("paragraph", "Descale monthly.")]))
    _, workspace_key = mint_api_key(Catalog(stack.settings.catalog_url), TENANT, "write")
    base = f"/v1/tenants/{TENANT}/assets"
    with api_client(stack, [TENANT]) as api, Site() as site:
        bearer = api.headers["Authorization"].removeprefix("Bearer ")
        site.put("/", "<html><body><main><h1>Kettles</h1><p>Boil water.</p></main></body></html>")

        notion = api.post(
            base,
            json={
                "config": {"sourceType": "notion", "parameters": {}},
                "auth": {"method": "API_TOKEN", "apiToken": notion_token},
            },
        )
        assert notion.status_code == 200, notion.text
        web = api.post(
            base,
            json={
                "config": {"sourceType": "web", "parameters": {"urls": [site.url("/")]}},
                "embedding": {"provider": "openai", "model": OPENAI_MODEL["model"]},
                "autoUpdate": {"strategy": "WEBHOOK", "authMode": "HMAC"},
            },
        )
        assert web.status_code == 200, web.text
        webhook = web.json()["webhook"]
        webhook_id = webhook["webhookUrl"].rstrip("/").rsplit("/", 1)[1]
        for created in (notion.json(), web.json()):
            done = wait_operation(
                api, TENANT, created["asset"]["id"], created["longOperation"]["name"]
            )
            assert done["status"] == "COMPLETED", done
        body = json.dumps({}).encode()
        delivered = httpx.post(
            webhook["webhookUrl"],
            content=body,
            headers={SIGNATURE_HEADER: signature_of(webhook["signingSecret"], body)},
            timeout=30,
        )
        assert delivered.status_code == 202, delivered.text
        sources = httpx.get(
            stack.api_url() + "/v2/documents/public",
            headers={"Authorization": f"Bearer {workspace_key}"},
            timeout=30,
        )
        assert sources.status_code == 200, sources.text

        # Every later answer about these assets.
        answers = [api.get(base).text, sources.text]
        for created in (notion.json(), web.json()):
            asset_id = created["asset"]["id"]
            answers += [
                api.get(f"{base}/{asset_id}").text,
                api.get(f"{base}/{asset_id}/operations").text,
                api.get(f"{base}/{asset_id}/documents").text,
            ]

    held = {
        "Notion API token": notion_token,
        "webhook signing secret": webhook["signingSecret"],
        "webhook URL id": webhook_id,
        "workspace API key": workspace_key,
        "bearer token": bearer,
        "OpenAI API key": stack.settings.openai_api_key.get_secret_value(),
    }
    logs = b"".join(p.read_bytes() for p in sorted(stack.log_dir.glob("*.log")))
    assert b"Application startup complete" in logs or b"Uvicorn running" in logs, "no API log"
    stored = b"".join(
        p.read_bytes()
        for p in sorted(stack.settings.resolved_home.rglob("*"))
        # The two key files are the keys themselves (mode 0600), not secrets in the clear.
        if p.is_file() and p.name not in ("secret_key", "jwt_secret")
    )
    assert len(stored) > 100_000, "the scan read the catalog, the index and Dagster's storage"
    for what, secret in held.items():
        assert len(secret) >= 16, what
        assert secret.encode() not in logs, f"the {what} is in a process log"
        assert secret.encode() not in stored, f"the {what} is stored in the clear"
        assert all(secret not in answer for answer in answers), f"an answer repeats the {what}"
