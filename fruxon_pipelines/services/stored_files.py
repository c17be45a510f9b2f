"""Uploads kept in storage until an import turns them into file assets.

Temporary uploads are swept a day after upload unless imported; the sweep runs on start and
with every upload, so it costs nothing when idle.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from fruxon_pipelines.catalog.models import StoredFile, now_ms
from fruxon_pipelines.services.assets import (
    AssetChange,
    AssetRequest,
    copy_of,
    create_file_asset,
    file_content_type,
    place_file,
)
from fruxon_pipelines.services.errors import NotFound, parse_uuid

if TYPE_CHECKING:
    from fruxon_pipelines.services.context import Services

TEMPORARY_LIFETIME_MS = 24 * 3600 * 1000


def sweep_temporary_uploads(svc: Services) -> int:
    """Delete temporary uploads older than a day; returns how many went."""
    expired = svc.catalog.expired_temporary_files(now_ms() - TEMPORARY_LIFETIME_MS)
    for stored in expired:
        shutil.rmtree(Path(svc.settings.uploads_dir) / stored.id, ignore_errors=True)
        svc.catalog.delete_stored_file(stored.id)
    return len(expired)


def store_upload(
    svc: Services,
    tenant: str,
    file_name: str,
    place: Callable[[Path], int],
    *,
    temporary: bool = False,
) -> StoredFile:
    """Keep an upload (``place`` writes it to the path it is given) for a later import."""
    sweep_temporary_uploads(svc)
    content_type = file_content_type(file_name)
    file_id = str(uuid.uuid4())
    relative = f"{file_id}/{file_name}"
    size = place_file(Path(svc.settings.uploads_dir) / relative, place)
    return svc.catalog.add_stored_file(
        StoredFile(
            id=file_id,
            tenant=tenant,
            file_name=file_name,
            content_type=content_type,
            size=size,
            path=relative,
            temporary=temporary,
        )
    )


def import_file_asset(svc: Services, request: AssetRequest, file_id: str) -> AssetChange:
    """A file asset from a stored upload, which is retained from then on."""
    stored = svc.catalog.get_stored_file(parse_uuid(file_id, "fileId"))
    if stored is None or stored.tenant != request.tenant:
        raise NotFound(f"file {file_id} does not exist")
    source = Path(svc.settings.uploads_dir) / stored.path
    change = create_file_asset(svc, request, stored.file_name, copy_of(source), stored.content_type)
    svc.catalog.retain_stored_file(stored.id)  # from now on an asset's source, never swept
    return change
