"""Prometheus metrics: each in a registry of its own, rendered in the text format."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from commands import metrics
from commands.metrics import Metrics, endpoint_template


def samples(m: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    content, _ = m.render()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(content.decode())
        for s in family.samples
    }


@pytest.mark.parametrize(
    ("path", "template"),
    [
        ("/devices/1A2B3C", "/devices/{id}"),
        ("/devices/1A2B3C/messages?limit=1", "/devices/{id}/messages"),
        ("/device-types/5f0c9a6e2b1d3c0012345678/callbacks", "/device-types/{id}/callbacks"),
        ("/devices/", "/devices"),
        ("/devices/bulk/add", "/devices/bulk/add"),
        ("/contract-infos/", "/contract-infos"),
    ],
)
def test_endpoint_template_keeps_label_values_few(path: str, template: str) -> None:
    assert endpoint_template(path) == template


def test_sigfox_calls_and_429s() -> None:
    m = Metrics()
    m.record_sigfox_call("get", "/devices/1A2B3C", 200)
    m.record_sigfox_call("GET", "/devices/9F9F9F", 200)
    m.record_sigfox_call("DELETE", "/devices/1A2B3C", 429)
    got = samples(m)
    calls = "sigfox_bot_sigfox_api_calls_total"
    key = (("endpoint", "/devices/{id}"), ("method", "GET"), ("status", "200"))
    assert got[(calls, key)] == 2
    assert got[("sigfox_bot_sigfox_api_rate_limited_total", (("endpoint", "/devices/{id}"),))] == 1


def test_slack_calls_and_errors() -> None:
    m = Metrics()
    m.record_slack_call("chat.postMessage", True)
    m.record_slack_call("chat.postMessage", False, "channel_not_found")
    assert m.value("sigfox_bot_slack_api_calls_total", {"method": "chat.postMessage", "ok": "true"})
    errors = {"method": "chat.postMessage", "error": "channel_not_found"}
    assert m.value("sigfox_bot_slack_api_errors_total", errors) == 1


def test_scan_replaces_the_previous_one() -> None:
    m = Metrics()
    m.record_scan(12.5, {"OK": 90, "OFF_CONTRACT": 10})
    m.record_scan(3.0, {"OK": 99})
    assert m.value("sigfox_bot_last_scan_duration_seconds") == 3.0
    assert m.value("sigfox_bot_devices_by_token_state", {"state": "OK"}) == 99
    assert m.value("sigfox_bot_devices_by_token_state", {"state": "OFF_CONTRACT"}) is None


def test_workflow_and_approval_gauges_are_read_at_scrape_time() -> None:
    m = Metrics()
    counts = {"waiting_release": 2, "finished": 5}
    m.set_workflow_state_source(lambda: counts)
    m.set_approvals_waiting_source(lambda: 3)
    assert m.value("sigfox_bot_workflows", {"state": "waiting_release"}) == 2
    counts["waiting_release"] = 0
    assert m.value("sigfox_bot_workflows", {"state": "waiting_release"}) == 0
    assert m.value("sigfox_bot_approvals_waiting") == 3


def test_a_failing_source_does_not_break_the_scrape() -> None:
    m = Metrics()

    def broken() -> int:
        raise RuntimeError("database is locked")

    m.set_approvals_waiting_source(broken)
    m.record_slack_call("auth.test", True)
    content, content_type = m.render()
    assert b"sigfox_bot_slack_api_calls_total" in content
    assert content_type.startswith("text/plain")


def test_registries_are_independent() -> None:
    a, b = Metrics(), Metrics()
    a.record_slack_call("auth.test", True)
    assert (
        b.value("sigfox_bot_slack_api_calls_total", {"method": "auth.test", "ok": "true"}) is None
    )


def test_module_functions_record_into_the_served_registry() -> None:
    labels = {"method": "views.publish", "ok": "true"}
    before = metrics.METRICS.value("sigfox_bot_slack_api_calls_total", labels) or 0
    metrics.record_slack_call("views.publish", True)
    content, _ = metrics.render_metrics()
    assert metrics.METRICS.value("sigfox_bot_slack_api_calls_total", labels) == before + 1
    assert b'sigfox_bot_slack_api_calls_total{method="views.publish",ok="true"}' in content


def test_scan_source_is_read_at_scrape_time_and_wins_over_a_recorded_scan() -> None:
    m = Metrics()
    figures: list[tuple[float, dict[str, int]] | None] = [None]
    m.set_scan_source(lambda: figures[0])
    assert m.value("sigfox_bot_last_scan_duration_seconds") is None  # no scan anywhere yet
    m.record_scan(9.0, {"ok": 1})
    assert m.value("sigfox_bot_last_scan_duration_seconds") == 9.0  # the source knows none
    figures[0] = (4.5, {"ok": 7, "off_contract": 2})
    assert m.value("sigfox_bot_last_scan_duration_seconds") == 4.5
    assert m.value("sigfox_bot_devices_by_token_state", {"state": "off_contract"}) == 2


def test_a_call_without_an_answer_is_counted_as_an_error() -> None:
    m = Metrics()
    m.record_sigfox_call("GET", "/devices/", None)
    labels = {"method": "GET", "endpoint": "/devices", "status": "error"}
    assert m.value("sigfox_bot_sigfox_api_calls_total", labels) == 1
