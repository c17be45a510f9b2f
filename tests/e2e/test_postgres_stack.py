"""The whole stack on PostgreSQL: the catalog and Dagster's storage on a real server (Debian's
package), the webserver, daemon and API as processes, the real model, four runs at once."""

from __future__ import annotations

import pytest
from sitegen import Site

from e2e.conftest import POSTGRES_MAX_CONCURRENT_RUNS, api_client, wait_operation

pytestmark = pytest.mark.e2e
TENANT = "pg"
ASSETS = POSTGRES_MAX_CONCURRENT_RUNS


def test_four_assets_ingest_at_once_with_everything_on_postgresql(postgres_stack):
    with Site() as site, api_client(postgres_stack, [TENANT]) as api:
        for n in range(ASSETS):
            for page in range(3):
                body = f"<h1>Site {n} page {page}</h1><p>Harbour {n} opens at {page + 6} am.</p>"
                # Slow pages keep the runs in flight together long enough to overlap.
                site.put(f"/s{n}/p{page}", f"<html><body>{body}</body></html>", delay=2.0)
        created = []
        for n in range(ASSETS):
            urls = [site.url(f"/s{n}/p{page}") for page in range(3)]
            response = api.post(
                f"/v1/tenants/{TENANT}/assets",
                json={
                    "name": f"site {n}",
                    "config": {"sourceType": "web", "parameters": {"urls": urls}},
                },
            )
            assert response.status_code == 200, response.text
            created.append(response.json())
        done = [
            wait_operation(api, TENANT, c["asset"]["id"], c["longOperation"]["name"], timeout=400)
            for c in created
        ]
        assert [d["status"] for d in done] == ["COMPLETED"] * ASSETS, done
        # The runs overlapped: each started before any other had ended.
        first_end = min(d["completedAt"] for d in done)
        assert all(d["startedAt"] < first_end for d in done), done
        for n, c in enumerate(created):
            asset = c["asset"]["id"]
            documents = api.get(f"/v1/tenants/{TENANT}/assets/{asset}/documents").json()
            assert documents["totalCount"] == 3
            hits = api.post(
                f"/v1/tenants/{TENANT}/assets/{asset}:search",
                json={"query": f"when does harbour {n} open", "topK": 1},
            ).json()["results"]
            assert f"Harbour {n}" in hits[0]["content"]
