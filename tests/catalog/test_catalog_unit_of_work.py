"""``catalog.unit_of_work()``: the catalog methods called inside one block commit together or
not at all, on SQLite and on PostgreSQL (``catalog_url`` runs each test on both); outside a
unit every method is still its own transaction."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy.exc import IntegrityError

from fruxon_pipelines.catalog import Catalog as PackageCatalog
from fruxon_pipelines.catalog.models import WebhookEvent, WebhookRegistration, now_ms
from fruxon_pipelines.catalog.store import Catalog


class Boom(Exception):
    pass


def _asset(catalog: Catalog, name: str = "a"):
    return catalog.create_asset(
        tenant="acme", name=name, source_type="web", source_config={}, embedding_config={}
    )


def _operation(catalog: Catalog, asset_id: str, operation_id: str | None = None):
    return catalog.create_operation(
        asset_id=asset_id, tenant="acme", type="INGEST", operation_id=operation_id
    )


def _elsewhere(function, *args):
    """``function(*args)`` in another thread: outside this context's unit of work."""
    result = []
    thread = threading.Thread(target=lambda: result.append(function(*args)))
    thread.start()
    thread.join(timeout=60)
    return result[0]


def test_the_catalog_is_importable_from_the_package():
    assert PackageCatalog is Catalog


def test_a_unit_that_raises_leaves_nothing_behind(catalog_url):
    catalog = Catalog(catalog_url)
    with pytest.raises(Boom), catalog.unit_of_work():
        asset = _asset(catalog)
        operation = _operation(catalog, asset.id)
        assert catalog.get_operation(operation.id) is operation  # its own writes, seen
        raise Boom
    fresh = Catalog(catalog_url)
    assert fresh.get_asset(asset.id) is None and fresh.get_operation(operation.id) is None
    assert catalog.list_assets() == [] and catalog.list_operations(asset.id) == []


def test_a_unit_that_ends_commits_everything_at_once(catalog_url):
    catalog = Catalog(catalog_url)
    with catalog.unit_of_work():
        asset = _asset(catalog)
        operation = _operation(catalog, asset.id)
        # Defaults are filled in when a method returns, as when it committed on its own.
        assert asset.created_at is not None and operation.created_at is not None
        # Another thread is outside the unit: nothing is visible to it yet.
        assert _elsewhere(catalog.get_asset, asset.id) is None
    fresh = Catalog(catalog_url)
    assert fresh.get_asset(asset.id).name == "a"
    assert fresh.get_operation(operation.id).asset_id == asset.id
    # Rows returned inside the unit stay readable after it ended.
    assert asset.name == "a" and operation.type == "INGEST"


def test_a_nested_unit_joins_the_outer_one(catalog_url):
    catalog = Catalog(catalog_url)
    with pytest.raises(Boom), catalog.unit_of_work() as outer:
        with catalog.unit_of_work() as inner:
            assert inner is outer
            asset = _asset(catalog)
        # The inner block ended, but its writes are the outer unit's to commit.
        assert _elsewhere(catalog.get_asset, asset.id) is None
        _operation(catalog, asset.id)
        raise Boom
    assert catalog.get_asset(asset.id) is None
    with catalog.unit_of_work():
        with catalog.unit_of_work():
            asset = _asset(catalog)
        _operation(catalog, asset.id)
    assert len(catalog.list_operations(asset.id)) == 1


def test_outside_a_unit_every_method_commits_on_its_own(catalog_url):
    catalog = Catalog(catalog_url)
    asset = _asset(catalog)
    assert _elsewhere(catalog.get_asset, asset.id).id == asset.id  # committed already
    operation = _operation(catalog, asset.id)
    with pytest.raises(IntegrityError):
        _operation(catalog, asset.id, operation.id)  # the same id twice
    assert catalog.get_operation(operation.id) is not None  # the earlier writes stay
    # Each call has a session of its own: no row is shared between calls.
    assert catalog.get_asset(asset.id) is not catalog.get_asset(asset.id)
    with catalog.unit_of_work():
        assert catalog.get_asset(asset.id) is catalog.get_asset(asset.id)


def test_generated_ids_and_recovered_conflicts_inside_a_unit(catalog_url):
    """Methods that flush for an id, and those that recover from an IntegrityError themselves
    (a savepoint undoes only their own writes), behave inside a unit as outside."""
    catalog = Catalog(catalog_url)
    asset = _asset(catalog)
    catalog.replace_webhook(
        WebhookRegistration(
            id_hash="h1", asset_id=asset.id, provider="generic", auth_mode="API_KEY",
            signing_secret="sealed",
        )
    )  # fmt: skip
    with catalog.unit_of_work():
        reservation = catalog.reserve_tokens(asset.id, 10, now=now_ms(), kind="SEARCH", limits={})
        assert isinstance(reservation, int)
        event_id = catalog.add_webhook_event(
            WebhookEvent(asset_id=asset.id, provider="generic", webhook_id_hash="h1")
        )
        assert isinstance(event_id, int)
        catalog.delete_webhooks(asset.id)  # revoked: its URL can add no more events
        refused = WebhookEvent(asset_id=asset.id, provider="generic", webhook_id_hash="h1")
        assert catalog.add_webhook_event(refused) is None
        added, updated = catalog.register_documents(asset.id, [("k1", {"title": "one"})])
        assert len(added) == 1 and updated == []
    assert catalog.token_usage(asset.id, now_ms()).total == 10
    assert [e.id for e in catalog.waiting_webhook_events(asset.id)] == [event_id]
    assert catalog.webhook_of_asset(asset.id) is None
    assert catalog.documents_by_key(asset.id)["k1"].title == "one"


def test_a_unit_holds_only_its_own_database(catalog_url, tmp_path):
    """A unit on one catalog database does not take in the methods of another."""
    catalog = Catalog(catalog_url)
    other = Catalog(f"sqlite:///{tmp_path / 'other.db'}")
    with pytest.raises(Boom), catalog.unit_of_work():
        _asset(catalog)
        kept = _asset(other, "kept")
        raise Boom
    assert catalog.list_assets() == []
    assert other.get_asset(kept.id).name == "kept"


def test_a_unit_on_sqlite_holds_the_write_lock_from_its_start(tmp_path):
    """``BEGIN IMMEDIATE``: the unit reads one state, and another writer waits for the unit (up
    to the busy timeout) rather than the unit failing half way on a lock it could not take."""
    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.db'}")
    done = threading.Event()
    writer = threading.Thread(target=lambda: (_asset(catalog, "later"), done.set()))
    with catalog.unit_of_work():
        assert catalog.list_assets() == []  # only a read so far
        writer.start()
        assert not done.wait(0.5)  # blocked on the unit's lock
        assert catalog.list_assets() == []
        _asset(catalog, "first")
    writer.join(timeout=30)
    assert done.is_set()
    assert sorted(a.name for a in catalog.list_assets()) == ["first", "later"]


def test_a_savepoint_first_in_a_unit_is_still_rolled_back_with_it(catalog_url):
    """pysqlite begins a transaction only before a write: a SAVEPOINT before any write would
    start and then commit one of its own, outside the unit."""
    catalog = Catalog(catalog_url)
    asset = _asset(catalog)
    with pytest.raises(Boom), catalog.unit_of_work():
        assert catalog.add_webhook_event(WebhookEvent(asset_id=asset.id, provider="generic"))
        raise Boom
    assert catalog.waiting_webhook_events(asset.id) == []
