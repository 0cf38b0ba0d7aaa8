"""`sigfox-bot demo`: the scripted tour end to end, the interactive mode, the rendering."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

import pytest
from click.testing import CliRunner

from bot.cli import main
from commands.logs import PAC_REDACTED
from demo import DemoSettings, DemoWorld
from demo.render import mrkdwn_to_text, render_message
from demo.slack_standin import Refusal
from demo.svg import GLYPHS, excerpt, plain_glyphs
from demo.tour import pick_expired_device, pick_tokenless_device, run_tour

FAST = DemoSettings(devices=120, seed=7, speed=100_000.0)
# The tour as `sigfox-bot demo` plays it (its default fleet), on a faster clock.
TOUR = DemoSettings(devices=300, seed=7, speed=100_000.0)
# The tour's steps, in order, as a person reads them in the transcript.
TOUR_STEPS = [
    r"#fleet-alerts\n.*\n\s+Sigfox fleet alerts: \d+ open",     # the scan's digest
    r"and \d+ more: the CSV in the thread lists all \d+",       # what the digest left out
    r"alice › /sigfox renew {restartable}",
    r"Renew device {restartable} by a restart",                 # the least destructive way
    r"Restarted: the token is OK again",
    r"J-0001: Renew finished: 1 of 1 device",
    r"alice › /sigfox renew {tokenless}",                       # no restart possible
    r"\[ Approve \]  \[ Reject \]",                              # the approval request
    r"alice clicks \[ Approve \]",
    r"only visible to alice\):\n\s+You requested this renewal",  # refused to the requester
    r"bob clicks \[ Approve \]",
    r"Approved by @bob",
    r"Deleted\. Waiting for Sigfox to release the id",          # the thread follows the delete
    r"Waiting for Sigfox to release the id, \d+ min",
    r"Registered again with the recorded PAC",
    r"First message received; token OK until",
    r"J-0002: Renew finished: 1 of 1 device",                   # the final summary
    r"alice › /sigfox expiring",
    r"tokens end within 30 days",
    r"week of .* │█+",                                           # the weeks as a bar chart
    r"and \d+ more: `/sigfox expiring 30 csv`",
]
TOUR_MAX_LINES = 124  # "one screen-height per scene": about 120, a waiting line or two aside
TIME = re.compile(r"\b\d\d:\d\d\b")


@dataclass
class Tour:
    status: int
    stops: list[str]
    transcript: str
    restartable: str
    tokenless: str
    pacs: set[str]
    raw: list[str]
    refused: list[Refusal]


@pytest.fixture(scope="module")
def tour() -> Tour:
    out = io.StringIO()
    stops: list[str] = []
    with DemoWorld(TOUR, out) as world:
        restartable, tokenless = pick_expired_device(world), pick_tokenless_device(world)
        status = run_tour(world, stops.append)
        pacs = all_pacs(world)
        record = world.slack.record
        raw = [str(m) for c in record.conversations.values() for v in c.values() for m in v]
        raw += [str(e) for e in record.ephemerals]
        refused = record.refusals
    return Tour(status, stops, out.getvalue(), restartable, tokenless, pacs, raw, refused)


@pytest.fixture(autouse=True)
def quiet_logs() -> Iterator[None]:
    names = ("bot", "commands", "storage", "sigfox", "demo")
    packages = [logging.getLogger(name) for name in names]
    for logger in packages:
        logger.setLevel(logging.WARNING)
    yield
    for logger in packages:
        logger.setLevel(logging.NOTSET)


def all_pacs(world: DemoWorld) -> set[str]:
    sim = world.simulator.world
    with sim.lock:
        return {*sim.pacs.values(), *(d.pac for d in sim.devices.values())}


def test_scripted_tour_shows_every_step_and_never_a_pac(tour: Tour) -> None:
    transcript = tour.transcript
    assert tour.status == 0, (tour.stops, transcript)
    position = 0
    for step in TOUR_STEPS:
        pattern = step.format(restartable=tour.restartable, tokenless=tour.tokenless)
        found = re.compile(pattern).search(transcript, position)
        assert found, f"step {step!r} missing after position {position}:\n{transcript}"
        position = found.start()
    assert PAC_REDACTED not in transcript  # nothing even needed redacting
    assert not [p for p in tour.pacs if p in transcript or any(p in r for r in tour.raw)]


def test_the_tour_makes_only_calls_slack_accepts_with_the_manifests_scopes(tour: Tour) -> None:
    # The demo's Slack is the tests' stand-in: spec, Block Kit, channels and app.yaml's scopes.
    assert tour.refused == []


def test_the_tour_fits_a_screen_says_each_fact_once_and_fits_80_columns(tour: Tour) -> None:
    lines = tour.transcript.splitlines()
    assert len(lines) <= TOUR_MAX_LINES, f"{len(lines)} lines:\n{tour.transcript}"
    wide = [line for line in lines if len(line) > 80]
    assert wide == []
    said: dict[str, int] = {}
    for line in lines:
        fact = TIME.sub("", line).strip()
        if len(fact) >= 50:
            said[fact] = said.get(fact, 0) + 1
    assert [fact for fact, times in said.items() if times > 1] == []
    assert "Working on" not in tour.transcript  # nothing said before an instant answer
    assert "\033[" not in tour.transcript  # plain when piped
    # the digest says a device once: `801B103 Pallet tracker`, not its id and type twice
    assert not re.search(r"`(\w+)` [^\n]*\b\1\b", tour.transcript)


def interactive(*lines: str) -> str:
    """What `sigfox-bot demo --interactive` prints on FAST's fleet and clock when `lines` are
    typed, one after the other; the session must end cleanly."""
    fleet = ["--devices", str(FAST.devices), "--seed", str(FAST.seed), "--speed", f"{FAST.speed:g}"]
    result = CliRunner().invoke(main, ["demo", "--interactive", *fleet],
                                input="".join(f"{line}\n" for line in lines))
    assert result.exit_code == 0, result.output
    return result.output


def test_cli_demo_interactive_with_two_people() -> None:
    with DemoWorld(FAST, io.StringIO()) as world:
        device = pick_expired_device(world)
    output = interactive(
        f"/sigfox renew {device} by delete", "Approve", "/as bob", "[ Approve ]", "/advance 45m",
        f"/uplink {device}", "/sigfox jobs", "/as nobody", "/nonsense", "Frobnicate", "/quit",
    )
    assert "You are now bob" in output
    assert "bob clicks [ Approve ]" in output
    assert "the virtual clock moves 45m forward" in output
    assert "Renew finished: 1 of 1 device(s) done" in output
    assert "Nobody called nobody" in output
    assert "Unknown command /nonsense" in output
    assert "No button labelled [ Frobnicate ]" in output


def test_demo_alert_buttons_are_answered_after_a_scan() -> None:
    # The demo is wired by the same builder as `serve`: the alert actions have listeners.
    with DemoWorld(DemoSettings(devices=25, seed=7, speed=100_000.0), io.StringIO()) as world:
        assert world.alerts.scan(started_by="schedule").ok
        world.settle()
        alice = world.person("alice")
        assert alice is not None
        found = world.slack.find_button("Details")
        assert found is not None, "the scan's thread should list alerts with their buttons"
        device = found[1]["value"].split("|")[0]
        assert world.click(alice, "Details")
        answers = [e["text"] for e in world.slack.record.ephemerals
                   if e["ephemeral_user"] == alice.user_id]
    assert any(text.startswith(f"*{device}*") and "Token:" in text for text in answers), answers


def test_interactive_ends_at_end_of_input() -> None:
    result = CliRunner().invoke(main, ["demo", "-i", "--devices", "50"], input="")
    assert result.exit_code == 0


def test_rendering_of_block_kit() -> None:
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": "Renewal"}},
        {"type": "section", "text": {"type": "mrkdwn",
                                     "text": "*Asked* by <@U0ALICE> _today_ :white_check_mark:"},
         "accessory": {"type": "button", "text": {"type": "plain_text", "text": "Details"},
                       "action_id": "x"}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": "*Token* OK"},
                                       {"type": "mrkdwn", "text": "*Ends* 2027-01-01"}]},
        {"type": "context", "elements": [{"type": "mrkdwn",
                                          "text": "<!date^1700000000^{date}|2023-11-14>"}]},
        {"type": "actions", "elements": [
            {"type": "button", "text": {"type": "plain_text", "text": "Approve"},
             "action_id": "a", "style": "primary"},
            {"type": "button", "text": {"type": "plain_text", "text": "Reject"},
             "action_id": "r"}]},
    ]
    names = {"U0ALICE": "alice"}
    lines = render_message("fallback", blocks, lambda u: names.get(u, u))
    assert lines[0] == "Renewal" and set(lines[1]) == {"‾"}
    assert lines[2] == "Asked by @alice today ✅  [ Details ]"
    assert lines[3].startswith("Token OK") and lines[3].endswith("Ends 2027-01-01")
    assert lines[4].strip() == "2023-11-14"
    assert lines[5] == "[ Approve ]  [ Reject ]"
    assert render_message("plain *text*", None) == ["plain text"]


def test_mrkdwn_links_channels_and_escapes() -> None:
    text = "See <https://x.example/a|the doc> in <#C0FLEETOPS|fleet-ops> &amp; `first_message`"
    assert mrkdwn_to_text(text) == "See the doc in #fleet-ops & `first_message`"


# Characters DejaVu Sans Mono draws besides ASCII: the transcript's frame and the look-alikes.
DRAWABLE = set("─‾•↳⋯✎·›…") | {g for g in GLYPHS.values() if g}


def test_readme_picture_is_the_renewal_in_characters_a_monospace_font_draws() -> None:
    svg = (Path(__file__).parent.parent / "docs" / "demo.svg").read_text(encoding="utf-8")
    root = ElementTree.fromstring(svg)  # well-formed, or browsers show nothing at all
    lines = [t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text")]
    text = "\n".join(lines)
    for step in ("alice › /sigfox renew", "alice clicks [ Approve ]", "bob clicks [ Approve ]",
                 "Deleted.", "Registered again", "First message received",
                 "Renew finished: 1 of 1"):
        assert step in text, step
    assert "Working on" not in text
    undrawable = {ch for ch in text if not ch.isascii() and ch not in DRAWABLE}
    assert not undrawable, f"redraw with python -m demo.svg: {undrawable}"


def test_emoji_become_glyphs_for_the_picture() -> None:
    assert plain_glyphs("⏳ Waiting ☑️ 🔹 done 🦄") == "◔ Waiting ✔ ◆ done •"
    lines = excerpt("── 3. a\n  sigfox-bot (only visible to alice):\n"
                    "         Working on `/sigfox renew`…\nkept 🟢\n── 5. b\n")
    assert lines == ["── 3. a", "kept ●"]


def test_interactive_reject_asks_why_in_a_form() -> None:
    with DemoWorld(FAST, io.StringIO()) as world:
        device = pick_expired_device(world)
    output = interactive(
        "/form too early", f"/sigfox renew {device} by delete", "/as bob", "Reject", "/form no",
        "/form Wrong device, it was sold", f"/sigfox history {device}", "/quit",
    )
    assert "No form is open" in output
    assert "A form opens: Reject the request" in output
    assert "the form answers: Say why you reject it" in output
    said = " ".join(output.split())  # the terminal wraps long lines
    assert said.count("Wrong device, it was sold") >= 2  # the thread and the history


def test_interactive_scans_at_start_and_opens_overflow_menus_by_their_option() -> None:
    with DemoWorld(FAST, io.StringIO()) as world:
        assert world.alerts.scan(started_by="schedule").ok
        world.settle()
        device = world.alerts.list_alerts_and_snoozes().top[0].device_id  # in the digest
        found = world.slack.find_button(f"Details {device}")
        assert found is not None and found[1]["type"] == "overflow"
    output = interactive(f"Details {device}", "/sigfox expiring", "/quit")
    assert output.index("Sigfox fleet alerts:") < output.index("You type as one of")
    assert 'alice clicks [ Details ] on "Sigfox fleet alerts' in output
    answer = output.split("clicks [ Details ]")[1]
    assert "only visible to alice" in answer and device in answer and "Token:" in answer
    assert "No fleet scan has completed yet" not in output
    assert "tokens end within 30 days" in output


def test_colour_on_a_terminal_unless_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    from demo.terminal_slack import Style, terminal_width, wants_colour

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    assert wants_colour(Tty()) and not wants_colour(io.StringIO())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not wants_colour(Tty())
    assert Style(True).buttons("[ Approve ]").startswith("\033[")
    assert Style(False).buttons("[ Approve ]") == "[ Approve ]"
    monkeypatch.setenv("COLUMNS", "100")
    assert terminal_width(io.StringIO()) == 100
    monkeypatch.delenv("COLUMNS")
    assert terminal_width(io.StringIO()) == 80


def test_piped_keyboard_reads_plain_lines() -> None:
    from demo.interactive import line_reader

    out = io.StringIO()
    read = line_reader(io.StringIO("/help\n"), out)
    assert read("alice › ") == "/help\n" and read("alice › ") is None
    assert out.getvalue() == "alice › alice › "


def test_the_terminal_renders_what_the_stand_in_records() -> None:
    # The demo's Slack is the one stand-in: the bot's real WebClient calls it, the terminal
    # prints each change it records (messages, threads, edits, private answers, DMs, views).
    from slack_sdk import WebClient

    from demo.terminal_slack import Person, TerminalSlack

    out = io.StringIO()
    slack = TerminalSlack(stream=out, clock=lambda: 1_700_000_000.0, width=80,
                          channels={"C0FLEETOPS": "fleet-ops"},
                          people=[Person("U0ALICE", "alice", "Alice Martin")])
    slack.start()
    try:
        client = WebClient(token=slack.token, base_url=slack.api_url)
        parent = client.chat_postMessage(channel="C0FLEETOPS", text="J-0001: renew `1A2B3C`")
        client.chat_postMessage(channel="C0FLEETOPS", text="Deleted.", thread_ts=parent["ts"])
        client.chat_update(channel="C0FLEETOPS", ts=parent["ts"], text="🟢 Done")
        client.chat_postEphemeral(channel="C0FLEETOPS", user="U0ALICE", text="Only for you")
        client.chat_postMessage(channel="U0ALICE", text="Reminder: J-0002 waits for you")
        client.views_publish(user_id="U0ALICE", view={"type": "home", "blocks": []})
        client.views_open(trigger_id="1.T0DEMO0001.ab", view={
            "type": "modal", "title": {"type": "plain_text", "text": "Reject the request"},
            "submit": {"type": "plain_text", "text": "Reject"},
            "blocks": [{"type": "input", "block_id": "why", "label": {
                "type": "plain_text", "text": "Why?"}, "element": {
                    "type": "plain_text_input", "action_id": "reason"}}]})
        slack.standin.acknowledge("C0FLEETOPS", "U0ALICE", {"text": "Working on it"})
    finally:
        slack.stop()
    shown = out.getvalue()
    for said in ("#fleet-ops\n", "J-0001: renew `1A2B3C`",
                 '↳ in the thread of "J-0001: renew `1A2B3C`":', "Deleted.",
                 "✎ 🟢 Done",  # a one-line message edited: one line
                 "sigfox-bot (only visible to alice):\n         Only for you",
                 "DM with alice\n", "Reminder: J-0002 waits for you",
                 "🏠 App Home of alice refreshed (0 blocks)",
                 "📝 A form opens: Reject the request: Why?",
                 "(only visible to alice):\n         Working on it"):
        assert said in shown, f"{said!r} not in:\n{shown}"
    assert slack.modal is not None and slack.modal["title"]["text"] == "Reject the request"
    assert slack.standin.methods_called().count("chat.postMessage") == 3
