"""Hostile values in a request file's fields (README: request file): roles, justification, duration.

Each case opens its own PR in one shared world, checks the status and comment, then merges
anyway (an admin bypassing branch protection) and proves the merge is refused too. A few
positive controls (`ready`) show where the line is; they are not merged here.
"""

from __future__ import annotations

import pytest

from jitaccess_sandbox.emulator import SELF, Emulator
from jitaccess_sandbox.fake_google_iam import iam_state
from tests.adversarial.conftest import (
    ACTIVATE,
    Case,
    activation_bindings,
    assert_no_grant,
    check,
    events,
    merge_and_assert_refused,
    request_yaml,
    status_comment_of,
)
from tests.inert import live_autolinks, outside_code

BASIC = "is a basic role; IAM conditions cannot be applied to basic roles"
NOT_A_ROLE = "is not a role name; use roles/ID, projects/PROJECT/roles/ID or organizations/NUMBER"
HINT = "does not have the expected form: an incident or change number"
INVISIBLE = "must be a single line of visible text; it contains"
BAD_DURATION = "expected a duration like 30m, 2h, 1h30m or PT2H, got"


def role(r: str) -> str:
    """A request for one role, the role written as a YAML single-quoted scalar."""
    quoted = r.replace("'", "''")
    return request_yaml(roles=(f"'{quoted}'",))


def justified(j: str) -> str:
    """A request with the justification as written (inside double quotes, YAML escapes work)."""
    return request_yaml(justification=j)


def lasting(d: str) -> str:
    return request_yaml(duration=d)


ROLE_CASES = [
    Case("owner", role("roles/owner"), "invalid", f"roles/owner {BASIC}"),
    Case("editor", role("roles/editor"), "invalid", f"roles/editor {BASIC}"),
    Case("viewer", role("roles/viewer"), "invalid", f"roles/viewer {BASIC}"),
    # IAM role names are case-sensitive: `roles/Owner` is not the basic role but a predefined
    # role that does not exist, so nobody can hold an eligible binding for it. It is refused as
    # not eligible (role names are compared exactly, never case-folded).
    Case("Owner", role("roles/Owner"), "not_eligible", "Not eligible for roles/Owner"),
    Case("OWNER", role("roles/OWNER"), "not_eligible", "Not eligible for roles/OWNER"),
    # ... and a case variant of an eligible role does not inherit its eligibility.
    Case("CLOUDSQL.ADMIN", role("roles/CLOUDSQL.ADMIN"), "not_eligible",
         "Not eligible for roles/CLOUDSQL.ADMIN"),
    Case("leading space", role(" roles/owner"), "invalid", f"' roles/owner' {NOT_A_ROLE}"),
    Case("trailing space", role("roles/owner "), "invalid", f"'roles/owner ' {NOT_A_ROLE}"),
    Case("trailing newline", request_yaml(roles=('"roles/owner\\n"',)), "invalid",
         f"'roles/owner\\u000a' {NOT_A_ROLE}"),
    Case("zero-width space", request_yaml(roles=('"roles/owner\\u200b"',)), "invalid",
         f"'roles/owner\\u200b' {NOT_A_ROLE}"),
    Case("newline inside", request_yaml(roles=('"roles/x\\nroles/owner"',)), "invalid",
         f"'roles/x\\u000aroles/owner' {NOT_A_ROLE}"),
    Case("traversal", role("roles/cloudsql.admin/../owner"), "invalid", NOT_A_ROLE),
    Case("wildcard", role("roles/*"), "invalid", NOT_A_ROLE),
    Case("CEL injection", role('roles/x") || true || ("'), "invalid", NOT_A_ROLE),
    Case("JSON injection", role('roles/x", "members": ["allUsers"]'), "invalid", NOT_A_ROLE),
    Case("member instead of role", role("allUsers"), "invalid", NOT_A_ROLE),
    Case("other project's custom role", role("projects/other-proj/roles/x"), "invalid",
         "projects/other-proj/roles/x is a custom role of project other-proj, not of "
         "payments-dev"),
    # README: request file allows organization custom roles; the role name alone grants nothing: the
    # requester must still be eligible for it (see the control test below).
    Case("organization role", role("organizations/999/roles/x"), "not_eligible",
         "Not eligible for organizations/999/roles/x"),
    Case("own project's custom role", role("projects/payments-dev/roles/x"), "not_eligible",
         "Not eligible for projects/payments-dev/roles/x"),
    Case("a valid role and a basic one",
         request_yaml(roles=("roles/cloudsql.admin", "roles/owner")), "invalid",
         f"roles/owner {BASIC}"),
    Case("duplicate", request_yaml(roles=("roles/cloudsql.admin", "roles/cloudsql.admin")),
         "invalid", "roles/cloudsql.admin is listed twice"),
    Case("too many", request_yaml(roles=tuple(f"roles/r{i}.admin" for i in range(6))),
         "invalid", "6 roles requested; at most 5 allowed"),
    Case("no role", "project: payments-dev\nroles: []\nduration: 1h\n"
         "justification: 'INC-1: x'\n", "invalid", "'roles' must list at least one role"),
    Case("roles as text", "project: payments-dev\nroles: roles/cloudsql.admin\nduration: 1h\n"
         "justification: 'INC-1: x'\n", "invalid", "'roles' must be a list of roles, not text"),
]

JUSTIFICATION_CASES = [
    # Trojan-Source style reordering: displays as "INC-1: root" while saying "toor".
    Case("RTL override", justified("INC-1: \\u202etoor"), "invalid", f"{INVISIBLE} U+202E"),
    Case("LTR isolate", justified("INC-1: \\u2066x\\u2069"), "invalid",
         f"{INVISIBLE} U+2066, U+2069"),
    Case("zero-width space", justified("INC-1:\\u200b x"), "invalid", f"{INVISIBLE} U+200B"),
    Case("zero-width joiner", justified("INC-1: x\\u200dy"), "invalid", f"{INVISIBLE} U+200D"),
    Case("BOM inside", justified("INC-1: \\ufeffx"), "invalid", f"{INVISIBLE} U+FEFF"),
    Case("soft hyphen", justified("INC-1: x\\u00ady"), "invalid", f"{INVISIBLE} U+00AD"),
    Case("line separator", justified("INC-1: x\\u2028INC-2"), "invalid", f"{INVISIBLE} U+2028"),
    Case("tab", justified("INC-1:\\tx"), "invalid", f"{INVISIBLE} U+0009"),
    # Homoglyph: Cyrillic І (U+0406) for the I of INC.
    Case("homoglyph", justified("\u0406NC-1: x"), "invalid", HINT),
    Case("full-width digit", justified("INC-\uff11: x"), "invalid", HINT),
    Case("Arabic-Indic digit", justified("INC-\u0661: x"), "invalid", HINT),
    Case("superscript digit", justified("INC-\u00b9: x"), "invalid", HINT),
    Case("combining mark on the number", justified("INC-1\u0301: x"), "invalid", HINT),
    Case("full-width colon", justified("INC-1\uff1a x"), "invalid", HINT),
    Case("newline escape", justified("INC-1: x\\nINC-2"), "invalid", f"{INVISIBLE} U+000A"),
    Case("literal block", "project: payments-dev\nroles:\n  - roles/cloudsql.admin\n"
         "duration: 1h\njustification: |\n  INC-1: x\n  INC-2\n", "invalid",
         f"{INVISIBLE} U+000A"),
    Case("pattern only on the second line", "project: payments-dev\nroles:\n"
         "  - roles/cloudsql.admin\nduration: 1h\njustification: |\n  restore\n  INC-2: x\n",
         "invalid", f"{INVISIBLE} U+000A"),
    Case("100 characters", justified("INC-1: " + "a" * 93), "ready"),
    Case("101 characters", justified("INC-1: " + "a" * 94), "invalid",
         "'justification' has 101 characters; at most 100 allowed"),
    Case("100 characters after trimming", justified("  INC-1: " + "a" * 93 + "  "), "ready"),
    Case("blank", justified("   "), "invalid", "'justification' must say why you need access"),
    Case("a number", "project: payments-dev\nroles:\n  - roles/cloudsql.admin\nduration: 1h\n"
         "justification: 1234\n", "invalid", "'justification' must be text, not a number"),
    Case("a list", "project: payments-dev\nroles:\n  - roles/cloudsql.admin\nduration: 1h\n"
         "justification: ['INC-1: x']\n", "invalid", "'justification' must be text, not a list"),
    # Quotes, `&&`, `)` and `||` are ordinary text: accepted, and never part of a condition.
    Case("CEL/JSON characters", justified('INC-7: say \\"hi\\" && drop ) || true'), "ready"),
    Case("markdown and HTML", justified("INC-7: <b>@carol</b> [x](http://e) `y`"), "ready"),
    Case("accents", justified("INC-7: r\u00e9tablir la r\u00e9plique"), "ready"),
]

DURATION_CASES = [
    Case("PT0.5H", lasting("PT0.5H"), "invalid", f"{BAD_DURATION} 'PT0.5H'"),
    Case("-PT1H", lasting("-PT1H"), "invalid", f"{BAD_DURATION} '-PT1H'"),
    Case("PT-1H", lasting("PT-1H"), "invalid", f"{BAD_DURATION} 'PT-1H'"),
    Case("-1h", lasting("-1h"), "invalid", f"{BAD_DURATION} '-1h'"),
    Case("P1D", lasting("P1D"), "invalid",
         "'P1D': days, weeks, months and years are not supported; use hours, e.g. PT24H or 24h"),
    Case("P0DT1H", lasting("P0DT1H"), "invalid", "days, weeks, months and years are not"),
    Case("PT1000000H", lasting("PT1000000H"), "invalid",
         "'PT1000000H': the duration is too long (at most 366 days)"),
    Case("99999999999h", lasting("99999999999h"), "invalid", f"{BAD_DURATION} '99999999999h'"),
    Case("1e3h", lasting("1e3h"), "invalid", f"{BAD_DURATION} '1e3h'"),
    Case("1.5h", lasting("1.5h"), "invalid", f"{BAD_DURATION} '1.5h'"),
    Case("0m", lasting("0m"), "invalid", "'0m': the duration must be longer than zero"),
    Case("PT0S", lasting("PT0S"), "invalid", "'PT0S': the duration must be longer than zero"),
    Case("0h30m", lasting("0h30m"), "ready"),
    Case("1h 30m", lasting("1h 30m"), "invalid", f"{BAD_DURATION} '1h 30m'"),
    Case("30m1h", lasting("30m1h"), "invalid", f"{BAD_DURATION} '30m1h'"),
    Case("3600 (a number)", lasting("3600"), "invalid",
         "'duration' must be a duration like 30m, 2h, 1h30m or PT2H, not a number; write 3600h "
         "or 3600m"),
    Case("'3600' (text)", lasting("'3600'"), "invalid", f"{BAD_DURATION} '3600'"),
    Case("2H", lasting("2H"), "invalid", f"{BAD_DURATION} '2H'"),
    Case("pt2h", lasting("pt2h"), "invalid", f"{BAD_DURATION} 'pt2h'"),
    Case("Arabic-Indic digit", lasting("\u0662h"), "invalid", BAD_DURATION),
    Case("full-width digit", lasting("\uff12h"), "invalid", BAD_DURATION),
    Case("PT4H (the maximum)", lasting("PT4H"), "ready"),
    Case("PT5H", lasting("PT5H"), "invalid", "the duration 5h is longer than the maximum 4h"),
    Case("4h1s", lasting("4h1s"), "invalid", "the duration 4h1s is longer than the maximum 4h"),
    Case("PT240M1S", lasting("PT240M1S"), "invalid", "the duration 4h1s is longer than the"),
    Case("4m59s", lasting("4m59s"), "invalid",
         "the duration 4m59s is shorter than the minimum 5m"),
    Case("5m (the minimum)", lasting("5m"), "ready"),
    Case("a list", lasting("[1h]"), "invalid", "'duration' must be a duration like 30m"),
]


@pytest.mark.parametrize("case", ROLE_CASES, ids=[c.id for c in ROLE_CASES])
def test_hostile_roles(shared_emu: Emulator, case: Case) -> None:
    check(shared_emu, case)


@pytest.mark.parametrize("case", JUSTIFICATION_CASES, ids=[c.id for c in JUSTIFICATION_CASES])
def test_hostile_justifications(shared_emu: Emulator, case: Case) -> None:
    check(shared_emu, case)


@pytest.mark.parametrize("case", DURATION_CASES, ids=[c.id for c in DURATION_CASES])
def test_hostile_durations(shared_emu: Emulator, case: Case) -> None:
    check(shared_emu, case)


# --------------------------------------------------------------------------------------------
# Where hostile text ends up after a grant


def test_a_justification_with_cel_and_json_characters_never_enters_the_condition(
    emu: Emulator,
) -> None:
    """The justification goes into the description (plain text for IAM), the audit entry and
    the request-reason header, exactly as written; the CEL expression is built from the
    service's own timestamps only."""
    text = 'INC-7: say "hi" && drop ) || true || ("'
    number = emu.open_request("alice", request_yaml(justification=text.replace('"', '\\"')))
    assert emu.pr_event("opened", number).body["state"] == "ready"
    assert emu.merge(number).body["state"] == "activated"
    [(resource, binding)] = activation_bindings(emu)
    assert resource == "projects/payments-dev"
    assert binding == {
        "role": "roles/cloudsql.admin",
        "members": ["user:alice@example.com"],
        "condition": {
            "title": "JIT access activation",
            "description": f"Self-approved, justification: {text} (acme/access#{number})",
            "expression": '(request.time >= timestamp("2026-11-29T10:00:00Z") && '
            'request.time < timestamp("2026-11-29T11:00:00Z"))',
        },
    }
    assert iam_state(emu.world).request_reasons == [("projects/payments-dev", text)]
    [entry] = [e for e in emu.audit() if e["labels"]["event"] == ACTIVATE]
    assert entry["labels"]["justification"] == text
    assert entry["jsonPayload"]["justification"] == text
    # In the activation comment the text is a code span: shown as written, never markup.
    comment = emu.comments(number)[-1]
    assert f"Justification: `{text}`\n" in comment


def test_markup_in_a_justification_is_inert_in_the_comments(emu: Emulator) -> None:
    number = emu.open_request(
        "alice", request_yaml(justification="INC-7: <img src=x> @carol [x](http://e) `y`")
    )
    emu.pr_event("opened", number)
    comment = status_comment_of(emu, number)
    # A code span, padded because the text ends with a backtick, fenced by a longer run.
    assert "| Justification | `` INC-7: <img src=x> @carol [x](http://e) `y` `` |\n" in comment
    assert "<img" not in outside_code(comment)
    assert live_autolinks(comment) == []
    assert_no_grant(emu)


def test_an_organization_custom_role_needs_eligibility(emu: Emulator) -> None:
    """README: request file allows `organizations/N/roles/…`; the role is granted only to someone
    eligible
    for it: carol is not, alice is (a self-approval binding on payments-dev)."""
    org_role = "organizations/123456789012/roles/dbOperator"
    iam_state(emu.world).custom_roles.add(org_role)
    emu.world.add_binding("projects/payments-dev", org_role, "user:alice@example.com", SELF)

    carols = emu.open_request("carol", role(org_role))
    assert emu.pr_event("opened", carols).body["state"] == "not_eligible"
    assert emu.status(carols)["description"] == f"Not eligible for {org_role}"  # type: ignore[index]
    merge_and_assert_refused(emu, carols, f"Not eligible for {org_role}")

    alices = emu.open_request("alice", role(org_role))
    assert emu.pr_event("opened", alices).body["state"] == "ready"
    assert emu.merge(alices).body["state"] == "activated"
    [(resource, binding)] = activation_bindings(emu)
    assert (resource, binding["role"], binding["members"]) == (
        "projects/payments-dev", org_role, ["user:alice@example.com"]
    )
    assert events(emu).count(ACTIVATE) == 1
