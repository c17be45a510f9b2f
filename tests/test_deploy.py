"""deploy/: what cannot run here (Kubernetes) is checked statically — every manifest parses and
holds together, the instance config validates against Dagster's own schema (dagster-k8s's
K8sRunLauncher included), and the PostgreSQL variant of dagster.yaml cannot drift from the
embedded one."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
PROJECT = DEPLOY.parent


def _documents() -> list[dict]:
    found = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        found += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return found


def _named(kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in _documents() if d["kind"] == kind}


def test_every_manifest_is_a_named_kubernetes_object():
    documents = _documents()
    assert documents
    for document in documents:
        assert {"apiVersion", "kind", "metadata"} <= set(document), document
        assert document["metadata"]["name"]


def test_deployments_reference_only_what_the_manifests_define():
    config_maps, secrets = _named("ConfigMap"), _named("Secret")
    claims, accounts = _named("PersistentVolumeClaim"), _named("ServiceAccount")
    services = _named("Service")
    deployments = _named("Deployment")
    assert set(deployments) == {
        "fruxon-code-server",
        "fruxon-webserver",
        "fruxon-daemon",
        "fruxon-api",
    }
    for deployment in deployments.values():
        spec = deployment["spec"]
        pod = spec["template"]["spec"]
        assert (
            spec["selector"]["matchLabels"].items()
            <= spec["template"]["metadata"]["labels"].items()
        )
        assert pod["serviceAccountName"] in accounts
        for volume in pod["volumes"]:
            if "configMap" in volume:
                assert volume["configMap"]["name"] in config_maps
            if "persistentVolumeClaim" in volume:
                assert volume["persistentVolumeClaim"]["claimName"] in claims
        for container in pod["containers"]:
            for source in container["envFrom"]:
                ref = source.get("secretRef") or source.get("configMapRef")
                assert ref["name"] in (secrets if "secretRef" in source else config_maps)
            mounted = {m["name"] for m in container["volumeMounts"]}
            assert mounted <= {v["name"] for v in pod["volumes"]}
    for name, service in services.items():
        assert service["spec"]["selector"]["app.kubernetes.io/name"] in deployments, name


def test_the_containers_run_commands_of_this_project():
    deployments = _named("Deployment")
    command = {
        n: d["spec"]["template"]["spec"]["containers"][0]["command"] for n, d in deployments.items()
    }
    module = command["fruxon-code-server"][command["fruxon-code-server"].index("-m") + 1]
    assert hasattr(importlib.import_module(module), "defs")
    app_module, _, attribute = command["fruxon-api"][1].partition(":")
    assert hasattr(importlib.import_module(app_module), attribute)
    workspace = yaml.safe_load(
        _named("ConfigMap")["fruxon-dagster-instance"]["data"]["workspace.yaml"]
    )
    server = workspace["load_from"][0]["grpc_server"]
    assert server["host"] in _named("Service")
    assert str(server["port"]) in command["fruxon-code-server"]
    settings = _named("ConfigMap")["fruxon-settings"]["data"]
    assert settings["FRUXON_DAGSTER_HOST"] in _named("Service")


def test_the_instance_config_validates_against_dagster_and_dagster_k8s(tmp_path, monkeypatch):
    from dagster._config import process_config
    from dagster._config.field_utils import convert_potential_field
    from dagster._core.instance.config import dagster_instance_config
    from dagster_k8s import K8sRunLauncher

    instance = _named("ConfigMap")["fruxon-dagster-instance"]["data"]["dagster.yaml"]
    (tmp_path / "dagster.yaml").write_text(instance)
    config, _ = dagster_instance_config(str(tmp_path))  # raises on a key Dagster does not know
    launcher = config["run_launcher"]
    assert (launcher["module"], launcher["class"]) == ("dagster_k8s", "K8sRunLauncher")
    monkeypatch.setenv("FRUXON_NAMESPACE", "fruxon")  # the pods' own namespace (downward API)
    checked = process_config(
        convert_potential_field(K8sRunLauncher.config_type()).config_type, launcher["config"]
    )
    assert checked.success, [e.message for e in checked.errors]
    assert launcher["config"]["instance_config_map"] == "fruxon-dagster-instance"
    assert set(launcher["config"]["env_secrets"]) <= set(_named("Secret"))
    # The queue keeps the embedded stack's rule: one run per knowledge asset at a time.
    embedded = yaml.safe_load((PROJECT / "dagster.yaml").read_text())
    limits = config["run_coordinator"]["config"]["tag_concurrency_limits"]
    assert limits == embedded["concurrency"]["runs"]["tag_concurrency_limits"]


@pytest.mark.parametrize("variant", ["deploy/dagster-postgres.yaml"])
def test_the_postgresql_variant_is_the_embedded_config_plus_storage(variant):
    embedded = yaml.safe_load((PROJECT / "dagster.yaml").read_text())
    other = yaml.safe_load((PROJECT / variant).read_text())
    storage = other.pop("storage")
    assert storage == {"postgres": {"postgres_url": {"env": "FRUXON_DAGSTER_POSTGRES_URL"}}}
    assert other == embedded
