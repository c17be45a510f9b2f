"""Removes what runs staged for knowledge assets that no longer exist (``sweep_staging``)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from fruxon_pipelines.resources import CatalogResource, SourceAccess

# Staging left behind is rare (services.assets.sweep_staging says when); an hour bounds how long
# it holds disk, at one directory listing and a catalog query or two an hour.
STAGING_SWEEP_SECONDS = 3600


@dg.sensor(
    name="staging_sweep_sensor",
    minimum_interval_seconds=STAGING_SWEEP_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Removes staged files of knowledge assets that were deleted.",
)
def staging_sweep_sensor(
    context: dg.SensorEvaluationContext, catalog: CatalogResource, source_access: SourceAccess
) -> dg.SkipReason:
    # Imported here: the run workers, which load this module too, never sweep.
    from fruxon_pipelines.services.assets import sweep_staging

    swept = sweep_staging(Path(source_access.staging_dir), catalog.get())
    if swept:
        context.log.info(f"removed the staged files of deleted assets {', '.join(swept)}")
        return dg.SkipReason(f"removed the staged files of {len(swept)} deleted asset(s)")
    return dg.SkipReason("nothing is staged for a deleted asset")
