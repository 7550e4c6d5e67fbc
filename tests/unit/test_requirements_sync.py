"""requirements.txt (what App Engine installs) is generated from pyproject.toml and kept in sync."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gen_requirements.py"


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_requirements", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_checked_in_requirements_equal_the_generated_text() -> None:
    generator = load_generator()
    expected = generator.render((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert (ROOT / "requirements.txt").read_text(encoding="utf-8") == expected


def test_render_keeps_order_and_adds_the_header() -> None:
    generator = load_generator()
    text = generator.render(
        '[project]\nname = "x"\n'
        'dependencies = ["b>=1", " a==2 ", "c[extra]>=3; python_version>=\'3.11\'"]\n'
    )
    assert text.splitlines() == [
        "# Generated from pyproject.toml ([project].dependencies) by scripts/gen_requirements.py.",
        "# Do not edit: change pyproject.toml and run `python scripts/gen_requirements.py`.",
        "b>=1",
        "a==2",
        "c[extra]>=3; python_version>='3.11'",
    ]


def test_render_refuses_a_pyproject_without_dependencies() -> None:
    generator = load_generator()
    with pytest.raises(ValueError, match=r"\[project\]\.dependencies"):
        generator.render('[project]\nname = "x"\n')


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, check=False
    )


def test_check_passes_on_the_repository() -> None:
    result = run("--check")
    assert result.returncode == 0, result.stderr


def test_check_fails_when_out_of_date_and_generation_fixes_it(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    output = tmp_path / "requirements.txt"
    pyproject.write_text('[project]\nname = "x"\ndependencies = ["Flask>=3.0"]\n')
    output.write_text("Flask>=2.0\n")
    paths = ("--pyproject", str(pyproject), "--output", str(output))

    stale = run("--check", *paths)
    assert stale.returncode == 1
    assert "out of date" in stale.stderr

    assert run(*paths).returncode == 0
    assert output.read_text().splitlines()[-1] == "Flask>=3.0"
    assert run("--check", *paths).returncode == 0
