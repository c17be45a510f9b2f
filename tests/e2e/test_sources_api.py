"""The sources API (Fini's documents API) over HTTP against the real stack: keys minted by the
CLI, operations launched through Dagster, the real model; both documented flows."""

from __future__ import annotations

import httpx
import pytest
from providers.notion_server import FakePage, text_block
from sitegen import Site

from e2e.conftest import api_client, wait_for, wait_operation, workspace_key

pytestmark = pytest.mark.e2e
SOURCES = "/v2/documents/public"


def _workspace_key(stack, tenant: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {workspace_key(stack, tenant)}"}


def _page(title: str, text: str) -> str:
    head = f"<html><head><title>{title}</title></head>"
    return f"{head}<body><h1>{title}</h1><p>{text}</p></body></html>"


def _settled(sources: httpx.Client, document_id: str, after_job: str | None = None) -> dict:
    """The record once its latest job (a newer one than ``after_job``) is done."""

    def done():
        record = sources.get(f"{SOURCES}/{document_id}").json()
        if record["linkedJobId"] == after_job:
            return None
        return record if record["linkedJobStatus"] in ("COMPLETED", "FAILED") else None

    return wait_for(done, 300, f"source {document_id}")


def test_web_urls_flow_through_dagster_and_show_the_same_in_both_apis(stack):
    tenant = "fini-web"
    with (
        Site() as site,
        httpx.Client(
            base_url=stack.api_url(), headers=_workspace_key(stack, tenant), timeout=60
        ) as sources,
        api_client(stack, [tenant]) as assets_api,
    ):
        site.put("/returns", _page("Returns", "Parcels come back to the harbour depot."))
        site.put("/shipping", _page("Shipping", "Boxes leave the dock every Tuesday."))
        urls = [site.url("/returns"), site.url("/shipping")]
        queued = sources.post(SOURCES, json={"source": "web", "documentIdsToAdd": urls})
        assert queued.status_code == 200, queued.text
        ids = queued.json()["addedDocumentIds"]
        assert len(ids) == 2
        first = sources.get(f"{SOURCES}/{ids[0]}").json()
        assert first["linkedJobStatus"] in ("PENDING", "IN_PROGRESS")

        done = [_settled(sources, i) for i in ids]
        assert [d["linkedJobStatus"] for d in done] == ["COMPLETED", "COMPLETED"]
        assert "Parcels come back to the harbour depot." in done[0]["paragraphs"]
        asset_id = done[0]["knowledgeAssetId"]

        # The record's job is its document's; the operation ends once its checks have run.
        operation = wait_operation(assets_api, tenant, asset_id, done[0]["linkedJobId"])
        assert (operation["status"], operation["type"]) == ("COMPLETED", "INGEST")
        # The Assets API shows the same documents and status; search finds them.
        documents = assets_api.get(f"/v1/tenants/{tenant}/assets/{asset_id}/documents").json()
        assert {d["id"]: d["status"] for d in documents["items"]} == dict.fromkeys(ids, "COMPLETED")
        hits = assets_api.post(
            f"/v1/tenants/{tenant}/assets/{asset_id}:search",
            json={"query": "where do returned parcels go", "topK": 1},
        ).json()["results"]
        assert hits[0]["sourceUrl"] == urls[0]

        site.put("/returns", _page("Returns", "Parcels now come back to the airport hub."))
        assert sources.post(f"{SOURCES}/refresh", json={"documentIds": ids}).json() == ids
        again = [
            _settled(sources, i, after_job=d["linkedJobId"]) for i, d in zip(ids, done, strict=True)
        ]
        assert [d["changed"] for d in again] == [True, False]
        assert "Parcels now come back to the airport hub." in again[0]["paragraphs"]
        changed = sources.get(SOURCES, params={"changed": "true"}).json()["documents"]
        assert [d["id"] for d in changed] == [ids[0]]

        deleted = sources.request("DELETE", SOURCES, json={"documentIds": [ids[1]]}).json()
        assert [d["id"] for d in deleted["deletedDocuments"]] == [ids[1]]
        assert sources.get(f"{SOURCES}/{ids[1]}").status_code == 404
        left = assets_api.get(f"/v1/tenants/{tenant}/assets/{asset_id}/documents").json()
        assert [d["id"] for d in left["items"]] == [ids[0]]


def test_a_provider_is_discovered_registered_and_ingested(stack, notion_server):
    tenant = "fini-notion"
    notion_server.api_tokens.add("secret_fini_e2e")
    picked = notion_server.add_page(
        FakePage("Warranty", [text_block("paragraph", "Kettles carry a five year warranty.")])
    )
    notion_server.add_page(FakePage("Careers", [text_block("paragraph", "We hire sailors.")]))
    with (
        httpx.Client(
            base_url=stack.api_url(), headers=_workspace_key(stack, tenant), timeout=60
        ) as sources,
        api_client(stack, [tenant]) as assets_api,
    ):
        assert sources.get(f"{SOURCES}/resources/notion").status_code == 400  # not connected
        connected = assets_api.post(
            f"/v1/tenants/{tenant}/assets",
            json={
                "name": "notion workspace",
                "config": {"sourceType": "notion", "parameters": {}},
                "auth": {"method": "API_TOKEN", "apiToken": "secret_fini_e2e"},
                "selection": "REGISTERED",
            },
        )
        assert connected.status_code == 200, connected.text
        asset_id = connected.json()["asset"]["id"]

        offered = sources.get(f"{SOURCES}/resources/notion").json()
        [warranty] = [r for r in offered if r["title"] == "Warranty"]
        registered = sources.post(
            f"{SOURCES}/resources/notion", json={"resources": [warranty]}
        ).json()
        ids = registered["addedDocumentIds"]
        queued = sources.post(SOURCES, json={"source": "notion", "documentIdsToAdd": ids})
        assert queued.json() == {"addedDocumentIds": ids, "updatedDocumentIds": []}
        done = _settled(sources, ids[0])
        assert done["linkedJobStatus"] == "COMPLETED" and done["success"] is True
        assert "Kettles carry a five year warranty." in done["paragraphs"]
        assert (done["source"], done["externalId"]) == ("notion", picked.id)

        wait_operation(assets_api, tenant, asset_id, done["linkedJobId"])
        still_offered = {r["title"] for r in sources.get(f"{SOURCES}/resources/notion").json()}
        assert "Warranty" not in still_offered and "Careers" in still_offered
        documents = assets_api.get(f"/v1/tenants/{tenant}/assets/{asset_id}/documents").json()
        assert [(d["id"], d["status"]) for d in documents["items"]] == [(ids[0], "COMPLETED")]
        hits = assets_api.post(
            f"/v1/tenants/{tenant}/assets/{asset_id}:search",
            json={"query": "how long is the kettle warranty", "topK": 1},
        ).json()["results"]
        assert "five year warranty" in hits[0]["content"]
