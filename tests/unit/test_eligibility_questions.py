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
    approval_roles,
    could_count,
    prune,
    question_for,
    roles_short,
    source_for,
)
from webhook.core.model import (
    AccessRequest,
    ApprovalSettings,
    EligibilityFacts,
    EligibilitySettings,
    EligibilitySourceName,
    Facts,
    Identities,
    Policy,
    PullRequestRef,
    Review,
    ReviewState,
    RoleEligibility,
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
    base = Facts(pr=pr, policy=policy, policy_problems=(), identities=IDENTITIES,
                 request=AccessRequest("payments-prod", roles, timedelta(hours=1), "INC-1: x"),
                 request_problems=(), eligibility=complete, reviews=tuple(reviews))
    question = question_for(
        requester="alice@example.com", roles=roles, reviews=reviews, author="alice",
        head_sha=HEAD, identities=IDENTITIES, required=required, max_age=DAY, now=NOW,
        publishing=publishing,
    )
    asked = replace(base, eligibility=prune(question, complete))

    want, got = decide(base, NOW), decide(asked, NOW)
    if not publishing:  # peers are asked only for a PR that names them
        want = replace(want, candidate_reviewers=())
    assert got == want
