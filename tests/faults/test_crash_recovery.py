"""Failures between the steps of an activation (IAM write → audit entry → comment), and the
redeliveries that recover from them.

No access may stand without an audit entry: a failed audit write removes the binding again; if
that removal fails too the service says so loudly, and a redelivery writes the missing entry for
the binding that stands (same insertId, timestamp = the binding's start). Nothing is granted,
audited or commented twice.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from typing import Any

import pytest

from jitaccess_sandbox.emulator import Answer, Emulator
from jitaccess_sandbox.fake_google_iam import iam_state
from jitaccess_sandbox.faults import Fault
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
    when,
)

LOG_WRITE = r"^/v2/entries:write$"
GET_POLICY = r"^/v3/projects/payments-dev:getIamPolicy$"
SET_POLICY = r"^/v3/projects/payments-dev:setIamPolicy$"
COMMENTS = r"^/repos/acme/access/issues/1/comments$"
JUSTIFICATION = "INC-1234: restore the failed replica"


def activate_entries(emu: Emulator) -> list[dict[str, Any]]:
    return [e for e in emu.audit() if e["labels"]["event"] == ACTIVATE]


def test_audit_outage_after_grant_rolls_back_and_a_redelivery_completes(emu: Emulator) -> None:
    number = merged_ready(emu)
    outage = emu.google.recorder.fail(
        "POST", LOG_WRITE, 500, body=google_error(500, "INTERNAL", "backend error"), times=-1
    )
    answer = emu.merge(number, delivery_id="merge-1")
    assert answer.status == 502, answer.body
    assert answer.body["message"] == (
        "PR #1: activation failed: the audit entry could not be written: The audit entry "
        "(gitops.activateRole) could not be written: Cloud Logging kept failing (500 backend "
        "error); the binding was removed again"
    )
    assert emu.google.recorder.count("POST", LOG_WRITE) >= 3  # retried, then given up
    assert emu.google.recorder.count("POST", SET_POLICY) == 2  # the grant, then its removal
    # The removal carries its own reason to Cloud Audit Logs.
    assert iam_state(emu.world).reasons_for("projects/payments-dev") == [
        JUSTIFICATION, "audit entry failed"
    ]
    assert assert_consistent(emu, number) == []
    assert ACTIVATE not in events(emu)
    failed = comment_of(emu, number, "failed")
    assert "the binding was removed again" in failed
    assert "No access was granted" in failed

    stop(outage)
    again = redeliver_merge(emu, number, "merge-1")
    assert again.status == 200, again.body
    assert again.body["written"] is True
    [_] = assert_consistent(emu, number)
    assert len(activate_entries(emu)) == 1
    assert comment_kinds(emu, number) == ["status", "failed", "activation"]


def test_failed_rollback_is_reported_loudly_and_a_redelivery_audits_the_binding(
    emu: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    number = merged_ready(emu)
    head = emu.github.pull(emu.repo, number).head_sha
    # Cloud Logging refuses the entry (after half a second, well within the call timeout); as
    # soon as the grant has landed, IAM starts refusing writes too, so the removal fails: the
    # binding stays without an audit entry.
    logging_down = emu.google.recorder.fail(
        "POST", LOG_WRITE, 403, body=google_error(403, "PERMISSION_DENIED", "logging denied"),
        times=-1, delay=0.5,
    )
    iam_down: list[Fault] = []
    watcher = when(
        lambda: bool(emu.activations("payments-dev")),
        lambda: iam_down.append(emu.google.recorder.fail(
            "POST", SET_POLICY, 403, body=google_error(403, "PERMISSION_DENIED", "iam denied"),
            times=-1,
        )),
    )
    with caplog.at_level(logging.ERROR, logger="jitaccess"):
        answer = emu.merge(number, delivery_id="merge-1")
    watcher.join(timeout=10)
    assert iam_down, "the grant never landed"
    assert answer.status == 502, answer.body
    assert answer.body["message"] == (
        "PR #1: activation failed: the audit entry could not be written: The audit entry "
        "(gitops.activateRole) could not be written: Cloud Logging answered 403: logging "
        "denied; removing the binding again also failed: Cannot change the IAM policy of "
        "project payments-dev: the service account lacks permission or the project does not "
        "exist (403: iam denied)"
    )
    # The inconsistent state the service could not avoid, and reports.
    [binding] = emu.activations("payments-dev")
    assert ACTIVATE not in events(emu)
    failed = comment_of(emu, number, "failed")
    assert "removing the binding again also failed" in failed
    assert "The IAM binding is still in place, without a confirmed audit entry" in failed
    assert "No access was granted" not in failed
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any(m.startswith("rollback failed for acme/access#1: ") for m in errors), errors
    assert any(m.endswith("THE BINDING STAYS WITHOUT AN AUDIT ENTRY") for m in errors), errors

    stop(logging_down)
    stop(iam_down[0])
    emu.advance(timedelta(minutes=7))
    writes = emu.google.recorder.count("POST", SET_POLICY)
    again = redeliver_merge(emu, number, "merge-1")
    assert again.status == 200, again.body
    assert again.body["written"] is False  # the binding that stood is kept, not granted anew
    assert emu.google.recorder.count("POST", SET_POLICY) == writes
    assert emu.activations("payments-dev") == [binding]
    [entry] = activate_entries(emu)
    assert entry["labels"]["activation_start"] == "2026-11-29T10:00:00Z"  # the binding's start
    assert entry["labels"]["activation_end"] == "2026-11-29T11:00:00Z"
    assert entry["timestamp"].startswith("2026-11-29T10:00:00")
    assert entry["insertId"] == f"activate:acme/access#1@{head}"
    [act] = assert_consistent(emu, number)
    assert act.start == "2026-11-29T10:00:00Z"
    assert comment_kinds(emu, number) == ["status", "failed", "activation"]
    assert "**2026-11-29T11:00:00Z**" in comment_of(emu, number, "activation")


def test_a_rollback_restores_the_earlier_activation_the_write_replaced(emu: Emulator) -> None:
    """alice holds an audited 4 h activation; her new 1 h request for the same role replaces it
    in IAM (earlier activations of a role and member go in the same write), then the audit
    entry fails. The undo must give her back what she had, not leave her with nothing."""
    first = merged_ready(emu, duration="4h")
    assert emu.merge(first).status == 200
    [earlier] = emu.activations("payments-dev")
    assert earlier["condition"]["expression"].endswith('timestamp("2026-11-29T14:00:00Z"))')

    emu.advance(timedelta(minutes=30))
    second = emu.open_request("alice", request_yaml(duration="1h"), name="again.yaml")
    assert emu.pr_event("opened", second).body["state"] == "ready"
    writes = emu.google.recorder.count("POST", SET_POLICY)
    emu.google.recorder.fail(
        "POST", LOG_WRITE, 500, body=google_error(500, "INTERNAL", "backend error"), times=-1
    )
    answer = emu.merge(second, delivery_id="merge-2")

    assert answer.status == 502, answer.body
    assert answer.body["message"].endswith(
        "; the binding was removed again and the earlier activation it had replaced is back "
        "(roles/cloudsql.admin until 2026-11-29T14:00:00Z)"
    )
    # The earlier binding is back exactly as it was; the new one is gone.
    assert emu.activations("payments-dev") == [earlier]
    # The grant, then one etag-guarded write that undid it.
    assert emu.google.recorder.count("POST", SET_POLICY) == writes + 2
    assert iam_state(emu.world).reasons_for("projects/payments-dev")[-2:] == [
        JUSTIFICATION, "audit entry failed"
    ]
    failed = comment_of(emu, second, "failed")
    assert "the earlier activation it had replaced is back (roles/cloudsql.admin until " in failed
    assert "2026-11-29T14:00:00Z" in failed
    # IAM and the audit log agree: the standing binding is the audited one of the first PR.
    [standing] = assert_consistent(emu, second)
    assert standing.number == first


def test_a_redelivery_after_a_lost_activation_comment_writes_nothing_and_comments_once(
    emu: Emulator,
) -> None:
    number = merged_ready(emu)
    # First delivery: granted and audited, but GitHub loses the activation comment.
    emu.github.recorder.fail("POST", COMMENTS, 502, body={"message": "Server Error"})
    assert emu.merge(number, delivery_id="merge-1").status == 502
    [act] = assert_consistent(emu, number, require_comment=False)
    # Cloud Logging would refuse any entry now: the redeliveries find the first delivery's
    # entry and write none, so they never need to.
    denied = emu.google.recorder.fail("POST", LOG_WRITE, 403, times=-1)
    writes = emu.google.recorder.count("POST", LOG_WRITE)
    # Redelivered at once: the record is younger than the writer's budget, so the comment is
    # left to the delivery that wrote it (it might still be posting it on another instance).
    answer = redeliver_merge(emu, number, "merge-1")
    assert answer.status == 200, answer.body
    assert answer.body["message"].endswith(
        "(if the activation comment is still missing after 2026-11-29T10:02:00Z, redeliver)"
    )
    assert comment_kinds(emu, number) == ["status"]
    # Redelivered after the budget: the writer has finished or died; the comment is posted.
    emu.advance(timedelta(minutes=3))
    answer = redeliver_merge(emu, number, "merge-1")
    assert answer.status == 200, answer.body
    assert answer.body["message"] == (
        "PR #1: already activated (see the activation comment); a repeated merge event grants "
        "nothing; the missing activation comment was posted again"
    )
    assert emu.google.recorder.count("POST", SET_POLICY) == 1  # never granted again
    assert emu.google.recorder.count("POST", LOG_WRITE) == writes  # no second entry tried
    stop(denied)
    assert assert_consistent(emu, number) == [act]
    assert len(activate_entries(emu)) == 1
    assert comment_kinds(emu, number) == ["status", "activation"]
    assert "**2026-11-29T11:00:00Z**" in comment_of(emu, number, "activation")


def test_audit_outage_never_blocks_evaluation_but_blocks_activation(
    emu: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    denied = emu.google.recorder.fail(
        "POST", LOG_WRITE, 403, body=google_error(403, "PERMISSION_DENIED"), times=-1
    )
    number = emu.open_request("alice", request_yaml(project="payments-prod"))
    with caplog.at_level(logging.ERROR, logger="jitaccess"):
        answer = emu.pr_event("opened", number)
        assert (answer.status, answer.body["state"]) == (200, "pending")
        _, answer = emu.review(number, "bob")
        assert (answer.status, answer.body["state"]) == (200, "ready")
    # requestRole and approveRole were tried, logged as errors, and did not stop the status.
    assert emu.google.recorder.count("POST", LOG_WRITE) == 2
    assert emu.status(number)["state"] == "success"  # type: ignore[index]
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any(m.startswith("audit entry gitops.requestRole not written") for m in errors)
    assert any(m.startswith("audit entry gitops.approveRole not written") for m in errors)
    assert emu.audit() == []

    # The activation entry gates the grant: no entry, no access.
    answer = emu.merge(number, delivery_id="merge-1")
    assert answer.status == 502, answer.body
    assert emu.activations("payments-prod") == []
    assert assert_consistent(emu, number) == []
    stop(denied)
    assert redeliver_merge(emu, number, "merge-1").status == 200
    [act] = assert_consistent(emu, number)
    assert act.project == "payments-prod"


def test_concurrent_redeliveries_grant_once(emu: Emulator) -> None:
    number = merged_ready(emu)
    emu.github.merge(emu.repo, number, merged_by="jit-access-bot")
    payload = emu.pr_payload("closed", number)
    emu.google.recorder.latency = 0.2  # keep both deliveries in flight together
    answers: list[Answer] = []

    def deliver() -> None:
        answers.append(emu.deliver("pull_request", payload, delivery_id="merge-1"))

    threads = [threading.Thread(target=deliver) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    emu.google.recorder.latency = 0.0
    assert sorted(a.status for a in answers) == [200, 200, 200]
    assert emu.google.recorder.count("POST", SET_POLICY) == 1
    [_] = assert_consistent(emu, number)
    assert len(activate_entries(emu)) == 1
    assert comment_kinds(emu, number) == ["status", "activation"]


def test_redelivery_after_max_delay_is_refused(emu: Emulator) -> None:
    number = merged_ready(emu)
    emu.google.recorder.fail("POST", SET_POLICY, 403, body=google_error(403, "PERMISSION_DENIED"))
    assert emu.merge(number, delivery_id="merge-1").status == 502
    emu.advance(timedelta(hours=1, minutes=1))
    answer = redeliver_merge(emu, number, "merge-1")
    assert answer.status == 200, answer.body
    assert answer.body["state"] == "refused"
    assert assert_consistent(emu, number) == []
    assert events(emu)[-1] == "gitops.refuseActivation"
    assert comment_kinds(emu, number) == ["status", "failed", "refusal"]
    assert "older than activation.max\\_delay (1h)" in comment_of(emu, number, "refusal")
