"""Elements → token-bounded chunks, counted in the embedding model's own tokens.

The document's elements are joined into one text (blank line between elements) and tokenised
once. Chunks are windows of at most ``chunk_size`` tokens whose ends are moved back to the best
nearby break (element boundary, line, sentence, word), and consecutive windows share about
``chunk_overlap`` tokens. Each chunk keeps the heading path and page of the element it starts
in, and its character and line offsets in the joined text.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from fruxon_pipelines.elements import Element
from fruxon_pipelines.embedding.base import TokenCounter

ELEMENT_SEPARATOR = "\n\n"
HEADING_SEPARATOR = " > "


@dataclass(frozen=True)
class ChunkSpan:
    """Where a chunk stands in its document: what a search hit cites. The index keeps it beside
    each vector (``vectors.ChunkRow``)."""

    heading_path: str
    page_number: int | None
    start_char: int
    end_char: int
    start_line: int
    end_line: int
    token_count: int


@dataclass(frozen=True)
class Chunk(ChunkSpan):
    index: int
    content: str
    content_hash: str


@dataclass(frozen=True)
class _Placed:
    start: int
    heading_path: str
    page_number: int | None


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _place_elements(elements: Sequence[Element]) -> tuple[str, list[_Placed]]:
    """Join element texts; remember where each starts and the headings above it."""
    parts: list[str] = []
    placed: list[_Placed] = []
    headings: list[tuple[int, str]] = []
    offset = 0
    for element in elements:
        text = element.text.strip()
        if not text:
            continue
        if element.kind == "title":
            level = element.heading_level or 1
            headings = [h for h in headings if h[0] < level] + [(level, " ".join(text.split()))]
        if parts:
            offset += len(ELEMENT_SEPARATOR)
        path = HEADING_SEPARATOR.join(title for _, title in headings)
        placed.append(_Placed(offset, path, element.page_number))
        parts.append(text)
        offset += len(text)
    return ELEMENT_SEPARATOR.join(parts), placed


def _break_quality(text: str, spans: list[tuple[int, int]], i: int) -> int:
    """How good a place to end a chunk the gap before token ``i`` is (higher is better)."""
    gap = text[spans[i - 1][1] : spans[i][0]]
    if "\n\n" in gap:
        return 4
    if "\n" in gap:
        return 3
    previous = text[spans[i - 1][0] : spans[i - 1][1]]
    if gap and previous in {".", "!", "?", ";", ":"}:
        return 2
    if gap:
        return 1
    return 0


def chunk_elements(
    elements: Sequence[Element],
    tokenizer: TokenCounter,
    *,
    chunk_size: int,
    chunk_overlap: int,
) -> list[Chunk]:
    if chunk_size < 1:
        raise ValueError("chunk_size must be at least 1 token")
    if not 0 <= chunk_overlap < chunk_size:
        raise ValueError("chunk_overlap must be at least 0 and smaller than chunk_size")
    text, placed = _place_elements(elements)
    if not text:
        return []
    spans = tokenizer.token_spans(text)
    if not spans:
        return []
    starts = [p.start for p in placed]
    newlines = [i for i, ch in enumerate(text) if ch == "\n"]

    def line_of(char: int) -> int:
        return bisect.bisect_right(newlines, char - 1) + 1

    chunks: list[Chunk] = []
    n = len(spans)
    start = 0
    while start < n:
        end = min(start + chunk_size, n)
        if end < n:
            # Move the end back to the best break in the second half of the window.
            lowest = start + max(1, chunk_size // 2)
            best, best_quality = end, _break_quality(text, spans, end)
            for candidate in range(end - 1, lowest - 1, -1):
                quality = _break_quality(text, spans, candidate)
                if quality > best_quality:
                    best, best_quality = candidate, quality
                    if quality == 4:
                        break
            end = best
        first_char, last_char = spans[start][0], spans[end - 1][1]
        element = placed[max(0, bisect.bisect_right(starts, first_char) - 1)]
        content = text[first_char:last_char]
        chunks.append(
            Chunk(
                index=len(chunks),
                content=content,
                content_hash=content_hash(content),
                heading_path=element.heading_path,
                page_number=element.page_number,
                start_char=first_char,
                end_char=last_char,
                start_line=line_of(first_char),
                end_line=line_of(last_char - 1),
                token_count=end - start,
            )
        )
        if end >= n:
            break
        next_start = max(end - chunk_overlap, start + 1)
        # Start the overlap on a word, not inside one.
        while next_start < end and _break_quality(text, spans, next_start) == 0:
            next_start += 1
        start = next_start
    return chunks
