"""One error tree. Every failure the service reports derives from `JitAccessError`.

Each error carries a message fit for a PR comment or a log line (no stack traces, no secrets);
`app.py` is the one place that turns them into HTTP codes, statuses and comments.
"""

from __future__ import annotations


class JitAccessError(Exception):
    """Root of the project's errors; `str(e)` is a user-facing message."""

    #: HTTP status for a webhook delivery that failed with this error.
    http_status = 500


class ConfigError(JitAccessError):
    """The service's configuration (environment) is missing or malformed."""


class UpstreamError(JitAccessError):
    """GitHub or Google answered with an error, timed out, or said something unexpected."""

    http_status = 502

    def __init__(self, service: str, message: str, *, status: int | None = None) -> None:
        super().__init__(f"{service}: {message}")
        self.service = service
        self.status = status


class GitHubError(UpstreamError):
    """A GitHub API call failed."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__("GitHub", message, status=status)


class FileTooLargeError(GitHubError):
    """A file in the repository is larger than the service will read."""

    def __init__(self, path: str, size: int, limit: int) -> None:
        super().__init__(f"{path} is {size} bytes, more than the {limit} bytes allowed")
        self.path = path
        self.size = size


class ListTooLongError(GitHubError):
    """A GitHub listing has more items than the service reads; the items are not returned."""

    def __init__(self, what: str, limit: int) -> None:
        super().__init__(f"{what}: more than {limit} items")
        self.limit = limit


class GoogleError(UpstreamError):
    """A Google Cloud API call failed."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__("Google Cloud", message, status=status)


class ActivationError(JitAccessError):
    """The IAM binding could not be written (after retries) or cannot be granted."""

    http_status = 502


class AuditError(JitAccessError):
    """The audit entry could not be written; no access may stand without one."""

    http_status = 502
