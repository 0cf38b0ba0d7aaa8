"""The terminal notifier the CLI uses: one readable line per progress event."""

from __future__ import annotations

import io

from commands.ports import Progress, ProgressKind
from commands.terminal import TerminalNotifier


def test_one_line_per_event_with_people_named_plainly() -> None:
    stream = io.StringIO()
    notifier = TerminalNotifier(stream)
    notifier.notify(Progress(ProgressKind.DECIDED, "J-0007", "renew", ("C0FFEE",),
                             "Approved by <@U0APPROVE>"))
    notifier.notify(Progress(ProgressKind.WAITING, "J-0007", "renew", ("C0FFEE",),
                             "Waiting for Sigfox to release the id, 10 min"))
    assert stream.getvalue().splitlines() == [
        "J-0007 ✓ Approved by @U0APPROVE",
        "J-0007 … Waiting for Sigfox to release the id, 10 min",
    ]
