"""The `sigfox-bot` console script.

Each subcommand imports what it needs lazily, so `sigfox-bot --help` stays fast and a missing
optional piece never breaks the others.
"""

from __future__ import annotations

from pathlib import Path

import click

from sigfox_chatops import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sigfox-bot")
def main() -> None:
    """Run the lifecycle of a Sigfox device fleet from Slack."""


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
def simulator(
    port: int, host: str, devices: int, seed: int, delete_hold: float, no_rate_limits: bool
) -> None:
    """Serve a simulated Sigfox API v2 under http://HOST:PORT/v2."""
    from sigfox_chatops.sigfox.simulator.server import run_simulator

    run_simulator(
        host=host,
        port=port,
        devices=devices,
        seed=seed,
        delete_hold=delete_hold,
        rate_limits=not no_rate_limits,
    )


@main.command()
@click.option(
    "--csv-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Keep the digest's complete CSV list in this directory.",
)
def scan(csv_dir: Path | None) -> None:
    """Scan the fleet once (SIGFOX_API_URL, ...) and print the alert digest."""
    from sigfox_chatops.commands.terminal_alerts import run_terminal_scan

    raise SystemExit(run_terminal_scan(csv_dir))


if __name__ == "__main__":
    main()
