"""What an evaluation asks about eligibility (`webhook.core.eligibility`), pure.

The property that matters: a decision made from the facts a question asks for equals the
decision made from complete facts. So nothing a question leaves out (reviewers whose review
cannot count, reviewers of self-approval roles, peers of roles with enough approvals) could
have changed a decision.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from webhook.core.decide import decide
from webhook.core.eligibility import (
    EligibilityQuestion,
    RoleCount,
    approval_roles,
    could_count,
    groups_short,
    prune,
    question_for,
    roles_short,
    source_for,
)
from webhook.core.model import (
    AccessRequest,
    ApprovalSettings,
    BreakGlassSettings,
    EligibilityFacts,
    EligibilitySettings,
    EligibilitySourceName,
    Facts,
    Identities,
    JustificationSettings,
    Policy,
    PullRequestRef,
    Review,
    ReviewState,
    RoleEligibility,
    Rule,
    RuleApproval,
    RuleMatch,
)

NOW = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
HEAD = "a" * 40
OLD = "b" * 40
SQL = "roles/cloudsql.admin"
BQ = "roles/bigquery.admin"
DAY = timedelta(hours=24)
IDENTITIES = Identities({
    "alice": "alice@example.com",
    "alice-alt": "alice@example.com",
    "bob": "bob@example.com",
    "bob2": "bob@example.com",
    "carol": "carol@example.com",
    "dave": "dave@example.com",
})
MP = RoleEligibility(multi_party=True)
SELF = RoleEligibility(self_approval=True)


def review(login: str, state: ReviewState = ReviewState.APPROVED, *, commit: str = HEAD,
           at: datetime | None = NOW - timedelta(hours=1), id: int = 1) -> Review:
    return Review(id, login, state, commit, at)


def counted(*reviews: Review, requester: str = "alice@example.com") -> tuple[str, ...]:
    return could_count(reviews, author="alice", head_sha=HEAD, identities=IDENTITIES,
                       requester=requester, max_age=DAY, now=NOW)


# --------------------------------------------------------------------------------------------
# Whose review could count


def test_an_approval_on_the_head_within_max_age_could_count() -> None:
    assert counted(review("bob"), review("Carol", id=2)) == ("bob@example.com", "carol@example.com")


def test_reviews_that_cannot_count_need_no_lookup() -> None:
    assert counted(
        review("mallory"),  # no identity mapping
        review("alice-alt", id=2),  # the requester's own identity
        review("alice", id=3),  # the author
        review("bob", commit=OLD, id=4),  # an older commit
        review("carol", at=NOW - DAY - timedelta(seconds=1), id=5),  # too old
        review("dave", at=NOW + timedelta(hours=1), id=6),  # dated in the future
    ) == ()


def test_the_latest_decisive_review_decides() -> None:
    assert counted(
        review("bob", id=1, at=NOW - timedelta(hours=2)),
        review("bob", ReviewState.DISMISSED, id=2, at=NOW - timedelta(hours=1)),
        review("carol", ReviewState.CHANGES_REQUESTED, id=3, at=NOW - timedelta(hours=2)),
        review("carol", id=4, at=NOW - timedelta(hours=1)),
        review("dave", id=5, at=NOW - timedelta(hours=2)),
        review("dave", ReviewState.COMMENTED, id=6, at=NOW - timedelta(hours=1)),
    ) == ("carol@example.com", "dave@example.com")


def test_two_accounts_of_one_person_are_one_identity() -> None:
    assert counted(review("bob"), review("bob2", id=2)) == ("bob@example.com",)


def test_without_a_submission_time_nothing_counts() -> None:
    assert counted(review("bob", at=None)) == ()


# --------------------------------------------------------------------------------------------
# Roles, peers and the source


def test_approval_roles_and_roles_short() -> None:
    question = EligibilityQuestion("alice@example.com", (SQL, BQ), ("bob@example.com",))
    facts = EligibilityFacts(grants={
        "alice@example.com": {SQL: MP, BQ: RoleEligibility(self_approval=True, multi_party=True)},
        "bob@example.com": {SQL: MP},
    })
    assert approval_roles(question, facts) == (SQL,)
    assert roles_short(question, facts) == ()
    assert roles_short(replace(question, required=2), facts) == (SQL,)
    assert roles_short(replace(question, reviewers=()), facts) == (SQL,)


def test_policy_analyzer_answers_only_the_merge() -> None:
    analyzer = EligibilitySettings(EligibilitySourceName.POLICY_ANALYZER, nested_groups=True)
    assert source_for(analyzer, granting=True) == analyzer
    assert source_for(analyzer, granting=False) == EligibilitySettings(
        EligibilitySourceName.ASSET_INVENTORY, nested_groups=True
    )
    asset = EligibilitySettings()
    assert source_for(asset, granting=True) == source_for(asset, granting=False) == asset


def test_prune_keeps_what_was_asked() -> None:
    question = EligibilityQuestion("alice@example.com", (SQL, BQ), ("bob@example.com",))
    full = EligibilityFacts(
        grants={
            "alice@example.com": {SQL: MP, BQ: SELF, "roles/other": SELF},
            "bob@example.com": {SQL: RoleEligibility(self_approval=True, multi_party=True),
                                BQ: MP},
            "carol@example.com": {SQL: MP},
        },
        peers={SQL: frozenset({"bob@example.com", "carol@example.com"}),
               BQ: frozenset({"bob@example.com"})},
        notes=("a note",),
    )
    assert prune(question, full) == EligibilityFacts(
        grants={"alice@example.com": {SQL: MP, BQ: SELF}, "bob@example.com": {SQL: MP}},
        notes=("a note",),
    )
    assert prune(replace(question, required=2), full).peers == {SQL: full.peers[SQL]}
    assert prune(replace(question, required=2, peers=False), full).peers == {}


# --------------------------------------------------------------------------------------------
# The property: the question's facts decide as complete facts do

LOGINS = ["alice", "alice-alt", "bob", "bob2", "carol", "dave", "mallory"]
PEOPLE = ["alice@example.com", "bob@example.com", "carol@example.com", "dave@example.com"]
ROLES = [SQL, BQ]

eligibility_of = st.sampled_from([
    RoleEligibility(),
    SELF,
    MP,
    RoleEligibility(self_approval=True, multi_party=True),
    RoleEligibility(multi_party=True, multi_party_conditions=("resource.name == 'x'",)),
])
reviews_st = st.lists(
    st.builds(
        Review,
        id=st.integers(1, 50),
        login=st.sampled_from(LOGINS),
        state=st.sampled_from(list(ReviewState)),
        commit_id=st.sampled_from([HEAD, OLD]),
        submitted_at=st.one_of(
            st.none(),
            st.integers(-30, 2).map(lambda h: NOW + timedelta(hours=h)),
        ),
    ),
    max_size=8,
)


@settings(max_examples=300, deadline=None)
@given(
    table=st.dictionaries(
        st.sampled_from(PEOPLE), st.dictionaries(st.sampled_from(ROLES), eligibility_of)
    ),
    reviews=reviews_st,
    roles=st.sampled_from([(SQL,), (BQ,), (SQL, BQ)]),
    required=st.integers(0, 3),
    publishing=st.booleans(),
)
def test_the_questions_facts_decide_as_complete_facts_do(
    table: dict[str, dict[str, RoleEligibility]],
    reviews: list[Review],
    roles: tuple[str, ...],
    required: int,
    publishing: bool,
) -> None:
    grants = {who: {r: e for r, e in held.items() if e != RoleEligibility()}
              for who, held in table.items()}
    complete = EligibilityFacts(
        grants={who: held for who, held in grants.items() if held},
        peers={r: frozenset(w for w, held in grants.items() if held.get(r, SELF).multi_party)
               for r in ROLES},
    )
    policy = Policy("organizations/1", approval=ApprovalSettings(required=required))
    pr = PullRequestRef("acme/access", 7, "alice", HEAD)
    request = AccessRequest("payments-prod", roles, timedelta(hours=1), "INC-1: x")
    base = Facts(pr=pr, policy=policy, policy_problems=(), identities=IDENTITIES,
                 request=request, request_problems=(), eligibility=complete,
                 reviews=tuple(reviews))
    question = question_for(
        policy=policy, request=request, requester="alice@example.com", reviews=reviews,
        author="alice", head_sha=HEAD, identities=IDENTITIES, now=NOW, publishing=publishing,
    )
    asked = replace(base, eligibility=prune(question, complete))

    want, got = decide(base, NOW), decide(asked, NOW)
    if not publishing:  # peers are asked only for a PR that names them
        want = replace(want, candidate_reviewers=())
    assert got == want


# --------------------------------------------------------------------------------------------
# The same property under rules: designated approvers, `peers: false`, veto, folders,
# break-glass

LEADS, OTHER = "group:leads@example.com", "group:other@example.com"
GROUPS = [LEADS, OTHER]
FOLDER = "folders/456"

POLICIES = {
    "top-level approvers and veto": Policy(
        "organizations/1",
        approval=ApprovalSettings(required=1, approvers=(LEADS, "user:dave@example.com"),
                                  veto=True),
    ),
    "a rule for SQL: only approvers, two of them, 2h": Policy(
        "organizations/1",
        rules=(Rule("sql", RuleMatch(roles=("roles/cloudsql.*",)), approval=RuleApproval(
            required=2, max_age=timedelta(hours=2), approvers=(LEADS, "user:carol@example.com"),
            peers=False)),),
    ),
    "a folder rule with veto before a project rule": Policy(
        "organizations/1",
        approval=ApprovalSettings(required=2),
        rules=(
            Rule("folder", RuleMatch(folders=(FOLDER,)), approval=RuleApproval(
                required=1, approvers=(OTHER,), veto=True)),
            Rule("prod", RuleMatch(projects=("*-prod",), roles=(BQ,)), approval=RuleApproval(
                required=0, approvers=(LEADS,), max_age=timedelta(hours=3))),
        ),
    ),
    "break-glass with a veto rule": Policy(
        "organizations/1",
        break_glass=BreakGlassSettings(enabled=True, max_duration=timedelta(hours=2),
                                       justification=JustificationSettings(".*")),
        rules=(Rule("veto", RuleMatch(roles=(SQL,)), approval=RuleApproval(
            approvers=(LEADS,), veto=True, peers=False)),),
    ),
}


@settings(max_examples=500, deadline=None)
@given(
    table=st.fixed_dictionaries(
        {who: st.dictionaries(st.sampled_from(ROLES), eligibility_of) for who in PEOPLE}
    ),
    groups=st.dictionaries(st.sampled_from(PEOPLE), st.frozensets(st.sampled_from(GROUPS))),
    reviews=reviews_st,
    roles=st.sampled_from([(SQL,), (BQ,), (SQL, BQ)]),
    name=st.sampled_from(sorted(POLICIES)),
    ancestry=st.sampled_from([(FOLDER, "organizations/1"), ("folders/9", "organizations/1")]),
    break_glass=st.booleans(),
    publishing=st.booleans(),
)
def test_under_rules_the_questions_facts_decide_as_complete_facts_do(
    table: dict[str, dict[str, RoleEligibility]],
    groups: dict[str, frozenset[str]],
    reviews: list[Review],
    roles: tuple[str, ...],
    name: str,
    ancestry: tuple[str, ...],
    break_glass: bool,
    publishing: bool,
) -> None:
    policy = POLICIES[name]
    grants = {who: {r: e for r, e in held.items() if e != RoleEligibility()}
              for who, held in table.items()}
    complete = EligibilityFacts(
        grants={who: held for who, held in grants.items() if held},
        peers={r: frozenset(w for w, held in grants.items() if held.get(r, SELF).multi_party)
               for r in ROLES},
        ancestry=ancestry,
        memberships={who: g for who, g in groups.items() if g},
        group_members={g: frozenset(w for w, held in groups.items() if g in held)
                       for g in GROUPS},
    )
    request = AccessRequest("payments-prod", roles, timedelta(hours=1), "INC-1: x",
                            break_glass=break_glass and policy.break_glass.enabled)
    base = Facts(pr=PullRequestRef("acme/access", 7, "alice", HEAD), policy=policy,
                 policy_problems=(), identities=IDENTITIES, request=request,
                 request_problems=(), eligibility=complete, reviews=tuple(reviews))
    question = question_for(
        policy=policy, request=request, requester="alice@example.com", reviews=reviews,
        author="alice", head_sha=HEAD, identities=IDENTITIES, now=NOW, publishing=publishing,
    )
    asked = replace(base, eligibility=prune(question, complete))

    want, got = decide(base, NOW), decide(asked, NOW)
    if not question.peers:  # reviewers to ask matter only to a PR that names them
        want = replace(want, candidate_reviewers=())
        got = replace(got, candidate_reviewers=())
    assert got == want


def test_the_question_under_rules() -> None:
    policy = POLICIES["a folder rule with veto before a project rule"]
    reviews = [
        review("bob", ReviewState.CHANGES_REQUESTED, commit=OLD, at=NOW - 3 * DAY),
        review("carol", id=2),
        review("dave", at=NOW - timedelta(hours=4), id=3),  # too old for the "prod" rule
        review("alice-alt", ReviewState.CHANGES_REQUESTED, id=4),  # the requester
    ]
    request = AccessRequest("payments-prod", (SQL, BQ), timedelta(hours=1), "INC-1: x")
    question = question_for(
        policy=policy, request=request, requester="alice@example.com", reviews=reviews,
        author="alice", head_sha=HEAD, identities=IDENTITIES, now=NOW, publishing=True,
    )
    # Both roles may fall under the folder rule: its veto, its group, the ancestry.
    assert question.ancestry is True
    assert question.veto_roles == (SQL, BQ)
    assert question.vetoers == ("bob@example.com",)
    assert question.approver_groups == (OTHER, LEADS)
    assert question.reviewers == ("carol@example.com", "dave@example.com")
    assert question.required == 2
    assert question.counts == ()  # neither role's rule is settled before the lookup
    assert set(question.judged) == {"bob@example.com", "carol@example.com", "dave@example.com"}

    settled = question_for(
        policy=POLICIES["a rule for SQL: only approvers, two of them, 2h"], request=request,
        requester="alice@example.com", reviews=reviews, author="alice", head_sha=HEAD,
        identities=IDENTITIES, now=NOW, publishing=True,
    )
    assert (settled.ancestry, settled.vetoers, settled.veto_roles) == (False, (), ())
    assert settled.counts == (
        RoleCount(SQL, 2, ("carol@example.com",), False, (LEADS, "user:carol@example.com")),
        RoleCount(BQ, 1, ("carol@example.com", "dave@example.com")),
    )


def test_roles_short_counts_designated_approvers_and_not_peers_where_they_do_not_count() -> None:
    question = EligibilityQuestion(
        "alice@example.com", (SQL,), ("bob@example.com", "carol@example.com"),
        counts=(RoleCount(SQL, 1, ("bob@example.com", "carol@example.com"), peers=False,
                          approvers=(LEADS,)),),
        approver_groups=(LEADS,),
    )
    peer_only = EligibilityFacts(grants={
        "alice@example.com": {SQL: MP}, "bob@example.com": {SQL: MP},
    })
    assert roles_short(question, peer_only) == (SQL,)  # bob is a peer; peers do not count
    assert groups_short(question, peer_only) == (LEADS,)
    member = replace(peer_only, memberships={"carol@example.com": frozenset({LEADS})})
    assert roles_short(question, member) == ()
    assert groups_short(question, member) == ()
    # A role whose rule is not settled may be short whatever the reviews.
    assert roles_short(replace(question, counts=()), member) == (SQL,)
    assert groups_short(replace(question, counts=()), member) == (LEADS,)


def test_a_break_glass_question_counts_no_approval_and_asks_for_reviewers() -> None:
    policy = POLICIES["break-glass with a veto rule"]
    request = AccessRequest("payments-prod", (SQL, BQ), timedelta(hours=1), "INC-1: x",
                            break_glass=True)
    question = question_for(
        policy=policy, request=request, requester="alice@example.com",
        reviews=[review("bob"), review("carol", ReviewState.CHANGES_REQUESTED, id=2)],
        author="alice", head_sha=HEAD, identities=IDENTITIES, now=NOW, publishing=False,
    )
    assert question.break_glass and question.peers  # the merge asks for after-the-fact reviewers
    assert question.reviewers == ()
    assert (question.vetoers, question.veto_roles) == (("carol@example.com",), (SQL,))
    facts = EligibilityFacts(grants={"alice@example.com": {SQL: SELF, BQ: MP}})
    assert approval_roles(question, facts) == roles_short(question, facts) == (SQL, BQ)
