"""An `AlertSink` that prints readable text: used by `sigfox-bot scan` and the demo."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from commands import human
from commands.alerts import (
    AlertDigest,
    ConditionCount,
    DailyDigest,
    ExpiringSummary,
    ScanProblem,
)


class TerminalAlertSink:
    """Prints digests; keeps each CSV in `csv_dir` when one is given (else names it only)."""

    def __init__(self, stream: TextIO | None = None, csv_dir: Path | None = None) -> None:
        self.stream = stream or sys.stdout
        self.csv_dir = csv_dir
        self.delivered: list[AlertDigest | DailyDigest | ScanProblem] = []

    def deliver_digest(self, digest: AlertDigest) -> None:
        self.delivered.append(digest)
        self._print(render_digest(digest))
        self._print(self._keep_csv(digest.csv_path, digest.csv_name, digest.csv_rows))

    def deliver_scan_problem(self, problem: ScanProblem) -> str | None:
        self.delivered.append(problem)
        mark = "RESOLVED" if problem.resolved else "ALERT"
        self._print(f"[{mark}] {_channel(problem.channel)} {problem.text()}")
        return None

    def deliver_daily(self, digest: DailyDigest) -> None:
        self.delivered.append(digest)
        self._print(f"== Daily digest {_channel(digest.channel)} ==")
        self._print(render_expiring(digest.summary))
        self._print(self._keep_csv(digest.csv_path, digest.csv_name, digest.summary.total))

    def _keep_csv(self, path: Path | None, name: str, rows: int) -> str:
        if path is None or not path.exists():
            return ""
        if self.csv_dir is None:
            return f"(complete list: {rows:,} rows in {name}; pass --csv-dir to keep it)"
        self.csv_dir.mkdir(parents=True, exist_ok=True)
        target = self.csv_dir / name
        shutil.copyfile(path, target)
        return f"(complete list: {rows:,} rows in {target})"

    def _print(self, text: str) -> None:
        if text:
            print(text, file=self.stream, flush=True)


def _channel(channel: str | None) -> str:
    return f"#{channel}" if channel else "(default channel)"


def render_counts(counts: tuple[ConditionCount, ...]) -> list[str]:
    return [f"  {c.count:>7,}  {c.label}" for c in counts] or ["  none"]


def render_digest(digest: AlertDigest) -> str:
    tz = digest.tz
    lines = [f"== {digest.title()} in {_channel(digest.channel)} "
             f"(scan {digest.scan_id}: {digest.changes_line()}) =="]
    lines += render_counts(digest.counts)
    if digest.top:
        lines.append("Most urgent:")
        lines += [f"  - {item.describe(tz, digest.created_at)}" for item in digest.top]
    lines += _notes(digest)
    return "\n".join(lines)


def _notes(digest: AlertDigest) -> list[str]:
    tz, now = digest.tz, digest.created_at
    lines: list[str] = []
    if digest.announced_collapsed:
        lines.append(f"  > {digest.announced_summary()}")
    else:
        lines += [f"  > {item.change}: {item.describe(tz, now)}" for item in digest.announced]
    if digest.resolved_collapsed:
        lines.append(f"  > {digest.resolved_summary()}")
    else:
        lines += [f"  > resolved ({item.resolution or 'cleared'}): {item.device_id} "
                  f"{item.condition.label}" for item in digest.resolved]
    return lines


def render_expiring(summary: ExpiringSummary) -> str:
    tz = summary.tz
    as_of = (f"as of the scan of {human.moment(summary.as_of, tz)}" if summary.as_of
             else "no completed scan yet")
    lines = [f"{summary.total:,} tokens end within {summary.days} days ({as_of})"]
    for week in summary.weeks:
        lines.append(f"  {week.label}: {week.count:,}")
        lines += [f"    - {d.device_id} {d.name} ({d.device_type}) ends "
                  f"{human.moment(d.token_end, tz)}" for d in week.devices]
    return "\n".join(lines)


def run_terminal_scan(csv_dir: Path | None = None, stream: TextIO | None = None) -> int:
    """`sigfox-bot scan`: one fleet scan from the environment; returns the exit status."""
    from commands.alerts import AlertService
    from commands.config import ConfigError, load_config
    from commands.ports import SystemClock
    from sigfox.client import SigfoxClient
    from sigfox.errors import SigfoxConfigError
    from storage.db import open_database

    out = stream or sys.stdout
    try:
        config = load_config()
        client = SigfoxClient.from_env()
    except (ConfigError, SigfoxConfigError) as error:
        print(f"Cannot scan: {error}", file=sys.stderr)
        return 2
    sink = TerminalAlertSink(out, csv_dir)
    with client:
        service = AlertService(api=client, database=open_database(), sink=sink, config=config,
                               clock=SystemClock())
        print(f"Scanning the fleet at {client.base_url} ...", file=out, flush=True)
        report = service.scan(started_by="cli", progress=_progress(out))
    if not report.ok:
        print(f"Scan failed: {report.error}", file=sys.stderr)
        return 1
    if not report.digests:
        print("No new, worse or resolved alert since the last scan.", file=out)
    print(f"Scanned {report.devices:,} devices in {report.duration:.2f}s.", file=out)
    return 0


def _progress(out: TextIO) -> Callable[[int], None]:
    def show(count: int) -> None:
        print(f"  {count:,} devices read", file=out, flush=True)

    return show
