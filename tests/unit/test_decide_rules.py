"""The decision under rules (README: rules, designated approvers and veto, break-glass), pure."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from webhook.core.decide import decide
from webhook.core.model import (
    AccessRequest,
    ApprovalKind,
    ApprovalSettings,
    BreakGlassSettings,
    Decision,
    EligibilityFacts,
    Facts,
    Identities,
    JustificationSettings,
    Policy,
    PullRequestRef,
    Review,
    ReviewState,
    RoleDecision,
    RoleEligibility,
    Rule,
    RuleApproval,
    RuleJustification,
    RuleMatch,
    State,
)
from webhook.core.problems import ProblemCode

NOW = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
HEAD = "a" * 40
OLD = "b" * 40
SQL = "roles/cloudsql.admin"
SQL_VIEWER = "roles/cloudsql.viewer"
BQ = "roles/bigquery.admin"
LEADS = "group:db-leads@example.com"
FOLDER = "folders/456789012345"

PR = PullRequestRef("acme/access", 7, "alice", HEAD, "https://github.com/acme/access/pull/7")
IDENTITIES = Identities({
    "alice": "alice@example.com",
    "bob": "bob@example.com",
    "carol": "carol@example.com",
    "cto": "cto@example.com",
    "dave": "dave@example.com",
    "erin": "erin@example.com",
    "lead": "lead@example.com",
})
MP = RoleEligibility(multi_party=True)
SELF = RoleEligibility(self_approval=True, self_conditions=("resource.name == 'own'",))

#: alice may activate SQL and BQ with approval on prod, SQL_VIEWER on her own; bob and carol
#: are qualified peers; lead is in db-leads, cto a named approver, neither eligible for anything.
ELIGIBILITY = EligibilityFacts(
    grants={
        "alice@example.com": {SQL: MP, BQ: MP, SQL_VIEWER: SELF},
        "bob@example.com": {SQL: MP, BQ: MP},
        "carol@example.com": {SQL: MP, BQ: MP},
    },
    peers={
        SQL: frozenset({"alice@example.com", "bob@example.com", "carol@example.com"}),
        BQ: frozenset({"alice@example.com", "bob@example.com", "carol@example.com"}),
    },
    memberships={"lead@example.com": frozenset({LEADS})},
    group_members={LEADS: frozenset({"lead@example.com", "alice@example.com"})},
    ancestry=(FOLDER, "organizations/123456789012"),
)

PRODUCTION = Rule(
    "production databases",
    RuleMatch(projects=("*-prod",), roles=("roles/cloudsql.*",)),
    max_duration=timedelta(hours=1),
    approval=RuleApproval(required=2, approvers=(LEADS, "user:cto@example.com"), veto=True),
)
DEV = Rule(
    "dev self-service",
    RuleMatch(projects=("*-dev",)),
    max_duration=timedelta(hours=8),
)
POLICY = Policy(
    scope="organizations/123456789012",
    activation=replace(Policy("x").activation, max_duration=timedelta(hours=8)),
    rules=(PRODUCTION, DEV),
)


def review(
    login: str,
    state: ReviewState = ReviewState.APPROVED,
    *,
    commit: str = HEAD,
    at: datetime = NOW - timedelta(hours=1),
    id: int = 1,
) -> Review:
    return Review(id, login, state, commit, at)


def request(
    *roles: str, project: str = "payments-prod", hours: float = 1, justification: str = "INC-1: x",
    break_glass: bool = False,
) -> AccessRequest:
    return AccessRequest(
        project, roles or (SQL,), timedelta(hours=hours), justification, break_glass=break_glass,
        lines={"duration": 4, "justification": 5},
    )


def facts(*reviews: Review, **changes: object) -> Facts:
    base = Facts(
        pr=PR, policy=POLICY, policy_problems=(), identities=IDENTITIES, request=request(),
        request_problems=(), eligibility=ELIGIBILITY, reviews=reviews,
        request_path="requests/alice/req.yaml",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def role(decision: Decision, name: str = SQL) -> RoleDecision:
    (found,) = [r for r in decision.roles if r.role == name]
    return found


# --------------------------------------------------------------------------------------------
# Which rule applies


def test_production_rule_needs_two_approvals_where_the_default_needs_one() -> None:
    d = decide(facts(review("bob"), request=request(SQL, BQ)), NOW)
    assert d.state is State.PENDING
    sql, bq = role(d, SQL), role(d, BQ)
    assert (sql.rule, sql.approvers, sql.needed) == ("production databases", ("bob",), 1)
    assert (bq.rule, bq.approvers, bq.needed) == (None, ("bob",), 0)
    assert sql.settings is not None and sql.settings.approval.required == 2
    d = decide(facts(review("bob"), review("carol", id=2), request=request(SQL, BQ)), NOW)
    assert d.state is State.READY
    assert role(d).approvers == ("bob", "carol")


def test_a_dev_rule_allows_self_approval_for_8h_where_production_allows_1h() -> None:
    dev = EligibilityFacts(grants={"alice@example.com": {SQL: SELF}})
    d = decide(facts(request=request(project="payments-dev", hours=8), eligibility=dev), NOW)
    assert d.state is State.READY
    assert (role(d).kind, role(d).rule) == (ApprovalKind.SELF, "dev self-service")
    assert role(d).resource_conditions == ("resource.name == 'own'",)

    d = decide(facts(request=request(hours=8), eligibility=dev), NOW)
    assert d.state is State.INVALID
    (problem,) = d.problems
    assert problem.code == ProblemCode.DURATION_TOO_LONG
    assert "of rule \"production databases\"" in problem.message
    assert (problem.path, problem.line) == ("requests/alice/req.yaml", 4)


def test_a_role_pattern_picks_the_rule_per_role() -> None:
    d = decide(facts(request=request(SQL_VIEWER, BQ)), NOW)
    assert role(d, SQL_VIEWER).rule == "production databases"  # roles/cloudsql.* fits
    assert role(d, BQ).rule is None
    assert [r.kind for r in d.roles] == [ApprovalKind.SELF, ApprovalKind.MULTI_PARTY]


FOLDER_POLICY = Policy(
    scope="organizations/123456789012",
    rules=(Rule("finance folder", RuleMatch(folders=(FOLDER,)),
                approval=RuleApproval(required=3),
                justification=RuleJustification("FIN-[0-9]+: .+", "A finance ticket")),),
)


def test_a_folder_rule_applies_by_the_projects_ancestry() -> None:
    d = decide(facts(review("bob"), policy=FOLDER_POLICY,
                     request=request(justification="FIN-7: audit")), NOW)
    assert (d.state, role(d).rule, role(d).needed) == (State.PENDING, "finance folder", 2)

    elsewhere = replace(ELIGIBILITY, ancestry=("folders/1", "organizations/123456789012"))
    d = decide(facts(review("bob"), policy=FOLDER_POLICY, eligibility=elsewhere), NOW)
    assert (d.state, role(d).rule) == (State.READY, None)


def test_a_folder_rules_justification_is_checked_once_the_ancestry_is_known() -> None:
    d = decide(facts(policy=FOLDER_POLICY), NOW)
    assert d.state is State.INVALID
    (problem,) = d.problems
    assert problem.code == ProblemCode.JUSTIFICATION_MISMATCH
    assert "A finance ticket" in problem.message
    assert (problem.path, problem.line) == ("requests/alice/req.yaml", 5)


def test_unknown_ancestry_is_an_error_when_a_folder_rule_may_apply() -> None:
    d = decide(facts(policy=FOLDER_POLICY, eligibility=replace(ELIGIBILITY, ancestry=None)), NOW)
    assert d.state is State.ERROR
    (problem,) = d.problems
    assert problem.code == ProblemCode.ANCESTRY_UNKNOWN
    assert "folders could not be read" in problem.message and SQL in problem.message
    # The top-level settings would not need it.
    d = decide(facts(policy=replace(FOLDER_POLICY, rules=()),
                     eligibility=replace(ELIGIBILITY, ancestry=None)), NOW)
    assert d.state is State.PENDING


def test_unknown_ancestry_does_not_hide_that_the_requester_is_not_eligible() -> None:
    nobody = EligibilityFacts()
    d = decide(facts(policy=FOLDER_POLICY, eligibility=nobody), NOW)
    assert d.state is State.NOT_ELIGIBLE
    assert role(d).settings is None


# --------------------------------------------------------------------------------------------
# Designated approvers and `peers: false`


def test_a_designated_approver_counts_and_a_non_peer_non_approver_does_not() -> None:
    d = decide(facts(review("lead"), review("dave", id=2), review("cto", id=3)), NOW)
    assert d.state is State.READY
    assert role(d).approvers == ("cto", "lead")
    assert role(d).reasons == (
        "@cto's approval counts: is a designated approver",
        "@dave's approval does not count: not a qualified peer or designated approver for "
        f"{SQL}",
        f"@lead's approval counts: is a designated approver (member of {LEADS})",
    )
    assert role(d).approver_logins == ("cto",)


def test_candidates_include_designated_approvers_and_group_members() -> None:
    d = decide(facts(review("bob")), NOW)
    assert d.state is State.PENDING
    # carol is a peer; cto a named approver; lead a member of db-leads; never alice or bob.
    assert d.candidate_reviewers == ("carol", "cto", "lead")


def test_with_peers_false_a_qualified_peer_does_not_count() -> None:
    only = replace(POLICY, rules=(replace(PRODUCTION, approval=replace(
        PRODUCTION.approval, required=1, peers=False)),))
    d = decide(facts(review("bob"), policy=only), NOW)
    assert d.state is State.PENDING
    assert role(d).reasons == (
        "@bob's approval does not count: a qualified peer, but only designated approvers "
        f"count for {SQL}",
    )
    assert d.candidate_reviewers == ("cto", "lead")  # no peer is asked
    assert decide(facts(review("lead"), policy=only), NOW).state is State.READY


def test_the_requester_never_counts_as_a_designated_approver() -> None:
    mine = replace(POLICY, rules=(replace(PRODUCTION, approval=replace(
        PRODUCTION.approval, required=1, approvers=("user:alice@example.com",))),))
    d = decide(facts(review("alice"), policy=mine), NOW)
    assert d.state is State.PENDING
    assert role(d).approver_logins == ()
    assert d.candidate_reviewers == ("bob", "carol")


# --------------------------------------------------------------------------------------------
# Veto


def test_a_qualified_reviewers_request_for_changes_vetoes() -> None:
    # bob's request for changes is on an older commit and days old: a veto nonetheless.
    old = review("bob", ReviewState.CHANGES_REQUESTED, commit=OLD, at=NOW - timedelta(days=9))
    d = decide(facts(old, review("carol", id=2), review("lead", id=3)), NOW)
    assert d.state is State.VETOED
    assert d.state.commit_status == "failure"
    assert role(d).vetoed_by == ("bob",)
    assert role(d).approvers == ("carol", "lead")  # approvals still count, the veto blocks
    assert [(p.code, p.message) for p in d.problems] == [
        (ProblemCode.VETOED, f"Vetoed by @bob ({SQL})"),
    ]
    assert "@bob requests changes: a veto (is a qualified peer)" in role(d).reasons


@pytest.mark.parametrize("later", [ReviewState.APPROVED, ReviewState.DISMISSED])
def test_the_veto_ends_when_the_reviewer_approves_or_the_review_is_dismissed(
    later: ReviewState,
) -> None:
    vetoing = review("bob", ReviewState.CHANGES_REQUESTED, at=NOW - timedelta(hours=2), id=1)
    ending = review("bob", later, at=NOW - timedelta(minutes=30), id=5)
    d = decide(facts(vetoing, ending, review("carol", id=2), review("lead", id=3)), NOW)
    assert d.state is State.READY
    assert role(d).vetoed_by == ()


def test_a_request_for_changes_by_a_non_qualified_reviewer_is_no_veto() -> None:
    d = decide(facts(review("dave", ReviewState.CHANGES_REQUESTED), review("carol", id=2),
                     review("lead", id=3)), NOW)
    assert d.state is State.READY
    assert role(d).vetoed_by == ()
    assert (
        "@dave's request for changes is no veto: not a qualified peer or designated approver "
        f"for {SQL}"
    ) in role(d).reasons


def test_the_requesters_own_request_for_changes_is_no_veto() -> None:
    d = decide(facts(review("alice", ReviewState.CHANGES_REQUESTED), review("carol", id=2),
                     review("lead", id=3)), NOW)
    assert d.state is State.READY


def test_a_designated_approver_vetoes_a_self_approval_role() -> None:
    d = decide(facts(review("cto", ReviewState.CHANGES_REQUESTED), request=request(SQL_VIEWER)),
               NOW)
    assert d.state is State.VETOED
    assert role(d, SQL_VIEWER).kind is ApprovalKind.SELF
    assert role(d, SQL_VIEWER).vetoed_by == ("cto",)


def test_without_veto_a_request_for_changes_only_withdraws_an_approval() -> None:
    d = decide(facts(review("bob", ReviewState.CHANGES_REQUESTED), request=request(BQ)), NOW)
    assert d.state is State.PENDING
    assert role(d, BQ).reasons == (
        "@bob's approval does not count: latest review requests changes",
    )


def test_not_eligible_wins_over_a_veto() -> None:
    d = decide(facts(review("bob", ReviewState.CHANGES_REQUESTED),
                     request=request(SQL, "roles/spanner.admin")), NOW)
    assert d.state is State.NOT_ELIGIBLE


def test_a_veto_rule_without_the_review_list_cannot_be_judged() -> None:
    d = decide(facts(request=request(SQL_VIEWER), reviews_complete=False), NOW)
    assert (d.state, d.problems[0].code) == (State.ERROR, ProblemCode.TOO_MANY_REVIEWS)


# --------------------------------------------------------------------------------------------
# Break-glass

GLASS = replace(POLICY, break_glass=BreakGlassSettings(
    enabled=True, max_duration=timedelta(hours=1),
    justification=JustificationSettings(r"(INC|SEV)-[0-9]+: .+", "An incident number"),
))


def test_break_glass_is_ready_without_approvals_and_asks_reviewers_after_the_fact() -> None:
    d = decide(facts(policy=GLASS, request=request(SQL, SQL_VIEWER, break_glass=True)), NOW)
    assert d.state is State.READY
    assert d.break_glass is True
    assert [(r.kind, r.needed) for r in d.roles] == [(ApprovalKind.BREAK_GLASS, 0)] * 2
    assert role(d, SQL_VIEWER).resource_conditions == ("resource.name == 'own'",)
    assert role(d, SQL).approvers == ()
    assert d.candidate_reviewers == ("bob", "carol", "cto", "lead")


def test_break_glass_still_needs_eligibility() -> None:
    d = decide(facts(policy=GLASS, request=request(SQL, "roles/spanner.admin", break_glass=True)),
               NOW)
    assert d.state is State.NOT_ELIGIBLE
    assert role(d, "roles/spanner.admin").kind is ApprovalKind.NONE


def test_break_glass_can_be_vetoed() -> None:
    d = decide(facts(review("lead", ReviewState.CHANGES_REQUESTED), policy=GLASS,
                     request=request(break_glass=True)), NOW)
    assert (d.state, d.break_glass) == (State.VETOED, True)


def test_break_glass_has_its_own_limits_and_must_be_enabled() -> None:
    d = decide(facts(policy=GLASS, request=request(hours=2, break_glass=True)), NOW)
    assert d.state is State.INVALID
    assert [p.code for p in d.problems] == [ProblemCode.DURATION_TOO_LONG]
    d = decide(facts(request=request(break_glass=True)), NOW)
    assert d.state is State.INVALID
    assert [p.code for p in d.problems] == [ProblemCode.BREAK_GLASS_DISABLED]
    assert d.break_glass is False


def test_top_level_settings_apply_when_no_rule_fits() -> None:
    plain = Policy("organizations/123456789012",
                   approval=ApprovalSettings(required=1, approvers=("user:cto@example.com",)))
    d = decide(facts(review("cto"), policy=plain), NOW)
    assert d.state is State.READY
    assert role(d).rule is None and role(d).approver_logins == ("cto",)
