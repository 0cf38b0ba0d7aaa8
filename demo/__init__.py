"""`sigfox-bot demo`: the whole bot on a simulated backend, with a terminal for Slack.

No credentials and no network: the simulated Sigfox backend and the Slack Web API stand-in
listen on 127.0.0.1 only. `run_demo` plays the scripted tour (`tour.py`) or hands the keyboard
to a person (`interactive.py`).
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from demo.world import DemoSettings, DemoWorld

__all__ = ["DemoSettings", "DemoWorld", "run_demo"]


def run_demo(
    settings: DemoSettings,
    *,
    interactive: bool = False,
    stream: TextIO | None = None,
    keyboard: TextIO | None = None,
) -> int:
    """Start the world, play the tour or the interactive session, stop; the exit status."""
    out = stream or sys.stdout
    started = time.monotonic()
    print(f"Starting the bot on {settings.devices} simulated devices (seed {settings.seed})…",
          end="", file=out, flush=True)
    with DemoWorld(settings, out) as world:
        print(f" ready in {time.monotonic() - started:.1f}s.\nAll on 127.0.0.1. In "
              "#fleet-ops, alice runs the fleet and bob approves deletes.", file=out,
              flush=True)
        if interactive:
            from demo.interactive import run_interactive

            return run_interactive(world, keyboard or sys.stdin)
        from demo.tour import run_tour

        status = run_tour(world, lambda text: print(text, file=out, flush=True))
    print(f"\nThe tour took {time.monotonic() - started:.0f}s.", file=out, flush=True)
    return status
