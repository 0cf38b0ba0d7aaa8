"""Is the running bot able to do its job? Named checks for `GET /readyz` and the start-up log.

`/healthz` answers whether the process lives (its database answers); `/readyz` whether it can
work: Sigfox accepts its credentials, Slack's `auth.test` accepts its token, the scheduler runs,
and the last fleet scan is recent. Each check is a named function returning a `CheckOutcome`
(ok, and the reason in words), so others add their own with `Readiness.add(name, check)`.

Probing Sigfox or Slack costs a call, so an outcome is reused for `ttl` seconds: an
orchestrator polling `/readyz` every few seconds never eats into Sigfox's rate limits.
`DependencyLog` turns the same outcomes into log lines: one line per dependency at start,
loud lines while one is down (at most once per `every` seconds each), and one when it is back.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from commands import human

log = logging.getLogger(__name__)

PROBE_TTL = 30.0  # seconds an outcome of Sigfox or Slack is reused
REPEAT_EVERY = 300.0  # seconds between two log lines about the same dependency still down
SCAN_TOO_OLD = 2  # scan intervals without a completed scan before the bot is not ready


@dataclass(frozen=True)
class CheckOutcome:
    ok: bool
    detail: str


ReadyCheck = Callable[[], CheckOutcome]


class Readiness:
    """The named readiness checks, each outcome cached `ttl` seconds (0: never cached)."""

    def __init__(self, *, ttl: float = PROBE_TTL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._checks: dict[str, tuple[ReadyCheck, bool]] = {}
        self._cache: dict[str, tuple[float, CheckOutcome]] = {}
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()

    def add(self, name: str, check: ReadyCheck, *, cached: bool = False) -> None:
        """Add (or replace) a check; `cached` for the ones that call another service."""
        self._checks[name] = (check, cached)
        self._cache.pop(name, None)

    @property
    def names(self) -> list[str]:
        return list(self._checks)

    def outcome(self, name: str) -> CheckOutcome:
        check, cached = self._checks[name]
        now = self._clock()
        with self._lock:
            kept = self._cache.get(name)
            if cached and kept is not None and now - kept[0] < self._ttl:
                return kept[1]
        try:
            result = check()
        except Exception as error:  # a check that breaks says so; it never takes /readyz down
            log.exception("readiness check %s failed", name)
            result = CheckOutcome(False, f"the check itself failed ({type(error).__name__})")
        with self._lock:
            self._cache[name] = (now, result)
        return result

    def report(self) -> dict[str, Any]:
        """`{"ok": bool, "checks": [{"name", "ok", "detail"}], "failing": [names]}`."""
        outcomes = {name: self.outcome(name) for name in self._checks}
        failing = [name for name, o in outcomes.items() if not o.ok]
        return {
            "ok": not failing,
            "checks": [{"name": n, "ok": o.ok, "detail": o.detail} for n, o in outcomes.items()],
            "failing": failing,
        }


# --------------------------------------------------------------------------- the checks


def sigfox_check(api: Any) -> ReadyCheck:
    """One page of one group: the credentials work, and the log can say which group."""
    from sigfox.errors import SigfoxError, SigfoxUnauthorized

    def check() -> CheckOutcome:
        try:
            group = next(iter(api.iter_groups(page_size=1)), None)
        except SigfoxUnauthorized:
            return CheckOutcome(False, f"Sigfox API at {api.base_url} refused the credentials "
                                       "(HTTP 401): check SIGFOX_API_LOGIN and "
                                       "SIGFOX_API_PASSWORD")
        except SigfoxError as error:
            return CheckOutcome(False, f"Sigfox API at {api.base_url} unreachable or failing: "
                                       f"{error}")
        seen = f"group {group.name!r}" if group and group.name else "no group visible"
        return CheckOutcome(True, f"Sigfox API ok at {api.base_url}, {seen}")

    return check


def slack_check(client: Any) -> ReadyCheck:
    """`auth.test` with the bot token: who the bot is, in which workspace."""
    from slack_sdk.errors import SlackApiError, SlackClientError

    def check() -> CheckOutcome:
        try:
            answer = client.auth_test()
        except SlackApiError as error:
            code = error.response.get("error", "unknown_error") if error.response else "?"
            return CheckOutcome(False, f"Slack refused SLACK_BOT_TOKEN ({code}): reinstall the "
                                       "app and copy the current Bot User OAuth Token")
        except (SlackClientError, OSError) as error:
            return CheckOutcome(False, f"Slack unreachable at {client.base_url} "
                                       f"({type(error).__name__}: {error})")
        team = answer.get("team") or "?"
        return CheckOutcome(True, f"connected to Slack as @{answer.get('user')} in "
                                  f"{answer.get('team_id') or '?'} ({team})")

    return check


def scheduler_check(scheduler: Callable[[], Any]) -> ReadyCheck:
    """APScheduler running, with its jobs (a stopped or job-less scheduler advances nothing)."""

    def check() -> CheckOutcome:
        running = scheduler()
        if running is None or not getattr(running, "running", False):
            return CheckOutcome(False, "the scheduler is not running: workflows do not advance")
        jobs = running.get_jobs()
        if not jobs:
            return CheckOutcome(False, "the scheduler runs no job")
        return CheckOutcome(True, f"scheduler running {human.plural(len(jobs), 'job')}")

    return check


def last_scan_check(last_success: Callable[[], float | None], interval: float,
                    now: Callable[[], float], started_at: float) -> ReadyCheck:
    """Not ready when no fleet scan has completed for `SCAN_TOO_OLD` scan intervals: alerts
    would be stale. A bot that just started gets the same grace before its first scan."""
    limit = SCAN_TOO_OLD * interval

    def check() -> CheckOutcome:
        finished = last_success()
        current = now()
        if finished is None:
            waited = current - started_at
            if waited > limit:
                return CheckOutcome(False, f"no fleet scan has completed in the "
                                           f"{human.duration(waited)} since start")
            return CheckOutcome(True, "no fleet scan completed yet (started "
                                      f"{human.duration(waited)} ago)")
        age = current - finished
        if age > limit:
            return CheckOutcome(False, f"the last completed fleet scan is "
                                       f"{human.duration(age)} old, more than twice the scan "
                                       f"interval ({human.duration(interval)}): alerts are stale")
        return CheckOutcome(True, f"last completed fleet scan {human.duration(age)} ago")

    return check


# --------------------------------------------------------------------------- the log


class DependencyLog:
    """Says how each dependency is: at start, then only on change or (down) every `every` s."""

    def __init__(self, readiness: Readiness, names: list[str], *, every: float = REPEAT_EVERY,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.readiness = readiness
        self.names = names
        self.every = every
        self.clock = clock
        self._last: dict[str, tuple[bool, float]] = {}

    def observe(self) -> None:
        for name in self.names:
            self._observe(name, self.readiness.outcome(name))

    def _observe(self, name: str, outcome: CheckOutcome) -> None:
        now = self.clock()
        before = self._last.get(name)
        if outcome.ok:
            if before is None or not before[0]:
                back = " (reachable again)" if before is not None else ""
                log.info("%s%s", outcome.detail, back)
            self._last[name] = (True, now)
            return
        if before is None or before[0] or now - before[1] >= self.every:
            log.error("%s is NOT usable: %s. The bot keeps trying; next word about it in %s "
                      "unless it recovers.", name, outcome.detail, human.duration(self.every))
            self._last[name] = (False, now)
