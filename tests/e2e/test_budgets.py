"""Budgets over the real stack with the `openai` provider against a local OpenAI-compatible
server: a run stops FAILED with errorCategory BUDGET, a PATCH lifts it, tokens and cost are the
server's usage."""

from __future__ import annotations

import pytest
from sitegen import Site, generate_pages

from e2e.conftest import OPENAI_MODEL, api_client, wait_operation

pytestmark = pytest.mark.e2e
TENANT = "spend"
BASE = f"/v1/tenants/{TENANT}/assets"
EMBEDDING = {
    "provider": "openai",
    "model": OPENAI_MODEL["model"],
    "chunkSize": 64,
    "chunkOverlap": 8,
}


def test_a_budget_stops_ingestion_and_a_patch_lets_the_refresh_finish(stack, openai_server):
    price = OPENAI_MODEL["pricePerMillionTokens"]
    with Site(generate_pages(6, links="all", seed=61)) as site, api_client(stack, [TENANT]) as api:
        before = openai_server.tokens_billed
        created = api.post(
            BASE,
            json={
                "config": {
                    "sourceType": "web",
                    "parameters": {"urls": [site.url("/")], "maxDepth": 1},
                },
                "embedding": EMBEDDING,
                "budget": {"dailyTokenBudget": 1500},
            },
        )
        assert created.status_code == 200, created.text
        asset_id = created.json()["asset"]["id"]
        final = wait_operation(api, TENANT, asset_id, created.json()["longOperation"]["name"])
        assert final["status"] == "FAILED" and final["errorCategory"] == "BUDGET", final
        assert (
            "daily (UTC) token budget of 1,500 tokens would be exceeded by" in final["errorMessage"]
        )
        spent = openai_server.tokens_billed - before
        assert 0 < final["tokenCount"] == spent <= 1500
        budget = api.get(f"{BASE}/{asset_id}").json()["budget"]
        assert budget["dailyTokensUsed"] == spent and budget["dailyTokenBudget"] == 1500

        patched = api.patch(f"{BASE}/{asset_id}", json={"budget": {"dailyTokenBudget": 1_000_000}})
        assert patched.status_code == 200 and patched.json()["longOperation"] is None
        refresh = api.post(f"{BASE}/{asset_id}:refresh", json={})
        assert refresh.status_code == 200, refresh.text
        done = wait_operation(api, TENANT, asset_id, refresh.json()["longOperation"]["name"])
        assert done["status"] == "COMPLETED", done
        total = openai_server.tokens_billed - before
        assert done["tokenCount"] == total - spent
        assert done["cost"] == pytest.approx(done["tokenCount"] * price / 1e6)
        documents = api.get(f"{BASE}/{asset_id}/documents").json()["items"]
        assert {d["status"] for d in documents} == {"COMPLETED"}
        shown = api.get(f"{BASE}/{asset_id}").json()["budget"]
        assert shown["totalTokenCount"] == total
        assert shown["totalCost"] == pytest.approx(total * price / 1e6)
