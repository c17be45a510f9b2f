"""deploy/: what cannot run here (Kubernetes) is checked statically — every manifest parses and
holds together, the instance config validates against Dagster's own schema (dagster-k8s's
K8sRunLauncher included), and the PostgreSQL variant of dagster.yaml cannot drift from the
embedded one."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
PROJECT = DEPLOY.parent


def _documents() -> list[dict]:
    found = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        found += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return found


def _named(kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in _documents() if d["kind"] == kind}


def _manifests_code_server() -> dict:
    """The code server the instance ConfigMap's workspace points at."""
    instance = _named("ConfigMap")["fruxon-dagster-instance"]["data"]
    return yaml.safe_load(instance["workspace.yaml"])["load_from"][0]["grpc_server"]


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
    server = _manifests_code_server()
    assert server["host"] in _named("Service")
    assert str(server["port"]) in command["fruxon-code-server"]
    settings = _named("ConfigMap")["fruxon-settings"]["data"]
    assert settings["FRUXON_DAGSTER_HOST"] in _named("Service")


def _manifests_instance_yaml() -> str:
    return _named("ConfigMap")["fruxon-dagster-instance"]["data"]["dagster.yaml"]


def _validated_instance(directory: Path, instance_yaml: str) -> dict:
    """The instance config as Dagster reads it, once both Dagster's schema and dagster-k8s's
    K8sRunLauncher schema have accepted it."""
    from dagster._config import process_config
    from dagster._config.field_utils import convert_potential_field
    from dagster._core.instance.config import dagster_instance_config
    from dagster_k8s import K8sRunLauncher

    (directory / "dagster.yaml").write_text(instance_yaml)
    config, _ = dagster_instance_config(str(directory))  # raises on a key Dagster does not know
    launcher = config["run_launcher"]
    assert (launcher["module"], launcher["class"]) == ("dagster_k8s", "K8sRunLauncher")
    checked = process_config(
        convert_potential_field(K8sRunLauncher.config_type()).config_type, launcher["config"]
    )
    assert checked.success, [e.message for e in checked.errors]
    return config


def test_the_instance_config_validates_against_dagster_and_dagster_k8s(tmp_path, monkeypatch):
    monkeypatch.setenv("FRUXON_NAMESPACE", "fruxon")  # the pods' own namespace (downward API)
    config = _validated_instance(tmp_path, _manifests_instance_yaml())
    launcher = config["run_launcher"]
    assert launcher["config"]["instance_config_map"] == "fruxon-dagster-instance"
    assert set(launcher["config"]["env_secrets"]) <= set(_named("Secret"))
    # The queue keeps the embedded stack's rule: one run per knowledge asset at a time.
    embedded = yaml.safe_load((PROJECT / "dagster.yaml").read_text())
    limits = config["run_coordinator"]["config"]["tag_concurrency_limits"]
    assert limits == embedded["concurrency"]["runs"]["tag_concurrency_limits"]


@pytest.mark.parametrize(
    ("instance", "through_code_server"),
    [("dagster.yaml", True), ("deploy/dagster-postgres.yaml", True), ("k8s", False)],
)
def test_a_run_fork_server_starts_early_only_where_the_code_server_launches_runs(
    tmp_path, monkeypatch, instance, through_code_server
):
    """orchestration/run_workers.py: the embedded stack's code server starts its run workers'
    fork server as it loads; the Kubernetes one, whose runs are Jobs, never needs one."""
    from fruxon_pipelines.orchestration.run_workers import launches_runs_here

    monkeypatch.setenv("FRUXON_NAMESPACE", "fruxon")
    monkeypatch.setenv("FRUXON_DATABASE_URL", "postgresql://fruxon@localhost/fruxon")
    text = _manifests_instance_yaml() if instance == "k8s" else (PROJECT / instance).read_text()
    (tmp_path / "dagster.yaml").write_text(text)
    assert launches_runs_here(str(tmp_path)) is through_code_server


@pytest.mark.parametrize("variant", ["deploy/dagster-postgres.yaml"])
def test_the_postgresql_variant_is_the_embedded_config_plus_storage(variant):
    embedded = yaml.safe_load((PROJECT / "dagster.yaml").read_text())
    other = yaml.safe_load((PROJECT / variant).read_text())
    storage = other.pop("storage")
    assert storage == {"postgres": {"postgres_url": {"env": "FRUXON_DAGSTER_POSTGRES_URL"}}}
    assert other == embedded


def test_the_embedded_queue_is_polled_every_half_second(tmp_path):
    """dagster.yaml's coordinator takes a fractional interval, the run-queue daemon runs at it,
    and a nonsensical one is refused when the instance loads."""
    import shutil

    import dagster as dg
    from dagster._daemon.controller import create_daemon_of_type

    shutil.copy(PROJECT / "dagster.yaml", tmp_path / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert instance.run_coordinator.dequeue_interval_seconds == 0.5
        daemon = create_daemon_of_type("QUEUED_RUN_COORDINATOR", instance)
        assert daemon.interval_seconds == 0.5
        # The `concurrency` block still applies: the daemon reads it through the coordinator.
        queue = instance.get_concurrency_config().run_queue_config
        assert queue.max_concurrent_runs == 2
        [per_asset] = queue.tag_concurrency_limits
        assert per_asset["key"] == "fruxon/asset_id" and per_asset["limit"] == 1
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "dagster.yaml").write_text(
        (PROJECT / "dagster.yaml")
        .read_text()
        .replace("dequeue_interval_seconds: 0.5", "dequeue_interval_seconds: -1")
    )
    with pytest.raises(ValueError, match="more than 0"):
        dg.DagsterInstance.from_config(str(bad)).run_coordinator  # noqa: B018


# The Dagster Helm chart's values (deploy/helm/values.yaml): helm does not install here, so the
# values are checked against what the chart's templates do with them.

HELM_VALUES = DEPLOY / "helm" / "values.yaml"


def _helm_values() -> dict:
    return yaml.safe_load(HELM_VALUES.read_text())


def _helm_pod_settings(values: dict) -> list[dict]:
    """The pod settings the chart takes from the values: webserver, daemon, code location, and
    the run Jobs."""
    return [
        values["dagsterWebserver"],
        values["dagsterDaemon"],
        *values["dagster-user-deployments"]["deployments"],
        values["runLauncher"]["config"]["k8sRunLauncher"],
    ]


def test_the_helm_values_reference_what_deploy_k8s_defines():
    values = _helm_values()
    claims, secrets = _named("PersistentVolumeClaim"), _named("Secret")
    config_maps = _named("ConfigMap")
    assert values["serviceAccount"] == {"create": False, "name": "fruxon"}
    assert values["serviceAccount"]["name"] in _named("ServiceAccount")
    assert values["global"]["postgresqlSecretName"] in secrets
    assert "postgresql-password" in secrets[values["global"]["postgresqlSecretName"]]["stringData"]
    manifests_image = _named("Deployment")["fruxon-code-server"]["spec"]["template"]["spec"][
        "containers"
    ][0]["image"]
    for settings in _helm_pod_settings(values):
        # The chart renders only {name: …} items (a bare string is dropped silently).
        assert all(set(ref) == {"name"} for ref in settings["envSecrets"]), settings
        assert {ref["name"] for ref in settings["envSecrets"]} <= set(secrets)
        assert {ref["name"] for ref in settings["envConfigMaps"]} <= set(config_maps)
        for volume in settings["volumes"]:
            assert volume["persistentVolumeClaim"]["claimName"] in claims
        assert {m["name"] for m in settings["volumeMounts"]} <= {
            v["name"] for v in settings["volumes"]
        }
        assert {m["mountPath"] for m in settings["volumeMounts"]} == {
            config_maps["fruxon-settings"]["data"]["FRUXON_HOME"]
        }
        if "image" in settings:
            image = settings["image"]
            assert f"{image['repository']}:{image['tag']}" == manifests_image
    # What the Helm path applies from fruxon.yaml is what the chart does not deploy.
    with_helm = {
        (d["kind"], d["metadata"]["name"])
        for d in _documents()
        if d["metadata"].get("labels", {}).get("fruxon/with-helm") == "true"
    }
    assert with_helm == {
        ("PersistentVolumeClaim", "fruxon-home"),
        ("ServiceAccount", "fruxon"),
        ("Deployment", "fruxon-api"),
        ("Service", "fruxon-api"),
    }


def test_the_helm_code_location_is_this_projects_under_the_name_the_api_launches_in():
    from fruxon_pipelines.orchestration.runs import LOCATION_NAME

    values = _helm_values()
    [deployment] = values["dagster-user-deployments"]["deployments"]
    args = deployment["dagsterApiGrpcArgs"]
    assert hasattr(importlib.import_module(args[args.index("-m") + 1]), "defs")
    [server] = values["dagsterWebserver"]["workspace"]["servers"]
    # The chart names the code location's Service after the deployment.
    assert (server["host"], server["port"], server["name"]) == (
        deployment["name"],
        deployment["port"],
        LOCATION_NAME,
    )
    # The API (deployed from fruxon.yaml) reaches the same code server and webserver.
    grpc = _manifests_code_server()
    assert (grpc["host"], grpc["port"], grpc["location_name"]) == (
        server["host"],
        server["port"],
        server["name"],
    )
    settings = _named("ConfigMap")["fruxon-settings"]["data"]
    assert settings["FRUXON_DAGSTER_HOST"] == f"{values['fullnameOverride']}-webserver"
    assert settings["DAGSTER_HOME"] == values["global"]["dagsterHome"]


def _chart_instance(values: dict) -> dict:
    """The parts of dagster.yaml the chart's instance template renders from these values
    (run launcher, queue, run monitoring, compute logs, sensors), as Dagster reads them."""
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    coordinator = values["dagsterDaemon"]["runCoordinator"]
    assert (values["runLauncher"]["type"], coordinator["type"]) == (
        "K8sRunLauncher",
        "QueuedRunCoordinator",
    )
    queue = coordinator["config"]["queuedRunCoordinator"]
    monitoring = values["dagsterDaemon"]["runMonitoring"]
    logs = values["computeLogManager"]
    assert logs["type"] == "CustomComputeLogManager"
    custom_logs = logs["config"]["customComputeLogManager"]
    return {
        "run_launcher": {
            "module": "dagster_k8s",
            "class": "K8sRunLauncher",
            "config": {
                "instance_config_map": f"{values['fullnameOverride']}-instance",
                "dagster_home": values["global"]["dagsterHome"],
                "postgres_password_secret": values["global"]["postgresqlSecretName"],
                "service_account_name": values["serviceAccount"]["name"],
                "load_incluster_config": launcher["loadInclusterConfig"],
                "image_pull_policy": launcher["imagePullPolicy"],
                "env_config_maps": [ref["name"] for ref in launcher["envConfigMaps"]],
                "env_secrets": [ref["name"] for ref in launcher["envSecrets"]],
                "env_vars": launcher["envVars"],
                "volumes": launcher["volumes"],
                "volume_mounts": launcher["volumeMounts"],
                "run_k8s_config": {"container_config": launcher["runK8sConfig"]["containerConfig"]},
            },
        },
        "run_coordinator": {
            "module": "dagster.core.run_coordinator",
            "class": "QueuedRunCoordinator",
            "config": {
                "max_concurrent_runs": queue["maxConcurrentRuns"],
                "dequeue_interval_seconds": queue["dequeueIntervalSeconds"],
                "tag_concurrency_limits": queue["tagConcurrencyLimits"],
            },
        },
        "run_monitoring": {
            "enabled": monitoring["enabled"],
            "start_timeout_seconds": monitoring["startTimeoutSeconds"],
        },
        "compute_logs": {k: custom_logs[k] for k in ("module", "class", "config")},
        "sensors": {
            "use_threads": values["dagsterDaemon"]["sensors"]["useThreads"],
            "num_workers": values["dagsterDaemon"]["sensors"]["numWorkers"],
        },
    }


def test_the_helm_chart_renders_the_instance_of_deploy_k8s(tmp_path):
    chart = _chart_instance(_helm_values())
    _validated_instance(tmp_path, yaml.safe_dump(chart))
    manifests = yaml.safe_load(_manifests_instance_yaml())
    ours, theirs = manifests["run_launcher"]["config"], chart["run_launcher"]["config"]
    for key in ("env_secrets", "env_config_maps", "volumes", "image_pull_policy"):
        assert theirs[key] == ours[key], key
    assert [
        {"name": m["name"], "mount_path": m["mountPath"]} for m in theirs["volume_mounts"]
    ] == ours["volume_mounts"]
    assert theirs["run_k8s_config"]["container_config"]["resources"] == ours["resources"]
    assert chart["run_coordinator"] == manifests["run_coordinator"]
    monitoring = manifests["run_monitoring"]
    assert chart["run_monitoring"].items() <= monitoring.items()
    assert chart["compute_logs"] == manifests["compute_logs"]
    assert chart["sensors"] == manifests["sensors"]
