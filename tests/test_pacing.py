"""Pacing to Sigfox's published limits (sigfox/pacing.py), decided without a backend: sliding
windows, the per-device hour, bulk jobs, thread safety, and the client refusing instead of
sleeping for long waits."""

from __future__ import annotations

import threading

import httpx
import pytest
from support.fake_sigfox import FakeTime, make_client, sequence

from sigfox import errors
from sigfox.pacing import Pacer, SlidingWindow


def test_sliding_window_admits_up_to_limit_then_waits_for_oldest_to_leave() -> None:
    window = SlidingWindow(3, 10.0)
    for t in (0.0, 1.0, 2.0):
        assert window.next_slot(t) == t
        window.grant(t)
    assert window.next_slot(2.5) == 10.0
    assert window.next_slot(10.5) == 10.5


def test_window_counts_from_completion_so_latency_cannot_squeeze_calls() -> None:
    fake = FakeTime()
    pacer = Pacer(clock=fake.clock, sleep=fake.sleep)
    permit = pacer.acquire("GET", "/devices/{id}/messages", "AAAA")
    fake.now += 0.4  # the request took 0.4 s: the service dated it somewhere in between
    pacer.settle(permit)
    pacer.acquire("GET", "/devices/{id}/messages", "AAAA")
    assert fake.sleeps == [pytest.approx(1.0)]  # one full second after completion


def test_device_list_paced_to_50_per_10_seconds() -> None:
    fake = FakeTime()
    pacer = Pacer(clock=fake.clock, sleep=fake.sleep)
    start = fake.now
    for _ in range(120):
        pacer.acquire("GET", "/devices/")
    # 120 calls need at least two full windows beyond the first.
    assert fake.now - start >= 20.0
    assert all(s <= 10.0 for s in fake.sleeps)


def test_list_window_never_exceeds_limit_in_any_10_seconds() -> None:
    fake = FakeTime()
    pacer = Pacer(clock=fake.clock, sleep=fake.sleep)
    stamps = []
    for _ in range(200):
        pacer.acquire("GET", "/devices/")
        stamps.append(fake.now)
    for i, t in enumerate(stamps):
        assert sum(1 for s in stamps[i:] if s < t + 10.0) <= 50


def test_messages_paced_per_device_not_globally() -> None:
    fake = FakeTime()
    pacer = Pacer(clock=fake.clock, sleep=fake.sleep)
    pacer.acquire("GET", "/devices/{id}/messages", "AAAA")
    pacer.acquire("GET", "/devices/{id}/messages", "BBBB")
    assert fake.sleeps == []
    pacer.acquire("GET", "/devices/{id}/messages", "AAAA")
    assert fake.sleeps == [pytest.approx(1.0)]


def test_hourly_device_write_refused_with_retry_at_instead_of_sleeping() -> None:
    fake = FakeTime()
    pacer = Pacer(clock=fake.clock, sleep=fake.sleep)
    pacer.acquire("DELETE", "/devices/{id}", "1A2B")
    fake.now += 600
    with pytest.raises(errors.SigfoxPacingRefused) as info:
        pacer.acquire("DELETE", "/devices/{id}", "1A2B")
    assert info.value.retry_at == pytest.approx(fake.now + 3000)
    assert "1A2B" in str(info.value) and "possible again at" in str(info.value)
    assert fake.sleeps == []
    # Another device, and another method on the same device, are not affected.
    pacer.acquire("DELETE", "/devices/{id}", "1A2C")
    pacer.acquire("PUT", "/devices/{id}", "1A2B")
    fake.now += 3000
    pacer.acquire("DELETE", "/devices/{id}", "1A2B")


def test_bulk_jobs_five_per_ten_minutes_then_refused() -> None:
    fake = FakeTime()
    pacer = Pacer(clock=fake.clock, sleep=fake.sleep)
    for endpoint in ["/devices/bulk"] * 3 + ["/devices/bulk/transfer"] * 2:
        pacer.acquire("POST", endpoint)
    with pytest.raises(errors.SigfoxPacingRefused) as info:
        pacer.acquire("POST", "/devices/bulk/restart")
    assert info.value.retry_at == pytest.approx(fake.now + 600)


def test_a_call_that_never_reached_the_server_gives_its_hourly_slot_back() -> None:
    fake = FakeTime()
    pacer = Pacer(clock=fake.clock, sleep=fake.sleep)
    pacer.release(pacer.acquire("PUT", "/devices/{id}", "1A2B"))  # refused before connecting
    assert pacer.acquire("PUT", "/devices/{id}", "1A2B").wait == 0.0
    with pytest.raises(errors.SigfoxPacingRefused):
        pacer.acquire("PUT", "/devices/{id}", "1A2B")


def test_disabled_pacer_and_unpaced_endpoints_never_wait() -> None:
    fake = FakeTime()
    pacer = Pacer(enabled=False, clock=fake.clock, sleep=fake.sleep)
    for _ in range(100):
        pacer.acquire("GET", "/devices/")
        pacer.acquire("DELETE", "/devices/{id}", "1A2B")
    enabled = Pacer(clock=fake.clock, sleep=fake.sleep)
    for _ in range(100):
        enabled.acquire("GET", "/device-types/")
    assert fake.sleeps == []


def test_pacer_is_thread_safe() -> None:
    # Time stands still, so every wait must come from slots reserved by other threads.
    pacer = Pacer(clock=lambda: 1000.0, sleep=lambda s: None)
    waits: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(25):
            wait = pacer.acquire("GET", "/devices/").wait
            with lock:
                waits.append(wait)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # 200 grants at 50 per 10 s (no deferring caller about: nothing is kept for one).
    assert sorted(waits) == [0.0] * 50 + [10.0] * 50 + [20.0] * 50 + [30.0] * 50


def test_client_refuses_second_delete_within_the_hour_without_sending() -> None:
    handler, seen = sequence(httpx.Response(204))
    with make_client(handler) as client:
        client.delete_device("1a2b")
        with pytest.raises(errors.SigfoxPacingRefused):
            client.delete_device("1A2B")
    assert len(seen) == 1


def test_rate_limits_false_disables_pacing() -> None:
    handler, seen = sequence(httpx.Response(204))
    with make_client(handler, rate_limits=False) as client:
        client.delete_device("1A2B")
        client.delete_device("1A2B")
    assert len(seen) == 2
