"""PostgreSQL for everything that has state besides LanceDB: the catalog (FRUXON_DATABASE_URL)
and Dagster's run, event and schedule storage (deploy/dagster-postgres.yaml), on a real server
from Debian's package. The ingestion graph runs on both and indexes a site."""

from __future__ import annotations

from pipeline import Pipeline

from fruxon_pipelines.orchestration.gateway import dagster_instance
from fruxon_pipelines.settings import Settings


def test_the_graph_runs_with_the_catalog_and_dagsters_storage_on_postgresql(
    tmp_path, postgres, monkeypatch, site
):
    catalog_url = postgres.create_database("fruxon_catalog")
    dagster_url = postgres.create_database("fruxon_dagster")
    monkeypatch.setenv("FRUXON_DAGSTER_POSTGRES_URL", dagster_url)
    settings = Settings(
        home=tmp_path / "fruxon",
        allow_private_networks=True,
        embed_batch_size=8,
        database_url=catalog_url,
        dagster_yaml="deploy/dagster-postgres.yaml",
    )
    for n in range(3):
        site.put(f"/p{n}", f"<html><body><h1>Page {n}</h1><p>Text of page {n}.</p></body></html>")

    with dagster_instance(settings) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        pipeline = Pipeline(settings, instance)
        asset_id = pipeline.create_asset(
            "web", {"urls": [site.url("/p0"), site.url("/p1"), site.url("/p2")]}
        )
        outcome = pipeline.run(asset_id)
        assert all(outcome.check_results().values())
        documents = pipeline.documents(asset_id)
        assert len(documents) == 3 and {d.status for d in documents.values()} == {"COMPLETED"}
        assert len(instance.get_runs()) == 1  # the run, in PostgreSQL
        again = pipeline.run(asset_id)
        assert again.metadata()["documents_unchanged"] == 3
    assert pipeline.catalog.url.startswith("postgresql://")
