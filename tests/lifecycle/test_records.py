"""The record of decisions, against in-memory ports: a merged PR is decided once.

The binding (by PR reference) and the audit log's entries are the record; the service's own
comments only keep it from posting twice. A redelivery that finds any of them grants nothing,
writes no second decision and says the decision again on the PR when its comment is missing.
A merge is judged as of the merge: approvals aged at `merged_at`, the target branch against the
default branch of the signed delivery.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import timedelta

import pytest

from tests.lifecycle.conftest import LOGS, NOW, PROJECT, REPO, SQL, World
from webhook.core import audit_record as audit_events
from webhook.core.conditions import build_binding
from webhook.core.errors import ActivationError, AuditError, GitHubError
from webhook.core.merge import WRITER_BUDGET
from webhook.core.model import Binding, RoleEligibility
from webhook.core.records import (
    ACTIVATION_FAILED_MARKER_PREFIX,
    ACTIVATION_MARKER_PREFIX,
    REFUSAL_MARKER_PREFIX,
)

JUSTIFICATION = "INC-1234: restore the failed replica"
LATER = WRITER_BUDGET + timedelta(seconds=1)  # the writer has finished or died by then


def own(world: World, number: int, prefix: str) -> list[str]:
    return [b for b in world.github.bodies(number) if b.startswith(prefix)]


def delete_own(world: World, number: int, prefix: str) -> None:
    """A repository writer deletes the service's comments starting with `prefix`."""
    listed = world.github.comment_list[number]
    listed[:] = [c for c in listed if not c.body.startswith(prefix)]


def activated(world: World) -> int:
    """A self-approved request, merged now and activated; returns its number."""
    n = world.open_request(roles=(LOGS,))
    world.merge(n)
    assert world.lifecycle.on_merge(n, "d-1").state == "activated"
    return n


# ----------------------------------------------------------------------------------------------
# The audit log is the record


def test_deleting_the_activation_comment_never_buys_another_window(world: World) -> None:
    """The requester deletes the bot's comment after each grant and has the merge redelivered:
    one approval, one window, and the comment comes back each time."""
    n = activated(world)
    for _ in range(3):
        delete_own(world, n, ACTIVATION_MARKER_PREFIX)
        world.activator.bindings.clear()  # expired and cleaned up
        world.advance(LATER)

        result = world.lifecycle.on_merge(n, "d-1")

        assert result.state == "activated" and not result.failed
        assert result.message.endswith("; the missing activation comment was posted again")
        assert len(own(world, n, ACTIVATION_MARKER_PREFIX)) == 1
    assert len(world.activator.activations) == 1  # IAM was written once, never again
    assert world.activator.held(PROJECT) == []
    assert world.audit.events() == [audit_events.ACTIVATE_ROLE]


def test_a_failed_activation_comment_is_posted_by_a_later_redelivery(world: World) -> None:
    n = world.open_request(roles=(LOGS,))
    world.merge(n)
    world.github.fail["create_comment"] = GitHubError("creating a comment: 502", status=502)
    with pytest.raises(GitHubError):  # the app answers 502
        world.lifecycle.on_merge(n, "d-1")
    del world.github.fail["create_comment"]
    world.activator.bindings.clear()  # a 5-minute window would be over; or removed by hand
    world.advance(LATER)

    result = world.lifecycle.on_merge(n, "d-1")

    assert result.state == "activated"
    assert result.details == {"written": False, "end": "2040-01-01T13:00:00Z"}
    assert len(world.activator.activations) == 1
    assert world.audit.events() == [audit_events.ACTIVATE_ROLE]
    (comment,) = own(world, n, ACTIVATION_MARKER_PREFIX)
    assert "until **2040-01-01T13:00:00Z**" in comment


def test_a_record_younger_than_the_writers_budget_is_left_to_the_writer(world: World) -> None:
    """The delivery that granted it may still be posting its comment on another instance."""
    n = activated(world)
    delete_own(world, n, ACTIVATION_MARKER_PREFIX)
    world.advance(WRITER_BUDGET - timedelta(seconds=1))

    result = world.lifecycle.on_merge(n, "d-2")

    assert (result.state, result.failed) == ("activated", False)
    assert "may still be at work" in result.message
    assert result.message.endswith(
        "(if the activation comment is still missing after 2040-01-01T12:02:00Z, redeliver)"
    )
    assert own(world, n, ACTIVATION_MARKER_PREFIX) == []
    assert len(world.activator.activations) == 1
    assert world.audit.events() == [audit_events.ACTIVATE_ROLE]


def test_a_refusal_whose_comment_failed_stays_a_refusal(world: World) -> None:
    """Refused (not eligible), audited, the comment POST failed; the requester becomes eligible
    and the merge is redelivered: still refused, the refusal said again."""
    n = world.open_request(roles=(LOGS,))
    world.eligibility.grants["alice@example.com"].pop(LOGS)
    world.merge(n)
    world.github.fail["create_comment"] = GitHubError("creating a comment: 502", status=502)
    with pytest.raises(GitHubError):  # the app answers 502
        world.lifecycle.on_merge(n, "d-1")
    del world.github.fail["create_comment"]
    world.eligibility.grants["alice@example.com"][LOGS] = RoleEligibility(self_approval=True)
    world.advance(timedelta(minutes=5))

    result = world.lifecycle.on_merge(n, "d-1")

    assert result.state == "refused"
    assert result.message.endswith("; the missing refusal comment was posted again")
    assert world.activator.activations == []
    assert world.audit.events() == [audit_events.REFUSE_ACTIVATION]
    (comment,) = own(world, n, REFUSAL_MARKER_PREFIX)
    assert "no access was granted: the request was not ready when merged" in comment
    assert "Decision at merge time" not in comment  # the decision as of now would say "ready"


def test_an_unreadable_audit_log_fails_the_merge_without_writing(world: World) -> None:
    n = world.open_request(roles=(LOGS,))
    world.merge(n)
    world.audit.fail_read = AuditError("The audit log could not be read: Cloud Logging answered "
                                       "429: quota exceeded")

    result = world.lifecycle.on_merge(n, "d-1")

    assert (result.state, result.failed) == ("failed", True)
    assert result.message == (
        f"PR #{n}: activation failed: the audit log could not be read: The audit log could not "
        "be read: Cloud Logging answered 429: quota exceeded"
    )
    assert world.activator.activations == [] and world.audit.records == []
    assert len(own(world, n, ACTIVATION_FAILED_MARKER_PREFIX)) == 1

    world.audit.fail_read = None
    assert world.lifecycle.on_merge(n, "d-1").details == {
        "written": True, "end": "2040-01-01T13:00:00Z",
    }


def test_the_audit_log_is_read_on_merges_of_requests_only(world: World) -> None:
    n = world.open_request(roles=(SQL,))
    world.lifecycle.on_change(n, "d-1", opened=True)
    world.review(n, "bob")
    world.lifecycle.on_review(n, "d-2", "bob")
    assert world.audit.reads == []
    world.lifecycle.on_merge(n, "d-3")  # GitHub says open: not merged
    assert world.audit.reads == []
    code = world.open_request()
    world.github.changed[code] = ()
    world.merge(code)
    world.lifecycle.on_merge(code, "d-4")
    assert world.audit.reads == []

    world.merge(n)
    world.lifecycle.on_merge(n, "d-5")

    assert world.audit.reads == [
        (f"https://github.com/{REPO}/pull/{n}", NOW - timedelta(days=1)),
    ]


def test_the_audit_log_is_read_beside_the_eligibility_check(world: World) -> None:
    """The read starts once the PR is known to be a merged request, not after the decision."""
    read = threading.Event()
    seen: list[bool] = []
    decisions, check = world.audit.decisions, world.eligibility.check

    def reading(*args: object, **kw: object) -> object:
        read.set()
        return decisions(*args, **kw)  # type: ignore[arg-type]

    def checking(**kw: object) -> object:
        seen.append(read.wait(timeout=10))  # only bounds a broken run; no timing is asserted
        return check(**kw)  # type: ignore[arg-type]

    world.audit.decisions = reading  # type: ignore[method-assign]
    world.eligibility.check = checking  # type: ignore[assignment, method-assign]
    n = world.open_request(roles=(LOGS,))
    world.merge(n)

    assert world.lifecycle.on_merge(n, "d-1").state == "activated"
    assert seen == [True]


# ----------------------------------------------------------------------------------------------
# The binding is the record


def binding_of(n: int, start: timedelta) -> Binding:
    return build_binding(
        LOGS, "alice@example.com", (), JUSTIFICATION, f"{REPO}#{n}", NOW + start,
        NOW + start + timedelta(hours=1),
    )


def test_a_binding_without_an_entry_is_recorded_even_when_the_merge_would_be_refused_now(
    world: World,
) -> None:
    """The first delivery died between the IAM write and the audit entry; the redelivery comes
    after max_delay. A refusal would stand beside a grant: the grant is recorded instead."""
    n = world.open_request(roles=(LOGS,))
    world.merge(n)
    stranded = binding_of(n, timedelta(0))
    world.activator.bindings[PROJECT] = [stranded]
    world.advance(timedelta(hours=2))

    result = world.lifecycle.on_merge(n, "d-2")

    assert result.state == "activated"
    assert world.activator.lookups == [(PROJECT, f"{REPO}#{n}")]
    assert world.activator.activations == []
    (record,) = world.audit.records
    assert record.event == audit_events.ACTIVATE_ROLE
    assert (record.timestamp, record.activation_start) == (NOW, NOW)
    assert record.insert_id == f"activate:{REPO}#{n}@{world.head(n)}"
    assert len(own(world, n, ACTIVATION_MARKER_PREFIX)) == 1
    assert own(world, n, REFUSAL_MARKER_PREFIX) == []


def test_a_refusal_is_not_written_while_iam_cannot_be_read(world: World) -> None:
    n = world.open_request(roles=(LOGS,))
    world.merge(n)
    world.advance(timedelta(hours=2))
    world.activator.fail_lookup = ActivationError("IAM: unavailable")

    result = world.lifecycle.on_merge(n, "d-2")

    assert result.failed
    assert "the IAM policy could not be read to check for an earlier activation" in result.message
    assert world.audit.records == [] and own(world, n, REFUSAL_MARKER_PREFIX) == []


def test_a_plain_refusal_looks_at_iam_once_and_writes_nothing_there(world: World) -> None:
    n = world.open_request(roles=(SQL,))
    world.merge(n)

    assert world.lifecycle.on_merge(n, "d-1").state == "refused"

    assert world.activator.lookups == [(PROJECT, f"{REPO}#{n}")]
    assert world.activator.activations == []


def test_a_binding_just_written_by_another_instance_is_left_to_it(world: World) -> None:
    """Another instance wrote the binding moments ago and is writing its entry and comment."""
    n = world.open_request(roles=(LOGS,))
    world.merge(n)
    world.activator.bindings[PROJECT] = [binding_of(n, timedelta(0))]
    world.advance(timedelta(seconds=5))

    result = world.lifecycle.on_merge(n, "d-1")

    assert (result.state, result.failed) == ("activated", False)
    assert result.details == {"written": False, "end": "2040-01-01T13:00:00Z"}
    assert world.audit.records == []
    assert world.github.bodies(n) == []


# ----------------------------------------------------------------------------------------------
# As of the merge


def test_approvals_are_aged_at_the_merge_not_at_the_redelivery(world: World) -> None:
    """Approved 23h50m before the merge; IAM fails once; the redelivery 20 minutes later still
    counts the approval (it was 23h50m old when merged)."""
    n = world.open_request(roles=(SQL,))
    world.review(n, "bob")
    world.advance(timedelta(hours=23, minutes=50))
    world.merge(n)
    world.activator.fail_activate = ActivationError("IAM: 503 unavailable")
    assert world.lifecycle.on_merge(n, "d-1").failed
    world.activator.fail_activate = None
    world.advance(timedelta(minutes=20))

    result = world.lifecycle.on_merge(n, "d-1")

    assert result.state == "activated", result.message
    assert world.audit.events() == [audit_events.ACTIVATE_ROLE]


def test_an_approval_older_than_max_age_at_the_merge_still_does_not_count(world: World) -> None:
    n = world.open_request(roles=(SQL,))
    world.review(n, "bob")
    world.advance(timedelta(hours=24, seconds=1))
    world.merge(n)

    result = world.lifecycle.on_merge(n, "d-1")

    assert result.state == "refused"
    assert "Waiting for 1 approval" in result.message


def test_the_target_branch_is_judged_against_the_signed_default_branch(world: World) -> None:
    """Merged into main; the default branch is renamed to trunk before the redelivery."""
    n = world.open_request(roles=(LOGS,))
    world.merge(n)
    world.github.pulls[n] = replace(world.github.pulls[n], default_branch="trunk")

    assert world.lifecycle.on_merge(n, "d-1", default_branch="main").state == "activated"


def test_without_a_signed_default_branch_the_current_one_judges(world: World) -> None:
    n = world.open_request(roles=(LOGS,))
    world.merge(n)
    world.github.pulls[n] = replace(world.github.pulls[n], default_branch="trunk")

    result = world.lifecycle.on_merge(n, "d-1")

    assert result.state == "refused"
    assert "a request PR must target trunk, not 'main'" in result.message


def test_a_merge_is_still_too_late_by_the_real_clock(world: World) -> None:
    n = world.open_request(roles=(LOGS,))
    world.merge(n)
    world.advance(timedelta(hours=1, seconds=1))

    result = world.lifecycle.on_merge(n, "d-1", default_branch="main")

    assert result.state == "refused"
    assert "older than activation.max_delay" in result.message

