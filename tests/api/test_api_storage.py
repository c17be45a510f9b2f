"""Temporary uploads are swept after a day unless an import retained them."""

from pathlib import Path

from fruxon_api.app import create_app
from fruxon_pipelines.catalog.models import StoredFile, now_ms
from fruxon_pipelines.services.stored_files import TEMPORARY_LIFETIME_MS, sweep_temporary_uploads


def test_sweep_removes_only_expired_temporary_uploads(settings):
    services = create_app(settings).state.services
    uploads = Path(settings.uploads_dir)
    old = now_ms() - TEMPORARY_LIFETIME_MS - 1
    for file_id, temporary, created in [("a", True, old), ("b", False, old), ("c", True, now_ms())]:
        (uploads / file_id).mkdir(parents=True)
        (uploads / file_id / "f.txt").write_text("x")
        services.catalog.add_stored_file(
            StoredFile(
                id=file_id,
                tenant="t",
                file_name="f.txt",
                path=f"{file_id}/f.txt",
                temporary=temporary,
                created_at=created,
            )
        )

    assert sweep_temporary_uploads(services) == 1

    assert not (uploads / "a").exists()
    assert (uploads / "b").exists() and (uploads / "c").exists()
    assert services.catalog.get_stored_file("a") is None
    assert services.catalog.get_stored_file("b") is not None
