"""Attacks at merge time (README: lifecycle; README: activation): stale or unqualified approvals,
merges that bypass
branch protection, replayed and fake merge events, and concurrent redeliveries."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from jitaccess_sandbox.emulator import Emulator
from jitaccess_sandbox.httpserver import LocalServer
from tests.adversarial.conftest import (
    ACTIVATE,
    REFUSE,
    activation_bindings,
    assert_no_grant,
    body_of,
    events,
    merge_and_assert_refused,
    open_files,
    post,
    request_yaml,
    status_comment_of,
)
from webhook.core.render import ACTIVATION_MARKER_PREFIX, REFUSAL_MARKER_PREFIX
from webhook.service.app import create_app
from webhook.service.wiring import Service

PROD = request_yaml(project="payments-prod")
WAITING = "Waiting for 1 approval (roles/cloudsql.admin)"
ALREADY = "already activated (see the activation comment); a repeated merge event grants nothing"


def activation_comments(emu: Emulator, number: int) -> list[str]:
    return [c for c in emu.comments(number) if c.startswith(ACTIVATION_MARKER_PREFIX)]


def refusal_comments(emu: Emulator, number: int) -> list[str]:
    return [c for c in emu.comments(number) if c.startswith(REFUSAL_MARKER_PREFIX)]


@pytest.fixture
def approved(emu: Emulator) -> int:
    """alice's payments-prod request, approved by bob on its head: ready to merge."""
    number = open_files(emu, "alice", {"requests/alice/x.yaml": PROD})
    _, answer = emu.review(number, "bob", "APPROVED")
    assert answer.body["state"] == "ready"
    return number


# --------------------------------------------------------------------------------------------
# Approvals that no longer count at merge time


def test_approval_before_a_force_push_does_not_count_even_unseen(
    emu: Emulator, approved: int
) -> None:
    """alice force-pushes a longer duration after bob's approval; the `synchronize` event is
    lost, so the old success status is all anybody saw. The merge re-reads the head."""
    emu.github.push(emu.repo, approved, {"requests/alice/x.yaml": request_yaml(
        project="payments-prod", duration="4h")})
    merge_and_assert_refused(emu, approved, WAITING)


def test_approval_before_a_force_push_does_not_count(emu: Emulator, approved: int) -> None:
    old_head = emu.github.pull(emu.repo, approved).head_sha
    emu.github.push(emu.repo, approved, {"requests/alice/x.yaml": request_yaml(
        project="payments-prod", duration="4h")})
    answer = emu.pr_event("synchronize", approved)
    assert answer.body["state"] == "pending"
    assert emu.status(approved)["description"] == WAITING  # type: ignore[index]
    assert (
        f"@\u200dbob's approval does not count: approved an older commit ({old_head[:7]}), "
        "not the head" in status_comment_of(emu, approved)
    )
    # An approval on the new head by someone unqualified does not help.
    _, answer = emu.review(approved, "dave", "APPROVED")
    assert answer.body["state"] == "pending"
    assert (
        "@\u200ddave's approval does not count: not eligible for roles/cloudsql.admin through "
        "multi-party approval" in status_comment_of(emu, approved)
    )
    merge_and_assert_refused(emu, approved, WAITING)


def test_an_approval_older_than_max_age_does_not_count(emu: Emulator, approved: int) -> None:
    emu.advance(timedelta(hours=24, seconds=1))
    merge_and_assert_refused(emu, approved, WAITING)


@pytest.mark.parametrize("later", ["CHANGES_REQUESTED", "DISMISSED"])
def test_a_withdrawn_approval_does_not_count(emu: Emulator, approved: int, later: str) -> None:
    review_id = emu.github.reviews(emu.repo, approved)[-1].id
    if later == "DISMISSED":
        emu.github.dismiss(emu.repo, approved, review_id)
    else:
        emu.advance(timedelta(seconds=1))
        emu.github.add_review(emu.repo, approved, "bob", later)
    merge_and_assert_refused(emu, approved, WAITING)


def test_a_reviewer_who_lost_eligibility_before_the_merge_does_not_count(
    emu: Emulator, approved: int
) -> None:
    emu.world.groups["sre@example.com"].discard("bob@example.com")
    merge_and_assert_refused(emu, approved, WAITING)


def test_a_requester_who_lost_eligibility_before_the_merge_is_refused(emu: Emulator) -> None:
    number = open_files(emu, "alice", {"requests/alice/x.yaml": request_yaml()})
    assert emu.status(number)["state"] == "success"  # type: ignore[index]
    emu.world.groups["developers@example.com"].discard("alice@example.com")
    merge_and_assert_refused(emu, number, "Not eligible for roles/cloudsql.admin")


def test_a_merge_bypassing_branch_protection_while_pending_is_refused(emu: Emulator) -> None:
    number = open_files(emu, "alice", {"requests/alice/x.yaml": PROD})
    assert emu.status(number)["state"] == "pending"  # type: ignore[index]
    answer = merge_and_assert_refused(emu, number, WAITING)
    assert answer.body["message"] == (
        f"PR #{number}: activation refused: the request was not ready when merged ({WAITING})"
    )
    [comment] = refusal_comments(emu, number)
    assert "Decision at merge time: Waiting for 1 approval (roles/cloudsql.admin)" in comment
    [entry] = [e for e in emu.audit() if e["labels"]["event"] == REFUSE]
    assert entry["labels"]["user"] == "alice@example.com"
    assert entry["labels"]["project"] == "payments-prod"
    assert entry["labels"]["role"] == "roles/cloudsql.admin"


# --------------------------------------------------------------------------------------------
# Fake and replayed merge events


def test_a_merge_event_for_an_open_pr_grants_nothing(emu: Emulator) -> None:
    """The payload says merged; GitHub says the PR is open. The payload is only a trigger."""
    number = open_files(emu, "alice", {"requests/alice/x.yaml": request_yaml()})
    payload = emu.pr_payload("closed", number)
    payload["pull_request"].update(
        state="closed", merged=True, merged_at="2026-11-29T10:00:00Z",
        merge_commit_sha="0" * 40,
    )
    answer = emu.deliver("pull_request", payload)
    assert answer.status == 200
    assert answer.body == {"message": f"PR #{number} is not merged; nothing to activate"}
    emu.github.close(emu.repo, number)  # closed without merge: still nothing
    answer = emu.deliver("pull_request", payload)
    assert answer.body == {"message": f"PR #{number} is not merged; nothing to activate"}
    assert_no_grant(emu)
    assert refusal_comments(emu, number) == activation_comments(emu, number) == []


def test_a_merge_event_for_a_pr_that_does_not_exist_grants_nothing(emu: Emulator) -> None:
    number = open_files(emu, "alice", {"requests/alice/x.yaml": request_yaml()})
    payload = emu.pr_payload("closed", number)
    payload["pull_request"].update(number=999, merged=True)
    answer = emu.deliver("pull_request", payload)
    assert answer.status == 502
    assert answer.body == {"message": "GitHub: reading pull request #999: not found (HTTP 404)"}
    assert_no_grant(emu)


def test_a_replay_after_max_delay_of_an_activated_merge_grants_nothing(emu: Emulator) -> None:
    number = open_files(emu, "alice", {"requests/alice/x.yaml": request_yaml()})
    assert emu.merge(number, delivery_id="merge-1").body["state"] == "activated"
    captured = emu.pr_payload("closed", number)
    [(_, first)] = activation_bindings(emu)
    emu.advance(timedelta(hours=2))
    assert len(emu.service.cleanup().removed) == 1  # the 1h activation expired
    answer = emu.deliver("pull_request", captured, delivery_id="merge-1")
    assert answer.status == 200
    assert answer.body["message"] == f"PR #{number}: {ALREADY}"
    assert activation_bindings(emu) == []
    assert events(emu).count(ACTIVATE) == 1
    # It was granted once: no refusal comment contradicts the activation comment.
    assert refusal_comments(emu, number) == []
    assert len(activation_comments(emu, number)) == 1
    assert first["condition"]["expression"].endswith('timestamp("2026-11-29T11:00:00Z"))')


def test_a_replay_within_max_delay_after_cleanup_grants_nothing(emu: Emulator) -> None:
    """A 5-minute activation, cleaned up once expired; 20 minutes after the merge (well within
    max_delay) the merge event is replayed. The binding is gone, so idempotency by binding
    cannot tell; the service's activation comment on the PR can: nothing is granted again."""
    number = open_files(emu, "alice", {"requests/alice/x.yaml": request_yaml(duration="5m")})
    assert emu.merge(number, delivery_id="merge-1").body["state"] == "activated"
    captured = emu.pr_payload("closed", number)
    emu.advance(timedelta(minutes=10))
    assert len(emu.service.cleanup().removed) == 1
    emu.advance(timedelta(minutes=10))
    for delivery_id in ("merge-1", "merge-2"):  # a redelivery, and a captured copy
        answer = emu.deliver("pull_request", captured, delivery_id=delivery_id)
        assert answer.status == 200
        assert answer.body["message"] == f"PR #{number}: {ALREADY}"
    assert activation_bindings(emu) == []
    assert events(emu).count(ACTIVATE) == 1
    assert len(activation_comments(emu, number)) == 1


def test_a_binding_revoked_by_hand_is_not_restored_by_a_replay(emu: Emulator) -> None:
    number = open_files(emu, "alice", {"requests/alice/x.yaml": request_yaml()})
    assert emu.merge(number).body["state"] == "activated"
    captured = emu.pr_payload("closed", number)
    policy = emu.world.get_policy("projects/payments-dev")
    policy["bindings"] = [
        b for b in policy["bindings"]
        if (b.get("condition") or {}).get("title") != "JIT access activation"
    ]
    emu.world.set_policy("projects/payments-dev", policy)  # an administrator revokes early
    emu.advance(timedelta(minutes=5))
    answer = emu.deliver("pull_request", captured)
    assert answer.body["message"] == f"PR #{number}: {ALREADY}"
    assert activation_bindings(emu) == []
    assert events(emu).count(ACTIVATE) == 1


def test_a_forged_activation_comment_by_someone_else_does_not_block_a_grant(
    emu: Emulator,
) -> None:
    """Only the service's own comments are its record: a participant pasting the marker does
    not make the service believe the PR was already activated."""
    number = open_files(emu, "alice", {"requests/alice/x.yaml": request_yaml()})
    head = emu.github.pull(emu.repo, number).head_sha
    emu.github.add_comment(emu.repo, number, "bob", f"{ACTIVATION_MARKER_PREFIX}{head} -->")
    assert emu.merge(number).body["state"] == "activated"
    assert len(activation_bindings(emu)) == 1


# --------------------------------------------------------------------------------------------
# Concurrent redeliveries of one merge


def deliver_concurrently(urls: list[str], body: bytes, threads: int = 8) -> list[Any]:
    """POST the same signed merge delivery from `threads` threads at once (round-robin over the
    service URLs); returns the answers."""
    barrier = threading.Barrier(threads)
    answers: list[Any] = [None] * threads

    def one(i: int) -> None:
        barrier.wait(timeout=30)
        answers[i] = post(urls[i % len(urls)], "pull_request", body, delivery_id="merge-dup")

    workers = [threading.Thread(target=one, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=60)
    assert all(a is not None for a in answers), "a delivery did not finish"
    return answers


def merged_ready(emu: Emulator) -> tuple[int, bytes]:
    number = open_files(emu, "alice", {"requests/alice/x.yaml": request_yaml()})
    emu.github.merge(emu.repo, number)
    return number, body_of(emu.pr_payload("closed", number))


def test_concurrent_redeliveries_grant_audit_and_comment_once(emu: Emulator) -> None:
    number, body = merged_ready(emu)
    answers = deliver_concurrently([emu.service_url], body)
    assert [a.status for a in answers] == [200] * 8
    assert {a.body["state"] for a in answers} == {"activated"}
    assert len(activation_bindings(emu)) == 1
    assert events(emu).count(ACTIVATE) == 1
    assert len(activation_comments(emu, number)) == 1


@pytest.fixture
def second_instance(emu: Emulator) -> Iterator[str]:
    """Another service instance (own Service, own Flask app, own per-PR locks) sharing the
    fakes; yields its URL."""
    service = Service.from_settings(emu.settings, clock=emu.clock)
    server = LocalServer(create_app(emu.settings, service=service)).start()
    try:
        yield server.url
    finally:
        server.stop()
        service.lifecycle.executor.shutdown(wait=False)


def test_two_instances_grant_and_audit_once(emu: Emulator, second_instance: str) -> None:
    """The in-process per-PR lock does not span instances; the etag discipline (a concurrent
    write conflicts and is retried, the retry finds the binding present) keeps one binding, and
    the audit entries share insertId and timestamp, so Cloud Logging keeps one."""
    number, body = merged_ready(emu)
    answers = deliver_concurrently([emu.service_url, second_instance], body)
    assert [a.status for a in answers] == [200] * 8
    assert {a.body["state"] for a in answers} == {"activated"}
    assert len(activation_bindings(emu)) == 1
    assert events(emu).count(ACTIVATE) == 1
    assert {a.body["end"] for a in answers if "end" in a.body} == {"2026-11-29T11:00:00Z"}


def test_two_instances_comment_once(emu: Emulator, second_instance: str) -> None:
    """Only the instance that wrote the binding comments at once; the other finds the binding
    (or its audit entry) younger than the writer's budget and leaves the comment to it."""
    number, body = merged_ready(emu)
    # A latency spike on the first comment POST: the other instance looks for the activation
    # comment while that POST is in flight (deterministic interleaving, no timing assertion).
    emu.github.recorder.slow("POST", r"/issues/\d+/comments$", 1.5)
    deliver_concurrently([emu.service_url, second_instance], body, threads=2)
    assert len(activation_bindings(emu)) == 1
    assert events(emu).count(ACTIVATE) == 1
    assert len(activation_comments(emu, number)) == 1


def test_approvals_after_a_refused_merge_never_turn_it_into_a_grant(emu: Emulator) -> None:
    number = emu.open_request("alice", request_yaml(project="payments-prod"))
    emu.pr_event("opened", number)
    merged = emu.merge(number)  # merged while still pending: refused
    assert merged.body["state"] == "refused"
    payload = emu.pr_payload("closed", number)
    emu.advance(timedelta(minutes=5))
    emu.github.add_review("acme/access", number, "bob", "APPROVED")  # after the merge
    again = emu.deliver("pull_request", payload)
    assert again.status == 200
    assert again.body["state"] == "refused"
    assert emu.activations("payments-prod") == []
    assert [e["labels"]["event"] for e in emu.audit()].count("gitops.activateRole") == 0
    assert sum("jit-access:refusal" in c for c in emu.comments(number)) == 1
