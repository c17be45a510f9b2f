"""Corrupt and hostile files: each ends as a clean FAILED document (or, where the bytes do hold
text, an indexed one), never a crashed run, a hung worker or unbounded memory."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from hostile_files import hostile_files

PASSING = {"chunk_counts_match": True, "no_orphan_chunks": True}
# Refused with these words; the others may parse (their bytes hold a little text) or fail.
REFUSED = {
    "DOCX decompression bomb": "decompression bomb",
    "DOCX that is a damaged ZIP": "not a valid DOCX",
    "empty PDF": "empty",
    "empty DOCX": "empty",
    "empty HTML": "empty",
    "empty Markdown": "empty",
    "empty text": "empty",
    "empty CSV": "empty",
    "blank text": "empty",
    "PNG named .pdf": "not a PDF",
    "PNG served as text": "binary",
    "PNG served as HTML": "binary",
    "PDF named .txt": "",
    "HTML named .docx": "not a valid DOCX",
    "truncated PDF": "truncated",
    "random bytes as CSV": "binary",
}
# What one parsing process may grow by, past its warm-up with ordinary files of every type.
MAX_GROWTH_MB = 200

# The files are written by the test and read one at a time here, so the high-water mark
# measures parsing, not making a bomb.
_PARSE_ALL = r"""
import json, pathlib, resource, sys
from fruxon_pipelines.parsing import ParseError, parse_document

def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024

fixtures, hostile = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
for name in ["sample.pdf", "sample.docx", "sample.html", "sample.md", "sample.txt", "sample.csv"]:
    parse_document((fixtures / name).read_bytes(), None, file_name=name)
print(json.dumps({"warm": peak_mb()}), flush=True)
for case in sorted(hostile.iterdir()):
    name, content_type, file_name = json.loads((case / "meta.json").read_text())
    data = (case / "data").read_bytes()
    try:
        elements = parse_document(data, content_type, file_name=file_name)
        outcome = {"ok": sum(len(e.text) for e in elements)}
    except ParseError as error:
        outcome = {"refused": str(error)}
    except BaseException as error:
        outcome = {"escaped": f"{type(error).__name__}: {error}"[:300]}
    print(json.dumps({"name": name, **outcome, "peak": peak_mb()}), flush=True)
"""


def test_hostile_files_are_refused_with_a_reason_in_bounded_memory(tmp_path):
    for i, (name, (content_type, file_name, data)) in enumerate(hostile_files().items()):
        case = tmp_path / f"{i:02d}"
        case.mkdir()
        (case / "meta.json").write_text(json.dumps([name, content_type, file_name]))
        (case / "data").write_bytes(data)
    completed = subprocess.run(
        [
            sys.executable,
            "-c",
            _PARSE_ALL,
            str(Path(__file__).parent.parent / "fixtures"),
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    lines = [json.loads(line) for line in completed.stdout.splitlines()]
    warm = lines[0]["warm"]
    results = {line["name"]: line for line in lines[1:]}
    assert set(results) == set(hostile_files())
    escaped = {n: r["escaped"] for n, r in results.items() if "escaped" in r}
    assert not escaped, escaped
    for name, words in REFUSED.items():
        assert "refused" in results[name], (name, results[name])
        assert words in results[name]["refused"], (name, results[name]["refused"])
    # Expansion stays expansion-free: the billion laughs yield at most the file's own text.
    assert results["DOCX with a billion laughs"].get("ok", 0) < 100_000
    peak = max(r["peak"] for r in results.values())
    assert peak - warm < MAX_GROWTH_MB, {n: r["peak"] for n, r in results.items()}


def test_a_crawl_full_of_hostile_files_fails_each_and_indexes_the_rest(pipeline, site):
    files = hostile_files()
    links = []
    for i, (name, (content_type, file_name, data)) in enumerate(files.items()):
        path = f"/files/{i}/{file_name}"
        site.put(path, data, content_type)
        links.append(f'<a href="{path}">{name}</a>')
    site.put(
        "/",
        "<html><head><title>Downloads</title></head><body><main><h1>Downloads</h1>"
        f"<p>Every file our users ever sent us.</p><p>{' '.join(links)}</p></main></body></html>",
    )
    asset_id = pipeline.create_asset("web", {"urls": [site.url("/")], "maxDepth": 1})

    outcome = pipeline.run(asset_id)

    assert outcome.result.success
    assert outcome.check_results() == PASSING
    documents = pipeline.documents(asset_id)
    assert len(documents) == len(files) + 1
    assert documents[site.url("/")].status == "COMPLETED"
    by_name = {
        name: documents[site.url(f"/files/{i}/{files[name][1]}")] for i, name in enumerate(files)
    }
    for name in REFUSED:
        document = by_name[name]
        assert document.status == "FAILED", name
        assert document.error_message and document.chunk_count == 0, name
    for document in by_name.values():
        assert document.status in {"COMPLETED", "FAILED"}
        assert document.status == "COMPLETED" or document.error_message
