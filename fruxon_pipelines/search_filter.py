"""Search filters: what a caller may narrow a search to, as a LanceDB pre-filter.

Every value reaches LanceDB as a quoted SQL literal (``vectors.quote``) and every pattern is
built here from escaped characters, so nothing a caller sends can change the shape of the
filter: quotes, ``OR 1=1``, backslashes and wildcards only ever match themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

from fruxon_pipelines.vectors import in_list, quote

# Characters with a meaning in the regular expressions LanceDB's filters run (Rust's regex).
_REGEX_META = frozenset("\\.+*?()|[]{}^$#&-~")


@dataclass(frozen=True)
class SearchFilter:
    """Narrowing of a search; an empty field narrows nothing. ``asset_ids`` are already the
    caller's visible assets (``sourceTypes`` resolved to them by the service)."""

    document_ids: tuple[str, ...] = ()
    url_prefix: str | None = None
    url_glob: str | None = None
    title_contains: str | None = None
    modified_after: int | None = None  # epoch ms, inclusive
    modified_before: int | None = None  # epoch ms, exclusive

    def where(self) -> str | None:
        """The filter as a LanceDB ``WHERE`` clause, or None when it narrows nothing."""
        terms = []
        if self.document_ids:
            terms.append(in_list("document_id", self.document_ids))
        if self.url_prefix:
            terms.append(f"starts_with(source_url, {quote(self.url_prefix)})")
        if self.url_glob:
            terms.append(f"regexp_like(source_url, {quote(glob_pattern(self.url_glob))})")
        if self.title_contains:
            # strpos needs no wildcards, so % and _ in the text are plain characters.
            needle = quote(self.title_contains.lower())
            terms.append(f"strpos(lower(title), {needle}) > 0")
        if self.modified_after is not None:
            terms.append(f"modified_at >= {int(self.modified_after)}")
        if self.modified_before is not None:
            terms.append(f"modified_at < {int(self.modified_before)}")
        return " AND ".join(f"({t})" for t in terms) or None


def glob_pattern(glob: str) -> str:
    """A URL glob as an anchored regular expression: ``*`` any run of characters but ``/``,
    ``**`` any run at all, ``?`` one character; everything else matches itself."""
    out = []
    i = 0
    while i < len(glob):
        char = glob[i]
        if glob.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append(".")
        else:
            out.append("\\" + char if char in _REGEX_META else char)
        i += 1
    return "^" + "".join(out) + "$"
