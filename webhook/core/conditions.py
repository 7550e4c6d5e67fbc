"""IAM conditions in the jit-access format: eligibility markers, activation windows (§5, §6).

Pure string handling: no I/O, no clock. The formats match GoogleCloudPlatform/jit-access 1.x so
that both tools recognise each other's eligible bindings and activations.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime

from webhook.core.durations import utc_timestamp
from webhook.core.model import Binding, Marker

#: Title of every activation binding's condition, as jit-access writes it.
ACTIVATION_TITLE = "JIT access activation"

#: IAM limits a condition description to 256 characters.
MAX_DESCRIPTION = 256

_ELLIPSIS = "…"
_WHITESPACE = re.compile(r"\s+")


# --------------------------------------------------------------------------------------------
# Eligibility markers


def _strip_comment_lines(expression: str) -> str:
    """The expression without whole-line `//` comments (CEL allows them; jit-access skips them)."""
    kept = [line for line in expression.splitlines() if not line.strip().startswith("//")]
    return "\n".join(kept)


def _top_level_clauses(expression: str) -> list[str]:
    """Split on `&&` outside parentheses and quoted strings; one clause if a top-level `||` exists.

    In CEL `&&` binds tighter than `||`, so `a && b || c` is `(a && b) || c`: none of its parts
    must hold on its own, and a marker in there would not restrict anything. The whole expression
    then is a single clause (which never equals a marker).
    """
    cuts: list[int] = []  # indexes of top-level `&&`
    depth = 0
    quote: str | None = None
    i = 0
    n = len(expression)
    while i < n:
        ch = expression[i]
        if quote is not None:
            if ch == "\\":
                i += 2  # skip the escaped character, whatever it is
                continue
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth = max(0, depth - 1)  # tolerate unbalanced input rather than fail
        elif depth == 0 and expression.startswith("||", i):
            return [expression.strip()]
        elif depth == 0 and expression.startswith("&&", i):
            cuts.append(i)
            i += 2
            continue
        i += 1
    clauses: list[str] = []
    start = 0
    for cut in cuts:
        clauses.append(expression[start:cut].strip())
        start = cut + 2
    clauses.append(expression[start:].strip())
    return [c for c in clauses if c]


def _as_marker(clause: str) -> Marker | None:
    """The marker a clause is, compared lower-cased with all whitespace removed, like jit-access.

    A clause wrapped in redundant parentheses, `(has({}.jitAccessConstraint))`, is *not* a marker:
    jit-access compares the normalised clause text with the marker text and does not unwrap
    parentheses, and recognising more than it does would make the two tools disagree about who
    is eligible.
    """
    normalised = _WHITESPACE.sub("", clause).lower()
    for marker in Marker:
        if normalised == marker.value:
            return marker
    return None


def marker_of(expression: str | None) -> tuple[Marker | None, tuple[str, ...]]:
    """The eligibility marker of a binding condition and its resource-condition clauses.

    Returns `(None, ())` when the condition carries no marker as a top-level `&&` clause. When
    both markers are present, self-approval wins (as in jit-access). The other clauses (markers
    excluded) are returned trimmed, in their original text and order.
    """
    if not expression:
        return None, ()
    clauses = _top_level_clauses(_strip_comment_lines(expression))
    found = {m for m in (_as_marker(c) for c in clauses) if m is not None}
    if not found:
        return None, ()
    marker = Marker.SELF_APPROVAL if Marker.SELF_APPROVAL in found else Marker.MULTI_PARTY
    rest = tuple(c for c in clauses if _as_marker(c) is None)
    return marker, rest


def resource_condition(clauses: Sequence[str]) -> str:
    """One binding's resource condition: its clauses joined by ` && `."""
    return " && ".join(clauses)


# --------------------------------------------------------------------------------------------
# Activation windows


def _timestamp(moment: datetime) -> str:
    """UTC in whole seconds with a `Z`, e.g. `2026-11-29T10:00:00Z` (naive times refused)."""
    return utc_timestamp(moment, "activation")


def activation_expression(
    start: datetime, end: datetime, resource_conditions: Sequence[str] = ()
) -> str:
    """The CEL expression of an activation: a time window, limited by any resource conditions.

    One condition `c` gives `<window> && (c)`; several give `<window> && ((c1) || (c2))`: the
    disjunction is parenthesised as a whole, because `&&` binds tighter than `||` in CEL and
    `<window> && (c1) || (c2)` would grant `c2` outside the window.
    """
    window = (
        f'(request.time >= timestamp("{_timestamp(start)}") && '
        f'request.time < timestamp("{_timestamp(end)}"))'
    )
    conditions = [c.strip() for c in resource_conditions if c.strip()]
    if not conditions:
        return window
    if len(conditions) == 1:
        return f"{window} && ({conditions[0]})"
    return f"{window} && ({' || '.join(f'({c})' for c in conditions)})"


_WINDOW = re.compile(
    r"""\s*(?P<open>\(?)\s*
    request\.time\s*>=\s*timestamp\(\s*(?P<q1>["'])(?P<start>[^"']{1,40})(?P=q1)\s*\)
    \s*&&\s*
    request\.time\s*<\s*timestamp\(\s*(?P<q2>["'])(?P<end>[^"']{1,40})(?P=q2)\s*\)
    \s*(?P<close>\)?)\s*(?P<rest>.*)""",
    re.VERBOSE | re.DOTALL,
)


def _parse_timestamp(text: str) -> datetime | None:
    """An RFC 3339 timestamp as an aware UTC datetime, or None."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return moment.astimezone(UTC)


def parse_activation_expression(expr: str) -> tuple[datetime, datetime] | None:
    """The (start, end) of an activation window expression, or None if it is not one."""
    if not isinstance(expr, str):
        return None
    match = _WINDOW.fullmatch(expr)
    if match is None or bool(match["open"]) != bool(match["close"]):
        return None
    rest = match["rest"].strip()
    if rest and not rest.startswith("&&"):
        return None  # e.g. `<window> || x` is not limited by the window
    start = _parse_timestamp(match["start"])
    end = _parse_timestamp(match["end"])
    if start is None or end is None:
        return None
    return start, end


def _truncate(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, ending in `…` when cut."""
    if len(text) <= limit:
        return text
    if limit <= 0:
        return ""
    return text[: limit - 1] + _ELLIPSIS


def activation_description(
    approvers: Sequence[str], justification: str, pr_reference: str
) -> str:
    """The condition description: who approved, why, and the PR; at most 256 characters.

    The justification is shortened first, then the approvers; the PR reference is never cut
    because it is what links the binding back to its audit trail (and makes activation
    idempotent).
    """
    suffix = f" ({pr_reference})"
    if not approvers:
        prefix = "Self-approved, justification: "
        room = MAX_DESCRIPTION - len(prefix) - len(suffix)
        text = prefix + _truncate(justification, room) + suffix
    else:
        names = ", ".join(approvers)
        fixed = len("Approved by ") + len(", justification: ") + len(suffix)
        room = MAX_DESCRIPTION - fixed
        if len(names) + len(justification) > room:
            # Keep at least one character (the ellipsis) of the justification visible.
            names = _truncate(names, max(room - 1, 0))
            justification = _truncate(justification, room - len(names))
        text = f"Approved by {names}, justification: {justification}{suffix}"
    # Only reachable with a reference longer than GitHub allows; stay within IAM's limit anyway.
    return _truncate(text, MAX_DESCRIPTION)


def build_binding(
    role: str,
    email: str,
    approvers: Sequence[str],
    justification: str,
    pr_reference: str,
    start: datetime,
    end: datetime,
    resource_conditions: Sequence[str] = (),
) -> Binding:
    """The expiring activation binding for one role and one user."""
    return Binding(
        role=role,
        member=f"user:{email}",
        title=ACTIVATION_TITLE,
        description=activation_description(approvers, justification, pr_reference),
        expression=activation_expression(start, end, resource_conditions),
    )
