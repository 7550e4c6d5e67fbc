"""The GitHub adapter's comparison and long listings, through real PyGithub against the fake.

A comparison reads the files of one exact head commit; comments are read by need (up to the
service's status comment, or since a moment); long lists of comments and reviews are fetched
page after page at once, and a list longer than the service reads says so instead of being
judged on part of it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from jitaccess_sandbox.fake_github import FakeGitHub
from jitaccess_sandbox.httpserver import LocalServer
from tests.integration.test_github_adapter import (
    BOT,
    MARKER,
    REPO,
    REQUEST,
    TOKEN,
    Mount,
    adapter,
    calls,
)
from webhook.adapters.github_api import COMPARE_MAX_FILES, GitHubRepo
from webhook.core.errors import GitHubError, ListTooLongError
from webhook.core.model import ChangedFile, ChangedFiles

T0 = datetime(2040, 1, 1, 12, 0, tzinfo=UTC)
#: Every page after the first (`page=2` and on); page 1 is asked for without `page=`.
LATER_PAGES = r"(^|&)page=([2-9]|\d\d+)(&|$)"


@pytest.fixture(scope="module")
def mounted() -> Iterator[tuple[Mount, str]]:
    mount = Mount()
    with LocalServer(mount) as s:
        yield mount, s.url


@pytest.fixture
def fake(mounted: tuple[Mount, str]) -> Iterator[FakeGitHub]:
    f = FakeGitHub()
    f.add_repo(REPO)
    f.add_token(TOKEN, BOT)
    f.add_user("bob")
    mounted[0].app = f
    yield f
    mounted[0].app = None
    assert f.recorder.unexpected == []


@pytest.fixture
def gh(fake: FakeGitHub, mounted: tuple[Mount, str]) -> Iterator[GitHubRepo]:
    repo = adapter(fake.api_url(mounted[1]))
    yield repo
    repo.close()


# -- comparisons --------------------------------------------------------------------------------


def test_compare_lists_the_files_of_the_exact_head_whatever_is_pushed(
    fake: FakeGitHub, gh: GitHubRepo
) -> None:
    n = fake.open_pr(REPO, "alice", {"requests/alice/a.yaml": REQUEST})
    first = fake.pull(REPO, n).head_sha
    second = fake.push(REPO, n, {"webhook/app.py": "print('hi')\n"})
    fake.recorder.clear()

    assert gh.compare("main", first) == ChangedFiles(
        (ChangedFile("requests/alice/a.yaml", "added"),)
    )
    assert gh.compare("main", second) == ChangedFiles((
        ChangedFile("requests/alice/a.yaml", "added"), ChangedFile("webhook/app.py", "added"),
    ))
    # One call each, one commit per page: only the files (which come with page 1) are needed.
    assert calls(fake) == [
        f"GET /repos/{REPO}/compare/main...{first}?page=1&per_page=1",
        f"GET /repos/{REPO}/compare/main...{second}?page=1&per_page=1",
    ]


def test_compare_starts_at_the_merge_base_when_the_base_branch_moved(
    fake: FakeGitHub, gh: GitHubRepo
) -> None:
    fake.put_file(REPO, "requests/bob/old.yaml", REQUEST)
    n = fake.open_pr(REPO, "alice", {"requests/alice/a.yaml": REQUEST},
                     modified={"requests/bob/old.yaml": REQUEST + "# more\n"})
    fake.put_file(REPO, "README.md", "moved on\n")  # main moves after the PR was opened
    fake.remove_file(REPO, "requests/bob/old.yaml")

    files = gh.compare("main", fake.pull(REPO, n).head_sha)

    # Three dots: what the PR changes since it left main, not main's later changes undone.
    assert files == ChangedFiles((
        ChangedFile("requests/alice/a.yaml", "added"),
        ChangedFile("requests/bob/old.yaml", "modified"),
    ))


def test_compare_reports_renames_and_removals(fake: FakeGitHub, gh: GitHubRepo) -> None:
    fake.put_file(REPO, "requests/alice/old.yaml", REQUEST)
    fake.put_file(REPO, "requests/bob/x.yaml", REQUEST + "# bob\n")
    n = fake.open_pr(REPO, "alice", renamed={"requests/alice/old.yaml": "requests/alice/new.yaml"},
                     removed=["requests/bob/x.yaml"])

    files = gh.compare("main", fake.pull(REPO, n).head_sha)

    assert files.complete
    assert set(files.files) == {
        ChangedFile("requests/alice/new.yaml", "renamed", "requests/alice/old.yaml"),
        ChangedFile("requests/bob/x.yaml", "removed"),
    }


@pytest.mark.parametrize(("count", "complete"), [(COMPARE_MAX_FILES - 1, True),
                                                 (COMPARE_MAX_FILES, False),
                                                 (COMPARE_MAX_FILES + 50, False)])
def test_a_comparison_listing_300_files_may_be_cut(
    fake: FakeGitHub, gh: GitHubRepo, count: int, complete: bool
) -> None:
    n = fake.open_pr(REPO, "alice", {f"docs/{i:04}.md": "x\n" for i in range(count)})

    files = gh.compare("main", fake.pull(REPO, n).head_sha)

    assert len(files.files) == min(count, COMPARE_MAX_FILES)
    assert files.complete is complete


def test_compare_with_an_unknown_commit_is_a_github_error(gh: GitHubRepo) -> None:
    with pytest.raises(GitHubError) as err:
        gh.compare("main", "d" * 40)
    assert str(err.value) == f"GitHub: comparing main...{'d' * 12}: not found (HTTP 404)"


# -- comments ---------------------------------------------------------------------------------


def _flood(fake: FakeGitHub, n: int, count: int, login: str = "mallory") -> None:
    for i in range(count):
        fake.add_comment(REPO, n, login, f"+1 ({i})")


def test_comments_until_the_status_comment_read_one_page_when_it_is_there(
    fake: FakeGitHub, gh: GitHubRepo
) -> None:
    n = fake.open_pr(REPO, "alice", {"requests/alice/a.yaml": REQUEST})
    gh.self_login()
    mine = fake.add_comment(REPO, n, BOT, f"{MARKER}\nPending")
    _flood(fake, n, 2999)
    fake.recorder.clear()

    listed = gh.comments(n, until=MARKER)

    assert len(listed) == 100 and listed[0].id == mine
    assert calls(fake) == [f"GET /repos/{REPO}/issues/{n}/comments?per_page=100"]
    # Editing it needs no more listing than that.
    fake.recorder.clear()
    assert gh.upsert_comment(n, MARKER, f"{MARKER}\nReady") == mine
    assert calls(fake) == [
        f"GET /repos/{REPO}/issues/{n}/comments?per_page=100",
        f"PATCH /repos/{REPO}/issues/comments/{mine}",
    ]


def test_comments_without_the_status_comment_read_every_later_page_at_once(
    fake: FakeGitHub, gh: GitHubRepo
) -> None:
    n = fake.open_pr(REPO, "alice", {"requests/alice/a.yaml": REQUEST})
    gh.self_login()
    _flood(fake, n, 250)
    # Quoting the marker is no status comment of the service's.
    fake.add_comment(REPO, n, "mallory", f"{MARKER}\nforged")
    fake.recorder.clear()
    together = fake.recorder.gather("GET", rf"/issues/{n}/comments$", 2, query=LATER_PAGES)

    listed = gh.comments(n, until=MARKER)

    assert len(listed) == 251
    assert together.met and not together.broken  # pages 2 and 3 were asked for at once
    assert sorted(calls(fake)) == [
        f"GET /repos/{REPO}/issues/{n}/comments?page=2&per_page=100",
        f"GET /repos/{REPO}/issues/{n}/comments?page=3&per_page=100",
        f"GET /repos/{REPO}/issues/{n}/comments?per_page=100",
    ]


def test_comments_since_list_only_those_changed_at_or_after(
    fake: FakeGitHub, gh: GitHubRepo
) -> None:
    n = fake.open_pr(REPO, "alice", {"requests/alice/a.yaml": REQUEST})
    now = [T0]
    fake.clock = lambda: now[0]
    _flood(fake, n, 120)
    now[0] = T0 + timedelta(hours=1)
    late = fake.add_comment(REPO, n, BOT, "<!-- jit-access:activation abc -->\nActivated")
    fake.recorder.clear()

    listed = gh.comments(n, since=T0 + timedelta(minutes=30))

    assert [c.id for c in listed] == [late]
    assert calls(fake) == [
        f"GET /repos/{REPO}/issues/{n}/comments?per_page=100&since=2040-01-01T12%3A30%3A00Z"
    ]


def test_more_comments_than_read_are_an_error_unless_looking_for_a_marker(
    fake: FakeGitHub, gh: GitHubRepo
) -> None:
    n = fake.open_pr(REPO, "alice", {"requests/alice/a.yaml": REQUEST})
    _flood(fake, n, 301)
    gh.max_listed = 300

    # Looking for the status comment: the first 300 are all there is to look at (not found
    # there, it is taken as absent: the worst that follows is a second status comment).
    assert len(gh.comments(n, until=MARKER)) == 300
    # Every comment was asked for: part of them is no answer.
    with pytest.raises(ListTooLongError) as err:
        gh.comments(n)
    assert str(err.value) == (
        f"GitHub: listing the comments of pull request #{n}: more than 300 items"
    )


# -- reviews ----------------------------------------------------------------------------------


def test_review_pages_are_read_at_once(fake: FakeGitHub, gh: GitHubRepo) -> None:
    n = fake.open_pr(REPO, "alice", {"requests/alice/a.yaml": REQUEST})
    for i in range(349):
        fake.add_review(REPO, n, "mallory", "COMMENTED", body=f"{i}")
    fake.add_review(REPO, n, "bob", "APPROVED")
    fake.recorder.clear()
    together = fake.recorder.gather("GET", rf"/pulls/{n}/reviews$", 3, query=LATER_PAGES)

    reviews = gh.reviews(n)

    assert len(reviews) == 350 and reviews[-1].login == "bob"
    assert together.met and not together.broken
    assert fake.recorder.count("GET", rf"/pulls/{n}/reviews$") == 4


def test_more_reviews_than_read_are_an_error_never_a_partial_list(
    fake: FakeGitHub, gh: GitHubRepo
) -> None:
    n = fake.open_pr(REPO, "alice", {"requests/alice/a.yaml": REQUEST})
    for _ in range(201):
        fake.add_review(REPO, n, "mallory", "COMMENTED")
    gh.max_listed = 200

    with pytest.raises(ListTooLongError) as err:
        gh.reviews(n)
    assert str(err.value) == (
        f"GitHub: listing the reviews of pull request #{n}: more than 200 items"
    )
    assert fake.recorder.count("GET", rf"/pulls/{n}/reviews$") == 2  # no page past the cap


def test_listings_and_comparisons_under_an_enterprise_prefix() -> None:
    enterprise = FakeGitHub(prefix="/api/v3")
    enterprise.add_repo(REPO)
    enterprise.add_token(TOKEN, BOT)
    n = enterprise.open_pr(REPO, "alice", {"requests/alice/a.yaml": REQUEST})
    _flood(enterprise, n, 150)
    for _ in range(150):
        enterprise.add_review(REPO, n, "mallory", "COMMENTED")
    with LocalServer(enterprise) as s:
        repo = adapter(enterprise.api_url(s.url))
        try:
            head = enterprise.pull(REPO, n).head_sha
            assert repo.compare("main", head).files == (
                ChangedFile("requests/alice/a.yaml", "added"),
            )
            assert len(repo.comments(n)) == 150
            assert len(repo.reviews(n)) == 150
        finally:
            repo.close()
    assert all(c.path.startswith("/api/v3/") for c in enterprise.recorder.calls)
    assert len(enterprise.recorder.calls) == 5
    assert enterprise.recorder.unexpected == []


# -- faults -----------------------------------------------------------------------------------


def test_a_failed_later_page_fails_the_listing(fake: FakeGitHub, gh: GitHubRepo) -> None:
    n = fake.open_pr(REPO, "alice", {"requests/alice/a.yaml": REQUEST})
    _flood(fake, n, 350)
    path = rf"/issues/{n}/comments$"
    # Page 1 answers; from then on every page fails (each after its two bounded retries).
    fake.after("GET", path, lambda: fake.recorder.fail(
        "GET", path, 502, times=-1, body={"message": "Server Error"}))
    fake.recorder.clear()

    with pytest.raises(GitHubError) as err:
        gh.comments(n)

    assert str(err.value) == (
        f"GitHub: listing the comments of pull request #{n}: HTTP 502: Server Error"
    )
    assert fake.recorder.count("GET", path) == 1 + 3 * 3  # pages 2-4, three tries each


def test_a_malformed_listing_is_a_github_error(fake: FakeGitHub, gh: GitHubRepo) -> None:
    n = fake.open_pr(REPO, "alice", {"requests/alice/a.yaml": REQUEST})
    fake.recorder.fail("GET", rf"/issues/{n}/comments$", 200, body=["not", "comments"])
    with pytest.raises(GitHubError, match=rf"comments of pull request #{n}: unexpected answer"):
        gh.comments(n, until=MARKER)
    fake.recorder.fail("GET", rf"/pulls/{n}/reviews$", 200, body={"reviews": []})
    with pytest.raises(GitHubError, match=rf"reviews of pull request #{n}: unexpected answer"):
        gh.reviews(n)


def test_a_last_link_on_another_host_only_gives_a_page_number(
    fake: FakeGitHub, gh: GitHubRepo
) -> None:
    """The later pages are asked for at the service's own GitHub, never at a host an answer
    names."""
    n = fake.open_pr(REPO, "alice", {"requests/alice/a.yaml": REQUEST})
    _flood(fake, n, 150)
    fake.recorder.fail(
        "GET", rf"/issues/{n}/comments$", 200,
        body=[{"id": 1, "user": {"login": "mallory"}, "body": "hi"}],
        headers={"Link": '<https://evil.example.com/x?page=2>; rel="last"'},
    )

    listed = gh.comments(n)

    assert [c.id for c in listed][:1] == [1] and len(listed) == 51  # page 2 of the real list
    assert fake.recorder.count("GET", rf"/issues/{n}/comments$") == 2
