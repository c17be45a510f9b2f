"""The webhook and poll sensors on a real Dagster instance and catalog (build_sensor_context)."""

from __future__ import annotations

import threading
import time
import uuid

import dagster as dg
import pytest

from fruxon_pipelines.autoupdate import parse_auto_update
from fruxon_pipelines.catalog.models import Operation, WebhookEvent, now_ms
from fruxon_pipelines.catalog.store import Catalog
from fruxon_pipelines.definitions import defs
from fruxon_pipelines.orchestration.gateway import DagsterGateway, LaunchError
from fruxon_pipelines.partitions import KNOWLEDGE_ASSET_PARTITIONS
from fruxon_pipelines.resources import CatalogResource
from fruxon_pipelines.sensors.auto_update import build_poll_sensor, build_webhook_sensor
from fruxon_pipelines.sensors.pending_operations import pending_operations_sensor
from fruxon_pipelines.services import auto_update as auto_update_service
from fruxon_pipelines.services.auto_update import (
    GRACE_MS,
    launch_webhook_operations,
    webhook_operations,
)
from fruxon_pipelines.services.context import Services
from fruxon_pipelines.tags import OPERATION_TAG, OPERATION_TYPE_TAG, PARTITION_TAG

HOUR = 3600_000


@pytest.fixture
def catalog(settings):
    return Catalog(settings.catalog_url)


@pytest.fixture
def asset(catalog, instance):
    return _asset_in(catalog, instance)


def _asset_in(catalog, instance):
    asset = catalog.create_asset(
        tenant="acme",
        name="docs",
        source_type="web",
        source_config={"urls": ["https://docs.example.test/"]},
        embedding_config={},
    )
    instance.add_dynamic_partitions(KNOWLEDGE_ASSET_PARTITIONS, [asset.id])
    asset.docs = [
        catalog.upsert_document(asset.id, f"https://docs.example.test/{n}", status="COMPLETED").id
        for n in range(3)
    ]
    return asset


DOCS = "https://docs.example.test/"
ASSETS = "/v1/tenants/acme/assets"


def _tick(sensor, instance, settings):
    # The context opens its own instance from the ref (as the daemon's does); closing it here,
    # not at garbage collection, keeps Dagster's per-context instance state from leaking into
    # whichever test runs when the collector gets to it.
    with dg.build_sensor_context(
        instance_ref=instance.get_ref(),
        definitions=defs,
        resources={"catalog": CatalogResource(database_url=settings.catalog_url)},
    ) as context:
        return sensor.evaluate_tick(context)


def _run_of(
    instance, asset_id: str, status: dg.DagsterRunStatus, operation_id: str | None = None
) -> dg.DagsterRun:
    """A run of the asset in ``status``, as the daemon would have recorded it."""
    tags = {PARTITION_TAG: asset_id} | ({OPERATION_TAG: operation_id} if operation_id else {})
    run = dg.DagsterRun(job_name="ingest", run_id=str(uuid.uuid4()), tags=tags, status=status)
    instance.add_run(run)
    return run


def _event(catalog, asset_id, document_ids=(), source_keys=(), full=False) -> int:
    return catalog.add_webhook_event(
        WebhookEvent(
            asset_id=asset_id,
            provider="generic",
            document_ids=list(document_ids),
            source_keys=list(source_keys),
            full_refresh=full,
        )
    )


@pytest.fixture
def webhook_sensor(settings):
    return build_webhook_sensor(settings.model_copy(update={"webhook_debounce_seconds": 0}))


def test_events_of_an_asset_become_one_operation_with_their_union(
    catalog, asset, instance, settings, webhook_sensor
):
    d0, d1, _ = asset.docs
    _event(catalog, asset.id, [d0])
    _event(catalog, asset.id, [d1, d0])
    last = _event(catalog, asset.id, source_keys=["https://docs.example.test/new"])

    result = _tick(webhook_sensor, instance, settings)

    [request] = result.run_requests
    assert request.run_key == f"webhook:{asset.id}:{last}"
    assert request.partition_key == asset.id
    assert request.tags[OPERATION_TYPE_TAG] == "WEBHOOK"
    config = request.run_config["ops"]["fetched_documents"]["config"]
    assert config["document_ids"] == sorted([d0, d1])
    assert config["source_keys"] == ["https://docs.example.test/new"]
    operation = catalog.get_operation(request.tags[OPERATION_TAG])
    assert operation.type == "WEBHOOK" and operation.asset_id == asset.id
    assert len(catalog.webhook_events_of(operation.id)) == 3
    # Until its run exists, a tick after the grace the API has to submit an operation it wrote
    # asks again under the same run key (Dagster launches one run per key and sensor); no
    # second operation is written.
    assert _tick(webhook_sensor, instance, settings).run_requests in (None, [])
    catalog.update_operation(operation.id, created_at=now_ms() - GRACE_MS - 1)
    [again] = _tick(webhook_sensor, instance, settings).run_requests
    assert again.run_key == request.run_key
    run = _run_of(instance, asset.id, dg.DagsterRunStatus.SUCCESS, operation_id=operation.id)
    assert isinstance(_tick(webhook_sensor, instance, settings).skip_message, str)
    assert catalog.get_operation(operation.id).run_id == run.run_id


def test_an_event_without_documents_makes_it_a_full_refresh(
    catalog, asset, instance, settings, webhook_sensor
):
    _event(catalog, asset.id, [asset.docs[0]])
    _event(catalog, asset.id, full=True)
    [request] = _tick(webhook_sensor, instance, settings).run_requests
    config = request.run_config["ops"]["fetched_documents"]["config"]
    assert config["document_ids"] == [] and "source_keys" not in config


def test_events_wait_while_the_asset_has_a_run_and_go_into_the_next(
    catalog, asset, instance, settings, webhook_sensor
):
    running = _run_of(instance, asset.id, dg.DagsterRunStatus.STARTED)
    _event(catalog, asset.id, [asset.docs[0]])
    assert "busy" in _tick(webhook_sensor, instance, settings).skip_message
    _event(catalog, asset.id, [asset.docs[1]])  # arrives while the run goes on
    instance.delete_run(running.run_id)  # the run is over

    [request] = _tick(webhook_sensor, instance, settings).run_requests
    config = request.run_config["ops"]["fetched_documents"]["config"]
    assert config["document_ids"] == sorted(asset.docs[:2])


def test_an_interrupted_tick_is_relaunched_by_the_same_sensor_only(
    catalog, asset, instance, settings, webhook_sensor
):
    _event(catalog, asset.id, [asset.docs[2]])
    # The tick wrote the operation and consumed the event, then the daemon died before the run
    # request reached Dagster.
    [lost], _busy = webhook_operations(DagsterGateway(instance=instance), catalog, [asset.id])
    operation_id = lost.operation.id
    catalog.update_operation(operation_id, created_at=now_ms() - 60_000)

    # Not the pending-operations sensor: its run key would not dedupe against this sensor's.
    assert _tick(pending_operations_sensor, instance, settings).run_requests in (None, [])
    [request] = _tick(webhook_sensor, instance, settings).run_requests

    assert request.run_key == lost.run_key and request.tags[OPERATION_TAG] == operation_id
    config = request.run_config["ops"]["fetched_documents"]["config"]
    assert config["document_ids"] == [asset.docs[2]]


def test_a_busy_assets_backlog_does_not_hide_another_assets_event(
    catalog, asset, instance, settings, webhook_sensor
):
    other = catalog.create_asset(
        tenant="acme", name="other", source_type="web",
        source_config={"urls": ["https://other.example.test/"]}, embedding_config={},
    )  # fmt: skip
    instance.add_dynamic_partitions(KNOWLEDGE_ASSET_PARTITIONS, [other.id])
    _run_of(instance, asset.id, dg.DagsterRunStatus.STARTED)
    for _ in range(30):
        _event(catalog, asset.id, [asset.docs[0]])
    _event(catalog, other.id, full=True)
    with pytest.MonkeyPatch.context() as patch:
        # As if the backlog were larger than one read.
        patch.setattr(Catalog, "assets_with_waiting_events", _limited(1))
        assert _tick(webhook_sensor, instance, settings).run_requests in (None, [])
    [request] = _tick(webhook_sensor, instance, settings).run_requests
    assert request.partition_key == other.id
    assert len(catalog.waiting_webhook_events(asset.id)) == 30


def _limited(limit: int):
    original = Catalog.assets_with_waiting_events

    def read(self, limit_=None):
        return original(self, limit=limit)

    return read


def test_events_naming_only_deleted_documents_launch_nothing(
    catalog, asset, instance, settings, webhook_sensor
):
    _event(catalog, asset.id, [asset.docs[0]])
    catalog.delete_documents([asset.docs[0]])
    assert _tick(webhook_sensor, instance, settings).run_requests in (None, [])
    assert catalog.waiting_webhook_events() == []


def test_a_burst_arriving_during_the_debounce_joins_the_same_operation(
    catalog, asset, instance, settings
):
    sensor = build_webhook_sensor(settings.model_copy(update={"webhook_debounce_seconds": 0.6}))
    _event(catalog, asset.id, [asset.docs[0]])

    def late():
        time.sleep(0.3)
        _event(catalog, asset.id, [asset.docs[1]])

    thread = threading.Thread(target=late)
    thread.start()
    result = _tick(sensor, instance, settings)
    thread.join()
    [request] = result.run_requests
    config = request.run_config["ops"]["fetched_documents"]["config"]
    assert config["document_ids"] == sorted(asset.docs[:2])


def test_the_api_launches_quiet_deliveries_itself_and_the_sensor_leaves_them(
    instance, app_settings, api_client, settings, webhook_sensor
):
    """The fast path: the API that stored a burst claims it once quiet and submits its run;
    the sensor, now or after the grace, launches nothing more."""
    launching = app_settings.model_copy(
        update={"webhook_api_launch": True, "webhook_debounce_seconds": 2.0}
    )
    with api_client(launching) as client:
        body = {"config": {"sourceType": "web", "parameters": {"urls": [DOCS]}}}
        created = client.post(ASSETS, json=body | {"autoUpdate": {"strategy": "WEBHOOK"}}).json()
        asset_id = created["asset"]["id"]
        client.run_queue.run_queued()  # the first ingest ends: the asset is idle
        path = created["webhook"]["webhookUrl"].removeprefix("https://fruxon.example.test")
        pages = [f"{DOCS}page-{n}" for n in range(3)]
        event_ids = [client.post(path, json={"urls": [url]}).json()["eventId"] for url in pages]

        catalog = client.services.catalog
        deadline = time.monotonic() + 60
        launched = lambda: [  # noqa: E731
            o for o in catalog.list_operations(asset_id) if o.type == "WEBHOOK" and o.run_id
        ]
        while not launched():
            assert time.monotonic() < deadline, "the API launched nothing"
            time.sleep(0.05)
        assert catalog.waiting_webhook_events(asset_id) == []
        [run] = _webhook_runs(instance, asset_id)
        assert run.status == dg.DagsterRunStatus.QUEUED
        operation = catalog.get_operation(run.tags[OPERATION_TAG])
        assert operation.run_id == run.run_id and operation.created_by == "webhook"
        assert sorted(e.id for e in catalog.webhook_events_of(operation.id)) == sorted(event_ids)
        assert operation.request["sourceKeys"] == pages  # one operation for the burst

        assert _tick(webhook_sensor, instance, settings).run_requests in (None, [])
        catalog.update_operation(operation.id, created_at=now_ms() - GRACE_MS - 1)
        assert _tick(webhook_sensor, instance, settings).run_requests in (None, [])
        assert _webhook_runs(instance, asset_id) == [run]


def test_events_the_api_could_not_launch_are_the_sensors_after_the_grace(
    catalog, asset, instance, settings, webhook_sensor
):
    def webserver_away(operation):
        raise LaunchError("the webserver is away")

    svc = Services.from_settings(settings, DagsterGateway(settings, instance, webserver_away))
    _event(catalog, asset.id, [asset.docs[0]])
    [operation] = launch_webhook_operations(svc, asset.id)
    assert catalog.get_operation(operation.id).run_id is None
    assert catalog.waiting_webhook_events(asset.id) == []

    assert _tick(webhook_sensor, instance, settings).run_requests in (None, [])
    catalog.update_operation(operation.id, created_at=now_ms() - GRACE_MS - 1)
    [request] = _tick(webhook_sensor, instance, settings).run_requests
    assert request.tags[OPERATION_TAG] == operation.id
    assert request.run_key == operation.request["runKey"]


def test_only_one_of_two_racing_claims_gets_a_burst(catalog_url, instance):
    """The API and the sensor (or two API processes) evaluating one burst at once: one of them
    writes the operation and launches it, the other gets nothing; a claim that finds some of
    its events taken takes none and writes nothing. On SQLite and PostgreSQL."""
    catalog = Catalog(catalog_url)
    asset = _asset_in(catalog, instance)
    runs = DagsterGateway(instance=instance)
    for round_ in range(10):
        _event(catalog, asset.id, [asset.docs[round_ % 3]])
        _event(catalog, asset.id, full=True)
        start = threading.Barrier(2)
        made: list = []

        def claim(start=start, made=made):
            start.wait()
            made.append(webhook_operations(runs, catalog, [asset.id])[0])

        threads = [threading.Thread(target=claim) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(len(m) for m in made) == [0, 1], made
        [[winner]] = [m for m in made if m]
        assert len(catalog.webhook_events_of(winner.operation.id)) == 2
        assert catalog.waiting_webhook_events(asset.id) == []
        catalog.update_operation(
            winner.operation.id,
            run_id=_run_of(
                instance, asset.id, dg.DagsterRunStatus.SUCCESS, winner.operation.id
            ).run_id,
        )

    first, second = _event(catalog, asset.id, full=True), _event(catalog, asset.id, full=True)
    third = _event(catalog, asset.id, full=True)

    def operation(name: str) -> Operation:
        return Operation(
            id=str(uuid.uuid5(uuid.NAMESPACE_URL, name)),
            asset_id=asset.id,
            tenant="acme",
            type="WEBHOOK",
            created_by="webhook",
            request={},
        )

    assert catalog.assign_webhook_events([first, second], operation("a")) is not None
    assert catalog.assign_webhook_events([first, second, third], operation("b")) is None
    assert catalog.get_operation(operation("b").id) is None
    assert [e.id for e in catalog.waiting_webhook_events(asset.id)] == [third]


def _webhook_runs(instance, asset_id: str) -> list[dg.DagsterRun]:
    return instance.get_runs(
        dg.RunsFilter(tags={PARTITION_TAG: asset_id, OPERATION_TYPE_TAG: "WEBHOOK"})
    )


def test_missed_poll_ticks_run_once_and_the_schedule_moves_on(
    catalog, asset, instance, settings, monkeypatch
):
    config = parse_auto_update({"strategy": "POLL", "pollFrequency": "HOURLY", "pollMinute": 0})
    due = 1_798_761_600_000  # 2027-01-01T00:00:00Z, a tick
    catalog.update_asset(asset.id, auto_update=config.model_dump(), next_poll_at=due)
    sensor = build_poll_sensor(settings)
    clock = {"now": due + 5 * HOUR + 10 * 60_000}  # the daemon was down for five hours
    monkeypatch.setattr(auto_update_service, "now_ms", lambda: clock["now"])

    [request] = _tick(sensor, instance, settings).run_requests

    assert request.run_key == f"poll:{asset.id}:{due}"
    assert request.tags["dagster/priority"] == "-1"
    assert catalog.get_operation(request.tags[OPERATION_TAG]).type == "POLL"
    stored = catalog.get_asset(asset.id)
    assert stored.last_polled_at == clock["now"]
    assert stored.next_poll_at == due + 6 * HOUR  # the next tick after now, not a missed one
    # Asked again, under the same key, only until its run exists: no second poll.
    assert [r.run_key for r in _tick(sensor, instance, settings).run_requests] == [request.run_key]
    _run_of(instance, asset.id, dg.DagsterRunStatus.SUCCESS, request.tags[OPERATION_TAG])
    assert _tick(sensor, instance, settings).run_requests in (None, [])
    clock["now"] = due + 6 * HOUR
    [following] = _tick(sensor, instance, settings).run_requests
    assert following.run_key == f"poll:{asset.id}:{due + 6 * HOUR}"


def test_a_patch_between_reading_and_starting_a_poll_wins(catalog, asset, instance, settings):
    config = parse_auto_update({"strategy": "POLL", "pollFrequency": "DAILY"})
    catalog.update_asset(asset.id, auto_update=config.model_dump(), next_poll_at=now_ms() - 1)
    [seen] = catalog.assets_due_for_poll(now_ms())
    catalog.update_asset(asset.id, auto_update=None, next_poll_at=None)  # the PATCH
    from fruxon_pipelines.catalog.models import Operation

    operation = Operation(id=str(uuid.uuid4()), asset_id=asset.id, tenant="acme", type="POLL")
    assert catalog.start_poll(operation, seen, polled_at=now_ms(), next_poll_at=1) is None
    assert catalog.get_operation(operation.id) is None
    assert catalog.get_asset(asset.id).next_poll_at is None


def test_a_due_poll_waits_for_the_running_operation(catalog, asset, instance, settings):
    config = parse_auto_update({"strategy": "POLL", "pollFrequency": "DAILY"})
    catalog.update_asset(asset.id, auto_update=config.model_dump(), next_poll_at=now_ms() - 1)
    running = _run_of(instance, asset.id, dg.DagsterRunStatus.STARTING)
    sensor = build_poll_sensor(settings)
    assert _tick(sensor, instance, settings).run_requests in (None, [])
    instance.delete_run(running.run_id)
    assert len(_tick(sensor, instance, settings).run_requests) == 1
