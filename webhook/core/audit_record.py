"""Audit records (README: audit log): the events, and one entry's labels and payload. Pure: no I/O.

`adapters.cloud_logging` writes these records to Cloud Logging; the lifecycle builds them without
loading the Google client libraries.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from webhook.core.durations import utc_timestamp

REQUEST_ROLE = "gitops.requestRole"
APPROVE_ROLE = "gitops.approveRole"
ACTIVATE_ROLE = "gitops.activateRole"
REFUSE_ACTIVATION = "gitops.refuseActivation"
REMOVE_EXPIRED = "gitops.removeExpired"
ORPHANED_ACTIVATION = "gitops.orphanedActivation"
REMOVE_ORPHAN = "gitops.removeOrphan"
REVOKE_ROLE = "gitops.revokeRole"
REVIEW_BREAK_GLASS = "gitops.reviewBreakGlass"
BREAK_GLASS_UNREVIEWED = "gitops.breakGlassUnreviewed"

EVENTS = (
    REQUEST_ROLE, APPROVE_ROLE, ACTIVATE_ROLE, REFUSE_ACTIVATION, REMOVE_EXPIRED,
    ORPHANED_ACTIVATION, REMOVE_ORPHAN, REVOKE_ROLE, REVIEW_BREAK_GLASS, BREAK_GLASS_UNREVIEWED,
)

#: The severity of a break-glass activation's entry (README: break-glass): above every other
#: entry of the log, so that an alerting policy on `severity>=ALERT` sees each one.
BREAK_GLASS_SEVERITY = "ALERT"
#: The label that marks the entries of a break-glass activation and of its review.
BREAK_GLASS_LABEL = "break_glass"
#: The label naming the rule applied to each role, in the order of `role` (README: rules).
RULE_LABEL = "rule"
#: The `rule` label's name for a role under the top-level settings (no rule applied).
DEFAULT_RULE = "default"

_SEVERITY = {
    ACTIVATE_ROLE: "NOTICE",
    REMOVE_EXPIRED: "NOTICE",
    REVOKE_ROLE: "NOTICE",
    REFUSE_ACTIVATION: "WARNING",
    ORPHANED_ACTIVATION: "WARNING",
    REMOVE_ORPHAN: "NOTICE",
    REVIEW_BREAK_GLASS: "NOTICE",
    BREAK_GLASS_UNREVIEWED: "WARNING",
}

#: The label keys of every entry, in the order of README: audit log.
LABEL_KEYS = (
    "event",
    "user",
    "project",
    "role",
    "justification",
    "activation_start",
    "activation_end",
    "reviewers",
    "pull_request",
    "commit",
    "delivery_id",
)


def _bare(identity: str) -> str:
    """`user:alice@example.com` → `alice@example.com` (identities are logged as bare emails)."""
    prefix, sep, rest = identity.partition(":")
    if sep and prefix in ("user", "group", "serviceAccount", "principal"):
        return rest
    return identity


def audit_time(moment: datetime | None) -> str:
    """UTC in whole seconds with a `Z`, or "" when not applicable."""
    return "" if moment is None else utc_timestamp(moment, "audit")


@dataclass(frozen=True)
class AuditRecord:
    """One audit entry, in the project's terms."""

    event: str
    user: str = ""
    project: str = ""
    roles: tuple[str, ...] = ()
    justification: str = ""
    activation_start: datetime | None = None
    activation_end: datetime | None = None
    reviewers: tuple[str, ...] = ()
    pull_request: str = ""  # URL
    commit: str = ""
    delivery_id: str = ""  # X-GitHub-Delivery
    message: str = ""
    severity: str | None = None  # None: by event (NOTICE, WARNING or INFO)
    timestamp: datetime | None = None  # when it happened; None: when Cloud Logging receives it
    insert_id: str | None = None  # Cloud Logging treats entries with the same id and time as one
    # Labels some events carry beside LABEL_KEYS (a revocation's `revoked_by` and `reason`).
    extra_labels: tuple[tuple[str, str], ...] = ()
    #: The rule applied to each of `roles`, in their order (`default`: the top-level settings;
    #: "" where it is not known); None: the entry has no `rule` label.
    rules: tuple[str, ...] | None = None
    #: A break-glass activation, or the review of one: label `break_glass: "true"`.
    break_glass: bool = False

    @property
    def effective_severity(self) -> str:
        """The entry's severity: explicit, else NOTICE for grants/removals, WARNING for refusals."""
        return self.severity or _SEVERITY.get(self.event, "INFO")

    def labels(self) -> dict[str, str]:
        """The entry's labels per README: audit log: all strings, "" when not applicable."""
        return {
            "event": self.event,
            "user": _bare(self.user),
            "project": self.project,
            "role": ",".join(self.roles),
            "justification": self.justification,
            "activation_start": audit_time(self.activation_start),
            "activation_end": audit_time(self.activation_end),
            "reviewers": ",".join(_bare(r) for r in self.reviewers),
            "pull_request": self.pull_request,
            "commit": self.commit,
            "delivery_id": self.delivery_id,
            **({RULE_LABEL: rule_label(self.rules)} if self.rules is not None else {}),
            **({BREAK_GLASS_LABEL: "true"} if self.break_glass else {}),
            **{
                key: value for key, value in self.extra_labels
                if key not in LABEL_KEYS and key not in (RULE_LABEL, BREAK_GLASS_LABEL)
            },
        }

    def payload(self) -> dict[str, Any]:
        """The entry's JSON payload: the readable message and the same fields as the labels."""
        return {"message": self.message or self.default_message(), **self.labels()}

    def default_message(self) -> str:
        """A readable sentence for entries created without a message."""
        roles = ", ".join(self.roles) or "no role"
        who = _bare(self.user) or "someone"
        where = f" on project {self.project}" if self.project else ""
        until = f" until {audit_time(self.activation_end)}" if self.activation_end else ""
        verb = {
            REQUEST_ROLE: "requested",
            APPROVE_ROLE: "was approved for",
            ACTIVATE_ROLE: "was granted",
            REFUSE_ACTIVATION: "was refused",
            REMOVE_EXPIRED: "no longer holds the expired",
            ORPHANED_ACTIVATION: "holds an activation no audit entry explains:",
            REMOVE_ORPHAN: "no longer holds the orphaned activation",
            REVOKE_ROLE: "was revoked",
            REVIEW_BREAK_GLASS: "had the break-glass activation reviewed of",
            BREAK_GLASS_UNREVIEWED: "has an unreviewed break-glass activation of",
        }.get(self.event, self.event)
        return f"{who} {verb} {roles}{where}{until}"


def rule_label(rules: tuple[str, ...]) -> str:
    """The `rule` label: the rules of the roles, comma-separated in the order of `role`; ""
    when none is known. A comma in a rule's name is written as a space, so that the label
    still has one item per role."""
    if not any(rules):
        return ""
    return ",".join(r.replace(",", " ") for r in rules)
