"""Issue 11's nine numbered findings, each mapped to the tests that reproduce it (they failed
before its fix, they pass now). The map is checked: every test it names exists, so it cannot
silently point at a renamed or deleted test.

1. A crash during a slow DELETE sent a second DELETE, which could delete the re-created device:
   kills during in-flight DELETEs, creates and bulk calls (42 randomized trials, one DELETE and
   one create per device), and the write-ahead rules in one process.
2. One 5xx on a DELETE stalled an approved renewal for an hour, silently; Cancel was refused
   though the device was untouched; a restart forgot the hourly pacing: the wait said with its
   time, the DELETE counted until the backend shows it did nothing, the count kept in the
   database, the cancel once verified, and a cancel asked before `lands_by` kept as pending.
3. Any slash command whose body held the word "payload" got a 404 in HTTP mode.
4. Clicks queued behind slow status commands.
5. No body-size limit before the signature check on `/slack/events` (and the uplink).
6. Junk got a 500 with a traceback (unsigned or signed); the uplink let "1A2B3C\n" through.
7. An Approve/Cancel race could leave a misleading record.
8. A click was bound to nothing but the signature (channel, message, workspace, app).
9. The README's backup recipe wrote a world-readable copy; the redactor missed a glued PAC.
"""

from __future__ import annotations

import ast
from pathlib import Path

FINDINGS: dict[int, list[str]] = {
    1: ["test_crash_inflight.py::test_kills_during_slow_destructive_calls_never_repeat_them",
        "test_writeahead.py::test_an_unanswered_delete_is_never_sent_again_and_nothing_follows_"
        "until_it_is_settled",
        "test_writeahead.py::test_a_delete_that_took_effect_cannot_be_cancelled",
        "test_crash_recovery.py::test_a_crash_anywhere_loses_nothing_and_repeats_nothing"],
    2: ["test_tick_waits.py::test_one_500_on_delete_does_not_hold_the_renewal_an_hour",
        "test_tick_waits.py::test_a_delete_that_may_have_been_executed_still_counts_after_a_"
        "restart",
        "test_client_waits.py::test_a_delete_answered_500_counts_until_the_backend_shows_it_did_"
        "nothing",
        "test_client_waits.py::test_the_hourly_count_survives_a_restart_and_is_shared_by_"
        "processes",
        "test_bot_sigfox_waits.py::test_a_job_throttled_by_sigfox_shows_until_when_on_its_card",
        "test_writeahead.py::test_a_delete_that_failed_can_be_cancelled_once_verified_not_"
        "executed",
        "test_pending_cancel.py::test_a_cancel_while_an_unexecuted_delete_could_land_is_done_"
        "once_it_cannot",
        "test_pending_cancel.py::test_a_cancel_whose_delete_landed_after_all_is_refused_and_the_"
        "job_goes_on"],
    3: ["test_slack_edge.py::test_the_word_payload_anywhere_in_a_command_is_still_a_command"],
    4: ["test_lanes.py::test_a_click_is_decided_while_a_flood_of_status_reads_waits"],
    5: ["test_slack_edge.py::test_an_oversized_body_is_refused_before_it_is_read",
        "test_slack_edge.py::test_an_oversized_streamed_body_is_cut_off",
        "test_slack_edge.py::test_an_oversized_uplink_is_refused"],
    6: ["test_slack_edge.py::test_signed_junk_is_a_400_without_a_traceback",
        "test_slack_edge.py::test_unsigned_junk_is_a_400",
        "test_slack_edge.py::test_uplink_junk_is_a_400",
        "test_slack_edge.py::test_no_payload_shape_gets_a_5xx",
        "test_slack_edge.py::test_no_event_document_gets_a_5xx"],
    7: ["test_decision_races.py::test_approve_reject_cancel_and_expiry_leave_one_story"],
    8: ["test_click_binding.py::test_a_job_button_works_only_on_its_own_message",
        "test_click_binding.py::test_a_home_click_elsewhere_decides_nothing",
        "test_click_binding.py::test_a_request_of_one_job_cannot_be_decided_on_another_jobs_"
        "message",
        "test_click_binding.py::test_a_command_for_another_workspace_is_dropped"],
    9: ["test_readme_recipes.py::test_the_backup_recipe_writes_an_owner_only_complete_copy",
        "test_logs.py::test_a_pac_glued_to_other_characters_is_redacted"],
}


def test_each_finding_has_tests_and_every_test_named_exists() -> None:
    here = Path(__file__).parent
    assert sorted(FINDINGS) == list(range(1, 10))
    for finding, tests in FINDINGS.items():
        assert tests, f"finding {finding} has no test"
        for test in tests:
            module, name = test.split("::")
            tree = ast.parse((here / module).read_text())
            defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
            assert name in defined, f"finding {finding}: {test} does not exist"
