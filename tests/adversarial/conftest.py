"""Adversarial fixtures and assertions: every attack must end in a clear refusal and no grant.

The `emu` fixture is the end-to-end one (a fresh emulated world per test, clock at NOW, no
unexpected fake calls). `shared_emu` is one world per module for the long tables of hostile
request files: each case opens its own PR with its own file name, and nothing in those modules
is ever granted, so "no grant anywhere" stays a meaningful check across cases.
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from jitaccess_sandbox.emulator import REPO, SECRET, Answer, Emulator
from jitaccess_sandbox.fake_google_iam import iam_state
from tests.e2e.conftest import NOW, emu, request_yaml  # noqa: F401  (fixture re-exported)
from webhook.core.conditions import ACTIVATION_TITLE
from webhook.core.render import COMMENT_MARKER, REFUSAL_MARKER_PREFIX
from webhook.service.app import sign

ACTIVATE = "gitops.activateRole"
REFUSE = "gitops.refuseActivation"
REQUEST = "gitops.requestRole"
APPROVE = "gitops.approveRole"
NOT_ACTIVATED = "Access not activated"

__all__ = ["NOW", "emu", "request_yaml"]


@pytest.fixture(scope="module")
def shared_emu() -> Iterator[Emulator]:
    """One seeded world for a whole module (cases use distinct PRs and file names)."""
    with Emulator(now=NOW) as world:
        yield world
        assert world.github.recorder.unexpected == []
        assert world.google.recorder.unexpected == []


_names = itertools.count(1)


def unique_name() -> str:
    """A request file name no other case in the session uses."""
    return f"case-{next(_names)}.yaml"


# --------------------------------------------------------------------------------------------
# Reading the world back


def activation_bindings(emu: Emulator) -> list[tuple[str, dict[str, Any]]]:
    """Every `JIT access activation` binding on every resource of the fake Google world."""
    resources = set(emu.world.projects()) | set(emu.world.policies)
    found = []
    for resource in sorted(resources):
        for binding in emu.world.bindings(resource):
            if (binding.get("condition") or {}).get("title") == ACTIVATION_TITLE:
                found.append((resource, binding))
    return found


def events(emu: Emulator, number: int | None = None) -> list[str]:
    """The `event` labels of the audit log, oldest first (of one PR when `number` is given)."""
    return [e["labels"]["event"] for e in pr_audit(emu, number)]


def pr_audit(emu: Emulator, number: int | None = None) -> list[dict[str, Any]]:
    """Audit entries, of one PR when `number` is given."""
    entries = emu.audit()
    if number is None:
        return entries
    suffix = f"/{REPO}/pull/{number}"
    return [e for e in entries if e["labels"].get("pull_request", "").endswith(suffix)]


def iam_writes(emu: Emulator) -> int:
    """How many setIamPolicy calls the fake accepted."""
    return len(iam_state(emu.world).request_reasons)


def assert_no_grant(emu: Emulator) -> None:
    """No activation binding on any project (or anywhere), no accepted IAM write at all, and
    no `gitops.activateRole` audit entry."""
    assert activation_bindings(emu) == []
    for project in emu.world.projects():
        assert emu.activations(project.removeprefix("projects/")) == []
    assert iam_writes(emu) == 0
    assert ACTIVATE not in events(emu)


# --------------------------------------------------------------------------------------------
# Driving attacks


def open_files(emu: Emulator, author: str, files: dict[str, str | bytes], **kw: Any) -> int:
    """Open a PR with these files and deliver `opened`; returns its number."""
    number = emu.github.open_pr(emu.repo, author, files, **kw)
    answer = emu.pr_event("opened", number)
    assert answer.status == 200, answer.body
    return number


def submit(emu: Emulator, author: str, text: str | bytes) -> tuple[int, Answer]:
    """Open a request PR with a fresh file name and deliver `opened`."""
    number = emu.github.open_pr(
        emu.repo, author, {f"requests/{author}/{unique_name()}": text}
    )
    return number, emu.pr_event("opened", number)


def status_of(emu: Emulator, number: int) -> dict[str, Any]:
    """The `jit-access` status on the PR's head (it must exist)."""
    status = emu.status(number)
    assert status is not None, f"no jit-access status on #{number}"
    return status


def status_comment_of(emu: Emulator, number: int) -> str:
    """The one status comment of a PR."""
    found = [c for c in emu.comments(number) if c.startswith(COMMENT_MARKER)]
    assert len(found) == 1, found
    return found[0]


def merge_and_assert_refused(emu: Emulator, number: int, phrase: str = "") -> Answer:
    """Merge anyway (an admin bypassing branch protection) and prove nothing was granted:
    a 200 `refused` answer naming `phrase`, a new refusal comment, a WARNING
    `gitops.refuseActivation` audit entry for this PR and no `gitops.activateRole`."""
    answer = emu.merge(number)
    assert answer.status == 200, answer.body
    assert answer.body["state"] == "refused", answer.body
    assert "activation refused" in answer.body["message"]
    assert phrase in answer.body["message"], answer.body["message"]
    last = emu.comments(number)[-1]
    assert last.startswith(REFUSAL_MARKER_PREFIX)
    assert NOT_ACTIVATED in last
    assert "no access was granted" in last
    mine = pr_audit(emu, number)
    assert [e["labels"]["event"] for e in mine if e["labels"]["event"] not in (REQUEST, APPROVE)
            ] == [REFUSE]
    assert mine[-1]["severity"] == "WARNING"
    assert_no_grant(emu)
    return answer


def post(url: str, event: str, body: bytes, *, signature: str | None = None,
         delivery_id: str | None = None) -> Answer:
    """POST a delivery to a service at `url`, signed with the emulator's secret by default."""
    resp = requests.post(
        f"{url}/webhook", data=body, timeout=30,
        headers={
            "Content-Type": "application/json",
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery_id or str(uuid.uuid4()),
            "X-Hub-Signature-256": signature if signature is not None else sign(SECRET, body),
        },
    )
    return Answer(resp.status_code, resp.json())


def body_of(payload: dict[str, Any]) -> bytes:
    """A payload's bytes as GitHub would send them."""
    return json.dumps(payload).encode()


# --------------------------------------------------------------------------------------------
# Tables of hostile request files


@dataclass(frozen=True)
class Case:
    """One hostile request file and how the service must judge it."""

    id: str
    text: str
    state: str  # the answer's state: invalid, not_eligible or ready
    phrase: str = ""  # in the status description or the status comment


def check(emu: Emulator, case: Case) -> None:
    """Submit the case's file; a refusal must name `case.phrase` and hold at merge too."""
    number, answer = submit(emu, "alice", case.text)
    assert answer.status == 200, answer.body
    assert answer.body["state"] == case.state, (answer.body, status_of(emu, number))
    status = status_of(emu, number)
    if case.state == "ready":
        assert status["state"] == "success"
        assert_no_grant(emu)
        return
    assert status["state"] == "failure"
    where = status["description"] + "\n" + status_comment_of(emu, number)
    assert case.phrase in where, where
    merge_and_assert_refused(emu, number)
