"""Every `action_id` the bot ever puts in a block has a listener in the app `serve` builds.

The ids are read from the bot's source: every `"action_id": ...` in a dict literal and the first
argument of every `button(...)` call, resolved to its value when it names a constant. Each is
then clicked, signed as Slack signs it, on the bot as `bot.service.assemble` wires it: Bolt
answers 404 ("Unhandled request") for an id nobody listens to.
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterator
from pathlib import Path

from support.bot import APPROVER_ID, running_bot

ROOT = Path(__file__).resolve().parent.parent
BUTTON_BUILDERS = {"button", "_button"}


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def _resolve(node: ast.expr, module: object) -> str | None:
    """A string literal, a module constant (`APPROVE`) or an imported one (`blocks.APPROVE`)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name):
        value = getattr(module, node.id, None)
    elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        value = getattr(getattr(module, node.value.id, None), node.attr, None)
    else:
        return None
    return value if isinstance(value, str) else None  # a parameter: resolved at its callers


def _key(node: ast.Dict, name: str) -> ast.expr | None:
    return next((v for k, v in zip(node.keys, node.values, strict=True)
                 if isinstance(k, ast.Constant) and k.value == name), None)


def _input_elements(tree: ast.AST) -> set[int]:
    """The elements of `input` blocks (modal fields): Slack sends their values with the form's
    submission, not as block actions, so they need no action listener."""
    assigned = {target.id: node.value for node in ast.walk(tree)
                if isinstance(node, ast.Assign | ast.AnnAssign) and isinstance(node.value, ast.Dict)
                for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
                if isinstance(target, ast.Name)}
    found: set[int] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Dict):
            continue
        kind = _key(node, "type")
        if isinstance(kind, ast.Constant) and kind.value == "input":
            element = _key(node, "element")
            if isinstance(element, ast.Name):
                element = assigned.get(element.id)
            if element is not None:
                found.add(id(element))
    return found


def _action_id_nodes(tree: ast.AST) -> Iterator[ast.expr]:
    fields = _input_elements(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict) and id(node) not in fields:
            yield from (v for k, v in zip(node.keys, node.values, strict=True)
                        if isinstance(k, ast.Constant) and k.value == "action_id")
        elif isinstance(node, ast.Call) and node.args:
            name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            if name in BUTTON_BUILDERS:
                yield node.args[0]


def action_ids_in_blocks() -> set[str]:
    found: set[str] = set()
    for path in sorted((ROOT / "bot").rglob("*.py")):
        module = importlib.import_module(_module_name(path))
        for node in _action_id_nodes(ast.parse(path.read_text(encoding="utf-8"))):
            value = _resolve(node, module)
            if value is not None:
                found.add(value)
    return found


def test_the_collector_finds_the_ids_of_both_kinds_of_buttons() -> None:
    ids = action_ids_in_blocks()
    # Job buttons (bot/blocks.py constants) and alert buttons and menus (bot/alerts.py).
    assert {"sigfox_approve", "sigfox_show_pac", "alert_details", "alert_menu"} <= ids
    assert "reason_input" not in ids  # a modal's field, sent with the form


def test_every_action_id_in_a_block_has_a_listener(make_simulator, tmp_path: Path) -> None:
    ids = sorted(action_ids_in_blocks())
    simulator = make_simulator(devices=0, rate_limits=False)
    with running_bot(simulator, tmp_path / "bot.db") as bot:
        unhandled = [action_id for action_id in ids
                     if bot.click(action_id, "0", APPROVER_ID).status_code == 404]
    assert unhandled == []
