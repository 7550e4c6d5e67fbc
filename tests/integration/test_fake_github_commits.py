"""The fake GitHub's commit history on the wire: comparisons, PRs from existing commits, and the
hook that lands a change between two reads."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from jitaccess_sandbox.fake_github import FakeGitHub
from jitaccess_sandbox.httpserver import LocalServer
from tests.integration.test_fake_github import REPO, get


@pytest.fixture
def fake() -> FakeGitHub:
    f = FakeGitHub(prefix="/api/v3")
    f.add_repo(REPO)
    f.add_token("ghp_t", "jit-bot")
    return f


@pytest.fixture
def api(fake: FakeGitHub) -> Iterator[str]:
    with LocalServer(fake) as s:
        yield fake.api_url(s.url)


def test_a_comparison_is_three_dot_from_the_merge_base(fake: FakeGitHub, api: str) -> None:
    n = fake.open_pr(REPO, "alice", {"requests/alice/a.yaml": "x\n"})
    head = fake.pull(REPO, n).head_sha
    fake.put_file(REPO, "README.md", "main moved\n")

    r = get(f"{api}/repos/{REPO}/compare/main...{head}")

    assert r.status_code == 200
    body = r.json()
    assert [f["filename"] for f in body["files"]] == ["requests/alice/a.yaml"]
    assert (body["status"], body["ahead_by"], body["behind_by"]) == ("diverged", 1, 1)
    assert body["merge_base_commit"]["sha"] == fake.pull(REPO, n).base_sha
    assert [c["sha"] for c in body["commits"]] == [head]
    assert body["files"][0]["contents_url"].startswith(api)


def test_a_comparison_pages_commits_and_lists_files_on_page_one_only(
    fake: FakeGitHub, api: str
) -> None:
    n = fake.open_pr(REPO, "alice", {"a.txt": "1\n"})
    fake.push(REPO, n, {"b.txt": "2\n"})
    head = fake.pull(REPO, n).head_sha

    first = get(f"{api}/repos/{REPO}/compare/main...{head}", page="1", per_page="1")
    second = get(f"{api}/repos/{REPO}/compare/main...{head}", page="2", per_page="1")

    assert [f["filename"] for f in first.json()["files"]] == ["a.txt", "b.txt"]
    assert len(first.json()["commits"]) == 1 and 'rel="last"' in first.headers["Link"]
    assert second.json()["files"] == [] and len(second.json()["commits"]) == 1


@pytest.mark.parametrize("basehead", ["main..{head}", "nope...{head}", "main...{missing}"])
def test_unknown_refs_and_two_dots_are_not_found(
    fake: FakeGitHub, api: str, basehead: str
) -> None:
    n = fake.open_pr(REPO, "alice", {"a.txt": "1\n"})
    spec = basehead.format(head=fake.pull(REPO, n).head_sha, missing="e" * 40)
    r = get(f"{api}/repos/{REPO}/compare/{spec}")
    assert (r.status_code, r.json()["message"]) == (404, "Not Found")


def test_a_pr_from_an_existing_commit_into_a_branch_there_shows_the_later_changes(
    fake: FakeGitHub, api: str
) -> None:
    n = fake.open_pr(REPO, "alice", {"requests/alice/a.yaml": "v1\n"})
    first = fake.pull(REPO, n).head_sha
    second = fake.push(REPO, n, {"requests/alice/a.yaml": "v2\n"})
    fake.create_branch(REPO, "stale", first)

    other = fake.open_pr(REPO, "mallory", base="stale", head_sha=second)

    assert fake.pull(REPO, other).head_sha == second
    r = get(f"{api}/repos/{REPO}/compare/stale...{second}")
    assert [(f["filename"], f["status"]) for f in r.json()["files"]] == [
        ("requests/alice/a.yaml", "modified")
    ]
    with pytest.raises(ValueError):
        fake.open_pr(REPO, "mallory", {"x": "y"}, head_sha=second)


def test_a_hook_lands_a_push_right_after_the_first_read(fake: FakeGitHub, api: str) -> None:
    n = fake.open_pr(REPO, "alice", {"a.txt": "1\n"})
    before = fake.pull(REPO, n).head_sha
    pushed: list[str] = []
    fake.after("GET", rf"/pulls/{n}$", lambda: pushed.append(fake.push(REPO, n, {"b": "2"})))

    read = get(f"{api}/repos/{REPO}/pulls/{n}").json()["head"]["sha"]
    again = get(f"{api}/repos/{REPO}/pulls/{n}").json()["head"]["sha"]

    assert read == before  # the answer was computed before the push …
    assert again == pushed[0] != before  # … which every later read sees, once (times=1)
    assert get(f"{api}/repos/{REPO}/pulls/{n}").json()["head"]["sha"] == pushed[0]
