"""Run crash_runner bot processes from a test, through one fork server per `BotProcesses`."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any

SERVER = Path(__file__).parent / "fork_server.py"
CRASHED = 17


class BotProcesses:
    """`run(spec, settings)` -> exit code of a fresh bot process (0 done, 17 died as asked)."""

    def __init__(self) -> None:
        # Lives as long as the server (a pipe could fill up and block it): closed in close().
        self._errors = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115
        self._server = subprocess.Popen(
            [sys.executable, str(SERVER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self._errors, text=True, cwd=SERVER.parent,
        )

    def run(self, spec: str, settings: dict[str, Any]) -> int:
        assert self._server.stdin is not None and self._server.stdout is not None
        self._server.stdin.write(json.dumps([spec, settings]) + "\n")
        self._server.stdin.flush()
        line = self._server.stdout.readline()
        assert line, f"the fork server died: {self.errors()}"
        code = int(json.loads(line))
        assert code in (0, CRASHED), f"{spec} exited {code}: {self.errors()}"
        return code

    def errors(self) -> str:
        self._errors.seek(0)
        return self._errors.read()[-3000:]

    def close(self) -> None:
        if self._server.stdin is not None:
            self._server.stdin.close()
        self._server.wait(timeout=10)
        self._errors.close()

    def __enter__(self) -> BotProcesses:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
