"""Helpers shared by the alert tests: a service on a simulator, a sink that records."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.service import build_alerts
from commands.alerting import (
    AlertDigest,
    AlertService,
    DailyDigest,
    ScanProblem,
)
from commands.config import BotConfig, parse_config
from sigfox.client import SigfoxClient
from sigfox.simulator import SimulatorServer
from storage.db import open_database

DAY = 86_400
DAY_MS = 86_400_000
CHANNEL = "C0DEFAULT1"


@dataclass
class RecordingSink:
    """Keeps what was delivered, with each digest's CSV read before the file goes away."""

    digests: list[AlertDigest] = field(default_factory=list)
    problems: list[ScanProblem] = field(default_factory=list)
    daily: list[DailyDigest] = field(default_factory=list)
    csv_texts: list[str] = field(default_factory=list)

    def deliver_digest(self, digest: AlertDigest) -> None:
        self.digests.append(digest)
        assert digest.csv_path is not None
        self.csv_texts.append(digest.csv_path.read_text(encoding="utf-8"))

    def deliver_scan_problem(self, problem: ScanProblem) -> str | None:
        self.problems.append(problem)
        return f"ref-{len(self.problems)}"

    def deliver_daily(self, digest: DailyDigest) -> None:
        self.daily.append(digest)

    def clear(self) -> None:
        self.digests.clear()
        self.problems.clear()
        self.daily.clear()
        self.csv_texts.clear()


def config(extra: str = "") -> BotConfig:
    return parse_config(f'[alerts]\nchannel = "{CHANNEL}"\n{extra}')


def client_for(sim: SimulatorServer, **options: Any) -> SigfoxClient:
    return SigfoxClient(sim.base_url, sim.login, sim.password, **options)


def refused_client(sim: SimulatorServer) -> SigfoxClient:
    """A client whose password the simulator refuses (401): every scan with it fails."""
    return SigfoxClient(sim.base_url, sim.login, "wrong-password")


def service(
    sim: SimulatorServer,
    db_path: Path,
    sink: Any,
    cfg: BotConfig | None = None,
    api: SigfoxClient | None = None,
) -> AlertService:
    return build_alerts(  # as `assemble` builds them, with the test's sink
        api=api or client_for(sim),
        database=open_database(db_path),
        sink=sink,
        config=cfg or config(),
        clock=sim.clock,
    )


def add(
    sim: SimulatorServer,
    device_id: str,
    token: str = "ok",
    *,
    end_in_days: float | None = None,
    device_type: str | None = None,
    automatic_renewal: bool | None = None,
) -> str:
    """A device straight into the simulated backend; `end_in_days` from virtual now. A valid
    token comes without automatic renewal unless asked (a token ending on a device that renews
    is not a warning); others renew at their next message, as Sigfox's default."""
    end = None if end_in_days is None else sim.world.now_ms() + int(end_in_days * DAY_MS)
    if automatic_renewal is None:
        automatic_renewal = token != "ok"
    sim.world.add_device(device_id, token=token, token_end_ms=end, device_type_id=device_type,
                         automatic_renewal=automatic_renewal)
    return device_id


def changes(digest: AlertDigest) -> dict[str, int]:
    return {k.value: v for k, v in digest.changes.items()}


def announced(sink: RecordingSink) -> list[tuple[str, str, str]]:
    """(device, condition, change) announced across the recorded digests."""
    return [
        (i.device_id, i.condition.value, str(i.change))
        for d in sink.digests
        for i in (*d.announced, *d.resolved)
    ]
