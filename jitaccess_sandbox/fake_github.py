"""A fake GitHub REST API, served over HTTP to the real PyGithub client in tests and the sandbox.

`FakeGitHub` is a WSGI app that speaks the subset of the REST API this service uses, the way
PyGithub 2.x calls it: repositories and their files, a history of commits (each with its parents, so
that a comparison `base...head` starts at their merge base, as on GitHub), pull requests with their
files, reviews, review requests, issue comments (with `since=`), commit statuses, check runs (with
their annotations) and merge groups of a merge queue; token and GitHub App (JWT → installation
token) authentication. Every `url`-like field it returns is built from the base URL the request came
in on (PyGithub refuses to follow URLs on another host), list endpoints paginate for real
(`per_page`, `page`, `Link` with `rel="next"`/`"last"`), and every answer carries rate-limit
headers. It can be mounted under a path prefix (`prefix="/api/v3"`, as GitHub Enterprise Server).

Requests go through a `Recorder` (faults.py): tests read `fake.recorder.calls`, inject latency
and faults (and, with `fake.after`, a change such as a push landing right after a given read),
and assert `fake.recorder.unexpected == []` — an unknown route is recorded there and answered
501, so the fake fails loudly instead of guessing.

State is changed and read back through methods (`add_repo`, `open_pr`, `add_review`,
`statuses`, `comments`, …) that hold one lock, so tests may drive it from several threads.
"""

from __future__ import annotations

import base64
import copy
import functools
import hashlib
import itertools
import json
import math
import re
import secrets
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from jitaccess_sandbox.faults import Call, Recorder, StartResponse
from webhook.core.names import STATUS_CONTEXT

JSON = dict[str, Any]

REVIEW_STATES = ("APPROVED", "CHANGES_REQUESTED", "COMMENTED", "DISMISSED", "PENDING")
STATUS_STATES = ("error", "failure", "pending", "success")
# GitHub keeps at most this many statuses per commit and context and refuses the next (422).
MAX_STATUSES_PER_CONTEXT = 1000
# GitHub refuses longer issue and comment bodies (422).
MAX_BODY_CHARS = 65536
RATE_LIMIT = 5000
DOCS = "https://docs.github.com/rest"
# GitHub answers the contents API with an empty, "none"-encoded body above 1 MiB; the raw media
# type serves files up to 100 MB.
CONTENTS_INLINE_LIMIT = 1024 * 1024
# A comparison of two commits lists at most this many files (on its first page only), and at
# most this many commits when no page is asked for.
COMPARE_FILES_LIMIT = 300
COMPARE_COMMITS_LIMIT = 250
CONTENTS_RAW_LIMIT = 100 * 1024 * 1024
RAW_CONTENT_TYPE = "application/vnd.github.raw; charset=utf-8"
_RAW_MEDIA = re.compile(r"application/vnd\.github(?:\.v3)?\.raw(?:\+json)?(?:\s*;.*)?")


def _wants_raw(accept: str) -> bool:
    """Whether an Accept header asks for the contents API's raw media type."""
    return any(_RAW_MEDIA.fullmatch(part.strip()) for part in accept.split(","))

# What the App is granted (deploy/github-app-manifest.json).
APP_PERMISSIONS = {
    "checks": "write", "contents": "read", "merge_queues": "read", "metadata": "read",
    "pull_requests": "write",
}
APP_EVENTS = (
    "check_run", "check_suite", "merge_group", "pull_request", "pull_request_review",
)
CHECK_STATUSES = ("queued", "in_progress", "completed")
CHECK_CONCLUSIONS = (
    "success", "failure", "neutral", "cancelled", "timed_out", "action_required", "skipped",
)
ANNOTATION_LEVELS = ("notice", "warning", "failure")
# GitHub refuses more annotations in one check-run request, and a longer summary or text (422).
MAX_ANNOTATIONS_PER_REQUEST = 50
MAX_CHECK_OUTPUT_CHARS = 65535
# GitHub's compare lists at most this many files (on the first page).
MAX_COMPARE_FILES = 300


def iso(moment: datetime) -> str:
    """A timestamp as the REST API writes it: `2026-11-29T10:00:00Z`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def generate_app_key() -> str:
    """A new RSA private key for a GitHub App, as PEM text."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


@functools.cache
def _shared_app_key() -> str:
    # Generating a key takes a while; fakes share one unless given their own.
    return generate_app_key()


def _new_sha() -> str:
    return secrets.token_hex(20)


def _blob_sha(data: bytes) -> str:
    # Git's blob id, so that equal contents get equal shas, as on GitHub.
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def _as_bytes(text: str | bytes) -> bytes:
    return text.encode() if isinstance(text, str) else text


# --------------------------------------------------------------------------------------------
# State


@dataclass
class FakeUser:
    """A GitHub account."""

    login: str
    id: int
    type: str = "User"  # User | Bot | Organization


@dataclass
class FakeRepo:
    """A repository: branches point at commits, a commit is a snapshot of path -> bytes."""

    owner: str
    name: str
    id: int
    default_branch: str
    branches: dict[str, str] = field(default_factory=dict)  # branch -> commit sha
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)  # sha -> files
    parents: dict[str, tuple[str, ...]] = field(default_factory=dict)  # sha -> parent shas
    renames: dict[str, dict[str, str]] = field(default_factory=dict)  # sha -> {new: old path}
    statuses: dict[str, list[JSON]] = field(default_factory=dict)  # sha -> statuses, oldest first
    installation_id: int | None = None
    next_number: int = 1

    @property
    def full_name(self) -> str:
        """`owner/name`."""
        return f"{self.owner}/{self.name}"


@dataclass
class FakeReview:
    """A pull request review."""

    id: int
    login: str
    state: str
    commit_id: str
    submitted_at: datetime | None
    body: str = ""


@dataclass
class FakeComment:
    """An issue (PR conversation) comment, with every earlier body in `history`."""

    id: int
    repo: str
    number: int
    login: str
    body: str
    created_at: datetime
    updated_at: datetime
    history: list[str] = field(default_factory=list)


@dataclass
class FakePull:
    """A pull request."""

    number: int
    id: int
    author: str
    title: str
    body: str
    base_ref: str
    base_sha: str  # the base commit the PR's diff is computed against
    head_ref: str
    head_sha: str
    created_at: datetime
    updated_at: datetime
    state: str = "open"
    merged: bool = False
    merged_at: datetime | None = None
    merged_by: str | None = None
    merge_commit_sha: str | None = None
    closed_at: datetime | None = None
    renames: dict[str, str] = field(default_factory=dict)  # new path -> old path
    reviews: list[FakeReview] = field(default_factory=list)
    requested: list[str] = field(default_factory=list)


@dataclass
class _Hook:
    """An action run after serving matching requests (see `FakeGitHub.after`)."""

    method: str
    path: re.Pattern[str]
    action: Callable[[], object]
    remaining: int


@dataclass
class FakeCheckRun:
    """A check run, with every annotation appended to it and every request body accepted."""

    id: int
    repo: str
    head_sha: str
    name: str
    app_id: int
    suite_id: int
    started_at: datetime
    status: str = "queued"
    conclusion: str | None = None
    completed_at: datetime | None = None
    external_id: str = ""
    details_url: str | None = None
    title: str | None = None
    summary: str | None = None
    text: str | None = None
    annotations: list[JSON] = field(default_factory=list)
    requests: list[JSON] = field(default_factory=list)  # bodies of the create and updates


@dataclass(frozen=True)
class FakeMergeGroup:
    """A merge group of a merge queue: a commit built from the base and the queued PRs."""

    repo: str
    numbers: tuple[int, ...]
    base_ref: str  # branch name
    base_sha: str
    head_sha: str

    @property
    def head_ref(self) -> str:
        """`refs/heads/gh-readonly-queue/<base>/pr-<last PR>-<base sha>`, as GitHub names it."""
        return f"refs/heads/gh-readonly-queue/{self.base_ref}/pr-{self.numbers[-1]}-{self.base_sha}"


@dataclass
class _Principal:
    """Who a request authenticates as."""

    kind: str  # user | app | installation
    login: str = ""
    installation_id: int | None = None


@dataclass
class _Ctx:
    """One request being served."""

    method: str
    path: str  # without the prefix
    query: dict[str, list[str]]
    body: bytes
    base: str  # API base URL, with the prefix
    web: str  # web base URL (html_url)
    principal: _Principal
    match: re.Match[str]
    accept: str = ""  # the Accept header
    if_none_match: str = ""  # the If-None-Match header (a conditional request)

    def arg(self, name: str) -> str:
        """A query parameter ('' when absent)."""
        values = self.query.get(name)
        return values[-1] if values else ""

    def json(self) -> Any:
        """The request body as JSON (None when empty or malformed)."""
        if not self.body:
            return None
        try:
            return json.loads(self.body)
        except ValueError:
            return None


@dataclass
class _Resp:
    status: int
    payload: Any
    headers: list[tuple[str, str]] = field(default_factory=list)
    raw: bytes | None = None  # a body sent as it is (the contents API's raw media type)


class _HttpError(Exception):
    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.payload: JSON = {"message": message, "documentation_url": DOCS, **extra}


def _not_found() -> _HttpError:
    return _HttpError(404, "Not Found")


Route = tuple[str, re.Pattern[str], str, Callable[[_Ctx], _Resp]]


def _webhook_ctx() -> _Ctx:
    # Webhook payloads carry GitHub's public URLs, whichever server the API is emulated on.
    everything = re.compile("").match("")
    assert everything is not None
    return _Ctx("GET", "", {}, b"", "https://api.github.com", "https://github.com",
                _Principal("user"), everything)


# --------------------------------------------------------------------------------------------
# The fake


class FakeGitHub:
    """The GitHub REST API for one or more repositories, as a WSGI app (see the module doc)."""

    def __init__(
        self,
        *,
        prefix: str = "",
        app_id: int = 4242,
        app_slug: str = "jit-access",
        app_private_key_pem: str | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.prefix = prefix.rstrip("/")
        self.recorder = Recorder()
        self.clock: Callable[[], datetime] = clock or (lambda: datetime.now(UTC))
        self.app_id = app_id
        self.app_slug = app_slug
        self.app_private_key_pem = app_private_key_pem or _shared_app_key()
        private = serialization.load_pem_private_key(
            self.app_private_key_pem.encode(), password=None
        )
        self.app_public_key_pem = (
            private.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )
        self.token_ttl = timedelta(hours=1)  # lifetime of installation tokens
        self.rate_remaining = RATE_LIMIT  # requests left; at 0 every request gets a 403

        self.users: dict[str, FakeUser] = {}  # lower-case login -> user
        self.repos: dict[str, FakeRepo] = {}  # lower-case full name -> repo
        self.pulls: dict[tuple[str, int], FakePull] = {}  # (lower-case repo, number) -> PR
        self.comment_list: dict[int, FakeComment] = {}  # id -> comment
        self.user_tokens: dict[str, str] = {}  # token -> login
        self.installation_tokens: dict[str, tuple[int, datetime]] = {}  # token -> (id, expiry)
        self.installations: dict[int, str] = {}  # installation id -> account login
        self.check_run_list: dict[int, FakeCheckRun] = {}  # id -> check run
        self.check_suites: dict[tuple[str, str, int], int] = {}  # (repo, sha, app) -> suite id
        self._ids = itertools.count(1001)
        self._lock = threading.RLock()
        self.bot_login = f"{app_slug}[bot]"
        self.add_user(self.bot_login, type="Bot")
        self._hooks: list[_Hook] = []
        self._routes = self._build_routes()
        self._app = self.recorder.wsgi(self._serve)

    # -- WSGI ------------------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """Serve one request (through the recorder)."""
        return self._app(environ, start_response)

    def api_url(self, server_url: str) -> str:
        """The API base URL for a server at `server_url` (adds the prefix)."""
        return server_url.rstrip("/") + self.prefix

    # -- users and authentication ---------------------------------------------------------------

    def add_user(self, login: str, *, type: str = "User") -> FakeUser:
        """Add an account (idempotent); returns it."""
        with self._lock:
            user = self.users.get(login.lower())
            if user is None:
                user = FakeUser(login, next(self._ids), type)
                self.users[login.lower()] = user
            return user

    def rename_user(self, login: str, new_login: str) -> FakeUser:
        """Rename an account, as its owner does in the settings: it keeps its id, its PRs,
        reviews and comments show the new login, and the old login is free for anyone to
        claim (`add_user(login)` then makes a new account, with a new id)."""
        with self._lock:
            user = self.users.pop(login.lower())
            if new_login.lower() in self.users:
                self.users[login.lower()] = user
                raise ValueError(f"the login {new_login} is taken")
            old, user.login = user.login, new_login
            self.users[new_login.lower()] = user

            def renamed(name: str) -> str:
                return new_login if name.lower() == old.lower() else name

            for pr in self.pulls.values():
                pr.author = renamed(pr.author)
                pr.merged_by = renamed(pr.merged_by) if pr.merged_by else pr.merged_by
                pr.requested = [renamed(r) for r in pr.requested]
                for review in pr.reviews:
                    review.login = renamed(review.login)
            for comment in self.comment_list.values():
                comment.login = renamed(comment.login)
            for token, owner in list(self.user_tokens.items()):
                self.user_tokens[token] = renamed(owner)
            return user

    def add_token(self, token: str, login: str) -> None:
        """Let `token` authenticate as the user `login` (a personal access token)."""
        with self._lock:
            self.add_user(login)
            self.user_tokens[token] = login

    def install(self, repo: str, installation_id: int | None = None) -> int:
        """Install the app on a repository; returns the installation id."""
        with self._lock:
            fake = self._repo(repo)
            inst = installation_id or next(self._ids)
            fake.installation_id = inst
            self.installations[inst] = fake.owner
            return inst

    def uninstall(self, repo: str) -> int | None:
        """Uninstall the app from a repository's account, as its owner does in the settings:
        the installation and its tokens are gone (401 Bad credentials). Returns its id."""
        with self._lock:
            inst = self._repo(repo).installation_id
            if inst is None:
                return None
            self.installations.pop(inst, None)
            for fake in self.repos.values():
                if fake.installation_id == inst:
                    fake.installation_id = None
            for token, (owner, _) in list(self.installation_tokens.items()):
                if owner == inst:
                    del self.installation_tokens[token]
            return inst

    def reinstall(self, repo: str) -> int:
        """Uninstall the app and install it again on a repository: a new installation id, and
        the old installation's tokens stop working. Returns the new id."""
        with self._lock:
            self.uninstall(repo)
            return self.install(repo)

    def installation_token(self, repo: str, token: str | None = None) -> str:
        """Issue an installation token for the app's installation on a repository, as
        `POST /app/installations/{id}/access_tokens` does; `token` chooses its text (tokens
        of older Enterprise Servers have no `ghs_` prefix)."""
        with self._lock:
            inst = self._repo(repo).installation_id
            if inst is None:
                raise KeyError(f"the app is not installed on {repo}")
            token = token or "ghs_" + secrets.token_hex(18)
            self.installation_tokens[token] = (inst, self.clock() + self.token_ttl)
            return token

    def expire_installation_tokens(self) -> None:
        """Make every installation token issued so far invalid (server side)."""
        with self._lock:
            past = self.clock() - timedelta(seconds=1)
            for token, (inst, _) in list(self.installation_tokens.items()):
                self.installation_tokens[token] = (inst, past)

    # -- repositories and files ------------------------------------------------------------------

    def add_repo(self, full_name: str, *, default_branch: str = "main") -> FakeRepo:
        """Add a repository with an empty first commit on its default branch."""
        owner, _, name = full_name.partition("/")
        with self._lock:
            self.add_user(owner)
            repo = FakeRepo(owner, name, next(self._ids), default_branch)
            repo.branches[default_branch] = self._new_commit(repo, {}, ())
            self.repos[full_name.lower()] = repo
            return repo

    def rename_branch(self, repo: str, old: str, new: str) -> None:
        """Rename a branch as GitHub does: the default branch follows, open PRs targeting it are
        retargeted, closed and merged PRs keep the name they were merged into."""
        with self._lock:
            fake = self._repo(repo)
            fake.branches[new] = fake.branches.pop(old)
            if fake.default_branch == old:
                fake.default_branch = new
            for (full_name, _), pr in self.pulls.items():
                mine = full_name == fake.full_name.lower()
                if mine and pr.state == "open" and pr.base_ref == old:
                    pr.base_ref = new

    def put_file(self, repo: str, path: str, text: str | bytes, ref: str | None = None) -> str:
        """Commit a file to a branch (default: the default branch); returns the new commit sha."""
        return self.commit(repo, {path: text}, ref=ref)

    def remove_file(self, repo: str, path: str, ref: str | None = None) -> str:
        """Commit the removal of a file from a branch; returns the new commit sha."""
        return self.commit(repo, {}, removed=[path], ref=ref)

    def commit(
        self,
        repo: str,
        files: Mapping[str, str | bytes],
        *,
        removed: Iterable[str] = (),
        ref: str | None = None,
    ) -> str:
        """Commit changes to a branch (created from the default branch if new); returns the sha."""
        with self._lock:
            fake = self._repo(repo)
            branch = ref or fake.default_branch
            parent = fake.branches.get(branch, fake.branches[fake.default_branch])
            tree = dict(fake.commits[parent])
            for path in removed:
                tree.pop(path, None)
            tree.update({path: _as_bytes(text) for path, text in files.items()})
            sha = self._new_commit(fake, tree, (parent,))
            fake.branches[branch] = sha
            return sha

    def create_branch(self, repo: str, branch: str, sha: str) -> None:
        """Point a branch (new or not) at an existing commit, as `git push origin SHA:branch`."""
        with self._lock:
            fake = self._repo(repo)
            if sha not in fake.commits:
                raise KeyError(f"no commit {sha} in {repo}")
            fake.branches[branch] = sha

    def branch_sha(self, repo: str, branch: str | None = None) -> str:
        """The commit a branch points at (default: the default branch)."""
        with self._lock:
            fake = self._repo(repo)
            return fake.branches[branch or fake.default_branch]

    def file_at(self, repo: str, path: str, ref: str | None = None) -> bytes | None:
        """A file's bytes at a branch or commit, or None."""
        with self._lock:
            fake = self._repo(repo)
            tree = self._tree(fake, ref or fake.default_branch)
            return None if tree is None else tree.get(path)

    # -- pull requests ---------------------------------------------------------------------------

    def open_pr(
        self,
        repo: str,
        author: str,
        files: Mapping[str, str | bytes] | None = None,
        *,
        modified: Mapping[str, str | bytes] | None = None,
        removed: Iterable[str] = (),
        renamed: Mapping[str, str] | None = None,
        base: str | None = None,
        title: str = "Request access",
        body: str = "",
        head_ref: str | None = None,
        head_sha: str | None = None,
    ) -> int:
        """Open a PR from a new head commit: `files` added (or modified if they exist on the
        base), `modified` changed, `removed` deleted, `renamed` old -> new path. Returns its number.

        With `head_sha` (and no changes), the PR is opened from that existing commit instead,
        as anyone who can push a branch can open one from somebody else's commit.
        """
        with self._lock:
            fake = self._repo(repo)
            self.add_user(author)
            base_ref = base or fake.default_branch
            if base_ref not in fake.branches:
                fake.branches[base_ref] = fake.branches[fake.default_branch]
            base_sha = fake.branches[base_ref]
            renames: dict[str, str] = {}
            if head_sha is not None:
                if files or modified or removed or renamed:
                    raise ValueError("a PR opened from an existing commit changes nothing more")
                if head_sha not in fake.commits:
                    raise KeyError(f"no commit {head_sha} in {repo}")
                renames = dict(fake.renames.get(head_sha, {}))
            else:
                tree = dict(fake.commits[base_sha])
                for old, new in (renamed or {}).items():
                    tree[new] = tree.pop(old, b"")
                    renames[new] = old
                for path in removed:
                    tree.pop(path, None)
                changes = {**(files or {}), **(modified or {})}
                tree.update({path: _as_bytes(text) for path, text in changes.items()})
                head_sha = self._new_commit(fake, tree, (base_sha,), renames)
            number = fake.next_number
            fake.next_number += 1
            now = self.clock()
            self.pulls[(repo.lower(), number)] = FakePull(
                number=number,
                id=next(self._ids),
                author=author,
                title=title,
                body=body,
                base_ref=base_ref,
                base_sha=base_sha,
                head_ref=head_ref or f"{author}/request-{number}",
                head_sha=head_sha,
                created_at=now,
                updated_at=now,
                renames=renames,
            )
            return number

    def push(
        self,
        repo: str,
        number: int,
        files: Mapping[str, str | bytes] | None = None,
        *,
        removed: Iterable[str] = (),
    ) -> str:
        """Push a new head commit to a PR (a `synchronize`); returns the new head sha."""
        with self._lock:
            fake = self._repo(repo)
            pr = self._pull(repo, number)
            tree = dict(fake.commits[pr.head_sha])
            for path in removed:
                tree.pop(path, None)
            tree.update({path: _as_bytes(text) for path, text in (files or {}).items()})
            pr.head_sha = self._new_commit(fake, tree, (pr.head_sha,))
            pr.updated_at = self.clock()
            return pr.head_sha

    def merge(
        self,
        repo: str,
        number: int,
        *,
        merged_at: datetime | None = None,
        merged_by: str | None = None,
    ) -> str:
        """Merge a PR into its base branch; returns the merge commit sha."""
        with self._lock:
            fake = self._repo(repo)
            pr = self._pull(repo, number)
            # A three-way merge: the PR's changes (head against the commit it was opened on)
            # applied to the base branch as it is now, so other PRs merged meanwhile stay.
            start, head = fake.commits[pr.base_sha], fake.commits[pr.head_sha]
            tip = fake.branches[pr.base_ref]
            tree = dict(fake.commits[tip])
            for path in set(start) | set(head):
                if path not in head:
                    tree.pop(path, None)
                elif start.get(path) != head[path]:
                    tree[path] = head[path]
            sha = self._new_commit(fake, tree, (tip, pr.head_sha))
            fake.branches[pr.base_ref] = sha
            when = merged_at or self.clock()
            pr.state, pr.merged, pr.merged_at, pr.closed_at = "closed", True, when, when
            pr.merged_by = merged_by or fake.owner
            pr.merge_commit_sha = sha
            pr.updated_at = when
            return sha

    @staticmethod
    def _apply(fake: FakeRepo, pr: FakePull, tree: dict[str, bytes]) -> dict[str, bytes]:
        """`tree` with the PR's changes (its head against the commit it was opened on)."""
        start, head = fake.commits[pr.base_sha], fake.commits[pr.head_sha]
        for path in set(start) | set(head):
            if path not in head:
                tree.pop(path, None)
            elif start.get(path) != head[path]:
                tree[path] = head[path]
        return tree

    def queue(self, repo: str, numbers: Iterable[int]) -> FakeMergeGroup:
        """Build a merge group as the merge queue does: a new commit holding the base branch
        as it is now and the changes of each queued PR, in order. No branch moves."""
        with self._lock:
            fake = self._repo(repo)
            pulls = [self._pull(repo, n) for n in numbers]
            if not pulls:
                raise ValueError("a merge group holds at least one pull request")
            base_ref = pulls[0].base_ref
            base_sha = fake.branches[base_ref]
            tree = dict(fake.commits[base_sha])
            for pr in pulls:
                tree = self._apply(fake, pr, tree)
            # Its parent is the base, so that a comparison base...head starts there.
            head_sha = self._new_commit(fake, tree, (base_sha,))
            return FakeMergeGroup(
                fake.full_name, tuple(pr.number for pr in pulls), base_ref, base_sha, head_sha
            )

    def close(self, repo: str, number: int) -> None:
        """Close a PR without merging."""
        with self._lock:
            pr = self._pull(repo, number)
            pr.state, pr.closed_at, pr.updated_at = "closed", self.clock(), self.clock()

    def pull(self, repo: str, number: int) -> FakePull:
        """A copy of a PR's state."""
        with self._lock:
            return copy.deepcopy(self._pull(repo, number))

    def point_head(self, repo: str, number: int, sha: str) -> None:
        """Point a PR's head at an existing commit, e.g. one another PR's head already is (as a
        fork branch reset to that commit would)."""
        with self._lock:
            if sha not in self._repo(repo).commits:
                raise KeyError(f"no commit {sha} in {repo}")
            pr = self._pull(repo, number)
            pr.head_sha, pr.updated_at = sha, self.clock()

    # -- reviews ---------------------------------------------------------------------------------

    def add_review(
        self,
        repo: str,
        number: int,
        login: str,
        state: str,
        *,
        commit_id: str | None = None,
        submitted_at: datetime | None = None,
        body: str = "",
    ) -> int:
        """Submit a review (default: on the current head, now); returns its id."""
        if state not in REVIEW_STATES:
            raise ValueError(f"unknown review state {state!r}")
        with self._lock:
            pr = self._pull(repo, number)
            self.add_user(login)
            review = FakeReview(
                id=next(self._ids),
                login=login,
                state=state,
                commit_id=commit_id or pr.head_sha,
                submitted_at=None if state == "PENDING" else (submitted_at or self.clock()),
                body=body,
            )
            pr.reviews.append(review)
            # As on GitHub, submitting a review answers the review request.
            pr.requested = [r for r in pr.requested if r.lower() != login.lower()]
            return review.id

    def dismiss(self, repo: str, number: int, review_id: int) -> None:
        """Dismiss a review."""
        with self._lock:
            for review in self._pull(repo, number).reviews:
                if review.id == review_id:
                    review.state = "DISMISSED"
                    return
            raise KeyError(review_id)

    def reviews(self, repo: str, number: int) -> list[FakeReview]:
        """Copies of a PR's reviews, oldest first."""
        with self._lock:
            return copy.deepcopy(self._pull(repo, number).reviews)

    def request_review(self, repo: str, number: int, login: str) -> None:
        """Add a requested reviewer directly (as a person would in the UI)."""
        with self._lock:
            pr = self._pull(repo, number)
            self.add_user(login)
            if login.lower() not in (r.lower() for r in pr.requested):
                pr.requested.append(login)

    def requested_reviewers(self, repo: str, number: int) -> list[str]:
        """Logins currently requested to review, in request order."""
        with self._lock:
            return list(self._pull(repo, number).requested)

    # -- comments and statuses -------------------------------------------------------------------

    def add_comment(self, repo: str, number: int, login: str, body: str) -> int:
        """Post a comment as `login` (e.g. a person); returns its id."""
        with self._lock:
            self._pull(repo, number)
            self.add_user(login)
            return self._create_comment(repo, number, login, body).id

    def delete_comment(self, repo: str, comment_id: int) -> None:
        """A person with write access deletes a comment (anyone's, the service's included)."""
        with self._lock:
            comment = self.comment_list.get(comment_id)
            if comment is None or comment.repo.lower() != repo.lower():
                raise KeyError(f"no comment {comment_id} in {repo}")
            del self.comment_list[comment_id]

    def comments(self, repo: str, number: int) -> list[FakeComment]:
        """Copies of a PR's comments, oldest first."""
        with self._lock:
            return [
                copy.deepcopy(c)
                for c in self.comment_list.values()
                if c.repo.lower() == repo.lower() and c.number == number
            ]

    def statuses(self, repo: str, sha: str) -> list[JSON]:
        """Commit statuses posted for a sha, oldest first (wire form)."""
        with self._lock:
            return copy.deepcopy(self._repo(repo).statuses.get(sha, []))

    def latest_status(self, repo: str, sha: str, context: str = STATUS_CONTEXT) -> JSON | None:
        """The newest status for a sha and context, or None."""
        found = [s for s in self.statuses(repo, sha) if s["context"] == context]
        return found[-1] if found else None

    # -- check runs ------------------------------------------------------------------------------

    def check_runs(
        self, repo: str, sha: str, name: str | None = None
    ) -> list[FakeCheckRun]:
        """Copies of a commit's check runs (of one name when given), oldest first."""
        with self._lock:
            return [
                copy.deepcopy(run) for run in self.check_run_list.values()
                if run.repo.lower() == repo.lower() and run.head_sha == sha
                and (name is None or run.name == name)
            ]

    def latest_check_run(
        self, repo: str, sha: str, name: str = STATUS_CONTEXT
    ) -> FakeCheckRun | None:
        """The newest check run of a name on a commit, or None."""
        runs = self.check_runs(repo, sha, name)
        return runs[-1] if runs else None

    def add_check_run(
        self, repo: str, sha: str, name: str, *, app_id: int, status: str = "completed",
        conclusion: str | None = "success", title: str = "", summary: str = "",
    ) -> int:
        """A check run made by any App (e.g. another one, with `app_id`); returns its id."""
        with self._lock:
            fake = self._repo(repo)
            run = self._new_check_run(fake, sha, name, app_id)
            run.status, run.conclusion = status, conclusion
            run.title, run.summary = title, summary
            if status == "completed":
                run.completed_at = self.clock()
            return run.id

    def _new_check_run(self, fake: FakeRepo, sha: str, name: str, app_id: int) -> FakeCheckRun:
        key = (fake.full_name.lower(), sha, app_id)
        suite = self.check_suites.setdefault(key, next(self._ids))
        run = FakeCheckRun(next(self._ids), fake.full_name, sha, name, app_id, suite, self.clock())
        self.check_run_list[run.id] = run
        return run

    # -- webhook payloads ------------------------------------------------------------------------

    def pull_request_event(
        self, repo: str, number: int, action: str, *, sender: str | None = None
    ) -> JSON:
        """A `pull_request` webhook payload for the PR as it is now (sender: its author)."""
        ctx = _webhook_ctx()
        with self._lock:
            fake, pr = self._repo(repo), self._pull(repo, number)
            return {
                "action": action,
                "number": number,
                "pull_request": self._pull_json(ctx, fake, pr),
                "repository": self._repo_json(ctx, fake),
                "sender": self._user_json(ctx, sender or pr.author),
            }

    def pull_request_review_event(
        self, repo: str, number: int, review_id: int, action: str
    ) -> JSON:
        """A `pull_request_review` webhook payload for one of the PR's reviews, sent by its
        reviewer. Webhooks spell the review state in lower case, unlike the REST API."""
        ctx = _webhook_ctx()
        with self._lock:
            fake, pr = self._repo(repo), self._pull(repo, number)
            review = next((r for r in pr.reviews if r.id == review_id), None)
            if review is None:
                raise KeyError(f"no review {review_id} on {repo}#{number}")
            body = self._review_json(ctx, fake, pr, review)
            body["state"] = body["state"].lower()
            return {
                "action": action,
                "review": body,
                "pull_request": self._pull_json(ctx, fake, pr),
                "repository": self._repo_json(ctx, fake),
                "sender": self._user_json(ctx, review.login),
            }

    def issue_comment_event(
        self, repo: str, number: int, login: str, body: str, *, action: str = "created",
        comment_id: int = 1,
    ) -> JSON:
        """An `issue_comment` webhook payload for a comment by `login` on the PR (GitHub sends
        PR conversation comments as issue comments, with `issue.pull_request` set)."""
        ctx = _webhook_ctx()
        with self._lock:
            fake, pr = self._repo(repo), self._pull(repo, number)
            user = self._user_json(ctx, login)
            return {
                "action": action,
                "issue": {
                    "number": number,
                    "title": pr.title,
                    "user": self._user_json(ctx, pr.author),
                    "state": pr.state,
                    "pull_request": {
                        "url": f"https://api.github.com/repos/{repo}/pulls/{number}"
                    },
                },
                # A comment posted on the fake (`add_comment`) is sent as GitHub shows it.
                "comment": (
                    self._comment_json(ctx, self.comment_list[comment_id])
                    if comment_id in self.comment_list
                    and self.comment_list[comment_id].repo.lower() == repo.lower()
                    else {"id": comment_id, "user": user, "body": body}
                ),
                "repository": self._repo_json(ctx, fake),
                "sender": user,
            }

    def check_run_event(
        self, repo: str, run_id: int, action: str = "rerequested", *, sender: str | None = None
    ) -> JSON:
        """A `check_run` webhook payload for one of the repository's check runs (Re-run: the
        App it belongs to gets `rerequested`). `sender` defaults to the repository owner."""
        ctx = _webhook_ctx()
        with self._lock:
            fake = self._repo(repo)
            run = self.check_run_list[run_id]
            body = self._check_run_json(ctx, fake, run)
            body["check_suite"] = self._suite_json(ctx, fake, run.head_sha, run.app_id)
            return self._app_payload(ctx, fake, {
                "action": action, "check_run": body,
                "sender": self._user_json(ctx, sender or fake.owner),
            })

    def check_suite_event(
        self, repo: str, sha: str, action: str = "rerequested", *, sender: str | None = None
    ) -> JSON:
        """A `check_suite` webhook payload for the App's check suite on a commit (Re-run all
        checks: `rerequested`)."""
        ctx = _webhook_ctx()
        with self._lock:
            fake = self._repo(repo)
            return self._app_payload(ctx, fake, {
                "action": action,
                "check_suite": self._suite_json(ctx, fake, sha, self.app_id),
                "sender": self._user_json(ctx, sender or fake.owner),
            })

    def merge_group_event(
        self, group: FakeMergeGroup, action: str = "checks_requested", *,
        sender: str | None = None,
    ) -> JSON:
        """A `merge_group` webhook payload for a merge group (`checks_requested` when it is
        created, `destroyed` when it is merged, invalidated or dequeued)."""
        ctx = _webhook_ctx()
        with self._lock:
            fake = self._repo(group.repo)
            now = iso(self.clock())
            person = {"name": fake.owner, "email": f"{fake.owner}@users.noreply.github.com"}
            merge_group: JSON = {
                "head_sha": group.head_sha,
                "head_ref": group.head_ref,
                "base_sha": group.base_sha,
                "base_ref": f"refs/heads/{group.base_ref}",
                "head_commit": {
                    "id": group.head_sha, "tree_id": _new_sha(),
                    "message": f"Merge pull request #{group.numbers[-1]}",
                    "timestamp": now, "author": person, "committer": person,
                },
            }
            out: JSON = {"action": action, "merge_group": merge_group}
            if action == "destroyed":
                out["reason"] = "merged"
            out["sender"] = self._user_json(ctx, sender or fake.owner)
            return self._app_payload(ctx, fake, out)

    def _app_payload(self, ctx: _Ctx, fake: FakeRepo, body: JSON) -> JSON:
        """A payload with the repository and, for an installed App, the installation."""
        body["repository"] = self._repo_json(ctx, fake)
        if fake.installation_id is not None:
            body["installation"] = {"id": fake.installation_id, "node_id": "MDIzOkludGVn"}
        return body

    # -- faults ----------------------------------------------------------------------------------

    def after(
        self, method: str, path: str, action: Callable[[], object], *, times: int = 1
    ) -> None:
        """Run `action` (e.g. a push) right after serving the next `times` requests matching
        `method` and the `path` regex, before their answer leaves: whatever the client asks
        next — or concurrently, but later — sees the world as `action` left it. For a change
        landing between two reads, e.g. a push between reading a PR and listing its files."""
        with self._lock:
            self._hooks.append(_Hook(method.upper() if method != "*" else "*",
                                     re.compile(path), action, times))

    def fail_rate_limited(
        self, method: str = "*", path: str = ".*", *, times: int = 1, retry_after: int = 60
    ) -> None:
        """Answer matching requests as GitHub does when the primary rate limit is exhausted."""
        reset = int(time.time()) + retry_after
        self.recorder.fail(
            method,
            path,
            403,
            body={
                "message": "API rate limit exceeded for installation. If you reach out to "
                "GitHub Support for help, please include the request ID.",
                "documentation_url": DOCS,
            },
            times=times,
            headers={
                "X-RateLimit-Limit": str(RATE_LIMIT),
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Used": str(RATE_LIMIT),
                "X-RateLimit-Reset": str(reset),
                "X-RateLimit-Resource": "core",
                "Retry-After": str(retry_after),
            },
        )

    # -- internals: state ------------------------------------------------------------------------

    def _repo(self, full_name: str) -> FakeRepo:
        repo = self.repos.get(full_name.lower())
        if repo is None:
            raise KeyError(f"no repository {full_name}")
        return repo

    def _pull(self, repo: str, number: int) -> FakePull:
        pr = self.pulls.get((repo.lower(), number))
        if pr is None:
            raise KeyError(f"no pull request {repo}#{number}")
        return pr

    def _tree(self, repo: FakeRepo, ref: str) -> dict[str, bytes] | None:
        sha = repo.branches.get(ref, ref)
        return repo.commits.get(sha)

    @staticmethod
    def _new_commit(
        repo: FakeRepo,
        tree: dict[str, bytes],
        parents: tuple[str, ...],
        renames: Mapping[str, str] | None = None,
    ) -> str:
        sha = _new_sha()
        repo.commits[sha] = tree
        repo.parents[sha] = parents
        if renames:
            repo.renames[sha] = dict(renames)
        return sha

    @staticmethod
    def _ancestors(repo: FakeRepo, sha: str) -> list[str]:
        """`sha` and every commit it descends from, oldest first (as `git rev-list`, reversed)."""
        seen: list[str] = []
        stack = [sha]
        while stack:
            current = stack.pop()
            if current in seen:
                continue
            seen.append(current)
            stack.extend(repo.parents.get(current, ()))
        position = {c: i for i, c in enumerate(repo.commits)}  # creation order
        return sorted(seen, key=lambda c: position.get(c, -1))

    def _merge_base(self, repo: FakeRepo, a: str, b: str) -> str | None:
        """The best common ancestor of two commits (the newest one), or None."""
        theirs = set(self._ancestors(repo, b))
        common = [c for c in self._ancestors(repo, a) if c in theirs]
        return common[-1] if common else None

    def _create_comment(self, repo: str, number: int, login: str, body: str) -> FakeComment:
        now = self.clock()
        comment = FakeComment(next(self._ids), repo, number, login, body, now, now)
        self.comment_list[comment.id] = comment
        return comment

    def _pull_files(self, repo: FakeRepo, pr: FakePull) -> list[JSON]:
        return self._diff(repo.commits[pr.base_sha], repo.commits[pr.head_sha], pr.renames)

    @staticmethod
    def _diff(
        base: dict[str, bytes], head: dict[str, bytes], renames: Mapping[str, str]
    ) -> list[JSON]:
        """The files changed from one tree to another (`renames`: new path -> old path)."""
        out: list[JSON] = []
        for path in sorted(set(base) | set(head)):
            old_path = renames.get(path)
            if path in renames.values() and path not in head:
                continue  # reported as the rename's new path
            if old_path is not None and path in head:
                status, extra = "renamed", {"previous_filename": old_path}
            elif path not in base:
                status, extra = "added", {}
            elif path not in head:
                status, extra = "removed", {}
            elif base[path] != head[path]:
                status, extra = "modified", {}
            else:
                continue
            data = head.get(path, base.get(path, b""))
            lines = data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)
            additions = 0 if status == "removed" else lines
            deletions = lines if status == "removed" else 0
            out.append(
                {
                    "sha": _blob_sha(data),
                    "filename": path,
                    "status": status,
                    "additions": additions,
                    "deletions": deletions,
                    "changes": additions + deletions,
                    **extra,
                }
            )
        return out

    # -- internals: JSON shapes ------------------------------------------------------------------

    def _user_json(self, ctx: _Ctx, login: str) -> JSON:
        user = self.add_user(login)
        return {
            "login": user.login,
            "id": user.id,
            "node_id": f"U_{user.id}",
            "avatar_url": f"{ctx.web}/avatars/{user.id}",
            "url": f"{ctx.base}/users/{user.login}",
            "html_url": f"{ctx.web}/{user.login}",
            "type": user.type,
            "site_admin": False,
        }

    def _repo_json(self, ctx: _Ctx, repo: FakeRepo) -> JSON:
        api = f"{ctx.base}/repos/{repo.full_name}"
        return {
            "id": repo.id,
            "node_id": f"R_{repo.id}",
            "name": repo.name,
            "full_name": repo.full_name,
            "private": True,
            "owner": self._user_json(ctx, repo.owner),
            "html_url": f"{ctx.web}/{repo.full_name}",
            "url": api,
            "pulls_url": f"{api}/pulls{{/number}}",
            "statuses_url": f"{api}/statuses/{{sha}}",
            "contents_url": f"{api}/contents/{{+path}}",
            "default_branch": repo.default_branch,
            "visibility": "private",
        }

    def _pull_json(self, ctx: _Ctx, repo: FakeRepo, pr: FakePull) -> JSON:
        api = f"{ctx.base}/repos/{repo.full_name}"
        html = f"{ctx.web}/{repo.full_name}/pull/{pr.number}"

        def side(ref: str, sha: str, owner: str) -> JSON:
            return {
                "label": f"{owner}:{ref}",
                "ref": ref,
                "sha": sha,
                "user": self._user_json(ctx, owner),
                "repo": self._repo_json(ctx, repo),
            }

        return {
            "url": f"{api}/pulls/{pr.number}",
            "id": pr.id,
            "node_id": f"PR_{pr.id}",
            "html_url": html,
            "diff_url": f"{html}.diff",
            "patch_url": f"{html}.patch",
            "issue_url": f"{api}/issues/{pr.number}",
            "commits_url": f"{api}/pulls/{pr.number}/commits",
            "review_comments_url": f"{api}/pulls/{pr.number}/comments",
            "comments_url": f"{api}/issues/{pr.number}/comments",
            "statuses_url": f"{api}/statuses/{pr.head_sha}",
            "number": pr.number,
            "state": pr.state,
            "locked": False,
            "title": pr.title,
            "user": self._user_json(ctx, pr.author),
            "body": pr.body,
            "created_at": iso(pr.created_at),
            "updated_at": iso(pr.updated_at),
            "closed_at": iso(pr.closed_at) if pr.closed_at else None,
            "merged_at": iso(pr.merged_at) if pr.merged_at else None,
            "merge_commit_sha": pr.merge_commit_sha,
            "assignees": [],
            "requested_reviewers": [self._user_json(ctx, login) for login in pr.requested],
            "requested_teams": [],
            "labels": [],
            "draft": False,
            "head": side(pr.head_ref, pr.head_sha, pr.author),
            "base": side(pr.base_ref, pr.base_sha, repo.owner),
            "author_association": "CONTRIBUTOR",
            "merged": pr.merged,
            "mergeable": None if pr.state == "closed" else True,
            "merged_by": self._user_json(ctx, pr.merged_by) if pr.merged_by else None,
            "comments": sum(
                1 for c in self.comment_list.values()
                if c.repo.lower() == repo.full_name.lower() and c.number == pr.number
            ),
            "review_comments": 0,
            "commits": 1,
            "additions": 0,
            "deletions": 0,
            "changed_files": len(self._pull_files(repo, pr)),
        }

    def _review_json(self, ctx: _Ctx, repo: FakeRepo, pr: FakePull, review: FakeReview) -> JSON:
        api = f"{ctx.base}/repos/{repo.full_name}"
        html = f"{ctx.web}/{repo.full_name}/pull/{pr.number}"
        out: JSON = {
            "id": review.id,
            "node_id": f"PRR_{review.id}",
            "user": self._user_json(ctx, review.login),
            "body": review.body,
            "state": review.state,
            "html_url": f"{html}#pullrequestreview-{review.id}",
            "pull_request_url": f"{api}/pulls/{pr.number}",
            "commit_id": review.commit_id,
            "author_association": "COLLABORATOR",
        }
        if review.submitted_at is not None:
            out["submitted_at"] = iso(review.submitted_at)
        return out

    def _comment_json(self, ctx: _Ctx, comment: FakeComment) -> JSON:
        api = f"{ctx.base}/repos/{comment.repo}"
        return {
            "id": comment.id,
            "node_id": f"IC_{comment.id}",
            "url": f"{api}/issues/comments/{comment.id}",
            "html_url": f"{ctx.web}/{comment.repo}/pull/{comment.number}"
            f"#issuecomment-{comment.id}",
            "issue_url": f"{api}/issues/{comment.number}",
            "body": comment.body,
            "user": self._user_json(ctx, comment.login),
            "created_at": iso(comment.created_at),
            "updated_at": iso(comment.updated_at),
            "author_association": "NONE",
        }

    def _app_json(self, ctx: _Ctx, app_id: int) -> JSON:
        ours = app_id == self.app_id
        slug = self.app_slug if ours else f"app-{app_id}"
        return {
            "id": app_id, "slug": slug, "node_id": f"A_{app_id}", "name": slug,
            "owner": self._user_json(ctx, next(iter(self.installations.values()), "octocat")),
            "description": "", "external_url": f"{ctx.web}/apps/{slug}",
            "html_url": f"{ctx.web}/apps/{slug}",
            "created_at": "2024-01-01T00:00:00Z", "updated_at": "2024-01-01T00:00:00Z",
        }

    def _pull_ref_json(self, ctx: _Ctx, repo: FakeRepo, pr: FakePull) -> JSON:
        """A pull request as check runs and suites list it."""
        mini = {"id": repo.id, "url": f"{ctx.base}/repos/{repo.full_name}", "name": repo.name}
        return {
            "url": f"{ctx.base}/repos/{repo.full_name}/pulls/{pr.number}",
            "id": pr.id, "number": pr.number,
            "head": {"ref": pr.head_ref, "sha": pr.head_sha, "repo": mini},
            "base": {"ref": pr.base_ref, "sha": pr.base_sha, "repo": mini},
        }

    def _pulls_with_head(self, ctx: _Ctx, repo: FakeRepo, sha: str) -> list[JSON]:
        return [
            self._pull_ref_json(ctx, repo, pr)
            for (name, _), pr in sorted(self.pulls.items())
            if name == repo.full_name.lower() and pr.head_sha == sha
        ]

    def _check_run_json(self, ctx: _Ctx, repo: FakeRepo, run: FakeCheckRun) -> JSON:
        api = f"{ctx.base}/repos/{repo.full_name}"
        return {
            "id": run.id,
            "node_id": f"CR_{run.id}",
            "head_sha": run.head_sha,
            "external_id": run.external_id,
            "url": f"{api}/check-runs/{run.id}",
            "html_url": f"{ctx.web}/{repo.full_name}/runs/{run.id}",
            "details_url": run.details_url,
            "status": run.status,
            "conclusion": run.conclusion,
            "started_at": iso(run.started_at),
            "completed_at": iso(run.completed_at) if run.completed_at else None,
            "output": {
                "title": run.title,
                "summary": run.summary,
                "text": run.text,
                "annotations_count": len(run.annotations),
                "annotations_url": f"{api}/check-runs/{run.id}/annotations",
            },
            "name": run.name,
            "check_suite": {"id": run.suite_id},
            "app": self._app_json(ctx, run.app_id),
            "pull_requests": self._pulls_with_head(ctx, repo, run.head_sha),
        }

    def _suite_json(self, ctx: _Ctx, repo: FakeRepo, sha: str, app_id: int) -> JSON:
        suite = self.check_suites.get((repo.full_name.lower(), sha, app_id)) or next(self._ids)
        runs = [
            r for r in self.check_run_list.values()
            if r.suite_id == suite and r.repo.lower() == repo.full_name.lower()
        ]
        done = bool(runs) and all(r.status == "completed" for r in runs)
        conclusions = {r.conclusion for r in runs}
        heads = [pr.head_ref for (name, _), pr in self.pulls.items()
                 if name == repo.full_name.lower() and pr.head_sha == sha]
        api = f"{ctx.base}/repos/{repo.full_name}"
        return {
            "id": suite,
            "node_id": f"CS_{suite}",
            "head_branch": heads[0] if heads else None,
            "head_sha": sha,
            "status": "completed" if done else "queued",
            "conclusion": (
                ("failure" if "failure" in conclusions else "success") if done else None
            ),
            "url": f"{api}/check-suites/{suite}",
            "before": None,
            "after": sha,
            "pull_requests": self._pulls_with_head(ctx, repo, sha),
            "app": self._app_json(ctx, app_id),
            "created_at": iso(self.clock()),
            "updated_at": iso(self.clock()),
            "latest_check_runs_count": len(runs),
            "check_runs_url": f"{api}/check-suites/{suite}/check-runs",
        }

    def _file_json(self, ctx: _Ctx, repo: FakeRepo, path: str, ref: str, data: bytes) -> JSON:
        api = f"{ctx.base}/repos/{repo.full_name}"
        quoted = urllib.parse.quote(path)
        sha = _blob_sha(data)
        inline = len(data) <= CONTENTS_INLINE_LIMIT
        encoded = base64.encodebytes(data).decode() if inline else ""
        return {
            "type": "file",
            "encoding": "base64" if inline else "none",
            "size": len(data),
            "name": path.rsplit("/", 1)[-1],
            "path": path,
            "content": encoded,
            "sha": sha,
            "url": f"{api}/contents/{quoted}?ref={urllib.parse.quote(ref)}",
            "git_url": f"{api}/git/blobs/{sha}",
            "html_url": f"{ctx.web}/{repo.full_name}/blob/{ref}/{quoted}",
            "download_url": None,
        }

    # -- internals: routing ----------------------------------------------------------------------

    def _build_routes(self) -> list[Route]:
        repo = r"/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)"
        num = r"(?P<number>\d+)"
        table: list[tuple[str, str, str, Callable[[_Ctx], _Resp]]] = [
            ("GET", "/user", "user", self._get_user),
            ("GET", r"/users/(?P<login>[^/]+)", "token", self._get_user_by_login),
            ("GET", "/app", "app", self._get_app),
            ("GET", r"/app/installations/(?P<inst>\d+)", "app", self._get_installation),
            ("POST", r"/app/installations/(?P<inst>\d+)/access_tokens", "app", self._post_token),
            ("GET", f"{repo}/installation", "app", self._get_repo_installation),
            ("GET", repo, "token", self._get_repo),
            ("GET", f"{repo}/pulls/{num}", "token", self._get_pull),
            ("GET", f"{repo}/pulls/{num}/files", "token", self._get_pull_files),
            ("GET", f"{repo}/pulls/{num}/reviews", "token", self._get_reviews),
            ("GET", f"{repo}/pulls/{num}/requested_reviewers", "token", self._get_requested),
            ("POST", f"{repo}/pulls/{num}/requested_reviewers", "token", self._post_requested),
            ("GET", f"{repo}/contents(?:/(?P<path>.*))?", "token", self._get_contents),
            ("POST", f"{repo}/statuses/(?P<sha>[^/]+)", "token", self._post_status),
            ("GET", f"{repo}/commits/(?P<ref>[^/]+)/statuses", "token", self._get_statuses),
            ("GET", f"{repo}/commits/(?P<ref>[^/]+)/status", "token", self._get_combined),
            ("GET", f"{repo}/compare/(?P<basehead>.+)", "token", self._get_compare),
            ("GET", f"{repo}/commits", "token", self._get_commits),
            ("GET", f"{repo}/commits/(?P<ref>[^/]+)/pulls", "token", self._get_commit_pulls),
            ("GET", f"{repo}/issues/{num}/comments", "token", self._get_comments),
            ("POST", f"{repo}/issues/{num}/comments", "token", self._post_comment),
            ("GET", f"{repo}/issues/comments/(?P<id>\\d+)", "token", self._get_comment),
            ("PATCH", f"{repo}/issues/comments/(?P<id>\\d+)", "token", self._patch_comment),
            ("POST", f"{repo}/check-runs", "token", self._post_check_run),
            ("GET", f"{repo}/check-runs/(?P<id>\\d+)", "token", self._get_check_run),
            ("PATCH", f"{repo}/check-runs/(?P<id>\\d+)", "token", self._patch_check_run),
            ("GET", f"{repo}/check-runs/(?P<id>\\d+)/annotations", "token",
             self._get_annotations),
            ("GET", f"{repo}/commits/(?P<ref>[^/]+)/check-runs", "token", self._list_check_runs),
            ("GET", f"{repo}/compare/(?P<basehead>.+)", "token", self._compare),
            ("GET", f"{repo}/pulls", "token", self._list_pulls),
        ]
        return [(m, re.compile(p), auth, h) for m, p, auth, h in table]

    def _serve(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"]
        full_path = environ.get("PATH_INFO", "")
        query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        host = environ.get("HTTP_HOST") or f"{environ['SERVER_NAME']}:{environ['SERVER_PORT']}"
        scheme = environ.get("wsgi.url_scheme", "http")
        web = f"{scheme}://{host}"
        path = full_path[len(self.prefix):] if full_path.startswith(self.prefix) else None

        route = None
        match = None
        if path is not None:
            for r_method, pattern, auth, handler in self._routes:
                match = pattern.fullmatch(path)
                if match and r_method == method:
                    route = (auth, handler)
                    break
        if route is None or match is None:
            headers = {k[5:].replace("_", "-").title(): v for k, v in environ.items()
                       if k.startswith("HTTP_")}
            self.recorder.record_unexpected(
                Call(method, full_path, environ.get("QUERY_STRING", ""), headers, body,
                     time.time())
            )
            return self._respond(start_response, _Resp(501, {"message": "Not Implemented"}))

        with self._lock:
            resp = self._dispatch(environ, route, method, path or "", query, body, web, match)
            # Still holding the lock: nothing else is served between the answer and the hook.
            for hook in self._hooks:
                if hook.remaining != 0 and hook.method in ("*", method) and hook.path.search(
                    full_path
                ):
                    hook.remaining -= 1
                    hook.action()
        return self._respond(start_response, resp)

    def _dispatch(
        self,
        environ: dict[str, Any],
        route: tuple[str, Callable[[_Ctx], _Resp]],
        method: str,
        path: str,
        query: dict[str, list[str]],
        body: bytes,
        web: str,
        match: re.Match[str],
    ) -> _Resp:
        auth, handler = route
        try:
            principal = self._authenticate(environ.get("HTTP_AUTHORIZATION", ""), auth)
            if self.rate_remaining <= 0:
                raise _HttpError(403, "API rate limit exceeded for user.")
            self.rate_remaining -= 1
            ctx = _Ctx(method, path, query, body, web + self.prefix, web, principal, match,
                       environ.get("HTTP_ACCEPT", ""), environ.get("HTTP_IF_NONE_MATCH", ""))
            resp = handler(ctx)
            if resp.status == 304:
                self.rate_remaining += 1  # as on GitHub: a 304 costs no rate limit
            return resp
        except _HttpError as e:
            return _Resp(e.status, e.payload)

    def _respond(self, start_response: StartResponse, resp: _Resp) -> list[bytes]:
        if resp.status == 304:
            # Not Modified: no body, no content headers; the ETag comes with `resp.headers`.
            start_response("304 Not Modified", list(resp.headers))
            return [b""]
        if resp.raw is not None:
            body = resp.raw
            content_type, media_type = RAW_CONTENT_TYPE, "github.v3; param=raw; format=json"
        else:
            body = b"" if resp.status == 204 else json.dumps(resp.payload).encode()
            content_type, media_type = "application/json; charset=utf-8", "github.v3; format=json"
        used = RATE_LIMIT - max(self.rate_remaining, 0)
        headers = [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("X-GitHub-Media-Type", media_type),
            ("X-RateLimit-Limit", str(RATE_LIMIT)),
            ("X-RateLimit-Remaining", str(max(self.rate_remaining, 0))),
            ("X-RateLimit-Used", str(used)),
            ("X-RateLimit-Reset", str(int(time.time()) + 3600)),
            ("X-RateLimit-Resource", "core"),
            *resp.headers,
        ]
        start_response(f"{resp.status} {HTTPStatus(resp.status).phrase}", headers)
        return [body]

    def _authenticate(self, header: str, needs: str) -> _Principal:
        scheme, _, credential = header.strip().partition(" ")
        credential = credential.strip()
        if not header or scheme.lower() not in ("token", "bearer") or not credential:
            raise _HttpError(401, "Requires authentication")
        if needs == "app":
            if scheme.lower() != "bearer" or credential.count(".") != 2:
                raise _HttpError(401, "A JSON web token could not be decoded")
            self._verify_jwt(credential)
            return _Principal("app")
        if credential in self.user_tokens:
            return _Principal("user", self.user_tokens[credential])
        if credential in self.installation_tokens:
            inst, expires = self.installation_tokens[credential]
            if expires <= self.clock():
                raise _HttpError(401, "Bad credentials")
            return _Principal("installation", self.bot_login, inst)
        raise _HttpError(401, "Bad credentials")

    def _verify_jwt(self, token: str) -> None:
        try:
            claims = jwt.decode(
                token,
                self.app_public_key_pem,
                algorithms=["RS256"],
                options={"require": ["exp", "iat", "iss"]},
                leeway=60,
            )
        except jwt.PyJWTError as e:
            raise _HttpError(401, f"A JSON web token could not be decoded: {e}") from None
        if str(claims["iss"]) != str(self.app_id):
            raise _HttpError(401, "'Issuer' claim ('iss') must be an Integer")
        if int(claims["exp"]) - int(claims["iat"]) > 660:
            raise _HttpError(401, "'Expiration time' claim ('exp') is too far in the future")

    def _paginate(self, ctx: _Ctx, items: list[Any]) -> _Resp:
        chunk, headers = self._page(ctx, items)
        return _Resp(200, chunk, headers)

    def _page(
        self, ctx: _Ctx, items: list[Any], default_per_page: int = 30
    ) -> tuple[list[Any], list[tuple[str, str]]]:
        """The page of `items` the request asks for, and its `Link` header (if any)."""
        def number(name: str, default: int) -> int:
            try:
                return int(ctx.arg(name) or default)
            except ValueError:
                return default

        per_page = min(max(number("per_page", default_per_page), 1), 100)
        page = max(number("page", 1), 1)
        last = max(1, math.ceil(len(items) / per_page))
        chunk = items[(page - 1) * per_page: page * per_page]

        def link(p: int) -> str:
            params = {k: v[-1] for k, v in ctx.query.items() if k not in ("page", "per_page")}
            params.update(per_page=str(per_page), page=str(p))
            return f"{ctx.base}{ctx.path}?{urllib.parse.urlencode(params)}"

        rels: list[tuple[str, int]] = []
        if page < last:
            rels += [("next", page + 1), ("last", last)]
        if page > 1:
            rels += [("first", 1), ("prev", min(page - 1, last))]
        headers = [("Link", ", ".join(f'<{link(p)}>; rel="{rel}"' for rel, p in rels))]
        return chunk, headers if rels else []

    # -- internals: scoping ----------------------------------------------------------------------

    def _ctx_repo(self, ctx: _Ctx) -> FakeRepo:
        repo = self.repos.get(f"{ctx.match['owner']}/{ctx.match['repo']}".lower())
        if repo is None:
            raise _not_found()
        p = ctx.principal
        if p.kind == "installation" and repo.installation_id != p.installation_id:
            raise _not_found()
        return repo

    def _ctx_pull(self, ctx: _Ctx) -> tuple[FakeRepo, FakePull]:
        repo = self._ctx_repo(ctx)
        pr = self.pulls.get((repo.full_name.lower(), int(ctx.match["number"])))
        if pr is None:
            raise _not_found()
        return repo, pr

    def _writer(self, ctx: _Ctx) -> str:
        return ctx.principal.login

    # -- handlers: identity ----------------------------------------------------------------------

    def _get_user(self, ctx: _Ctx) -> _Resp:
        if ctx.principal.kind != "user":
            # As GitHub answers an installation token (which acts as the App, not a user).
            error = _HttpError(
                403, "Resource not accessible by integration",
                documentation_url=f"{DOCS}/users/users#get-the-authenticated-user",
            )
            error.payload["status"] = "403"
            raise error
        return _Resp(200, self._user_json(ctx, ctx.principal.login))

    def _get_user_by_login(self, ctx: _Ctx) -> _Resp:
        user = self.users.get(urllib.parse.unquote(ctx.match["login"]).lower())
        if user is None:
            # A login nobody uses (never taken, or given up by a rename) is simply not found.
            error = _HttpError(404, "Not Found", documentation_url=f"{DOCS}/users/users#get-a-user")
            error.payload["status"] = "404"
            raise error
        return _Resp(200, {
            **self._user_json(ctx, user.login),
            "gravatar_id": "",
            "user_view_type": "public",
            "name": None,
            "company": None,
            "public_repos": 0,
            "followers": 0,
            "following": 0,
            "created_at": "2024-01-01T00:00:00Z",
            "updated_at": "2024-01-01T00:00:00Z",
        })

    def _get_app(self, ctx: _Ctx) -> _Resp:
        return _Resp(200, {
            "id": self.app_id,
            "slug": self.app_slug,
            "node_id": f"A_{self.app_id}",
            "name": self.app_slug,
            "owner": self._user_json(ctx, next(iter(self.installations.values()), "octocat")),
            "html_url": f"{ctx.web}/apps/{self.app_slug}",
            "permissions": APP_PERMISSIONS,
            "events": list(APP_EVENTS),
            "created_at": "2024-01-01T00:00:00Z",
            "updated_at": "2024-01-01T00:00:00Z",
        })

    def _installation_json(self, ctx: _Ctx, inst: int) -> JSON:
        return {
            "id": inst,
            "account": self._user_json(ctx, self.installations[inst]),
            "app_id": self.app_id,
            "app_slug": self.app_slug,
            "target_type": "Organization",
            "repository_selection": "selected",
            "access_tokens_url": f"{ctx.base}/app/installations/{inst}/access_tokens",
            "repositories_url": f"{ctx.base}/installation/repositories",
            "html_url": f"{ctx.web}/settings/installations/{inst}",
            "permissions": APP_PERMISSIONS,
            "events": list(APP_EVENTS),
            "created_at": "2024-01-01T00:00:00Z",
            "updated_at": "2024-01-01T00:00:00Z",
        }

    def _get_installation(self, ctx: _Ctx) -> _Resp:
        inst = int(ctx.match["inst"])
        if inst not in self.installations:
            raise _not_found()
        return _Resp(200, self._installation_json(ctx, inst))

    def _get_repo_installation(self, ctx: _Ctx) -> _Resp:
        repo = self._ctx_repo(ctx)
        if repo.installation_id is None:
            raise _not_found()
        return _Resp(200, self._installation_json(ctx, repo.installation_id))

    def _post_token(self, ctx: _Ctx) -> _Resp:
        inst = int(ctx.match["inst"])
        if inst not in self.installations:
            raise _not_found()
        token = "ghs_" + secrets.token_hex(18)
        expires = self.clock() + self.token_ttl
        self.installation_tokens[token] = (inst, expires)
        return _Resp(201, {
            "token": token,
            "expires_at": iso(expires),
            "permissions": APP_PERMISSIONS,
            "repository_selection": "selected",
        })

    # -- handlers: repository and contents -------------------------------------------------------

    def _get_repo(self, ctx: _Ctx) -> _Resp:
        return _Resp(200, self._repo_json(ctx, self._ctx_repo(ctx)))

    def _get_contents(self, ctx: _Ctx) -> _Resp:
        repo = self._ctx_repo(ctx)
        ref = ctx.arg("ref") or repo.default_branch
        tree = self._tree(repo, ref)
        if tree is None:
            raise _HttpError(404, f"No commit found for the ref {ref}")
        path = (ctx.match["path"] or "").strip("/")
        if path in tree:
            data = tree[path]
            if _wants_raw(ctx.accept):
                if len(data) > CONTENTS_RAW_LIMIT:
                    raise _HttpError(403, "This API returns blobs up to 100 MB in size. The "
                                     "requested blob is too large to fetch via the API.")
                # Files and symlinks answer raw; directories (below) stay JSON, as on GitHub.
                etag = f'"{_blob_sha(data)}"'
                headers = [("ETag", etag), ("Vary", "Accept, Authorization, Cookie")]
                if etag in (t.strip() for t in ctx.if_none_match.split(",")):
                    return _Resp(304, None, headers, raw=b"")
                return _Resp(200, None, headers, raw=data)
            return _Resp(200, self._file_json(ctx, repo, path, ref, data))
        prefix = f"{path}/" if path else ""
        children: dict[str, str] = {}
        for name in tree:
            if name.startswith(prefix):
                head, sep, _ = name[len(prefix):].partition("/")
                children[prefix + head] = "dir" if sep else "file"
        if not children:
            raise _not_found()
        listing = []
        for child, kind in sorted(children.items()):
            entry = (
                self._file_json(ctx, repo, child, ref, tree[child])
                if kind == "file"
                else {"type": "dir", "name": child.rsplit("/", 1)[-1], "path": child,
                      "sha": _blob_sha(child.encode()), "size": 0,
                      "url": f"{ctx.base}/repos/{repo.full_name}/contents/{child}?ref={ref}"}
            )
            entry.pop("content", None)
            entry.pop("encoding", None)
            listing.append(entry)
        return _Resp(200, listing)

    # -- handlers: pull requests and reviews -----------------------------------------------------

    def _get_pull(self, ctx: _Ctx) -> _Resp:
        repo, pr = self._ctx_pull(ctx)
        return _Resp(200, self._pull_json(ctx, repo, pr))

    def _get_pull_files(self, ctx: _Ctx) -> _Resp:
        repo, pr = self._ctx_pull(ctx)
        return self._paginate(ctx, self._pull_files(repo, pr))

    def _get_reviews(self, ctx: _Ctx) -> _Resp:
        repo, pr = self._ctx_pull(ctx)
        return self._paginate(ctx, [self._review_json(ctx, repo, pr, r) for r in pr.reviews])

    def _get_requested(self, ctx: _Ctx) -> _Resp:
        _, pr = self._ctx_pull(ctx)
        users = [self._user_json(ctx, login) for login in pr.requested]
        return _Resp(200, {"users": users, "teams": []})

    def _post_requested(self, ctx: _Ctx) -> _Resp:
        repo, pr = self._ctx_pull(ctx)
        data = ctx.json()
        logins = data.get("reviewers") if isinstance(data, dict) else None
        if not isinstance(logins, list) or not all(isinstance(x, str) for x in logins):
            raise _HttpError(422, "Invalid request.")
        for login in logins:
            if login.lower() == pr.author.lower():
                raise _HttpError(422, "Review cannot be requested from pull request author.")
            if login.lower() not in self.users:
                raise _HttpError(
                    422,
                    "Reviews may only be requested from collaborators. One or more of the users "
                    f"or teams you specified is not a collaborator of the {repo.full_name} "
                    "repository.",
                )
        for login in logins:
            if login.lower() not in (r.lower() for r in pr.requested):
                pr.requested.append(self.users[login.lower()].login)
        return _Resp(201, self._pull_json(ctx, repo, pr))

    # -- handlers: statuses ----------------------------------------------------------------------

    def _post_status(self, ctx: _Ctx) -> _Resp:
        repo = self._ctx_repo(ctx)
        sha = ctx.match["sha"]
        if sha not in repo.commits:
            raise _HttpError(422, f"No commit found for SHA: {sha}")
        data = ctx.json()
        if not isinstance(data, dict) or data.get("state") not in STATUS_STATES:
            raise _HttpError(422, "Validation Failed", errors=[
                {"resource": "Status", "field": "state", "code": "custom"}])
        description = data.get("description")
        if description is not None and (not isinstance(description, str) or len(description) > 140):
            raise _HttpError(422, "Validation Failed", errors=[{
                "resource": "Status", "code": "custom", "field": "description",
                "message": "description is too long (maximum is 140 characters)"}])
        context = data.get("context") or "default"
        posted = repo.statuses.setdefault(sha, [])
        if sum(1 for s in posted if s["context"] == context) >= MAX_STATUSES_PER_CONTEXT:
            raise _HttpError(422, "Validation Failed", errors=[{
                "resource": "Status", "code": "custom",
                "message": "This SHA and context has reached the maximum number of statuses."}])
        now = self.clock()
        status_id = next(self._ids)
        status = {
            "url": f"{ctx.base}/repos/{repo.full_name}/statuses/{sha}",
            "avatar_url": None,
            "id": status_id,
            "node_id": f"SC_{status_id}",
            "state": data["state"],
            "description": description,
            "target_url": data.get("target_url"),
            "context": context,
            "created_at": iso(now),
            "updated_at": iso(now),
            "creator": self._user_json(ctx, self._writer(ctx)),
        }
        posted.append(status)
        return _Resp(201, status)

    def _ref_sha(self, repo: FakeRepo, ref: str) -> str:
        sha = repo.branches.get(ref, ref)
        if sha not in repo.commits:
            raise _HttpError(422, f"No commit found for SHA: {ref}")
        return sha

    def _get_statuses(self, ctx: _Ctx) -> _Resp:
        repo = self._ctx_repo(ctx)
        sha = self._ref_sha(repo, ctx.match["ref"])
        return self._paginate(ctx, list(reversed(repo.statuses.get(sha, []))))

    def _get_combined(self, ctx: _Ctx) -> _Resp:
        repo = self._ctx_repo(ctx)
        sha = self._ref_sha(repo, ctx.match["ref"])
        latest: dict[str, JSON] = {}
        for status in repo.statuses.get(sha, []):
            latest[status["context"]] = status
        states = {s["state"] for s in latest.values()}
        if states & {"error", "failure"}:
            overall = "failure"
        elif not states or "pending" in states:
            overall = "pending"
        else:
            overall = "success"
        return _Resp(200, {
            "state": overall,
            "statuses": list(latest.values()),
            "sha": sha,
            "total_count": len(latest),
            "repository": self._repo_json(ctx, repo),
            "commit_url": f"{ctx.base}/repos/{repo.full_name}/commits/{sha}",
            "url": f"{ctx.base}/repos/{repo.full_name}/commits/{sha}/status",
        })

    # -- handlers: comparisons -------------------------------------------------------------------

    def _resolve(self, repo: FakeRepo, ref: str) -> str:
        """A branch name or a full commit sha, as the commit it names; 404 otherwise."""
        sha = repo.branches.get(ref, ref)
        if sha not in repo.commits:
            raise _not_found()
        return sha

    def _get_compare(self, ctx: _Ctx) -> _Resp:
        repo = self._ctx_repo(ctx)
        base_ref, sep, head_ref = urllib.parse.unquote(ctx.match["basehead"]).partition("...")
        if not sep or not base_ref or not head_ref:
            raise _not_found()
        base, head = self._resolve(repo, base_ref), self._resolve(repo, head_ref)
        merge_base = self._merge_base(repo, base, head)
        if merge_base is None:
            raise _HttpError(404, f"No common ancestor between {base_ref} and {head_ref}.")
        in_base = set(self._ancestors(repo, base))
        in_head = set(self._ancestors(repo, head))
        ahead = [c for c in self._ancestors(repo, head) if c not in in_base]
        behind = [c for c in self._ancestors(repo, base) if c not in in_head]
        # The renames recorded on the commits the head adds (GitHub detects them by content).
        renames: dict[str, str] = {}
        for sha in ahead:
            renames.update(repo.renames.get(sha, {}))
        files = self._diff(repo.commits[merge_base], repo.commits[head], renames)
        api = f"{ctx.base}/repos/{repo.full_name}"
        for f in files:
            quoted = urllib.parse.quote(f["filename"])
            f["blob_url"] = f"{ctx.web}/{repo.full_name}/blob/{head}/{quoted}"
            f["raw_url"] = f"{ctx.web}/{repo.full_name}/raw/{head}/{quoted}"
            f["contents_url"] = f"{api}/contents/{quoted}?ref={head}"
        commits = [self._commit_json(ctx, repo, c) for c in ahead]
        headers: list[tuple[str, str]] = []
        if "page" in ctx.query or "per_page" in ctx.query:
            # Paged: commits oldest first, page by page; the files come with page 1 only.
            commits, headers = self._page(ctx, commits, default_per_page=250)
            if ctx.arg("page") not in ("", "1"):
                files = []
        else:
            commits = commits[-COMPARE_COMMITS_LIMIT:]
        status = (
            "identical" if base == head else "behind" if not ahead else
            "ahead" if not behind else "diverged"
        )
        html = f"{ctx.web}/{repo.full_name}/compare/{base_ref}...{head_ref}"
        return _Resp(200, {
            "url": f"{api}/compare/{base_ref}...{head_ref}",
            "html_url": html,
            "permalink_url": f"{ctx.web}/{repo.full_name}/compare/{base}...{head}",
            "diff_url": f"{html}.diff",
            "patch_url": f"{html}.patch",
            "base_commit": self._commit_json(ctx, repo, base),
            "merge_base_commit": self._commit_json(ctx, repo, merge_base),
            "status": status,
            "ahead_by": len(ahead),
            "behind_by": len(behind),
            "total_commits": len(ahead),
            "commits": commits,
            "files": files[:COMPARE_FILES_LIMIT],
        }, headers)

    def _commit_json(self, ctx: _Ctx, repo: FakeRepo, sha: str) -> JSON:
        api = f"{ctx.base}/repos/{repo.full_name}"
        tree = hashlib.sha1(sha.encode(), usedforsecurity=False).hexdigest()
        return {
            "sha": sha,
            "node_id": f"C_{sha}",
            "url": f"{api}/commits/{sha}",
            "html_url": f"{ctx.web}/{repo.full_name}/commit/{sha}",
            "comments_url": f"{api}/commits/{sha}/comments",
            "commit": {
                "url": f"{api}/git/commits/{sha}",
                "message": "",
                "tree": {"sha": tree, "url": f"{api}/git/trees/{tree}"},
                "comment_count": 0,
            },
            "author": None,
            "committer": None,
            "parents": [
                {"sha": p, "url": f"{api}/commits/{p}",
                 "html_url": f"{ctx.web}/{repo.full_name}/commit/{p}"}
                for p in repo.parents.get(sha, ())
            ],
        }

    # -- handlers: commit history ----------------------------------------------------------------

    def _get_commits(self, ctx: _Ctx) -> _Resp:
        """`GET /repos/{o}/{r}/commits?sha=&path=`: the history of a branch or commit, newest
        first; with `path`, only the commits that changed it, with git's default history
        simplification (a merge commit is listed only when the path differs from every
        parent, so the PR commit that added a file is listed, not the merge that brought it)."""
        repo = self._ctx_repo(ctx)
        start = ctx.arg("sha") or repo.default_branch
        sha = repo.branches.get(start, start)
        if sha not in repo.commits:
            raise _HttpError(404, f"No commit found for SHA: {start}")
        path = ctx.arg("path")
        history = list(reversed(self._ancestors(repo, sha)))

        def changed(commit: str) -> bool:
            mine = repo.commits[commit].get(path)
            parents = repo.parents.get(commit, ())
            if not parents:
                return mine is not None
            return all(repo.commits[p].get(path) != mine for p in parents)

        listed = [c for c in history if not path or changed(c)]
        return self._paginate(ctx, [self._commit_json(ctx, repo, c) for c in listed])

    def _get_commit_pulls(self, ctx: _Ctx) -> _Resp:
        """`GET /repos/{o}/{r}/commits/{sha}/pulls`: for a commit on the default branch, the
        merged PRs that brought it there; for any other commit, the open PRs containing it."""
        repo = self._ctx_repo(ctx)
        sha = ctx.match["ref"]
        if sha not in repo.commits:
            raise _HttpError(422, f"No commit found for SHA: {sha}")
        on_default = sha in set(self._ancestors(repo, repo.branches[repo.default_branch]))
        found = []
        for (name, _), pr in sorted(self.pulls.items(), key=lambda kv: kv[0][1]):
            if name != repo.full_name.lower():
                continue
            if on_default and not pr.merged:
                continue
            if not on_default and pr.state != "open":
                continue
            own = set(self._ancestors(repo, pr.head_sha)) - set(
                self._ancestors(repo, pr.base_sha)
            )
            if sha in own or sha == pr.merge_commit_sha:
                found.append(self._pull_json(ctx, repo, pr))
        return self._paginate(ctx, found)

    # -- handlers: comments ----------------------------------------------------------------------

    def _get_comments(self, ctx: _Ctx) -> _Resp:
        repo, pr = self._ctx_pull(ctx)
        since: datetime | None = None
        if ctx.arg("since"):
            try:
                since = datetime.fromisoformat(ctx.arg("since").replace("Z", "+00:00"))
            except ValueError:
                raise _HttpError(422, "Validation Failed", errors=[
                    {"resource": "IssueComment", "code": "invalid", "field": "since"}]) from None
        found = [
            self._comment_json(ctx, c)
            for c in self.comment_list.values()
            if c.repo.lower() == repo.full_name.lower() and c.number == pr.number
            # As GitHub's `since`: only comments updated at or after that time.
            and (since is None or c.updated_at >= since)
        ]
        return self._paginate(ctx, found)

    def _comment_body(self, ctx: _Ctx) -> str:
        data = ctx.json()
        body = data.get("body") if isinstance(data, dict) else None
        if not isinstance(body, str) or not body:
            raise _HttpError(422, "Validation Failed", errors=[
                {"resource": "IssueComment", "code": "missing_field", "field": "body"}])
        if len(body) > MAX_BODY_CHARS:
            raise _HttpError(422, "Validation Failed", errors=[{
                "resource": "IssueComment", "code": "custom", "field": "body",
                "message": f"body is too long (maximum is {MAX_BODY_CHARS} characters)"}])
        return body

    def _post_comment(self, ctx: _Ctx) -> _Resp:
        repo, pr = self._ctx_pull(ctx)
        body = self._comment_body(ctx)
        comment = self._create_comment(repo.full_name, pr.number, self._writer(ctx), body)
        return _Resp(201, self._comment_json(ctx, comment))

    def _ctx_comment(self, ctx: _Ctx) -> FakeComment:
        repo = self._ctx_repo(ctx)
        comment = self.comment_list.get(int(ctx.match["id"]))
        if comment is None or comment.repo.lower() != repo.full_name.lower():
            raise _not_found()
        return comment

    def _get_comment(self, ctx: _Ctx) -> _Resp:
        return _Resp(200, self._comment_json(ctx, self._ctx_comment(ctx)))

    def _patch_comment(self, ctx: _Ctx) -> _Resp:
        comment = self._ctx_comment(ctx)
        body = self._comment_body(ctx)
        if comment.login.lower() != self._writer(ctx).lower():
            raise _HttpError(403, "Resource not accessible by integration")
        comment.history.append(comment.body)
        comment.body = body
        comment.updated_at = self.clock()
        return _Resp(200, self._comment_json(ctx, comment))

    # -- handlers: check runs --------------------------------------------------------------------

    def _app_principal(self, ctx: _Ctx) -> int:
        """The App a request acts for; check runs are written by GitHub Apps only."""
        if ctx.principal.kind != "installation":
            raise _HttpError(403, "You must authenticate via a GitHub App.")
        return self.app_id

    @staticmethod
    def _invalid(text: str) -> _HttpError:
        return _HttpError(422, f"Invalid request.\n\n{text}")

    @staticmethod
    def _invalid_annotations() -> _HttpError:
        # What GitHub answers for an annotation with a bad line, column or path.
        return _HttpError(422, "Validation Failed", errors=[
            {"resource": "CheckRun", "code": "invalid", "field": "annotations"}])

    def _missing(self, data: JSON, keys: Iterable[str]) -> str | None:
        missing = [k for k in keys if k not in data or data[k] is None]
        if not missing:
            return None
        names = ", ".join(f'"{k}"' for k in missing)
        return f"{names} {'wasn' if len(missing) == 1 else 'weren'}'t supplied."

    def _member(self, field_name: str, value: Any, allowed: tuple[str, ...]) -> None:
        if value not in allowed:
            shown = json.dumps(value) if value is not None else "nil"
            raise self._invalid(
                f"For 'properties/{field_name}', {shown} is not a member of "
                f"[{', '.join(json.dumps(a) for a in allowed)}]."
            )

    def _check_output(self, output: Any) -> tuple[JSON, list[JSON]]:
        """A check run's `output`, validated as GitHub validates it; returns it and its
        annotations."""
        if not isinstance(output, dict):
            raise self._invalid(f"For 'properties/output', {json.dumps(output)} is not an object.")
        missing = self._missing(output, ("title", "summary"))
        if missing:
            raise self._invalid(missing)
        for key in ("title", "summary", "text"):
            value = output.get(key)
            if value is not None and not isinstance(value, str):
                raise self._invalid(f"For 'properties/{key}', {json.dumps(value)} is not a string.")
        for key in ("summary", "text"):
            value = output.get(key)
            if isinstance(value, str) and len(value) > MAX_CHECK_OUTPUT_CHARS:
                raise self._invalid(
                    f"No more than {MAX_CHECK_OUTPUT_CHARS} characters are allowed in {key}; "
                    f"{len(value)} were supplied."
                )
        annotations = output.get("annotations") or []
        if not isinstance(annotations, list):
            raise self._invalid_annotations()
        if len(annotations) > MAX_ANNOTATIONS_PER_REQUEST:
            raise self._invalid(
                f"No more than {MAX_ANNOTATIONS_PER_REQUEST} items are allowed; "
                f"{len(annotations)} were supplied."
            )
        problems = [
            m for a in annotations if isinstance(a, dict)
            and (m := self._missing(a, ("path", "start_line", "end_line", "annotation_level",
                                        "message")))
        ]
        if problems:
            raise self._invalid("\n".join(problems))
        for a in annotations:
            if not isinstance(a, dict):
                raise self._invalid_annotations()
            self._member("annotation_level", a["annotation_level"], ANNOTATION_LEVELS)
            start, end = a["start_line"], a["end_line"]
            lines_ok = (
                isinstance(start, int) and isinstance(end, int) and not isinstance(start, bool)
                and not isinstance(end, bool) and 1 <= start <= end
            )
            columns = "start_column" in a or "end_column" in a
            if (not lines_ok or not isinstance(a["path"], str) or not a["path"]
                    or not isinstance(a["message"], str) or (columns and start != end)):
                raise self._invalid_annotations()
        return output, [dict(a) for a in annotations]

    def _apply_check_run(self, run: FakeCheckRun, data: JSON) -> None:
        """Apply a create or update body. A completed check run keeps its status and
        conclusion: GitHub does not change them once a check run is completed."""
        status = data.get("status")
        conclusion = data.get("conclusion")
        if status is not None:
            self._member("status", status, CHECK_STATUSES)
        if conclusion is not None:
            self._member("conclusion", conclusion, CHECK_CONCLUSIONS)
            status = "completed"  # GitHub: providing a conclusion completes the check run
        if status == "completed" and conclusion is None and run.conclusion is None:
            raise _HttpError(422, "Validation Failed", errors=[
                {"resource": "CheckRun", "code": "missing_field", "field": "conclusion"}])
        output, annotations = (
            self._check_output(data["output"]) if "output" in data else (None, [])
        )
        for key in ("external_id", "details_url"):
            if key in data and data[key] is not None and not isinstance(data[key], str):
                shown = json.dumps(data[key])
                raise self._invalid(f"For 'properties/{key}', {shown} is not a string.")
        if run.status != "completed":
            if status is not None:
                run.status = status
            if conclusion is not None:
                run.conclusion = conclusion
            if run.status == "completed" and run.completed_at is None:
                run.completed_at = self.clock()
        if "external_id" in data:
            run.external_id = data["external_id"] or ""
        if "details_url" in data:
            run.details_url = data["details_url"]
        if output is not None:
            run.title, run.summary = output["title"], output["summary"]
            if "text" in output:
                run.text = output["text"]
            run.annotations.extend(annotations)  # appended, never replaced
        run.requests.append(copy.deepcopy(data))

    def _post_check_run(self, ctx: _Ctx) -> _Resp:
        repo = self._ctx_repo(ctx)
        app_id = self._app_principal(ctx)
        data = ctx.json()
        if not isinstance(data, dict):
            raise _HttpError(400, "Problems parsing JSON")
        missing = self._missing(data, ("name", "head_sha"))
        if missing:
            raise self._invalid(missing)
        sha = data["head_sha"]
        if not isinstance(sha, str) or sha not in repo.commits:
            raise _HttpError(422, f"No commit found for SHA: {sha}")
        # Validate before anything is stored: a refused request leaves no check run behind.
        probe = FakeCheckRun(0, repo.full_name, sha, str(data["name"]), app_id, 0, self.clock())
        self._apply_check_run(probe, copy.deepcopy(data))
        run = self._new_check_run(repo, sha, str(data["name"]), app_id)
        self._apply_check_run(run, data)
        return _Resp(201, self._check_run_json(ctx, repo, run))

    def _ctx_check_run(self, ctx: _Ctx) -> tuple[FakeRepo, FakeCheckRun]:
        repo = self._ctx_repo(ctx)
        run = self.check_run_list.get(int(ctx.match["id"]))
        if run is None or run.repo.lower() != repo.full_name.lower():
            raise _not_found()
        return repo, run

    def _patch_check_run(self, ctx: _Ctx) -> _Resp:
        repo, run = self._ctx_check_run(ctx)
        app_id = self._app_principal(ctx)
        if run.app_id != app_id:
            raise _HttpError(
                403, f"Invalid app_id `{run.app_id}` - check run can only be modified by the "
                "GitHub App that created it."
            )
        data = ctx.json()
        if not isinstance(data, dict):
            raise _HttpError(400, "Problems parsing JSON")
        probe = copy.deepcopy(run)
        self._apply_check_run(probe, copy.deepcopy(data))
        self._apply_check_run(run, data)
        return _Resp(200, self._check_run_json(ctx, repo, run))

    def _get_check_run(self, ctx: _Ctx) -> _Resp:
        repo, run = self._ctx_check_run(ctx)
        return _Resp(200, self._check_run_json(ctx, repo, run))

    def _get_annotations(self, ctx: _Ctx) -> _Resp:
        _, run = self._ctx_check_run(ctx)
        return self._paginate(ctx, [
            {"path": a["path"], "start_line": a["start_line"], "end_line": a["end_line"],
             "start_column": a.get("start_column"), "end_column": a.get("end_column"),
             "annotation_level": a["annotation_level"], "title": a.get("title"),
             "message": a["message"], "raw_details": a.get("raw_details"),
             "blob_href": f"{ctx.web}/{run.repo}/blob/{run.head_sha}/{a['path']}"}
            for a in run.annotations
        ])

    def _list_check_runs(self, ctx: _Ctx) -> _Resp:
        repo = self._ctx_repo(ctx)
        sha = self._ref_sha(repo, ctx.match["ref"])
        name, status, app = ctx.arg("check_name"), ctx.arg("status"), ctx.arg("app_id")
        which = ctx.arg("filter") or "latest"
        if which not in ("latest", "all"):
            self._member("filter", which, ("latest", "all"))
        runs = [
            r for r in self.check_run_list.values()
            if r.repo.lower() == repo.full_name.lower() and r.head_sha == sha
            and (not name or r.name == name) and (not status or r.status == status)
            and (not app or str(r.app_id) == app)
        ]
        if which == "latest":  # the newest check run of each name in each suite
            newest: dict[tuple[int, str], FakeCheckRun] = {}
            for r in runs:
                newest[(r.suite_id, r.name)] = r
            runs = list(newest.values())
        runs.sort(key=lambda r: r.id, reverse=True)
        page = self._paginate(ctx, [self._check_run_json(ctx, repo, r) for r in runs])
        return _Resp(200, {"total_count": len(runs), "check_runs": page.payload}, page.headers)

    # -- handlers: comparisons and pull request listings -----------------------------------------

    def _compare(self, ctx: _Ctx) -> _Resp:
        repo = self._ctx_repo(ctx)
        base_ref, sep, head_ref = ctx.match["basehead"].partition("...")
        if not sep:
            raise _not_found()
        base_sha, head_sha = repo.branches.get(base_ref, base_ref), repo.branches.get(
            head_ref, head_ref)
        if base_sha not in repo.commits or head_sha not in repo.commits:
            raise _not_found()
        # The fake keeps no history: the two trees are compared, which is what GitHub's
        # three-dot compare shows when the base is an ancestor of the head (a merge group's
        # base always is).
        base, head = repo.commits[base_sha], repo.commits[head_sha]
        files: list[JSON] = []
        for path in sorted(set(base) | set(head)):
            if path not in base:
                status = "added"
            elif path not in head:
                status = "removed"
            elif base[path] != head[path]:
                status = "modified"
            else:
                continue
            data = head.get(path, base.get(path, b""))
            files.append({
                "sha": _blob_sha(data) if path in head else "0" * 40,
                "filename": path, "status": status,
                "additions": 0, "deletions": 0, "changes": 0,
                "blob_url": f"{ctx.web}/{repo.full_name}/blob/{head_sha}/{path}",
                "contents_url": f"{ctx.base}/repos/{repo.full_name}/contents/{path}"
                f"?ref={head_sha}",
            })
        api = f"{ctx.base}/repos/{repo.full_name}"
        commit = {"sha": head_sha, "url": f"{api}/commits/{head_sha}"}
        return _Resp(200, {
            "url": f"{api}/compare/{base_ref}...{head_ref}",
            "html_url": f"{ctx.web}/{repo.full_name}/compare/{base_ref}...{head_ref}",
            "status": "ahead" if files else "identical",
            "ahead_by": 1 if files else 0,
            "behind_by": 0,
            "total_commits": 1 if files else 0,
            "base_commit": {"sha": base_sha, "url": f"{api}/commits/{base_sha}"},
            "merge_base_commit": {"sha": base_sha, "url": f"{api}/commits/{base_sha}"},
            "commits": [commit] if files else [],
            "files": files[:MAX_COMPARE_FILES],
        })

    def _list_pulls(self, ctx: _Ctx) -> _Resp:
        repo = self._ctx_repo(ctx)
        state, base = ctx.arg("state") or "open", ctx.arg("base")
        if state not in ("open", "closed", "all"):
            raise _HttpError(422, "Validation Failed", errors=[
                {"resource": "PullRequest", "code": "invalid", "field": "state"}])
        found = [
            pr for (name, _), pr in sorted(self.pulls.items(), key=lambda kv: -kv[0][1])
            if name == repo.full_name.lower() and (state == "all" or pr.state == state)
            and (not base or pr.base_ref == base)
        ]
        return self._paginate(ctx, [self._pull_json(ctx, repo, pr) for pr in found])


__all__ = [
    "FakeCheckRun",
    "FakeComment",
    "FakeGitHub",
    "FakeMergeGroup",
    "FakePull",
    "FakeRepo",
    "FakeReview",
    "FakeUser",
    "generate_app_key",
    "iso",
]
