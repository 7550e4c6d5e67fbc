"""Construction of the Google Cloud clients, with endpoints, credentials, timeouts and retries.

Only this module and the Google adapters (`eligibility`, `activation`, `audit`, `cleanup`) import
google-cloud. Every client uses the REST transport. An `http://` endpoint means a local emulator:
plain HTTP and anonymous credentials. Retries are bounded so that a whole webhook delivery fits
in GitHub's 10 s budget (the libraries' own defaults retry for 60-300 s).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from functools import cached_property
from typing import Any

import google.auth
import google.auth.credentials
from google.api_core import exceptions as gexc
from google.api_core import retry as gretry
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.auth.transport.requests import AuthorizedSession

from webhook.service.config import GoogleEndpoints as GoogleEndpoints  # defined with the settings

SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)

#: Seconds one Google call may take before it is abandoned.
CALL_TIMEOUT = 4.0
#: Seconds a call may spend retrying transient errors (429, 500, 503) in total.
RETRY_DEADLINE = 6.0

TRANSIENT = (
    gexc.TooManyRequests,
    gexc.InternalServerError,
    gexc.ServiceUnavailable,
    gexc.BadGateway,
    gexc.GatewayTimeout,
)


# The REST transport's messages read `503 POST <url>: message`: the status stays, the request
# line goes (noise in a PR comment, and the URL's query string is long).
_REQUEST_PREFIX = re.compile(r"^(\d{3} )?(?:GET|POST|PUT|PATCH|DELETE) \S+: ")
MAX_QUOTED = 300


def quote_error(message: object) -> str:
    """A Google error message on one line, without the request line, at most 300 characters."""
    text = _REQUEST_PREFIX.sub(r"\1", " ".join(str(message).split()))
    return text if len(text) <= MAX_QUOTED else text[: MAX_QUOTED - 1] + "…"


def bounded_retry(
    deadline: float = RETRY_DEADLINE, on_error: Callable[[Exception], Any] | None = None
) -> gretry.Retry:
    """A retry for transient errors (not conflicts) that gives up after `deadline` seconds;
    `on_error` hears of each error that is retried."""
    return gretry.Retry(
        predicate=gretry.if_exception_type(*TRANSIENT),
        initial=0.1,
        maximum=1.0,
        multiplier=2.0,
        timeout=deadline,
        on_error=on_error,
    )


CLOUD_IDENTITY_DEFAULT = "https://cloudidentity.googleapis.com"


class BoundedSession(AuthorizedSession):
    """An authorized session whose requests never wait longer than `cap` seconds.

    google-cloud-logging's HTTP connection passes a fixed 60 s timeout on every request and
    offers no per-call override; this caps it so that an audit write fits the webhook budget.
    """

    def __init__(
        self, credentials: google.auth.credentials.Credentials, cap: float = CALL_TIMEOUT
    ) -> None:
        super().__init__(credentials)  # type: ignore[no-untyped-call]
        self.cap = cap

    def request(  # type: ignore[override]
        self,
        method: str,
        url: str,
        data: Any = None,
        headers: Any = None,
        max_allowed_time: float | None = None,
        timeout: Any = None,
        **kwargs: Any,
    ) -> Any:
        """Send the request with its timeout lowered to the cap."""
        if isinstance(timeout, int | float):
            timeout = min(float(timeout), self.cap)
        elif isinstance(timeout, tuple):
            timeout = tuple(min(float(t), self.cap) for t in timeout)
        else:
            timeout = self.cap
        return super().request(  # type: ignore[no-untyped-call]
            method, url, data, headers, max_allowed_time, timeout=timeout, **kwargs
        )


class GoogleClients:
    """Lazily built, shared Google clients for one configuration. Thread-safe to use."""

    def __init__(self, endpoints: GoogleEndpoints, audit_project: str | None = None) -> None:
        self.endpoints = endpoints
        self.audit_project = audit_project
        self._lock = threading.Lock()
        self._adc: google.auth.credentials.Credentials | None = None

    def credentials_for(self, endpoint: str | None) -> google.auth.credentials.Credentials:
        """Anonymous credentials for an emulator endpoint, Application Default otherwise."""
        if endpoint is not None and endpoint.startswith("http://"):
            return AnonymousCredentials()  # type: ignore[no-untyped-call]
        with self._lock:
            if self._adc is None:
                creds, _ = google.auth.default(scopes=list(SCOPES))
                self._adc = creds
            return self._adc

    @staticmethod
    def _options(endpoint: str | None) -> ClientOptions | None:
        return ClientOptions(api_endpoint=endpoint) if endpoint else None

    @cached_property
    def projects(self) -> Any:
        """Resource Manager v3 ProjectsClient (REST)."""
        from google.cloud import resourcemanager_v3

        ep = self.endpoints.resource_manager
        return resourcemanager_v3.ProjectsClient(
            credentials=self.credentials_for(ep), transport="rest", client_options=self._options(ep)
        )

    @cached_property
    def asset(self) -> Any:
        """Cloud Asset v1 AssetServiceClient (REST)."""
        from google.cloud import asset_v1

        ep = self.endpoints.cloud_asset
        return asset_v1.AssetServiceClient(
            credentials=self.credentials_for(ep), transport="rest", client_options=self._options(ep)
        )

    @cached_property
    def logging(self) -> Any:
        """google-cloud-logging Client over HTTP (not gRPC)."""
        import google.cloud.logging

        ep = self.endpoints.cloud_logging
        credentials = self.credentials_for(ep)
        return google.cloud.logging.Client(  # type: ignore[no-untyped-call]
            project=self.audit_project or "jitaccess-audit",
            credentials=credentials,
            # The library's own session waits 60 s per request; cap it (see BoundedSession).
            _http=BoundedSession(credentials),
            _use_grpc=False,
            client_options=self._options(ep),
        )

    @cached_property
    def identity(self) -> AuthorizedSession:
        """An authorized session for the Cloud Identity Groups API (no client library exists)."""
        return AuthorizedSession(  # type: ignore[no-untyped-call]
            self.credentials_for(self.endpoints.cloud_identity)
        )

    @property
    def identity_base(self) -> str:
        """Base URL of the Cloud Identity API, without a trailing slash."""
        return (self.endpoints.cloud_identity or CLOUD_IDENTITY_DEFAULT).rstrip("/")

    def preload(self) -> None:
        """Build every client now (App Engine warmup), so the first delivery does not pay for it."""
        _ = self.projects, self.asset, self.logging, self.identity
