"""The staging sweep removes what runs staged for deleted assets, and only that."""

import dagster as dg

from fruxon_pipelines.catalog.store import Catalog
from fruxon_pipelines.definitions import defs
from fruxon_pipelines.domain import AssetStatus
from fruxon_pipelines.resources import CatalogResource, SourceAccess
from fruxon_pipelines.sensors.staging_sweep import staging_sweep_sensor


def _asset(catalog: Catalog, name: str):
    return catalog.create_asset(
        tenant="acme",
        name=name,
        source_type="web",
        source_config={"urls": ["https://example.test/"]},
        embedding_config={},
    )


def _tick(instance, url: str, staging) -> str:
    resources = {
        "catalog": CatalogResource(database_url=url),
        "source_access": SourceAccess(
            files_dir=str(staging.parent / "files"), staging_dir=str(staging), user_agent="test"
        ),
    }
    with dg.build_sensor_context(
        instance_ref=instance.get_ref(), definitions=defs, resources=resources
    ) as context:
        result = staging_sweep_sensor.evaluate_tick(context)
    assert not result.run_requests
    return result.skip_message


def test_the_sweep_removes_staging_of_deleted_assets_and_keeps_the_rest(tmp_path, instance):
    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    catalog = Catalog(url)
    live, deleting, deleted = (_asset(catalog, name) for name in ("live", "deleting", "deleted"))
    # Being deleted: its delete removes the directory itself once its runs have stopped.
    catalog.update_asset(deleting.id, status=AssetStatus.DELETING.value)
    catalog.delete_asset(deleted.id)
    staging = tmp_path / "staging"
    never_cataloged = "0b6f4bd4-6f5e-4cf3-9b8e-1c1f1b3f0d9e"
    for asset_id in (live.id, deleting.id, deleted.id, never_cataloged):
        (staging / asset_id / "spool").mkdir(parents=True)
        (staging / asset_id / "ab12").write_bytes(b"fetched bytes")
    (staging / "not-a-directory").write_text("left alone")

    assert _tick(instance, url, staging) == "removed the staged files of 2 deleted asset(s)"
    assert sorted(p.name for p in staging.iterdir()) == sorted(
        [live.id, deleting.id, "not-a-directory"]
    )
    assert (staging / live.id / "ab12").read_bytes() == b"fetched bytes"
    assert (staging / deleting.id / "spool").is_dir()

    assert _tick(instance, url, staging) == "nothing is staged for a deleted asset"
    # A home whose runs never staged anything.
    assert _tick(instance, url, tmp_path / "no-staging") == "nothing is staged for a deleted asset"


def test_the_sweep_runs_hourly_from_the_start():
    [sensor] = [s for s in defs.sensors if s.name == "staging_sweep_sensor"]
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert sensor.minimum_interval_seconds == 3600
