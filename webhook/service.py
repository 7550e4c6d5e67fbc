"""Wiring: the adapters for one configuration, and the operations the app exposes."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from webhook.activation import Activator
from webhook.audit import AuditLog
from webhook.cleanup import Cleaner, CleanupReport
from webhook.config import Settings
from webhook.eligibility import EligibilityChecker
from webhook.errors import ConfigError, GitHubError, JitAccessError
from webhook.github import GitHubRepo
from webhook.google_clients import GoogleClients
from webhook.lifecycle import POLICY_PATH, Clock, Lifecycle, utcnow
from webhook.policy import parse_policy

log = logging.getLogger("jitaccess")


@dataclass
class Service:
    """Everything one service instance needs, built once at start."""

    settings: Settings
    github: GitHubRepo
    google: GoogleClients
    lifecycle: Lifecycle
    cleaner: Cleaner
    clock: Clock = utcnow

    @classmethod
    def from_settings(cls, settings: Settings, *, clock: Clock = utcnow) -> Service:
        """Build the real adapters for a configuration (no network calls yet)."""
        github = GitHubRepo.from_settings(settings)
        google = GoogleClients(settings.endpoints, settings.google_project)
        activator = Activator(google)
        audit = AuditLog(google)
        lifecycle = Lifecycle(
            repository=settings.repository,
            github=github,
            eligibility=EligibilityChecker(google),
            activator=activator,
            audit=audit,
            clock=clock,
            # Shared by every delivery in flight: each runs up to 6 calls at once, and gunicorn
            # serves 8 deliveries at a time (app.yaml), so 8 workers would queue a burst's
            # calls behind each other. Idle workers cost a thread and a GitHub client each.
            executor=ThreadPoolExecutor(max_workers=32, thread_name_prefix="jit"),
        )
        return cls(settings, github, google, lifecycle, Cleaner(google, audit, activator), clock)

    def is_own_login(self, login: str) -> bool:
        """Was the event caused by this service's own GitHub account?"""
        try:
            return login.lower() == self.github.self_login().lower()
        except GitHubError as exc:
            log.warning("could not tell the service's own login: %s", exc)
            return False

    def foreign_installation(self, payload: Mapping[str, Any]) -> str | None:
        """A reason to ignore a delivery naming another GitHub App installation, else None."""
        installation = payload.get("installation")
        if not isinstance(installation, Mapping) or "id" not in installation:
            return None
        ours = self.github.installation_id()
        if ours is not None and installation.get("id") != ours:
            return f"ignored: installation {installation.get('id')} is not this service's"
        return None

    def cleanup(self) -> CleanupReport:
        """Remove expired activations within the policy's scope."""
        text = self.github.file_bytes(POLICY_PATH, None)
        if text is None:
            raise ConfigError(f"{POLICY_PATH} is missing on the default branch")
        policy, problems = parse_policy(text)
        if policy is None or problems:
            raise ConfigError(
                f"{POLICY_PATH} is invalid: " + "; ".join(p.message for p in problems)
            )
        return self.cleaner.cleanup(policy.scope, self.clock())

    def warmup(self) -> None:
        """Build clients and fetch credentials so the first delivery is fast."""
        self.google.preload()
        try:
            self.github.self_login()
        except JitAccessError as exc:
            log.warning("warmup could not reach GitHub: %s", exc)
