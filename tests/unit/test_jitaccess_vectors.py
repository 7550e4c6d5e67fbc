"""Conditions read as jit-access 1.8 reads them: its own test vectors, and the known differences.

The vectors are data (tests/unit/data/): expressions and the results jit-access's tests expect,
with the source (repository, tag, commit, files) named in each file. Where this service reads a
condition differently on purpose, the vector says how and why; no difference may let anyone do
more than jit-access would let them.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from webhook.core.conditions import (
    ACTIVATION_TITLE,
    _jitaccess_split_and,
    _top_level_clauses,
    activation_expression,
    activation_of,
    jitaccess_marker,
    marker_of,
    read_activation,
    resource_condition,
)
from webhook.core.model import Marker

DATA = Path(__file__).parent / "data"
VECTORS = yaml.safe_load((DATA / "jitaccess_activation_vectors.yaml").read_text("utf-8"))
DIFFERENCES = yaml.safe_load((DATA / "jitaccess_condition_differences.yaml").read_text("utf-8"))
MARKERS = {None: None, "self-approval": Marker.SELF_APPROVAL, "multi-party": Marker.MULTI_PARTY}
RANK = {None: 0, Marker.MULTI_PARTY: 1, Marker.SELF_APPROVAL: 2}

# jit-access's `TemporaryIamCondition.CONDITION_PATTERN`, in Python: Java's `\s` is ASCII
# whitespace and its `.` is any character but a line terminator (both dots of `request.time` are
# unescaped in the original).
_JAVA_S = "[ \t\n\x0b\f\r]*"
_JAVA_ANY = "[^\n\r\u0085\u2028\u2029]"
JITACCESS_WINDOW = re.compile(
    rf'{_JAVA_S}\(+request{_JAVA_ANY}time >= timestamp\("({_JAVA_ANY}*)"\) && '
    rf'request{_JAVA_ANY}time < timestamp\("({_JAVA_ANY}*)"\)\)+{_JAVA_S}'
)


def ids(vectors: list[dict[str, Any]]) -> list[str]:
    names = [str(v.get("test") or v.get("id")).split(".")[-1] for v in vectors]
    return [f"{i}-{name[:60]}" for i, name in enumerate(names)]


def when(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def normalised(condition: str | None) -> str | None:
    """A condition compared as jit-access re-formats it: no whitespace, `"` for `'`, and no
    parentheses around all of it."""
    if condition is None:
        return None
    text = re.sub(r"[ \t\n\f\r]+", "", condition).replace("'", '"')
    while text.startswith("(") and text.endswith(")") and _encloses(text):
        text = text[1:-1]
    return text


def _encloses(text: str) -> bool:
    depth = 0
    for i, ch in enumerate(text):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth == 0 and i < len(text) - 1:
            return False
    return True


def jitaccess_reads_activation(expression: str) -> bool:
    """Whether jit-access 1.8's `ActivationCondition.parse` finds a window clause."""
    return any(JITACCESS_WINDOW.fullmatch(c) for c in _jitaccess_split_and(expression))


def test_sources_are_named() -> None:
    for data in (VECTORS, DIFFERENCES):
        source = data["source"]
        assert source["repository"] == "GoogleCloudPlatform/jit-access"
        assert re.fullmatch(r"[0-9a-f]{40}", source["commit"])
        assert source["files"]


# --------------------------------------------------------------------------------------------
# jit-access's own vectors


@pytest.mark.parametrize("vector", VECTORS["eligibility"], ids=ids(VECTORS["eligibility"]))
def test_eligibility_vectors(vector: dict[str, Any]) -> None:
    expected = vector["jitaccess"]
    wanted = MARKERS[expected["marker"]] if expected else None
    assert jitaccess_marker(vector["expression"]) == wanted  # the emulation is faithful
    marker, clauses = marker_of(vector["expression"])
    assert marker == wanted
    got = resource_condition(clauses) if clauses else None
    assert normalised(got) == normalised(expected["resource_condition"] if expected else None)


@pytest.mark.parametrize("vector", VECTORS["activation"], ids=ids(VECTORS["activation"]))
def test_activation_vectors(vector: dict[str, Any]) -> None:
    condition = {"title": vector["title"], "expression": vector["expression"]}
    expected = vector["jitaccess"]
    if vector["title"] == ACTIVATION_TITLE and vector["expression"]:
        assert jitaccess_reads_activation(vector["expression"]) == (expected is not None)
    activation = activation_of(condition)
    if expected is None:
        assert activation is None
        return
    assert activation is not None
    assert (activation.start, activation.end) == (when(expected["start"]), when(expected["end"]))
    clauses = resource_condition(activation.resource_clauses) or None
    assert normalised(clauses) == normalised(expected["resource_condition"])


@pytest.mark.parametrize("vector", VECTORS["window_clause"], ids=ids(VECTORS["window_clause"]))
def test_window_clause_vectors(vector: dict[str, Any]) -> None:
    expression, expected = vector["expression"], vector["jitaccess"]
    if expression:
        assert bool(JITACCESS_WINDOW.fullmatch(expression)) == (expected is not None)
    activation = read_activation(expression)
    is_window = activation is not None and not activation.resource_clauses
    assert is_window == (expected is not None)
    if activation is None or expected is None:
        return
    start, end = when(expected["start"]), when(expected["end"])
    assert (activation.start, activation.end) == (start, end)
    if "at" in vector:
        assert (start <= when(vector["at"]) < end) == vector["holds"]
    if vector.get("written"):
        assert activation_expression(start, end) == expression


@pytest.mark.parametrize("vector", VECTORS["split_and"], ids=ids(VECTORS["split_and"]))
def test_split_and_vectors(vector: dict[str, Any]) -> None:
    split = _jitaccess_split_and(vector["expression"])
    if "jitaccess" in vector:
        assert split == vector["jitaccess"]
        product = vector.get("product", vector["jitaccess"])
    else:
        assert [normalised(c) for c in split] == [
            normalised(c) for c in vector["jitaccess_reformatted"]
        ]
        product = vector["product"]
    ours = _top_level_clauses(vector["expression"])
    assert ours is not None
    assert [normalised(c) for c in ours] == [normalised(c) for c in product]


# --------------------------------------------------------------------------------------------
# The differences, and that none of them is permissive


@pytest.mark.parametrize("vector", DIFFERENCES["markers"], ids=ids(DIFFERENCES["markers"]))
def test_marker_differences(vector: dict[str, Any]) -> None:
    theirs, ours = MARKERS[vector["jitaccess"]], MARKERS[vector["product"]]
    assert jitaccess_marker(vector["expression"]) == theirs
    marker, clauses = marker_of(vector["expression"])
    assert marker == ours
    assert RANK[ours] <= RANK[theirs], "a difference must never allow more than jit-access"
    if "product_resource_condition" in vector:
        assert resource_condition(clauses) == vector["product_resource_condition"]


@pytest.mark.parametrize("vector", DIFFERENCES["activations"], ids=ids(DIFFERENCES["activations"]))
def test_activation_differences(vector: dict[str, Any]) -> None:
    assert jitaccess_reads_activation(vector["expression"]) == vector["jitaccess"]
    activation = activation_of({"title": ACTIVATION_TITLE, "expression": vector["expression"]})
    expected = vector["product"]
    if expected is None:
        assert activation is None
        return
    assert activation is not None
    assert (activation.start, activation.end) == (when(expected["start"]), when(expected["end"]))
    clauses = resource_condition(activation.resource_clauses) or None
    assert normalised(clauses) == normalised(expected["resource_condition"])
