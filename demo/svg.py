"""A picture of the demo for the README: the tour's transcript as a terminal-style SVG.

`python -m demo.svg docs/demo.svg` plays the tour and writes the part from the
renewal request to the final summary. SVG text stays sharp at any size and diffs as text.
"""

from __future__ import annotations

import io
import logging
import sys
from pathlib import Path
from xml.sax.saxutils import escape

from demo.tour import run_tour
from demo.world import DemoSettings, DemoWorld

LINE_HEIGHT = 18
CHAR_WIDTH = 8.4
PADDING = 16
COLOURS = {"narration": "#e5c07b", "typed": "#61afef", "bot": "#98c379", "update": "#c678dd",
           "button": "#56b6c2", "text": "#dcdfe4"}
FIRST_MARK = "3. "
LAST_MARK = "5. "
# Colour emoji are not in monospace fonts: a renderer without an emoji font (rsvg, ImageMagick,
# many viewers) draws empty boxes. The picture uses look-alikes DejaVu Sans Mono has.
GLYPHS = {
    "⏳": "◔", "⌛": "◔", "🔄": "↻", "🟢": "●", "🔴": "●", "🔹": "◆", "✅": "✔", "☑": "✔",
    "✋": "☛", "📥": "▸", "▶": "▸", "📎": "▤", "🔔": "♪", "⚠": "▲", "❌": "✘", "🚫": "✘", "💤": "z",
    "\ufe0f": "",
}
FALLBACK = "•"  # any other emoji


def plain_glyphs(line: str) -> str:
    """`line` with every emoji replaced by a glyph a monospace font draws."""
    out = "".join(GLYPHS.get(ch, ch) for ch in line)
    return "".join(FALLBACK if ord(ch) >= 0x1F000 else ch for ch in out)


def capture_tour(settings: DemoSettings) -> str:
    out = io.StringIO()
    with DemoWorld(settings, out) as world:
        status = run_tour(world, lambda text: print(text, file=out))
    if status != 0:
        raise RuntimeError(f"the tour did not complete:\n{out.getvalue()}")
    return out.getvalue()


def excerpt(transcript: str, first: str = FIRST_MARK, last: str = LAST_MARK) -> list[str]:
    lines = transcript.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"── {first}"))
    end = next(i for i, line in enumerate(lines) if line.startswith(f"── {last}"))
    kept = lines[start:end]
    # "Working on…" acknowledgements are noise in a still picture, and so is their header line.
    noise = {i for i, line in enumerate(kept) if "Working on `/sigfox" in line}
    noise |= {i - 1 for i in noise}
    return [plain_glyphs(line) for i, line in enumerate(kept) if i not in noise]


def _colour(line: str) -> str:
    stripped = line.strip()
    if line.startswith("──"):
        return COLOURS["narration"]
    if " › /sigfox" in line or " clicks [ " in line:
        return COLOURS["typed"]
    if "✎" in line:
        return COLOURS["update"]
    if stripped.startswith("[ ") and stripped.endswith(" ]"):
        return COLOURS["button"]
    if "sigfox-bot" in line or line.startswith("#"):
        return COLOURS["bot"]
    return COLOURS["text"]


def to_svg(lines: list[str], title: str = "sigfox-bot demo") -> str:
    width = int(max(len(line) for line in lines) * CHAR_WIDTH + 2 * PADDING)
    height = (len(lines) + 2) * LINE_HEIGHT + 2 * PADDING
    rows = [
        f'<text x="{PADDING}" y="{PADDING + (i + 2) * LINE_HEIGHT}" fill="{_colour(line)}" '
        f'xml:space="preserve">{escape(line)}</text>'
        for i, line in enumerate(lines)
    ]
    return "\n".join([
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="DejaVu Sans Mono, Menlo, Consolas, '
        'monospace" font-size="14">',
        '<rect width="100%" height="100%" rx="8" fill="#282c34"/>',
        f'<circle cx="{PADDING + 6}" cy="{PADDING + 4}" r="6" fill="#e06c75"/>',
        f'<circle cx="{PADDING + 26}" cy="{PADDING + 4}" r="6" fill="#e5c07b"/>',
        f'<circle cx="{PADDING + 46}" cy="{PADDING + 4}" r="6" fill="#98c379"/>',
        f'<text x="{width / 2}" y="{PADDING + 9}" fill="#9da5b4" text-anchor="middle">'
        f"{escape(title)}</text>",
        *rows,
        "</svg>",
    ]) + "\n"


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.WARNING)
    target = Path(argv[0] if argv else "docs/demo.svg")
    transcript = capture_tour(DemoSettings(devices=300, seed=7, speed=20_000.0))
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(to_svg(excerpt(transcript)), encoding="utf-8")
    target.with_suffix(".txt").write_text(transcript, encoding="utf-8")
    print(f"wrote {target} and {target.with_suffix('.txt')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
