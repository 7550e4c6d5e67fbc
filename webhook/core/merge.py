"""The rule book beside `decide`: what a merge does, and what an evaluation publishes.

Pure, like `decide`: the lifecycle gathers the facts (the decision, the PR, the records an
earlier delivery left, the clock), calls these functions, and applies the effects they name. No
GitHub or Google call is made here and no clock is read, so every rule of "what happens when I
merge" can be tested with plain values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from webhook.core import audit_record as audit_events
from webhook.core.audit_record import AuditRecord
from webhook.core.checks import Annotation, annotations_for
from webhook.core.conditions import build_binding, parse_activation_expression
from webhook.core.decide import review_order
from webhook.core.durations import format_duration
from webhook.core.model import (
    ApprovalKind,
    Binding,
    Decision,
    Identities,
    Policy,
    PrShape,
    PullInfo,
    Review,
    ReviewState,
    State,
)
from webhook.core.names import STATUS_DESCRIPTION_MAX
from webhook.core.ports import AuditedDecision
from webhook.core.problems import ProblemCode
from webhook.core.records import activation_insert_id, refusal_insert_id
from webhook.core.render import (
    cut,
    inert,
    not_a_request_summary,
    plain,
    revocation_summary,
    rfc3339,
    status_comment,
    status_description,
)

# ----------------------------------------------------------------------------------------------
# What an earlier delivery left behind

#: How long the delivery that wrote an activation binding may still be writing its audit entry
#: and posting its comment. It counts from the activation's start (the writer's clock when its
#: event began) and is well above everything a delivery may spend: GitHub and Google calls of 4 s
#: each with retries bounded at 6 s, at most 11 s of IAM conflicts and turns. Another delivery
#: that finds the record younger than this leaves the entry and the comment to the writer, so
#: two instances handling one merge post one comment; an older record's writer has finished or
#: died, and what it left undone is done again.
WRITER_BUDGET = timedelta(minutes=2)


@dataclass(frozen=True)
class EarlierRecords:
    """The records of an earlier decision on this PR that the lifecycle found.

    One field per source; a merge counts as decided when any source says so. The binding and
    the audit entry are the record (no repository writer can change them); the service's own
    comments can be deleted by any writer and only keep it from posting twice.
    """

    activation_comment: bool = False  # the service's own activation comment for this head
    refusal_comment: bool = False  # the service's own refusal comment for this head
    # The PR's activation and refusal entries in the audit log (any commit: a PR merges once).
    audited: tuple[AuditedDecision, ...] = ()
    # Why the audit log could not be read; None when it was read (or needed no reading).
    log_error: str | None = None
    # The project's activation bindings naming this PR; None when IAM was not looked at.
    bindings: tuple[Binding, ...] | None = None

    @property
    def activation_entry(self) -> AuditedDecision | None:
        """The audit log's activation entry of this PR, if any."""
        return next((a for a in self.audited if a.event == audit_events.ACTIVATE_ROLE), None)

    @property
    def refusal_entry(self) -> AuditedDecision | None:
        """The audit log's refusal entry of this PR, if any."""
        return next((a for a in self.audited if a.event == audit_events.REFUSE_ACTIVATION), None)

    @property
    def activated(self) -> bool:
        """Was this merge granted before?"""
        return (
            self.activation_comment or self.activation_entry is not None or bool(self.bindings)
        )

    @property
    def refused(self) -> bool:
        """Was this merge refused before?"""
        return self.refusal_comment or self.refusal_entry is not None


#: No earlier record found (or none looked up).
NO_RECORDS = EarlierRecords()


# ----------------------------------------------------------------------------------------------
# What a merge does


@dataclass(frozen=True)
class NotARequest:
    """The PR touches no request file: there is nothing to activate."""


@dataclass(frozen=True)
class NotMerged:
    """GitHub says the PR is not merged (whatever the event said): nothing to activate."""


@dataclass(frozen=True)
class AlreadyActivated:
    """An earlier delivery of this merge granted the access: a repeat grants nothing.

    `start` and `end` are the recorded window (None when only a comment records the grant).
    What the earlier delivery may have left undone, and this one does: `write_record` — a
    binding stands without its audit entry (the writer died between the two); write the entry
    with the same insert id and timestamp. `post_comment` — the activation comment is missing
    (deleted, or its POST failed); post it again. `writer_until`: set when the record is younger
    than `WRITER_BUDGET`; its writer may still be at work, so nothing is done before that time.
    """

    start: datetime | None = None
    end: datetime | None = None
    write_record: bool = False
    post_comment: bool = False
    writer_until: datetime | None = None


@dataclass(frozen=True)
class AlreadyRefused:
    """An earlier delivery refused this merge; a refusal is final.

    `reason` is the recorded one (from the audit entry); `post_comment`: the refusal comment is
    missing, post it again.
    """

    reason: str = ""
    post_comment: bool = False


@dataclass(frozen=True)
class LookUpBindings:
    """Before refusing, read `project`'s activation bindings of this PR and decide again: an
    earlier delivery may have granted the access and died before recording it, and a refusal
    must never stand beside a grant."""

    project: str


@dataclass(frozen=True)
class RetryLater:
    """Nothing could be decided (a Google lookup failed): fail so that a redelivery completes
    it; refusing would be final."""

    reason: str


@dataclass(frozen=True)
class Refuse:
    """The merge grants nothing, for `reason` (said on the PR and in the audit log)."""

    reason: str


@dataclass(frozen=True)
class Activate:
    """Write these bindings, valid from `start` to `end`, then audit and comment."""

    bindings: tuple[Binding, ...]
    start: datetime
    end: datetime


MergeAction = (
    NotARequest | NotMerged | AlreadyActivated | AlreadyRefused | LookUpBindings | RetryLater
    | Refuse | Activate
)


def records_needed(decision: Decision | None, pull: PullInfo) -> bool:
    """Do earlier records matter? Only for a merged request PR: looking for them on any other
    PR would cost calls that decide nothing."""
    return decision is not None and pull.merged and pull.merged_at is not None


def merge_action(
    decision: Decision | None,
    pull: PullInfo,
    earlier: EarlierRecords,
    *,
    max_delay: timedelta | None,
    now: datetime,
    identities: Identities,
) -> MergeAction:
    """What the merge of `pull` does, decided again as of the merge (`decision`) at `now`.

    `decision` is None when the PR is no request; `max_delay` is the policy's
    `activation.max_delay` (None without a policy); `identities` map approvers to the Google
    identities named in the bindings.
    """
    if decision is None:
        return NotARequest()
    if not pull.merged or pull.merged_at is None:
        return NotMerged()
    if earlier.activated:
        # Without this a replayed merge event within max_delay would grant a fresh window once
        # the first binding has expired and been cleaned up, or been removed by hand.
        return already_activated(decision, earlier, now)
    if earlier.refused:
        # Whatever changed since (approvals given later, a fixed policy) must not turn a
        # refusal into a grant.
        entry = earlier.refusal_entry
        reason = entry.message.removeprefix(REFUSAL_PREFIX) if entry is not None else ""
        return AlreadyRefused(reason, post_comment=not earlier.refusal_comment and bool(reason))
    if earlier.log_error is not None:
        # Not knowing whether the merge was decided is no decision: granting could grant twice,
        # refusing could contradict a grant.
        return RetryLater(f"the audit log could not be read: {earlier.log_error}")
    if decision.state is State.ERROR and any(
        p.code == ProblemCode.SERVICE_ERROR for p in decision.problems
    ):
        return RetryLater(
            "eligibility could not be checked: "
            + "; ".join(p.message for p in decision.problems if p.code == ProblemCode.SERVICE_ERROR)
        )
    refusal: str | None = None
    if decision.state is not State.READY:
        refusal = f"the request was not ready when merged ({status_description(decision)})"
    elif max_delay is not None and now - pull.merged_at > max_delay:
        refusal = (
            f"the merge at {rfc3339(pull.merged_at)} is older than activation.max_delay "
            f"({format_duration(max_delay)}); open a new request"
        )
    if refusal is not None:
        if earlier.bindings is None and decision.request is not None:
            return LookUpBindings(decision.request.project)
        return Refuse(refusal)
    assert decision.request is not None  # decide() is never READY without a request
    start = now.replace(microsecond=0)
    end = start + decision.request.duration
    return Activate(activation_bindings(decision, identities, start, end), start, end)


def already_activated(
    decision: Decision, earlier: EarlierRecords, now: datetime
) -> AlreadyActivated:
    """What a delivery does for a merge whose grant an earlier delivery recorded."""
    entry = earlier.activation_entry
    start = end = None
    if entry is not None and entry.activation_start and entry.activation_end:
        start, end = entry.activation_start, entry.activation_end
    elif earlier.bindings:
        window = parse_activation_expression(earlier.bindings[0].expression)
        if window is not None:
            start, end = window
    # Both need the request and the window: the entry and the comment say what was granted.
    # The request file of a merged head does not change, so it parses unless the policy did.
    renderable = decision.request is not None and start is not None and end is not None
    write_record = (
        renderable and bool(earlier.bindings) and entry is None and earlier.log_error is None
    )
    post_comment = renderable and not earlier.activation_comment
    if not (write_record or post_comment):
        return AlreadyActivated(start, end)
    recorded = entry.timestamp if entry is not None and entry.timestamp else start
    if recorded is not None and now - recorded < WRITER_BUDGET:
        return AlreadyActivated(start, end, writer_until=recorded + WRITER_BUDGET)
    return AlreadyActivated(start, end, write_record=write_record, post_comment=post_comment)


def activation_bindings(
    decision: Decision, identities: Identities, start: datetime, end: datetime
) -> tuple[Binding, ...]:
    """The expiring bindings of a ready decision, one per role, valid from `start` to `end`."""
    request = decision.request
    if request is None or decision.requester is None:
        raise ValueError("only a decision with a request and a requester can be activated")
    return tuple(
        build_binding(
            rd.role, decision.requester,
            # Each binding names who approved that role, not every approver of the PR.
            identities_of(identities, rd.approvers) if rd.kind is ApprovalKind.MULTI_PARTY
            else (),
            request.justification, decision.pr.reference, start, end,
            rd.resource_conditions, break_glass=rd.kind is ApprovalKind.BREAK_GLASS,
        )
        for rd in decision.roles
    )


def identities_of(identities: Identities, logins: Sequence[str]) -> list[str]:
    """The Google identities of these logins, sorted, without repeats; unmapped ones left out."""
    return sorted({e for login in logins if (e := identities.email_for(login))})


# ----------------------------------------------------------------------------------------------
# What an evaluation publishes


@dataclass(frozen=True)
class StatusUpdate:
    """The `jit-access` verdict to set on the head commit."""

    state: str  # success | pending | failure | error
    description: str
    target_url: str | None
    # With GitHub App credentials the verdict is a check run (`core.checks`): its summary (the
    # status comment's content) and one annotation per request-file problem with a line. A
    # commit status has neither.
    summary: str = ""
    annotations: tuple[Annotation, ...] = ()


@dataclass(frozen=True)
class PublishPlan:
    """Everything one evaluation of an open request PR publishes, all at once."""

    comment: str  # the body of the status comment (edited in place behind COMMENT_MARKER)
    status: StatusUpdate | None  # None: set no status (see `publish_plan`)
    reviewers: tuple[str, ...]  # logins to ask for a review; () asks nobody
    audit: AuditRecord | None  # the audit entry to write beside, if any


def status_belongs_to(pull: PullInfo, shape: PrShape | None) -> bool:
    """May this PR set the `jit-access` status on its head commit?

    A status belongs to a commit, not to a PR, and any number of PRs can share a head commit
    (anyone who can push a branch can open one from the commit of somebody else's request).
    Only the PR whose verdict is about its author's own request may speak for the commit: one
    into the default branch (branch protection applies there, and every PR from that commit
    into that branch sees the same diff) whose changes under requests/ all add files in its
    author's own directory. Any other PR — into another branch (its diff against that branch
    can show the owner's request as modified, renamed or removed), filing into someone else's
    directory, touching existing requests, or too long to list — reports in its comment only;
    without the required status it cannot be merged anyway.
    """
    return (
        shape is not None
        and shape.own_request
        and bool(pull.default_branch)
        and pull.base_ref == pull.default_branch
    )


def publish_plan(
    decision: Decision,
    pull: PullInfo,
    *,
    shape: PrShape | None,
    policy: Policy | None,
    reviews: Sequence[Review],
    request_reviews: bool,
    audit: AuditRecord | None = None,
) -> PublishPlan:
    """What to publish for a decision on `pull`; `shape` is what its diff at the head says
    (None: not known, so no status), `reviews` are those the decision judged."""
    status: StatusUpdate | None = None
    if status_belongs_to(pull, shape):
        status = StatusUpdate(
            decision.state.commit_status, status_description(decision), pull.html_url or None
        )
    if not targets_default_branch(pull):
        # Branch protection does not apply to other branches, and a verdict on this head
        # commit could show on a request PR into the default branch that shares it; the
        # comment explains why the PR is no valid request.
        status = None
    comment = status_comment(decision)
    if status is not None:
        status = replace(status, summary=comment, annotations=annotations_for(decision))
    reviewers: tuple[str, ...] = ()
    if request_reviews and policy is not None and decision.state is State.PENDING:
        reviewers = reviewers_to_request(decision, pull, policy, reviews)
    return PublishPlan(comment, status, reviewers, audit)


def targets_default_branch(pull: PullInfo) -> bool:
    """Does the PR target the repository's default branch, the only one where a verdict is
    published?"""
    return bool(pull.default_branch) and pull.base_ref == pull.default_branch


#: The description of the verdict on a PR that touches nothing under requests/.
NOT_A_REQUEST = "Not an access request"


def verdict_without_request(
    pull: PullInfo, *, revokes: Sequence[str] = (), ends: Sequence[str] = ()
) -> StatusUpdate | None:
    """The verdict on an open PR that asks for no access: `success`, so that a required
    `jit-access` check never blocks code or policy changes; None (no verdict) for a PR into
    another branch.

    `revokes` are the request files a revocation PR deletes. `ends` are the PRs whose access it
    ends (`owner/repo#n`), when the caller has found them; the description then names those
    rather than the files. Either way nothing is decided here: revoking only reduces access, and
    merging the PR is what revokes.
    """
    if not targets_default_branch(pull):
        return None
    if not revokes:
        return StatusUpdate(
            "success", NOT_A_REQUEST, pull.html_url or None, summary=not_a_request_summary()
        )
    named = [plain(x) for x in (ends or revokes)]
    what = "access of" if ends else "access granted by"
    description = f"Revocation: ends {what} {', '.join(named)}"
    if len(description) > STATUS_DESCRIPTION_MAX:
        noun = "request" if ends else "request file"
        description = f"Revocation: ends the access of {len(named)} {noun}s"
    return StatusUpdate(
        "success", description, pull.html_url or None,
        summary=revocation_summary(revokes, ends),
    )


def verdict_after_merge(
    state: str | None, message: str, *, target_url: str | None
) -> StatusUpdate | None:
    """The verdict a Re-run of a merged PR leaves on its head, from what the merge handler
    did (`state`: activated, refused or failed; None: nothing to activate, so no verdict)."""
    text = message.split(": ", 1)[1] if message.startswith("PR #") and ": " in message else message
    text = text[:1].upper() + text[1:]
    match state:
        case "activated":
            return StatusUpdate(
                "success", cut(text), target_url,
                summary=f"### jit-access: ✅ {inert(text)}",
            )
        case "refused":
            return StatusUpdate(
                "failure", cut(text), target_url,
                summary=f"### jit-access: ❌ {inert(text)}\n\nA refusal is final: open a new "
                "request pull request.",
            )
        case "failed":
            return StatusUpdate(
                "failure", cut(f"{text}; choose Re-run to retry"), target_url,
                summary=f"### jit-access: ⚠️ {inert(text)}\n\nChoose **Re-run** to retry "
                "within `activation.max_delay` of the merge.",
            )
    return None


def reviewers_to_request(
    decision: Decision, pull: PullInfo, policy: Policy, reviews: Sequence[Review]
) -> tuple[str, ...]:
    """Qualified peers to ask for a review: not yet asked, not yet reviewing, and no more than
    the policy's `approval.request_reviewers` requests standing at once."""
    limit = policy.approval.request_reviewers
    already = {r.lower() for r in pull.requested_reviewers}
    reviewed = {r.login.lower() for r in reviews}
    room = limit - len(already)
    fresh = [
        c for c in decision.candidate_reviewers
        if c.lower() not in already and c.lower() not in reviewed
    ]
    return tuple(fresh[: max(0, room)])


# ----------------------------------------------------------------------------------------------
# Audit records


def audit_entry(
    event: str,
    decision: Decision,
    pull: PullInfo,
    identities: Identities,
    delivery_id: str,
    *,
    message: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    timestamp: datetime | None = None,
    insert_id: str | None = None,
    severity: str | None = None,
    break_glass: bool = False,
) -> AuditRecord:
    """The audit entry of `event` for a decision on `pull`; the reviewers are the identities of
    the approvers whose approvals counted, the `rule` label names each role's rule."""
    request = decision.request
    roles = request.roles if request else ()
    return AuditRecord(
        event=event,
        user=decision.requester or "",
        project=request.project if request else "",
        roles=tuple(roles),
        justification=request.justification if request else "",
        activation_start=start,
        activation_end=end,
        reviewers=tuple(identities_of(identities, decision.approvers)),
        pull_request=pull.html_url,
        commit=pull.head_sha,
        delivery_id=delivery_id,
        message=message or f"{event} for {decision.pr.reference}",
        timestamp=timestamp,
        insert_id=insert_id,
        rules=rules_of(decision, roles),
        severity=severity,
        break_glass=break_glass,
    )


def rules_of(decision: Decision, roles: Sequence[str]) -> tuple[str, ...]:
    """The rule applied to each of `roles` (README: rules): its name, `default` for the
    top-level settings, "" where the decision settled none (an invalid request).

    Every entry of a decision carries the label, with or without `rules:` in the policy, so
    that a query on `labels.rule` needs no knowledge of when the policy gained rules."""
    settled = {r.role: r.settings for r in decision.roles}
    out = []
    for role in roles:
        settings = settled.get(role)
        if settings is None:
            out.append("")
        else:
            out.append(settings.rule or audit_events.DEFAULT_RULE)
    return tuple(out)


def change_record(
    decision: Decision | None,
    pull: PullInfo,
    identities: Identities,
    delivery_id: str,
    *,
    opened: bool,
) -> AuditRecord | None:
    """`gitops.requestRole` when a request PR is opened that can be granted (pending or
    ready); None otherwise: later pushes and edits are no new request."""
    if opened and decision is not None and decision.state in (State.PENDING, State.READY):
        return audit_entry(audit_events.REQUEST_ROLE, decision, pull, identities, delivery_id)
    return None


def review_record(
    decision: Decision | None,
    pull: PullInfo,
    identities: Identities,
    reviews: Sequence[Review],
    delivery_id: str,
    reviewer: str | None,
) -> AuditRecord | None:
    """`gitops.approveRole` when `reviewer`'s approval counts and is their latest review;
    None otherwise."""
    if (
        decision is not None and reviewer
        and reviewer.lower() in {a.lower() for a in decision.approvers}
        and latest_is_approval(reviews, reviewer)
    ):
        return audit_entry(
            audit_events.APPROVE_ROLE, decision, pull, identities, delivery_id,
            message=f"@{reviewer} approved {decision.pr.reference}",
        )
    return None


def latest_is_approval(reviews: Sequence[Review], reviewer: str) -> bool:
    """Is the reviewer's newest review an approval? A later COMMENTED review (which leaves the
    approval standing) is no new approval and must not be audited as one."""
    mine = [
        r for r in reviews
        if r.login.lower() == reviewer.lower() and r.state is not ReviewState.PENDING
    ]
    return bool(mine) and max(mine, key=review_order).state is ReviewState.APPROVED


#: How a refusal entry's message begins; the rest is the reason said on the PR.
REFUSAL_PREFIX = "Refused: "


def refusal_record(
    decision: Decision, pull: PullInfo, identities: Identities, delivery_id: str, reason: str
) -> AuditRecord:
    """`gitops.refuseActivation`, dated at the merge, with one insert id per PR head."""
    return audit_entry(
        audit_events.REFUSE_ACTIVATION, decision, pull, identities, delivery_id,
        message=f"{REFUSAL_PREFIX}{reason}",
        timestamp=pull.merged_at,
        insert_id=refusal_insert_id(decision.pr.reference, pull.head_sha),
        break_glass=decision.break_glass,
    )


def activation_record(
    decision: Decision,
    pull: PullInfo,
    identities: Identities,
    delivery_id: str,
    *,
    start: datetime,
    end: datetime,
) -> AuditRecord:
    """`gitops.activateRole` for the window IAM holds, dated at its start, with one insert id
    per PR head."""
    request = decision.request
    if request is None:
        raise ValueError("only a decision with a request can be activated")
    return audit_entry(
        audit_events.ACTIVATE_ROLE, decision, pull, identities, delivery_id,
        message=(
            f"{decision.requester} activated {', '.join(request.roles)} on {request.project} "
            f"until {rfc3339(end)} ({decision.pr.reference})"
            + (" as BREAK-GLASS, without approval" if decision.break_glass else "")
        ),
        start=start, end=end, timestamp=start,
        insert_id=activation_insert_id(decision.pr.reference, pull.head_sha),
        # A break-glass activation is granted without approvals: loud in the log, marked so
        # that its after-the-fact review and the cleanup's check find it (README: break-glass).
        severity=audit_events.BREAK_GLASS_SEVERITY if decision.break_glass else None,
        break_glass=decision.break_glass,
    )
