"""The commit status is posted only when it changes.

GitHub keeps at most 1,000 statuses per commit and context and refuses the next one (422), so
a service that posted on every event would, on a long-lived PR or under redeliveries, end with
a status it can no longer update. The service reads the current `jit-access` status with the
facts and skips a status equal to it (same state, description and target URL).
"""

from __future__ import annotations

from jitaccess_sandbox.emulator import Emulator
from tests.e2e.conftest import request_yaml

STATUS_POSTS = r"/statuses/[0-9a-f]{40}$"
STATUS_READS = r"/commits/[0-9a-f]{40}/status$"


def posts(emu: Emulator) -> int:
    return emu.github.recorder.count("POST", STATUS_POSTS)


def statuses(emu: Emulator, number: int) -> list[dict[str, object]]:
    return emu.github.statuses(emu.repo, emu.github.pull(emu.repo, number).head_sha)


def test_the_same_event_delivered_twice_posts_one_status(emu: Emulator) -> None:
    number = emu.open_request("alice", request_yaml())
    payload = emu.pr_payload("opened", number)
    first = emu.deliver("pull_request", payload, delivery_id="d-1")
    again = emu.deliver("pull_request", payload, delivery_id="d-1")  # a redelivery

    assert (first.status, first.body["state"]) == (200, "ready")
    assert (again.status, again.body["state"]) == (200, "ready")
    assert posts(emu) == 1
    [status] = statuses(emu, number)
    assert (status["state"], status["description"]) == (
        "success", "Ready: self-approval for 1 role")
    assert emu.github.recorder.count("GET", STATUS_READS) == 2
    assert len(emu.comments(number)) == 1


def test_a_review_that_changes_nothing_posts_no_status_and_a_change_posts_one(
    emu: Emulator,
) -> None:
    number = emu.open_request("alice", request_yaml(project="payments-prod"))
    assert emu.pr_event("opened", number).body["state"] == "pending"
    # dave is no qualified reviewer: the verdict stays, only the comment says why.
    _, answer = emu.review(number, "dave", "APPROVED")
    assert answer.body["state"] == "pending"
    assert posts(emu) == 1
    assert "dave's approval does not count" in emu.comments(number)[0]

    _, answer = emu.review(number, "bob", "APPROVED")
    assert answer.body["state"] == "ready"
    assert [s["state"] for s in statuses(emu, number)] == ["pending", "success"]


def test_a_commit_with_1000_statuses_keeps_answering(emu: Emulator) -> None:
    """With GitHub's 1,000 statuses already on the commit, an event whose verdict is unchanged
    still succeeds: posting it would be refused, and would fail the delivery."""
    number = emu.open_request("alice", request_yaml())
    assert emu.pr_event("opened", number).body["state"] == "ready"
    head = emu.github.pull(emu.repo, number).head_sha
    stored = emu.github.repos[emu.repo].statuses[head]
    stored[:0] = [dict(stored[0], state="pending") for _ in range(999)]  # older ones

    answer = emu.pr_event("synchronize", number)
    assert (answer.status, answer.body["state"]) == (200, "ready")
    assert len(statuses(emu, number)) == 1000
    assert emu.status(number)["state"] == "success"  # type: ignore[index]


def test_a_status_that_cannot_be_read_is_posted_anyway(emu: Emulator) -> None:
    number = emu.open_request("alice", request_yaml())
    assert emu.pr_event("opened", number).body["state"] == "ready"
    emu.github.recorder.fail("GET", STATUS_READS, 403, times=1,
                             body={"message": "Resource not accessible by integration"})
    answer = emu.pr_event("synchronize", number)
    assert (answer.status, answer.body["state"]) == (200, "ready")
    assert posts(emu) == 2  # not compared, so posted again: harmless below the limit
