"""The catalog: SQL tables of assets, documents, operations and what hangs off them.

``from fruxon_pipelines.catalog import Catalog`` works; it is imported on first use, so that
importing ``catalog.models`` alone does not load every repository."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fruxon_pipelines.catalog.store import Catalog

__all__ = ["Catalog"]


def __getattr__(name: str) -> Any:
    if name == "Catalog":
        from fruxon_pipelines.catalog.store import Catalog

        return Catalog
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
