"""README: lifecycle approval rules, end to end: real service, PyGithub and Google libraries, both
fakes.

Every case runs the multi-party request of the standard world (alice asks for
roles/cloudsql.admin on payments-prod; bob and carol are qualified through sre@ on the prod
folder; dave is a developer, not an approver) and checks the commit status, the status comment,
the IAM policy and the audit log.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from jitaccess_sandbox.emulator import IDENTITIES_YAML, POLICY_YAML, REPO, Emulator
from tests.e2e.conftest import NOW, request_yaml

PROD = "payments-prod"
ROLE = "roles/cloudsql.admin"
WAITING = "Waiting for 1 approval (roles/cloudsql.admin)"
ZWJ = "\u200d"  # the status comment defuses mentions of reviewers quoted in reasons


@contextmanager
def world(**kw: Any) -> Iterator[Emulator]:
    """A seeded world at NOW with custom policy files; no fake may see an unexpected call."""
    with Emulator(now=NOW, **kw) as emu:
        yield emu
        assert emu.github.recorder.unexpected == []
        assert emu.google.recorder.unexpected == []


def open_prod_request(emu: Emulator) -> int:
    """alice opens the payments-prod request; the service says it waits for one approval."""
    number = emu.open_request("alice", request_yaml(project=PROD))
    answer = emu.pr_event("opened", number)
    assert answer.status == 200, answer.body
    assert answer.body["state"] == "pending"
    assert_status(emu, number, "pending", WAITING)
    return number


def assert_status(emu: Emulator, number: int, state: str, description: str) -> None:
    status = emu.status(number)
    assert status is not None
    assert (status["context"], status["state"], status["description"]) == (
        "jit-access", state, description,
    )


def comment(emu: Emulator, number: int) -> str:
    """The one status comment (it is edited in place, never duplicated)."""
    [body] = emu.comments(number)
    return body


def not_counted(login: str, why: str) -> str:
    """The comment line explaining why a reviewer's approval does not count."""
    return f"  - @{ZWJ}{login}'s approval does not count: {why}"


def events(emu: Emulator) -> list[str]:
    return [e["labels"]["event"] for e in emu.audit()]


def review_answer(emu: Emulator, number: int, login: str, state: str = "APPROVED",
                  **kw: Any) -> str:
    _, answer = emu.review(number, login, state, **kw)
    assert answer.status == 200, answer.body
    return str(answer.body["state"])


# ----------------------------------------------------------------------------------------------


def test_unqualified_reviewer_does_not_count(emu: Emulator) -> None:
    number = open_prod_request(emu)
    assert review_answer(emu, number, "dave") == "pending"
    assert_status(emu, number, "pending", WAITING)
    body = comment(emu, number)
    assert not_counted(
        "dave", "not eligible for roles/cloudsql.admin through multi-party approval"
    ) in body.splitlines()
    assert "multi-party approval, 0 approvals, 1 more needed" in body
    assert "Qualified reviewers: @bob, @carol" in body
    assert emu.activations(PROD) == []
    assert events(emu) == ["gitops.requestRole"]  # dave's review is no approval


def test_author_approving_own_pr_does_not_count(emu: Emulator) -> None:
    number = open_prod_request(emu)
    assert review_answer(emu, number, "alice") == "pending"
    assert_status(emu, number, "pending", WAITING)
    assert not_counted("alice", "is the requester") in comment(emu, number).splitlines()
    assert events(emu) == ["gitops.requestRole"]
    # merging anyway (an admin bypassing branch protection) grants nothing
    assert emu.merge(number).body["state"] == "refused"
    assert emu.activations(PROD) == []
    assert events(emu) == ["gitops.requestRole", "gitops.refuseActivation"]


def test_alias_of_the_requester_does_not_count() -> None:
    ids = IDENTITIES_YAML + "alice2: alice@example.com\n"
    with world(identities_yaml=ids) as emu:
        number = open_prod_request(emu)
        # the alias is never suggested as a reviewer: it is the requester
        assert "Qualified reviewers: @bob, @carol" in comment(emu, number)
        assert review_answer(emu, number, "alice2") == "pending"
        assert_status(emu, number, "pending", WAITING)
        body = comment(emu, number)
        assert not_counted("alice2", "is the requester (same identity)") in body.splitlines()
        assert "Qualified reviewers: @bob, @carol" in body
        assert emu.activations(PROD) == []
        assert events(emu) == ["gitops.requestRole"]


def test_push_makes_an_approval_stale_until_approved_again(emu: Emulator) -> None:
    number = open_prod_request(emu)
    assert review_answer(emu, number, "bob") == "ready"
    assert_status(emu, number, "success", "Ready: approved by bob")
    old_head = emu.github.pull(REPO, number).head_sha

    emu.advance(timedelta(minutes=5))
    new_head = emu.github.push(
        REPO, number,
        {"requests/alice/request.yaml": request_yaml(project=PROD, duration="2h")},
    )
    # nothing judged the new head yet
    assert emu.status(number) is None
    answer = emu.pr_event("synchronize", number)
    assert answer.status == 200 and answer.body["state"] == "pending"
    assert_status(emu, number, "pending", WAITING)
    # the old head keeps its old status; the new head is pending
    assert emu.github.latest_status(REPO, old_head)["state"] == "success"  # type: ignore[index]
    body = comment(emu, number)
    assert not_counted(
        "bob", f"approved an older commit ({old_head[:7]}), not the head"
    ) in body.splitlines()
    assert f"Evaluated for commit {new_head[:7]}." in body
    assert "| Duration | 2h |" in body

    emu.advance(timedelta(minutes=5))
    assert review_answer(emu, number, "bob") == "ready"
    assert_status(emu, number, "success", "Ready: approved by bob")
    assert "approval does not count" not in comment(emu, number)
    assert events(emu) == ["gitops.requestRole", "gitops.approveRole", "gitops.approveRole"]
    assert [e["labels"]["commit"] for e in emu.audit()] == [old_head, old_head, new_head]

    emu.advance(timedelta(minutes=5))
    assert emu.merge(number).body["state"] == "activated"
    [binding] = emu.activations(PROD)
    assert binding["condition"]["expression"] == (
        '(request.time >= timestamp("2026-11-29T10:15:00Z") && '
        'request.time < timestamp("2026-11-29T12:15:00Z"))'
    )


def test_changes_requested_after_approval_is_pending(emu: Emulator) -> None:
    number = open_prod_request(emu)
    assert review_answer(emu, number, "bob") == "ready"
    emu.advance(timedelta(minutes=1))
    assert review_answer(emu, number, "bob", "CHANGES_REQUESTED") == "pending"
    assert_status(emu, number, "pending", WAITING)
    assert not_counted("bob", "latest review requests changes") in comment(
        emu, number
    ).splitlines()
    assert events(emu) == ["gitops.requestRole", "gitops.approveRole"]
    assert emu.merge(number).body["state"] == "refused"
    assert emu.activations(PROD) == []


def test_approval_after_changes_requested_is_ready(emu: Emulator) -> None:
    number = open_prod_request(emu)
    assert review_answer(emu, number, "bob", "CHANGES_REQUESTED") == "pending"
    assert_status(emu, number, "pending", WAITING)
    emu.advance(timedelta(minutes=1))
    assert review_answer(emu, number, "bob") == "ready"
    assert_status(emu, number, "success", "Ready: approved by bob")
    body = comment(emu, number)
    assert "multi-party approval, 1 approval (bob), complete" in body
    assert "does not count" not in body
    assert events(emu) == ["gitops.requestRole", "gitops.approveRole"]
    assert emu.merge(number).body["state"] == "activated"
    [binding] = emu.activations(PROD)
    assert binding["condition"]["description"].startswith("Approved by bob@example.com,")


def test_comment_after_approval_keeps_it(emu: Emulator) -> None:
    number = open_prod_request(emu)
    assert review_answer(emu, number, "bob") == "ready"
    emu.advance(timedelta(minutes=1))
    _, answer = emu.review(number, "bob", "COMMENTED", body="one more thing")
    # A comment review cannot change the decision, so it is not evaluated at all.
    assert (answer.status, answer.body) == (
        200, {"message": f"PR #{number}: review comment or edit; nothing to do"}
    )
    assert_status(emu, number, "success", "Ready: approved by bob")
    assert "does not count" not in comment(emu, number)
    # the COMMENTED review is no approval: one approveRole entry only
    assert events(emu) == ["gitops.requestRole", "gitops.approveRole"]
    # ... and the merge, which decides afresh over every review, still counts the approval
    assert emu.merge(number).body["state"] == "activated"


def test_dismissed_approval_is_pending(emu: Emulator) -> None:
    number = open_prod_request(emu)
    review_id, answer = emu.review(number, "bob")
    assert answer.body["state"] == "ready"
    emu.advance(timedelta(minutes=1))
    emu.github.dismiss(REPO, number, review_id)
    answer = emu.deliver(
        "pull_request_review", emu.review_payload("dismissed", number, review_id)
    )
    assert answer.status == 200, answer.body
    assert answer.body["state"] == "pending"
    assert_status(emu, number, "pending", WAITING)
    assert not_counted("bob", "latest review was dismissed") in comment(emu, number).splitlines()
    assert events(emu) == ["gitops.requestRole", "gitops.approveRole"]
    assert emu.merge(number).body["state"] == "refused"
    assert emu.activations(PROD) == []


def test_approval_older_than_max_age_is_pending(emu: Emulator) -> None:
    number = open_prod_request(emu)
    # submitted 25 h before the evaluation
    assert review_answer(emu, number, "bob", submitted_at=NOW - timedelta(hours=25)) == "pending"
    assert_status(emu, number, "pending", WAITING)
    assert not_counted("bob", "approval is older than 24h") in comment(emu, number).splitlines()
    assert events(emu) == ["gitops.requestRole"]


def test_approval_exactly_max_age_old_still_counts(emu: Emulator) -> None:
    number = open_prod_request(emu)
    assert review_answer(emu, number, "bob", submitted_at=NOW - timedelta(hours=24)) == "ready"
    assert_status(emu, number, "success", "Ready: approved by bob")


def test_approval_aged_past_max_age_by_merge_time_is_refused(emu: Emulator) -> None:
    number = open_prod_request(emu)
    assert review_answer(emu, number, "bob") == "ready"
    assert_status(emu, number, "success", "Ready: approved by bob")
    emu.advance(timedelta(hours=25))  # the merge itself is fresh: max_delay is no issue
    answer = emu.merge(number)
    assert answer.status == 200, answer.body
    assert answer.body["state"] == "refused"
    assert "not ready when merged (Waiting for 1 approval" in answer.body["message"]
    assert emu.activations(PROD) == []
    assert events(emu) == ["gitops.requestRole", "gitops.approveRole", "gitops.refuseActivation"]
    refusal = emu.audit()[-1]
    assert refusal["severity"] == "WARNING"
    assert refusal["labels"]["reviewers"] == ""  # bob's approval no longer counts
    last = emu.comments(number)[-1]
    assert "Access not activated" in last
    assert "Decision at merge time: Waiting for 1 approval (roles/cloudsql.admin)" in last


def test_two_required_approvals_need_two_distinct_reviewers() -> None:
    policy = POLICY_YAML.replace("required: 1", "required: 2")
    ids = IDENTITIES_YAML + "bob2: bob@example.com\n"
    with world(policy_yaml=policy, identities_yaml=ids) as emu:
        number = emu.open_request("alice", request_yaml(project=PROD))
        assert emu.pr_event("opened", number).body["state"] == "pending"
        assert_status(emu, number, "pending", "Waiting for 2 approvals (roles/cloudsql.admin)")

        assert review_answer(emu, number, "bob") == "pending"
        assert_status(emu, number, "pending", WAITING)
        emu.advance(timedelta(minutes=1))
        assert review_answer(emu, number, "bob") == "pending"  # the same reviewer again
        assert_status(emu, number, "pending", WAITING)
        # bob's second account is the same person
        emu.advance(timedelta(minutes=1))
        assert review_answer(emu, number, "bob2") == "pending"
        assert_status(emu, number, "pending", WAITING)
        body = comment(emu, number)
        assert not_counted("bob2", f"same identity as @{ZWJ}bob, counted once") in body.splitlines()
        assert "multi-party approval, 1 approval (bob), 1 more needed" in body
        assert "Qualified reviewers: @carol" in body  # bob (and bob2) need not be asked again

        emu.advance(timedelta(minutes=1))
        assert review_answer(emu, number, "carol") == "ready"
        assert_status(emu, number, "success", "Ready: approved by bob, carol")
        assert emu.merge(number).body["state"] == "activated"
        [binding] = emu.activations(PROD)
        assert binding["condition"]["description"] == (
            "Approved by bob@example.com, carol@example.com, justification: INC-1234: restore "
            "the failed replica (acme/access#1)"
        )
        assert events(emu) == [
            "gitops.requestRole", "gitops.approveRole", "gitops.approveRole",
            "gitops.approveRole", "gitops.activateRole",
        ]
        assert emu.audit()[-1]["labels"]["reviewers"] == "bob@example.com,carol@example.com"


def test_reviewer_without_identity_mapping_does_not_count(emu: Emulator) -> None:
    number = open_prod_request(emu)
    assert review_answer(emu, number, "erin") == "pending"
    assert_status(emu, number, "pending", WAITING)
    assert not_counted("erin", "has no identity mapping") in comment(emu, number).splitlines()
    assert events(emu) == ["gitops.requestRole"]
    assert emu.activations(PROD) == []


def test_reviewer_login_case_is_ignored_and_counted_once() -> None:
    # identities.yaml spells the login in upper case; GitHub sends `bob`
    ids = IDENTITIES_YAML.replace("bob:", "BOB:")
    policy = POLICY_YAML.replace("required: 1", "required: 2")
    with world(identities_yaml=ids, policy_yaml=policy) as emu:
        number = emu.open_request("alice", request_yaml(project=PROD))
        emu.pr_event("opened", number)
        assert review_answer(emu, number, "bob") == "pending"
        emu.advance(timedelta(minutes=1))
        assert review_answer(emu, number, "BOB") == "pending"  # the same account
        assert_status(emu, number, "pending", WAITING)
        body = comment(emu, number)
        assert "multi-party approval, 1 approval (bob), 1 more needed" in body
        assert "does not count" not in body
        emu.advance(timedelta(minutes=1))
        assert review_answer(emu, number, "carol") == "ready"
        assert_status(emu, number, "success", "Ready: approved by bob, carol")
        assert emu.merge(number).body["state"] == "activated"
        [binding] = emu.activations(PROD)
        assert binding["condition"]["description"].startswith(
            "Approved by bob@example.com, carol@example.com,"
        )
