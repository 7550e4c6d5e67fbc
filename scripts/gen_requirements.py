"""Generate App Engine's requirements.txt from pyproject.toml's [project].dependencies.

App Engine installs `requirements.txt` with pip at deploy time; our own package (`webhook/`) is
uploaded with the app and imported from the app root, so only third-party dependencies belong
here. pyproject.toml is the one source of truth; this file is derived from it.

    python scripts/gen_requirements.py            # rewrite requirements.txt
    python scripts/gen_requirements.py --check    # exit 1 when requirements.txt is out of date
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEADER = (
    "# Generated from pyproject.toml ([project].dependencies) by scripts/gen_requirements.py.\n"
    "# Do not edit: change pyproject.toml and run `python scripts/gen_requirements.py`.\n"
)


def render(pyproject_text: str) -> str:
    """The requirements.txt text for a pyproject.toml's contents."""
    data = tomllib.loads(pyproject_text)
    dependencies = data.get("project", {}).get("dependencies")
    if not isinstance(dependencies, list) or not all(isinstance(d, str) for d in dependencies):
        raise ValueError("pyproject.toml has no [project].dependencies list of strings")
    # Keep pyproject's order (it is reviewed there); one requirement per line.
    return HEADER + "".join(f"{dependency.strip()}\n" for dependency in dependencies)


def main(argv: list[str] | None = None) -> int:
    """Rewrite requirements.txt, or with --check report whether it is up to date."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is out of date")
    parser.add_argument("--pyproject", type=Path, default=ROOT / "pyproject.toml")
    parser.add_argument("--output", type=Path, default=ROOT / "requirements.txt")
    args = parser.parse_args(argv)

    expected = render(args.pyproject.read_text(encoding="utf-8"))
    current = args.output.read_text(encoding="utf-8") if args.output.exists() else None
    if args.check:
        if current != expected:
            print(
                f"{args.output} is out of date with {args.pyproject}; "
                "run `python scripts/gen_requirements.py`",
                file=sys.stderr,
            )
            return 1
        return 0
    if current != expected:
        args.output.write_text(expected, encoding="utf-8")
        print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
