"""No secret in the resource config Dagster shows.

Dagster shows every resource's configured values in its UI (Deployment → Resources); they travel
in the code location's snapshot from the code server to the webserver and out through GraphQL. A
PostgreSQL catalog URL carries its password, so the catalog resource names the environment
variable that holds it (``dg.EnvVar``) and the run reads the URL from its own environment.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "s3cret-pw"

RESOURCES_QUERY = """
query Resources($selector: RepositorySelector!) {
  allTopLevelResourceDetailsOrError(repositorySelector: $selector) {
    __typename
    ... on ResourceDetailsList {
      results { name configuredValues { key value type } }
    }
    ... on PythonError { message }
  }
}
"""


@pytest.fixture
def postgres_listener() -> Iterator[socket.socket]:
    """A port where the catalog's PostgreSQL server would be, held by a listener that nobody
    should knock on: loading the definitions connects to nothing."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.setblocking(False)
        yield listener


def test_the_catalog_password_is_in_no_resource_config_the_ui_shows(
    tmp_path, monkeypatch, capfd, postgres_listener
):
    from dagster._core.remote_representation.external_data import ResourceConfigEnvVarSnap
    from dagster_graphql.test.utils import define_out_of_process_context, execute_dagster_graphql
    from dagster_shared.serdes import serialize_value

    port = postgres_listener.getsockname()[1]
    monkeypatch.setenv("FRUXON_DATABASE_URL", f"postgresql://fruxon:{PASSWORD}@127.0.0.1:{port}/db")
    monkeypatch.setenv("FRUXON_HOME", str(tmp_path / "fruxon"))

    # As the webserver loads it: workspace.yaml, the definitions in a code server process
    # started with this environment, the snapshot it sends, GraphQL over that.
    with (
        dg.instance_for_test() as instance,
        define_out_of_process_context(str(ROOT / "workspace.yaml"), None, instance) as context,
    ):
        assert not context.code_location_errors(), context.code_location_errors()
        result = execute_dagster_graphql(
            context,
            RESOURCES_QUERY,
            {"selector": {"repositoryLocationName": "fruxon", "repositoryName": "__repository__"}},
        )
        repository = context.get_code_location("fruxon").get_repository("__repository__")
        # The jobs' snapshots come apart from the repository's (deferred); a run stores its
        # job's, and bound resource config is the default of the job's config schema.
        snapshots = [serialize_value(repository.repository_snap)] + [
            serialize_value(job.job_snapshot) for job in repository.get_all_jobs()
        ]

    listing = result.data["allTopLevelResourceDetailsOrError"]
    assert listing["__typename"] == "ResourceDetailsList", listing
    shown = {r["name"]: {v["key"]: v for v in r["configuredValues"]} for r in listing["results"]}
    assert {"catalog", "vector_store", "progress", "secrets"} <= set(shown)
    assert PASSWORD not in str(shown)
    assert shown["catalog"]["database_url"] == {
        "key": "database_url",
        "value": "FRUXON_DATABASE_URL",
        "type": "ENV_VAR",
    }
    # Nor does anything else in the snapshots: sensors, nested resources, jobs.
    assert len(snapshots) > 1 and not any(PASSWORD in snapshot for snapshot in snapshots)
    by_name = {r.name: r for r in repository.repository_snap.resources or []}
    assert by_name["catalog"].configured_values["database_url"] == ResourceConfigEnvVarSnap(
        name="FRUXON_DATABASE_URL"
    )
    # Nor in what the code server wrote while it loaded, and it never knocked on the server.
    printed = capfd.readouterr()
    assert PASSWORD not in printed.out + printed.err
    with pytest.raises(BlockingIOError):
        postgres_listener.accept()


def test_the_catalog_url_comes_from_the_environment_when_the_run_opens_it(tmp_path, monkeypatch):
    from fruxon_pipelines.resources import CatalogResource, OperationProgress

    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    monkeypatch.setenv("FRUXON_DATABASE_URL", url)
    catalog = CatalogResource(database_url=dg.EnvVar("FRUXON_DATABASE_URL"))
    resources = {"catalog": catalog, "progress": OperationProgress(catalog=catalog)}
    with dg.build_resources(resources) as opened:
        assert opened.catalog.get().url == url
        assert opened.progress.catalog.get() is opened.catalog.get()


def test_a_catalog_url_with_a_password_is_named_not_written(tmp_path, monkeypatch):
    from fruxon_pipelines.resources import build_resources
    from fruxon_pipelines.settings import Settings

    url = f"postgresql://fruxon:{PASSWORD}@127.0.0.1:1/db"
    monkeypatch.setenv("FRUXON_DATABASE_URL", url)
    resources = build_resources(Settings(home=tmp_path / "fruxon"))
    named = resources["catalog"].database_url
    assert isinstance(named, dg.EnvVar) and named.env_var_name == "FRUXON_DATABASE_URL"
    assert PASSWORD not in repr(resources)

    # A Settings object built in code with a password the environment does not hold: the run
    # could not read it from there, and writing it out would show it.
    monkeypatch.delenv("FRUXON_DATABASE_URL")
    with pytest.raises(ValueError, match="FRUXON_DATABASE_URL") as refused:
        build_resources(Settings(home=tmp_path / "fruxon", database_url=url))
    assert PASSWORD not in str(refused.value)


def test_a_catalog_url_without_a_password_is_written_as_it_is(tmp_path, monkeypatch):
    from fruxon_pipelines.resources import build_resources
    from fruxon_pipelines.settings import Settings

    monkeypatch.delenv("FRUXON_DATABASE_URL", raising=False)
    settings = Settings(home=tmp_path / "fruxon")
    assert build_resources(settings)["catalog"].database_url == settings.catalog_url
    served = Settings(home=tmp_path / "fruxon", database_url="postgresql://fruxon@db:5432/fx")
    assert build_resources(served)["catalog"].database_url == served.catalog_url


def test_no_resource_holds_a_secret_of_the_settings(tmp_path):
    from fruxon_pipelines.resources import build_resources
    from fruxon_pipelines.settings import Settings

    settings = Settings(
        home=tmp_path / "fruxon",
        secret_key="sealing-key-material",
        openai_api_key="sk-openai-key",
        google_client_secret="google-client-secret",
    )
    shown = repr(build_resources(settings))
    for secret in ("sealing-key-material", "sk-openai-key", "google-client-secret"):
        assert secret not in shown
