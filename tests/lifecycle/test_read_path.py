"""What the lifecycle reads, and for which commit, against in-memory ports.

The files judged are those of the head that receives the verdict; the comments read are those
the event can need; more reviews than the service reads leave the approvals unjudged.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.lifecycle.conftest import LOGS, NOW, SQL, World
from webhook.core.errors import GitHubError, ListTooLongError
from webhook.core.model import ChangedFile, ChangedFiles
from webhook.core.records import ACTIVATION_FAILED_MARKER_PREFIX, COMMENT_MARKER
from webhook.service.lifecycle import RECORDS_MARGIN


def test_an_open_pr_is_judged_on_the_comparison_at_its_head(world: World) -> None:
    n = world.open_request(roles=(LOGS,))
    # GitHub's PR file list says something else (a push landed): it is not asked.
    world.github.changed[n] = (ChangedFile("webhook/app.py", "modified"),)
    world.github.diffs[("main", world.head(n))] = ChangedFiles(
        (ChangedFile("requests/alice/req.yaml", "added"),)
    )

    result = world.lifecycle.on_change(n, "d-1", opened=True)

    assert result.state == "ready"
    assert world.github.calls["compare"] == 1 and world.github.calls["files"] == 0
    assert [s.sha for s in world.github.statuses] == [world.head(n)]


def test_a_cut_comparison_is_a_failing_shape_without_a_status(world: World) -> None:
    n = world.open_request(roles=(LOGS,))
    world.github.diffs[("main", world.head(n))] = ChangedFiles(
        tuple(ChangedFile(f"docs/{i}.md", "added") for i in range(300)), complete=False
    )

    result = world.lifecycle.on_change(n, "d-1", opened=True)

    assert result.state == "invalid"
    assert world.github.statuses == []
    (comment,) = world.github.bodies(n, marker=COMMENT_MARKER)
    assert "more files than GitHub lists in one comparison" in comment


def test_an_open_pr_lists_comments_up_to_its_status_comment(world: World) -> None:
    n = world.open_request(roles=(LOGS,))

    world.lifecycle.on_change(n, "d-1", opened=True)

    assert world.github.listings == [(n, None, COMMENT_MARKER)]


def test_a_merged_pr_lists_only_comments_younger_than_the_merge(world: World) -> None:
    n = world.open_request(roles=(LOGS,))
    merged_at = NOW - timedelta(minutes=3)
    world.merge(n, at=merged_at)

    assert world.lifecycle.on_merge(n, "d-9").state == "activated"

    assert world.github.listings == [(n, merged_at - RECORDS_MARGIN, None)]
    assert world.github.calls["files"] == 1 and world.github.calls["compare"] == 0


def test_a_failed_activation_comment_reuses_the_listing(world: World) -> None:
    n = world.open_request(roles=(LOGS,))
    world.merge(n)
    world.audit.fail.add("gitops.activateRole")

    assert world.lifecycle.on_merge(n, "d-9").failed
    assert world.lifecycle.on_merge(n, "d-9").failed

    assert world.github.calls["comments"] == 2  # one listing per event, none more
    failures = [b for b in world.github.bodies(n)
                if b.startswith(ACTIVATION_FAILED_MARKER_PREFIX)]
    assert len(failures) == 1  # the second event edited the first one's comment


def test_more_reviews_than_read_leave_the_approvals_unjudged(world: World) -> None:
    n = world.open_request(roles=(SQL,))
    world.review(n, "bob")
    world.github.fail["reviews"] = ListTooLongError(
        f"listing the reviews of pull request #{n}", 10_000
    )

    result = world.lifecycle.on_change(n, "d-1", opened=False)

    assert (result.state, result.failed) == ("error", False)
    (status,) = world.github.statuses
    assert (status.state, status.description) == ("error", "Service error: see comment")
    assert world.github.review_requests == []


def test_another_failed_review_listing_still_fails_the_event(world: World) -> None:
    n = world.open_request(roles=(SQL,))
    world.github.fail["reviews"] = GitHubError("listing the reviews: HTTP 502", status=502)

    # A failed listing is not an empty one: nothing is published, the delivery fails.
    with pytest.raises(GitHubError, match="HTTP 502"):
        world.lifecycle.on_change(n, "d-1", opened=False)
    assert world.github.statuses == []
