"""The catalog schema: migrations create exactly what the models describe."""

import uuid
from contextlib import nullcontext

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from fruxon_pipelines.catalog.models import Base, OAuthCredential, OAuthFlow, now_ms
from fruxon_pipelines.catalog.store import Catalog, document_id_for


def test_migrations_match_the_models(catalog_url):
    catalog = Catalog(catalog_url)
    with catalog.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []
    tables = set(inspect(catalog.engine).get_table_names())
    assert {"knowledge_assets", "documents", "operations", "alembic_version"} <= tables


def test_documents_have_stable_ids_and_upsert_in_place(catalog_url):
    catalog = Catalog(catalog_url)
    asset = catalog.create_asset(
        tenant="acme", name="a", source_type="web", source_config={}, embedding_config={}
    )
    first = catalog.upsert_document(asset.id, "https://x.test/a", status="PENDING")
    again = catalog.upsert_document(asset.id, "https://x.test/a", status="COMPLETED")
    assert first.id == again.id == document_id_for(asset.id, "https://x.test/a")
    assert catalog.count_documents(asset.id) == 1
    assert catalog.documents_by_key(asset.id)["https://x.test/a"].status == "COMPLETED"


def test_a_rerun_of_a_settled_operation_reopens_it(catalog_url):
    catalog = Catalog(catalog_url)
    asset = catalog.create_asset(
        tenant="acme", name="a", source_type="web", source_config={}, embedding_config={}
    )
    operation = catalog.create_operation(
        asset_id=asset.id, tenant="acme", type="INGEST", created_by="t", request={}
    )
    catalog.update_operation(operation.id, final_status="FAILED", error_message="boom")
    assert catalog.get_operation(operation.id).final_status == "FAILED"
    # A run re-executed from the Dagster UI carries the same operation tag.
    catalog.ensure_operation(
        operation_id=operation.id, asset_id=asset.id, tenant="acme", type="INGEST", run_id="r2"
    )
    reopened = catalog.get_operation(operation.id)
    assert reopened.final_status is None and reopened.error_message is None
    assert reopened.run_id == "r2"


def test_an_oauth_flow_is_claimed_and_a_credential_taken_only_once(catalog_url):
    catalog = Catalog(catalog_url)
    later = now_ms() + 600_000
    catalog.add_oauth_flow(
        OAuthFlow(id="s1", tenant="acme", source_type="notion", parameters={}, expires_at=later)
    )
    catalog.add_oauth_flow(
        OAuthFlow(id="old", tenant="acme", source_type="notion", parameters={}, expires_at=1)
    )
    assert catalog.claim_oauth_flow("s1").used_at is not None
    assert catalog.claim_oauth_flow("s1") is None  # a replayed state
    assert catalog.claim_oauth_flow("old") is None  # expired
    catalog.add_oauth_credential(
        OAuthCredential(key_hash="k", tenant="acme", source_type="notion", tokens="sealed",
                        expires_at=later)
    )  # fmt: skip
    taken = catalog.take_oauth_credential("k")
    assert (taken.tenant, taken.tokens) == ("acme", "sealed")
    assert catalog.take_oauth_credential("k") is None
    with catalog.session() as session:
        assert session.get(OAuthCredential, "k").tokens == ""  # not kept once handed out


def test_a_poll_reads_the_asset_and_its_operation_as_the_orm_would(catalog_url):
    """get_asset_and_operation reads both rows in one Core statement outside a unit of work and
    through the unit's session inside one; either way the same values, and no operation of
    another asset."""
    catalog = Catalog(catalog_url)

    def asset(name: str):
        return catalog.create_asset(
            tenant="acme",
            name=name,
            source_type="web",
            source_config={"urls": ["https://example.org/"]},
            embedding_config={"provider": "hash", "model": "hash-384"},
        )

    mine, other = asset("mine"), asset("other")
    operation = catalog.create_operation(
        asset_id=mine.id, tenant="acme", type="INGEST", request={"force": True}
    )
    catalog.update_operation(operation.id, items_processed=3, final_status="COMPLETED")
    expected_asset, expected_operation = (
        catalog.get_asset(mine.id),
        catalog.get_operation(operation.id),
    )

    def values(row) -> dict:
        return {c.key: getattr(row, c.key) for c in inspect(type(row)).column_attrs}

    for unit in (False, True):
        with catalog.unit_of_work() if unit else nullcontext():
            found_asset, found_operation = catalog.get_asset_and_operation(mine.id, operation.id)
            assert values(found_asset) == values(expected_asset)
            assert values(found_operation) == values(expected_operation)
            if not unit:  # read outside any session: a session would insert them if added
                assert inspect(found_asset).transient and inspect(found_operation).transient
            assert found_operation.request == {"force": True}
            other_asset, none = catalog.get_asset_and_operation(other.id, operation.id)
            assert other_asset.id == other.id and none is None
            assert catalog.get_asset_and_operation(str(uuid.uuid4()), operation.id) == (
                None,
                None,
            )
