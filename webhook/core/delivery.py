"""What a webhook delivery is: one rule book, from the event, the payload and a few facts.

`classify(event, payload, facts)` answers whether the delivery is ignored (and why), a pull
request change or a review to evaluate, a merge to activate, a Re-run of the `jit-access` check,
or a merge group to judge. It reads no network, clock or
environment: the caller hands in the facts — the repository served, the GitHub App installation
serving it, the service's own login. A caller may look those up lazily; the rules read each one
only where it decides something (the installation only when the payload names one, the own login
only for the kinds of event the service itself causes), so a ping or a delivery for another
repository costs no lookup.

The payload is only a trigger: every verdict that leads to work is re-checked against GitHub by
the lifecycle. The rules here only keep deliveries that cannot matter from costing anything.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

from webhook.core.checks import pr_hint
from webhook.core.merge_queue import queued_pr
from webhook.core.names import STATUS_CONTEXT
from webhook.core.revocation import parse_command

#: Every hidden marker the service writes starts its comment with this (see `render`): the
#: status comment, and the activation, refusal and activation-failure records.
MARKER_PREFIX = "<!-- jit-access:"

#: `pull_request` actions after which the request is evaluated again.
PR_CHANGE_ACTIONS = ("opened", "reopened", "synchronize", "edited", "ready_for_review")
#: `pull_request_review` actions after which the request is evaluated again.
REVIEW_ACTIONS = ("submitted", "edited", "dismissed")
#: Events whose `rerequested` action is a person's Re-run of the check (App credentials only).
CHECK_EVENTS = ("check_run", "check_suite")
#: Pull requests of a Re-run payload looked at, at most (GitHub lists those sharing the head).
MAX_RERUN_PULLS = 10
_SHA = re.compile(r"^[0-9a-f]{40}(?:[0-9a-f]{24})?$")


class MalformedPayload(ValueError):
    """The payload lacks a field the rules need (GitHub never sends these; a forger might)."""


class Kind(Enum):
    """What a delivery asks of the service."""

    IGNORED = "ignored"
    CHANGE = "change"  # a pull request changed: evaluate it and publish the decision
    REVIEW = "review"  # a review was submitted or dismissed: evaluate and publish
    MERGE = "merge"  # a pull request was merged: decide again and activate, or refuse
    RERUN = "rerun"  # someone chose Re-run on the check: re-evaluate, or retry the activation
    MERGE_GROUP = "merge group"  # the merge queue asks for the verdict on a merge group
    REVOKE = "revoke"  # a new `/jit revoke` comment on a pull request: revoke its activation


class Reason(Enum):
    """Why a delivery is ignored."""

    PING = "ping"
    OTHER_REPOSITORY = "other repository"
    FOREIGN_INSTALLATION = "foreign installation"
    OWN_COMMENT = "the service's own comment"
    OWN_STATUS = "the service's own commit status"
    UNHANDLED = "unhandled event or action"
    TEXT_EDIT = "title or description edit"
    COMMENT_REVIEW = "comment review or review edit"
    CLOSED_UNMERGED = "closed without merge"
    NOT_OUR_CHECK = "another App's check, or no App credentials"
    NOT_A_COMMAND = "comment without a command"


class Facts(Protocol):
    """What the rules need to know about the service itself."""

    @property
    def repository(self) -> str:
        """`owner/name` of the repository served."""
        ...

    @property
    def installation_id(self) -> int | None:
        """The GitHub App installation serving the repository; None with a token."""
        ...

    @property
    def own_login(self) -> str | None:
        """The service's own GitHub login; None when it is not known."""
        ...

    @property
    def app_id(self) -> int | None:
        """The service's GitHub App id; None with a token (there are no check runs then)."""
        ...


@dataclass(frozen=True)
class KnownFacts:
    """Facts given as plain values."""

    repository: str
    installation_id: int | None = None
    own_login: str | None = None
    app_id: int | None = None


@dataclass(frozen=True)
class Verdict:
    """What a delivery is. `message` is the answer of an ignored delivery."""

    kind: Kind
    message: str = ""
    reason: Reason | None = None
    number: int | None = None  # the pull request, for changes, reviews, merges
    opened: bool = False  # a change that opened or reopened the pull request
    reviewer: str | None = None  # the review's author, for reviews
    # For reviews: an approval submitted on a PR the payload says is merged — maybe the
    # after-the-fact review of a break-glass activation (README: break-glass). Only a hint of
    # where to look: the handler re-reads the PR and its reviews.
    after_merge: bool = False
    # For a foreign installation: the installation the delivery named, when it is a valid id
    # (a reinstalled App delivers with a new one).
    installation: int | None = None
    # For Re-runs and merge groups: the commit the check belongs to, the PRs the payload names
    # (only candidates: each is read again from GitHub), and for merge groups the base to
    # compare the head with (its commit, else its branch) and the base branch.
    head_sha: str | None = None
    numbers: tuple[int, ...] = ()
    base: str | None = None
    base_ref: str | None = None
    # For a `/jit revoke` comment: the comment's id, author, creation time (as GitHub signed
    # it, RFC 3339) and the reason given after the command.
    comment_id: int | None = None
    commenter: str | None = None
    comment_created_at: str | None = None
    command_reason: str = ""

    @property
    def ignored(self) -> bool:
        """Is there nothing to do?"""
        return self.kind is Kind.IGNORED


def classify(event: str, payload: Mapping[str, Any], facts: Facts) -> Verdict:
    """What the delivery of `event` with `payload` is; raises MalformedPayload when a pull
    request event the service acts on has no valid pull request number."""
    if event == "ping":
        return _ignored(Reason.PING, "pong")
    repository = payload.get("repository")
    full_name = repository.get("full_name") if isinstance(repository, Mapping) else None
    if not isinstance(full_name, str) or full_name.lower() != facts.repository.lower():
        return _ignored(Reason.OTHER_REPOSITORY, f"ignored: not for {facts.repository}")
    installation = payload.get("installation")
    if isinstance(installation, Mapping) and "id" in installation:
        ours = facts.installation_id
        named = installation.get("id")
        if ours is not None and not (_is_id(named) and named == ours):
            return Verdict(
                Kind.IGNORED, f"ignored: installation {named} is not this service's",
                Reason.FOREIGN_INSTALLATION, installation=named if _is_id(named) else None,
            )
    action = payload.get("action")
    action = action if isinstance(action, str) else None
    own = _own_record(event, payload, facts)
    if own is not None:
        return own
    if event == "pull_request":
        return _pull_request(action, payload)
    if event == "pull_request_review":
        return _review(action, payload)
    if event in CHECK_EVENTS:
        return _rerun(event, action, payload, facts)
    if event == "merge_group":
        return _merge_group(action, payload)
    if event == "issue_comment":
        return _issue_comment(action, payload)
    return unhandled(event, action)


def unhandled(event: str, action: str | None) -> Verdict:
    """The verdict for an event or action nobody handles."""
    return _ignored(Reason.UNHANDLED, f"ignored: {event}/{action} is not handled")


def is_marked(body: str) -> bool:
    """Does a comment body start with one of the service's hidden markers?"""
    return body.startswith(MARKER_PREFIX)


def pr_number(payload: Mapping[str, Any]) -> int:
    """The pull request number of a `pull_request` or `pull_request_review` payload."""
    pr = payload.get("pull_request")
    number = pr.get("number") if isinstance(pr, Mapping) else None
    if not isinstance(number, int) or isinstance(number, bool) or not 0 < number < 2**31:
        raise MalformedPayload("payload has no valid pull_request.number")
    return number


# --------------------------------------------------------------------------------------------
# The rules


def _own_record(event: str, payload: Mapping[str, Any], facts: Facts) -> Verdict | None:
    """The service's own comments and statuses come back as deliveries; they cannot matter.

    Only these are ignored for their sender. Whoever performs a merge, a change or a review —
    with a token, possibly the very account the token belongs to — it counts. And a comment by
    the service's account counts as the service's own only when it carries a marker: with a
    person's token, that person's comments are theirs.
    """
    if event not in ("issue_comment", "status"):
        return None
    sender = payload.get("sender")
    login = sender.get("login") if isinstance(sender, Mapping) else None
    if not isinstance(login, str):
        return None
    own = facts.own_login
    if own is None or login.lower() != own.lower():
        return None
    if event == "status":
        return _ignored(Reason.OWN_STATUS, "ignored: the service's own commit status")
    comment = payload.get("comment")
    body = comment.get("body") if isinstance(comment, Mapping) else None
    if isinstance(body, str) and is_marked(body):
        return _ignored(Reason.OWN_COMMENT, "ignored: the service's own comment")
    return None


def _pull_request(action: str | None, payload: Mapping[str, Any]) -> Verdict:
    if action in PR_CHANGE_ACTIONS:
        number = pr_number(payload)
        changes = payload.get("changes")
        if action == "edited" and not (isinstance(changes, Mapping) and "base" in changes):
            # A title or description edit changes nothing the decision reads; evaluating
            # would let anyone who can edit spend Policy Analyzer's 20 queries a day.
            return _ignored(
                Reason.TEXT_EDIT, f"PR #{number}: title or description edited; nothing to do"
            )
        return Verdict(Kind.CHANGE, number=number, opened=action in ("opened", "reopened"))
    if action == "closed":
        number = pr_number(payload)
        if payload["pull_request"].get("merged") is not True:
            return _ignored(
                Reason.CLOSED_UNMERGED, f"PR #{number} closed without merge; nothing to do"
            )
        # Only a trigger: the lifecycle re-reads whether and when it was merged.
        return Verdict(Kind.MERGE, number=number)
    return unhandled("pull_request", action)


def _review(action: str | None, payload: Mapping[str, Any]) -> Verdict:
    if action not in REVIEW_ACTIONS:
        return unhandled("pull_request_review", action)
    number = pr_number(payload)
    review = payload.get("review")
    user = review.get("user") if isinstance(review, Mapping) else None
    login = user.get("login") if isinstance(user, Mapping) else None
    state = review.get("state") if isinstance(review, Mapping) else None
    if action == "edited" or (
        action == "submitted" and isinstance(state, str) and state.lower() == "commented"
    ):
        # Neither can change the decision (an edit changes only a review's text, and a
        # comment never decides); evaluating would let any commenter spend Policy Analyzer's
        # daily queries. Skipping grants nothing: merges decide afresh.
        return _ignored(
            Reason.COMMENT_REVIEW, f"PR #{number}: review comment or edit; nothing to do"
        )
    pull = payload.get("pull_request")
    merged_at = pull.get("merged_at") if isinstance(pull, Mapping) else None
    after_merge = (
        action == "submitted" and isinstance(state, str) and state.lower() == "approved"
        and isinstance(merged_at, str) and bool(merged_at)
    )
    return Verdict(
        Kind.REVIEW, number=number, reviewer=login if isinstance(login, str) else None,
        after_merge=after_merge,
    )


def _rerun(
    event: str, action: str | None, payload: Mapping[str, Any], facts: Facts
) -> Verdict:
    """A person chose Re-run (`check_run`) or Re-run all checks (`check_suite`).

    GitHub sends `rerequested` only to the App whose check it is, and this service's App makes
    no check but `jit-access`; both are checked anyway, as is the head commit. Only a trigger:
    the PRs named are candidates, each read again, and what a Re-run does follows from what
    GitHub says about the PR then.
    """
    if action != "rerequested":
        return unhandled(event, action)
    ours = facts.app_id
    check = payload.get(event)
    if ours is None or not isinstance(check, Mapping):
        return _ignored(
            Reason.NOT_OUR_CHECK, f"ignored: {event}/{action} (the service publishes commit "
            "statuses, not check runs, without GitHub App credentials)"
        )
    app = check.get("app")
    named = app.get("id") if isinstance(app, Mapping) else None
    if not (_is_id(named) and named == ours):
        return _ignored(Reason.NOT_OUR_CHECK, f"ignored: {event} of another App")
    if event == "check_run" and check.get("name") != STATUS_CONTEXT:
        return _ignored(Reason.NOT_OUR_CHECK, f"ignored: check run {check.get('name')!r}")
    head = check.get("head_sha")
    if not isinstance(head, str) or not _SHA.match(head):
        raise MalformedPayload(f"payload has no valid {event}.head_sha")
    numbers: list[int] = []
    pulls = check.get("pull_requests")
    for pr in pulls if isinstance(pulls, list) else []:
        number = pr.get("number") if isinstance(pr, Mapping) else None
        if isinstance(number, int) and _is_id(number) and number < 2**31 and number not in numbers:
            numbers.append(number)
    # Our own check run names its PR in external_id: GitHub lists no PR for a fork's branch.
    hint = pr_hint(check.get("external_id")) if event == "check_run" else None
    if hint is not None and hint not in numbers:
        numbers.append(hint)
    return Verdict(Kind.RERUN, head_sha=head, numbers=tuple(numbers[:MAX_RERUN_PULLS]))


def _merge_group(action: str | None, payload: Mapping[str, Any]) -> Verdict:
    """The merge queue asks for the checks of a merge group (`checks_requested`); a group that
    is `destroyed` needs nothing."""
    if action != "checks_requested":
        return unhandled("merge_group", action)
    group = payload.get("merge_group")
    group = group if isinstance(group, Mapping) else {}
    head, base_sha, base_ref = group.get("head_sha"), group.get("base_sha"), group.get("base_ref")
    if not isinstance(head, str) or not _SHA.match(head):
        raise MalformedPayload("payload has no valid merge_group.head_sha")
    branch = (
        base_ref.removeprefix("refs/heads/")
        if isinstance(base_ref, str) and base_ref.startswith("refs/heads/") else None
    )
    if not branch:
        raise MalformedPayload("payload has no valid merge_group.base_ref")
    base = base_sha if isinstance(base_sha, str) and _SHA.match(base_sha) else branch
    number = queued_pr(group.get("head_ref") if isinstance(group.get("head_ref"), str) else None)
    return Verdict(
        Kind.MERGE_GROUP, head_sha=head, base=base, base_ref=branch,
        numbers=(number,) if number is not None else (),
    )


def _issue_comment(action: str | None, payload: Mapping[str, Any]) -> Verdict:
    """A new comment whose first line is `/jit revoke [reason]` on a pull request; every
    other comment, and every edit or deletion, is ignored (an edit must not turn an old
    comment into a command, nor repeat one)."""
    issue = payload.get("issue")
    comment = payload.get("comment")
    if not isinstance(issue, Mapping) or not isinstance(comment, Mapping):
        return _ignored(Reason.NOT_A_COMMAND, "ignored: not a comment on a pull request")
    body = comment.get("body")
    command = parse_command(body) if isinstance(body, str) else None
    if command is None or not isinstance(issue.get("pull_request"), Mapping):
        return _ignored(Reason.NOT_A_COMMAND, "ignored: no command for the service")
    if action != "created":
        return _ignored(
            Reason.NOT_A_COMMAND, f"ignored: a command in a comment {action}; only new "
            "comments are commands"
        )
    number = issue.get("number")
    comment_id = comment.get("id")
    user = comment.get("user")
    login = user.get("login") if isinstance(user, Mapping) else None
    created = comment.get("created_at")
    if (
        not _is_id(number) or not isinstance(number, int) or number >= 2**31
        or not isinstance(comment_id, int) or not _is_id(comment_id)
        or not isinstance(login, str) or not login
    ):
        raise MalformedPayload("issue_comment payload has no valid issue number, comment id "
                               "or author")
    return Verdict(
        Kind.REVOKE, number=number, comment_id=comment_id, commenter=login,
        comment_created_at=created if isinstance(created, str) else None,
        command_reason=command.reason,
    )


def _ignored(reason: Reason, message: str) -> Verdict:
    return Verdict(Kind.IGNORED, message, reason)


def _is_id(value: object) -> bool:
    """A GitHub id: a positive integer (JSON true is not 1)."""
    return isinstance(value, int) and not isinstance(value, bool) and value > 0
