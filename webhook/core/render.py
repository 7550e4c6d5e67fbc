"""Renderings of a `Decision`: the commit-status description and the PR comments (SPEC §5, §6).

Pure and deterministic (no clock): the same decision always renders the same text, so editing
the status comment in place with an unchanged body is a no-op the handler can skip.

Everything that came from a user (justification, problem messages quoting a request file,
logins) is escaped: it must not inject HTML or markdown, break the summary table, or ping
people. Only the lists of qualified reviewers and the activation comment mention on purpose.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from webhook.core.durations import format_duration, utc_timestamp
from webhook.core.model import (
    AccessRequest,
    ApprovalKind,
    Decision,
    Problem,
    PullRequestRef,
    RoleDecision,
    State,
)

# The markers live with the service's other records; imported under their own names so that
# `render` keeps offering them.
from webhook.core.records import ACTIVATION_FAILED_MARKER_PREFIX as ACTIVATION_FAILED_MARKER_PREFIX
from webhook.core.records import ACTIVATION_MARKER_PREFIX as ACTIVATION_MARKER_PREFIX
from webhook.core.records import COMMENT_MARKER as COMMENT_MARKER
from webhook.core.records import REFUSAL_MARKER_PREFIX as REFUSAL_MARKER_PREFIX
from webhook.core.records import activation_failed_marker as activation_failed_marker
from webhook.core.records import activation_marker as activation_marker
from webhook.core.records import refusal_marker as refusal_marker

#: GitHub limits commit-status descriptions; the SPEC asks for under 140 characters.
MAX_DESCRIPTION = 139

#: Problem codes that mean the service, not the policy, failed (handlers building an ERROR
#: decision for an upstream failure should use `service_error`).
SERVICE_ERROR_CODES = frozenset({"eligibility_unknown", "service_error", "too_many_reviews"})

#: Problems listed in one comment at most; GitHub caps comment bodies at 65536 characters.
MAX_PROBLEMS_SHOWN = 50

_ELLIPSIS = "…"
_ZWJ = "\u200d"
_LOGIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})")
# Line breaks of every kind, and characters that reorder or hide text (Trojan Source).
_BREAKS = re.compile(r"\r\n|[\r\n\u0085\u2028\u2029\v\f]")
_INVISIBLE = re.compile(r"[\x00-\x08\x0e-\x1f\x7f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
# Markdown punctuation that can change rendering inline; `$` is GitHub math.
_MARKDOWN = re.compile(r"([\\`*_\[\]|~$])")
_MENTION = re.compile(r"(?<![A-Za-z0-9])@")


# --------------------------------------------------------------------------------------------
# Commit status


def status_description(decision: Decision) -> str:
    """The `jit-access` commit-status description: why, in under 140 characters."""
    roles = decision.roles
    match decision.state:
        case State.READY:
            own = [r for r in roles if r.kind is ApprovalKind.SELF]
            if len(own) == len(roles):
                text = f"Ready: self-approval for {_count(len(own), 'role')}"
            else:
                text = f"Ready: approved by {', '.join(decision.approvers)}"
                if own:
                    text += f"; self-approval for {_count(len(own), 'role')}"
        case State.PENDING:
            waiting = [r for r in roles if r.needed > 0]
            needed = sum(r.needed for r in waiting)
            names = ", ".join(r.role for r in waiting)
            text = f"Waiting for {_count(needed, 'approval')} ({names})"
        case State.INVALID:
            problems = decision.problems
            if len(problems) == 1:
                text = f"Invalid request: {_plain(problems[0].message)}"
            else:
                text = f"Invalid request: {_count(len(problems), 'problem')}"
        case State.NOT_ELIGIBLE:
            if any(p.code == "no_identity_mapping" for p in decision.problems):
                text = f"Not eligible: {_plain(decision.pr.author)} has no identity mapping"
            else:
                names = ", ".join(r.role for r in roles if r.kind is ApprovalKind.NONE)
                text = f"Not eligible for {names}" if names else "Not eligible"
        case State.ERROR:
            codes = {p.code for p in decision.problems}
            if codes and codes <= SERVICE_ERROR_CODES:
                text = "Service error: see comment"
            else:
                text = "Policy error: see comment"
    return _truncate(text, MAX_DESCRIPTION)


# --------------------------------------------------------------------------------------------
# The status comment, edited in place


_HEADINGS = {
    State.READY: "✅ Ready to merge",
    State.PENDING: "⏳ Waiting for approval",
    State.INVALID: "❌ Invalid request",
    State.NOT_ELIGIBLE: "❌ Not eligible",
    State.ERROR: "⚠️ This request cannot be evaluated",
}


def status_comment(decision: Decision, *, policy_hint: str | None = None) -> str:
    """The status comment (markdown, starts with COMMENT_MARKER); `policy_hint` adds a note."""
    lines = [COMMENT_MARKER, f"### jit-access: {_HEADINGS[decision.state]}", ""]
    lines += [_escape(status_description(decision)), ""]

    if decision.request is not None:
        lines += _request_table(decision.request, decision)
        lines.append("")

    if decision.problems:
        lines += ["**Problems**", ""]
        lines += _problem_bullets(decision.problems)
        lines.append("")

    if decision.roles:
        lines += ["**Roles**", ""]
        lines += _role_bullets(decision.roles)
        lines.append("")

    lines += _next_steps(decision)

    if policy_hint:
        lines += ["", f"_Note from the policy:_ {_escape(policy_hint)}"]

    lines += ["", f"<sub>Evaluated for commit {_escape(_short(decision.pr.head_sha))}.</sub>"]
    return "\n".join(lines) + "\n"


def _request_table(request: AccessRequest, decision: Decision) -> list[str]:
    """The request as a two-column table; every cell escaped."""
    requester = _escape(decision.pr.author)
    if decision.requester:
        requester += f" ({_escape(decision.requester)})"
    return [
        "| Request | |",
        "|---|---|",
        f"| Requester | {requester} |",
        f"| Project | {_escape(request.project)} |",
        f"| Roles | {', '.join(_escape(r) for r in request.roles)} |",
        f"| Duration | {_span(request.duration)} |",
        f"| Justification | {_escape(request.justification)} |",
    ]


def _problem_bullets(problems: Iterable[Problem]) -> list[str]:
    """One bullet per problem, `path, line N: message`; capped so the comment stays postable."""
    items = list(problems)
    lines = []
    for problem in items[:MAX_PROBLEMS_SHOWN]:
        where = []
        if problem.path:
            where.append(_escape(problem.path))
        if problem.line is not None:
            where.append(f"line {problem.line}")
        prefix = f"{', '.join(where)}: " if where else ""
        lines.append(f"- {prefix}{_escape(problem.message)}")
    if len(items) > MAX_PROBLEMS_SHOWN:
        lines.append(f"- … and {len(items) - MAX_PROBLEMS_SHOWN} more")
    return lines


def _role_bullets(roles: Iterable[RoleDecision]) -> list[str]:
    """Per role: how it is approved, who approved, what is missing, which reviews did not count."""
    lines = []
    for role in roles:
        name = f"`{role.role}`" if "`" not in role.role else _escape(role.role)
        match role.kind:
            case ApprovalKind.SELF:
                lines.append(f"- {name}: self-approval (you may activate this role on your own)")
            case ApprovalKind.MULTI_PARTY:
                got = len(role.approvers)
                text = f"- {name}: multi-party approval, {_count(got, 'approval')}"
                if role.approvers:
                    text += f" ({', '.join(_escape(a) for a in role.approvers)})"
                text += f", {role.needed} more needed" if role.needed else ", complete"
                lines.append(text)
            case ApprovalKind.NONE:
                lines.append(f"- {name}: not eligible")
        if role.kind is ApprovalKind.MULTI_PARTY:
            # A NONE role's reason is already listed under Problems.
            lines += [f"  - {_escape(reason)}" for reason in role.reasons]
    return lines


def _next_steps(decision: Decision) -> list[str]:
    """What the people on this PR can do next."""
    head = _escape(_short(decision.pr.head_sha))
    match decision.state:
        case State.READY:
            return [
                "**Merge this pull request to activate the access.** The service checks "
                "everything again at merge time and comments with the expiry."
            ]
        case State.PENDING:
            lines = ["**Who may approve**", ""]
            if decision.candidate_reviewers:
                mentions = ", ".join(_mention(login) for login in decision.candidate_reviewers)
                lines.append(f"Qualified reviewers: {mentions}")
            else:
                lines.append(
                    "No qualified reviewer with an identity mapping was found; ask an "
                    "administrator."
                )
            lines += [
                "",
                f"To approve, review this pull request and choose **Approve** on its current "
                f"head commit ({head}). Only approvals by peers eligible for the role through "
                f"multi-party approval count; a new push needs new approvals.",
            ]
            return lines
        case State.INVALID:
            return ["Fix the request file and push a new commit; this comment will update."]
        case State.NOT_ELIGIBLE:
            return [
                "If you believe you should be eligible, ask an administrator to check your "
                "eligible role bindings and policy/identities.yaml."
            ]
        case State.ERROR:
            return ["This cannot be fixed in this pull request: please contact an administrator."]


# --------------------------------------------------------------------------------------------
# Comments after a merge (new comments, so that GitHub notifies the participants)


def activation_comment(decision: Decision, *, start: datetime, end: datetime) -> str:
    """The comment posted after activation: who, which roles, where, until when, approved how."""
    request = decision.request
    if request is None:  # decide() never makes a READY decision without a request
        raise ValueError("only a decision with a request can be activated")
    who = _mention(decision.pr.author)
    if decision.requester:
        who += f" ({_escape(decision.requester)})"
    lines = [
        activation_marker(decision.pr.head_sha),
        "### jit-access: 🔓 Access activated",
        "",
        f"{who} now holds these roles on project {_escape(request.project)} until "
        f"**{rfc3339(end)}** (for {_span(end - start)}):",
        "",
    ]
    for role in decision.roles:
        text = f"- `{role.role}`" if "`" not in role.role else f"- {_escape(role.role)}"
        if role.kind is ApprovalKind.SELF:
            text += ": self-approved"
        else:
            text += ": approved by " + ", ".join(_mention(a) for a in role.approvers)
        if role.resource_conditions:
            text += ", limited by the condition of the eligible binding"
        lines.append(text)
    lines += [
        "",
        f"Justification: {_escape(request.justification)}",
        "",
        f"Active from {rfc3339(start)}. The binding expires on its own; the activation is "
        "recorded in the audit log.",
    ]
    return "\n".join(lines) + "\n"


def refusal_comment(reason: str, *, pr: PullRequestRef, decision: Decision | None = None) -> str:
    """The comment for a merged request that is not activated, saying why in plain words."""
    lines = [
        refusal_marker(pr.head_sha),
        "### jit-access: 🚫 Access not activated",
        "",
        f"This request was merged but no access was granted: {_escape(reason)}",
    ]
    if decision is not None:
        lines += ["", f"Decision at merge time: {_escape(status_description(decision))}"]
        if decision.problems:
            lines += [""] + _problem_bullets(decision.problems)
    lines += ["", "To get access, open a new request pull request."]
    return "\n".join(lines) + "\n"


def activation_failed_comment(
    reason: str, decision: Decision, *, max_delay: timedelta, access_remains: bool = False
) -> str:
    """The comment for an activation that failed: what failed, whether access stands, how to
    retry. `access_remains`: the binding is in place without a confirmed audit entry."""
    outcome = (
        "**The IAM binding is still in place, without a confirmed audit entry.** An "
        "administrator must redeliver the merge event (which writes the missing audit entry) "
        "or remove the binding by hand."
        if access_remains
        else "No access was granted (a binding written before the failure has been removed "
        "again)."
    )
    lines = [
        activation_failed_marker(decision.pr.head_sha),
        "### jit-access: ⚠️ Activation failed",
        "",
        f"The request was approved and merged, but activating it failed: {_escape(reason)}",
        "",
        outcome,
        "",
        "An administrator can retry by redelivering the merge event (GitHub → Settings → "
        "Webhooks → Recent deliveries → Redeliver) within "
        f"{_span(max_delay)} of the merge; later, open a new request pull request.",
    ]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# Helpers


def rfc3339(moment: datetime) -> str:
    """An RFC 3339 UTC timestamp in whole seconds, `2026-11-29T12:00:00Z`; naive means UTC."""
    return utc_timestamp(moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment)


def _escape(text: str) -> str:
    """User text made inert for one line of GitHub markdown: no HTML, markup, pipes or pings."""
    text = _BREAKS.sub(" ", text)
    text = _INVISIBLE.sub("", text)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _MARKDOWN.sub(r"\\\1", text)
    # A zero-width joiner after `@` keeps the text readable but stops GitHub's mention parser;
    # an `@` inside a word (an email address) never mentions and is left intact for copying.
    return _MENTION.sub("@" + _ZWJ, text)


def _plain(text: str) -> str:
    """User text for the commit status: a single line without invisible characters."""
    return _INVISIBLE.sub("", _BREAKS.sub(" ", text))


def _mention(login: str) -> str:
    """`@login` that pings, for a valid GitHub login; anything else escaped (never pings)."""
    if _LOGIN.fullmatch(login):
        return f"@{login}"
    return _escape(login)


def _short(sha: str) -> str:
    """The 7-character abbreviation of a commit id."""
    return sha[:7]


def _count(n: int, noun: str) -> str:
    """`1 role`, `2 roles`."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _truncate(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, ending in `…` when cut."""
    return text if len(text) <= limit else text[: limit - 1] + _ELLIPSIS


def _span(duration: timedelta) -> str:
    """`2h`, `1h30m`; a negative span (a caller's mistake) shows as `0s` instead of failing."""
    return format_duration(max(duration, timedelta(0)))
