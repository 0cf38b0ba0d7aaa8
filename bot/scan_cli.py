"""`sigfox-bot scan`: one fleet scan from the command line, like a Unix tool.

- It prints the whole picture every time (open alerts by kind, the most urgent ones, where the
  complete list is); `changes=True` prints only what changed since the previous scan recorded
  in the database, which therefore needs one (`--db`).
- It keeps no state unless asked: without a database file it scans into a temporary one,
  deleted at exit, so a one-off never leaves `./sigfox-bot.db` behind (nor shares the running
  bot's, whose digests it would otherwise pre-empt).
- `--csv-dir` always receives the complete lists, one CSV per channel.
- `--json` prints exactly one JSON document on stdout, failures included.
- Exit status: 0 nothing critical is open, 2 critical alerts are open, 1 the scan failed.
  Progress goes to stderr, and only on a terminal: cron mails nothing when all is well.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from commands import human
from commands.alerting import (
    AlertDigest,
    AlertItem,
    AlertService,
    ConditionCount,
    DailyDigest,
    ExpiringSummary,
    Level,
    ScanProblem,
    ScanReport,
)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CRITICAL = 2
TOP_SHOWN = 10


@dataclass(frozen=True)
class ScanOptions:
    as_json: bool = False
    changes: bool = False
    csv_dir: Path | None = None
    db_path: Path | None = None  # None: a temporary database, gone at exit


class RecordingAlertSink:
    """Keeps what the scan hands over; prints nothing (the one-shot command prints itself)."""

    def __init__(self) -> None:
        self.digests: list[AlertDigest] = []
        self.problems: list[ScanProblem] = []

    def deliver_digest(self, digest: AlertDigest) -> None:
        self.digests.append(digest)

    def deliver_scan_problem(self, problem: ScanProblem) -> str | None:
        self.problems.append(problem)
        return None

    def deliver_daily(self, digest: DailyDigest) -> None:
        """The daily digest is the running bot's; a one-off scan never schedules one."""


# --------------------------------------------------------------------------- the command


def run_terminal_scan(options: ScanOptions, *, env: Mapping[str, str] | None = None,
                      out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Scan once; print the digest (or the JSON document); return the exit status."""
    from bot.service import build_alerts
    from commands.config import ConfigError, load_config
    from commands.ports import SystemClock
    from sigfox.client import SigfoxClient
    from sigfox.errors import SigfoxConfigError
    from storage.db import open_database

    out, err = out or sys.stdout, err or sys.stderr
    report_to = _Reporter(options, out, err)
    try:
        config = load_config((env or {}).get("SIGFOX_BOT_CONFIG") or None)
        client = SigfoxClient.from_env(env)
    except (ConfigError, SigfoxConfigError) as error:
        return report_to.failure(f"Cannot scan: {error}")
    with client, _database_file(options.db_path) as db_path:
        # The alerts as the running bot builds them, telling what they find to this command.
        service = build_alerts(api=client, database=open_database(db_path),
                               sink=RecordingAlertSink(), config=config, clock=SystemClock())
        report_to.progress(f"Scanning the fleet at {client.base_url} …")
        report = service.scan(started_by="cli", progress=report_to.progress_counter())
        if not report.ok:
            return report_to.failure(f"The scan failed: {report.error}", report)
        return report_to.success(service, report, client.base_url)


@contextmanager
def _database_file(path: Path | None) -> Iterator[Path]:
    if path is not None:
        yield path
        return
    folder = Path(tempfile.mkdtemp(prefix="sigfox-scan-"))
    try:
        yield folder / "scan.db"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


class _Reporter:
    """Prints the outcome as text or as one JSON document, and picks the exit status."""

    def __init__(self, options: ScanOptions, out: TextIO, err: TextIO) -> None:
        self.options = options
        self.out = out
        self.err = err
        self.show_progress = not options.as_json and _is_terminal(err)

    def progress(self, text: str) -> None:
        if self.show_progress:
            print(text, file=self.err, flush=True)

    def progress_counter(self) -> Callable[[int], None]:
        return lambda count: self.progress(f"  {count:,} devices read")

    def failure(self, text: str, report: ScanReport | None = None) -> int:
        if self.options.as_json:
            document = {"ok": False, "exit_status": EXIT_FAILED, "error": text,
                        "devices_read": report.devices if report else 0}
            print(json.dumps(document), file=self.out, flush=True)
        else:
            print(text, file=self.err, flush=True)
        return EXIT_FAILED

    def success(self, service: AlertService, report: ScanReport, api_url: str) -> int:
        digests = service.open_digests(report.scan_id)
        try:
            csv_files = {d.channel: self._keep_csv(d) for d in digests}
            critical = sum(c.count for d in digests for c in d.counts
                           if c.level is Level.CRITICAL)
            status = EXIT_CRITICAL if critical else EXIT_OK
            if self.options.as_json:
                document = scan_document(service, report, digests, csv_files, api_url,
                                         changes_only=self.options.changes)
                document["exit_status"] = status
                print(json.dumps(document, ensure_ascii=False), file=self.out, flush=True)
            else:
                self._print_text(report, digests, csv_files)
        finally:
            for digest in digests:
                if digest.csv_path is not None:
                    digest.csv_path.unlink(missing_ok=True)
        return status

    def _print_text(self, report: ScanReport, digests: tuple[AlertDigest, ...],
                    csv_files: dict[str | None, Path | None]) -> None:
        for digest in digests:
            text = (render_changes(digest) if self.options.changes
                    else render_digest(digest, csv_files.get(digest.channel)))
            print(text + "\n", file=self.out)
        if not digests:
            print("No open alert: no token ends soon, none is Invalid or Off Contract.",
                  file=self.out)
        print(f"Scanned {human.plural(report.devices, 'device')} in "
              f"{report.duration:.1f} s.", file=self.out, flush=True)

    def _keep_csv(self, digest: AlertDigest) -> Path | None:
        if self.options.csv_dir is None or digest.csv_path is None:
            return None
        self.options.csv_dir.mkdir(parents=True, exist_ok=True)
        target = self.options.csv_dir / csv_file_name(digest)
        shutil.copyfile(digest.csv_path, target)
        return target


def _is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def csv_file_name(digest: AlertDigest) -> str:
    """One file per channel, so two channels' lists never overwrite each other."""
    if not digest.channel:
        return digest.csv_name
    return digest.csv_name.replace("sigfox-alerts-", f"sigfox-alerts-{digest.channel}-", 1)


# --------------------------------------------------------------------------- text


def render_counts(counts: tuple[ConditionCount, ...]) -> list[str]:
    return [f"  {c.count:>7,}  {c.label}" for c in counts] or ["  none"]


def render_digest(digest: AlertDigest, csv_file: Path | None = None) -> str:
    """The whole picture of one channel: counts, the most urgent, where the rest is."""
    tz, now = digest.tz, digest.created_at
    lines = [digest.title() + (f" for {human.channel(digest.channel)}" if digest.channel
                               else "")]
    lines += render_counts(digest.counts)
    if digest.top:
        lines.append("Most urgent:")
        lines += [f"  - {item.describe(tz, now)}" for item in digest.top]
        where = (f"the complete list is in {csv_file}" if csv_file
                 else "pass --csv-dir DIR for the complete list")
        more = human.and_more(digest.total_open, len(digest.top), where)
        if more:
            lines.append(f"  {more}")
        elif csv_file:
            lines.append(f"  (also in {csv_file})")
    return "\n".join(lines)


def render_changes(digest: AlertDigest) -> str:
    """Only what changed since the previous scan of the same database."""
    tz, now = digest.tz, digest.created_at
    head = f"{human.channel(digest.channel)}: {digest.changes_line()} since the previous scan"
    lines = [head + f" ({human.plural(digest.total_open, 'alert')} open)"]
    lines += [f"  {item.change}: {item.describe(tz, now)}" for item in digest.announced]
    lines += [f"  resolved ({item.resolution or 'cleared'}): {item.describe(tz, None)}"
              for item in digest.resolved]
    shown = len(digest.announced) + len(digest.resolved)
    changed = digest.announced_total + digest.resolved_total
    more = human.and_more(changed, shown, "see the CSV's `change` column (--csv-dir DIR)")
    if more:
        lines.append(f"  {more}")
    return "\n".join(lines)


def render_expiring(summary: ExpiringSummary) -> str:
    tz = summary.tz
    as_of = (f"as of the scan of {human.moment(summary.as_of, tz)}" if summary.as_of
             else "no completed scan yet")
    lines = [f"{human.plural(summary.total, 'token')} end within "
             f"{human.plural(summary.days, 'day')} ({as_of})"]
    for week in summary.weeks:
        lines.append(f"  {week.label}: {week.count:,}")
        lines += [f"    - {human.device(d.device_id, d.name, d.device_type)} ends "
                  f"{human.day(d.token_end, tz)}" for d in week.devices]
        more = human.and_more(week.count, len(week.devices))
        if more:
            lines.append(f"    {more}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- JSON


def scan_document(service: AlertService, report: ScanReport, digests: tuple[AlertDigest, ...],
                  csv_files: dict[str | None, Path | None], api_url: str, *,
                  changes_only: bool) -> dict[str, Any]:
    """The one JSON document `scan --json` prints: the scan, the totals, every alert."""
    alerts = [_alert_json(channel, item)
              for channel, item in service.alert_items(report.scan_id)
              if not changes_only or item.change is not None]
    counts: Counter[tuple[str, str]] = Counter()
    for digest in digests:
        for c in digest.counts:
            counts[(c.condition.value, c.level.name.lower())] += c.count
    changes: Counter[str] = Counter()
    for digest in digests:
        changes.update({str(k): v for k, v in digest.changes.items()})
    return {
        "ok": True,
        "api_url": api_url,
        "scan": {"id": report.scan_id, "devices": report.devices,
                 "duration_seconds": round(report.duration, 3),
                 "finished_at": human.iso(service.clock.now())},
        "open_alerts": sum(counts.values()),
        "critical": sum(n for (_, level), n in counts.items() if level == "critical"),
        "counts": [{"condition": c, "level": lv, "count": n}
                   for (c, lv), n in sorted(counts.items())],
        "changes": dict(changes),
        "channels": [{"channel": d.channel, "open": d.total_open,
                      "csv": str(csv_files[d.channel]) if csv_files.get(d.channel) else None}
                     for d in digests],
        "alerts": alerts,
        "changes_only": changes_only,
    }


def _alert_json(channel: str | None, item: AlertItem) -> dict[str, Any]:
    return {
        "device_id": item.device_id, "name": item.name, "device_type": item.device_type,
        "group": item.group, "condition": item.condition.value,
        "level": item.level.name.lower(), "state": item.state,
        "token_end": human.iso(item.token_end), "first_seen": human.iso(item.first_seen or None),
        "change": item.change.value if item.change else None, "channel": channel,
    }
