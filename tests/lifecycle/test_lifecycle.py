"""The lifecycle against in-memory ports: what it publishes, and what a merge does.

Fast (no HTTP, no client libraries): the rules of orchestration — which effects follow from an
event, in which combination, and what happens when one of them fails.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from tests.lifecycle.conftest import (
    JUSTIFICATION,
    LOGS,
    NOW,
    PROJECT,
    REPO,
    SQL,
    World,
)
from tests.lifecycle.memory import Status
from webhook.core import audit_record as audit_events
from webhook.core.conditions import build_binding
from webhook.core.errors import ActivationError, GoogleError
from webhook.core.model import Binding, ReviewState, RoleEligibility
from webhook.core.records import (
    ACTIVATION_FAILED_MARKER_PREFIX,
    ACTIVATION_MARKER_PREFIX,
    COMMENT_MARKER,
    REFUSAL_MARKER_PREFIX,
    activation_failed_marker,
    activation_marker,
    refusal_marker,
)

END = "2040-01-01T13:00:00Z"  # NOW + the requested hour


def status_comments(world: World, number: int) -> list[str]:
    return world.github.bodies(number, marker=COMMENT_MARKER)


def own_comments(world: World, number: int, prefix: str) -> list[str]:
    return [b for b in world.github.bodies(number) if b.startswith(prefix)]


def self_binding(world: World, number: int, start: timedelta = timedelta(0)) -> Binding:
    return build_binding(
        LOGS, "alice@example.com", (), JUSTIFICATION, f"{REPO}#{number}", NOW + start,
        NOW + start + timedelta(hours=1),
    )


# ----------------------------------------------------------------------------------------------
# Publishing


def test_opening_a_request_that_needs_approval_publishes_pending_and_asks_peers(
    world: World,
) -> None:
    n = world.open_request(roles=(SQL,))

    result = world.lifecycle.on_change(n, "d-1", opened=True)

    assert (result.state, result.failed) == ("pending", False)
    assert world.github.statuses == [
        Status(world.head(n), "pending", "Waiting for 1 approval (roles/cloudsql.admin)",
               "jit-access", f"https://github.com/{REPO}/pull/{n}"),
    ]
    (comment,) = status_comments(world, n)
    assert comment.startswith(COMMENT_MARKER) and "Waiting for approval" in comment
    # Qualified peers are bob, carol and dave; the policy asks for 2 review requests at most.
    assert world.github.review_requests == [(n, ("bob", "carol"))]
    assert world.audit.events() == [audit_events.REQUEST_ROLE]
    assert world.audit.records[0].delivery_id == "d-1"
    assert world.eligibility.checks == [(PROJECT, (SQL,), ("alice@example.com",))]
    assert world.github.calls["comments"] == 1  # listed once, with the facts


def test_a_self_approved_request_is_ready_and_asks_nobody(world: World) -> None:
    n = world.open_request(roles=(LOGS,))

    result = world.lifecycle.on_change(n, "d-1", opened=True)

    assert result.state == "ready"
    assert [(s.state, s.description) for s in world.github.statuses] == [
        ("success", "Ready: self-approval for 1 role"),
    ]
    assert world.github.review_requests == []
    assert world.audit.events() == [audit_events.REQUEST_ROLE]


def test_an_invalid_request_fails_without_asking_google_or_auditing(world: World) -> None:
    n = world.open_request(text=b"project: payments-prod\n")

    result = world.lifecycle.on_change(n, "d-1", opened=True)

    assert result.state == "invalid"
    assert [s.state for s in world.github.statuses] == ["failure"]
    (comment,) = status_comments(world, n)
    assert "the key 'roles' is missing" in comment
    assert world.eligibility.checks == []
    assert world.audit.records == []


def test_a_request_in_someone_elses_directory_gets_a_comment_but_no_status(world: World) -> None:
    """It can share the owner's head commit; its status would overwrite the owner's."""
    n = world.open_request(author="alice", directory="bob")

    result = world.lifecycle.on_change(n, "d-1", opened=True)

    assert result.state == "invalid"
    assert world.github.statuses == []
    (comment,) = status_comments(world, n)
    assert "requests/bob/req.yaml is in the directory of bob" in comment


def test_the_status_comment_is_edited_in_place_and_only_when_it_changes(world: World) -> None:
    n = world.open_request(roles=(SQL,))
    world.lifecycle.on_change(n, "d-1", opened=True)
    world.review(n, "bob")

    result = world.lifecycle.on_review(n, "d-2", "bob")

    assert result.state == "ready"
    (comment,) = status_comments(world, n)
    assert "Ready to merge" in comment
    assert len(world.github.edits) == 1
    assert world.github.statuses[-1].description == "Ready: approved by bob"
    # The same facts again: the comment is left alone, nobody is asked twice.
    world.lifecycle.on_change(n, "d-3", opened=False)
    assert len(world.github.edits) == 1
    assert world.github.calls["create_comment"] == 1
    assert world.github.review_requests == [(n, ("bob", "carol"))]


def test_a_counted_approval_is_audited_and_a_later_comment_is_no_new_approval(
    world: World,
) -> None:
    n = world.open_request(roles=(SQL,))
    world.review(n, "bob")

    world.lifecycle.on_review(n, "d-2", "bob")
    world.advance(timedelta(minutes=1))
    world.review(n, "bob", ReviewState.COMMENTED)
    world.lifecycle.on_review(n, "d-3", "bob")

    assert world.audit.events() == [audit_events.APPROVE_ROLE]
    (record,) = world.audit.records
    assert record.message == f"@bob approved {REPO}#{n}"
    assert record.reviewers == ("bob@example.com",)


def test_an_approval_that_does_not_count_is_not_audited(world: World) -> None:
    n = world.open_request(roles=(SQL,))
    world.review(n, "mallory")  # no identity mapping

    result = world.lifecycle.on_review(n, "d-2", "mallory")

    assert result.state == "pending"
    assert world.audit.records == []


def test_a_pr_that_touches_no_request_passes_and_is_otherwise_left_alone(world: World) -> None:
    n = world.open_request()
    world.github.changed[n] = ()

    result = world.lifecycle.on_change(n, "d-1", opened=True)
    assert "touches no request" in result.message and result.state == "success"
    # A required jit-access check must not block code or policy changes: success, no comment.
    [status] = world.github.statuses
    assert (status.state, status.description) == ("success", "Not an access request")
    assert "touches no request" in world.lifecycle.on_change(n, "d-2", opened=False).message
    assert len(world.github.statuses) == 1  # unchanged: not posted again
    assert "nothing to activate" in world.lifecycle.on_merge(n, "d-3").message
    assert world.github.bodies(n) == []
    assert world.eligibility.checks == [] and world.audit.records == []


def test_a_closed_request_is_not_published(world: World) -> None:
    n = world.open_request()
    world.github.pulls[n] = replace(world.github.pulls[n], state="closed")

    result = world.lifecycle.on_change(n, "d-1", opened=False)

    assert result.message == f"PR #{n} is closed; nothing to publish"
    assert world.github.statuses == [] and world.github.bodies(n) == []


# ----------------------------------------------------------------------------------------------
# Merge


def test_merging_a_ready_request_activates_audits_and_comments(world: World) -> None:
    n = world.open_request(roles=(LOGS,))
    world.merge(n)

    result = world.lifecycle.on_merge(n, "d-9")

    assert (result.state, result.failed) == ("activated", False)
    assert result.details == {"written": True, "end": END}
    assert world.activator.held(PROJECT) == [self_binding(world, n)]
    (record,) = world.audit.records
    assert record.event == audit_events.ACTIVATE_ROLE
    assert (record.activation_start, record.activation_end) == (NOW, NOW + timedelta(hours=1))
    assert record.timestamp == NOW
    assert record.insert_id == f"activate:{REPO}#{n}@{world.head(n)}"
    assert record.delivery_id == "d-9"
    (comment,) = own_comments(world, n, ACTIVATION_MARKER_PREFIX)
    assert comment.startswith(activation_marker(world.head(n)))
    assert f"until **{END}**" in comment
    assert world.github.statuses == []  # a merge sets no status


def test_the_binding_of_an_approved_role_names_its_approvers(world: World) -> None:
    n = world.open_request(roles=(SQL,))
    world.review(n, "bob")
    world.merge(n)

    world.lifecycle.on_merge(n, "d-9")

    (binding,) = world.activator.held(PROJECT)
    assert binding.description == (
        f"Approved by bob@example.com, justification: {JUSTIFICATION} ({REPO}#{n})"
    )
    assert world.audit.records[0].reviewers == ("bob@example.com",)


def test_a_merge_that_was_not_ready_is_refused_audited_and_commented(world: World) -> None:
    n = world.open_request(roles=(SQL,))
    world.merge(n)

    result = world.lifecycle.on_merge(n, "d-9")

    assert result.state == "refused"
    assert result.message == (
        f"PR #{n}: activation refused: the request was not ready when merged "
        "(Waiting for 1 approval (roles/cloudsql.admin))"
    )
    assert world.activator.activations == []
    (record,) = world.audit.records
    assert record.event == audit_events.REFUSE_ACTIVATION
    assert record.timestamp == NOW
    assert record.insert_id == f"refuse:{REPO}#{n}@{world.head(n)}"
    (comment,) = own_comments(world, n, REFUSAL_MARKER_PREFIX)
    assert comment.startswith(refusal_marker(world.head(n)))
    assert "no access was granted: the request was not ready when merged" in comment


def test_a_merge_older_than_max_delay_is_refused(world: World) -> None:
    n = world.open_request(roles=(LOGS,))
    world.merge(n)
    world.advance(timedelta(hours=1, seconds=1))

    result = world.lifecycle.on_merge(n, "d-9")

    assert result.state == "refused"
    assert result.message.endswith(
        "the merge at 2040-01-01T12:00:00Z is older than activation.max_delay (1h); open a new "
        "request"
    )
    assert world.activator.activations == []
    assert world.audit.events() == [audit_events.REFUSE_ACTIVATION]


def test_a_replayed_merge_grants_nothing_even_after_the_binding_is_gone(world: World) -> None:
    n = world.open_request(roles=(LOGS,))
    world.merge(n)
    world.lifecycle.on_merge(n, "d-9")
    world.activator.bindings.clear()  # expired and cleaned up, or removed by hand
    world.advance(timedelta(minutes=5))

    result = world.lifecycle.on_merge(n, "d-9")

    assert result.state == "activated"
    assert result.details == {"written": False, "end": END}
    assert "already activated" in result.message
    assert len(world.activator.activations) == 1
    assert world.activator.held(PROJECT) == []
    assert world.audit.events() == [audit_events.ACTIVATE_ROLE]
    assert len(own_comments(world, n, ACTIVATION_MARKER_PREFIX)) == 1


def test_a_refusal_is_final_even_when_the_request_would_be_granted_now(world: World) -> None:
    n = world.open_request(roles=(LOGS,))
    world.eligibility.grants["alice@example.com"].pop(LOGS)
    world.merge(n)
    assert world.lifecycle.on_merge(n, "d-9").state == "refused"
    world.eligibility.grants["alice@example.com"][LOGS] = RoleEligibility(self_approval=True)

    result = world.lifecycle.on_merge(n, "d-9")

    assert result.state == "refused"
    assert "was refused" in result.message
    assert world.activator.activations == []
    assert world.audit.events() == [audit_events.REFUSE_ACTIVATION]
    assert len(own_comments(world, n, REFUSAL_MARKER_PREFIX)) == 1


def test_a_forged_record_by_someone_else_is_no_record(world: World) -> None:
    n = world.open_request(roles=(LOGS,))
    world.merge(n)
    world.github.add_comment(n, "bob", activation_marker(world.head(n)))

    result = world.lifecycle.on_merge(n, "d-9")

    assert result.details == {"written": True, "end": END}


def test_an_eligibility_outage_fails_the_merge_so_that_a_redelivery_completes_it(
    world: World,
) -> None:
    n = world.open_request(roles=(LOGS,))
    world.merge(n)
    world.eligibility.outage = GoogleError("quota exceeded", status=429)

    result = world.lifecycle.on_merge(n, "d-9")

    assert (result.state, result.failed) == ("failed", True)
    assert result.message == (
        f"PR #{n}: activation failed: eligibility could not be checked: Google Cloud: quota "
        "exceeded"
    )
    (comment,) = own_comments(world, n, ACTIVATION_FAILED_MARKER_PREFIX)
    assert comment.startswith(activation_failed_marker(world.head(n)))
    assert own_comments(world, n, REFUSAL_MARKER_PREFIX) == []
    assert world.activator.activations == [] and world.audit.records == []

    world.eligibility.outage = None
    world.advance(timedelta(minutes=2))
    again = world.lifecycle.on_merge(n, "d-9")

    assert again.state == "activated"
    assert world.audit.events() == [audit_events.ACTIVATE_ROLE]


def test_an_iam_failure_fails_the_merge_without_an_audit_entry(world: World) -> None:
    n = world.open_request(roles=(LOGS,))
    world.merge(n)
    world.activator.fail_activate = ActivationError("IAM: permission denied")

    result = world.lifecycle.on_merge(n, "d-9")

    assert result.failed
    assert result.message == (
        f"PR #{n}: activation failed: the IAM binding could not be written: IAM: permission denied"
    )
    assert world.audit.records == []
    assert len(own_comments(world, n, ACTIVATION_FAILED_MARKER_PREFIX)) == 1


def test_an_audit_failure_takes_the_new_binding_away_again(world: World) -> None:
    n = world.open_request(roles=(LOGS,))
    world.merge(n)
    world.audit.fail = {audit_events.ACTIVATE_ROLE}

    result = world.lifecycle.on_merge(n, "d-9")

    assert (result.state, result.failed) == ("failed", True)
    assert result.message.endswith("; the binding was removed again")
    assert world.activator.removals == [(PROJECT, (self_binding(world, n),), "audit entry failed")]
    assert world.activator.held(PROJECT) == []
    (comment,) = own_comments(world, n, ACTIVATION_FAILED_MARKER_PREFIX)
    assert "No access was granted" in comment
    assert own_comments(world, n, ACTIVATION_MARKER_PREFIX) == []


def test_an_audit_failure_puts_back_the_activation_the_write_replaced(world: World) -> None:
    first = world.open_request(roles=(LOGS,))
    world.merge(first)
    assert world.lifecycle.on_merge(first, "d-1").state == "activated"
    world.advance(timedelta(minutes=10))
    second = world.open_request(roles=(LOGS,))
    world.merge(second)
    world.audit.fail = {audit_events.ACTIVATE_ROLE}

    result = world.lifecycle.on_merge(second, "d-2")

    assert result.failed
    assert result.message.endswith(
        "; the binding was removed again and the earlier activation it had replaced is back "
        f"({LOGS} until {(NOW + timedelta(hours=1)).strftime('%Y-%m-%dT%H:%M:%SZ')})"
    )
    assert world.activator.held(PROJECT) == [self_binding(world, first)]
    (comment,) = own_comments(world, second, ACTIVATION_FAILED_MARKER_PREFIX)
    assert "the earlier activation it had replaced is back" in comment


def test_a_rollback_that_fails_too_says_the_access_remains(world: World) -> None:
    n = world.open_request(roles=(LOGS,))
    world.merge(n)
    world.audit.fail = {audit_events.ACTIVATE_ROLE}
    world.activator.fail_remove = ActivationError("IAM: unavailable")

    result = world.lifecycle.on_merge(n, "d-9")

    assert result.message.endswith("; removing the binding again also failed: IAM: unavailable")
    (comment,) = own_comments(world, n, ACTIVATION_FAILED_MARKER_PREFIX)
    assert "The IAM binding is still in place" in comment


def test_a_binding_found_present_keeps_its_window_and_is_not_taken_away(world: World) -> None:
    """An earlier delivery wrote the binding and died before the audit entry: a redelivery
    audits the window IAM holds, and a failing audit does not remove a binding it did not
    write."""
    n = world.open_request(roles=(LOGS,))
    world.merge(n)
    earlier = self_binding(world, n, start=timedelta(minutes=-2))
    world.activator.bindings[PROJECT] = [earlier]

    result = world.lifecycle.on_merge(n, "d-9")

    assert result.details == {"written": False, "end": "2040-01-01T12:58:00Z"}
    (record,) = world.audit.records
    assert (record.activation_start, record.activation_end) == (
        NOW - timedelta(minutes=2), NOW + timedelta(minutes=58),
    )
    assert record.timestamp == NOW - timedelta(minutes=2)
    (comment,) = own_comments(world, n, ACTIVATION_MARKER_PREFIX)
    assert "until **2040-01-01T12:58:00Z**" in comment


def test_an_audit_failure_for_a_binding_found_present_leaves_it_and_says_so(world: World) -> None:
    n = world.open_request(roles=(LOGS,))
    world.merge(n)
    earlier = self_binding(world, n, start=timedelta(minutes=-2))
    world.activator.bindings[PROJECT] = [earlier]
    world.audit.fail = {audit_events.ACTIVATE_ROLE}

    result = world.lifecycle.on_merge(n, "d-9")

    assert result.failed
    assert world.activator.removals == []
    assert world.activator.held(PROJECT) == [earlier]
    (comment,) = own_comments(world, n, ACTIVATION_FAILED_MARKER_PREFIX)
    assert "The IAM binding is still in place" in comment


def test_a_refusal_whose_audit_entry_fails_is_still_commented(world: World) -> None:
    n = world.open_request(roles=(SQL,))
    world.merge(n)
    world.audit.fail = {audit_events.REFUSE_ACTIVATION}

    result = world.lifecycle.on_merge(n, "d-9")

    assert (result.state, result.failed) == ("refused", False)
    assert len(own_comments(world, n, REFUSAL_MARKER_PREFIX)) == 1


def test_a_pr_github_does_not_call_merged_activates_nothing_and_looks_up_nothing(
    world: World,
) -> None:
    n = world.open_request(roles=(LOGS,))

    result = world.lifecycle.on_merge(n, "d-9")

    assert result.message == f"PR #{n} is not merged; nothing to activate"
    assert world.github.calls["comments_with"] == 0
    assert world.activator.activations == [] and world.audit.records == []


# ----------------------------------------------------------------------------------------------
# What eligibility is asked


def test_only_reviews_that_could_count_are_asked_about(world: World) -> None:
    n = world.open_request(roles=(SQL,))
    world.review(n, "mallory")  # no identity mapping
    world.review(n, "carol", ReviewState.COMMENTED)
    world.review(n, "dave", ReviewState.CHANGES_REQUESTED)
    world.review(n, "bob")

    world.lifecycle.on_review(n, "d-1", "bob")

    ((question, settings),) = world.eligibility.questions
    assert question.requester == "alice@example.com"
    assert question.reviewers == ("bob@example.com",)
    assert question.peers is True  # the open PR names qualified peers
    assert settings.source.value == "asset-inventory"


def test_policy_analyzer_answers_the_merge_only(world: World) -> None:
    analyzer = b"eligibility:\n  source: policy-analyzer\n"
    world.github.default_files["policy/jitaccess.yaml"] += analyzer
    n = world.open_request(roles=(LOGS,))
    world.lifecycle.on_change(n, "d-1", opened=True)
    world.merge(n)

    result = world.lifecycle.on_merge(n, "d-2")

    assert result.state == "activated"
    sources = [s.source.value for _, s in world.eligibility.questions]
    assert sources == ["asset-inventory", "policy-analyzer"]
    assert [q.peers for q, _ in world.eligibility.questions] == [True, False]


def test_a_review_of_a_closed_pr_asks_nothing(world: World) -> None:
    n = world.open_request(roles=(SQL,))
    world.github.pulls[n] = replace(world.github.pulls[n], state="closed")
    world.review(n, "bob")

    world.lifecycle.on_review(n, "d-1", "bob")

    assert world.eligibility.checks == []
