"""Fault-suite fixtures: the emulated world, and the consistency check run after every fault.

Faults are caused only through the fakes' injection (`recorder.fail`, `fail_rate_limited`,
`recorder.latency`, `set_analyzer_quota`); the service under test is the real one.
`assert_consistent` states what must hold whatever failed: IAM, the audit log and the PR agree.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from jitaccess_sandbox.emulator import BOT, POLICY_YAML, REPO, Emulator
from jitaccess_sandbox.faults import Fault
from tests.e2e.conftest import NOW, request_yaml
from webhook.core.render import (
    ACTIVATION_FAILED_MARKER_PREFIX,
    ACTIVATION_MARKER_PREFIX,
    COMMENT_MARKER,
    REFUSAL_MARKER_PREFIX,
)

__all__ = [
    "ACTIVATE", "NOW", "REPO", "Activation", "activations", "assert_consistent", "comment_kinds",
    "comment_of", "events", "google_error", "merged_ready", "redeliver_merge", "request_yaml",
    "stop", "when",
]

ACTIVATE = "gitops.activateRole"
TITLE = "JIT access activation"

_WINDOW = re.compile(
    r'^\(request\.time >= timestamp\("(?P<start>[^"]+)"\) && '
    r'request\.time < timestamp\("(?P<end>[^"]+)"\)\)'
)
_REFERENCE = re.compile(r"\((?P<repo>[^()\s#]+)#(?P<number>\d+)\)$")


def _make(policy_yaml: str = POLICY_YAML) -> Emulator:
    return Emulator(now=NOW, policy_yaml=policy_yaml)


@pytest.fixture
def emu() -> Iterator[Emulator]:
    """A seeded emulated world at NOW; asserts that no fake saw an unexpected call."""
    with _make() as world:
        yield world
        assert world.github.recorder.unexpected == []
        assert world.google.recorder.unexpected == []


@pytest.fixture
def analyzer_emu() -> Iterator[Emulator]:
    """The same world with `eligibility.source: policy-analyzer`."""
    policy = POLICY_YAML.replace("source: asset-inventory", "source: policy-analyzer")
    assert policy != POLICY_YAML
    with _make(policy) as world:
        yield world
        assert world.github.recorder.unexpected == []
        assert world.google.recorder.unexpected == []


# -- reading the world back ----------------------------------------------------------------------


def events(emu: Emulator) -> list[str]:
    """The `event` label of every audit entry, in order."""
    return [e.get("labels", {}).get("event", "") for e in emu.audit()]


def comment_kinds(emu: Emulator, number: int) -> list[str]:
    """The PR's comments by kind, oldest first: status, activation, failed, refusal, other."""
    kinds = []
    for body in emu.comments(number):
        first = body.splitlines()[0] if body else ""
        if first == COMMENT_MARKER:
            kinds.append("status")
        elif first.startswith(ACTIVATION_FAILED_MARKER_PREFIX):
            kinds.append("failed")
        elif first.startswith(ACTIVATION_MARKER_PREFIX):
            kinds.append("activation")
        elif first.startswith(REFUSAL_MARKER_PREFIX):
            kinds.append("refusal")
        else:
            kinds.append("other")
    return kinds


def comment_of(emu: Emulator, number: int, kind: str) -> str:
    """The one comment of a kind on the PR (fails unless there is exactly one)."""
    bodies = [b for b, k in zip(emu.comments(number), comment_kinds(emu, number), strict=True)
              if k == kind]
    assert len(bodies) == 1, (kind, comment_kinds(emu, number))
    return bodies[0]


@dataclass(frozen=True)
class Activation:
    """One activation binding, one member."""

    project: str
    role: str
    member: str
    description: str
    expression: str
    start: str
    end: str
    repo: str
    number: int


def activations(emu: Emulator) -> list[Activation]:
    """Every activation binding member on every project of the world."""
    out = []
    for resource in emu.world.projects():
        project = resource.removeprefix("projects/")
        for binding in emu.world.bindings(resource):
            condition = binding.get("condition") or {}
            if condition.get("title") != TITLE:
                continue
            window = _WINDOW.match(condition.get("expression", ""))
            assert window is not None, f"activation without a window: {binding}"
            ref = _REFERENCE.search(condition.get("description", ""))
            assert ref is not None, f"activation without a PR reference: {binding}"
            for member in binding["members"]:
                out.append(Activation(
                    project, binding["role"], member, condition["description"],
                    condition["expression"], window["start"], window["end"], ref["repo"],
                    int(ref["number"]),
                ))
    return out


def assert_consistent(
    emu: Emulator, number: int, *, require_comment: bool = True
) -> list[Activation]:
    """IAM, the audit log and PR `number` agree; returns the activations found.

    `require_comment=False` checks the state between a grant and its comment (GitHub failed
    after the IAM write and the audit entry): everything but the comment must hold.

    - every activation binding has exactly one `gitops.activateRole` entry with the same user,
      project, role and window, naming its PR, and its PR has an activation comment with the
      expiry;
    - every `gitops.activateRole` entry belongs to a live binding (nothing audited that is not
      granted), and no PR has two;
    - no two identical activation bindings, nor two activations of one PR for a role and member;
    - no two audit entries with the same insertId;
    - PR `number` has at most one status, activation, failure and refusal comment; an activation
      comment only when its bindings exist, and never next to a refusal.
    """
    found = activations(emu)
    entries = emu.audit()
    activated = [e for e in entries if e.get("labels", {}).get("event") == ACTIVATE]

    for act in found:
        user = act.member.removeprefix("user:")
        matching = [
            e for e in activated
            if e["labels"]["user"] == user
            and e["labels"]["project"] == act.project
            and act.role in e["labels"]["role"].split(",")
            and e["labels"]["activation_start"] == act.start
            and e["labels"]["activation_end"] == act.end
            and e["labels"]["pull_request"].endswith(f"/{act.repo}/pull/{act.number}")
        ]
        assert len(matching) == 1, f"{act}: {len(matching)} audit entries, want 1"
        assert matching[0]["severity"] == "NOTICE"
        comments = [
            b for b in emu.github.comments(act.repo, act.number)
            if b.login == BOT and b.body.startswith(ACTIVATION_MARKER_PREFIX)
        ]
        assert len(comments) <= 1, f"{act}: {len(comments)} activation comments"
        if require_comment:
            assert len(comments) == 1, f"{act}: no activation comment"
        if comments:
            assert f"**{act.end}**" in comments[0].body, comments[0].body

    for entry in activated:
        labels = entry["labels"]
        live = [
            a for a in found
            if a.member.removeprefix("user:") == labels["user"] and a.project == labels["project"]
            and a.role in labels["role"].split(",") and a.start == labels["activation_start"]
        ]
        assert live, f"audited activation without a binding: {labels}"
    per_pr = Counter(e["labels"]["pull_request"] for e in activated)
    assert all(n == 1 for n in per_pr.values()), per_pr

    identical = Counter((a.project, a.role, a.member.lower(), a.description, a.expression)
                        for a in found)
    assert all(n == 1 for n in identical.values()), identical
    per_request = Counter((a.project, a.role, a.member.lower(), a.repo, a.number) for a in found)
    assert all(n == 1 for n in per_request.values()), per_request

    insert_ids = Counter(e["insertId"] for e in entries if e.get("insertId"))
    assert all(n == 1 for n in insert_ids.values()), insert_ids

    kinds = Counter(comment_kinds(emu, number))
    for kind in ("status", "activation", "failed", "refusal"):
        assert kinds[kind] <= 1, kinds
    if kinds["activation"]:
        assert kinds["refusal"] == 0, kinds
        assert [a for a in found if a.repo == emu.repo and a.number == number], (
            "an activation comment without a binding"
        )
    return found


# -- driving -------------------------------------------------------------------------------------


def merged_ready(emu: Emulator, author: str = "alice", **request: Any) -> int:
    """Open a self-approval request, deliver `opened` (must be ready); returns the PR number."""
    number = emu.open_request(author, request_yaml(**request))
    answer = emu.pr_event("opened", number)
    assert answer.status == 200 and answer.body["state"] == "ready", answer
    return number


def redeliver_merge(emu: Emulator, number: int, delivery_id: str) -> Any:
    """Deliver the merged PR's `closed` event again (GitHub's manual redelivery keeps the id)."""
    return emu.deliver("pull_request", emu.pr_payload("closed", number), delivery_id=delivery_id)


def stop(fault: Fault) -> None:
    """End a fault injected with `times=-1` (the fakes' service recovers)."""
    fault.remaining = 0


def google_error(status: int, grpc: str, message: str = "injected") -> dict[str, Any]:
    """A Google JSON error body."""
    return {"error": {"code": status, "message": message, "status": grpc}}


def when(condition: Callable[[], bool], action: Callable[[], None],
         timeout: float = 10.0) -> threading.Thread:
    """Run `action` in the background as soon as `condition` holds (polled; bounded wait).

    Used to inject a fault at a precise point of a delivery, e.g. right after the IAM write.
    """

    def run() -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                action()
                return
            time.sleep(0.005)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread

