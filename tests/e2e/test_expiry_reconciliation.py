"""After the merge, through the real service (HTTP /tasks/cleanup, fakes observed): the expiry
comment, and the reconciliation of live activations with the audit log."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from jitaccess_sandbox.emulator import POLICY_YAML, Emulator
from tests.e2e.conftest import request_yaml
from tests.e2e.test_operations import CLEANUP_TOKEN, cleanup, serving
from webhook.core.conditions import ACTIVATION_TITLE
from webhook.core.names import POLICY_PATH
from webhook.core.reconcile import EXPIRED_MARKER_PREFIX

DEV = "payments-dev"
PROD = "payments-prod"
ROLE = "roles/cloudsql.admin"
ALICE = "user:alice@example.com"
AUTH = {"Authorization": f"Bearer {CLEANUP_TOKEN}"}


def run_cleanup(emu: Emulator) -> dict[str, Any]:
    with serving(emu, cleanup_token=CLEANUP_TOKEN) as url:
        resp = cleanup(url, "POST", **AUTH)
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def window(start: str, end: str) -> str:
    return f'(request.time >= timestamp("{start}") && request.time < timestamp("{end}"))'


def add_activation(
    emu: Emulator, description: str, *, project: str = DEV, member: str = ALICE,
    start: str = "2026-11-29T10:00:00Z", end: str = "2026-11-29T12:00:00Z",
) -> None:
    emu.world.add_binding(f"projects/{project}", ROLE, member, window(start, end),
                          title=ACTIVATION_TITLE, description=description)


def events(emu: Emulator, event: str) -> list[dict[str, Any]]:
    return [e for e in emu.audit() if e["labels"]["event"] == event]


def expiry_comments(emu: Emulator, number: int) -> list[str]:
    return [c for c in emu.comments(number) if c.startswith(EXPIRED_MARKER_PREFIX)]


def activate(emu: Emulator, author: str = "alice") -> int:
    number = emu.open_request(author, request_yaml(duration="1h"))
    assert emu.pr_event("opened", number).body["state"] == "ready"
    assert emu.merge(number).body["state"] == "activated"
    return number


def list_calls(emu: Emulator) -> int:
    """Reconciliation's audit reads (each run also reads the break-glass records once)."""
    return sum(
        1 for c in emu.google.recorder.calls
        if c.path == "/v2/entries:list" and "labels.break_glass" not in json.loads(c.body)["filter"]
    )


# ----------------------------------------------------------------------------------------------
# Expiry


def test_expiry_comment_is_posted_once_across_runs(emu: Emulator) -> None:
    number = activate(emu)
    (binding,) = emu.activations(DEV)
    emu.advance(timedelta(hours=1, seconds=1))

    body = run_cleanup(emu)
    assert [r["member"] for r in body["removed"]] == [ALICE]
    assert body["commented"] == [number]
    (comment,) = expiry_comments(emu, number)
    assert comment.splitlines()[0] == "<!-- jit-access:expired 2026-11-29T11:00:00Z -->"
    assert "ended at 2026-11-29T11:00:00Z" in comment
    assert f"`{ROLE}` on project `{DEV}` for `alice@example.com`" in comment

    # The same expired binding back (an interrupted run, a restore): removed again, and the PR
    # is not told twice: the marker since the end is the record.
    emu.world.add_binding(f"projects/{DEV}", ROLE, ALICE, binding["condition"]["expression"],
                          title=ACTIVATION_TITLE, description=binding["condition"]["description"])
    body = run_cleanup(emu)
    assert [r["member"] for r in body["removed"]] == [ALICE]
    assert "commented" not in body
    assert len(expiry_comments(emu, number)) == 1
    assert emu.activations(DEV) == []

    # A third run has nothing to do.
    body = run_cleanup(emu)
    assert body["removed"] == [] and "commented" not in body
    assert len(expiry_comments(emu, number)) == 1


def test_expiry_of_another_repositorys_pr_is_not_commented(emu: Emulator) -> None:
    add_activation(emu, "Self-approved, justification: x (other/repo#1)",
                   start="2026-11-29T08:00:00Z", end="2026-11-29T09:00:00Z")
    body = run_cleanup(emu)
    assert [r["member"] for r in body["removed"]] == [ALICE]
    assert "commented" not in body
    assert emu.github.recorder.count("POST") == 0


def test_one_expiry_comment_per_pr_whatever_the_roles(emu: Emulator) -> None:
    number = activate(emu)
    add_activation(emu, f"Self-approved, justification: x ({emu.repo}#{number})",
                   project=PROD, start="2026-11-29T10:00:00Z", end="2026-11-29T11:00:00Z")
    emu.advance(timedelta(hours=2))
    body = run_cleanup(emu)
    assert len(body["removed"]) == 2
    assert body["commented"] == [number]
    (comment,) = expiry_comments(emu, number)
    assert f"on project `{DEV}`" in comment and f"on project `{PROD}`" in comment


# ----------------------------------------------------------------------------------------------
# Reconciliation


def test_a_hand_made_activation_is_orphaned_and_reported_once(emu: Emulator) -> None:
    add_activation(emu, f"Self-approved, justification: looks legit ({emu.repo}#77)")
    emu.advance(timedelta(minutes=30))
    for _ in range(2):
        body = run_cleanup(emu)
        assert body["orphaned"] == [{
            "project": DEV, "role": ROLE, "member": ALICE, "start": "2026-11-29T10:00:00Z",
            "end": "2026-11-29T12:00:00Z", "pull_request": f"{emu.repo}#77",
            "reason": f"no activation entry for {emu.repo}#77",
        }]
        assert "orphaned activation" in body["message"]
        assert "orphans_removed" not in body
    (entry,) = events(emu, "gitops.orphanedActivation")
    assert entry["severity"] == "WARNING"
    assert entry["labels"]["user"] == "alice@example.com"
    assert (entry["labels"]["project"], entry["labels"]["role"]) == (DEV, ROLE)
    assert len(emu.activations(DEV)) == 1  # not removed without cleanup.remove_orphans


def test_an_audited_activation_is_accounted_for(emu: Emulator) -> None:
    activate(emu)
    emu.advance(timedelta(minutes=30))
    body = run_cleanup(emu)
    assert "orphaned" not in body and "foreign" not in body
    assert events(emu, "gitops.orphanedActivation") == []


def test_a_widened_window_is_orphaned(emu: Emulator) -> None:
    number = activate(emu)
    policy = emu.world.get_policy(f"projects/{DEV}")
    for b in policy["bindings"]:
        if (b.get("condition") or {}).get("title") == ACTIVATION_TITLE:
            b["condition"]["expression"] = window("2026-11-29T10:00:00Z", "2026-11-29T20:00:00Z")
    emu.world.set_policy(f"projects/{DEV}", policy)
    emu.advance(timedelta(minutes=30))
    body = run_cleanup(emu)
    (orphan,) = body["orphaned"]
    assert orphan["pull_request"] == f"{emu.repo}#{number}"
    assert orphan["reason"] == f"its window is longer than the one audited for {emu.repo}#{number}"


def test_another_member_on_an_audited_pr_is_orphaned(emu: Emulator) -> None:
    number = activate(emu)
    add_activation(emu, f"Self-approved, justification: x ({emu.repo}#{number})",
                   member="user:mallory@example.com")
    emu.advance(timedelta(minutes=30))
    (orphan,) = run_cleanup(emu)["orphaned"]
    assert orphan["member"] == "user:mallory@example.com"
    assert "another member, role or project" in orphan["reason"]


def test_a_young_activation_is_not_judged_yet(emu: Emulator) -> None:
    add_activation(emu, f"Self-approved, justification: x ({emu.repo}#77)")
    body = run_cleanup(emu)  # started just now: its audit entry may still be on its way
    assert "orphaned" not in body
    assert list_calls(emu) == 0


def test_remove_orphans_removes_with_its_entry_first(emu: Emulator) -> None:
    emu.github.put_file(emu.repo, POLICY_PATH, POLICY_YAML + "cleanup:\n  remove_orphans: true\n")
    number = activate(emu)
    add_activation(emu, f"Self-approved, justification: x ({emu.repo}#77)",
                   project=PROD)
    emu.advance(timedelta(minutes=30))
    body = run_cleanup(emu)
    assert [o["project"] for o in body["orphans_removed"]] == [PROD]
    assert emu.activations(PROD) == []
    assert len(emu.activations(DEV)) == 1  # the audited one stays
    kinds = [e["labels"]["event"] for e in emu.audit()]
    assert kinds[-2:] == ["gitops.orphanedActivation", "gitops.removeOrphan"]
    # The removal's entry was written before the etag-guarded write that removed it.
    calls = [c.path for c in emu.google.recorder.calls]
    write_entry = max(i for i, p in enumerate(calls) if p == "/v2/entries:write")
    set_policy = max(i for i, p in enumerate(calls) if p.endswith(":setIamPolicy"))
    assert write_entry < set_policy
    assert "commented" not in body and number  # nothing expired
    assert "orphaned" not in run_cleanup(emu)


def test_foreign_activations_are_reported_and_never_touched(emu: Emulator) -> None:
    emu.github.put_file(emu.repo, POLICY_PATH, POLICY_YAML + "cleanup:\n  remove_orphans: true\n")
    add_activation(emu, "Self-approved, justification: written by jit-access")
    add_activation(emu, "Self-approved, justification: x (other/repo#5)", project=PROD)
    emu.advance(timedelta(minutes=30))
    before = [emu.world.bindings(f"projects/{p}") for p in (DEV, PROD)]
    body = run_cleanup(emu)
    assert "orphaned" not in body
    assert [(f["project"], f["pull_request"], f["reason"]) for f in body["foreign"]] == [
        (DEV, None, "names no pull request (written by jit-access)"),
        (PROD, "other/repo#5", "names a pull request of other/repo"),
    ]
    assert [emu.world.bindings(f"projects/{p}") for p in (DEV, PROD)] == before
    assert events(emu, "gitops.orphanedActivation") == []
    assert list_calls(emu) == 0  # nothing of this repository to judge: no audit read


def test_the_audit_read_is_one_query_whatever_the_bindings(emu: Emulator) -> None:
    def orphans_with(n: int) -> tuple[int, int]:
        for i in range(n):
            add_activation(emu, f"Self-approved, justification: x ({emu.repo}#{100 + i})",
                           member=f"user:u{n}-{i}@example.com")
        emu.advance(timedelta(minutes=30))
        before = list_calls(emu)
        body = run_cleanup(emu)
        return list_calls(emu) - before, len(body["orphaned"])

    assert orphans_with(1) == (1, 1)
    calls, found = orphans_with(12)
    assert (calls, found) == (1, 13)
    query = [json.loads(c.body)["filter"] for c in emu.google.recorder.calls
             if c.path == "/v2/entries:list"
             and "labels.break_glass" not in json.loads(c.body)["filter"]][-1]
    assert 'labels.event="gitops.activateRole"' in query and "labels.pull_request" not in query


def test_an_unreadable_audit_log_calls_nothing_orphaned(emu: Emulator) -> None:
    emu.github.put_file(emu.repo, POLICY_PATH, POLICY_YAML + "cleanup:\n  remove_orphans: true\n")
    add_activation(emu, f"Self-approved, justification: x ({emu.repo}#77)")
    emu.advance(timedelta(minutes=30))
    emu.google.recorder.fail("POST", r"/v2/entries:list", 403, times=10, body={
        "error": {"code": 403, "message": "Permission denied", "status": "PERMISSION_DENIED"}})
    body = run_cleanup(emu)
    assert "orphaned" not in body
    assert "The audit log could not be read" in body["errors"]["reconciliation"]
    assert len(emu.activations(DEV)) == 1


def test_no_orphan_removal_without_its_entry(emu: Emulator) -> None:
    add_activation(emu, f"Self-approved, justification: x ({emu.repo}#77)")
    emu.advance(timedelta(minutes=30))
    assert len(run_cleanup(emu)["orphaned"]) == 1  # reported; not removed
    emu.github.put_file(emu.repo, POLICY_PATH, POLICY_YAML + "cleanup:\n  remove_orphans: true\n")
    emu.google.recorder.fail("POST", r"/v2/entries:write", 403, times=10, body={
        "error": {"code": 403, "message": "Permission denied", "status": "PERMISSION_DENIED"}})
    sets = emu.google.recorder.count("POST", r".*:setIamPolicy")
    body = run_cleanup(emu)
    assert "orphans_removed" not in body
    assert "The audit entry (gitops.removeOrphan) could not be written" in body["errors"][DEV]
    assert len(emu.activations(DEV)) == 1
    assert emu.google.recorder.count("POST", r".*:setIamPolicy") == sets
    assert len(events(emu, "gitops.orphanedActivation")) == 1
