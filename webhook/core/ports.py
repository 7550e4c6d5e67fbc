"""Ports: what the lifecycle needs from GitHub and Google, in the project's own types.

The adapters (`webhook.adapters.*`) implement these against the real APIs; tests implement them
in memory. Only the shapes live here, no behaviour, so that the service layer depends on
interfaces rather than on PyGithub or google-cloud.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from webhook.core.audit_record import AuditRecord
from webhook.core.break_glass import BreakGlassEntry
from webhook.core.checks import CheckRun, Unread
from webhook.core.eligibility import EligibilityQuestion
from webhook.core.model import (
    Binding,
    ChangedFile,
    ChangedFiles,
    CommitStatus,
    EligibilityFacts,
    EligibilitySettings,
    PullComment,
    PullInfo,
    Review,
)

if TYPE_CHECKING:  # merge imports this module: a runtime import would be circular
    from webhook.core.merge import StatusUpdate
    from webhook.core.merge_queue import GroupFile, OpenPull

#: The clock of the service: the current time, UTC.
Clock = Callable[[], datetime]

#: The `jit-access` verdict a commit carries: a commit status (token) or a check run (App).
PublishedVerdict = CommitStatus | CheckRun


@dataclass(frozen=True)
class ActivationResult:
    """What `ActivatorPort.activate` did.

    `written` is False when the request's bindings were already present (a redelivered merge
    event): nothing was written and `bindings` are the ones found, which keep their original
    window. `already` holds the bindings found present in that case.

    `replaced` are the earlier activations (same role and member) that the write took out of the
    policy: a rollback of this activation must put them back (`ActivatorPort.remove`).

    `start` and `end` are the activation window of the stored bindings as IAM holds them (None
    when the stored expression is not an activation window the service can read). They are read
    from `bindings`, so two results with the same bindings have the same window, and they take
    no part in comparisons.
    """

    written: bool
    bindings: tuple[Binding, ...]
    attempts: int = 1
    etag: str = ""
    already: tuple[Binding, ...] = ()
    replaced: tuple[Binding, ...] = ()
    start: datetime | None = field(default=None, compare=False)
    end: datetime | None = field(default=None, compare=False)


@dataclass(frozen=True)
class AuditedDecision:
    """A decision on a merged PR as the audit log holds it (`AuditPort.decisions`).

    Only the fields a later delivery needs to recognise the decision and to say it again on
    the PR: which event, for which commit, when (the entry's timestamp), the activation window
    of a grant and the readable message (a refusal's reason).
    """

    event: str  # gitops.activateRole or gitops.refuseActivation
    commit: str = ""
    timestamp: datetime | None = None
    insert_id: str = ""
    activation_start: datetime | None = None
    activation_end: datetime | None = None
    message: str = ""


class GitHubPort(Protocol):
    """The repository the service works for (`adapters.github_api.GitHubRepo`)."""

    def pull(self, number: int) -> PullInfo: ...
    def files(self, number: int) -> tuple[ChangedFile, ...]: ...
    def compare(self, base: str, head: str) -> ChangedFiles: ...
    def pull_that_added(self, path: str, ref: str) -> int | None: ...
    def reviews(self, number: int) -> tuple[Review, ...]: ...
    def file_bytes(
        self, path: str, ref: str | None, max_bytes: int = ...
    ) -> bytes | None: ...
    def commit_status(self, sha: str, context: str = ...) -> CommitStatus | None: ...
    def set_status(
        self, sha: str, state: str, description: str, context: str = ...,
        target_url: str | None = ..., *, current: CommitStatus | None = ...,
    ) -> bool: ...
    def comments(
        self, number: int, *, since: datetime | None = ..., until: str | None = ...
    ) -> tuple[PullComment, ...]: ...
    def upsert_comment(
        self, number: int, marker: str, body: str, comments: Sequence[PullComment] | None = ...
    ) -> int: ...
    def comments_with(
        self, number: int, marker: str, comments: Sequence[PullComment] | None = ...
    ) -> list[str]: ...
    def create_comment(self, number: int, body: str) -> int: ...
    def request_reviewers(self, number: int, logins: Sequence[str]) -> None: ...


class EligibilityPort(Protocol):
    """Who is eligible for which role (`adapters.eligibility.EligibilityChecker`): what the
    question asks, and no more (`webhook.core.eligibility`)."""

    def check(
        self, *, scope: str, project: str, settings: EligibilitySettings,
        question: EligibilityQuestion,
    ) -> EligibilityFacts: ...


class ActivatorPort(Protocol):
    """Writes and removes activation bindings (`adapters.iam.Activator`).

    `activations_for` reads the project's activation bindings that name a PR (by the reference
    at the end of their description), whatever their role, member or window.
    """

    def activate(
        self, project: str, bindings: Sequence[Binding], *, reason: str, pr_reference: str
    ) -> ActivationResult: ...
    def remove(
        self, project: str, bindings: Sequence[Binding], *, reason: str,
        restore: Sequence[Binding] = ...,
    ) -> tuple[Binding, ...]: ...
    def activations_for(self, project: str, pr_reference: str) -> tuple[Binding, ...]: ...


class AuditPort(Protocol):
    """The audit log (`adapters.cloud_logging.AuditLog`).

    `decisions` reads the activation and refusal entries of one PR (by its `pull_request`
    label) dated at or after `since`, each once; a failed read raises `AuditError`. It costs
    a quota-limited Cloud Logging read: only a merge calls it. `break_glass_entries` reads a
    PR's break-glass activation and review entries the same way: only an approval of a merged
    break-glass request by a reviewer who could be qualified calls it.
    """

    def write(self, record: AuditRecord) -> None: ...
    def decisions(
        self, pull_request_url: str, *, since: datetime
    ) -> tuple[AuditedDecision, ...]: ...
    def break_glass_entries(
        self, pull_request_url: str, *, since: datetime
    ) -> tuple[BreakGlassEntry, ...]: ...


class VerdictPort(Protocol):
    """Where the `jit-access` verdict goes: commit statuses with a token
    (`service.verdicts.StatusVerdicts`), check runs with a GitHub App
    (`adapters.github_checks.CheckRuns`)."""

    def current(self, sha: str) -> PublishedVerdict | None: ...
    def publish(
        self, sha: str, update: StatusUpdate, *,
        current: PublishedVerdict | None | Unread = ..., fresh: bool = ..., pr: int | None = ...,
    ) -> bool: ...


class CommitReadsPort(Protocol):
    """What Re-runs and merge groups read besides a PR (`adapters.github_checks.CommitReads`)."""

    def group_files(self, base: str, head: str) -> tuple[GroupFile, ...]: ...
    def open_pulls(self, base: str) -> tuple[OpenPull, ...]: ...
    def pulls_for_commit(self, sha: str) -> tuple[int, ...]: ...
    def blob_sha(self, path: str, ref: str) -> str | None: ...
