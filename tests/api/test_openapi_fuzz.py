"""schemathesis against the app's own /openapi.json: generated requests to every operation of
both facades, with valid credentials, on the in-process app over a real catalog and LanceDB.

Every answer must be a non-5xx whose status, content type and body the schema documents. The
example count is bounded (``FRUXON_FUZZ_EXAMPLES``, default 25 per operation) so the suite stays
fast; raise it for a deeper run.
"""

from __future__ import annotations

import os
import zlib

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from fruxon_api.app import create_app
from fruxon_api.auth import READ, WRITE, issue_token
from fruxon_pipelines.services.api_keys import mint_api_key
from fruxon_pipelines.settings import Settings

EXAMPLES = int(os.environ.get("FRUXON_FUZZ_EXAMPLES", "25"))
TENANT = "acme"
CHECKS = [
    schemathesis.checks.not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory):
    """The app with an asset, a document and an operation to aim at, and both kinds of key."""
    from fruxon_pipelines.stack import free_port

    home = tmp_path_factory.mktemp("fuzz")
    app_settings = Settings(
        home=home,
        dagster_port=free_port(),
        public_url="https://fruxon.example.test/",
        # Thousands of generated searches and refreshes: the limiter is tested elsewhere.
        search_rate_limit_per_minute=0,
        refresh_rate_limit_per_minute=0,
    )
    app = create_app(app_settings)
    token = issue_token(app_settings, tenants=[TENANT], scopes=[READ, WRITE])
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as client:
        created = client.post(
            f"/v1/tenants/{TENANT}/assets",
            json={"config": {"sourceType": "web", "parameters": {"urls": ["https://a.test/"]}}},
        )
        assert created.status_code == 200, created.text
        services = app.state.services
        asset = created.json()["asset"]["id"]
        services.catalog.upsert_document(asset, "https://a.test/", status="COMPLETED")
        _, workspace_key = mint_api_key(services.catalog, TENANT, "write")
        yield {
            "app": app,
            "jwt": token,
            "workspace_key": workspace_key,
            "ids": {
                "asset": asset,
                "document": next(iter(services.catalog.documents_by_key(asset).values())).id,
                "operation": created.json()["longOperation"]["name"],
            },
        }


def _aimed(case, fuzzed) -> dict[str, str]:
    """Point the case at the test's tenant, and half the time at what exists, so requests get
    past the 404s to the handlers; never DELETE the one asset the rest of the run needs."""
    parameters = case.path_parameters or {}
    if "tenant" in parameters:
        parameters["tenant"] = TENANT
    if case.method != "DELETE" and zlib.crc32(repr(case.query).encode()) % 2 == 0:
        for name, ident in fuzzed["ids"].items():
            if name in parameters:
                parameters[name] = ident
    workspace = case.path.startswith("/v2/documents/public")
    credential = fuzzed["workspace_key"] if workspace else fuzzed["jwt"]
    return {"Authorization": f"Bearer {credential}"}


def test_every_operation_answers_within_its_schema(fuzzed):
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzzed["app"])
    failures: dict[str, str] = {}
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path == "/healthz":
            continue  # its 503 is its contract: it reports whether Dagster's webserver answers
        operations += 1

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,  # the same examples on every run: a red CI is reproducible
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def exercise(case) -> None:
            case.call_and_validate(headers=_aimed(case, fuzzed), checks=CHECKS)

        try:
            exercise()
        except (Exception, BaseExceptionGroup) as error:  # noqa: BLE001 — reported below
            failures[operation.label] = str(error)[:1500]
    assert operations > 30
    assert not failures, "\n\n".join(f"{label}:\n{text}" for label, text in failures.items())
