"""The layers' import rule, read from the source: adapters import no service module (not even
for type checking), and core imports neither adapters nor services."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

WEBHOOK = Path(__file__).resolve().parents[2] / "webhook"


def imported(path: Path) -> set[str]:
    """Every module a file imports, wherever the import statement stands."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize(
    ("layer", "forbidden"),
    [("adapters", ("webhook.service",)), ("core", ("webhook.service", "webhook.adapters"))],
)
def test_a_layer_imports_nothing_above_it(layer: str, forbidden: tuple[str, ...]) -> None:
    offenders = {
        f"{path.name}: {name}"
        for path in sorted((WEBHOOK / layer).glob("*.py"))
        for name in imported(path)
        if name.startswith(forbidden)
    }
    assert offenders == set()
