"""Request files (README: request file): every rule, every problem at once, with codes and lines."""

from __future__ import annotations

from datetime import timedelta

import pytest

from webhook.core.model import (
    AccessRequest,
    ActivationSettings,
    JustificationSettings,
    Policy,
    Problem,
)
from webhook.core.request_file import justification_char_allowed, parse_request

GOOD = """\
project: payments-prod            # Google Cloud project ID
roles:                            # 1..max_roles distinct roles
  - roles/cloudsql.admin
duration: 2h                      # 30m, 2h, 1h30m, or ISO 8601 (PT2H)
justification: "INC-1234: restore the failed replica"
"""


def request(
    project: str = "payments-prod",
    roles: str = "[roles/cloudsql.admin]",
    duration: str = "2h",
    justification: str = '"INC-1234: restore"',
) -> str:
    return (
        f"project: {project}\nroles: {roles}\nduration: {duration}\n"
        f"justification: {justification}\n"
    )


def codes(text: str | bytes, settings: Policy | None = None) -> list[tuple[str, int | None]]:
    parsed, problems = parse_request(text, settings)
    assert parsed is None
    return [(p.code, p.line) for p in problems]


def only(text: str | bytes, settings: Policy | None = None) -> Problem:
    parsed, problems = parse_request(text, settings)
    assert parsed is None
    assert len(problems) == 1, problems
    return problems[0]


def test_spec_example_parses() -> None:
    assert parse_request(GOOD) == (
        AccessRequest(
            project="payments-prod",
            roles=("roles/cloudsql.admin",),
            duration=timedelta(hours=2),
            justification="INC-1234: restore the failed replica",
        ),
        (),
    )


def test_bytes_and_custom_roles() -> None:
    text = request(
        roles="[roles/cloudsql.admin, projects/payments-prod/roles/dbRestorer,"
        " organizations/123456789012/roles/custom.role_1]",
        duration="PT1H30M",
    ).encode()
    parsed, problems = parse_request(text)
    assert problems == ()
    assert parsed == AccessRequest(
        "payments-prod",
        (
            "roles/cloudsql.admin",
            "projects/payments-prod/roles/dbRestorer",
            "organizations/123456789012/roles/custom.role_1",
        ),
        timedelta(hours=1, minutes=30),
        "INC-1234: restore",
    )


def test_utf8_bom_is_accepted() -> None:
    parsed, problems = parse_request(b"\xef\xbb\xbf" + GOOD.encode())
    assert problems == ()
    assert parsed is not None and parsed.project == "payments-prod"


def test_all_problems_reported_at_once_in_line_order() -> None:
    text = (
        "project: 123\n"
        "roles: [roles/owner, roles/x, roles/x, projects/other-proj/roles/y, 'bad role']\n"
        "duration: 2\n"
        "justifcation: yes\n"
    )
    parsed, problems = parse_request(text)
    assert parsed is None
    assert [(p.code, p.line) for p in problems] == [
        ("wrong_type", 1),
        ("basic_role", 2),
        ("duplicate_role", 2),
        ("invalid_role", 2),
        ("wrong_type", 3),
        ("unknown_key", 4),
        ("missing_key", None),
    ]
    messages = [p.message for p in problems]
    assert messages[0] == "'project' must be a project ID in text, not a number; put it in quotes"
    assert "IAM conditions cannot be applied to basic roles" in messages[1]
    # The project is not text, so the custom role cannot be compared with it.
    assert messages[3] == (
        "'bad role' is not a role name; use roles/ID, projects/PROJECT/roles/ID "
        "or organizations/NUMBER/roles/ID"
    )
    assert messages[4] == (
        "'duration' must be a duration like 30m, 2h, 1h30m or PT2H, not a number; write 2h or 2m"
    )
    assert messages[5] == (
        "unknown key 'justifcation' (did you mean 'justification'?); "
        "the keys are project, roles, duration, justification"
    )
    assert messages[6] == "the key 'justification' is missing"


def test_missing_keys() -> None:
    assert codes("project: payments-prod\n") == [
        ("missing_key", None),
        ("missing_key", None),
        ("missing_key", None),
    ]


@pytest.mark.parametrize(
    ("text", "code", "line"),
    [
        ("", "empty", None),
        ("# only a comment\n", "empty", None),
        ("~\n", "empty", None),
        ("- a\n- b\n", "not_a_mapping", 1),
        ("just text\n", "not_a_mapping", 1),
        ("a: &x 1\n", "yaml_anchor", 1),
        ("project: !!str payments-prod\n", "yaml_tag", 1),
        ("project: payments-prod\n---\nroles: []\n", "multiple_documents", 2),
        ("project: [\n", "yaml_syntax", 2),
        ("\tproject: payments-prod\n", "yaml_syntax", 1),
        ("justification: INC-1: restore\n", "yaml_syntax", 1),
        ("project: payments-prod\x00\n", "control_character", 1),
        ("a: 1\n\x1b[31m: 2\n", "control_character", 2),
    ],
)
def test_document_level_problems(text: str, code: str, line: int | None) -> None:
    problem = only(text)
    assert (problem.code, problem.line) == (code, line)


def test_tab_message_is_helpful() -> None:
    assert only("\tproject: x\n").message == (
        "not valid YAML: a tab cannot indent or separate YAML; use spaces"
    )


def test_colon_message_suggests_quotes() -> None:
    assert "put values that contain ': ' in quotes" in only("justification: a: b\n").message


def test_anchor_and_alias_both_reported() -> None:
    assert codes("project: &p payments-prod\nroles: *p\n") == [
        ("yaml_anchor", 1),
        ("yaml_alias", 2),
    ]


def test_duplicate_and_merge_keys() -> None:
    text = GOOD + "project: other-project\n<<: {duration: 1h}\n"
    assert codes(text) == [("duplicate_key", 6), ("yaml_merge_key", 7)]
    assert parse_request(text)[1][0].message == (
        "the key 'project' appears twice (first on line 1); keep one"
    )


def test_non_string_key() -> None:
    assert codes(GOOD + "1: x\n") == [("invalid_key", 6)]


def test_size_limit_exactly_4096_bytes() -> None:
    padding = 4096 - len(GOOD.encode()) - 2
    at_limit = GOOD + "#" + "x" * padding + "\n"
    assert len(at_limit.encode()) == 4096
    assert parse_request(at_limit)[1] == ()
    over = GOOD + "#" + "x" * (padding + 1) + "\n"
    assert only(over) == Problem("too_large", "the file has 4097 bytes; at most 4096 allowed")


def test_size_counts_bytes_not_characters() -> None:
    text = GOOD + "# " + "é" * 2100 + "\n"  # 2 bytes each
    assert only(text).code == "too_large"


def test_invalid_utf8_reports_line() -> None:
    assert codes(b"project: payments-prod\nroles: [\xff]\n") == [("not_utf8", 2)]


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("Payments-Prod", "invalid_project"),
        ("pay", "invalid_project"),
        ("1payments", "invalid_project"),
        ("payments-", "invalid_project"),
        ("a" * 31, "invalid_project"),
        ("payments_prod", "invalid_project"),
        ("'payments-prod\u00a0'", "invalid_project"),  # nothing is trimmed silently
        ("' payments-prod'", "invalid_project"),
        ("yes", "wrong_type"),
        ("null", "wrong_type"),
        ("2026-01-01", "wrong_type"),
        ("[payments-prod]", "wrong_type"),
        ("{a: b}", "wrong_type"),
    ],
)
def test_project(value: str, code: str) -> None:
    problem = only(request(project=value))
    assert (problem.code, problem.line) == (code, 1)


def test_project_boundaries() -> None:
    assert parse_request(request(project="a" * 6))[1] == ()
    assert parse_request(request(project="a" * 30))[1] == ()
    assert only(request(project="a" * 5)).code == "invalid_project"


@pytest.mark.parametrize(
    ("roles", "expected"),
    [
        ("[]", [("no_roles", 2)]),
        ("roles/cloudsql.admin", [("wrong_type", 2)]),
        ("[roles/owner]", [("basic_role", 2)]),
        ("[roles/editor]", [("basic_role", 2)]),
        ("[roles/viewer]", [("basic_role", 2)]),
        ("[roles/]", [("invalid_role", 2)]),
        ("[cloudsql.admin]", [("invalid_role", 2)]),
        ("[roles/.admin]", [("invalid_role", 2)]),
        ("[roles/a/b]", [("invalid_role", 2)]),
        ("[roles/a-b]", [("invalid_role", 2)]),
        ("[projects/Bad/roles/x]", [("invalid_role", 2)]),
        ("[organizations/0123/roles/x]", [("invalid_role", 2)]),
        ("[folders/123/roles/x]", [("invalid_role", 2)]),
        ("[projects/other-project/roles/x]", [("foreign_custom_role", 2)]),
        ("[roles/a, roles/a]", [("duplicate_role", 2)]),
        ("[1, true]", [("wrong_type", 2), ("wrong_type", 2)]),
        ("[[roles/a]]", [("wrong_type", 2)]),
    ],
)
def test_roles(roles: str, expected: list[tuple[str, int]]) -> None:
    assert codes(request(roles=roles)) == expected


def test_role_lines_in_block_list() -> None:
    text = (
        "project: payments-prod\nroles:\n  - roles/a\n  - roles/owner\n  - nope\n"
        "duration: 1h\njustification: x\n"
    )
    assert codes(text) == [("basic_role", 4), ("invalid_role", 5)]


def test_role_count_limit_from_policy() -> None:
    policy = Policy("organizations/1", activation=ActivationSettings(max_roles=2))
    assert parse_request(request(roles="[roles/a, roles/b]"), policy)[1] == ()
    problem = only(request(roles="[roles/a, roles/b, roles/c]"), policy)
    assert problem == Problem("too_many_roles", "3 roles requested; at most 2 allowed", 2)


def test_default_role_count_limit_is_ten() -> None:
    ten = "[" + ", ".join(f"roles/r{i}" for i in range(10)) + "]"
    eleven = "[" + ", ".join(f"roles/r{i}" for i in range(11)) + "]"
    assert parse_request(request(roles=ten))[1] == ()
    assert only(request(roles=eleven)).code == "too_many_roles"


@pytest.mark.parametrize(
    ("duration", "code", "message"),
    [
        ("4m", "duration_too_short", "the duration 4m is shorter than the minimum 5m"),
        ("2h1s", "duration_too_long", "the duration 2h1s is longer than the maximum 2h"),
        ("PT3H", "duration_too_long", "the duration 3h is longer than the maximum 2h"),
        (
            "3d",
            "invalid_duration",
            "'duration': expected a duration like 30m, 2h, 1h30m or PT2H, got '3d'",
        ),
        ("P1D", "invalid_duration", None),
        ("0m", "invalid_duration", "'duration': '0m': the duration must be longer than zero"),
        ("2", "wrong_type", None),
        ("1:30", "wrong_type", None),  # YAML 1.1 reads this as the number 90
        ("1.5", "wrong_type", None),
        ("'2h'", None, None),
        ("5m", None, None),
    ],
)
def test_duration(duration: str, code: str | None, message: str | None) -> None:
    parsed, problems = parse_request(request(duration=duration))
    if code is None:
        assert problems == ()
        return
    assert [(p.code, p.line) for p in problems] == [(code, 3)]
    if message is not None:
        assert problems[0].message == message


def test_duration_bounds_from_policy() -> None:
    policy = Policy(
        "organizations/1",
        activation=ActivationSettings(
            min_duration=timedelta(hours=1), max_duration=timedelta(hours=8)
        ),
    )
    assert parse_request(request(duration="8h"), policy)[0] is not None
    assert only(request(duration="30m"), policy).message == (
        "the duration 30m is shorter than the minimum 1h"
    )


@pytest.mark.parametrize(
    ("justification", "expected"),
    [
        ('""', [("blank_justification", 4)]),
        ("'   '", [("blank_justification", 4)]),
        ("", [("wrong_type", 4)]),  # null
        ("123", [("wrong_type", 4)]),
        ("no", [("wrong_type", 4)]),
        ("[a]", [("wrong_type", 4)]),
        ("x" * 101, [("justification_too_long", 4)]),
        ('"line one\\nline two"', [("justification_invalid_character", 4)]),
        ('"tab\\there"', [("justification_invalid_character", 4)]),
        ('"evil \\u202Egnp.exe"', [("justification_invalid_character", 4)]),
        ('"zero\\u200Bwidth"', [("justification_invalid_character", 4)]),
        ('"para\\u2029graph"', [("justification_invalid_character", 4)]),
        ('"private \\uE000"', [("justification_invalid_character", 4)]),
        ('"' + "\\u202E" * 101 + '"', [
            ("justification_invalid_character", 4),
            ("justification_too_long", 4),
        ]),
    ],
)
def test_justification_problems(justification: str, expected: list[tuple[str, int]]) -> None:
    assert codes(request(justification=justification)) == expected


def test_justification_limits_count_characters() -> None:
    exactly = "é" * 100
    parsed, problems = parse_request(request(justification=exactly))
    assert problems == ()
    assert parsed is not None and parsed.justification == exactly
    assert only(request(justification="é" * 101)).message == (
        "'justification' has 101 characters; at most 100 allowed"
    )


def test_justification_block_scalar_with_newline_is_refused() -> None:
    text = request(justification="|\n  one\n  two")
    assert codes(text) == [("justification_invalid_character", 4)]
    assert parse_request(text)[1][0].message == (
        "'justification' must be a single line of visible text; it contains U+000A"
    )


def test_justification_is_trimmed_and_unicode_text_is_fine() -> None:
    parsed, problems = parse_request(request(justification="'  Réparer la base 🚑  '"))
    assert problems == ()
    assert parsed is not None and parsed.justification == "Réparer la base 🚑"


def test_justification_pattern_full_match_and_hint() -> None:
    policy = Policy(
        "organizations/1",
        justification=JustificationSettings(pattern=r"INC-\d+: .+", hint="INC-<number>: <why>"),
    )
    assert parse_request(request(justification='"INC-42: restore"'), policy)[1] == ()
    # A search would accept this; the pattern must match the whole justification.
    problem = only(request(justification='"see INC-42: restore"'), policy)
    assert problem == Problem(
        "justification_mismatch",
        "'justification' does not have the expected form: INC-<number>: <why>",
        4,
    )


def test_invalid_pattern_in_settings_fails_closed() -> None:
    policy = Policy("organizations/1", justification=JustificationSettings(pattern="("))
    assert only(request(), policy).code == "justification_mismatch"


def test_justification_char_allowed() -> None:
    assert justification_char_allowed("a")
    assert justification_char_allowed(" ")
    assert justification_char_allowed("🚑")
    assert not justification_char_allowed("\n")
    assert not justification_char_allowed("\u202e")  # RIGHT-TO-LEFT OVERRIDE
    assert not justification_char_allowed("\u2066")  # LEFT-TO-RIGHT ISOLATE
    assert not justification_char_allowed("\ufeff")
    assert not justification_char_allowed("\U000e0041")  # TAG LATIN CAPITAL LETTER A


def test_bom_inside_text_is_refused_in_justification() -> None:
    assert codes(request(justification='"a\\uFEFFb"')) == [("justification_invalid_character", 4)]


def test_unknown_key_suggestions() -> None:
    assert only(GOOD + "Project: x\n").message == (
        "unknown key 'Project' (did you mean 'project'?); "
        "the keys are project, roles, duration, justification"
    )
    assert only(GOOD + "comment: x\n").message == (
        "unknown key 'comment'; the keys are project, roles, duration, justification"
    )


def test_hostile_key_is_escaped_and_shortened_in_message() -> None:
    message = only(GOOD + '"\\u202Ekey' + "k" * 60 + '": x\n').message
    assert message.startswith("unknown key '\\u202ekey")
    assert "…'" in message
