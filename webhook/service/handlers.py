"""Webhook handlers, registered by event and action; each re-reads facts through the lifecycle."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from webhook.service.lifecycle import Lifecycle, LifecycleResult
from webhook.service.routing import Delivery, Outcome, Router

#: `pull_request` actions after which the request is evaluated again.
PR_CHANGE_ACTIONS = ("opened", "reopened", "synchronize", "edited", "ready_for_review")
#: `pull_request_review` actions after which the request is evaluated again.
REVIEW_ACTIONS = ("submitted", "edited", "dismissed")


class MalformedPayload(ValueError):
    """The payload lacks a field the handler needs (GitHub never sends these; a forger might)."""


def pr_number(payload: Mapping[str, Any]) -> int:
    """The pull request number of a `pull_request` or `pull_request_review` payload."""
    pr = payload.get("pull_request")
    number = pr.get("number") if isinstance(pr, Mapping) else None
    if not isinstance(number, int) or isinstance(number, bool) or not 0 < number < 2**31:
        raise MalformedPayload("payload has no valid pull_request.number")
    return number


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


def build_router(lifecycle: Lifecycle) -> Router:
    """The routing table of the service, bound to a lifecycle."""
    router = Router()

    @router.register("ping")
    def on_ping(delivery: Delivery) -> Outcome:
        return Outcome(200, "pong")

    for action in PR_CHANGE_ACTIONS:

        @router.register("pull_request", action=action)
        def on_pull_request_changed(delivery: Delivery) -> Outcome:
            number = pr_number(delivery.payload)
            changes = delivery.payload.get("changes")
            if delivery.action == "edited" and not (
                isinstance(changes, Mapping) and "base" in changes
            ):
                # A title or description edit changes nothing the decision reads; evaluating
                # would let anyone who can edit spend Policy Analyzer's 20 queries a day.
                return Outcome(200, f"PR #{number}: title or description edited; nothing to do")
            opened = delivery.action in ("opened", "reopened")
            return _outcome(
                lifecycle.on_change(pr_number(delivery.payload), delivery.delivery_id,
                                    opened=opened)
            )

    @router.register("pull_request", action="closed")
    def on_pull_request_closed(delivery: Delivery) -> Outcome:
        number = pr_number(delivery.payload)
        pr = delivery.payload["pull_request"]
        if not (isinstance(pr, Mapping) and pr.get("merged") is True):
            return Outcome(200, f"PR #{number} closed without merge; nothing to do")
        # The payload is only a trigger: on_merge re-reads whether and when it was merged. Only
        # the default branch is taken from it, as GitHub named it when it signed the delivery:
        # a redelivery after the branch was renamed must judge the merge as the first did.
        return _outcome(
            lifecycle.on_merge(
                number, delivery.delivery_id, default_branch=signed_default_branch(delivery.payload)
            )
        )

    for action in REVIEW_ACTIONS:

        @router.register("pull_request_review", action=action)
        def on_review_changed(delivery: Delivery) -> Outcome:
            review = delivery.payload.get("review")
            user = review.get("user") if isinstance(review, Mapping) else None
            login = user.get("login") if isinstance(user, Mapping) else None
            state = review.get("state") if isinstance(review, Mapping) else None
            if delivery.action == "edited" or (
                delivery.action == "submitted" and isinstance(state, str)
                and state.lower() == "commented"
            ):
                # Neither can change the decision (an edit changes only a review's text, and a
                # comment never decides); evaluating would let any commenter spend Policy
                # Analyzer's daily queries. Skipping grants nothing: merges decide afresh.
                return Outcome(
                    200,
                    f"PR #{pr_number(delivery.payload)}: review comment or edit; nothing to do",
                )
            return _outcome(
                lifecycle.on_review(
                    pr_number(delivery.payload), delivery.delivery_id,
                    login if isinstance(login, str) else None,
                )
            )

    return router
