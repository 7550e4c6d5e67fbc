"""After-the-fact review of break-glass activations (README: break-glass); pure: no I/O.

A break-glass request is activated without approvals. Its audit entry (`gitops.activateRole`,
severity `ALERT`, label `break_glass: "true"`) is the record that it happened; this module says
what follows from the audit log and a review:

- the first qualified approval after the merge is the review: `gitops.reviewBreakGlass`
  (`NOTICE`, labels as the activation's, `reviewers` the reviewer) and a comment on the PR;
- an activation that is not reviewed within `break_glass.review_within` gets
  `gitops.breakGlassUnreviewed` (`WARNING`) from the cleanup run, once, and a comment.

The audit log is the record of both (their entries carry `break_glass: "true"` and the PR's
`pull_request` label); the comments are for people, found again by their hidden markers so
that neither is posted twice.

Who may review: a reviewer who is not the requester and is qualified for at least one of the
activated roles as for an approval (README: decisions, rules) — eligible for it on the project
through the multi-party marker (unless the role's rule says `peers: false`), or one of the
rule's designated `approvers` (a `user:` entry, or a member of a `group:` entry).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from webhook.core import audit_record as events
from webhook.core.audit_record import AuditRecord
from webhook.core.decide import deciding_reviews
from webhook.core.durations import as_aware, format_duration
from webhook.core.eligibility import EligibilityQuestion
from webhook.core.model import (
    AccessRequest,
    Policy,
    Review,
    ReviewState,
)
from webhook.core.render import _code, _finish, _mention, rfc3339
from webhook.core.rules import needs_ancestry, possible_settings

#: The events of a break-glass activation's record, all labelled `break_glass: "true"`.
RECORD_EVENTS = (events.ACTIVATE_ROLE, events.REVIEW_BREAK_GLASS, events.BREAK_GLASS_UNREVIEWED)
#: How far back the cleanup looks for unreviewed activations: Cloud Logging keeps entries for 30
#: days by default (the `_Default` bucket), so older ones cannot be read anyway.
LOOKBACK = timedelta(days=30)
#: Entries are backdated at most this far (Cloud Logging refuses entries older than the
#: bucket's retention, which may be as short as a day).
BACKDATE_LIMIT = timedelta(days=1)

REVIEWED_MARKER = "<!-- jit-access:break-glass-reviewed -->"
UNREVIEWED_MARKER = "<!-- jit-access:break-glass-unreviewed -->"


@dataclass(frozen=True)
class BreakGlassEntry:
    """An entry of a break-glass activation's record, as the audit log holds it."""

    event: str
    pull_request: str  # URL
    timestamp: datetime | None = None
    insert_id: str = ""
    user: str = ""  # bare email
    project: str = ""
    roles: tuple[str, ...] = ()
    rules: tuple[str, ...] = ()
    justification: str = ""
    start: datetime | None = None
    end: datetime | None = None
    reviewers: tuple[str, ...] = ()
    commit: str = ""
    break_glass: bool = False

    @property
    def at(self) -> datetime | None:
        """When it happened: the entry's time, else the activation's start."""
        return self.timestamp or self.start


def pull_key(url: str) -> str:
    """A PR's URL as entries are grouped by it (GitHub names are case-insensitive)."""
    return url.split("?", 1)[0].rstrip("/").lower()


@dataclass(frozen=True)
class PullRecord:
    """What the audit log says of one PR's break-glass activation."""

    pull_request: str
    activation: BreakGlassEntry | None = None  # the earliest break-glass activateRole entry
    review: BreakGlassEntry | None = None  # the first reviewBreakGlass entry
    unreviewed: BreakGlassEntry | None = None  # the breakGlassUnreviewed entry

    @property
    def reviewed(self) -> bool:
        """Has a qualified reviewer reviewed the activation (per the audit log)?"""
        return self.review is not None


def records(entries: Iterable[BreakGlassEntry]) -> dict[str, PullRecord]:
    """The record of each PR the entries name (keyed by `pull_key`). Activation entries count
    only with the break-glass label; the earliest of each kind stands for it."""
    found: dict[str, dict[str, BreakGlassEntry]] = {}
    urls: dict[str, str] = {}
    for entry in sorted(entries, key=_order):
        if not entry.pull_request or entry.event not in RECORD_EVENTS:
            continue
        if entry.event == events.ACTIVATE_ROLE and not entry.break_glass:
            continue
        key = pull_key(entry.pull_request)
        urls.setdefault(key, entry.pull_request)
        found.setdefault(key, {}).setdefault(entry.event, entry)
    return {
        key: PullRecord(
            urls[key],
            activation=kinds.get(events.ACTIVATE_ROLE),
            review=kinds.get(events.REVIEW_BREAK_GLASS),
            unreviewed=kinds.get(events.BREAK_GLASS_UNREVIEWED),
        )
        for key, kinds in found.items()
    }


def record_of(entries: Iterable[BreakGlassEntry], pull_request_url: str) -> PullRecord:
    """The record of one PR (empty when the entries name none of it)."""
    return records(entries).get(pull_key(pull_request_url), PullRecord(pull_request_url))


def review_deadline(activation: BreakGlassEntry, review_within: timedelta) -> datetime | None:
    """When the review of an activation is due (None when the entry has no time)."""
    at = activation.at
    return None if at is None else at + review_within


@dataclass(frozen=True)
class Overdue:
    """A break-glass activation whose review is overdue and not yet reported."""

    activation: BreakGlassEntry
    deadline: datetime


def overdue(
    entries: Iterable[BreakGlassEntry], review_within: timedelta, now: datetime
) -> tuple[Overdue, ...]:
    """The break-glass activations the cleanup must report: activated, not reviewed, due at or
    before `now`, and not reported yet (no `gitops.breakGlassUnreviewed` entry); oldest first.
    """
    out: list[Overdue] = []
    for record in records(entries).values():
        activation = record.activation
        if activation is None or record.reviewed or record.unreviewed is not None:
            continue
        deadline = review_deadline(activation, review_within)
        if deadline is not None and deadline <= now:
            out.append(Overdue(activation, deadline))
    return tuple(sorted(out, key=lambda o: o.deadline))


def lookback(review_within: timedelta, now: datetime) -> datetime:
    """Where the cleanup's read of break-glass records starts: far enough back for any review
    that can be overdue, bounded by Cloud Logging's default retention."""
    return now - max(LOOKBACK, review_within + BACKDATE_LIMIT)


# --------------------------------------------------------------------------------------------
# The review


def approval_after_merge(
    reviews: Iterable[Review], login: str, merged_at: datetime
) -> Review | None:
    """The reviewer's deciding review when it is an approval submitted after the merge (an
    approval given before it was a review of the request, not of the activation); else None."""
    review = deciding_reviews(reviews).get(login.lower())
    if review is None or review.state is not ReviewState.APPROVED:
        return None
    if review.submitted_at is None or as_aware(review.submitted_at) < as_aware(merged_at):
        return None
    return review


def approver_groups(policy: Policy, request: AccessRequest) -> tuple[str, ...]:
    """The designated-approver groups (`group:EMAIL`) that may apply to the request's roles: of
    each role's rule, or of every rule that may apply when folders decide which (the ancestry
    is read with the answer, and `qualified_roles` settles the rule then)."""
    approvers = (
        a for role in request.roles
        for settings in possible_settings(policy, request.project, role)
        for a in settings.approval.approvers
    )
    return tuple(dict.fromkeys(a.lower() for a in approvers if a.lower().startswith("group:")))


def review_question(
    policy: Policy, request: AccessRequest, *, requester: str, reviewer: str
) -> EligibilityQuestion:
    """What to ask the eligibility source about one reviewer of a break-glass activation.

    The reviewer is asked as a reviewer (multi-party eligibility for the roles the requester
    needs approval for) and as a vetoer for every role (multi-party eligibility whatever the
    requester's marker: a break-glass requester may hold self-approval for some), with their
    membership of the designated-approver groups; nobody else is asked about."""
    roles = tuple(dict.fromkeys(request.roles))
    return EligibilityQuestion(
        requester=requester.lower(),
        roles=roles,
        reviewers=(reviewer.lower(),),
        peers=False,
        vetoers=(reviewer.lower(),),
        veto_roles=roles,
        approver_groups=approver_groups(policy, request),
        ancestry=needs_ancestry(policy, request.project, roles),
    )


def review_insert_id(pr_reference: str) -> str:
    """The insert id of a PR's `gitops.reviewBreakGlass` entry (one review per PR)."""
    return f"review-break-glass:{pr_reference}"


def unreviewed_insert_id(pr_reference: str) -> str:
    """The insert id of a PR's `gitops.breakGlassUnreviewed` entry (once per PR)."""
    return f"break-glass-unreviewed:{pr_reference}"


def review_record(
    activation: BreakGlassEntry,
    *,
    reviewer: str,
    reviewer_login: str,
    pr_reference: str,
    delivery_id: str,
    at: datetime,
) -> AuditRecord:
    """`gitops.reviewBreakGlass`: the activation's labels, `reviewers` the reviewer's identity,
    dated at the approval with one insert id per PR, so that a redelivery writes the same entry
    (Cloud Logging keeps one)."""
    return _about(
        activation,
        event=events.REVIEW_BREAK_GLASS,
        reviewers=(reviewer,),
        delivery_id=delivery_id,
        message=(
            f"@{reviewer_login} ({reviewer}) reviewed the break-glass activation of "
            f"{', '.join(activation.roles) or 'no role'} on {activation.project} for "
            f"{activation.user} after the fact ({pr_reference})"
        ),
        timestamp=at.astimezone(UTC).replace(microsecond=0),
        insert_id=review_insert_id(pr_reference),
    )


def unreviewed_record(
    item: Overdue, *, pr_reference: str, review_within: timedelta, now: datetime
) -> AuditRecord:
    """`gitops.breakGlassUnreviewed` (WARNING): the activation's labels; dated at the deadline
    when Cloud Logging still takes that (so every run writes the same entry), else at `now`."""
    activation = item.activation
    at = item.deadline if timedelta(0) <= now - item.deadline <= BACKDATE_LIMIT else now
    return _about(
        activation,
        event=events.BREAK_GLASS_UNREVIEWED,
        message=(
            f"The break-glass activation of {', '.join(activation.roles) or 'no role'} on "
            f"{activation.project} for {activation.user} was not reviewed within "
            f"{_span(review_within)} (due {rfc3339(item.deadline)}; {pr_reference})"
        ),
        severity="WARNING",
        timestamp=at.replace(microsecond=0),
        insert_id=unreviewed_insert_id(pr_reference),
    )


def _about(activation: BreakGlassEntry, **fields: Any) -> AuditRecord:
    """An entry of a break-glass activation's record: the activation's labels (who, what,
    where, when, which rules, the PR and commit, `break_glass`), and `fields`."""
    return AuditRecord(
        user=activation.user,
        project=activation.project,
        roles=activation.roles,
        justification=activation.justification,
        activation_start=activation.start,
        activation_end=activation.end,
        pull_request=activation.pull_request,
        commit=activation.commit,
        rules=activation.rules or ("",) * len(activation.roles),
        break_glass=True,
        **fields,
    )


# --------------------------------------------------------------------------------------------
# Comments (new comments: GitHub notifies the participants)


def reviewed_comment(login: str, roles: Sequence[str], project: str) -> str:
    """The comment saying who reviewed a break-glass activation after the fact."""
    shown = ", ".join(_code(r) for r in roles) or "no role"
    return _finish([
        REVIEWED_MARKER,
        f"✅ {_mention(login)} reviewed this break-glass activation after the fact.",
        "",
        f"Roles: {shown} on project {_code(project)}. The review is recorded in the audit log "
        f"({_code(events.REVIEW_BREAK_GLASS)}).",
    ])


def unreviewed_comment(item: Overdue, review_within: timedelta) -> str:
    """The comment saying that a break-glass activation was not reviewed in time."""
    activation = item.activation
    shown = ", ".join(_code(r) for r in activation.roles) or "no role"
    return _finish([
        UNREVIEWED_MARKER,
        f"⚠️ **This break-glass activation was not reviewed within {_span(review_within)}** "
        f"(due {rfc3339(item.deadline)}).",
        "",
        f"Roles: {shown} on project {_code(activation.project)}. The audit log records it "
        f"({_code(events.BREAK_GLASS_UNREVIEWED)}). A qualified reviewer of one of these roles "
        "can still review it: approve this pull request.",
    ])


def _span(duration: timedelta) -> str:
    return format_duration(max(duration, timedelta(0)))


def _order(entry: BreakGlassEntry) -> tuple[datetime, str]:
    at = entry.at
    return (as_aware(at) if at is not None else datetime.min.replace(tzinfo=UTC), entry.insert_id)



def pull_number(url: str, repository: str) -> int | None:
    """The number of the PR of `repository` a `pull_request` label names
    (`https://HOST/owner/name/pull/N`), or None for another repository's or no PR."""
    path = url.split("?", 1)[0].rstrip("/")
    head, sep, number = path.rpartition("/pull/")
    if not sep or not number.isdigit() or not head.lower().endswith("/" + repository.lower()):
        return None
    value = int(number)
    return value if 0 < value < 2**31 else None
