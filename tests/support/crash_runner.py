"""A bot process that dies on purpose: `python crash_runner.py SPEC SETTINGS_JSON`.

Used by tests/test_crash_recovery.py and tests/test_crash_inflight.py. It opens the bot's
database, resumes every unfinished workflow and ticks until they end, making the device send
its first message once it is registered. SPEC says where to die, with `os._exit` so nothing is
flushed or cleaned up (what `kill -9` does):

- `call:N:before` / `call:N:after`: around the N-th Sigfox call;
- `at:METHOD:before` / `at:METHOD:after`: around the first call of the client's METHOD (after
  it: its answer received, nothing recorded of it but what the bot wrote before the call);
- `step:N`: after the N-th step is recorded;
- `during:METHOD:SECONDS`: SECONDS after the first call of the client's METHOD started (the
  test makes that call slow at the backend, so the process dies while it is in flight);
  `METHOD|OTHER`: the first call of either;
- `none`: run to the end.

Exit code 0: every workflow ended; 17: died as asked; 1: still unfinished at the deadline.
The workflows run on a virtual clock moved 30 s per round; whether a call can still land is
judged on the real clock (`Core(landing_clock=...)`), as it must be.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from commands.config import parse_config
from commands.ports import ManualClock, Progress, ProgressKind, SystemClock
from commands.workflows import Core
from sigfox.client import SigfoxClient
from storage.db import open_database
from storage.store import Store

CRASHED = 17


class CrashingApi:
    """The real client, except that the process dies around one chosen call."""

    def __init__(self, client: SigfoxClient, spec: list[str]) -> None:
        self._client, self._count = client, 0
        self._mode, self._target, self._when = spec
        self._armed = True

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)
        if not callable(method):
            return method  # longest_call and other plain attributes

        def counted(*args: Any, **kwargs: Any) -> Any:
            self._count += 1
            dying = (self._mode == "call" and self._count == int(self._target)) or (
                self._mode == "at" and name == self._target)
            if dying and self._when == "before":
                os._exit(CRASHED)
            if self._mode == "during" and name in self._target.split("|") and self._armed:
                self._armed = False
                threading.Timer(float(self._when), os._exit, (CRASHED,)).start()
            result = method(*args, **kwargs)
            if name.startswith("iter_"):
                # Read through before a crash "after" it, still handed back as an iterator.
                result = iter(list(result))
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
                          rate_limits=False, timeout=settings.get("timeout", 2.0),
                          max_retries=settings.get("max_retries", 5),
                          backoff_cap=settings.get("backoff_cap", 30.0), sleep=lambda _s: None)
    parts = spec.split(":")
    api: Any = CrashingApi(client, parts) if parts[0] in ("call", "during", "at") else client
    notifier: Any = CrashingNotifier(int(parts[1])) if parts[0] == "step" else QuietNotifier()
    clock = ManualClock(settings["now"])
    core = Core(api=api, store=Store(open_database(Path(settings["db"]))), notifier=notifier,
                clock=clock, config=parse_config(settings["config"]),
                landing_clock=SystemClock())
    core.resume()
    deadline = time.monotonic() + settings.get("deadline", 60.0)
    while time.monotonic() < deadline:
        if not core.jobs():
            return 0
        for device in settings.get("devices", [settings.get("device")]):
            for step in core.store.active_steps_for_device(device, ["awaiting_uplink"]):
                send_uplink(settings, device)
                core.handle_uplink(step.device_id)
        clock.advance(30)
        core.tick()
        time.sleep(settings.get("pause", 0.0))
    return 1


def send_uplink(settings: dict[str, Any], device: str) -> None:
    httpx.post(f"{settings['root']}/_sim/devices/{device}/uplink",
               json={"data": "00"}, timeout=5).raise_for_status()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], json.loads(sys.argv[2])))
