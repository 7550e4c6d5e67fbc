"""The JSON Schema for editors agrees with the parser that the service uses.

The schema cannot express everything: policy-dependent limits (duration bounds, the
justification pattern, the rules, whether break-glass is enabled), the
custom-role-belongs-to-project rule and the YAML hardening. Those documented gaps are asserted
explicitly at the end; everything else must agree.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from webhook.core.model import ActivationSettings
from webhook.core.request_file import (
    BASIC_ROLES,
    KEYS,
    MAX_JUSTIFICATION,
    OPTIONAL_KEYS,
    PROJECT_ID,
    ROLE,
    justification_char_allowed,
    parse_request,
)

ROOT = Path(__file__).resolve().parents[2]
SCHEMA: dict[str, Any] = json.loads(
    (ROOT / "webhook" / "schema" / "request.schema.json").read_text(encoding="utf-8")
)
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)
PROPS: dict[str, Any] = SCHEMA["properties"]
#: End of text in both Python and ECMA-262 regexes (`$` also matches before a final newline in
#: Python, which jsonschema uses).
END = r"(?![\s\S])"


def schema_ok(text: str) -> bool:
    return VALIDATOR.is_valid(yaml.safe_load(text))


def parser_ok(text: str) -> bool:
    return parse_request(text)[0] is not None


def doc(**fields: str) -> str:
    base = {
        "project": "payments-prod",
        "roles": "[roles/cloudsql.admin]",
        "duration": "1h",
        "justification": "'INC-1: restore'",
    }
    base.update(fields)
    return "".join(f"{k}: {v}\n" for k, v in base.items() if v != "<absent>")


def test_schema_is_valid_draft_2020_12() -> None:
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def test_same_keys_and_required() -> None:
    assert tuple(PROPS) == KEYS + OPTIONAL_KEYS
    assert SCHEMA["required"] == list(KEYS)
    assert PROPS["break_glass"]["type"] == "boolean"
    assert SCHEMA["additionalProperties"] is False
    assert SCHEMA["type"] == "object"


def test_same_simple_limits() -> None:
    assert PROPS["project"]["pattern"] == f"^{PROJECT_ID.pattern}{END}"
    assert set(PROPS["roles"]["items"]["not"]["enum"]) == BASIC_ROLES
    assert PROPS["roles"]["minItems"] == 1
    assert PROPS["roles"]["maxItems"] == ActivationSettings().max_roles
    assert PROPS["roles"]["uniqueItems"] is True
    assert PROPS["justification"]["maxLength"] == MAX_JUSTIFICATION
    assert PROPS["justification"]["minLength"] == 1


def test_justification_characters_agree_on_the_whole_bmp() -> None:
    pattern = re.compile(PROPS["justification"]["allOf"][1]["pattern"])
    disagree = [
        f"U+{cp:04X}"
        for cp in range(0x10000)
        if not 0xD800 <= cp <= 0xDFFF
        and (pattern.search("a" + chr(cp)) is not None) != justification_char_allowed(chr(cp))
    ]
    assert disagree == []


ROLES = [
    "roles/cloudsql.admin",
    "roles/iam.serviceAccountUser",
    "roles/a",
    "roles/a_b.c",
    "roles/",
    "roles/.a",
    "roles/a.",
    "roles/a-b",
    "roles/a/b",
    "roles/" + "a" * 64,
    "roles/" + "a" * 65,
    "projects/payments-prod/roles/x",
    "projects/Payments/roles/x",
    "projects/pay/roles/x",
    "organizations/123/roles/custom.role",
    "organizations/0123/roles/x",
    "organizations/" + "1" * 21 + "/roles/x",
    "folders/1/roles/x",
    "x roles/a",
    "roles/a\n",
    "\nroles/a",
]


@pytest.mark.parametrize("role", ROLES)
def test_role_syntax_agrees(role: str) -> None:
    item_pattern = re.compile(PROPS["roles"]["items"]["pattern"])
    assert (item_pattern.search(role) is not None) == (ROLE.fullmatch(role) is not None)


CORPUS = [
    doc(),
    doc(roles="[roles/a, roles/b]"),
    doc(roles="[projects/payments-prod/roles/x, organizations/1/roles/y]"),
    doc(duration="30m"),
    doc(duration="1h30m"),
    doc(duration="PT2H"),
    doc(duration="PT1H30M"),
    doc(duration="PT90M"),
    doc(duration="600s"),
    doc(justification="'" + "x" * 100 + "'"),
    doc(justification="'é" + "x" * 99 + "'"),
    doc(justification="'Réparer 🚑'"),
    doc() + "break_glass: false\n",
    # invalid in both
    doc(project="Payments"),
    doc(project="123"),
    doc(project="pay"),
    doc(project="<absent>"),
    doc(roles="[]"),
    doc(roles="roles/a"),
    doc(roles="[roles/owner]"),
    doc(roles="[roles/editor]"),
    doc(roles="[roles/viewer]"),
    doc(roles="[roles/a, roles/a]"),
    doc(roles="[1]"),
    doc(roles="[" + ", ".join(f"roles/r{i}" for i in range(11)) + "]"),
    doc(roles="<absent>"),
    doc(duration="2"),
    doc(duration="1.5h"),
    doc(duration="2H"),
    doc(duration="P1D"),
    doc(duration="1h 30m"),
    doc(duration="30m1h"),
    doc(duration="<absent>"),
    doc(justification="''"),
    doc(justification="'   '"),
    doc(justification="123"),
    doc(justification="no"),
    doc(justification="'" + "x" * 101 + "'"),
    doc(justification='"a\\nb"'),
    doc(justification='"a\\tb"'),
    doc(justification='"a\\u202Eb"'),
    doc(justification='"a\\u200Bb"'),
    doc(justification="<absent>"),
    doc() + "extra: 1\n",
    doc() + "Project: x\n",
    doc() + "break_glass: 'true'\n",
    doc() + "break_glass: 1\n",
    doc() + "break_glass: null\n",
    doc() + "break_glass: [true]\n",
    "- a\n",
    "just text\n",
]


@pytest.mark.parametrize("text", CORPUS)
def test_corpus_agrees(text: str) -> None:
    assert schema_ok(text) == parser_ok(text)


def test_corpus_has_both_outcomes() -> None:
    outcomes = [parser_ok(t) for t in CORPUS]
    assert outcomes.count(True) == 13
    assert outcomes.count(False) == len(CORPUS) - 13


def test_example_request_validates_against_schema() -> None:
    text = (ROOT / "examples" / "requests" / "alice" / "db-restore.yaml").read_text()
    assert text.startswith(
        "# yaml-language-server: $schema=../../../webhook/schema/request.schema.json\n"
    )
    assert schema_ok(text) and parser_ok(text)


def test_broken_example_fails_both() -> None:
    text = (ROOT / "examples" / "broken" / "requests" / "alice" / "bad.yaml").read_text()
    assert not schema_ok(text) and not parser_ok(text)


@pytest.mark.parametrize(
    ("text", "code"),
    [
        # Policy-dependent bounds: the schema checks syntax only.
        (doc(duration="3h"), "duration_too_long"),
        (doc(duration="1m"), "duration_too_short"),
        (doc(duration="0m"), "invalid_duration"),
        # Whether break-glass is enabled is the policy's (by default it is not).
        (doc() + "break_glass: true\n", "break_glass_disabled"),
        # Cross-field rule.
        (doc(roles="[projects/other-project/roles/x]"), "foreign_custom_role"),
    ],
)
def test_documented_gaps_schema_is_looser(text: str, code: str) -> None:
    assert schema_ok(text)
    assert [p.code for p in parse_request(text)[1]] == [code]
