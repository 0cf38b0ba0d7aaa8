"""Alert rules against the simulated backend over HTTP, on its virtual clock."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from support.alerts import (
    DAY,
    RecordingSink,
    add,
    announced,
    changes,
    config,
    service,
)

from commands.alerting import AlertService, Change, Condition, Level
from commands.policy import Actor
from sigfox.simulator import SimulatorServer

Setup = tuple[SimulatorServer, AlertService, RecordingSink]


@pytest.fixture
def setup(make_simulator: Callable[..., SimulatorServer], tmp_path: Path) -> Setup:
    sim = make_simulator(devices=0, rate_limits=False)
    sink = RecordingSink()
    return sim, service(sim, tmp_path / "bot.db", sink, config('repeat_after = "10d"')), sink


def scan_ok(svc: AlertService, sink: RecordingSink) -> None:
    sink.clear()
    report = svc.scan()
    assert report.ok, report.error


def test_expiring_starts_escalates_and_is_not_repeated_across_scans(setup: Setup) -> None:
    sim, svc, sink = setup
    add(sim, "A0001", end_in_days=20)
    add(sim, "A0002", end_in_days=200)
    scan_ok(svc, sink)
    assert announced(sink) == [("A0001", "expiring", "new")]
    assert sink.digests[0].counts[0].level is Level.WARNING
    assert sink.digests[0].channel == "C0DEFAULT1"

    scan_ok(svc, sink)  # nothing changed: nothing said
    assert sink.digests == []

    sim.advance(15 * DAY)  # 5 days left: inside the critical window
    scan_ok(svc, sink)
    assert announced(sink) == [("A0001", "expiring", "worse")]
    assert sink.digests[0].top[0].level is Level.CRITICAL
    scan_ok(svc, sink)
    assert sink.digests == []


def test_repeat_only_after_repeat_after(setup: Setup) -> None:
    sim, svc, sink = setup
    add(sim, "B0001", "off_contract", end_in_days=-30)
    scan_ok(svc, sink)
    assert announced(sink) == [("B0001", "off_contract", "new")]
    sim.advance(9 * DAY)
    scan_ok(svc, sink)
    assert sink.digests == []
    sim.advance(1 * DAY)
    scan_ok(svc, sink)
    assert announced(sink) == [("B0001", "off_contract", "repeat")]
    scan_ok(svc, sink)
    assert sink.digests == []


def test_token_running_out_turns_invalid_then_renewal_by_uplink_resolves(setup: Setup) -> None:
    sim, svc, sink = setup
    add(sim, "C0001", end_in_days=3)
    scan_ok(svc, sink)
    assert announced(sink) == [("C0001", "expiring", "new")]

    sim.advance(4 * DAY)  # the token ends: Invalid; the expiring alert is superseded silently
    scan_ok(svc, sink)
    assert announced(sink) == [("C0001", "invalid", "new")]

    sim.world.device("C0001").automatic_renewal = True  # switched on in the portal meanwhile
    sim.uplink("C0001")  # automatic renewal: a fresh token on the next message
    scan_ok(svc, sink)
    assert announced(sink) == [("C0001", "invalid", "resolved")]
    assert sink.digests[0].total_open == 0
    assert svc.list_alerts_and_snoozes().total_open == 0


def test_off_contract_resolved_by_renewal_through_the_bot(setup: Setup) -> None:
    sim, svc, sink = setup
    add(sim, "D0001", "off_contract", end_in_days=-10)
    scan_ok(svc, sink)
    assert announced(sink) == [("D0001", "off_contract", "new")]

    assert svc.resolve_for_device("d0001") == 1
    assert svc.list_alerts_and_snoozes().total_open == 0
    with sim.world.lock:  # what a renewal leaves: the device registered again, no token yet
        sim.world.devices["D0001"].token = None
    scan_ok(svc, sink)
    assert announced(sink) == [("D0001", "off_contract", "resolved")]
    assert sink.digests[0].resolved[0].resolution == "renewed through the bot"
    scan_ok(svc, sink)
    assert sink.digests == []


def test_device_gone_from_the_fleet_resolves_its_alerts(setup: Setup) -> None:
    sim, svc, sink = setup
    add(sim, "E0001", "off_contract", end_in_days=-2)
    add(sim, "E0002", end_in_days=100)
    scan_ok(svc, sink)
    svc.api.delete_device("E0001")  # deleted at Sigfox by someone else
    scan_ok(svc, sink)
    assert announced(sink) == [("E0001", "off_contract", "resolved")]
    assert sink.digests[0].resolved[0].resolution == "gone"
    assert svc.fleet_summary().devices == 1


def test_snooze_for_a_duration_silences_then_lets_it_through(setup: Setup) -> None:
    sim, svc, sink = setup
    add(sim, "F0001", end_in_days=20)
    actor = Actor("U0OPERATOR")
    outcome = svc.snooze("F0001", actor=actor, duration=timedelta(days=1),
                         reason="maintenance visit planned")
    assert outcome.ok, outcome.message
    scan_ok(svc, sink)
    assert sink.digests == []  # snoozed: not announced
    overview = svc.list_alerts_and_snoozes()
    assert overview.total_open == 1
    assert [(s.device_id, s.snoozed_by, s.reason) for s in overview.snoozes] == [
        ("F0001", "U0OPERATOR", "maintenance visit planned")
    ]
    sim.advance(2 * DAY)
    scan_ok(svc, sink)
    assert announced(sink) == [("F0001", "expiring", "new")]


def test_snooze_until_resolved_ends_with_the_alert(setup: Setup) -> None:
    sim, svc, sink = setup
    add(sim, "6A001", "invalid", end_in_days=-1)
    actor = Actor("U0OPERATOR")
    refused = svc.snooze("6A001", actor=actor, duration=None)
    assert not refused.ok and "no open alert" in refused.message
    svc.scan()
    sim.uplink("6A001")
    scan_ok(svc, sink)  # resolved: the snooze would now have nothing to cover
    add(sim, "6A002", "invalid", end_in_days=-1)
    scan_ok(svc, sink)
    assert svc.snooze("6A002", actor=actor, duration=None, reason="known").ok
    assert len(svc.list_alerts_and_snoozes().snoozes) == 1
    sim.advance(11 * DAY)
    scan_ok(svc, sink)  # due for a repeat, but snoozed
    assert sink.digests == []
    sim.uplink("6A002")
    scan_ok(svc, sink)
    assert svc.list_alerts_and_snoozes().snoozes == ()


def test_snooze_is_refused_to_whom_the_policy_refuses(setup: Setup, tmp_path: Path) -> None:
    sim, _, _ = setup
    cfg = config('[policy]\nrequesters = ["U0ALLOWED"]\n'.replace("[alerts]", ""))
    strict = service(sim, tmp_path / "strict.db", RecordingSink(), cfg)
    outcome = strict.snooze("ABC", actor=Actor("U0SOMEONE"), duration=None)
    assert not outcome.ok and "may not" in outcome.message


def test_routes_by_device_type_and_group(setup: Setup, tmp_path: Path) -> None:
    sim, _, _ = setup
    world = sim.world
    types = {t.name: t for t in world.device_types.values()}
    gas, pallet = types["Gas meter"], types["Pallet tracker"]
    logistics = world.groups[pallet.group_id].name
    cfg = config(
        '[[alerts.routes]]\nchannel = "C0METERING"\ndevice_types = ["gas meter"]\n'
        f'[[alerts.routes]]\nchannel = "C0LOGISTIC"\ngroups = ["{logistics}"]\n'
    )
    sink = RecordingSink()
    routed = service(sim, tmp_path / "routed.db", sink, cfg)
    add(sim, "7A001", end_in_days=5, device_type=gas.id)
    add(sim, "7A002", end_in_days=5, device_type=pallet.id)
    add(sim, "7A003", end_in_days=5, device_type=types["Smoke detector"].id)
    assert routed.scan().ok
    by_channel = {d.channel: [i.device_id for i in d.announced] for d in sink.digests}
    assert by_channel == {"C0METERING": ["7A001"], "C0LOGISTIC": ["7A002"],
                          "C0DEFAULT1": ["7A003"]}


def test_restart_between_scans_keeps_alert_state(
    make_simulator: Callable[..., SimulatorServer], tmp_path: Path
) -> None:
    sim = make_simulator(devices=0, rate_limits=False)
    add(sim, "8A001", end_in_days=10)
    first = RecordingSink()
    service(sim, tmp_path / "bot.db", first).scan()
    assert announced(first) == [("8A001", "expiring", "new")]
    again = RecordingSink()  # a new process: new objects, same database file
    assert service(sim, tmp_path / "bot.db", again).scan().ok
    assert again.digests == []
    assert changes(first.digests[0]) == {Change.NEW.value: 1}


def test_expiring_answers_from_the_last_scan_without_calling_sigfox(setup: Setup) -> None:
    sim, svc, _ = setup
    for n in range(5):
        add(sim, f"9A00{n}", end_in_days=2 + 8 * n)
    svc.scan()
    sim.control("DELETE", "/calls")
    summary = svc.expiring(30)
    assert summary.total == 4
    assert [d.device_id for d in summary.devices] == ["9A000", "9A001", "9A002", "9A003"]
    assert sum(w.count for w in summary.weeks) == 4 and len(summary.weeks) >= 3
    assert svc.expiring(7).total == 1
    fleet = svc.fleet_summary()
    assert (fleet.ending_7_days, fleet.ending_30_days, fleet.devices) == (1, 4, 5)
    svc.list_alerts_and_snoozes()
    svc.device_report("9A000")
    assert sim.call_log() == []


def test_daily_digest_groups_by_week(setup: Setup) -> None:
    sim, svc, sink = setup
    for n in range(6):
        add(sim, f"AA00{n}", end_in_days=1 + 5 * n)
    svc.scan()
    sent = svc.send_daily_digest()
    assert len(sent) == 1 and sink.daily == sent
    summary = sent[0].summary
    assert summary.total == 6 and summary.days == 30
    assert [w.start.weekday() for w in summary.weeks] == [0] * len(summary.weeks)
    assert sum(w.count for w in summary.weeks) == 6
    assert sent[0].csv_path is not None and not sent[0].csv_path.exists()  # cleaned up


def test_condition_labels() -> None:
    assert Condition.OFF_CONTRACT.label == "Off Contract"


def test_a_token_ending_on_a_device_that_renews_automatically_is_not_a_warning(
    setup: Setup,
) -> None:
    sim, svc, sink = setup
    add(sim, "A0101", end_in_days=5, automatic_renewal=True)  # device, type, contract allow it
    add(sim, "A0102", end_in_days=5)  # the device does not renew: a warning
    add(sim, "A0103", end_in_days=5, automatic_renewal=True)
    contract = sim.world.contract_of(sim.world.device("A0103"))
    refusing = sim.world.add_contract("No renewal", order_id="o", order_name="O",
                                      automatic_renewal=False)
    sim.world.device("A0103").token.contract_id = refusing.id  # its own contract refuses
    assert contract.id != refusing.id
    scan_ok(svc, sink)
    assert sorted(announced(sink)) == [("A0102", "expiring", "new"), ("A0103", "expiring", "new")]
    summary = svc.expiring(30)
    assert summary.total == 3 and summary.renewing == 1
    assert [d.device_id for d in summary.devices if d.renews] == ["A0101"]
