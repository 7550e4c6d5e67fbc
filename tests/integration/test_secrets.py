"""Secret Manager references, resolved over HTTP against a tiny local fake of the access method.

The fake speaks the REST wire format of `projects.secrets.versions.access`: `GET
/v1/projects/P/secrets/S/versions/V:access` answers `{"name": …, "payload": {"data": base64,
"dataCrc32c": "decimal string"}}`. Anything it does not know is answered 404 like the real API.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from jitaccess_sandbox.httpserver import LocalServer
from webhook.adapters.secret_manager import crc32c, parse_reference, resolve_secret, resolver
from webhook.core.budget import PRODUCTION
from webhook.core.errors import ConfigError
from webhook.service.config import Settings

WEBHOOK_SECRET = "whsec-0123456789abcdef"
VERSION_NAME = "projects/jit-ops/secrets/webhook-secret/versions/3"


def access_answer(name: str, data: bytes, *, crc: Any = "auto") -> dict[str, Any]:
    """The JSON body Secret Manager returns for a successful access."""
    payload: dict[str, Any] = {"data": base64.b64encode(data).decode("ascii")}
    if crc == "auto":
        payload["dataCrc32c"] = str(crc32c(data))  # int64 is a string in proto3 JSON
    elif crc is not None:
        payload["dataCrc32c"] = crc
    return {"name": name, "payload": payload}


@dataclass
class FakeSecretManager:
    """WSGI fake: answers from `answers`, records every request, can fail or stall on demand."""

    answers: dict[str, tuple[int, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    queued: list[tuple[int, Any]] = field(default_factory=list)  # served first, one per request
    delay: float = 0.0

    def put(self, name: str, data: bytes, **kwargs: Any) -> None:
        """Store a secret version."""
        self.answers[name] = (200, access_answer(name, data, **kwargs))

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"]
        path = environ.get("PATH_INFO", "")
        headers = {
            key[5:].replace("_", "-").lower(): value
            for key, value in environ.items()
            if key.startswith("HTTP_")
        }
        self.requests.append((method, path, headers))
        if self.delay:
            time.sleep(self.delay)
        if self.queued:
            status, body = self.queued.pop(0)
        elif method == "GET" and path.startswith("/v1/") and path.endswith(":access"):
            status, body = self.answers.get(
                path[len("/v1/") : -len(":access")],
                (404, {"error": {"code": 404, "status": "NOT_FOUND", "message": "not found"}}),
            )
        else:
            status, body = 404, {"error": {"code": 404, "status": "NOT_FOUND"}}
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        start_response(f"{status} X", [("Content-Type", "application/json")])
        return [raw]


class Swappable:
    """One server per module (stopping a server costs 0.5 s); each test gets a fresh fake."""

    def __init__(self) -> None:
        self.app = FakeSecretManager()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        return self.app(environ, start_response)


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[Swappable, str]]:
    holder = Swappable()
    with LocalServer(holder) as local:
        yield holder, local.url


@pytest.fixture
def fake(server: tuple[Swappable, str]) -> tuple[FakeSecretManager, str]:
    holder, url = server
    holder.app = FakeSecretManager()
    return holder.app, url


def ref(name: str = VERSION_NAME) -> str:
    return "sm://" + name


# --------------------------------------------------------------------------------------------
# success


def test_reads_the_secret_with_one_anonymous_get(fake: tuple[FakeSecretManager, str]) -> None:
    app, url = fake
    app.put(VERSION_NAME, WEBHOOK_SECRET.encode())

    value = resolve_secret("GITHUB_WEBHOOK_SECRET", ref(), endpoint=url)

    assert value == WEBHOOK_SECRET
    assert [(m, p) for m, p, _ in app.requests] == [
        ("GET", "/v1/projects/jit-ops/secrets/webhook-secret/versions/3:access")
    ]
    # http:// endpoint = emulator: anonymous credentials send no Authorization header.
    assert "authorization" not in app.requests[0][2]


def test_reference_without_version_means_latest(fake: tuple[FakeSecretManager, str]) -> None:
    app, url = fake
    app.put("projects/jit-ops/secrets/cleanup-token/versions/latest", b"cleanup-0123456789")

    value = resolve_secret("CLEANUP_TOKEN", "sm://projects/jit-ops/secrets/cleanup-token",
                           endpoint=url)

    assert value == "cleanup-0123456789"
    assert app.requests[0][1] == "/v1/projects/jit-ops/secrets/cleanup-token/versions/latest:access"


def test_trailing_newline_from_echo_is_dropped(fake: tuple[FakeSecretManager, str]) -> None:
    app, url = fake
    app.put(VERSION_NAME, WEBHOOK_SECRET.encode() + b"\n")

    assert resolve_secret("GITHUB_WEBHOOK_SECRET", ref(), endpoint=url) == WEBHOOK_SECRET


def test_multiline_pem_keeps_inner_newlines(fake: tuple[FakeSecretManager, str]) -> None:
    app, url = fake
    pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIB\nOgIB\n-----END RSA PRIVATE KEY-----\n"
    app.put("projects/jit-ops/secrets/app-key/versions/latest", pem.encode())

    value = resolve_secret("GITHUB_APP_PRIVATE_KEY", "sm://projects/jit-ops/secrets/app-key",
                           endpoint=url)

    assert value == pem.rstrip("\n")


def test_checksum_may_be_absent(fake: tuple[FakeSecretManager, str]) -> None:
    app, url = fake
    app.put(VERSION_NAME, WEBHOOK_SECRET.encode(), crc=None)

    assert resolve_secret("GITHUB_WEBHOOK_SECRET", ref(), endpoint=url) == WEBHOOK_SECRET


def test_checksum_as_json_number_is_accepted(fake: tuple[FakeSecretManager, str]) -> None:
    app, url = fake
    app.put(VERSION_NAME, WEBHOOK_SECRET.encode(), crc=crc32c(WEBHOOK_SECRET.encode()))

    assert resolve_secret("GITHUB_WEBHOOK_SECRET", ref(), endpoint=url) == WEBHOOK_SECRET


def test_one_transient_error_is_retried(fake: tuple[FakeSecretManager, str]) -> None:
    app, url = fake
    app.put(VERSION_NAME, WEBHOOK_SECRET.encode())
    app.queued.append((503, {"error": {"code": 503, "status": "UNAVAILABLE"}}))

    assert resolve_secret("GITHUB_WEBHOOK_SECRET", ref(), endpoint=url) == WEBHOOK_SECRET
    assert len(app.requests) == 2


def test_resolver_feeds_settings_from_env(fake: tuple[FakeSecretManager, str]) -> None:
    app, url = fake
    app.put(VERSION_NAME, WEBHOOK_SECRET.encode())
    app.put("projects/jit-ops/secrets/github-token/versions/latest", b"ghp_token_value")
    env = {
        "GITHUB_WEBHOOK_SECRET": ref(),
        "GITHUB_TOKEN": "sm://projects/jit-ops/secrets/github-token",
        "GITHUB_REPOSITORY": "example/access",
        "GOOGLE_CLOUD_PROJECT": "jit-ops",
    }

    settings = Settings.from_env(env, resolve_secret=resolver(endpoint=url))

    assert settings.webhook_secret == WEBHOOK_SECRET
    assert settings.token == "ghp_token_value"
    assert len(app.requests) == 2


# --------------------------------------------------------------------------------------------
# failures: a ConfigError naming the variable and the reference, never the secret


def assert_config_error(exc: pytest.ExceptionInfo[ConfigError], *fragments: str) -> None:
    message = str(exc.value)
    assert message.startswith("GITHUB_WEBHOOK_SECRET (sm://"), message
    for fragment in fragments:
        assert fragment in message, message
    assert WEBHOOK_SECRET not in message


def test_permission_denied(fake: tuple[FakeSecretManager, str]) -> None:
    app, url = fake
    app.answers[VERSION_NAME] = (403, {"error": {"code": 403, "status": "PERMISSION_DENIED"}})

    with pytest.raises(ConfigError) as exc:
        resolve_secret("GITHUB_WEBHOOK_SECRET", ref(), endpoint=url)

    assert str(exc.value) == (
        "GITHUB_WEBHOOK_SECRET (sm://projects/jit-ops/secrets/webhook-secret/versions/3): "
        "HTTP 403 PERMISSION_DENIED: permission denied: grant the service account "
        "roles/secretmanager.secretAccessor on the secret (and check that the Secret Manager "
        "API is enabled)"
    )
    assert len(app.requests) == 1  # 403 is not retried


def test_not_found(fake: tuple[FakeSecretManager, str]) -> None:
    _, url = fake
    with pytest.raises(ConfigError) as exc:
        resolve_secret("GITHUB_WEBHOOK_SECRET", ref(), endpoint=url)
    assert_config_error(exc, "HTTP 404 NOT_FOUND", "no such secret or version")


def test_disabled_version(fake: tuple[FakeSecretManager, str]) -> None:
    app, url = fake
    app.answers[VERSION_NAME] = (400, {"error": {"code": 400, "status": "FAILED_PRECONDITION"}})
    with pytest.raises(ConfigError) as exc:
        resolve_secret("GITHUB_WEBHOOK_SECRET", ref(), endpoint=url)
    assert_config_error(exc, "HTTP 400 FAILED_PRECONDITION", "disabled or destroyed")


def test_persistent_unavailability(fake: tuple[FakeSecretManager, str]) -> None:
    app, url = fake
    app.answers[VERSION_NAME] = (503, {"error": {"code": 503, "status": "UNAVAILABLE"}})
    with pytest.raises(ConfigError) as exc:
        resolve_secret("GITHUB_WEBHOOK_SECRET", ref(), endpoint=url)
    assert_config_error(exc, "HTTP 503 UNAVAILABLE")
    assert len(app.requests) == 2


def test_checksum_mismatch(fake: tuple[FakeSecretManager, str]) -> None:
    app, url = fake
    app.put(VERSION_NAME, WEBHOOK_SECRET.encode(), crc=str(crc32c(b"something else")))
    with pytest.raises(ConfigError) as exc:
        resolve_secret("GITHUB_WEBHOOK_SECRET", ref(), endpoint=url)
    assert_config_error(exc, "checksum (CRC32C) mismatch")


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"<html>proxy error</html>", "something other than JSON"),
        ({"name": VERSION_NAME}, "no payload.data"),
        ({"payload": {"data": 42}}, "no payload.data"),
        ({"payload": {"data": "not base64!"}}, "not valid base64"),
        ({"payload": {"data": base64.b64encode(b"\xff\xfe").decode()}}, "not UTF-8"),
        ({"payload": {"data": ""}}, "the secret is empty"),
        ({"payload": {"data": "YQ==", "dataCrc32c": "x"}}, "dataCrc32c is not a number"),
        ({"payload": {"data": "YQ==", "dataCrc32c": True}}, "dataCrc32c is not a number"),
        ([1, 2, 3], "no payload.data"),
    ],
)
def test_unexpected_answers(
    fake: tuple[FakeSecretManager, str], body: Any, fragment: str
) -> None:
    app, url = fake
    app.answers[VERSION_NAME] = (200, body)
    with pytest.raises(ConfigError) as exc:
        resolve_secret("GITHUB_WEBHOOK_SECRET", ref(), endpoint=url)
    assert_config_error(exc, fragment)


def test_timeout(fake: tuple[FakeSecretManager, str]) -> None:
    app, url = fake
    app.put(VERSION_NAME, WEBHOOK_SECRET.encode())
    app.delay = 0.5
    started = time.monotonic()
    with pytest.raises(ConfigError) as exc:
        resolve_secret(
            "GITHUB_WEBHOOK_SECRET", ref(), endpoint=url,
            budget=replace(PRODUCTION, secret_timeout=0.1),
        )
    assert_config_error(exc, "did not answer within 0.1 s")
    assert time.monotonic() - started < 2.0


def test_unreachable_endpoint() -> None:
    with LocalServer(FakeSecretManager()) as server:
        url = server.url  # the port is closed once the server stops
    with pytest.raises(ConfigError) as exc:
        resolve_secret("GITHUB_WEBHOOK_SECRET", ref(), endpoint=url)
    assert_config_error(exc, f"cannot reach Secret Manager at {url}")


def test_settings_names_the_variable_when_a_secret_cannot_be_read(
    fake: tuple[FakeSecretManager, str],
) -> None:
    _, url = fake
    env = {
        "GITHUB_WEBHOOK_SECRET": ref(),
        "GITHUB_TOKEN": "t" * 20,
        "GITHUB_REPOSITORY": "example/access",
        "GOOGLE_CLOUD_PROJECT": "jit-ops",
    }
    with pytest.raises(ConfigError) as exc:
        Settings.from_env(env, resolve_secret=resolver(endpoint=url))
    assert "GITHUB_WEBHOOK_SECRET (sm://projects/jit-ops/secrets/webhook-secret/versions/3)" in str(
        exc.value
    )


# --------------------------------------------------------------------------------------------
# references (no network)


@pytest.mark.parametrize(
    ("reference", "name"),
    [
        ("sm://projects/jit-ops/secrets/webhook-secret/versions/3", VERSION_NAME),
        ("sm://projects/jit-ops/secrets/webhook-secret/versions/latest",
         "projects/jit-ops/secrets/webhook-secret/versions/latest"),
        ("sm://projects/jit-ops/secrets/webhook-secret",
         "projects/jit-ops/secrets/webhook-secret/versions/latest"),
        ("sm://projects/123456789012/secrets/KEY_2/versions/prod",
         "projects/123456789012/secrets/KEY_2/versions/prod"),
    ],
)
def test_parse_reference(reference: str, name: str) -> None:
    assert parse_reference("CLEANUP_TOKEN", reference) == name


@pytest.mark.parametrize(
    "reference",
    [
        "sm://",
        "sm://projects/jit-ops",
        "sm://projects/jit-ops/secrets/",
        "sm://projects/jit-ops/secrets/a/versions/",
        "sm://projects/jit-ops/secrets/a/versions/0",
        "sm://projects/Jit-Ops/secrets/a",
        "sm://projects/jit-ops/secrets/a b",
        "sm://projects/jit-ops/secrets/a/../b",
        "sm://projects/jit-ops/secrets/a?x=1",
        "sm://projects/jit-ops/secrets/a/versions/1/extra",
        "projects/jit-ops/secrets/a/versions/1",
        "https://secretmanager.googleapis.com/v1/projects/jit-ops/secrets/a/versions/1",
    ],
)
def test_malformed_references_make_no_call(
    fake: tuple[FakeSecretManager, str], reference: str
) -> None:
    app, url = fake
    with pytest.raises(ConfigError) as exc:
        resolve_secret("CLEANUP_TOKEN", reference, endpoint=url)
    assert str(exc.value).startswith(
        f"CLEANUP_TOKEN: malformed Secret Manager reference {reference!r}"
    )
    assert app.requests == []


def test_crc32c_known_vectors() -> None:
    # Check value of the CRC-32C catalogue entry and the RFC 3720 (iSCSI) B.4 test vectors.
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(bytes(32)) == 0x8A9136AA
    assert crc32c(b"\xff" * 32) == 0x62A8AB43
    assert crc32c(bytes(range(32))) == 0x46DD794E
    assert crc32c(b"") == 0
