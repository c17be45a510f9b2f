"""What every use case works with: settings, the catalog, the vector store, the run gateway and
the status of operations. One per process (the API's app, a CLI call, a test)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fruxon_pipelines.catalog.store import Catalog
from fruxon_pipelines.orchestration.gateway import DagsterGateway, RunGateway
from fruxon_pipelines.settings import Settings

if TYPE_CHECKING:
    from fruxon_pipelines.services.operations import OperationStatuses
    from fruxon_pipelines.vectors import VectorStore


@dataclass
class Services:
    settings: Settings
    catalog: Catalog
    gateway: RunGateway
    statuses: OperationStatuses = field(init=False)
    _vectors: VectorStore | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        from fruxon_pipelines.services.operations import OperationStatuses

        self.statuses = OperationStatuses(self.catalog, self.gateway)

    @property
    def vectors(self) -> VectorStore:
        """LanceDB, opened on first use: most CLI commands never need it."""
        if self._vectors is None:
            from fruxon_pipelines.vectors import VectorStore

            self._vectors = VectorStore(self.settings.vector_uri, self.settings.lancedb_cache_mb)
        return self._vectors

    @classmethod
    def from_settings(cls, settings: Settings, gateway: RunGateway | None = None) -> Services:
        """The services of the stack that ``settings`` describe."""
        return cls(
            settings=settings,
            catalog=Catalog(settings.catalog_url),
            gateway=gateway or DagsterGateway(settings),
        )
