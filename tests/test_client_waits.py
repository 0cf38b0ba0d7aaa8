"""A deferring client never sleeps: a rate-limit slot or a back-off comes back as `retry_at`.
And the per-device hourly count holds what the server may have executed, nothing else."""

from __future__ import annotations

import httpx
import pytest
from test_client_mechanics import FakeTime, make_client, sequence

from sigfox.client import WaitMode
from sigfox.errors import (
    SigfoxConnectionError,
    SigfoxPacingRefused,
    SigfoxRateLimited,
    SigfoxServerError,
)
from sigfox.pacing import Pacer
from storage.call_ledger import SqliteCallLedger
from storage.db import open_database

LIST_PAGE = {"data": []}


def deferring(handler, fake: FakeTime, **kwargs):
    return make_client(handler, fake, waits=WaitMode.DEFER, **kwargs)


def test_a_429_is_reported_with_retry_at_and_held_without_sleeping() -> None:
    fake = FakeTime()
    handler, seen = sequence(httpx.Response(429), httpx.Response(200, json=LIST_PAGE))
    with deferring(handler, fake) as client:
        with pytest.raises(SigfoxRateLimited) as info:
            client.find_device("1A2B")
        retry_at = info.value.retry_at
        assert retry_at is not None and fake.now <= retry_at <= fake.now + 0.5
        assert info.value.waiting_for == "Sigfox's rate limit"
        if retry_at > fake.now:  # the back-off holds the call: refused here, nothing sent
            with pytest.raises(SigfoxPacingRefused) as held:
                client.find_device("1A2B")
            assert held.value.retry_at == retry_at
        assert len(seen) == 1
        fake.now = retry_at
        assert client.find_device("1A2B") is None
    assert fake.sleeps == []
    assert len(seen) == 2


def test_the_back_off_grows_with_failures_in_a_row_and_a_success_clears_it() -> None:
    fake = FakeTime()
    handler, seen = sequence(*[httpx.Response(503)] * 6, httpx.Response(200, json=LIST_PAGE))
    ceilings = []
    with deferring(handler, fake, backoff_base=1.0, backoff_cap=30.0) as client:
        for failures in range(6):
            with pytest.raises(SigfoxServerError) as info:
                client.find_device("1A2B")
            assert info.value.retry_at is not None
            ceilings.append(min(30.0, 2.0**failures))
            assert info.value.retry_at - fake.now <= ceilings[-1]
            fake.now = info.value.retry_at
        client.find_device("1A2B")
        assert client.pacer.acquire("GET", "/devices/", defer=True).wait == 0.0
    assert fake.sleeps == [] and len(seen) == 7


def test_a_full_list_window_is_refused_with_its_slot_instead_of_slept() -> None:
    fake = FakeTime()
    handler, seen = sequence(httpx.Response(200, json=LIST_PAGE))
    with deferring(handler, fake) as client:
        for _ in range(50):
            client.find_device("1A2B")
        with pytest.raises(SigfoxPacingRefused) as info:
            client.find_device("1A2B")
        assert info.value.retry_at == pytest.approx(fake.now + 10.0)
        assert info.value.waiting_for == "Sigfox's device list limit"
    assert fake.sleeps == [] and len(seen) == 50


def test_a_sleeping_walk_that_fills_the_list_window_leaves_slots_to_deferring_callers() -> None:
    fake = FakeTime()
    pacer = Pacer(clock=fake.clock, sleep=lambda s: None)  # time stands still: all reserved
    pacer.release(pacer.acquire("GET", "/devices/", defer=True))  # a workflow is about
    for _ in range(200):  # a fleet scan's workers, reserving slots ahead
        pacer.acquire("GET", "/devices/")
    for _ in range(5):  # workflow steps reading their device meanwhile
        assert pacer.acquire("GET", "/devices/", defer=True).wait == 0.0
    with pytest.raises(SigfoxPacingRefused):
        pacer.acquire("GET", "/devices/", defer=True)


def test_with_nobody_deferring_a_sleeping_walk_has_the_whole_list_window() -> None:
    fake = FakeTime()
    pacer = Pacer(clock=fake.clock, sleep=lambda s: None)
    slots = [pacer.acquire("GET", "/devices/").at for _ in range(100)]
    # 50 now, 50 in the next window: a scan alone stays on the published floor.
    assert slots.count(fake.now) == 50
    assert sum(1 for at in slots if at < fake.now + 10.0 + 1.0) == 100


def test_a_timeout_on_a_read_is_reported_at_once_with_retry_at() -> None:
    fake = FakeTime()
    handler, seen = sequence(httpx.ReadTimeout("slow"), httpx.Response(200, json=LIST_PAGE))
    with deferring(handler, fake) as client, pytest.raises(SigfoxConnectionError) as info:
        client.find_device("1A2B")
    assert info.value.retry_at is not None and len(seen) == 1 and fake.sleeps == []


def test_the_sleeping_sibling_shares_pacing_and_still_sleeps() -> None:
    fake = FakeTime()
    handler, seen = sequence(httpx.Response(204))
    with make_client(handler, fake) as sleeping:
        client = sleeping.deferring()
        assert client.waits is WaitMode.DEFER and sleeping.waits is WaitMode.SLEEP
        client.delete_device("1A2B")
        with pytest.raises(SigfoxPacingRefused) as info:  # the hour is shared: one ledger
            sleeping.delete_device("1A2B")
        assert info.value.waiting_for == "Sigfox's per-device limit"
    assert len(seen) == 1


def test_a_delete_answered_500_counts_until_the_backend_shows_it_did_nothing() -> None:
    fake = FakeTime()
    handler, seen = sequence(httpx.Response(500), httpx.Response(204))
    with deferring(handler, fake) as client:
        with pytest.raises(SigfoxServerError) as info:
            client.delete_device("1A2B")
        assert info.value.outcome_unknown
        sent_at = fake.now
        fake.now += 60
        with pytest.raises(SigfoxPacingRefused) as refused:  # it may have been executed
            client.delete_device("1A2B")
        assert refused.value.retry_at == pytest.approx(sent_at + 3600)
        # The caller read the backend: the device is still there, the DELETE did nothing.
        assert client.forget_unapplied("DELETE", "/devices/{id}", "1a2b", since=sent_at) == 1
        client.delete_device("1A2B")
    assert len(seen) == 2 and fake.sleeps == []


@pytest.mark.parametrize("first", [httpx.ConnectError("refused"), httpx.PoolTimeout("busy"),
                                   httpx.Response(429)])
def test_a_delete_the_server_never_executed_does_not_use_up_the_hour(first) -> None:
    fake = FakeTime()
    handler, seen = sequence(first, httpx.Response(204))
    with deferring(handler, fake) as client:
        with pytest.raises((SigfoxConnectionError, SigfoxRateLimited)) as info:
            client.delete_device("1A2B")
        assert not info.value.outcome_unknown
        assert info.value.retry_at is not None
        fake.now = info.value.retry_at
        client.delete_device("1A2B")
    assert len(seen) == 2 and fake.sleeps == []


def test_a_delete_cut_off_after_sending_counts() -> None:
    fake = FakeTime()
    handler, seen = sequence(httpx.ReadTimeout("no answer"), httpx.Response(204))
    with deferring(handler, fake) as client:
        with pytest.raises(SigfoxConnectionError) as info:
            client.delete_device("1A2B")
        assert info.value.outcome_unknown
        fake.now += 120
        with pytest.raises(SigfoxPacingRefused):
            client.delete_device("1A2B")
    assert len(seen) == 1


# --- the count lives in the database ---------------------------------------------------------


def test_the_hourly_count_survives_a_restart_and_is_shared_by_processes(tmp_path) -> None:
    fake = FakeTime()
    handler, seen = sequence(httpx.Response(204))
    path = tmp_path / "bot.db"
    with deferring(handler, fake, ledger=SqliteCallLedger(open_database(path))) as first:
        first.delete_device("1A2B")
    # A restarted process (a new database handle, a new client) still knows about the hour.
    ledger = SqliteCallLedger(open_database(path))
    fake.now += 1800
    with deferring(handler, fake, ledger=ledger) as again:
        with pytest.raises(SigfoxPacingRefused) as info:
            again.delete_device("1A2B")
        assert info.value.retry_at == pytest.approx(fake.now + 1800)
        again.delete_device("1A2C")  # another device has its own hour
        fake.now += 1800
        again.delete_device("1A2B")
    assert len(seen) == 3


def test_the_database_ledger_gives_back_what_never_reached_the_server(tmp_path) -> None:
    fake = FakeTime()
    ledger = SqliteCallLedger(open_database(tmp_path / "bot.db"))
    handler, seen = sequence(httpx.ConnectError("refused"), httpx.Response(500),
                             httpx.Response(204))
    key = "DELETE /devices/{id} 1A2B"
    with deferring(handler, fake, ledger=ledger) as client:
        with pytest.raises(SigfoxConnectionError) as refused:
            client.delete_device("1A2B")
        assert ledger.recorded(key) == []
        fake.now = refused.value.retry_at
        sent_at = fake.now
        with pytest.raises(SigfoxServerError) as failed:
            client.delete_device("1A2B")
        assert ledger.recorded(key) == [sent_at]  # a 500 may have been executed: it counts
        assert client.forget_unapplied("DELETE", "/devices/{id}", "1A2B", since=sent_at) == 1
        fake.now = failed.value.retry_at
        client.delete_device("1A2B")
    assert len(seen) == 3
