"""IAM condition helpers: markers, activation windows, descriptions (README: lifecycle; README:
activation)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone

import pytest

from webhook.core.conditions import (
    ACTIVATION_TITLE,
    activation_description,
    activation_expression,
    activation_of,
    build_binding,
    marker_of,
    parse_activation_expression,
    read_activation,
    resource_condition,
)
from webhook.core.model import Binding, Marker

START = datetime(2026, 11, 29, 10, 0, 0, tzinfo=UTC)
END = datetime(2026, 11, 29, 12, 0, 0, tzinfo=UTC)
WINDOW = (
    '(request.time >= timestamp("2026-11-29T10:00:00Z") && '
    'request.time < timestamp("2026-11-29T12:00:00Z"))'
)


# --------------------------------------------------------------------------------------------
# marker_of


@pytest.mark.parametrize(
    "expression",
    [
        "has({}.jitAccessConstraint)",
        "HAS({}.JITACCESSCONSTRAINT)",
        "has( {}.jitAccessConstraint )",
        " has ( { } . jitAccessConstraint ) ",
        "has({}.jitAccessConstraint)\n",
        "has(\t{}.jitAccessConstraint)",
    ],
)
def test_self_approval_marker_variants(expression: str) -> None:
    assert marker_of(expression) == (Marker.SELF_APPROVAL, ())


def test_multi_party_marker() -> None:
    assert marker_of("has({}.multiPartyApprovalConstraint)") == (Marker.MULTI_PARTY, ())


@pytest.mark.parametrize("expression", [None, "", "   ", "true", "has({}.otherConstraint)"])
def test_no_marker(expression: str | None) -> None:
    assert marker_of(expression) == (None, ())


def test_marker_with_resource_conditions_keeps_original_text() -> None:
    expr = (
        "has({}.jitAccessConstraint) && "
        'resource.name.startsWith("projects/_/buckets/logs")  &&  resource.type == "x"'
    )
    assert marker_of(expr) == (
        Marker.SELF_APPROVAL,
        ('resource.name.startsWith("projects/_/buckets/logs")', 'resource.type == "x"'),
    )


def test_marker_not_first_clause() -> None:
    bucket = 'resource.type == "storage.googleapis.com/Bucket"'
    expr = bucket + " && has({}.multiPartyApprovalConstraint)"
    assert marker_of(expr) == (Marker.MULTI_PARTY, (bucket,))


def test_marker_under_top_level_or_is_not_eligible() -> None:
    assert marker_of("has({}.jitAccessConstraint) || true") == (None, ())
    assert marker_of("true || has({}.jitAccessConstraint)") == (None, ())
    # `&&` binds tighter than `||`: this is `(marker && a) || b`.
    assert marker_of("has({}.jitAccessConstraint) && a || b") == (None, ())


def test_or_inside_parentheses_is_a_resource_clause() -> None:
    assert marker_of("has({}.jitAccessConstraint) && (a || b)") == (
        Marker.SELF_APPROVAL,
        ("(a || b)",),
    )


def test_no_split_inside_quotes_or_parentheses() -> None:
    expr = (
        "has({}.jitAccessConstraint) && resource.name == \"a && b || c\" && "
        "f('x && \\' || y') && g(p && q)"
    )
    assert marker_of(expr) == (
        Marker.SELF_APPROVAL,
        ('resource.name == "a && b || c"', "f('x && \\' || y')", "g(p && q)"),
    )


def test_whole_line_comments_are_ignored() -> None:
    expr = (
        "// eligible for self-approval || anything\n"
        "has({}.jitAccessConstraint) &&\n"
        "  // only the logs bucket\n"
        '  resource.name == "logs"'
    )
    assert marker_of(expr) == (Marker.SELF_APPROVAL, ('resource.name == "logs"',))


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        # a comment runs to the end of the line wherever it starts
        (
            'request.time < timestamp("2030-01-01T00:00:00Z") // && has({}.jitAccessConstraint)',
            (None, ()),
        ),
        (
            "has({}.multiPartyApprovalConstraint) && x // && has({}.jitAccessConstraint)",
            (Marker.MULTI_PARTY, ("x",)),
        ),
        (
            "has({}.jitAccessConstraint) && // why\n  a && b // not c\n",
            (Marker.SELF_APPROVAL, ("a", "b")),
        ),
        # ... but `//` inside a string is no comment
        (
            'has({}.jitAccessConstraint) && resource.name.startsWith("//storage.googleapis.com/")'
            " // note",
            (Marker.SELF_APPROVAL, ('resource.name.startsWith("//storage.googleapis.com/")',)),
        ),
        (
            "has({}.jitAccessConstraint) && x == '// &&' && y == \"\"\"a\n// b\"\"\"",
            (Marker.SELF_APPROVAL, ("x == '// &&'", 'y == """a\n// b"""')),
        ),
    ],
)
def test_comments_end_at_the_end_of_the_line(
    expression: str, expected: tuple[Marker | None, tuple[str, ...]]
) -> None:
    assert marker_of(expression) == expected


def test_self_approval_wins_and_markers_are_not_resource_conditions() -> None:
    expr = "has({}.multiPartyApprovalConstraint) && has({}.jitAccessConstraint) && x"
    assert marker_of(expr) == (Marker.SELF_APPROVAL, ("x",))


def test_parenthesised_marker_is_not_recognised() -> None:
    # jit-access compares the normalised clause text and does not unwrap parentheses.
    assert marker_of("(has({}.jitAccessConstraint))") == (None, ())
    assert marker_of("(has({}.jitAccessConstraint) && x)") == (None, ())


def test_marker_as_substring_is_not_recognised() -> None:
    assert marker_of("!has({}.jitAccessConstraint)") == (None, ())
    assert marker_of("has({}.jitAccessConstraintX)") == (None, ())


@pytest.mark.parametrize(
    "expression",
    [
        "has({}.jitAccessConstraint) && ((x",
        ")) && has({}.jitAccessConstraint)",
        'has({}.jitAccessConstraint) && "unterminated && x',
        "has({}.jitAccessConstraint) && (x]",
        'has({}.jitAccessConstraint) && x == "line\nbreak"',
    ],
)
def test_expression_that_is_not_cel_is_never_eligible(expression: str) -> None:
    # IAM stores only conditions that parse; whatever else is read here grants nothing.
    assert marker_of(expression) == (None, ())


def test_resource_condition_joins_clauses() -> None:
    assert resource_condition(("a", "b == 1")) == "a && b == 1"
    assert resource_condition(()) == ""


# --------------------------------------------------------------------------------------------
# activation_expression / parse_activation_expression


def test_activation_expression_window_only() -> None:
    assert activation_expression(START, END) == WINDOW


def test_activation_expression_truncates_to_whole_seconds_and_converts_to_utc() -> None:
    cet = timezone(timedelta(hours=1))
    start = datetime(2026, 11, 29, 11, 0, 0, 999_999, tzinfo=cet)
    end = datetime(2026, 11, 29, 13, 0, 0, tzinfo=cet)
    assert activation_expression(start, end) == WINDOW


def test_activation_expression_one_resource_condition() -> None:
    assert activation_expression(START, END, ['resource.name == "a"']) == (
        WINDOW + ' && (resource.name == "a")'
    )


def test_activation_expression_several_resource_conditions() -> None:
    assert activation_expression(START, END, ["a && b", "c"]) == WINDOW + " && ((a && b) || (c))"


def test_activation_expression_takes_comments_out_of_resource_conditions() -> None:
    # `//` would run to the end of the line and swallow the `)` that closes the condition
    assert activation_expression(START, END, ['resource.name == "a" // note']) == (
        WINDOW + ' && (resource.name == "a")'
    )
    assert activation_expression(START, END, ['a // x\n && b == "//"', "c // y"]) == (
        WINDOW + ' && ((a \n && b == "//") || (c))'
    )


@pytest.mark.parametrize("condition", ["a) || (true", 'a == "b', "(a", "a]"])
def test_activation_expression_refuses_conditions_that_are_not_cel(condition: str) -> None:
    # embedded as they are, these could close the window's parentheses early and escape them
    with pytest.raises(ValueError, match="not a well-formed CEL condition"):
        activation_expression(START, END, [condition])


def test_activation_expression_refuses_naive_datetimes() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        activation_expression(datetime(2026, 11, 29, 10), END)


def test_parse_round_trip() -> None:
    assert parse_activation_expression(WINDOW) == (START, END)
    assert parse_activation_expression(activation_expression(START, END, ["a", "b"])) == (
        START,
        END,
    )


@pytest.mark.parametrize(
    "expression",
    [
        'request.time >= timestamp("2026-11-29T10:00:00Z") && '
        'request.time < timestamp("2026-11-29T12:00:00Z")',
        '( request.time>=timestamp( "2026-11-29T10:00:00Z" )&&'
        'request.time<timestamp("2026-11-29T12:00:00Z") )',
        "(request.time >= timestamp('2026-11-29T10:00:00Z') &&\n"
        " request.time < timestamp('2026-11-29T12:00:00Z'))",
        '(request.time >= timestamp("2026-11-29T10:00:00.000Z") && '
        'request.time < timestamp("2026-11-29T13:00:00+01:00"))',
    ],
)
def test_parse_tolerates_variants(expression: str) -> None:
    assert parse_activation_expression(expression) == (START, END)


@pytest.mark.parametrize(
    "expression",
    [
        "",
        "has({}.jitAccessConstraint)",
        'request.time < timestamp("2026-11-29T12:00:00Z")',
        '(request.time >= timestamp("2026-11-29T10:00:00Z") && '
        'request.time < timestamp("2026-11-29T12:00:00Z")',  # unbalanced
        WINDOW + " || true",
        '(request.time >= timestamp("yesterday") && '
        'request.time < timestamp("2026-11-29T12:00:00Z"))',
        '(request.time >= timestamp("2026-11-29T10:00:00") && '
        'request.time < timestamp("2026-11-29T12:00:00"))',  # no zone
    ],
)
def test_parse_rejects_non_windows(expression: str) -> None:
    assert parse_activation_expression(expression) is None


# --------------------------------------------------------------------------------------------
# activation_description


def test_description_self_approved() -> None:
    assert activation_description((), "INC-1", "acme/access#12") == (
        "Self-approved, justification: INC-1 (acme/access#12)"
    )


def test_description_approved() -> None:
    assert activation_description(("bob", "carol"), "INC-1", "acme/access#12") == (
        "Approved by bob, carol, justification: INC-1 (acme/access#12)"
    )


def test_description_truncates_justification_but_keeps_reference() -> None:
    text = activation_description(("bob",), "x" * 300, "acme/access#12")
    assert len(text) == 256
    assert text.startswith("Approved by bob, justification: xxx")
    assert text.endswith("x… (acme/access#12)")


def test_description_self_approved_truncation_is_exactly_256() -> None:
    text = activation_description((), "y" * 300, "acme/access#12")
    assert len(text) == 256
    assert text.endswith("y… (acme/access#12)")


def test_description_truncates_approvers_when_too_many() -> None:
    approvers = [f"reviewer-{i:03d}" for i in range(40)]
    text = activation_description(approvers, "INC-1", "acme/access#12")
    assert len(text) == 256
    assert text.startswith("Approved by reviewer-000, reviewer-001")
    assert text.endswith("…, justification: … (acme/access#12)")


def test_description_exactly_at_limit_is_not_truncated() -> None:
    prefix = "Self-approved, justification: "
    suffix = " (o/r#1)"
    j = "z" * (256 - len(prefix) - len(suffix))
    assert activation_description((), j, "o/r#1") == prefix + j + suffix


# --------------------------------------------------------------------------------------------
# bindings


@pytest.mark.parametrize(
    "expression",
    [
        WINDOW,
        f"(({WINDOW}))",
        f'\r\n  resource.name == "a"\r\n  && {WINDOW}\r\n',
        f'(a) && {WINDOW} && (resource.name == "a")',
        f'((a && ({WINDOW}))) && resource.name == "a"',
        WINDOW.replace(" && ", " && // granted by hand\n"),
    ],
)
def test_the_window_is_read_wherever_it_stands(expression: str) -> None:
    activation = read_activation(expression)
    assert activation is not None
    assert (activation.start, activation.end) == (START, END)
    assert set(activation.resource_clauses) <= {"a", 'resource.name == "a"'}
    binding = Binding("roles/x", "user:a@example.com", ACTIVATION_TITLE, "", expression)
    assert activation_of(binding) == activation
    assert activation_of(dataclasses.replace(binding, title="JIT access")) is None


@pytest.mark.parametrize(
    "expression",
    [
        f"({WINDOW}) || x",
        f"x || {WINDOW}",
        f"({WINDOW} || x)",
        f"!{WINDOW}",
        f"f({WINDOW})",
        f"[{WINDOW}][0]",
        f"x // && {WINDOW}",
        f'x == "{WINDOW}"'.replace('"2026', "'2026").replace('Z"', "Z'"),
        f"(({WINDOW})",
    ],
)
def test_a_window_that_does_not_limit_the_access_is_no_activation(expression: str) -> None:
    assert read_activation(expression) is None


def test_several_windows_grant_their_overlap() -> None:
    later = WINDOW.replace("T10:00", "T11:00").replace("T12:00", "T13:00")
    activation = read_activation(f"{WINDOW} && {later}")
    assert activation is not None
    assert (activation.start, activation.end) == (START + timedelta(hours=1), END)


def test_build_binding() -> None:
    binding = build_binding(
        "roles/cloudsql.admin",
        "alice@example.com",
        ("bob",),
        "INC-1234: restore",
        "acme/access#7",
        START,
        END,
        ('resource.name == "db"',),
    )
    assert binding == Binding(
        role="roles/cloudsql.admin",
        member="user:alice@example.com",
        title="JIT access activation",
        description="Approved by bob, justification: INC-1234: restore (acme/access#7)",
        expression=WINDOW + ' && (resource.name == "db")',
    )
