"""`Settings.from_env`: every variable of README: service validated at start, secrets never
shown."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from jitaccess_sandbox.fake_github import generate_app_key
from webhook.adapters.google_clients import GoogleEndpoints
from webhook.core.errors import ConfigError
from webhook.service.config import SECRET_VARIABLES, VARIABLES, Settings

ROOT = Path(__file__).resolve().parents[2]
SECRET = "webhook-secret-0123456789"
TOKEN = "ghp_tokenvalue0123456789"
CLEANUP = "cleanup-token-0123456789"
PEM = generate_app_key()

BASE = {
    "GITHUB_WEBHOOK_SECRET": SECRET,
    "GITHUB_REPOSITORY": "acme/access",
    "GITHUB_TOKEN": TOKEN,
    "GOOGLE_CLOUD_PROJECT": "jitaccess-audit",
}


def env(**changes: str | None) -> dict[str, str]:
    """BASE with changes; None removes a variable."""
    out = dict(BASE)
    for name, value in changes.items():
        if value is None:
            out.pop(name, None)
        else:
            out[name] = value
    return out


def error_of(values: dict[str, str], resolver: object = None) -> str:
    with pytest.raises(ConfigError) as exc:
        Settings.from_env(values, resolver)  # type: ignore[arg-type]
    message = str(exc.value)
    assert message.startswith("invalid configuration: ")
    return message


# ----------------------------------------------------------------------------------------------
# valid configurations and defaults


def test_minimal_token_configuration_and_defaults() -> None:
    settings = Settings.from_env(BASE)
    assert settings == Settings(
        webhook_secret=SECRET,
        repository="acme/access",
        google_project="jitaccess-audit",
        token=TOKEN,
    )
    assert settings.api_url == "https://api.github.com"
    assert settings.app_id is None and settings.app_private_key is None
    assert settings.cleanup_token is None
    assert settings.endpoints == GoogleEndpoints(None, None, None, None)
    assert settings.on_app_engine is False
    assert settings.owner == "acme"


def test_full_app_configuration() -> None:
    settings = Settings.from_env(
        env(
            GITHUB_TOKEN=None,
            GITHUB_APP_ID="123456",
            GITHUB_APP_PRIVATE_KEY=PEM,
            GITHUB_API_URL="https://github.example.com/api/v3/",
            CLEANUP_TOKEN=CLEANUP,
            RESOURCE_MANAGER_ENDPOINT="https://crm.p.googleapis.com/",
            CLOUD_ASSET_ENDPOINT="http://127.0.0.1:9000//",
            CLOUD_LOGGING_ENDPOINT="https://logging.p.googleapis.com",
            CLOUD_IDENTITY_ENDPOINT="https://cloudidentity.p.googleapis.com/",
        )
    )
    assert settings.app_id == 123456
    assert settings.app_private_key == PEM  # kept exactly, newlines included
    assert settings.token is None
    assert settings.api_url == "https://github.example.com/api/v3"
    assert settings.cleanup_token == CLEANUP
    assert settings.endpoints == GoogleEndpoints(
        "https://crm.p.googleapis.com",
        "http://127.0.0.1:9000",
        "https://logging.p.googleapis.com",
        "https://cloudidentity.p.googleapis.com",
    )


def test_values_are_trimmed() -> None:
    settings = Settings.from_env(env(GITHUB_REPOSITORY="  acme/access\n",
                                     GITHUB_WEBHOOK_SECRET=f" {SECRET} "))
    assert settings.repository == "acme/access"
    assert settings.webhook_secret == SECRET


@pytest.mark.parametrize("value,expected", [("standard", True), ("flex", False), ("", False),
                                            ("Standard", False)])
def test_gae_env(value: str, expected: bool) -> None:
    assert Settings.from_env(env(GAE_ENV=value)).on_app_engine is expected


def test_not_on_app_engine_without_gae_env() -> None:
    assert Settings.from_env(BASE).on_app_engine is False


def test_app_and_token_together_are_accepted() -> None:
    settings = Settings.from_env(env(GITHUB_APP_ID="7", GITHUB_APP_PRIVATE_KEY=PEM))
    assert (settings.app_id, settings.token) == (7, TOKEN)


# ----------------------------------------------------------------------------------------------
# missing variables


@pytest.mark.parametrize(
    "name", ["GITHUB_WEBHOOK_SECRET", "GITHUB_REPOSITORY", "GOOGLE_CLOUD_PROJECT"]
)
@pytest.mark.parametrize("absent", [None, "", "   "], ids=["unset", "empty", "blank"])
def test_missing_required_variable_is_named(name: str, absent: str | None) -> None:
    message = error_of(env(**{name: absent}))
    assert f"{name} is required" in message
    assert message.count("; ") == 0  # nothing else is wrong


def test_neither_app_nor_token() -> None:
    message = error_of(env(GITHUB_TOKEN=None))
    assert message == (
        "invalid configuration: set GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY (a GitHub App) or "
        "GITHUB_TOKEN"
    )


def test_everything_missing_names_every_variable() -> None:
    message = error_of({})
    for name in ("GITHUB_WEBHOOK_SECRET", "GITHUB_REPOSITORY", "GOOGLE_CLOUD_PROJECT",
                 "GITHUB_TOKEN", "GITHUB_APP_ID"):
        assert name in message


@pytest.mark.parametrize("present", ["GITHUB_APP_ID", "GITHUB_APP_PRIVATE_KEY"])
def test_app_id_and_key_go_together(present: str) -> None:
    values = env(GITHUB_TOKEN=None, **{present: "42" if present == "GITHUB_APP_ID" else PEM})
    message = error_of(values)
    assert "GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY must be set together" in message


def test_an_installation_token_as_github_token_is_refused() -> None:
    token = "ghs_" + "Zq9" * 12
    message = error_of(env(GITHUB_TOKEN=token))
    assert "GITHUB_TOKEN is a GitHub App installation token (ghs_…)" in message
    assert "set GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY instead" in message
    assert "Zq9" not in message
    resolved = error_of(env(GITHUB_TOKEN="sm://projects/ops/secrets/token"), lambda n, r: token)
    assert "GITHUB_TOKEN is a GitHub App installation token" in resolved


def test_a_leftover_installation_token_beside_app_credentials_is_unused() -> None:
    values = env(GITHUB_TOKEN="ghs_" + "Zq9" * 12, GITHUB_APP_ID="42",
                 GITHUB_APP_PRIVATE_KEY=PEM)
    assert Settings.from_env(values).app_id == 42  # the App is used; the token never is


# ----------------------------------------------------------------------------------------------
# malformed variables


@pytest.mark.parametrize(
    "name,value,fragment",
    [
        ("GITHUB_REPOSITORY", "access", "GITHUB_REPOSITORY must look like owner/name"),
        ("GITHUB_REPOSITORY", "acme/access/extra", "GITHUB_REPOSITORY must look like owner/name"),
        ("GITHUB_REPOSITORY", "https://github.com/acme/access",
         "GITHUB_REPOSITORY must look like owner/name"),
        ("GITHUB_REPOSITORY", "acme/acc ess", "GITHUB_REPOSITORY must look like owner/name"),
        ("GITHUB_REPOSITORY", "-acme/access", "GITHUB_REPOSITORY must look like owner/name"),
        ("GITHUB_APP_ID", "abc", "GITHUB_APP_ID must be a number"),
        ("GITHUB_APP_ID", "-1", "GITHUB_APP_ID must be a number"),
        ("GITHUB_APP_ID", "12.5", "GITHUB_APP_ID must be a number"),
        ("GITHUB_APP_ID", "\u00b2", "GITHUB_APP_ID must be a number"),  # '²'.isdigit()
        ("GITHUB_APP_ID", "0", "GITHUB_APP_ID must be a number"),
        ("GITHUB_API_URL", "api.github.com", "GITHUB_API_URL must be an http(s) URL"),
        ("GITHUB_API_URL", "ftp://github.example.com", "GITHUB_API_URL must be an http(s) URL"),
        ("GITHUB_API_URL", "https://", "GITHUB_API_URL must be an http(s) URL"),
        ("GOOGLE_CLOUD_PROJECT", "Jit_Audit", "GOOGLE_CLOUD_PROJECT is not a valid project ID"),
        ("GOOGLE_CLOUD_PROJECT", "abc", "GOOGLE_CLOUD_PROJECT is not a valid project ID"),
        ("GOOGLE_CLOUD_PROJECT", "123456789012", "GOOGLE_CLOUD_PROJECT is not a valid project"),
        ("RESOURCE_MANAGER_ENDPOINT", "localhost:8080",
         "RESOURCE_MANAGER_ENDPOINT must be an http(s) URL"),
        ("CLOUD_ASSET_ENDPOINT", "grpc://asset", "CLOUD_ASSET_ENDPOINT must be an http(s) URL"),
        ("CLOUD_LOGGING_ENDPOINT", "logging.googleapis.com",
         "CLOUD_LOGGING_ENDPOINT must be an http(s) URL"),
        ("CLOUD_IDENTITY_ENDPOINT", "http://", "CLOUD_IDENTITY_ENDPOINT must be an http(s) URL"),
    ],
)
def test_malformed_variable_is_named(name: str, value: str, fragment: str) -> None:
    values = env(**{name: value})
    if name == "GITHUB_APP_ID":
        values["GITHUB_APP_PRIVATE_KEY"] = PEM
    message = error_of(values)
    assert fragment in message
    assert message.count("; ") == 0, message  # only that variable is blamed


KEY_MESSAGE = (
    "invalid configuration: GITHUB_APP_PRIVATE_KEY must be the App's RSA private key as PEM "
    "text (as downloaded from the App's settings)"
)


@pytest.mark.parametrize(
    "key",
    [
        "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7",  # base64 without the armour
        # the armour around garbage: looks like PEM, is no key
        "-----BEGIN RSA PRIVATE KEY-----\nMIIB\nOgIB\n-----END RSA PRIVATE KEY-----\n",
    ],
)
def test_private_key_must_be_an_rsa_pem_key(key: str) -> None:
    message = error_of(env(GITHUB_TOKEN=None, GITHUB_APP_ID="42", GITHUB_APP_PRIVATE_KEY=key))
    assert message == KEY_MESSAGE
    assert key not in message


@pytest.mark.parametrize("name", ["acme/.", "acme/.."])
def test_dot_repository_names_are_refused(name: str) -> None:
    assert "GITHUB_REPOSITORY must look like owner/name" in error_of(env(GITHUB_REPOSITORY=name))


@pytest.mark.parametrize("name", ["GITHUB_WEBHOOK_SECRET", "CLEANUP_TOKEN"])
def test_short_secrets_are_refused_without_showing_them(name: str) -> None:
    short = "s3cr3t-15-chars"
    assert len(short) == 15
    message = error_of(env(**{name: short}))
    assert f"{name} is too short: use at least 16 characters" in message
    assert short not in message
    # 16 characters are enough
    Settings.from_env(env(**{name: short + "x"}))


# ----------------------------------------------------------------------------------------------
# Secret Manager references


def test_references_are_resolved_through_the_hook() -> None:
    secrets = {
        "GITHUB_WEBHOOK_SECRET": SECRET,
        "GITHUB_APP_PRIVATE_KEY": PEM,
        "CLEANUP_TOKEN": CLEANUP,
    }
    calls: list[tuple[str, str]] = []

    def resolve(name: str, reference: str) -> str:
        calls.append((name, reference))
        return secrets[name]

    values = env(
        GITHUB_TOKEN=None,
        GITHUB_APP_ID="42",
        GITHUB_WEBHOOK_SECRET="sm://projects/ops/secrets/webhook",
        GITHUB_APP_PRIVATE_KEY="sm://projects/ops/secrets/app-key/versions/3",
        CLEANUP_TOKEN=" sm://projects/ops/secrets/cleanup ",
    )
    settings = Settings.from_env(values, resolve)
    assert sorted(calls) == [
        ("CLEANUP_TOKEN", "sm://projects/ops/secrets/cleanup"),
        ("GITHUB_APP_PRIVATE_KEY", "sm://projects/ops/secrets/app-key/versions/3"),
        ("GITHUB_WEBHOOK_SECRET", "sm://projects/ops/secrets/webhook"),
    ]
    assert (settings.webhook_secret, settings.app_private_key, settings.cleanup_token) == (
        SECRET, PEM, CLEANUP
    )


def test_token_reference_is_resolved() -> None:
    settings = Settings.from_env(
        env(GITHUB_TOKEN="sm://projects/ops/secrets/token"), lambda name, ref: "ghp_resolved"
    )
    assert settings.token == "ghp_resolved"


def test_only_secret_variables_are_resolved() -> None:
    assert set(SECRET_VARIABLES) < set(VARIABLES)

    def resolve(name: str, reference: str) -> str:
        raise AssertionError(f"{name} must not be resolved")

    message = error_of(env(GITHUB_REPOSITORY="sm://projects/ops/secrets/repo"), resolve)
    assert "GITHUB_REPOSITORY must look like owner/name" in message


def test_resolver_error_is_surfaced() -> None:
    def resolve(name: str, reference: str) -> str:
        raise ConfigError(f"{name} ({reference}): HTTP 403 PERMISSION_DENIED: permission denied")

    message = error_of(env(GITHUB_WEBHOOK_SECRET="sm://projects/ops/secrets/webhook"), resolve)
    assert message == (
        "invalid configuration: GITHUB_WEBHOOK_SECRET (sm://projects/ops/secrets/webhook): "
        "HTTP 403 PERMISSION_DENIED: permission denied"
    )


@pytest.mark.parametrize("name", ["GITHUB_TOKEN", "GITHUB_APP_PRIVATE_KEY"])
def test_failed_credential_reference_is_the_only_problem(name: str) -> None:
    def resolve(variable: str, reference: str) -> str:
        raise ConfigError(f"{variable} ({reference}): HTTP 404: no such secret")

    values = env(**{name: "sm://projects/ops/secrets/cred"})
    if name == "GITHUB_APP_PRIVATE_KEY":
        values.pop("GITHUB_TOKEN")
        values["GITHUB_APP_ID"] = "42"
    assert error_of(values, resolve) == (
        f"invalid configuration: {name} (sm://projects/ops/secrets/cred): HTTP 404: no such secret"
    )


def test_reference_without_resolver_is_refused() -> None:
    message = error_of(env(GITHUB_TOKEN="sm://projects/ops/secrets/token"))
    assert "GITHUB_TOKEN: Secret Manager references are not available here" in message


def test_resolved_values_are_validated_too() -> None:
    message = error_of(
        env(GITHUB_WEBHOOK_SECRET="sm://projects/ops/secrets/webhook"), lambda n, r: "short"
    )
    assert "GITHUB_WEBHOOK_SECRET is too short" in message
    assert "'short'" not in message


# ----------------------------------------------------------------------------------------------
# secrets stay secret


def test_repr_shows_no_secret() -> None:
    settings = Settings.from_env(
        env(GITHUB_APP_ID="42", GITHUB_APP_PRIVATE_KEY=PEM, CLEANUP_TOKEN=CLEANUP)
    )
    text = repr(settings) + str(settings)
    assert "acme/access" in text  # the repr is useful…
    for secret in (SECRET, TOKEN, CLEANUP, PEM, "PRIVATE KEY"):  # …and shows no secret
        assert secret not in text


def test_error_messages_show_no_secret() -> None:
    # every other variable broken at once: the message names them, never a secret's value
    bad_key = "-----BEGIN NOT A KEY----- hunter2-hunter2-hunter2"
    values = {
        "GITHUB_WEBHOOK_SECRET": "hunter2-secret",
        "GITHUB_REPOSITORY": "nope",
        "GITHUB_APP_ID": "x",
        "GITHUB_APP_PRIVATE_KEY": bad_key,
        "GITHUB_TOKEN": "ghp_hunter2hunter2",
        "CLEANUP_TOKEN": "hunter2-cleanup",
        "GOOGLE_CLOUD_PROJECT": "X",
    }
    message = error_of(values)
    for name in ("GITHUB_WEBHOOK_SECRET", "GITHUB_REPOSITORY", "GITHUB_APP_ID",
                 "GITHUB_APP_PRIVATE_KEY", "CLEANUP_TOKEN", "GOOGLE_CLOUD_PROJECT"):
        assert name in message
    assert "hunter2" not in message


# ----------------------------------------------------------------------------------------------
# the App Engine entrypoint


def test_importing_main_with_a_bad_environment_names_the_variable() -> None:
    minimal = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    minimal.update(BASE)
    minimal["GITHUB_REPOSITORY"] = "not a repository"
    proc = subprocess.run(
        [sys.executable, "-c", "import webhook.main"],
        env=minimal, cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last == (
        "webhook.core.errors.ConfigError: invalid configuration: GITHUB_REPOSITORY must look like "
        "owner/name, got 'not a repository'"
    )
    assert SECRET not in proc.stderr and TOKEN not in proc.stderr


def test_importing_main_with_a_good_environment_builds_the_app() -> None:
    minimal = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    minimal.update(BASE)
    code = (
        "import webhook.main as m; "
        "print(m.app.name, sorted(r.rule for r in m.app.url_map.iter_rules()))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env=minimal, cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == (
        "webhook ['/_ah/warmup', '/health', '/static/<path:filename>', '/tasks/cleanup', "
        "'/webhook']"
    )
