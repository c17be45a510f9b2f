"""The ingestion stages as plain functions: fetch, diff, chunk, embed (and drift, manifests).

The Dagster assets in ``fruxon_pipelines.assets`` read their resources and context, call one
function of here and turn its result into a materialization with metadata. Nothing here imports
Dagster: a stage that cannot go on raises :class:`RunStopped` (or a ``CategorizedError`` a user
can act on), and the asset layer turns it into the run's failure.
"""

from __future__ import annotations


class RunStopped(Exception):
    """The run cannot go on (its knowledge asset was deleted meanwhile …); says why."""
