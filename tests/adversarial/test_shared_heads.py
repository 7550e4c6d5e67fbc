"""A verdict belongs to a commit: the files judged are those of the head that receives it, and no
other PR sharing that head can change it.

Through the real service: deliveries over HTTP into the app, GitHub's side observed at the fake.
"""

from __future__ import annotations

from jitaccess_sandbox.emulator import REPO, Emulator
from tests.adversarial.conftest import (
    assert_no_grant,
    merge_and_assert_refused,
    open_files,
    request_yaml,
    status_comment_of,
    status_of,
)

REQUEST = request_yaml()
BACKDOOR = {"webhook/app.py": "print('pwned')\n"}
UNRELATED = "a request PR must change nothing but its request file"
# The PR object and the file list of PR 1: a listing of its files, or the PR itself.
PR_OR_FILES = rf"^/repos/{REPO}/pulls/1(/files)?$"


def head(emu: Emulator, number: int) -> str:
    return emu.github.pull(REPO, number).head_sha


# -- one consistent view ---------------------------------------------------------------------------


def test_a_push_between_two_reads_cannot_pair_one_commits_status_with_anothers_files(
    emu: Emulator,
) -> None:
    """alice's request commit is clean; a push adding code lands right after the service's
    first read of the PR (or of its files). Whatever it read first, the verdict must be about
    one commit: success on the clean commit it read, nothing on the pushed one (its own
    `synchronize` judges it)."""
    number = emu.open_request("alice", REQUEST)
    clean = head(emu, number)
    pushed: list[str] = []
    emu.github.after(
        "GET", PR_OR_FILES, lambda: pushed.append(emu.github.push(REPO, number, BACKDOOR))
    )

    answer = emu.pr_event("opened", number)

    assert answer.status == 200, answer.body
    [dirty] = pushed
    assert emu.github.latest_status(REPO, clean) is not None
    assert emu.github.latest_status(REPO, clean)["state"] == "success"  # type: ignore[index]
    assert emu.github.latest_status(REPO, dirty) is None
    # The pushed commit is judged on its own delivery, by its own files.
    assert emu.pr_event("synchronize", number).status == 200
    dirty_status = emu.github.latest_status(REPO, dirty)
    assert dirty_status is not None and dirty_status["state"] == "failure"
    assert UNRELATED in dirty_status["description"]
    merge_and_assert_refused(emu, number, UNRELATED)


def test_the_request_file_is_read_at_the_head_judged(emu: Emulator) -> None:
    """A push changing the request file after the comparison: the verdict and the request
    table are still those of the commit compared."""
    number = emu.open_request("alice", REQUEST)
    path = "requests/alice/request.yaml"
    emu.github.after(
        "GET", rf"^/repos/{REPO}/compare/",
        lambda: emu.github.push(REPO, number, {path: request_yaml(project="payments-prod")}),
    )
    judged = head(emu, number)

    assert emu.pr_event("opened", number).body["state"] == "ready"

    assert emu.github.latest_status(REPO, judged)["state"] == "success"  # type: ignore[index]
    assert "payments-dev" in status_comment_of(emu, number)
    assert emu.github.recorder.count("GET", rf"/contents/{path}$") == 1
    [read] = [c for c in emu.github.recorder.calls if c.path.endswith(f"/contents/{path}")]
    assert read.query == f"ref={judged}"


def test_more_files_than_github_compares_are_a_failing_shape_never_success(
    emu: Emulator,
) -> None:
    """GitHub lists the first 300 files of a comparison: here they are all documentation, and
    the request file comes after them. Judged on that cut list the PR would be no request at
    all; it is a request that cannot be checked."""
    files: dict[str, str | bytes] = {f"docs/{i:03}.md": "x\n" for i in range(300)}
    files["requests/alice/x.yaml"] = REQUEST
    number = emu.github.open_pr(REPO, "alice", files)

    answer = emu.pr_event("opened", number)

    assert answer.status == 200 and answer.body["state"] == "invalid", answer.body
    assert emu.status(number) is None  # it cannot be known to be alice's own request
    assert "the PR changes more files than GitHub lists in one comparison (at least 300)" in (
        status_comment_of(emu, number)
    )
    assert_no_grant(emu)


# -- shared head commits ---------------------------------------------------------------------------


def alice_ready(emu: Emulator) -> tuple[int, str]:
    """alice's request PR, ready, and its head commit."""
    number = open_files(emu, "alice", {"requests/alice/x.yaml": REQUEST})
    assert status_of(emu, number)["state"] == "success"
    return number, head(emu, number)


def assert_owner_verdict_stands(emu: Emulator, owner: int, sha: str) -> None:
    status = emu.github.latest_status(REPO, sha)
    assert status is not None and status["state"] == "success"
    assert status["target_url"].endswith(f"/pull/{owner}")
    assert len(emu.github.statuses(REPO, sha)) == 1  # nobody else wrote on that commit


def test_a_pr_into_a_branch_where_the_owners_request_looks_edited_sets_no_status(
    emu: Emulator,
) -> None:
    """alice pushed her request twice; mallory points a branch at the first commit and opens a
    PR from alice's head into it. Against that branch the diff edits alice's request: that is
    mallory's PR's verdict, in its comment, not the commit's."""
    number = emu.open_request("alice", request_yaml(duration="2h"), name="x.yaml")
    first = head(emu, number)
    sha = emu.github.push(REPO, number, {"requests/alice/x.yaml": REQUEST})
    assert emu.pr_event("synchronize", number).body["state"] == "ready"
    emu.github.create_branch(REPO, "stale", first)

    other = emu.github.open_pr(REPO, "mallory", base="stale", head_sha=sha)
    assert emu.pr_event("opened", other).body["state"] == "invalid"

    assert_owner_verdict_stands(emu, number, sha)
    comment = status_comment_of(emu, other)
    assert "requests/alice/x.yaml: existing requests cannot be edited" in comment
    assert "a request PR must target main, not 'stale'" in comment


def test_a_pr_into_a_branch_where_a_request_looks_removed_sets_no_status(emu: Emulator) -> None:
    number = emu.open_request("alice", REQUEST, name="x.yaml")
    emu.github.push(REPO, number, {"requests/alice/y.yaml": REQUEST})
    with_both = head(emu, number)
    sha = emu.github.push(REPO, number, removed=["requests/alice/y.yaml"])
    assert emu.pr_event("synchronize", number).body["state"] == "ready"
    emu.github.create_branch(REPO, "both", with_both)

    other = emu.github.open_pr(REPO, "mallory", base="both", head_sha=sha)
    assert emu.pr_event("opened", other).body["state"] == "invalid"

    assert_owner_verdict_stands(emu, number, sha)
    assert "requests/alice/y.yaml: a request PR must not delete requests" in (
        status_comment_of(emu, other)
    )


def test_the_owners_own_second_pr_into_another_branch_sets_no_status(emu: Emulator) -> None:
    number, sha = alice_ready(emu)

    other = emu.github.open_pr(REPO, "alice", base="release", head_sha=sha)
    assert emu.pr_event("opened", other).body["state"] == "invalid"

    assert_owner_verdict_stands(emu, number, sha)
    assert "a request PR must target main, not 'release'" in status_comment_of(emu, other)


def test_a_pr_in_the_wrong_directory_sets_no_status_even_with_a_broken_policy(
    emu: Emulator,
) -> None:
    """With the policy broken, the decision is an error about the policy and no longer lists
    the shape's problems: the rule is the diff's, not the decision's."""
    number, sha = alice_ready(emu)
    emu.github.put_file(REPO, "policy/jitaccess.yaml", "scope: [\n")

    other = emu.github.open_pr(REPO, "mallory", head_sha=sha)
    assert emu.pr_event("opened", other).body["state"] == "error"

    assert_owner_verdict_stands(emu, number, sha)


def test_a_bot_sharing_the_head_sets_no_status(emu: Emulator) -> None:
    """An author that is no GitHub user login (an App's `name[bot]`) owns no directory."""
    number, sha = alice_ready(emu)

    other = emu.github.open_pr(REPO, "renovate[bot]", head_sha=sha)
    assert emu.pr_event("opened", other).body["state"] == "invalid"

    assert_owner_verdict_stands(emu, number, sha)
