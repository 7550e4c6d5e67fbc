"""Secret Manager references in the environment: `sm://projects/P/secrets/S/versions/V`.

`app.yaml` must never hold a secret, so the secret variables of `service.config` (the webhook
secret, the App's private key, a token, the cleanup token) may instead name a Secret Manager
secret version. `Settings.from_env(os.environ, resolve_secret=resolve_secret)` calls
`resolve_secret` for each such reference once, at start.

The value is read with one REST call, `GET {endpoint}/v1/projects/P/secrets/S/versions/V:access`,
through google-auth's `AuthorizedSession` with Application Default Credentials (on App Engine,
the app's service account; it needs `roles/secretmanager.secretAccessor` on the secret). An
`http://` endpoint is a local emulator: plain HTTP, anonymous credentials. The answer's
`payload.data` is base64; its `payload.dataCrc32c` (CRC32C as a decimal int64, which proto3 JSON
renders as a string) is verified when present, with the pure-Python CRC32C below, so no native
extension (google-crc32c) is needed.

Reference forms (decided here, documented in docs/setup.md):

- `sm://projects/P/secrets/S/versions/V` — V is `latest`, a version number, or a version alias;
- `sm://projects/P/secrets/S` — shorthand for `.../versions/latest`, so that rotating the secret
  (adding a version) takes effect at the next instance start without editing `app.yaml`.

Every failure is a `ConfigError` naming the variable and the reference, never the secret value.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from typing import Any

import requests

from webhook.core.budget import PRODUCTION, Budget, retry_bounded
from webhook.core.errors import ConfigError

SECRET_MANAGER_ENDPOINT = "https://secretmanager.googleapis.com"
SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)

#: What `Settings.from_env` calls for each reference: (variable name, sm:// reference) -> value.
SecretResolver = Callable[[str, str], str]

_PROJECT = r"(?:[a-z][a-z0-9-]{4,28}[a-z0-9]|[0-9]{1,20})"  # project ID or number
_SECRET = r"[A-Za-z0-9_-]{1,255}"
_VERSION = r"(?:latest|[1-9][0-9]{0,18}|[A-Za-z][A-Za-z0-9_-]{0,62})"  # number or alias
REFERENCE_RE = re.compile(
    rf"^sm://projects/(?P<project>{_PROJECT})/secrets/(?P<secret>{_SECRET})"
    rf"(?:/versions/(?P<version>{_VERSION}))?$"
)
# The same statuses as google_clients.TRANSIENT_STATUSES; that module is not imported here
# because it loads the Google client libraries, which the service's start does not need.
_TRANSIENT = frozenset({429, 500, 502, 503, 504})


class _TransientAnswer(Exception):
    """Secret Manager answered with a status worth another attempt."""

    def __init__(self, response: requests.Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def parse_reference(variable: str, reference: str) -> str:
    """Return the secret version's resource name for an `sm://` reference, or raise ConfigError."""
    match = REFERENCE_RE.match(reference.strip())
    if match is None:
        raise ConfigError(
            f"{variable}: malformed Secret Manager reference {reference!r}; expected "
            "sm://projects/PROJECT/secrets/NAME/versions/VERSION (or without /versions/…, "
            "meaning latest)"
        )
    version = match.group("version") or "latest"
    return f"projects/{match.group('project')}/secrets/{match.group('secret')}/versions/{version}"


def resolve_secret(
    variable: str,
    reference: str,
    *,
    session: requests.Session | None = None,
    endpoint: str = SECRET_MANAGER_ENDPOINT,
    budget: Budget = PRODUCTION,
) -> str:
    """Read the secret an `sm://` reference names; ConfigError (never showing it) on failure."""
    name = parse_reference(variable, reference)
    where = f"{variable} ({reference})"
    base = endpoint.rstrip("/")
    http = session if session is not None else _session_for(base, where)
    url = f"{base}/v1/{name}:access"
    timeout = budget.secret_timeout

    def once(_attempt: int) -> requests.Response:
        response = http.get(url, timeout=timeout)
        if response.status_code in _TRANSIENT:
            raise _TransientAnswer(response)
        return response

    def pause(_attempt: int, error: Exception) -> float:
        # A timeout has already waited long enough; a refused connection or a 5xx gets a pause.
        return 0.0 if isinstance(error, requests.Timeout) else budget.secret_pause

    try:
        response = retry_bounded(
            once,
            retry_if=lambda error: isinstance(error, requests.RequestException | _TransientAnswer),
            attempts=budget.secret_attempts,
            pause=pause,
        )
    except _TransientAnswer as last:
        response = last.response  # explained below like any other refusal
    except requests.Timeout:
        raise ConfigError(
            f"{where}: Secret Manager did not answer within {timeout:g} s"
        ) from None
    except requests.RequestException as exc:
        raise ConfigError(
            f"{where}: cannot reach Secret Manager at {base}: {type(exc).__name__}"
        ) from None
    except Exception as exc:  # credential refresh errors from google-auth, and the like
        raise ConfigError(
            f"{where}: cannot call Secret Manager: {type(exc).__name__}"
        ) from None

    if response.status_code != 200:
        raise ConfigError(f"{where}: {_explain(response)}")
    return _decode(where, response)


def resolver(
    *,
    endpoint: str = SECRET_MANAGER_ENDPOINT,
    session: requests.Session | None = None,
    budget: Budget = PRODUCTION,
) -> SecretResolver:
    """A `SecretResolver` for `Settings.from_env` that shares one session across variables."""
    shared: list[requests.Session] = [session] if session is not None else []

    def resolve(variable: str, reference: str) -> str:
        if not shared:
            shared.append(_session_for(endpoint.rstrip("/"), f"{variable} ({reference})"))
        return resolve_secret(
            variable, reference, session=shared[0], endpoint=endpoint, budget=budget
        )

    return resolve


def _session_for(base: str, where: str) -> requests.Session:
    """An authorized session: anonymous for a plain-HTTP emulator, ADC otherwise."""
    from google.auth.transport.requests import AuthorizedSession

    if base.startswith("http://"):
        from google.auth.credentials import AnonymousCredentials

        return AuthorizedSession(AnonymousCredentials())  # type: ignore[no-untyped-call]
    try:
        import google.auth

        credentials, _ = google.auth.default(scopes=list(SCOPES))
    except Exception as exc:  # DefaultCredentialsError and transport errors alike
        raise ConfigError(
            f"{where}: no Google credentials to read Secret Manager ({type(exc).__name__}); "
            "on App Engine the app's service account is used, elsewhere run "
            "`gcloud auth application-default login`"
        ) from None
    return AuthorizedSession(credentials)  # type: ignore[no-untyped-call]


def _explain(response: requests.Response) -> str:
    """A message for a non-200 answer: the status, Google's error status, and what to do."""
    # Imported here: it loads the Google client libraries, which only a failure needs.
    from webhook.adapters.google_clients import google_failure

    status = response.status_code
    failure = google_failure(response)
    google_status = f" {failure.google_status}" if failure.google_status else ""
    hint = {
        400: "the secret version is probably disabled or destroyed",
        401: "the credentials were rejected",
        403: "permission denied: grant the service account roles/secretmanager.secretAccessor "
        "on the secret (and check that the Secret Manager API is enabled)",
        404: "no such secret or version (check project, name and version)",
    }.get(status, "Secret Manager returned an error")
    return f"HTTP {status}{google_status}: {hint}"


def _decode(where: str, response: requests.Response) -> str:
    """Extract, verify and decode `payload.data` from an access answer."""
    try:
        body: Any = response.json()
    except ValueError:
        raise ConfigError(
            f"{where}: Secret Manager answered with something other than JSON"
        ) from None
    payload = body.get("payload") if isinstance(body, dict) else None
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, str):
        raise ConfigError(f"{where}: Secret Manager's answer has no payload.data")
    try:
        # proto3 JSON writes bytes in standard base64; the URL-safe alphabet is also legal input.
        if "-" in data or "_" in data:
            raw = base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
        else:
            raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{where}: payload.data is not valid base64") from None

    assert isinstance(payload, dict)
    expected = payload.get("dataCrc32c")
    if expected is not None:
        try:
            if isinstance(expected, bool):
                raise ValueError("a boolean is not a checksum")
            expected_value = int(expected)  # int64 arrives as a JSON string
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: payload.dataCrc32c is not a number") from None
        if expected_value != crc32c(raw):
            raise ConfigError(f"{where}: payload checksum (CRC32C) mismatch; the data is corrupt")

    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{where}: the secret is not UTF-8 text") from None
    # `echo VALUE | gcloud secrets versions add --data-file=-` stores a trailing newline; no secret
    # this service reads (webhook secret, token, PEM key) ends with a meaningful one.
    text = text.rstrip("\r\n")
    if text == "":
        raise ConfigError(f"{where}: the secret is empty")
    return text


def _crc32c_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1  # reflected Castagnoli
        table.append(crc)
    return tuple(table)


_CRC32C_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC32C (Castagnoli) of `data`, as Secret Manager's `dataCrc32c` carries it."""
    crc = 0xFFFFFFFF
    table = _CRC32C_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


__all__ = [
    "REFERENCE_RE",
    "SECRET_MANAGER_ENDPOINT",
    "crc32c",
    "parse_reference",
    "resolve_secret",
    "resolver",
]
