"""GitHub faults (5xx, rate limits) injected at the fake GitHub's wire while the real service
evaluates and activates requests.

A failed read answers 5xx before anything is published; a failed write answers 5xx and never
leaves a state that grants access wrongly; a redelivery completes, exactly once.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from jitaccess_sandbox.emulator import Emulator
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

PULL = r"^/repos/acme/access/pulls/1$"
FILES = r"^/repos/acme/access/pulls/1/files$"  # a merged PR's files
COMPARE = r"^/repos/acme/access/compare/main\.\.\.[0-9a-f]{40}$"  # an open PR's, at its head
REVIEWS = r"^/repos/acme/access/pulls/1/reviews$"
POLICY = r"^/repos/acme/access/contents/policy/jitaccess\.yaml$"
STATUSES = r"^/repos/acme/access/statuses/"
COMMENTS = r"^/repos/acme/access/issues/1/comments$"
SET_POLICY = r":setIamPolicy$"
SERVER_ERROR = {"message": "Server Error"}

READS = [
    (PULL, "GitHub: reading pull request #1: HTTP 502: Server Error"),
    (COMPARE, "GitHub: comparing main...{head}: HTTP 502: Server Error"),
    (REVIEWS, "GitHub: listing the reviews of pull request #1: HTTP 502: Server Error"),
    (POLICY, "GitHub: reading policy/jitaccess.yaml on the default branch: HTTP 502: "
             "Server Error"),
]


def gh_count(emu: Emulator, method: str, path: str) -> int:
    return emu.github.recorder.count(method, path)


# -- reads ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "message"), READS)
def test_failed_read_publishes_nothing_and_a_redelivery_evaluates(
    emu: Emulator, path: str, message: str
) -> None:
    number = emu.open_request("alice", request_yaml())
    emu.github.recorder.fail("GET", path, 502, body=SERVER_ERROR, times=3)
    payload = emu.pr_payload("opened", number)
    answer = emu.deliver("pull_request", payload, delivery_id="open-1")
    assert answer.status == 502, answer.body
    assert answer.body["message"] == message.format(head=emu.github.pull(emu.repo, number)
                                                    .head_sha[:12])
    assert gh_count(emu, "GET", path) == 3  # the first try and two bounded retries
    assert emu.status(number) is None  # no status at all rather than a guessed one
    assert emu.comments(number) == []
    assert events(emu) == []  # nothing requested until the request was read

    answer = emu.deliver("pull_request", payload, delivery_id="open-1")
    assert answer.status == 200 and answer.body["state"] == "ready", answer.body
    assert emu.status(number)["state"] == "success"  # type: ignore[index]
    assert comment_kinds(emu, number) == ["status"]
    assert_consistent(emu, number)


@pytest.mark.parametrize(("path", "message"), READS[:2])
def test_transient_read_errors_are_retried(emu: Emulator, path: str, message: str) -> None:
    emu.github.recorder.fail("GET", path, 502, body=SERVER_ERROR, times=2)
    number = merged_ready(emu)
    assert gh_count(emu, "GET", path) == 3
    assert emu.status(number)["state"] == "success"  # type: ignore[index]


def test_failed_read_at_merge_grants_nothing_and_a_redelivery_completes(emu: Emulator) -> None:
    number = merged_ready(emu)
    emu.github.recorder.fail("GET", FILES, 503, body=SERVER_ERROR, times=3)
    answer = emu.merge(number, delivery_id="merge-1")
    assert answer.status == 502, answer.body
    assert answer.body["message"] == (
        "GitHub: listing the files of pull request #1: HTTP 503: Server Error"
    )
    assert emu.google.recorder.count("POST", SET_POLICY) == 0
    assert assert_consistent(emu, number) == []
    assert comment_kinds(emu, number) == ["status"]
    assert events(emu) == ["gitops.requestRole"]  # neither an activation nor a refusal

    answer = redeliver_merge(emu, number, "merge-1")
    assert answer.status == 200, answer.body
    [_] = assert_consistent(emu, number)
    assert comment_kinds(emu, number) == ["status", "activation"]


# -- rate limits -----------------------------------------------------------------------------------


def test_rate_limit_on_evaluation_names_it(emu: Emulator) -> None:
    number = emu.open_request("alice", request_yaml())
    emu.github.fail_rate_limited("GET", PULL, retry_after=60)
    answer = emu.pr_event("opened", number)
    assert answer.status == 502, answer.body
    assert answer.body["message"] == (
        "GitHub: reading pull request #1: rate limit exceeded (HTTP 403); retry after 60 s"
    )
    assert gh_count(emu, "GET", PULL) == 1  # never retried, never slept on
    assert emu.status(number) is None
    assert emu.comments(number) == []


def test_rate_limit_at_merge_then_a_redelivery_completes(emu: Emulator) -> None:
    number = merged_ready(emu)
    emu.github.fail_rate_limited("GET", POLICY, retry_after=120)
    answer = emu.merge(number, delivery_id="merge-1")
    assert answer.status == 502, answer.body
    assert "rate limit exceeded (HTTP 403); retry after 120 s" in answer.body["message"]
    assert assert_consistent(emu, number) == []
    assert emu.google.recorder.count("POST", SET_POLICY) == 0
    assert redeliver_merge(emu, number, "merge-1").status == 200
    [_] = assert_consistent(emu, number)


# -- writes while evaluating -----------------------------------------------------------------------


def test_failed_status_write_answers_5xx_and_a_redelivery_sets_it(emu: Emulator) -> None:
    number = emu.open_request("alice", request_yaml())
    emu.github.recorder.fail("POST", STATUSES, 500, body=SERVER_ERROR)
    payload = emu.pr_payload("opened", number)
    answer = emu.deliver("pull_request", payload, delivery_id="open-1")
    assert answer.status == 502, answer.body
    assert answer.body["message"].startswith("GitHub: setting the jit-access status on ")
    assert answer.body["message"].endswith(": HTTP 500: Server Error")
    assert gh_count(emu, "POST", STATUSES) == 1  # a POST is not retried blindly
    assert emu.status(number) is None  # branch protection keeps the merge blocked
    assert comment_kinds(emu, number) == ["status"]  # the comment is right, just early

    assert emu.deliver("pull_request", payload, delivery_id="open-1").status == 200
    assert emu.status(number)["state"] == "success"  # type: ignore[index]
    assert comment_kinds(emu, number) == ["status"]  # still one comment, edited in place


def test_failed_status_comment_write_answers_5xx_and_a_redelivery_posts_it_once(
    emu: Emulator,
) -> None:
    number = emu.open_request("alice", request_yaml())
    emu.github.recorder.fail("POST", COMMENTS, 502, body=SERVER_ERROR)
    payload = emu.pr_payload("opened", number)
    answer = emu.deliver("pull_request", payload, delivery_id="open-1")
    assert answer.status == 502, answer.body
    assert answer.body["message"] == "GitHub: commenting on pull request #1: HTTP 502: Server Error"
    assert gh_count(emu, "POST", COMMENTS) == 1
    assert emu.comments(number) == []
    assert emu.deliver("pull_request", payload, delivery_id="open-1").status == 200
    assert comment_kinds(emu, number) == ["status"]


def test_stale_success_status_after_a_failed_status_write_cannot_grant(emu: Emulator) -> None:
    number = emu.open_request("alice", request_yaml(project="payments-prod"))
    emu.pr_event("opened", number)
    review_id, answer = emu.review(number, "bob")
    assert answer.body["state"] == "ready"
    # The approval is dismissed, and GitHub fails the status update that would say so.
    emu.github.dismiss(emu.repo, number, review_id)
    emu.github.recorder.fail("POST", STATUSES, 500, body=SERVER_ERROR)
    answer = emu.deliver("pull_request_review",
                         emu.review_payload("dismissed", number, review_id))
    assert answer.status == 502, answer.body
    assert emu.status(number)["state"] == "success"  # type: ignore[index]  # stale
    # Someone merges on the stale status: the merge decides again from fresh facts.
    answer = emu.merge(number)
    assert answer.status == 200, answer.body
    assert answer.body["state"] == "refused"
    assert emu.activations("payments-prod") == []
    assert assert_consistent(emu, number) == []
    assert comment_kinds(emu, number) == ["status", "refusal"]


# -- the activation comment, after the IAM write and the audit entry -------------------------------


def test_comment_failure_after_grant_is_completed_once_by_a_redelivery(emu: Emulator) -> None:
    number = merged_ready(emu)
    posted = gh_count(emu, "POST", COMMENTS)
    emu.github.recorder.fail("POST", COMMENTS, 500, body=SERVER_ERROR)
    answer = emu.merge(number, delivery_id="merge-1")
    assert answer.status == 502, answer.body
    assert answer.body["message"] == (
        "GitHub: commenting on pull request #1: HTTP 500: Server Error"
    )
    assert gh_count(emu, "POST", COMMENTS) == posted + 1  # a POST is not retried blindly
    # Granted and audited, only the comment is missing: no access without an audit entry.
    [act] = assert_consistent(emu, number, require_comment=False)
    assert (act.start, act.end) == ("2026-11-29T10:00:00Z", "2026-11-29T11:00:00Z")
    assert events(emu).count(ACTIVATE) == 1
    assert comment_kinds(emu, number) == ["status"]
    writes = emu.google.recorder.count("POST", SET_POLICY)
    assert writes == 1

    emu.advance(timedelta(minutes=5))
    answer = redeliver_merge(emu, number, "merge-1")
    assert answer.status == 200, answer.body
    assert answer.body["written"] is False
    assert answer.body["message"] == (
        "PR #1: already activated (see the activation comment); a repeated merge event grants "
        "nothing; the missing activation comment was posted again"
    )
    assert answer.body["end"] == "2026-11-29T11:00:00Z"
    assert emu.google.recorder.count("POST", SET_POLICY) == writes  # no second write
    [again] = assert_consistent(emu, number)
    assert again == act  # the first window stands
    assert events(emu).count(ACTIVATE) == 1
    assert comment_kinds(emu, number) == ["status", "activation"]
    assert "**2026-11-29T11:00:00Z**" in comment_of(emu, number, "activation")

    # A third delivery changes nothing at all.
    assert redeliver_merge(emu, number, "merge-1").status == 200
    assert emu.google.recorder.count("POST", SET_POLICY) == writes
    assert comment_kinds(emu, number) == ["status", "activation"]
    assert_consistent(emu, number)


def test_comment_listing_outage_at_merge_then_a_redelivery_completes(emu: Emulator) -> None:
    number = merged_ready(emu)
    listed = gh_count(emu, "GET", COMMENTS)
    outage = emu.github.recorder.fail("GET", COMMENTS, 500, body=SERVER_ERROR, times=-1)
    answer = emu.merge(number, delivery_id="merge-1")
    assert answer.status == 502, answer.body
    assert answer.body["message"] == (
        "GitHub: listing the comments of pull request #1: HTTP 500: Server Error"
    )
    # The merge handler lists the comments (for an earlier activation) before granting.
    assert gh_count(emu, "GET", COMMENTS) == listed + 3  # the first try and two retries
    assert assert_consistent(emu, number) == []
    assert emu.google.recorder.count("POST", SET_POLICY) == 0
    stop(outage)
    assert redeliver_merge(emu, number, "merge-1").status == 200
    [_] = assert_consistent(emu, number)
    assert comment_kinds(emu, number) == ["status", "activation"]


def test_failure_comment_that_cannot_be_posted_still_answers_5xx(emu: Emulator) -> None:
    number = merged_ready(emu)
    emu.google.recorder.fail("POST", SET_POLICY, 403, body=google_error(403, "PERMISSION_DENIED"))
    emu.github.recorder.fail("POST", COMMENTS, 503, body=SERVER_ERROR)
    answer = emu.merge(number, delivery_id="merge-1")
    assert answer.status == 502, answer.body
    assert "the IAM binding could not be written" in answer.body["message"]
    assert comment_kinds(emu, number) == ["status"]
    assert assert_consistent(emu, number) == []
    assert redeliver_merge(emu, number, "merge-1").status == 200
    [_] = assert_consistent(emu, number)
    assert comment_kinds(emu, number) == ["status", "activation"]
