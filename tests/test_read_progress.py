"""The requester is told how far a big request's reads are: sparingly, whatever the number of
devices, and within the five posts a slash command's response URL takes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from support.bot import REQUESTER_ID, running_bot
from support.core import POLICY_TOML, core_config
from support.slack_signing import interaction_body, view_submission_payload

from bot import blocks
from commands.config import parse_config
from commands.read_progress import MOST_UPDATES, ReadProgress
from sigfox.simulator import SimulatorServer
from sigfox.simulator.latency import LatencyModel

READING = "Reading the devices from Sigfox"


def shown_for(wanted: int) -> list[str]:
    """What a request reading `wanted` devices, a page a second, shows."""
    now = [0.0]
    shown: list[str] = []
    progress = ReadProgress(shown.append, every=5.0, clock=lambda: now[0])
    for read in range(1, wanted + 1, 100):
        now[0] += 1.0
        progress(read, wanted)
    return shown


def test_pages_told_sparingly_whatever_the_number_of_devices() -> None:
    for wanted in (3_000, 100_000):
        shown = shown_for(wanted)
        assert len(shown) == MOST_UPDATES  # not one per page, let alone per device
        assert shown[0] == f"{READING}: 401 of {wanted:,} so far…"  # 5 s in, not before


def test_nothing_is_told_of_reads_done_before_the_interval_or_of_the_last_page() -> None:
    now = [0.0]
    shown: list[str] = []
    progress = ReadProgress(shown.append, every=5.0, clock=lambda: now[0])
    progress(100, 300)
    now[0] = 4.9
    progress(200, 300)
    now[0] = 60.0
    progress(300, 300)  # done: the answer follows at once
    assert shown == []


def test_a_slow_request_shows_its_reads_then_its_answer_within_the_response_url(
    make_simulator: Callable[..., SimulatorServer], tmp_path: Path
) -> None:
    # 30 ids a page apart: a call each, side by side (a few rounds), at 0.3 s an answer.
    sim = make_simulator(devices=3_000, rate_limits=False,
                         latency=LatencyModel(0.3, spread=0.0, slow_share=0.0))
    ids = sorted(sim.world.devices, key=lambda d: int(d, 16))[::100]
    with running_bot(sim, tmp_path / "bot.db",
                     config=core_config('progress_interval = "1s"\n')) as bot:
        bot.command("restart " + " ".join(ids))
        posts = bot.standin.responses()
    told = [p for p in posts if str(p.get("text", "")).startswith(READING)]
    assert 1 <= len(told) <= MOST_UPDATES
    assert all(p.get("replace_original") for p in told[1:])  # one message, replaced
    assert len(posts) == len(told) + 1  # and the answer
    assert not str(posts[-1].get("text", "")).startswith(READING)


def test_a_large_renewal_asked_through_its_reason_form_shows_one_reading_line(
    make_simulator: Callable[..., SimulatorServer], tmp_path: Path
) -> None:
    sim = make_simulator(devices=3_000, rate_limits=False,
                         latency=LatencyModel(0.3, spread=0.0, slow_share=0.0))
    ids = sorted(sim.world.devices, key=lambda d: int(d, 16))[::100]
    config = parse_config(POLICY_TOML.replace("[timing]", "large_job_devices = 2\n\n[timing]")
                          + 'progress_interval = "1s"\n')
    with running_bot(sim, tmp_path / "bot.db", config=config) as bot:
        bot.command("renew " + " ".join(ids))
        [form] = [v for v in bot.standin.modals_opened()
                  if v["callback_id"] == blocks.REQUEST_REASON_MODAL]
        payload = view_submission_payload(form, {blocks.REASON_BLOCK: "The contract ended"},
                                          user_id=REQUESTER_ID)
        bot.post(interaction_body(payload))
        bot.executor.drain()
        texts = bot.ephemeral_texts(REQUESTER_ID)
    told = [t for t in texts if READING in t]
    assert len(told) == 1  # a private line after a form can't be replaced: one at most
    assert texts[-1] != told[0]  # then the answer
