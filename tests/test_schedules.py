"""Schedules that survive restarts: the real service wiring (`bot.service.start`) on a virtual
clock, its scheduler driven by `support.virtual_time`, restarted as often as an operator might.

Every restart is a new process as far as the bot can tell: new services, new scheduler, the same
database file. Only the database remembers."""

from __future__ import annotations

import itertools
import json
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support.alerts import CHANNEL, add
from support.bot import APPROVER_ID, running_bot
from support.core import APPROVER, REQUESTER, build_fleet, core_config, sigfox_client
from support.slack_signing import app_home_opened_event
from support.virtual_time import VirtualScheduler

from bot.app import unregister_metrics
from bot.service import Services, build_services, start
from commands import human, metrics
from commands.planning import Request
from commands.ports import ManualClock, Target
from commands.schedules import (
    DIGEST_JOB,
    DIGEST_KEY,
    FIRST_RETRY,
    SCAN_JOB,
    AlertSchedule,
    retry_delay,
)
from commands.states import Kind
from demo.slack_standin import SlackApiStandIn
from sigfox.simulator import SimulatorServer

MakeSim = Callable[..., SimulatorServer]
HOUR = 3600.0
MINUTE = 60.0
DIGEST_HEADER = "Tokens ending in the next"


def _virtual_day(days_ahead: int = 3) -> datetime:
    """Midnight UTC a few days ahead of the wall clock: every wall-based trigger start (at most
    a day after now) is already behind the virtual clock, as in production."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today + timedelta(days=days_ahead)


class Bot:
    """The bot's process, restartable on one database, Slack stand-in and Sigfox simulator."""

    def __init__(self, sim: SimulatorServer, slack: SlackApiStandIn, tmp: Path, clock: ManualClock,
                 alerts_toml: str = "", policy_toml: str = "") -> None:
        config = tmp / "bot.toml"
        config.write_text(f'[policy]\n{policy_toml}\n[alerts]\nchannel = "{CHANNEL}"\n'
                          f'{alerts_toml}\n[timing]\ntick = "10m"\n')
        self.env = {
            "SLACK_BOT_TOKEN": slack.token, "SLACK_API_URL": slack.url,
            "SIGFOX_BOT_DB": str(tmp / "bot.db"), "SIGFOX_BOT_CONFIG": str(config),
        }
        # One Sigfox client for every "process": building one costs a TLS context (~0.2 s), and
        # its pacing (measured elsewhere) would make each virtual scan wait real 10 s windows.
        self.api = sigfox_client(sim)
        weakref.finalize(self, self.api.close)
        self.clock = clock
        self.services: Services | None = None
        self.driver: VirtualScheduler | None = None

    @contextmanager
    def running(self) -> Iterator[VirtualScheduler]:
        """One process lifetime: started now (virtual), stopped when the block ends."""
        self.services = build_services(self.env, clock=self.clock, api=self.api,
                                       post_interval=0.0)
        scheduler = start(self.services, paused=True)
        self.driver = VirtualScheduler(scheduler, self.clock)
        try:
            yield self.driver
        finally:
            self.services.close()  # the scheduler, and the progress lane the ticks told
            # `start` published this process's figures in the global registry: unpublish.
            unregister_metrics()

    def live_for(self, seconds: float) -> VirtualScheduler:
        with self.running() as driver:
            driver.run_until(self.clock.now() + seconds)
        return driver

    def scans(self) -> list[dict]:
        assert self.services is not None
        return list(reversed(self.services.alerts.fleet.recent_scans(1000)))


@pytest.fixture
def sim(make_simulator: MakeSim) -> SimulatorServer:
    sim = make_simulator(devices=0, rate_limits=False)
    for n in range(3):
        add(sim, f"5C00{n}", end_in_days=8 + n)  # ending within [alerts] warn_days
    return sim


@pytest.fixture
def day() -> datetime:
    """The virtual day the test's clock starts in (`_virtual_day`)."""
    return _virtual_day()


BotAt = Callable[..., Bot]


@pytest.fixture
def bot_at(sim: SimulatorServer, slack: SlackApiStandIn, tmp_path: Path, day: datetime) -> BotAt:
    """`bot_at(seconds_into_day, alerts_toml="", policy_toml="")`: the restartable bot on this
    test's simulator, Slack stand-in and database, its virtual clock that far into `day`."""

    def start_at(seconds: float, alerts_toml: str = "", policy_toml: str = "") -> Bot:
        clock = ManualClock(day.timestamp() + seconds)
        return Bot(sim, slack, tmp_path, clock, alerts_toml, policy_toml)

    return start_at


def digests(slack: SlackApiStandIn) -> list[dict]:
    return [m for m in slack.messages(CHANNEL) if any(
        b.get("type") == "header" and b["text"]["text"].startswith(DIGEST_HEADER)
        for b in m.get("blocks") or [])]


# --------------------------------------------------------------------------- scans


def test_a_fresh_database_scans_within_a_minute_of_start(bot_at: BotAt) -> None:
    bot = bot_at(10 * HOUR, 'scan_interval = "6h"')
    started = bot.clock.now()
    with bot.running() as driver:
        job = driver.scheduler.get_job(SCAN_JOB)
        assert job.next_run_time.timestamp() - started < MINUTE
        driver.run_until(started + MINUTE)
        (scan,) = bot.scans()
        assert scan["ok"] == 1 and scan["started_by"] == "schedule"
        assert scan["finished_at"] - started < MINUTE
        # The next is due one interval after that scan completed, and the job says so.
        assert job.id == SCAN_JOB
        nxt = driver.scheduler.get_job(SCAN_JOB).next_run_time.timestamp()
        assert nxt == pytest.approx(scan["finished_at"] + 6 * HOUR)


def test_a_restart_every_hour_still_scans_every_six_hours(bot_at: BotAt) -> None:
    bot = bot_at(1 * HOUR, 'scan_interval = "6h"\ndigest_time = "23:59"')
    started = bot.clock.now()
    for _ in range(13):  # a crash loop, a redeploy every hour: 13 processes over 13 hours
        bot.live_for(HOUR)
    finished = [s["finished_at"] for s in bot.scans()]
    assert all(s["ok"] == 1 for s in bot.scans())
    assert len(finished) == 3  # at start, then 6 and 12 hours later
    assert finished[0] - started < MINUTE
    gaps = [b - a for a, b in itertools.pairwise(finished)]
    # Each restart lands in the middle of an interval; none moves the next scan.
    assert all(6 * HOUR <= gap < 6 * HOUR + MINUTE for gap in gaps), gaps


def test_a_restart_shortly_after_a_scan_does_not_scan_again(bot_at: BotAt) -> None:
    bot = bot_at(2 * HOUR, 'scan_interval = "24h"\ndigest_time = "23:59"')
    clock = bot.clock
    bot.live_for(10 * MINUTE)
    with bot.running() as driver:
        (first,) = bot.scans()
        job = driver.scheduler.get_job(SCAN_JOB)
        assert job.next_run_time.timestamp() == pytest.approx(first["finished_at"] + 24 * HOUR)
        driver.run_until(clock.now() + 23 * HOUR)
        assert len(bot.scans()) == 1


def test_a_failed_scan_is_retried_sooner_with_back_off_bounded_by_the_interval(
    sim: SimulatorServer, slack: SlackApiStandIn, bot_at: BotAt
) -> None:
    bot = bot_at(3 * HOUR, 'scan_interval = "30m"\ndigest_time = "23:59"')
    clock = bot.clock
    sim.control("POST", "/faults", {"method": "GET", "path": "/v2/device-types*",
                                   "status": 401, "count": 1000})
    with bot.running() as driver:
        driver.run_until(clock.now() + 2 * HOUR)
        scans = bot.scans()
        assert scans and not any(s["ok"] for s in scans)
        gaps = [b["finished_at"] - a["finished_at"] for a, b in itertools.pairwise(scans)]
        first = FIRST_RETRY.total_seconds()
        assert gaps[:5] == pytest.approx([first, 2 * first, 4 * first, 8 * first, 30 * MINUTE])
        assert all(gap == pytest.approx(30 * MINUTE) for gap in gaps[4:])
        failures = [m for m in slack.messages(CHANNEL) if "fleet scan failed" in m["text"]]
        assert len(failures) == 1  # the failure alert is told once, as before

    # Restarted while failing: the back-off continues from the database, not from zero.
    sim.control("DELETE", "/faults")
    with bot.running() as driver:
        last = bot.scans()[-1]
        job = driver.scheduler.get_job(SCAN_JOB)
        assert job.next_run_time.timestamp() == pytest.approx(
            max(last["finished_at"] + 30 * MINUTE, clock.now() + 5), abs=30)
        driver.run_until(clock.now() + 31 * MINUTE)
        assert bot.scans()[-1]["ok"] == 1
        posted = [str(c.params.get("text", "")) for c in slack.calls_to("chat.postMessage")]
        assert any("work again" in text for text in posted)


def test_back_off_doubles_up_to_the_interval() -> None:
    interval = timedelta(hours=6)
    delays = [retry_delay(n, interval) for n in range(1, 12)]
    assert delays[:4] == [120, 240, 480, 960]
    assert delays == sorted(delays) and max(delays) == interval.total_seconds()


def test_a_manual_scan_moves_the_next_scheduled_one(bot_at: BotAt) -> None:
    bot = bot_at(4 * HOUR, 'scan_interval = "6h"\ndigest_time = "23:59"')
    clock = bot.clock
    with bot.running() as driver:
        driver.run_until(clock.now() + HOUR)
        assert bot.services is not None
        report = bot.services.alerts.scan(started_by="U0SOMEONE")  # `/sigfox scan`
        assert report.ok
        manual = bot.scans()[-1]
        job = driver.scheduler.get_job(SCAN_JOB)
        assert job.next_run_time.timestamp() == pytest.approx(manual["finished_at"] + 6 * HOUR)
        driver.run_until(clock.now() + 6 * HOUR - MINUTE)
        assert len(bot.scans()) == 2


# --------------------------------------------------------------------------- daily digest


def test_a_bot_down_across_digest_time_sends_it_once_at_start_marked_late(
    slack: SlackApiStandIn, day: datetime, bot_at: BotAt
) -> None:
    bot = bot_at(7 * HOUR, 'scan_interval = "6h"\ndigest_time = "09:00"')
    clock = bot.clock
    bot.live_for(HOUR)  # 07:00 to 08:00: scanned, the digest not yet due
    assert digests(slack) == []
    clock.advance(3 * HOUR)  # down from 08:00 to 11:00, across 09:00

    with bot.running() as driver:
        assert driver.scheduler.get_job(DIGEST_JOB).next_run_time.timestamp() < clock.now() + 60
        driver.run_until(clock.now() + HOUR)
    (late,) = digests(slack)
    assert "Late by 2 hours" in late["text"] and "not running at" in late["text"]
    assert bot.services is not None  # it waited for the scan due at start: today's fleet
    rescan = bot.scans()[-1]
    assert rescan["finished_at"] - day.timestamp() - 11 * HOUR < MINUTE
    assert bot.services.alerts.fleet.get_kv(DIGEST_KEY)["sent_at"] >= rescan["finished_at"]
    context = [b for b in late["blocks"] if b["type"] == "context"]
    assert any("the bot was not running at" in e["text"] for b in context for e in b["elements"])

    for _ in range(3):  # restarted again the same day (12:00 to 15:00): nothing more
        bot.live_for(HOUR)
    assert len(digests(slack)) == 1

    clock.advance(day.timestamp() + 33 * HOUR - clock.now())  # next day 09:00, bot up
    with bot.running() as driver:
        driver.run_until(clock.now() + 2 * HOUR)
    assert len(digests(slack)) == 2
    on_time = digests(slack)[-1]
    assert "Late" not in on_time["text"]
    assert bot.services is not None
    sent = bot.services.alerts.fleet.get_kv(DIGEST_KEY)
    assert sent["day"] == (day + timedelta(days=1)).date().isoformat()
    assert sent["late_by"] < 2 * MINUTE  # after the scan due at start, not marked late


def test_a_digest_slack_refused_is_retried_until_it_goes_out_once(
    slack: SlackApiStandIn, day: datetime, bot_at: BotAt
) -> None:
    bot = bot_at(8 * HOUR, 'scan_interval = "6h"\ndigest_time = "09:00"')
    with bot.running() as driver:
        driver.run_until(day.timestamp() + 9 * HOUR - MINUTE)  # scanned at 08:00
        slack.fail("chat.postMessage", "service_unavailable", times=3)
        ran = driver.run_until(day.timestamp() + 10 * HOUR)
    attempts = [r.at - day.timestamp() - 9 * HOUR for r in ran if r.job_id == DIGEST_JOB]
    assert attempts[:4] == [0, 5 * MINUTE, 10 * MINUTE, 15 * MINUTE]  # then tomorrow's
    (sent,) = digests(slack)
    assert "Late by 15 minutes" in sent["text"] and "did not take it" in sent["text"]
    assert bot.services is not None
    record = bot.services.alerts.fleet.get_kv(DIGEST_KEY)
    assert record["day"] == day.date().isoformat()
    # The notification log says how it went: refused three times, delivered at the fourth.
    assert not bot.services.alerts.daily_waiting(record["day"])
    (daily,) = [n for n in bot.services.alerts.delivery.log.recent() if n.kind == "daily"]
    assert (daily.route, daily.day, daily.state, daily.attempts) == (
        CHANNEL, record["day"], "delivered", 4)


def test_the_digest_of_a_running_bot_goes_out_at_digest_time_in_the_timezone(
    slack: SlackApiStandIn, bot_at: BotAt
) -> None:
    bot = bot_at(10 * HOUR, 'digest_time = "08:30"\ntimezone = "America/New_York"')
    clock = bot.clock  # 05:00 or 06:00 in New York
    with bot.running() as driver:
        ran = driver.run_until(clock.now() + 24 * HOUR)
    sent_at = [r.at for r in ran if r.job_id == DIGEST_JOB]
    assert len(digests(slack)) == 1 and len(sent_at) == 1
    local = datetime.fromtimestamp(sent_at[0], tz=bot.services.alerts.settings.tz)
    assert (local.hour, local.minute) == (8, 30)


def test_two_ticks_racing_for_the_digest_send_it_once(
    slack: SlackApiStandIn, bot_at: BotAt
) -> None:
    bot = bot_at(10 * HOUR, 'digest_time = "09:00"')
    clock = bot.clock
    with bot.running():
        assert bot.services is not None
        assert bot.services.alerts.scan().ok
        # A second process on the same file.
        other = build_services(bot.env, clock=clock, api=bot.api)
        schedules = [AlertSchedule(bot.services.alerts), AlertSchedule(other.alerts)] * 4
        barrier = threading.Barrier(len(schedules))
        results: list[object] = []

        def tick(schedule: AlertSchedule) -> None:
            barrier.wait()
            results.append(schedule.digest_if_due())

        threads = [threading.Thread(target=tick, args=(s,)) for s in schedules]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        other.close()
    assert sum(1 for r in results if r is not None) == 1
    assert len(digests(slack)) == 1


# --------------------------------------------------------------------------- say when


def test_slack_says_when_the_last_scan_completed_and_when_the_next_is_due(
    sim: SimulatorServer, tmp_path: Path
) -> None:
    cfg = core_config(f'[alerts]\nchannel = "{CHANNEL}"\nscan_interval = "6h"\n'
                      'timezone = "Europe/Paris"\n')
    with running_bot(sim, tmp_path / "bot.db", config=cfg) as bot:
        alerts, clock = bot.alerts, bot.clock
        bot.command("alerts", user=APPROVER_ID)
        assert "No fleet scan has completed yet; next scan due now." in bot.ephemeral_texts(
            APPROVER_ID)[-1]

        bot.command("scan", user=APPROVER_ID)
        finished = alerts.last_scan().finished_at
        due = human.moment(finished + 6 * HOUR, cfg.alerts.tz)
        reply = bot.ephemeral_texts(APPROVER_ID)[-1]
        assert "Fleet scan done" in reply
        assert f"next scan due {due} (in 6 hours)" in reply

        clock.advance(2 * HOUR)
        bot.command("alerts", user=APPROVER_ID)
        text = bot.ephemeral_texts(APPROVER_ID)[-1]
        assert f"Last scan completed {human.moment(finished, cfg.alerts.tz)} (2 hours ago)" \
            in text and f"next scan due {due} (in 4 hours)" in text

        bot.event(app_home_opened_event(APPROVER_ID))
        home = json.dumps(bot.standin.home_views[APPROVER_ID]["blocks"], ensure_ascii=False)
        assert f"next scan due {due} (in 4 hours)" in home


def test_metrics_expose_the_last_successful_scan_and_its_age(
    sim: SimulatorServer, bot_at: BotAt
) -> None:
    bot = bot_at(5 * HOUR, 'scan_interval = "6h"\ndigest_time = "23:59"')
    clock = bot.clock
    at = "sigfox_bot_last_successful_scan_timestamp_seconds"
    age = "sigfox_bot_last_successful_scan_age_seconds"
    with bot.running() as driver:
        assert metrics.METRICS.value(at) is None  # never scanned: no sample, not 1970
        driver.run_until(clock.now() + HOUR)
        (scan,) = bot.scans()
        assert metrics.METRICS.value(at) == pytest.approx(scan["finished_at"])
        assert metrics.METRICS.value(age) == pytest.approx(clock.now() - scan["finished_at"])
    # A failing scan leaves the last *successful* one in place, its age growing.
    sim.control("POST", "/faults", {"method": "GET", "path": "/v2/device-types*",
                                   "status": 401, "count": 1000})
    with bot.running() as driver:
        driver.run_until(clock.now() + 6 * HOUR)
        assert bot.scans()[-1]["ok"] == 0
        assert metrics.METRICS.value(at) == pytest.approx(scan["finished_at"])
        assert metrics.METRICS.value(age) == pytest.approx(clock.now() - scan["finished_at"])


# --------------------------------------------------------------------------- the other dates


def test_restarts_move_no_approval_reminder_nor_expiry(sim: SimulatorServer, bot_at: BotAt) -> None:
    """Reminders and expiries are dated from the request in the database: a bot restarted
    every 20 minutes reminds at 1 h and 2 h and lets the request expire at 3 h, no sooner."""
    fleet = build_fleet(sim)
    bot = bot_at(6 * HOUR, 'digest_time = "23:59"',
                 'requesters = ["*"]\napprovers = ["U0APPROVE"]\napproval_ttl = "3h"\n'
                 'remind_every = "1h"')
    clock = bot.clock
    with bot.running():
        assert bot.services is not None
        outcome = bot.services.core.request(Request(Kind.RENEW, REQUESTER, (fleet.off_contract,),
                                                    Target(CHANNEL), by_delete=True))
        approval = bot.services.core.store.get_approval(outcome.approval_id)
        assert approval is not None and approval.state == "pending"
    created, expires = approval.created_at, approval.expires_at
    seen: list[tuple[float, int, str]] = []
    for _ in range(10):  # a restart every 20 minutes, 3 h 20 min in all
        clock.advance(created + (len(seen) + 1) * 20 * MINUTE - clock.now())
        with bot.running() as driver:  # `start` advances the workflows once, at once
            now = bot.services.core.store.get_approval(outcome.approval_id)
            seen.append((clock.now() - created, now.reminders, now.state))
            assert now.expires_at == expires and now.created_at == created
            driver.run_until(clock.now() + 20 * MINUTE - 1)
    expected = [(age, min(int(age // HOUR), 2), "pending" if age < 3 * HOUR else "expired")
                for age, _, _ in seen]
    assert [(round(a), r, st) for a, r, st in seen] == [(round(a), r, st)
                                                        for a, r, st in expected]


def test_readyz_is_not_ready_once_no_scan_succeeded_for_twice_the_interval(
    sim: SimulatorServer, bot_at: BotAt
) -> None:
    bot = bot_at(2 * HOUR, 'scan_interval = "6h"\ndigest_time = "23:59"')
    clock = bot.clock
    bot.live_for(HOUR)  # scanned once, fine
    sim.control("POST", "/faults", {"method": "GET", "path": "/v2/device-types*",
                                   "status": 401, "count": 10_000})
    ready: list[bool] = []
    for _ in range(13):  # failing scans, and a restart every hour
        with bot.running() as driver:
            assert bot.services is not None
            ready.append(bot.services.readiness.outcome("last_scan").ok)
            driver.run_until(clock.now() + HOUR)
    # Ready while the last success (02:00 and a few seconds) is at most 12 h old: up to the
    # restart at 14:00; not at 15:00.
    assert ready == [True] * 12 + [False]
    sim.control("DELETE", "/faults")
    with bot.running() as driver:
        driver.run_until(clock.now() + 7 * HOUR)  # the retry, at most scan_interval later
        assert bot.services.readiness.outcome("last_scan").ok


def test_restarts_move_no_workflow_step(sim: SimulatorServer, bot_at: BotAt) -> None:
    """A renewal waiting for Sigfox to release a deleted id retries every `release_retry`
    (5 min) from the date its step recorded: restarts every 2 minutes neither bring an
    attempt forward nor push it back."""
    fleet = build_fleet(sim)  # the simulator holds deleted ids for 30 real minutes: 409s
    bot = bot_at(6 * HOUR, 'digest_time = "23:59"',
                 'requesters = ["*"]\napprovers = ["U0APPROVE"]')
    clock = bot.clock
    with bot.running() as driver:
        core = bot.services.core
        outcome = core.request(Request(Kind.RENEW, REQUESTER, (fleet.off_contract,),
                                       Target(CHANNEL), by_delete=True))
        assert core.decide(outcome.approval_id, APPROVER, approve=True).ok
        driver.run_until(clock.now() + 11 * MINUTE)  # a tick: deleted, re-create refused
    creates = lambda: len([c for c in sim.call_log()  # noqa: E731
                           if c["method"] == "POST" and c["path"].rstrip("/") == "/v2/devices"])
    attempts: list[tuple[float, float]] = []  # (virtual time of the attempt, its due date)
    for _ in range(15):  # 30 minutes, restarted every 2
        store = bot.services.core.store
        due = store.workflow_devices(outcome.workflow_id)[0].next_run
        before = creates()
        with bot.running() as driver:  # `start` advances what is due, at once
            step = bot.services.core.store.workflow_devices(outcome.workflow_id)[0]
            if creates() > before:
                attempts.append((clock.now(), due))
            else:
                assert clock.now() < due and step.next_run == due  # nothing moved
            driver.run_until(clock.now() + 2 * MINUTE - 1)
            clock.advance(1)
    # The first was already due when the loop began; each later one comes at the first start
    # on or after its recorded date.
    assert len(attempts) >= 4
    assert all(due <= at < due + 2 * MINUTE for at, due in attempts[1:]), attempts
