"""Each package says what it offers: a docstring, and `__all__` names that all resolve."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGES = ["bot", "commands", "storage", "sigfox", "sigfox.simulator", "demo"]


@pytest.mark.parametrize("name", PACKAGES)
def test_package_declares_its_public_names_and_each_resolves(name: str) -> None:
    package = importlib.import_module(name)
    assert (package.__doc__ or "").strip(), f"{name}/__init__.py should say what it offers"
    offered = package.__all__
    assert offered and len(set(offered)) == len(offered)
    for public in offered:
        assert getattr(package, public) is not None, f"{name}.{public}"


@pytest.mark.parametrize("name", ["bot", "commands"])
def test_an_unknown_name_is_an_attribute_error(name: str) -> None:
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        _ = importlib.import_module(name).nothing_here


def test_importing_the_cli_loads_neither_slack_nor_the_core() -> None:
    # `sigfox-bot --help` imports bot.cli: the package surfaces must stay lazy for that.
    probe = ("import sys, bot.cli; "
             "print(sorted(m for m in ('slack_bolt', 'commands.workflows') if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            check=True).stdout.strip()
    assert loaded == "[]"


def test_the_cores_seams_are_typed() -> None:
    # The core depends on `commands.ports.SigfoxApi` and reads steps as `StepRecord` records.
    root = Path(__file__).resolve().parent.parent / "commands"
    loose = [f"{path.name}:{number}" for path in sorted(root.glob("*.py"))
             for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
             if re.search(r"\b(api|step|steps|snapshot|approval): (Any|Sequence\[Any\])", line)]
    assert loose == []


def test_the_edges_read_the_core_through_its_read_models() -> None:
    # bot/ and the demo read the core through `commands.read_models` (and ask it through
    # `Core`), never through its `Store`: only the wiring, bot/service.py, builds one.
    root = Path(__file__).resolve().parent.parent
    wiring = root / "bot" / "service.py"
    edges = [p for p in [*(root / "bot").rglob("*.py"), *(root / "demo").glob("*.py")]
             if p != wiring]
    reaching = [f"{path.relative_to(root)}:{number}" for path in sorted(edges)
                for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
                if re.search(r"\.store\b|\bStore\b", line)]
    assert edges and reaching == []
