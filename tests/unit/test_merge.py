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
    WRITER_BUDGET,
    Activate,
    AlreadyActivated,
    AlreadyRefused,
    EarlierRecords,
    LookUpBindings,
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
    status_belongs_to,
)
from webhook.core.model import (
    AccessRequest,
    ApprovalKind,
    ApprovalSettings,
    Binding,
    ChangedFile,
    Decision,
    Identities,
    Policy,
    Problem,
    PrShape,
    PullInfo,
    PullRequestRef,
    Review,
    ReviewState,
    RoleDecision,
    State,
)
from webhook.core.ports import AuditedDecision
from webhook.core.problems import ProblemCode
from webhook.core.render import status_comment, status_description
from webhook.core.request_file import check_pr_shape

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
#: The shape of a PR adding one file in its author's own directory (alice's).
OWN = check_pr_shape((ChangedFile("requests/alice/x.yaml", "added"),), "alice", "main", "main")
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


#: IAM was looked at and holds no activation of the PR.
LOOKED_UP = EarlierRecords(bindings=())


START = MERGED_AT + timedelta(seconds=30)
END = START + timedelta(hours=2)
GRANTED = AuditedDecision(
    audit_events.ACTIVATE_ROLE, HEAD, START, f"activate:acme/access#7@{HEAD}", START, END,
    "alice@example.com activated roles/cloudsql.admin",
)
REFUSED = AuditedDecision(
    audit_events.REFUSE_ACTIVATION, HEAD, MERGED_AT, f"refuse:acme/access#7@{HEAD}",
    message="Refused: the request was not ready when merged",
)
GRANTED_BINDING = Binding(
    SQL, "user:alice@example.com", "JIT access activation",
    "Self-approved, justification: INC-1234: fix (acme/access#7)",
    '(request.time >= timestamp("2040-01-01T11:50:30Z") && '
    'request.time < timestamp("2040-01-01T13:50:30Z"))',
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


def test_earlier_records_count_the_audit_log_and_the_binding_too() -> None:
    assert EarlierRecords(audited=(GRANTED,)).activated
    assert EarlierRecords(bindings=(GRANTED_BINDING,)).activated
    assert not EarlierRecords(bindings=()).activated
    assert EarlierRecords(audited=(REFUSED,)).refused
    assert EarlierRecords(audited=(REFUSED, GRANTED)).activation_entry == GRANTED
    assert EarlierRecords(audited=(GRANTED,)).refusal_entry is None


def test_an_audited_grant_whose_comment_is_gone_grants_nothing_and_comments_again() -> None:
    """The comment was deleted (or its POST failed) and the binding expired: the audit log
    alone says it was granted."""
    action = act(PENDING, earlier=EarlierRecords(audited=(GRANTED,)), now=NOW + timedelta(hours=3))

    assert action == AlreadyActivated(START, END, post_comment=True)


def test_an_audited_grant_with_its_comment_needs_nothing() -> None:
    earlier = EarlierRecords(activation_comment=True, audited=(GRANTED,))
    assert act(earlier=earlier, now=NOW + timedelta(hours=3)) == AlreadyActivated(START, END)


def test_an_audited_grant_for_another_commit_of_the_pr_still_counts() -> None:
    """A PR merges once: any grant recorded for it decides its merge."""
    other = replace(GRANTED, commit="feed" * 10)
    assert isinstance(act(earlier=EarlierRecords(audited=(other,))), AlreadyActivated)


def test_a_record_younger_than_the_writers_budget_is_left_to_its_writer() -> None:
    """Another instance may be posting the comment right now: posting too would notify twice."""
    just_now = START + WRITER_BUDGET - timedelta(seconds=1)

    action = act(earlier=EarlierRecords(audited=(GRANTED,)), now=just_now)

    assert action == AlreadyActivated(START, END, writer_until=START + WRITER_BUDGET)
    assert act(
        earlier=EarlierRecords(audited=(GRANTED,)), now=START + WRITER_BUDGET
    ) == AlreadyActivated(START, END, post_comment=True)


def test_a_binding_without_its_audit_entry_gets_the_entry_and_the_comment() -> None:
    """Its writer died between the IAM write and the audit entry: no access without a record."""
    earlier = EarlierRecords(bindings=(GRANTED_BINDING,))

    action = act(earlier=earlier, now=START + timedelta(minutes=5))

    assert action == AlreadyActivated(START, END, write_record=True, post_comment=True)


def test_a_binding_just_written_by_another_delivery_is_left_to_it() -> None:
    earlier = EarlierRecords(bindings=(GRANTED_BINDING,))

    action = act(earlier=earlier, now=START + timedelta(seconds=3))

    assert action == AlreadyActivated(START, END, writer_until=START + WRITER_BUDGET)


def test_a_binding_found_while_the_log_is_unreadable_gets_no_entry_written() -> None:
    earlier = EarlierRecords(bindings=(GRANTED_BINDING,), log_error="503")

    action = act(earlier=earlier, now=START + timedelta(minutes=5))

    assert action == AlreadyActivated(START, END, post_comment=True)


def test_a_grant_that_cannot_be_rendered_again_is_only_recognised() -> None:
    """Without a request (the policy changed and the file no longer parses) neither the entry
    nor the comment can say what was granted; the grant still stands as a grant."""
    invalid = Decision(State.INVALID, PR, problems=(Problem(ProblemCode.EMPTY, "empty"),))
    earlier = EarlierRecords(bindings=(GRANTED_BINDING,))

    assert act(invalid, earlier=earlier, now=START + timedelta(hours=1)) == AlreadyActivated(
        START, END
    )


def test_an_audited_refusal_is_final_and_its_missing_comment_is_posted_again() -> None:
    action = act(SELF_READY, earlier=EarlierRecords(audited=(REFUSED,)))
    assert action == AlreadyRefused("the request was not ready when merged", post_comment=True)

    with_comment = EarlierRecords(refusal_comment=True, audited=(REFUSED,))
    assert act(earlier=with_comment) == AlreadyRefused("the request was not ready when merged")


def test_an_activation_wins_over_a_refusal_in_the_log() -> None:
    action = act(earlier=EarlierRecords(audited=(REFUSED, GRANTED)), now=NOW + timedelta(hours=3))
    assert isinstance(action, AlreadyActivated)


def test_an_unreadable_audit_log_is_no_decision() -> None:
    earlier = EarlierRecords(log_error="Cloud Logging answered 429: quota")

    assert act(earlier=earlier) == RetryLater(
        "the audit log could not be read: Cloud Logging answered 429: quota"
    )
    assert act(PENDING, earlier=earlier) == RetryLater(
        "the audit log could not be read: Cloud Logging answered 429: quota"
    )
    # The service's own comment is record enough to grant nothing.
    assert act(earlier=replace(earlier, activation_comment=True)) == AlreadyActivated()
    assert act(earlier=replace(earlier, refusal_comment=True)) == AlreadyRefused()


def test_a_refusal_first_asks_to_look_for_a_binding_an_earlier_delivery_left() -> None:
    assert act(PENDING) == LookUpBindings("payments-prod")
    assert act(now=MERGED_AT + timedelta(hours=2)) == LookUpBindings("payments-prod")
    # Found one: the merge was granted and the refusal would contradict it.
    found = EarlierRecords(bindings=(GRANTED_BINDING,))
    assert act(PENDING, earlier=found, now=START + timedelta(hours=2)) == AlreadyActivated(
        START, END, write_record=True, post_comment=True
    )
    # Nothing to look up without a request: there is no project.
    no_request = Decision(State.INVALID, PR, problems=(Problem(ProblemCode.EMPTY, "empty"),))
    assert isinstance(act(no_request), Refuse)


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
    assert act(decision, earlier=LOOKED_UP) == Refuse(
        f"the request was not ready when merged ({status_description(decision)})"
    )


def test_a_merge_older_than_max_delay_is_refused() -> None:
    action = act(now=MERGED_AT + timedelta(hours=1, seconds=1), earlier=LOOKED_UP)

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
        PENDING, pull(state="open", merged=False, merged_at=None), shape=OWN, policy=POLICY,
        reviews=(), request_reviews=True, audit=record,
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
    plan = publish_plan(decision, pull(), shape=OWN, policy=POLICY, reviews=(),
                        request_reviews=True)

    assert plan.status == StatusUpdate(
        state, status_description(decision), URL, summary=status_comment(decision)
    )
    assert plan.reviewers == ()
    assert plan.audit is None


def shape_of(*files: ChangedFile, author: str = "alice", base: str = "main") -> PrShape:
    return check_pr_shape(files, author, base, "main")


@pytest.mark.parametrize(
    ("files", "author", "base"),
    [
        # Filed under somebody else's directory: the only way into the default branch to share
        # a request's commit (every PR from a commit into one branch sees the same diff).
        ((ChangedFile("requests/bob/x.yaml", "added"),), "alice", "main"),
        # Into another branch: against it, the owner's request can look edited or removed.
        ((ChangedFile("requests/alice/x.yaml", "modified"),), "alice", "stale"),
        ((ChangedFile("requests/alice/x.yaml", "added"),), "alice", "release"),
        # Touching existing requests (perhaps somebody else's), whatever else it adds.
        ((ChangedFile("requests/alice/x.yaml", "modified"),), "alice", "main"),
        ((ChangedFile("requests/bob/x.yaml", "removed"),), "alice", "main"),
        ((ChangedFile("requests/alice/y.yaml", "renamed", "requests/bob/x.yaml"),),
         "alice", "main"),
        ((ChangedFile("requests/alice/new.yaml", "added"),
          ChangedFile("requests/alice/old.yaml", "modified")), "alice", "main"),
        # In nobody's directory, or by an author no directory can belong to.
        ((ChangedFile("requests/x.yaml", "added"),), "alice", "main"),
        ((ChangedFile("requests/alice/../bob/x.yaml", "added"),), "alice", "main"),
        ((ChangedFile("requests/alice/x.yaml", "added"),), "alice[bot]", "main"),
    ],
    ids=["other-directory", "modified-against-stale", "other-base", "edit", "delete", "rename",
         "add-and-edit", "no-directory", "dot-dot", "bot-author"],
)
@pytest.mark.parametrize("state", [State.INVALID, State.ERROR, State.READY])
def test_only_the_owners_pr_into_the_default_branch_sets_the_status(
    files: tuple[ChangedFile, ...], author: str, base: str, state: State
) -> None:
    """A status belongs to the head commit, which other PRs can share: whatever the decision
    (an ERROR from a broken policy hides the shape's problems from it), such a PR reports in
    its comment only."""
    decision = Decision(state, PR, problems=(Problem(ProblemCode.EMPTY, "x"),))
    shape = shape_of(*files, author=author, base=base)
    pr = pull(author=author, base_ref=base)

    plan = publish_plan(decision, pr, shape=shape, policy=POLICY, reviews=(),
                        request_reviews=True)

    assert status_belongs_to(pr, shape) is False
    assert plan.status is None
    assert plan.comment == status_comment(decision)


@pytest.mark.parametrize(
    "files",
    [
        (ChangedFile("requests/alice/x.yaml", "added"),),
        (ChangedFile("requests/ALICE/x.yaml", "copied"),),
        # Its own files only, however wrong otherwise: every PR from this commit sees them.
        (ChangedFile("requests/alice/a.yaml", "added"), ChangedFile("requests/alice/b.yaml",
                                                                    "added")),
        (ChangedFile("requests/alice/x.json", "added"), ChangedFile("app.py", "modified")),
    ],
)
def test_the_owners_pr_into_the_default_branch_sets_the_status(
    files: tuple[ChangedFile, ...],
) -> None:
    shape = shape_of(*files)
    assert status_belongs_to(pull(), shape)
    plan = publish_plan(SELF_READY, pull(), shape=shape, policy=POLICY, reviews=(),
                        request_reviews=True)
    assert plan.status is not None
    assert (plan.status.state, plan.status.description, plan.status.target_url) == (
        "success", status_description(SELF_READY), URL
    )


@pytest.mark.parametrize(
    "pr", [pull(default_branch=""), pull(base_ref="")], ids=["no-default", "no-base"]
)
def test_no_status_without_a_known_default_branch_or_shape(pr: PullInfo) -> None:
    assert not status_belongs_to(pr, OWN)
    assert not status_belongs_to(pull(), None)
    assert publish_plan(SELF_READY, pull(), shape=None, policy=POLICY, reviews=(),
                        request_reviews=True).status is None


def test_a_diff_too_long_to_list_sets_no_status() -> None:
    files = tuple(ChangedFile(f"docs/{i}.md", "added") for i in range(300))
    shape = check_pr_shape(files, "alice", "main", "main", complete=False)
    assert shape.is_request and not shape.own_request
    assert [p.code for p in shape.problems] == [ProblemCode.TOO_MANY_FILES]
    assert not status_belongs_to(pull(), shape)


def test_a_pr_without_a_url_sets_a_status_without_a_link() -> None:
    plan = publish_plan(SELF_READY, pull(html_url=""), shape=OWN, policy=POLICY, reviews=(),
                        request_reviews=True)
    assert plan.status is not None and plan.status.target_url is None


@pytest.mark.parametrize(
    ("policy", "request_reviews"), [(None, True), (POLICY, False)], ids=["no-policy", "not-asked"]
)
def test_reviews_are_requested_only_when_asked_and_with_a_policy(
    policy: Policy | None, request_reviews: bool
) -> None:
    plan = publish_plan(PENDING, pull(), shape=OWN, policy=policy, reviews=(),
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
        rules=("", ""),  # the decision settled no rule for its roles
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
        rules=("", ""),
    )
    assert record.effective_severity == "NOTICE"
    assert "break_glass" not in record.labels()


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
