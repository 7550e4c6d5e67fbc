"""The pure rules of break-glass audit and after-the-fact review (webhook.core.break_glass)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from webhook.core import audit_record as events
from webhook.core.break_glass import (
    REVIEWED_MARKER,
    UNREVIEWED_MARKER,
    BreakGlassEntry,
    Overdue,
    approval_after_merge,
    approver_groups,
    lookback,
    overdue,
    pull_number,
    record_of,
    review_question,
    review_record,
    reviewed_comment,
    unreviewed_comment,
    unreviewed_record,
)
from webhook.core.decide import qualified_roles
from webhook.core.merge import activation_record, refusal_record
from webhook.core.model import (
    AccessRequest,
    ApprovalKind,
    ApprovalSettings,
    Decision,
    EligibilityFacts,
    Identities,
    Policy,
    PullInfo,
    PullRequestRef,
    Review,
    ReviewState,
    RoleDecision,
    RoleEligibility,
    RoleSettings,
    Rule,
    RuleApproval,
    RuleMatch,
    State,
)

NOW = datetime(2040, 1, 2, 12, 0, tzinfo=UTC)
URL = "https://github.com/acme/access/pull/7"
OTHER_URL = "https://github.com/acme/access/pull/8"
SQL = "roles/cloudsql.admin"
LOGS = "roles/logging.viewer"
DAY = timedelta(hours=24)
START = NOW - timedelta(hours=30)


def activation(url: str = URL, *, at: datetime = START, glass: bool = True) -> BreakGlassEntry:
    return BreakGlassEntry(
        event=events.ACTIVATE_ROLE, pull_request=url, timestamp=at, insert_id=f"activate:{url}",
        user="alice@example.com", project="payments-prod", roles=(SQL, LOGS),
        rules=("databases", "default"), justification="INC-1: down", start=at,
        end=at + timedelta(hours=1), commit="c" * 40, break_glass=glass,
    )


def entry(event: str, url: str = URL, at: datetime = START + timedelta(hours=1)) -> BreakGlassEntry:
    return BreakGlassEntry(event=event, pull_request=url, timestamp=at, insert_id=event,
                           break_glass=True)


# ----------------------------------------------------------------------------------------------
# Which PRs are unreviewed


def test_an_activation_past_its_review_window_without_review_is_overdue() -> None:
    found = overdue([activation()], DAY, NOW)

    assert found == (Overdue(activation(), START + DAY),)


def test_an_activation_still_within_its_review_window_is_not_overdue() -> None:
    assert overdue([activation(at=NOW - timedelta(hours=23))], DAY, NOW) == ()
    # Exactly at the deadline it is due.
    assert len(overdue([activation(at=NOW - DAY)], DAY, NOW)) == 1


def test_a_reviewed_or_already_reported_activation_is_not_reported_again() -> None:
    assert overdue([activation(), entry(events.REVIEW_BREAK_GLASS)], DAY, NOW) == ()
    assert overdue([activation(), entry(events.BREAK_GLASS_UNREVIEWED)], DAY, NOW) == ()


def test_a_review_of_another_pr_reviews_nothing_here() -> None:
    found = overdue([activation(), entry(events.REVIEW_BREAK_GLASS, OTHER_URL)], DAY, NOW)

    assert [o.activation.pull_request for o in found] == [URL]


def test_pr_urls_are_compared_without_case_or_trailing_slash() -> None:
    review = entry(events.REVIEW_BREAK_GLASS, URL.upper() + "/")
    assert overdue([activation(), review], DAY, NOW) == ()


def test_an_activation_without_the_break_glass_label_is_no_break_glass_activation() -> None:
    assert overdue([activation(glass=False)], DAY, NOW) == ()
    assert record_of([activation(glass=False)], URL).activation is None


def test_the_earliest_activation_entry_stands_for_the_pr_and_overdue_ones_come_oldest_first(
) -> None:
    later = activation(at=START + timedelta(hours=2))
    other = activation(OTHER_URL, at=START - timedelta(hours=1))

    found = overdue([later, activation(), other], DAY, NOW)

    assert [(o.activation.pull_request, o.deadline) for o in found] == [
        (OTHER_URL, START - timedelta(hours=1) + DAY), (URL, START + DAY),
    ]


def test_the_cleanups_read_reaches_back_30_days_or_past_a_longer_review_window() -> None:
    assert lookback(DAY, NOW) == NOW - timedelta(days=30)
    assert lookback(timedelta(days=40), NOW) == NOW - timedelta(days=41)


@pytest.mark.parametrize(("url", "number"), [
    ("https://github.com/acme/access/pull/7", 7),
    ("https://GHE.example.com/ACME/Access/pull/12/", 12),
    ("https://github.com/acme/other/pull/7", None),
    ("https://github.com/evil-acme/access/pull/7", None),
    ("https://github.com/acme/access/issues/7", None),
    ("https://github.com/acme/access/pull/x", None),
    ("", None),
])
def test_only_prs_of_the_repository_served_are_reported(url: str, number: int | None) -> None:
    assert pull_number(url, "acme/access") == number


# ----------------------------------------------------------------------------------------------
# Records


def test_the_review_entry_carries_the_activations_labels_and_the_reviewer() -> None:
    at = NOW.replace(microsecond=123)

    record = review_record(
        activation(), reviewer="bob@example.com", reviewer_login="bob",
        pr_reference="acme/access#7", delivery_id="d-9", at=at,
    )

    assert record.effective_severity == "NOTICE"
    assert record.timestamp == NOW
    assert record.insert_id == "review-break-glass:acme/access#7"
    assert record.labels() == {
        "event": "gitops.reviewBreakGlass",
        "user": "alice@example.com",
        "project": "payments-prod",
        "role": f"{SQL},{LOGS}",
        "justification": "INC-1: down",
        "activation_start": "2040-01-01T06:00:00Z",
        "activation_end": "2040-01-01T07:00:00Z",
        "reviewers": "bob@example.com",
        "pull_request": URL,
        "commit": "c" * 40,
        "delivery_id": "d-9",
        "rule": "databases,default",
        "break_glass": "true",
    }
    assert "@bob (bob@example.com) reviewed" in record.payload()["message"]


def test_the_unreviewed_entry_is_a_warning_dated_at_the_deadline_each_run() -> None:
    item = overdue([activation()], DAY, NOW)[0]

    first = unreviewed_record(item, pr_reference="acme/access#7", review_within=DAY, now=NOW)
    again = unreviewed_record(item, pr_reference="acme/access#7", review_within=DAY,
                              now=NOW + timedelta(minutes=15))

    assert first == again
    assert first.effective_severity == "WARNING"
    assert first.timestamp == START + DAY
    assert first.insert_id == "break-glass-unreviewed:acme/access#7"
    labels = first.labels()
    assert labels["event"] == "gitops.breakGlassUnreviewed"
    assert labels["break_glass"] == "true"
    assert labels["reviewers"] == ""
    assert labels["role"] == f"{SQL},{LOGS}" and labels["rule"] == "databases,default"


def test_an_unreviewed_entry_whose_deadline_logging_would_refuse_is_dated_now() -> None:
    item = Overdue(activation(at=NOW - timedelta(days=5)), NOW - timedelta(days=4))

    record = unreviewed_record(item, pr_reference="acme/access#7", review_within=DAY, now=NOW)

    assert record.timestamp == NOW


PR = PullRequestRef("acme/access", 7, "alice", "c" * 40, URL)
PULL = PullInfo(7, "alice", "c" * 40, "main", "closed", True, NOW, URL, default_branch="main")
REQUEST = AccessRequest("payments-prod", (SQL, LOGS), timedelta(hours=1), "INC-1: down",
                        break_glass=True)
TOP = RoleSettings(LOGS, None, timedelta(hours=2), Policy(scope="x").justification,
                   ApprovalSettings())
DB = replace(TOP, role=SQL, rule="databases")


def decision(*, glass: bool) -> Decision:
    return Decision(
        State.READY, PR, request=REQUEST, requester="alice@example.com", break_glass=glass,
        roles=(
            RoleDecision(SQL, ApprovalKind.BREAK_GLASS if glass else ApprovalKind.SELF,
                         settings=DB),
            RoleDecision(LOGS, ApprovalKind.BREAK_GLASS if glass else ApprovalKind.SELF,
                         settings=TOP),
        ),
    )


def test_a_break_glass_activation_entry_is_an_alert_with_its_label_and_rules() -> None:
    record = activation_record(decision(glass=True), PULL, Identities(), "d", start=NOW,
                               end=NOW + timedelta(hours=1))

    assert record.effective_severity == "ALERT"
    labels = record.labels()
    assert labels["break_glass"] == "true"
    assert labels["rule"] == "databases,default"
    assert "BREAK-GLASS" in record.payload()["message"]


def test_an_ordinary_activation_entry_names_its_rules_and_has_no_break_glass_label() -> None:
    record = activation_record(decision(glass=False), PULL, Identities(), "d", start=NOW,
                               end=NOW + timedelta(hours=1))

    assert record.effective_severity == "NOTICE"
    assert "break_glass" not in record.labels()
    assert record.labels()["rule"] == "databases,default"


def test_a_refusal_entry_names_the_rules_and_stays_a_warning() -> None:
    record = refusal_record(decision(glass=True), PULL, Identities(), "d", "late")

    assert record.effective_severity == "WARNING"
    assert record.labels()["rule"] == "databases,default"


def test_a_comma_in_a_rules_name_does_not_add_an_item_to_the_label() -> None:
    record = events.AuditRecord(event=events.ACTIVATE_ROLE, roles=(SQL, LOGS),
                                rules=("db, prod", "default"))

    assert record.labels()["rule"] == "db  prod,default"


# ----------------------------------------------------------------------------------------------
# Who may review


def review(login: str, state: ReviewState, at: datetime, rid: int = 1) -> Review:
    return Review(rid, login, state, "c" * 40, at)


def test_only_an_approval_given_after_the_merge_reviews_the_activation() -> None:
    merged = NOW - timedelta(hours=1)
    after = review("bob", ReviewState.APPROVED, NOW, 2)

    assert approval_after_merge([after], "BOB", merged) == after
    assert approval_after_merge(
        [review("bob", ReviewState.APPROVED, merged - timedelta(minutes=1))], "bob", merged
    ) is None
    # A later "request changes" takes the approval back; a comment does not.
    assert approval_after_merge(
        [after, review("bob", ReviewState.CHANGES_REQUESTED, NOW + timedelta(minutes=1), 3)],
        "bob", merged,
    ) is None
    assert approval_after_merge(
        [after, review("bob", ReviewState.COMMENTED, NOW + timedelta(minutes=1), 3)],
        "bob", merged,
    ) == after
    assert approval_after_merge([after], "carol", merged) is None


DB_RULE = Rule(
    name="databases", match=RuleMatch(roles=("roles/cloudsql.*",)),
    approval=RuleApproval(approvers=("group:db-leads@example.com", "user:cto@example.com"),
                          peers=False),
)
POLICY = Policy(scope="organizations/1", rules=(DB_RULE,))


def facts(**grants: dict[str, RoleEligibility]) -> EligibilityFacts:
    return EligibilityFacts(grants={k.replace("_", "@") + ".com": v for k, v in grants.items()})


MULTI = RoleEligibility(multi_party=True)


def test_a_qualified_peer_qualifies_for_a_role_whose_rule_allows_peers() -> None:
    eligible = facts(bob_example={LOGS: MULTI, SQL: MULTI})

    # SQL's rule says peers: false — only LOGS counts.
    assert qualified_roles(POLICY, REQUEST, eligible, reviewer="bob@example.com",
                           requester="alice@example.com") == (LOGS,)


def test_designated_approvers_qualify_by_identity_or_group_membership() -> None:
    member = EligibilityFacts(memberships={"dan@example.com": frozenset({
        "group:db-leads@example.com"})})

    assert qualified_roles(POLICY, REQUEST, member, reviewer="dan@example.com",
                           requester="alice@example.com") == (SQL,)
    assert qualified_roles(POLICY, REQUEST, EligibilityFacts(), reviewer="CTO@example.com",
                           requester="alice@example.com") == (SQL,)


def test_nobody_else_and_never_the_requester_qualifies() -> None:
    eligible = facts(alice_example={LOGS: MULTI})
    assert qualified_roles(POLICY, REQUEST, eligible, reviewer="alice@example.com",
                           requester="ALICE@example.com") == ()
    assert qualified_roles(POLICY, REQUEST, EligibilityFacts(), reviewer="eve@example.com",
                           requester="alice@example.com") == ()
    # Self-approval eligibility is no qualification to review.
    selfish = facts(eve_example={LOGS: RoleEligibility(self_approval=True)})
    assert qualified_roles(POLICY, REQUEST, selfish, reviewer="eve@example.com",
                           requester="alice@example.com") == ()


def test_a_role_whose_rule_depends_on_unknown_folders_counts_for_nobody() -> None:
    folder_rule = Rule(name="prod", match=RuleMatch(folders=("folders/1",)))
    policy = Policy(scope="organizations/1", rules=(folder_rule,))
    eligible = facts(bob_example={LOGS: MULTI})

    assert qualified_roles(policy, REQUEST, eligible, reviewer="bob@example.com",
                           requester="alice@example.com") == ()
    known = replace(eligible, ancestry=("folders/2", "organizations/1"))
    assert qualified_roles(policy, REQUEST, known, reviewer="bob@example.com",
                           requester="alice@example.com") == (LOGS,)


def test_the_question_asks_about_the_reviewer_only_with_the_approver_groups() -> None:
    question = review_question(POLICY, REQUEST, requester="Alice@example.com",
                               reviewer="Bob@example.com")

    assert question.requester == "alice@example.com"
    assert question.reviewers == ("bob@example.com",)
    assert question.vetoers == ("bob@example.com",)
    assert question.veto_roles == (SQL, LOGS)
    assert question.peers is False
    assert question.approver_groups == ("group:db-leads@example.com",)
    assert question.ancestry is False
    assert approver_groups(Policy(scope="organizations/1"), REQUEST) == ()


# ----------------------------------------------------------------------------------------------
# Comments


def test_the_review_comment_names_the_reviewer_behind_its_marker() -> None:
    body = reviewed_comment("bob", (SQL,), "payments-prod")

    assert body.startswith(REVIEWED_MARKER + "\n")
    assert "@bob reviewed this break-glass activation after the fact" in body


def test_the_unreviewed_comment_says_when_it_was_due_and_stays_inert() -> None:
    item = Overdue(replace(activation(), roles=("roles/x <!-- jit-access:status -->",)),
                   START + DAY)

    body = unreviewed_comment(item, DAY)

    assert body.startswith(UNREVIEWED_MARKER + "\n")
    assert "not reviewed within 1d" in body or "not reviewed within 24h" in body
    assert "2040-01-02T06:00:00Z" in body
    assert body.count("<!--") == 1
