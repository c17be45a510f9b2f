"""`fruxon assets create` goes through the same create path as the API: the same checks, and the
budget, auto-update and credentials the API would store."""

from __future__ import annotations

import json

import pytest
from pipeline import HASH_EMBEDDING
from sitegen import generate_pages
from typer.testing import CliRunner

from fruxon_cli import app
from fruxon_pipelines.catalog.models import now_ms
from fruxon_pipelines.partitions import KNOWLEDGE_ASSET_PARTITIONS
from fruxon_pipelines.settings import get_settings


@pytest.fixture
def cli_home(settings, monkeypatch):
    """The CLI's configuration is its environment: FRUXON_HOME is the test's."""
    monkeypatch.setenv("FRUXON_HOME", str(settings.home))
    get_settings.cache_clear()
    yield settings
    get_settings.cache_clear()


def _create(*args: str):
    embedding = ["--provider", HASH_EMBEDDING["provider"], "--model", HASH_EMBEDDING["model"]]
    return CliRunner().invoke(
        app,
        [
            "assets",
            "create",
            "--tenant",
            "acme",
            *embedding,
            "--chunk-size",
            "64",
            "--chunk-overlap",
            "8",
            "--no-ingest",
            *args,
        ],
    )


def test_a_cli_created_asset_honours_its_token_budget(cli_home, pipeline, site):
    for path, body in generate_pages(6, links="all", seed=5).items():
        site.put(path, body)
    result = _create("--url", site.url("/"), "--max-depth", "1", "--token-budget", "40")
    assert result.exit_code == 0, result.output
    [asset] = pipeline.catalog.list_assets("acme")
    assert asset.budget == {"tokenBudget": 40}
    # The partition the CLI registered is in the stack's instance; the test's runs in its own.
    pipeline.instance.add_dynamic_partitions(KNOWLEDGE_ASSET_PARTITIONS, [asset.id])

    outcome = pipeline.run(asset.id, raise_on_error=False)

    assert not outcome.result.success
    operation = pipeline.catalog.get_operation(outcome.operation_id)
    assert operation.error_category == "BUDGET", operation.error_message
    assert pipeline.catalog.token_usage(asset.id, now_ms()).total <= 40  # never past it


def test_the_cli_stores_auto_update_and_seals_credentials_as_the_api_does(cli_home, pipeline):
    poll = {"strategy": "POLL", "pollFrequency": "DAILY", "pollHour": "3"}
    result = _create(
        "--url",
        "https://docs.example.test/",
        "--auto-update",
        json.dumps(poll),
        "--daily-token-budget",
        "1000",
    )
    assert result.exit_code == 0, result.output
    [asset] = pipeline.catalog.list_assets("acme")
    assert asset.auto_update["strategy"] == "POLL" and asset.next_poll_at is not None
    assert asset.budget == {"dailyTokenBudget": 1000}

    refused = _create("--url", "https://docs.example.test/", "--embedding-api-key", "sk-test")
    assert refused.exit_code == 2
    assert "the 'hash' provider takes no API key" in refused.output

    bad = _create("--url", "https://docs.example.test/", "--auto-update", '{"strategy": "X"}')
    assert bad.exit_code == 2 and "autoUpdate.strategy" in bad.output
    assert len(pipeline.catalog.list_assets("acme")) == 1  # nothing written for a refusal


def test_a_create_while_the_stack_is_away_says_so_and_leaves_the_operation_pending(
    cli_home, pipeline, monkeypatch
):
    from fruxon_pipelines.stack import free_port

    monkeypatch.setenv("FRUXON_DAGSTER_PORT", str(free_port()))  # nothing listens there
    get_settings.cache_clear()
    embedding = ["--provider", HASH_EMBEDDING["provider"], "--model", HASH_EMBEDDING["model"]]
    result = CliRunner().invoke(
        app, ["assets", "create", "--tenant", "acme", *embedding, "--url", "https://a.test/"]
    )

    assert result.exit_code == 2
    [asset] = pipeline.catalog.list_assets("acme")
    assert f"created knowledge asset {asset.id}" in result.output
    assert "could not submit the run to the Dagster webserver" in result.output
    [operation] = pipeline.catalog.list_operations(asset.id)
    assert (operation.type, operation.run_id) == ("INGEST", None)  # the sensor's to launch
