"""Policy Analyzer's awkward answers, through the real service (`eligibility.source:
policy-analyzer`, asked at the merge only): 400 for a project that does not exist, and slow
analyses.

The service gives every analysis an `executionTimeout` below its own deadline, so a slow one
answers in time with what it found (`fullyExplored: false`) instead of running on after the
service gave up. What a partial answer found is true; what it lacks proves nothing. The slow
cases wait for the real execution timeout (a few seconds each).
"""

from __future__ import annotations

from urllib.parse import parse_qs

from jitaccess_sandbox.emulator import SHORT_BUDGET, Emulator
from jitaccess_sandbox.fake_google_assets import analyzer_queries, set_analysis_duration
from tests.faults.conftest import assert_consistent, comment_of, request_yaml

ANALYZE = r":analyzeIamPolicy$"
SLOW = 60.0  # seconds an analysis would take without an execution timeout


def sent_execution_timeouts(emu: Emulator) -> list[str]:
    return [
        parse_qs(c.query).get("executionTimeout", [""])[0]
        for c in emu.google.recorder.calls if c.path.endswith(":analyzeIamPolicy")
    ]


def test_a_project_that_does_not_exist_is_not_eligible_after_one_query(
    analyzer_emu: Emulator,
) -> None:
    emu = analyzer_emu
    number = emu.open_request("alice", request_yaml(project="ghost-project"))

    answer = emu.pr_event("opened", number)  # judged through asset-inventory before the merge

    assert answer.status == 200, answer.body
    assert answer.body["state"] == "not_eligible"  # a failure, not a service error
    status = emu.status(number)
    assert status is not None
    assert (status["state"], status["description"]) == (
        "failure", "Not eligible for roles/cloudsql.admin"
    )
    assert emu.google.recorder.count("GET", ANALYZE) == 0

    merged = emu.merge(number)
    assert merged.status == 200, merged.body
    assert merged.body["state"] == "refused"
    assert "Not eligible for roles/cloudsql.admin" in comment_of(emu, number, "refusal")
    assert emu.google.recorder.count("GET", ANALYZE) == 1  # a 400 is not retried
    assert analyzer_queries(emu.world) == 0  # refused before it was analysed
    assert assert_consistent(emu, number) == []


def test_a_partial_analysis_that_shows_eligibility_is_used(analyzer_emu: Emulator) -> None:
    # developers@ (alice) is eligible on payments-dev itself: the part analysed in time.
    emu = analyzer_emu
    number = emu.open_request("alice", request_yaml())
    assert emu.pr_event("opened", number).body["state"] == "ready"
    set_analysis_duration(emu.world, SLOW)

    merged = emu.merge(number)

    assert merged.status == 200, merged.body
    assert sent_execution_timeouts(emu) == ["5s"]
    # the partial answer arrives while the service listens
    assert 5.0 < SHORT_BUDGET.analyzer_timeout
    [activation] = assert_consistent(emu, number)
    assert (activation.project, activation.member) == ("payments-dev", "user:alice@example.com")
    assert emu.google.recorder.count("GET", ANALYZE) == 1  # the merge's, not retried


def test_a_partial_analysis_without_the_requesters_eligibility_is_an_error(
    analyzer_emu: Emulator,
) -> None:
    # bob is eligible for payments-prod only through sre@ on the prod folder, which the
    # analysis did not reach in time: that is not "not eligible", it is unknown.
    emu = analyzer_emu
    number = emu.open_request("bob", request_yaml(project="payments-prod"))
    assert emu.pr_event("opened", number).body["state"] == "pending"
    _, approved = emu.review(number, "carol")
    assert approved.body["state"] == "ready", approved.body
    set_analysis_duration(emu.world, SLOW)

    answer = emu.merge(number, delivery_id="merge-1")

    assert answer.status == 502, answer.body
    assert (
        "Policy Analyzer's analysis of project payments-prod was cut short after 5 s "
        "(fullyExplored: false) before it showed eligibility for roles/cloudsql.admin"
    ) in answer.body["message"]
    assert "cut short" in comment_of(emu, number, "failed")
    assert assert_consistent(emu, number) == []
    assert emu.google.recorder.count("GET", ANALYZE) == 1

    set_analysis_duration(emu.world, 0)  # the redelivery gets a complete answer
    again = emu.deliver("pull_request", emu.pr_payload("closed", number), delivery_id="merge-1")
    assert again.status == 200, again.body
    assert again.body["state"] == "activated"
    assert emu.google.recorder.count("GET", ANALYZE) == 2
    [_] = assert_consistent(emu, number)
