"""The rule book of a merge and of publishing (`webhook.core.merge`): plain values, no fakes."""

from __future__ import annotations

import ast
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from webhook.core import audit_record as audit_events
from webhook.core.audit_record import AuditRecord
from webhook.core.merge import (
    NO_RECORDS,
    Activate,
    AlreadyActivated,
    AlreadyRefused,
    EarlierRecords,
    NotARequest,
    NotMerged,
    PublishPlan,
    Refuse,
    RetryLater,
    StatusUpdate,
    activation_bindings,
    activation_record,
    change_record,
    latest_is_approval,
    merge_action,
    publish_plan,
    records_needed,
    refusal_record,
    review_record,
    reviewers_to_request,
)
from webhook.core.model import (
    AccessRequest,
    ApprovalKind,
    ApprovalSettings,
    Binding,
    Decision,
    Identities,
    Policy,
    Problem,
    PullInfo,
    PullRequestRef,
    Review,
    ReviewState,
    RoleDecision,
    State,
)
from webhook.core.problems import ProblemCode
from webhook.core.render import status_comment, status_description

NOW = datetime(2040, 1, 1, 12, 0, tzinfo=UTC)
MERGED_AT = NOW - timedelta(minutes=10)
HEAD = "c0ffee" + "0" * 34
REPO = "acme/access"
URL = "https://github.com/acme/access/pull/7"
SQL = "roles/cloudsql.admin"
LOGS = "roles/logging.viewer"
WINDOW_2H = (
    '(request.time >= timestamp("2040-01-01T12:00:00Z") && '
    'request.time < timestamp("2040-01-01T14:00:00Z"))'
)

PR = PullRequestRef(REPO, 7, "alice", HEAD, URL)
REQUEST = AccessRequest("payments-prod", (SQL,), timedelta(hours=2), "INC-1234: fix")
IDENTITIES = Identities(
    {"alice": "alice@example.com", "bob": "bob@example.com", "carol": "carol@example.com"}
)
POLICY = Policy(scope="organizations/1", approval=ApprovalSettings(request_reviewers=2))

SELF_READY = Decision(
    State.READY, PR, request=REQUEST, requester="alice@example.com",
    roles=(RoleDecision(SQL, ApprovalKind.SELF),),
)
PENDING = Decision(
    State.PENDING, PR, request=REQUEST, requester="alice@example.com",
    roles=(RoleDecision(SQL, ApprovalKind.MULTI_PARTY, needed=1),),
    candidate_reviewers=("bob", "carol", "dave"),
)
APPROVED = Decision(
    State.READY, PR, request=replace(REQUEST, roles=(SQL, LOGS)), requester="alice@example.com",
    roles=(
        RoleDecision(SQL, ApprovalKind.MULTI_PARTY, approvers=("Bob", "carol")),
        RoleDecision(LOGS, ApprovalKind.SELF, resource_conditions=("resource.name == 'x'",)),
    ),
)


def pull(**changes: object) -> PullInfo:
    base = PullInfo(
        number=7, author="alice", head_sha=HEAD, base_ref="main", state="closed", merged=True,
        merged_at=MERGED_AT, html_url=URL, default_branch="main",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def act(
    decision: Decision | None = SELF_READY,
    pr: PullInfo | None = None,
    earlier: EarlierRecords = NO_RECORDS,
    *,
    max_delay: timedelta | None = timedelta(hours=1),
    now: datetime = NOW,
) -> object:
    return merge_action(
        decision, pr or pull(), earlier, max_delay=max_delay, now=now, identities=IDENTITIES
    )


def review(login: str, state: ReviewState, minute: int, review_id: int = 0) -> Review:
    return Review(review_id or minute, login, state, HEAD, NOW + timedelta(minutes=minute))


# ----------------------------------------------------------------------------------------------
# merge_action


def test_a_pr_that_is_no_request_activates_nothing() -> None:
    assert act(None) == NotARequest()


@pytest.mark.parametrize("changes", [{"merged": False}, {"merged_at": None}])
def test_a_pr_github_does_not_call_merged_activates_nothing(changes: dict[str, object]) -> None:
    assert act(pr=pull(**changes)) == NotMerged()


def test_a_ready_merge_activates_from_now_in_whole_seconds_for_the_requested_duration() -> None:
    action = act(now=NOW + timedelta(microseconds=999_999))

    assert action == Activate(
        bindings=(
            Binding(
                role=SQL,
                member="user:alice@example.com",
                title="JIT access activation",
                description="Self-approved, justification: INC-1234: fix (acme/access#7)",
                expression=WINDOW_2H,
            ),
        ),
        start=NOW,
        end=NOW + timedelta(hours=2),
    )


def test_each_binding_names_the_approvers_of_its_own_role_and_carries_its_conditions() -> None:
    action = act(APPROVED)

    assert isinstance(action, Activate)
    sql, logs = action.bindings
    assert sql.description == (
        "Approved by bob@example.com, carol@example.com, justification: INC-1234: fix "
        "(acme/access#7)"
    )
    assert sql.expression == WINDOW_2H
    assert logs.description == "Self-approved, justification: INC-1234: fix (acme/access#7)"
    assert logs.expression == f"{WINDOW_2H} && (resource.name == 'x')"


def test_an_earlier_activation_makes_a_repeated_merge_grant_nothing() -> None:
    assert act(earlier=EarlierRecords(activation_comment=True)) == AlreadyActivated()


def test_an_earlier_activation_wins_over_everything_the_merge_would_decide_now() -> None:
    """Checked before the decision: a grant stays a grant even if the policy changed since."""
    earlier = EarlierRecords(activation_comment=True, refusal_comment=True)
    assert act(PENDING, earlier=earlier) == AlreadyActivated()
    assert act(earlier=earlier, now=NOW + timedelta(days=9)) == AlreadyActivated()


def test_a_refusal_is_final_even_when_the_request_is_ready_now() -> None:
    assert act(SELF_READY, earlier=EarlierRecords(refusal_comment=True)) == AlreadyRefused()


def test_earlier_records_say_decided_by_any_source() -> None:
    assert not NO_RECORDS.activated and not NO_RECORDS.refused
    assert EarlierRecords(activation_comment=True).activated
    assert EarlierRecords(refusal_comment=True).refused
    assert not EarlierRecords(refusal_comment=True).activated


def test_an_eligibility_outage_is_retried_not_refused() -> None:
    decision = Decision(
        State.ERROR, PR, request=REQUEST, requester="alice@example.com",
        problems=(
            Problem(ProblemCode.SERVICE_ERROR, "Google Cloud: quota exceeded"),
            Problem(ProblemCode.SERVICE_ERROR, "Google Cloud: deadline"),
        ),
    )
    assert act(decision) == RetryLater(
        "eligibility could not be checked: Google Cloud: quota exceeded; Google Cloud: deadline"
    )


def test_a_policy_error_is_refused() -> None:
    decision = Decision(
        State.ERROR, PR, problems=(Problem(ProblemCode.POLICY_MISSING, "no policy"),)
    )
    assert act(decision) == Refuse(
        "the request was not ready when merged (Policy error: see comment)"
    )


@pytest.mark.parametrize(
    "decision",
    [
        PENDING,
        Decision(State.INVALID, PR, problems=(Problem(ProblemCode.EMPTY, "the file is empty"),)),
        Decision(State.NOT_ELIGIBLE, PR, request=REQUEST,
                 roles=(RoleDecision(SQL, ApprovalKind.NONE),)),
    ],
    ids=["pending", "invalid", "not-eligible"],
)
def test_a_merge_that_was_not_ready_is_refused(decision: Decision) -> None:
    assert act(decision) == Refuse(
        f"the request was not ready when merged ({status_description(decision)})"
    )


def test_a_merge_older_than_max_delay_is_refused() -> None:
    action = act(now=MERGED_AT + timedelta(hours=1, seconds=1))

    assert action == Refuse(
        "the merge at 2040-01-01T11:50:00Z is older than activation.max_delay (1h); open a new "
        "request"
    )


def test_a_merge_exactly_max_delay_old_still_activates() -> None:
    assert isinstance(act(now=MERGED_AT + timedelta(hours=1)), Activate)


def test_without_a_policy_there_is_no_delay_limit() -> None:
    assert isinstance(act(max_delay=None, now=MERGED_AT + timedelta(days=30)), Activate)


def test_records_are_needed_only_for_a_merged_request() -> None:
    assert records_needed(SELF_READY, pull())
    assert not records_needed(None, pull())
    assert not records_needed(SELF_READY, pull(merged=False))
    assert not records_needed(SELF_READY, pull(merged_at=None))


def test_only_a_decision_with_a_request_can_be_turned_into_bindings() -> None:
    with pytest.raises(ValueError):
        activation_bindings(replace(SELF_READY, request=None), IDENTITIES, NOW, NOW)


# ----------------------------------------------------------------------------------------------
# publish_plan


def test_a_pending_request_publishes_its_comment_status_and_review_requests() -> None:
    record = AuditRecord(audit_events.REQUEST_ROLE)

    plan = publish_plan(
        PENDING, pull(state="open", merged=False, merged_at=None), policy=POLICY, reviews=(),
        request_reviews=True, audit=record,
    )

    assert plan == PublishPlan(
        comment=status_comment(PENDING),
        status=StatusUpdate(
            "pending", "Waiting for 1 approval (roles/cloudsql.admin)", URL,
            summary=status_comment(PENDING),  # a check run's summary: the comment's content
        ),
        reviewers=("bob", "carol"),  # approval.request_reviewers: 2
        audit=record,
    )


@pytest.mark.parametrize(
    ("decision", "state"),
    [
        (SELF_READY, "success"),
        (Decision(State.INVALID, PR, problems=(Problem(ProblemCode.EMPTY, "empty"),)), "failure"),
        (Decision(State.ERROR, PR, problems=(Problem(ProblemCode.SERVICE_ERROR, "x"),)), "error"),
    ],
)
def test_every_other_state_sets_its_status_and_asks_nobody(decision: Decision, state: str) -> None:
    plan = publish_plan(decision, pull(), policy=POLICY, reviews=(), request_reviews=True)

    assert plan.status == StatusUpdate(
        state, status_description(decision), URL, summary=status_comment(decision)
    )
    assert plan.reviewers == ()
    assert plan.audit is None


def test_a_request_in_someone_elses_directory_sets_no_status() -> None:
    """It may share the owner's head commit; its status would overwrite the owner's."""
    decision = Decision(
        State.INVALID, PR,
        problems=(Problem(ProblemCode.WRONG_DIRECTORY, "requests/bob/x.yaml is bob's"),),
    )

    plan = publish_plan(decision, pull(), policy=POLICY, reviews=(), request_reviews=True)

    assert plan.status is None
    assert plan.comment == status_comment(decision)


def test_a_pr_without_a_url_sets_a_status_without_a_link() -> None:
    plan = publish_plan(SELF_READY, pull(html_url=""), policy=POLICY, reviews=(),
                        request_reviews=True)
    assert plan.status is not None and plan.status.target_url is None


@pytest.mark.parametrize(
    ("policy", "request_reviews"), [(None, True), (POLICY, False)], ids=["no-policy", "not-asked"]
)
def test_reviews_are_requested_only_when_asked_and_with_a_policy(
    policy: Policy | None, request_reviews: bool
) -> None:
    plan = publish_plan(PENDING, pull(), policy=policy, reviews=(),
                        request_reviews=request_reviews)
    assert plan.reviewers == ()


def test_reviewers_asked_or_reviewing_are_not_asked_again_and_requests_stay_capped() -> None:
    reviews = (review("Carol", ReviewState.COMMENTED, 1),)
    policy = Policy(scope="organizations/1", approval=ApprovalSettings(request_reviewers=3))

    assert reviewers_to_request(PENDING, pull(requested_reviewers=("BOB",)), policy, reviews) == (
        "dave",
    )
    assert reviewers_to_request(
        PENDING, pull(requested_reviewers=("x", "y", "z", "w")), policy, ()
    ) == ()


# ----------------------------------------------------------------------------------------------
# Audit records


def test_opening_a_request_that_can_be_granted_is_audited_as_a_request() -> None:
    record = change_record(APPROVED, pull(), IDENTITIES, "d-1", opened=True)

    assert record == AuditRecord(
        event=audit_events.REQUEST_ROLE,
        user="alice@example.com",
        project="payments-prod",
        roles=(SQL, LOGS),
        justification="INC-1234: fix",
        reviewers=("bob@example.com", "carol@example.com"),
        pull_request=URL,
        commit=HEAD,
        delivery_id="d-1",
        message="gitops.requestRole for acme/access#7",
    )
    assert change_record(PENDING, pull(), IDENTITIES, "d-1", opened=True) is not None


def test_pushes_and_requests_that_cannot_be_granted_are_not_audited_as_requests() -> None:
    invalid = Decision(State.INVALID, PR, problems=(Problem(ProblemCode.EMPTY, "empty"),))
    assert change_record(PENDING, pull(), IDENTITIES, "d-1", opened=False) is None
    assert change_record(invalid, pull(), IDENTITIES, "d-1", opened=True) is None
    assert change_record(None, pull(), IDENTITIES, "d-1", opened=True) is None


def test_a_counted_approval_is_audited() -> None:
    reviews = (review("bob", ReviewState.APPROVED, 1),)

    record = review_record(APPROVED, pull(), IDENTITIES, reviews, "d-2", "BOB")

    assert record is not None
    assert record.event == audit_events.APPROVE_ROLE
    assert record.message == "@BOB approved acme/access#7"
    assert record.reviewers == ("bob@example.com", "carol@example.com")
    assert record.delivery_id == "d-2"


def test_a_comment_after_an_approval_is_no_new_approval() -> None:
    reviews = (review("bob", ReviewState.APPROVED, 1), review("bob", ReviewState.COMMENTED, 2))
    assert review_record(APPROVED, pull(), IDENTITIES, reviews, "d", "bob") is None


def test_a_pending_review_does_not_hide_the_approval() -> None:
    reviews = (review("bob", ReviewState.APPROVED, 1), review("bob", ReviewState.PENDING, 2))
    assert latest_is_approval(reviews, "bob")


@pytest.mark.parametrize("reviewer", [None, "", "dave", "alice"])
def test_reviews_whose_approval_does_not_count_are_not_audited(reviewer: str | None) -> None:
    reviews = tuple(
        review(login, ReviewState.APPROVED, n + 1) for n, login in enumerate(["dave", "alice"])
    )
    assert review_record(APPROVED, pull(), IDENTITIES, reviews, "d", reviewer) is None
    assert review_record(None, pull(), IDENTITIES, reviews, "d", "bob") is None


def test_a_refusal_is_audited_at_the_merge_with_one_id_per_head() -> None:
    record = refusal_record(PENDING, pull(), IDENTITIES, "d-3", "it was not ready")

    assert record.event == audit_events.REFUSE_ACTIVATION
    assert record.message == "Refused: it was not ready"
    assert record.timestamp == MERGED_AT
    assert record.insert_id == f"refuse:acme/access#7@{HEAD}"
    assert record.activation_start is None and record.activation_end is None


def test_an_activation_is_audited_with_its_window_dated_at_its_start() -> None:
    start, end = NOW - timedelta(minutes=3), NOW + timedelta(hours=1)

    record = activation_record(APPROVED, pull(), IDENTITIES, "d-4", start=start, end=end)

    assert record == AuditRecord(
        event=audit_events.ACTIVATE_ROLE,
        user="alice@example.com",
        project="payments-prod",
        roles=(SQL, LOGS),
        justification="INC-1234: fix",
        activation_start=start,
        activation_end=end,
        reviewers=("bob@example.com", "carol@example.com"),
        pull_request=URL,
        commit=HEAD,
        delivery_id="d-4",
        message=(
            "alice@example.com activated roles/cloudsql.admin, roles/logging.viewer on "
            "payments-prod until 2040-01-01T13:00:00Z (acme/access#7)"
        ),
        timestamp=start,
        insert_id=f"activate:acme/access#7@{HEAD}",
    )


# ----------------------------------------------------------------------------------------------
# The rule book stays pure


@pytest.mark.parametrize("module", ["merge", "ports", "problems", "records"])
def test_the_rule_book_imports_only_the_standard_library_and_the_core(module: str) -> None:
    source = Path(__file__).parents[2] / "webhook" / "core" / f"{module}.py"
    tree = ast.parse(source.read_text(encoding="utf-8"))
    imported = {
        name
        for node in ast.walk(tree)
        for name in (
            [a.name for a in node.names] if isinstance(node, ast.Import)
            else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
        )
    }
    stdlib = {"__future__", "collections.abc", "dataclasses", "datetime", "enum", "re", "typing"}
    assert all(m in stdlib or m.startswith("webhook.core") for m in imported), imported
