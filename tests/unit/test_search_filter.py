"""Search filters as LanceDB pre-filters on a real table, URL globs, upstream dates, and the
merging of neighbouring chunks into a hit's context."""

from __future__ import annotations

import re

import lancedb
import pyarrow as pa
import pytest

from fruxon_pipelines.search_filter import SearchFilter, glob_pattern
from fruxon_pipelines.services.search import merge_chunks
from fruxon_pipelines.sources.base import ItemMetadata

URLS = [
    "https://docs.test/a/one.html",
    "https://docs.test/a/b/two.html",
    "https://docs.test/it's (draft) [1].html",
    "https://blog.test/%_x.html",
]


@pytest.fixture
def table(tmp_path):
    data = pa.table(
        {
            "document_id": ["d0", "d1", "d2", "d3"],
            "source_url": URLS,
            "title": ["One", "Two", "Draft's [1] \\ (x)", None],
            "modified_at": pa.array([1000, 2000, 3000, None], pa.int64()),
        }
    )
    return lancedb.connect(str(tmp_path)).create_table("t", data)


def _matches(table, narrowing: SearchFilter) -> list[str]:
    where = narrowing.where()
    query = table.search() if where is None else table.search().where(where)
    return sorted(query.select(["document_id"]).to_arrow()["document_id"].to_pylist())


@pytest.mark.parametrize(
    ("glob", "expected"),
    [
        ("https://docs.test/a/*", ["d0"]),
        ("https://docs.test/a/**", ["d0", "d1"]),
        ("https://docs.test/**.html", ["d0", "d1", "d2"]),
        ("https://docs.test/it's (draft) [?].html", ["d2"]),
        ("https://blog.test/%_x.html", ["d3"]),
        ("https://blog.test/__x.html", []),
        ("*", []),
        ("**", ["d0", "d1", "d2", "d3"]),
    ],
)
def test_url_globs_match_whole_urls_and_nothing_else(table, glob, expected):
    assert _matches(table, SearchFilter(url_glob=glob)) == expected
    # The pattern is the glob's, character for character, on the Python side too.
    assert [u for u in URLS if re.fullmatch(glob_pattern(glob)[1:-1], u)] == [
        URLS[int(d[1])] for d in expected
    ]


def test_each_field_narrows_and_all_of_them_must_hold(table):
    assert _matches(table, SearchFilter()) == ["d0", "d1", "d2", "d3"]
    assert SearchFilter().where() is None
    assert _matches(table, SearchFilter(document_ids=("d1", "d3"))) == ["d1", "d3"]
    assert _matches(table, SearchFilter(url_prefix="https://docs.test/a/")) == ["d0", "d1"]
    assert _matches(table, SearchFilter(url_prefix="https://blog.test/%")) == ["d3"]
    assert _matches(table, SearchFilter(title_contains="DRAFT'S [1] \\")) == ["d2"]
    assert _matches(table, SearchFilter(modified_after=2000)) == ["d1", "d2"]
    assert _matches(table, SearchFilter(modified_before=2000)) == ["d0"]
    both = SearchFilter(url_prefix="https://docs.test/", modified_after=1500, title_contains="(x")
    assert _matches(table, both) == ["d2"]


@pytest.mark.parametrize(
    "value", ["' OR 1=1 --", "x' OR 'a'='a", "\\", "\\'", "%", "_", "'); --", "ü'\"✓", "[a-"]
)
def test_hostile_values_match_only_themselves(table, value):
    titles = {"d0": "One", "d1": "Two", "d2": "Draft's [1] \\ (x)"}
    literally = {
        SearchFilter(document_ids=(value,)): [],
        SearchFilter(url_prefix=value): [],
        SearchFilter(url_glob=value): [],
        SearchFilter(title_contains=value): [
            d for d, title in titles.items() if value.lower() in title.lower()
        ],
    }
    for narrowing, expected in literally.items():
        assert _matches(table, narrowing) == expected, narrowing


@pytest.mark.parametrize(
    ("stamp", "expected"),
    [
        ("Wed, 21 Oct 2015 07:28:00 GMT", 1445412480000),
        ("2015-10-21T07:28:00Z", 1445412480000),
        ("2015-10-21T07:28:00.000+00:00", 1445412480000),
        ("2015-10-21T09:28:00+02:00", 1445412480000),
        ("2015-10-21T07:28:00", 1445412480000),  # no zone: UTC
        ("yesterday", None),
        ("", None),
        (None, None),
    ],
)
def test_upstream_modification_times_are_read_as_http_dates_or_iso_8601(stamp, expected):
    assert ItemMetadata(last_modified=stamp).modified_ms == expected


def _chunk(index, start, end, text, line=1):
    return {
        "chunk_index": index,
        "start_char": start,
        "end_char": end,
        "content": text[start:end],
        "start_line": line,
        "end_line": line,
    }


def test_neighbouring_chunks_merge_without_their_overlap():
    text = "alpha beta gamma delta epsilon zeta eta theta"
    chunks = [_chunk(2, 17, 36, text), _chunk(0, 0, 16, text), _chunk(1, 11, 30, text)]
    assert merge_chunks(chunks) == text[0:36]
    apart = [_chunk(0, 0, 5, text), _chunk(1, 6, 10, text, line=2)]
    assert merge_chunks(apart) == "alpha\nbeta"
    assert merge_chunks([]) == ""
