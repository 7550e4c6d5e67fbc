"""The GitHub adapter: with `github_app`, the only code (besides the fake server) that imports
PyGithub — on first use, not at start (the library takes about 0.1 s to import).

`GitHubRepo` reads and writes the one repository the service serves and answers in the
project's own types (`PullInfo`, `ChangedFile`, `Review`). Every failure — HTTP errors, rate
limits, bad credentials, timeouts, refused connections, malformed answers — comes out as
`webhook.core.errors.GitHubError` with a message that names the operation and the HTTP status.

Budget. GitHub waits 10 s for a webhook response, so each request has a short timeout
(`Budget.github_timeout`, 4 s in production) and a bounded retry: at most 2 retries of
idempotent requests on 500/502/503/504 or a refused connection, a short backoff, no sleeping on
`Retry-After` or rate limits (PyGithub's default `GithubRetry` would sleep until the rate limit
resets) and no retry after a read timeout (it would blow the budget). PyGithub's throttling
(0.25 s between requests, 1 s between writes) is turned off.

Call counts. Each method's docstring says how many HTTP requests it makes; the README and the
benchmarks count calls per event from them. Objects are created lazily (`Github(lazy=True)`) so
that PyGithub makes no hidden GETs: `get_repo`, `get_pull`, `get_issue` and `get_commit` cost
nothing until an attribute that needs the server is read. With a GitHub App, the first call
of the process also looks up the installation and creates an installation token (2 extra
calls); the token is cached and renewed 5 minutes before it expires (tokens last an hour).

Threads. PyGithub's `Requester` keeps one connection object whose `request()` stores the
request in attributes that `getresponse()` sends later — two threads sharing it can send each
other's requests. So each thread gets its own `Github` (and HTTP session); they share the
credentials, and the installation token is fetched under a lock.
"""

from __future__ import annotations

import enum
import json
import logging
import math
import re
import threading
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import requests
import requests.adapters
import urllib3
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from urllib3.util.retry import Retry

from webhook.core.budget import PRODUCTION
from webhook.core.errors import ConfigError, FileTooLargeError, GitHubError, ListTooLongError
from webhook.core.model import (
    ChangedFile,
    ChangedFiles,
    CommitStatus,
    PullComment,
    PullInfo,
    Review,
    ReviewState,
)
from webhook.core.names import STATUS_CONTEXT, STATUS_DESCRIPTION_MAX
from webhook.core.render import fit_comment

if TYPE_CHECKING:
    # PyGithub takes about 0.1 s to import: it is loaded on the adapter's first use (or by the
    # App Engine warmup request), not while the app starts.
    from github import Auth, Github, GithubException
    from github.Repository import Repository

    from webhook.adapters.github_app_auth import InstallationAuth

DEFAULT_API_URL = "https://api.github.com"
MAX_FILE_BYTES = 64 * 1024
#: The contents API's raw media type: the file's bytes, for files up to 100 MB.
RAW_MEDIA_TYPE = "application/vnd.github.raw+json"
API_VERSION = "2022-11-28"
#: Default-branch files whose last answer is kept for conditional requests (the policy files).
MAX_CACHED_FILES = 8
# GitHub lists at most 3000 files of a PR; a longer list (of anything) means a broken server,
# and stopping keeps a `Link` chain from paging forever.
MAX_LIST_ITEMS = 3000
#: GitHub lists at most 300 files in a comparison of two commits (on its first page only): a
#: list that long may be cut.
COMPARE_MAX_FILES = 300
#: Most reviews or comments read for one PR. Anyone who can comment can add thousands; reading
#: them takes one call per 100, fetched PAGE_WORKERS at a time once the first page names the
#: last one, so this many stay well inside GitHub's 10 s even at 250 ms per call.
MAX_LISTED = 10_000
#: Pages of one listing fetched at once (GitHub allows 100 concurrent requests per token).
PAGE_WORKERS = 8
TOKEN_RENEW_BEFORE = timedelta(minutes=5)
#: Least seconds between two lookups of the App installation after a delivery named another one
#: (the App may have been reinstalled): a stream of foreign deliveries costs a call a minute.
INSTALLATION_RECHECK_SECONDS = 60.0
#: What GitHub answers an App installation token on `GET /user` (HTTP 403).
NOT_FOR_INTEGRATIONS = "Resource not accessible by integration"
INSTALLATION_TOKEN_PROBLEM = (
    "GITHUB_TOKEN is a GitHub App installation token: GitHub refuses it GET /user (HTTP 403 "
    f'"{NOT_FOR_INTEGRATIONS}"), so the service cannot tell its own comments, and it expires '
    "within an hour. Set GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY instead (the service then "
    "creates installation tokens itself), or use a personal access token"
)
USER_AGENT = "jitaccess-github"
_REPOSITORY = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_RETRY_STATUSES = (500, 502, 503, 504)
T = TypeVar("T")
log = logging.getLogger("jitaccess")


class Unread(enum.Enum):
    """`set_status(current=UNREAD)`: the caller did not read the current status."""

    UNREAD = "unread"


UNREAD = Unread.UNREAD


@dataclass(frozen=True)
class GitHubAuth:
    """How to reach GitHub: API URL, repository, and a token or GitHub App credentials."""

    repository: str  # owner/name
    api_url: str = DEFAULT_API_URL
    token: str | None = field(default=None, repr=False)
    app_id: int | str | None = None
    private_key_pem: str | None = field(default=None, repr=False)
    timeout: int = PRODUCTION.github_timeout  # seconds per request (PyGithub wants an int)
    per_page: int = 100

    def __post_init__(self) -> None:
        if not _REPOSITORY.match(self.repository):
            raise ConfigError(f"GitHub repository must be owner/name, got {self.repository!r}")
        if not re.match(r"^https?://[^/\s]+(/\S*)?$", self.api_url):
            raise ConfigError(f"GitHub API URL must be an http(s) URL, got {self.api_url!r}")
        has_app = bool(self.app_id) or bool(self.private_key_pem)
        if bool(self.token) == has_app:
            raise ConfigError("GitHub needs either a token or a GitHub App ID and private key")
        if has_app:
            if not str(self.app_id or "").isdigit():
                raise ConfigError("GitHub App ID must be a number")
            try:
                key = serialization.load_pem_private_key(
                    (self.private_key_pem or "").encode(), password=None
                )
            except (ValueError, TypeError):
                raise ConfigError("GitHub App private key is not a PEM private key") from None
            if not isinstance(key, rsa.RSAPrivateKey):
                raise ConfigError("GitHub App private key must be an RSA key")
        if not 1 <= self.timeout <= 30 or not 1 <= self.per_page <= 100:
            raise ConfigError("GitHub timeout must be 1..30 s and per_page 1..100")

    @property
    def owner(self) -> str:
        """The repository owner."""
        return self.repository.split("/", 1)[0]

    @property
    def name(self) -> str:
        """The repository name."""
        return self.repository.split("/", 1)[1]

    @property
    def base_url(self) -> str:
        """The API URL without a trailing slash (PyGithub's `base_url`)."""
        return self.api_url.rstrip("/")


def _retry(methods: frozenset[str] = Retry.DEFAULT_ALLOWED_METHODS) -> Retry:
    # Bounded: 3 attempts at most, about 0.4 s of backoff in all; never sleeps on Retry-After;
    # read timeouts are not retried (read=False re-raises them as they are).
    return Retry(
        total=2,
        connect=2,
        read=False,
        status=2,
        other=0,
        backoff_factor=0.2,
        backoff_max=1.0,
        status_forcelist=_RETRY_STATUSES,
        allowed_methods=methods,
        respect_retry_after_header=False,
        raise_on_status=False,  # hand the last 5xx to PyGithub, which reports its status
    )


@contextmanager
def _translating(what: str, timeout: int) -> Iterator[None]:
    """Translate every failure of the PyGithub calls inside into a GitHubError about `what`."""
    from github import GithubException
    from github.GithubException import (
        BadAttributeException,
        BadCredentialsException,
        RateLimitExceededException,
        UnknownObjectException,
    )

    try:
        yield
    except GitHubError:
        raise
    except RateLimitExceededException as e:
        raise _rate_limited(what, e) from None
    except BadCredentialsException as e:
        raise GitHubError(
            f"{what}: bad credentials (HTTP {e.status}); check the token or the App key",
            status=e.status,
        ) from None
    except UnknownObjectException as e:
        raise GitHubError(f"{what}: not found (HTTP 404)", status=e.status) from None
    except GithubException as e:
        if e.status in (403, 429) and _header(e, "x-ratelimit-remaining") == "0":
            raise _rate_limited(what, e) from None
        raise GitHubError(f"{what}: HTTP {e.status}: {_describe(e)}", status=e.status) from None
    except requests.Timeout:
        raise GitHubError(f"{what}: no answer within {timeout} s (timeout)") from None
    except requests.ConnectionError as e:
        raise GitHubError(f"{what}: cannot connect ({type(e).__name__})") from None
    except (requests.RequestException, urllib3.exceptions.HTTPError) as e:
        raise GitHubError(f"{what}: request failed ({type(e).__name__})") from None
    except (
        AssertionError,
        AttributeError,
        BadAttributeException,
        KeyError,
        TypeError,
        ValueError,
    ) as e:
        # A malformed answer (missing field, wrong type, URL on a foreign host, bad key).
        raise GitHubError(f"{what}: unexpected answer ({type(e).__name__})") from None


def _rate_limited(what: str, e: GithubException) -> GitHubError:
    wait = _header(e, "retry-after")
    reset = _header(e, "x-ratelimit-reset")
    when = f"; retry after {wait} s" if wait else ""
    if not when and reset and reset.isdigit():
        when = f"; resets at {datetime.fromtimestamp(int(reset), UTC):%H:%M:%S} UTC"
    return GitHubError(f"{what}: rate limit exceeded (HTTP {e.status}){when}", status=e.status)


def _bounded(items: Iterable[T], what: str) -> Iterator[T]:
    """Items of a paginated list, refusing more than MAX_LIST_ITEMS."""
    for count, item in enumerate(items):
        if count >= MAX_LIST_ITEMS:
            raise GitHubError(f"{what}: more than {MAX_LIST_ITEMS} items")
        yield item


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _time(value: Any) -> datetime | None:
    """A REST API timestamp (`2026-11-29T10:00:00Z`) as an aware UTC datetime; None for null."""
    if value is None:
        return None
    return _utc(datetime.fromisoformat(str(value).replace("Z", "+00:00")))


def _last_page(headers: dict[str, Any], page: int) -> int:
    """The page number the `Link` header calls `last` (`page` itself when there is none)."""
    link = next((str(v) for k, v in headers.items() if k.lower() == "link"), "")
    for part in link.split(","):
        url, _, rel = part.partition(";")
        if rel.strip().replace(" ", "") == 'rel="last"':
            query = urllib.parse.urlparse(url.strip().strip("<>")).query
            found = urllib.parse.parse_qs(query).get("page", [""])[-1]
            if not found.isdigit():
                raise ValueError("a Link header names no last page number")
            return max(page, int(found))
    return page


def _account_id(value: object) -> int | None:
    """A user's numeric id from an answer; None when missing or not a positive number."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        return None
    return value


def _describe(e: GithubException) -> str:
    data = e.data
    message = data.get("message") if isinstance(data, dict) else None
    text = str(message) if message else (e.message or "")
    return text.replace("\n", " ")[:200]


def _read_at_most(resp: requests.Response, limit: int) -> bytes:
    """The body of a streamed answer, at most `limit` bytes of it (decoded if compressed)."""
    chunks: list[bytes] = []
    total = 0
    for chunk in resp.iter_content(64 * 1024):
        chunks.append(chunk)
        total += len(chunk)
        if total >= limit:
            break
    return b"".join(chunks)[:limit]


def _json_object(body: bytes) -> dict[str, object]:
    """An error answer's JSON object ({} when it is none), for PyGithub's exception types."""
    try:
        data = json.loads(body or b"{}")
    except ValueError:
        return {"message": body[:200].decode("utf-8", "replace")}
    return data if isinstance(data, dict) else {}


def _header(e: GithubException, name: str) -> str | None:
    headers = e.headers or {}
    for key, value in headers.items():
        if key.lower() == name.lower():
            return str(value)
    return None


class GitHubUsers:
    """GitHub accounts by login (`jitaccess identities pin`): no repository, only a token.

    Thread-safe like `GitHubRepo`: each thread gets its own PyGithub client.
    """

    def __init__(self, token: str, api_url: str = DEFAULT_API_URL, timeout: int = 10) -> None:
        if not re.match(r"^https?://[^/\s]+(/\S*)?$", api_url):
            raise ConfigError(f"GitHub API URL must be an http(s) URL, got {api_url!r}")
        self._token = token
        self._base_url = api_url.rstrip("/")
        self._timeout = timeout
        self._local = threading.local()
        self._clients: list[Github] = []
        self._lock = threading.Lock()

    def _gh(self) -> Github:
        gh: Github | None = getattr(self._local, "gh", None)
        if gh is None:
            from github import Auth, Github

            gh = Github(
                base_url=self._base_url, auth=Auth.Token(self._token), timeout=self._timeout,
                user_agent=USER_AGENT, retry=_retry(), seconds_between_requests=None,
                seconds_between_writes=None, lazy=True,
            )
            self._local.gh = gh
            with self._lock:
                self._clients.append(gh)
        return gh

    def account_id(self, login: str) -> int | None:
        """The numeric id of the account using `login` now, None when nobody does
        (1 call: GET /users/{login})."""
        with _translating(f"looking up the GitHub account {login}", self._timeout):
            from github.GithubException import UnknownObjectException

            try:
                found = _account_id(self._gh().get_user(login).id)
            except UnknownObjectException:
                return None
            if found is None:
                raise GitHubError(f"looking up the GitHub account {login}: the answer has no id")
            return found

    def close(self) -> None:
        """Close every HTTP connection."""
        with self._lock:
            clients, self._clients = self._clients, []
        for gh in clients:
            gh.close()


class GitHubRepo:
    """The repository the service serves, through PyGithub; every error is a `GitHubError`."""

    def __init__(self, settings: GitHubAuth) -> None:
        self.settings = settings
        # Built on first use (see `_credentials`): constructing the adapter imports nothing.
        self._auth: Auth.Auth | None = None
        self._installation: InstallationAuth | None = None
        self._auth_lock = threading.Lock()
        self._local = threading.local()
        self._clients: list[Github] = []
        self._sessions: list[requests.Session] = []
        self._clients_lock = threading.Lock()
        # Default-branch files by path: (ETag, bytes) of the last answer, for conditional GETs.
        self._etags: dict[str, tuple[str, bytes]] = {}
        self._etag_lock = threading.Lock()
        self._login: str | None = None
        self._pages: ThreadPoolExecutor | None = None  # fetches pages of long listings at once
        self.max_listed = MAX_LISTED  # most reviews or comments read per listing

    def installation_id(self) -> int | None:
        """The GitHub App installation serving the repository, None with a token (1 call the
        first time with an App, 0 once a token was fetched)."""
        app = self._app
        if app is None:
            return None
        with self._calling("looking up the GitHub App installation"):
            return app.installation_id()

    def recheck_installation(self) -> int | None:
        """The installation serving the repository, looked up again unless that was done less
        than INSTALLATION_RECHECK_SECONDS ago (then the one known); None with a token.

        For a delivery naming another installation: a reinstalled App has a new one, and the
        old one's tokens no longer work, so a changed installation also drops the token.
        Calls: 1 when it looks again (+1 later for a new token if it changed), else 0.
        """
        app = self._app
        if app is None:
            return None
        with self._calling("looking up the GitHub App installation again"):
            return app.recheck(INSTALLATION_RECHECK_SECONDS)

    # -- plumbing --------------------------------------------------------------------------------

    def _credentials(self) -> Auth.Auth:
        """PyGithub's auth for the settings: a token, or the App's installation auth (which
        shares one installation token between the per-thread clients). Built on first use."""
        with self._auth_lock:
            if self._auth is None:
                if self.settings.token:
                    from github import Auth

                    self._auth = Auth.Token(self.settings.token)
                else:
                    from webhook.adapters.github_app_auth import InstallationAuth

                    self._installation = InstallationAuth(self.settings)
                    self._auth = self._installation
            return self._auth

    @property
    def _app(self) -> InstallationAuth | None:
        """The GitHub App's installation auth (built if need be); None with a token."""
        if self.settings.token:
            return None
        self._credentials()
        return self._installation

    def _gh(self) -> Github:
        gh: Github | None = getattr(self._local, "gh", None)
        if gh is None:
            from github import Github

            gh = Github(
                base_url=self.settings.base_url,
                auth=self._credentials(),
                timeout=self.settings.timeout,
                user_agent=USER_AGENT,
                per_page=self.settings.per_page,
                retry=_retry(),
                seconds_between_requests=None,
                seconds_between_writes=None,
                lazy=True,
            )
            self._local.gh = gh
            with self._clients_lock:
                self._clients.append(gh)
        return gh

    def _repo(self) -> Repository:
        # Lazy: no request until an attribute needs the server.
        return self._gh().get_repo(self.settings.repository)

    def _calling(self, what: str) -> AbstractContextManager[None]:
        """Run PyGithub calls, translating every failure into a GitHubError about `what`."""
        return _translating(what, self.settings.timeout)

    def close(self) -> None:
        """Close every HTTP connection this adapter opened."""
        with self._clients_lock:
            clients, self._clients = self._clients, []
            sessions, self._sessions = self._sessions, []
            pages, self._pages = self._pages, None
        if pages is not None:
            pages.shutdown(wait=True)
        for gh in clients:
            gh.close()
        for session in sessions:
            session.close()
        if self._installation is not None:
            self._installation.close()

    def _page(self, what: str, path: str, params: dict[str, Any], page: int) -> tuple[
        list[Any], int
    ]:
        """One page of a listing at `path` (raw JSON items) and the number of its last page,
        from the `Link` header (1 call)."""
        with self._calling(what):
            paging: dict[str, Any] = {"page": page} if page > 1 else {}
            headers, data = self._gh().requester.requestJsonAndCheck(
                "GET", f"{self.settings.base_url}{path}",
                parameters={**params, **paging, "per_page": self.settings.per_page},
            )
            if not isinstance(data, list):
                raise TypeError("a listing answered something other than a list")
            return data, _last_page(headers, page)

    def _listing(
        self,
        what: str,
        path: str,
        params: dict[str, Any],
        *,
        enough: Callable[[list[Any]], bool] | None = None,
    ) -> tuple[list[Any], bool]:
        """Every item of a listing, in GitHub's order, and whether that is all of them.

        Page 1 first; unless `enough` says that page holds what the caller needs, every other
        page is fetched at once (PAGE_WORKERS at a time), up to `max_listed` items. Calls: one
        per page; rounds: 1 + ceil((pages - 1) / PAGE_WORKERS). The second value is False when
        the listing is longer (then only its first pages are returned).
        """
        first, last = self._page(what, path, params, 1)
        if last <= 1 or (enough is not None and enough(first)):
            return first, True
        most = max(1, math.ceil(self.max_listed / self.settings.per_page))
        pages = range(2, min(last, most) + 1)
        futures = [self._page_pool().submit(self._page, what, path, params, p) for p in pages]
        # Wait for every page, even when one failed: no request of this listing may still be
        # running once it has answered.
        errors = [e for f in futures if (e := f.exception()) is not None]
        if errors:
            raise errors[0]
        items = first + [item for f in futures for item in f.result()[0]]
        return items, last <= most

    def _page_pool(self) -> ThreadPoolExecutor:
        with self._clients_lock:
            if self._pages is None:
                self._pages = ThreadPoolExecutor(
                    max_workers=PAGE_WORKERS, thread_name_prefix="jit-gh-pages"
                )
            return self._pages

    def _path(self, tail: str) -> str:
        owner, name = (urllib.parse.quote(p, safe="") for p in self.settings.repository.split("/"))
        return f"/repos/{owner}/{name}{tail}"

    # -- reads -----------------------------------------------------------------------------------

    def pull(self, number: int) -> PullInfo:
        """The pull request (1 call: GET /pulls/{n})."""
        with self._calling(f"reading pull request #{number}"):
            pr = self._repo().get_pull(number)
            pr.complete()
            # From the raw answer: nested lazy objects would GET the repository or the users
            # when a field is missing.
            data = pr.raw_data
            base_repo = (data.get("base") or {}).get("repo") or {}
            requested = data.get("requested_reviewers") or []
            return PullInfo(
                number=int(pr.number),
                author=str(pr.user.login),
                head_sha=str(pr.head.sha),
                base_ref=str(pr.base.ref),
                state=str(pr.state),
                merged=bool(pr.merged),
                merged_at=_utc(pr.merged_at),
                html_url=str(pr.html_url),
                title=str(pr.title or ""),
                default_branch=str(base_repo.get("default_branch") or ""),
                requested_reviewers=tuple(
                    str(u["login"]) for u in requested if isinstance(u, dict) and u.get("login")
                ),
                author_id=_account_id((data.get("user") or {}).get("id")),
            )

    def files(self, number: int) -> tuple[ChangedFile, ...]:
        """Every changed file of a PR (1 call per 100 files: GET /pulls/{n}/files)."""
        with self._calling(f"listing the files of pull request #{number}"):
            pr = self._repo().get_pull(number)
            return tuple(
                ChangedFile(
                    filename=str(f.filename),
                    status=str(f.status),
                    previous_filename=str(f.previous_filename) if f.previous_filename else None,
                )
                for f in _bounded(pr.get_files(), "listing files")
            )

    def pull_that_added(self, path: str, ref: str) -> int | None:
        """The number of the merged PR that added `path` to `ref`, or None (2 calls for a file
        changed once: GET /commits?sha=&path=, then GET /commits/{sha}/pulls for the oldest).

        The oldest commit of the path's history added it; GitHub names the merged PR that
        brought that commit to the default branch, however it was merged.
        """
        with self._calling(f"finding the pull request that added {path}"):
            repo = self._repo()
            history = list(_bounded(repo.get_commits(sha=ref, path=path), "listing commits"))
            if not history:
                return None
            for pull in _bounded(history[-1].get_pulls(), "listing pull requests"):
                if pull.merged_at is not None:
                    return int(pull.number)
            return None

    def compare(self, base: str, head: str) -> ChangedFiles:
        """The files a PR from `head` into `base` changes: from the merge base of the two to
        `head`, as in `git diff base...head` (1 call: GET /compare/{base}...{head}).

        Read at an exact head commit, this is the diff of that commit and no other, whatever
        is pushed meanwhile. GitHub lists at most COMPARE_MAX_FILES files there: a list that
        long is reported as not complete.
        """
        with self._calling(f"comparing {base}...{head[:12]}"):
            # One commit per page: only the files are needed, and they come with page 1.
            comparison = self._repo().compare(base, head, comparison_commits_per_page=1)
            listed = comparison.raw_data.get("files") or []
            if not isinstance(listed, list):
                raise TypeError("the comparison's files are not a list")
            files = tuple(
                ChangedFile(
                    filename=str(f["filename"]),
                    status=str(f["status"]),
                    previous_filename=(
                        str(f["previous_filename"]) if f.get("previous_filename") else None
                    ),
                )
                for f in listed
            )
            return ChangedFiles(files, complete=len(files) < COMPARE_MAX_FILES)

    def reviews(self, number: int) -> tuple[Review, ...]:
        """The PR's reviews, oldest first (1 call per 100: GET /pulls/{n}/reviews, the pages
        after the first fetched at once).

        Reviews by deleted accounts (no user) or with a state this service does not know are
        left out: they can never count as approvals. More than MAX_LISTED reviews raise
        ListTooLongError: approvals must not be judged on part of them.
        """
        what = f"listing the reviews of pull request #{number}"
        with self._calling(what):
            items, complete = self._listing(what, self._path(f"/pulls/{number}/reviews"), {})
            if not complete:
                raise ListTooLongError(what, self.max_listed)
            out: list[Review] = []
            for data in items:
                user = data.get("user")
                state = str(data.get("state") or "").upper()
                if not isinstance(user, dict) or not user.get("login"):
                    continue
                if state not in ReviewState.__members__:
                    continue
                out.append(
                    Review(
                        id=int(data["id"]),
                        login=str(user["login"]),
                        state=ReviewState(state),
                        commit_id=str(data.get("commit_id") or ""),
                        submitted_at=_time(data.get("submitted_at")),
                        user_id=_account_id(user.get("id")),
                    )
                )
            return tuple(out)

    def requested_reviewers(self, number: int) -> tuple[str, ...]:
        """Logins asked to review (1 call: GET /pulls/{n}/requested_reviewers)."""
        with self._calling(f"reading the review requests of pull request #{number}"):
            users, _teams = self._repo().get_pull(number).get_review_requests()
            return tuple(str(u.login) for u in users)

    def file_bytes(
        self, path: str, ref: str | None = None, max_bytes: int = MAX_FILE_BYTES
    ) -> bytes | None:
        """A file's bytes at a ref (None: the default branch), None if absent
        (1 call: GET /contents/{path}[?ref=]; on the default branch a conditional one, which
        GitHub answers 304 without a body, and without counting it, while the file is unchanged).

        Read through the contents API's raw media type: its JSON form carries files of 1 MB at
        most (larger ones come back with an empty `content`), and an identities file may hold
        2 MiB. The answer is streamed and read no further than `max_bytes`.
        Raises FileTooLargeError above `max_bytes`, GitHubError for a directory or a
        submodule (GitHub answers those in JSON whatever media type was asked for).
        """
        where = f"{path} at {ref}" if ref else f"{path} on the default branch"
        with self._calling(f"reading {where}"):
            from github.GithubException import UnknownObjectException

            try:
                return self._raw_file(path, ref, max_bytes, where)
            except UnknownObjectException:
                return None

    def _raw_file(self, path: str, ref: str | None, max_bytes: int, where: str) -> bytes:
        """GET the raw contents of a file through this thread's session (see `file_bytes`)."""
        from github.Requester import Requester

        url = (
            f"{self.settings.base_url}/repos/{self.settings.owner}/{self.settings.name}"
            f"/contents/{urllib.parse.quote(path)}"
        )
        headers = {"Accept": RAW_MEDIA_TYPE, "User-Agent": USER_AGENT,
                   "X-GitHub-Api-Version": API_VERSION}
        self._credentials().authentication(headers)
        # The default branch's policy files are read on every event and rarely change: asked
        # for conditionally, an unchanged file is a 304 without a body, which GitHub does not
        # count against the rate limit. Files at a commit are read once; they are not kept.
        with self._etag_lock:
            known = self._etags.get(path) if ref is None else None
        if known is not None:
            headers["If-None-Match"] = known[0]
        with self._session().get(
            url, params={"ref": ref} if ref else None, headers=headers,
            timeout=self.settings.timeout, stream=True, allow_redirects=False,
        ) as resp:
            answer_headers = {k.lower(): v for k, v in resp.headers.items()}
            if resp.status_code == 304 and known is not None:
                return known[1]
            if resp.status_code != 200:
                raise Requester.createException(
                    resp.status_code, answer_headers, _json_object(_read_at_most(resp, 65536))
                )
            if answer_headers.get("content-type", "").startswith("application/json"):
                listing = json.loads(_read_at_most(resp, MAX_FILE_BYTES) or b"null")
                if isinstance(listing, list):
                    raise GitHubError(f"reading {where}: is a directory, not a file")
                kind = listing.get("type") if isinstance(listing, dict) else None
                raise GitHubError(f"reading {where}: is a {kind or 'thing'}, not a file")
            declared = answer_headers.get("content-length", "")
            plain = answer_headers.get("content-encoding", "identity") == "identity"
            if plain and declared.isdigit() and int(declared) > max_bytes:
                raise FileTooLargeError(path, int(declared), max_bytes)
            data = _read_at_most(resp, max_bytes + 1)
            if len(data) > max_bytes:
                raise FileTooLargeError(path, len(data), max_bytes)
            etag = answer_headers.get("etag")
            if ref is None and etag:
                with self._etag_lock:
                    self._etags[path] = (etag, data)
                    while len(self._etags) > MAX_CACHED_FILES:
                        self._etags.pop(next(iter(self._etags)))
            return data

    def _session(self) -> requests.Session:
        """This thread's HTTP session for raw reads, with the same bounded retry as PyGithub's."""
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            adapter = requests.adapters.HTTPAdapter(max_retries=_retry())
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            self._local.session = session
            with self._clients_lock:
                self._sessions.append(session)
        return session

    def default_branch(self) -> str:
        """The repository's default branch (1 call: GET /repos/{o}/{r})."""
        with self._calling("reading the repository"):
            return str(self._repo().default_branch)

    def self_login(self) -> str:
        """The bot's own login, cached: `<slug>[bot]` for an App (0 calls once a token was
        fetched), the token's user for a token (1 call the first time: GET /user)."""
        if self._login is None:
            with self._calling("identifying the service's own account"):
                app = self._app
                if app is not None:
                    self._login = f"{app.slug()}[bot]"
                else:
                    self._login = self._token_login()
        return self._login

    def _token_login(self) -> str:
        """The login of the token's account (1 call: GET /user); ConfigError for an App
        installation token, which GitHub refuses that call."""
        from github import GithubException

        try:
            return str(self._gh().get_user().login)
        except GithubException as e:
            if e.status == 403 and NOT_FOR_INTEGRATIONS.lower() in _describe(e).lower():
                raise ConfigError(INSTALLATION_TOKEN_PROBLEM) from None
            raise

    def comments(
        self, number: int, *, since: datetime | None = None, until: str | None = None
    ) -> tuple[PullComment, ...]:
        """The PR's comments, oldest first (1 call per 100 comments, the pages after the first
        fetched at once; +1 for `self_login` the first time with a token and `until`).

        `since`: only comments created or edited at or after that moment (GitHub's `since=`),
        e.g. those younger than a merge. `until`: a marker; when the first page holds one of the
        service's own comments starting with it, no later page is read — the service's status
        comment is nearly always among a PR's first comments, however many follow. More than
        MAX_LISTED comments raise ListTooLongError, except with `until`, which is then answered
        with the first MAX_LISTED (a marker not among them is taken as absent).

        A listing read once per event can be handed to `comments_with` and `upsert_comment`,
        which then list nothing themselves.
        """
        what = f"listing the comments of pull request #{number}"
        params = {"since": since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")} if since else {}
        enough: Callable[[list[Any]], bool] | None = None
        if until is not None:
            me = self.self_login().lower()

            def enough(page: list[Any]) -> bool:
                return any(
                    str((c.get("user") or {}).get("login") or "").lower() == me
                    and str(c.get("body") or "").startswith(until)
                    for c in page
                )

        with self._calling(what):
            items, complete = self._listing(
                what, self._path(f"/issues/{number}/comments"), params, enough=enough
            )
            if not complete and until is None:
                raise ListTooLongError(what, self.max_listed)
            return tuple(
                PullComment(
                    int(c["id"]),
                    str((c.get("user") or {}).get("login") or ""),
                    str(c.get("body") or ""),
                )
                for c in items
            )

    def comments_with(
        self, number: int, marker: str, comments: Sequence[PullComment] | None = None
    ) -> list[str]:
        """Bodies of this service's own comments that start with `marker`, oldest first
        (0 calls with `comments` already listed, else 1 per 100 comments; +1 for `self_login`
        the first time with a token).

        Comments by anyone else are ignored, so nobody can forge the service's records; and so
        are comments of the service's account that do not start with the marker — with a
        person's token, the comments that person writes are not the service's records, even
        when they quote one.
        """
        listed = self.comments(number) if comments is None else comments
        return [c.body for c in self._own_with(marker, listed)]

    def _own_with(self, marker: str, comments: Sequence[PullComment]) -> list[PullComment]:
        """This service's own comments starting with `marker`."""
        me = self.self_login().lower()
        return [c for c in comments if c.author.lower() == me and c.body.startswith(marker)]

    # -- writes ----------------------------------------------------------------------------------

    def commit_status(self, sha: str, context: str = "jit-access") -> CommitStatus | None:
        """The current status of `context` on a commit, None if it has none (1 call:
        GET /commits/{sha}/status).

        The combined status holds the latest status of each context, so one call answers
        whatever else posts statuses on the commit; the list of statuses (`…/statuses`, newest
        first) mixes every context and every older status, and could need several pages.
        """
        with self._calling(f"reading the {context} status of {sha[:12]}"):
            combined = self._repo().get_commit(sha).get_combined_status()
            for status in combined.statuses:
                if status.context == context:
                    return CommitStatus(
                        str(status.state), status.description or None, status.target_url or None
                    )
            return None

    def set_status(
        self,
        sha: str,
        state: str,
        description: str,
        context: str = STATUS_CONTEXT,
        target_url: str | None = None,
        *,
        current: CommitStatus | None | Unread = UNREAD,
    ) -> bool:
        """Set the commit status unless it is already exactly that; returns whether it posted.

        GitHub keeps at most 1,000 statuses per commit and context and refuses more (422), so
        an event delivered again, or a review that changes nothing, must not post another.
        `current` is the status the caller read earlier in the event (`commit_status`, None
        for none); without it the status is read first. A failed read posts anyway.
        Calls: 1 (POST /statuses/{sha}) or 0 when equal, +1 (the read) without `current`.
        The description is cut to fit GitHub's limit.
        """
        if len(description) > STATUS_DESCRIPTION_MAX:
            description = description[: STATUS_DESCRIPTION_MAX - 1] + "…"
        wanted = CommitStatus(state, description or None, target_url or None)
        if current is UNREAD:
            try:
                current = self.commit_status(sha, context)
            except GitHubError as exc:
                log.warning("posting the %s status without comparing: %s", context, exc)
                current = None
        if current == wanted:
            return False
        with self._calling(f"setting the {context} status on {sha[:12]}"):
            commit = self._repo().get_commit(sha)
            if target_url:
                commit.create_status(state, target_url, description, context)
            else:
                commit.create_status(state, description=description, context=context)
        return True

    def create_comment(self, number: int, body: str) -> int:
        """Post a new comment; returns its id (1 call: POST /issues/{n}/comments).

        A body over GitHub's 65,536 characters (which GitHub would refuse with a 422) is cut
        to fit, keeping its first line, the hidden marker.
        """
        body = fit_comment(body)
        with self._calling(f"commenting on pull request #{number}"):
            return int(self._repo().get_issue(number).create_comment(body).id)

    def upsert_comment(
        self, number: int, marker: str, body: str, comments: Sequence[PullComment] | None = None
    ) -> int:
        """Keep one comment of ours carrying `marker`: edit it when the body changed, else
        create it; returns its id.

        Calls: to find it, 1 when it is on the first page of comments, else 1 per 100 (none
        when `comments`, the PR's comments listed earlier in the same event, are given), then
        0 (unchanged), 1 (PATCH) or 1 (POST); +1 for `self_login` the first time with a token.
        Only the service's own comments are considered, whoever listed them. `body` gets
        `marker` on its first line if it does not start with it, and is cut to fit GitHub's
        65,536 characters if need be.
        """
        if not body.startswith(marker):
            body = f"{marker}\n{body}"
        body = fit_comment(body)
        listed = self.comments(number, until=marker) if comments is None else comments
        for comment in self._own_with(marker, listed):
            if comment.body != body:
                with self._calling(f"editing comment {comment.id} on #{number}"):
                    # Lazy objects: one PATCH of .../issues/comments/{id}, no GET first.
                    self._repo().get_issue(number).get_comment(comment.id).edit(body)
            return comment.id
        return self.create_comment(number, body)

    def request_reviewers(self, number: int, logins: Sequence[str]) -> None:
        """Ask people to review (1 call: POST /pulls/{n}/requested_reviewers; 0 for none).

        GitHub refuses the whole batch (422) when one login cannot be asked (the author, a
        non-collaborator); then each login is asked alone (1 call each) and refusals are
        ignored — a review request is a courtesy, not a condition.
        """
        wanted = list(dict.fromkeys(logins))
        if not wanted:
            return
        if self._ask(number, wanted) or len(wanted) == 1:
            return
        for login in wanted:
            self._ask(number, [login])

    def _ask(self, number: int, logins: list[str]) -> bool:
        with self._calling(f"requesting reviews on pull request #{number}"):
            from github import GithubException

            try:
                self._repo().get_pull(number).create_review_request(reviewers=logins)
            except GithubException as e:
                if e.status == 422:
                    return False
                raise
        return True
