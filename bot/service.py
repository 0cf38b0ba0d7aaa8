"""Wiring the bot from the environment, and running it (`sigfox-bot serve`).

`build_services(env)` reads the environment and `assemble` builds everything from the parts
and starts nothing: the store, the notifier, the alerts, the core, the Bolt app and its
listeners (the demo and the tests call `assemble` with their own parts). `serve()`
resumes the unfinished workflows, starts the scheduler and listens: Socket Mode when
SLACK_APP_TOKEN is set (plus the small HTTP server for /healthz, /metrics and the uplink
callback), else HTTP mode with Slack posting to /slack/events.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from slack_bolt import App
from slack_sdk import WebClient

from bot.ack_gate import (
    AcksFirstExecutor,
    CheckpointTransport,
    gate_of,
    install_safe_points,
    keep_collections_off_acks,
    socket_mode_handler,
)
from bot.alerts import SlackAlertSink
from bot.app import create_bolt_app, register_metrics
from bot.groups import DEFAULT_TTL as DEFAULT_GROUP_TTL
from bot.groups import GroupResolver
from bot.listeners import register_listeners
from bot.listeners.lanes import ReadLane
from bot.notifier import SlackNotifier
from bot.posting import DEFAULT_POST_INTERVAL
from bot.readiness import (
    DependencyLog,
    Readiness,
    last_scan_check,
    scheduler_check,
    sigfox_check,
    slack_check,
)
from bot.slack_client import make_web_client
from commands import metrics
from commands.alerting import AlertService, AlertSink
from commands.config import BotConfig, load_config
from commands.policy import Actor
from commands.ports import Clock, Notifier, SigfoxApi, SystemClock
from commands.progress_lane import ProgressLane
from commands.read_models import ReadModels
from commands.schedules import AlertSchedule
from commands.workflows import Core
from storage.db import DEFAULT_DB_PATH, SafeDatabase, open_database
from storage.edge import EdgeRecords
from storage.store import Store

if TYPE_CHECKING:
    from sigfox.client import SigfoxClient

log = logging.getLogger(__name__)

IDEMPOTENCY_KEEP = timedelta(days=1)
WATCH_EVERY = timedelta(minutes=1)  # how often Sigfox and Slack are looked at (cached probes)
PROBE_TIMEOUT = 5.0  # seconds: a readiness probe answers quickly or counts as unreachable


class ServiceError(ValueError):
    """The bot cannot start; the message says in one sentence what to set or fix."""


# How long a stopping bot waits for progress lines still queued for Slack.
CLOSE_SECONDS = 5.0


@dataclass
class Services:
    """Everything the running bot is made of; the demo and tests reuse the pieces."""

    core: Core
    client: WebClient
    bolt_app: App
    notifier: SlackNotifier
    groups: GroupResolver
    config: BotConfig
    alerts: AlertService
    # What the Slack side keeps for itself (delivery keys, long requests waiting for a reason).
    edge: EdgeRecords
    env: Mapping[str, str] = field(default_factory=dict)
    uplink_workers: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=2, thread_name_prefix="uplink")
    )
    # Commands that read Sigfox wait here, not on Bolt's workers (bot/listeners/lanes.py).
    read_lane: ReadLane = field(default_factory=ReadLane)
    # /readyz: named checks, filled by `add_readiness_checks` (others may add theirs).
    readiness: Readiness = field(default_factory=Readiness)
    scheduler: Any = None
    started_at: float = field(default_factory=time.time)

    def close(self) -> None:
        """Stop every thread the bot started, so none keeps working (posting to Slack, logging)
        after the bot stopped: the scheduler (a job running now, a fleet scan, ends on its own),
        then the work already handed over (the listeners', the DATA callbacks', the Sigfox
        reads; reads still queued are dropped: they change nothing), and last the progress lane,
        once the lines told so far are delivered (at most `CLOSE_SECONDS`). Safe to call twice;
        a bot that started nothing stops at once."""
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        self.bolt_app.listener_runner.listener_executor.shutdown(wait=True)
        self.uplink_workers.shutdown(wait=True)
        self.read_lane.close()
        if isinstance(self.core.notifier, ProgressLane):
            self.core.notifier.close(timeout=CLOSE_SECONDS)

    def actor_for(self, user_id: str) -> Actor:
        """For the alert buttons (`bot.listeners.alert_actions`): the user, groups resolved."""
        return self.groups.actor(user_id)

    def health(self) -> dict[str, Any]:
        """Liveness: the process answers and its database does."""
        self.core.workflow_counts()  # raises when the database is unusable
        return {"ok": True, "database": "ok"}

    def ready(self) -> dict[str, Any]:
        """Readiness: every named check (Sigfox, Slack, scheduler, last scan) with its reason."""
        return self.readiness.report()

    def handle_uplink(self, message: dict[str, Any]) -> None:
        """The DATA callback: answered at once, the renewal moves on in a worker thread, so
        it hears its first message within a second instead of at the next tick."""
        for workflow_id in self.core.note_uplink(str(message["device"])):
            self.uplink_workers.submit(self.core.advance, workflow_id)

    def extra_jobs(self) -> dict[str, Any]:
        return {"forget-idempotency-keys": (IDEMPOTENCY_KEEP, self.forget_old_deliveries)}

    def forget_old_deliveries(self) -> None:
        """Slack redelivers within minutes; a day of keys is plenty, and the table stays small."""
        now = self.core.clock.now()
        self.edge.forget_idempotency_keys(older_than=now - IDEMPOTENCY_KEEP.total_seconds())


def _require(env: Mapping[str, str], name: str, what: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise ServiceError(f"Environment variable {name} is not set: set it to {what}.")
    return value


def build_services(env: Mapping[str, str], *, clock: Clock | None = None,
                   api: SigfoxApi | None = None, client: WebClient | None = None,
                   http: bool = False, post_interval: float = DEFAULT_POST_INTERVAL
                   ) -> Services:
    """Build the bot from `env` (os.environ in production). Starts no thread, no server.
    `post_interval` paces a job's thread posts in real seconds (tests on a virtual clock: 0)."""
    token = _require(env, "SLACK_BOT_TOKEN", "the app's Bot User OAuth Token (xoxb-...)")
    if http:
        # Socket Mode verifies nothing with the signing secret; HTTP mode requires it.
        _require(env, "SLACK_SIGNING_SECRET", "the app's Signing Secret (Basic Information)")
    config = load_config(env.get("SIGFOX_BOT_CONFIG") or None)
    database = open_database(env.get("SIGFOX_BOT_DB") or DEFAULT_DB_PATH)
    return assemble(
        api=api or _sigfox_client(env, database),
        database=database,
        client=client or make_web_client(token, env.get("SLACK_API_URL") or None),
        config=config,
        clock=clock or SystemClock(),
        env=env,
        post_interval=post_interval,
        progress_lane=True,
    )


def assemble(
    *,
    api: SigfoxApi,
    database: SafeDatabase,
    client: WebClient,
    config: BotConfig,
    clock: Clock,
    env: Mapping[str, str] | None = None,
    post_interval: float = DEFAULT_POST_INTERVAL,
    group_ttl: float = DEFAULT_GROUP_TTL,
    listener_executor: Executor | None = None,
    progress_lane: bool = False,
    read_executor: Executor | None = None,
) -> Services:
    """The running bot from its parts: the one wiring `serve`, the demo and the tests share.

    The core reports to the Slack notifier and tells the alerts when a device is renewed; every
    listener is registered (`bot.listeners`). Starts no thread, no server. `post_interval`
    paces a job's thread posts; `group_ttl` is how long a user group's members are cached.
    `progress_lane`: the core tells its progress through a `ProgressLane`, so the tick never
    waits for Slack's pace (serve; tests that read the thread right after a tick go without).
    """
    store = Store(database)
    edge = EdgeRecords(database)
    notifier = SlackNotifier(
        client, ReadModels(store), edge, min_interval=post_interval,
        progress_interval=config.timing.progress_interval.total_seconds(),
        device_lines_up_to=config.timing.device_lines_up_to)
    alerts = build_alerts(api=api, database=database, sink=SlackAlertSink(client),
                          config=config, clock=clock)
    told: Notifier = ProgressLane(notifier) if progress_lane else notifier
    core = Core(api=workflow_api(api), store=store, notifier=told, clock=clock,
                config=config, on_renewed=alerts.resolve_for_device)
    groups = GroupResolver(client, config, ttl=group_ttl)
    bolt_app = create_bolt_app(client, listener_executor=listener_executor)
    gate = gate_of(bolt_app)
    if gate is not None:  # the lazy work yields to acks at its SQLite writes and Slack calls
        install_safe_points(gate, database, client)
    services = Services(core, client, bolt_app, notifier, groups, config, alerts, edge, env or {},
                        read_lane=ReadLane(read_executor))
    register_listeners(bolt_app, services)
    return services


def build_alerts(*, api: SigfoxApi, database: SafeDatabase, sink: AlertSink, config: BotConfig,
                 clock: Clock) -> AlertService:
    """The fleet scan and alerts as the running bot has them, delivering to `sink`: `assemble`
    builds them so (the Slack sink), and so does `sigfox-bot scan` (bot/scan_cli.py, a sink that
    keeps what it is given). Fleet scans pace their list walk by sleeping in their own thread
    (the scheduler's, the CLI's); the workflows never sleep: a wait comes back as a date the
    step records. Snoozes are audited with the rest of the bot's actions."""
    return AlertService(api=api, database=database, sink=sink, config=config, clock=clock,
                        audit=Store(database).audit)


def _sigfox_client(env: Mapping[str, str], database: SafeDatabase) -> SigfoxClient:
    from sigfox.client import SigfoxClient
    from storage.call_ledger import SqliteCallLedger

    # Every HTTP answer (and every call that got none) counts in /metrics, 429s by endpoint.
    # The per-device hourly calls are counted in the database, so a restart remembers them.
    # Each request is a safe point at which the lazy work yields to acks (bot.ack_gate).
    return SigfoxClient.from_env(env, on_call=metrics.record_sigfox_call,
                                 ledger=SqliteCallLedger(database),
                                 transport=CheckpointTransport())


def workflow_api(api: SigfoxApi) -> SigfoxApi:
    """The client the workflows use: the same connections and pacing, deferring every wait."""
    from sigfox.client import SigfoxClient

    return api.deferring() if isinstance(api, SigfoxClient) else api


def scheduler_pool(bolt_app: App) -> Executor | None:
    """The scheduler's jobs (workflow ticks, scans, digests) are background work like the
    listeners': they start once no Slack request is being answered, and park at their safe
    points while one is (bot.ack_gate). APScheduler's default is 10 threads: the same here."""
    gate = gate_of(bolt_app)
    if gate is None:
        return None
    return AcksFirstExecutor(ThreadPoolExecutor(10, thread_name_prefix="scheduler"), gate)


def start(services: Services, *, paused: bool = False) -> Any:
    """Resume unfinished workflows, publish metrics, start the scheduler; returns it.

    The fleet scan and the daily digest take their dates from the database (see
    `commands.schedules`): a restart moves neither. `paused` starts the scheduler without running
    anything, for whoever plays its part on a virtual clock (tests)."""
    from commands.runtime import start_scheduler

    register_metrics(services.core, services.alerts)
    add_readiness_checks(services)
    watch = DependencyLog(services.readiness, ["slack", "sigfox"])
    watch.observe()  # one line per dependency at start, loud when one is not usable
    resumed = services.core.resume()
    log.info("resumed %d workflow(s)", resumed)
    jobs = {**services.extra_jobs(), "watch-dependencies": (WATCH_EVERY, watch.observe)}
    scheduler = start_scheduler(services.core, tick=services.config.timing.tick,
                                extra_jobs=jobs, paused=paused,
                                job_pool=scheduler_pool(services.bolt_app))
    AlertSchedule(services.alerts).attach(scheduler)
    services.scheduler = scheduler
    return scheduler


def add_readiness_checks(services: Services) -> None:
    """Sigfox and Slack probed with their own short timeouts (a dead dependency is said within
    seconds, not after the clients' long retries), the scheduler, and the last scan's age."""
    readiness = services.readiness
    readiness.add("sigfox", sigfox_check(_sigfox_probe(services)), cached=True)
    readiness.add("slack", slack_check(_slack_probe(services)), cached=True)
    readiness.add("scheduler", scheduler_check(lambda: services.scheduler))
    readiness.add("last_scan", last_scan_check(
        services.alerts.last_success, services.config.alerts.scan_interval.total_seconds(),
        services.core.clock.now, services.core.clock.now()))


def _sigfox_probe(services: Services) -> Any:
    from sigfox.client import SigfoxClient

    if not services.env.get("SIGFOX_API_LOGIN"):
        return services.core.api  # built by the caller (tests, the demo): probe that one
    return SigfoxClient.from_env(services.env, max_retries=0, timeout=PROBE_TIMEOUT)


def _slack_probe(services: Services) -> WebClient:
    return make_web_client(services.client.token or "", services.client.base_url,
                           max_rate_limit_retries=0, max_connection_retries=0,
                           timeout=int(PROBE_TIMEOUT))


def connect_socket_mode(services: Services) -> Any:
    """Open the Socket Mode connection with SLACK_APP_TOKEN; returns the handler (close it to
    disconnect). Returns once connected: Slack's events then reach `services.bolt_app` over the
    socket, handled in the client's threads. `serve` uses it; tests drive it without serving."""
    handler = socket_mode_handler(services.bolt_app, _app_token(services))
    try:
        handler.connect()
    except BaseException:
        handler.close()  # the client's threads started with it: none outlives a refusal
        raise
    # connect() raises only when apps.connections.open fails: a refused WebSocket handshake
    # just logs, and the client's monitor tries again later. Say which case this is.
    if handler.client.is_connected():
        log.info("connected to Slack in Socket Mode")
    else:
        log.warning("Socket Mode connection not open yet; the client keeps retrying. "
                    "Commands typed meanwhile fail in Slack.")
    return handler


def _app_token(services: Services) -> str:
    app_token = services.env.get("SLACK_APP_TOKEN", "").strip()
    if not app_token:
        raise ServiceError("Environment variable SLACK_APP_TOKEN is not set: set it to the "
                           "app-level token (xapp-...) for Socket Mode, or run "
                           "`sigfox-bot serve --http`.")
    return app_token


def serve(services: Services, *, http: bool, host: str = "127.0.0.1", port: int = 3000) -> None:
    """Run until interrupted."""
    from bot.web import create_web_app, run_http

    if not http:
        _app_token(services)  # refuse before starting anything
    start(services)
    handler = None
    try:
        if not http:
            # Events come over the socket; the HTTP server below serves health and uplinks.
            handler = connect_socket_mode(services)
        signing_secret = services.env.get("SLACK_SIGNING_SECRET", "").strip() if http else None
        web = create_web_app(services.bolt_app, signing_secret=signing_secret,
                             uplink_handler=services.handle_uplink,
                             callback_secret=services.env.get("SIGFOX_CALLBACK_SECRET") or None,
                             health=services.health, ready=services.ready)
        gate = gate_of(services.bolt_app)
        if gate is not None:
            keep_collections_off_acks(gate)
        run_http(web, host=host, port=port)
    finally:
        if handler is not None:
            handler.close()
        services.close()  # the scheduler with the rest
