"""The merge queue: `merge_group` `checks_requested` gets a `jit-access` verdict on the group.

GitHub requires the checks of the target branch on every merge group; without an answer the
queue waits until its timeout. Through the real service: the fake GitHub builds the group's
commit from the base and the queued PRs, delivers the event, and holds the verdict (a check run
with the App, a commit status with a token). Nothing is activated by a merge group: each PR's
own merge event does that.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from jitaccess_sandbox.emulator import REPO, Emulator
from jitaccess_sandbox.fake_github import FakeCheckRun, FakeMergeGroup
from tests.e2e.conftest import NOW, request_yaml

PROD = "payments-prod"
COMPARE = rf"^/repos/{REPO}/compare/"


@pytest.fixture
def app_emu() -> Iterator[Emulator]:
    with Emulator(now=NOW, app=True) as world:
        yield world
        assert world.github.recorder.unexpected == []
        assert world.google.recorder.unexpected == []


def group_run(emu: Emulator, group: FakeMergeGroup) -> FakeCheckRun:
    [run] = emu.github.check_runs(REPO, group.head_sha, "jit-access")
    return run


def ready_request(emu: Emulator, author: str = "alice", name: str = "request.yaml") -> int:
    number = emu.open_request(author, request_yaml(), name=name)
    assert emu.pr_event("opened", number).body["state"] == "ready"
    return number


def pending_request(emu: Emulator) -> int:
    number = emu.open_request("alice", request_yaml(project=PROD), name="prod.yaml")
    assert emu.pr_event("opened", number).body["state"] == "pending"
    return number


def test_a_group_with_a_ready_request_passes_and_activates_nothing(app_emu: Emulator) -> None:
    emu = app_emu
    number = ready_request(emu)
    group, answer = emu.queue(number)
    assert (answer.status, answer.body["state"]) == (200, "success")
    run = group_run(emu, group)
    assert (run.status, run.conclusion, run.title) == (
        "completed", "success", "Merge group: the request is ready"
    )
    assert f"(#{number}): Ready: self-approval for 1 role" in (run.summary or "")
    # The group's own comparison, once (the PR's evaluations compare its head, as every
    # evaluation does).
    group_compare = rf"^/repos/{REPO}/compare/{group.base_sha}\.\.\.{group.head_sha}$"
    assert emu.github.recorder.count("GET", group_compare) == 1
    # Activation waits for the PR's own merge event.
    assert emu.activations("payments-dev") == []
    assert [e["labels"]["event"] for e in emu.audit()] == ["gitops.requestRole"]


def test_a_group_with_a_request_waiting_for_approval_fails(app_emu: Emulator) -> None:
    emu = app_emu
    number = pending_request(emu)
    group, answer = emu.queue(number)
    assert (answer.status, answer.body["state"]) == (200, "failure")
    run = group_run(emu, group)
    assert (run.conclusion, run.title) == (
        "failure",
        f"Merge group: #{number} is not ready: Waiting for 1 approval (roles/cloudsql.admin)",
    )


def test_readiness_is_decided_again_for_the_group(app_emu: Emulator) -> None:
    """The group is judged from fresh facts, not from the PR's last check run: an approval
    dismissed after the PR was queued fails the group."""
    emu = app_emu
    number = pending_request(emu)
    review_id, _ = emu.review(number, "bob", "APPROVED")
    assert emu.check_run(number).conclusion == "success"  # type: ignore[union-attr]
    emu.github.dismiss(REPO, number, review_id)  # its delivery has not arrived yet
    group, answer = emu.queue(number)
    assert answer.body["state"] == "failure"
    assert (group_run(emu, group).title or "").startswith(f"Merge group: #{number} is not ready")


def test_a_group_without_requests_passes_without_a_google_call(app_emu: Emulator) -> None:
    emu = app_emu
    number = emu.github.open_pr(REPO, "carol", {"README.md": "# access\n"})
    emu.pr_event("opened", number)
    google_calls = len(emu.google.recorder.calls)
    group, answer = emu.queue(number)
    assert (answer.status, answer.body["state"]) == (200, "success")
    assert group_run(emu, group).title == "No access request in this merge group"
    assert len(emu.google.recorder.calls) == google_calls


def test_a_group_passes_only_when_every_request_in_it_is_ready(app_emu: Emulator) -> None:
    emu = app_emu
    ready = ready_request(emu, "bob", "dev.yaml")
    waiting = pending_request(emu)
    group, answer = emu.queue(ready, waiting)
    assert answer.body["state"] == "failure"
    run = group_run(emu, group)
    assert (run.title or "").startswith(f"Merge group: #{waiting} is not ready")
    assert f"(#{ready}): Ready" in (run.summary or "")


def test_a_group_whose_request_file_is_not_the_ready_prs_fails(app_emu: Emulator) -> None:
    """mallory queues a PR adding alice's path with other content: alice's own PR with that
    path is ready, but the file in the group is not the one alice's PR adds."""
    emu = app_emu
    alice = ready_request(emu)
    mallory = emu.github.open_pr(
        REPO, "mallory", {"requests/alice/request.yaml": request_yaml(duration="4h")}
    )
    group, answer = emu.queue(mallory)
    assert answer.body["state"] == "failure"
    run = group_run(emu, group)
    assert run.title == (
        f"Merge group: #{alice} is not ready: the file in the merge group is not the one in the PR"
    )


def test_a_group_that_edits_a_request_fails(app_emu: Emulator) -> None:
    emu = app_emu
    emu.github.put_file(REPO, "requests/alice/old.yaml", request_yaml(duration="30m"))
    number = emu.github.open_pr(
        REPO, "alice", modified={"requests/alice/old.yaml": request_yaml(duration="4h")}
    )
    group, answer = emu.queue(number)
    assert answer.body["state"] == "failure"
    assert group_run(emu, group).title == (
        "Merge group: requests/alice/old.yaml: the merge group changes an existing request"
    )


def test_a_redelivered_group_event_sends_nothing_new(app_emu: Emulator) -> None:
    emu = app_emu
    group, _ = emu.queue(ready_request(emu))
    payload = emu.github.merge_group_event(group)
    creates = emu.github.recorder.count("POST", rf"^/repos/{REPO}/check-runs$")
    assert emu.deliver("merge_group", payload).body["state"] == "success"
    assert emu.github.recorder.count("POST", rf"^/repos/{REPO}/check-runs$") == creates
    assert emu.github.recorder.count("PATCH", r"/check-runs/") == 0


def test_a_destroyed_group_needs_nothing(app_emu: Emulator) -> None:
    emu = app_emu
    group, _ = emu.queue(ready_request(emu))
    calls = len(emu.github.recorder.calls)
    answer = emu.deliver("merge_group", emu.github.merge_group_event(group, "destroyed"))
    assert (answer.status, answer.body) == (
        200, {"message": "ignored: merge_group/destroyed is not handled"}
    )
    assert len(emu.github.recorder.calls) == calls


def test_with_a_token_the_group_gets_a_commit_status(emu: Emulator) -> None:
    number = emu.open_request("alice", request_yaml(project=PROD))
    emu.pr_event("opened", number)
    group, answer = emu.queue(number)
    assert answer.body["state"] == "failure"
    status = emu.github.latest_status(REPO, group.head_sha)
    assert status is not None and status["state"] == "failure"
    assert status["description"].startswith(f"Merge group: #{number} is not ready")

    emu.review(number, "bob", "APPROVED")
    group, answer = emu.queue(number)
    assert answer.body["state"] == "success"
    assert emu.github.latest_status(REPO, group.head_sha)["state"] == "success"  # type: ignore[index]


def test_a_group_that_cannot_be_checked_fails_at_once(app_emu: Emulator) -> None:
    """Rather than leave the queue waiting for its timeout: a failure the queue acts on (the
    group is taken out; queueing again retries), and a 502 in the App's Recent Deliveries."""
    emu = app_emu
    number = ready_request(emu)
    emu.github.recorder.fail("GET", COMPARE, 500, times=3)  # the first try and both retries
    group, answer = emu.queue(number)
    assert (answer.status, answer.body["state"]) == (502, "failure")
    run = group_run(emu, group)
    assert run.conclusion == "failure"
    assert (run.title or "").startswith("Merge group could not be checked: GitHub: comparing ")
    assert "Queue the pull requests again to retry." in (run.summary or "")
