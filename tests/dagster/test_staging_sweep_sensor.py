"""The staging sweep removes what runs staged for deleted assets, and only that."""

import dagster as dg

from fruxon_pipelines.catalog.repos import assets as assets_repo
from fruxon_pipelines.catalog.store import Catalog
from fruxon_pipelines.definitions import defs
from fruxon_pipelines.domain import AssetStatus
from fruxon_pipelines.resources import CatalogResource, SourceAccess
from fruxon_pipelines.sensors.staging_sweep import staging_sweep_sensor


def _asset(catalog: Catalog, name: str, **columns):
    return catalog.create_asset(
        tenant="acme",
        name=name,
        source_type="web",
        source_config={"urls": ["https://example.test/"]},
        embedding_config={},
        **columns,
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


def test_the_catalog_is_asked_in_batches_and_a_directory_it_cannot_remove_is_not_reported(
    tmp_path, instance, monkeypatch
):
    # Batches of two: a deployment with thousands of assets asks in batches of IDS_PER_QUERY.
    monkeypatch.setattr(assets_repo, "IDS_PER_QUERY", 2)
    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    catalog = Catalog(url)
    live = [_asset(catalog, f"live {n}") for n in range(5)]
    deleted = [_asset(catalog, f"deleted {n}") for n in range(3)]
    for asset in deleted:
        catalog.delete_asset(asset.id)
    staging = tmp_path / "staging"
    for asset in live + deleted[:2]:
        (staging / asset.id).mkdir(parents=True)
        (staging / asset.id / "ab12").write_bytes(b"fetched bytes")
    # A link to a directory elsewhere: rmtree refuses it, and what it points at is not ours.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep").write_text("not staged")
    (staging / deleted[2].id).symlink_to(elsewhere, target_is_directory=True)

    assert _tick(instance, url, staging) == "removed the staged files of 2 deleted asset(s)"
    assert {p.name for p in staging.iterdir()} == {a.id for a in live} | {deleted[2].id}
    assert all((staging / a.id / "ab12").read_bytes() == b"fetched bytes" for a in live)
    assert (elsewhere / "keep").read_text() == "not staged"


def test_the_sweep_runs_hourly_from_the_start():
    [sensor] = [s for s in defs.sensors if s.name == "staging_sweep_sensor"]
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert sensor.minimum_interval_seconds == 3600


def test_an_asset_id_that_comes_back_during_the_sweep_keeps_its_staging(tmp_path):
    """The sources API's workspace asset has one id per tenant: deleted and made again between
    the sweep's listing and its removal, its new runs' files stay."""
    from fruxon_pipelines.services.assets import sweep_staging

    class RecreatedMeanwhile(Catalog):
        def existing_asset_ids(self, asset_ids):
            found = super().existing_asset_ids(asset_ids)
            if not self.recreated:  # answered, then the asset is made again with its id
                self.recreated = True
                _asset(self, "workspace again", asset_id=workspace.id)
            return found

    catalog = RecreatedMeanwhile(f"sqlite:///{tmp_path / 'catalog.db'}")
    catalog.recreated = True
    workspace = _asset(catalog, "workspace")
    catalog.delete_asset(workspace.id)
    staging = tmp_path / "staging"
    (staging / workspace.id).mkdir(parents=True)
    (staging / workspace.id / "ab12").write_bytes(b"staged by the new asset's run")

    catalog.recreated = False
    assert sweep_staging(staging, catalog) == []
    assert (staging / workspace.id / "ab12").read_bytes() == b"staged by the new asset's run"
