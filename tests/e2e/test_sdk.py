"""The Python SDK (fruxon_client) against the real stack: every method of the sync client and
of the async client, paging across pages, typed problems, 429 retried after Retry-After."""

from __future__ import annotations

import asyncio

import pytest
from providers.notion_server import FakePage, text_block
from sitegen import Site, generate_pages

from e2e.conftest import wait_for, workspace_key
from fruxon_api.auth import READ, WRITE, issue_token
from fruxon_client import (
    AsyncFruxon,
    BadRequest,
    Forbidden,
    Fruxon,
    NotFound,
    OperationFailed,
    TooManyRequests,
    Unauthorized,
    models,
)

pytestmark = pytest.mark.e2e
TENANT = "sdk"
MODEL = {"provider": "local", "model": "all-MiniLM-L6-v2", "chunkSize": 128, "chunkOverlap": 16}
NEEDLE = "The lighthouse keeper paints every railing cobalt blue."


def token(stack, scopes=(READ, WRITE), tenants=(TENANT,)) -> str:
    return issue_token(stack.settings, tenants=list(tenants), scopes=list(scopes))


@pytest.fixture(scope="module")
def client(stack):
    with Fruxon(stack.api_url(), token(stack), TENANT) as sdk:
        yield sdk


@pytest.fixture(scope="module")
def site():
    with Site() as served:
        pages = generate_pages(5, links="all", seed=23)
        pages["/page-2.html"] = pages["/page-2.html"].replace("</h1>", f"</h1><p>{NEEDLE}</p>", 1)
        for path, body in pages.items():
            served.put(path, body)
        yield served


@pytest.fixture(scope="module")
def web_asset(client, site):
    """A web asset of six pages, created and waited for with the SDK."""
    change = client.assets.create(
        name="sdk handbook",
        config={"sourceType": "web", "parameters": {"urls": [site.url("/")], "maxDepth": 1}},
        embedding=MODEL,
    )
    assert isinstance(change.asset, models.AssetOut) and change.asset.displayName == "sdk handbook"
    assert change.long_operation.status in {"PENDING", "RUNNING"}
    final = change.operation.wait(timeout=300)
    assert (final.status, final.itemsProcessed, final.itemsTotal) == ("COMPLETED", 6, 6)
    return change.asset


def test_wait_draws_a_progress_bar_of_documents(client, site, capfd):
    change = client.assets.create(
        config={"sourceType": "web", "parameters": {"urls": [site.url("/page-1.html")]}},
        embedding=MODEL,
    )
    final = change.operation.wait(progress=True, timeout=300)
    assert final.status == "COMPLETED" and final.tokenCount > 0
    drawn = capfd.readouterr().err
    assert f"operation {final.id[:8]} COMPLETED" in drawn
    assert f"{final.itemsProcessed}/{final.itemsTotal}" in drawn
    assert f"{final.tokenCount} tokens" in drawn
    client.assets.delete(change.asset.id)


def test_read_the_asset_its_documents_chunks_operations_and_usage(client, web_asset):
    asset_id = web_asset.id
    assert client.assets.get(asset_id).config.sourceType == "web"
    documents = client.documents.list(asset_id, page_size=2)  # three pages of two
    listed = list(documents)
    assert len(listed) == 6 == documents.total_count
    assert len({d.id for d in listed}) == 6 and all(d.status == "COMPLETED" for d in listed)
    one = client.documents.get(asset_id, listed[0].id)
    assert one == listed[0]
    chunks = list(client.documents.chunks(asset_id, one.id, page_size=1))
    assert len(chunks) == one.chunkCount and [c.chunkIndex for c in chunks] == sorted(
        c.chunkIndex for c in chunks
    )
    [operation] = list(client.operations.list(asset_id))
    assert client.operations.get(asset_id, operation.id) == operation
    usage = client.assets.usage(asset_id)
    assert usage.totalChunkCount == sum(d.chunkCount for d in listed)
    assert usage.totalTokenCount == operation.tokenCount

    kinds = {kind["key"] for kind in client.assets.source_types()}
    assert {"web", "file", "notion"} <= kinds
    assert any(m["model"] == "all-MiniLM-L6-v2" for m in client.assets.embedding_models())
    assert any(t["contentType"] == "text/markdown" for t in client.assets.supported_types())


def test_assets_list_pages_through_every_asset(client, web_asset, site):
    change = client.assets.create(
        name="second",
        config={"sourceType": "web", "parameters": {"urls": [site.url("/page-3.html")]}},
        embedding=MODEL,
    )
    change.operation.wait(timeout=300)
    assets = client.assets.list(page_size=1)
    ids = [asset.id for asset in assets]
    assert {web_asset.id, change.asset.id} <= set(ids) and len(ids) == len(set(ids))
    assert assets.total_count == len(ids)
    assert [a.id for a in client.assets.list(search="second")] == [change.asset.id]
    client.assets.delete(change.asset.id)


def test_search_over_the_tenant_and_one_asset(client, web_asset):
    found = client.search(NEEDLE, top_k=3, search_mode="HYBRID", asset_ids=[web_asset.id])
    assert isinstance(found, models.SearchResponse)
    best = found.results[0]
    assert NEEDLE in best.content and best.sourceUrl.endswith("/page-2.html")
    assert best.assetId == web_asset.id and best.score > 0
    narrowed = client.assets.search(
        web_asset.id, "railing colour", top_k=2, filter={"urlGlob": "**/page-2.html"}
    )
    assert narrowed.results and {h.sourceUrl for h in narrowed.results} == {best.sourceUrl}
    # A request model works as well as keywords; bad fields fail here, before a request.
    request = models.TenantSearchRequest(query=NEEDLE, topK=1, group="DOCUMENT")
    assert client.search(NEEDLE, request).documents[0].documentId == best.documentId
    with pytest.raises(TypeError, match="topk"):
        client.search(NEEDLE, topk=3)


def test_problems_are_typed_exceptions(client, stack, web_asset):
    missing = "00000000-0000-4000-8000-000000000000"
    with pytest.raises(NotFound) as raised:
        client.assets.get(missing)
    assert raised.value.status == 404 and "does not exist" in raised.value.detail
    assert raised.value.instance.endswith(missing)
    with pytest.raises(BadRequest) as raised:
        list(client.assets.list(page_size=10_000))
    assert "PageSize" in raised.value.detail
    with pytest.raises(BadRequest) as raised:
        client.assets.create(config={"sourceType": "web", "parameters": {"urls": 5}})
    assert raised.value.errors or "urls" in raised.value.detail
    with Fruxon(stack.api_url(), "not-a-token", TENANT) as stranger, pytest.raises(Unauthorized):
        stranger.assets.get(web_asset.id)
    with (
        Fruxon(stack.api_url(), token(stack, scopes=(READ,)), TENANT) as reader,
        pytest.raises(Forbidden) as raised,
    ):
        reader.assets.refresh(web_asset.id)
    assert "assets:write" in raised.value.detail
    # Another tenant's assets are hidden: not found rather than forbidden.
    with Fruxon(stack.api_url(), token(stack), "other-tenant") as other, pytest.raises(NotFound):
        other.assets.get(web_asset.id)


def test_a_refresh_refused_with_429_is_retried_after_retry_after(client, stack, web_asset):
    first = client.assets.refresh(web_asset.id)
    with (
        Fruxon(stack.api_url(), token(stack), TENANT, max_retries=0) as impatient,
        pytest.raises(TooManyRequests) as raised,
    ):
        impatient.assets.refresh(web_asset.id)
    assert raised.value.retry_after == 5 and "retry when it is done" in raised.value.detail
    # The default client waits Retry-After and sends again until the first one is done.
    with Fruxon(stack.api_url(), token(stack), TENANT, max_retries=60) as patient:
        second = patient.assets.refresh(web_asset.id, force=False)
        assert first.operation.get().done
        assert second.operation.id != first.operation.id
        assert second.operation.wait(timeout=300).status == "COMPLETED"


def test_update_upload_cancel_and_delete(client, tmp_path):
    note = tmp_path / "harbour.md"
    note.write_text("# Harbour\n\nThe ferry leaves at dawn from pier nine.\n")
    change = client.assets.upload(note, display_name="harbour notes", embedding=MODEL)
    assert change.asset.type == "file" and change.asset.displayName == "harbour notes"
    done = change.operation.wait(timeout=300)
    # Cancelling a finished operation is a no-op that answers its state.
    assert client.operations.cancel(change.asset.id, done.id).status == "COMPLETED"
    renamed = client.assets.update(change.asset.id, display_name="pier notes")
    assert renamed.asset.displayName == "pier notes" and renamed.operation is None
    [document] = list(client.documents.list(change.asset.id))
    client.documents.delete(change.asset.id, document.id)
    with pytest.raises(NotFound):
        client.documents.get(change.asset.id, document.id)
    webhook = client.assets.update(
        change.asset.id, auto_update={"strategy": "WEBHOOK", "provider": "generic"}
    ).webhook
    rotated = client.assets.regenerate_webhook(change.asset.id)
    assert webhook is not None and rotated.webhookUrl != webhook.webhookUrl
    with note.open("rb") as handle:  # a binary file: its name is the file name
        second = client.assets.upload(handle, embedding=MODEL)
    assert second.operation.wait(timeout=300).status == "COMPLETED"
    assert [d.fileName for d in client.documents.list(second.asset.id)] == ["harbour.md"]
    for created in (change.asset.id, second.asset.id):
        client.assets.delete(created)
    with pytest.raises(NotFound):
        client.assets.get(change.asset.id)


def test_a_failed_operation_raises_with_its_reason(client, site):
    change = client.assets.create(
        config={"sourceType": "web", "parameters": {"urls": [site.url("/")], "maxDepth": 1}},
        embedding=MODEL,
        budget={"dailyTokenBudget": 10},
    )
    with pytest.raises(OperationFailed) as raised:
        change.operation.wait(timeout=300)
    failed = raised.value.operation
    assert (failed.status, failed.errorCategory) == ("FAILED", "BUDGET")
    assert "token budget" in str(raised.value) and "[BUDGET]" in str(raised.value)
    assert change.operation.wait(raise_on_failure=False) == failed
    client.assets.delete(change.asset.id)


def test_a_running_operation_is_cancelled(client):
    with Site() as big:
        for path, body in generate_pages(30, links="all", seed=5).items():
            big.put(path, body)
        change = client.assets.create(
            config={"sourceType": "web", "parameters": {"urls": [big.url("/")], "maxDepth": 1}},
            embedding={**MODEL, "chunkSize": 64, "chunkOverlap": 0},
        )
        operation = client.operations.handle(change.asset.id, change.operation.id)
        wait_for(lambda: operation.get().tokenCount > 0, 240, "the first batch")
        assert operation.cancel().id == operation.id
        final = operation.wait(timeout=300)  # CANCELLED is not a failure: no exception
        assert final.status == "CANCELLED" and operation.state == final
    client.assets.delete(change.asset.id)


def test_the_async_client_makes_the_same_calls(stack, site, capfd):
    """Every method once more, awaited: the same Calls sent by httpx.AsyncClient."""
    key = workspace_key(stack, TENANT)
    site.put("/buoys.html", "<html><title>Buoys</title><body><p>Red buoys mark port.</p>")

    async def scenario() -> None:
        async with AsyncFruxon(
            stack.api_url(), token(stack), TENANT, api_key=key, max_retries=60
        ) as sdk:
            change = await sdk.assets.create(
                name="async handbook",
                config={"sourceType": "web", "parameters": {"urls": [site.url("/page-2.html")]}},
                embedding=MODEL,
            )
            final = await change.operation.wait(progress=True, timeout=300)
            assert final.status == "COMPLETED"
            asset_id = change.asset.id
            listed = [a.id async for a in sdk.assets.list(page_size=1)]
            assert asset_id in listed
            assert (await sdk.assets.get(asset_id)).displayName == "async handbook"
            [document] = await sdk.documents.list(asset_id).collect()
            assert await sdk.documents.get(asset_id, document.id) == document
            chunks = await sdk.documents.chunks(asset_id, document.id).collect()
            assert any(NEEDLE in c.content for c in chunks)
            found = await sdk.search(NEEDLE, asset_ids=[asset_id], top_k=1)
            assert NEEDLE in found.results[0].content
            one = await sdk.assets.search(asset_id, NEEDLE, top_k=1)
            assert one.results[0].chunkId == found.results[0].chunkId
            assert (await sdk.assets.usage(asset_id)).totalTokenCount == final.tokenCount
            assert any(k["key"] == "web" for k in await sdk.assets.source_types())
            assert await sdk.assets.embedding_models() and await sdk.assets.supported_types()

            [operation] = await sdk.operations.list(asset_id).collect()
            assert await sdk.operations.get(asset_id, operation.id) == operation
            assert (await sdk.operations.cancel(asset_id, operation.id)).status == "COMPLETED"
            assert (await sdk.operations.handle(asset_id, operation.id).get()).done

            # A second refresh while the first runs: 429, waited out with asyncio.sleep.
            first = await sdk.assets.refresh(asset_id)
            second = await sdk.assets.refresh(asset_id)
            assert (await first.operation.get()).done and second.operation.id != first.operation.id
            await second.operation.wait(timeout=300)

            hooked = await sdk.assets.update(
                asset_id,
                display_name="async renamed",
                auto_update={"strategy": "WEBHOOK", "provider": "generic"},
            )
            assert hooked.asset.displayName == "async renamed" and hooked.webhook is not None
            rotated = await sdk.assets.regenerate_webhook(asset_id)
            assert rotated.webhookUrl != hooked.webhook.webhookUrl

            uploaded = await sdk.assets.upload(
                f"# Tides\n\n{NEEDLE}\n".encode(), file_name="tides.md", embedding=MODEL
            )
            assert (await uploaded.operation.wait(timeout=300)).status == "COMPLETED"
            [note] = await sdk.documents.list(uploaded.asset.id).collect()
            await sdk.documents.delete(uploaded.asset.id, note.id)
            with pytest.raises(NotFound):
                await sdk.documents.get(uploaded.asset.id, note.id)

            page = site.url("/buoys.html")  # linked from nowhere: no asset has it yet
            queued = await sdk.sources.ingest(source="web", document_ids_to_add=[page])
            [source_id] = queued.addedDocumentIds
            while (await sdk.sources.get(source_id)).linkedJobStatus != "COMPLETED":
                await asyncio.sleep(0.5)
            assert [r.id async for r in sdk.sources.list(url=page)] == [source_id]
            assert await sdk.sources.refresh([source_id]) == [source_id]
            crawled = await sdk.sources.deep_crawl([site.url("/")], limit=3)
            assert len(crawled.data) <= 3
            with pytest.raises(BadRequest):
                await sdk.sources.resources("notion")  # no Notion connected in this tenant
            with pytest.raises(BadRequest):
                await sdk.sources.register_resources(
                    "notion",
                    [
                        {
                            "originalUrl": "https://n/1",
                            "title": "t",
                            "externalId": "1",
                            "mimeType": "text/html",
                        }
                    ],
                )
            while (await sdk.sources.get(source_id)).linkedJobStatus != "COMPLETED":
                await asyncio.sleep(0.5)
            deleted = await sdk.sources.delete([source_id], delete_articles=True)
            assert [d.id for d in deleted.deletedDocuments] == [source_id]

            for created in (asset_id, uploaded.asset.id):
                await sdk.assets.delete(created)
            with pytest.raises(NotFound):
                await sdk.assets.get(asset_id)

    asyncio.run(scenario())
    assert "COMPLETED" in capfd.readouterr().err  # the async wait drew its bar too


def test_the_sources_api_with_a_workspace_key(stack, notion_server):
    tenant = "sdk-sources"
    notion_server.api_tokens.add("secret_sdk_e2e")
    notion_server.add_page(FakePage("Anchors", [text_block("paragraph", "Anchors hold fast.")]))
    with (
        Site() as site,
        Fruxon(
            stack.api_url(),
            token(stack, tenants=(tenant,)),
            tenant,
            api_key=workspace_key(stack, tenant),
        ) as sdk,
    ):
        for name in ("tides", "knots", "sails"):
            site.put(f"/{name}", f"<html><title>{name}</title><body><p>All about {name}.</p>")
        urls = [site.url(f"/{name}") for name in ("tides", "knots", "sails")]
        queued = sdk.sources.ingest(source="web", document_ids_to_add=urls)
        ids = queued.addedDocumentIds
        assert len(ids) == 3

        def settled():
            records = [sdk.sources.get(i) for i in ids]
            return records if all(r.linkedJobStatus == "COMPLETED" for r in records) else None

        records = wait_for(settled, 300, "the sources to be ingested")
        assert "All about tides." in records[0].paragraphs
        listed = list(sdk.sources.list(limit=1, source="web"))  # three pages of one
        assert sorted(r.id for r in listed) == sorted(ids)
        assert [r.id for r in sdk.sources.list(title="knots")] == [ids[1]]
        assert [r.id for r in sdk.sources.list(url=urls[2], changed=False)] == [ids[2]]
        assert [r.id for r in sdk.sources.list(id=ids[0])] == [ids[0]]
        assert sdk.sources.refresh([ids[0]]) == [ids[0]]
        found = sdk.sources.deep_crawl([site.url("/tides")], limit=10)
        assert isinstance(found, models.DeepCrawlResult)

        with pytest.raises(BadRequest):
            sdk.sources.resources("notion")  # not connected yet
        sdk.assets.create(
            name="notion",
            config={"sourceType": "notion", "parameters": {}},
            auth={"method": "API_TOKEN", "apiToken": "secret_sdk_e2e"},
            selection="REGISTERED",
        )
        [anchors] = [r for r in sdk.sources.resources("notion") if r["title"] == "Anchors"]
        registered = sdk.sources.register_resources("notion", [anchors])
        assert len(registered.addedDocumentIds) == 1

        wait_for(lambda: sdk.sources.get(ids[0]).linkedJobStatus == "COMPLETED", 300, "refresh")
        again = sdk.sources.ingest(source="web", document_ids_to_refresh=[urls[1]])
        assert again.updatedDocumentIds == [ids[1]]
        wait_for(lambda: sdk.sources.get(ids[1]).linkedJobStatus == "COMPLETED", 300, "again")
        deleted = sdk.sources.delete([ids[2]], delete_articles=True)
        assert [d.id for d in deleted.deletedDocuments] == [ids[2]]
        with pytest.raises(NotFound):
            sdk.sources.get(ids[2])
    with Fruxon(stack.api_url(), api_key="wrong") as stranger, pytest.raises(Unauthorized):
        list(stranger.sources.list())
