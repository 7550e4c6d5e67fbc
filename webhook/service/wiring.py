"""Wiring: the adapters for one configuration, and the operations the app exposes."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from webhook.adapters.github_api import GitHubRepo
from webhook.core.audit_record import AuditRecord
from webhook.core.errors import ConfigError, GitHubError, JitAccessError
from webhook.core.model import Binding, EligibilityFacts, EligibilitySettings
from webhook.core.policy import parse_policy
from webhook.service.config import Settings
from webhook.service.lifecycle import POLICY_PATH, Clock, Lifecycle, utcnow

if TYPE_CHECKING:
    from webhook.adapters.cloud_logging import AuditLog
    from webhook.adapters.eligibility import EligibilityChecker
    from webhook.adapters.google_clients import GoogleClients
    from webhook.adapters.iam import ActivationResult, Activator
    from webhook.service.cleanup import Cleaner, CleanupReport

log = logging.getLogger("jitaccess")


@dataclass(frozen=True)
class GoogleAdapters:
    """The Google side: clients and the adapters built on them."""

    clients: GoogleClients
    eligibility: EligibilityChecker
    activator: Activator
    audit: AuditLog
    cleaner: Cleaner


class GoogleSide:
    """The Google adapters, built on first use rather than at start-up.

    Importing the Google client libraries takes about 0.2 s; deferring it keeps `import
    webhook.main` fast, and App Engine's warmup request (`/_ah/warmup`) builds them before an
    instance takes traffic. The object serves the lifecycle as its eligibility, activator and
    audit port, forwarding each call to the real adapter.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._adapters: GoogleAdapters | None = None

    def adapters(self) -> GoogleAdapters:
        """The adapters, built (once, thread-safely) on first use."""
        with self._lock:
            if self._adapters is None:
                from webhook.adapters.cloud_logging import AuditLog
                from webhook.adapters.eligibility import EligibilityChecker
                from webhook.adapters.google_clients import GoogleClients
                from webhook.adapters.iam import Activator
                from webhook.service.cleanup import Cleaner

                clients = GoogleClients(self._settings.endpoints, self._settings.google_project)
                activator, audit = Activator(clients), AuditLog(clients)
                self._adapters = GoogleAdapters(
                    clients, EligibilityChecker(clients), activator, audit,
                    Cleaner(clients, audit, activator),
                )
            return self._adapters

    def check(
        self, *, scope: str, project: str, roles: Sequence[str], identities: Sequence[str],
        settings: EligibilitySettings,
    ) -> EligibilityFacts:
        """Eligibility port: see `EligibilityChecker.check`."""
        return self.adapters().eligibility.check(
            scope=scope, project=project, roles=roles, identities=identities, settings=settings
        )

    def activate(
        self, project: str, bindings: Sequence[Binding], *, reason: str, pr_reference: str
    ) -> ActivationResult:
        """Activator port: see `Activator.activate`."""
        return self.adapters().activator.activate(
            project, bindings, reason=reason, pr_reference=pr_reference
        )

    def remove(self, project: str, bindings: Sequence[Binding], *, reason: str) -> None:
        """Activator port: see `Activator.remove`."""
        self.adapters().activator.remove(project, bindings, reason=reason)

    def write(self, record: AuditRecord) -> None:
        """Audit port: see `AuditLog.write`."""
        self.adapters().audit.write(record)


@dataclass
class Service:
    """Everything one service instance needs, built once at start."""

    settings: Settings
    github: GitHubRepo
    google_side: GoogleSide
    lifecycle: Lifecycle
    clock: Clock = utcnow

    @property
    def google(self) -> GoogleClients:
        """The Google clients (built on first use)."""
        return self.google_side.adapters().clients

    @property
    def cleaner(self) -> Cleaner:
        """The cleanup adapter (built on first use)."""
        return self.google_side.adapters().cleaner

    @classmethod
    def from_settings(cls, settings: Settings, *, clock: Clock = utcnow) -> Service:
        """Build the real adapters for a configuration (no network calls yet)."""
        github = GitHubRepo.from_settings(settings)
        google = GoogleSide(settings)
        lifecycle = Lifecycle(
            repository=settings.repository,
            github=github,
            eligibility=google,
            activator=google,
            audit=google,
            clock=clock,
            # Shared by every delivery in flight: each runs up to 6 calls at once, and gunicorn
            # serves 8 deliveries at a time (app.yaml), so 8 workers would queue a burst's
            # calls behind each other. Idle workers cost a thread and a GitHub client each.
            executor=ThreadPoolExecutor(max_workers=32, thread_name_prefix="jit"),
        )
        return cls(settings, github, google, lifecycle, clock)

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
        from webhook.service.cleanup import CLEANUP_DEADLINE  # loaded with the cleaner anyway

        return self.cleaner.cleanup(
            policy.scope, self.clock(), cleanup_deadline=CLEANUP_DEADLINE
        )

    def warmup(self) -> None:
        """Build clients and fetch credentials so the first delivery is fast."""
        self.google.preload()
        try:
            self.github.self_login()
        except JitAccessError as exc:
            log.warning("warmup could not reach GitHub: %s", exc)
