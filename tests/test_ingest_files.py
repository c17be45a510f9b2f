"""File knowledge assets: every supported type ingested from a committed fixture."""

from __future__ import annotations

import shutil

import pytest
from conftest import FIXTURES
from pipeline import HASH_EMBEDDING, Pipeline


@pytest.fixture
def pipeline(settings, instance) -> Pipeline:
    return Pipeline(settings, instance)


def _file_asset(pipeline: Pipeline, name: str, embedding: dict | None = None) -> str:
    target = pipeline.settings.files_dir / "uploads" / name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(FIXTURES / name, target)
    parameters = {"path": f"uploads/{name}", "fileName": name}
    return pipeline.create_asset("file", parameters, embedding=embedding)


@pytest.mark.parametrize(
    "name",
    ["sample.pdf", "sample.docx", "sample.html", "sample.md", "sample.txt", "sample.csv"],
)
def test_each_file_type_is_ingested(pipeline, name):
    asset_id = _file_asset(pipeline, name)

    outcome = pipeline.run(asset_id)

    [document] = pipeline.documents(asset_id).values()
    assert document.status == "COMPLETED", document.error_message
    assert document.chunk_count > 0
    assert document.file_name == name
    assert outcome.check_results() == {"chunk_counts_match": True, "no_orphan_chunks": True}


def test_pdf_chunks_carry_page_numbers(pipeline):
    small_chunks = {**HASH_EMBEDDING, "chunkSize": 24, "chunkOverlap": 0}
    asset_id = _file_asset(pipeline, "sample.pdf", small_chunks)
    pipeline.run(asset_id)
    pages = {c["page_number"] for c in pipeline.chunks(asset_id, ["page_number"])}
    assert {1, 2} <= pages


def test_unchanged_file_is_not_reparsed_or_reembedded(pipeline):
    asset_id = _file_asset(pipeline, "sample.md")
    pipeline.run(asset_id)

    outcome = pipeline.run(asset_id)

    metadata = outcome.metadata()
    assert metadata["documents_unchanged"] == 1
    assert metadata["tokens_embedded"] == 0
    assert outcome.metadata("document_chunks")["documents_parsed"] == 0


def test_corrupt_file_ends_as_a_failed_document_not_a_crashed_run(pipeline):
    asset_id = _file_asset(pipeline, "corrupt.pdf")

    outcome = pipeline.run(asset_id)

    assert outcome.result.success
    [document] = pipeline.documents(asset_id).values()
    assert document.status == "FAILED"
    assert document.error_message
    assert document.chunk_count == 0
