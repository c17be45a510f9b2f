"""The code location loads, validates as Dagster's CLI sees it, and stays light to import."""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

ROOT = Path(__file__).resolve().parents[2]


def test_definitions_load_with_the_ingest_job_in_process():
    from fruxon_pipelines.definitions import defs

    dg.Definitions.validate_loadable(defs)
    job = defs.resolve_job_def("ingest")
    assert job.executor_def is dg.in_process_executor
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {"fetched_documents", "document_changes", "document_chunks", "vector_index"} <= keys


def test_dagster_cli_validates_the_workspace(tmp_path):
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path), "FRUXON_HOME": str(tmp_path / "fx")}
    (tmp_path / "dagster.yaml").write_text((ROOT / "dagster.yaml").read_text())
    dagster = Path(sys.executable).parent / "dagster"
    result = subprocess.run(
        [str(dagster), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All code locations passed validation" in result.stdout + result.stderr


def test_loading_the_code_location_imports_no_heavy_library():
    code = (
        "import sys, fruxon_pipelines.definitions, fruxon_cli\n"
        "heavy = ['torch', 'unstructured', 'onnxruntime', 'spacy', 'trafilatura', 'pandas']\n"
        "print(','.join(m for m in heavy if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "FRUXON_HOME": "/tmp/fruxon-import-check"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_the_ingestion_assets_carry_kinds_owners_and_descriptions_for_the_ui():
    from fruxon_pipelines.definitions import defs

    graph = defs.resolve_asset_graph()
    stages = ("fetched_documents", "document_changes", "document_chunks", "vector_index")
    for stage in stages:
        node = graph.get(dg.AssetKey(stage))
        assert node.owners == ["team:data-platform"], stage  # FRUXON_DAGSTER_ASSET_OWNERS
        assert node.description and node.description.startswith("Stage "), stage
        assert node.kinds, stage
    assert graph.get(dg.AssetKey("vector_index")).kinds == {"lancedb"}
