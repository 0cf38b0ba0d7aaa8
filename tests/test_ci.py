"""CI runs exactly what README tells a newcomer to run, and that includes the type check."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_test_command() -> str:
    quickstart = (ROOT / "README.md").read_text().split("## Quickstart", 1)[1]
    block = re.search(r"```sh\n(.*?)```", quickstart, re.S)
    assert block is not None, "README's Quickstart has no shell block"
    lines = [line for line in block.group(1).splitlines() if "[test]" in line]
    assert len(lines) == 1, "README's Quickstart should have one install-and-test line"
    return lines[0].strip()


def test_ci_runs_readmes_test_command_verbatim() -> None:
    command = readme_test_command()
    script = (ROOT / ".ci" / "run").read_text()
    assert command in script.splitlines()


def test_readmes_test_command_runs_the_suite_and_mypy() -> None:
    command = readme_test_command()
    assert "-m pytest" in command
    assert "-m mypy" in command
