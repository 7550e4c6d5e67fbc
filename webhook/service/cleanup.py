"""Cleanup: remove expired `JIT access activation` bindings within the policy's scope (§8).

An expired activation grants nothing (its condition is false), but it clutters the policy and
counts against IAM's limits (1,500 members and 100 conditional bindings per role per policy).
Cloud Asset's `searchAllIamPolicies` finds the projects whose policies hold activations; each
project's policy is then read afresh and only the activations whose window has ended are removed,
with the etag discipline of `Activator`. Every removal gets one audit entry. A failure on one
project is reported and does not stop the others.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from webhook.adapters.cloud_logging import REMOVE_EXPIRED, AuditLog, AuditRecord
from webhook.adapters.google_clients import (
    CALL_FAILURES,
    GoogleClients,
    bounded_retry,
    google_failure,
)
from webhook.adapters.iam import Activator
from webhook.core.budget import Budget
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


@dataclass(frozen=True)
class Removal:
    """One expired activation that was removed."""

    project: str
    binding: Binding
    start: datetime | None
    end: datetime | None


@dataclass(frozen=True)
class CleanupReport:
    """What a cleanup run did: removals, projects looked at, and failures per project."""

    removed: tuple[Removal, ...] = ()
    projects: tuple[str, ...] = ()
    errors: Mapping[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when every project was handled without error."""
        return not self.errors

    def summary(self) -> str:
        """One line for people: what was removed, and what failed."""
        text = (
            f"removed {len(self.removed)} expired activation(s) "
            f"in {len(self.projects)} project(s)"
        )
        if self.errors:
            text += "; failed: " + "; ".join(f"{p}: {m}" for p, m in sorted(self.errors.items()))
        return text

    def as_json(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        return {
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


class Cleaner:
    """Finds and removes expired activations, auditing every removal."""

    def __init__(
        self,
        clients: GoogleClients,
        audit: AuditLog,
        activator: Activator,
        *,
        budget: Budget | None = None,
    ) -> None:
        self._clients = clients
        self._audit = audit
        self._activator = activator
        self._budget = budget if budget is not None else clients.budget

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
            found: list[str] = []
            for result in pager:  # further pages are fetched with the same retry and timeout
                resource = str(result.resource)
                if not resource.startswith(_PROJECT_PREFIX):
                    continue  # only project policies are cleaned up
                project = resource[len(_PROJECT_PREFIX) :]
                if project and "/" not in project and project not in found:
                    found.append(project)
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

    def cleanup(self, scope: str, now: datetime) -> CleanupReport:
        """Remove every activation in `scope` that ended at or before `now`."""
        projects = self.projects_with_activations(scope)
        removed: list[Removal] = []
        errors: dict[str, str] = {}
        for project in projects:
            try:
                gone = self._activator.remove_expired(project, now, reason=REASON)
            except JitAccessError as e:
                errors[project] = str(e)
                continue
            for binding in gone:
                activation = activation_of(binding)
                start, end = (activation.start, activation.end) if activation else (None, None)
                removal = Removal(project, binding, start, end)
                removed.append(removal)
                try:
                    self._audit.write(_record(removal))
                except JitAccessError as e:
                    # The binding had expired: removing it took no access away that the audit
                    # trail needs to explain, so the failure is reported, not rolled back.
                    errors[project] = str(e)
        return CleanupReport(tuple(removed), tuple(projects), errors)


def _record(removal: Removal) -> AuditRecord:
    """The audit entry of one removal."""
    binding = removal.binding
    return AuditRecord(
        event=REMOVE_EXPIRED,
        user=binding.member,
        project=removal.project,
        roles=(binding.role,),
        activation_start=removal.start,
        activation_end=removal.end,
        message=(
            f"Removed the expired activation of {binding.role} for "
            f"{binding.member.partition(':')[2] or binding.member} "
            f"on project {removal.project}: {binding.description}"
        ),
    )
