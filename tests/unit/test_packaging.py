"""Packaging: what the wheel holds, which distributions are declared, and `jitaccess sandbox`
when the fakes or their libraries are missing.

The wheel is the service alone (webhook/); the fake servers (jitaccess_sandbox/) run from a
clone, with the `sandbox` extra for the libraries they import on top of the service's.
"""

from __future__ import annotations

import fnmatch
import functools
import importlib.metadata
import importlib.util
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tests.unit.test_layers import imports_of

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
#: Declared for what it runs rather than what it imports: app.yaml's entrypoint.
RUN_NOT_IMPORTED = {"gunicorn"}


def canonical(name: str) -> str:
    """A distribution name in its normalised form (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def names(requirements: list[str]) -> set[str]:
    """The distribution names of requirement strings (`PyJWT>=2.8` -> `pyjwt`)."""
    found = set()
    for requirement in requirements:
        match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement.strip())
        assert match, requirement
        found.add(canonical(match.group()))
    return found


@functools.cache
def _top_level_distributions() -> dict[str, list[str]]:
    return dict(importlib.metadata.packages_distributions())  # slow: reads every METADATA


@functools.cache
def _files_of(distribution: str) -> frozenset[str]:
    dist = importlib.metadata.distribution(distribution)
    return frozenset(os.path.normpath(str(dist.locate_file(f))) for f in dist.files or ())


def distribution_of(module: str) -> str | None:
    """The installed distribution that holds `module`'s file, or None for a name that is no
    module (`from github import Auth` also yields `github.Auth`) or a namespace package."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.has_location or spec.origin is None:
        return None
    origin = os.path.normpath(spec.origin)
    top = module.partition(".")[0]
    for candidate in _top_level_distributions().get(top, []):
        if origin in _files_of(candidate):
            return canonical(candidate)
    raise AssertionError(f"no installed distribution holds {module} ({origin})")


def imported_distributions(package: str) -> set[str]:
    """Third-party distributions the modules of `package` import directly."""
    found = set()
    for imp in imports_of(ROOT, package):
        top = imp.target.partition(".")[0]
        if top in sys.stdlib_module_names or top in {"webhook", "jitaccess_sandbox"}:
            continue
        if (dist := distribution_of(imp.target)) is not None:
            found.add(dist)
    return found


# --------------------------------------------------------------------------------------------
# declared distributions


def test_the_service_declares_exactly_what_it_imports_and_runs() -> None:
    declared = names(PYPROJECT["project"]["dependencies"])
    assert declared == imported_distributions("webhook") | RUN_NOT_IMPORTED


def test_the_sandbox_extra_declares_what_the_fakes_import_beyond_the_service() -> None:
    service = names(PYPROJECT["project"]["dependencies"])
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert names(extras["sandbox"]) == imported_distributions("jitaccess_sandbox") - service
    # The tests drive the fakes, so the test extra brings the sandbox extra along.
    assert "jitaccess-github[sandbox]" in extras["test"]


def test_the_build_backend_accepts_an_spdx_license_string() -> None:
    assert PYPROJECT["project"]["license"] == "Apache-2.0"
    [backend] = PYPROJECT["build-system"]["requires"]
    match = re.fullmatch(r"setuptools>=(\d+)(?:\.\d+)*", backend)
    assert match and int(match.group(1)) >= 77, backend  # PEP 639 support came in setuptools 77


# --------------------------------------------------------------------------------------------
# the wheel


def packages_of_the_wheel() -> list[str]:
    """The packages [tool.setuptools.packages.find] selects (setuptools matches the dotted
    names of the folders under the project root with fnmatch)."""
    include = PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    candidates = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for p in ROOT.rglob("*.py")
        if p.parent != ROOT and ".venv" not in p.parts
    }
    return sorted(c for c in candidates if any(fnmatch.fnmatchcase(c, i) for i in include))


def test_the_wheel_holds_the_service_and_no_fake_server() -> None:
    packages = packages_of_the_wheel()
    assert "webhook" in packages and "webhook.core" in packages
    assert all(p == "webhook" or p.startswith("webhook.") for p in packages), packages


# --------------------------------------------------------------------------------------------
# `jitaccess sandbox` without what it needs


def sandbox_command(tmp_path: Path, setup: str) -> subprocess.CompletedProcess[str]:
    """`jitaccess sandbox` in a fresh interpreter after `setup`, run outside the clone."""
    code = f"import sys\n{setup}\nfrom webhook.cli import main\nsys.exit(main(['sandbox']))\n"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=120, check=False,
    )


def test_sandbox_without_its_libraries_says_how_to_install_them(tmp_path: Path) -> None:
    result = sandbox_command(tmp_path, "sys.modules['jwt'] = None  # as if PyJWT were missing")
    assert result.returncode == 2
    assert result.stderr == (
        "jitaccess sandbox: the sandbox needs the Python module 'jwt', which is not installed. "
        "In a clone of the repository, run `pip install -e '.[sandbox]'`, then "
        "`jitaccess sandbox` again.\n"
    )
    assert result.stdout == ""


def test_sandbox_from_an_installed_wheel_says_it_runs_from_a_clone(tmp_path: Path) -> None:
    # An installed wheel has no jitaccess_sandbox next to webhook/.
    result = sandbox_command(
        tmp_path, f"import webhook.cli\nwebhook.cli.CHECKOUT = __import__('pathlib').Path("
                  f"{str(tmp_path)!r})"
    )
    assert result.returncode == 2
    assert result.stderr == (
        "jitaccess sandbox: the sandbox's fake servers are not part of the installed package; "
        "they run from a clone of the repository. In a clone of the repository, run "
        "`pip install -e '.[sandbox]'`, then `jitaccess sandbox` again.\n"
    )
    assert "Traceback" not in result.stderr


def test_a_broken_service_module_is_not_reported_as_an_installation_problem(
    tmp_path: Path,
) -> None:
    result = sandbox_command(tmp_path, "sys.modules['webhook.service.app'] = None")
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "webhook.service.app" in result.stderr


@pytest.mark.parametrize("argv", [["bench"], ["bench", "--quick"]])
def test_there_is_no_bench_command(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    from webhook.cli import main

    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "invalid choice: 'bench'" in capsys.readouterr().err


def test_the_wheel_check_flags_anything_but_the_service() -> None:
    spec = importlib.util.spec_from_file_location("check_wheel", ROOT / "scripts/check_wheel.py")
    assert spec is not None and spec.loader is not None
    check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check)
    assert check.strays([
        "webhook/__init__.py", "webhook/core/model.py", "webhook/schema/request.schema.json",
        "jitaccess_github-0.1.0.dist-info/METADATA", "jitaccess_github-0.1.0.dist-info/RECORD",
        "jitaccess_sandbox/fake_github.py", "tests/conftest.py", "webhook_extra.py",
    ]) == ["jitaccess_sandbox/fake_github.py", "tests/conftest.py", "webhook_extra.py"]
