"""The check-run rules (`core.checks`) and the merge-group rules (`core.merge_queue`): plain
values in, plans and verdicts out."""

from __future__ import annotations

import pytest

from webhook.core.checks import (
    ANNOTATIONS_PER_REQUEST,
    MAX_ANNOTATIONS,
    SUMMARY_MAX,
    Annotation,
    CheckRun,
    CreateRun,
    KeepRun,
    UpdateRun,
    WantedCheckRun,
    annotations_for,
    check_state,
    check_summary,
    external_id,
    fingerprint,
    notes_of,
    plan_check_run,
    pr_hint,
    wanted_check_run,
)
from webhook.core.merge import StatusUpdate, verdict_after_merge
from webhook.core.merge_queue import (
    GroupFile,
    GroupRequests,
    RequestInGroup,
    directory_owner,
    group_requests,
    group_verdict,
    queued_pr,
)
from webhook.core.model import Decision, Problem, PullRequestRef, State
from webhook.core.problems import ProblemCode

URL = "https://github.com/acme/access/pull/7"
PR = PullRequestRef("acme/access", 7, "alice", "a" * 40, URL)
NOTE = Annotation("requests/alice/x.yaml", 3, "basic role", "basic_role")


def run(**changes: object) -> CheckRun:
    base = wanted_check_run(StatusUpdate("pending", "Waiting", URL, summary="s"), pr=7)
    fields = {
        "id": 1, "status": base.status, "conclusion": base.conclusion, "title": base.title,
        "summary": base.summary, "details_url": base.details_url,
        "external_id": base.external_id,
    }
    fields.update(changes)
    return CheckRun(**fields)  # type: ignore[arg-type]


def wanted(state: str = "pending", description: str = "Waiting", summary: str = "s",
           annotations: tuple[Annotation, ...] = ()) -> WantedCheckRun:
    return wanted_check_run(
        StatusUpdate(state, description, URL, summary=summary, annotations=annotations), pr=7
    )


@pytest.mark.parametrize(("state", "expected"), [
    ("pending", ("in_progress", None)), ("success", ("completed", "success")),
    ("failure", ("completed", "failure")), ("error", ("completed", "failure")),
])
def test_states_map_to_check_run_status_and_conclusion(
    state: str, expected: tuple[str, str | None]
) -> None:
    assert check_state(state) == expected


def test_an_equal_check_run_is_kept() -> None:
    assert plan_check_run(wanted(), run()) == KeepRun()


def test_no_check_run_or_a_rerun_creates_one() -> None:
    assert plan_check_run(wanted(), None) == CreateRun(((),))
    assert plan_check_run(wanted(), run(), fresh=True) == CreateRun(((),))


def test_a_pending_check_run_is_updated_in_place() -> None:
    plan = plan_check_run(wanted("success", "Ready"), run())
    assert plan == UpdateRun(1, ((),))
    plan = plan_check_run(wanted(summary="other"), run())
    assert plan == UpdateRun(1, ((),))


def test_a_completed_check_run_keeps_its_conclusion_so_a_change_makes_a_new_one() -> None:
    done = run(status="completed", conclusion="success", title="Ready")
    assert plan_check_run(wanted("pending"), done) == CreateRun(((),))
    assert plan_check_run(wanted("failure", "Ready"), done) == CreateRun(((),))
    # The same conclusion with another text: edited in place.
    assert plan_check_run(wanted("success", "Ready", summary="new"), done) == UpdateRun(1, ((),))


def test_annotations_are_added_in_place_only_to_a_check_run_without_any() -> None:
    bare = run(status="completed", conclusion="failure", title="Bad")
    want = wanted("failure", "Bad", annotations=(NOTE,))
    assert plan_check_run(want, bare) == UpdateRun(1, ((NOTE,),))
    held = run(status="completed", conclusion="failure", title="Bad",
               external_id=external_id(7, "0123456789abcdef"))
    assert plan_check_run(want, held) == CreateRun(((NOTE,),))


def test_annotations_go_50_at_a_time_and_at_most_max() -> None:
    many = tuple(Annotation("requests/a/b.yaml", n, "m") for n in range(1, 400))
    want = wanted("failure", "Bad", annotations=many)
    plan = plan_check_run(want, None)
    assert isinstance(plan, CreateRun)
    assert [len(b) for b in plan.batches] == [ANNOTATIONS_PER_REQUEST] * (
        MAX_ANNOTATIONS // ANNOTATIONS_PER_REQUEST
    )


def test_the_external_id_names_the_pr_and_the_annotations() -> None:
    text = external_id(7, fingerprint((NOTE,)))
    assert pr_hint(text) == 7 and notes_of(text) == fingerprint((NOTE,)) != ""
    assert external_id(None, "") == "jit-access/1"
    assert pr_hint("jit-access/1") is None and pr_hint("other pr=7") is None
    assert pr_hint(None) is None and notes_of(None) == ""
    assert fingerprint(()) == "" and fingerprint((NOTE,)) != fingerprint((NOTE, NOTE))


def test_the_summary_drops_the_marker_and_fits_githubs_limit() -> None:
    assert check_summary("<!-- jit-access:status -->\n### hi\n\ntext\n") == "### hi\n\ntext"
    long = "\n".join(f"- line {n} " + "x" * 100 for n in range(1000))
    cut = check_summary(long)
    assert len(cut) <= SUMMARY_MAX and cut.startswith("- line 0 ")


def test_only_request_file_problems_with_a_line_are_annotations() -> None:
    decision = Decision(State.INVALID, PR, problems=(
        Problem(ProblemCode.BASIC_ROLE, "basic", line=3, path="requests/alice/x.yaml"),
        Problem(ProblemCode.EMPTY, "no line", path="requests/alice/x.yaml"),
        Problem(ProblemCode.OUT_OF_RANGE, "policy", line=2, path="policy/jitaccess.yaml"),
        Problem(ProblemCode.UNRELATED_CHANGE, "shape"),
    ))
    assert annotations_for(decision) == (
        Annotation("requests/alice/x.yaml", 3, "basic", "basic_role"),
    )


def test_a_rerun_of_a_merged_pr_leaves_the_outcome_on_its_head() -> None:
    ok = verdict_after_merge("activated", "PR #7: activated until 2026-11-29T11:00:00Z",
                             target_url=URL)
    assert ok is not None and (ok.state, ok.description) == (
        "success", "Activated until 2026-11-29T11:00:00Z"
    )
    failed = verdict_after_merge("failed", "PR #7: activation failed: IAM 503", target_url=URL)
    assert failed is not None and (failed.state, failed.description) == (
        "failure", "Activation failed: IAM 503; choose Re-run to retry"
    )
    refused = verdict_after_merge("refused", "PR #7: activation refused: late", target_url=URL)
    assert refused is not None and refused.state == "failure"
    assert verdict_after_merge(None, "PR #7 touches no request", target_url=URL) is None


# ----------------------------------------------------------------------------------------------
# Merge groups


def test_the_queued_pr_is_read_from_the_head_ref() -> None:
    sha = "929f8209d40f77f4abc622a499c93a83babdbe64"
    assert queued_pr(f"refs/heads/gh-readonly-queue/main/pr-104-{sha}") == 104
    assert queued_pr(f"refs/heads/gh-readonly-queue/release/v2/pr-9-{sha}") == 9
    assert queued_pr(f"refs/heads/feature/pr-104-{sha}") is None
    assert queued_pr("refs/heads/gh-readonly-queue/main/pr-0-" + sha) is None
    assert queued_pr(None) is None


def test_a_group_adds_requests_deletes_revocations_and_fails_on_edits() -> None:
    files = [
        GroupFile("requests/alice/a.yaml", "added", "1" * 40),
        GroupFile("requests/bob/old.yaml", "removed"),
        GroupFile("README.md", "modified", "2" * 40),
        GroupFile("requests/README.md", "modified", "3" * 40),
    ]
    assert group_requests(files) == GroupRequests((files[0],))
    edited = group_requests([GroupFile("requests/bob/old.yaml", "modified", "4" * 40)])
    assert edited.problems == (
        "requests/bob/old.yaml: the merge group changes an existing request",
    )
    moved = group_requests(
        [GroupFile("notes/x.yaml", "renamed", "5" * 40, previous_filename="requests/a/x.yaml")]
    )
    assert moved.problems == ("notes/x.yaml: the merge group changes an existing request",)
    assert directory_owner("requests/alice/a.yaml") == "alice"
    assert directory_owner("requests/a.yaml") is None


def test_a_group_too_large_to_compare_fails() -> None:
    files = [GroupFile(f"src/{n}.py", "added", "1" * 40) for n in range(300)]
    verdict = group_verdict(group_requests(files), ())
    assert verdict.state == "failure"
    assert verdict.description.startswith("Merge group: the merge group changes 300 files")


def test_a_group_verdict_names_the_first_pr_not_ready() -> None:
    requests = group_requests([
        GroupFile("requests/alice/a.yaml", "added", "1" * 40),
        GroupFile("requests/bob/b.yaml", "added", "2" * 40),
    ])
    found = [
        RequestInGroup("requests/alice/a.yaml", 3, True, "Ready: self-approval for 1 role"),
        RequestInGroup("requests/bob/b.yaml", None, False, "no open pull request of its owner"),
    ]
    verdict = group_verdict(requests, found)
    assert (verdict.state, verdict.description) == (
        "failure", "Merge group: requests/bob/b.yaml is not ready: no open pull request of its "
        "owner",
    )
    assert group_verdict(requests, [found[0], RequestInGroup(
        "requests/bob/b.yaml", 4, True, "Ready"
    )]).description == "Merge group: all 2 requests are ready"
    assert group_verdict(GroupRequests(()), ()).description == (
        "No access request in this merge group"
    )
