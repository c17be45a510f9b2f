"""The catalog schema: migrations create exactly what the models describe."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from fruxon_pipelines.catalog.models import Base
from fruxon_pipelines.catalog.store import Catalog, document_id_for


def test_migrations_match_the_models(tmp_path):
    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.db'}")
    with catalog.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []
    tables = set(inspect(catalog.engine).get_table_names())
    assert {"knowledge_assets", "documents", "operations", "alembic_version"} <= tables


def test_documents_have_stable_ids_and_upsert_in_place(tmp_path):
    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.db'}")
    asset = catalog.create_asset(
        tenant="acme", name="a", source_type="web", source_config={}, embedding_config={}
    )
    first = catalog.upsert_document(asset.id, "https://x.test/a", status="PENDING")
    again = catalog.upsert_document(asset.id, "https://x.test/a", status="COMPLETED")
    assert first.id == again.id == document_id_for(asset.id, "https://x.test/a")
    assert catalog.count_documents(asset.id) == 1
    assert catalog.documents_by_key(asset.id)["https://x.test/a"].status == "COMPLETED"
