"""Clicks bound to the installation and to the job's own message (issue 11, finding 8).

Every request below is signed with the right secret: the signature alone must not be enough.
For each kind of job button, on the message the bot posted it on (the approval request, a
reminder sent by DM, the job's card, the job's summary, the release-wait message), the same
click made from another channel, with another `message_ts` (an unknown one, or another message
of the same job), naming another workspace or app, or from a DM the bot never sent it in,
changes nothing, the clicker is told, and the log says why; on its own message it works.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support.bot import (
    APPROVER_ID,
    GROUP_APPROVER_ID,
    OUTSIDER_ID,
    REQUESTER_ID,
    BotHarness,
    buttons,
    running_bot,
)
from support.slack_signing import (
    CHANNEL_ID,
    block_actions_payload,
    home_block_actions_payload,
    interaction_body,
    slash_command_body,
)

from bot import blocks
from bot.listeners.binding import NOT_HERE
from commands.config import parse_config
from commands.states import WorkflowState
from demo.slack_standin import dm_channel
from storage import buttons as carrying
from storage.buttons import KEEP_HOMES, ButtonMessages
from storage.db import MIGRATIONS, open_database, schema_version

CONFIG = """
[policy]
requesters = ["*"]
approvers = ["U0APPROVE", "U0REQUEST", "S0APPROVERS"]
approval_ttl = "24h"
remind_every = "1h"

[timing]
tick = "1s"
release_retry = "5m"
release_timeout = "20m"
first_message_poll = "5m"
"""
HELD = 1800  # the backend holds a deleted id 30 min: past release_timeout, then released
UNKNOWN_TS = "1700000999.000100"


@pytest.fixture
def bot(make_simulator, tmp_path: Path) -> Iterator[BotHarness]:
    simulator = make_simulator(devices=0, rate_limits=False, delete_hold=HELD, job_delay=0.0)
    with running_bot(simulator, tmp_path / "bot.db", config=parse_config(CONFIG)) as harness:
        yield harness


@dataclass
class Surface:
    """A job button on the message the bot posted it on, and how to tell it did something."""

    action_id: str
    value: str
    clicker: str
    channel: str
    ts: str
    other_ts: str  # another message of the same job, carrying other buttons (or none)
    changed: Callable[[], bool]


def click(bot: BotHarness, surface: Surface, **changes: Any) -> Any:
    """`surface`'s button clicked as Slack would send it, with `changes` to the payload
    (`channel_id`, `message_ts`, `team_id`, `api_app_id`)."""
    app_id = changes.pop("api_app_id", None)
    where = {"channel_id": surface.channel, "message_ts": surface.ts, **changes}
    payload = block_actions_payload(
        surface.action_id, surface.value, user_id=surface.clicker,
        user_name=surface.clicker.lower(),
        response_url=bot.standin.response_url(where["channel_id"], surface.clicker,
                                              where["message_ts"]), **where)
    if app_id:
        payload["api_app_id"] = app_id
    response = bot.post(interaction_body(payload))
    bot.executor.drain()
    return response


def only_job(bot: BotHarness) -> int:
    [workflow] = bot.core.jobs(active_only=False)
    return workflow.id


def state(bot: BotHarness, workflow_id: int) -> str:
    return bot.core.store.get_workflow(workflow_id).state


def approved(bot: BotHarness, command: str) -> tuple[int, dict[str, Any]]:
    """A job asked for and approved on its request; its card."""
    bot.command(command)
    workflow_id = only_job(bot)
    approval = bot.core.store.approval_for(workflow_id)
    request = bot.approval_message(approval.id)
    bot.click(blocks.APPROVE, str(approval.id), APPROVER_ID, message_ts=request["ts"])
    assert state(bot, workflow_id) == WorkflowState.APPROVED
    [card] = bot.parents()
    return workflow_id, card


def in_thread(bot: BotHarness, card: dict[str, Any], action_id: str) -> dict[str, Any]:
    [message] = [m for m in bot.standin.thread(CHANNEL_ID, card["ts"])
                 if any(b["action_id"] == action_id for b in buttons(m))]
    return message


def button_of(message: dict[str, Any], action_id: str) -> dict[str, Any]:
    [button] = [b for b in buttons(message) if b["action_id"] == action_id]
    return button


def audited(bot: BotHarness, workflow_id: int, action: str) -> bool:
    return any(a.action == action for a in bot.core.store.audit_entries(workflow_id=workflow_id))


# --------------------------------------------------------------------------- the surfaces


def approval_surface(bot: BotHarness, action_id: str) -> Surface:
    bot.command(f"renew {bot.fleet.off_contract} by delete")
    workflow_id = only_job(bot)
    approval = bot.core.store.approval_for(workflow_id)
    request = bot.approval_message(approval.id)
    [card] = bot.parents()
    if action_id == blocks.REJECT:  # Reject opens the form that asks why
        return Surface(action_id, str(approval.id), APPROVER_ID, CHANNEL_ID, request["ts"],
                       card["ts"], lambda: bool(bot.standin.modals_opened()))
    return Surface(action_id, str(approval.id), APPROVER_ID, CHANNEL_ID, request["ts"],
                   card["ts"], lambda: state(bot, workflow_id) != WorkflowState.AWAITING_APPROVAL)


def reminder_surface(bot: BotHarness, action_id: str) -> Surface:
    surface = approval_surface(bot, action_id)
    bot.advance(3600)
    bot.core.tick()
    [reminder] = bot.standin.direct_messages(APPROVER_ID)
    assert button_of(reminder, action_id)["value"] == surface.value
    surface.channel, surface.ts = dm_channel(APPROVER_ID), reminder["ts"]
    return surface


def card_surface(bot: BotHarness, action_id: str) -> Surface:
    bot.command(f"renew {bot.fleet.off_contract} by delete")
    workflow_id = only_job(bot)
    [card] = bot.parents()
    request = bot.approval_message(bot.core.store.approval_for(workflow_id).id)
    return Surface(action_id, button_of(card, blocks.CANCEL)["value"], REQUESTER_ID,
                   CHANNEL_ID, card["ts"], request["ts"],
                   lambda: state(bot, workflow_id) == WorkflowState.CANCELLED)


def pac_surface(bot: BotHarness, action_id: str) -> Surface:
    device = bot.fleet.no_token
    pac = bot.simulator.world.pac_of(device)
    workflow_id, card = approved(bot, f"delete {device}")
    bot.core.tick()
    assert state(bot, workflow_id) == WorkflowState.DONE
    summary = in_thread(bot, card, blocks.SHOW_PAC)
    return Surface(action_id, button_of(summary, action_id)["value"], APPROVER_ID, CHANNEL_ID,
                   summary["ts"], card["ts"],
                   lambda: audited(bot, workflow_id, "reveal pac")
                   or any(pac in t for t in bot.ephemeral_texts(APPROVER_ID)))


def copy_surface(bot: BotHarness, action_id: str) -> Surface:
    world, fleet = bot.simulator.world, bot.fleet
    world.add_callback(fleet.type_a, {"channel": "URL", "callbackType": 0, "callbackSubtype": 3,
                                      "enabled": True, "httpMethod": "POST",
                                      "url": "https://example.test/sigfox/uplink"})
    device = fleet.off_contract
    workflow_id, card = approved(bot, f'renew {device} to "Fleet A2" by delete')
    bot.core.tick()
    for _ in range(7):  # past the backend's hold on the deleted id
        bot.advance(300)
        bot.core.tick()
    assert bot.uplink(device).status_code == 204
    assert state(bot, workflow_id) == WorkflowState.DONE
    summary = in_thread(bot, card, blocks.COPY_CALLBACKS)
    return Surface(action_id, button_of(summary, action_id)["value"], APPROVER_ID, CHANNEL_ID,
                   summary["ts"], card["ts"],
                   lambda: bool(world.device_type(fleet.type_a2).callbacks))


def release_surface(bot: BotHarness, action_id: str) -> Surface:
    workflow_id, card = approved(bot, f"renew {bot.fleet.no_token}")
    bot.core.tick()
    for _ in range(5):  # past release_timeout (20 min); the backend still holds the id
        bot.advance(300)
        bot.core.tick()
    ask = in_thread(bot, card, action_id)
    if action_id == blocks.KEEP_WAITING:
        def changed() -> bool:
            return audited(bot, workflow_id, "keep waiting for release")
    else:
        def changed() -> bool:
            return state(bot, workflow_id) == WorkflowState.FAILED
    return Surface(action_id, button_of(ask, action_id)["value"], APPROVER_ID, CHANNEL_ID,
                   ask["ts"], card["ts"], changed)


SURFACES: dict[str, tuple[Callable[[BotHarness, str], Surface], str]] = {
    "approve on the request": (approval_surface, blocks.APPROVE),
    "reject on the request": (approval_surface, blocks.REJECT),
    "approve on a reminder": (reminder_surface, blocks.APPROVE),
    "reject on a reminder": (reminder_surface, blocks.REJECT),
    "cancel on the card": (card_surface, blocks.CANCEL),
    "show pac on the summary": (pac_surface, blocks.SHOW_PAC),
    "copy callbacks on the summary": (copy_surface, blocks.COPY_CALLBACKS),
    "keep waiting on the release wait": (release_surface, blocks.KEEP_WAITING),
    "stop waiting on the release wait": (release_surface, blocks.STOP_WAITING),
}
MISPLACED: dict[str, Callable[[Surface], dict[str, str]]] = {
    "another channel": lambda s: {"channel_id": "C0ELSEWHERE"},
    "an unknown message_ts": lambda s: {"message_ts": UNKNOWN_TS},
    "another message of the job": lambda s: {"message_ts": s.other_ts},
    "a DM the bot never sent it in": lambda s: {"channel_id": dm_channel(s.clicker),
                                                "message_ts": "1700000999.000300"},
}
FOREIGN: dict[str, dict[str, str]] = {
    "another workspace": {"team_id": "T0OTHERWS"},
    "another app": {"api_app_id": "A0OTHER"},
}


@pytest.mark.parametrize("name", sorted(SURFACES))
def test_a_job_button_works_only_on_its_own_message(bot: BotHarness, name: str,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    setup, action_id = SURFACES[name]
    surface = setup(bot, action_id)
    caplog.set_level(logging.WARNING, logger="bot")
    for where, changes in MISPLACED.items():
        told = len(bot.ephemeral_texts(surface.clicker))
        assert click(bot, surface, **changes(surface)).status_code == 200
        assert not surface.changed(), f"{name} honoured from {where}"
        answers = bot.ephemeral_texts(surface.clicker)[told:]
        assert any("does not belong to this message" in t for t in answers), (where, answers)
    # One line each, saying where (other tests' leftover threads may log here too: filtered).
    refusals = {r.getMessage() for r in caplog.records
                if r.getMessage().startswith(f"{action_id} click by")}
    assert len(refusals) == len(MISPLACED), refusals
    for where, changes in FOREIGN.items():
        told = len(bot.ephemeral_texts(surface.clicker))
        response = click(bot, surface, **changes)
        assert (response.status_code, response.text) == (200, ""), where
        assert not surface.changed(), f"{name} honoured from {where}"
        assert bot.ephemeral_texts(surface.clicker)[told:] == [f"{NOT_HERE}\n[]"], where
    assert len({r.getMessage() for r in caplog.records
                if r.getMessage().startswith("request for workspace/app")}) == len(FOREIGN)

    click(bot, surface)  # on its own message
    assert surface.changed(), name


def test_no_pac_in_the_log_of_a_refused_click(bot: BotHarness,
                                              caplog: pytest.LogCaptureFixture) -> None:
    pac = bot.simulator.world.pac_of(bot.fleet.no_token)
    surface = pac_surface(bot, blocks.SHOW_PAC)
    caplog.set_level(logging.DEBUG)
    click(bot, surface, channel_id="C0ELSEWHERE")
    assert caplog.records and not [r for r in caplog.records if pac in r.getMessage()]


def test_a_request_of_one_job_cannot_be_decided_on_another_jobs_message(bot: BotHarness
                                                                        ) -> None:
    first = approval_surface(bot, blocks.APPROVE)
    bot.command(f"delete {bot.fleet.no_token}")
    [second] = [w for w in bot.core.jobs() if str(w.id) != first.value]
    other = bot.approval_message(bot.core.store.approval_for(second.id).id)
    click(bot, first, message_ts=other["ts"])  # job 1's request id on job 2's request
    assert not first.changed()
    assert state(bot, second.id) == WorkflowState.AWAITING_APPROVAL


def test_every_message_with_job_buttons_is_recorded_with_its_kind(bot: BotHarness) -> None:
    surface = reminder_surface(bot, blocks.APPROVE)
    workflow_id = only_job(bot)
    kinds = {(r["channel"], r["ts"]): r["kind"]
             for r in bot.notifier.buttons.of_job(workflow_id)}
    [card] = bot.parents()
    request = bot.approval_message(int(surface.value))
    [group_reminder] = bot.standin.direct_messages(GROUP_APPROVER_ID)  # the group expanded
    assert kinds == {(CHANNEL_ID, card["ts"]): carrying.CARD,
                     (CHANNEL_ID, request["ts"]): carrying.APPROVAL,
                     (dm_channel(APPROVER_ID), surface.ts): carrying.REMINDER,
                     (dm_channel(GROUP_APPROVER_ID), group_reminder["ts"]): carrying.REMINDER}


# --------------------------------------------------------------------------- App Home


def test_approve_from_ones_own_home_tab_is_accepted(bot: BotHarness) -> None:
    surface = approval_surface(bot, blocks.APPROVE)
    bot.click_home(blocks.APPROVE, surface.value, APPROVER_ID)
    assert surface.changed()


@pytest.mark.parametrize("where", ["another person's home", "an unpublished view", "a modal"])
def test_a_home_click_elsewhere_decides_nothing(bot: BotHarness, where: str) -> None:
    surface = approval_surface(bot, blocks.APPROVE)
    payload = home_block_actions_payload(blocks.APPROVE, surface.value, user_id=APPROVER_ID,
                                         view_id=bot.open_home(APPROVER_ID)["id"])
    if where == "another person's home":
        payload["view"]["id"] = bot.open_home(OUTSIDER_ID)["id"]
    elif where == "an unpublished view":
        payload["view"]["id"] = "V0NEVERSEEN"
    else:
        payload["view"]["type"] = "modal"
    bot.post(interaction_body(payload))
    bot.executor.drain()
    assert not surface.changed()
    home = json.dumps(bot.standin.home_views[APPROVER_ID]["blocks"])
    assert "does not belong" in home  # told on their Home tab, privately


def test_the_home_tab_carries_no_cancel(bot: BotHarness) -> None:
    surface = card_surface(bot, blocks.CANCEL)
    bot.click_home(blocks.CANCEL, surface.value, REQUESTER_ID)
    assert not surface.changed()
    click(bot, surface)
    assert surface.changed()


# --------------------------------------------------------------------------- the installation


def test_a_command_for_another_workspace_is_dropped(bot: BotHarness) -> None:
    response = bot.post(slash_command_body(f"renew {bot.fleet.off_contract} by delete",
                                           user_id=REQUESTER_ID, team_id="T0OTHERWS"))
    bot.executor.drain()
    assert bot.core.store.list_workflows() == []
    assert response.json() == {"response_type": "ephemeral", "text": NOT_HERE}


def test_without_the_app_id_the_workspace_is_still_checked(make_simulator, tmp_path: Path,
                                                          caplog: pytest.LogCaptureFixture
                                                          ) -> None:
    # An app installed from a manifest without users:read: bots.info is refused.
    simulator = make_simulator(devices=0, rate_limits=False, delete_hold=1800, job_delay=0.0)
    with running_bot(simulator, tmp_path / "bot.db") as bot:
        bot.standin.fail("bots.info", "missing_scope", times=100)
        bot.post(slash_command_body(f"renew {bot.fleet.off_contract} by delete",
                                    user_id=REQUESTER_ID, team_id="T0OTHERWS"))
        bot.executor.drain()
        assert bot.core.store.list_workflows() == []
        bot.command(f"renew {bot.fleet.off_contract} by delete")
        assert len(bot.core.store.list_workflows()) == 1
    assert any("users:read" in r.getMessage() for r in caplog.records)


# --------------------------------------------------------------------------- upgrading


def test_messages_posted_before_the_upgrade_stay_clickable(tmp_path: Path) -> None:
    """Migration 8 records what the notifier had kept: approval requests, reminders, cards."""
    path = tmp_path / "old.db"
    database = open_database(path)
    with database.transaction() as db:  # back to version 7, as an older bot left it
        db.execute("DROP TABLE button_messages")
        db.execute("DROP TABLE home_views")
        for later in ("notifications", "notified_alerts", "notification_alerts"):  # 9
            db.execute(f"DROP TABLE {later}")
        db.execute(f"PRAGMA user_version = {MIGRATIONS.index(carrying.create_tables)}")
        db.execute("INSERT INTO workflows (id, kind, state, requester, created_at, updated_at) "
                   "VALUES (42, 'renew', 'awaiting_approval', 'U1', 1, 1)")
        db.execute("INSERT INTO approvals (id, workflow_id, state, requested_by, created_at, "
                   "expires_at, message_ref) VALUES (7, 42, 'pending', 'U1', 1, 2, ?)",
                   [json.dumps({"channel": "C1", "ts": "10.1"})])
        db.execute("INSERT INTO kv (key, value) VALUES (?, ?), (?, ?)",
                   ["slack.approval-dms.7", json.dumps([{"channel": "D1", "ts": "11.1"}]),
                    "slack.job.J-0042", json.dumps({"channel": "C1", "ts": "9.1"})])
    database.close()

    upgraded = open_database(path)
    assert schema_version(upgraded) == len(MIGRATIONS)
    recorded = ButtonMessages(upgraded)
    assert recorded.kind_of(42, "C1", "10.1") == carrying.APPROVAL
    assert recorded.kind_of(42, "D1", "11.1") == carrying.REMINDER
    assert recorded.kind_of(42, "C1", "9.1") == carrying.CARD
    assert recorded.kind_of(43, "C1", "9.1") is None


@pytest.mark.parametrize("action_id", [f"{blocks.APPROVE}_x", f"x{blocks.APPROVE}"])
def test_only_the_exact_action_id_is_a_job_button(bot: BotHarness, action_id: str) -> None:
    surface = approval_surface(bot, blocks.APPROVE)
    surface.action_id = action_id  # the real id inside another one: no listener matches
    assert click(bot, surface).status_code == 404
    assert not surface.changed()


def test_each_persons_last_home_tabs_are_kept(tmp_path: Path) -> None:
    recorded = ButtonMessages(open_database(tmp_path / "bot.db"))
    for n in range(KEEP_HOMES + 3):
        recorded.record_home(APPROVER_ID, f"V{n:04d}", float(n))
    recorded.record_home(OUTSIDER_ID, "V0000", 0.0)
    kept = [n for n in range(KEEP_HOMES + 3) if recorded.is_home_of(APPROVER_ID, f"V{n:04d}")]
    assert kept == list(range(3, KEEP_HOMES + 3))
    assert recorded.is_home_of(OUTSIDER_ID, "V0000")  # another person's are their own
