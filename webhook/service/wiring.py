"""Wiring: the adapters for one configuration, and the operations the app exposes."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from webhook.adapters.github_api import GitHubAuth, GitHubRepo
from webhook.adapters.github_checks import CheckRuns, CommitReads
from webhook.core.audit_record import AuditRecord
from webhook.core.break_glass import BreakGlassEntry
from webhook.core.eligibility import EligibilityQuestion
from webhook.core.errors import ConfigError, GitHubError, JitAccessError
from webhook.core.model import Binding, EligibilityFacts, EligibilitySettings
from webhook.core.names import POLICY_PATH
from webhook.core.policy import parse_policy
from webhook.core.ports import AuditedDecision
from webhook.service.config import Settings
from webhook.service.lifecycle import Clock, Lifecycle, utcnow

if TYPE_CHECKING:
    from webhook.adapters.cloud_logging import AuditLog
    from webhook.adapters.eligibility import EligibilityChecker
    from webhook.adapters.google_clients import GoogleClients
    from webhook.adapters.iam import ActivationResult, Activator
    from webhook.service.cleanup import Cleaner, CleanupReport

log = logging.getLogger("jitaccess")


def github_repo(settings: Settings) -> GitHubRepo:
    """The GitHub adapter for the service's configuration; a GitHub App is preferred to a token."""
    if settings.app_id is not None and settings.app_private_key:
        auth = GitHubAuth(
            repository=settings.repository,
            api_url=settings.api_url,
            app_id=settings.app_id,
            private_key_pem=settings.app_private_key,
            timeout=settings.budget.github_timeout,
        )
    else:
        auth = GitHubAuth(
            repository=settings.repository,
            api_url=settings.api_url,
            token=settings.token,
            timeout=settings.budget.github_timeout,
        )
    return GitHubRepo(auth)


class ExpiryNotes:
    """The cleanup's port to GitHub (`cleanup.PullRequestNotes`): expiry comments on PRs."""

    def __init__(self, github: GitHubRepo) -> None:
        self._github = github

    def noted(self, number: int, marker: str, *, since: datetime) -> bool:
        """True when one of the service's own comments since `since` starts with `marker`
        (1 call per 100 comments since then; +1 for `self_login` the first time)."""
        listed = self._github.comments(number, since=since)
        return bool(self._github.comments_with(number, marker, listed))

    def note(self, number: int, body: str) -> None:
        """Post the comment (1 call)."""
        self._github.create_comment(number, body)


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

                budget = self._settings.budget
                clients = GoogleClients(
                    self._settings.endpoints, self._settings.google_project, budget=budget
                )
                activator = Activator(clients, budget=budget)
                audit = AuditLog(clients, budget=budget)
                self._adapters = GoogleAdapters(
                    clients, EligibilityChecker(clients, budget=budget), activator, audit,
                    Cleaner(clients, audit, activator, budget=budget),
                )
            return self._adapters

    def check(
        self, *, scope: str, project: str, settings: EligibilitySettings,
        question: EligibilityQuestion,
    ) -> EligibilityFacts:
        """Eligibility port: see `EligibilityChecker.check`."""
        return self.adapters().eligibility.check(
            scope=scope, project=project, settings=settings, question=question
        )

    def activate(
        self, project: str, bindings: Sequence[Binding], *, reason: str, pr_reference: str
    ) -> ActivationResult:
        """Activator port: see `Activator.activate`."""
        return self.adapters().activator.activate(
            project, bindings, reason=reason, pr_reference=pr_reference
        )

    def remove(
        self, project: str, bindings: Sequence[Binding], *, reason: str,
        restore: Sequence[Binding] = (),
    ) -> tuple[Binding, ...]:
        """Activator port: see `Activator.remove`."""
        return self.adapters().activator.remove(project, bindings, reason=reason, restore=restore)

    def activations_for(self, project: str, pr_reference: str) -> tuple[Binding, ...]:
        """Activator port: see `Activator.activations_for`."""
        return self.adapters().activator.activations_for(project, pr_reference)

    def write(self, record: AuditRecord) -> None:
        """Audit port: see `AuditLog.write`."""
        self.adapters().audit.write(record)

    def decisions(
        self, pull_request_url: str, *, since: datetime
    ) -> tuple[AuditedDecision, ...]:
        """Audit port: see `AuditLog.decisions`."""
        return self.adapters().audit.decisions(pull_request_url, since=since)

    def break_glass_entries(
        self, pull_request_url: str, *, since: datetime
    ) -> tuple[BreakGlassEntry, ...]:
        """Audit port: see `AuditLog.break_glass_entries`."""
        return self.adapters().audit.break_glass_entries(pull_request_url, since=since)


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
        github = github_repo(settings)
        google = GoogleSide(settings)
        # With a GitHub App the verdict is a check run; a token can only set commit statuses.
        verdicts = (
            CheckRuns(github, settings.app_id)
            if settings.app_id is not None and settings.app_private_key
            else None
        )
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
            verdicts=verdicts,
            commits=CommitReads(github),
        )
        return cls(settings, github, google, lifecycle, clock)

    def own_login(self) -> str | None:
        """The service's own GitHub login, None when GitHub cannot tell it now.

        A GITHUB_TOKEN that is an App installation token raises ConfigError: the service cannot
        tell its own records from anyone else's with it.
        """
        try:
            return self.github.self_login()
        except GitHubError as exc:
            log.warning("could not tell the service's own login: %s", exc)
            return None

    def installation_replaced(self, named: int) -> bool:
        """A delivery named installation `named`, not the one serving the repository as far as
        we know: is it ours after all, because the App was reinstalled?

        A reinstalled App gets a new installation id (and the old one's tokens stop working),
        so without looking again every delivery would be ignored until the process restarts.
        The installation is looked up again at most once a minute; a mismatch that remains is
        logged as an error naming both installations.
        """
        known = self.github.installation_id()
        current = self.github.recheck_installation()
        if current == named:
            log.warning(
                "the GitHub App installation on %s is now %s (it was %s): the App was "
                "reinstalled", self.settings.repository, current, known,
            )
            return True
        log.error(
            "IGNORED a delivery naming GitHub App installation %s: App %s is installed on %s as "
            "installation %s (looked up again at most once a minute). Is the webhook of another "
            "App or installation pointed at this service?",
            named, self.settings.app_id, self.settings.repository, current,
        )
        return False

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
        return self.cleaner.cleanup(
            policy.scope, self.clock(), cleanup_deadline=self.settings.budget.cleanup_deadline,
            repository=self.settings.repository, notes=ExpiryNotes(self.github),
            remove_orphans=policy.cleanup.remove_orphans,
            # Also with break-glass disabled now: activations made while it was enabled still
            # need their review.
            review_within=policy.break_glass.review_within,
        )

    def warmup(self) -> None:
        """Build clients and fetch credentials so the first delivery is fast."""
        self.google.preload()
        try:
            self.github.self_login()
        except ConfigError:
            raise  # a misconfiguration found at start (an installation token as GITHUB_TOKEN)
        except JitAccessError as exc:
            log.warning("warmup could not reach GitHub: %s", exc)
