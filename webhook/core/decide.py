"""The pure decision (README: lifecycle): from gathered facts to a state and the reasons for it.

`decide` reads no clock, network or environment: the caller passes `now`. The commit status and
the PR comments (`webhook.core.render`) are renderings of its result, and the merge handler calls it
again on fresh facts before activating anything.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta

from webhook.core.durations import format_duration
from webhook.core.model import (
    AccessRequest,
    ApprovalKind,
    Decision,
    EligibilityFacts,
    Facts,
    Identities,
    Policy,
    Problem,
    Review,
    ReviewState,
    RoleDecision,
    State,
)
from webhook.core.problems import ProblemCode

#: Reviews dated later than `now` by more than this do not count. GitHub's clock and ours may
#: drift by a few seconds, so a fresh review can look slightly "future"; anything beyond that is
#: a timestamp we cannot trust to be within `approval.max_age`, so it is not taken on faith.
CLOCK_SKEW = timedelta(minutes=5)

#: Review states that decide a reviewer's verdict; COMMENTED and PENDING never do.
_DECISIVE = frozenset({ReviewState.APPROVED, ReviewState.CHANGES_REQUESTED, ReviewState.DISMISSED})

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def decide(facts: Facts, now: datetime) -> Decision:
    """Judge a request PR from its facts at time `now`; pure."""
    now = _aware(now)
    pr = facts.pr
    requester = facts.identities.email_for(pr.author)

    if facts.policy is None or facts.policy_problems:
        problems = facts.policy_problems or (
            Problem(
                ProblemCode.POLICY_MISSING,
                "The policy could not be read; contact an administrator.",
            ),
        )
        return Decision(
            State.ERROR, pr, request=facts.request, requester=requester, problems=problems
        )
    policy = facts.policy

    if facts.request is None or facts.request_problems:
        problems = facts.request_problems or (
            Problem(ProblemCode.REQUEST_MISSING, "The pull request has no readable request file."),
        )
        return Decision(
            State.INVALID, pr, request=facts.request, requester=requester, problems=problems
        )
    request = facts.request

    if requester is None:
        return Decision(
            State.NOT_ELIGIBLE,
            pr,
            request=request,
            problems=(
                Problem(ProblemCode.NO_IDENTITY_MAPPING, _unmapped(facts.identities, pr.author)),
            ),
        )

    if facts.eligibility is None:
        return Decision(
            State.ERROR,
            pr,
            request=request,
            requester=requester,
            problems=(
                Problem(
                    ProblemCode.ELIGIBILITY_UNKNOWN,
                    "Eligibility could not be determined; contact an administrator.",
                ),
            ),
        )

    verdicts = deciding_reviews(facts.reviews)
    roles = tuple(
        _decide_role(role, request, requester, policy, facts, facts.eligibility, verdicts, now)
        for role in request.roles
    )

    ineligible = [r for r in roles if r.kind is ApprovalKind.NONE]
    if ineligible:
        return Decision(
            State.NOT_ELIGIBLE,
            pr,
            request=request,
            requester=requester,
            problems=tuple(Problem(ProblemCode.NOT_ELIGIBLE, r.reasons[0]) for r in ineligible),
            roles=roles,
            notes=facts.eligibility.notes,
        )

    if not facts.reviews_complete and any(r.kind is ApprovalKind.MULTI_PARTY for r in roles):
        # Approvals judged on part of the reviews could count one that a later review, left
        # out, withdrew: neither ready nor waiting can be said.
        return Decision(
            State.ERROR,
            pr,
            request=request,
            requester=requester,
            problems=(
                Problem(
                    ProblemCode.TOO_MANY_REVIEWS,
                    "The pull request has more reviews than the service can read, so its "
                    "approvals cannot be judged; open a new pull request for this request.",
                ),
            ),
            roles=roles,
        )

    if all(r.needed == 0 for r in roles):
        return Decision(
            State.READY, pr, request=request, requester=requester, roles=roles,
            notes=facts.eligibility.notes,
        )

    return Decision(
        State.PENDING,
        pr,
        request=request,
        requester=requester,
        roles=roles,
        candidate_reviewers=_candidates(roles, facts.identities, facts.eligibility, requester),
        notes=facts.eligibility.notes,
    )


# --------------------------------------------------------------------------------------------
# Roles


def _decide_role(
    role: str,
    request: AccessRequest,
    requester: str,
    policy: Policy,
    facts: Facts,
    eligibility: EligibilityFacts,
    verdicts: Mapping[str, Review],
    now: datetime,
) -> RoleDecision:
    """How one role can be activated: self-approval, multi-party approval (and how far), or not."""
    mine = eligibility.of(requester, role)
    if mine.self_approval:
        return RoleDecision(
            role, ApprovalKind.SELF, needed=0, resource_conditions=mine.self_conditions
        )
    if not mine.multi_party:
        return RoleDecision(
            role,
            ApprovalKind.NONE,
            reasons=(
                f"{requester} is not eligible for {role} on {request.project}: no binding with "
                f"the jit-access conditions for this identity on the project or its "
                f"folders/organization within {policy.scope}.",
            ),
        )

    approvers: list[str] = []
    counted_identities: dict[str, str] = {}  # identity -> login credited for it
    reasons: list[str] = []
    for key in sorted(verdicts):
        review = verdicts[key]
        why = _why_not(review, role, requester, policy, facts, eligibility, now)
        if why is None:
            identity = facts.identities.email_for(review.login) or ""
            first = counted_identities.get(identity)
            if first is not None:
                # Two logins of one person are still one approver.
                why = f"same identity as @{first}, counted once"
            else:
                counted_identities[identity] = review.login
                approvers.append(review.login)
                continue
        reasons.append(f"@{review.login}'s approval does not count: {why}")

    return RoleDecision(
        role,
        ApprovalKind.MULTI_PARTY,
        approvers=tuple(approvers),
        needed=max(0, policy.approval.required - len(approvers)),
        resource_conditions=mine.multi_party_conditions,
        reasons=tuple(reasons),
    )


def _why_not(
    review: Review,
    role: str,
    requester: str,
    policy: Policy,
    facts: Facts,
    eligibility: EligibilityFacts,
    now: datetime,
) -> str | None:
    """Why a reviewer's deciding review does not count for a role, or None when it counts."""
    if review.state is ReviewState.CHANGES_REQUESTED:
        return "latest review requests changes"
    if review.state is ReviewState.DISMISSED:
        return "latest review was dismissed"
    if review.login.lower() == facts.pr.author.lower():
        return "is the requester"
    if review.commit_id != facts.pr.head_sha:
        return f"approved an older commit ({review.commit_id[:7]}), not the head"
    if review.submitted_at is None:
        return "approval has no submission time"
    submitted = _aware(review.submitted_at)
    if now - submitted > policy.approval.max_age:
        return (
            f"approval is older than {format_duration(max(policy.approval.max_age, timedelta(0)))}"
        )
    if submitted - now > CLOCK_SKEW:
        return "approval is dated in the future"
    identity = facts.identities.email_for(review.login)
    if identity is None:
        return facts.identities.why_unmapped(review.login) or "has no identity mapping"
    if identity == requester:
        return "is the requester (same identity)"
    if not eligibility.of(identity, role).multi_party:
        return f"not eligible for {role} through multi-party approval"
    return None


def _unmapped(identities: Identities, login: str) -> str:
    """Why the author has no Google identity, and what an administrator can do about it."""
    why = identities.why_unmapped(login) or "has no identity mapping"
    add = f"Ask an administrator to add `{login.lower()}: <email>` to policy/identities.yaml."
    if why == "has no identity mapping":
        return f"@{login} has no Google identity mapping. {add}"
    if login.lower() not in identities.by_login:
        return f"@{login} has no Google identity: {why}. {add}"
    return (
        f"@{login} has no Google identity: {why}. Ask an administrator to check the entry for "
        f"`{login.lower()}` in policy/identities.yaml."
    )


# --------------------------------------------------------------------------------------------
# Reviews


def deciding_reviews(reviews: Iterable[Review]) -> dict[str, Review]:
    """Each reviewer's (lower-cased login) deciding review: the latest decisive one."""
    latest: dict[str, Review] = {}
    for review in reviews:
        if review.state not in _DECISIVE:
            continue
        key = review.login.lower()
        current = latest.get(key)
        if current is None or review_order(review) > review_order(current):
            latest[key] = review
    return latest


def review_order(review: Review) -> tuple[datetime, int]:
    """Chronological order of reviews; undated ones first, review ids break ties."""
    when = _aware(review.submitted_at) if review.submitted_at is not None else _EPOCH
    return (when, review.id)


# --------------------------------------------------------------------------------------------
# Candidate reviewers


def _candidates(
    roles: Iterable[RoleDecision],
    identities: Identities,
    eligibility: EligibilityFacts,
    requester: str,
) -> tuple[str, ...]:
    """Logins of qualified peers worth asking: eligible for a role still short of approvals."""
    # The author and their aliases all map to the requester's identity, so excluding that
    # identity excludes them; people already counted need not be asked again.
    approved_identities = {
        identities.email_for(login) for role in roles for login in role.approvers
    }
    wanted: set[str] = set()
    for role in roles:
        if role.kind is not ApprovalKind.MULTI_PARTY or role.needed == 0:
            continue
        for identity in eligibility.peers.get(role.role, frozenset()):
            identity = identity.lower()
            if identity == requester or identity in approved_identities:
                continue
            wanted.update(identities.logins_for(identity))
    return tuple(sorted(wanted))


# --------------------------------------------------------------------------------------------
# Helpers


def _aware(moment: datetime) -> datetime:
    """A timezone-aware datetime; naive ones are taken as UTC (GitHub's timestamps are UTC)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
