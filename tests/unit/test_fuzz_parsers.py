"""Hostile input never escapes the parsers as an exception: it becomes problems.

A corpus of known-nasty YAML, then property-based fuzzing with modest example counts.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from webhook.core.conditions import marker_of, parse_activation_expression
from webhook.core.durations import parse_duration
from webhook.core.model import AccessRequest, ChangedFile, Identities, Policy, Problem, PrShape
from webhook.core.policy import parse_identities, parse_policy
from webhook.core.request_file import check_pr_shape, parse_request
from webhook.core.rules import settings_for

GOOD = (
    "project: payments-prod\nroles: [roles/cloudsql.admin]\nduration: 1h\n"
    "justification: 'INC-1: restore'\n"
)


def request_codes(data: str | bytes) -> list[str]:
    parsed, problems = parse_request(data)
    assert parsed is None or isinstance(parsed, AccessRequest)
    assert all(isinstance(p, Problem) and p.code and p.message for p in problems)
    assert (parsed is None) == bool(problems)
    return [p.code for p in problems]


def policy_codes(data: str | bytes) -> list[str]:
    parsed, problems = parse_policy(data)
    assert parsed is None or isinstance(parsed, Policy)
    assert all(isinstance(p, Problem) and p.code and p.message for p in problems)
    assert (parsed is None) == bool(problems)
    return [p.code for p in problems]


def identities_codes(data: str | bytes) -> list[str]:
    parsed, problems = parse_identities(data)
    assert isinstance(parsed, Identities)
    assert all(isinstance(p, Problem) and p.code and p.message for p in problems)
    return [p.code for p in problems]


# --------------------------------------------------------------------------------------------
# Corpus: (input, expected codes from parse_request)

REQUEST_CORPUS: list[tuple[str | bytes, list[str]]] = [
    ("[" * 10_000, ["too_large"]),
    ("[" * 4000, ["too_deep"]),
    ("{a: " * 1000, ["too_deep"]),
    ("".join("  " * i + "- \n" for i in range(20)), ["too_deep"]),
    ("".join("  " * i + f"k{i}:\n" for i in range(20)), ["too_deep"]),
    ("project: " + "9" * 4000 + "\n", ["wrong_type", "missing_key", "missing_key", "missing_key"]),
    ("project: 1.0e+400\n", ["wrong_type", "missing_key", "missing_key", "missing_key"]),
    ("project: .nan\n", ["wrong_type", "missing_key", "missing_key", "missing_key"]),
    ("project: 2026-02-30\n", ["wrong_type", "missing_key", "missing_key", "missing_key"]),
    (b"\x00\x01\x02binary", ["control_character"]),
    (b"project: payments-prod\n\xc3\x28\n", ["not_utf8"]),
    (b"\xff\xfe" + "project: x".encode("utf-16-le"), ["not_utf8"]),
    (b"\xef\xbb\xbf" + GOOD.encode(), []),
    (b"\xef\xbb\xbf\xef\xbb\xbf" + GOOD.encode(), []),  # PyYAML drops a stream-start BOM
    ("project: \ud800\n", ["control_character"]),
    ("project: a\x7f\n", ["control_character"]),
    ("a: &a [1]\nb: &b [*a, *a]\nc: [*b, *b]\n", ["yaml_anchor", "yaml_anchor", "yaml_alias",
                                                 "yaml_alias", "yaml_alias", "yaml_alias"]),
    ("a: *undefined\n", ["yaml_alias"]),
    ("base: &b {project: x}\n<<: *b\n", ["yaml_anchor", "yaml_alias"]),
    (GOOD + "<<: {project: other-project}\n", ["yaml_merge_key"]),
    (GOOD + "project: other-project\n", ["duplicate_key"]),
    ("!!python/object/apply:os.system ['echo hi']\n", ["yaml_tag"]),
    ("project: !!python/name:os.system\n", ["yaml_tag"]),
    ("project: !!binary aGVsbG8=\n", ["yaml_tag"]),
    ("project: !custom x\n", ["yaml_tag"]),
    ("%YAML 1.1\n---\n" + GOOD, []),
    ("%TAG !e! tag:example.com,2000:\n---\nproject: !e!x y\n", ["yaml_tag"]),
    ("project:\tpayments-prod\n", ["yaml_syntax"]),
    ("\tproject: payments-prod\n", ["yaml_syntax"]),
    ("roles:\n\t- roles/a\n", ["yaml_syntax"]),
    (GOOD + "---\n" + GOOD, ["multiple_documents"]),
    ("---\n...\n---\n", ["multiple_documents"]),
    ("? [a, b]\n: c\n", ["invalid_key", "missing_key", "missing_key", "missing_key",
                          "missing_key"]),
    ("justification: '" + "x" * 4000 + "'\n",
     ["missing_key", "missing_key", "missing_key", "justification_too_long"]),
    ("'" + "k" * 4000 + "': 1\n", ["yaml_syntax"]),  # PyYAML limits simple keys to 1024
    ("= : x\n", ["invalid_key", "missing_key", "missing_key", "missing_key", "missing_key"]),
    ("project: =\n", ["wrong_type", "missing_key", "missing_key", "missing_key"]),
    ('"unterminated\n', ["yaml_syntax"]),
    ("}{][", ["yaml_syntax"]),
    ("\x85\u2028\u2029", ["empty"]),
    ("", ["empty"]),
]


def test_size_boundary_4096_vs_4097() -> None:
    pad = 4096 - len(GOOD)
    assert request_codes(GOOD + "#" * (pad - 1) + "\n") == []
    assert request_codes(GOOD + "#" * pad + "\n") == ["too_large"]


@pytest.mark.parametrize(
    ("data", "expected"),
    REQUEST_CORPUS,
    ids=[f"c{i}" for i in range(len(REQUEST_CORPUS))],
)
def test_request_corpus(data: str | bytes, expected: list[str]) -> None:
    assert sorted(request_codes(data)) == sorted(expected)


@pytest.mark.parametrize(
    "data",
    [d for d, _ in REQUEST_CORPUS] + ["[" * 60_000, "{" * 60_000, "- " * 30_000],
    ids=[f"c{i}" for i in range(len(REQUEST_CORPUS) + 3)],
)
def test_policy_and_identities_corpus(data: str | bytes) -> None:
    assert policy_codes(data) != []  # none of these is a valid policy
    identities_codes(data)


@pytest.mark.parametrize(
    ("line", "code"),
    [
        ("activation: {max_roles: " + "9" * 5000 + "}", "wrong_type"),  # over int's digit limit
        ("activation: {max_roles: 0b" + "1" * 9000 + "}", "out_of_range"),
        ("activation: {max_roles: .inf}", "wrong_type"),
        ("justification: {pattern: '" + "(" * 900 + "'}", "invalid_pattern"),
        ("justification: {pattern: '" + "a" * 1001 + "'}", "too_long"),
        ("approval: {max_age: " + "9" * 30 + "h}", "invalid_duration"),
    ],
)
def test_policy_hostile_values(line: str, code: str) -> None:
    assert policy_codes("scope: organizations/1\n" + line + "\n") == [code]


def test_safe_loading_never_constructs_objects() -> None:
    # If PyYAML's unsafe loader were used this would construct an object; we refuse the tag.
    text = "!!python/object/new:builtins.Exception ['boom']\n"
    assert request_codes(text) == ["yaml_tag"]
    assert policy_codes(text) == ["yaml_tag"]
    assert identities_codes(text) == ["yaml_tag"]


# --------------------------------------------------------------------------------------------
# Property-based fuzzing

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

yaml_ish = st.text(
    alphabet=st.sampled_from(
        list("abcdefghijklmnopqrstuvwxyz0123456789 -:[]{},&*!|>'\"#%@`\t\n/.<=?~")
        + ["\x00", "\ufeff", "\u202e", "é", "🚑", "\r"]
    ),
    max_size=300,
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=40),
)
documents = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(
            st.one_of(st.sampled_from(["project", "roles", "duration", "justification"]),
                      st.text(max_size=10)),
            children,
            max_size=5,
        ),
    ),
    max_leaves=20,
)


@FAST
@given(st.binary(max_size=600))
def test_fuzz_bytes(data: bytes) -> None:
    request_codes(data)
    policy_codes(data)
    identities_codes(data)


@FAST
@given(yaml_ish)
def test_fuzz_yaml_like_text(text: str) -> None:
    request_codes(text)
    policy_codes(text)
    identities_codes(text)


@FAST
@given(documents)
def test_fuzz_structured_documents(document: object) -> None:
    text = yaml.safe_dump(document, allow_unicode=True)
    request_codes(text)
    policy_codes(text)
    identities_codes(text)


@FAST
@given(
    st.fixed_dictionaries(
        {
            "project": st.text(max_size=35),
            "roles": st.lists(st.text(max_size=30), max_size=12),
            "duration": st.text(max_size=12),
            "justification": st.text(max_size=120),
        }
    )
)
def test_fuzz_request_fields(document: dict[str, object]) -> None:
    parsed, problems = parse_request(yaml.safe_dump(document, allow_unicode=True))
    if parsed is not None:
        # Whatever got through satisfies the rules.
        assert problems == ()
        assert parsed.project == document["project"]
        assert 1 <= len(parsed.roles) <= 10
        assert timedelta(minutes=5) <= parsed.duration <= timedelta(hours=2)
        assert 0 < len(parsed.justification) <= 100


@FAST
@given(st.text(max_size=200))
def test_fuzz_durations_raise_only_value_error(text: str) -> None:
    try:
        assert parse_duration(text) > timedelta(0)
    except ValueError:
        pass


@FAST
@given(st.text(alphabet=st.sampled_from(list("&|()'\"\\/ \nab{}.hasjitAccessConstraint")),
               max_size=120))
def test_fuzz_conditions(expression: str) -> None:
    marker, clauses = marker_of(expression)
    assert marker is not None or clauses == ()
    parse_activation_expression(expression)


@FAST
@given(
    st.lists(
        st.builds(
            ChangedFile,
            st.one_of(st.text(max_size=40), st.sampled_from(
                ["requests/alice/a.yaml", "requests/README.md", "requests/../x", "policy/x"])),
            st.sampled_from(["added", "modified", "removed", "renamed", "copied", "changed", "x"]),
            st.one_of(st.none(), st.text(max_size=30)),
        ),
        max_size=5,
    ),
    st.text(max_size=40),
    st.text(max_size=20),
)
def test_fuzz_pr_shape(files: list[ChangedFile], author: str, base: str) -> None:
    result = check_pr_shape(files, author, base, "main")
    assert isinstance(result, PrShape)
    if result.is_request and not result.problems:
        assert result.path is not None and len(files) == 1


policy_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-5, max_value=200),
    st.sampled_from(["1h", "8h", "0m", "*-prod", "roles/*", "folders/12", "[", "(a+)+$",
                     "user:a@example.com", "group:g@example.com", "serviceAccount:x@y.z"]),
    st.text(max_size=20),
)
policy_values = st.recursive(
    policy_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(
            st.one_of(
                st.sampled_from([
                    "name", "match", "projects", "folders", "roles", "max_duration", "approval",
                    "required", "max_age", "approvers", "peers", "veto", "justification",
                    "pattern", "hint", "enabled", "review_within", "request_reviewers",
                ]),
                st.text(max_size=8),
            ),
            children,
            max_size=6,
        ),
    ),
    max_leaves=25,
)


@FAST
@given(st.lists(policy_values, max_size=4), policy_values)
def test_fuzz_policy_rules_and_break_glass(rules: list[object], glass: object) -> None:
    """Any `rules:` and `break_glass:` give a policy or problems, never an exception; a policy
    that parses selects settings for any role without raising."""
    text = yaml.safe_dump(
        {"scope": "organizations/1", "rules": rules, "break_glass": glass}, allow_unicode=True
    )
    policy, problems = parse_policy(text)
    assert (policy is None) == bool(problems)
    if policy is not None:
        for project, role in (("team-prod", "roles/cloudsql.admin"), ("x-dev", "roles/x")):
            for ancestry in (None, (), ("folders/12", "organizations/1")):
                settings_for(policy, project, role, ancestry)
