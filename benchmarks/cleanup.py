"""Cleanup at organisation scale: N projects with one expired activation each.

Each measurement uses a fresh emulated world (the standard one, plus a folder of N projects whose
policies hold one expired `JIT access activation` each) and the fake Google's latency set to the
cleanup latency (200 ms per call by default). Two configurations:

- `service`: `POST /tasks/cleanup` (with a `CLEANUP_TOKEN`) to `webhook.main:app` in a fresh
  service process, configured from the environment as in production: the default workers, pace
  and time budget of `webhook.service.cleanup`;
- `unpaced`: `Cleaner.cleanup` in the benchmark's own process with the default workers but no
  pace, i.e. what a raised Resource Manager quota allows; bounded by the workers and the latency.

Every run is checked: no errors, and every removal in IAM has its audit entry.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from benchmarks.world import ServiceProcess, emulated_world, endpoint_counts
from jitaccess_sandbox.emulator import ORG, REPO, Emulator
from jitaccess_sandbox.faults import Call
from webhook.core.conditions import build_binding

FOLDER = "folders/300000000001"
ROLE = "roles/cloudsql.admin"
TOKEN = "bench-cleanup-token-0123456789abcdef"
REMOVE = "gitops.removeExpired"


@dataclass
class CleanupResult:
    """One cleanup run over a fleet of projects."""

    config: str  # "service" or "unpaced"
    projects: int  # projects seeded, each with one expired activation
    seed_s: float  # seconds to build the fleet in the fakes
    wall: float  # seconds, the cleanup call at the client
    removed: int
    handled: int  # projects the run started
    left: int  # projects left for the next run (time budget)
    errors: int
    message: str
    calls: dict[str, int]  # by normalised endpoint
    per_minute: dict[str, int]  # the most calls in any 60 s, for getIamPolicy and setIamPolicy
    rss_kib: dict[str, int] = field(default_factory=dict)  # service process, after the run

    starts: tuple[float, float] = (0.0, 0.0)  # first and last getIamPolicy (fake's clock)
    still_expired: int = 0  # expired activations still in IAM after the run
    unaudited: int = 0  # removed activations without a removeExpired entry (must be 0)

    @property
    def rate(self) -> float:
        """Projects handled per second, over the whole call."""
        return self.handled / self.wall if self.wall else float("nan")

    @property
    def pace(self) -> float:
        """Projects started per second in the steady state (first to last project read)."""
        first, last = self.starts
        return (self.handled - 1) / (last - first) if last > first else 0.0


def _wire(project: str, i: int, start: datetime, end: datetime) -> dict[str, Any]:
    b = build_binding(ROLE, f"fleet{i}@example.com", (), "INC-1: benchmark fleet",
                      f"{REPO}#{i + 1}", start, end)
    return {
        "role": b.role,
        "members": [b.member],
        "condition": {"title": b.title, "description": b.description, "expression": b.expression},
    }


def seed_fleet(emu: Emulator, count: int) -> list[str]:
    """`count` projects in a folder of their own, each with one activation that ended an hour ago
    (by the real clock: the service process uses it)."""
    end = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    start = end - timedelta(hours=1)
    emu.world.add_folder(FOLDER, ORG)
    projects = []
    for i in range(count):
        project = f"fleet-{i:05d}"
        resource = emu.world.add_project(project, FOLDER)
        emu.world.set_policy(resource, {"version": 3, "bindings": [_wire(project, i, start, end)]})
        projects.append(project)
    return projects


def _max_per_minute(calls: list[Call], suffix: str) -> int:
    times = sorted(c.at for c in calls if c.path.endswith(suffix))
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while t - times[lo] >= 60.0:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def _check(emu: Emulator, projects: list[str], result: CleanupResult) -> None:
    """Count what is still expired and every removal without its entry; refuse a broken run."""
    audited = {e["labels"]["project"] for e in emu.audit() if e["labels"]["event"] == REMOVE}
    for project in projects:
        if emu.activations(project):
            result.still_expired += 1
        elif project not in audited:
            result.unaudited += 1
    if result.errors or result.unaudited:
        raise RuntimeError(f"cleanup of {result.projects} projects ({result.config}): "
                           f"{result.message}; {result.unaudited} removal(s) without an entry")


def run_cleanup(config: str, count: int, latency: float, max_runs: int = 3) -> list[CleanupResult]:
    """Seed a fresh world with `count` expired activations and clean it up: one run, and as
    many more as the time budget makes necessary (each as the next cron run would be)."""
    results: list[CleanupResult] = []
    with emulated_world() as emu:
        started = time.perf_counter()
        projects = seed_fleet(emu, count)
        seed_s = time.perf_counter() - started
        service = ServiceProcess(emu, {"CLEANUP_TOKEN": TOKEN}) if config == "service" else None
        cleaner = _unpaced(emu) if service is None else None
        try:
            while len(results) < max_runs and (not results or results[-1].left):
                results.append(_one_run(emu, service, cleaner, config, count, latency, seed_s))
                _check(emu, projects, results[-1])
        finally:
            if service is not None:
                service.close()
    return results


def _one_run(
    emu: Emulator, service: ServiceProcess | None, cleaner: Any, config: str, count: int,
    latency: float, seed_s: float,
) -> CleanupResult:
    emu.google.recorder.calls.clear()
    emu.google.recorder.latency = emu.github.recorder.latency = latency
    started = time.perf_counter()
    rss: dict[str, int] = {}
    if service is not None:
        response = requests.post(
            f"{service.url}/tasks/cleanup", headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=900,
        )
        wall = time.perf_counter() - started
        if response.status_code != 200:
            raise RuntimeError(f"cleanup: HTTP {response.status_code} {response.text}")
        body = response.json()
        removed, handled = len(body["removed"]), len(body["projects"])
        left, errors = len(body.get("left", [])), len(body["errors"])
        message = str(body["message"])
        emu.google.recorder.latency = emu.github.recorder.latency = 0.0
        rss = service.rss()
    else:
        report = cleaner.cleanup(ORG, datetime.now(UTC))
        wall = time.perf_counter() - started
        removed, handled = len(report.removed), len(report.projects)
        left, errors, message = len(report.left), len(report.errors), report.summary()
    emu.google.recorder.latency = emu.github.recorder.latency = 0.0
    calls = list(emu.google.recorder.calls)
    reads = [c.at for c in calls if c.path.endswith(":getIamPolicy")]
    return CleanupResult(
        config=config, projects=count, seed_s=seed_s, wall=wall, removed=removed,
        handled=handled, left=left, errors=errors, message=message,
        calls=dict(sorted(endpoint_counts(calls, "Google").items())),
        per_minute={
            "getIamPolicy": _max_per_minute(calls, ":getIamPolicy"),
            "setIamPolicy": _max_per_minute(calls, ":setIamPolicy"),
        },
        rss_kib=rss, starts=(min(reads, default=0.0), max(reads, default=0.0)),
    )


def _unpaced(emu: Emulator) -> Any:
    """The cleaner with the default workers and no pace, on clients for the emulator's fakes."""
    from webhook.adapters.cloud_logging import AuditLog
    from webhook.adapters.google_clients import GoogleClients
    from webhook.adapters.iam import Activator
    from webhook.service.cleanup import Cleaner

    clients = GoogleClients(emu.settings.endpoints, emu.settings.google_project)
    audit, activator = AuditLog(clients), Activator(clients)
    return Cleaner(clients, audit, activator, projects_per_second=None)
