"""Cleanup: remove expired `JIT access activation` bindings within the policy's scope (§8).

An expired activation grants nothing (its condition is false), but it clutters the policy and
counts against IAM's limits (1,500 members and 100 conditional bindings per role per policy).
Cloud Asset's `searchAllIamPolicies` finds the projects whose policies hold activations; each
project's policy is then read afresh and only the activations whose window has ended are removed,
with the etag discipline of `Activator`. A failure on one project is reported and does not stop
the others.

Audit first. Every removal has its `gitops.removeExpired` entry written *before* the policy write
that removes the binding (from within the read-modify-write, after the read, so the entry names
exactly what that etag-guarded write takes away); if the entry cannot be written, nothing is
removed. The two steps cannot be one transaction, so the order decides what an interruption (an
instance killed at the request deadline, a failed write) leaves behind: this way an entry for a
binding that is still there, never a removal without its entry. That leftover is harmless: the
binding has expired and grants nothing, and the next run removes it and writes the same entry
again, with the same insertId (`remove:<project>:<role>:<member>:<end>`) and timestamp (the
activation's end), which Cloud Logging shows once in queries (exports may carry both copies).
Writing the entry after the removal, as before, left removals without an entry whenever the run
was cut short between the two.

Scale. Projects are cleaned by a pool of `WORKERS` threads, started no faster than
`PROJECTS_PER_SECOND` (all workers together): each project costs one `getIamPolicy` and at most
one `setIamPolicy`, and Resource Manager allows a consumer project 600 reads and 600 writes a
minute by default, shared with the activations this service makes meanwhile. A run starts no
project after its time budget (`cleanup_deadline`, well below App Engine's 10-minute request
deadline); projects in flight finish, and the rest are left to the next run, which finds their
expired bindings still there. At the default pace a run cleans about 3,300 projects; a larger
fleet takes more than one cron run unless the quota, and with it the pace, is raised.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from webhook.adapters.cloud_logging import REMOVE_EXPIRED, AuditLog, AuditRecord
from webhook.adapters.google_clients import (
    CALL_FAILURES,
    GoogleClients,
    bounded_retry,
    google_failure,
)
from webhook.adapters.iam import Activator
from webhook.core.budget import PRODUCTION, Budget
from webhook.core.conditions import ACTIVATION_TITLE, activation_of
from webhook.core.durations import utc_timestamp
from webhook.core.errors import GoogleError, JitAccessError
from webhook.core.model import Binding

PROJECT_ASSET_TYPE = "cloudresourcemanager.googleapis.com/Project"
_PROJECT_PREFIX = "//cloudresourcemanager.googleapis.com/projects/"
#: The search: policies whose text contains the activation title.
QUERY = f'policy:"{ACTIVATION_TITLE}"'
#: Reason sent with every cleanup write (shown in Cloud Audit Logs).
REASON = "JIT access: removing expired activations"
#: Projects cleaned at once. At 200 ms per call a project takes about 0.6 s (read, audit entry,
#: write), so 8 workers can start 13 projects a second: more than the pace below allows, with
#: room for slower calls and conflict retries. More would also outgrow the HTTP connection pool
#: the client libraries keep per host (10 connections).
WORKERS = 8
#: Projects started per second, all workers together: 480 `getIamPolicy` and at most 480
#: `setIamPolicy` a minute, 80% of Resource Manager's default per-minute quotas (600 reads, 600
#: writes per consumer project); the rest is left to activations and revocations. Raise it (and
#: `WORKERS`) with the quota.
PROJECTS_PER_SECOND = 8.0
#: The production cleanup deadline (the budget's `cleanup_deadline`).
CLEANUP_DEADLINE = PRODUCTION.cleanup_deadline
#: Oldest activation end used as an entry's timestamp. Cloud Logging does not store entries older
#: than the log bucket's retention (1 day at least, 30 by default); an activation that ended
#: longer ago (cleanup was not running) is audited at the run's time instead.
BACKDATE_LIMIT = timedelta(days=1)

log = logging.getLogger("jitaccess")


@dataclass(frozen=True)
class Removal:
    """One expired activation that was removed."""

    project: str
    binding: Binding
    start: datetime | None
    end: datetime | None


@dataclass(frozen=True)
class CleanupReport:
    """What a cleanup run did: removals, projects handled, failures per project, and the projects
    left for the next run because the run's time budget ran out."""

    removed: tuple[Removal, ...] = ()
    projects: tuple[str, ...] = ()
    errors: Mapping[str, str] = field(default_factory=dict)
    left: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when every project was handled without error."""
        return not self.errors

    @property
    def stopped_by_budget(self) -> bool:
        """True when the run's time budget left projects for the next run."""
        return bool(self.left)

    def summary(self) -> str:
        """One line for people: what was removed, what failed, and what is left."""
        text = (
            f"removed {len(self.removed)} expired activation(s) "
            f"in {len(self.projects)} project(s)"
        )
        if self.errors:
            text += "; failed: " + "; ".join(f"{p}: {m}" for p, m in sorted(self.errors.items()))
        if self.left:
            text += (
                f"; stopped by its time budget; {len(self.left)} project(s) left for the next run"
            )
        return text

    def as_json(self) -> dict[str, Any]:
        """The report as JSON-ready data (`left` only when the time budget ran out)."""
        out: dict[str, Any] = {
            "removed": [
                {
                    "project": r.project,
                    "role": r.binding.role,
                    "member": r.binding.member,
                    "end": utc_timestamp(r.end) if r.end else None,
                }
                for r in self.removed
            ],
            "projects": list(self.projects),
            "errors": dict(self.errors),
        }
        if self.left:
            out["left"] = list(self.left)
        return out


@dataclass(frozen=True)
class _Outcome:
    """One project's part of a run."""

    removed: tuple[Removal, ...] = ()
    error: str | None = None


class _Pacer:
    """Spaces the starts of projects at least `1 / rate` seconds apart, across all workers."""

    def __init__(self, rate: float | None, monotonic: Callable[[], float]) -> None:
        self._interval = 1.0 / rate if rate else 0.0
        self._monotonic = monotonic
        self._next = float("-inf")
        self._lock = threading.Lock()

    def reserve(self) -> float:
        """The (monotonic) time of the next free start slot, now taken."""
        with self._lock:
            at = max(self._monotonic(), self._next)
            self._next = at + self._interval
            return at


class Cleaner:
    """Finds and removes expired activations, auditing every removal before it is made."""

    def __init__(
        self,
        clients: GoogleClients,
        audit: AuditLog,
        activator: Activator,
        *,
        budget: Budget | None = None,
        workers: int = WORKERS,
        projects_per_second: float | None = PROJECTS_PER_SECOND,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._clients = clients
        self._audit = audit
        self._activator = activator
        self._budget = budget if budget is not None else clients.budget
        self._workers = max(1, workers)
        self._pace = projects_per_second  # None: as fast as the workers go
        self._monotonic = monotonic
        self._sleep = sleep

    def projects_with_activations(self, scope: str) -> list[str]:
        """Project IDs in `scope` whose policies hold activation bindings (per Cloud Asset)."""
        try:
            pager = self._clients.asset.search_all_iam_policies(
                request={
                    "scope": scope,
                    "query": QUERY,
                    "asset_types": [PROJECT_ASSET_TYPE],
                    "page_size": 500,
                },
                retry=bounded_retry(self._budget),
                timeout=self._budget.call_timeout,
            )
            found: dict[str, None] = {}  # in the search's order, each once (a list is O(n²))
            for result in pager:  # further pages are fetched with the same retry and timeout
                resource = str(result.resource)
                if not resource.startswith(_PROJECT_PREFIX):
                    continue  # only project policies are cleaned up
                project = resource[len(_PROJECT_PREFIX) :]
                if project and "/" not in project:
                    found[project] = None
            return list(found)
        except CALL_FAILURES as error:
            failure = google_failure(error)
            if failure.retried:
                raise GoogleError(
                    f"searching IAM policies in {scope} kept failing ({failure.summary})"
                ) from None
            raise GoogleError(
                f"searching IAM policies in {scope} failed: {failure.detail}",
                status=failure.status,
            ) from None

    def cleanup(
        self, scope: str, now: datetime, *, cleanup_deadline: float = CLEANUP_DEADLINE
    ) -> CleanupReport:
        """Remove every activation in `scope` that ended at or before `now`.

        No project is started once `cleanup_deadline` seconds have passed since the call (the
        search included); projects in flight finish, the others are reported as `left`.
        """
        deadline = self._monotonic() + cleanup_deadline
        projects = self.projects_with_activations(scope)
        pacer = _Pacer(self._pace, self._monotonic)

        def run(project: str) -> _Outcome | None:
            at = pacer.reserve()
            if at >= deadline:
                return None  # not started: left for the next run
            wait = at - self._monotonic()
            if wait > 0:
                self._sleep(wait)
            return self._clean(project, now)

        outcomes: list[_Outcome | None] = []
        if projects:
            workers = min(self._workers, len(projects))
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="jit-cleanup") as pool:
                outcomes = list(pool.map(run, projects))
        removed: list[Removal] = []
        errors: dict[str, str] = {}
        handled: list[str] = []
        left: list[str] = []
        for project, outcome in zip(projects, outcomes, strict=True):
            if outcome is None:
                left.append(project)
                continue
            handled.append(project)
            removed.extend(outcome.removed)
            if outcome.error is not None:
                errors[project] = outcome.error
        if left:
            log.warning(
                "cleanup stopped by its time budget (%g s); %d project(s) left for the next run",
                cleanup_deadline, len(left),
            )
        return CleanupReport(tuple(removed), tuple(handled), errors, tuple(left))

    def _clean(self, project: str, now: datetime) -> _Outcome:
        """One project: audit entries first, then the etag-guarded removal (module docstring)."""
        audited: dict[Binding, Removal] = {}

        def audit_first(expired: Sequence[Binding]) -> None:
            # Called after each read, before its write; a conflict retry re-reads and comes
            # back here with what is expired then: entries already written are not repeated.
            for binding in expired:
                if binding not in audited:
                    removal = _removal(project, binding)
                    self._audit.write(_record(removal, now))
                    audited[binding] = removal

        try:
            gone = self._activator.remove_expired(
                project, now, reason=REASON, before_write=audit_first
            )
        except JitAccessError as e:
            # Nothing was removed without its entry: either the entry failed and no write was
            # sent, or the write failed after its entries (the next run removes the bindings).
            return _Outcome(error=str(e))
        # Only bindings a write tried to remove can be gone, and each was audited before.
        return _Outcome(removed=tuple(audited[b] for b in gone))


def _removal(project: str, binding: Binding) -> Removal:
    """The removal of one expired activation, with its window."""
    activation = activation_of(binding)
    start, end = (activation.start, activation.end) if activation else (None, None)
    return Removal(project, binding, start, end)


def _record(removal: Removal, now: datetime) -> AuditRecord:
    """The audit entry of one removal, the same in every run that attempts it."""
    binding = removal.binding
    end = removal.end
    return AuditRecord(
        event=REMOVE_EXPIRED,
        user=binding.member,
        project=removal.project,
        roles=(binding.role,),
        activation_start=removal.start,
        activation_end=end,
        message=(
            f"Removed the expired activation of {binding.role} for "
            f"{binding.member.partition(':')[2] or binding.member} "
            f"on project {removal.project}: {binding.description}"
        ),
        # Deterministic, so that a run repeating an interrupted removal writes the same entry.
        timestamp=end if end is not None and now - end <= BACKDATE_LIMIT else now,
        insert_id=(
            f"remove:{removal.project}:{binding.role}:{binding.member}:{utc_timestamp(end)}"
            if end is not None
            else None
        ),
    )
