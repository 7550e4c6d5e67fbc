"""Construction of the Google Cloud clients, with endpoints, credentials, timeouts and retries;
and the one translation of their failures.

Only this module and the Google adapters (`eligibility`, `iam`, `cloud_logging`, the cleanup)
import google-cloud. Every client uses the REST transport. An `http://` endpoint means a local
emulator: plain HTTP and anonymous credentials. Retries are bounded by the `Budget` so that a
whole webhook delivery fits in GitHub's 10 s (the libraries' own defaults retry for 60-300 s).

The client libraries fail in many shapes: `google.api_core` exceptions (one class per HTTP
status), `RetryError` wrapping the last of them, `requests` errors for timeouts and refused
connections, google-auth errors, protobuf parse errors; Cloud Identity and Secret Manager, called
without a client library, answer plain HTTP errors. `google_failure` turns each into one
`GoogleCallError` (what happened, the HTTP status, Google's message quoted for a PR comment), from
which every adapter words its own message.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from functools import cached_property
from typing import Any, Literal

import google.auth
import google.auth.credentials
import requests
from google.api_core import exceptions as gexc
from google.api_core import retry as gretry
from google.api_core.client_options import ClientOptions
from google.auth import exceptions as gauth_exceptions
from google.auth.credentials import AnonymousCredentials
from google.auth.transport.requests import AuthorizedSession

from webhook.adapters.google_endpoints import GoogleEndpoints as GoogleEndpoints
from webhook.core.budget import PRODUCTION, Budget
from webhook.core.errors import GoogleError

SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)

TRANSIENT = (
    gexc.TooManyRequests,
    gexc.InternalServerError,
    gexc.ServiceUnavailable,
    gexc.BadGateway,
    gexc.GatewayTimeout,
)
#: HTTP statuses worth retrying (the same errors as `TRANSIENT`, for plain HTTP calls).
TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})
#: What a Google client call raises when it fails (anything else is a bug, not a failure).
CALL_FAILURES: tuple[type[BaseException], ...] = (
    gexc.GoogleAPICallError,
    gexc.RetryError,
    OSError,  # requests' errors (timeouts, refused connections) are OSErrors
    gauth_exceptions.GoogleAuthError,
    ValueError,
    TypeError,
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
    budget: Budget = PRODUCTION, on_error: Callable[[Exception], Any] | None = None
) -> gretry.Retry:
    """A retry for transient errors (not conflicts) that gives up after the budget's retry
    deadline; `on_error` hears of each error that is retried."""
    return gretry.Retry(
        predicate=gretry.if_exception_type(*TRANSIENT),
        initial=budget.backoff_initial,
        maximum=budget.backoff_max,
        multiplier=2.0,
        timeout=budget.retry_deadline,
        on_error=on_error,
    )


# --------------------------------------------------------------------------------------------
# Failures

#: What happened to a failed call: Google answered with an error status; no answer came within
#: the timeout; Google could not be reached (connection, transport or credentials); or the
#: answer could not be read.
FailureKind = Literal["answered", "timeout", "unreachable", "unreadable"]


class GoogleCallError(GoogleError):
    """A failed Google call, translated once: what happened, Google's status and message."""

    def __init__(
        self,
        detail: str,
        *,
        kind: FailureKind,
        status: int | None = None,
        google_status: str = "",
        retried: bool = False,
    ) -> None:
        super().__init__(detail, status=status)
        #: Google's message (or the failure's), quoted for a PR comment (`quote_error`).
        self.detail = detail
        self.kind: FailureKind = kind
        #: The canonical error name Google sent with the status (`ABORTED`, `NOT_FOUND`), if any.
        self.google_status = google_status
        #: True when the call was retried (transient errors) until the retry deadline passed.
        self.retried = retried

    @property
    def summary(self) -> str:
        """The status and the detail, e.g. `503 backend down` (the detail alone without one)."""
        return f"{self.status} {self.detail}" if self.status is not None else self.detail

    @property
    def conflict(self) -> bool:
        """Did a concurrent change win? IAM answers a stale etag with 409 ABORTED; other IAM
        surfaces answer 412 FAILED_PRECONDITION, which means the same."""
        return self.kind == "answered" and self.status in (409, 412)


def google_failure(error: BaseException | requests.Response) -> GoogleCallError:
    """The one translation of a failed Google call (an exception, or a plain HTTP answer)."""
    if isinstance(error, requests.Response):
        message, google_status = _error_body(error)
        return GoogleCallError(
            quote_error(message), kind="answered", status=error.status_code,
            google_status=google_status,
        )
    if isinstance(error, gexc.RetryError):
        if error.cause is None:
            return GoogleCallError(quote_error(error), kind="timeout", retried=True)
        last = google_failure(error.cause)
        return GoogleCallError(
            last.detail, kind=last.kind, status=last.status, google_status=last.google_status,
            retried=True,
        )
    if isinstance(error, gexc.GoogleAPICallError):
        code = error.code if isinstance(error.code, int) else None
        # The REST transport picks the class by HTTP status alone; the canonical name Google
        # sent (ABORTED, FAILED_PRECONDITION) is in the answer's body.
        answer = error.response
        google_status = _error_body(answer)[1] if isinstance(answer, requests.Response) else ""
        return GoogleCallError(
            quote_error(error.message or type(error).__name__), kind="answered", status=code,
            google_status=google_status,
        )
    detail = quote_error(str(error) or type(error).__name__)
    if isinstance(error, requests.Timeout):
        return GoogleCallError(detail, kind="timeout")
    if isinstance(error, OSError | gauth_exceptions.GoogleAuthError):
        return GoogleCallError(detail, kind="unreachable")
    return GoogleCallError(detail, kind="unreadable")


def _error_body(response: requests.Response) -> tuple[str, str]:
    """(`error.message`, `error.status`) of a Google JSON error body; the status line if none."""
    fallback = f"HTTP {response.status_code}"
    try:
        body = response.json()
    except ValueError:
        return fallback, ""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return fallback, ""
    message, status = error.get("message"), error.get("status")
    return (
        message if isinstance(message, str) and message else fallback,
        status if isinstance(status, str) else "",
    )


# --------------------------------------------------------------------------------------------
# Clients


CLOUD_IDENTITY_DEFAULT = "https://cloudidentity.googleapis.com"


class BoundedSession(AuthorizedSession):
    """An authorized session whose requests never wait longer than `cap` seconds.

    google-cloud-logging's HTTP connection passes a fixed 60 s timeout on every request and
    offers no per-call override; this caps it so that an audit write fits the webhook budget.
    """

    def __init__(
        self, credentials: google.auth.credentials.Credentials, cap: float = PRODUCTION.call_timeout
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

    def __init__(
        self,
        endpoints: GoogleEndpoints,
        audit_project: str | None = None,
        *,
        budget: Budget = PRODUCTION,
    ) -> None:
        self.endpoints = endpoints
        self.audit_project = audit_project
        #: The time budget of the adapters built on these clients (unless given their own).
        self.budget = budget
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
            _http=BoundedSession(credentials, self.budget.call_timeout),
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
        """Build every client the adapters use now (App Engine warmup), so the first delivery
        does not pay for it. (`projects` is not among them: IAM policies are read and written as
        plain JSON, `adapters.iam`.)"""
        _ = self.asset, self.logging, self.identity
