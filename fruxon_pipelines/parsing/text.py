"""Plain text and CSV documents, through unstructured, decoded by detect.decode_text_document."""

from __future__ import annotations

import io

from fruxon_pipelines.elements import Element
from fruxon_pipelines.parsing.detect import decode_text_document
from fruxon_pipelines.parsing.partitioning import partition_function, to_elements


def parse_text(data: bytes, charset: str | None, url: str | None) -> list[Element]:
    partition_text = partition_function("text", "partition_text")
    items = partition_text(text=decode_text_document(data, charset))
    return to_elements(items, guessed_titles=True, paged=False)


def parse_csv(data: bytes, charset: str | None, url: str | None) -> list[Element]:
    partition_csv = partition_function("csv", "partition_csv")
    # Decode here (same rules as the other text formats) and hand unstructured clean UTF-8.
    utf8 = decode_text_document(data, charset).encode("utf-8")
    items = partition_csv(file=io.BytesIO(utf8), encoding="utf-8", include_header=True)
    return to_elements(items, guessed_titles=False, paged=False)
