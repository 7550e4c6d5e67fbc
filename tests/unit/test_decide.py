"""Rules of the pure decision (README: lifecycle), with a frozen clock and no fakes."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from webhook.core.decide import decide
from webhook.core.model import (
    AccessRequest,
    ApprovalKind,
    ApprovalSettings,
    Decision,
    EligibilityFacts,
    Facts,
    Identities,
    Policy,
    Problem,
    PullRequestRef,
    Review,
    ReviewState,
    RoleDecision,
    RoleEligibility,
    RoleSettings,
    State,
)

NOW = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
HEAD = "a" * 40
OLD = "b" * 40
SQL = "roles/cloudsql.admin"
BQ = "roles/bigquery.admin"
LOGS = "roles/logging.viewer"

PR = PullRequestRef("acme/access", 7, "alice", HEAD, "https://github.com/acme/access/pull/7")
POLICY = Policy(scope="organizations/123456789012")
IDENTITIES = Identities(
    {
        "alice": "alice@example.com",
        "alice-alt": "alice@example.com",  # an alias account of the requester
        "bob": "bob@example.com",
        "bob2": "bob@example.com",  # a second account of bob
        "carol": "carol@example.com",
        "dave": "dave@example.com",
        "mallory": "mallory@example.com",
        "frank": "frank@example.com",
    }
)
MP = RoleEligibility(multi_party=True)
ELIGIBILITY = EligibilityFacts(
    grants={
        "alice@example.com": {
            SQL: MP,
            BQ: MP,
            LOGS: RoleEligibility(self_approval=True, self_conditions=("resource.name == 'x'",)),
        },
        "bob@example.com": {SQL: MP, BQ: MP},
        "carol@example.com": {SQL: MP},
        "dave@example.com": {SQL: MP, BQ: MP},
        # Eligible for SQL, but only on her own: not a qualified reviewer.
        "mallory@example.com": {SQL: RoleEligibility(self_approval=True)},
    },
    peers={
        SQL: frozenset(
            {"alice@example.com", "bob@example.com", "carol@example.com", "dave@example.com"}
        ),
        BQ: frozenset({"alice@example.com", "bob@example.com", "dave@example.com"}),
    },
)


def request(*roles: str) -> AccessRequest:
    return AccessRequest("payments-prod", roles or (SQL,), timedelta(hours=2), "INC-1234: fix")


def facts(*reviews: Review, roles: tuple[str, ...] = (SQL,), **changes: object) -> Facts:
    base = Facts(
        pr=PR,
        policy=POLICY,
        policy_problems=(),
        identities=IDENTITIES,
        request=request(*roles),
        request_problems=(),
        eligibility=ELIGIBILITY,
        reviews=reviews,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


_ids = iter(range(1000, 100000))


def review(
    login: str,
    state: ReviewState = ReviewState.APPROVED,
    *,
    commit: str = HEAD,
    at: datetime | None = NOW - timedelta(hours=1),
    id: int | None = None,
) -> Review:
    return Review(id if id is not None else next(_ids), login, state, commit, at)


def top(role: str) -> RoleSettings:
    """The top-level settings of POLICY, as applied to a role no rule matches."""
    return RoleSettings(
        role, None, POLICY.activation.max_duration, POLICY.justification, POLICY.approval
    )


def required(n: int) -> Policy:
    return replace(POLICY, approval=ApprovalSettings(required=n))


def sql(decision: Decision) -> RoleDecision:
    (role,) = decision.roles
    assert role.role == SQL
    return role


# --------------------------------------------------------------------------------------------
# Precedence: policy error, invalid request, identity, eligibility facts


def test_policy_problems_win_over_everything() -> None:
    bad = (Problem("policy_invalid", "scope is required", line=1),)
    d = decide(facts(policy_problems=bad, request=None, request_problems=(Problem("x", "y"),)), NOW)
    assert d.state is State.ERROR
    assert d.problems == bad
    assert d.roles == ()
    assert d.state.commit_status == "error"


def test_missing_policy_without_problems_is_still_an_error() -> None:
    d = decide(facts(policy=None), NOW)
    assert d.state is State.ERROR
    assert [p.code for p in d.problems] == ["policy_missing"]


def test_invalid_request_wins_over_identity_and_eligibility() -> None:
    problems = (Problem("unknown_key", "unknown key 'projetc'", line=1), Problem("a", "b"))
    d = decide(
        facts(
            request=None,
            request_problems=problems,
            identities=Identities({}),
            eligibility=None,
        ),
        NOW,
    )
    assert d.state is State.INVALID
    assert d.problems == problems
    assert d.state.commit_status == "failure"


def test_request_problems_with_a_parsed_request_are_invalid() -> None:
    problems = (Problem("pr_shape", "the PR changes other files"),)
    d = decide(facts(request_problems=problems), NOW)
    assert d.state is State.INVALID
    assert d.request == request()
    assert d.problems == problems


def test_author_without_identity_mapping_is_not_eligible() -> None:
    d = decide(facts(pr=replace(PR, author="Zed")), NOW)
    assert d.state is State.NOT_ELIGIBLE
    assert d.requester is None
    assert d.problems == (
        Problem(
            "no_identity_mapping",
            "@Zed has no Google identity mapping. Ask an administrator to add "
            "`zed: <email>` to policy/identities.yaml.",
        ),
    )


def test_unknown_eligibility_is_an_error() -> None:
    d = decide(facts(eligibility=None), NOW)
    assert d.state is State.ERROR
    assert [p.code for p in d.problems] == ["eligibility_unknown"]


# --------------------------------------------------------------------------------------------
# Eligibility of the requester


def test_self_approval_is_ready_and_carries_its_conditions() -> None:
    d = decide(facts(roles=(LOGS,)), NOW)
    assert d.state is State.READY
    assert d.requester == "alice@example.com"
    assert d.roles == (
        RoleDecision(LOGS, ApprovalKind.SELF, resource_conditions=("resource.name == 'x'",),
                     settings=top(LOGS)),
    )
    assert d.candidate_reviewers == ()
    assert d.state.commit_status == "success"


def test_self_approval_wins_over_multi_party() -> None:
    both = EligibilityFacts(
        grants={"alice@example.com": {SQL: RoleEligibility(self_approval=True, multi_party=True)}}
    )
    d = decide(facts(eligibility=both), NOW)
    assert d.state is State.READY
    assert sql(d).kind is ApprovalKind.SELF


def test_not_eligible_for_one_of_two_roles() -> None:
    d = decide(facts(roles=(LOGS, "roles/spanner.admin")), NOW)
    assert d.state is State.NOT_ELIGIBLE
    reason = (
        "alice@example.com is not eligible for roles/spanner.admin on payments-prod: no binding "
        "with the jit-access conditions for this identity on the project or its "
        "folders/organization within organizations/123456789012."
    )
    assert d.problems == (Problem("not_eligible", reason),)
    assert d.roles[1] == RoleDecision(
        "roles/spanner.admin", ApprovalKind.NONE, reasons=(reason,),
        settings=top("roles/spanner.admin"),
    )
    assert d.candidate_reviewers == ()
    assert d.state.commit_status == "failure"


@pytest.mark.parametrize(
    ("roles", "state"),
    [
        ((LOGS,), State.READY),
        ((SQL,), State.PENDING),
        (("roles/spanner.admin",), State.NOT_ELIGIBLE),
    ],
)
def test_eligibility_notes_reach_the_decision(roles: tuple[str, ...], state: State) -> None:
    noted = replace(ELIGIBILITY, notes=("Not counted: the members of g@partner.example",))
    d = decide(facts(roles=roles, eligibility=noted), NOW)
    assert d.state is state
    assert d.notes == ("Not counted: the members of g@partner.example",)


def test_multi_party_resource_conditions_are_carried() -> None:
    cond = RoleEligibility(multi_party=True, multi_party_conditions=("a", "b"))
    elig = replace(ELIGIBILITY, grants={**ELIGIBILITY.grants, "alice@example.com": {SQL: cond}})
    d = decide(facts(review("bob"), eligibility=elig), NOW)
    assert d.state is State.READY
    assert sql(d).resource_conditions == ("a", "b")


# --------------------------------------------------------------------------------------------
# Multi-party approval


def test_multi_party_without_reviews_is_pending() -> None:
    d = decide(facts(), NOW)
    assert d.state is State.PENDING
    assert sql(d) == RoleDecision(SQL, ApprovalKind.MULTI_PARTY, needed=1, settings=top(SQL))
    assert d.candidate_reviewers == ("bob", "bob2", "carol", "dave")
    assert d.state.commit_status == "pending"


def test_one_qualified_approval_makes_it_ready() -> None:
    d = decide(facts(review("bob")), NOW)
    assert d.state is State.READY
    assert sql(d) == RoleDecision(
        SQL, ApprovalKind.MULTI_PARTY, approvers=("bob",), needed=0, settings=top(SQL)
    )
    assert d.approvers == ("bob",)
    assert d.candidate_reviewers == ()


def test_two_required_need_two_distinct_reviewers() -> None:
    one = decide(facts(review("bob"), policy=required(2)), NOW)
    assert one.state is State.PENDING
    assert sql(one).approvers == ("bob",)
    assert sql(one).needed == 1
    # bob and his second account are no use any more; carol and dave are.
    assert one.candidate_reviewers == ("carol", "dave")

    two = decide(facts(review("bob"), review("carol"), policy=required(2)), NOW)
    assert two.state is State.READY
    assert sql(two).approvers == ("bob", "carol")
    assert sql(two).needed == 0


def test_two_approvals_by_one_reviewer_count_once() -> None:
    d = decide(facts(review("bob"), review("bob"), policy=required(2)), NOW)
    assert d.state is State.PENDING
    assert sql(d).approvers == ("bob",)


def test_same_identity_behind_two_logins_counts_once() -> None:
    d = decide(facts(review("bob2"), review("bob"), policy=required(2)), NOW)
    assert d.state is State.PENDING
    assert sql(d).approvers == ("bob",)
    assert sql(d).needed == 1
    assert sql(d).reasons == (
        "@bob2's approval does not count: same identity as @bob, counted once",
    )


def test_extra_approvals_are_all_listed() -> None:
    d = decide(facts(review("dave"), review("bob"), review("carol")), NOW)
    assert sql(d).approvers == ("bob", "carol", "dave")
    assert sql(d).needed == 0


@pytest.mark.parametrize(
    ("login", "why"),
    [
        ("mallory", "not eligible for roles/cloudsql.admin through multi-party approval"),
        ("frank", "not eligible for roles/cloudsql.admin through multi-party approval"),
        ("eve", "has no identity mapping"),
        ("alice", "is the requester"),
        ("alice-alt", "is the requester (same identity)"),
    ],
)
def test_unqualified_reviewers_do_not_count(login: str, why: str) -> None:
    d = decide(facts(review(login)), NOW)
    assert d.state is State.PENDING
    assert sql(d).approvers == ()
    assert sql(d).needed == 1
    assert sql(d).reasons == (f"@{login}'s approval does not count: {why}",)


def test_approval_of_an_older_commit_does_not_count() -> None:
    d = decide(facts(review("bob", commit=OLD)), NOW)
    assert d.state is State.PENDING
    assert sql(d).reasons == (
        "@bob's approval does not count: approved an older commit (bbbbbbb), not the head",
    )
    # Asking bob again is exactly what is needed.
    assert "bob" in d.candidate_reviewers


def test_changes_requested_after_approval_cancels_it() -> None:
    d = decide(
        facts(
            review("bob", at=NOW - timedelta(hours=2)),
            review("bob", ReviewState.CHANGES_REQUESTED, at=NOW - timedelta(hours=1)),
        ),
        NOW,
    )
    assert d.state is State.PENDING
    assert sql(d).reasons == ("@bob's approval does not count: latest review requests changes",)


def test_approval_after_changes_requested_counts() -> None:
    d = decide(
        facts(
            review("bob", ReviewState.CHANGES_REQUESTED, at=NOW - timedelta(hours=2)),
            review("bob", at=NOW - timedelta(hours=1)),
        ),
        NOW,
    )
    assert d.state is State.READY
    assert sql(d).reasons == ()


@pytest.mark.parametrize("later", [ReviewState.COMMENTED, ReviewState.PENDING])
def test_comment_after_approval_keeps_it(later: ReviewState) -> None:
    d = decide(
        facts(
            review("bob", at=NOW - timedelta(hours=2)),
            review("bob", later, at=NOW - timedelta(minutes=1)),
        ),
        NOW,
    )
    assert d.state is State.READY
    assert sql(d).approvers == ("bob",)


def test_comment_alone_is_no_approval_and_no_reason() -> None:
    d = decide(facts(review("bob", ReviewState.COMMENTED)), NOW)
    assert d.state is State.PENDING
    assert sql(d).reasons == ()


def test_dismissed_after_approval_cancels_it() -> None:
    d = decide(
        facts(
            review("bob", at=NOW - timedelta(hours=2)),
            review("bob", ReviewState.DISMISSED, at=NOW - timedelta(hours=1)),
        ),
        NOW,
    )
    assert d.state is State.PENDING
    assert sql(d).reasons == ("@bob's approval does not count: latest review was dismissed",)


def test_same_timestamp_is_ordered_by_review_id() -> None:
    at = NOW - timedelta(hours=1)
    later_changes = facts(
        review("bob", ReviewState.CHANGES_REQUESTED, at=at, id=6), review("bob", at=at, id=5)
    )
    assert decide(later_changes, NOW).state is State.PENDING
    later_approval = facts(
        review("bob", ReviewState.CHANGES_REQUESTED, at=at, id=5), review("bob", at=at, id=6)
    )
    assert decide(later_approval, NOW).state is State.READY


def test_max_age_boundary() -> None:
    exactly = decide(facts(review("bob", at=NOW - timedelta(hours=24))), NOW)
    assert exactly.state is State.READY
    over = decide(facts(review("bob", at=NOW - timedelta(hours=24, seconds=1))), NOW)
    assert over.state is State.PENDING
    assert sql(over).reasons == ("@bob's approval does not count: approval is older than 24h",)


def test_max_age_follows_the_policy() -> None:
    policy = replace(POLICY, approval=ApprovalSettings(max_age=timedelta(minutes=90)))
    d = decide(facts(review("bob", at=NOW - timedelta(hours=2)), policy=policy), NOW)
    assert sql(d).reasons == ("@bob's approval does not count: approval is older than 1h30m",)


def test_future_reviews_within_clock_skew_count_and_beyond_do_not() -> None:
    skewed = decide(facts(review("bob", at=NOW + timedelta(minutes=5))), NOW)
    assert skewed.state is State.READY
    future = decide(facts(review("bob", at=NOW + timedelta(minutes=5, seconds=1))), NOW)
    assert future.state is State.PENDING
    assert sql(future).reasons == (
        "@bob's approval does not count: approval is dated in the future",
    )


def test_undated_approval_does_not_count() -> None:
    d = decide(facts(review("bob", at=None)), NOW)
    assert sql(d).reasons == ("@bob's approval does not count: approval has no submission time",)


def test_naive_timestamps_are_taken_as_utc() -> None:
    naive = (NOW - timedelta(hours=1)).replace(tzinfo=None)
    assert decide(facts(review("bob", at=naive)), NOW.replace(tzinfo=None)).state is State.READY


def test_logins_are_case_insensitive() -> None:
    # Review login in another case than the identities file.
    assert decide(facts(review("BoB")), NOW).state is State.READY
    assert sql(decide(facts(review("BoB")), NOW)).approvers == ("BoB",)
    # The author in another case is still the author.
    own = decide(facts(review("ALICE")), NOW)
    assert sql(own).reasons == ("@ALICE's approval does not count: is the requester",)
    # One reviewer, two spellings: the latest review decides.
    mixed = facts(
        review("Bob", at=NOW - timedelta(hours=2)),
        review("bob", ReviewState.CHANGES_REQUESTED, at=NOW - timedelta(hours=1)),
    )
    assert decide(mixed, NOW).state is State.PENDING


def test_reasons_are_sorted_by_login() -> None:
    d = decide(facts(review("mallory"), review("eve"), review("carol", commit=OLD)), NOW)
    assert [r.split("'")[0] for r in sql(d).reasons] == ["@carol", "@eve", "@mallory"]


def test_qualification_is_per_role() -> None:
    # carol may approve SQL but not BigQuery.
    d = decide(facts(review("carol"), roles=(SQL, BQ)), NOW)
    assert d.state is State.PENDING
    sql_role, bq_role = d.roles
    assert sql_role.approvers == ("carol",)
    assert sql_role.needed == 0
    assert bq_role.approvers == ()
    assert bq_role.needed == 1
    assert bq_role.reasons == (
        "@carol's approval does not count: not eligible for roles/bigquery.admin through "
        "multi-party approval",
    )
    assert d.candidate_reviewers == ("bob", "bob2", "dave")


def test_one_self_and_one_multi_party_role() -> None:
    pending = decide(facts(roles=(LOGS, SQL)), NOW)
    assert pending.state is State.PENDING
    assert [r.kind for r in pending.roles] == [ApprovalKind.SELF, ApprovalKind.MULTI_PARTY]
    ready = decide(facts(review("dave"), roles=(LOGS, SQL)), NOW)
    assert ready.state is State.READY
    assert ready.approvers == ("dave",)


def test_zero_required_approvals_make_multi_party_ready() -> None:
    d = decide(facts(policy=required(0)), NOW)
    assert d.state is State.READY
    assert sql(d).needed == 0


# --------------------------------------------------------------------------------------------
# Candidate reviewers


def test_candidates_exclude_author_aliases_and_approvers() -> None:
    d = decide(facts(review("carol"), policy=required(2)), NOW)
    assert d.state is State.PENDING
    # Not alice (author), not alice-alt (her alias), not carol (approved); mallory and frank
    # are not multi-party peers.
    assert d.candidate_reviewers == ("bob", "bob2", "dave")


def test_candidates_ignore_peers_without_a_login() -> None:
    elig = replace(ELIGIBILITY, peers={SQL: frozenset({"nobody@example.com", "dave@example.com"})})
    d = decide(facts(eligibility=elig), NOW)
    assert d.candidate_reviewers == ("dave",)


def test_decide_is_deterministic() -> None:
    f = facts(review("mallory"), review("bob", commit=OLD), review("carol"), roles=(SQL, BQ))
    assert decide(f, NOW) == decide(f, NOW)


# --------------------------------------------------------------------------------------------
# More reviews than the service reads


def test_approvals_are_not_judged_without_every_review() -> None:
    """A later review left out of a cut listing could withdraw an approval: neither ready nor
    waiting can be said, and the decision says why."""
    d = decide(facts(reviews_complete=False), NOW)
    assert d.state is State.ERROR
    assert [p.code for p in d.problems] == ["too_many_reviews"]
    assert d.problems[0].message == (
        "The pull request has more reviews than the service can read, so its approvals cannot "
        "be judged; open a new pull request for this request."
    )
    assert d.state.commit_status == "error"


def test_a_self_approved_request_needs_no_review_list() -> None:
    d = decide(facts(roles=(LOGS,), reviews_complete=False), NOW)
    assert d.state is State.READY


def test_an_ineligible_request_stays_ineligible_without_the_review_list() -> None:
    d = decide(facts(roles=("roles/owner.viewer",), reviews_complete=False), NOW)
    assert d.state is State.NOT_ELIGIBLE
