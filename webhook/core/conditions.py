"""IAM conditions in the jit-access format: eligibility markers, activation windows (§5, §6).

Pure string handling: no I/O, no clock. The formats match GoogleCloudPlatform/jit-access 1.x so
that both tools recognise each other's eligible bindings and activations.

Conditions are CEL. They are not evaluated here, only taken apart: a small lexer finds the
string literals and `//` comments (which run to the end of the line, wherever they start), and
the brackets and top-level `&&` and `||` around them. An expression that does not lex (a string
that never closes) or whose brackets do not balance is not CEL: IAM would not have stored it, and
it is read as neither eligible nor an activation.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from webhook.core.durations import utc_timestamp
from webhook.core.model import Binding, Marker

#: Title of every activation binding's condition, as jit-access writes it.
ACTIVATION_TITLE = "JIT access activation"

#: IAM limits a condition description to 256 characters.
MAX_DESCRIPTION = 256

_ELLIPSIS = "…"

#: The characters CEL treats as whitespace (its grammar: tab, line feed, form feed, CR, space).
_CEL_SPACE = " \t\n\f\r"
_CEL_WHITESPACE = re.compile(r"[ \t\n\f\r]+")

#: What may stand in front of a CEL string literal: raw, bytes, or raw bytes.
_STRING_PREFIXES = frozenset({"r", "R", "b", "B", "br", "bR", "Br", "BR"})

_OPENING = {"(": ")", "[": "]", "{": "}"}
_CLOSING = frozenset(_OPENING.values())


# --------------------------------------------------------------------------------------------
# Reading CEL's structure


@dataclass
class _Group:
    """A bracketed part of an expression (or the whole of it): where it is, what is in it."""

    start: int  # first index inside the brackets, in the comment-free code
    end: int  # index of the closing bracket (the code's length for the whole expression)
    ands: list[int] = field(default_factory=list)  # indexes of the `&&` directly inside
    has_or: bool = False  # whether a `||` stands directly inside


@dataclass(frozen=True)
class _Parsed:
    """An expression without its comments, and the bracket structure of what remains."""

    code: str
    root: _Group
    parens: Mapping[int, _Group]  # index of a `(` -> the group it opens


def _string_end(text: str, start: int, raw: bool) -> int:
    """Index just after the CEL string literal whose quote is at `start`; -1 if it never ends.

    Triple-quoted strings may span lines; the others end at the line's end, as in CEL. A
    backslash escapes the next character except in raw strings, which cannot hold their quote.
    """
    quote = text[start]
    triple = text.startswith(quote * 3, start)
    delimiter = quote * 3 if triple else quote
    i = start + len(delimiter)
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "\\" and not raw:
            i += 2
            continue
        if text.startswith(delimiter, i):
            return i + len(delimiter)
        if ch in "\r\n" and not triple:
            return -1
        i += 1
    return -1


def _is_word_char(ch: str) -> bool:
    return ch == "_" or (ch.isascii() and ch.isalnum())


def _parse(expression: str) -> _Parsed | None:
    """The expression's structure, comments removed; None if it does not lex or balance."""
    out: list[str] = []
    size = 0  # length of the code emitted so far
    root = _Group(0, 0)
    parens: dict[int, _Group] = {}
    stack: list[tuple[str, _Group]] = []  # (the closing bracket awaited, its group)
    current = root
    i = 0
    n = len(expression)
    while i < n:
        ch = expression[i]
        if ch == "/" and expression.startswith("//", i):
            newline = expression.find("\n", i)
            i = n if newline < 0 else newline  # the line break itself stays: it separates
            continue
        if _is_word_char(ch):
            j = i + 1
            while j < n and _is_word_char(expression[j]):
                j += 1
            if j < n and expression[j] in "\"'" and expression[i:j] in _STRING_PREFIXES:
                end = _string_end(expression, j, raw="r" in expression[i:j].lower())
                if end < 0:
                    return None
                j = end
            out.append(expression[i:j])
            size += j - i
            i = j
            continue
        if ch in "\"'":
            end = _string_end(expression, i, raw=False)
            if end < 0:
                return None
            out.append(expression[i:end])
            size += end - i
            i = end
            continue
        if ch in _OPENING:
            group = _Group(size + 1, -1)
            if ch == "(":
                parens[size] = group
            stack.append((_OPENING[ch], current))
            current = group
        elif ch in _CLOSING:
            if not stack or stack[-1][0] != ch:
                return None
            current.end = size
            current = stack.pop()[1]
        elif ch == "&" and expression.startswith("&&", i):
            current.ands.append(size)
            out.append("&&")
            size += 2
            i += 2
            continue
        elif ch == "|" and expression.startswith("||", i):
            current.has_or = True
            out.append("||")
            size += 2
            i += 2
            continue
        out.append(ch)
        size += 1
        i += 1
    if stack:
        return None
    root.end = size
    return _Parsed("".join(out), root, parens)


def _trim(code: str, lo: int, hi: int) -> tuple[int, int]:
    """`code[lo:hi]` without CEL whitespace at either end, as bounds."""
    while lo < hi and code[lo] in _CEL_SPACE:
        lo += 1
    while hi > lo and code[hi - 1] in _CEL_SPACE:
        hi -= 1
    return lo, hi


def _unwrap(parsed: _Parsed, lo: int, hi: int) -> tuple[int, int, _Group | None]:
    """The bounds inside any parentheses enclosing all of `code[lo:hi]`, and the innermost such
    group (None when nothing encloses it)."""
    group: _Group | None = None
    while True:
        lo, hi = _trim(parsed.code, lo, hi)
        inner = parsed.parens.get(lo)
        if inner is None or inner.end != hi - 1:
            return lo, hi, group
        group = inner
        lo, hi = inner.start, inner.end


def _pieces(parsed: _Parsed, group: _Group) -> list[tuple[int, int]]:
    """The group's `&&` clauses as bounds (one clause if a `||` stands beside them: in CEL
    `&&` binds tighter, so `a && b || c` is `(a && b) || c` and no part of it must hold alone)."""
    if group.has_or:
        return [_trim(parsed.code, group.start, group.end)]
    bounds: list[tuple[int, int]] = []
    lo = group.start
    for cut in [*group.ands, group.end]:
        piece = _trim(parsed.code, lo, cut)
        if piece[0] < piece[1]:
            bounds.append(piece)
        lo = cut + 2
    return bounds


def _top_level_clauses(expression: str) -> list[str] | None:
    """The top-level `&&` clauses of an expression (comments removed); None if it is not CEL."""
    parsed = _parse(expression)
    if parsed is None:
        return None
    return [parsed.code[lo:hi] for lo, hi in _pieces(parsed, parsed.root)]


def _conjuncts(parsed: _Parsed) -> list[str]:
    """Every part that must hold for the whole to hold, redundant parentheses taken off.

    `(a && (b && c)) && (d || e)` has the conjuncts `a`, `b`, `c` and `d || e`: a parenthesised
    conjunction among the clauses is split too, since `&&` does not care how it is grouped.
    """
    out: list[str] = []
    todo: list[_Group | tuple[int, int]] = [parsed.root]
    while todo:
        item = todo.pop()
        if not isinstance(item, _Group):
            out.append(parsed.code[item[0] : item[1]])
            continue
        children: list[_Group | tuple[int, int]] = []
        for lo, hi in _pieces(parsed, item):
            inner_lo, inner_hi, inner = _unwrap(parsed, lo, hi)
            if inner is not None and inner.ands and not inner.has_or:
                children.append(inner)
            else:
                children.append((inner_lo, inner_hi))
        todo.extend(reversed(children))
    return out


# --------------------------------------------------------------------------------------------
# Eligibility markers


def _as_marker(clause: str) -> Marker | None:
    """The marker a clause is, compared lower-cased without whitespace (CEL's), like jit-access.

    A clause wrapped in redundant parentheses, `(has({}.jitAccessConstraint))`, is *not* a marker:
    jit-access compares the normalised clause text with the marker text and does not unwrap
    parentheses, and recognising more than it does would make the two tools disagree about who
    is eligible.
    """
    normalised = _CEL_WHITESPACE.sub("", clause).lower()
    for marker in Marker:
        if normalised == marker.value:
            return marker
    return None


# How jit-access 1.8 reads a marker (`ProjectRole.EligibilityCondition`, `IamCondition.splitAnd`):
# it drops lines that start with `//`, splits on `&&` outside round brackets while its count of
# `'` and its count of `"` are both even (escapes and nesting of quotes ignored), then compares
# each clause, lower-cased and without spaces (U+0020 only), with a pattern in which Java's `\s`
# is ASCII whitespace and the `.` before the constraint name stands for any character.
_JAVA_SPACE = "[ \t\n\x0b\f\r]*"
_JAVA_ANY = "[^\n\r\u0085\u2028\u2029]"
_JITACCESS_PATTERNS = {
    marker: re.compile(
        rf"{_JAVA_SPACE}has\({_JAVA_SPACE}\{{{_JAVA_SPACE}\}}{_JAVA_ANY}{name}"
        rf"{_JAVA_SPACE}\){_JAVA_SPACE}"
    )
    for marker, name in (
        (Marker.SELF_APPROVAL, "jitaccessconstraint"),
        (Marker.MULTI_PARTY, "multipartyapprovalconstraint"),
    )
}


def _java_trim(text: str) -> str:
    """`String.trim()`: every character up to U+0020 taken off both ends."""
    lo, hi = 0, len(text)
    while lo < hi and text[lo] <= " ":
        lo += 1
    while hi > lo and text[hi - 1] <= " ":
        hi -= 1
    return text[lo:hi]


def _jitaccess_split_and(expression: str) -> list[str]:
    """The clauses jit-access 1.8 splits an expression into, quirks included."""
    lines = expression.split("\n")
    while lines and lines[-1] == "":  # Java's split drops trailing empty strings
        lines.pop()
    text = "\n".join(line for line in lines if not _java_trim(line).startswith("//"))
    clauses: list[str] = []
    current: list[str] = []
    depth = singles = doubles = 0
    i = 0
    while i < len(text):
        ch = text[i]
        if (
            ch == "&"
            and depth == 0
            and singles % 2 == 0
            and doubles % 2 == 0
            and text.startswith("&&", i)
        ):
            clauses.append("".join(current))
            current = []
            i += 2
            continue
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1  # may go negative: jit-access does not stop it
        elif ch == "'":
            singles += 1
        elif ch == '"':
            doubles += 1
        current.append(ch)
        i += 1
    if current:
        clauses.append("".join(current))
    return clauses


def _jitaccess_markers(expression: str | None) -> set[Marker]:
    """The markers jit-access 1.8 finds among a condition's clauses, quirks included."""
    if not expression or not expression.strip():
        return set()
    found: set[Marker] = set()
    for clause in _jitaccess_split_and(expression):
        normalised = clause.lower().replace(" ", "")
        for marker, pattern in _JITACCESS_PATTERNS.items():
            if clause and pattern.fullmatch(normalised):
                found.add(marker)
    return found


def _deciding(found: set[Marker]) -> Marker | None:
    """The marker that decides when these are found: self-approval wins, as in jit-access."""
    if Marker.SELF_APPROVAL in found:
        return Marker.SELF_APPROVAL
    return Marker.MULTI_PARTY if found else None


def jitaccess_marker(expression: str | None) -> Marker | None:
    """The marker jit-access 1.8 would read in a condition, quirks included (None: not eligible).

    Only used to keep this service's own reading from ever being more permissive.
    """
    return _deciding(_jitaccess_markers(expression))


def marker_of(expression: str | None) -> tuple[Marker | None, tuple[str, ...]]:
    """The eligibility marker of a binding condition and its resource-condition clauses.

    Returns `(None, ())` when the condition carries no marker as a top-level `&&` clause. When
    both markers are present, self-approval wins (as in jit-access). The other clauses (markers
    excluded) are returned trimmed, in their original text (comments removed) and order.

    The reading follows CEL: comments wherever they start, `||` binding looser than `&&`,
    brackets of every kind and string literals of every kind. A marker counts only if
    jit-access 1.8 finds it too (its quote counting, for one, finds fewer), so that this service
    never allows more than jit-access would: a condition jit-access reads as multi-party is
    never self-approval here, and one in which it finds no marker is never eligible.
    """
    if not expression:
        return None, ()
    clauses = _top_level_clauses(expression)
    if clauses is None:
        return None, ()
    found = {m for m in (_as_marker(c) for c in clauses) if m is not None}
    marker = _deciding(found & _jitaccess_markers(expression)) if found else None
    if marker is None:
        return None, ()
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


def _without_comments(condition: str) -> str:
    """A resource condition without its comments, so that it can be embedded in another
    expression; ValueError if it is not CEL on its own (it could otherwise close the window's
    parentheses early and escape them)."""
    parsed = _parse(condition)
    if parsed is None:
        raise ValueError(f"not a well-formed CEL condition: {condition!r}")
    lo, hi = _trim(parsed.code, 0, len(parsed.code))
    return parsed.code[lo:hi]


def activation_expression(
    start: datetime, end: datetime, resource_conditions: Sequence[str] = ()
) -> str:
    """The CEL expression of an activation: a time window, limited by any resource conditions.

    One condition `c` gives `<window> && (c)`; several give `<window> && ((c1) || (c2))`: the
    disjunction is parenthesised as a whole, because `&&` binds tighter than `||` in CEL and
    `<window> && (c1) || (c2)` would grant `c2` outside the window. Comments are taken out of
    the conditions: a `//` runs to the end of the line and would swallow the closing `)`.
    """
    window = (
        f'(request.time >= timestamp("{_timestamp(start)}") && '
        f'request.time < timestamp("{_timestamp(end)}"))'
    )
    conditions = [c for c in (_without_comments(c) for c in resource_conditions) if c]
    if not conditions:
        return window
    if len(conditions) == 1:
        return f"{window} && ({conditions[0]})"
    return f"{window} && ({' || '.join(f'({c})' for c in conditions)})"


_S = "[ \t\n\f\r]*"
_RFC3339 = (
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?"
    r"(?:Z|[+-][0-9]{2}:[0-9]{2})"
)
_TIME_BOUND = {
    op: re.compile(
        rf"request{_S}\.{_S}time{_S}{op}{_S}timestamp{_S}\({_S}"
        rf"(?P<q>[\"'])(?P<at>{_RFC3339})(?P=q){_S}\)"
    )
    for op in (">=", "<")
}


@dataclass(frozen=True)
class Activation:
    """What an activation condition says: when it holds, and on which resources.

    `start` and `end` bound the time it grants access; `resource_clauses` are its other
    top-level `&&` clauses (empty: every resource the role covers).
    """

    start: datetime
    end: datetime
    resource_clauses: tuple[str, ...] = ()


def _parse_timestamp(text: str) -> datetime | None:
    """An RFC 3339 timestamp as an aware UTC datetime, or None."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return moment.astimezone(UTC)


def _bound(op: str, conjunct: str) -> datetime | None:
    match = _TIME_BOUND[op].fullmatch(conjunct)
    return _parse_timestamp(match["at"]) if match else None


def read_activation(expression: str | None) -> Activation | None:
    """The window and resource clauses of an activation expression; None if it has no window.

    The window is a top-level `&&` clause `request.time >= timestamp("…") && request.time <
    timestamp("…")`, as jit-access writes it: in any number of enclosing parentheses, with any
    whitespace (line breaks included) and comments, before, between or after the resource
    clauses. An expression whose window stands under a `||` is not limited by it and is no
    activation. Should there be several windows, the access is their overlap: the latest start
    and the earliest end.
    """
    if not isinstance(expression, str):
        return None
    parsed = _parse(expression)
    if parsed is None:
        return None
    conjuncts = _conjuncts(parsed)
    starts = [_bound(">=", c) for c in conjuncts]
    ends = [_bound("<", c) for c in conjuncts]
    if not any(s is not None and e is not None for s, e in zip(starts, ends[1:], strict=False)):
        return None
    rest = tuple(
        c for c, s, e in zip(conjuncts, starts, ends, strict=True) if s is None and e is None
    )
    return Activation(
        start=max(s for s in starts if s is not None),
        end=min(e for e in ends if e is not None),
        resource_clauses=rest,
    )


def parse_activation_expression(expr: str) -> tuple[datetime, datetime] | None:
    """The (start, end) of an activation window expression, or None if it is not one."""
    activation = read_activation(expr)
    return None if activation is None else (activation.start, activation.end)


def activation_of(condition: Mapping[str, Any] | Binding | None) -> Activation | None:
    """The activation an IAM condition (or a binding) is, or None: its title is `JIT access
    activation` and its expression has an activation window (`read_activation`).

    Cleanup, the replacement of earlier activations, revocation and reconciliation all read
    activations here, so that they agree, and so that jit-access's own are recognised too.
    """
    title: Any
    expression: Any
    if isinstance(condition, Binding):
        title, expression = condition.title, condition.expression
    elif isinstance(condition, Mapping):
        title, expression = condition.get("title"), condition.get("expression")
    else:
        return None
    if title != ACTIVATION_TITLE:
        return None
    return read_activation(expression)


def _truncate(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, ending in `…` when cut."""
    if len(text) <= limit:
        return text
    if limit <= 0:
        return ""
    return text[: limit - 1] + _ELLIPSIS


def activation_description(
    approvers: Sequence[str], justification: str, pr_reference: str, *, break_glass: bool = False
) -> str:
    """The condition description: who approved, why, and the PR; at most 256 characters.

    A break-glass activation, granted without approval, says so (`Break-glass, justification:
    …`) rather than looking self-approved in the IAM policy.

    The justification is shortened first, then the approvers; the PR reference is never cut
    because it is what links the binding back to its audit trail (and makes activation
    idempotent).
    """
    suffix = f" ({pr_reference})"
    if not approvers:
        prefix = "Break-glass, justification: " if break_glass else "Self-approved, justification: "
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
    *,
    break_glass: bool = False,
) -> Binding:
    """The expiring activation binding for one role and one user."""
    return Binding(
        role=role,
        member=f"user:{email}",
        title=ACTIVATION_TITLE,
        description=activation_description(
            approvers, justification, pr_reference, break_glass=break_glass
        ),
        expression=activation_expression(start, end, resource_conditions),
    )
