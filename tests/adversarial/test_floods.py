"""Comment and review floods: anyone who can comment on a PR can add thousands of comments or
comment-only reviews. None of it may block a decision (answer 502 on every event, so that a
stale `success` stays and the merge activates nothing), nor make one on part of the reviews.

Through the real service; the work is counted in calls (and in pages asked for at once, which
the fake proves by holding them until they have all arrived), never timed.
"""

from __future__ import annotations

from datetime import timedelta

from jitaccess_sandbox.emulator import REPO, Emulator
from tests.adversarial.conftest import (
    ACTIVATE,
    activation_bindings,
    assert_no_grant,
    events,
    merge_and_assert_refused,
    request_yaml,
    status_comment_of,
    status_of,
)
from webhook.core.records import ACTIVATION_MARKER_PREFIX, COMMENT_MARKER

PROD = request_yaml(project="payments-prod")
COMMENTS = rf"^/repos/{REPO}/issues/1/comments$"
REVIEWS = rf"^/repos/{REPO}/pulls/1/reviews$"
LATER_PAGES = r"(^|&)page=([2-9]|\d\d+)(&|$)"
TOO_MANY = "more reviews than the service can read"


def flood_comments(emu: Emulator, number: int, count: int) -> None:
    for i in range(count):
        emu.github.add_comment(REPO, number, "mallory", f"+1 ({i})")


def flood_reviews(emu: Emulator, number: int, count: int) -> None:
    for i in range(count):
        emu.github.add_review(REPO, number, "mallory", "COMMENTED", body=f"nit {i}")


def calls(emu: Emulator, method: str, path: str) -> int:
    return emu.github.recorder.count(method, path)


# -- comments ----------------------------------------------------------------------------------


def test_three_thousand_comments_block_no_event_and_no_merge(emu: Emulator) -> None:
    number = emu.open_request("alice", request_yaml())
    assert emu.pr_event("opened", number).body["state"] == "ready"
    flood_comments(emu, number, 3000)

    before = calls(emu, "GET", COMMENTS)
    emu.github.push(REPO, number, {"requests/alice/request.yaml": request_yaml(duration="2h")})
    answer = emu.pr_event("synchronize", number)

    assert answer.status == 200 and answer.body["state"] == "ready", answer.body
    # The status comment is on the first page: the 30 pages after it are not read.
    assert calls(emu, "GET", COMMENTS) - before == 1
    assert "2h" in status_comment_of(emu, number)  # edited in place, not a second one

    emu.advance(timedelta(minutes=10))  # merged a while after the flood
    before = calls(emu, "GET", COMMENTS)
    answer = emu.merge(number)

    assert answer.status == 200 and answer.body["state"] == "activated", answer.body
    # A merge needs only the records of decisions on it, all younger than the merge.
    assert calls(emu, "GET", COMMENTS) - before == 1
    [*_, listing] = [c for c in emu.github.recorder.calls
                     if c.method == "GET" and c.path.endswith("/issues/1/comments")]
    assert "since=2026-11-29T10%3A05%3A00Z" in listing.query  # the merge, less a margin
    assert len(activation_bindings(emu)) == 1
    # A redelivery of the merge still finds the activation comment: nothing more is granted.
    again = emu.merge(number)
    assert again.status == 200 and again.body["state"] == "activated"
    assert again.body["written"] is False
    assert events(emu, number).count(ACTIVATE) == 1
    assert sum(c.startswith(ACTIVATION_MARKER_PREFIX) for c in emu.comments(number)) == 1


def test_a_flood_before_the_first_evaluation_is_read_pages_at_once(emu: Emulator) -> None:
    """The status comment does not exist yet (the first delivery was lost, say): every page
    must be read to know, and the pages after the first are asked for together."""
    number = emu.open_request("alice", request_yaml())
    flood_comments(emu, number, 1000)
    together = emu.github.recorder.gather("GET", COMMENTS, 8, query=LATER_PAGES)

    answer = emu.pr_event("opened", number)

    assert answer.status == 200 and answer.body["state"] == "ready", answer.body
    assert together.met and not together.broken
    assert calls(emu, "GET", COMMENTS) == 10
    # Found again on the next event, now on the last page: edited, never duplicated.
    assert emu.pr_event("edited", number).status == 200
    assert sum(c.startswith(COMMENT_MARKER) for c in emu.comments(number)) == 1


# -- reviews -----------------------------------------------------------------------------------


def test_three_thousand_comment_only_reviews_block_no_decision(emu: Emulator) -> None:
    number = emu.open_request("alice", PROD)
    assert emu.pr_event("opened", number).body["state"] == "pending"
    flood_reviews(emu, number, 3000)
    together = emu.github.recorder.gather("GET", REVIEWS, 8, query=LATER_PAGES)

    _, answer = emu.review(number, "bob", "APPROVED")  # the 3,001st review decides

    assert answer.status == 200 and answer.body["state"] == "ready", answer.body
    assert together.met and not together.broken
    assert status_of(emu, number)["description"] == "Ready: approved by bob"
    answer = emu.merge(number)
    assert answer.status == 200 and answer.body["state"] == "activated", answer.body


def test_more_reviews_than_the_service_reads_fail_safe_to_error(emu: Emulator) -> None:
    """Past the cap the approvals are not judged on part of the reviews — a later review left
    out could withdraw one: the status says error, the comment why, and a merge grants
    nothing."""
    emu.service.github.max_listed = 200
    number = emu.open_request("alice", PROD)
    emu.github.add_review(REPO, number, "bob", "APPROVED")
    flood_reviews(emu, number, 200)

    answer = emu.pr_event("opened", number)

    assert answer.status == 200 and answer.body["state"] == "error", answer.body
    status = status_of(emu, number)
    assert (status["state"], status["description"]) == ("error", "Service error: see comment")
    assert TOO_MANY in status_comment_of(emu, number)
    merge_and_assert_refused(emu, number, "the request was not ready when merged")
    assert_no_grant(emu)


def test_a_self_approved_request_is_decided_whatever_the_reviews(emu: Emulator) -> None:
    emu.service.github.max_listed = 200
    number = emu.open_request("alice", request_yaml())
    flood_reviews(emu, number, 201)

    answer = emu.pr_event("opened", number)

    assert answer.status == 200 and answer.body["state"] == "ready", answer.body
    assert emu.merge(number).body["state"] == "activated"
