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

After the removals, two steps that need no further IAM read (`webhook.core.reconcile` decides):

- Expiry comments. Each PR of this repository whose activation this run removed gets one
  comment saying when the access ended (one per PR, whatever the number of roles). The record
  that it was posted is the comment itself: its hidden marker `<!-- jit-access:expired <end> -->`
  among the service's own comments since the end time (one listing per PR, only when something
  of it was removed). A run that removes the same binding again (an interrupted run, a binding
  put back) finds the marker and stays silent; a deleted comment is posted again, which is
  harmless.
- Reconciliation. The live activations the search returned (its answer holds the matching
  bindings, so no extra policy read is made) are judged against the audit log with one
  `entries.list` query of the activation and orphan entries since the oldest window judged,
  whatever the number of bindings. An orphan gets its `gitops.orphanedActivation` entry once
  (deterministic insertId, and the same read shows the entries already written); with
  `cleanup.remove_orphans` it is removed, its `gitops.removeOrphan` entry written first, inside
  the etag-guarded read-modify-write, as for expired ones. The search is eventually consistent:
  a binding that has just been removed may still be judged (its removal then finds nothing to
  remove), one just written is judged by the next run.
- Break-glass reviews (docs/design.md, *Break-glass review*). One `entries.list` query of the
  break-glass entries (activations, reviews, reports) since `break_glass.lookback`; each
  activation of this repository not reviewed within `review_within` and not yet reported gets
  `gitops.breakGlassUnreviewed` (WARNING, deterministic insertId) and then one comment (marker
  `<!-- jit-access:break-glass-unreviewed -->`). The entry first: a failed entry leaves the PR
  for the next run, and nothing is said without its record.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from google.protobuf import json_format

from webhook.adapters.cloud_logging import (
    ORPHANED_ACTIVATION,
    REMOVE_EXPIRED,
    AuditLog,
    AuditRecord,
)
from webhook.adapters.google_clients import (
    CALL_FAILURES,
    GoogleClients,
    bounded_retry,
    google_failure,
)
from webhook.adapters.iam import Activator, activation_bindings
from webhook.core.audit_record import REMOVE_ORPHAN
from webhook.core.break_glass import (
    UNREVIEWED_MARKER,
    lookback,
    overdue,
    pull_number,
    unreviewed_comment,
    unreviewed_record,
)
from webhook.core.budget import PRODUCTION, Budget
from webhook.core.conditions import ACTIVATION_TITLE, activation_of
from webhook.core.durations import utc_timestamp
from webhook.core.errors import GitHubError, GoogleError, JitAccessError
from webhook.core.model import Binding
from webhook.core.reconcile import (
    AuditedActivation,
    LiveActivation,
    expired_marker,
    expiry_comment,
    live_activations,
    needs_audit,
    orphan_insert_id,
    ours,
    reconcile,
    reference_of,
)

PROJECT_ASSET_TYPE = "cloudresourcemanager.googleapis.com/Project"
_PROJECT_PREFIX = "//cloudresourcemanager.googleapis.com/projects/"
#: The search: policies whose text contains the activation title.
QUERY = f'policy:"{ACTIVATION_TITLE}"'
#: Reason sent with every cleanup write (shown in Cloud Audit Logs).
REASON = "JIT access: removing expired activations"
#: Reason sent with the removal of an orphaned activation.
ORPHAN_REASON = "JIT access: removing an activation no audit entry explains"
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


class PullRequestNotes(Protocol):
    """What cleanup needs of GitHub: the expiry comments on this repository's PRs."""

    def noted(self, number: int, marker: str, *, since: datetime) -> bool:
        """True when a comment of the service's own starting with `marker` was posted (or
        edited) on PR `number` at or after `since`."""
        ...

    def note(self, number: int, body: str) -> None:
        """Post a new comment on PR `number`."""
        ...


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
    #: Live activations no audit entry explains, and those of them this run removed.
    orphaned: tuple[LiveActivation, ...] = ()
    orphans_removed: tuple[LiveActivation, ...] = ()
    #: Live activations this service never judges (jit-access's own, another repository's).
    foreign: tuple[LiveActivation, ...] = ()
    #: PRs that got their expiry comment in this run.
    commented: tuple[int, ...] = ()
    #: PRs whose break-glass activation this run reported as not reviewed in time.
    unreviewed: tuple[int, ...] = ()

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
        if self.orphaned:
            text += f"; {len(self.orphaned)} orphaned activation(s)"
            if self.orphans_removed:
                text += f" ({len(self.orphans_removed)} removed)"
        if self.foreign:
            text += f"; {len(self.foreign)} foreign activation(s) left alone"
        if self.unreviewed:
            text += (
                f"; {len(self.unreviewed)} break-glass activation(s) not reviewed in time: "
                + ", ".join(f"#{n}" for n in self.unreviewed)
            )
        if self.errors:
            text += "; failed: " + "; ".join(f"{p}: {m}" for p, m in sorted(self.errors.items()))
        if self.left:
            text += (
                f"; stopped by its time budget; {len(self.left)} project(s) left for the next run"
            )
        return text

    def details(self) -> list[str]:
        """One line per binding removed, orphaned or left alone as foreign, for people."""
        lines = [
            f"removed: {r.binding.member} {r.binding.role} on {r.project} "
            f"(ended {utc_timestamp(r.end) if r.end else 'at an unknown time'})"
            for r in self.removed
        ]
        gone = set(self.orphans_removed)
        for kind, found in (("orphaned", self.orphaned), ("foreign", self.foreign)):
            for f in found:
                pr = str(f.reference) if f.reference else "no pull request"
                done = " (removed)" if f in gone else ""
                lines.append(
                    f"{kind}{done}: {f.binding.member} {f.binding.role} on {f.project} until "
                    f"{utc_timestamp(f.end)}, {pr}: {f.reason}"
                )
        return lines

    def as_json(self) -> dict[str, Any]:
        """The report as JSON-ready data (`left` only when the time budget ran out; `orphaned`,
        `orphans_removed`, `foreign` and `commented` only when not empty)."""
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
        for key, found in (
            ("orphaned", self.orphaned), ("orphans_removed", self.orphans_removed),
            ("foreign", self.foreign),
        ):
            if found:
                out[key] = [f.as_json() for f in found]
        if self.commented:
            out["commented"] = list(self.commented)
        if self.unreviewed:
            out["unreviewed"] = list(self.unreviewed)
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
        return list(self.activations_in(scope))

    def activations_in(self, scope: str) -> dict[str, list[Binding]]:
        """The activation bindings of each project in `scope`, as Cloud Asset's search answers
        (eventually consistent: minutes behind IAM), projects in the search's order."""
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
            found: dict[str, list[Binding]] = {}  # in the search's order, each once
            for result in pager:  # further pages are fetched with the same retry and timeout
                resource = str(result.resource)
                if not resource.startswith(_PROJECT_PREFIX):
                    continue  # only project policies are cleaned up
                project = resource[len(_PROJECT_PREFIX) :]
                if project and "/" not in project:
                    found.setdefault(project, []).extend(_search_activations(result))
            return found
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
        self,
        scope: str,
        now: datetime,
        *,
        cleanup_deadline: float = CLEANUP_DEADLINE,
        repository: str | None = None,
        notes: PullRequestNotes | None = None,
        remove_orphans: bool = False,
        review_within: timedelta | None = None,
    ) -> CleanupReport:
        """Remove every activation in `scope` that ended at or before `now`; with `repository`,
        reconcile the live ones with the audit log (and remove orphans with `remove_orphans`);
        with `notes` too, comment on the PRs whose activations expired, and with
        `review_within` report the break-glass activations not reviewed within it.

        No project is started once `cleanup_deadline` seconds have passed since the call (the
        search included); projects in flight finish, the others are reported as `left`.
        """
        deadline = self._monotonic() + cleanup_deadline
        found = self.activations_in(scope)
        projects = list(found)
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
        report = CleanupReport(tuple(removed), tuple(handled), errors, tuple(left))
        if repository is None:
            return report
        commented = self._note_expiry(removed, repository, notes, errors) if notes else []
        orphaned, orphans_removed, foreign = self._reconcile(
            found, now, repository, remove_orphans, errors
        )
        unreviewed = (
            self._report_unreviewed(now, repository, notes, review_within, errors)
            if notes is not None and review_within is not None else []
        )
        return dataclasses.replace(
            report, errors=errors, orphaned=tuple(orphaned),
            orphans_removed=tuple(orphans_removed), foreign=tuple(foreign),
            commented=tuple(commented), unreviewed=tuple(unreviewed),
        )

    def _report_unreviewed(
        self, now: datetime, repository: str, notes: PullRequestNotes,
        review_within: timedelta, errors: dict[str, str],
    ) -> list[int]:
        """Report each break-glass activation of `repository` not reviewed within
        `review_within` (module docstring): one audit read, then per such PR its
        `gitops.breakGlassUnreviewed` entry and one comment; the PRs reported."""
        try:
            entries = self._audit.break_glass_records(since=lookback(review_within, now))
        except JitAccessError as e:
            errors["break-glass reviews"] = str(e)
            return []
        reported: list[int] = []
        for item in overdue(entries, review_within, now):
            number = pull_number(item.activation.pull_request, repository)
            if number is None:
                continue  # another repository's activation (a shared audit project)
            reference = f"{repository}#{number}"
            try:
                self._audit.write(unreviewed_record(
                    item, pr_reference=reference, review_within=review_within, now=now,
                ))
            except JitAccessError as e:
                # Nothing said on the PR either: the next run tries both again.
                errors[reference] = f"the break-glass review report failed: {e}"
                continue
            reported.append(number)
            log.warning("%s: the break-glass activation of %s was not reviewed within %s",
                        reference, ",".join(item.activation.roles), review_within)
            try:
                if not notes.noted(number, UNREVIEWED_MARKER, since=item.deadline):
                    notes.note(number, unreviewed_comment(item, review_within))
            except JitAccessError as e:
                # The entry is the record: the next run finds it and says nothing more.
                errors[reference] = f"the break-glass review comment failed: {e}"
        return reported

    def _note_expiry(
        self, removed: Sequence[Removal], repository: str, notes: PullRequestNotes,
        errors: dict[str, str],
    ) -> list[int]:
        """One expiry comment per PR of `repository` whose activations were removed, unless
        the PR already has it (module docstring); the PRs commented on."""
        by_pr: dict[int, list[Removal]] = {}
        for removal in removed:
            reference = reference_of(removal.binding.description)
            if reference is not None and ours(reference, repository) and removal.end:
                by_pr.setdefault(reference.number, []).append(removal)
        lock = threading.Lock()
        commented: list[int] = []

        def note(number: int, removals: list[Removal]) -> None:
            end = max(r.end for r in removals if r.end is not None)
            marker = expired_marker(end)
            try:
                if notes.noted(number, marker, since=end):
                    return
                grants = [(r.project, r.binding.role, r.binding.member) for r in removals]
                notes.note(number, expiry_comment(end, grants))
                with lock:
                    commented.append(number)
            except GitHubError as e:
                if e.status == 404:
                    # No such PR (a description naming a PR that never existed, e.g. a binding
                    # made by hand): nobody to tell; reconciliation judges the binding itself.
                    log.warning("no PR %s#%d to note the expiry on", repository, number)
                    return
                with lock:
                    errors[f"{repository}#{number}"] = f"the expiry comment failed: {e}"
            except JitAccessError as e:
                with lock:
                    errors[f"{repository}#{number}"] = f"the expiry comment failed: {e}"

        # Two GitHub calls a PR: side by side on the cleaner's workers, not one PR after the
        # other (a run that removed a thousand activations would otherwise spend minutes here).
        with ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="expiry") as pool:
            for future in [pool.submit(note, n, r) for n, r in by_pr.items()]:
                future.result()
        commented.sort()
        return commented

    def _reconcile(
        self, found: Mapping[str, Sequence[Binding]], now: datetime, repository: str,
        remove_orphans: bool, errors: dict[str, str],
    ) -> tuple[list[LiveActivation], list[LiveActivation], list[LiveActivation]]:
        """Judge the live activations (one audit read); (orphaned, removed, foreign)."""
        live = live_activations(
            ((project, b) for project, bindings in found.items() for b in bindings), now
        )
        since = needs_audit(live, repository, now)
        entries: tuple[AuditedActivation, ...] = ()
        judged = True
        if since is not None:
            try:
                entries = self._audit.activation_entries(since=since)
            except JitAccessError as e:
                errors["reconciliation"] = str(e)
                judged = False  # nothing is called orphaned on a record that could not be read
        findings = reconcile(live, entries, repository, now)
        foreign = [f for f in findings if f.state == "foreign"]
        if not judged:
            return [], [], foreign
        orphaned = [f for f in findings if f.state == "orphaned"]
        reported = {e.insert_id for e in entries if e.event == ORPHANED_ACTIVATION}
        removed: list[LiveActivation] = []
        for orphan in orphaned:
            try:
                if orphan_insert_id(orphan) not in reported:
                    self._audit.write(_orphan_record(orphan, now, ORPHANED_ACTIVATION))
                if remove_orphans and self._remove_orphan(orphan, now):
                    removed.append(orphan)
            except JitAccessError as e:
                errors[orphan.project] = str(e)
        for orphan in orphaned:
            log.warning(
                "orphaned activation of %s for %s on %s: %s", orphan.binding.role,
                orphan.binding.member, orphan.project, orphan.reason,
            )
        return orphaned, removed, foreign

    def _remove_orphan(self, orphan: LiveActivation, now: datetime) -> bool:
        """Remove one orphan, its `gitops.removeOrphan` entry written before the write; True
        when a write removed it."""
        wrote = False

        def audit_first(present: Sequence[Binding]) -> None:
            nonlocal wrote
            if not wrote:
                self._audit.write(_orphan_record(orphan, now, REMOVE_ORPHAN))
            wrote = True

        self._activator.remove(
            orphan.project, [orphan.binding], reason=ORPHAN_REASON, before_write=audit_first
        )
        return wrote

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


def _search_activations(result: Any) -> list[Binding]:
    """The activation bindings of one `searchAllIamPolicies` result (its matching bindings)."""
    policy = getattr(result, "policy", None)
    if policy is None:
        return []
    message = getattr(policy, "_pb", policy)  # proto-plus wraps the protobuf message
    try:
        wire = json_format.MessageToDict(message)
    except (TypeError, AttributeError):
        return []
    return activation_bindings(wire)


def _orphan_record(orphan: LiveActivation, now: datetime, event: str) -> AuditRecord:
    """The entry reporting (or removing) an orphaned activation, the same in every run."""
    binding = orphan.binding
    who = binding.member.partition(":")[2] or binding.member
    if event == REMOVE_ORPHAN:
        message = (
            f"Removed the orphaned activation of {binding.role} for {who} on project "
            f"{orphan.project} ({orphan.reason}): {binding.description}"
        )
    else:
        message = (
            f"Orphaned activation of {binding.role} for {who} on project {orphan.project}: "
            f"{orphan.reason}: {binding.description}"
        )
    kind = "orphan" if event == ORPHANED_ACTIVATION else "remove-orphan"
    return AuditRecord(
        event=event,
        user=binding.member,
        project=orphan.project,
        roles=(binding.role,),
        activation_start=orphan.start,
        activation_end=orphan.end,
        message=message,
        severity="WARNING" if event == ORPHANED_ACTIVATION else None,
        # Deterministic, so that a repeated report is one entry; dated at the window's start
        # when Logging still accepts that (then the next run's read finds it too).
        timestamp=orphan.start if timedelta(0) <= now - orphan.start <= BACKDATE_LIMIT else now,
        insert_id=orphan_insert_id(orphan, kind),
    )


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
