"""GitHub-native verdicts: with GitHub App credentials the verdict is a `jit-access` check run.

Through the real service: signed deliveries over HTTP, the service authenticating as the fake's
GitHub App (JWT, installation token), and the check runs read back from the fake GitHub, which
validates them as GitHub does (at most 50 annotations a request, valid lines and levels, only
the owning App may update, a completed check run's conclusion never changes).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from jitaccess_sandbox.emulator import REPO, Emulator
from jitaccess_sandbox.fake_github import FakeCheckRun
from tests.e2e.conftest import NOW, request_yaml
from webhook.core.records import COMMENT_MARKER

CHECK_CREATES = rf"^/repos/{REPO}/check-runs$"
CHECK_UPDATES = rf"^/repos/{REPO}/check-runs/\d+$"
CHECK_READS = rf"^/repos/{REPO}/commits/[0-9a-f]{{40}}/check-runs$"
STATUS_POSTS = r"/statuses/"
SET_POLICY = r":setIamPolicy$"
ACTIVATE = "gitops.activateRole"
PROD = "payments-prod"
DEV = "payments-dev"


@pytest.fixture
def app_emu() -> Iterator[Emulator]:
    """The seeded world, the service authenticating as the installed GitHub App."""
    with Emulator(now=NOW, app=True) as world:
        yield world
        assert world.github.recorder.unexpected == []
        assert world.google.recorder.unexpected == []


def creates(emu: Emulator) -> int:
    return emu.github.recorder.count("POST", CHECK_CREATES)


def updates(emu: Emulator) -> int:
    return emu.github.recorder.count("PATCH", CHECK_UPDATES)


def only_run(emu: Emulator, number: int) -> FakeCheckRun:
    [run] = emu.check_runs(number)
    return run


def summary_of_comment(emu: Emulator, number: int) -> str:
    """The status comment as the check run summary shows it: without its hidden marker."""
    [body] = [c for c in emu.comments(number) if c.startswith(COMMENT_MARKER)]
    return body.removeprefix(COMMENT_MARKER + "\n").strip("\n")


def events(emu: Emulator) -> list[str]:
    return [e["labels"]["event"] for e in emu.audit()]


# ----------------------------------------------------------------------------------------------
# One check run per head commit, updated in place


def test_a_pending_request_is_one_check_run_completed_in_place_on_approval(
    app_emu: Emulator,
) -> None:
    emu = app_emu
    number = emu.open_request("alice", request_yaml(project=PROD))
    assert emu.pr_event("opened", number).body["state"] == "pending"

    run = only_run(emu, number)
    assert (run.status, run.conclusion) == ("in_progress", None)
    assert run.title == "Waiting for 1 approval (roles/cloudsql.admin)"
    assert run.summary == summary_of_comment(emu, number)
    assert run.details_url is not None and run.details_url.endswith(f"/{REPO}/pull/{number}")
    assert run.app_id == emu.github.app_id
    assert run.external_id == f"jit-access/1 pr={number}"

    _, answer = emu.review(number, "bob", "APPROVED")
    assert answer.body["state"] == "ready"
    done = only_run(emu, number)  # the same check run, completed
    assert done.id == run.id
    assert (done.status, done.conclusion) == ("completed", "success")
    assert done.title == "Ready: approved by bob"
    assert done.summary == summary_of_comment(emu, number)
    assert (creates(emu), updates(emu)) == (1, 1)
    # With the App the verdict is the check run: no commit status at all.
    assert emu.github.recorder.count("POST", STATUS_POSTS) == 0
    assert emu.status(number) is None


def test_an_unchanged_verdict_is_not_sent_again(app_emu: Emulator) -> None:
    emu = app_emu
    number = emu.open_request("alice", request_yaml(project=PROD))
    payload = emu.pr_payload("opened", number)
    assert emu.deliver("pull_request", payload, delivery_id="d-1").body["state"] == "pending"
    assert emu.deliver("pull_request", payload, delivery_id="d-1").body["state"] == "pending"
    # The redelivery read the check run with the facts and found it saying exactly this.
    assert (creates(emu), updates(emu)) == (1, 0)
    assert emu.github.recorder.count("GET", CHECK_READS) == 2

    # dave's approval does not count: the verdict stays, but the summary (the comment's
    # content) now says why, so the same check run is edited.
    _, answer = emu.review(number, "dave", "APPROVED")
    assert answer.body["state"] == "pending"
    run = only_run(emu, number)
    assert run.status == "in_progress" and "dave" in (run.summary or "")
    assert (creates(emu), updates(emu)) == (1, 1)


def test_a_verdict_that_changes_after_completion_gets_a_new_check_run(app_emu: Emulator) -> None:
    """GitHub never changes a completed check run's conclusion: when the approval is dismissed
    the pending verdict goes into a new check run, which supersedes the old one."""
    emu = app_emu
    number = emu.open_request("alice", request_yaml(project=PROD))
    emu.pr_event("opened", number)
    review_id, _ = emu.review(number, "bob", "APPROVED")
    assert emu.check_run(number).conclusion == "success"  # type: ignore[union-attr]

    emu.github.dismiss(REPO, number, review_id)
    answer = emu.deliver("pull_request_review", emu.review_payload("dismissed", number, review_id))
    assert answer.body["state"] == "pending"
    first, second = emu.check_runs(number)
    assert (first.status, first.conclusion) == ("completed", "success")
    assert (second.status, second.conclusion) == ("in_progress", None)
    assert emu.check_run(number) == second


def test_a_pr_that_is_no_request_passes_with_a_check_run_and_no_google_call(
    app_emu: Emulator,
) -> None:
    emu = app_emu
    number = emu.github.open_pr(REPO, "carol", {"README.md": "# access\n"})
    answer = emu.pr_event("opened", number)
    assert answer.body == {
        "message": f"PR #{number} touches no request: Not an access request", "state": "success"
    }
    run = only_run(emu, number)
    assert (run.status, run.conclusion, run.title) == (
        "completed", "success", "Not an access request"
    )
    assert "changes nothing under `requests/`" in (run.summary or "")
    assert emu.comments(number) == []
    assert emu.google.recorder.calls == []


# ----------------------------------------------------------------------------------------------
# Annotations


def test_an_invalid_request_file_is_annotated_on_its_lines(app_emu: Emulator) -> None:
    emu = app_emu
    text = (
        "project: payments-prod\n"
        "roles:\n"
        "  - roles/owner\n"
        "duration: 8h\n"
        'justification: "need it"\n'
    )
    path = "requests/carol/owner.yaml"
    number = emu.open_request("carol", text, name="owner.yaml")
    assert emu.pr_event("opened", number).body["state"] == "invalid"

    run = only_run(emu, number)
    assert (run.status, run.conclusion) == ("completed", "failure")
    assert run.title == "Invalid request: 3 problems"
    lines = [(a["path"], a["start_line"], a["end_line"], a["annotation_level"], a["title"])
             for a in run.annotations]
    assert lines == [
        (path, 3, 3, "failure", "basic_role"),
        (path, 4, 4, "failure", "duration_too_long"),
        (path, 5, 5, "failure", "justification_mismatch"),
    ]
    assert run.annotations[1]["message"] == "the duration 8h is longer than the maximum 4h"
    assert run.summary == summary_of_comment(emu, number)

    # Delivered again: the check run already carries these annotations; nothing is sent.
    assert emu.pr_event("synchronize", number).body["state"] == "invalid"
    assert (creates(emu), updates(emu)) == (1, 0)
    assert len(only_run(emu, number).annotations) == 3


def test_more_than_50_annotations_are_sent_50_at_a_time(app_emu: Emulator) -> None:
    emu = app_emu
    text = request_yaml() + "".join(f"k{i}: x\n" for i in range(60))  # 60 unknown keys
    number = emu.open_request("alice", text)
    assert emu.pr_event("opened", number).body["state"] == "invalid"

    run = only_run(emu, number)
    assert [a["start_line"] for a in run.annotations] == list(range(6, 66))
    assert [len(r.get("output", {}).get("annotations", [])) for r in run.requests] == [50, 10]
    assert (creates(emu), updates(emu)) == (1, 1)
    # The fingerprint of every annotation is recorded by the last request only.
    assert "notes=partial" in run.requests[0]["external_id"]
    assert run.external_id.startswith(f"jit-access/1 pr={number} notes=")
    assert "partial" not in run.external_id


def test_annotations_no_longer_true_are_replaced_with_a_new_check_run(app_emu: Emulator) -> None:
    """Annotations cannot be taken off a check run: when the policy on main changes what is
    wrong with the same file, a new check run carries only the current problems."""
    emu = app_emu
    number = emu.open_request("alice", request_yaml(duration="6h", justification="no ticket"))
    emu.pr_event("opened", number)
    assert [a["title"] for a in only_run(emu, number).annotations] == [
        "duration_too_long", "justification_mismatch",
    ]
    policy = emu.github.file_at(REPO, "policy/jitaccess.yaml")
    assert policy is not None
    looser = policy.decode().replace("max_duration: 4h", "max_duration: 8h")
    emu.github.put_file(REPO, "policy/jitaccess.yaml", looser)
    emu.pr_event("synchronize", number)
    old, new = emu.check_runs(number)
    assert [a["title"] for a in old.annotations] == ["duration_too_long", "justification_mismatch"]
    assert [a["title"] for a in new.annotations] == ["justification_mismatch"]
    assert new.title == "Invalid request: 'justification' does not have the expected form: an " \
        "incident or change number, e.g. \"INC-1234: restore the replica\""


# ----------------------------------------------------------------------------------------------
# Re-run


def test_rerun_of_an_open_pr_evaluates_it_again(app_emu: Emulator) -> None:
    """bob's approval was never delivered (GitHub does not redeliver on its own): choosing
    Re-run re-reads everything and publishes the verdict in a new check run."""
    emu = app_emu
    number = emu.open_request("alice", request_yaml(project=PROD))
    emu.pr_event("opened", number)
    emu.github.add_review(REPO, number, "bob", "APPROVED")  # its delivery is lost

    answer = emu.rerun(number)
    assert (answer.status, answer.body["state"]) == (200, "ready")
    first, second = emu.check_runs(number)
    assert first.status == "in_progress"
    assert (second.status, second.conclusion) == ("completed", "success")
    assert second.title == "Ready: approved by bob"
    assert len(emu.comments(number)) == 1  # the status comment, edited
    assert events(emu) == ["gitops.requestRole"]  # a Re-run is no new request or approval


def test_rerun_from_a_fork_finds_the_pr_by_its_check_run(app_emu: Emulator) -> None:
    """GitHub lists no pull request for a check suite whose branch is in a fork; the service's
    own check run names its PR."""
    emu = app_emu
    number = emu.open_request("alice", request_yaml(project=PROD))
    emu.pr_event("opened", number)
    emu.github.add_review(REPO, number, "bob", "APPROVED")
    run = emu.check_run(number)
    assert run is not None
    payload = emu.github.check_run_event(REPO, run.id)
    payload["check_run"]["pull_requests"] = []
    payload["check_run"]["check_suite"]["pull_requests"] = []
    assert emu.deliver("check_run", payload).body["state"] == "ready"

    suite = emu.github.check_suite_event(REPO, run.head_sha)  # "Re-run all checks"
    suite["check_suite"]["pull_requests"] = []
    assert emu.deliver("check_suite", suite).body["state"] == "ready"


def test_rerun_of_another_apps_check_is_ignored(app_emu: Emulator) -> None:
    emu = app_emu
    number = emu.open_request("alice", request_yaml())
    emu.pr_event("opened", number)
    head = emu.github.pull(REPO, number).head_sha
    other = emu.github.add_check_run(REPO, head, "jit-access", app_id=999)
    calls = len(emu.github.recorder.calls)
    answer = emu.deliver("check_run", emu.github.check_run_event(REPO, other))
    assert (answer.status, answer.body) == (200, {"message": "ignored: check_run of another App"})
    assert len(emu.github.recorder.calls) == calls


def merged_after_failed_activation(emu: Emulator) -> int:
    """A ready self-approval request, merged while IAM answers 503: the activation failed."""
    number = emu.open_request("alice", request_yaml())
    assert emu.pr_event("opened", number).body["state"] == "ready"
    emu.google.recorder.fail("POST", SET_POLICY, 503, times=100)
    answer = emu.merge(number, delivery_id="merge-1")
    assert (answer.status, answer.body["state"]) == (502, "failed"), answer.body
    emu.google.recorder.faults.clear()
    assert emu.activations(DEV) == [] and ACTIVATE not in events(emu)
    assert "choose **Re-run** on the `jit-access` check" in emu.comments(number)[-1]
    return number


def test_rerun_retries_a_failed_activation_once_and_never_twice(app_emu: Emulator) -> None:
    emu = app_emu
    number = merged_after_failed_activation(emu)
    emu.advance(timedelta(minutes=10))

    answer = emu.rerun(number)
    assert (answer.status, answer.body["state"], answer.body["written"]) == (
        200, "activated", True
    )
    [binding] = emu.activations(DEV)
    assert binding["members"] == ["user:alice@example.com"]
    assert events(emu).count(ACTIVATE) == 1
    run = emu.check_run(number)
    assert run is not None and (run.conclusion, run.title) == (
        "success", "Activated until 2026-11-29T11:10:00Z"
    )

    # Re-run again, and the merge event redelivered: the records of the first say it is done.
    again = emu.rerun(number)
    assert (again.status, again.body["state"], again.body["written"]) == (200, "activated", False)
    redelivered = emu.deliver("pull_request", emu.pr_payload("closed", number),
                              delivery_id="merge-1")
    assert redelivered.body["written"] is False
    assert emu.activations(DEV) == [binding]
    assert events(emu).count(ACTIVATE) == 1
    activation_comments = [c for c in emu.comments(number) if "jit-access:activation " in c]
    assert len(activation_comments) == 1


def test_rerun_after_max_delay_is_refused_as_a_redelivery_would_be(app_emu: Emulator) -> None:
    emu = app_emu
    number = merged_after_failed_activation(emu)
    emu.advance(timedelta(hours=2))  # activation.max_delay: 1h

    answer = emu.rerun(number)
    assert (answer.status, answer.body["state"]) == (200, "refused")
    assert emu.activations(DEV) == []
    assert events(emu)[-1] == "gitops.refuseActivation"
    run = emu.check_run(number)
    assert run is not None and run.conclusion == "failure"
    assert (run.title or "").startswith(
        "Activation refused: the merge at 2026-11-29T10:00:00Z is older"
    )


def test_with_a_token_the_verdict_stays_a_commit_status(emu: Emulator) -> None:
    number = emu.open_request("alice", request_yaml(project=PROD))
    assert emu.pr_event("opened", number).body["state"] == "pending"
    emu.review(number, "bob", "APPROVED")
    assert [s["state"] for s in emu.github.statuses(REPO, emu.github.pull(REPO, number).head_sha)
            ] == ["pending", "success"]
    assert emu.check_runs(number) == []
    assert emu.github.recorder.count("POST", CHECK_CREATES) == 0
    assert emu.github.recorder.count("GET", CHECK_READS) == 0


def test_rerun_of_an_older_commits_check_does_nothing(app_emu: Emulator) -> None:
    """After a push, the old head's check run is no longer the PR's: re-running it changes
    nothing (the new head has its own check run to re-run)."""
    emu = app_emu
    number = emu.open_request("alice", request_yaml(project=PROD))
    emu.pr_event("opened", number)
    old = emu.check_run(number)
    assert old is not None
    emu.github.push(REPO, number, {"requests/alice/request.yaml": request_yaml()})
    emu.pr_event("synchronize", number)
    before = (creates(emu), updates(emu))
    answer = emu.deliver("check_run", emu.github.check_run_event(REPO, old.id))
    assert answer.body == {"message": f"Re-run of {old.head_sha[:12]}: no open or merged PR has "
                                      "this head commit; nothing to do"}
    assert (creates(emu), updates(emu)) == before
