"""Block Kit, read aloud in a terminal.

Generic on purpose: it knows Block Kit, not the bot, so whatever blocks the Slack edge builds
are shown without this module changing. Buttons become `[ Approve ]`, headers are underlined,
fields sit side by side as `label: value`, and Slack's markup (`<@U123>`, `<!date^...|fallback>`,
`<https://x|label>`, emoji codes) is turned into what a person would see in the client.
"""

from __future__ import annotations

import html
import re
import textwrap
from collections.abc import Callable, Iterable
from typing import Any

Block = dict[str, Any]
NameOf = Callable[[str], str]

WIDTH = 92

_EMOJI = {
    "white_check_mark": "✅", "heavy_check_mark": "✔", "x": "❌", "warning": "⚠️",
    "hourglass_flowing_sand": "⏳", "hourglass": "⌛", "arrows_counterclockwise": "🔄",
    "large_green_circle": "🟢", "red_circle": "🔴", "large_yellow_circle": "🟡",
    "no_entry_sign": "🚫", "no_entry": "⛔", "alarm_clock": "⏰", "bell": "🔔",
    "heavy_multiplication_x": "✖", "satellite_antenna": "📡", "satellite": "📡",
    "inbox_tray": "📥", "outbox_tray": "📤", "wastebasket": "🗑", "recycle": "♻️",
    "lock": "🔒", "key": "🔑", "calendar": "📅", "date": "📅", "memo": "📝",
    "rotating_light": "🚨", "information_source": "ℹ️", "mag": "🔍", "clipboard": "📋",
    "busts_in_silhouette": "👥", "bust_in_silhouette": "👤", "raised_hand": "✋",
    "thumbsup": "👍", "+1": "👍", "wave": "👋", "zzz": "💤", "stopwatch": "⏱",
    "envelope": "✉️", "incoming_envelope": "📨", "link": "🔗", "gear": "⚙️",
    "chart_with_downwards_trend": "📉", "chart_with_upwards_trend": "📈", "tada": "🎉",
    "arrow_right": "➡", "small_orange_diamond": "🔸", "small_blue_diamond": "🔹",
    "ballot_box_with_check": "☑️", "large_orange_circle": "🟠", "large_blue_circle": "🔵",
    "white_circle": "⚪", "black_circle": "⚫", "paperclip": "📎",
    "page_facing_up": "📄", "electric_plug": "🔌", "sos": "🆘", "arrow_forward": "▶",
}
_SLACK_MARKUP = re.compile(r"<([^<>]+)>")
_EMOJI_CODE = re.compile(r":([a-z0-9_+\-]+):")
_BOLD = re.compile(r"(?<![\w*])\*(?!\s)([^*\n]+?)(?<!\s)\*(?![\w*])")
_ITALIC = re.compile(r"(?<![\w`])_(?!\s)([^_\n`]+?)(?<!\s)_(?![\w`])")


def plain_name(user_id: str) -> str:
    return user_id


def mrkdwn_to_text(text: str, name_of: NameOf = plain_name) -> str:
    """Slack markup to what the client displays (bold marks dropped, mentions resolved)."""
    text = _SLACK_MARKUP.sub(lambda m: _markup(m.group(1), name_of), text)
    text = _BOLD.sub(r"\1", text)
    text = _ITALIC.sub(r"\1", text)
    text = _EMOJI_CODE.sub(lambda m: _EMOJI.get(m.group(1), m.group(0)), text)
    return html.unescape(text)


def _markup(inner: str, name_of: NameOf) -> str:
    target, _, label = inner.partition("|")
    if target.startswith("@"):
        return f"@{label or name_of(target[1:])}"
    if target.startswith("#"):
        return f"#{label or target[1:]}"
    if target.startswith("!date^"):
        return label or target
    if target.startswith("!subteam^"):
        return f"@{label or target.removeprefix('!subteam^')}"
    if target.startswith("!"):
        return f"@{label or target[1:]}"
    return label or target  # a link shows its label, as in Slack


def _text_of(obj: Any, name_of: NameOf) -> str:
    if isinstance(obj, str):
        return obj
    if not isinstance(obj, dict):
        return ""
    raw = str(obj.get("text", ""))
    return mrkdwn_to_text(raw, name_of) if obj.get("type") == "mrkdwn" else html.unescape(raw)


def element_text(element: Block, name_of: NameOf = plain_name) -> str:
    """One interactive or context element as a short inline string."""
    kind = element.get("type")
    if kind == "button":
        return f"[ {_text_of(element.get('text'), name_of)} ]"
    if kind in ("mrkdwn", "plain_text"):
        return _text_of(element, name_of)
    if kind == "image":
        return f"🖼 {element.get('alt_text', 'image')}"
    if kind in ("static_select", "external_select", "users_select", "conversations_select"):
        return f"[ {_text_of(element.get('placeholder'), name_of) or 'Choose'} ▾ ]"
    if kind == "overflow":
        return "[ ⋯ ]"
    if kind == "datepicker":
        return f"[ 📅 {element.get('initial_date', 'pick a date')} ]"
    return f"[{kind}]"


def buttons_of(blocks: Iterable[Block]) -> list[Block]:
    """Every button in a message, including section accessories, in reading order."""
    found: list[Block] = []
    for block in blocks:
        accessory = block.get("accessory")
        if isinstance(accessory, dict) and accessory.get("type") == "button":
            found.append({**accessory, "_block_id": block.get("block_id", "")})
        for element in block.get("elements") or []:
            if isinstance(element, dict) and element.get("type") == "button":
                found.append({**element, "_block_id": block.get("block_id", "")})
    return found


def _wrap(text: str, width: int) -> list[str]:
    """Lines of at most `width`, continuation lines indented; ``` code blocks kept as they are
    (a bar chart must not be re-flowed) and their fences dropped, as Slack draws them."""
    lines: list[str] = []
    for number, part in enumerate(text.split("```")):
        if number % 2:
            lines.extend(part.strip("\n").splitlines() or [""])
        elif part.strip("\n") or number == 0:
            lines.extend(_wrap_prose(part.strip("\n") if number else part.rstrip("\n"), width))
    return lines


def _wrap_prose(text: str, width: int) -> list[str]:
    lines: list[str] = []
    for raw in text.splitlines() or [""]:
        indent = len(raw) - len(raw.lstrip(" •-"))
        wrapped = textwrap.wrap(raw, width=width, subsequent_indent=" " * min(indent + 1, 8),
                                break_long_words=False, break_on_hyphens=False)
        lines.extend(wrapped or [""])
    return lines


def render_block(block: Block, name_of: NameOf = plain_name, width: int = WIDTH) -> list[str]:
    """Lines for one block (no indentation: the caller places them)."""
    kind = block.get("type")
    if kind == "header":
        title = _text_of(block.get("text"), name_of)
        return [title, "‾" * min(len(title), width)]
    if kind == "divider":
        return ["─" * min(40, width)]
    if kind == "section":
        return _section(block, name_of, width)
    if kind == "context":
        parts = [element_text(e, name_of) for e in block.get("elements") or []]
        return [f"  {line}" for line in _wrap("  ".join(p for p in parts if p), width - 2)]
    if kind == "actions":
        return ["  ".join(element_text(e, name_of) for e in block.get("elements") or [])]
    if kind == "rich_text":
        return _wrap(_rich_text(block), width)
    if kind == "image":
        return [f"🖼 {block.get('alt_text', 'image')}"]
    return [f"({kind} block)"]


def _section(block: Block, name_of: NameOf, width: int) -> list[str]:
    lines: list[str] = []
    if block.get("text"):
        lines += _wrap(_text_of(block["text"], name_of), width)
    fields = [_text_of(f, name_of).replace("\n", " ") for f in block.get("fields") or []]
    lefts, rights = fields[::2], fields[1::2]
    column = max((len(f) for f in lefts), default=0) + 2
    if column + max((len(f) for f in rights), default=0) > width:
        lines += [line for f in fields for line in _wrap_prose(f, width)]  # one a line
    else:
        for left, right in zip(lefts, [*rights, ""], strict=False):
            lines.append(f"{left:<{column}}{right}".rstrip())
    accessory = block.get("accessory")
    if isinstance(accessory, dict):
        shown = element_text(accessory, name_of)
        # Beside the text when it fits, as Slack places it; below otherwise.
        if lines and len(lines[-1]) + len(shown) + 2 <= width:
            lines[-1] = f"{lines[-1]}  {shown}"
        else:
            lines.append(shown)
    return lines


def _rich_text(block: Block) -> str:
    out: list[str] = []
    for element in block.get("elements") or []:
        for leaf in element.get("elements") or []:
            out.append(str(leaf.get("text") or leaf.get("url") or leaf.get("name") or ""))
        out.append("\n")
    return "".join(out).strip()


def render_message(
    text: str, blocks: list[Block] | None, name_of: NameOf = plain_name, width: int = WIDTH
) -> list[str]:
    """A message as lines: its blocks when it has some, else its (mrkdwn) text."""
    if not blocks:
        return _wrap(mrkdwn_to_text(text or "", name_of), width)
    lines: list[str] = []
    for block in blocks:
        lines += render_block(block, name_of, width)
    return lines


def first_line(text: str, blocks: list[Block] | None, name_of: NameOf = plain_name,
               limit: int = 48) -> str:
    """A short label for a message (to say which thread a reply belongs to)."""
    lines = [line for line in render_message(text, blocks, name_of) if line.strip("‾─ ")]
    head = lines[0].strip() if lines else ""
    return head if len(head) <= limit else head[: limit - 1] + "…"
