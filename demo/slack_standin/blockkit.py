"""Block Kit limits Slack enforces, cheap to check: a message or view it would refuse is refused.

Messages are Slack-style `[ERROR] ... [json-pointer:...]` lines, as in `response_metadata`.
Modal limits (api.slack.com/reference/surfaces/views): title, submit and close are plain text of at
most 24 characters; at most 100 blocks; private_metadata 3,000 characters.
"""

from __future__ import annotations

from typing import Any

_TEXT_LIMITS = {"section": 3000, "header": 150}


def check_blocks(blocks: Any, *, max_blocks: int = 50, pointer: str = "/blocks") -> list[str]:
    """Slack-style `[ERROR] ... [json-pointer:...]` messages for the limits checked here."""
    if not isinstance(blocks, list):
        return [f"[ERROR] expected array [json-pointer:{pointer}]"]
    errors: list[str] = []
    if len(blocks) > max_blocks:
        errors.append(f"[ERROR] no more than {max_blocks} items allowed [json-pointer:{pointer}]")
    for i, block in enumerate(blocks):
        errors += _check_block(block, f"{pointer}/{i}")
    return errors


def _too_long(value: Any, limit: int, where: str) -> list[str]:
    if isinstance(value, str) and len(value) > limit:
        return [f"[ERROR] must be less than {limit + 1} characters [json-pointer:{where}]"]
    return []


def _check_block(block: Any, where: str) -> list[str]:
    if not isinstance(block, dict) or not isinstance(block.get("type"), str):
        return [f"[ERROR] missing required field: type [json-pointer:{where}]"]
    errors = _too_long(block.get("block_id"), 255, f"{where}/block_id")
    limit = _TEXT_LIMITS.get(block["type"])
    if limit and isinstance(block.get("text"), dict):
        errors += _too_long(block["text"].get("text"), limit, f"{where}/text/text")
    for j, f in enumerate(block.get("fields") or []):
        if isinstance(f, dict):
            errors += _too_long(f.get("text"), 2000, f"{where}/fields/{j}/text")
    if isinstance(block.get("accessory"), dict):
        errors += _check_element(block["accessory"], f"{where}/accessory")
    for j, element in enumerate(block.get("elements") or []):
        if isinstance(element, dict):
            errors += _check_element(element, f"{where}/elements/{j}")
    return errors


def _check_element(element: dict[str, Any], where: str) -> list[str]:
    errors = _too_long(element.get("action_id"), 255, f"{where}/action_id")
    if element.get("type") == "button":
        errors += _too_long(element.get("value"), 2000, f"{where}/value")
        errors += _too_long(element.get("url"), 3000, f"{where}/url")
        text = element.get("text")
        if isinstance(text, dict):
            errors += _too_long(text.get("text"), 75, f"{where}/text/text")
    return errors


_VIEW_TEXT_LIMIT = 24


def check_modal(view: Any) -> list[str]:
    """Slack-style messages for a view passed to views.open that Slack would refuse."""
    if not isinstance(view, dict) or view.get("type") != "modal":
        return ["[ERROR] must be 'modal' [json-pointer:/view/type]"]
    errors: list[str] = []
    for key in ("title", "submit", "close"):
        text = view.get(key)
        if key == "title" and not isinstance(text, dict):
            errors.append("[ERROR] missing required field: title [json-pointer:/view/title]")
        elif isinstance(text, dict):
            if text.get("type") != "plain_text":
                errors.append(f"[ERROR] must be plain_text [json-pointer:/view/{key}/type]")
            errors += _too_long(text.get("text"), _VIEW_TEXT_LIMIT, f"/view/{key}/text")
    blocks = view.get("blocks")
    errors += check_blocks(blocks, max_blocks=100, pointer="/view/blocks")
    has_input = isinstance(blocks, list) and any(
        isinstance(b, dict) and b.get("type") == "input" for b in blocks)
    if has_input and not isinstance(view.get("submit"), dict):
        errors.append("[ERROR] a view with input blocks needs submit [json-pointer:/view/submit]")
    errors += _too_long(view.get("private_metadata"), 3000, "/view/private_metadata")
    errors += _too_long(view.get("callback_id"), 255, "/view/callback_id")
    for i, block in enumerate(blocks if isinstance(blocks, list) else []):
        is_input = isinstance(block, dict) and block.get("type") == "input"
        if is_input and (not isinstance(block.get("element"), dict) or not block.get("label")):
            errors.append(f"[ERROR] an input needs label and element "
                          f"[json-pointer:/view/blocks/{i}]")
    return errors
