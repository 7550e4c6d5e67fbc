"""The service's one typed configuration object, read from the environment and validated at start.

Handlers never read `os.environ`: `Settings.from_env()` is called once by `webhook.main`, and a
missing or malformed variable stops the service with a `ConfigError` naming the variable.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlparse

# Defined with the adapters that use them, re-exported here with the settings.
from webhook.adapters.google_endpoints import GoogleEndpoints as GoogleEndpoints
from webhook.adapters.secret_manager import SecretResolver as SecretResolver
from webhook.core.budget import PRODUCTION, Budget
from webhook.core.errors import ConfigError

REPOSITORY_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}$")
PROJECT_RE = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")

#: Every environment variable the service reads (README: service), for documentation and app.yaml
#: checks.
VARIABLES = (
    "GITHUB_WEBHOOK_SECRET",
    "GITHUB_REPOSITORY",
    "GITHUB_APP_ID",
    "GITHUB_APP_PRIVATE_KEY",
    "GITHUB_TOKEN",
    "GITHUB_API_URL",
    "GOOGLE_CLOUD_PROJECT",
    "CLEANUP_TOKEN",
    "RESOURCE_MANAGER_ENDPOINT",
    "CLOUD_ASSET_ENDPOINT",
    "CLOUD_LOGGING_ENDPOINT",
    "CLOUD_IDENTITY_ENDPOINT",
)
#: Variables that may hold a Secret Manager reference (`sm://projects/P/secrets/S/versions/V`).
SECRET_VARIABLES = ("GITHUB_WEBHOOK_SECRET", "GITHUB_APP_PRIVATE_KEY", "GITHUB_TOKEN",
                    "CLEANUP_TOKEN")

#: The prefix GitHub gives App installation ("server-to-server") tokens.
INSTALLATION_TOKEN_PREFIX = "ghs_"



@dataclass(frozen=True)
class Settings:
    """Validated configuration of one service instance (README: service)."""

    webhook_secret: str = field(repr=False)
    repository: str
    google_project: str
    app_id: int | None = None
    app_private_key: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    api_url: str = "https://api.github.com"
    cleanup_token: str | None = field(default=None, repr=False)
    endpoints: GoogleEndpoints = GoogleEndpoints()
    on_app_engine: bool = False
    #: Timeouts and retries of every adapter (production's; the emulator uses a shorter one).
    budget: Budget = PRODUCTION

    @property
    def owner(self) -> str:
        """The repository owner."""
        return self.repository.split("/", 1)[0]

    @classmethod
    def from_env(
        cls, env: Mapping[str, str], resolve_secret: SecretResolver | None = None
    ) -> Settings:
        """Read and validate the configuration; raise ConfigError naming every bad variable."""
        problems: list[str] = []
        unresolved: set[str] = set()  # set, but their Secret Manager reference failed

        def get(name: str) -> str | None:
            value = env.get(name)
            if value is None or value.strip() == "":
                return None
            value = value.strip() if name != "GITHUB_APP_PRIVATE_KEY" else value
            if name in SECRET_VARIABLES and value.startswith("sm://"):
                if resolve_secret is None:
                    problems.append(f"{name}: Secret Manager references are not available here")
                    unresolved.add(name)
                    return None
                try:
                    return resolve_secret(name, value)
                except ConfigError as exc:
                    problems.append(str(exc))
                    unresolved.add(name)
                    return None
            return value

        secret = get("GITHUB_WEBHOOK_SECRET")
        if secret is None:
            if "GITHUB_WEBHOOK_SECRET" not in unresolved:  # else that failure is the problem
                problems.append(
                    "GITHUB_WEBHOOK_SECRET is required (the webhook secret set in GitHub)"
                )
        elif len(secret) < 16:
            problems.append("GITHUB_WEBHOOK_SECRET is too short: use at least 16 characters")

        repository = get("GITHUB_REPOSITORY")
        if repository is None:
            problems.append("GITHUB_REPOSITORY is required (owner/name of the access repository)")
        elif not REPOSITORY_RE.match(repository) or repository.split("/")[1] in (".", ".."):
            problems.append(f"GITHUB_REPOSITORY must look like owner/name, got {repository!r}")

        app_id_text = get("GITHUB_APP_ID")
        app_key = get("GITHUB_APP_PRIVATE_KEY")
        token = get("GITHUB_TOKEN")
        app_id: int | None = None
        if app_id_text is not None:
            # ASCII digits only: str.isdigit() also accepts '²', which int() refuses; App IDs
            # start at 1.
            if not (app_id_text.isascii() and app_id_text.isdigit()) or int(app_id_text) == 0:
                problems.append(f"GITHUB_APP_ID must be a number, got {app_id_text!r}")
            else:
                app_id = int(app_id_text)
        key_unresolved = "GITHUB_APP_PRIVATE_KEY" in unresolved
        if (app_id_text is None) != (app_key is None) and not key_unresolved:
            problems.append("GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY must be set together")
        if app_key is not None and not _is_rsa_private_key(app_key):
            problems.append(
                "GITHUB_APP_PRIVATE_KEY must be the App's RSA private key as PEM text "
                "(as downloaded from the App's settings)"
            )
        if app_key is None and token is None and not unresolved & {
            "GITHUB_APP_PRIVATE_KEY", "GITHUB_TOKEN"
        }:
            problems.append(
                "set GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY (a GitHub App) or GITHUB_TOKEN"
            )
        if app_key is None and token is not None and token.startswith(INSTALLATION_TOKEN_PREFIX):
            # GitHub gives App installation tokens this prefix. One expires within an hour and
            # cannot call GET /user, so the service could not tell its own comments; the
            # adapter also recognises one by that refusal (tokens of older Enterprise Servers
            # have no prefix).
            problems.append(
                "GITHUB_TOKEN is a GitHub App installation token (ghs_…), which expires within "
                "an hour and cannot call GET /user: set GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY "
                "instead, or use a personal access token"
            )

        api_url = get("GITHUB_API_URL") or "https://api.github.com"
        if not _is_url(api_url):
            problems.append(f"GITHUB_API_URL must be an http(s) URL, got {api_url!r}")

        project = get("GOOGLE_CLOUD_PROJECT")
        if project is None:
            problems.append(
                "GOOGLE_CLOUD_PROJECT is required (the project receiving the audit log)"
            )
        elif not PROJECT_RE.match(project):
            problems.append(f"GOOGLE_CLOUD_PROJECT is not a valid project ID: {project!r}")

        cleanup_token = get("CLEANUP_TOKEN")
        if cleanup_token is not None and len(cleanup_token) < 16:
            problems.append("CLEANUP_TOKEN is too short: use at least 16 characters")

        endpoints: dict[str, str | None] = {}
        for name, key in (
            ("RESOURCE_MANAGER_ENDPOINT", "resource_manager"),
            ("CLOUD_ASSET_ENDPOINT", "cloud_asset"),
            ("CLOUD_LOGGING_ENDPOINT", "cloud_logging"),
            ("CLOUD_IDENTITY_ENDPOINT", "cloud_identity"),
        ):
            value = get(name)
            if value is not None and not _is_url(value):
                problems.append(f"{name} must be an http(s) URL, got {value!r}")
                value = None
            endpoints[key] = value.rstrip("/") if value else None

        if problems:
            raise ConfigError("invalid configuration: " + "; ".join(problems))
        assert secret is not None and repository is not None and project is not None
        return cls(
            webhook_secret=secret,
            repository=repository,
            google_project=project,
            app_id=app_id,
            app_private_key=app_key,
            token=token,
            api_url=api_url.rstrip("/"),
            cleanup_token=cleanup_token,
            endpoints=GoogleEndpoints(**endpoints),
            on_app_engine=env.get("GAE_ENV") == "standard",
        )


def _is_rsa_private_key(pem: str) -> bool:
    """Does the text load as an unencrypted RSA private key (what GitHub Apps use)?"""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        return False
    return isinstance(key, rsa.RSAPrivateKey)


def _is_url(value: str) -> bool:
    parsed = urlparse(value)
    return parsed.scheme in ("http", "https") and bool(parsed.netloc)
