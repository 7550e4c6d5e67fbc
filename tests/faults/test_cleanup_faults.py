"""Cleanup runs cut short, through the real app over HTTP (`POST /tasks/cleanup`).

Whatever stops a run, no removal stands without its `gitops.removeExpired` entry: the entry is
written before the IAM write. A run stopped by its time budget, or whose IAM write failed after
the entry, leaves expired bindings that the next run removes, writing the same entry again
(same insertId and timestamp, shown once).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
import requests

from jitaccess_sandbox.emulator import Emulator
from jitaccess_sandbox.httpserver import LocalServer
from tests.faults.conftest import google_error, merged_ready
from webhook.service.app import create_app

TOKEN = "cleanup-token-0123456789abcdef"
DEV = "payments-dev"
REMOVE = "gitops.removeExpired"
SET_POLICY = r"^/v3/projects/payments-dev:setIamPolicy$"


@contextmanager
def serving(emu: Emulator) -> Iterator[str]:
    """The real app with a cleanup token, for the emulator's service, on its own port."""
    settings = dataclasses.replace(emu.settings, cleanup_token=TOKEN)
    with LocalServer(create_app(settings, service=emu.service)) as server:
        yield server.url


def run_cleanup(url: str) -> dict[str, Any]:
    resp = requests.post(
        f"{url}/tasks/cleanup", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
    )
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def expired_activation(emu: Emulator) -> None:
    """alice's 1 h activation on payments-dev, granted and then ended."""
    number = merged_ready(emu)
    assert emu.merge(number).body["state"] == "activated"
    assert len(emu.activations(DEV)) == 1
    emu.advance(timedelta(hours=1, seconds=1))


def removals(emu: Emulator, *, exported: bool = False) -> list[dict[str, Any]]:
    entries = emu.world.exported_logs() if exported else emu.audit()
    return [e for e in entries if e["labels"]["event"] == REMOVE]


def test_a_run_out_of_time_leaves_the_projects_to_the_next_run(
    emu: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    expired_activation(emu)
    with serving(emu) as url:
        # The service's budget: no time left for any project once the search is done.
        budget = dataclasses.replace(emu.settings.budget, cleanup_deadline=0.0)
        monkeypatch.setattr(emu.service, "settings", dataclasses.replace(
            emu.service.settings, budget=budget))
        body = run_cleanup(url)
        assert body == {
            "message": "removed 0 expired activation(s) in 0 project(s); stopped by its time "
                       "budget; 1 project(s) left for the next run",
            "removed": [], "projects": [], "errors": {}, "left": [DEV],
        }
        assert len(emu.activations(DEV)) == 1
        assert removals(emu) == []
        assert emu.google.recorder.count("POST", SET_POLICY) == 1  # the grant only

        monkeypatch.undo()
        body = run_cleanup(url)
    assert body["message"] == "removed 1 expired activation(s) in 1 project(s)"
    assert "left" not in body
    assert emu.activations(DEV) == []
    assert len(removals(emu)) == 1


def test_an_iam_write_failing_after_the_entry_is_finished_by_the_next_run(
    emu: Emulator,
) -> None:
    expired_activation(emu)
    emu.google.recorder.fail(
        "POST", SET_POLICY, 403, body=google_error(403, "PERMISSION_DENIED", "denied")
    )
    with serving(emu) as url:
        body = run_cleanup(url)
        # The entry was written, the binding is still there: the state a run killed between
        # the two steps leaves behind.
        assert body["removed"] == [] and list(body["errors"]) == [DEV]
        assert "lacks permission" in body["errors"][DEV]
        assert len(emu.activations(DEV)) == 1
        (entry,) = removals(emu)
        assert entry["labels"]["user"] == "alice@example.com"
        assert entry["labels"]["activation_end"] == "2026-11-29T11:00:00Z"

        body = run_cleanup(url)
    assert body["errors"] == {}
    assert [r["member"] for r in body["removed"]] == ["user:alice@example.com"]
    assert emu.activations(DEV) == []
    assert removals(emu) == [entry]  # no second distinct entry
    copies = removals(emu, exported=True)
    assert len(copies) == 2
    assert {(e["insertId"], e["timestamp"]) for e in copies} == {
        (entry["insertId"], entry["timestamp"])
    }
