"""Renderings of a `Decision`: the commit-status description and the PR comments (README:
lifecycle; README: activation).

Pure and deterministic (no clock): the same decision always renders the same text, so editing
the status comment in place with an unchanged body is a no-op the handler can skip.

Everything that came from a user must stay inert: it must not inject HTML or markdown, break
the summary table, ping people, link anywhere or cross-reference issues (a `#12` in a bot
comment adds a "mentioned" event to issue 12). Values a requester wrote on their own —
justification, project, role names, file paths, logins — are shown in inline code spans
(`_code`): GitHub renders nothing inside one (no mentions, `#N` or `owner/repo#N` references,
autolinked URLs or e-mail addresses, HTML, emphasis), whatever syntax it adds next, and the text
stays exactly as written, so it can be copied. Sentences that merely quote such values (problem
messages, reasons, the status description) cannot be code without becoming unreadable: they are
escaped (`_escape`) and every autolink trigger in them gets a zero-width joiner. Only the lists
of qualified reviewers and the activation comment mention on purpose.

Size. GitHub refuses comment bodies over 65,536 characters, and an unpostable status comment
fails every later event of the PR. Long lists are summarised (reasons per role, approvers,
mentions, problems), and `fit_comment` is the final guarantee for every comment.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
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
from webhook.core.names import STATUS_DESCRIPTION_MAX

# The markers live with the service's other records; imported under their own names so that
# `render` keeps offering them.
from webhook.core.records import ACTIVATION_FAILED_MARKER_PREFIX as ACTIVATION_FAILED_MARKER_PREFIX
from webhook.core.records import ACTIVATION_MARKER_PREFIX as ACTIVATION_MARKER_PREFIX
from webhook.core.records import COMMENT_MARKER as COMMENT_MARKER
from webhook.core.records import REFUSAL_MARKER_PREFIX as REFUSAL_MARKER_PREFIX
from webhook.core.records import activation_failed_marker as activation_failed_marker
from webhook.core.records import activation_marker as activation_marker
from webhook.core.records import refusal_marker as refusal_marker
from webhook.core.request_file import LOGIN

#: Problem codes that mean the service, not the policy, failed (handlers building an ERROR
#: decision for an upstream failure should use `service_error`).
SERVICE_ERROR_CODES = frozenset({"eligibility_unknown", "service_error", "too_many_reviews"})

#: Problems listed in one comment at most; GitHub caps comment bodies at 65536 characters.
MAX_PROBLEMS_SHOWN = 50

#: GitHub refuses longer comment bodies (422 "body is too long (maximum is 65536 characters)").
MAX_COMMENT_CHARS = 65536

#: Reasons shown per role; the others are counted by kind on one line.
MAX_REASONS_SHOWN = 5

#: Kinds of reasons named in that line; the rest are counted together.
MAX_REASON_KINDS = 5

#: Logins listed per role or mentioned as qualified reviewers; more are counted. Mentioning a
#: whole large group would also notify all of it.
MAX_LOGINS_SHOWN = 10

#: One problem message or reason shown at most this long (they quote request files).
MAX_ITEM_CHARS = 500

#: The last line of a comment that had to be cut to fit.
TRUNCATED_NOTICE = "_… the rest of this comment was left out: it would exceed GitHub's size limit._"

_ELLIPSIS = "…"
_ZWJ = "\u200d"
# Line breaks of every kind, and characters that reorder or hide text (Trojan Source).
_BREAKS = re.compile(r"\r\n|[\r\n\u0085\u2028\u2029\v\f]")
_INVISIBLE = re.compile(r"[\x00-\x08\x0e-\x1f\x7f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
# Markdown punctuation that can change rendering inline; `$` is GitHub math.
_MARKDOWN = re.compile(r"([\\`*_\[\]|~$])")
# What GitHub turns into a mention, a link or a cross-reference in plain text: every `@`
# (`@user`, `@org/team`, e-mail addresses, `owner/repo@sha`), `#` before a digit (`#12`,
# `owner/repo#12`), `GH-12`, a URL scheme's `://`, `www.`. A zero-width joiner goes after each
# trigger, where none of those patterns allows one.
_AUTOLINK = re.compile(
    r"@|#(?=[0-9])|(?<![A-Za-z0-9])GH(?=-[0-9])|:(?=//)|(?<![A-Za-z0-9])www(?=\.)",
    re.IGNORECASE,
)
_BACKTICKS = re.compile(r"`+")
# Details that differ between reviews of the same kind of reason: a commit, another reviewer.
_REASON_COMMIT = re.compile(r" ?\([0-9a-f]{4,40}\)")
_REASON_LOGIN = re.compile(r"@[A-Za-z0-9-]+")
_LEADING_MARKER = re.compile(r"<!--.*?-->")


# --------------------------------------------------------------------------------------------
# Commit status


def status_description(decision: Decision) -> str:
    """The `jit-access` commit-status description: why, in under 140 characters."""
    roles = decision.roles
    match decision.state:
        case State.READY if decision.break_glass:
            names = ", ".join(r.role for r in roles)
            text = f"Break-glass: ready without approval ({names})"
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
        case State.VETOED:
            who = sorted({login for r in roles for login in r.vetoed_by}, key=str.lower)
            names = ", ".join(r.role for r in roles if r.vetoed_by)
            text = (
                f"Vetoed by {', '.join('@' + _plain(w) for w in who)} ({names})" if who
                else "Vetoed"
            )
        case State.ERROR:
            codes = {p.code for p in decision.problems}
            if codes and codes <= SERVICE_ERROR_CODES:
                text = "Service error: see comment"
            else:
                text = "Policy error: see comment"
    return _truncate(text, STATUS_DESCRIPTION_MAX)


# --------------------------------------------------------------------------------------------
# The status comment, edited in place


#: Said first on every comment about a break-glass request.
BREAK_GLASS_HEADING = "🚨 Break-glass request"

_HEADINGS = {
    State.READY: "✅ Ready to merge",
    State.PENDING: "⏳ Waiting for approval",
    State.INVALID: "❌ Invalid request",
    State.NOT_ELIGIBLE: "❌ Not eligible",
    State.VETOED: "⛔ Vetoed",
    State.ERROR: "⚠️ This request cannot be evaluated",
}


def status_comment(decision: Decision, *, policy_hint: str | None = None) -> str:
    """The status comment (markdown, starts with COMMENT_MARKER); `policy_hint` adds a note."""
    heading = _HEADINGS[decision.state]
    if decision.break_glass:
        heading = f"{BREAK_GLASS_HEADING}: {heading}"
    lines = [COMMENT_MARKER, f"### jit-access: {heading}", ""]
    lines += [_escape(status_description(decision)), ""]
    if decision.break_glass:
        lines += [
            "> **This is a break-glass request** (`break_glass: true`): it needs no approval "
            "when the requester is eligible for every role. Its activation is logged as an "
            "alert, and qualified reviewers are asked to review it after the merge.",
            "",
        ]

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

    if decision.notes:
        lines += ["**Notes**", ""]
        lines += _note_bullets(decision.notes)
        lines.append("")

    lines += _next_steps(decision)

    if policy_hint:
        lines += ["", f"_Note from the policy:_ {_escape(policy_hint)}"]

    lines += ["", f"<sub>Evaluated for commit {_escape(_short(decision.pr.head_sha))}.</sub>"]
    return _finish(lines)


def _request_table(request: AccessRequest, decision: Decision) -> list[str]:
    """The request as a two-column table; what the requester wrote in code spans."""
    requester = _code(decision.pr.author, table=True)
    if decision.requester:
        requester += f" ({_code(decision.requester, table=True)})"
    return [
        "| Request | |",
        "|---|---|",
        f"| Requester | {requester} |",
        f"| Project | {_code(request.project, table=True)} |",
        f"| Roles | {', '.join(_code(r, table=True) for r in request.roles)} |",
        f"| Duration | {_span(request.duration)} |",
        f"| Justification | {_code(request.justification, table=True)} |",
    ] + (["| Break-glass | **yes** |"] if request.break_glass else [])


def _problem_bullets(problems: Iterable[Problem]) -> list[str]:
    """One bullet per problem, `path, line N: message`; capped so the comment stays postable."""
    items = list(problems)
    lines = []
    for problem in items[:MAX_PROBLEMS_SHOWN]:
        where = []
        if problem.path:
            where.append(_code(problem.path))
        if problem.line is not None:
            where.append(f"line {problem.line}")
        prefix = f"{', '.join(where)}: " if where else ""
        lines.append(f"- {prefix}{_escape(_clip(problem.message))}")
    if len(items) > MAX_PROBLEMS_SHOWN:
        lines.append(f"- … and {len(items) - MAX_PROBLEMS_SHOWN} more")
    return lines


def _note_bullets(notes: Iterable[str]) -> list[str]:
    """One bullet per eligibility note, escaped and capped like the problems."""
    items = list(notes)
    lines = [f"- {_escape(note)}" for note in items[:MAX_PROBLEMS_SHOWN]]
    if len(items) > MAX_PROBLEMS_SHOWN:
        lines.append(f"- … and {len(items) - MAX_PROBLEMS_SHOWN} more")
    return lines


def _role_bullets(roles: Iterable[RoleDecision]) -> list[str]:
    """Per role: how it is approved, who approved, what is missing, which rule applied and who
    may approve, which reviews counted as designated approvers' and which did not count (the
    first MAX_REASONS_SHOWN of each, then the others counted by kind)."""
    lines = []
    for role in roles:
        name = _code(role.role)
        match role.kind:
            case ApprovalKind.SELF:
                text = f"- {name}: self-approval (you may activate this role on your own)"
            case ApprovalKind.MULTI_PARTY:
                got = len(role.approvers)
                text = f"- {name}: multi-party approval, {_count(got, 'approval')}"
                if role.approvers:
                    text += f" ({_logins(role.approvers, _escape)})"
                text += f", {role.needed} more needed" if role.needed else ", complete"
            case ApprovalKind.BREAK_GLASS:
                text = f"- {name}: 🚨 break-glass, without approval"
            case ApprovalKind.NONE:
                text = f"- {name}: not eligible"
        if role.vetoed_by:
            text += f"; ⛔ vetoed by {_logins(role.vetoed_by, _escape)}"
        lines.append(text)
        rule = _rule_line(role)
        if rule:
            lines.append(f"  - {rule}")
        if role.kind is ApprovalKind.NONE:
            continue  # its reason is already listed under Problems
        counted = [r for r in role.reasons if _COUNTS in r]
        others = [r for r in role.reasons if _COUNTS not in r]
        lines += [f"  - {_escape(_clip(reason))}" for reason in counted[:MAX_REASONS_SHOWN]]
        if len(counted) > MAX_REASONS_SHOWN:
            lines.append(
                f"  - … and {_count(len(counted) - MAX_REASONS_SHOWN, 'more approval')} by "
                "designated approvers"
            )
        shown, rest = others[:MAX_REASONS_SHOWN], others[MAX_REASONS_SHOWN:]
        lines += [f"  - {_escape(_clip(reason))}" for reason in shown]
        if rest:
            lines.append(
                f"  - … and {_count(len(rest), 'more review')} that did not count: "
                f"{_reason_kinds(rest)}"
            )
    return lines


#: A reason that says why an approval counted (by a designated approver).
_COUNTS = "'s approval counts: "

#: How a reason says why a review did not count: what follows is its kind.
_DOES_NOT_COUNT = ("'s approval does not count: ", "'s request for changes is no veto: ")


def _rule_line(role: RoleDecision) -> str:
    """The rule applied to a role (README: rules) and who may approve it under that rule."""
    settings = role.settings
    if settings is None:
        return ""
    approval = settings.approval
    parts = [f"Rule {_code(settings.rule)}" if settings.rule else "Default policy"]
    if role.kind is ApprovalKind.MULTI_PARTY:
        parts.append(f"{_count(approval.required, 'approval')} required")
    if role.kind in (ApprovalKind.MULTI_PARTY, ApprovalKind.BREAK_GLASS) or approval.veto:
        who = ["qualified peers"] if approval.peers else []
        named = [_code(a) for a in approval.approvers if a.startswith("group:")]
        named += [_escape(login) for login in role.approver_logins]
        if named:
            more = len(named) - MAX_LOGINS_SHOWN
            shown = ", ".join(named[:MAX_LOGINS_SHOWN]) + (f" and {more} more" if more > 0 else "")
            who.append(f"designated approvers {shown}")
        asked = "who may review" if role.kind is ApprovalKind.BREAK_GLASS else "who may approve"
        parts.append(f"{asked}: {' and '.join(who) if who else 'nobody'}")
    if approval.veto:
        parts.append("a qualified reviewer's request for changes vetoes it")
    return "; ".join(parts)


def _reason_kinds(reasons: Sequence[str]) -> str:
    """`kind (count)` for each kind of reason, the commonest first."""
    kinds = Counter(_reason_kind(_clip(reason)) for reason in reasons)
    ordered = sorted(kinds.items(), key=lambda item: (-item[1], item[0]))
    parts = [f"{_escape(_clip(kind))} ({n})" for kind, n in ordered[:MAX_REASON_KINDS]]
    others = sum(n for _, n in ordered[MAX_REASON_KINDS:])
    if others:
        parts.append(f"other reasons ({others})")
    return "; ".join(parts)


def _reason_kind(reason: str) -> str:
    """Why a review did not count, without who gave it: `@bob's approval does not count: has
    no identity mapping` is of the kind `has no identity mapping`."""
    text = reason
    for said in _DOES_NOT_COUNT:
        _, found, why = reason.partition(said)
        if found:
            text = why
            break
    if "(" in text:
        text = _REASON_COMMIT.sub("", text)
    return _REASON_LOGIN.sub("another reviewer", text) if "@" in text else text


def _next_steps(decision: Decision) -> list[str]:
    """What the people on this PR can do next."""
    head = _escape(_short(decision.pr.head_sha))
    match decision.state:
        case State.READY if decision.break_glass:
            lines = [
                "**Merge this pull request to activate the access (break-glass).** The service "
                "checks everything again at merge time and comments with the expiry."
            ]
            if decision.candidate_reviewers:
                lines += [
                    "",
                    "After the merge these qualified reviewers are asked to review it: "
                    f"{_logins(decision.candidate_reviewers, _escape)}.",
                ]
            return lines
        case State.READY:
            return [
                "**Merge this pull request to activate the access.** The service checks "
                "everything again at merge time and comments with the expiry."
            ]
        case State.PENDING:
            lines = ["**Who may approve**", ""]
            if decision.candidate_reviewers:
                mentions = _logins(decision.candidate_reviewers, _mention)
                lines.append(f"Qualified reviewers: {mentions}")
            else:
                lines.append(
                    "No qualified reviewer with an identity mapping was found; ask an "
                    "administrator."
                )
            lines += [
                "",
                f"To approve, review this pull request and choose **Approve** on its current "
                f"head commit ({head}). Only approvals by a role's qualified reviewers count "
                f"(peers eligible for it through multi-party approval, where the rule lets "
                f"them, and its designated approvers); a new push needs new approvals.",
            ]
            return lines
        case State.INVALID:
            return ["Fix the request file and push a new commit; this comment will update."]
        case State.NOT_ELIGIBLE:
            return [
                "If you believe you should be eligible, ask an administrator to check your "
                "eligible role bindings and policy/identities.yaml."
            ]
        case State.VETOED:
            who = sorted({login for r in decision.roles for login in r.vetoed_by}, key=str.lower)
            by = f" ({_logins(who, _escape)})" if who else ""
            return [
                f"A qualified reviewer{by} requested changes, and the rule of the role lets that "
                "block it. The veto ends when that reviewer approves or their review is "
                "dismissed; until then a merge activates nothing."
            ]
        case State.ERROR:
            return ["This cannot be fixed in this pull request: please contact an administrator."]


# --------------------------------------------------------------------------------------------
# Verdicts on PRs that ask for no access (check run summaries; no comment is posted)


def not_a_request_summary() -> str:
    """The check run summary of a PR that touches nothing under requests/."""
    return (
        "### jit-access: ✅ Not an access request\n\nThis pull request changes nothing under "
        "`requests/`, so there is no access to decide: the check passes."
    )


def revocation_summary(paths: Sequence[str], ends: Sequence[str] = ()) -> str:
    """The check run summary of a revocation PR: the request files it deletes and, when known,
    the PRs whose access it ends."""
    lines = [
        "### jit-access: ✅ Revocation", "",
        "This pull request only deletes request files. Revoking ends access and needs no "
        "approval.", "",
    ]
    if ends:
        lines += ["**Ends the access of**", ""]
        lines += [f"- {_escape(reference)}" for reference in ends[:MAX_PROBLEMS_SHOWN]]
        lines.append("")
    lines += ["**Deletes**", ""]
    lines += [f"- {_code(path)}" for path in paths[:MAX_PROBLEMS_SHOWN]]
    if len(paths) > MAX_PROBLEMS_SHOWN:
        lines.append(f"- … and {len(paths) - MAX_PROBLEMS_SHOWN} more")
    return "\n".join(lines)


def cut(text: str, limit: int = STATUS_DESCRIPTION_MAX) -> str:
    """A status description or check title cut to fit, with an ellipsis."""
    return _truncate(text, limit)


def inert(text: str) -> str:
    """Text that may come from a requester, made inert for one line of markdown."""
    return _escape(text)


def code(text: str) -> str:
    """Text from a repository (a path) as an inert inline code span."""
    return _code(text)


def plain(text: str) -> str:
    """Text from a repository (a path, a login) for a status description: one line, without
    invisible characters."""
    return _plain(text)


# --------------------------------------------------------------------------------------------
# Comments after a merge (new comments, so that GitHub notifies the participants)


def activation_comment(
    decision: Decision, *, start: datetime, end: datetime, again: bool = False
) -> str:
    """The comment posted after activation: who, which roles, where, until when, approved how.

    `again`: posted by a later delivery because the first comment is missing; the access was
    granted then and may have ended since (expired, or removed by hand), so it says "was
    granted" rather than "now holds".
    """
    request = decision.request
    if request is None:  # decide() never makes a READY decision without a request
        raise ValueError("only a decision with a request can be activated")
    who = _mention(decision.pr.author)
    if decision.requester:
        who += f" ({_code(decision.requester)})"
    holds = "was granted" if again else "now holds"
    heading = "🚨 Break-glass access activated" if decision.break_glass else "🔓 Access activated"
    lines = [
        activation_marker(decision.pr.head_sha),
        f"### jit-access: {heading}",
        "",
        f"{who} {holds} these roles on project {_code(request.project)} until "
        f"**{rfc3339(end)}** (for {_span(end - start)}):",
        "",
    ]
    for role in decision.roles:
        text = f"- {_code(role.role)}"
        if role.kind is ApprovalKind.SELF:
            text += ": self-approved"
        elif role.kind is ApprovalKind.BREAK_GLASS:
            text += ": break-glass, without approval"
        else:
            text += ": approved by " + _logins(role.approvers, _mention)
        if role.resource_conditions:
            text += ", limited by the condition of the eligible binding"
        lines.append(text)
    lines += [
        "",
        f"Justification: {_code(request.justification)}",
        "",
        f"Active from {rfc3339(start)}. The binding expires on its own; the activation is "
        "recorded in the audit log.",
    ]
    if decision.break_glass:
        lines += ["", "**This was a break-glass request: the access was granted without "
                  "approval.** It needs a review after the fact: " + (
                      f"{_logins(decision.candidate_reviewers, _mention)}, please review this "
                      "pull request and choose **Approve** if the access was justified."
                      if decision.candidate_reviewers else
                      "no qualified reviewer with an identity mapping was found; ask an "
                      "administrator to review it.")]
    if again:
        lines += [
            "",
            "This comment is posted again from the record of the activation (the first one was "
            "deleted or could not be posted). The merge was decided once: nothing was granted "
            "anew, and the access may have ended since.",
        ]
    return _finish(lines)


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
    return _finish(lines)


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
        f"To retry within {_span(max_delay)} of the merge, choose **Re-run** on the "
        "`jit-access` check of this pull request (with the GitHub App), or have an "
        "administrator redeliver the merge event (Settings → Webhooks → Recent deliveries → "
        "Redeliver). Later, open a new request pull request.",
    ]
    return _finish(lines)


# --------------------------------------------------------------------------------------------
# Helpers


def rfc3339(moment: datetime) -> str:
    """An RFC 3339 UTC timestamp in whole seconds, `2026-11-29T12:00:00Z`; naive means UTC."""
    return utc_timestamp(moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment)


def fit_comment(body: str, limit: int = MAX_COMMENT_CHARS) -> str:
    """`body` as it may be posted: unchanged when within `limit`, else whole lines dropped from
    the end and TRUNCATED_NOTICE last.

    The first line (the hidden marker) always stays, and no line is ever cut in the middle: a
    cut could split a marker, or leave a code span open so that the requester text after it
    becomes live markdown. Sizes are counted in UTF-16 code units, never fewer than characters,
    so the result fits however GitHub counts.
    """
    if _size(body) <= limit:
        return body
    lines = body.split("\n")
    budget = limit - _size(TRUNCATED_NOTICE) - 2  # a blank line before it, a newline after
    kept: list[str] = []
    used = 0
    for line in lines:
        used += _size(line) + 1
        if used > budget:
            break
        kept.append(line)
    if not kept:  # a first line longer than the limit: only a marker at its start is kept
        marker = _LEADING_MARKER.match(lines[0])
        if marker is not None and _size(marker.group(0)) < budget:
            kept = [marker.group(0)]
    return "".join(f"{line}\n" for line in kept) + f"\n{TRUNCATED_NOTICE}\n"


def _finish(lines: list[str]) -> str:
    """A comment from its lines, the marker first: `<!--` is defused after the marker line
    (code spans show requester text as written, and a marker in it would make this comment
    pass for another of the service's records), and the whole is cut to fit if need be."""
    marker, rest = lines[0], "\n".join(lines[1:])
    return fit_comment(f"{marker}\n{rest.replace('<!--', '<' + _ZWJ + '!--')}\n")


def _escape(text: str) -> str:
    """User text made inert for one line of GitHub markdown: no HTML, markup, pipes, pings,
    links or cross-references."""
    text = _BREAKS.sub(" ", text)
    text = _INVISIBLE.sub("", text)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _MARKDOWN.sub(r"\\\1", text)
    # A zero-width joiner after each autolink trigger keeps the text readable but stops GitHub
    # from finding a mention, URL, e-mail address or issue reference in it.
    return _AUTOLINK.sub(lambda m: m.group(0) + _ZWJ, text)


def _code(text: str, *, table: bool = False) -> str:
    """Requester text as an inline code span, shown exactly as written and inert: GitHub finds
    no mention, reference, link or markup inside code. `table`: the span is in a table cell,
    whose pipes must be escaped even inside code (GitHub splits the row first, then removes
    the backslash)."""
    text = _INVISIBLE.sub("", _BREAKS.sub(" ", text))
    if not text:
        return ""
    if table:
        text = text.replace("|", "\\|")
    # The fence is longer than any run of backticks inside, so none of them can close it.
    fence = "`" * (max((len(run) for run in _BACKTICKS.findall(text)), default=0) + 1)
    # A space on each side is stripped again by the renderer: it keeps a backtick at either
    # end from joining the fence, and spaces at both ends from being stripped.
    if text[0] == "`" or text[-1] == "`" or (text[0] == " " and text[-1] == " " and text.strip()):
        text = f" {text} "
    return f"{fence}{text}{fence}"


def _logins(logins: Sequence[str], show: Callable[[str], str]) -> str:
    """The first MAX_LOGINS_SHOWN logins, each rendered by `show`, then how many more."""
    text = ", ".join(show(login) for login in logins[:MAX_LOGINS_SHOWN])
    more = len(logins) - MAX_LOGINS_SHOWN
    return f"{text} and {more} more" if more > 0 else text


def _clip(text: str) -> str:
    """One problem message or reason, at most MAX_ITEM_CHARS long."""
    return _truncate(text, MAX_ITEM_CHARS)


def _size(text: str) -> int:
    """Length in UTF-16 code units: characters, plus one for each outside the BMP."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _plain(text: str) -> str:
    """User text for the commit status: a single line without invisible characters."""
    return _INVISIBLE.sub("", _BREAKS.sub(" ", text))


def _mention(login: str) -> str:
    """`@login` that pings, for a valid GitHub login; anything else escaped (never pings)."""
    if LOGIN.fullmatch(login):
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
