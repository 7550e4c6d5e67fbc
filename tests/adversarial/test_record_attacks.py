"""Attacks on the record of decisions, through the service's HTTP interface against the
emulated GitHub and Google: a merged PR is decided once, and as of its merge.

Every case here granted a second window (or turned a refusal into a grant, or a grant into a
refusal) while the service's own PR comment was its only record of an earlier decision and a
merge was judged at processing time. The record is now the activation binding and the audit
log (read back with Cloud Logging's `entries.list`); the comment only avoids posting twice.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from jitaccess_sandbox.emulator import Emulator
from tests.adversarial.conftest import (
    ACTIVATE,
    REFUSE,
    activation_bindings,
    events,
    iam_writes,
    open_files,
    request_yaml,
)
from webhook.core.merge import WRITER_BUDGET
from webhook.core.render import ACTIVATION_MARKER_PREFIX, REFUSAL_MARKER_PREFIX

COMMENTS = r"^/repos/acme/access/issues/\d+/comments$"
SET_POLICY = r":setIamPolicy$"
LOG_LIST = r"^/v2/entries:list$"
LATER = WRITER_BUDGET + timedelta(seconds=1)
GITHUB_DOWN = {"message": "Server Error"}


def own_comments(emu: Emulator, number: int, prefix: str) -> list[Any]:
    return [c for c in emu.github.comments(emu.repo, number) if c.body.startswith(prefix)]


def self_approved(emu: Emulator, duration: str = "1h") -> int:
    """alice's self-approved payments-dev request, opened and ready."""
    number = open_files(emu, "alice", {"requests/alice/x.yaml": request_yaml(duration=duration)})
    assert emu.status(number)["state"] == "success"  # type: ignore[index]
    return number


def test_a_lost_activation_comment_and_a_cleaned_up_binding_grant_no_second_window(
    emu: Emulator,
) -> None:
    """The comment POST fails (502), the 5-minute binding expires and is cleaned up, and the
    operator redelivers the merge as the failure tells them to."""
    number = self_approved(emu, duration="5m")
    emu.github.recorder.fail("POST", COMMENTS, 502, body=GITHUB_DOWN)
    first = emu.merge(number, delivery_id="merge-1")
    assert first.status == 502, first.body
    captured = emu.pr_payload("closed", number)
    emu.advance(timedelta(minutes=10))
    assert len(emu.service.cleanup().removed) == 1

    again = emu.deliver("pull_request", captured, delivery_id="merge-1")

    assert again.status == 200, again.body
    assert again.body["state"] == "activated"
    assert again.body["written"] is False
    assert activation_bindings(emu) == []
    assert iam_writes(emu) == 2  # the grant and the cleanup's removal; no second grant
    assert events(emu).count(ACTIVATE) == 1
    [comment] = own_comments(emu, number, ACTIVATION_MARKER_PREFIX)
    assert "was granted these roles" in comment.body
    assert "until **2026-11-29T10:05:00Z**" in comment.body


def test_a_binding_an_administrator_removed_is_not_restored(emu: Emulator) -> None:
    """Granted and commented; someone deletes the comment and an administrator removes the
    binding early. A redelivery must not give the access back."""
    number = self_approved(emu)
    assert emu.merge(number, delivery_id="merge-1").body["state"] == "activated"
    captured = emu.pr_payload("closed", number)
    [comment] = own_comments(emu, number, ACTIVATION_MARKER_PREFIX)
    emu.github.delete_comment(emu.repo, comment.id)
    policy = emu.world.get_policy("projects/payments-dev")
    policy["bindings"] = [
        b for b in policy["bindings"]
        if (b.get("condition") or {}).get("title") != "JIT access activation"
    ]
    emu.world.set_policy("projects/payments-dev", policy)
    emu.advance(timedelta(minutes=5))

    again = emu.deliver("pull_request", captured, delivery_id="merge-1")

    assert again.status == 200, again.body
    assert again.body["state"] == "activated" and again.body["written"] is False
    assert activation_bindings(emu) == []
    assert iam_writes(emu) == 1
    assert events(emu).count(ACTIVATE) == 1
    assert len(own_comments(emu, number, ACTIVATION_MARKER_PREFIX)) == 1


def test_deleting_the_activation_comment_after_each_grant_buys_no_more_windows(
    emu: Emulator,
) -> None:
    """The requester deletes the bot's activation comment after each grant, waits for the
    5-minute binding to be cleaned up and replays the merge: one approval, one window."""
    number = self_approved(emu, duration="5m")
    assert emu.merge(number, delivery_id="merge-1").body["state"] == "activated"
    captured = emu.pr_payload("closed", number)
    for attempt in range(3):
        for comment in own_comments(emu, number, ACTIVATION_MARKER_PREFIX):
            emu.github.delete_comment(emu.repo, comment.id)
        emu.advance(timedelta(minutes=10))
        emu.service.cleanup()

        again = emu.deliver("pull_request", captured, delivery_id=f"replay-{attempt}")

        assert again.status == 200, again.body
        assert again.body["written"] is False, again.body
        assert activation_bindings(emu) == []
    assert events(emu).count(ACTIVATE) == 1
    assert iam_writes(emu) == 2  # one grant, one removal by the first cleanup
    assert len(own_comments(emu, number, ACTIVATION_MARKER_PREFIX)) == 1
    merge_reads = [
        c for c in emu.google.recorder.calls
        if c.path == "/v2/entries:list" and "labels.break_glass" not in c.body.decode()
    ]  # each cleanup run also reads the break-glass records once
    assert len(merge_reads) == 4  # each merge delivery read once


def test_a_refusal_whose_comment_failed_never_becomes_a_grant(emu: Emulator) -> None:
    """carol is not eligible; her request is merged anyway and refused (audited), but the
    refusal comment POST fails. She is then made eligible and the merge is redelivered."""
    number = open_files(emu, "carol", {"requests/carol/x.yaml": request_yaml()})
    assert emu.status(number)["state"] == "failure"  # type: ignore[index]
    emu.github.recorder.fail("POST", COMMENTS, 502, body=GITHUB_DOWN)
    first = emu.merge(number, delivery_id="merge-1")
    assert first.status == 502, first.body
    assert events(emu, number).count(REFUSE) == 1
    captured = emu.pr_payload("closed", number)
    emu.world.add_group("developers@example.com", ["carol@example.com"])
    emu.advance(timedelta(minutes=5))

    again = emu.deliver("pull_request", captured, delivery_id="merge-1")

    assert again.status == 200, again.body
    assert again.body["state"] == "refused"
    assert again.body["message"].endswith("; the missing refusal comment was posted again")
    assert activation_bindings(emu) == [] and iam_writes(emu) == 0
    assert events(emu, number).count(ACTIVATE) == 0
    assert events(emu, number).count(REFUSE) == 1
    [comment] = own_comments(emu, number, REFUSAL_MARKER_PREFIX)
    assert "Not eligible for roles/cloudsql.admin" in comment.body


def test_an_unreadable_audit_log_grants_nothing_and_a_redelivery_completes(
    emu: Emulator,
) -> None:
    number = self_approved(emu)
    emu.google.recorder.fail(
        "POST", LOG_LIST, 403, times=-1,
        body={"error": {"code": 403, "message": "Permission 'logging.logEntries.list' denied",
                        "status": "PERMISSION_DENIED"}},
    )
    first = emu.merge(number, delivery_id="merge-1")
    assert first.status == 502, first.body
    assert first.body["message"] == (
        f"PR #{number}: activation failed: the audit log could not be read: The audit log "
        "could not be read: Cloud Logging answered 403: Permission 'logging.logEntries.list' "
        "denied"
    )
    assert iam_writes(emu) == 0 and ACTIVATE not in events(emu)

    emu.google.recorder.clear()
    again = emu.deliver("pull_request", emu.pr_payload("closed", number), delivery_id="merge-1")
    assert again.status == 200 and again.body["written"] is True, again.body
    assert events(emu).count(ACTIVATE) == 1


def test_only_merges_of_requests_read_the_audit_log(emu: Emulator) -> None:
    """entries.list is quota-limited: opening, reviewing and merging anything but a request
    never reads it."""
    number = self_approved(emu)
    emu.pr_event("synchronize", number)
    code = emu.github.open_pr(emu.repo, "bob", {"src/app.py": "print('hi')\n"})
    emu.pr_event("opened", code)
    emu.merge(code)
    assert emu.google.recorder.count("POST", LOG_LIST) == 0

    assert emu.merge(number).body["state"] == "activated"
    assert emu.google.recorder.count("POST", LOG_LIST) == 1


# --------------------------------------------------------------------------------------------
# As of the merge


def test_an_approval_aged_23h50m_at_the_merge_still_counts_on_a_later_redelivery(
    emu: Emulator,
) -> None:
    """bob approves; the PR is merged 23h50m later; IAM refuses the first write; the merge is
    redelivered 20 minutes later, 24h10m after the approval."""
    number = open_files(emu, "alice", {"requests/alice/x.yaml": request_yaml(
        project="payments-prod")})
    _, answer = emu.review(number, "bob", "APPROVED")
    assert answer.body["state"] == "ready"
    emu.advance(timedelta(hours=23, minutes=50))
    emu.google.recorder.fail("POST", SET_POLICY, 403, body={"error": {
        "code": 403, "message": "The caller does not have permission",
        "status": "PERMISSION_DENIED"}})
    first = emu.merge(number, delivery_id="merge-1")
    assert first.status == 502, first.body
    captured = emu.pr_payload("closed", number)
    emu.advance(timedelta(minutes=20))

    again = emu.deliver("pull_request", captured, delivery_id="merge-1")

    assert again.status == 200, again.body
    assert again.body["state"] == "activated", again.body
    assert again.body["written"] is True
    [(resource, binding)] = activation_bindings(emu)
    assert resource == "projects/payments-prod"
    assert binding["condition"]["description"].startswith("Approved by bob@example.com")
    assert events(emu, number).count(ACTIVATE) == 1


def test_renaming_the_default_branch_before_a_redelivery_does_not_refuse_the_merge(
    emu: Emulator,
) -> None:
    """Merged into main; the first delivery fails (IAM); main is renamed to trunk; the captured
    delivery (signed, naming main as the default branch) is redelivered."""
    number = self_approved(emu)
    emu.google.recorder.fail("POST", SET_POLICY, 403)
    assert emu.merge(number, delivery_id="merge-1").status == 502
    captured = emu.pr_payload("closed", number)
    assert captured["repository"]["default_branch"] == "main"
    emu.github.rename_branch(emu.repo, "main", "trunk")
    assert emu.github.pull(emu.repo, number).base_ref == "main"  # merged PRs keep their base

    again = emu.deliver("pull_request", captured, delivery_id="merge-1")

    assert again.status == 200, again.body
    assert again.body["state"] == "activated", again.body
    assert len(activation_bindings(emu)) == 1

