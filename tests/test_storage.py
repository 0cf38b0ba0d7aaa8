"""The bot's SQLite file: private, WAL, migrated once, and compare-and-set transitions."""

from __future__ import annotations

import stat
import threading

from storage.db import MIGRATIONS, open_database, schema_version
from storage.edge import EdgeRecords
from storage.store import Store


def test_database_file_is_private_wal_and_migrated(tmp_path) -> None:
    path = tmp_path / "nested" / "bot.db"
    database = open_database(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert database.query("PRAGMA journal_mode")[0]["journal_mode"] == "wal"
    assert schema_version(database) == len(MIGRATIONS)
    database.close()
    again = open_database(path)  # migrations are not applied twice
    assert schema_version(again) == len(MIGRATIONS)


def test_database_path_comes_from_the_environment(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SIGFOX_BOT_DB", str(tmp_path / "from-env.db"))
    open_database().close()
    assert (tmp_path / "from-env.db").exists()


def make_store(tmp_path) -> Store:
    return Store(open_database(tmp_path / "bot.db"))


def test_first_snapshot_is_kept_and_its_repr_hides_the_pac(tmp_path) -> None:
    store = make_store(tmp_path)
    workflow_id, _ = store.create_workflow(kind="renew", state="awaiting_approval",
                                           requester="U1", device_ids=["ABC"],
                                           device_state="pending", now=1.0)
    assert store.snapshots.save(workflow_id, "ABC", pac="0123456789ABCDEF", now=1.0)
    assert not store.snapshots.save(workflow_id, "ABC", pac="FFFFFFFFFFFFFFFF", now=2.0)
    snapshot = store.snapshots.of(workflow_id, "ABC")
    assert snapshot.pac == "0123456789ABCDEF"
    assert "0123456789ABCDEF" not in repr(snapshot)
    store.snapshots.record_new_pac(workflow_id, "ABC", "AAAAAAAAAAAAAAAA")
    assert store.snapshots.of(workflow_id, "ABC").current_pac == "AAAAAAAAAAAAAAAA"


def test_one_destructive_workflow_per_device(tmp_path) -> None:
    store = make_store(tmp_path)
    first, _ = store.create_workflow(kind="renew", state="s", requester="U1",
                                     device_ids=["A", "B"], device_state="p", now=1.0)
    second, busy = store.create_workflow(kind="delete", state="s", requester="U2",
                                         device_ids=["B", "C"], device_state="p", now=1.0)
    assert second is None and busy == {"B": first}
    assert store.list_workflows() and len(store.list_workflows()) == 1  # nothing half-made
    store.release_device_locks(first)
    third, _ = store.create_workflow(kind="delete", state="s", requester="U2",
                                     device_ids=["B", "C"], device_state="p", now=2.0)
    assert third is not None


def test_compare_and_set_lets_exactly_one_racer_win(tmp_path) -> None:
    store = make_store(tmp_path)
    workflow_id, _ = store.create_workflow(kind="renew", state="awaiting_approval",
                                           requester="U1", device_ids=["A"],
                                           device_state="pending", now=1.0)
    wins: list[bool] = []
    barrier = threading.Barrier(16)

    def race() -> None:
        barrier.wait()
        wins.append(store.cas_workflow(workflow_id, ["awaiting_approval"], "approved", 2.0))

    threads = [threading.Thread(target=race) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wins.count(True) == 1


def test_leases_and_idempotency_keys(tmp_path) -> None:
    store = make_store(tmp_path)
    workflow_id, _ = store.create_workflow(kind="renew", state="running", requester="U1",
                                           device_ids=["A"], device_state="pending", now=1.0)
    assert store.claim_workflow(workflow_id, "worker-1", now=10.0, ttl=60.0)
    assert not store.claim_workflow(workflow_id, "worker-2", now=20.0, ttl=60.0)
    assert store.claim_workflow(workflow_id, "worker-2", now=71.0, ttl=60.0)  # lapsed
    assert store.break_leases() == 1
    edge = EdgeRecords(store.database)
    assert edge.claim_idempotency_key("slack:Ev123", 1.0)
    assert not edge.claim_idempotency_key("slack:Ev123", 2.0)


def test_old_idempotency_keys_are_forgotten(tmp_path) -> None:
    edge = EdgeRecords(make_store(tmp_path).database)
    edge.claim_idempotency_key("old", 1.0)
    edge.claim_idempotency_key("new", 100.0)
    edge.forget_idempotency_keys(older_than=50.0)
    assert edge.claim_idempotency_key("old", 101.0)  # forgotten: claimable again
    assert not edge.claim_idempotency_key("new", 101.0)
