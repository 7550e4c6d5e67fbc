"""The pure decision (README: lifecycle): from gathered facts to a state and the reasons for it.

`decide` reads no clock, network or environment: the caller passes `now`. The commit status and
the PR comments (`webhook.core.render`) are renderings of its result, and the merge handler calls it
again on fresh facts before activating anything.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from webhook.core import rules
from webhook.core.durations import as_aware, format_duration
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
    RoleEligibility,
    RoleSettings,
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
    now = as_aware(now)
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

    eligibility = facts.eligibility
    if eligibility is None:
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

    # The rules of each role (README: rules). A rule that matches folders needs the project's
    # ancestry; without it the role cannot be judged, unless the requester is not eligible for
    # it at all (then no rule could change that).
    settings = {
        role: rules.settings_for(policy, request.project, role, eligibility.ancestry)
        for role in request.roles
    }
    unsettled = [
        role for role, s in settings.items()
        if s is None and _eligible(eligibility.of(requester, role))
    ]
    if unsettled:
        return Decision(
            State.ERROR,
            pr,
            request=request,
            requester=requester,
            problems=(
                Problem(
                    ProblemCode.ANCESTRY_UNKNOWN,
                    "The project's folders could not be read, and the policy's rules for "
                    f"{', '.join(unsettled)} depend on them; contact an administrator.",
                ),
            ),
            notes=eligibility.notes,
        )

    limits = rules.limits(policy, request, eligibility.ancestry)
    if limits:
        path = facts.request_path
        return Decision(
            State.INVALID,
            pr,
            request=request,
            requester=requester,
            problems=tuple(p.at(path) if path else p for p in limits),
        )

    break_glass = request.break_glass and policy.break_glass.enabled
    verdicts = deciding_reviews(facts.reviews)
    roles = tuple(
        _decide_role(
            role, settings[role], request, requester, policy, facts, eligibility, verdicts, now,
            break_glass=break_glass,
        )
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
            notes=eligibility.notes,
            break_glass=break_glass,
        )

    vetoed = [r for r in roles if r.vetoed_by]
    if vetoed:
        return Decision(
            State.VETOED,
            pr,
            request=request,
            requester=requester,
            problems=tuple(
                Problem(
                    ProblemCode.VETOED,
                    f"Vetoed by {', '.join('@' + login for login in r.vetoed_by)} ({r.role})",
                )
                for r in vetoed
            ),
            roles=roles,
            notes=eligibility.notes,
            break_glass=break_glass,
        )

    if not facts.reviews_complete and any(
        r.kind is ApprovalKind.MULTI_PARTY or (r.settings is not None and r.settings.approval.veto)
        for r in roles
    ):
        # Approvals judged on part of the reviews could count one that a later review, left
        # out, withdrew, and a veto left out would go unseen: neither ready nor waiting can
        # be said.
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
            break_glass=break_glass,
        )

    if all(r.needed == 0 for r in roles):
        return Decision(
            State.READY, pr, request=request, requester=requester, roles=roles,
            # A break-glass request is reviewed after the fact: whom to ask.
            candidate_reviewers=(
                _candidates(roles, facts.identities, eligibility, requester, after_the_fact=True)
                if break_glass else ()
            ),
            notes=eligibility.notes,
            break_glass=break_glass,
        )

    return Decision(
        State.PENDING,
        pr,
        request=request,
        requester=requester,
        roles=roles,
        candidate_reviewers=_candidates(roles, facts.identities, eligibility, requester),
        notes=eligibility.notes,
    )


# --------------------------------------------------------------------------------------------
# Roles


def _eligible(mine: RoleEligibility) -> bool:
    return mine.self_approval or mine.multi_party


def _decide_role(
    role: str,
    settings: RoleSettings | None,
    request: AccessRequest,
    requester: str,
    policy: Policy,
    facts: Facts,
    eligibility: EligibilityFacts,
    verdicts: Mapping[str, Review],
    now: datetime,
    *,
    break_glass: bool,
) -> RoleDecision:
    """How one role can be activated: self-approval, multi-party approval (and how far),
    break-glass, or not; and who vetoes it."""
    mine = eligibility.of(requester, role)
    if settings is None or not _eligible(mine):
        # (Settings are unknown only for a role the requester is not eligible for.)
        return RoleDecision(
            role,
            ApprovalKind.NONE,
            reasons=(
                f"{requester} is not eligible for {role} on {request.project}: no binding with "
                f"the jit-access conditions for this identity on the project or its "
                f"folders/organization within {policy.scope}.",
            ),
            settings=settings,
        )
    approver_logins = tuple(sorted({
        login
        for approver in settings.approval.approvers if approver.startswith(USER)
        if approver[len(USER):] != requester
        for login in facts.identities.logins_for(approver[len(USER):])
        if login.lower() != facts.pr.author.lower()
    }))
    vetoed_by, veto_reasons = _vetoes(role, settings, requester, facts, eligibility, verdicts)
    base = RoleDecision(
        role, ApprovalKind.NONE, settings=settings, vetoed_by=vetoed_by,
        approver_logins=approver_logins,
    )
    if break_glass:
        conditions = mine.self_conditions if mine.self_approval else mine.multi_party_conditions
        return replace(
            base, kind=ApprovalKind.BREAK_GLASS, resource_conditions=conditions,
            reasons=veto_reasons,
        )
    if mine.self_approval:
        return replace(
            base, kind=ApprovalKind.SELF, resource_conditions=mine.self_conditions,
            reasons=veto_reasons,
        )

    approvers: list[str] = []
    counted_identities: dict[str, str] = {}  # identity -> login credited for it
    reasons: list[str] = []
    for key in sorted(verdicts):
        review = verdicts[key]
        if settings.approval.veto and review.state is ReviewState.CHANGES_REQUESTED:
            continue  # said among the vetoes
        why, how = _why_not(review, role, settings, requester, facts, eligibility, now)
        if why is None:
            identity = facts.identities.email_for(review.login) or ""
            first = counted_identities.get(identity)
            if first is not None:
                # Two logins of one person are still one approver.
                why = f"same identity as @{first}, counted once"
            else:
                counted_identities[identity] = review.login
                approvers.append(review.login)
                if how is not None and how != _PEER:
                    reasons.append(f"@{review.login}'s approval counts: {how}")
                continue
        reasons.append(f"@{review.login}'s approval does not count: {why}")
    reasons.extend(veto_reasons)

    return replace(
        base,
        kind=ApprovalKind.MULTI_PARTY,
        approvers=tuple(approvers),
        needed=max(0, settings.approval.required - len(approvers)),
        resource_conditions=mine.multi_party_conditions,
        reasons=tuple(sorted(reasons, key=_reason_login)),
    )


def _reason_login(reason: str) -> str:
    """Reasons are listed by the reviewer they are about (`@login…` first)."""
    login = reason[1:].split("'", 1)[0].split(" ", 1)[0]
    return login.lower()


#: A reviewer qualified as a qualified peer (eligible through the multi-party marker).
_PEER = "is a qualified peer"

#: Designated approvers are `user:EMAIL` or `group:EMAIL`.
USER = "user:"
GROUP = "group:"


def qualification(
    identity: str, role: str, settings: RoleSettings, eligibility: EligibilityFacts
) -> str | None:
    """How an identity (not the requester's) qualifies as a reviewer of a role, or None: as a
    qualified peer (when the rule lets peers count) or as a designated approver, named or
    through a group."""
    a = settings.approval
    return qualifies(identity, role, peers=a.peers, approvers=a.approvers, eligibility=eligibility)


def qualifies(
    identity: str, role: str, *, peers: bool, approvers: Sequence[str],
    eligibility: EligibilityFacts,
) -> str | None:
    """`qualification` from the two approval settings it reads (`peers`, `approvers`)."""
    identity = identity.lower()
    if peers and eligibility.of(identity, role).multi_party:
        return _PEER
    if USER + identity in approvers:
        return "is a designated approver"
    groups = eligibility.memberships.get(identity, frozenset())
    for approver in approvers:
        if approver.startswith(GROUP) and approver in groups:
            return f"is a designated approver (member of {approver})"
    return None


def qualified_roles(
    policy: Policy,
    request: AccessRequest,
    facts: EligibilityFacts,
    *,
    reviewer: str,
    requester: str | None,
) -> tuple[str, ...]:
    """The requested roles an identity is a qualified reviewer of (`qualification` under each
    role's rule), for judging someone outside a decision: an after-the-fact review of a
    break-glass activation, a revocation. The requester's identity never is one; a role whose
    rule depends on folders the facts do not name counts for nobody (fail closed)."""
    me = reviewer.lower()
    if not me or (requester is not None and me == requester.lower()):
        return ()
    out: list[str] = []
    for role in dict.fromkeys(request.roles):
        settings = rules.settings_for(policy, request.project, role, facts.ancestry)
        if settings is not None and qualification(me, role, settings, facts) is not None:
            out.append(role)
    return tuple(out)


def _unqualified(identity: str, role: str, settings: RoleSettings,
                 eligibility: EligibilityFacts) -> str:
    """Why an identity is no qualified reviewer of a role."""
    a = settings.approval
    if not a.peers:
        if eligibility.of(identity, role).multi_party:
            return f"a qualified peer, but only designated approvers count for {role}"
        return f"not a designated approver for {role}"
    if not a.approvers:
        return f"not eligible for {role} through multi-party approval"
    return f"not a qualified peer or designated approver for {role}"


def _reviewer(review: Review, requester: str, facts: Facts) -> tuple[str | None, str | None]:
    """(identity, None) of a reviewer who is not the requester, or (None, why not)."""
    if review.login.lower() == facts.pr.author.lower():
        return None, "is the requester"
    identity = facts.identities.email_for(review.login)
    if identity is None:
        return None, facts.identities.why_unmapped(review.login) or "has no identity mapping"
    if identity == requester:
        return None, "is the requester (same identity)"
    return identity, None


def _vetoes(
    role: str,
    settings: RoleSettings,
    requester: str,
    facts: Facts,
    eligibility: EligibilityFacts,
    verdicts: Mapping[str, Review],
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(logins vetoing the role, reasons): with `veto: true`, every qualified reviewer whose
    deciding review requests changes, on any commit and of any age (README: designated
    approvers)."""
    if not settings.approval.veto:
        return (), ()
    logins: list[str] = []
    reasons: list[str] = []
    for key in sorted(verdicts):
        review = verdicts[key]
        if review.state is not ReviewState.CHANGES_REQUESTED:
            continue
        identity, why = _reviewer(review, requester, facts)
        if identity is not None:
            how = qualification(identity, role, settings, eligibility)
            if how is None:
                why = _unqualified(identity, role, settings, eligibility)
            else:
                logins.append(review.login)
                reasons.append(f"@{review.login} requests changes: a veto ({how})")
                continue
        reasons.append(f"@{review.login}'s request for changes is no veto: {why}")
    return tuple(sorted(logins, key=str.lower)), tuple(reasons)


def _why_not(
    review: Review,
    role: str,
    settings: RoleSettings,
    requester: str,
    facts: Facts,
    eligibility: EligibilityFacts,
    now: datetime,
) -> tuple[str | None, str | None]:
    """(why a reviewer's deciding review does not count for a role, None) or (None, how the
    reviewer qualifies) when it counts."""
    max_age = settings.approval.max_age
    if review.state is ReviewState.CHANGES_REQUESTED:
        return "latest review requests changes", None
    if review.state is ReviewState.DISMISSED:
        return "latest review was dismissed", None
    if review.login.lower() == facts.pr.author.lower():
        return "is the requester", None
    if review.commit_id != facts.pr.head_sha:
        return f"approved an older commit ({review.commit_id[:7]}), not the head", None
    if review.submitted_at is None:
        return "approval has no submission time", None
    submitted = as_aware(review.submitted_at)
    if now - submitted > max_age:
        return f"approval is older than {format_duration(max(max_age, timedelta(0)))}", None
    if submitted - now > CLOCK_SKEW:
        return "approval is dated in the future", None
    identity, why = _reviewer(review, requester, facts)
    if identity is None:
        return why, None
    how = qualification(identity, role, settings, eligibility)
    if how is None:
        return _unqualified(identity, role, settings, eligibility), None
    return None, how


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
    when = as_aware(review.submitted_at) if review.submitted_at is not None else _EPOCH
    return (when, review.id)


# --------------------------------------------------------------------------------------------
# Candidate reviewers


def _candidates(
    roles: Iterable[RoleDecision],
    identities: Identities,
    eligibility: EligibilityFacts,
    requester: str,
    *,
    after_the_fact: bool = False,
) -> tuple[str, ...]:
    """Logins of qualified reviewers worth asking: for each role still short of approvals (or,
    `after_the_fact`, every break-glass role), its qualified peers (when they count), its
    designated `user:` approvers and the listed members of its designated groups."""
    roles = tuple(roles)
    # The author and their aliases all map to the requester's identity, so excluding that
    # identity excludes them; people already counted need not be asked again.
    approved_identities = {
        identities.email_for(login) for role in roles for login in role.approvers
    }
    wanted: set[str] = set()
    for role in roles:
        if after_the_fact:
            if role.kind is not ApprovalKind.BREAK_GLASS:
                continue
        elif role.kind is not ApprovalKind.MULTI_PARTY or role.needed == 0:
            continue
        people: set[str] = set()
        approval = role.settings.approval if role.settings is not None else None
        if approval is None or approval.peers:
            people.update(eligibility.peers.get(role.role, frozenset()))
        for approver in approval.approvers if approval is not None else ():
            if approver.startswith(USER):
                people.add(approver[len(USER):])
            elif approver.startswith(GROUP):
                people.update(eligibility.group_members.get(approver, frozenset()))
        for identity in people:
            identity = identity.lower()
            if identity == requester or identity in approved_identities:
                continue
            wanted.update(identities.logins_for(identity))
    return tuple(sorted(wanted))


# --------------------------------------------------------------------------------------------
# Helpers
