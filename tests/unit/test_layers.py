"""The import boundaries between the layers of webhook/, read from the source with `ast`.

- webhook/core is pure: it imports the standard library, webhook.core, and YAML — PyYAML as a
  parser only, and only in webhook.core.safe_yaml, which every other module goes through.
- webhook/adapters (I/O) imports no webhook.service and no entry point (webhook.cli, webhook.main).
- Nothing in webhook/ imports jitaccess_sandbox (the fake servers are not part of the service).
  The one exception is `jitaccess sandbox`: webhook.cli loads jitaccess_sandbox.play by name when
  that command runs, never through an import statement.
- No module or package in webhook/ has the name of a standard-library module or of an installed
  library: run with webhook/ on sys.path (`python webhook/cli.py`), a `webhook/secrets.py` would
  replace the standard `secrets` for every module of the process.

Every import counts: at module level, inside functions, under `if TYPE_CHECKING:`, relative
ones (resolved), and `importlib.import_module("...")` / `__import__("...")` with a literal name.
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: Third-party top-level imports webhook/core may use, and the one module allowed each.
CORE_THIRD_PARTY = {"yaml": "webhook.core.safe_yaml"}
#: Modules that sit above every layer: nothing in core or adapters may import them.
ENTRY_POINTS = ("webhook.service", "webhook.cli", "webhook.main")
#: The one module that may load the sandbox, by name, for the `jitaccess sandbox` command.
SANDBOX_LOADER = "webhook.cli"


@dataclass(frozen=True)
class Import:
    """One imported module name, as written in `module` at `line`."""

    module: str  # the importing module, e.g. webhook.core.policy
    target: str  # the absolute name imported, e.g. webhook.core.safe_yaml
    line: int
    dynamic: bool = False  # importlib.import_module / __import__ with a literal name

    def __str__(self) -> str:
        how = "loads" if self.dynamic else "imports"
        return f"{self.module} (line {self.line}) {how} {self.target}"


def module_name(root: Path, path: Path) -> str:
    """`webhook/core/policy.py` -> `webhook.core.policy`; a package's `__init__` is the package."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(module: str, is_package: bool, level: int, name: str | None) -> str:
    # `from ..x import y` in a.b.c means a.x: drop `level` trailing parts (one fewer for a
    # package's __init__, whose own name is its package).
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join([*base, *([name] if name else [])])


def _literal_import(node: ast.Call) -> str | None:
    func = node.func
    named = (isinstance(func, ast.Attribute) and func.attr == "import_module") or (
        isinstance(func, ast.Name) and func.id in {"import_module", "__import__"}
    )
    if named and node.args and isinstance(node.args[0], ast.Constant):
        value = node.args[0].value
        return value if isinstance(value, str) else None
    return None


def imports_of(root: Path, package: str) -> list[Import]:
    """Every import in every module under `root/package`, in file and line order."""
    found: list[Import] = []
    for path in sorted((root / package).rglob("*.py")):
        module = module_name(root, path)
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):  # every node: function bodies and TYPE_CHECKING blocks too
            if isinstance(node, ast.Import):
                found.extend(Import(module, a.name, node.lineno) for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = (
                    _resolve(module, is_package, node.level, node.module)
                    if node.level
                    else node.module or ""
                )
                found.append(Import(module, base, node.lineno))
                # `from webhook import service` imports the module webhook.service.
                found.extend(
                    Import(module, f"{base}.{a.name}", node.lineno)
                    for a in node.names
                    if a.name != "*"
                )
            elif isinstance(node, ast.Call) and (target := _literal_import(node)):
                found.append(Import(module, target, node.lineno, dynamic=True))
    return sorted(found, key=lambda i: (i.module, i.line, i.target))


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


@functools.cache
def _library_names() -> frozenset[str]:
    return frozenset(sys.stdlib_module_names) | set(importlib.metadata.packages_distributions())


def violations(root: Path) -> list[str]:
    """Every break of the layer rules (module doc) in `root/webhook`, one line each."""
    problems: list[str] = []
    seen: set[tuple[str, int, str]] = set()  # `from a import b` yields a and a.b: report once

    def report(imp: Import, rule: str) -> None:
        if (imp.module, imp.line, rule) not in seen:
            seen.add((imp.module, imp.line, rule))
            problems.append(f"{imp}: {rule}")

    for imp in imports_of(root, "webhook"):
        top = imp.target.partition(".")[0]
        if _within(imp.module, "webhook.core"):
            if top in CORE_THIRD_PARTY:
                if imp.module != CORE_THIRD_PARTY[top]:
                    report(imp, f"core reaches {top} only through {CORE_THIRD_PARTY[top]}")
            elif top == "webhook":
                if not _within(imp.target, "webhook.core"):
                    report(imp, "core imports nothing outside webhook.core")
            elif top not in sys.stdlib_module_names:
                report(imp, "core imports no third-party library")
        if _within(imp.module, "webhook.adapters") and any(
            _within(imp.target, above) for above in ENTRY_POINTS
        ):
            report(imp, "adapters import no service module")
        if top == "jitaccess_sandbox" and not (imp.dynamic and imp.module == SANDBOX_LOADER):
            report(imp, "webhook/ does not import the sandbox")
    libraries = _library_names()
    for path in sorted((root / "webhook").rglob("*")):
        if path.name == "__init__.py" or "__pycache__" in path.parts:
            continue
        name = path.stem if path.suffix == ".py" else path.name if path.is_dir() else None
        if name in libraries:
            problems.append(f"{path.relative_to(root)}: named like the library {name!r}")
    return problems


# --------------------------------------------------------------------------------------------
# the service


def test_webhook_respects_the_layer_rules() -> None:
    found = violations(ROOT)
    assert not found, "\n".join(found)


def test_the_checker_sees_imports_in_functions_type_checking_and_relative_ones() -> None:
    imports = imports_of(ROOT, "webhook")
    # Lazy imports inside functions (PyGithub is loaded on first use) ...
    assert ("webhook.adapters.github_api", "github") in {(i.module, i.target) for i in imports}
    # ... the only YAML import in core ...
    assert [i.module for i in imports if i.target == "yaml"] == ["webhook.core.safe_yaml"]
    # ... and the sandbox, loaded by name for `jitaccess sandbox` and nowhere else.
    sandbox = [i for i in imports if i.target.startswith("jitaccess_sandbox")]
    assert [(i.module, i.dynamic) for i in sandbox] == [(SANDBOX_LOADER, True)]


# --------------------------------------------------------------------------------------------
# the checker fails on each kind of violation


def tree(tmp_path: Path, files: dict[str, str]) -> Path:
    """A package tree `tmp_path/webhook/...` holding `files` (path -> source)."""
    for name in ("webhook/__init__.py", "webhook/core/__init__.py",
                 "webhook/adapters/__init__.py", "webhook/service/__init__.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).touch()
    for name, source in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(textwrap.dedent(source), encoding="utf-8")
    return tmp_path


CLEAN = {
    "webhook/core/safe_yaml.py": "import yaml\nimport re\n",
    "webhook/core/model.py": "from webhook.core.safe_yaml import load\nfrom . import safe_yaml\n",
    "webhook/adapters/api.py": "import requests\nfrom webhook.core.model import x\n",
    "webhook/service/config.py": "from webhook.adapters.api import y\n",
    "webhook/cli.py": "import importlib\nimportlib.import_module('jitaccess_sandbox.play')\n",
}


def test_a_clean_tree_has_no_violation(tmp_path: Path) -> None:
    assert violations(tree(tmp_path, CLEAN)) == []


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        pytest.param(
            {"webhook/core/policy.py": "def f():\n    import requests\n"},
            ["webhook.core.policy (line 2) imports requests: core imports no third-party library"],
            id="sdk-inside-a-function",
        ),
        pytest.param(
            {"webhook/core/policy.py": """\
                from typing import TYPE_CHECKING
                if TYPE_CHECKING:
                    from google.cloud import asset_v1
                """},
            ["webhook.core.policy (line 3) imports google.cloud: "
             "core imports no third-party library"],
            id="sdk-under-type-checking",
        ),
        pytest.param(
            {"webhook/core/policy.py": "import yaml\n"},
            ["webhook.core.policy (line 1) imports yaml: core reaches yaml only through "
             "webhook.core.safe_yaml"],
            id="yaml-outside-safe-yaml",
        ),
        pytest.param(
            {"webhook/core/policy.py": "from webhook.adapters import api\n"},
            ["webhook.core.policy (line 1) imports webhook.adapters: "
             "core imports nothing outside webhook.core"],
            id="core-imports-an-adapter",
        ),
        pytest.param(
            {"webhook/core/policy.py": "from ..service.config import Settings\n"},
            ["webhook.core.policy (line 1) imports webhook.service.config: "
             "core imports nothing outside webhook.core"],
            id="core-imports-the-service-relatively",
        ),
        pytest.param(
            {"webhook/adapters/store.py": "def f():\n    from webhook.service import config\n"},
            ["webhook.adapters.store (line 2) imports webhook.service: "
             "adapters import no service module"],
            id="adapter-imports-the-service",
        ),
        pytest.param(
            {"webhook/adapters/store.py": "from webhook import main\n"},
            ["webhook.adapters.store (line 1) imports webhook.main: "
             "adapters import no service module"],
            id="adapter-imports-the-entry-point",
        ),
        pytest.param(
            {"webhook/service/app.py": "import jitaccess_sandbox.emulator\n"},
            ["webhook.service.app (line 1) imports jitaccess_sandbox.emulator: "
             "webhook/ does not import the sandbox"],
            id="service-imports-the-sandbox",
        ),
        pytest.param(
            {"webhook/service/app.py": "__import__('jitaccess_sandbox')\n"},
            ["webhook.service.app (line 1) loads jitaccess_sandbox: "
             "webhook/ does not import the sandbox"],
            id="service-loads-the-sandbox-by-name",
        ),
        pytest.param(
            {"webhook/adapters/secrets.py": "import os\n"},
            ["webhook/adapters/secrets.py: named like the library 'secrets'"],
            id="module-named-like-the-stdlib",
        ),
        pytest.param(
            {"webhook/github/__init__.py": ""},
            ["webhook/github: named like the library 'github'"],
            id="package-named-like-a-library",
        ),
    ],
)
def test_the_checker_reports_each_violation(
    tmp_path: Path, files: dict[str, str], expected: list[str]
) -> None:
    assert violations(tree(tmp_path, {**CLEAN, **files})) == expected


# --------------------------------------------------------------------------------------------
# the fake GitHub's private names stay inside it

FAKE_GITHUB = ROOT / "jitaccess_sandbox" / "fake_github.py"


def private_names(path: Path) -> set[str]:
    """`_x` names a module defines: its functions, classes and globals, and its classes'
    methods and `self._x` attributes (dunders excluded)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
    return {n for n in names if n.startswith("_") and not n.endswith("__")}


def private_uses(paths: list[Path], private: set[str]) -> list[str]:
    """Where `paths` import or reach one of the fake's `private` names (not through self/cls)."""
    found: list[str] = []
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module == "jitaccess_sandbox.fake_github":
                found.extend(f"{path.name}:{node.lineno} imports {a.name}"
                             for a in node.names if a.name in private)
            elif (isinstance(node, ast.Attribute) and node.attr in private
                  and not (isinstance(node.value, ast.Name) and node.value.id in {"self", "cls"})):
                found.append(f"{path.name}:{node.lineno} uses .{node.attr}")
    return found


def test_the_emulator_and_the_tests_use_only_the_fakes_public_names() -> None:
    others = [p for p in sorted((ROOT / "jitaccess_sandbox").glob("*.py")) if p != FAKE_GITHUB]
    paths = others + sorted((ROOT / "tests").rglob("*.py"))
    # Names are matched, not types: a private name the other fakes define too (`_lock`) is
    # theirs as much as this fake's, so it is left out.
    private = private_names(FAKE_GITHUB).difference(*(private_names(p) for p in others))
    assert {"_repo", "_pull_json", "_Ctx", "_Principal"} <= private
    assert private_uses(paths, private) == []


def test_a_private_use_of_the_fake_is_reported(tmp_path: Path) -> None:
    user = tmp_path / "user.py"
    user.write_text(
        "from jitaccess_sandbox.fake_github import FakeGitHub, _Ctx\n"
        "def payload(emu):\n"
        "    return emu.github._pull_json(_Ctx(), emu.github._repo('acme/access'), None)\n"
    )
    assert private_uses([user], private_names(FAKE_GITHUB)) == [
        "user.py:1 imports _Ctx",
        "user.py:3 uses ._pull_json",
        "user.py:3 uses ._repo",
    ]
