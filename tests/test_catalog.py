"""The catalog schema: migrations create exactly what the models describe."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from fruxon_pipelines.catalog.models import Base
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
