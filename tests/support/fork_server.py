"""Bot processes that start in milliseconds: `python fork_server.py`, then one JSON line
`[spec, settings]` per bot run on stdin; each run is a forked child running
`crash_runner.main` (see there), and its exit code comes back as one line on stdout.

The server imports the bot once and opens nothing (no database, no socket, no thread) before
forking, so every child is a fresh bot process that dies as `kill -9` would; only the ~1 s of
imports per process is saved, which is what makes dozens of crash trials affordable.
"""

from __future__ import annotations

import json
import os
import sys
import traceback

import crash_runner


def serve() -> None:
    for line in sys.stdin:
        spec, settings = json.loads(line)
        pid = os.fork()
        if pid == 0:
            try:
                code = crash_runner.main(spec, settings)
            except BaseException:
                traceback.print_exc()
                code = 1
            sys.stderr.flush()
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        print(json.dumps(os.waitstatus_to_exitcode(status)), flush=True)


if __name__ == "__main__":
    serve()
