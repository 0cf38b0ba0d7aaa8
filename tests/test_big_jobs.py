"""Jobs over many devices: steps side by side within bounds, one bulk job, coalesced progress."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.bot import BotHarness, running_bot
from support.core import (
    APPROVER,
    REQUESTER,
    CoreHarness,
    core_config,
    make_core,
    sigfox_client,
)

from bot.notifier import SlackNotifier
from commands.planning import Request
from commands.ports import ManualClock, Progress, ProgressKind, Target
from commands.states import Kind, WorkflowState
from sigfox.simulator import SimulatorServer
from sigfox.simulator.latency import LatencyModel

DEVICES = 30
UNSUBSCRIBE_AT = 1_900_000_000_000  # 2030
BIG_JOB = """
concurrent_steps = 4
device_lines_up_to = 5
progress_interval = "1h"
"""


def off_contract_fleet(sim: SimulatorServer, name: str = "Big", prefix: str = "B1",
                       count: int = DEVICES) -> list[str]:
    """`count` Off Contract devices of one device type, under a contract with tokens left."""
    contract = sim.world.add_contract(name, order_id=f"order-{name.lower()}", order_name=name,
                                      max_tokens=1000)
    dtype = sim.world.add_device_type(f"{name} fleet", contract.id)
    return [sim.world.add_device(f"{prefix}{n:04X}", device_type_id=dtype.id,
                                 token="off_contract").id for n in range(count)]


@pytest.fixture
def slow_backend(make_simulator: Callable[..., SimulatorServer]) -> SimulatorServer:
    # Every answer takes 50 ms, so steps that overlap are seen overlapping by the backend.
    model = LatencyModel(0.05, spread=0.0, slow_share=0.0)
    return make_simulator(devices=0, rate_limits=False, latency=model)


def restart_all(harness: CoreHarness, ids: list[str]) -> int:
    outcome = harness.core.request(Request(Kind.RESTART, REQUESTER, tuple(ids),
                                           Target("C0CHAN")))
    assert outcome.ok, outcome.message
    assert outcome.workflow_id is not None
    for _ in range(10):
        harness.core.tick()
        workflow = harness.core.store.get_workflow(outcome.workflow_id)
        if workflow is not None and workflow.state == WorkflowState.DONE:
            break
        harness.advance(10)
    return outcome.workflow_id


def test_steps_run_side_by_side_within_the_bound_and_none_twice(
    slow_backend: SimulatorServer, tmp_path: Path
) -> None:
    # Unsubscribing is one read and one write per device: the steps themselves call Sigfox.
    ids = off_contract_fleet(slow_backend)
    harness = make_core(slow_backend, tmp_path / "bot.db",
                        config=core_config(BIG_JOB.replace("progress", "# progress")))
    outcome = harness.core.request(Request(Kind.UNSUBSCRIBE, REQUESTER, tuple(ids),
                                           Target("C0CHAN"), unsubscribe_at_ms=UNSUBSCRIBE_AT))
    assert outcome.ok and outcome.approval_id is not None, outcome.message
    assert harness.core.decide(outcome.approval_id, APPROVER, approve=True).ok
    slow_backend.calls.clear()
    for _ in range(5):
        harness.core.tick()
        harness.advance(10)
    assert harness.core.store.get_workflow(outcome.workflow_id).state == WorkflowState.DONE
    waiting = slow_backend.control("GET", "/latency")
    assert 2 <= waiting["peakWaiting"] <= 4  # side by side, never more than concurrent_steps
    writes = Counter(c["path"] for c in slow_backend.calls.all() if c["method"] == "PUT")
    assert sorted(writes) == sorted(f"/v2/devices/{d}/unsubscribe" for d in ids)
    assert set(writes.values()) == {1}  # none twice


def test_a_restart_job_reads_its_devices_in_pages_and_submits_one_bulk_job(
    slow_backend: SimulatorServer, tmp_path: Path
) -> None:
    ids = off_contract_fleet(slow_backend)
    harness = make_core(slow_backend, tmp_path / "bot.db", config=core_config(BIG_JOB))
    slow_backend.calls.clear()
    workflow_id = restart_all(harness, ids)
    assert harness.core.store.get_workflow(workflow_id).state == WorkflowState.DONE
    assert len(harness.calls("POST", "/v2/devices/bulk/restart")) == 1
    reads = [c for c in harness.calls("GET", "/v2/devices/") if c["path"] == "/v2/devices/"]
    # The plan's page, then the job's: no read per device (30 devices fit one page).
    assert not [c for c in reads if "id=" in str(c.get("query")).replace("minId", "")]
    assert len(reads) <= 3, reads
    # The plan read the devices' one type and one contract once, not once per device.
    assert len(harness.calls("GET", "/v2/device-types/")) <= 1
    assert len(harness.calls("GET", "/v2/contract-infos/")) == 1
    assert all(slow_backend.world.devices[i].token.off_contract is False for i in ids)


def test_a_request_over_many_devices_reads_them_in_pages_and_refuses_a_missing_one_exactly(
    make_simulator: Callable[..., SimulatorServer], tmp_path: Path
) -> None:
    sim = make_simulator(devices=0, rate_limits=True)
    ids = off_contract_fleet(sim, "Many", "C", 250)
    harness = make_core(sim, tmp_path / "bot.db", config=core_config(BIG_JOB))
    sim.calls.clear()
    missing = "C0FFFF"
    refused = harness.core.request(Request(Kind.RESTART, REQUESTER, (*ids[:200], missing,
                                                                     *ids[200:]),
                                           Target("C0CHAN")))
    assert not refused.ok
    assert f"Device {missing} is not in this Sigfox account" in refused.message
    assert harness.core.jobs() == []  # nothing opened
    told: list[tuple[int, int]] = []
    outcome = harness.core.request(Request(Kind.RESTART, REQUESTER, tuple(ids), Target("C0CHAN")),
                                   on_read=lambda read, wanted: told.append((read, wanted)))
    assert outcome.ok, outcome.message
    reads = [c for c in sim.calls.all() if c["path"] == "/v2/devices/"]
    # 3 pages each time, plus the one read confirming the missing device: not one per device.
    assert len(reads) == 3 + 1 + 3
    assert not [c for c in sim.calls.all() if c["status"] == 429]
    assert len(told) == 3 and told[-1] == (250, 250)


def test_a_job_short_of_list_slots_waits_for_them_instead_of_reading_device_by_device(
    make_simulator: Callable[..., SimulatorServer], tmp_path: Path
) -> None:
    sim = make_simulator(devices=0, rate_limits=False)
    ids = off_contract_fleet(sim, "Slots", "D", 600)
    clock = ManualClock(sim.clock.now())
    # The client paces to the published limits on the bot's clock: 50 list calls per 10 s.
    api = sigfox_client(sim, clock=clock.now, rate_limits=True)
    harness = make_core(sim, tmp_path / "bot.db", config=core_config(BIG_JOB), api=api,
                        clock=clock)
    outcome = harness.core.request(Request(Kind.RESTART, REQUESTER, tuple(ids), Target("C0")))
    assert outcome.ok and outcome.workflow_id is not None, outcome.message  # 6 pages
    harness.core.tick()  # the bulk restart
    for n in range(40):  # someone else's reads leave 4 of the window's 50 list slots
        api.find_device(ids[n])
    clock.advance(5)  # the poll is due; the window is not over
    sim.calls.clear()
    harness.core.tick()
    # (The log of the last of those 40 reads may land after the clear: pages only.)
    pages = [c for c in sim.calls.all() if "sort=id" in str(c.get("query"))]
    assert len(pages) == 4  # the pages the limit allowed
    steps = harness.core.store.workflow_devices(outcome.workflow_id)
    assert sum(s.state == "done" for s in steps) == 400
    waiting = {s.next_run for s in steps if s.state != "done"}
    assert len(waiting) == 1 and waiting.pop() > clock.now()  # together, for the slot
    for _ in range(3):
        clock.advance(10)
        harness.core.tick()
    assert harness.core.store.get_workflow(outcome.workflow_id).state == WorkflowState.DONE
    by_id = [c for c in sim.calls.all() if "id=" in str(c.get("query")).replace("minId", "")]
    assert {c["query"] for c in by_id} <= {f"id={d}&limit=100" for d in ids[:40]}  # no job's


@pytest.fixture
def bot(make_simulator: Callable[..., SimulatorServer], tmp_path: Path) -> Iterator[BotHarness]:
    sim = make_simulator(devices=0, rate_limits=False)
    with running_bot(sim, tmp_path / "bot.db", config=core_config(BIG_JOB)) as harness:
        yield harness


def test_slack_sees_one_card_and_a_few_lines_for_a_big_job(bot: BotHarness) -> None:
    ids = off_contract_fleet(bot.simulator)
    bot.command("restart " + " ".join(ids))
    for _ in range(10):
        bot.core.tick()
        bot.advance(10)
    parent = next(m for m in bot.parents() if "restart" in m.get("text", "").lower())
    lines = bot.thread_texts(parent["ts"])
    assert not [line for line in lines if "B10010" in line]  # no line per device
    # Request, the bulk job, the first device restarted (a phase), the summary: a handful.
    assert len(lines) <= 6, lines
    assert any("the first of 30 devices" in line for line in lines)
    edits = [c for c in bot.standin.calls_to("chat.update") if c.params.get("ts") == parent["ts"]]
    assert len(edits) <= 6  # state changes and at most one count per progress_interval


def test_card_counts_are_edited_at_most_once_per_progress_interval(bot: BotHarness) -> None:
    ids = off_contract_fleet(bot.simulator)
    bot.command("restart " + " ".join(ids))
    bot.core.tick()
    workflow = bot.core.jobs()[0]
    now = [0.0]
    notifier = SlackNotifier(bot.notifier.client, bot.core.reads, bot.notifier.records,
                             min_interval=0.0, progress_interval=5.0, device_lines_up_to=5,
                             clock=lambda: now[0])
    parent = notifier.thread_of(workflow.id)
    assert parent is not None
    before = len(bot.standin.calls_to("chat.update"))
    for second in range(100):  # one device event a second for 100 s
        now[0] = float(second)
        notifier.notify(Progress(ProgressKind.STEP_DONE, workflow.id, workflow.kind,
                                 (ids[second % DEVICES],), "Restarted.",
                                 Target(parent["channel"], parent["thread"]),
                                 details={"step": "done"}))
    edits = len(bot.standin.calls_to("chat.update")) - before
    assert edits == 20  # at 0, 5, 10, ... 95 s
