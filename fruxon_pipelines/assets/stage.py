"""What the four ingestion stages share as Dagster assets: one partition per knowledge asset,
one group. A stage says only what it is and what kind of store it writes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dagster as dg

from fruxon_pipelines.partitions import knowledge_assets

INGESTION_GROUP = "ingestion"


def ingestion_stage(description: str, *, kind: str = "python") -> Callable[..., Any]:
    """``@dg.asset`` for one stage of the ingestion graph: partitioned by knowledge asset, in
    the ingestion group, owned by ``FRUXON_DAGSTER_ASSET_OWNERS``; ``kind`` is the badge the
    Dagster UI shows (``lancedb`` for the index)."""
    from fruxon_pipelines.settings import get_settings

    return dg.asset(
        partitions_def=knowledge_assets,
        group_name=INGESTION_GROUP,
        kinds={kind},
        owners=list(get_settings().dagster_asset_owners),
        description=description,
    )
