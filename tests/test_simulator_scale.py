"""The simulator's latency model and its id ranges on the device list (minId / maxId)."""

from __future__ import annotations

import random
import statistics
import threading
from collections.abc import Callable

import pytest
from click.testing import CliRunner

from bot.cli import main
from sigfox.simulator import SimulatorServer
from sigfox.simulator.latency import LatencyModel, parse_latency

# --------------------------------------------------------------------------------- latency


def test_latency_is_written_in_milliseconds_or_seconds() -> None:
    assert parse_latency("300ms") == pytest.approx(0.3)
    assert parse_latency(" 0.5s") == pytest.approx(0.5)
    assert parse_latency("2s") == 2.0
    for wrong in ("300", "fast", "-1s", "3m"):
        with pytest.raises(ValueError, match="like \"300ms\""):
            parse_latency(wrong)
    with pytest.raises(ValueError, match="at most 60s"):
        parse_latency("90s")


def test_latency_model_has_the_median_a_spread_and_some_slow_answers() -> None:
    model = LatencyModel(0.3, rng=random.Random(42))
    samples = sorted(model.sample() for _ in range(20_000))
    assert statistics.median(samples) == pytest.approx(0.3, rel=0.03)
    assert min(samples) > 0
    # Log-normal with sigma 0.35: the 90th percentile is e^(1.2816 x 0.35) ~ 1.57x the median.
    assert samples[int(0.9 * len(samples))] == pytest.approx(0.3 * 1.566, rel=0.06)
    # About 1 % are five times slower: far beyond what the spread alone ever gives.
    slow = [s for s in samples if s > 0.3 * 4.0]
    assert 0.005 < len(slow) / len(samples) < 0.02


def test_latency_model_is_reproducible_from_its_seed() -> None:
    first = LatencyModel(0.3, rng=random.Random(5))
    again = LatencyModel(0.3, rng=random.Random(5))
    assert [first.sample() for _ in range(50)] == [again.sample() for _ in range(50)]
    assert LatencyModel(0.0).sample() == 0.0


def test_concurrent_requests_wait_their_latency_side_by_side(
    make_simulator: Callable[..., SimulatorServer],
) -> None:
    model = LatencyModel(0.5, spread=0.0, slow_share=0.0)
    sim = make_simulator(devices=5, rate_limits=False, latency=model)
    start = threading.Barrier(4)
    statuses: list[int] = []

    def ask() -> None:
        with sim.client(timeout=30) as client:
            start.wait()
            statuses.append(client.get("/device-types/").status_code)

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * 4
    state = sim.control("GET", "/latency")
    assert state["medianMs"] == 500 and state["waiting"] == 0
    assert state["peakWaiting"] >= 2  # not one after the other


def test_latency_is_off_by_default(simulator: SimulatorServer) -> None:
    assert simulator.control("GET", "/latency")["description"] == "off"


def test_simulator_command_refuses_a_latency_it_cannot_read() -> None:
    result = CliRunner().invoke(main, ["simulator", "--latency", "quick"])
    assert result.exit_code == 1  # a mistyped command line (bot.cli: never 2)
    assert "--latency" in result.output and "300ms" in result.output


# ------------------------------------------------------------------------------ id ranges


def device_ids(sim: SimulatorServer, **params: str) -> tuple[list[str], str | None]:
    with sim.client() as client:
        body = client.get("/devices/", params=params).json()
    return [d["id"] for d in body["data"]], body["paging"].get("next")


@pytest.fixture
def ranged(make_simulator: Callable[..., SimulatorServer]) -> SimulatorServer:
    sim = make_simulator(devices=0, rate_limits=False)
    for value in (0x5, 0xF, 0xFF, 0x100, 0x1FF, 0x200, 0xABCDEF):
        sim.world.add_device(f"{value:X}")
    return sim


def test_device_list_is_in_id_value_order(ranged: SimulatorServer) -> None:
    ids, _ = device_ids(ranged)
    assert ids == ["5", "F", "FF", "100", "1FF", "200", "ABCDEF"]


def test_min_and_max_id_bound_the_list_inclusively_across_pages(ranged: SimulatorServer) -> None:
    ids, nxt = device_ids(ranged, sort="id", minId="F", maxId="1FF", limit="2")
    assert ids == ["F", "FF"] and nxt is not None and "maxId=1FF" in nxt
    with ranged.client() as client:
        rest = client.get(nxt).json()
    assert [d["id"] for d in rest["data"]] == ["100", "1FF"]
    assert "next" not in rest["paging"]


def test_sort_minus_id_lists_downwards(ranged: SimulatorServer) -> None:
    ids, nxt = device_ids(ranged, sort="-id", maxId="200", limit="3")
    assert ids == ["200", "1FF", "100"]
    with ranged.client() as client:
        rest = client.get(nxt).json()
    assert [d["id"] for d in rest["data"]] == ["FF", "F", "5"]


def test_offset_counts_within_the_range(ranged: SimulatorServer) -> None:
    ids, _ = device_ids(ranged, sort="id", minId="FF", offset="2", limit="1")
    assert ids == ["1FF"]


@pytest.mark.parametrize("params, message", [
    ({"minId": "F"}, "only available with sort=id"),
    ({"sort": "id", "maxId": "XYZ"}, "hexadecimal"),
])
def test_range_parameters_used_wrongly_answer_400(
    ranged: SimulatorServer, params: dict[str, str], message: str
) -> None:
    with ranged.client() as client:
        answer = client.get("/devices/", params=params)
    assert answer.status_code == 400
    assert message in answer.json()["errors"][0]["message"]


def test_a_simulator_without_id_ranges_refuses_them(
    make_simulator: Callable[..., SimulatorServer],
) -> None:
    sim = make_simulator(devices=3, rate_limits=False, id_ranges=False)
    with sim.client() as client:
        refused = client.get("/devices/", params={"sort": "id", "minId": "0"})
        plain = client.get("/devices/", params={"sort": "id"})
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["field"] == "minId"
    assert plain.status_code == 200 and len(plain.json()["data"]) == 3


def test_collections_answer_without_their_trailing_slash(ranged: SimulatorServer) -> None:
    with ranged.client(follow_redirects=False) as client:
        answer = client.get("/devices", params={"limit": "2"})
    assert answer.status_code == 200  # as Sigfox does: no redirect, no second round trip
    assert [d["id"] for d in answer.json()["data"]] == ["5", "F"]
