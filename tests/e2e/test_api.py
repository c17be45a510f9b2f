"""The REST API over HTTP against the real stack: uvicorn, Dagster webserver + daemon, the model;
on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
from conftest import FIXTURES
from sitegen import Site, generate_pages

from e2e.conftest import POSTGRES_MAX_CONCURRENT_RUNS, api_client, wait_for, wait_operation
from fruxon_api.auth import READ, WRITE

pytestmark = pytest.mark.e2e
TENANT = "acme"
MODEL = {"provider": "local", "model": "all-MiniLM-L6-v2", "chunkSize": 128, "chunkOverlap": 16}


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def stack(request):
    """The whole API suite runs twice: on the embedded stack (SQLite), and with the catalog and
    Dagster's storage on PostgreSQL."""
    return request.getfixturevalue(f"{request.param}_stack")


def _client(stack, tenants=(TENANT,), scopes=(READ, WRITE)) -> httpx.Client:
    return api_client(stack, tenants, scopes)


@pytest.fixture(scope="module")
def api(stack):
    with _client(stack) as client:
        yield client


@pytest.fixture(scope="module")
def docs_site(stack):
    """A fresh site per backend: the tests edit its pages, and each backend's asset must see
    the edits as its own (``stack`` only makes the fixture follow the backend parameter)."""
    with Site() as site:
        pages = generate_pages(5, links="all", seed=11)
        pages["/page-2.html"] = pages["/page-2.html"].replace(
            "</h1>", "</h1><p>The lighthouse keeper paints every railing cobalt blue.</p>", 1
        )
        for path, body in pages.items():
            site.put(path, body)
        site.pages = pages
        yield site


def _base(asset_id: str = "") -> str:
    return f"/v1/tenants/{TENANT}/assets" + (f"/{asset_id}" if asset_id else "")


def _wait_done(api: httpx.Client, asset_id: str, operation_id: str, timeout=300) -> dict:
    return wait_operation(api, TENANT, asset_id, operation_id, timeout)


@pytest.fixture(scope="module")
def web_asset(api, docs_site):
    body = {
        "name": "handbook site",
        "config": {
            "sourceType": "web",
            "parameters": {"urls": [docs_site.url("/")], "maxDepth": 1},
        },
        "embedding": MODEL,
    }
    response = api.post(_base(), json=body)
    assert response.status_code == 200, response.text
    created = response.json()
    operation = created["longOperation"]
    assert operation["status"] in {"PENDING", "RUNNING"}
    assert operation["resourceName"] == created["asset"]["id"]
    final = _wait_done(api, created["asset"]["id"], operation["name"])
    assert final["status"] == "COMPLETED", final
    assert final["type"] == "INGEST"
    assert final["tokenCount"] > 0 and final["itemsProcessed"] == final["itemsTotal"] == 6
    return created["asset"]


def test_documents_chunks_and_usage(api, web_asset):
    asset_id = web_asset["id"]
    listing = api.get(f"{_base(asset_id)}/documents", params={"PageSize": 4}).json()
    assert listing["totalCount"] == 6 and len(listing["items"]) == 4
    rest = api.get(
        f"{_base(asset_id)}/documents", params={"PageToken.Cursor": listing["nextPageToken"]}
    ).json()
    assert len(rest["items"]) == 2 and rest["nextPageToken"] is None
    document = listing["items"][0]
    assert document["status"] == "COMPLETED" and document["chunkCount"] > 0
    chunks = api.get(f"{_base(asset_id)}/documents/{document['id']}/chunks").json()
    assert chunks["documentId"] == document["id"]
    assert chunks["totalChunks"] == document["chunkCount"]
    assert [c["chunkIndex"] for c in chunks["chunks"]] == list(range(document["chunkCount"]))
    named = api.get(_base(), params={"search": "HANDBOOK"}).json()
    assert asset_id in [a["id"] for a in named["items"]]
    assert api.get(_base(), params={"search": "no such name"}).json()["totalCount"] == 0
    usage = api.get(f"{_base(asset_id)}/usage").json()
    assert usage["totalChunkCount"] == sum(
        d["chunkCount"] for d in listing["items"] + rest["items"]
    )


@pytest.mark.parametrize("mode", ["VECTOR", "FULL_TEXT", "HYBRID"])
def test_search_finds_the_page_in_every_mode(api, web_asset, docs_site, mode):
    response = api.post(
        f"{_base(web_asset['id'])}:search",
        json={"query": "lighthouse keeper railing cobalt", "searchMode": mode, "topK": 3},
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert results, mode
    assert "cobalt" in results[0]["content"]
    assert results[0]["sourceUrl"] == docs_site.url("/page-2.html")
    assert 0 <= results[-1]["score"] <= results[0]["score"] <= 1


def test_one_search_over_the_tenant_fuses_two_models_and_filters(api, web_asset, docs_site):
    """The tenant-wide search (our extension) over the real model's asset and one of another
    model and width: each asset's right document comes back, and filters narrow inside LanceDB."""
    with Site() as other_site:
        other_site.put(
            "/atlas.html",
            "<html><head><title>Glacier atlas</title></head><body><main><p>The glacier "
            "atlas maps crevasses on the Vatnajokull ice cap.</p></main></body></html>",
        )
        created = api.post(
            _base(),
            json={
                "name": "atlas",
                "config": {
                    "sourceType": "web",
                    "parameters": {"urls": [other_site.url("/atlas.html")], "maxDepth": 0},
                },
                "embedding": {"provider": "hash", "model": "hash-384"},
            },
        ).json()
        atlas = created["asset"]["id"]
        assert _wait_done(api, atlas, created["longOperation"]["name"])["status"] == "COMPLETED"
    search = f"/v1/tenants/{TENANT}/search"
    query = "lighthouse keeper railing cobalt glacier atlas crevasses vatnajokull"
    both = [web_asset["id"], atlas]
    answer = api.post(search, json={"query": query, "topK": 5, "assetIds": both})
    assert answer.status_code == 200, answer.text
    top = answer.json()["results"][:2]
    assert {(h["assetId"], h["sourceUrl"].rsplit("/", 1)[-1]) for h in top} == {
        (web_asset["id"], "page-2.html"),
        (atlas, "atlas.html"),
    }
    assert any(h["title"] == "Glacier atlas" for h in top)
    narrowed = api.post(
        search,
        json={"query": query, "assetIds": both, "filter": {"urlPrefix": docs_site.url("/")}},
    ).json()["results"]
    assert narrowed and {h["assetId"] for h in narrowed} == {web_asset["id"]}
    grouped = api.post(
        search, json={"query": query, "assetIds": both, "group": "DOCUMENT", "topK": 10}
    ).json()
    assert len(grouped["documents"]) == len({h["documentId"] for h in grouped["results"]})
    assert api.delete(_base(atlas)).status_code in (200, 202, 204)


def test_refresh_without_change_embeds_nothing(api, web_asset):
    asset_id = web_asset["id"]
    response = api.post(f"{_base(asset_id)}:refresh", json={})
    assert response.status_code == 200, response.text
    final = _wait_done(api, asset_id, response.json()["longOperation"]["name"])
    assert final["status"] == "COMPLETED" and final["type"] == "REFRESH"
    assert final["tokenCount"] == 0 and final["cost"] == 0


def test_edit_one_page_and_refresh_only_that_document(api, web_asset, docs_site):
    asset_id = web_asset["id"]
    documents = api.get(f"{_base(asset_id)}/documents").json()["items"]
    target = next(d for d in documents if d["sourceUrl"] == docs_site.url("/page-3.html"))
    page = docs_site.pages["/page-3.html"]
    docs_site.put(
        "/page-3.html", page.replace("</h1>", "</h1><p>Quartz owls nest in the archive.</p>", 1)
    )
    response = api.post(f"{_base(asset_id)}:refresh", json={"documentIds": [target["id"]]})
    assert response.status_code == 200, response.text
    final = _wait_done(api, asset_id, response.json()["longOperation"]["name"])
    assert final["status"] == "COMPLETED"
    assert 0 < final["tokenCount"] < target["chunkCount"] * 128
    hits = api.post(
        f"{_base(asset_id)}:search", json={"query": "quartz owls", "searchMode": "FULL_TEXT"}
    ).json()["results"]
    assert hits and hits[0]["documentId"] == target["id"]


def test_second_concurrent_refresh_is_refused_with_429(api, web_asset):
    asset_id = web_asset["id"]
    first = api.post(f"{_base(asset_id)}:refresh", json={"force": True})
    assert first.status_code == 200, first.text
    second = api.post(f"{_base(asset_id)}:refresh", json={})
    assert second.status_code == 429
    assert second.headers["content-type"].startswith("application/problem+json")
    assert int(second.headers["retry-after"]) > 0
    _wait_done(api, asset_id, first.json()["longOperation"]["name"])


def test_a_run_launched_from_dagster_appears_as_a_manual_operation(api, stack, web_asset):
    from dagster_graphql import DagsterGraphQLClient

    settings = stack.settings
    client = DagsterGraphQLClient(settings.dagster_host, port_number=settings.dagster_port)
    run_id = client.submit_job_execution(
        "ingest",
        repository_location_name="fruxon",
        repository_name="__repository__",
        tags={"dagster/partition": web_asset["id"]},
    )

    def listed():
        items = api.get(f"{_base(web_asset['id'])}/operations").json()["items"]
        return next((op for op in items if op["id"] == run_id and op["done"]), None)

    operation = wait_for(listed, 180, "the manual run's operation")
    assert operation["type"] == "MANUAL" and operation["status"] == "COMPLETED"


def test_a_finished_operation_is_settled_and_reads_the_same_without_its_run(api, stack, web_asset):
    """Once ended, an operation's outcome lives in the catalog: polling it needs no Dagster
    read, so it reads the same even after its run is deleted from Dagster."""
    from dagster import DagsterInstance

    from fruxon_pipelines.catalog.store import Catalog

    response = api.post(f"{_base(web_asset['id'])}:refresh", json={})
    assert response.status_code == 200, response.text
    operation_id = response.json()["longOperation"]["name"]
    final = _wait_done(api, web_asset["id"], operation_id)
    assert final["status"] == "COMPLETED"
    stored = Catalog(stack.settings.catalog_url).get_operation(operation_id)
    assert stored.final_status == "COMPLETED"
    assert stored.completed_at == final["completedAt"] and stored.started_at == final["startedAt"]

    instance = DagsterInstance.from_config(str(stack.settings.dagster_home))
    try:
        instance.delete_run(stored.run_id)
        assert instance.get_run_by_id(stored.run_id) is None
    finally:
        instance.dispose()
    again = api.get(f"{_base(web_asset['id'])}/operations/{operation_id}").json()
    assert again == final


def test_patch_renames_in_place_and_a_chunking_change_reingests(api, web_asset):
    url = _base(web_asset["id"])
    renamed = api.patch(url, json={"displayName": "Handbook"})
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["asset"]["displayName"] == "Handbook"
    assert renamed.json()["longOperation"] is None
    before = api.get(f"{url}/usage").json()["totalChunkCount"]
    changed = api.patch(url, json={"embedding": {"chunkSize": 64}})
    assert changed.status_code == 200, changed.text
    operation = changed.json()["longOperation"]
    assert changed.json()["asset"]["embedding"]["chunkSize"] == 64
    final = _wait_done(api, web_asset["id"], operation["name"])
    assert final["status"] == "COMPLETED" and final["type"] == "INGEST"
    assert api.get(f"{url}/usage").json()["totalChunkCount"] > before
    assert api.patch(url, json={"embedding": {"chunkSize": 4096}}).status_code == 400


def test_storage_upload_then_import(api):
    with (FIXTURES / "sample.md").open("rb") as handle:
        stored = api.post(
            f"/v1/tenants/{TENANT}/storage",
            params={"temporary": "true"},
            files={"File": ("sample.md", handle)},
        )
    assert stored.status_code == 200, stored.text
    link = stored.json()
    assert link["status"] == "TEMPORARY" and link["expiresAt"] > link["createdAt"]
    imported = api.post(f"{_base()}:import", json={"fileId": link["id"]})
    assert imported.status_code == 200, imported.text
    created = imported.json()
    final = _wait_done(api, created["asset"]["id"], created["longOperation"]["name"])
    assert final["status"] == "COMPLETED"
    [document] = api.get(f"{_base(created['asset']['id'])}/documents").json()["items"]
    assert document["fileName"] == "sample.md" and document["chunkCount"] > 0
    missing = api.post(f"{_base()}:import", json={"fileId": str(uuid.uuid4())})
    assert missing.status_code == 404


def test_cancel_a_running_operation(api, stack):
    with Site() as site:
        for path, body in generate_pages(30, links="all", seed=5).items():
            site.put(path, body)
        body = {
            "config": {"sourceType": "web", "parameters": {"urls": [site.url("/")], "maxDepth": 1}},
            "embedding": {**MODEL, "chunkSize": 64, "chunkOverlap": 0},
        }
        created = api.post(_base(), json=body).json()
        asset_id, operation_id = created["asset"]["id"], created["longOperation"]["name"]
        url = f"{_base(asset_id)}/operations/{operation_id}"
        wait_for(lambda: api.get(url).json()["tokenCount"] > 0, 240, "the first batch")
        cancelled = api.post(f"{url}:cancel")
        assert cancelled.status_code == 200, cancelled.text
        final = _wait_done(api, asset_id, operation_id)
        assert final["status"] == "CANCELLED"
        again = api.post(f"{url}:cancel").json()  # idempotent on a terminal operation
        assert again["status"] == "CANCELLED"
        # No ingestion completed yet, so /documents is 404 by contract; usage reports the index.
        assert api.get(f"{_base(asset_id)}/documents").status_code == 404
        chunks = api.get(f"{_base(asset_id)}/usage").json()["totalChunkCount"]
        assert chunks > 0, "persisted chunks are kept"
        assert api.delete(_base(asset_id)).status_code == 204


SUPPORTED_FILES = [f"sample.{kind}" for kind in ("pdf", "docx", "html", "md", "txt", "csv")]


def test_each_supported_file_type_is_indexed_and_a_corrupt_file_fails(api):
    """One asset per file, all uploaded at once: their runs share the queue as a team's uploads
    would, and each ends on its own."""
    created = {}
    for name in [*SUPPORTED_FILES, "corrupt.pdf"]:
        with (FIXTURES / name).open("rb") as handle:
            response = api.post(
                f"{_base()}:file",
                files={"File": (name, handle)},
                data={"Payload": json.dumps({"Vectorize": True})},
            )
        assert response.status_code == 200, (name, response.text)
        created[name] = response.json()
    outcome = {}
    for name, asset in created.items():
        final = _wait_done(api, asset["asset"]["id"], asset["longOperation"]["name"])
        [document] = api.get(f"{_base(asset['asset']['id'])}/documents").json()["items"]
        outcome[name] = (
            final["status"],
            document["fileName"],
            document["status"],
            document["chunkCount"] > 0,
            bool(document["errorMessage"]),
        )
    expected = {name: ("COMPLETED", name, "COMPLETED", True, False) for name in SUPPORTED_FILES}
    # A file that cannot be parsed fails as a document; the operation still completes.
    expected["corrupt.pdf"] = ("COMPLETED", "corrupt.pdf", "FAILED", False, True)
    assert outcome == expected


def test_delete_a_document_then_the_asset(api, web_asset):
    asset_id = web_asset["id"]
    document = api.get(f"{_base(asset_id)}/documents").json()["items"][-1]
    url = f"{_base(asset_id)}/documents/{document['id']}"
    assert api.delete(url).status_code == 204
    assert api.get(url).status_code == 404
    assert api.delete(url).status_code == 404
    hits = api.post(
        f"{_base(asset_id)}:search", json={"query": "support", "topK": 50, "searchMode": "VECTOR"}
    ).json()["results"]
    assert all(h["documentId"] != document["id"] for h in hits)
    assert api.delete(_base(asset_id)).status_code == 204
    assert api.get(_base(asset_id)).status_code == 404
    assert api.delete(_base(asset_id)).status_code == 404


def test_every_endpoint_hides_other_tenants_and_refuses_read_only_writes(stack, api):
    created = api.post(
        _base(),
        json={
            "config": {"sourceType": "web", "parameters": {"urls": ["http://127.0.0.1:9/"]}},
            "embedding": MODEL,
        },
    ).json()
    asset_id = created["asset"]["id"]
    operation_id = created["longOperation"]["name"]
    _wait_done(api, asset_id, operation_id)
    document_id = str(uuid.uuid4())
    reads = [
        ("GET", _base()),
        ("GET", _base(asset_id)),
        ("GET", f"{_base(asset_id)}/usage"),
        ("GET", f"{_base(asset_id)}/operations"),
        ("GET", f"{_base(asset_id)}/operations/{operation_id}"),
        ("GET", f"{_base(asset_id)}/documents"),
        ("GET", f"{_base(asset_id)}/documents/{document_id}"),
        ("GET", f"{_base(asset_id)}/documents/{document_id}/chunks"),
        ("POST", f"{_base(asset_id)}:search"),
        ("GET", f"{_base()}:sourceTypes"),
        ("GET", f"{_base()}:embeddingModels"),
        ("GET", f"{_base()}:supportedTypes"),
    ]
    writes = [
        ("POST", _base()),
        ("POST", f"{_base()}:file"),
        ("PATCH", _base(asset_id)),
        ("DELETE", _base(asset_id)),
        ("POST", f"{_base(asset_id)}:refresh"),
        ("POST", f"{_base(asset_id)}/operations/{operation_id}:cancel"),
        ("DELETE", f"{_base(asset_id)}/documents/{document_id}"),
        ("POST", f"/v1/tenants/{TENANT}/storage"),
        ("POST", f"{_base()}:import"),
    ]
    bodies = {"POST": {"query": "x"}, "PATCH": {"displayName": "x"}}
    with _client(stack, tenants=("other",)) as stranger:
        for method, url in reads + writes:
            response = stranger.request(method, url, json=bodies.get(method))
            assert response.status_code == 404, (method, url, response.text)
            assert response.headers["content-type"].startswith("application/problem+json")
    with _client(stack, scopes=(READ,)) as reader:
        for method, url in writes:
            response = reader.request(method, url, json=bodies.get(method))
            assert response.status_code == 403, (method, url, response.text)
        assert reader.get(_base(asset_id)).status_code == 200
    anonymous = httpx.get(stack.api_url() + _base())
    assert anonymous.status_code == 401
    forged = httpx.get(stack.api_url() + _base(), headers={"Authorization": "Bearer x.y.z"})
    assert forged.status_code == 401
    assert api.delete(_base(asset_id)).status_code == 204


def test_a_file_asset_cannot_be_pointed_at_another_file(api):
    with (FIXTURES / "sample.txt").open("rb") as handle:
        created = api.post(f"{_base()}:file", files={"File": ("sample.txt", handle)}).json()
    asset_id = created["asset"]["id"]
    _wait_done(api, asset_id, created["longOperation"]["name"])
    other = {"path": f"{uuid.uuid4()}/secret.txt", "fileName": "secret.txt"}
    response = api.patch(_base(asset_id), json={"sourceConfig": other})
    assert response.status_code == 400, response.text
    assert api.delete(_base(asset_id)).status_code == 204


def test_tenant_names_that_no_tenant_can_have_are_not_found(stack):
    with _client(stack, tenants=("acme.corp",)) as odd:
        response = odd.get("/v1/tenants/acme.corp/assets")
    assert response.status_code == 404


def test_bad_input_gets_a_problem_never_a_500(api, stack):
    asset_id = str(uuid.uuid4())
    cases = [
        (
            "POST",
            _base(),
            {"content": b"{not json", "headers": {"content-type": "application/json"}},
        ),
        ("POST", _base(), {"json": {"config": {"sourceType": "web", "parameters": {"urls": 5}}}}),
        ("POST", _base(), {"json": {"config": {"sourceType": "web", "parameters": {}}, "x": 1}}),
        ("POST", _base(), {"json": {"config": {"sourceType": "nope", "parameters": {}}}}),
        (
            "POST",
            _base(),
            {
                "json": {
                    "config": {"sourceType": "web", "parameters": {"urls": ["http://a.test/"]}},
                    "embedding": {"model": "gpt-404"},
                }
            },
        ),
        ("GET", _base("not-a-uuid"), {}),
        ("GET", _base(asset_id), {}),
        ("GET", _base(), {"params": {"PageSize": 0}}),
        ("GET", _base(), {"params": {"PageToken.Cursor": "@@@"}}),
        ("POST", f"{_base(asset_id)}:refresh", {"json": {"documentIds": "x"}}),
        ("POST", f"{_base()}:file", {"files": {"File": ("evil.exe", b"MZ")}}),
        (
            "POST",
            f"{_base()}:file",
            {"files": {"File": ("a.txt", b"hi")}, "data": {"Payload": "{broken"}},
        ),
        ("POST", f"{_base()}:file", {"files": {"File": ("big.txt", b"x" * (3 * 1024 * 1024))}}),
    ]
    for method, url, kwargs in cases:
        response = api.request(method, url, **kwargs)
        assert 400 <= response.status_code < 500, (method, url, response.status_code, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        problem = response.json()
        assert {"type", "title", "status", "detail", "instance"} <= set(problem)
    assert (
        api.post(f"{_base()}:file", files={"File": ("big.txt", b"x" * (3 * 2**20))}).status_code
        == 413
    )


def test_health_and_openapi(stack):
    assert httpx.get(stack.api_url() + "/healthz").status_code == 200
    spec = httpx.get(stack.api_url() + "/openapi.json").json()
    assert "/v1/tenants/{tenant}/assets/{asset}:refresh" in spec["paths"]
    assert httpx.get(stack.api_url() + "/docs").status_code == 200


# The stack on PostgreSQL at full width, in this file because `make test` gives a worker whole
# files: the PostgreSQL stack starts once for the suite and for this.
PG_TENANT = "pg"


def test_four_assets_ingest_at_once_with_everything_on_postgresql(postgres_stack):
    with Site() as site, api_client(postgres_stack, [PG_TENANT]) as api:
        for n in range(POSTGRES_MAX_CONCURRENT_RUNS):
            for page in range(3):
                body = f"<h1>Site {n} page {page}</h1><p>Harbour {n} opens at {page + 6} am.</p>"
                # Slow pages keep the runs in flight together long enough to overlap.
                site.put(f"/s{n}/p{page}", f"<html><body>{body}</body></html>", delay=2.0)
        created = []
        for n in range(POSTGRES_MAX_CONCURRENT_RUNS):
            urls = [site.url(f"/s{n}/p{page}") for page in range(3)]
            response = api.post(
                f"/v1/tenants/{PG_TENANT}/assets",
                json={
                    "name": f"site {n}",
                    "config": {"sourceType": "web", "parameters": {"urls": urls}},
                },
            )
            assert response.status_code == 200, response.text
            created.append(response.json())
        done = [
            wait_operation(api, PG_TENANT, c["asset"]["id"], c["longOperation"]["name"], 400)
            for c in created
        ]
        assert [d["status"] for d in done] == ["COMPLETED"] * POSTGRES_MAX_CONCURRENT_RUNS, done
        # The runs overlapped: each started before any other had ended.
        first_end = min(d["completedAt"] for d in done)
        assert all(d["startedAt"] < first_end for d in done), done
        for n, c in enumerate(created):
            asset = c["asset"]["id"]
            documents = api.get(f"/v1/tenants/{PG_TENANT}/assets/{asset}/documents").json()
            assert documents["totalCount"] == 3
            hits = api.post(
                f"/v1/tenants/{PG_TENANT}/assets/{asset}:search",
                json={"query": f"when does harbour {n} open", "topK": 1},
            ).json()["results"]
            assert f"Harbour {n}" in hits[0]["content"]
