"""Data shared with the project from outside the repository: `../shared/fixtures/` beside the
project root, in a developer's clone as in CI (which lays a copy of shared/ next to its clone).

Missing data fails the run in CI (`CI=true`), where it must be there: a skip would let the
tests that need it pass silently. Elsewhere (a clone without shared/) the tests are skipped.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def in_ci(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether this is a CI run (`CI=true`, as CI services and this project's CI set it)."""
    return environ.get("CI", "").strip().lower() in {"true", "1"}


def shared_fixtures(
    name: str, *, root: Path = ROOT, environ: Mapping[str, str] = os.environ
) -> Path:
    """`<root>/../shared/fixtures/<name>`; when it is missing or empty, fail in CI and skip the
    calling module elsewhere."""
    path = root.parent / "shared" / "fixtures" / name
    if path.is_dir() and any(path.iterdir()):
        return path
    where = f"../shared/fixtures/{name} (looked for {path})"
    if in_ci(environ):
        pytest.fail(f"CI needs the shared fixtures {where}", pytrace=False)
    pytest.skip(f"no shared fixtures at {where}", allow_module_level=True)
