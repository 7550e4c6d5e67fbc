"""What one evaluation needs to know about eligibility, decided before anything is looked up.

Eligibility lookups cost Google calls (and, with Policy Analyzer, a share of a daily quota), so
the lifecycle asks only what can change its decision, and this module, pure, says what that is:

- the requester's eligibility, for every requested role;
- reviewers' eligibility only for the roles the requester may activate only with approval
  (multi-party, not self-approval), and only for reviewers whose review could count: mapped to
  an identity other than the requester's, their deciding review an approval of the head commit
  within `approval.max_age` (`could_count`). Anyone else's review is judged without a lookup, so
  a review by someone without an identity mapping costs nothing;
- qualified peers (to name on the PR and ask for review) only when the evaluation publishes and
  a role is still short of approvals once the counted reviews are known (`roles_short`);
- Policy Analyzer only for the decision that grants, the merge (`source_for`).

`could_count` and `roles_short` restate the rules of `webhook.core.decide` that do not depend on
eligibility; tests check that a decision made from the facts these questions produce equals the
decision made from complete facts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from webhook.core.decide import CLOCK_SKEW, deciding_reviews
from webhook.core.model import (
    EligibilityFacts,
    EligibilitySettings,
    EligibilitySourceName,
    Identities,
    Review,
    ReviewState,
)

#: Review states that decide a reviewer's verdict (as in `decide`); COMMENTED never does.


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
    latest = deciding_reviews(reviews)
    wanted: set[str] = set()
    mine = requester.lower()
    for login, review in latest.items():
        if review.state is not ReviewState.APPROVED or login == author.lower():
            continue
        if review.commit_id != head_sha or review.submitted_at is None:
            continue
        submitted = _aware(review.submitted_at)
        if now - submitted > max_age or submitted - now > CLOCK_SKEW:
            continue
        identity = identities.email_for(review.login)
        if identity is None or identity.lower() == mine:
            continue
        wanted.add(identity.lower())
    return tuple(sorted(wanted))


def approval_roles(question: EligibilityQuestion, facts: EligibilityFacts) -> tuple[str, ...]:
    """The requested roles the requester may activate only with approval (multi-party)."""
    out = []
    for role in question.roles:
        mine = facts.of(question.requester, role)
        if mine.multi_party and not mine.self_approval:
            out.append(role)
    return tuple(out)


def roles_short(question: EligibilityQuestion, facts: EligibilityFacts) -> tuple[str, ...]:
    """Approval roles with fewer qualified reviews than required (`facts` holding the
    reviewers' eligibility): the roles whose qualified peers the PR should name."""
    out = []
    for role in approval_roles(question, facts):
        counted = sum(1 for who in question.reviewers if facts.of(who, role).multi_party)
        if counted < question.required:
            out.append(role)
    return tuple(out)


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
    for the approval roles (vetoers': for those and the veto roles), the peers of the roles
    short of approvals (when asked), the asked identities' memberships of the asked approver
    groups, and those groups' members (when peers are asked). The ancestry is kept as read.
    """
    roles = set(approval_roles(question, facts))
    vetoing = roles | set(question.veto_roles)
    vetoers = set(question.vetoers)
    grants = {}
    mine = facts.grants.get(question.requester)
    if mine:
        grants[question.requester] = {r: e for r, e in mine.items() if r in question.roles}
    for who in question.judged:
        theirs = facts.grants.get(who, {})
        asked = vetoing if who in vetoers else roles
        kept = {
            r: replace(e, self_approval=False, self_conditions=())
            for r, e in theirs.items() if r in asked and e.multi_party
        }
        if kept:
            grants[who] = kept
    grants = {who: held for who, held in grants.items() if held}
    peers = {}
    if question.peers:
        pruned = replace(facts, grants=grants)
        for role in roles_short(question, pruned):
            if facts.peers.get(role):
                peers[role] = facts.peers[role]
    groups = frozenset(question.approver_groups)
    memberships = {}
    for who in question.judged:
        inside = facts.memberships.get(who, frozenset()) & groups
        if inside:
            memberships[who] = inside
    members = (
        {g: m for g, m in facts.group_members.items() if g in groups} if question.peers else {}
    )
    return replace(
        facts, grants=grants, peers=peers, memberships=memberships, group_members=members
    )


def question_for(
    *,
    requester: str,
    roles: Sequence[str],
    reviews: Iterable[Review],
    author: str,
    head_sha: str,
    identities: Identities,
    required: int,
    max_age: timedelta,
    now: datetime,
    publishing: bool,
) -> EligibilityQuestion:
    """The question of one evaluation (`publishing`: it will update the open PR)."""
    return EligibilityQuestion(
        requester=requester.lower(),
        roles=tuple(dict.fromkeys(roles)),
        reviewers=could_count(
            reviews, author=author, head_sha=head_sha, identities=identities,
            requester=requester, max_age=max_age, now=now,
        ),
        required=required,
        peers=publishing,
    )


def _aware(moment: datetime) -> datetime:
    """A timezone-aware datetime; naive ones are taken as UTC (as `decide` reads them)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
