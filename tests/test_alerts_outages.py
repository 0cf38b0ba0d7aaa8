"""Alerts when things go wrong: restarts, Slack down during a scan, no channel, the daily digest
and the scan metrics, all through the real Slack sink against the Slack stand-in."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from slack_sdk import WebClient
from support.alerts import CHANNEL, add, client_for, config, refused_client, service

from bot.alerts import SlackAlertSink
from commands.config import parse_config
from commands.metrics import METRICS
from commands.schedules import DIGEST_JOB, DIGEST_KEY, AlertSchedule, local_day
from demo.slack_standin import DEFAULT_TOKEN, SlackApiStandIn, check_blocks
from sigfox.simulator import SimulatorServer

METERING = "C0METERING"


@pytest.fixture
def sim(make_simulator: Callable[..., SimulatorServer]) -> SimulatorServer:
    """An empty fleet without rate limits: each test adds the devices its alerts are about."""
    return make_simulator(devices=0, rate_limits=False)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """The bot's database file: a restart is a new service over the same file."""
    return tmp_path / "bot.db"


def sink(standin: SlackApiStandIn) -> SlackAlertSink:
    # No retry handlers: an injected failure must reach the service as it would in production.
    return SlackAlertSink(WebClient(token=DEFAULT_TOKEN, base_url=standin.url))


def texts(standin: SlackApiStandIn, channel: str = CHANNEL) -> list[str]:
    return [m["text"] for m in standin.messages(channel)]


# --------------------------------------------------------------------------- failed scans


def test_recovery_is_threaded_under_the_failure_across_a_restart(
    sim: SimulatorServer, db: Path, slack: SlackApiStandIn
) -> None:
    bad = refused_client(sim)
    assert not service(sim, db, sink(slack), api=bad).scan().ok
    (failure,) = slack.messages(CHANNEL)
    assert "The fleet scan failed" in failure["text"]

    # A new process (new sink, new service), credentials fixed: same database file.
    assert service(sim, db, sink(slack)).scan().ok
    posts = slack.calls_to("chat.postMessage")
    assert len(posts) == 2
    recovery = posts[1].params
    assert recovery["thread_ts"] == failure["ts"]  # in the failure's thread, not loose
    assert "work again" in recovery["text"]
    assert str(recovery.get("reply_broadcast")).lower() == "true"


def test_failure_alert_missed_by_slack_is_told_at_the_next_failing_scan(
    sim: SimulatorServer, db: Path, slack: SlackApiStandIn
) -> None:
    bad = refused_client(sim)
    svc = service(sim, db, sink(slack), api=bad)
    slack.fail("chat.postMessage", "service_unavailable")
    assert not svc.scan().ok
    assert slack.messages(CHANNEL) == []
    assert not svc.scan().ok and not svc.scan().ok
    assert len(slack.messages(CHANNEL)) == 1  # told once Slack answered, then not again
    assert "The fleet scan failed" in texts(slack)[0]


def test_recovery_not_announced_when_the_failure_never_was(
    sim: SimulatorServer, db: Path, slack: SlackApiStandIn
) -> None:
    bad = refused_client(sim)
    slack.fail("chat.postMessage", "service_unavailable")
    assert not service(sim, db, sink(slack), api=bad).scan().ok
    report = service(sim, db, sink(slack)).scan()
    assert report.ok and report.problem is None
    assert slack.messages(CHANNEL) == []


# --------------------------------------------------------------------------- Slack down


def test_digest_lost_to_a_slack_outage_is_told_at_the_next_scan(
    sim: SimulatorServer, db: Path, slack: SlackApiStandIn
) -> None:
    add(sim, "1A001", end_in_days=5)
    add(sim, "1A002", "off_contract", end_in_days=-3)
    svc = service(sim, db, sink(slack))
    slack.fail("chat.postMessage", "service_unavailable")
    first = svc.scan()
    assert first.ok and slack.messages(CHANNEL) == []
    (waiting,) = svc.delivery.log.pending()  # the notification log says what waits, and why
    assert (waiting.route, waiting.scan_id, waiting.attempts) == (CHANNEL, first.scan_id, 1)
    assert "service_unavailable" in waiting.last_error

    second = svc.scan()  # nothing changed at Sigfox: the lost announcements are told now
    assert second.ok and len(second.digests) == 1
    assert {(i.device_id, str(i.change)) for i in second.digests[0].announced} == {
        ("1A001", "new"), ("1A002", "new")}
    (digest,) = slack.messages(CHANNEL)
    thread = slack.thread(CHANNEL, digest["ts"])
    assert len(thread) == 1 + 1 + 2  # the digest, its CSV and its two lines
    assert svc.delivery.log.pending() == []
    assert svc.delivery.log.recent(1)[0].attempts == 2

    assert svc.scan().digests == ()  # told once: not again
    assert len(slack.messages(CHANNEL)) == 1


def test_digest_slack_refused_before_a_restart_is_posted_once_after_it(
    sim: SimulatorServer, db: Path, slack: SlackApiStandIn
) -> None:
    add(sim, "1A101", end_in_days=5)
    db = db
    slack.fail("chat.postMessage", "service_unavailable")
    assert service(sim, db, sink(slack)).scan().ok
    assert slack.messages(CHANNEL) == []

    restarted = service(sim, db, sink(slack))  # a new process: new client, same database
    assert [d.channel for d in restarted.redeliver()] == [CHANNEL]
    (digest,) = slack.messages(CHANNEL)
    assert "1 open" in digest["text"]
    assert restarted.redeliver() == [] and restarted.scan().digests == ()
    assert service(sim, db, sink(slack)).redeliver() == []
    assert len(slack.messages(CHANNEL)) == 1  # once, never twice


def test_only_the_channel_slack_refused_is_told_again(
    sim: SimulatorServer, db: Path, slack: SlackApiStandIn
) -> None:
    gas = next(t for t in sim.world.device_types.values() if t.name == "Gas meter")
    add(sim, "1B001", end_in_days=5, device_type=gas.id)  # streamed first: METERING first
    add(sim, "2B001", end_in_days=5)
    cfg = config(f'[[alerts.routes]]\nchannel = "{METERING}"\ndevice_types = ["Gas meter"]\n')
    svc = service(sim, db, sink(slack), cfg)
    slack.fail("chat.postMessage", "service_unavailable")
    assert svc.scan().ok
    assert slack.messages(METERING) == [] and len(slack.messages(CHANNEL)) == 1
    retried = svc.scan()
    assert [d.channel for d in retried.digests] == [METERING]
    assert len(slack.messages(METERING)) == 1 and len(slack.messages(CHANNEL)) == 1
    # Restart: nothing left to retry, nothing said.
    assert service(sim, db, sink(slack), cfg).scan().digests == ()


def test_failing_thread_after_the_digest_does_not_post_it_twice(
    sim: SimulatorServer, db: Path, slack: SlackApiStandIn,
    caplog: pytest.LogCaptureFixture,
) -> None:
    add(sim, "1C001", end_in_days=5)
    svc = service(sim, db, sink(slack))
    slack.fail("files.getUploadURLExternal", "service_unavailable")
    with caplog.at_level(logging.WARNING, "bot.alerts"):
        assert svc.scan().ok
    assert "thread incomplete" in caplog.text
    assert len(slack.messages(CHANNEL)) == 1
    assert svc.scan().digests == ()
    assert len(slack.messages(CHANNEL)) == 1


# --------------------------------------------------------------------------- no channel


def test_no_channel_configured_logs_a_clear_line_and_posts_nothing(
    sim: SimulatorServer, db: Path, slack: SlackApiStandIn,
    caplog: pytest.LogCaptureFixture,
) -> None:
    add(sim, "1D001", end_in_days=5)
    svc = service(sim, db, sink(slack), parse_config(""))
    with caplog.at_level(logging.WARNING, "bot.alerts"):
        report = svc.scan()
        svc.send_daily_digest()
    assert report.ok and report.digests[0].channel is None
    assert "no [alerts] channel configured" in caplog.text
    assert slack.calls_to("chat.postMessage") == []
    assert svc.list_alerts_and_snoozes().total_open == 1  # the alert is kept all the same


# --------------------------------------------------------------------------- daily digest


def test_daily_digest_in_slack_one_message_per_channel_with_its_csv(
    sim: SimulatorServer, db: Path, slack: SlackApiStandIn
) -> None:
    gas = next(t for t in sim.world.device_types.values() if t.name == "Gas meter")
    for n in range(6):
        add(sim, f"1E00{n}", end_in_days=1 + 5 * n)
    add(sim, "2E001", end_in_days=3, device_type=gas.id)
    add(sim, "2E002", end_in_days=90)  # outside the window
    cfg = config(f'[[alerts.routes]]\nchannel = "{METERING}"\ndevice_types = ["Gas meter"]\n')
    svc = service(sim, db, sink(slack), cfg)
    assert svc.scan().ok
    slack.reset()

    sent = svc.send_daily_digest()
    assert sorted(d.channel or "" for d in sent) == sorted([CHANNEL, METERING])
    (default,) = slack.messages(CHANNEL)
    assert default["text"] == "6 Sigfox tokens end in the next 30 days"
    blocks = _blocks(default["blocks"])
    assert check_blocks(blocks) == []
    assert blocks[0]["text"]["text"] == "Tokens ending in the next 30 days"
    sections = [b["text"]["text"] for b in blocks if b["type"] == "section"]
    weeks = [text for text in sections if text.startswith("*week of")]
    assert sum(int(w.split(": ")[1].split(" ")[0]) for w in weeks) == 6
    assert "`1E000`" in weeks[0]
    (metering,) = slack.messages(METERING)
    assert metering["text"].startswith("1 Sigfox tokens")
    uploads = {f.thread_ts: f for f in slack.files.values()}
    assert set(uploads) == {default["ts"], metering["ts"]}
    csv_text = (uploads[default["ts"]].content or b"").decode()
    assert csv_text.count("\n") == 1 + 6 and "1E005" in csv_text and "2E002" not in csv_text


def test_daily_digest_is_scheduled_at_digest_time_in_the_timezone(
    sim: SimulatorServer, db: Path
) -> None:
    cfg = config('digest_time = "08:30"\ntimezone = "Europe/Paris"\n')
    svc = service(sim, db, sink=None, cfg=cfg)
    scheduler = BackgroundScheduler()
    scheduler.start(paused=True)
    try:
        # Today's digest already out: the next one is at the next 08:30 in Paris.
        svc.fleet.claim_day(DIGEST_KEY, local_day(svc.clock.now(), cfg.alerts).isoformat(), {})
        AlertSchedule(svc).attach(scheduler)
        job = scheduler.get_job(DIGEST_JOB)
        assert job is not None
        nxt = job.next_run_time.astimezone(cfg.alerts.tz)
        assert (nxt.hour, nxt.minute, str(nxt.tzinfo)) == (8, 30, "Europe/Paris")
    finally:
        scheduler.shutdown(wait=False)


# --------------------------------------------------------------------------- metrics


def test_each_scan_publishes_its_duration_and_devices_by_token_state(
    sim: SimulatorServer, db: Path
) -> None:
    for n in range(3):
        add(sim, f"1F00{n}", end_in_days=100)
    add(sim, "1F010", "off_contract", end_in_days=-3)
    svc = service(sim, db, sink=None, api=client_for(sim, rate_limits=False))
    svc.sink = _Silent()
    report = svc.scan()
    assert report.ok
    state = "sigfox_bot_devices_by_token_state"
    assert METRICS.value(state, {"state": "ok"}) == 3
    assert METRICS.value(state, {"state": "off_contract"}) == 1
    assert METRICS.value("sigfox_bot_last_scan_duration_seconds") == pytest.approx(
        report.duration)


class _Silent:
    def deliver_digest(self, digest: object) -> None: ...

    def deliver_scan_problem(self, problem: object) -> None: ...

    def deliver_daily(self, digest: object) -> None: ...


def _blocks(raw: object) -> list[dict]:
    return raw if isinstance(raw, list) else json.loads(str(raw))
