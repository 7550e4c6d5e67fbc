"""Shared fixtures beside the project: found relative to the root, a failure in CI if missing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.shared_fixtures import ROOT, in_ci, shared_fixtures


def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    return root


def test_found_beside_the_project_root(tmp_path: Path) -> None:
    root = project(tmp_path)
    (tmp_path / "shared" / "fixtures" / "hooks").mkdir(parents=True)
    (tmp_path / "shared" / "fixtures" / "hooks" / "a.json").write_text("{}")
    assert shared_fixtures("hooks", root=root, environ={"CI": "true"}) == (
        tmp_path / "shared" / "fixtures" / "hooks"
    )


def test_the_repository_looks_next_to_itself() -> None:
    assert ROOT == Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("empty", [False, True], ids=["missing", "empty"])
def test_missing_fixtures_fail_in_ci(tmp_path: Path, empty: bool) -> None:
    root = project(tmp_path)
    if empty:
        (tmp_path / "shared" / "fixtures" / "hooks").mkdir(parents=True)
    with pytest.raises(pytest.fail.Exception, match=r"CI needs the shared fixtures \.\./shared"):
        shared_fixtures("hooks", root=root, environ={"CI": "true"})


def test_missing_fixtures_skip_outside_ci(tmp_path: Path) -> None:
    with pytest.raises(pytest.skip.Exception, match="no shared fixtures at ../shared"):
        shared_fixtures("hooks", root=project(tmp_path), environ={})


@pytest.mark.parametrize(("value", "ci"), [("true", True), ("TRUE", True), ("1", True),
                                           ("false", False), ("", False)])
def test_ci_is_told_by_the_ci_variable(value: str, ci: bool) -> None:
    assert in_ci({"CI": value}) is ci
    assert in_ci({}) is False


def test_a_module_needing_missing_fixtures_fails_the_ci_run(tmp_path: Path) -> None:
    root = project(tmp_path)
    (root / "test_needs_fixtures.py").write_text(
        "from pathlib import Path\n"
        "from tests.shared_fixtures import shared_fixtures\n"
        f"FIXTURES = shared_fixtures('hooks', root=Path({str(root)!r}))\n"
        "def test_uses_them():\n"
        "    assert FIXTURES\n"
    )
    env = {**os.environ, "CI": "true", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(root)],
        cwd=root, env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode != 0, result.stdout
    assert "CI needs the shared fixtures ../shared/fixtures/hooks" in result.stdout
    assert "1 error" in result.stdout
