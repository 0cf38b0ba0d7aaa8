"""The Web API stand-in, driven by the real slack_sdk WebClient: it must answer and refuse like
Slack, or every test built on it proves nothing."""

from __future__ import annotations

import json
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry import RateLimitErrorRetryHandler

from bot.slack_client import make_web_client, slack_api_url
from commands.metrics import Metrics
from demo.slack_standin import (
    MANIFEST_PATH,
    SlackApiStandIn,
    manifest_scopes,
    method_scopes,
    required_params,
    scopes,
)

CHANNEL = "C0FLEETOPS"
USER = "U0OPERATOR"
# Methods these tests exercise beyond what the bot calls, and the scopes the manifest lacks for
# them; the stand-in serving the bot grants only the manifest's.
BEYOND_THE_MANIFEST = {"channels:read", "groups:read", "im:write", "team:read"}
ALL_THESE_TESTS_USE = manifest_scopes() | BEYOND_THE_MANIFEST


@pytest.fixture(scope="module")
def served_standin() -> Iterator[SlackApiStandIn]:
    with SlackApiStandIn(scopes=ALL_THESE_TESTS_USE) as s:
        yield s


@pytest.fixture
def standin(served_standin: SlackApiStandIn) -> SlackApiStandIn:
    # One server for the module (starting and stopping uvicorn costs ~0.2 s), fresh state per test.
    served_standin.reset()
    served_standin.set_usergroup("S0APPROVER", ["U0ALICE01", "U0BOB0001"])
    return served_standin


@pytest.fixture
def client(standin: SlackApiStandIn) -> WebClient:
    return WebClient(
        token=standin.token,
        base_url=standin.url,
        retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=2)],
    )


def slack_error(call: Any) -> SlackApiError:
    with pytest.raises(SlackApiError) as caught:
        call()
    return caught.value


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


# --------------------------------------------------------------------------- the spec as data


def test_required_parameters_come_from_the_spec_without_the_token() -> None:
    table = required_params()
    assert table["chat.postMessage"] == {"channel"}
    assert table["chat.update"] == {"channel", "ts"}
    assert table["chat.postEphemeral"] == {"channel", "user"}
    assert table["views.publish"] == {"user_id", "view"}
    assert table["auth.test"] == set()
    assert all("token" not in names for names in table.values())


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("chat.update", {"channel": CHANNEL, "ts": "1.000001", "text": "x"}),
        ("chat.postEphemeral", {"channel": CHANNEL, "user": USER, "text": "x"}),
        ("views.publish", {"user_id": USER, "view": json.dumps({"type": "home", "blocks": []})}),
        ("chat.getPermalink", {"channel": CHANNEL, "message_ts": "1.000001"}),
        ("usergroups.users.list", {"usergroup": "S0APPROVER"}),
    ],
)
def test_each_required_parameter_missing_is_refused_like_slack(
    client: WebClient, method: str, params: dict[str, str]
) -> None:
    for name in required_params()[method]:
        partial = {k: v for k, v in params.items() if k != name}
        error = slack_error(lambda p=partial: client.api_call(method, params=p))
        expected = "channel_not_found" if name == "channel" else "invalid_arguments"
        assert error.response["error"] == expected
        if expected == "invalid_arguments":
            messages = error.response["response_metadata"]["messages"]
            assert messages == [f"[ERROR] missing required field: {name}"]


def test_spec_methods_are_accepted_by_post_even_where_the_spec_says_get(
    standin: SlackApiStandIn, client: WebClient
) -> None:
    assert client.auth_test()["user_id"] == standin.bot_user_id  # listed as GET, sent as POST
    got = httpx.get(
        f"{standin.url}usergroups.users.list",
        params={"usergroup": "S0APPROVER"},
        headers={"Authorization": f"Bearer {standin.token}"},
    )
    assert got.json() == {"ok": True, "users": ["U0ALICE01", "U0BOB0001"]}


# --------------------------------------------------------------------------- scopes


def test_each_methods_scope_comes_from_the_spec_read_for_a_bot_token() -> None:
    table = method_scopes()
    assert table["chat.postMessage"] == ("chat:write",)  # the spec's chat:write:bot/:user
    assert table["bots.info"] == ("users:read",)
    assert table["usergroups.users.list"] == ("usergroups:read",)
    assert table["conversations.info"][0] == "channels:read" and "groups:read" in table[
        "conversations.info"]
    assert table["views.publish"] == table["auth.test"] == ()  # `none` in the spec
    assert table["files.getUploadURLExternal"] == ("files:write",)  # newer than the spec


def test_the_token_has_the_manifests_scopes_by_default() -> None:
    manifest = yaml.safe_load(MANIFEST_PATH.read_text(encoding="utf-8"))
    assert SlackApiStandIn().scopes == set(manifest["oauth_config"]["scopes"]["bot"])


def test_an_installed_package_finds_the_manifest_it_ships() -> None:
    # Not run from a checkout (`pip install .`), the demo reads the copy the package installs.
    pyproject = tomllib.loads((MANIFEST_PATH.parent / "pyproject.toml").read_text("utf-8"))
    [(where, files)] = pyproject["tool"]["setuptools"]["data-files"].items()
    assert files == ["app.yaml"]
    assert Path(sys.prefix) / where / "app.yaml" == scopes._INSTALLED_MANIFEST


def test_a_method_outside_the_manifests_scopes_is_refused_like_slack() -> None:
    with SlackApiStandIn() as standin:
        client = WebClient(token=standin.token, base_url=standin.url)
        refused = slack_error(lambda: client.conversations_info(channel=CHANNEL)).response
        assert refused.data == {
            "ok": False, "error": "missing_scope", "needed": "channels:read",
            "provided": ",".join(sorted(manifest_scopes())),
        }
        assert [r.method for r in standin.refusals_of("missing_scope")] == ["conversations.info"]
        assert client.chat_postMessage(channel=CHANNEL, text="granted")["ok"] is True


def test_a_manifest_missing_a_scope_refuses_what_needs_it(tmp_path: Path) -> None:
    # Once, app.yaml lacked users:read: bots.info was refused in every workspace.
    manifest = yaml.safe_load(MANIFEST_PATH.read_text(encoding="utf-8"))
    manifest["oauth_config"]["scopes"]["bot"].remove("users:read")
    older = tmp_path / "app.yaml"
    older.write_text(yaml.safe_dump(manifest), encoding="utf-8")
    with SlackApiStandIn(manifest=older) as standin:
        client = WebClient(token=standin.token, base_url=standin.url)
        refused = slack_error(lambda: client.bots_info(bot=standin.bot_id)).response
        assert (refused["error"], refused["needed"]) == ("missing_scope", "users:read")
        assert "users:read" not in refused["provided"].split(",")
        assert client.auth_test()["bot_id"] == standin.bot_id  # auth.test needs no scope


# --------------------------------------------------------------------------- auth and routing


def test_auth_test_describes_the_bot(standin: SlackApiStandIn, client: WebClient) -> None:
    answer = client.auth_test()
    assert answer["ok"] is True
    assert (answer["team_id"], answer["bot_id"]) == (standin.team_id, standin.bot_id)
    assert answer["url"].startswith("https://") and answer["url"].endswith(".slack.com/")


def test_calls_without_or_with_a_wrong_token_are_refused(standin: SlackApiStandIn) -> None:
    anonymous = WebClient(base_url=standin.url)
    assert slack_error(anonymous.auth_test).response["error"] == "not_authed"
    stranger = WebClient(token="xoxb-not-ours", base_url=standin.url)
    assert slack_error(stranger.auth_test).response["error"] == "invalid_auth"
    assert [c.method for c in standin.calls] == ["auth.test", "auth.test"]


def test_unknown_method(client: WebClient) -> None:
    assert slack_error(lambda: client.api_call("fleet.renew")).response["error"] == "unknown_method"


def test_form_and_json_bodies_are_both_read(standin: SlackApiStandIn, client: WebClient) -> None:
    client.api_call("chat.postMessage", params={"channel": CHANNEL, "text": "form"})
    client.api_call("chat.postMessage", json={"channel": CHANNEL, "text": "json"})
    assert [m["text"] for m in standin.messages(CHANNEL)] == ["form", "json"]
    assert [c.params["text"] for c in standin.calls_to("chat.postMessage")] == ["form", "json"]
    assert all("token" not in c.params for c in standin.calls)


# --------------------------------------------------------------------------- messages


def test_post_update_and_thread(standin: SlackApiStandIn, client: WebClient) -> None:
    parent = client.chat_postMessage(channel=CHANNEL, text="Renewing 1A2B3C", blocks=[section("a")])
    assert parent["channel"] == CHANNEL and parent["message"]["ts"] == parent["ts"]
    reply = client.chat_postMessage(channel=CHANNEL, text="deleted", thread_ts=parent["ts"])
    updated = client.chat_update(channel=CHANNEL, ts=parent["ts"], text="Renewed 1A2B3C")
    assert updated["message"]["text"] == "Renewed 1A2B3C"
    assert updated["message"]["blocks"] == [section("a")]  # Slack keeps blocks not re-sent

    thread = standin.thread(CHANNEL, parent["ts"])
    assert [m["text"] for m in thread] == ["Renewed 1A2B3C", "deleted"]
    assert thread[0]["reply_count"] == 1 and thread[1]["ts"] == reply["ts"]
    assert [v["text"] for v in standin.versions(CHANNEL, parent["ts"])] == [
        "Renewing 1A2B3C",
        "Renewed 1A2B3C",
    ]
    assert standin.messages(CHANNEL) == [standin.message(CHANNEL, parent["ts"])]


def test_update_of_a_message_never_posted(client: WebClient) -> None:
    error = slack_error(lambda: client.chat_update(channel=CHANNEL, ts="1.000009", text="x"))
    assert error.response["error"] == "message_not_found"


def test_post_without_text_or_blocks(client: WebClient) -> None:
    error = slack_error(lambda: client.api_call("chat.postMessage", json={"channel": CHANNEL}))
    assert error.response["error"] == "no_text"


def test_ephemeral_answers_message_ts(standin: SlackApiStandIn, client: WebClient) -> None:
    answer = client.chat_postEphemeral(channel=CHANNEL, user=USER, text="only you")
    assert set(answer.data) == {"ok", "message_ts"}
    assert standin.ephemerals[0]["ephemeral_user"] == USER
    assert standin.messages(CHANNEL) == []


def test_permalink_of_a_reply_names_its_thread(standin: SlackApiStandIn, client: WebClient) -> None:
    parent = client.chat_postMessage(channel=CHANNEL, text="p")
    reply = client.chat_postMessage(channel=CHANNEL, text="r", thread_ts=parent["ts"])
    link = client.chat_getPermalink(channel=CHANNEL, message_ts=reply["ts"])["permalink"]
    assert link.endswith(f"p{reply['ts'].replace('.', '')}?thread_ts={parent['ts']}&cid={CHANNEL}")


def test_channels_the_bot_is_not_in() -> None:
    strict = SlackApiStandIn(lenient=False, scopes=ALL_THESE_TESTS_USE)
    strict.add_channel("C0PRIVATE1", "secret", is_member=False, is_private=True)
    with strict:
        c = WebClient(token=strict.token, base_url=strict.url)
        post = c.chat_postMessage
        assert slack_error(lambda: post(channel="C0PRIVATE1", text="x")).response["error"] == (
            "not_in_channel"
        )
        assert slack_error(lambda: post(channel="C0NOWHERE1", text="x")).response["error"] == (
            "channel_not_found"
        )
        assert c.conversations_info(channel="C0PRIVATE1")["channel"]["is_private"] is True


# --------------------------------------------------------------------------- Block Kit limits


@pytest.mark.parametrize(
    ("blocks", "pointer"),
    [
        ([section("x")] * 51, "/blocks"),
        ([section("x" * 3001)], "/blocks/0/text/text"),
        (
            [
                {
                    "type": "actions",
                    "elements": [
                        {
                            "type": "button",
                            "action_id": "a",
                            "text": {"type": "plain_text", "text": "Go"},
                            "value": "v" * 2001,
                        }
                    ],
                }
            ],
            "/blocks/0/elements/0/value",
        ),
    ],
)
def test_block_kit_limits(client: WebClient, blocks: list[dict[str, Any]], pointer: str) -> None:
    error = slack_error(lambda: client.chat_postMessage(channel=CHANNEL, text="t", blocks=blocks))
    assert error.response["error"] == "invalid_blocks"
    assert pointer in error.response["response_metadata"]["messages"][0]


def test_blocks_at_the_limits_are_accepted(client: WebClient) -> None:
    button = {
        "type": "button",
        "action_id": "a",
        "text": {"type": "plain_text", "text": "Go"},
        "value": "v" * 2000,
    }
    blocks = [section("x" * 3000), {"type": "actions", "elements": [button]}] + [section("y")] * 48
    assert client.chat_postMessage(channel=CHANNEL, text="t", blocks=blocks)["ok"] is True


# --------------------------------------------------------------------------- rate limits, faults


def test_429_is_retried_after_retry_after(standin: SlackApiStandIn, client: WebClient) -> None:
    standin.rate_limit("chat.postMessage", times=1, retry_after=1)
    assert client.chat_postMessage(channel=CHANNEL, text="eventually")["ok"] is True
    first, second = standin.calls_to("chat.postMessage")
    assert second.time - first.time >= 1.0
    assert [m["text"] for m in standin.messages(CHANNEL)] == ["eventually"]


def test_without_the_retry_handler_a_429_surfaces(standin: SlackApiStandIn) -> None:
    standin.rate_limit("chat.postMessage", times=1, retry_after=7)
    plain = WebClient(token=standin.token, base_url=standin.url)  # slack_sdk's defaults
    error = slack_error(lambda: plain.chat_postMessage(channel=CHANNEL, text="x"))
    assert error.response.status_code == 429
    assert error.response.headers["Retry-After"] == "7"
    assert error.response["error"] == "ratelimited"


def test_injected_failure_applies_to_the_next_calls_only(
    standin: SlackApiStandIn, client: WebClient
) -> None:
    standin.fail("chat.update", "cant_update_message", times=2)
    for _ in range(2):
        error = slack_error(lambda: client.chat_update(channel=CHANNEL, ts="1.1", text="x"))
        assert error.response["error"] == "cant_update_message"
    assert (
        slack_error(lambda: client.chat_update(channel=CHANNEL, ts="1.1", text="x")).response[
            "error"
        ]
        == "message_not_found"
    )


def test_unimplemented_method_can_be_scripted(standin: SlackApiStandIn, client: WebClient) -> None:
    standin.answer("team.info", {"team": {"id": standin.team_id}})
    assert client.team_info()["team"]["id"] == standin.team_id


# --------------------------------------------------------------------------- directory, views


def test_usergroup_membership_is_configurable(standin: SlackApiStandIn, client: WebClient) -> None:
    assert client.usergroups_users_list(usergroup="S0APPROVER")["users"] == [
        "U0ALICE01",
        "U0BOB0001",
    ]
    standin.set_usergroup("S0APPROVER", [])
    assert client.usergroups_users_list(usergroup="S0APPROVER")["users"] == []
    error = slack_error(lambda: client.usergroups_users_list(usergroup="S0UNKNOWN"))
    assert error.response["error"] == "no_such_subteam"


def test_users_info(standin: SlackApiStandIn, client: WebClient) -> None:
    standin.add_user("U0ALICE01", "alice", tz="Asia/Tokyo")
    user = client.users_info(user="U0ALICE01")["user"]
    assert (user["name"], user["tz"], user["profile"]["display_name"]) == (
        "alice",
        "Asia/Tokyo",
        "alice",
    )
    assert slack_error(lambda: client.users_info(user="nobody")).response["error"] == (
        "user_not_found"
    )


def test_views_publish_keeps_the_home_tab(standin: SlackApiStandIn, client: WebClient) -> None:
    view = {"type": "home", "blocks": [section("Fleet: 3 devices")]}
    published = client.views_publish(user_id=USER, view=view)["view"]
    assert published["id"].startswith("V") and published["blocks"] == view["blocks"]
    assert standin.home_views[USER]["blocks"] == view["blocks"]
    stale = slack_error(lambda: client.views_publish(user_id=USER, view=view, hash="old"))
    assert stale.response["error"] == "hash_conflict"
    modal = slack_error(lambda: client.views_publish(user_id=USER, view={"type": "modal"}))
    assert modal.response["error"] == "invalid_arguments"


# --------------------------------------------------------------------------- files, response URLs


def test_files_upload_v2_goes_through_the_external_upload_flow(
    standin: SlackApiStandIn, client: WebClient
) -> None:
    parent = client.chat_postMessage(channel=CHANNEL, text="expiring")
    csv = "device,end\n1A2B3C,2025-01-01\n"
    answer = client.files_upload_v2(
        channel=CHANNEL,
        thread_ts=parent["ts"],
        content=csv,
        filename="expiring.csv",
        title="Expiring",
        initial_comment="30 devices",
    )
    assert answer["file"]["name"] == "expiring.csv" and answer["file"]["mimetype"] == "text/csv"
    assert [c.method for c in standin.calls[1:]] == [
        "files.getUploadURLExternal",
        "files.completeUploadExternal",
    ]
    stored = standin.files[answer["file"]["id"]]
    assert stored.content == csv.encode() and stored.length == len(csv.encode())
    shared = standin.thread(CHANNEL, parent["ts"])[-1]
    assert shared["text"] == "30 devices" and shared["files"][0]["id"] == stored.id


def test_completing_an_upload_never_made_is_refused(client: WebClient) -> None:
    files = json.dumps([{"id": "F0NOTHERE1", "title": "x"}])
    error = slack_error(
        lambda: client.api_call("files.completeUploadExternal", params={"files": files})
    )
    assert error.response["error"] == "file_not_found"


def test_response_url_takes_five_posts(standin: SlackApiStandIn) -> None:
    url = standin.response_url(CHANNEL, USER)
    statuses = [httpx.post(url, json={"text": f"#{i}"}).status_code for i in range(6)]
    assert statuses == [200] * 5 + [404]
    assert [r["text"] for r in standin.responses()] == [f"#{i}" for i in range(5)]
    assert [m["ephemeral_user"] for m in standin.ephemerals] == [USER] * 5


# --------------------------------------------------------------------------- the bot's client


def test_make_web_client_reads_slack_api_url_and_counts_calls(
    standin: SlackApiStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLACK_API_URL", standin.url.rstrip("/"))
    sink = Metrics()
    client = make_web_client(standin.token, sink=sink)
    assert client.base_url == standin.url
    standin.rate_limit("chat.postMessage", times=1, retry_after=0)
    client.chat_postMessage(channel=CHANNEL, text="hello")
    slack_error(lambda: client.chat_update(channel=CHANNEL, ts="1.1", text="x"))

    calls = "sigfox_bot_slack_api_calls_total"
    errors = "sigfox_bot_slack_api_errors_total"
    assert sink.value(calls, {"method": "chat.postMessage", "ok": "true"}) == 1
    assert sink.value(errors, {"method": "chat.postMessage", "error": "ratelimited"}) == 1
    assert sink.value(errors, {"method": "chat.update", "error": "message_not_found"}) == 1


def test_default_api_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLACK_API_URL", raising=False)
    assert slack_api_url() == "https://slack.com/api/"


def test_rate_limit_retries_are_bounded(standin: SlackApiStandIn) -> None:
    client = make_web_client(standin.token, standin.url, max_rate_limit_retries=1, sink=Metrics())
    standin.rate_limit("chat.postMessage", times=5, retry_after=0)
    error = slack_error(lambda: client.chat_postMessage(channel=CHANNEL, text="x"))
    assert error.response.status_code == 429
    # One retry allowed: the first call and its retry, then the 429 is the caller's (the
    # stand-in would refuse three more).
    assert len(standin.calls_to("chat.postMessage")) == 2


# --------------------------------------------------------------------------- modals, DMs


def reason_modal(**changes: Any) -> dict[str, Any]:
    view = {"type": "modal", "callback_id": "why", "title": {"type": "plain_text", "text": "Why"},
            "submit": {"type": "plain_text", "text": "Send"},
            "blocks": [{"type": "input", "block_id": "reason",
                        "label": {"type": "plain_text", "text": "Reason"},
                        "element": {"type": "plain_text_input", "action_id": "text"}}]}
    return {**view, **changes}


def test_views_open_needs_the_specs_parameters_and_a_fresh_trigger(
    standin: SlackApiStandIn, client: WebClient
) -> None:
    assert required_params()["views.open"] == {"trigger_id", "view"}
    missing = slack_error(lambda: client.api_call("views.open", json={"view": reason_modal()}))
    assert missing.response["error"] == "invalid_arguments"
    trigger = "1700000000.0SIGFOX1.abc123"
    opened = client.views_open(trigger_id=trigger, view=reason_modal())
    assert opened["view"]["id"].startswith("V") and opened["view"]["callback_id"] == "why"
    assert standin.modals_opened()[0]["id"] == opened["view"]["id"]
    again = slack_error(lambda: client.views_open(trigger_id=trigger, view=reason_modal()))
    assert again.response["error"] == "trigger_exchanged"
    bad = slack_error(lambda: client.views_open(trigger_id="nope", view=reason_modal()))
    assert bad.response["error"] == "invalid_trigger_id"


@pytest.mark.parametrize(("changes", "pointer"), [
    ({"type": "home"}, "/view/type"),
    ({"submit": None}, "/view/submit"),
    ({"title": {"type": "plain_text", "text": "A title far too long for a modal"}},
     "/view/title/text"),
    ({"private_metadata": "x" * 3001}, "/view/private_metadata"),
])
def test_views_open_refuses_a_modal_slack_would_refuse(
    client: WebClient, changes: dict[str, Any], pointer: str
) -> None:
    view = {k: v for k, v in reason_modal(**changes).items() if v is not None}
    error = slack_error(lambda: client.views_open(trigger_id=f"{time.time_ns()}.T.x", view=view))
    assert error.response["error"] == "invalid_arguments"
    assert any(pointer in m for m in error.response["response_metadata"]["messages"])


def test_direct_messages_by_user_id_or_conversations_open(
    standin: SlackApiStandIn, client: WebClient
) -> None:
    client.chat_postMessage(channel=USER, text="reminder")
    opened = client.conversations_open(users=USER)
    client.chat_postMessage(channel=opened["channel"]["id"], text="again")
    assert [m["text"] for m in standin.direct_messages(USER)] == ["reminder", "again"]
    assert standin.messages(CHANNEL) == []
    nobody = slack_error(lambda: client.api_call("conversations.open", json={}))
    assert nobody.response["error"] == "users_list_not_supplied"
