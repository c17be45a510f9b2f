"""The unit a parser hands to the chunker: a block of text with its place in the document."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ElementKind = Literal["title", "text", "list_item", "table", "code"]


@dataclass(frozen=True)
class Element:
    text: str
    kind: ElementKind = "text"
    # For titles: 1 is the top level. The chunker keeps a heading path from these.
    heading_level: int | None = None
    # 1-based page number where the source has pages (PDF); None elsewhere.
    page_number: int | None = None
