"""A bot process that dies on purpose: `python crash_runner.py SPEC`.

Used by tests/test_crash_recovery.py. It opens the bot's database, resumes every unfinished
workflow and ticks until they end, making the device send its first message once it is
registered. SPEC says where to die, with `os._exit` so nothing is flushed or cleaned up:
`call:N:before` / `call:N:after` (around the N-th Sigfox call), `step:N` (after the N-th step
is recorded), or `none`. Exit code 0: every workflow ended; 17: died as asked.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from commands.config import parse_config
from commands.ports import ManualClock, Progress, ProgressKind
from commands.workflows import Core
from sigfox.client import SigfoxClient
from storage.db import open_database
from storage.store import Store

CRASHED = 17


class CrashingApi:
    """The real client, except that the process dies around one chosen call."""

    def __init__(self, client: SigfoxClient, call: int, when: str) -> None:
        self._client, self._call, self._when, self._count = client, call, when, 0

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)

        def counted(*args: Any, **kwargs: Any) -> Any:
            self._count += 1
            dying = self._count == self._call
            if dying and self._when == "before":
                os._exit(CRASHED)
            result = method(*args, **kwargs)
            if name.startswith("iter_"):
                result = list(result)
            if dying:
                os._exit(CRASHED)
            return result

        return counted


class CrashingNotifier:
    def __init__(self, step: int) -> None:
        self._step, self._count = step, 0

    def notify(self, progress: Progress) -> None:
        if progress.kind == ProgressKind.STEP_DONE:
            self._count += 1
            if self._count == self._step:
                os._exit(CRASHED)


class QuietNotifier:
    def notify(self, progress: Progress) -> None:
        pass


def main(spec: str, settings: dict[str, Any]) -> int:
    client = SigfoxClient(settings["url"], settings["login"], settings["password"],
                          rate_limits=False, timeout=2.0, sleep=lambda _s: None)
    kind, *rest = spec.split(":")
    api: Any = CrashingApi(client, int(rest[0]), rest[1]) if kind == "call" else client
    notifier: Any = CrashingNotifier(int(rest[0])) if kind == "step" else QuietNotifier()
    clock = ManualClock(settings["now"])
    core = Core(api=api, store=Store(open_database(Path(settings["db"]))), notifier=notifier,
                clock=clock, config=parse_config(settings["config"]))
    core.resume()
    for _ in range(50):
        if not core.jobs():
            return 0
        for step in core.store.active_steps_for_device(settings["device"], ["awaiting_uplink"]):
            settings_uplink(settings)
            core.handle_uplink(step.device_id)
        clock.advance(600)
        core.tick()
    return 1


def settings_uplink(settings: dict[str, Any]) -> None:
    import httpx

    httpx.post(f"{settings['root']}/_sim/devices/{settings['device']}/uplink",
               json={"data": "00"}, timeout=5).raise_for_status()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], json.loads(sys.argv[2])))
