"""Break-glass after the merge, through the real service (fakes observed): the after-the-fact
review of an approval on the merged PR, and the cleanup's report of unreviewed activations.

Most tests here put the break-glass activation's audit entry into the fake Cloud Logging
themselves, written by the service's own adapter from a `Decision` with
`break_glass=True` — exactly the entry the merge writes — so that each case sets up only
what it judges. One test runs the whole path (open, merge, activate, review, cleanup).
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from jitaccess_sandbox.emulator import POLICY_YAML, Emulator
from tests.e2e.conftest import NOW, request_yaml
from tests.e2e.test_expiry_reconciliation import run_cleanup
from webhook.core.break_glass import REVIEWED_MARKER, UNREVIEWED_MARKER
from webhook.core.merge import activation_record
from webhook.core.model import (
    AccessRequest,
    ApprovalKind,
    Decision,
    Identities,
    PullRequestRef,
    RoleDecision,
    State,
)
from webhook.core.names import POLICY_PATH

PROD = "payments-prod"
ROLE = "roles/cloudsql.admin"
REVIEW = "gitops.reviewBreakGlass"
UNREVIEWED = "gitops.breakGlassUnreviewed"
GLASS_POLICY = POLICY_YAML + """\
break_glass:
  enabled: true
  max_duration: 1h
  review_within: 24h
"""


def glass_yaml(project: str = PROD) -> str:
    return request_yaml(project=project, duration="30m") + "break_glass: true\n"


def events(emu: Emulator, event: str) -> list[dict[str, Any]]:
    return [e for e in emu.audit() if e["labels"]["event"] == event]


def google_calls(emu: Emulator) -> list[str]:
    return [f"{c.method} {c.path}" for c in emu.google.recorder.calls]


def reads(emu: Emulator) -> int:
    return emu.google.recorder.count("POST", "/v2/entries:list")


def merged_glass_request(emu: Emulator, *, author: str = "alice", audited: bool = True) -> int:
    """A merged break-glass request PR of `author` on payments-prod; with `audited`, its
    break-glass activation entry (ALERT) in the audit log, as the merge writes it."""
    # Break-glass enabled, as a real deployment would have it (unless the test's policy does).
    if b"break_glass:" not in (emu.github.file_at(emu.repo, POLICY_PATH) or b""):
        emu.github.put_file(emu.repo, POLICY_PATH, GLASS_POLICY)
    number = emu.open_request(author, glass_yaml())
    emu.github.merge(emu.repo, number, merged_by="jit-access[bot]")
    if audited:
        write_glass_activation(emu, number, author)
    emu.advance(timedelta(minutes=10))
    return number


def write_glass_activation(emu: Emulator, number: int, author: str = "alice") -> None:
    pull = emu.service.github.pull(number)
    request = AccessRequest(PROD, (ROLE,), timedelta(minutes=30),
                            "INC-1234: restore the failed replica", break_glass=True)
    decision = Decision(
        State.READY, PullRequestRef(emu.repo, number, author, pull.head_sha, pull.html_url),
        request=request, requester=f"{author}@example.com", break_glass=True,
        roles=(RoleDecision(ROLE, ApprovalKind.BREAK_GLASS),),
    )
    start = emu.clock()
    record = activation_record(decision, pull, Identities(), "d-0",
                               start=start, end=start + timedelta(minutes=30))
    emu.service.google_side.adapters().audit.write(record)


# ----------------------------------------------------------------------------------------------
# The after-the-fact review


def test_a_qualified_approval_after_the_merge_records_the_review_once(emu: Emulator) -> None:
    number = merged_glass_request(emu)
    (activation,) = events(emu, "gitops.activateRole")
    assert activation["severity"] == "ALERT" and activation["labels"]["break_glass"] == "true"
    emu.google.recorder.calls.clear()

    review_id, answer = emu.review(number, "bob", "APPROVED")

    assert answer.status == 200, answer.body
    assert answer.body["state"] == "reviewed"
    (entry,) = events(emu, REVIEW)
    assert entry["severity"] == "NOTICE"
    labels = entry["labels"]
    assert labels["reviewers"] == "bob@example.com"
    assert labels["break_glass"] == "true"
    assert labels["user"] == "alice@example.com" and labels["project"] == PROD
    assert labels["role"] == ROLE
    assert labels["activation_start"] == activation["labels"]["activation_start"]
    assert labels["pull_request"] == activation["labels"]["pull_request"]
    assert entry["insertId"] == f"review-break-glass:{emu.repo}#{number}"
    last = emu.comments(number)[-1]
    assert last.startswith(REVIEWED_MARKER)
    assert "@bob reviewed this break-glass activation after the fact" in last
    # One audit read; one eligibility lookup, and never an IAM call.
    assert reads(emu) == 1
    assert not [c for c in google_calls(emu) if "IamPolicy" in c]

    # A redelivery finds the marked comment: no Google call, nothing new.
    emu.google.recorder.calls.clear()
    comments = len(emu.comments(number))
    again = emu.deliver("pull_request_review",
                        emu.review_payload("submitted", number, review_id))
    assert again.status == 200 and again.body["state"] == "reviewed"
    assert google_calls(emu) == []
    assert len(events(emu, REVIEW)) == 1 and len(emu.comments(number)) == comments


def test_a_second_qualified_approval_records_nothing_new(emu: Emulator) -> None:
    number = merged_glass_request(emu)
    emu.review(number, "bob", "APPROVED")
    emu.advance(timedelta(minutes=1))
    comments = len(emu.comments(number))

    _, answer = emu.review(number, "carol", "APPROVED")

    assert answer.body["state"] == "reviewed"
    assert len(events(emu, REVIEW)) == 1 and len(emu.comments(number)) == comments


def test_a_missing_review_comment_is_posted_again_for_the_recorded_reviewer(
    emu: Emulator,
) -> None:
    number = merged_glass_request(emu)
    review_id, _ = emu.review(number, "bob", "APPROVED")
    for comment in emu.github.comments(emu.repo, number):
        if comment.body.startswith(REVIEWED_MARKER):
            emu.github.delete_comment(emu.repo, comment.id)
    assert not [c for c in emu.comments(number) if c.startswith(REVIEWED_MARKER)]

    answer = emu.deliver("pull_request_review",
                         emu.review_payload("submitted", number, review_id))

    assert answer.body["state"] == "reviewed", answer.body
    assert len(events(emu, REVIEW)) == 1
    assert [c for c in emu.comments(number) if c.startswith(REVIEWED_MARKER)]


def test_an_approval_by_someone_without_identity_mapping_costs_no_google_call(
    emu: Emulator,
) -> None:
    number = merged_glass_request(emu)
    emu.github.add_user("mallory")
    emu.google.recorder.calls.clear()
    comments = len(emu.comments(number))

    _, answer = emu.review(number, "mallory", "APPROVED")

    assert answer.status == 200 and answer.body["state"] == "not-qualified", answer.body
    assert google_calls(emu) == []
    assert events(emu, REVIEW) == [] and len(emu.comments(number)) == comments


def test_an_unqualified_reviewer_records_nothing_after_one_lookup(emu: Emulator) -> None:
    number = merged_glass_request(emu)
    emu.google.recorder.calls.clear()
    comments = len(emu.comments(number))

    _, answer = emu.review(number, "dave", "APPROVED")  # a developer, not an SRE

    assert answer.status == 200 and answer.body["state"] == "not-qualified", answer.body
    assert events(emu, REVIEW) == [] and len(emu.comments(number)) == comments
    assert reads(emu) == 1
    assert not [c for c in google_calls(emu) if "IamPolicy" in c or "entries:write" in c]


def test_an_approval_of_an_ordinary_merged_request_costs_no_google_call(emu: Emulator) -> None:
    number = emu.open_request("alice", request_yaml(project=PROD))
    emu.github.merge(emu.repo, number, merged_by="jit-access[bot]")
    emu.advance(timedelta(minutes=10))
    emu.google.recorder.calls.clear()

    _, answer = emu.review(number, "bob", "APPROVED")

    assert answer.status == 200, answer.body
    assert "no break-glass request" in answer.body["message"]
    assert google_calls(emu) == []


def test_a_break_glass_request_that_was_not_activated_has_nothing_to_review(
    emu: Emulator,
) -> None:
    number = merged_glass_request(emu, audited=False)

    _, answer = emu.review(number, "bob", "APPROVED")

    assert answer.status == 200
    assert "not activated as break-glass" in answer.body["message"]
    assert events(emu, REVIEW) == []
    assert reads(emu) == 1


def test_an_unreadable_audit_log_fails_the_delivery_and_a_redelivery_records(
    emu: Emulator,
) -> None:
    number = merged_glass_request(emu)
    emu.google.recorder.fail("POST", r"/v2/entries:list", 403, times=10, body={
        "error": {"code": 403, "message": "Permission denied", "status": "PERMISSION_DENIED"}})

    review_id, answer = emu.review(number, "bob", "APPROVED")

    assert answer.status == 502 and "could not be read" in answer.body["message"]
    assert events(emu, REVIEW) == []
    emu.google.recorder.faults.clear()
    again = emu.deliver("pull_request_review",
                        emu.review_payload("submitted", number, review_id))
    assert again.body["state"] == "reviewed", again.body
    assert len(events(emu, REVIEW)) == 1


def test_an_approval_of_an_open_pr_is_judged_as_a_review(emu: Emulator) -> None:
    number = emu.open_request("alice", request_yaml(project=PROD))
    assert emu.pr_event("opened", number).status == 200

    _, answer = emu.review(number, "bob", "APPROVED")

    assert answer.body["state"] == "ready"
    assert events(emu, REVIEW) == []


# ----------------------------------------------------------------------------------------------
# The cleanup's report of unreviewed activations


def unreviewed_comments(emu: Emulator, number: int) -> list[str]:
    return [c for c in emu.comments(number) if c.startswith(UNREVIEWED_MARKER)]


def test_cleanup_reports_an_unreviewed_activation_once_after_review_within(
    emu: Emulator,
) -> None:
    number = merged_glass_request(emu)
    (activation,) = events(emu, "gitops.activateRole")

    emu.advance(timedelta(hours=23))  # 23h10m after the activation: not due yet
    assert "unreviewed" not in run_cleanup(emu)
    assert events(emu, UNREVIEWED) == [] and unreviewed_comments(emu, number) == []

    emu.advance(timedelta(hours=1))
    body = run_cleanup(emu)

    assert body["unreviewed"] == [number]
    (entry,) = events(emu, UNREVIEWED)
    assert entry["severity"] == "WARNING"
    assert entry["labels"]["break_glass"] == "true"
    assert entry["labels"]["pull_request"] == activation["labels"]["pull_request"]
    assert entry["timestamp"].startswith("2026-11-30T10:00:00")  # the deadline
    (comment,) = unreviewed_comments(emu, number)
    assert "not reviewed within 24h" in comment or "not reviewed within 1d" in comment

    # The next run finds the entry: nothing new, one read of the break-glass records.
    emu.advance(timedelta(minutes=15))
    before = emu.google.recorder.calls[:]
    body = run_cleanup(emu)
    assert "unreviewed" not in body
    assert len(events(emu, UNREVIEWED)) == 1 and len(unreviewed_comments(emu, number)) == 1
    glass_reads = [
        c for c in emu.google.recorder.calls[len(before):]
        if c.path == "/v2/entries:list" and "labels.break_glass" in json.loads(c.body)["filter"]
    ]
    assert len(glass_reads) == 1


def test_cleanup_reports_nothing_for_a_reviewed_activation(emu: Emulator) -> None:
    number = merged_glass_request(emu)
    assert emu.review(number, "bob", "APPROVED")[1].body["state"] == "reviewed"

    emu.advance(timedelta(days=2))
    body = run_cleanup(emu)

    assert "unreviewed" not in body
    assert events(emu, UNREVIEWED) == [] and unreviewed_comments(emu, number) == []


def test_a_failed_report_entry_leaves_the_pr_for_the_next_run(emu: Emulator) -> None:
    number = merged_glass_request(emu)
    emu.advance(timedelta(hours=25))
    emu.google.recorder.fail("POST", r"/v2/entries:write", 403, times=10, body={
        "error": {"code": 403, "message": "Permission denied", "status": "PERMISSION_DENIED"}})

    body = run_cleanup(emu)

    assert "unreviewed" not in body
    assert "break-glass review report failed" in body["errors"][f"{emu.repo}#{number}"]
    assert unreviewed_comments(emu, number) == []  # nothing said without its record
    emu.google.recorder.faults.clear()
    assert run_cleanup(emu)["unreviewed"] == [number]
    assert len(events(emu, UNREVIEWED)) == 1 and len(unreviewed_comments(emu, number)) == 1


def test_cleanup_uses_the_policys_review_within() -> None:
    policy = GLASS_POLICY.replace("review_within: 24h", "review_within: 2h")
    with Emulator(now=NOW, policy_yaml=policy) as emu:
        number = merged_glass_request(emu)
        emu.advance(timedelta(hours=1))
        assert "unreviewed" not in run_cleanup(emu)
        emu.advance(timedelta(hours=1))
        assert run_cleanup(emu)["unreviewed"] == [number]


# ----------------------------------------------------------------------------------------------
# The whole path (needs the break-glass decision)


def test_a_break_glass_request_is_activated_loudly_and_reviewed_after_the_fact() -> None:
    with Emulator(now=NOW, policy_yaml=GLASS_POLICY) as emu:
        number = emu.open_request("alice", glass_yaml())
        assert emu.pr_event("opened", number).body["state"] == "ready"
        # Loud: the status and the status comment say break-glass; no approval was needed.
        status = emu.status(number)
        assert status is not None and status["state"] == "success"
        assert status["description"].startswith("Break-glass: ready without approval")
        [status_comment] = emu.comments(number)
        assert "Break-glass" in status_comment
        answer = emu.merge(number)
        assert answer.body["state"] == "activated", answer.body
        (activation,) = events(emu, "gitops.activateRole")
        assert activation["severity"] == "ALERT"
        assert activation["labels"]["break_glass"] == "true"
        assert activation["labels"]["rule"] == "default"
        [binding] = emu.activations(PROD)
        assert binding["condition"]["description"].startswith("Break-glass, justification: ")
        # The activation comment asks the qualified reviewers for an after-the-fact review.
        activation_comment = emu.comments(number)[-1]
        assert "after the fact" in activation_comment
        assert "bob" in activation_comment and "carol" in activation_comment
        emu.advance(timedelta(minutes=5))
        assert emu.review(number, "bob", "APPROVED")[1].body["state"] == "reviewed"
        assert len(events(emu, REVIEW)) == 1
        assert any(c.startswith(REVIEWED_MARKER) for c in emu.comments(number))

        # A second break-glass activation nobody reviews: one warning from the cleanup after
        # review_within, and one comment; the reviewed one is left alone.
        other = emu.open_request("alice", glass_yaml(), name="again.yaml")
        assert emu.pr_event("opened", other).body["state"] == "ready"
        assert emu.merge(other).body["state"] == "activated"
        emu.advance(timedelta(hours=25))
        assert run_cleanup(emu)["unreviewed"] == [other]
        (warning,) = events(emu, UNREVIEWED)
        assert warning["severity"] == "WARNING"
        assert warning["labels"]["pull_request"].endswith(f"/pull/{other}")
        assert len([c for c in emu.comments(other) if c.startswith(UNREVIEWED_MARKER)]) == 1
        assert "unreviewed" not in run_cleanup(emu)
        assert len(events(emu, UNREVIEWED)) == 1


COMMENTS = r"^/repos/acme/access/issues/\d+/comments$"


def test_a_failed_review_comment_fails_the_delivery_and_a_redelivery_posts_it(
    emu: Emulator,
) -> None:
    number = merged_glass_request(emu)
    emu.github.recorder.fail("POST", COMMENTS, 502, times=20, body={"message": "Server Error"})

    review_id, answer = emu.review(number, "bob", "APPROVED")

    assert answer.status >= 500, answer.body
    assert len(events(emu, REVIEW)) == 1  # recorded before the comment was tried
    emu.github.recorder.faults.clear()
    again = emu.deliver("pull_request_review",
                        emu.review_payload("submitted", number, review_id))
    assert again.body["state"] == "reviewed", again.body
    assert "posted again" in again.body["message"]
    assert len(events(emu, REVIEW)) == 1
    assert len([c for c in emu.comments(number) if c.startswith(REVIEWED_MARKER)]) == 1


def test_a_failed_unreviewed_comment_is_reported_and_the_entry_stands_once(
    emu: Emulator,
) -> None:
    number = merged_glass_request(emu)
    emu.advance(timedelta(hours=25))
    emu.github.recorder.fail("POST", COMMENTS, 502, times=20, body={"message": "Server Error"})

    body = run_cleanup(emu)

    assert body["unreviewed"] == [number]
    assert "break-glass review comment failed" in body["errors"][f"{emu.repo}#{number}"]
    assert len(events(emu, UNREVIEWED)) == 1
    emu.github.recorder.faults.clear()
    # The entry is the record: the next run writes no second one (and says nothing more).
    assert "unreviewed" not in run_cleanup(emu)
    assert len(events(emu, UNREVIEWED)) == 1


def test_a_review_after_break_glass_was_disabled_is_still_recorded(emu: Emulator) -> None:
    number = merged_glass_request(emu)
    # The policy turns break-glass off after the activation: its review is still due (the
    # cleanup would report it), so an approval must still record it.
    emu.github.put_file(emu.repo, POLICY_PATH, POLICY_YAML)
    _, answer = emu.review(number, "bob", "APPROVED")
    assert answer.body["state"] == "reviewed", answer.body
    assert len(events(emu, REVIEW)) == 1
