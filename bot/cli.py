"""The `sigfox-bot` console script.

Each subcommand imports what it needs lazily, so `sigfox-bot --help` stays fast and a missing
optional piece never breaks the others.
"""

from __future__ import annotations

from importlib.metadata import version as _installed_version
from pathlib import Path
from typing import Any

import click


def _known_errors() -> tuple[type[Exception], ...]:
    """Failures an operator can fix from the message alone: shown as one sentence."""
    from slack_sdk.errors import SlackApiError, SlackClientError

    from commands.config import ConfigError
    from sigfox.errors import SigfoxError

    return (ConfigError, SigfoxError, SlackApiError, SlackClientError, OSError)


# Options of the whole program that people also type after the subcommand
# (`sigfox-bot serve --log-format json`): moved in front of it before Click parses.
GLOBAL_OPTIONS = ("--log-format", "--log-level")


def hoist_global_options(args: list[str]) -> list[str]:
    """`serve --log-format json` -> `--log-format json serve`; `--` ends the search."""
    front: list[str] = []
    rest: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "--":
            rest += args[index:]
            break
        name = arg.split("=", 1)[0]
        if name in GLOBAL_OPTIONS:
            takes_next = "=" not in arg and index + 1 < len(args)
            front += args[index:index + 2] if takes_next else [arg]
            index += 2 if takes_next else 1
            continue
        rest.append(arg)
        index += 1
    return front + rest


class CommandLineError(click.UsageError):
    """Click exits 2 on a usage error; here 2 means "critical alerts are open" (scan), so a
    mistyped command line is an ordinary failure, 1: a script never takes one for the other."""

    exit_code = 1


def _failure_status(error: click.UsageError) -> click.UsageError:
    return CommandLineError(error.message, error.ctx)


class BotGroup(click.Group):
    """Turns known failures of any subcommand into a one-line click error, not a traceback,
    and accepts the global options before or after the subcommand."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, hoist_global_options(list(args)))
        except click.UsageError as error:
            raise _failure_status(error) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as error:
            raise _failure_status(error) from None
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit):
            raise
        except _known_errors() as error:
            from commands.logs import redact

            text = " ".join(str(error).split()) or type(error).__name__
            raise click.ClickException(redact(text)) from None


@click.group(cls=BotGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(_installed_version("sigfox-chatops"), prog_name="sigfox-bot")
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    envvar="SIGFOX_BOT_LOG_FORMAT",
    default="text",
    show_default=True,
    show_envvar=True,
    help="Logs on stderr: readable lines, or one JSON object per line.",
)
@click.option(
    "--log-level",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    envvar="SIGFOX_BOT_LOG_LEVEL",
    default="INFO",
    show_default=True,
    show_envvar=True,
    help="Least severe events logged.",
)
def main(log_format: str, log_level: str) -> None:
    """Run the lifecycle of a Sigfox device fleet from Slack.

    Try it without any account: `sigfox-bot demo`.
    """
    from commands.logs import configure_logging

    configure_logging(log_format, log_level)


@main.command()
@click.option("--port", type=int, default=8040, show_default=True, help="Port on 127.0.0.1.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--devices", type=int, default=1000, show_default=True, help="Fleet size.")
@click.option("--seed", type=int, default=1, show_default=True, help="Seed of the fleet.")
@click.option(
    "--delete-hold",
    type=float,
    default=1800.0,
    show_default=True,
    help="Seconds a deleted id stays held (creating it again answers 409 meanwhile).",
)
@click.option("--no-rate-limits", is_flag=True, help="Switch the published rate limits off.")
@click.option(
    "--latency",
    default="0ms",
    show_default=True,
    help="Median answer time, like 300ms or 0.5s (log-normal spread, 1% slow answers).",
)
@click.option(
    "--no-id-ranges",
    is_flag=True,
    help="Refuse minId/maxId on the device list (400), as a backend without them would.",
)
@click.option("--hide-pacs", is_flag=True,
              help="Play an API user whose profile may not read PACs: devices come without "
                   "`pac` (the bot must then refuse renewals that delete).")
def simulator(
    port: int, host: str, devices: int, seed: int, delete_hold: float, no_rate_limits: bool,
    latency: str, no_id_ranges: bool, hide_pacs: bool,
) -> None:
    """Serve a simulated Sigfox API v2 under http://HOST:PORT/v2."""
    from sigfox.simulator.latency import parse_latency
    from sigfox.simulator.server import run_simulator

    try:
        median = parse_latency(latency)
    except ValueError as error:
        raise click.BadParameter(f"--latency: {error}", param_hint="--latency") from None
    run_simulator(
        host=host,
        port=port,
        devices=devices,
        seed=seed,
        delete_hold=delete_hold,
        rate_limits=not no_rate_limits,
        latency=median,
        id_ranges=not no_id_ranges,
        hide_pacs=hide_pacs,
    )


def _db_option(*, envvar: str | None = "SIGFOX_BOT_DB", help_text: str) -> Any:
    return click.option("--db", "db_path", type=click.Path(dir_okay=False, path_type=Path),
                        envvar=envvar, show_envvar=envvar is not None, default=None,
                        help=help_text)


def _env_with_db(db_path: Path | None) -> dict[str, str]:
    import os

    env = dict(os.environ)
    if db_path is not None:
        env["SIGFOX_BOT_DB"] = str(db_path)
    return env


@main.command()
def version() -> None:
    """Print the installed version (as `sigfox-bot --version` does)."""
    click.echo(f"sigfox-bot {_installed_version('sigfox-chatops')}")


@main.command()
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON document on stdout (the scan, totals, every alert).")
@click.option("--changes", is_flag=True,
              help="Print only what changed since the previous scan recorded in --db.")
@click.option(
    "--csv-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write the complete list of alerts here, one CSV per channel (every run).",
)
# Deliberately not SIGFOX_BOT_DB: a one-off scan sharing the running bot's database would mark
# its alerts as told, and the bot's next digest would stay silent about them.
@_db_option(envvar=None, help_text="Keep scan state in this SQLite file (needed by "
                                   "--changes). Without it nothing is written to disk.")
def scan(as_json: bool, changes: bool, csv_dir: Path | None, db_path: Path | None) -> None:
    """Scan the fleet once and print every open alert (SIGFOX_API_URL/LOGIN/PASSWORD,
    SIGFOX_BOT_CONFIG for thresholds and channels).

    \b
    Exit status: 0 nothing critical is open, 2 critical alerts are open, 1 the scan failed.
    """
    from bot.scan_cli import ScanOptions, run_terminal_scan

    if changes and db_path is None:
        raise click.UsageError("--changes compares with the previous scan, which is kept only "
                               "in a database: add --db FILE (the same file every run).")
    options = ScanOptions(as_json=as_json, changes=changes, csv_dir=csv_dir, db_path=db_path)
    raise SystemExit(run_terminal_scan(options))


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")
@_db_option(help_text="The database `serve` will use (checked, not created).")
def check(as_json: bool, db_path: Path | None) -> None:
    """Check the configuration, the Sigfox credentials and the Slack token (one line each).

    Reads SIGFOX_BOT_CONFIG, SIGFOX_API_URL/LOGIN/PASSWORD, SLACK_BOT_TOKEN, SLACK_API_URL,
    SLACK_APP_TOKEN or SLACK_SIGNING_SECRET, SIGFOX_CALLBACK_SECRET and SIGFOX_BOT_DB. Exits
    with status 1 when any check failed.
    """
    import json

    from bot.checks import Status, run_checks

    results = run_checks(_env_with_db(db_path))
    failed = [r for r in results if r.status is Status.FAIL]
    if as_json:
        click.echo(json.dumps({"ok": not failed, "checks": [r.as_dict() for r in results]}))
        raise SystemExit(1 if failed else 0)
    for result in results:
        click.echo(result.line())
    if failed:
        click.echo(f"{len(failed)} of {len(results)} checks failed.", err=True)
        raise SystemExit(1)
    click.echo("Ready to run: sigfox-bot serve")


@main.command()
@click.argument("destination", type=click.Path(dir_okay=False, path_type=Path))
@_db_option(help_text="The database to copy (the one `serve` uses).")
def backup(destination: Path, db_path: Path | None) -> None:
    """Copy the database to DESTINATION while the bot runs (a consistent online copy).

    The copy holds every recorded PAC: it is created readable by its owner only, and an
    existing DESTINATION is never overwritten.
    """
    from storage.db import DEFAULT_DB_PATH, backup_database

    source = db_path or Path(DEFAULT_DB_PATH)
    try:
        size = backup_database(source, destination)
    except FileNotFoundError as error:
        raise click.UsageError(f"{error}: give the bot's database with --db FILE "
                               "(or SIGFOX_BOT_DB).") from None
    except FileExistsError as error:
        raise click.UsageError(str(error)) from None
    click.echo(f"Copied {source} to {destination} ({size:,} bytes, readable by you only).")


@main.command()
@click.option("--interactive", "-i", is_flag=True,
              help="Type the /sigfox commands and click the buttons yourself.")
@click.option("--devices", type=click.IntRange(20, 20000), default=300, show_default=True,
              help="Size of the simulated fleet.")
@click.option("--seed", type=int, default=7, show_default=True, help="Seed of the fleet.")
@click.option("--speed", type=click.FloatRange(60, 1_000_000), default=1800.0,
              show_default=True,
              help="Virtual seconds per real second while waiting (1800: 30 min in 1 s).")
@_db_option(envvar=None, help_text="Keep the demo's database in this file (default: a "
                                   "temporary one, deleted at exit).")
def demo(interactive: bool, devices: int, seed: int, speed: float, db_path: Path | None) -> None:
    """Try the bot with no account: simulated Sigfox, real bot, a terminal for Slack.

    Plays a short scripted tour (alert digest, status, a renewal approved by a colleague, the
    re-registration and first message, what expires soon) and exits. Everything listens on
    127.0.0.1; no credentials are needed and nothing leaves the machine.
    """
    import logging

    from demo import DemoSettings, run_demo

    root = click.get_current_context().find_root()
    if root.get_parameter_source("log_level") is click.core.ParameterSource.DEFAULT:
        # The terminal is the show: the bot's INFO lines would interleave with the chat.
        logging.getLogger().setLevel(logging.WARNING)
    settings = DemoSettings(devices=devices, seed=seed, speed=speed, db_path=db_path)
    try:
        status = run_demo(settings, interactive=interactive)
    except KeyboardInterrupt:
        click.echo("\nDemo interrupted.", err=True)
        status = 130
    raise SystemExit(status)


@main.command()
@click.option("--http", "http_mode", is_flag=True,
              help="HTTP mode: Slack posts to /slack/events (needs SLACK_SIGNING_SECRET).")
@click.option("--port", type=int, default=3000, show_default=True,
              help="Port of /slack/events (HTTP mode), /healthz, /metrics, /sigfox/uplink.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@_db_option(help_text="The SQLite database (created if missing).  [default: sigfox-bot.db]")
def serve(http_mode: bool, port: int, host: str, db_path: Path | None) -> None:
    """Run the bot: Socket Mode when SLACK_APP_TOKEN is set, else use --http.

    Reads SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET, SLACK_APP_TOKEN, SLACK_API_URL,
    SIGFOX_API_URL/LOGIN/PASSWORD, SIGFOX_BOT_DB, SIGFOX_BOT_CONFIG, SIGFOX_CALLBACK_SECRET.
    """
    from bot.service import ServiceError, build_services
    from bot.service import serve as run

    try:
        services = build_services(_env_with_db(db_path), http=http_mode)
        run(services, http=http_mode, host=host, port=port)
    except ServiceError as error:
        raise click.ClickException(str(error)) from None


if __name__ == "__main__":
    main()
