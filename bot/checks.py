"""`sigfox-bot check`: is this machine ready to run the bot? One line per check.

Each check makes at most one cheap call (Sigfox: the first device type; Slack: `auth.test`), so
it can run before every deployment. The lines say plainly what is missing or wrong and what to
do about it; none ever contains a secret.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from commands import human
from commands.logs import redact

DEFAULT_DB = "sigfox-bot.db"


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "FAIL"


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: Status
    detail: str

    def line(self) -> str:
        return f"[{self.status.value:^4}] {self.name}: {redact(self.detail)}"

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "status": self.status.value.lower(),
                "detail": redact(self.detail)}


Env = Mapping[str, str]
Check = Callable[[Env], CheckResult]


def check_config(env: Env) -> CheckResult:
    from commands.config import CONFIG_ENV_VAR, ConfigError, load_config

    path = env.get(CONFIG_ENV_VAR, "")
    try:
        config = load_config(path or None) if path else None
    except ConfigError as error:
        return CheckResult("configuration", Status.FAIL, str(error).replace("\n", "; "))
    if config is None:
        return CheckResult("configuration", Status.WARN,
                           f"{CONFIG_ENV_VAR} is not set: built-in defaults, so anyone may ask, "
                           "nobody may approve and alerts are posted nowhere (see "
                           "sigfox-bot.example.toml)")
    approvers = len(config.policy.approvers)
    if not approvers:
        return CheckResult("configuration", Status.WARN,
                           f"{path} is valid but lists no approvers: nobody may approve a renewal")
    if not config.alerts.channel:
        # Not fatal (routes may cover the fleet), but a device no route matches is only logged.
        routes = len(config.alerts.routes)
        return CheckResult("configuration", Status.WARN,
                           f"{path} has no [alerts] channel: alerts of devices that none of its "
                           f"{routes} route(s) match are not posted, only logged")
    return CheckResult("configuration", Status.OK,
                       f"{path}: {approvers} approver entr{'y' if approvers == 1 else 'ies'}, "
                       f"alerts to {config.alerts.channel}")


def check_sigfox(env: Env) -> CheckResult:
    from sigfox.client import SigfoxClient
    from sigfox.errors import SigfoxConfigError, SigfoxError, SigfoxUnauthorized

    try:
        client = SigfoxClient.from_env(env, max_retries=1, timeout=10.0)
    except SigfoxConfigError as error:
        return CheckResult("Sigfox API", Status.FAIL, str(error))
    with client:
        try:
            # The cheapest authenticated call: one page of one device type.
            first = next(client.iter_device_types(page_size=1), None)
        except SigfoxUnauthorized:
            return CheckResult("Sigfox API", Status.FAIL,
                               f"{client.base_url} refused SIGFOX_API_LOGIN/SIGFOX_API_PASSWORD "
                               "(HTTP 401): check the API user's login and password")
        except SigfoxError as error:
            return CheckResult("Sigfox API", Status.FAIL, f"{client.base_url}: {error}")
    seen = f"first device type {first.name!r}" if first else "no device type visible yet"
    return CheckResult("Sigfox API", Status.OK, f"{client.base_url} accepted the credentials "
                                               f"({seen})")


def check_slack(env: Env) -> CheckResult:
    from slack_sdk.errors import SlackApiError

    from bot.slack_client import make_web_client, slack_api_url

    token = env.get("SLACK_BOT_TOKEN", "")
    if not token:
        return CheckResult("Slack bot token", Status.FAIL,
                           "SLACK_BOT_TOKEN is not set: copy the Bot User OAuth Token (xoxb-...) "
                           "from the app's OAuth & Permissions page")
    url = slack_api_url(env.get("SLACK_API_URL") or None)
    client = make_web_client(token, url, max_rate_limit_retries=1, max_connection_retries=0,
                             timeout=10)
    try:
        answer = client.auth_test()
    except SlackApiError as error:
        code = error.response.get("error", "unknown_error") if error.response else "no answer"
        return CheckResult("Slack bot token", Status.FAIL,
                           f"auth.test refused SLACK_BOT_TOKEN ({code}): reinstall the app "
                           "and copy the current Bot User OAuth Token")
    except OSError as error:
        return CheckResult("Slack bot token", Status.FAIL,
                           f"cannot reach Slack at {url} ({type(error).__name__}: {error})")
    return CheckResult("Slack bot token", Status.OK,
                       f"auth.test: bot @{answer.get('user')} in workspace {answer.get('team')}")


def check_slack_mode(env: Env) -> CheckResult:
    app_token, secret = env.get("SLACK_APP_TOKEN", ""), env.get("SLACK_SIGNING_SECRET", "")
    if app_token and not app_token.startswith("xapp-"):
        return CheckResult("Slack mode", Status.FAIL,
                           "SLACK_APP_TOKEN does not start with xapp-: use the app-level token "
                           "with the connections:write scope (Basic Information page)")
    if app_token:
        return CheckResult("Slack mode", Status.OK, "Socket Mode (SLACK_APP_TOKEN is set)")
    if not secret:
        return CheckResult("Slack mode", Status.FAIL,
                           "neither SLACK_APP_TOKEN (Socket Mode) nor SLACK_SIGNING_SECRET "
                           "(HTTP mode) is set")
    return CheckResult("Slack mode", Status.OK,
                       "HTTP mode (SLACK_SIGNING_SECRET is set; run `sigfox-bot serve --http`)")


def check_callback(env: Env) -> CheckResult:
    if env.get("SIGFOX_CALLBACK_SECRET"):
        return CheckResult("Sigfox DATA callback", Status.OK,
                           "POST /sigfox/uplink is enabled (HTTP mode)")
    return CheckResult("Sigfox DATA callback", Status.WARN,
                       "SIGFOX_CALLBACK_SECRET is not set: first messages after a renewal are "
                       "found by polling instead of at once")


def check_database(env: Env) -> CheckResult:
    path = Path(env.get("SIGFOX_BOT_DB") or DEFAULT_DB)
    folder = path.resolve().parent
    if path.exists():
        if not os.access(path, os.R_OK | os.W_OK):
            return CheckResult("database", Status.FAIL, f"{path} exists but is not readable "
                                                        "and writable by this user")
        return CheckResult("database", Status.OK, f"{path} ({path.stat().st_size:,} bytes)")
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        return CheckResult("database", Status.FAIL,
                           f"{path} does not exist and {folder} is not a writable directory")
    return CheckResult("database", Status.OK, f"{path} will be created on first start")


def check_schedule(env: Env) -> CheckResult:
    """When the last fleet scan completed and when the next is due, from the database: the
    running bot takes its dates from there, so this is what it will do."""
    import sqlite3
    import time

    from commands.alerting import scan_timing_of
    from commands.config import CONFIG_ENV_VAR, ConfigError, load_config
    from storage.db import open_database

    path = Path(env.get("SIGFOX_BOT_DB") or DEFAULT_DB)
    if not path.exists():
        return CheckResult("fleet scans", Status.OK, "no database yet: the first scan runs "
                                                     "within a minute of `sigfox-bot serve`")
    try:
        config = load_config(env.get(CONFIG_ENV_VAR) or None)
    except ConfigError:
        return CheckResult("fleet scans", Status.WARN, "not known until the configuration "
                                                       "loads (see above)")
    settings = config.alerts
    try:
        database = open_database(path)
        try:
            timing = scan_timing_of(database, settings, time.time())
        finally:
            database.close()
    except (OSError, sqlite3.Error) as error:  # the database check says what is wrong with it
        return CheckResult("fleet scans", Status.WARN, f"cannot read the scans in {path} "
                                                       f"({type(error).__name__}: {error})")
    detail = timing.sentence(lambda ts: human.moment(ts, settings.tz))
    if timing.last_at is not None and timing.stale:
        return CheckResult("fleet scans", Status.WARN,
                           f"{detail} No successful scan for more than twice scan_interval "
                           f"({human.duration(settings.scan_interval)}): is the bot running?")
    return CheckResult("fleet scans", Status.OK, detail)


CHECKS: tuple[Check, ...] = (
    check_config, check_sigfox, check_slack, check_slack_mode, check_callback, check_database,
    check_schedule,
)


def run_checks(env: Env | None = None, checks: tuple[Check, ...] = CHECKS) -> list[CheckResult]:
    env = os.environ if env is None else env
    return [_guarded(check, env) for check in checks]


def _guarded(check: Check, env: Env) -> CheckResult:
    try:
        return check(env)
    except Exception as error:  # one broken check must not hide the others' answers
        name = check.__name__.removeprefix("check_")
        return CheckResult(name, Status.FAIL, f"the check itself failed: "
                                              f"{type(error).__name__}: {error}")
