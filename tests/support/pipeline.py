"""Driving the ingestion graph through a real Dagster instance, as the tests of pipeline logic do.

Runs go through `dagster.materialize` against a temporary instance: the real assets, IO manager,
resources, asset checks and run storage; only the launcher and queue are bypassed (the end-to-end
tests cover those).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import dagster as dg

from fruxon_pipelines.catalog.store import Catalog
from fruxon_pipelines.definitions import INGESTION_ASSETS, INGESTION_CHECKS
from fruxon_pipelines.orchestration.runs import ingest_run_config
from fruxon_pipelines.partitions import KNOWLEDGE_ASSET_PARTITIONS
from fruxon_pipelines.resources import _catalog, _vector_store, build_resources
from fruxon_pipelines.settings import Settings
from fruxon_pipelines.tags import OPERATION_TAG, OPERATION_TYPE_TAG
from fruxon_pipelines.vectors import VectorStore

HASH_EMBEDDING = {"provider": "hash", "model": "hash-384", "chunkSize": 64, "chunkOverlap": 8}


@dataclass
class RunOutcome:
    result: dg.ExecuteInProcessResult
    operation_id: str

    def metadata(self, asset: str = "vector_index") -> dict[str, Any]:
        for event in self.result.get_asset_materialization_events():
            if event.asset_key.path[-1] == asset:
                return {k: v.value for k, v in event.materialization.metadata.items()}
        raise AssertionError(f"no materialization of {asset}")

    def check_results(self) -> dict[str, bool]:
        return {e.check_name: e.passed for e in self.result.get_asset_check_evaluations()}


class Pipeline:
    """One FRUXON_HOME: its catalog, vector store and a Dagster instance to run in."""

    def __init__(self, settings: Settings, instance: dg.DagsterInstance) -> None:
        self.settings = settings
        self.instance = instance
        self.resources = build_resources(settings)
        self.catalog: Catalog = _catalog(settings.catalog_url)
        self.vectors: VectorStore = _vector_store(settings.vector_uri, settings.lancedb_cache_mb)

    def create_asset(
        self,
        source_type: str,
        parameters: dict[str, Any],
        *,
        tenant: str = "acme",
        embedding: dict[str, Any] | None = None,
        **columns: Any,
    ) -> str:
        asset = self.catalog.create_asset(
            tenant=tenant,
            name=f"{source_type} asset",
            source_type=source_type,
            source_config=parameters,
            embedding_config=embedding or HASH_EMBEDDING,
            **columns,
        )
        self.instance.add_dynamic_partitions(KNOWLEDGE_ASSET_PARTITIONS, [asset.id])
        return asset.id

    def run(
        self,
        asset_id: str,
        *,
        document_ids: list[str] | None = None,
        force: bool = False,
        allow_mass_deletion: bool = False,
        raise_on_error: bool = True,
        dry_run: bool = False,
        source_keys: list[str] | None = None,
        operation_id: str | None = None,
        operation_type: str = "REFRESH",
    ) -> RunOutcome:
        operation_id = operation_id or str(uuid.uuid4())
        config = ingest_run_config(document_ids, force, source_keys, dry_run=dry_run)
        config["ops"]["fetched_documents"]["config"]["allow_mass_deletion"] = allow_mass_deletion
        result = dg.materialize(
            [*INGESTION_ASSETS, *INGESTION_CHECKS],
            partition_key=asset_id,
            instance=self.instance,
            resources=self.resources,
            run_config=config,
            tags={OPERATION_TAG: operation_id, OPERATION_TYPE_TAG: operation_type},
            raise_on_error=raise_on_error,
        )
        return RunOutcome(result=result, operation_id=operation_id)

    def run_checks(self, asset_id: str) -> dict[str, bool]:
        """The index checks job (the asset checks alone): nothing is fetched or written."""
        from fruxon_pipelines.jobs import INDEX_CHECKS_JOB, index_checks_job

        defs = dg.Definitions(
            assets=INGESTION_ASSETS,
            asset_checks=INGESTION_CHECKS,
            jobs=[index_checks_job],
            resources=self.resources,
        )
        result = defs.resolve_job_def(INDEX_CHECKS_JOB).execute_in_process(
            instance=self.instance, tags={"dagster/partition": asset_id}
        )
        assert not result.get_asset_materialization_events()
        return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}

    def run_waiting_operations(self) -> list[dg.DagsterRun]:
        """Run the runs an in-process API queued in this instance, as the daemon would."""
        from run_queue import InProcessRunQueue

        return InProcessRunQueue(self.instance, self.resources).run_queued()

    def documents(self, asset_id: str) -> dict:
        return self.catalog.documents_by_key(asset_id)

    def chunks(self, asset_id: str, columns: list[str] | None = None) -> list[dict[str, Any]]:
        tenant = self.catalog.get_asset(asset_id).tenant
        cols = columns or ["chunk_id", "document_id", "chunk_index", "content", "content_hash"]
        return self.vectors.chunks_of_asset(tenant, asset_id, cols).to_pylist()
