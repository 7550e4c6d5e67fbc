"""Problem codes: one enum, equal to the strings people and older callers know."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from webhook.core.problems import ProblemCode
from webhook.core.request_file import parse_request

ROOT = Path(__file__).parents[2] / "webhook"
#: Modules that make or compare codes and must name them through ProblemCode.
CONVERTED = [
    "core/request_file.py", "core/policy.py", "core/decide.py", "core/merge.py",
    "service/lifecycle.py",
]
_MAKERS = {"Problem", "_p", "_problem"}


def test_codes_equal_their_strings() -> None:
    assert ProblemCode.SERVICE_ERROR == "service_error"
    assert str(ProblemCode.WRONG_DIRECTORY) == "wrong_directory"
    assert f"{ProblemCode.NO_IDENTITY_MAPPING}" == "no_identity_mapping"
    assert ProblemCode("too_large") is ProblemCode.TOO_LARGE


def test_every_code_is_one_snake_case_member_named_after_its_value() -> None:
    # Two members with one value would silently become aliases of each other.
    assert len(ProblemCode.__members__) == len(list(ProblemCode))
    for name, member in ProblemCode.__members__.items():
        assert re.fullmatch(r"[a-z][a-z0-9]*(_[a-z0-9]+)*", member.value)
        assert name == member.value.upper()


def test_parsers_report_enum_codes_that_compare_as_before() -> None:
    _, problems = parse_request("")
    (problem,) = problems
    assert problem.code is ProblemCode.EMPTY
    assert problem.code == "empty"
    assert problem.message == "the request file is empty; see requests/README.md for the format"


def _code_literals(path: Path) -> list[tuple[int, str]]:
    """(line, text) of every string literal used as a problem code in a module: the first
    argument (or `code=`) of a Problem-making call, and either side of a `.code ==` test."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            if name in _MAKERS:
                args = node.args[:1] + [k.value for k in node.keywords if k.arg == "code"]
                found += [(a.lineno, a.value) for a in args
                          if isinstance(a, ast.Constant) and isinstance(a.value, str)]
        elif isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(isinstance(s, ast.Attribute) and s.attr == "code" for s in sides):
                found += [(s.lineno, s.value) for s in sides
                          if isinstance(s, ast.Constant) and isinstance(s.value, str)]
    return found


@pytest.mark.parametrize("module", CONVERTED)
def test_modules_name_codes_through_the_enum(module: str) -> None:
    assert _code_literals(ROOT / module) == []


def test_codes_still_written_as_strings_elsewhere_in_the_core_are_in_the_enum() -> None:
    known = {c.value for c in ProblemCode}
    for path in sorted((ROOT / "core").glob("*.py")):
        for line, code in _code_literals(path):
            assert code in known, f"{path.name}:{line}: {code!r} is no ProblemCode"
