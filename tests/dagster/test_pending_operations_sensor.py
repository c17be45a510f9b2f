"""The launcher sensor runs operations that were written but never submitted, exactly once."""

import dagster as dg

from fruxon_pipelines.catalog.store import Catalog
from fruxon_pipelines.definitions import defs
from fruxon_pipelines.partitions import KNOWLEDGE_ASSET_PARTITIONS
from fruxon_pipelines.resources import CatalogResource
from fruxon_pipelines.sensors.pending_operations import pending_operations_sensor
from fruxon_pipelines.tags import OPERATION_TAG


def test_sensor_requests_a_run_for_an_orphaned_operation_only(tmp_path, instance):
    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    catalog = Catalog(url)
    asset = catalog.create_asset(
        tenant="acme",
        name="a",
        source_type="web",
        source_config={"urls": ["https://example.test/"]},
        embedding_config={},
    )
    instance.add_dynamic_partitions(KNOWLEDGE_ASSET_PARTITIONS, [asset.id])
    orphan = catalog.create_operation(asset_id=asset.id, tenant="acme", type="REFRESH")
    fresh = catalog.create_operation(asset_id=asset.id, tenant="acme", type="REFRESH")
    catalog.update_operation(orphan.id, created_at=1)  # long past the grace period
    cancelled = catalog.create_operation(asset_id=asset.id, tenant="acme", type="REFRESH")
    catalog.update_operation(cancelled.id, created_at=1, cancel_requested_at=2)

    with dg.build_sensor_context(
        instance_ref=instance.get_ref(),
        definitions=defs,
        resources={"catalog": CatalogResource(database_url=url)},
    ) as context:  # closed here, so its instance does not outlive the test (see _tick there)
        result = pending_operations_sensor.evaluate_tick(context)

    [request] = result.run_requests
    assert request.run_key == orphan.id
    assert request.partition_key == asset.id
    assert request.tags[OPERATION_TAG] == orphan.id
    assert fresh.id != request.run_key
