"""Webhook handlers, registered by event and action; each re-reads facts through the lifecycle.

What a delivery is — ignored, a change, a review or a merge — is decided by the rule book in
`webhook.core.delivery`; the app classifies every delivery before routing it, and the handlers
here only turn a verdict into the lifecycle call it asks for.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from webhook.core.delivery import (
    CHECK_EVENTS,
    PR_CHANGE_ACTIONS,
    REVIEW_ACTIONS,
    Kind,
    MalformedPayload,
    Verdict,
    pr_number,
)
from webhook.service.break_glass import BreakGlassReviews
from webhook.service.checks import CheckEvents
from webhook.service.lifecycle import Lifecycle, LifecycleResult
from webhook.service.revocation import Revocations, RevokeCommandEvent, parse_time
from webhook.service.routing import Delivery, Outcome, Router

__all__ = ["MalformedPayload", "PR_CHANGE_ACTIONS", "REVIEW_ACTIONS", "build_router",
           "pr_number"]


#: Longest branch name taken from a payload (GitHub allows 255 bytes per ref name).
MAX_BRANCH = 255


def signed_default_branch(payload: Mapping[str, Any]) -> str | None:
    """`repository.default_branch` of a signed payload, or None when it is missing or not a
    plausible branch name (the lifecycle then uses the one GitHub names now)."""
    repository = payload.get("repository")
    branch = repository.get("default_branch") if isinstance(repository, Mapping) else None
    if (
        not isinstance(branch, str) or not branch or len(branch) > MAX_BRANCH
        or not branch.isprintable() or branch != branch.strip()
    ):
        return None
    return branch


def _outcome(result: LifecycleResult) -> Outcome:
    details: dict[str, Any] = {"state": result.state} if result.state else {}
    if result.details:
        details.update(result.details)
    return Outcome(502 if result.failed else 200, result.message, details or None)


def _verdict(delivery: Delivery, *kinds: Kind) -> Verdict:
    verdict = delivery.verdict
    if verdict is None:
        raise ValueError("the delivery was routed before the rule book classified it")
    if not verdict.ignored and verdict.kind not in kinds:
        raise ValueError(f"a {verdict.kind.value} verdict was routed to the wrong handler")
    return verdict


def build_router(lifecycle: Lifecycle) -> Router:
    """The routing table of the service, bound to a lifecycle."""
    router = Router()

    for action in PR_CHANGE_ACTIONS:

        @router.register("pull_request", action=action)
        def on_pull_request_changed(delivery: Delivery) -> Outcome:
            verdict = _verdict(delivery, Kind.CHANGE)
            if verdict.ignored or verdict.number is None:
                return Outcome(200, verdict.message)
            return _outcome(
                lifecycle.on_change(verdict.number, delivery.delivery_id, opened=verdict.opened)
            )

    @router.register("pull_request", action="closed")
    def on_pull_request_closed(delivery: Delivery) -> Outcome:
        verdict = _verdict(delivery, Kind.MERGE)
        if verdict.ignored or verdict.number is None:
            return Outcome(200, verdict.message)
        # The payload is only a trigger: on_merge re-reads whether and when it was merged.
        # Only the default branch is taken from it, as GitHub named it when it signed the delivery:
        # a redelivery after the branch was renamed must judge the merge as the first did.
        return _outcome(
            lifecycle.on_merge(
                verdict.number, delivery.delivery_id,
                default_branch=signed_default_branch(delivery.payload),
            )
        )

    break_glass = BreakGlassReviews(lifecycle)

    for action in REVIEW_ACTIONS:

        @router.register("pull_request_review", action=action)
        def on_review_changed(delivery: Delivery) -> Outcome:
            verdict = _verdict(delivery, Kind.REVIEW)
            if verdict.ignored or verdict.number is None:
                return Outcome(200, verdict.message)
            if verdict.after_merge:
                # An approval of a merged PR: perhaps the after-the-fact review of a
                # break-glass activation. None: GitHub says the PR is open after all.
                reviewed = break_glass.on_approval(
                    verdict.number, verdict.reviewer, delivery.delivery_id
                )
                if reviewed is not None:
                    return _outcome(reviewed)
            return _outcome(
                lifecycle.on_review(verdict.number, delivery.delivery_id, verdict.reviewer)
            )

    checks = CheckEvents(lifecycle)

    for event in CHECK_EVENTS:

        @router.register(event, action="rerequested")
        def on_check_rerequested(delivery: Delivery) -> Outcome:
            verdict = _verdict(delivery, Kind.RERUN)
            if verdict.ignored or verdict.head_sha is None:
                return Outcome(200, verdict.message)
            # The payload is only a trigger: each PR it names is read again.
            return _outcome(
                checks.on_rerun(verdict.head_sha, verdict.numbers, delivery.delivery_id)
            )

    @router.register("merge_group", action="checks_requested")
    def on_merge_group_checks_requested(delivery: Delivery) -> Outcome:
        verdict = _verdict(delivery, Kind.MERGE_GROUP)
        if (
            verdict.ignored or verdict.head_sha is None or verdict.base is None
            or verdict.base_ref is None
        ):
            return Outcome(200, verdict.message)
        return _outcome(
            checks.on_merge_group(verdict.head_sha, verdict.base, verdict.base_ref,
                                  verdict.numbers)
        )

    revocations = Revocations(lifecycle)

    @router.register("issue_comment", action="created")
    def on_comment_created(delivery: Delivery) -> Outcome:
        verdict = _verdict(delivery, Kind.REVOKE)
        if (
            verdict.ignored or verdict.number is None or verdict.comment_id is None
            or verdict.commenter is None
        ):
            return Outcome(200, verdict.message)
        command = RevokeCommandEvent(
            verdict.number, verdict.comment_id, verdict.commenter, verdict.command_reason,
            parse_time(verdict.comment_created_at),
        )
        return _outcome(revocations.on_command(command, delivery.delivery_id))

    return router
