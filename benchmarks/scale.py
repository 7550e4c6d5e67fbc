"""Eligibility at organisation scale: what one event costs as group bindings and reviewers grow.

Two measurements, run after the others (they add projects, groups, reviewers and a large policy
to the emulated world):

- **The matrix** — for G group bindings × R reviewers, a project of its own: alice may activate
  `roles/cloudsql.admin` there with approval (a direct binding); half the G groups (rounded up)
  are multi-party groups that share the R reviewers between them, the other half self-approval
  groups alice is not in. alice opens a request (pending: the qualified peers are listed), all
  R reviewers approve the head commit (one delivery, for the last approval: ready), the PR is
  merged (activated). Per event: Google and GitHub calls and the wall time at the injected
  latency. Target: every event under 2 s at 50 ms per call.
- **A large policy** — 1,500 bindings spread over a project's own policy and its 11 ancestors
  (10 folders and the organization), 50 roles, users and groups, with and without conditions;
  alice's multi-party binding and bob's reviewers group among them. The service's CPU per event
  (no latency, median): opened, review, merge. Target: ≤ 200 ms.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from benchmarks.world import Bench, Delivery, request_text
from jitaccess_sandbox.emulator import IDENTITIES_YAML, MULTI, ORG, REPO, SELF

ROLE = "roles/cloudsql.admin"
GROUPS = (1, 20, 250)
REVIEWERS = (1, 100, 300)
QUICK_CELLS = ((1, 1), (250, 100))

TARGET_EVENT_S = 2.0
TARGET_BIG_CPU_MS = 200.0
BIG_BINDINGS = 1500
BIG_FOLDERS = 10
BIG_PROJECT = "payments-big"


def cells(quick: bool) -> list[tuple[int, int]]:
    """The (group bindings, reviewers) cells to measure."""
    return list(QUICK_CELLS) if quick else [(g, r) for g in GROUPS for r in REVIEWERS]


def seed_identities(bench: Bench, load_logins: Sequence[str], reviewers: int) -> list[str]:
    """`reviewers` GitHub users with identities (beside the load users); their logins."""
    emu = bench.emu
    logins = [f"rev{i:03d}" for i in range(1, reviewers + 1)]
    for login in logins:
        emu.github.add_user(login)
    text = IDENTITIES_YAML + "".join(
        f"{login}: {login}@example.com\n" for login in [*load_logins, *logins]
    )
    emu.github.put_file(REPO, "policy/identities.yaml", text)
    return logins


def seed_cell(bench: Bench, groups: int, reviewers: Sequence[str]) -> str:
    """The project of one matrix cell; returns its ID."""
    world = bench.emu.world
    project = f"scale-g{groups}-r{len(reviewers)}"
    world.add_project(project, ORG)
    multi = max(1, (groups + 1) // 2)
    bindings: list[dict[str, Any]] = [
        {"role": ROLE, "members": ["user:alice@example.com"],
         "condition": {"expression": MULTI, "title": "Eligible with approval"}},
    ]
    for i in range(groups):
        group = f"{project}-{i:03d}@example.com"
        if i < multi:
            members = [f"{r}@example.com" for r in reviewers[i::multi]] or ["nobody@example.com"]
            marker = MULTI
        else:
            members, marker = [f"{project}-member{i}@example.com"], SELF
        world.add_group(group, members)
        bindings.append({"role": ROLE, "members": [f"group:{group}"],
                         "condition": {"expression": marker, "title": f"group {i}"}})
    world.set_policy(f"projects/{project}", {"version": 3, "bindings": bindings})
    return project


@dataclass
class EventCost:
    """What one delivery cost."""

    google: int
    github: int
    wall_s: float
    cpu_ms: float | None = None


@dataclass
class CellResult:
    """One cell of the matrix."""

    groups: int
    reviewers: int
    events: dict[str, EventCost] = field(default_factory=dict)


def _cost(d: Delivery) -> EventCost:
    return EventCost(len(d.google), len(d.github), d.answer.wall, d.answer.cpu_ms)


def lifecycle(bench: Bench, project: str, reviewers: Sequence[str], tag: str) -> list[Delivery]:
    """alice opens a request for `project`, every reviewer approves, the PR is merged."""
    emu = bench.emu
    n = emu.open_request("alice", request_text(project), name=f"{tag}.yaml")
    out = [bench.deliver("scale_opened", "pull_request", emu.pr_payload("opened", n))]
    last = 0
    for login in reviewers:
        last = emu.github.add_review(REPO, n, login, "APPROVED")
    out.append(bench.deliver("scale_review", "pull_request_review",
                             emu.review_payload("submitted", n, last)))
    emu.github.merge(REPO, n, merged_by="alice")
    out.append(bench.deliver("scale_merge", "pull_request", emu.pr_payload("closed", n)))
    return out


def matrix(bench: Bench, reviewers: Sequence[str], quick: bool) -> list[CellResult]:
    """Every cell, at the latency the bench is set to."""
    results = []
    for groups, count in cells(quick):
        project = seed_cell(bench, groups, reviewers[:count])
        done = lifecycle(bench, project, reviewers[:count], f"scale-{groups}-{count}")
        result = CellResult(groups, count)
        for d, name in zip(done, ("opened", "review", "merge"), strict=True):
            result.events[name] = _cost(d)
        results.append(result)
    return results


def seed_big_policy(bench: Bench) -> str:
    """A project whose effective policy has BIG_BINDINGS bindings over 12 policies."""
    world = bench.emu.world
    parent = ORG
    for i in range(BIG_FOLDERS):
        parent = world.add_folder(f"folders/9{i:011d}", parent)
    world.add_project(BIG_PROJECT, parent)
    world.add_group("big-reviewers@example.com", ["bob@example.com", "carol@example.com"])
    chain = world.ancestry(f"projects/{BIG_PROJECT}")  # the project, 10 folders, the org
    per = BIG_BINDINGS // len(chain)
    for level, resource in enumerate(chain):
        policy = world.get_policy(resource)
        bindings = list(policy["bindings"])
        for j in range(per - (2 if level == 0 else 0)):
            binding: dict[str, Any] = {
                "role": f"roles/bench.role{j % 50}",
                "members": [f"user:u{level}-{j}@example.com", f"group:g{j % 40}@example.com",
                            f"serviceAccount:sa{j}@p.iam.gserviceaccount.com"],
            }
            if j % 3 == 0:
                binding["condition"] = {"expression": SELF, "title": "eligible"}
            elif j % 3 == 1:
                binding["condition"] = {
                    "expression": "request.time < timestamp('2099-01-01T00:00:00Z')",
                    "title": "until 2099",
                }
            bindings.append(binding)
        if level == 0:
            bindings.append({"role": ROLE, "members": ["user:alice@example.com"],
                             "condition": {"expression": MULTI, "title": "with approval"}})
            bindings.append({"role": ROLE, "members": ["group:big-reviewers@example.com"],
                             "condition": {"expression": MULTI, "title": "reviewers"}})
        world.set_policy(resource, {"version": 3, "bindings": bindings})
    return BIG_PROJECT


def big_policy_cpu(bench: Bench, reps: int) -> dict[str, dict[str, float]]:
    """The service's CPU per event (ms) for the large policy, no latency: median and max."""
    project = seed_big_policy(bench)
    cpu: dict[str, list[float]] = {"opened": [], "review": [], "merge": []}
    for rep in range(reps + 1):
        done = lifecycle(bench, project, ["bob"], f"big-{rep}")
        if rep == 0:
            continue  # the first round parses the new identities file and warms the caches
        for d, name in zip(done, cpu, strict=True):
            assert d.answer.cpu_ms is not None
            cpu[name].append(d.answer.cpu_ms)
    return {k: {"median_ms": statistics.median(v), "max_ms": max(v)} for k, v in cpu.items()}
