"""Where the index and the catalog disagree: what the asset checks report and a full refresh
repairs."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from fruxon_pipelines.catalog.models import Document, KnowledgeAsset


@dataclass
class IndexDrift:
    """Where the index and the catalog disagree about one asset."""

    documents: int
    # document id → (chunks the catalog records, chunks in LanceDB under the asset's model)
    mismatched: dict[str, tuple[int, int]]
    # document id the catalog does not have → its chunks in LanceDB (any model)
    orphans: dict[str, int]


def index_drift(vectors: Any, asset: KnowledgeAsset, documents: Iterable[Document]) -> IndexDrift:
    """The asset checks' comparison; a full refresh repairs what it finds (the fetch and diff
    stages: mismatched documents are read and indexed again, orphan chunks deleted)."""
    documents = list(documents)
    # The model runs embed with: during a model change the previous one's rows still serve.
    model_key = f"{asset.embedding_config['provider']}/{asset.embedding_config['model']}"
    in_model: dict[str, int] = {}
    in_any: dict[str, int] = {}
    counts = vectors.chunk_counts_by_document_and_model(asset.tenant, asset.id)  # one scan
    for (doc, model), n in counts.items():
        in_any[doc] = in_any.get(doc, 0) + n
        if model == model_key:
            in_model[doc] = n
    known = {d.id for d in documents}
    return IndexDrift(
        documents=len(documents),
        mismatched={
            d.id: (d.chunk_count, in_model.get(d.id, 0))
            for d in documents
            if d.chunk_count != in_model.get(d.id, 0)
        },
        orphans={doc: n for doc, n in in_any.items() if doc not in known},
    )
