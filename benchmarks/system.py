"""The machine the figures were taken on, and start-up measurements in fresh processes."""

from __future__ import annotations

import os
import platform
import re
import statistics
import subprocess
import sys
from collections import Counter
from typing import Any

from benchmarks.world import ROOT

#: A valid configuration pointing at endpoints nobody listens on: importing connects to nothing.
DUMMY_ENV = {
    "GITHUB_WEBHOOK_SECRET": "benchmark-secret-0123456789",
    "GITHUB_REPOSITORY": "acme/access",
    "GITHUB_TOKEN": "ghp_benchmark0123456789",
    "GITHUB_API_URL": "http://127.0.0.1:9",
    "GOOGLE_CLOUD_PROJECT": "jitaccess-audit",
    "RESOURCE_MANAGER_ENDPOINT": "http://127.0.0.1:9",
    "CLOUD_ASSET_ENDPOINT": "http://127.0.0.1:9",
    "CLOUD_LOGGING_ENDPOINT": "http://127.0.0.1:9",
    "CLOUD_IDENTITY_ENDPOINT": "http://127.0.0.1:9",
}

_IMPORT_SNIPPET = (
    "import time; t = time.perf_counter(); import webhook.main; "
    "print(time.perf_counter() - t)"
)


def machine() -> dict[str, Any]:
    """CPU count and model, memory, OS and Python."""
    model = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            found = re.search(r"^model name\s*:\s*(.+)$", f.read(), re.MULTILINE)
        if found:
            model = found.group(1).strip()
    except OSError:
        pass
    mem_kib = 0
    try:
        with open("/proc/meminfo") as f:
            found = re.search(r"^MemTotal:\s*(\d+) kB", f.read(), re.MULTILINE)
        if found:
            mem_kib = int(found.group(1))
    except OSError:
        pass
    return {
        "nproc": os.cpu_count() or 0,
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": model,
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GITHUB_", "GAE_", "CLOUD_", "GOOGLE_"))
           and k not in ("RESOURCE_MANAGER_ENDPOINT", "CLEANUP_TOKEN")}
    env.update(DUMMY_ENV)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def cold_imports(runs: int) -> dict[str, Any]:
    """`import webhook.main` (which builds the app from the environment) in fresh processes.

    The first run warms the OS file cache and is not counted. Also returns the time of a whole
    `python -c` process (interpreter start-up included) for the median run's context.
    """
    env = _env()
    times: list[float] = []
    for i in range(runs + 1):
        out = subprocess.run(
            [sys.executable, "-c", _IMPORT_SNIPPET], cwd=ROOT, env=env, capture_output=True,
            text=True, check=True, timeout=60,
        )
        if i:
            times.append(float(out.stdout.strip().splitlines()[-1]))
    return {
        "runs": runs,
        "median_s": statistics.median(times),
        "min_s": min(times),
        "max_s": max(times),
        "heaviest": heaviest_imports(env),
    }


def heaviest_imports(env: dict[str, str], top: int = 8) -> list[tuple[str, float]]:
    """Self import time (ms) summed by top-level package, from `python -X importtime`."""
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import webhook.main"], cwd=ROOT, env=env,
        capture_output=True, text=True, check=True, timeout=60,
    )
    totals: Counter[str] = Counter()
    for line in out.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        fields = line[len("import time:"):].split("|")
        self_us, parts = int(fields[0]), fields[2].strip().split(".")
        if parts[0] == "google" and len(parts) > 2 and parts[1] == "cloud":
            key = ".".join(parts[:3])
        elif parts[0] == "google" and len(parts) > 1:
            key = ".".join(parts[:2])
        else:
            key = parts[0]
        totals[key] += self_us
    return [(name, us / 1000) for name, us in totals.most_common(top)]
