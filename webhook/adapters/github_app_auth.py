"""GitHub App installation auth for the GitHub adapter (imports PyGithub).

Kept apart from `adapters.github_api` so that the adapter can be built without importing PyGithub,
which takes about 0.1 s: the library is loaded on the adapter's first use (or by the App
Engine warmup request), not while the app starts.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

from github import Auth, GithubIntegration
from github.GithubException import UnknownObjectException
from urllib3.util.retry import Retry

from webhook.adapters.github_api import (
    TOKEN_RENEW_BEFORE,
    USER_AGENT,
    GitHubAuth,
    _retry,
    _translating,
    _utc,
)
from webhook.core.errors import GitHubError


class InstallationAuth(Auth.Auth):
    """GitHub App installation auth: looks up the installation, caches and renews its token.

    PyGithub's own `AppInstallationAuth` keeps its token without a lock and is re-bound to the
    last `Requester` created with it; this one is safe to share between per-thread clients.
    """

    def __init__(self, settings: GitHubAuth) -> None:
        self._settings = settings
        self._integration = GithubIntegration(
            auth=Auth.AppAuth(str(settings.app_id), settings.private_key_pem or ""),
            base_url=settings.base_url,
            timeout=settings.timeout,
            user_agent=USER_AGENT,
            # Creating a token is safe to repeat, so POST may be retried too.
            retry=_retry(Retry.DEFAULT_ALLOWED_METHODS | {"POST"}),
            seconds_between_requests=None,
            seconds_between_writes=None,
            lazy=True,
        )
        self._lock = threading.Lock()
        self._installation_id: int | None = None
        self.app_slug: str | None = None
        self._token: str | None = None
        self._expires_at: datetime | None = None
        self._rechecked_at: float | None = None  # time.monotonic() of the last recheck

    @property
    def token_type(self) -> str:
        """Installation tokens go in `Authorization: token …`."""
        return "token"

    @property
    def token(self) -> str:
        """A valid installation token (1 call to create one, +1 the first time for the lookup)."""
        with self._lock:
            now = datetime.now(UTC)
            if self._token and self._expires_at and self._expires_at - TOKEN_RENEW_BEFORE > now:
                return self._token
            installation = self._lookup()
            with _translating("creating a GitHub App installation token", self._settings.timeout):
                grant = self._integration.get_access_token(installation)
                token, expires = grant.token, grant.expires_at
                if not isinstance(token, str) or not token or not isinstance(expires, datetime):
                    raise ValueError("no token or expiry in the answer")
            self._token = token
            self._expires_at = _utc(expires)
            return token

    def installation_id(self) -> int:
        """The installation on the repository (1 call the first time: GET …/installation)."""
        with self._lock:
            return self._lookup()

    def recheck(self, min_interval: float) -> int:
        """The installation on the repository, looked up again unless a recheck ran less than
        `min_interval` seconds ago; a changed installation drops the token (whose installation
        is gone). On a failed lookup the known installation stays."""
        with self._lock:
            now = time.monotonic()
            if self._rechecked_at is not None and now - self._rechecked_at < min_interval:
                return self._lookup()
            self._rechecked_at = now
            known, self._installation_id = self._installation_id, None
            try:
                found = self._lookup()
            except BaseException:
                self._installation_id = known
                raise
            if found != known:
                self._token = self._expires_at = None
            return found

    def _lookup(self) -> int:
        # Caller holds the lock.
        if self._installation_id is None:
            what = f"finding the GitHub App installation on {self._settings.repository}"
            with _translating(what, self._settings.timeout):
                try:
                    installation = self._integration.get_repo_installation(
                        self._settings.owner, self._settings.name
                    )
                except UnknownObjectException:
                    raise GitHubError(
                        f"the GitHub App {self._settings.app_id} is not installed on "
                        f"{self._settings.repository}",
                        status=404,
                    ) from None
                self.app_slug = str(installation.app_slug or "")
                self._installation_id = int(installation.id)
        return self._installation_id

    def slug(self) -> str:
        """The app's slug: from the installation lookup, or GET /app (1 call) if unknown."""
        if self.app_slug is None:
            self.installation_id()
        if not self.app_slug:
            with _translating("reading the GitHub App", self._settings.timeout):
                self.app_slug = str(self._integration.get_app().slug)
        return self.app_slug

    @property
    def _masked_token(self) -> str:
        return "token (installation token removed)"

    def close(self) -> None:
        """Close the integration's HTTP connections."""
        self._integration.close()
