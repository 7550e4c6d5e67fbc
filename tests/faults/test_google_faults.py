"""Google Cloud faults (Resource Manager, Cloud Asset, Policy Analyzer, Cloud Identity) injected
at the fake's wire while the real service runs a request through its lifecycle.

After every fault, IAM, the audit log and the PR must agree (`assert_consistent`); whatever failed
transiently completes on a redelivery of the merge event.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from jitaccess_sandbox.emulator import ORG, SELF, Answer, Emulator
from jitaccess_sandbox.fake_google_assets import analyzer_queries, set_analyzer_quota
from tests.faults.conftest import (
    ACTIVATE,
    assert_consistent,
    comment_kinds,
    comment_of,
    events,
    google_error,
    merged_ready,
    redeliver_merge,
    request_yaml,
    stop,
)

GET_POLICY = r"^/v3/projects/payments-dev:getIamPolicy$"
SET_POLICY = r"^/v3/projects/payments-dev:setIamPolicy$"
BATCH_GET = r"/effectiveIamPolicies:batchGet$"
ANALYZE = r":analyzeIamPolicy$"
GROUP_SEARCH = r"^/v1/groups/-/memberships:searchDirectGroups$"
ABORTED = google_error(
    409, "ABORTED", "There were concurrent policy changes. Please retry the whole "
    "read-modify-write with exponential backoff."
)
# What other IAM surfaces answer for a stale etag (the fake's `stale_etag_status = 412` mode).
FAILED_PRECONDITION = google_error(412, "FAILED_PRECONDITION", "Precondition check failed.")
WINDOW_1H = (
    '(request.time >= timestamp("2026-11-29T10:00:00Z") && '
    'request.time < timestamp("2026-11-29T11:00:00Z"))'
)


def rm_calls(emu: Emulator) -> tuple[int, int]:
    """(getIamPolicy, setIamPolicy) calls on payments-dev so far."""
    rec = emu.google.recorder
    return rec.count("POST", GET_POLICY), rec.count("POST", SET_POLICY)


def assert_activated_once(emu: Emulator, number: int) -> None:
    """One binding, one activateRole entry, one activation comment: the final, good state."""
    [act] = assert_consistent(emu, number)
    assert (act.project, act.role, act.member) == (
        "payments-dev", "roles/cloudsql.admin", "user:alice@example.com"
    )
    assert events(emu).count(ACTIVATE) == 1
    assert comment_kinds(emu, number).count("activation") == 1
    assert "gitops.refuseActivation" not in events(emu)


def assert_nothing_granted(emu: Emulator, number: int) -> None:
    """The state after a failed activation: no binding, no activateRole, a failure comment."""
    assert assert_consistent(emu, number) == []
    assert emu.activations("payments-dev") == []
    assert ACTIVATE not in events(emu)
    assert "gitops.refuseActivation" not in events(emu)
    assert comment_kinds(emu, number) == ["status", "failed"]


# -- Resource Manager: concurrent modification (409 ABORTED, or 412 FAILED_PRECONDITION) -----------


@pytest.mark.parametrize(
    ("status", "body"), [(409, ABORTED), (412, FAILED_PRECONDITION)], ids=["409", "412"]
)
def test_two_conflicts_are_retried_and_grant_once(
    emu: Emulator, status: int, body: dict[str, object]
) -> None:
    number = merged_ready(emu)
    emu.google.recorder.fail("POST", SET_POLICY, status, body=body, times=2)
    answer = emu.merge(number)
    assert answer.status == 200, answer.body
    assert answer.body["state"] == "activated" and answer.body["written"] is True
    # every conflict re-reads the policy: three reads, three writes, the last one lands
    assert rm_calls(emu) == (3, 3)
    assert_activated_once(emu, number)
    assert emu.activations("payments-dev")[0]["condition"]["expression"] == WINDOW_1H
    assert comment_kinds(emu, number) == ["status", "activation"]


def test_conflict_storm_gives_up_at_the_deadline_and_a_redelivery_completes(
    emu: Emulator,
) -> None:
    number = merged_ready(emu)
    storm = emu.google.recorder.fail("POST", SET_POLICY, 409, body=ABORTED, times=-1)
    answer = emu.merge(number, delivery_id="merge-1")
    assert answer.status == 502, answer.body
    assert answer.body["state"] == "failed"
    # Retried until the conflict deadline (5 s), the number of attempts depends on the backoff.
    made = rm_calls(emu)[1]
    assert made >= 5
    assert answer.body["message"] == (
        "PR #1: activation failed: the IAM binding could not be written: The IAM policy of "
        f"project payments-dev kept changing concurrently; gave up after {made} attempts; retry "
        "later."
    )
    assert rm_calls(emu) == (made, made)  # bounded: the storm goes on, the service stopped
    assert_nothing_granted(emu, number)
    failed = comment_of(emu, number, "failed")
    assert f"kept changing concurrently; gave up after {made} attempts" in failed
    assert "No access was granted" in failed
    assert "choose **Re-run** on the `jit-access` check" in failed
    assert "redeliver the merge event" in failed

    stop(storm)
    emu.advance(timedelta(minutes=3))
    again = redeliver_merge(emu, number, "merge-1")
    assert again.status == 200, again.body
    assert again.body["written"] is True
    assert rm_calls(emu) == (made + 1, made + 1)
    assert_activated_once(emu, number)
    # The failure comment stays as a record of what happened; the activation comment follows
    # it, so the PR ends on the outcome.
    assert comment_kinds(emu, number) == ["status", "failed", "activation"]
    assert comment_of(emu, number, "failed") == failed
    [entry] = [e for e in emu.audit() if e["labels"]["event"] == ACTIVATE]
    assert entry["labels"]["activation_start"] == "2026-11-29T10:03:00Z"


# -- Resource Manager: 429 / 503 ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "status", "grpc", "calls"),
    [
        (GET_POLICY, 429, "RESOURCE_EXHAUSTED", (3, 1)),
        (GET_POLICY, 503, "UNAVAILABLE", (3, 1)),
        (SET_POLICY, 429, "RESOURCE_EXHAUSTED", (1, 3)),
        (SET_POLICY, 503, "UNAVAILABLE", (1, 3)),
    ],
)
def test_transient_resource_manager_errors_are_retried(
    emu: Emulator, path: str, status: int, grpc: str, calls: tuple[int, int]
) -> None:
    number = merged_ready(emu)
    emu.google.recorder.fail("POST", path, status, body=google_error(status, grpc), times=2)
    answer = emu.merge(number)
    assert answer.status == 200, answer.body
    assert answer.body["written"] is True
    assert rm_calls(emu) == calls
    assert_activated_once(emu, number)


def test_persistent_503_on_set_iam_policy_fails_then_a_redelivery_completes(
    emu: Emulator,
) -> None:
    number = merged_ready(emu)
    outage = emu.google.recorder.fail(
        "POST", SET_POLICY, 503, body=google_error(503, "UNAVAILABLE", "backend down"), times=-1
    )
    answer = emu.merge(number, delivery_id="merge-1")
    assert answer.status == 502, answer.body
    assert answer.body["message"] == (
        "PR #1: activation failed: the IAM binding could not be written: Google Cloud kept "
        "failing while changing the IAM policy of project payments-dev (503 backend down); "
        "retry later."
    )
    reads, writes = rm_calls(emu)
    assert reads == 1  # a 503 retries the call, not the read-modify-write
    assert writes >= 3  # bounded retry of the write (time-bounded: the exact count varies)
    assert_nothing_granted(emu, number)
    assert "Google Cloud kept failing" in comment_of(emu, number, "failed")

    stop(outage)
    again = redeliver_merge(emu, number, "merge-1")
    assert again.status == 200, again.body
    assert rm_calls(emu) == (2, writes + 1)
    assert_activated_once(emu, number)
    assert comment_kinds(emu, number) == ["status", "failed", "activation"]


# -- Resource Manager: 400 and 403 --------------------------------------------------------------


def test_role_that_cannot_be_granted_on_a_project_is_named(emu: Emulator) -> None:
    # Eligible on the organization, where the role exists; IAM refuses it on a project.
    emu.world.add_binding(ORG, "roles/resourcemanager.folderAdmin", "user:alice@example.com",
                          SELF, title="Folder admins")
    number = merged_ready(
        emu, roles=("roles/cloudsql.admin", "roles/resourcemanager.folderAdmin")
    )
    answer = emu.merge(number, delivery_id="merge-1")
    assert answer.status == 502, answer.body
    reason = (
        "roles/resourcemanager.folderAdmin cannot be granted on project payments-dev: "
        "Role roles/resourcemanager.folderAdmin is not supported for this resource."
    )
    assert answer.body["message"] == (
        f"PR #1: activation failed: the IAM binding could not be written: {reason}"
    )
    assert rm_calls(emu) == (1, 1)  # a 400 is not retried
    assert_nothing_granted(emu, number)  # one write for both roles: neither is granted
    failed = comment_of(emu, number, "failed")
    assert reason in failed
    assert "roles/cloudsql.admin cannot" not in failed

    # The refusal is permanent: a redelivery fails the same way and edits the same comment.
    again = redeliver_merge(emu, number, "merge-1")
    assert again.status == 502
    assert rm_calls(emu) == (2, 2)
    assert_nothing_granted(emu, number)
    assert comment_of(emu, number, "failed") == failed


def test_permission_denied_on_set_iam_policy(emu: Emulator) -> None:
    number = merged_ready(emu)
    emu.google.recorder.fail(
        "POST", SET_POLICY, 403,
        body=google_error(403, "PERMISSION_DENIED", "The caller does not have permission"),
    )
    answer = emu.merge(number, delivery_id="merge-1")
    assert answer.status == 502, answer.body
    assert answer.body["message"] == (
        "PR #1: activation failed: the IAM binding could not be written: Cannot change the IAM "
        "policy of project payments-dev: the service account lacks permission or the project "
        "does not exist (403: The caller does not have permission)"
    )
    assert rm_calls(emu) == (1, 1)
    assert_nothing_granted(emu, number)
    assert "lacks permission" in comment_of(emu, number, "failed")
    assert redeliver_merge(emu, number, "merge-1").status == 200  # once permission is granted
    assert_activated_once(emu, number)


# -- Cloud Asset during evaluation ----------------------------------------------------------------


def assert_service_error(emu: Emulator, number: int, answer: Answer, *needles: str) -> None:
    """Status `error` (never success/failure), explained in the one status comment."""
    assert answer.status == 200, answer
    assert answer.body["state"] == "error"
    status = emu.status(number)
    assert status is not None
    assert (status["state"], status["description"]) == ("error", "Service error: see comment")
    [comment] = emu.comments(number)
    assert "cannot be evaluated" in comment
    for needle in needles:
        assert needle in comment, comment
    assert "http://" not in comment  # the transport's request line is not shown
    assert_consistent(emu, number)


def test_asset_permission_denied_during_evaluation(emu: Emulator) -> None:
    emu.google.recorder.fail(
        "GET", BATCH_GET, 403,
        body=google_error(403, "PERMISSION_DENIED", "The caller does not have permission"),
    )
    number = emu.open_request("alice", request_yaml())
    answer = emu.pr_event("opened", number)
    assert_service_error(
        emu, number, answer,
        "Cloud Asset effectiveIamPolicies:batchGet for project payments-dev on "
        "organizations/123456789012 was denied: the service account needs",
        "(The caller does not have permission)",
    )
    assert emu.google.recorder.count("GET", BATCH_GET) == 1  # a 403 is not retried
    assert events(emu) == []  # nothing requested while the request cannot be evaluated


def test_asset_rate_limit_during_evaluation(emu: Emulator) -> None:
    throttled = emu.google.recorder.fail(
        "GET", BATCH_GET, 429, body=google_error(429, "RESOURCE_EXHAUSTED", "Quota exceeded"),
        times=-1,
    )
    number = emu.open_request("alice", request_yaml())
    answer = emu.pr_event("opened", number)
    assert_service_error(
        emu, number, answer,
        "Cloud Asset effectiveIamPolicies:batchGet for project payments-dev was rate-limited "
        "by Cloud Asset (after retries) (Quota exceeded)",
    )
    assert emu.google.recorder.count("GET", BATCH_GET) >= 3
    stop(throttled)
    answer = emu.pr_event("synchronize", number)
    assert answer.body["state"] == "ready"
    assert emu.status(number)["state"] == "success"  # type: ignore[index]
    assert len(emu.comments(number)) == 1  # the same status comment, edited


def test_transient_asset_unavailability_is_retried(emu: Emulator) -> None:
    emu.google.recorder.fail("GET", BATCH_GET, 503, body=google_error(503, "UNAVAILABLE"),
                             times=2)
    number = merged_ready(emu)
    assert emu.google.recorder.count("GET", BATCH_GET) == 3
    assert emu.status(number)["state"] == "success"  # type: ignore[index]


# -- Cloud Asset during the merge: fail (5xx) and let a redelivery complete, never refuse ----------


@pytest.mark.parametrize(
    ("status", "grpc", "times", "needle"),
    [
        (503, "UNAVAILABLE", -1, "failed: Cloud Asset is unavailable (after retries) (injected)"),
        (403, "PERMISSION_DENIED", 1, "was denied: the service account needs"),
    ],
)
def test_eligibility_lookup_failure_at_merge_fails_and_a_redelivery_completes(
    emu: Emulator, status: int, grpc: str, times: int, needle: str
) -> None:
    number = merged_ready(emu)
    fault = emu.google.recorder.fail("GET", BATCH_GET, status, body=google_error(status, grpc),
                                     times=times)
    answer = emu.merge(number, delivery_id="merge-1")
    assert answer.status == 502, answer.body
    assert answer.body["state"] == "failed"
    assert answer.body["message"].startswith(
        "PR #1: activation failed: eligibility could not be checked: Google Cloud: Cloud Asset "
        "effectiveIamPolicies:batchGet for project payments-dev"
    )
    assert needle in answer.body["message"]
    assert rm_calls(emu) == (0, 0)
    assert_nothing_granted(emu, number)  # a failure comment, not a refusal
    assert needle in comment_of(emu, number, "failed")
    assert "gitops.refuseActivation" not in events(emu)

    stop(fault)
    again = redeliver_merge(emu, number, "merge-1")
    assert again.status == 200, again.body
    assert_activated_once(emu, number)
    assert comment_kinds(emu, number) == ["status", "failed", "activation"]


# -- Policy Analyzer quota -------------------------------------------------------------------------


def test_policy_analyzer_quota_exhausted_at_merge(analyzer_emu: Emulator) -> None:
    emu = analyzer_emu
    set_analyzer_quota(emu.world, 0)
    number = merged_ready(emu)  # before the merge, asset-inventory judges: no query
    assert emu.google.recorder.count("GET", ANALYZE) == 0
    answer = emu.merge(number, delivery_id="merge-1")
    assert answer.status == 502, answer.body
    assert "Policy Analyzer quota is exhausted" in answer.body["message"]
    assert (
        "the Policy Analyzer quota is exhausted (without Security Command Center Premium an "
        "organization gets 20 queries per day)"
    ) in answer.body["message"]
    # One query per event, and a 429 (the daily quota) is not retried.
    assert emu.google.recorder.count("GET", ANALYZE) == 1
    assert analyzer_queries(emu.world) == 0
    assert_nothing_granted(emu, number)
    assert "Policy Analyzer quota is exhausted" in comment_of(emu, number, "failed")

    set_analyzer_quota(emu.world, None)  # Security Command Center Premium: no daily limit
    assert redeliver_merge(emu, number, "merge-1").status == 200
    assert emu.google.recorder.count("GET", ANALYZE) == 2
    assert_activated_once(emu, number)


# -- Cloud Identity --------------------------------------------------------------------------------


def test_transient_cloud_identity_errors_are_retried(emu: Emulator) -> None:
    emu.google.recorder.fail("GET", GROUP_SEARCH, 503, body=google_error(503, "UNAVAILABLE"),
                             times=2)
    number = merged_ready(emu)
    assert emu.google.recorder.count("GET", GROUP_SEARCH) == 3
    assert emu.status(number)["state"] == "success"  # type: ignore[index]


def test_cloud_identity_outage_during_evaluation(emu: Emulator) -> None:
    emu.google.recorder.fail("GET", GROUP_SEARCH, 500, body=google_error(500, "INTERNAL"),
                             times=-1)
    number = emu.open_request("alice", request_yaml())
    answer = emu.pr_event("opened", number)
    assert_service_error(
        emu, number, answer,
        "Cloud Identity memberships:searchDirectGroups failed after 3 attempts: HTTP 500 "
        "(injected)",
    )
    assert emu.google.recorder.count("GET", GROUP_SEARCH) == 3


def test_cloud_identity_outage_at_merge_fails_then_a_redelivery_completes(
    emu: Emulator,
) -> None:
    number = merged_ready(emu)
    outage = emu.google.recorder.fail(
        "GET", GROUP_SEARCH, 502, body=google_error(502, "UNAVAILABLE"), times=-1
    )
    answer = emu.merge(number, delivery_id="merge-1")
    assert answer.status == 502, answer.body
    assert "Cloud Identity memberships:searchDirectGroups failed after 3 attempts: HTTP 502" in (
        answer.body["message"]
    )
    assert_nothing_granted(emu, number)
    stop(outage)
    assert redeliver_merge(emu, number, "merge-1").status == 200
    assert_activated_once(emu, number)


# -- Multi-party approval: a fault at merge keeps the approval usable -----------------------------


def test_failed_merge_of_an_approved_request_completes_with_the_approval(emu: Emulator) -> None:
    number = emu.open_request("alice", request_yaml(project="payments-prod"))
    emu.pr_event("opened", number)
    _, answer = emu.review(number, "bob")
    assert answer.body["state"] == "ready"
    set_prod = r"^/v3/projects/payments-prod:setIamPolicy$"
    emu.google.recorder.fail("POST", set_prod, 403, body=google_error(403, "PERMISSION_DENIED"))
    assert emu.merge(number, delivery_id="merge-1").status == 502
    assert emu.google.recorder.count("POST", set_prod) == 1
    assert assert_consistent(emu, number) == []
    assert redeliver_merge(emu, number, "merge-1").status == 200
    [act] = assert_consistent(emu, number)
    assert act.description.startswith("Approved by bob@example.com, justification:")
    [entry] = [e for e in emu.audit() if e["labels"]["event"] == ACTIVATE]
    assert entry["labels"]["reviewers"] == "bob@example.com"
