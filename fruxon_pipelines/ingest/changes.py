"""One change classification: what a fetched listing means against the catalog.

A refresh's diff stage acts on it and a dry run reports it, so a dry run names exactly what the
refresh it stands for would add, change and remove. Pure: it reads and writes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from fruxon_pipelines.catalog.models import Document
from fruxon_pipelines.ingest.manifests import ChangeSet, FetchedRecord, FetchManifest

# What becomes of one listed item:
# - added / changed: new, or with other content than is indexed; chunked and embedded next;
# - unchanged: the index already holds this content;
# - failed: the source could not fetch it (what is indexed of it stays);
# - not_indexed: the source says it is unchanged, but it is not indexed here (fetch it again).
Verdict = Literal["added", "changed", "unchanged", "failed", "not_indexed"]


class ListingShrank(Exception):
    """The mass-deletion guard refused: the listing shrank by more than half."""


def mass_deletion_guard(known: int, listed: int, allow: bool) -> None:
    """A listing that shrank by more than half is far likelier an outage than a clean-up."""
    if allow or known == 0 or listed * 2 >= known:
        return
    raise ListingShrank(
        f"the source now lists {listed} items where the index has {known}: it shrank by more "
        "than half, so nothing was deleted. If the removal is real, run again with "
        "allow_mass_deletion: true (or delete the documents yourself)."
    )


@dataclass
class Classification:
    """The listing against the catalog, before anything is written."""

    # Every listed item that still exists at the source, in listing order, with its verdict.
    verdicts: list[tuple[FetchedRecord, Verdict]] = field(default_factory=list)
    # Indexed documents gone upstream: their rows and chunks are deleted.
    removed: list[Document] = field(default_factory=list)
    # Registered documents the source no longer has: they stay, FAILED, until deleted by hand.
    gone_registered: list[FetchedRecord] = field(default_factory=list)

    def change_set(self, manifest: FetchManifest) -> ChangeSet:
        """What the later stages work on (added and changed documents) and the counts."""
        changes = ChangeSet(
            request=manifest.request,
            to_process=[],
            removed=len(self.removed),
            removed_keys=sorted(d.source_key for d in self.removed),
            failed=len(self.gone_registered),
        )
        for record, verdict in self.verdicts:
            if verdict in ("added", "changed"):
                changes.process(record, new=verdict == "added")
            elif verdict == "unchanged":
                changes.unchanged += 1
            else:
                changes.failed += 1
        return changes


def classify(manifest: FetchManifest, known: Mapping[str, Document]) -> Classification:
    """Sort ``manifest``'s records against the catalog's documents of the asset (by source key).

    Raises ListingShrank when a full listing would remove more than half of what is indexed
    (unless the run allows it).
    """
    request = manifest.request
    records = manifest.records
    listed = {r.source_key for r in records if r.status != "gone"}
    outcome = Classification()
    if request.registered_only:
        outcome.gone_registered = [
            r for r in records if r.status == "gone" and r.source_key in known
        ]
    elif request.partial:
        # Only what was asked for (or what a changes feed named): only what it says is gone is.
        removed_keys = {r.source_key for r in records if r.status == "gone"}
        outcome.removed = [known[k] for k in removed_keys if k in known]
    else:
        mass_deletion_guard(len(known), len(listed), request.allow_mass_deletion)
        outcome.removed = [known[k] for k in set(known) - listed]
    reindex = set(request.reindex_ids)
    for record in records:
        if record.status != "gone":
            previous = known.get(record.source_key)
            outcome.verdicts.append((record, _verdict(record, previous, request.force, reindex)))
    return outcome


def _verdict(
    record: FetchedRecord, previous: Document | None, force: bool, reindex: set[str]
) -> Verdict:
    if record.status == "failed":
        return "failed"
    if _same_content(record, previous) and not force and record.document_id not in reindex:
        return "unchanged"
    if record.staged_path is None:
        return "not_indexed"
    return "added" if previous is None else "changed"


def _same_content(record: FetchedRecord, previous: Document | None) -> bool:
    """The indexed document already holds this content."""
    return (
        previous is not None
        and previous.status == "COMPLETED"
        and (record.status == "unchanged" or record.content_hash == previous.content_hash)
    )
