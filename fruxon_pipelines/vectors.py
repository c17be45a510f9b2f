"""LanceDB: one table per tenant (and vector width), chunk upserts, deletes and searches.

Tenants never share a table. A tenant whose assets use models of different widths gets one
table per width, since a vector column has one fixed size.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import pyarrow as pa

from fruxon_pipelines.chunking import ChunkSpan
from fruxon_pipelines.settings import DEFAULT_LANCEDB_CACHE_MB

log = logging.getLogger(__name__)
_TENANT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_TABLE_RE = re.compile(r"^tenant_(.+)__d(\d+)$")
# Rows added since the last full-text index build are searched flat; past this many, fold them in.
FTS_REINDEX_THRESHOLD = 2000
# Below this many rows a flat vector scan is fast enough (tens of ms) and exact. Above it, an
# IVF-HNSW-SQ index answers in milliseconds where the scan takes hundreds (bench/bench_search.py);
# building it takes about 30 s for 100,000 rows on 2 cores (bench/results/latest.md), at the end
# of a run.
VECTOR_INDEX_MIN_ROWS = 50_000
# Once indexed, rows added since are scanned flat; past this share of the table, fold them in.
VECTOR_REINDEX_UNINDEXED_SHARE = 0.1
VECTOR_SEARCH_NPROBES = 20
# Candidates re-ranked by exact distance, as a multiple of the limit: on 100,000 real chunks
# recall@10 is 0.986 without, 1.0 with 5 (also with 10, which costs 2-3 ms more a query;
# bench/bench_search.py).
VECTOR_SEARCH_REFINE_FACTOR = 5
# Every search pre-filters on these (the scope); a bitmap index answers the filter from a few
# bitmaps instead of reading both columns of every row (bench/bench_search.py: ~2x faster
# vector search at 100,000 rows). Few distinct values each, which is what a bitmap suits.
SCOPE_INDEX_COLUMNS = ("asset_id", "embedding_model")
# Every commit is a fragment (a run commits up to 2,048 rows at a time); a search pays for
# every fragment it opens, so once this many small ones pile up ``optimize()`` compacts them.
SMALL_FRAGMENTS_LIMIT = 64
# Table versions younger than this keep their files when ``optimize()`` cleans up: a search
# that opened one a moment ago can still read it.
OLD_VERSIONS_KEPT = timedelta(minutes=10)


def _is_vector_index(index_type: str) -> bool:
    """LanceDB names them IvfPq, IvfHnswSq, IVF_PQ … depending on the API that made them."""
    return index_type.upper().replace("_", "").startswith(("IVF", "HNSW"))


def chunk_schema(dimensions: int) -> pa.Schema:
    return pa.schema(
        [
            pa.field("chunk_id", pa.string(), nullable=False),
            pa.field("asset_id", pa.string(), nullable=False),
            pa.field("document_id", pa.string(), nullable=False),
            pa.field("chunk_index", pa.int32(), nullable=False),
            pa.field("content", pa.string(), nullable=False),
            pa.field("content_hash", pa.string(), nullable=False),
            # provider/model: vectors are reused only within the same model.
            pa.field("embedding_model", pa.string(), nullable=False),
            pa.field("heading_path", pa.string()),
            pa.field("page_number", pa.int32()),
            pa.field("start_char", pa.int32()),
            pa.field("end_char", pa.int32()),
            pa.field("start_line", pa.int32()),
            pa.field("end_line", pa.int32()),
            pa.field("token_count", pa.int32()),
            pa.field("source_url", pa.string()),
            # The document's, for search filters (titleContains, modifiedAfter/Before).
            *DOCUMENT_FIELDS,
            pa.field("vector", pa.list_(pa.float32(), dimensions), nullable=False),
        ]
    )


# Added after the first release: a table made before them gets them, empty, when first opened.
DOCUMENT_FIELDS = (pa.field("title", pa.string()), pa.field("modified_at", pa.int64()))
_NULL_OF = {pa.string(): "CAST(NULL AS STRING)", pa.int64(): "CAST(NULL AS BIGINT)"}


def quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def in_list(column: str, values: Iterable[str]) -> str:
    return f"{column} IN ({', '.join(quote(v) for v in values)})"


@dataclass(frozen=True)
class ChunkRow(ChunkSpan):
    """One chunk as it is stored beside its vector: its span in the document, and whose it is."""

    chunk_id: str
    asset_id: str
    document_id: str
    chunk_index: int
    content: str
    content_hash: str
    embedding_model: str
    source_url: str | None
    title: str | None = None
    # The document's upstream modification time (epoch ms), else when this version was indexed.
    modified_at: int | None = None


def _add_document_fields(table: Any) -> None:
    """Columns a table made by an earlier version lacks, added empty (null): the next refresh
    of an asset fills them (``VectorStore.refresh_document_fields``)."""
    missing = {
        f.name: _NULL_OF[f.type] for f in DOCUMENT_FIELDS if f.name not in table.schema.names
    }
    if not missing:
        return
    try:
        table.add_columns(missing)
    except Exception:  # another process added them first: the schema says so now
        table.checkout_latest()
        if any(f.name not in table.schema.names for f in DOCUMENT_FIELDS):
            raise


@dataclass(frozen=True)
class DocumentFields:
    """What a document's chunks carry of it besides their content (search filters read it)."""

    title: str | None  # None keeps the stored title
    modified_at: int | None  # epoch ms upstream; None keeps the stored time
    # For rows stored without a time (by an earlier version): when their content was indexed,
    # which is what a new row gets when its source tells no time.
    indexed_at: int | None = None

    def onto(self, title: str | None, modified_at: int | None) -> tuple[str | None, int | None]:
        """(title, modified_at) for a row that holds ``title`` and ``modified_at`` now."""
        if self.modified_at is not None:
            modified_at = self.modified_at
        elif modified_at is None:
            modified_at = self.indexed_at
        return (self.title if self.title is not None else title), modified_at


class VectorStore:
    """All vector tables of one LanceDB database (a directory or an object-store URI)."""

    def __init__(self, uri: str, cache_mb: int = DEFAULT_LANCEDB_CACHE_MB) -> None:
        import lancedb

        self.uri = uri
        cache = cache_mb << 20
        session = lancedb.Session(
            index_cache_size_bytes=cache * 3 // 4, metadata_cache_size_bytes=cache // 4
        )
        # Runs write in other processes: every read checks for the newest table version.
        self._db = lancedb.connect(uri, read_consistency_interval=timedelta(0), session=session)
        self._tables: dict[str, Any] = {}
        self._lock = threading.Lock()

    @staticmethod
    def table_name(tenant: str, dimensions: int) -> str:
        if not _TENANT_RE.match(tenant):
            raise ValueError(f"tenant {tenant!r} is not a valid tenant id")
        return f"tenant_{tenant}__d{dimensions}"

    def _existing_table(self, tenant: str, dimensions: int) -> Any | None:
        name = self.table_name(tenant, dimensions)
        with self._lock:
            if name in self._tables:
                return self._tables[name]
            if name not in self._db.list_tables().tables:
                return None
            table = self._db.open_table(name)
            _add_document_fields(table)
            self._tables[name] = table
            return table

    def _table(self, tenant: str, dimensions: int) -> Any:
        table = self._existing_table(tenant, dimensions)
        if table is not None:
            return table
        name = self.table_name(tenant, dimensions)
        with self._lock:
            table = self._db.create_table(name, schema=chunk_schema(dimensions), exist_ok=True)
            self._tables[name] = table
            return table

    def _tenant_widths(self, tenant: str) -> list[int]:
        """Vector widths of the tenant's tables, matched by exact name: tenant `a` must never
        pick up the tables of tenant `a__d1`."""
        widths = []
        for name in self._db.list_tables().tables:
            match = _TABLE_RE.match(name)
            if match and match.group(1) == tenant:
                widths.append(int(match.group(2)))
        return widths

    def _tenant_tables(self, tenant: str) -> list[Any]:
        return [self._existing_table(tenant, width) for width in self._tenant_widths(tenant)]

    # Writes -----------------------------------------------------------------------------------

    def upsert(self, tenant: str, rows: Sequence[ChunkRow], vectors: np.ndarray) -> None:
        """Insert or update chunks by chunk id: one commit, so a retry never duplicates."""
        if not rows:
            return
        table, data = self._chunk_data(tenant, rows, vectors)
        (
            table.merge_insert("chunk_id")
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .execute(data)
        )

    def add(self, tenant: str, rows: Sequence[ChunkRow], vectors: np.ndarray) -> None:
        """Append chunks the table does not hold (the caller knows their ids are new): one
        commit that reads nothing, where ``upsert`` joins the batch against every row of the
        table, a cost that grows with the table (bench/bench_scale.py)."""
        if not rows:
            return
        table, data = self._chunk_data(tenant, rows, vectors)
        table.add(data)

    def _chunk_data(
        self, tenant: str, rows: Sequence[ChunkRow], vectors: np.ndarray
    ) -> tuple[Any, pa.Table]:
        dimensions = int(vectors.shape[1])
        table = self._table(tenant, dimensions)
        schema = chunk_schema(dimensions)
        columns: dict[str, list[Any]] = {f.name: [] for f in schema if f.name != "vector"}
        for row in rows:
            for name in columns:
                columns[name].append(getattr(row, name))
        arrays = [pa.array(columns[f.name], type=f.type) for f in schema if f.name != "vector"]
        flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).ravel(), pa.float32())
        arrays.append(pa.FixedSizeListArray.from_arrays(flat, dimensions))
        return table, pa.Table.from_arrays(arrays, schema=schema)

    def delete_chunks(self, tenant: str, dimensions: int, chunk_ids: Iterable[str]) -> None:
        ids = list(chunk_ids)
        table = self._existing_table(tenant, dimensions)
        if table is None or not ids:
            return
        for start in range(0, len(ids), 500):
            table.delete(in_list("chunk_id", ids[start : start + 500]))

    def delete_documents(self, tenant: str, document_ids: Iterable[str]) -> None:
        ids = list(document_ids)
        if not ids:
            return
        for table in self._tenant_tables(tenant):
            for start in range(0, len(ids), 500):
                table.delete(in_list("document_id", ids[start : start + 500]))

    def delete_other_models(self, tenant: str, asset_id: str, embedding_model: str) -> None:
        """The asset's rows of every model but this one (a model change is complete)."""
        for table in self._tenant_tables(tenant):
            table.delete(
                f"asset_id = {quote(asset_id)} AND embedding_model != {quote(embedding_model)}"
            )

    def delete_asset(self, tenant: str, asset_id: str) -> None:
        for table in self._tenant_tables(tenant):
            table.delete(f"asset_id = {quote(asset_id)}")

    def refresh_document_fields(
        self, tenant: str, asset_id: str, fields: Mapping[str, DocumentFields]
    ) -> int:
        """The title and modification time of documents whose content did not change, written
        onto their chunks where they differ: a rename upstream, a touch, or rows an earlier
        version stored without them. One merge per table on chunk_id; the vectors are kept.
        Returns the rows changed."""
        changed = 0
        if not fields:
            return changed
        # A webhook's few documents are read by id; a whole listing reads the asset once.
        where = self.scope(asset_id)
        if len(fields) <= 500:
            where += f" AND {in_list('document_id', fields)}"
        columns = ["chunk_id", "document_id", *(f.name for f in DOCUMENT_FIELDS)]
        for width in self._tenant_widths(tenant):
            table = self._existing_table(tenant, width)
            updates: dict[str, list[Any]] = {name: [] for name in ("chunk_id", *columns[2:])}
            for row in self._select(table, where, columns).to_pylist():
                wanted = fields.get(row["document_id"])
                if wanted is None:
                    continue
                title, modified_at = wanted.onto(row["title"], row["modified_at"])
                if (title, modified_at) != (row["title"], row["modified_at"]):
                    updates["chunk_id"].append(row["chunk_id"])
                    updates["title"].append(title)
                    updates["modified_at"].append(modified_at)
            if updates["chunk_id"]:
                schema = pa.schema([pa.field("chunk_id", pa.string()), *DOCUMENT_FIELDS])
                data = pa.Table.from_pydict(updates, schema=schema)
                # Rewrites the matched rows whole, outside the indexes: fold them in as after
                # any other write.
                table.merge_insert("chunk_id").when_matched_update_all().execute(data)
                self.ensure_indices(tenant, width)
                changed += len(updates["chunk_id"])
        return changed

    def ensure_full_text_index(self, tenant: str, dimensions: int) -> None:
        """Native full-text index on chunk content; rebuilt when many rows are not in it yet."""
        self.ensure_indices(tenant, dimensions, vector=False)

    def ensure_indices(self, tenant: str, dimensions: int, *, vector: bool = True) -> None:
        """The full-text index, bitmap indexes on the scope's columns and, past
        ``VECTOR_INDEX_MIN_ROWS``, the vector index, built when missing; ``optimize()`` compacts
        small fragments and folds new rows into every index once enough are outside them.

        Small fragments are compacted before an index is built, not after: built first, the
        compaction must rewrite the new indexes too (on 147,000 chunks the worker's peak was
        977 MB that way, 715 MB this way, in the same time; bench/bench_scale.py)."""
        from lancedb.index import FTS, Bitmap, IvfHnswSq

        table = self._existing_table(tenant, dimensions)
        rows = table.count_rows() if table is not None else 0
        if rows == 0:
            return
        compacted = self._small_fragments(table) > SMALL_FRAGMENTS_LIMIT and self._optimize(table)
        listed = table.list_indices()
        indices = {i.index_type: i for i in listed}
        indexed_columns = {c for i in listed for c in i.columns}
        if "FTS" not in indices:
            table.create_index("content", config=FTS(), replace=True)
        for column in SCOPE_INDEX_COLUMNS:
            if column not in indexed_columns:
                table.create_index(column, config=Bitmap(), replace=True)
        vector_index = next((i for t, i in indices.items() if _is_vector_index(t)), None)
        if vector and vector_index is None and rows >= VECTOR_INDEX_MIN_ROWS:
            table.create_index("vector", config=IvfHnswSq(distance_type="cosine"), replace=True)
        stale = not compacted and self._small_fragments(table) > SMALL_FRAGMENTS_LIMIT
        if "FTS" in indices:
            stats = table.index_stats(indices["FTS"].name)
            stale = stale or (
                stats is not None and stats.num_unindexed_rows > FTS_REINDEX_THRESHOLD
            )
        if vector_index is not None:  # one built just now has every row in it
            stats = table.index_stats(vector_index.name)
            share = VECTOR_REINDEX_UNINDEXED_SHARE
            stale = stale or (stats is not None and stats.num_unindexed_rows > share * rows)
        if stale:
            self._optimize(table)

    @staticmethod
    def _small_fragments(table: Any) -> int:
        return table.stats()["fragment_stats"]["num_small_fragments"]

    @staticmethod
    def _optimize(table: Any) -> bool:
        """Compact, fold unindexed rows into the indexes and remove the files of versions older
        than ``OLD_VERSIONS_KEPT`` (LanceDB keeps them a week by default: a 50,000-page ingest
        left 2 GB for 230 MB of vectors). Whether it succeeded."""
        try:
            table.optimize(cleanup_older_than=OLD_VERSIONS_KEPT)
            return True
        except Exception:  # e.g. another asset's run committed to the table meanwhile
            # Every row is written and searchable (unindexed rows are scanned): the next
            # run's ensure_indices tries again.
            log.warning("optimizing %s failed; the next run retries", table.name, exc_info=True)
            return False

    # Reads ------------------------------------------------------------------------------------

    def _select(self, table: Any, where: str, columns: list[str]) -> pa.Table:
        return table.search().where(where).select(columns).limit(None).to_arrow()

    def chunk_ids_of_documents(
        self,
        tenant: str,
        dimensions: int,
        document_ids: Iterable[str],
        embedding_model: str | None = None,
    ) -> dict[str, set[str]]:
        """The documents' chunk ids in the table of this width (of one model, if given)."""
        ids = list(document_ids)
        result: dict[str, set[str]] = {d: set() for d in ids}
        table = self._existing_table(tenant, dimensions)
        if table is None or not ids:
            return result
        model = f" AND embedding_model = {quote(embedding_model)}" if embedding_model else ""
        for start in range(0, len(ids), 500):
            data = self._select(
                table,
                in_list("document_id", ids[start : start + 500]) + model,
                ["chunk_id", "document_id"],
            )
            for chunk_id, document_id in zip(
                data["chunk_id"].to_pylist(), data["document_id"].to_pylist(), strict=True
            ):
                result[document_id].add(chunk_id)
        return result

    def has_chunks(self, tenant: str, dimensions: int, asset_id: str, embedding_model: str) -> bool:
        """Whether the asset holds any chunk of this model in the table of this width."""
        table = self._existing_table(tenant, dimensions)
        if table is None:
            return False
        return table.count_rows(self.scope(asset_id, embedding_model)) > 0

    def vectors_by_hash(
        self,
        tenant: str,
        dimensions: int,
        asset_id: str,
        embedding_model: str,
        content_hashes: Iterable[str],
    ) -> dict[str, np.ndarray]:
        """Vectors already in the index for these contents, within the asset and model."""
        hashes = sorted(set(content_hashes))
        table = self._existing_table(tenant, dimensions)
        found: dict[str, np.ndarray] = {}
        if table is None or not hashes:
            return found
        scope = f"asset_id = {quote(asset_id)} AND embedding_model = {quote(embedding_model)}"
        for start in range(0, len(hashes), 500):
            where = f"{scope} AND {in_list('content_hash', hashes[start : start + 500])}"
            data = self._select(table, where, ["content_hash", "vector"])
            column = data["vector"].combine_chunks()
            matrix = column.values.to_numpy(zero_copy_only=False).reshape(-1, dimensions)
            for content_hash, vector in zip(data["content_hash"].to_pylist(), matrix, strict=True):
                found.setdefault(content_hash, vector.astype(np.float32))
        return found

    def chunk_counts_by_document(
        self, tenant: str, asset_id: str, embedding_model: str | None = None
    ) -> dict[str, int]:
        """How many chunks each document of the asset has in the index (of one model)."""
        counts: dict[str, int] = {}
        for table in self._tenant_tables(tenant):
            data = self._select(table, self.scope(asset_id, embedding_model), ["document_id"])
            for document_id in data["document_id"].to_pylist():
                counts[document_id] = counts.get(document_id, 0) + 1
        return counts

    def chunk_counts_by_document_and_model(
        self, tenant: str, asset_id: str
    ) -> dict[tuple[str, str], int]:
        """How many chunks each (document, embedding model) of the asset has, in one scan."""
        counts: dict[tuple[str, str], int] = {}
        for table in self._tenant_tables(tenant):
            data = self._select(table, self.scope(asset_id), ["document_id", "embedding_model"])
            pairs = zip(
                data["document_id"].to_pylist(), data["embedding_model"].to_pylist(), strict=True
            )
            for pair in pairs:
                counts[pair] = counts.get(pair, 0) + 1
        return counts

    def chunks_of_asset(self, tenant: str, asset_id: str, columns: list[str]) -> pa.Table:
        tables = [
            self._select(t, f"asset_id = {quote(asset_id)}", columns)
            for t in self._tenant_tables(tenant)
        ]
        if not tables:
            return pa.table({c: [] for c in columns})
        return pa.concat_tables(tables)

    def chunks_of_document(
        self,
        tenant: str,
        document_id: str,
        columns: list[str],
        embedding_model: str | None = None,
    ) -> list[dict[str, Any]]:
        where = f"document_id = {quote(document_id)}"
        if embedding_model:
            where += f" AND embedding_model = {quote(embedding_model)}"
        rows: list[dict[str, Any]] = []
        for table in self._tenant_tables(tenant):
            rows += self._select(table, where, columns).to_pylist()
        return rows

    def neighbours(
        self, tenant: str, dimensions: int, windows: Iterable[tuple[str, str, int, int]]
    ) -> list[dict[str, Any]]:
        """Chunks of each ``(document_id, embedding_model, first, last)`` window by chunk
        index, both ends included: the context around search hits, in one read."""
        terms = [
            f"(document_id = {quote(document_id)} AND embedding_model = {quote(model)}"
            f" AND chunk_index >= {int(first)} AND chunk_index <= {int(last)})"
            for document_id, model, first, last in windows
        ]
        table = self._existing_table(tenant, dimensions)
        if table is None or not terms:
            return []
        columns = ["document_id", "chunk_index", "content", "start_char", "end_char"]
        return self._select(
            table, " OR ".join(terms), [*columns, "start_line", "end_line"]
        ).to_pylist()

    HIT_COLUMNS = [
        "chunk_id",
        "document_id",
        "asset_id",
        "chunk_index",
        "content",
        "source_url",
        "heading_path",
        "page_number",
        "start_char",
        "end_char",
        "start_line",
        "end_line",
        "token_count",
    ]

    def full_text_search(
        self, tenant: str, dimensions: int, where: str, query: str, limit: int
    ) -> list[dict[str, Any]]:
        """BM25 hits (`_score`) on chunk content within ``where``; none before the index exists."""
        table = self._existing_table(tenant, dimensions)
        # A first ingestion builds the index only when it ends: until then there is nothing to ask.
        if table is None or not any(i.index_type == "FTS" for i in table.list_indices()):
            return []
        return (
            table.search(query, query_type="fts")
            .where(where, prefilter=True)
            .select([*self.HIT_COLUMNS, "_score"])
            .limit(limit)
            .to_list()
        )

    def vector_search(
        self, tenant: str, where: str, vector: np.ndarray, limit: int
    ) -> list[dict[str, Any]]:
        """Nearest chunks by cosine distance (`_distance`, 0 = same direction) within ``where``."""
        table = self._existing_table(tenant, int(vector.shape[-1]))
        if table is None:
            return []
        return (
            table.search(vector.astype(np.float32), vector_column_name="vector")
            .distance_type("cosine")
            # With a vector index: probe more partitions and re-rank 5x the candidates by
            # exact distance (see VECTOR_SEARCH_REFINE_FACTOR). A flat scan ignores both.
            .nprobes(VECTOR_SEARCH_NPROBES)
            .refine_factor(VECTOR_SEARCH_REFINE_FACTOR)
            .where(where, prefilter=True)
            .select([*self.HIT_COLUMNS, "_distance"])
            .limit(limit)
            .to_list()
        )

    @staticmethod
    def scope(asset_id: str, embedding_model: str | None = None) -> str:
        where = f"asset_id = {quote(asset_id)}"
        if embedding_model is not None:
            where += f" AND embedding_model = {quote(embedding_model)}"
        return where
