"""Slow Google answers near the per-call timeout, and hangs beyond it.

Kept apart from the other fault tests because each case waits for real seconds: the emulator's
per-call timeout (`SHORT_BUDGET.call_timeout`, 1.5 s; 4 s in production) is a real client
timeout. A hang is the fake answering only after `delay` seconds, later than the service waits:
the call is abandoned, the activation fails cleanly (nothing granted, nothing audited) and a
redelivery completes it.
"""

from __future__ import annotations

from jitaccess_sandbox.emulator import ORG, SELF, SHORT_BUDGET, Emulator
from tests.faults.conftest import (
    ACTIVATE,
    assert_consistent,
    comment_kinds,
    comment_of,
    events,
    merged_ready,
    redeliver_merge,
    request_yaml,
)

GET_POLICY = r"^/v3/projects/payments-dev:getIamPolicy$"
SET_POLICY = r"^/v3/projects/payments-dev:setIamPolicy$"
LOG_WRITE = r"^/v2/entries:write$"
GROUP_SEARCH = r"^/v1/groups/-/memberships:searchDirectGroups$"
CALL_TIMEOUT = SHORT_BUDGET.call_timeout
HANG = CALL_TIMEOUT + 1.0  # seconds before the fake answers a "hanging" call


def test_every_google_call_just_below_the_timeout_still_activates(emu: Emulator) -> None:
    assert emu.settings.budget.call_timeout == CALL_TIMEOUT
    # A direct (group-less) eligibility keeps the merge at four Google calls in a row, and the
    # audit log's read runs beside the first of them.
    emu.world.add_project("payments-qa", ORG)
    emu.world.add_binding("projects/payments-qa", "roles/cloudsql.admin",
                          "user:alice@example.com", SELF, title="Eligible for JIT access")
    number = merged_ready(emu, project="payments-qa")
    before = len(emu.google.recorder.calls)
    emu.google.recorder.latency = CALL_TIMEOUT - 0.5
    answer = emu.merge(number)
    emu.google.recorder.latency = 0.0
    assert answer.status == 200, answer.body
    assert answer.body["written"] is True
    calls = [(c.method, c.path.rsplit("/", 1)[-1]) for c in emu.google.recorder.calls[before:]]
    # The requester's groups are searched beside batchGet, and the audit log's read runs beside
    # them (the chain stays four calls long).
    assert sorted(calls[:3]) == [
        ("GET", "effectiveIamPolicies:batchGet"),
        ("GET", "memberships:searchDirectGroups"),
        ("POST", "entries:list"),
    ]
    assert calls[3:] == [
        ("POST", "payments-qa:getIamPolicy"),
        ("POST", "payments-qa:setIamPolicy"),
        ("POST", "entries:write"),
    ]  # none abandoned, none repeated
    [act] = assert_consistent(emu, number)
    assert act.project == "payments-qa"


def test_hanging_get_iam_policy_fails_cleanly_and_a_redelivery_completes(emu: Emulator) -> None:
    number = merged_ready(emu)
    emu.google.recorder.fail("POST", GET_POLICY, 503, delay=HANG)
    answer = emu.merge(number, delivery_id="merge-1")
    assert answer.status == 502, answer.body
    message = answer.body["message"]
    assert message.startswith(
        "PR #1: activation failed: the IAM binding could not be written: Could not reach "
        "Resource Manager for project payments-dev: "
    )
    assert f"Read timed out. (read timeout={CALL_TIMEOUT})" in message
    # A timeout is not retried within the delivery: another full timeout would break GitHub's
    # 10 s.
    assert emu.google.recorder.count("POST", GET_POLICY) == 1
    assert emu.google.recorder.count("POST", SET_POLICY) == 0
    assert assert_consistent(emu, number) == []
    assert "Read timed out" in comment_of(emu, number, "failed")

    assert redeliver_merge(emu, number, "merge-1").status == 200
    [_] = assert_consistent(emu, number)
    assert comment_kinds(emu, number) == ["status", "failed", "activation"]


def test_hanging_audit_write_rolls_back_and_a_redelivery_completes(emu: Emulator) -> None:
    number = merged_ready(emu)
    writes = emu.google.recorder.count("POST", LOG_WRITE)
    emu.google.recorder.fail("POST", LOG_WRITE, 503, delay=HANG)
    answer = emu.merge(number, delivery_id="merge-1")
    assert answer.status == 502, answer.body
    message = answer.body["message"]
    assert "The audit entry (gitops.activateRole) could not be written" in message
    assert "Read timed out" in message
    assert message.endswith("; the binding was removed again")
    assert emu.google.recorder.count("POST", LOG_WRITE) == writes + 1
    assert emu.google.recorder.count("POST", SET_POLICY) == 2  # the grant and its removal
    assert assert_consistent(emu, number) == []
    assert ACTIVATE not in events(emu)

    assert redeliver_merge(emu, number, "merge-1").status == 200
    [_] = assert_consistent(emu, number)
    assert events(emu).count(ACTIVATE) == 1


def test_hanging_cloud_identity_search_is_an_evaluation_error(emu: Emulator) -> None:
    emu.google.recorder.fail("GET", GROUP_SEARCH, 503, delay=HANG)
    number = emu.open_request("alice", request_yaml())
    answer = emu.pr_event("opened", number)
    assert (answer.status, answer.body["state"]) == (200, "error")
    assert emu.status(number)["state"] == "error"  # type: ignore[index]
    [comment] = emu.comments(number)
    assert (
        f"Cloud Identity memberships:searchDirectGroups timed out after {CALL_TIMEOUT:g} s"
    ) in comment
    assert emu.google.recorder.count("GET", GROUP_SEARCH) == 1  # not retried
    assert_consistent(emu, number)
