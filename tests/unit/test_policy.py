"""policy/jitaccess.yaml and policy/identities.yaml (README: policy)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from webhook.core.model import (
    ActivationSettings,
    ApprovalSettings,
    EligibilitySettings,
    EligibilitySourceName,
    Identities,
    JustificationSettings,
    Policy,
    Problem,
)
from webhook.core.policy import parse_identities, parse_policy

ROOT = Path(__file__).resolve().parents[2]

DOC_POLICY = """\
scope: organizations/123456789012   # or folders/N or projects/ID: where eligibility is searched
activation:
  min_duration: 5m
  max_duration: 2h
  max_roles: 10
  max_delay: 1h        # a merge older than this is never activated (replayed or late events)
justification:
  pattern: '.*'
  hint: 'Bug or case number'
eligibility:
  source: asset-inventory   # or policy-analyzer (§5)
  nested_groups: false      # true: transitive group membership (Cloud Identity Premium)
approval:
  required: 1          # approvals per multi-party-approval role
  max_age: 24h         # approvals older than this at merge time do not count
  request_reviewers: 3 # qualified peers the service asks to review (0 = none)
"""


def codes(text: str) -> list[tuple[str, int | None]]:
    policy, problems = parse_policy(text)
    assert policy is None
    return [(p.code, p.line) for p in problems]


def test_spec_example_equals_defaults() -> None:
    assert parse_policy(DOC_POLICY) == (Policy("organizations/123456789012"), ())


def test_shipped_policy_file_is_valid_and_default() -> None:
    text = (ROOT / "policy" / "jitaccess.yaml").read_bytes()
    assert parse_policy(text) == (Policy("organizations/123456789012"), ())


def test_only_scope_gives_all_defaults() -> None:
    policy, problems = parse_policy("scope: folders/42\n")
    assert problems == ()
    assert policy == Policy(
        scope="folders/42",
        activation=ActivationSettings(
            min_duration=timedelta(minutes=5),
            max_duration=timedelta(hours=2),
            max_roles=10,
            max_delay=timedelta(hours=1),
        ),
        justification=JustificationSettings(pattern=".*", hint="Bug or case number"),
        eligibility=EligibilitySettings(EligibilitySourceName.ASSET_INVENTORY, False),
        approval=ApprovalSettings(required=1, max_age=timedelta(hours=24), request_reviewers=3),
    )


def test_all_settings_read() -> None:
    text = """\
scope: projects/payments-prod
activation: {min_duration: PT10M, max_duration: 8h, max_roles: 3, max_delay: 30m}
justification: {pattern: 'INC-\\d+', hint: INC number}
eligibility: {source: policy-analyzer, nested_groups: true}
approval: {required: 2, max_age: 1h30m, request_reviewers: 0}
"""
    assert parse_policy(text) == (
        Policy(
            "projects/payments-prod",
            ActivationSettings(timedelta(minutes=10), timedelta(hours=8), 3, timedelta(minutes=30)),
            JustificationSettings(r"INC-\d+", "INC number"),
            EligibilitySettings(EligibilitySourceName.POLICY_ANALYZER, True),
            ApprovalSettings(2, timedelta(hours=1, minutes=30), 0),
        ),
        (),
    )


def test_empty_sections_mean_defaults() -> None:
    assert parse_policy("scope: organizations/1\nactivation:\napproval: {}\n") == (
        Policy("organizations/1"),
        (),
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", [("empty", None)]),
        ("- a\n", [("not_a_mapping", 1)]),
        ("activation: {}\n", [("missing_key", None)]),
        ("scope: organisations/1\n", [("invalid_scope", 1)]),
        ("scope: organizations/abc\n", [("invalid_scope", 1)]),
        ("scope: folders/\n", [("invalid_scope", 1)]),
        ("scope: projects/X\n", [("invalid_scope", 1)]),
        ("scope: organizations/1/folders/2\n", [("invalid_scope", 1)]),
        ("scope: 123\n", [("wrong_type", 1)]),
        ("scope:\n", [("wrong_type", 1)]),
        ("scope: organizations/1\nscop: x\n", [("unknown_key", 2)]),
        ("scope: organizations/1\nactivation: 5m\n", [("wrong_type", 2)]),
        ("scope: organizations/1\nactivation: {max_rolse: 2}\n", [("unknown_key", 2)]),
        ("scope: organizations/1\nactivation: {min_duration: 5}\n", [("wrong_type", 2)]),
        ("scope: organizations/1\nactivation: {max_duration: P1D}\n", [("invalid_duration", 2)]),
        ("scope: organizations/1\nactivation: {max_delay: 0m}\n", [("invalid_duration", 2)]),
        (
            "scope: organizations/1\nactivation: {min_duration: 3h}\n",
            [("invalid_duration_range", 2)],
        ),
        ("scope: organizations/1\nactivation: {max_roles: 0}\n", [("out_of_range", 2)]),
        ("scope: organizations/1\nactivation: {max_roles: 101}\n", [("out_of_range", 2)]),
        ("scope: organizations/1\nactivation: {max_roles: '3'}\n", [("wrong_type", 2)]),
        ("scope: organizations/1\nactivation: {max_roles: 2.5}\n", [("wrong_type", 2)]),
        ("scope: organizations/1\nactivation: {max_roles: true}\n", [("wrong_type", 2)]),
        ("scope: organizations/1\napproval: {required: 0}\n", [("out_of_range", 2)]),
        ("scope: organizations/1\napproval: {request_reviewers: -1}\n", [("out_of_range", 2)]),
        ("scope: organizations/1\napproval: {max_age: 1d}\n", [("invalid_duration", 2)]),
        ("scope: organizations/1\njustification: {pattern: '('}\n", [("invalid_pattern", 2)]),
        ("scope: organizations/1\njustification: {pattern: 5}\n", [("wrong_type", 2)]),
        ("scope: organizations/1\njustification: {hint: [a]}\n", [("wrong_type", 2)]),
        ("scope: organizations/1\neligibility: {source: cai}\n", [("invalid_source", 2)]),
        ("scope: organizations/1\neligibility: {source: [x]}\n", [("invalid_source", 2)]),
        ("scope: organizations/1\neligibility: {nested_groups: 'true'}\n", [("wrong_type", 2)]),
        ("scope: organizations/1\neligibility: {nested_groups: 1}\n", [("wrong_type", 2)]),
        ("scope: &s organizations/1\n", [("yaml_anchor", 1)]),
        ("scope: organizations/1\nscope: folders/2\n", [("duplicate_key", 2)]),
    ],
)
def test_invalid_policies(text: str, expected: list[tuple[str, int | None]]) -> None:
    assert codes(text) == expected


def test_all_problems_at_once_with_messages() -> None:
    text = """\
scope: organizations/1
activation:
  min_duration: 3h
  max_rolse: 2
approval:
  required: 0
  max_age: P1D
eligibility: {source: x, nested_groups: 'yes'}
justification: {pattern: '('}
"""
    policy, problems = parse_policy(text)
    assert policy is None
    assert problems == (
        Problem(
            "invalid_duration_range",
            "'activation.min_duration' must not be longer than 'activation.max_duration'",
            3,
        ),
        Problem(
            "unknown_key",
            "unknown key 'activation.max_rolse' (did you mean 'max_roles'?); "
            "the keys are min_duration, max_duration, max_roles, max_delay",
            4,
        ),
        Problem("out_of_range", "'approval.required' must be between 1 and 100, not 0", 6),
        Problem(
            "invalid_duration",
            "'approval.max_age': 'P1D': days, weeks, months and years are not supported; "
            "use hours, e.g. PT24H or 24h",
            7,
        ),
        Problem(
            "invalid_source",
            "'eligibility.source' must be one of asset-inventory, policy-analyzer, not 'x'",
            8,
        ),
        Problem("wrong_type", "'eligibility.nested_groups' must be true or false, not text", 8),
        Problem(
            "invalid_pattern",
            "'justification.pattern' is not a valid regular expression: "
            "missing ), unterminated subpattern at position 0",
            9,
        ),
    )


def test_policy_size_limit() -> None:
    text = "scope: organizations/1\n#" + "x" * (64 * 1024) + "\n"
    assert codes(text) == [("too_large", None)]


# --------------------------------------------------------------------------------------------
# identities


def test_identities_lower_cased() -> None:
    assert parse_identities("Alice: Alice@Example.COM\nbob: bob@example.com\n") == (
        Identities({"alice": "alice@example.com", "bob": "bob@example.com"}),
        (),
    )


def test_shipped_identities_file() -> None:
    identities, problems = parse_identities((ROOT / "policy" / "identities.yaml").read_bytes())
    assert problems == ()
    assert identities.email_for("ALICE") == "alice@example.com"
    assert identities.email_for("carol") == "carol@example.com"


def test_empty_identities() -> None:
    assert parse_identities("") == (Identities({}), ())
    assert parse_identities("# nobody yet\n") == (Identities({}), ())


def test_identities_problems_keep_valid_entries() -> None:
    text = """\
Alice: a1@example.com
alice: a2@example.com
bob: user:bob@example.com
'-x': c@example.com
carol: carol@example.com
dave: 42
erin: not-an-email
frank: 'frank@exämple.com'
"""
    identities, problems = parse_identities(text)
    assert identities == Identities({"carol": "carol@example.com"})
    assert [(p.code, p.line) for p in problems] == [
        ("duplicate_login", 2),
        ("invalid_email", 3),
        ("invalid_login", 4),
        ("wrong_type", 6),
        ("invalid_email", 7),
        ("invalid_email", 8),
    ]
    assert problems[0].message == (
        "'alice' is mapped twice (logins are case-insensitive; first on line 1)"
    )


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("- alice\n", "not_a_mapping"),
        ("123: a@example.com\n", "invalid_key"),
        ("a: &x b@example.com\n", "yaml_anchor"),
        ("\u212aim: kim@example.com\n", "invalid_login"),
        ("a" * 40 + ": a@example.com\n", "invalid_login"),
    ],
)
def test_identities_invalid(text: str, code: str) -> None:
    identities, problems = parse_identities(text)
    assert identities == Identities({})
    assert [p.code for p in problems] == [code]


def test_cleanup_remove_orphans_read_and_checked() -> None:
    policy, problems = parse_policy("scope: folders/42\ncleanup: {remove_orphans: true}\n")
    assert problems == () and policy is not None
    assert policy.cleanup.remove_orphans is True
    assert parse_policy("scope: folders/42\n")[0] == Policy("folders/42")
    _, problems = parse_policy("scope: folders/42\ncleanup: {remove_orphans: 'yes'}\n")
    assert [(p.code, p.line) for p in problems] == [("wrong_type", 2)]
    _, problems = parse_policy("scope: folders/42\ncleanup: {remove_orphan: true}\n")
    assert [p.code for p in problems] == ["unknown_key"]


def test_revokers_read_lower_cased_once() -> None:
    policy, problems = parse_policy(
        "scope: organizations/1\nrevocation:\n  revokers: [SecOps-Lead, alice, Alice]\n"
    )
    assert problems == ()
    assert policy is not None
    assert policy.revocation.revokers == ("secops-lead", "alice")
    default, _ = parse_policy("scope: organizations/1\n")
    assert default is not None and default.revocation.revokers == ()


@pytest.mark.parametrize("value", ["alice", "[alice@example.com]", "[1]", "[-bad]",
                                   "{a: b}"])
def test_invalid_revokers(value: str) -> None:
    policy, problems = parse_policy(f"scope: organizations/1\nrevocation:\n  revokers: {value}\n")
    assert policy is None
    assert [p.code for p in problems] == ["wrong_type"]
    assert "revocation.revokers" in problems[0].message


def test_unknown_revocation_key() -> None:
    policy, problems = parse_policy("scope: organizations/1\nrevocation:\n  revoker: [a]\n")
    assert policy is None and problems
