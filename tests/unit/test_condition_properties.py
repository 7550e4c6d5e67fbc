"""Properties of reading and writing conditions, over generated expressions.

- Markers are never read wider than jit-access 1.8 reads them (multi-party there is never
  self-approval here; nothing there is nothing here), and on plain conditions both agree.
- An activation's window is found wherever jit-access-style text puts it, and nowhere else.
- An activation expression embedding any well-formed resource condition (comments, `//` in
  strings, line breaks) is well-formed itself and keeps both the window and the condition.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jitaccess_sandbox.fake_google_iam import _cel_syntax_error
from webhook.core.conditions import (
    _top_level_clauses,
    activation_expression,
    jitaccess_marker,
    marker_of,
    read_activation,
    resource_condition,
)
from webhook.core.model import Marker

EXAMPLES = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
RANK = {None: 0, Marker.MULTI_PARTY: 1, Marker.SELF_APPROVAL: 2}
SELF = "has({}.jitAccessConstraint)"
MULTI = "has({}.multiPartyApprovalConstraint)"
_SPACE = re.compile(r"[ \t\n\f\r]+")


def squeeze(text: str) -> str:
    return _SPACE.sub("", text)


# --------------------------------------------------------------------------------------------
# Markers

NOISE = st.sampled_from(
    [
        " ", "\t", "\n", "\r\n", "\r", "\x0b", "\u00a0", "// c\n", "//", "\n// line\n",
        "(", ")", "[", "]", "{", "}", '"', "'", '"""', "\\", '"it\'s"', "'a\"b'", '"a\\"b"',
        'r"\\"', "x", "a < b", 'resource.name == "//x"', "true", "!", ".", " || ", "&&",
    ]
)
MARKERS = st.sampled_from(
    [SELF, MULTI, "HAS( {}.JitAccessConstraint )", "has\t({}.jitAccessConstraint)",
     " has( { }.multiPartyApprovalConstraint )\r\n"]
)
JOINS = st.sampled_from([" && ", "&&", " || ", "\n&& ", " // c\n&& ", " && // c ", "\n//&&\n"])


@st.composite
def hostile(draw: st.DrawFn) -> str:
    """Markers among other clauses, with noise (quotes, comments, brackets, odd spaces)."""
    clauses = draw(
        st.lists(st.one_of(MARKERS, st.lists(NOISE, max_size=3).map("".join)), max_size=5)
    )
    text = "".join(c + draw(JOINS) for c in clauses[:-1]) + (clauses[-1] if clauses else "")
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(NOISE) + text[at:]
    return text


HOSTILE = hostile()


@EXAMPLES
@given(HOSTILE)
def test_markers_are_never_read_wider_than_jitaccess_reads_them(expression: str) -> None:
    ours, clauses = marker_of(expression)
    theirs = jitaccess_marker(expression)
    assert RANK[ours] <= RANK[theirs]
    assert not (theirs is Marker.MULTI_PARTY and ours is Marker.SELF_APPROVAL)
    if ours is not None:
        # and it is a marker CEL sees: a top-level clause, not text in a comment or a string
        top = _top_level_clauses(expression) or []
        assert any(squeeze(c).lower() == ours.value for c in top)
        assert not any(squeeze(c).lower() in {m.value for m in Marker} for c in clauses)


PLAIN_CLAUSES = st.sampled_from(
    [
        SELF, MULTI, "HAS({}.MultiPartyApprovalConstraint)", " has( { }.jitAccessConstraint ) ",
        'resource.name == "a"', "a < b", 'resource.type == "storage.googleapis.com/Bucket"',
        "(a || b)", 'resource.name.startsWith("projects/_/buckets/logs")', "x",
    ]
)
PLAIN_JOINS = st.sampled_from([" && ", "&&", " &&\n", "\n&& ", " &&\r\n  ", "\n// why\n&& "])


@EXAMPLES
@given(st.lists(st.tuples(PLAIN_CLAUSES, PLAIN_JOINS), min_size=1, max_size=5))
def test_plain_conditions_are_read_as_jitaccess_reads_them(parts: list[tuple[str, str]]) -> None:
    expression = "".join(c + j for c, j in parts[:-1]) + parts[-1][0]
    marker, clauses = marker_of(expression)
    assert marker == jitaccess_marker(expression)
    if marker is not None:
        rest = [c for c, _ in parts if squeeze(c).lower() not in {m.value for m in Marker}]
        assert [squeeze(c) for c in clauses] == [squeeze(c) for c in rest]


# --------------------------------------------------------------------------------------------
# Activation windows

START = datetime(2040, 1, 1, 10, 0, tzinfo=UTC)
SPACES = st.sampled_from(["", " ", "  ", "\n", "\r\n", "\t", " \r\n  "])
RESOURCE = st.sampled_from(
    ["a<b", 'resource.name == "x"', "resource.name=='x' || resource.name=='y'",
     'resource.name.startsWith("//storage.googleapis.com/")']
)


@st.composite
def jitaccess_style(draw: st.DrawFn) -> tuple[str, datetime, datetime, list[str]]:
    """A window the way jit-access 1.x and people write it, among resource clauses."""
    end = START + timedelta(minutes=draw(st.integers(1, 60 * 24)))
    s = [draw(SPACES) for _ in range(8)]
    quote = draw(st.sampled_from(['"', "'"]))
    depth = draw(st.integers(0, 4))
    window = (
        f"request.time{s[0]}>={s[1]}timestamp({quote}2040-01-01T10:00:00Z{quote}){s[2]}&&{s[3]}"
        f"request.time{s[4]}<{s[5]}timestamp({quote}{end:%Y-%m-%dT%H:%M:%SZ}{quote})"
    )
    if depth == 0 and draw(st.booleans()):
        depth = 1
    window = "(" * depth + s[6] + window + s[7] + ")" * depth
    resources = draw(st.lists(RESOURCE, max_size=3))
    clauses = [f"({r})" for r in resources]
    clauses.insert(draw(st.integers(0, len(clauses))), window)
    joins = [draw(st.sampled_from([" && ", "&&", "\r\n&& ", " &&\n"])) for _ in clauses]
    expression = draw(SPACES) + "".join(c + j for c, j in zip(clauses, joins, strict=True))
    expression = expression[: -len(joins[-1])] + draw(SPACES)
    return expression, START, end, resources


@EXAMPLES
@given(jitaccess_style())
def test_the_window_is_found_wherever_it_stands(
    case: tuple[str, datetime, datetime, list[str]],
) -> None:
    expression, start, end, resources = case
    activation = read_activation(expression)
    assert activation is not None, expression
    assert (activation.start, activation.end) == (start, end)
    assert [squeeze(c) for c in activation.resource_clauses] == [squeeze(r) for r in resources]
    # ... and it does not count where it does not limit the access
    assert read_activation(f"({expression}) || true") is None
    assert read_activation(f"true || {expression}") is None
    assert read_activation(f"!({expression})") is None
    one_line = expression.replace("\n", " ")
    assert read_activation(f"x // {one_line}") is None


# --------------------------------------------------------------------------------------------
# Writing activations

ATOMS = st.sampled_from(
    [
        ('resource.name == "x"', 'resource.name == "x"'),
        ('resource.name.startsWith("//storage.googleapis.com/")',
         'resource.name.startsWith("//storage.googleapis.com/")'),
        ("resource.name.endsWith('/logs')", "resource.name.endsWith('/logs')"),
        ('resource.type == "a // b"', 'resource.type == "a // b"'),
        ("(a || b)", "(a || b)"),
        ('f(")")', 'f(")")'),
        ('r"\\" == x', 'r"\\" == x'),
        ('"""multi\nline // no comment""" == y', '"""multi\nline // no comment""" == y'),
    ]
)
SEPARATORS = st.sampled_from(
    [(" && ", " && "), (" && // why\n", " && \n"), ("\n&& ", "\n&& "), (" &&\r\n", " &&\r\n")]
)
TAILS = st.sampled_from([("", ""), (" // note", " "), ("// note )", ""), ("\n// note\n", "\n\n")])


@st.composite
def resource_conditions(draw: st.DrawFn) -> tuple[str, str]:
    """A well-formed resource condition with comments, and the same without them."""
    atoms = draw(st.lists(ATOMS, min_size=1, max_size=3))
    text, clean = atoms[0]
    for atom in atoms[1:]:
        sep = draw(SEPARATORS)
        text, clean = text + sep[0] + atom[0], clean + sep[1] + atom[1]
    tail = draw(TAILS)
    return text + tail[0], clean + tail[1]


@EXAMPLES
@given(st.lists(resource_conditions(), min_size=1, max_size=3))
def test_activation_expressions_embed_any_resource_condition(
    conditions: list[tuple[str, str]],
) -> None:
    end = START + timedelta(hours=1)
    expression = activation_expression(START, end, [text for text, _ in conditions])
    assert _cel_syntax_error(expression) is None, expression
    activation = read_activation(expression)
    assert activation is not None
    assert (activation.start, activation.end) == (START, end)
    # (compared without parentheses: redundant ones around a clause are taken off)
    if len(conditions) == 1:
        kept = resource_condition(activation.resource_clauses)
        assert unbracketed(kept) == unbracketed(conditions[0][1])
    else:  # one disjunction of them all
        [clause] = activation.resource_clauses
        assert unbracketed(clause) == unbracketed(" || ".join(c for _, c in conditions))


def unbracketed(text: str) -> str:
    return squeeze(text).replace("(", "").replace(")", "")
