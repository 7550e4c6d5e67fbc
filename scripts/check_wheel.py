"""Build the service's wheel and check that it holds the webhook package and nothing else.

The fake servers (jitaccess_sandbox/), tests and benchmarks stay in the repository: the wheel,
like the App Engine upload, carries no code that the service does not run.

    python scripts/check_wheel.py     # exit 1 when the wheel holds anything but webhook/
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ALLOWED = ("webhook/",)


def source_copy(dest: Path) -> Path:
    """The repository's files (tracked, or new and not git-ignored) copied to `dest`: a build
    in the working tree could pack stale files left in build/ by an earlier build."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode().split("\0")
    for name in filter(None, listed):
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    return dest


def build(source: Path, out: Path) -> Path:
    """`pip wheel --no-deps .` of `source` into `out`; the wheel's path."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", str(source), "-w", str(out)],
        check=True,
    )
    [wheel] = out.glob("*.whl")
    return wheel


def strays(names: list[str]) -> list[str]:
    """Entries of a wheel outside the webhook package and the wheel's own metadata."""
    return [
        n for n in names
        if not n.startswith(ALLOWED) and not n.split("/", 1)[0].endswith(".dist-info")
    ]


def main() -> int:
    """Build, report the size, and fail on anything that is not the service."""
    with tempfile.TemporaryDirectory() as tmp:
        wheel = build(source_copy(Path(tmp) / "src"), Path(tmp) / "dist")
        with zipfile.ZipFile(wheel) as archive:
            names = archive.namelist()
        print(f"{wheel.name}: {wheel.stat().st_size} bytes, {len(names)} files")
    unexpected = strays(names)
    for name in unexpected:
        print(f"not part of the service: {name}", file=sys.stderr)
    return 1 if unexpected else 0


if __name__ == "__main__":
    sys.exit(main())
