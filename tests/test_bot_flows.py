"""The Slack bot end to end: signed slash commands and clicks into the real Bolt app in HTTP
mode, its real WebClient against the Slack stand-in, the core on the simulated Sigfox backend."""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

import httpx
import pytest
from support import alerts as alert_support
from support.bot import (
    APPROVER_ID,
    GROUP_APPROVER_ID,
    OUTSIDER_ID,
    REQUESTER_ID,
    BotHarness,
    buttons,
    running_bot,
)
from support.core import core_config, sigfox_client
from support.slack_signing import (
    CHANNEL_ID,
    app_home_opened_event,
    signed_headers,
    slash_command_body,
)

from bot import blocks
from bot.app import register_metrics
from bot.notifier import SlackNotifier
from bot.slack_client import make_web_client
from commands.read_models import ReadModels
from commands.states import WorkflowState
from commands.workflows import Core
from storage.db import open_database
from storage.edge import EdgeRecords
from storage.store import Store


def only_job(bot: BotHarness) -> int:
    [workflow] = bot.core.store.list_workflows()
    return workflow.id


def test_renewal_end_to_end(bot: BotHarness, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    device = bot.fleet.off_contract
    pac = bot.simulator.world.pac_of(device)
    response = bot.command(f"renew {device} by delete")
    assert response.status_code == 200
    assert "Working on" not in response.text  # its answer comes in a second: nothing before

    workflow_id = only_job(bot)
    [parent] = bot.parents()
    assert "Waiting for approval" in parent["text"]
    approval = bot.core.store.approval_for(workflow_id)
    assert approval is not None
    request = bot.approval_message(approval.id)
    assert [b["value"] for b in buttons(request)] == [str(approval.id)] * 2
    assert "history" in str(request["blocks"]).lower()  # what it costs is said before approval
    assert any("Waiting for an approver" in t for t in bot.ephemeral_texts(REQUESTER_ID))

    bot.click(blocks.APPROVE, str(approval.id), APPROVER_ID, message_ts=request["ts"],
              thread_ts=parent["ts"])
    decided = bot.approval_message(approval.id)
    assert buttons(decided) == []
    assert f"<@{APPROVER_ID}>" in str(decided["blocks"]) and "Approved" in str(decided["blocks"])

    bot.core.tick()  # delete, then the id is still held: a waiting line
    for _ in range(5):  # the core reports the wait at 0, 10 and 20 minutes
        bot.advance(300)
        bot.core.tick()
    waiting = [t for t in bot.thread_texts(parent["ts"]) if ":hourglass:" in t]
    assert len(waiting) == 1  # repeated waits edit one line in place
    assert "20 min" in waiting[0]
    bot.advance(300)
    bot.core.tick()
    assert bot.uplink(device).status_code == 204

    assert bot.core.store.get_workflow(workflow_id).state == WorkflowState.DONE
    thread = bot.thread_texts(parent["ts"])
    assert any("First message received" in t for t in thread)
    assert any("token OK until" in t for t in thread)  # the new token's end
    assert any("Callbacks checked" in t for t in thread)
    summary = [m for m in bot.standin.thread(CHANNEL_ID, parent["ts"]) if buttons(m)
               and buttons(m)[0]["action_id"] == blocks.SHOW_PAC]
    assert summary, thread
    assert "Done" in bot.standin.message(CHANNEL_ID, parent["ts"])["text"]
    assert pac_leaks(bot, pac) == [] and not any(pac in c.params.get("text", "")
                                                 for c in bot.standin.calls)
    assert [r.name for r in caplog.records if pac in r.getMessage()] == []


# --------------------------------------------------------------------------- helpers


def pac_leaks(bot: BotHarness, pac: str) -> list[str]:
    """Every recorded Slack call carrying `pac`, apart from ephemeral answers."""
    leaks = [c.method for c in bot.standin.calls
             if pac in json.dumps(c.params) and c.method != "chat.postEphemeral"]
    leaks += ["response_url" for r in bot.standin.responses()
              if pac in json.dumps(r) and r.get("response_type") != "ephemeral"]
    return leaks


def request_and_approve(bot: BotHarness, text: str, approver: str = APPROVER_ID
                        ) -> tuple[int, dict, dict]:
    bot.command(text)
    workflow_id = only_job(bot)
    [parent] = bot.parents()
    approval = bot.core.store.approval_for(workflow_id)
    assert approval is not None, bot.ephemeral_texts(REQUESTER_ID)
    request = bot.approval_message(approval.id)
    bot.click(blocks.APPROVE, str(approval.id), approver, message_ts=request["ts"],
              thread_ts=parent["ts"])
    return workflow_id, parent, request


# --------------------------------------------------------------------------- delete, transfer


def test_delete_end_to_end_with_show_pac_for_approvers_only(
    bot: BotHarness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    device = bot.fleet.no_token
    pac = bot.simulator.world.pac_of(device)
    workflow_id, parent, _ = request_and_approve(bot, f"delete {device}")
    bot.core.tick()
    assert bot.core.store.get_workflow(workflow_id).state == WorkflowState.DONE
    [summary] = [m for m in bot.standin.thread(CHANNEL_ID, parent["ts"])
                 if any(b["action_id"] == blocks.SHOW_PAC for b in buttons(m))]
    [show] = buttons(summary)

    bot.click(blocks.SHOW_PAC, show["value"], OUTSIDER_ID, message_ts=summary["ts"])
    assert not any(pac in t for t in bot.ephemeral_texts(OUTSIDER_ID))
    assert any("Only approvers" in t for t in bot.ephemeral_texts(OUTSIDER_ID))

    bot.click(blocks.SHOW_PAC, show["value"], APPROVER_ID, message_ts=summary["ts"])
    assert any(pac in t for t in bot.ephemeral_texts(APPROVER_ID))
    assert pac_leaks(bot, pac) == []
    assert [r.name for r in caplog.records if pac in r.getMessage()] == []


def test_transfer_losing_the_token_needs_approval_then_runs(bot: BotHarness) -> None:
    device = bot.fleet.valid
    workflow_id, parent, request = request_and_approve(bot, f'transfer {device} to "Fleet B"')
    assert "token is lost" in json.dumps(request["blocks"])
    bot.core.tick()  # the bulk job is submitted
    bot.advance(10)
    bot.core.tick()
    assert bot.core.store.get_workflow(workflow_id).state == WorkflowState.DONE
    thread = " ".join(bot.thread_texts(parent["ts"]))
    assert "Transferred to Fleet B" in thread
    assert "Done" in bot.standin.message(CHANNEL_ID, parent["ts"])["text"]


# --------------------------------------------------------------------------- refusals, replays


def test_bad_signature_and_stale_timestamp_are_refused(bot: BotHarness) -> None:
    body = slash_command_body(f"renew {bot.fleet.off_contract} by delete")
    headers = signed_headers("not-the-secret", body)
    assert httpx.post(f"{bot.url}/slack/events", content=body, headers=headers).status_code == 401
    stale = bot.post(body, timestamp=int(time.time()) - 6 * 60)
    assert stale.status_code == 401
    bot.executor.drain()
    assert bot.core.store.list_workflows() == []
    assert bot.standin.calls_to("chat.postMessage") == []


def test_a_replayed_command_runs_once(bot: BotHarness) -> None:
    url = bot.standin.response_url(CHANNEL_ID, REQUESTER_ID)
    body = slash_command_body(f"renew {bot.fleet.off_contract} by delete", user_id=REQUESTER_ID,
                              response_url=url)
    assert bot.post(body).status_code == 200
    assert bot.post(body).status_code == 200
    bot.executor.drain()
    assert len(bot.core.store.list_workflows()) == 1
    assert len(bot.parents()) == 1


def test_a_retried_event_delivery_runs_once(bot: BotHarness) -> None:
    envelope = app_home_opened_event(APPROVER_ID)
    bot.event(envelope)
    bot.event(envelope, **{"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"})
    assert len(bot.standin.calls_to("views.publish")) == 1


def test_double_clicks_decide_once(bot: BotHarness) -> None:
    bot.command(f"delete {bot.fleet.no_token}")
    approval = bot.core.store.pending_approvals()[0]
    request = bot.approval_message(approval.id)
    clicks = [threading.Thread(target=bot.click, args=(blocks.APPROVE, str(approval.id), who),
                               kwargs={"message_ts": request["ts"], "settle": False})
              for who in (APPROVER_ID, APPROVER_ID, GROUP_APPROVER_ID)]
    for click in clicks:
        click.start()
    for click in clicks:
        click.join()
    bot.executor.drain()
    decided = [e for e in bot.core.store.events(approval.workflow_id) if e.kind == "decided"]
    assert len(decided) == 1
    bot.core.tick()
    bot.core.tick()
    deletes = [c for c in bot.simulator.call_log() if c["method"] == "DELETE"]
    assert len(deletes) == 1
    later = [t for u in (APPROVER_ID, GROUP_APPROVER_ID) for t in bot.ephemeral_texts(u)]
    assert sum("already approved" in t for t in later) == 2


def test_an_unauthorised_click_changes_nothing_and_is_told_why(bot: BotHarness) -> None:
    bot.command(f"renew {bot.fleet.off_contract} by delete")
    approval = bot.core.store.pending_approvals()[0]
    request = bot.approval_message(approval.id)
    versions = len(bot.standin.versions(CHANNEL_ID, request["ts"]))
    for user in (OUTSIDER_ID, REQUESTER_ID):  # not an approver; approving one's own request
        bot.click(blocks.APPROVE, str(approval.id), user, message_ts=request["ts"])
    assert bot.core.store.get_approval(approval.id).state == "pending"
    assert len(bot.standin.versions(CHANNEL_ID, request["ts"])) == versions
    assert any("Only approvers" in t for t in bot.ephemeral_texts(OUTSIDER_ID))
    assert any("colleague" in t for t in bot.ephemeral_texts(REQUESTER_ID))


def test_a_group_member_may_approve(bot: BotHarness) -> None:
    workflow_id, _, _ = request_and_approve(bot, f"renew {bot.fleet.off_contract} by delete",
                                            approver=GROUP_APPROVER_ID)
    assert bot.core.store.get_workflow(workflow_id).state == WorkflowState.APPROVED
    assert f"<@{GROUP_APPROVER_ID}>" in json.dumps(bot.approval_message(1)["blocks"])


def test_an_expired_request_says_so(bot: BotHarness) -> None:
    bot.command(f"renew {bot.fleet.off_contract} by delete")
    approval = bot.core.store.pending_approvals()[0]
    bot.advance(3601)
    bot.core.tick()
    message = bot.approval_message(approval.id)
    assert buttons(message) == [] and "Expired" in json.dumps(message["blocks"])
    bot.click(blocks.APPROVE, str(approval.id), APPROVER_ID, message_ts=message["ts"])
    assert any("expired" in t for t in bot.ephemeral_texts(APPROVER_ID))


def test_cancel_button_and_command(bot: BotHarness) -> None:
    bot.command(f"renew {bot.fleet.off_contract} by delete")
    [parent] = bot.parents()
    [cancel] = [b for b in buttons(parent) if b["action_id"] == blocks.CANCEL]
    bot.click(blocks.CANCEL, cancel["value"], OUTSIDER_ID, message_ts=parent["ts"])
    assert bot.core.store.get_workflow(1).state == WorkflowState.AWAITING_APPROVAL
    bot.command("cancel J-0001")
    assert bot.core.store.get_workflow(1).state == WorkflowState.CANCELLED
    assert buttons(bot.standin.message(CHANNEL_ID, parent["ts"])) == []


# --------------------------------------------------------------------------- reads, App Home


def test_status_card_masks_the_pac(bot: BotHarness) -> None:
    device = bot.fleet.valid
    pac = bot.simulator.world.pac_of(device)
    bot.command(f"status {device}")
    [card] = bot.ephemerals_for(REQUESTER_ID)
    text = json.dumps(card["blocks"], ensure_ascii=False)
    assert "••••" + pac[-4:] in text and pac not in text
    assert "Fleet A" in text and "Order 1" in text


def test_help_shows_only_what_the_caller_may_run(make_simulator, tmp_path: Path) -> None:
    simulator = make_simulator(devices=0, rate_limits=False)
    config = core_config('\n[policy.operations.delete]\nrequesters = ["U0APPROVE"]\n')
    with running_bot(simulator, tmp_path / "b.db", config=config) as bot:
        bot.command("help", user=OUTSIDER_ID)
        bot.command("help", user=APPROVER_ID)
        [outsider] = bot.ephemeral_texts(OUTSIDER_ID)
        [approver] = bot.ephemeral_texts(APPROVER_ID)
    assert "/sigfox delete" not in outsider and "/sigfox delete" in approver


def test_app_home_lists_approvals_waiting_for_me_and_jobs(bot: BotHarness) -> None:
    bot.command(f"renew {bot.fleet.off_contract} by delete")
    bot.event(app_home_opened_event(APPROVER_ID))
    home = json.dumps(bot.standin.home_views[APPROVER_ID]["blocks"])
    assert "J-0001" in home and blocks.APPROVE in home
    approve = next(b for b in buttons(bot.standin.home_views[APPROVER_ID])
                   if b["action_id"] == blocks.APPROVE)
    assert approve["confirm"]["title"]["text"] == "Approve this?"  # as in the channel
    bot.event({**app_home_opened_event(OUTSIDER_ID), "event_id": "Ev0OUTSIDER"})
    assert blocks.APPROVE not in json.dumps(bot.standin.home_views[OUTSIDER_ID]["blocks"])


def test_slack_outage_does_not_stop_the_job(bot: BotHarness) -> None:
    workflow_id, _, _ = request_and_approve(bot, f"delete {bot.fleet.no_token}")
    bot.standin.fail("chat.postMessage", "internal_error", times=50)
    bot.standin.fail("chat.update", "internal_error", times=50)
    bot.core.tick()
    assert bot.core.store.get_workflow(workflow_id).state == WorkflowState.DONE


def test_rate_limited_posts_are_retried_after_retry_after(bot: BotHarness) -> None:
    bot.standin.rate_limit("chat.postMessage", times=1, retry_after=1)
    bot.command(f"renew {bot.fleet.off_contract} by delete")
    assert len(bot.parents()) == 1
    assert bot.core.store.pending_approvals()


def test_metrics_show_workflows_by_state_and_approvals_waiting(bot: BotHarness) -> None:
    register_metrics(bot.core)
    bot.command(f"renew {bot.fleet.off_contract} by delete")
    text = httpx.get(f"{bot.url}/metrics").text
    assert 'sigfox_bot_workflows{state="awaiting_approval"} 1.0' in text
    assert "sigfox_bot_approvals_waiting 1.0" in text


# --------------------------------------------------------------------------- callbacks


def renew_until_done(bot: BotHarness, text: str, device: str) -> tuple[int, dict]:
    workflow_id, parent, _ = request_and_approve(bot, text)
    bot.core.tick()
    for _ in range(7):  # past the simulator's 30-minute hold on a deleted id
        bot.advance(300)
        bot.core.tick()
    assert bot.uplink(device).status_code == 204
    assert bot.core.store.get_workflow(workflow_id).state == WorkflowState.DONE
    return workflow_id, parent


def test_callbacks_missing_on_the_new_type_are_copied_by_an_approver_once(
    bot: BotHarness,
) -> None:
    world = bot.simulator.world
    callback = {"channel": "URL", "callbackType": 0, "callbackSubtype": 3, "enabled": True,
                "url": "https://example.test/sigfox/uplink", "httpMethod": "POST"}
    world.add_callback(bot.fleet.type_a, callback)
    device = bot.fleet.off_contract
    workflow_id, parent = renew_until_done(bot, f'renew {device} to "Fleet A2"', device)
    [summary] = [m for m in bot.standin.thread(CHANNEL_ID, parent["ts"])
                 if any(b["action_id"] == blocks.COPY_CALLBACKS for b in buttons(m))]
    [copy] = [b for b in buttons(summary) if b["action_id"] == blocks.COPY_CALLBACKS]
    assert copy["value"] == f"{workflow_id}:{device}"

    bot.click(blocks.COPY_CALLBACKS, copy["value"], OUTSIDER_ID, message_ts=summary["ts"])
    assert world.device_type(bot.fleet.type_a2).callbacks == []
    assert any("Only approvers" in t for t in bot.ephemeral_texts(OUTSIDER_ID))

    for _ in range(2):  # the second click finds nothing missing
        bot.click(blocks.COPY_CALLBACKS, copy["value"], APPROVER_ID, message_ts=summary["ts"])
    [copied] = world.device_type(bot.fleet.type_a2).callbacks
    assert copied.url == callback["url"] and copied.enabled
    answers = bot.ephemeral_texts(APPROVER_ID)
    assert any("copied 1 callback" in t for t in answers)
    assert any("nothing was copied" in t for t in answers)
    assert any("copied 1 callback" in t for t in bot.thread_texts(parent["ts"]))


def test_no_copy_offer_when_the_type_did_not_change(bot: BotHarness) -> None:
    bot.simulator.world.add_callback(bot.fleet.type_a, {
        "channel": "URL", "callbackType": 0, "callbackSubtype": 3, "enabled": True,
        "url": "https://example.test/up", "httpMethod": "POST"})
    device = bot.fleet.off_contract
    _, parent = renew_until_done(bot, f"renew {device} by delete", device)
    assert not [b for m in bot.standin.thread(CHANNEL_ID, parent["ts"]) for b in buttons(m)
                if b["action_id"] == blocks.COPY_CALLBACKS]


# --------------------------------------------------------------------------- App Home


def home_blocks(bot: BotHarness, user: str) -> str:
    return json.dumps(bot.standin.home_views[user]["blocks"], ensure_ascii=False)


def click_from_home(bot: BotHarness, action_id: str, value: str, user: str) -> None:
    assert bot.click_home(action_id, value, user).status_code == 200


def test_approve_from_app_home_decides_and_republishes_the_home(bot: BotHarness) -> None:
    bot.command(f"delete {bot.fleet.no_token}")
    [approval] = bot.core.store.pending_approvals()
    bot.event(app_home_opened_event(APPROVER_ID))
    assert f'"value": "{approval.id}"' in home_blocks(bot, APPROVER_ID)

    click_from_home(bot, blocks.APPROVE, str(approval.id), OUTSIDER_ID)
    assert bot.core.store.get_approval(approval.id).state == "pending"
    assert "Only approvers" in home_blocks(bot, OUTSIDER_ID)  # told on their Home, privately

    click_from_home(bot, blocks.APPROVE, str(approval.id), APPROVER_ID)
    assert bot.core.store.get_approval(approval.id).state == "approved"
    home = home_blocks(bot, APPROVER_ID)
    assert "J-0001 approved" in home and blocks.APPROVE not in home
    # The request in the channel thread shows the decision, buttons gone.
    decided = bot.approval_message(approval.id)
    assert buttons(decided) == [] and f"<@{APPROVER_ID}>" in json.dumps(decided["blocks"])


def test_app_home_shows_the_fleet_at_a_glance(make_simulator, tmp_path: Path) -> None:
    simulator = make_simulator(devices=0, rate_limits=False)
    with running_bot(simulator, tmp_path / "bot.db") as bot:
        alerts = bot.alerts
        bot.event(app_home_opened_event(APPROVER_ID))
        assert "after the first fleet scan" in home_blocks(bot, APPROVER_ID)
        for n, days in enumerate((3, 5, 20)):
            alert_support.add(simulator, f"E0000{n}", end_in_days=days)
        assert alerts.scan(started_by="test").ok
        bot.event({**app_home_opened_event(APPROVER_ID), "event_id": "Ev0AFTERSCAN"})
        fields = [f["text"] for b in bot.standin.home_views[APPROVER_ID]["blocks"]
                  for f in b.get("fields", [])]
    summary = alerts.fleet_summary()
    assert f"*Devices*\n{summary.devices:,}" in fields
    assert "*Tokens ending in 7 days*\n2" in fields
    assert "*Tokens ending in 30 days*\n3" in fields
    [states] = [f for f in fields if f.startswith("*By token state*")]
    for state, count in summary.by_token_state.items():
        assert f"{state.replace('_', ' ')}: {count:,}" in states
    assert "ok: " in states


# --------------------------------------------------------------------------- restart


def test_after_a_restart_the_job_goes_on_in_the_same_thread(bot: BotHarness,
                                                           tmp_path: Path) -> None:
    device = bot.fleet.off_contract
    workflow_id, parent, _ = request_and_approve(bot, f"renew {device} by delete")
    bot.core.tick()  # deleted; now waiting for the backend to release the id
    posted_before = len(bot.standin.calls_to("chat.postMessage"))

    # A new process: new store, notifier and core over the same database file.
    store = Store(open_database(tmp_path / "bot.db"))
    client = make_web_client(bot.standin.token, bot.standin.url)
    notifier = SlackNotifier(client, ReadModels(store), EdgeRecords(store.database),
                             min_interval=0.0)
    core = Core(api=sigfox_client(bot.simulator, clock=bot.clock.now), store=store,
                notifier=notifier,
                clock=bot.clock, config=bot.core.config)
    core.resume()
    for _ in range(7):
        bot.advance(300)
        core.tick()
    bot.simulator.uplink(device)
    core.handle_uplink(device)

    assert store.get_workflow(workflow_id).state == WorkflowState.DONE
    assert bot.parents() == [bot.standin.message(CHANNEL_ID, parent["ts"])]  # no new parent
    new_posts = bot.standin.calls_to("chat.postMessage")[posted_before:]
    assert new_posts and all(c.params.get("thread_ts") == parent["ts"] for c in new_posts)
    assert any("First message received" in t for t in bot.thread_texts(parent["ts"]))
    assert "Done" in bot.standin.message(CHANNEL_ID, parent["ts"])["text"]


def test_a_typo_is_answered_once_in_the_acknowledgement(bot: BotHarness) -> None:
    response = bot.command("renw 1A2B3C")
    assert response.status_code == 200
    assert "Did you mean `/sigfox renew 1A2B3C`?" in response.text
    assert response.json()["response_type"] == "ephemeral"
    assert bot.core.store.list_workflows() == []
    said = [t for t in bot.ephemeral_texts(REQUESTER_ID) if "Did you mean" in t]
    assert said == []  # not a second time through the response URL


def test_only_a_fleet_scan_is_acknowledged_as_started(bot: BotHarness) -> None:
    assert bot.command("status 1A2B3C").text == ""
    assert "Working on `/sigfox scan`" in bot.command("scan").text
