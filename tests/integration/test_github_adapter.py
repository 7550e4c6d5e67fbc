"""The GitHub adapter driven through real PyGithub, over HTTP, against the fake GitHub server."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from jitaccess_sandbox.fake_github import FakeGitHub, generate_app_key
from jitaccess_sandbox.httpserver import LocalServer
from webhook.adapters.github_api import MAX_FILE_BYTES, FileTooLargeError, GitHubAuth, GitHubRepo
from webhook.core.errors import GitHubError
from webhook.core.model import ChangedFile, CommitStatus, PullInfo, Review, ReviewState
from webhook.core.names import STATUS_DESCRIPTION_MAX
from webhook.core.render import TRUNCATED_NOTICE

REPO = "acme/access"
TOKEN = "ghp_testtoken"
BOT = "jit-bot"
MARKER = "<!-- jit-access:status -->"
JAN1 = datetime(2040, 1, 1, 12, 0, 0, tzinfo=UTC)
REQUEST = "project: payments-prod\nroles: [roles/cloudsql.admin]\nduration: 2h\n"


class Mount:
    """A WSGI app forwarding to the current test's fake (one server for the module: stopping a
    server takes half a second)."""

    app: FakeGitHub | None = None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        assert self.app is not None
        return self.app(environ, start_response)


@pytest.fixture(scope="module")
def mounted() -> Iterator[tuple[Mount, str]]:
    mount = Mount()
    with LocalServer(mount) as s:
        yield mount, s.url


@pytest.fixture
def fake(mounted: tuple[Mount, str]) -> Iterator[FakeGitHub]:
    f = FakeGitHub()
    f.add_repo(REPO)
    f.put_file(REPO, "policy/jitaccess.yaml", "scope: organizations/1\n")
    f.add_token(TOKEN, BOT)
    for login in ("alice", "bob", "carol"):
        f.add_user(login)
    mounted[0].app = f
    yield f
    mounted[0].app = None
    assert f.recorder.unexpected == []


@pytest.fixture
def server(fake: FakeGitHub, mounted: tuple[Mount, str]) -> str:
    return fake.api_url(mounted[1])


def adapter(api_url: str, **kw: object) -> GitHubRepo:
    """A token-authenticated adapter (tests close it)."""
    return GitHubRepo(GitHubAuth(repository=REPO, api_url=api_url, token=TOKEN, **kw))  # type: ignore[arg-type]


@pytest.fixture
def gh(server: str) -> Iterator[GitHubRepo]:
    repo = adapter(server)
    yield repo
    repo.close()


def calls(fake: FakeGitHub) -> list[str]:
    """`METHOD path?query` of every request, in order."""
    return [
        f"{c.method} {c.path}" + (f"?{c.query}" if c.query else "") for c in fake.recorder.calls
    ]


# -- reads ----------------------------------------------------------------------------------------


def test_pull_is_one_call_and_maps_every_field(fake: FakeGitHub, gh: GitHubRepo) -> None:
    n = fake.open_pr(REPO, "alice", {"requests/alice/a.yaml": REQUEST}, title="Cloud SQL")
    fake.request_review(REPO, n, "bob")
    head = fake.pull(REPO, n).head_sha
    fake.recorder.clear()

    info = gh.pull(n)

    assert info == PullInfo(
        number=n,
        author="alice",
        head_sha=head,
        base_ref="main",
        state="open",
        merged=False,
        merged_at=None,
        html_url=f"{gh.settings.base_url}/{REPO}/pull/{n}",
        title="Cloud SQL",
        default_branch="main",
        requested_reviewers=("bob",),
        author_id=fake.users["alice"].id,  # `user.id`: logins can be renamed, ids cannot
    )
    assert calls(fake) == [f"GET /repos/{REPO}/pulls/{n}"]
    assert fake.recorder.calls[0].headers["Authorization"] == f"token {TOKEN}"


def test_merged_pull_has_utc_merge_time(fake: FakeGitHub, gh: GitHubRepo) -> None:
    n = fake.open_pr(REPO, "alice", {"requests/alice/a.yaml": REQUEST})
    fake.merge(REPO, n, merged_at=JAN1, merged_by="carol")

    info = gh.pull(n)

    assert (info.state, info.merged, info.merged_at) == ("closed", True, JAN1)
    assert info.merged_at is not None and info.merged_at.utcoffset() == timedelta(0)


def test_files_reads_every_page(fake: FakeGitHub, gh: GitHubRepo) -> None:
    fake.put_file(REPO, "README.md", "old\n")
    fake.put_file(REPO, "old.txt", "same\n")
    fake.put_file(REPO, "gone.txt", "bye\n")
    added = {f"requests/alice/{i:03}.yaml": REQUEST for i in range(150)}
    n = fake.open_pr(
        REPO, "alice", added, modified={"README.md": "new\n"}, removed=["gone.txt"],
        renamed={"old.txt": "new.txt"},
    )
    fake.recorder.clear()

    files = gh.files(n)

    assert len(files) == 153
    assert files[0] == ChangedFile("README.md", "modified")
    assert ChangedFile("gone.txt", "removed") in files
    assert ChangedFile("new.txt", "renamed", previous_filename="old.txt") in files
    assert [f.filename for f in files if f.status == "added"] == sorted(added)
    assert calls(fake) == [
        f"GET /repos/{REPO}/pulls/{n}/files?per_page=100",
        f"GET /repos/{REPO}/pulls/{n}/files?page=2&per_page=100",
    ]


def test_small_pages_follow_link_headers(fake: FakeGitHub, server: str) -> None:
    n = fake.open_pr(REPO, "alice", {f"requests/alice/{i}.yaml": "x" for i in range(25)})
    fake.recorder.clear()
    small = adapter(server, per_page=10)
    try:
        assert len(small.files(n)) == 25
    finally:
        small.close()
    assert fake.recorder.count("GET", r"/files$") == 3


def test_reviews_are_upper_case_with_utc_times(fake: FakeGitHub, gh: GitHubRepo) -> None:
    n = fake.open_pr(REPO, "alice", {"requests/alice/a.yaml": REQUEST})
    old_head = fake.pull(REPO, n).head_sha
    r1 = fake.add_review(REPO, n, "bob", "APPROVED", submitted_at=JAN1)
    new_head = fake.push(REPO, n, {"requests/alice/a.yaml": REQUEST + "# v2\n"})
    r2 = fake.add_review(REPO, n, "carol", "CHANGES_REQUESTED", submitted_at=JAN1)
    r3 = fake.add_review(REPO, n, "bob", "COMMENTED", submitted_at=JAN1 + timedelta(minutes=1))
    fake.dismiss(REPO, n, r2)
    fake.recorder.clear()

    reviews = gh.reviews(n)

    bob, carol = fake.users["bob"].id, fake.users["carol"].id
    assert reviews == (
        Review(r1, "bob", ReviewState.APPROVED, old_head, JAN1, bob),
        Review(r2, "carol", ReviewState.DISMISSED, new_head, JAN1, carol),
        Review(r3, "bob", ReviewState.COMMENTED, new_head, JAN1 + timedelta(minutes=1), bob),
    )
    assert calls(fake) == [f"GET /repos/{REPO}/pulls/{n}/reviews?per_page=100"]


def test_file_contents(fake: FakeGitHub, gh: GitHubRepo) -> None:
    sha = fake.put_file(REPO, "policy/identities.yaml", "alice: alice@example.com\n")
    fake.put_file(REPO, "bin.dat", b"\xff\xfe\x00")
    fake.recorder.clear()

    assert gh.file_bytes("policy/identities.yaml", sha) == b"alice: alice@example.com\n"
    assert gh.file_bytes("policy/jitaccess.yaml") == b"scope: organizations/1\n"
    assert gh.file_bytes("policy/missing.yaml", "main") is None
    assert gh.file_bytes("bin.dat", "main") == b"\xff\xfe\x00"
    with pytest.raises(GitHubError, match="is a directory"):
        gh.file_bytes("policy", "main")
    with pytest.raises(GitHubError, match=r"HTTP 404: No commit found for the ref nope") as e:
        gh.file_bytes("policy/jitaccess.yaml", "nope")
    assert e.value.status == 404

    assert calls(fake) == [
        f"GET /repos/{REPO}/contents/policy/identities.yaml?ref={sha}",
        f"GET /repos/{REPO}/contents/policy/jitaccess.yaml",
        f"GET /repos/{REPO}/contents/policy/missing.yaml?ref=main",
        f"GET /repos/{REPO}/contents/bin.dat?ref=main",
        f"GET /repos/{REPO}/contents/policy?ref=main",
        f"GET /repos/{REPO}/contents/policy/jitaccess.yaml?ref=nope",
    ]


def test_large_files_are_refused(fake: FakeGitHub, gh: GitHubRepo) -> None:
    fake.put_file(REPO, "big.yaml", "a" * (MAX_FILE_BYTES + 1))
    fake.put_file(REPO, "edge.yaml", "a" * MAX_FILE_BYTES)

    with pytest.raises(FileTooLargeError) as e:
        gh.file_bytes("big.yaml", "main")
    assert (e.value.path, e.value.size) == ("big.yaml", MAX_FILE_BYTES + 1)
    assert gh.file_bytes("edge.yaml", "main") == b"a" * MAX_FILE_BYTES


def test_files_are_read_raw_beyond_what_the_json_form_carries(
    fake: FakeGitHub, gh: GitHubRepo
) -> None:
    big = b"alice: alice@example.com\n" * 50_000  # 1.25 MB: the JSON form's `content` is empty
    fake.put_file(REPO, "policy/identities.yaml", big)
    fake.recorder.clear()

    assert gh.file_bytes("policy/identities.yaml", "main", 2 * 1024 * 1024) == big
    with pytest.raises(FileTooLargeError) as e:
        gh.file_bytes("policy/identities.yaml", "main", 1024 * 1024)
    assert (e.value.path, e.value.size) == ("policy/identities.yaml", len(big))
    [first, _] = fake.recorder.calls
    assert first.headers["Accept"] == "application/vnd.github.raw+json"


def test_default_branch_files_are_read_conditionally(fake: FakeGitHub, gh: GitHubRepo) -> None:
    fake.recorder.clear()
    first = gh.file_bytes("policy/jitaccess.yaml")
    again = gh.file_bytes("policy/jitaccess.yaml")
    assert first == b"scope: organizations/1\n"
    assert again is first  # GitHub answered 304 Not Modified: the bytes kept are handed back
    fake.put_file(REPO, "policy/jitaccess.yaml", "scope: organizations/2\n")
    assert gh.file_bytes("policy/jitaccess.yaml") == b"scope: organizations/2\n"
    conditions = [c.headers.get("If-None-Match") for c in fake.recorder.calls]
    assert conditions[0] is None and conditions[1] == conditions[2] is not None
    # At a commit, a file is read once and not kept.
    sha = fake.branch_sha(REPO)
    gh.file_bytes("policy/jitaccess.yaml", sha)
    gh.file_bytes("policy/jitaccess.yaml", sha)
    assert [c.headers.get("If-None-Match") for c in fake.recorder.calls[3:]] == [None, None]


def test_default_branch(fake: FakeGitHub, server: str) -> None:
    fake.add_repo("acme/trunky", default_branch="trunk")
    repo = GitHubRepo(GitHubAuth(repository="acme/trunky", api_url=server, token=TOKEN))
    try:
        assert repo.default_branch() == "trunk"
    finally:
        repo.close()
    assert calls(fake) == ["GET /repos/acme/trunky"]


def test_requested_reviewers(fake: FakeGitHub, gh: GitHubRepo) -> None:
    n = fake.open_pr(REPO, "alice", {"requests/alice/a.yaml": REQUEST})
    fake.request_review(REPO, n, "carol")
    fake.request_review(REPO, n, "bob")
    fake.recorder.clear()

    assert gh.requested_reviewers(n) == ("carol", "bob")
    assert calls(fake) == [f"GET /repos/{REPO}/pulls/{n}/requested_reviewers?per_page=100"]


# -- writes ---------------------------------------------------------------------------------------


def test_set_status(fake: FakeGitHub, gh: GitHubRepo) -> None:
    n = fake.open_pr(REPO, "alice", {"requests/alice/a.yaml": REQUEST})
    head = fake.pull(REPO, n).head_sha
    fake.recorder.clear()

    assert gh.set_status(head, "pending", "Waiting for 1 approval", current=None)
    assert gh.set_status(head, "failure", "x" * 200, target_url="https://example.com/why",
                         current=None)

    first, second = fake.statuses(REPO, head)
    assert (first["state"], first["description"], first["context"], first["target_url"]) == (
        "pending", "Waiting for 1 approval", "jit-access", None)
    # Cut under GitHub's limit of 140, like every description the service writes.
    assert second["description"] == "x" * 138 + "…"
    assert second["target_url"] == "https://example.com/why"
    assert second["creator"]["login"] == BOT
    assert calls(fake) == [f"POST /repos/{REPO}/statuses/{head}"] * 2


def test_commit_status_reads_the_latest_of_its_context(fake: FakeGitHub, gh: GitHubRepo) -> None:
    n = fake.open_pr(REPO, "alice", {"requests/alice/a.yaml": REQUEST})
    head = fake.pull(REPO, n).head_sha
    assert gh.commit_status(head) is None
    gh.set_status(head, "pending", "Waiting", current=None)
    gh.set_status(head, "success", "Ready", target_url="https://example.com/pr/1", current=None)
    gh.set_status(head, "failure", "CI broke", context="ci", current=None)
    fake.recorder.clear()

    assert gh.commit_status(head) == CommitStatus("success", "Ready", "https://example.com/pr/1")
    assert gh.commit_status(head, "ci") == CommitStatus("failure", "CI broke")
    assert calls(fake) == [f"GET /repos/{REPO}/commits/{head}/status"] * 2


def test_set_status_skips_a_status_equal_to_the_current_one(
    fake: FakeGitHub, gh: GitHubRepo
) -> None:
    n = fake.open_pr(REPO, "alice", {"requests/alice/a.yaml": REQUEST})
    head = fake.pull(REPO, n).head_sha
    url = "https://example.com/pr/1"
    fake.recorder.clear()

    # Without `current`, the status is read first (1 extra call).
    assert gh.set_status(head, "pending", "Waiting", target_url=url)
    assert not gh.set_status(head, "pending", "Waiting", target_url=url)
    assert calls(fake) == [
        f"GET /repos/{REPO}/commits/{head}/status",
        f"POST /repos/{REPO}/statuses/{head}",
        f"GET /repos/{REPO}/commits/{head}/status",
    ]
    # With the status read earlier, no read; a difference in any field posts.
    fake.recorder.clear()
    same = CommitStatus("pending", "Waiting", url)
    assert not gh.set_status(head, "pending", "Waiting", target_url=url, current=same)
    assert gh.set_status(head, "pending", "Waiting", current=same)
    assert gh.set_status(head, "pending", "Waiting for 1", target_url=url, current=same)
    assert gh.set_status(head, "success", "Waiting", target_url=url, current=same)
    # The description is compared as posted, cut to 140 characters.
    long = "y" * 200
    assert not gh.set_status(
        head, "success", long,
        current=CommitStatus("success", "y" * (STATUS_DESCRIPTION_MAX - 1) + "…"),
    )
    assert calls(fake) == [f"POST /repos/{REPO}/statuses/{head}"] * 3
    assert len(fake.statuses(REPO, head)) == 4


def test_set_status_posts_when_the_status_cannot_be_read(
    fake: FakeGitHub, gh: GitHubRepo
) -> None:
    n = fake.open_pr(REPO, "alice", {"requests/alice/a.yaml": REQUEST})
    head = fake.pull(REPO, n).head_sha
    gh.set_status(head, "pending", "Waiting", current=None)
    fake.recorder.fail("GET", r"/status$", 404, times=1)
    assert gh.set_status(head, "pending", "Waiting")
    assert len(fake.statuses(REPO, head)) == 2


def test_comments_are_cut_to_fit_githubs_limit(fake: FakeGitHub, gh: GitHubRepo) -> None:
    n = fake.open_pr(REPO, "alice", {"requests/alice/a.yaml": REQUEST})
    lines = "".join(f"- reason {i:05} " + "x" * 80 + "\n" for i in range(2000))  # ~190k
    first = gh.create_comment(n, f"{MARKER}\n{lines}")
    gh.upsert_comment(n, MARKER, lines)
    for comment in fake.comments(REPO, n):
        assert len(comment.body) <= 65536
        assert comment.body.startswith(f"{MARKER}\n- reason 00000 ")
        assert comment.body.endswith(f"\n\n{TRUNCATED_NOTICE}\n")
    assert [c.id for c in fake.comments(REPO, n)] == [first]  # the upsert found it as cut


def test_upsert_comment_edits_in_place(fake: FakeGitHub, gh: GitHubRepo) -> None:
    n = fake.open_pr(REPO, "alice", {"requests/alice/a.yaml": REQUEST})
    # Someone quotes the marker: the adapter must not take that comment for its own.
    human = fake.add_comment(REPO, n, "alice", f"look: {MARKER}")
    fake.recorder.clear()

    first = gh.upsert_comment(n, MARKER, f"{MARKER}\nPending")
    assert calls(fake) == [
        "GET /user",
        f"GET /repos/{REPO}/issues/{n}/comments?per_page=100",
        f"POST /repos/{REPO}/issues/{n}/comments",
    ]
    fake.recorder.clear()

    second = gh.upsert_comment(n, MARKER, f"{MARKER}\nReady")
    assert second == first
    assert calls(fake) == [
        f"GET /repos/{REPO}/issues/{n}/comments?per_page=100",
        f"PATCH /repos/{REPO}/issues/comments/{first}",
    ]
    fake.recorder.clear()

    third = gh.upsert_comment(n, MARKER, f"{MARKER}\nReady")
    assert third == first
    assert calls(fake) == [f"GET /repos/{REPO}/issues/{n}/comments?per_page=100"]

    comments = fake.comments(REPO, n)
    assert [(c.id, c.login, c.body) for c in comments] == [
        (human, "alice", f"look: {MARKER}"),
        (first, BOT, f"{MARKER}\nReady"),
    ]
    assert comments[1].history == [f"{MARKER}\nPending"]
    assert gh.comments_with(n, MARKER) == [f"{MARKER}\nReady"]


def test_upsert_puts_the_marker_first_when_missing(fake: FakeGitHub, gh: GitHubRepo) -> None:
    n = fake.open_pr(REPO, "alice", {"requests/alice/a.yaml": REQUEST})
    gh.upsert_comment(n, MARKER, "Pending")
    assert [c.body for c in fake.comments(REPO, n)] == [f"{MARKER}\nPending"]


def test_create_comment_always_adds_one(fake: FakeGitHub, gh: GitHubRepo) -> None:
    n = fake.open_pr(REPO, "alice", {"requests/alice/a.yaml": REQUEST})
    fake.recorder.clear()

    a = gh.create_comment(n, "Activated")
    b = gh.create_comment(n, "Activated")

    assert a != b
    assert [(c.id, c.login) for c in fake.comments(REPO, n)] == [(a, BOT), (b, BOT)]
    assert calls(fake) == [f"POST /repos/{REPO}/issues/{n}/comments"] * 2


def test_request_reviewers_tolerates_the_author(fake: FakeGitHub, gh: GitHubRepo) -> None:
    n = fake.open_pr(REPO, "alice", {"requests/alice/a.yaml": REQUEST})
    fake.recorder.clear()

    gh.request_reviewers(n, [])
    assert calls(fake) == []
    gh.request_reviewers(n, ["bob", "carol"])
    assert calls(fake) == [f"POST /repos/{REPO}/pulls/{n}/requested_reviewers"]
    # The author in the batch: GitHub refuses it all (422); the others are asked one by one.
    gh.request_reviewers(n, ["alice", "bob"])
    gh.request_reviewers(n, ["alice"])

    assert fake.requested_reviewers(REPO, n) == ["bob", "carol"]
    assert fake.recorder.count("POST", "/requested_reviewers$") == 5
    assert [c.body for c in fake.recorder.calls[1:]] == [
        b'{"reviewers": ["alice", "bob"]}', b'{"reviewers": ["alice"]}',
        b'{"reviewers": ["bob"]}', b'{"reviewers": ["alice"]}',
    ]


def test_self_login_with_a_token_is_cached(fake: FakeGitHub, gh: GitHubRepo) -> None:
    assert gh.self_login() == BOT
    assert gh.self_login() == BOT
    assert gh.installation_id() is None
    assert calls(fake) == ["GET /user"]


# -- GitHub App authentication ---------------------------------------------------------------------


def app_adapter(fake: FakeGitHub, api_url: str) -> GitHubRepo:
    """An adapter authenticated as the fake's GitHub App."""
    return GitHubRepo(
        GitHubAuth(
            repository=REPO,
            api_url=api_url,
            app_id=str(fake.app_id),
            private_key_pem=fake.app_private_key_pem,
        )
    )


def test_app_auth_fetches_one_installation_token(fake: FakeGitHub, server: str) -> None:
    inst = fake.install(REPO, 77)
    n = fake.open_pr(REPO, "alice", {"requests/alice/a.yaml": REQUEST})
    fake.recorder.clear()
    app = app_adapter(fake, server)
    try:
        assert app.pull(n).author == "alice"
        assert app.pull(n).number == n
        assert app.self_login() == "jit-access[bot]"
        assert app.installation_id() == inst
        app.upsert_comment(n, MARKER, "Pending")
    finally:
        app.close()

    assert calls(fake) == [
        f"GET /repos/{REPO}/installation",
        "POST /app/installations/77/access_tokens",
        f"GET /repos/{REPO}/pulls/{n}",
        f"GET /repos/{REPO}/pulls/{n}",
        f"GET /repos/{REPO}/issues/{n}/comments?per_page=100",
        f"POST /repos/{REPO}/issues/{n}/comments",
    ]
    auth = [c.headers["Authorization"] for c in fake.recorder.calls]
    assert auth[0].startswith("Bearer ey") and auth[1].startswith("Bearer ey")
    token = auth[2]
    assert token.startswith("token ghs_") and auth[3:] == [token] * 3
    assert [c.login for c in fake.comments(REPO, n)] == ["jit-access[bot]"]


def test_app_token_is_renewed_before_it_expires(fake: FakeGitHub, server: str) -> None:
    fake.install(REPO, 77)
    fake.token_ttl = timedelta(minutes=4)  # inside the adapter's 5-minute renewal window
    n = fake.open_pr(REPO, "alice", {"requests/alice/a.yaml": REQUEST})
    fake.recorder.clear()
    app = app_adapter(fake, server)
    try:
        app.pull(n)
        app.pull(n)
    finally:
        app.close()

    assert fake.recorder.count("GET", "/installation$") == 1
    assert fake.recorder.count("POST", "/access_tokens$") == 2
    tokens = [c.headers["Authorization"] for c in fake.recorder.calls if "/pulls/" in c.path]
    assert len(set(tokens)) == 2


def test_app_not_installed_is_a_github_error(fake: FakeGitHub, server: str) -> None:
    app = app_adapter(fake, server)
    try:
        with pytest.raises(GitHubError) as e:
            app.pull(1)
    finally:
        app.close()
    assert str(e.value) == f"GitHub: the GitHub App {fake.app_id} is not installed on {REPO}"
    assert e.value.status == 404
    assert calls(fake) == [f"GET /repos/{REPO}/installation"]


def test_app_with_a_foreign_key_gets_bad_credentials(fake: FakeGitHub, server: str) -> None:
    fake.install(REPO)
    app = GitHubRepo(GitHubAuth(repository=REPO, api_url=server, app_id=str(fake.app_id),
                                private_key_pem=generate_app_key()))
    try:
        with pytest.raises(GitHubError, match=r"HTTP 401") as e:
            app.pull(1)
    finally:
        app.close()
    assert e.value.status == 401


# -- GitHub Enterprise Server ----------------------------------------------------------------------


def test_enterprise_base_url_with_api_v3_prefix() -> None:
    fake = FakeGitHub(prefix="/api/v3")
    fake.add_repo(REPO)
    fake.add_token(TOKEN, BOT)
    n = fake.open_pr(REPO, "alice", {f"requests/alice/{i}.yaml": "x" for i in range(120)})
    with LocalServer(fake) as s:
        api = fake.api_url(s.url)
        assert api.endswith("/api/v3")
        repo = adapter(api)
        try:
            assert repo.pull(n).author == "alice"
            assert len(repo.files(n)) == 120
            repo.upsert_comment(n, MARKER, "one")
            repo.upsert_comment(n, MARKER, "two")
        finally:
            repo.close()
    assert all(c.path.startswith("/api/v3/") for c in fake.recorder.calls)
    assert len(fake.recorder.calls) == 8
    assert [c.body for c in fake.comments(REPO, n)] == [f"{MARKER}\ntwo"]
    assert fake.recorder.unexpected == []


# -- faults ----------------------------------------------------------------------------------------


def test_one_502_is_retried(fake: FakeGitHub, gh: GitHubRepo) -> None:
    n = fake.open_pr(REPO, "alice", {"requests/alice/a.yaml": REQUEST})
    fake.recorder.clear()
    fake.recorder.fail("GET", f"/pulls/{n}$", 502, times=1)

    assert gh.pull(n).author == "alice"
    assert fake.recorder.count("GET", f"/pulls/{n}$") == 2


def test_persistent_502_gives_up_quickly(fake: FakeGitHub, gh: GitHubRepo) -> None:
    n = fake.open_pr(REPO, "alice", {"requests/alice/a.yaml": REQUEST})
    fake.recorder.clear()
    fake.recorder.fail("GET", f"/pulls/{n}$", 502, times=-1, body={"message": "Server Error"})

    started = time.monotonic()
    with pytest.raises(GitHubError, match=rf"reading pull request #{n}: HTTP 502: Server Error"):
        gh.pull(n)
    assert time.monotonic() - started < 3
    assert fake.recorder.count("GET", f"/pulls/{n}$") == 3  # 1 + 2 retries


def test_writes_are_not_retried(fake: FakeGitHub, gh: GitHubRepo) -> None:
    n = fake.open_pr(REPO, "alice", {"requests/alice/a.yaml": REQUEST})
    fake.recorder.clear()
    fake.recorder.fail("POST", "/comments$", 502, times=1)

    with pytest.raises(GitHubError, match="HTTP 502") as e:
        gh.create_comment(n, "hello")
    assert e.value.status == 502
    assert fake.comments(REPO, n) == []
    assert calls(fake) == [f"POST /repos/{REPO}/issues/{n}/comments"]


def test_rate_limit_is_reported_without_waiting(fake: FakeGitHub, gh: GitHubRepo) -> None:
    fake.fail_rate_limited("GET", "/reviews$", retry_after=3600)
    n = fake.open_pr(REPO, "alice", {"requests/alice/a.yaml": REQUEST})

    started = time.monotonic()
    with pytest.raises(GitHubError) as e:
        gh.reviews(n)
    assert time.monotonic() - started < 2
    assert str(e.value) == (
        f"GitHub: listing the reviews of pull request #{n}: rate limit exceeded (HTTP 403); "
        "retry after 3600 s"
    )
    assert e.value.status == 403
    assert fake.recorder.count("GET", "/reviews$") == 1


def test_exhausted_quota_is_a_rate_limit_error(fake: FakeGitHub, gh: GitHubRepo) -> None:
    fake.rate_remaining = 0
    with pytest.raises(GitHubError, match=r"repository: rate limit exceeded \(HTTP 403\)"):
        gh.default_branch()


def test_bad_credentials(fake: FakeGitHub, server: str) -> None:
    repo = GitHubRepo(GitHubAuth(repository=REPO, api_url=server, token="ghp_wrong"))
    try:
        with pytest.raises(GitHubError) as e:
            repo.default_branch()
    finally:
        repo.close()
    assert str(e.value) == (
        "GitHub: reading the repository: bad credentials (HTTP 401); check the token or the App key"
    )
    assert e.value.status == 401


def test_slow_answer_times_out(fake: FakeGitHub, server: str) -> None:
    n = fake.open_pr(REPO, "alice", {"requests/alice/a.yaml": REQUEST})
    fake.recorder.fail("GET", f"/pulls/{n}$", 200, times=1, delay=2.5)
    repo = adapter(server, timeout=1)
    started = time.monotonic()
    try:
        with pytest.raises(GitHubError, match=r"no answer within 1 s \(timeout\)"):
            repo.pull(n)
    finally:
        repo.close()
    assert time.monotonic() - started < 2
    assert fake.recorder.count("GET", f"/pulls/{n}$") == 1  # read timeouts are not retried


def test_refused_connection(fake: FakeGitHub) -> None:
    with LocalServer(fake) as s:
        dead = s.url  # the port is closed once the server stops
    repo = adapter(dead)
    started = time.monotonic()
    try:
        with pytest.raises(GitHubError, match="reading the repository: cannot connect"):
            repo.default_branch()
    finally:
        repo.close()
    assert time.monotonic() - started < 3


def test_malformed_answer_is_a_github_error(fake: FakeGitHub, gh: GitHubRepo) -> None:
    n = fake.open_pr(REPO, "alice", {"requests/alice/a.yaml": REQUEST})
    fake.recorder.fail("GET", f"/pulls/{n}$", 200, body={"number": n, "user": None})
    with pytest.raises(GitHubError, match=rf"reading pull request #{n}: unexpected answer"):
        gh.pull(n)


def test_foreign_host_in_an_answer_is_refused(fake: FakeGitHub, gh: GitHubRepo) -> None:
    n = fake.open_pr(REPO, "alice", {"requests/alice/a.yaml": REQUEST})
    fake.recorder.fail(
        "GET", f"/pulls/{n}/files$", 200, body=[{"filename": "a", "status": "added"}],
        headers={"Link": '<https://evil.example.com/x?page=2>; rel="next"'},
    )
    with pytest.raises(GitHubError, match="unexpected answer"):
        gh.files(n)
    assert fake.recorder.count("GET", f"/pulls/{n}/files$") == 1


# -- threads ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("auth", ["token", "app"])
def test_concurrent_reads(fake: FakeGitHub, server: str, auth: str) -> None:
    fake.install(REPO)
    numbers = [
        fake.open_pr(REPO, login, {f"requests/{login}/{i}.yaml": f"n: {i}\n" for i in range(k)})
        for k, login in enumerate(["alice", "bob", "carol", "alice"], start=1)
    ]
    for n in numbers:
        fake.add_review(REPO, n, "carol", "APPROVED")
    fake.recorder.clear()
    repo = adapter(server) if auth == "token" else app_adapter(fake, server)

    def work(i: int) -> tuple[int, str, int, int, bytes | None]:
        n = numbers[i % len(numbers)]
        pull = repo.pull(n)
        return (n, pull.author, len(repo.files(n)), len(repo.reviews(n)),
                repo.file_bytes("policy/jitaccess.yaml"))

    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(work, range(40)))
    finally:
        repo.close()

    authors = {n: fake.pull(REPO, n).author for n in numbers}
    for i, (n, author, nfiles, nreviews, policy) in enumerate(results):
        assert n == numbers[i % len(numbers)]
        assert (author, nfiles, nreviews) == (authors[n], numbers.index(n) + 1, 1)
        assert policy == b"scope: organizations/1\n"
    assert fake.recorder.count("GET", r"/pulls/\d+$") == 40
    assert fake.recorder.count("POST", "/access_tokens$") == (1 if auth == "app" else 0)


# -- finding the PR that added a request file (revocation PRs) ---------------------------------


def test_the_merged_pr_that_added_a_file_in_two_calls(fake: FakeGitHub, gh: GitHubRepo) -> None:
    n = fake.open_pr(REPO, "alice", {"requests/alice/a.yaml": REQUEST})
    fake.merge(REPO, n)
    other = fake.open_pr(REPO, "bob", {"requests/bob/b.yaml": REQUEST})
    fake.merge(REPO, other)
    gh.default_branch()  # the repository is looked up once per adapter, not per lookup
    fake.recorder.calls.clear()

    assert gh.pull_that_added("requests/alice/a.yaml", "main") == n
    assert [c.split("?")[0] for c in calls(fake)] == [
        f"GET /repos/{REPO}/commits", f"GET /repos/{REPO}/commits/"
        + fake.pull(REPO, n).head_sha + "/pulls",
    ]


def test_after_the_file_was_deleted_the_adding_pr_is_still_found(
    fake: FakeGitHub, gh: GitHubRepo
) -> None:
    n = fake.open_pr(REPO, "alice", {"requests/alice/a.yaml": REQUEST})
    fake.merge(REPO, n)
    revoking = fake.open_pr(REPO, "alice", {}, removed=["requests/alice/a.yaml"])
    fake.merge(REPO, revoking)
    assert gh.pull_that_added("requests/alice/a.yaml", "main") == n


def test_a_file_no_merged_pr_added(fake: FakeGitHub, gh: GitHubRepo) -> None:
    fake.put_file(REPO, "requests/alice/pushed.yaml", REQUEST)  # pushed straight to main
    assert gh.pull_that_added("requests/alice/pushed.yaml", "main") is None
    assert gh.pull_that_added("requests/alice/never.yaml", "main") is None
