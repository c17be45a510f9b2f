"""The whole stack on PostgreSQL: the catalog and Dagster's storage on a real server (Debian's
package), the webserver, daemon and API as processes, the real model, four runs at once."""

from __future__ import annotations

import pytest
import yaml
from conftest import free_port
from sitegen import Site

from e2e.conftest import api_client, wait_operation
from fruxon_pipelines.launcher import PROJECT_ROOT
from fruxon_pipelines.settings import Settings
from fruxon_pipelines.stack import Stack

pytestmark = pytest.mark.e2e
TENANT = "pg"
ASSETS = 4


@pytest.fixture(scope="module")
def pg_stack(tmp_path_factory, postgres):
    home = tmp_path_factory.mktemp("pg-stack")
    # deploy/dagster-postgres.yaml with room for four runs at once (the embedded default is 2).
    instance = yaml.safe_load((PROJECT_ROOT / "deploy" / "dagster-postgres.yaml").read_text())
    instance["concurrency"]["runs"]["max_concurrent_runs"] = ASSETS
    instance_yaml = home / "dagster.yaml"
    instance_yaml.write_text(yaml.safe_dump(instance))
    env = {
        "FRUXON_HOME": str(home / "fruxon"),
        "FRUXON_DATABASE_URL": postgres.create_database("stack_catalog"),
        "FRUXON_DAGSTER_POSTGRES_URL": postgres.create_database("stack_dagster"),
        "FRUXON_DAGSTER_YAML": str(instance_yaml),
        "FRUXON_DAGSTER_PORT": str(free_port()),
        "FRUXON_API_PORT": str(free_port()),
        "FRUXON_CODE_SERVER_PORT": str(free_port()),
        "FRUXON_ALLOW_PRIVATE_NETWORKS": "1",
        "FRUXON_EMBED_BATCH_SIZE": "16",
    }
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        with Stack(Settings()) as running:
            running.wait_until_ready(timeout=240)
            yield running


def test_four_assets_ingest_at_once_with_everything_on_postgresql(pg_stack):
    with Site() as site, api_client(pg_stack, [TENANT]) as api:
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
