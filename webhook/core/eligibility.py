"""What one evaluation needs to know about eligibility, decided before anything is looked up.

Eligibility lookups cost Google calls (and, with Policy Analyzer, a share of a daily quota), so
the lifecycle asks only what can change its decision, and this module, pure, says what that is:

- the requester's eligibility, for every requested role;
- reviewers' eligibility only for the roles the requester may activate only with approval
  (multi-party, not self-approval), and only for reviewers whose review could count: mapped to
  an identity other than the requester's, their deciding review an approval of the head commit
  within the `approval.max_age` of the role's rule (`could_count`). Anyone else's review is
  judged without a lookup, so a review by someone without an identity mapping costs nothing;
- qualified peers and the members of designated-approver groups (to name on the PR and ask for
  review) only when the evaluation publishes and a role is still short of approvals once the
  counted reviews are known (`roles_short`; `groups_short` names the groups whose members
  matter), or for a break-glass request, whose qualified reviewers are asked for a review
  after the fact;
- the reviewers' membership of the designated-approver groups that may apply to a requested
  role (README: designated approvers), and, when a rule that may apply has `veto: true`, the
  eligibility and memberships of the reviewers who request changes (`vetoers`);
- the project's ancestry only when a rule that may apply matches folders (README: rules);
- Policy Analyzer only for the decision that grants, the merge (`source_for`).

`could_count` and `roles_short` restate the rules of `webhook.core.decide` that do not depend on
eligibility; tests check that a decision made from the facts these questions produce equals the
decision made from complete facts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from webhook.core import rules
from webhook.core.decide import CLOCK_SKEW, GROUP, deciding_reviews, qualifies
from webhook.core.durations import as_aware
from webhook.core.model import (
    AccessRequest,
    EligibilityFacts,
    EligibilitySettings,
    EligibilitySourceName,
    Identities,
    Policy,
    Review,
    ReviewState,
)


@dataclass(frozen=True)
class RoleCount:
    """How `decide` counts approvals for one role whose rule is settled (README: rules):
    `reviewers` are the identities whose review could count under the role's `max_age`."""

    role: str
    required: int
    reviewers: tuple[str, ...] = ()
    peers: bool = True  # qualified peers count
    approvers: tuple[str, ...] = ()  # designated approvers, `user:` and `group:`


@dataclass(frozen=True)
class EligibilityQuestion:
    """What one evaluation asks the eligibility source (identities lower-case).

    `reviewers` are the identities whose review could count (never the requester's); they are
    looked up only for the roles the requester needs approval for. `peers` asks for the
    qualified peers of the roles still short of `required` approvals after those reviews.
    """

    requester: str
    roles: tuple[str, ...]
    reviewers: tuple[str, ...] = ()
    required: int = 1
    peers: bool = True
    #: Identities whose deciding review requests changes, asked about when a veto rule may apply:
    #: their multi-party eligibility is looked up for `veto_roles` (whatever the requester's
    #: marker for those roles), and their membership of `approver_groups`.
    vetoers: tuple[str, ...] = ()
    veto_roles: tuple[str, ...] = ()
    #: Designated-approver groups (`group:EMAIL`) that may apply to a requested role: the facts
    #: say which of them each reviewer and vetoer is in (`EligibilityFacts.memberships`), and,
    #: when `peers` is asked, list their members to ask for review (`group_members`).
    approver_groups: tuple[str, ...] = ()
    #: The rules match folders: the facts must carry the project's ancestry.
    ancestry: bool = False
    #: How approvals are counted per role, for `roles_short`: None counts every reviewer
    #: eligible through the multi-party marker against `required` (no rules); a role without an
    #: entry has a rule that depends on the project's folders, and counts as short.
    counts: tuple[RoleCount, ...] | None = None
    #: A break-glass request (README: break-glass): no approval is counted, and `peers` asks for
    #: the qualified reviewers of every role the requester is eligible for, to ask them for a
    #: review after the fact.
    break_glass: bool = False

    @property
    def identities(self) -> tuple[str, ...]:
        """The requester, then the reviewers."""
        return (self.requester, *self.reviewers)

    @property
    def judged(self) -> tuple[str, ...]:
        """Reviewers and vetoers, each once: whose eligibility and memberships are asked."""
        return tuple(dict.fromkeys((*self.reviewers, *self.vetoers)))


def could_count(
    reviews: Iterable[Review],
    *,
    author: str,
    head_sha: str,
    identities: Identities,
    requester: str,
    max_age: timedelta,
    now: datetime,
) -> tuple[str, ...]:
    """Identities of the reviewers whose deciding review counts if they are qualified (sorted).

    These are the only reviewers whose eligibility can change a decision: every other review
    fails a test that needs no lookup (not an approval, an older commit, too old, no identity
    mapping, the requester's own).
    """
    now = as_aware(now)
    wanted: set[str] = set()
    latest = deciding_reviews(reviews)
    mine = requester.lower()
    for login, review in latest.items():
        if review.state is not ReviewState.APPROVED or login == author.lower():
            continue
        if review.commit_id != head_sha or review.submitted_at is None:
            continue
        submitted = as_aware(review.submitted_at)
        if now - submitted > max_age or submitted - now > CLOCK_SKEW:
            continue
        identity = identities.email_for(review.login)
        if identity is None or identity.lower() == mine:
            continue
        wanted.add(identity.lower())
    return tuple(sorted(wanted))


def requesting_changes(
    reviews: Iterable[Review], *, author: str, identities: Identities, requester: str
) -> tuple[str, ...]:
    """Identities of the reviewers whose deciding review requests changes (on any commit, of
    any age), not the requester's (sorted): those who veto a role with `veto: true` if they
    are qualified reviewers of it."""
    mine = requester.lower()
    wanted: set[str] = set()
    for login, review in deciding_reviews(reviews).items():
        if review.state is not ReviewState.CHANGES_REQUESTED or login == author.lower():
            continue
        identity = identities.email_for(review.login)
        if identity is not None and identity.lower() != mine:
            wanted.add(identity.lower())
    return tuple(sorted(wanted))


def approval_roles(question: EligibilityQuestion, facts: EligibilityFacts) -> tuple[str, ...]:
    """The requested roles whose qualified reviewers matter: those the requester may activate
    only with approval (multi-party); for a break-glass request, every role the requester is
    eligible for (its reviewers are asked after the fact)."""
    out = []
    for role in question.roles:
        mine = facts.of(question.requester, role)
        if question.break_glass:
            if mine.self_approval or mine.multi_party:
                out.append(role)
        elif mine.multi_party and not mine.self_approval:
            out.append(role)
    return tuple(out)


def qualified(
    identity: str, role: str, count: RoleCount | None, facts: EligibilityFacts
) -> bool:
    """Whether an identity qualifies as a reviewer of a role as `count` says (None: as a
    qualified peer), from facts holding its eligibility and memberships."""
    if count is None:
        return facts.of(identity, role).multi_party
    return qualifies(
        identity, role, peers=count.peers, approvers=count.approvers, eligibility=facts
    ) is not None


def roles_short(question: EligibilityQuestion, facts: EligibilityFacts) -> tuple[str, ...]:
    """Approval roles with fewer qualified reviews than required (`facts` holding the
    reviewers' eligibility and memberships): the roles whose qualified peers and designated
    approvers the PR should name. For a break-glass request: every approval role."""
    roles = approval_roles(question, facts)
    if question.break_glass:
        return roles
    counts = None if question.counts is None else {c.role: c for c in question.counts}
    out = []
    for role in roles:
        if counts is None:
            counted = sum(1 for who in question.reviewers if facts.of(who, role).multi_party)
            if counted < question.required:
                out.append(role)
            continue
        count = counts.get(role)
        if count is None:  # its rule depends on the folders: maybe short
            out.append(role)
            continue
        counted = sum(1 for who in count.reviewers if qualified(who, role, count, facts))
        if counted < count.required:
            out.append(role)
    return tuple(out)


def groups_short(question: EligibilityQuestion, facts: EligibilityFacts) -> tuple[str, ...]:
    """The designated-approver groups whose members the PR should name: those of the roles
    `roles_short` lists (every approver group when one of them has no settled rule)."""
    short = roles_short(question, facts)
    if not short or not question.approver_groups:
        return ()
    counts = {c.role: c for c in question.counts or ()}
    wanted: dict[str, None] = {}
    for role in short:
        count = counts.get(role)
        if count is None:
            return question.approver_groups
        wanted.update(dict.fromkeys(a for a in count.approvers if a.startswith(GROUP)))
    return tuple(g for g in question.approver_groups if g in wanted)


def source_for(settings: EligibilitySettings, *, granting: bool) -> EligibilitySettings:
    """The eligibility settings of one evaluation.

    Policy Analyzer allows 20 queries per organization per day (without Security Command
    Center Premium), so it answers only the decision that grants: the merge. Every evaluation
    before it (opened, pushed, reviewed) uses the asset-inventory path, which has no daily
    quota; its verdict only guides the PR, since the merge decides again from fresh facts. A
    merged request therefore spends exactly one query, and nobody who can only open, review or
    comment can spend any.
    """
    if granting or settings.source is EligibilitySourceName.ASSET_INVENTORY:
        return settings
    return replace(settings, source=EligibilitySourceName.ASSET_INVENTORY)


def prune(question: EligibilityQuestion, facts: EligibilityFacts) -> EligibilityFacts:
    """The part of `facts` the question asked for, from a source that answered more.

    Policy Analyzer answers for everyone at once; keeping only what was asked makes the facts
    of both sources the same: the requester's eligibility, reviewers' multi-party eligibility
    for the approval roles (vetoers': for those and the veto roles), the asked identities'
    memberships of the asked approver groups, and, when peers are asked, the peers of the
    roles short of approvals and the asked groups' members. The ancestry is kept as read (it
    decides nothing where no rule matches folders).
    """
    roles = set(approval_roles(question, facts))
    vetoing = roles | set(question.veto_roles)
    vetoers = set(question.vetoers)
    grants = {}
    mine = facts.grants.get(question.requester)
    if mine:
        grants[question.requester] = {r: e for r, e in mine.items() if r in question.roles}
    for who in question.judged:
        asked = vetoing if who in vetoers else roles
        theirs = facts.grants.get(who, {})
        kept = {
            r: replace(e, self_approval=False, self_conditions=())
            for r, e in theirs.items() if r in asked and e.multi_party
        }
        if kept:
            grants[who] = kept
    grants = {who: held for who, held in grants.items() if held}
    groups = frozenset(question.approver_groups)
    memberships = {}
    for who in question.judged:
        inside = facts.memberships.get(who, frozenset()) & groups
        if inside:
            memberships[who] = inside
    pruned = replace(facts, grants=grants, peers={}, memberships=memberships, group_members={})
    if not question.peers:
        return pruned
    peers = {
        role: facts.peers[role] for role in roles_short(question, pruned) if facts.peers.get(role)
    }
    members = {g: m for g, m in facts.group_members.items() if g in groups}
    return replace(pruned, peers=peers, group_members=members)


def question_for(
    *,
    policy: Policy,
    request: AccessRequest,
    requester: str,
    reviews: Iterable[Review],
    author: str,
    head_sha: str,
    identities: Identities,
    now: datetime,
    publishing: bool,
) -> EligibilityQuestion:
    """The question of one evaluation of `request` under `policy` (`publishing`: it will
    update the open PR).

    Before the lookup the rules of a role may depend on the project's folders; the question
    then asks for everything any rule that may apply could need (`rules.possible_settings`).
    """
    reviews = tuple(reviews)
    roles = tuple(dict.fromkeys(request.roles))
    possible = {role: rules.possible_settings(policy, request.project, role) for role in roles}
    every = [s for options in possible.values() for s in options]
    groups = tuple(dict.fromkeys(
        a for s in every for a in s.approval.approvers if a.startswith(GROUP)
    ))
    veto_roles = tuple(r for r in roles if any(s.approval.veto for s in possible[r]))
    vetoers = requesting_changes(
        reviews, author=author, identities=identities, requester=requester,
    ) if veto_roles else ()
    break_glass = request.break_glass and policy.break_glass.enabled

    def counting(max_age: timedelta) -> tuple[str, ...]:
        return could_count(
            reviews, author=author, head_sha=head_sha, identities=identities,
            requester=requester, max_age=max_age, now=now,
        )

    counts: list[RoleCount] = []
    reviewers: dict[str, None] = {}
    by_age: dict[timedelta, tuple[str, ...]] = {}
    for role in roles:
        for s in possible[role]:
            age = s.approval.max_age
            if break_glass:  # a break-glass request counts no approval
                by_age[age] = ()
            elif age not in by_age:
                by_age[age] = counting(age)
            reviewers.update(dict.fromkeys(by_age[age]))
        if len(possible[role]) == 1:
            (s,) = possible[role]
            counts.append(RoleCount(
                role, s.approval.required, by_age[s.approval.max_age], s.approval.peers,
                s.approval.approvers,
            ))
    return EligibilityQuestion(
        requester=requester.lower(),
        roles=roles,
        reviewers=tuple(sorted(reviewers)),
        required=max((s.approval.required for s in every), default=policy.approval.required),
        peers=publishing or break_glass,
        vetoers=vetoers,
        veto_roles=veto_roles,
        approver_groups=groups,
        ancestry=rules.needs_ancestry(policy, request.project, roles),
        counts=tuple(counts),
        break_glass=break_glass,
    )
