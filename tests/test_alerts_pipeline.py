"""The alerts' delivery pipeline: each named stage on its own (inhibit, silence, dedup, route,
group, notify and its retry over the notification log), then end to end through real scans of
the simulated backend: an undelivered digest survives a restart and is delivered once, a
condition is not told again within `repeat_after`, thousands of expiries make one digest per
channel."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from support.alerts import CHANNEL, RecordingSink, add, announced, config, service
from support.bot import BotHarness

from bot.app import register_metrics
from bot.handler import alerts_message
from bot.service import build_alerts
from commands import metrics
from commands.alerting import AlertDigest, AlertItem, Change, Condition, Level
from commands.alerting.delivery import DigestDelivery
from commands.alerting.digests import Router
from commands.alerting.rules import INHIBITIONS, RULES, thresholds
from commands.alerting.stages import (
    Group,
    Inhibit,
    LastTold,
    Notify,
    Outgoing,
    Silence,
    dedup,
)
from commands.metrics import METRICS
from commands.schedules import REDELIVER_JOB, START_DELAY, AlertSchedule
from sigfox.simulator import SimulatorServer
from storage.db import MIGRATIONS, get_value, open_database, set_value
from storage.fleet import FleetRow, FleetStore
from storage.notifications import (
    DELIVERED,
    PENDING,
    NotificationLog,
    add_daily_digests,
    create_tables,
)

MakeSim = Callable[..., SimulatorServer]
LOG_MIGRATION = MIGRATIONS.index(create_tables) + 1  # its schema version
DAY = 86_400.0
METERING = "C0METERING"
NOW = 1_750_000_000.0


def item(device: str = "1A2B", condition: Condition = Condition.EXPIRING,
         level: Level = Level.WARNING, state: str = "open",
         change: Change | None = None) -> AlertItem:
    return AlertItem(device, condition, level, token_end=NOW + 3 * DAY, state=state,
                     change=change)


# --------------------------------------------------------------------------- inhibit


def test_inhibit_mutes_what_an_off_contract_device_needs_no_word_about() -> None:
    inhibit = Inhibit(INHIBITIONS)
    assert inhibit.muted([Condition.OFF_CONTRACT, Condition.EXPIRING]) == {
        Condition.EXPIRING, Condition.INVALID}
    assert inhibit.muted([Condition.EXPIRING]) == frozenset()
    assert inhibit.muted([Condition.INVALID]) == frozenset()  # Invalid mutes nothing


# --------------------------------------------------------------------------- silence


def test_silence_covers_a_snoozed_device_for_its_conditions_until_the_snooze_ends() -> None:
    snoozes = [
        {"device_id": "AAA1", "condition": "", "until": None, "ended_at": 0},
        {"device_id": "BBB2", "condition": "invalid", "until": NOW + DAY, "ended_at": 0},
        {"device_id": "CCC3", "condition": "", "until": NOW - 1, "ended_at": 0},
        {"device_id": "DDD4", "condition": "", "until": None, "ended_at": NOW - 5},
    ]
    silence = Silence(snoozes, NOW)
    assert silence.silenced(item("AAA1", Condition.OFF_CONTRACT))
    assert silence.silenced(item("BBB2", Condition.INVALID))
    assert not silence.silenced(item("BBB2", Condition.EXPIRING))  # another condition
    assert not silence.silenced(item("CCC3"))  # its time is over
    assert not silence.silenced(item("DDD4"))  # ended with the alert it covered
    assert not silence.silenced(item("EEE5"))


# --------------------------------------------------------------------------- dedup


@pytest.mark.parametrize(("last", "alert", "expected"), [
    (None, item(), Change.NEW),
    (LastTold(1, "resolved", NOW - DAY, 1), item(), Change.NEW),  # told gone, back again
    (LastTold(1, "new", NOW - DAY, 1), item(level=Level.CRITICAL), Change.WORSE),
    (LastTold(1, "new", NOW - 8 * DAY, 1), item(), Change.REPEAT),  # before repeat_before
    (LastTold(1, "new", NOW - DAY, 1), item(), None),  # told within the interval
    (LastTold(2, "worse", NOW - DAY, 1), item(level=Level.WARNING), None),
    (LastTold(1, "new", NOW - DAY, 1), item(state="resolved"), Change.RESOLVED),
    (None, item(state="resolved"), None),  # nobody heard of it: no news it is gone
    (LastTold(1, "resolved", NOW - DAY, 1), item(state="resolved"), None),
])
def test_dedup_against_what_was_last_told(last: LastTold | None, alert: AlertItem,
                                          expected: Change | None) -> None:
    assert dedup(alert, last, repeat_before=NOW - 7 * DAY) == expected


# --------------------------------------------------------------------------- route


def test_route_by_device_type_or_group_else_the_default_channel() -> None:
    settings = config(f'[[alerts.routes]]\nchannel = "{METERING}"\n'
                      'device_types = ["Gas meter"]\n').alerts
    router = Router(settings)
    assert router.channel({"device_type": "Gas meter", "group": "x"}) == METERING
    assert router.channel({"device_type_name": "gas meter"}) == METERING  # a fleet row
    assert router.channel({"device_type": "Water meter"}) == CHANNEL


# --------------------------------------------------------------------------- group


def test_group_makes_one_digest_per_route_with_a_change_and_records_what_it_tells(
    tmp_path: Path,
) -> None:
    log = NotificationLog(open_database(tmp_path / "bot.db"))
    group = Group(7, NOW, config().alerts.tz, "UTC", log=log)
    for n in range(1, 2_501):  # more than a staging batch
        group.add(METERING, item(f"1{n:04X}", change=Change.NEW))
    group.add(CHANNEL, item("2AAA"))  # open, nothing to announce
    (out,) = group.finish()
    assert out.digest.channel == METERING and out.digest.changes == {Change.NEW: 2_500}
    assert out.digest.announced == ()  # too many lines: counted, listed in the CSV
    assert out.digest.csv_path is not None and out.digest.csv_rows == 2_500
    staged = log.database.query("SELECT COUNT(*) AS n FROM notification_alerts "
                                "WHERE notification_id = ?", (out.notification_id,))
    assert staged[0]["n"] == 2_500
    (waiting,) = log.pending()
    assert (waiting.id, waiting.route, waiting.scan_id) == (out.notification_id, METERING, 7)
    out.digest.csv_path.unlink()


# --------------------------------------------------------------------------- notify, retry


@dataclass
class FlakySink(RecordingSink):
    """Refuses digests while `down`, as Slack does in an outage."""

    down: bool = False
    refused: list[AlertDigest] = field(default_factory=list)

    def deliver_digest(self, digest: AlertDigest) -> None:
        if self.down:
            self.refused.append(digest)
            raise ConnectionError("Slack is down")
        super().deliver_digest(digest)


def test_notify_records_a_refusal_then_the_delivery_and_what_it_told(tmp_path: Path) -> None:
    log = NotificationLog(open_database(tmp_path / "bot.db"))
    sink = FlakySink(down=True)
    notify = Notify(log, lambda: sink, lambda: NOW)

    def outgoing() -> list[Outgoing]:
        group = Group(3, NOW, config().alerts.tz, "UTC", log=log)
        group.add(CHANNEL, item("1A01", change=Change.NEW))
        return group.finish()

    first = outgoing()
    assert notify(first) == []
    assert first[0].digest.csv_path is not None and not first[0].digest.csv_path.exists()
    (waiting,) = log.pending()
    assert (waiting.state, waiting.attempts) == (PENDING, 1)
    assert "Slack is down" in waiting.last_error
    assert log.told("1A01", "expiring") is None  # refused: nobody was told

    sink.down = False
    again = outgoing()
    assert again[0].notification_id == waiting.id  # the same notification, attempted again
    assert [d.channel for d in notify(again)] == [CHANNEL]
    (done,) = log.recent(1)
    assert (done.state, done.attempts, done.told, done.delivered_at) == (DELIVERED, 2, 1, NOW)
    told = log.told("1A01", "expiring")
    assert told is not None and (told["change"], told["route"], told["scan_id"]) == (
        "new", CHANNEL, 3)


# --------------------------------------------------------------------------- end to end


def test_restart_with_an_undelivered_digest_delivers_it_once_never_twice(
    make_simulator: MakeSim, tmp_path: Path,
) -> None:
    sim = make_simulator(devices=0, rate_limits=False)
    add(sim, "1A001", end_in_days=5)
    add(sim, "1A002", "off_contract", end_in_days=-3)
    db = tmp_path / "bot.db"
    down = FlakySink(down=True)
    before = service(sim, db, down)
    assert before.scan().ok
    assert len(down.refused) == 1 and down.digests == []
    # `/sigfox alerts` says what waits for Slack.
    (waiting,) = before.list_alerts_and_snoozes().undelivered
    assert (waiting.channel, waiting.attempts) == (CHANNEL, 1)
    text = alerts_message(before.list_alerts_and_snoozes()).text
    assert f"The alert digest for #{CHANNEL} waits for Slack since" in text, text

    # A new process on the same database: the scheduler's first redelivery tells it.
    sink = RecordingSink()
    svc = service(sim, db, sink)
    scheduler = BackgroundScheduler()
    scheduler.start(paused=True)
    try:
        AlertSchedule(svc).attach(scheduler)
        job = scheduler.get_job(REDELIVER_JOB)
        first_run = job.next_run_time.timestamp() - svc.clock.now()
        assert START_DELAY[0] <= first_run <= START_DELAY[1]
    finally:
        scheduler.shutdown(wait=False)
    assert [d.channel for d in AlertSchedule(svc).redeliver()] == [CHANNEL]
    assert sorted(announced(sink)) == [("1A001", "expiring", "new"),
                                       ("1A002", "off_contract", "new")]
    assert svc.redeliver() == []  # delivered: nothing waits
    assert svc.scan().digests == ()  # and the next scan does not tell it again
    assert service(sim, db, sink).redeliver() == []  # nor another restart
    assert len(sink.digests) == 1
    assert svc.undelivered() == []


def test_a_condition_is_not_told_again_within_repeat_after_counted_from_its_delivery(
    make_simulator: MakeSim, tmp_path: Path,
) -> None:
    sim = make_simulator(devices=0, rate_limits=False)
    add(sim, "B0001", "off_contract", end_in_days=-3)
    sink = FlakySink()
    svc = service(sim, tmp_path / "bot.db", sink, config('repeat_after = "10d"'))
    assert svc.scan().ok and announced(sink) == [("B0001", "off_contract", "new")]
    for _ in range(3):  # scans within the interval: the same condition, nothing told
        sim.clock.advance(3 * DAY)
        assert svc.scan().digests == ()
    sim.clock.advance(2 * DAY)  # 11 days after it was told: a reminder is due...
    sink.down = True
    assert svc.scan().ok and len(sink.refused) == 1  # ...but Slack refuses it
    sink.down, sink.digests = False, []
    sim.clock.advance(DAY)
    assert [d.channel for d in svc.redeliver()] == [CHANNEL]
    assert announced(sink) == [("B0001", "off_contract", "repeat")]
    sim.clock.advance(9 * DAY)  # the interval counts from that delivery, not the refusal
    assert svc.scan().digests == ()


def test_thousands_of_expiries_make_one_digest_per_channel(
    make_simulator: MakeSim, tmp_path: Path,
) -> None:
    sim = make_simulator(devices=0, rate_limits=False)
    gas = next(t for t in sim.world.device_types.values() if t.name == "Gas meter")
    for n in range(1_200):
        add(sim, f"1{n:05X}", end_in_days=10 + n % 15, device_type=gas.id)
        add(sim, f"2{n:05X}", end_in_days=10 + n % 15)
    sink = RecordingSink()
    cfg = config(f'[[alerts.routes]]\nchannel = "{METERING}"\ndevice_types = ["Gas meter"]\n')
    report = service(sim, tmp_path / "bot.db", sink, cfg).scan()
    assert report.ok and report.devices == 2_400
    assert sorted(d.channel or "" for d in sink.digests) == sorted([CHANNEL, METERING])
    for digest in sink.digests:
        assert digest.changes == {Change.NEW: 1_200} and digest.total_open == 1_200
        assert digest.announced == ()  # one line saying how many, never 1,200 messages
        assert digest.csv_rows == 1_200
    log = NotificationLog(open_database(tmp_path / "bot.db"))
    assert sorted((n.route, n.state, n.told) for n in log.recent()) == sorted([
        (CHANNEL, DELIVERED, 1_200), (METERING, DELIVERED, 1_200)])


def test_an_off_contract_device_is_not_also_announced_as_ending_soon(tmp_path: Path) -> None:
    """Sigfox may say Off Contract on the device while its token still looks valid: the
    expiring alert stays open and counted, only the Off Contract one is announced."""
    database = open_database(tmp_path / "bot.db")
    fleet = FleetStore(database)
    scan = fleet.start_scan(NOW, "test")
    fleet.write_devices([
        FleetRow("1B01", "Meter", "t", "Water meter", "g", "Group", device_state=2,
                 token_state=0, token_end=NOW + 3 * DAY, last_com=None),
        FleetRow("1B02", "Meter", "t", "Water meter", "g", "Group", device_state=0,
                 token_state=0, token_end=NOW + 3 * DAY, last_com=None),
    ], scan_id=scan, now=NOW)
    fleet.evaluate(scan, thresholds(config().alerts, NOW), RULES)
    sink = RecordingSink()
    delivery = DigestDelivery(fleet, lambda: config().alerts, lambda: sink, lambda: NOW)
    delivery.notify(delivery.announce(scan, NOW))
    assert sorted(announced(sink)) == [("1B01", "off_contract", "new"),
                                       ("1B02", "expiring", "new")]
    assert sink.digests[0].total_open == 3  # the muted one is still open, and counted


# --------------------------------------------------------------------------- upgrade


def _before_the_log(path: Path, alerts: list[tuple[str, str, int, str, int, float, str, int]],
                    undelivered: str) -> None:
    """A database as the version before the log left it: announcements in `alerts`, the
    digests Slack refused in kv."""
    database = open_database(path)
    with database.transaction() as db:
        for table in ("notifications", "notified_alerts", "notification_alerts"):
            db.execute(f"DROP TABLE {table}")
        db.execute(f"PRAGMA user_version = {LOG_MIGRATION - 1}")
        db.conn.executemany(
            "INSERT INTO scans (id, started_at, finished_at, ok) VALUES (?, ?, ?, 1)",
            [(1, 8 * DAY, 8 * DAY), (2, 9 * DAY, 9 * DAY)])
        db.conn.executemany(
            "INSERT INTO alerts (device_id, condition, level, state, announced_level, "
            "last_announced, change, change_scan, first_seen) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0)",
            alerts)
        db.execute("INSERT INTO kv (key, value) VALUES ('alerts.undelivered', ?)", [undelivered])
    database.close()


def test_an_upgraded_database_keeps_the_digests_slack_refused_and_what_was_told(
    tmp_path: Path,
) -> None:
    path = tmp_path / "bot.db"
    _before_the_log(path, [
        ("1A01", "expiring", 1, "open", 1, 9 * DAY, "new", 1),  # told by scan 1
        ("1A02", "off_contract", 2, "open", 2, 9 * DAY, "new", 2),  # scan 2 never reached Slack
        ("1A03", "expiring", 2, "open", 2, 9 * DAY, "worse", 2),
        ("1A04", "invalid", 2, "resolved", 2, 8 * DAY, "resolved", 0),  # between scans
        ("1A05", "off_contract", 2, "resolved", 2, 8 * DAY, "resolved", 1),  # told
        ("1A06", "expiring", 1, "open", 1, 9 * DAY, "repeat", 2),
    ], undelivered=json.dumps({CHANNEL: [2]}))

    database = open_database(path)  # the notification log's migration runs
    log = NotificationLog(database)
    (waiting,) = log.pending()
    assert (waiting.route, waiting.scan_id, waiting.attempts) == (CHANNEL, 2, 1)
    assert get_value(database, "alerts.undelivered") is None  # no JSON left waiting in kv
    assert log.told("1A01", "expiring") is not None and log.told("1A02", "off_contract") is None

    sink = RecordingSink()
    now = 10 * DAY
    delivery = DigestDelivery(FleetStore(database), lambda: config().alerts, lambda: sink,
                              lambda: now)
    assert [d.channel for d in delivery.redeliver(now)] == [CHANNEL]
    assert sorted(announced(sink)) == [
        ("1A02", "off_contract", "new"), ("1A03", "expiring", "worse"),
        ("1A04", "invalid", "resolved"), ("1A06", "expiring", "repeat")]
    assert delivery.redeliver(now) == [] and log.pending() == []


def test_a_pending_digest_whose_news_resolved_meanwhile_is_closed_not_sent(
    make_simulator: MakeSim, tmp_path: Path,
) -> None:
    sim = make_simulator(devices=0, rate_limits=False)
    add(sim, "1C001", end_in_days=5)
    sink = FlakySink(down=True)
    svc = service(sim, tmp_path / "bot.db", sink)
    assert svc.scan().ok and len(svc.undelivered()) == 1
    svc.resolve_for_device("1C001")  # renewed through the bot before Slack came back
    sink.down = False
    assert svc.redeliver() == []  # nobody heard of the alert: no news that it is gone
    assert svc.undelivered() == [] and sink.digests == []
    (closed,) = svc.delivery.log.recent(1)
    assert (closed.state, closed.attempts) == ("obsolete", 1)


def test_metrics_count_the_digests_waiting_for_slack(bot: BotHarness) -> None:
    add(bot.simulator, "1D001", end_in_days=5)
    sink = FlakySink(down=True)
    alerts = build_alerts(api=bot.core.api, database=bot.core.store.database, sink=sink,
                          config=config(), clock=bot.clock)
    register_metrics(bot.core, alerts)
    try:
        gauge = "sigfox_bot_alert_digests_undelivered"
        assert alerts.scan(started_by="test").ok
        assert 'sigfox_bot_alert_digests_undelivered 1.0' in httpx.get(f"{bot.url}/metrics").text
        sink.down = False
        assert len(alerts.redeliver()) == 1
        assert METRICS.value(gauge) == 0
    finally:
        for source in (metrics.set_scan_source, metrics.set_last_success_source,
                       metrics.set_workflow_state_source, metrics.set_approvals_waiting_source,
                       metrics.set_undelivered_digests_source):
            source(None)


def test_an_upgraded_database_keeps_the_daily_digest_slack_refused(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    database = open_database(path)
    with database.transaction() as db:  # back to before migration 10, as an older bot left it
        db.execute("DROP INDEX idx_notifications_kind_day_state")
        db.execute("ALTER TABLE notifications DROP COLUMN kind")
        db.execute("ALTER TABLE notifications DROP COLUMN day")
        db.execute(f"PRAGMA user_version = {MIGRATIONS.index(add_daily_digests)}")
    set_value(database, "alerts.daily_digest", {
        "day": "2026-11-30", "sent_at": NOW, "due_at": NOW - 60, "late_by": 60.0,
        "undelivered": [CHANNEL]})
    database.close()

    upgraded = open_database(path)
    log = NotificationLog(upgraded)
    (waiting,) = log.daily_pending("2026-11-30")
    assert (waiting.kind, waiting.route, waiting.attempts) == ("daily", CHANNEL, 1)
    assert "undelivered" not in get_value(upgraded, "alerts.daily_digest")
    assert log.pending() == []  # not an alert digest


def test_a_refused_daily_digest_is_taken_by_one_sender_only(tmp_path: Path) -> None:
    log = NotificationLog(open_database(tmp_path / "bot.db"))
    refused = log.daily_attempted(CHANNEL, "2026-11-30", NOW, "ConnectionError: Slack is down")
    log.daily_attempted(METERING, "2026-11-30", NOW, None)  # delivered at once
    assert [n.id for n in log.daily_pending("2026-11-30")] == [refused]
    assert log.take(refused, NOW + 300) and not log.take(refused, NOW + 300)
    log.failed(refused, NOW + 300, "still down")  # pending again, for the next retry
    assert log.take(refused, NOW + 600)
    assert log.delivered(refused, NOW + 600) and log.daily_pending("2026-11-30") == []
    log.daily_attempted(CHANNEL, "2026-11-30", NOW, "down")
    log.close_daily_before("2026-12-01", NOW + DAY)  # tomorrow: yesterday's is not news
    assert log.daily_pending("2026-11-30") == []
