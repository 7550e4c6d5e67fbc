"""Spending Policy Analyzer's daily quota (20 queries per organization without SCC Premium) on
events that cannot grant: only the merge asks Policy Analyzer; every event before it (opened,
pushed, reviewed) is judged through the asset-inventory path, so nobody who can merely open,
review or comment can block everyone's requests. Title and description edits, comment reviews
and review edits are not evaluated at all.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from jitaccess_sandbox.emulator import POLICY_YAML, Emulator
from jitaccess_sandbox.fake_google_assets import analyzer_queries
from tests.e2e.conftest import NOW, request_yaml

REPO = "acme/access"
SEARCH = r"^/v1/groups/-/memberships:searchDirectGroups$"
BATCH_GET = r"effectiveIamPolicies:batchGet$"


@pytest.fixture
def emu() -> Iterator[Emulator]:
    policy = POLICY_YAML.replace("source: asset-inventory", "source: policy-analyzer")
    with Emulator(now=NOW, policy_yaml=policy) as world:
        yield world
        assert world.github.recorder.unexpected == []
        assert world.google.recorder.unexpected == []


def test_only_the_merge_spends_a_query(emu: Emulator) -> None:
    number = emu.open_request("alice", request_yaml(project="payments-prod"))
    assert emu.pr_event("opened", number).body["state"] == "pending"
    assert analyzer_queries(emu.world) == 0

    edit_ignored = {"message": f"PR #{number}: title or description edited; nothing to do"}
    review_ignored = {"message": f"PR #{number}: review comment or edit; nothing to do"}
    for _ in range(10):
        assert emu.pr_event("edited", number).body == edit_ignored
    for _ in range(5):
        review_id, answer = emu.review(number, "mallory", "COMMENTED")
        assert answer.body == review_ignored
        edit = emu.review_payload("edited", number, review_id)
        assert emu.deliver("pull_request_review", edit).body == review_ignored
    assert analyzer_queries(emu.world) == 0

    _, answer = emu.review(number, "bob", "APPROVED")  # evaluated, through asset-inventory
    assert answer.body["state"] == "ready"
    assert analyzer_queries(emu.world) == 0

    merged = emu.merge(number)
    assert merged.status == 200 and merged.body["state"] == "activated", merged.body
    assert analyzer_queries(emu.world) == 1  # one query per merged request


def test_approvals_by_people_without_an_identity_spend_nothing(emu: Emulator) -> None:
    # 19 approvals by unmapped accounts once spent 19 of the 20 daily queries.
    number = emu.open_request("alice", request_yaml(project="payments-prod"))
    emu.pr_event("opened", number)
    opened = emu.google.recorder.count("GET")  # batchGet, alice's groups, the peers of sre@
    for i in range(19):
        login = f"drain{i:02d}"
        emu.github.add_user(login)
        _, answer = emu.review(number, login, "APPROVED")
        assert answer.body["state"] == "pending"
    assert analyzer_queries(emu.world) == 0
    # Each of those events cost what opening did: no reviewer was looked up.
    assert emu.google.recorder.count("GET") == opened * 20
    assert emu.google.recorder.count("GET", SEARCH) == 20  # alice's, once per event


def test_an_edit_that_changes_the_base_branch_is_evaluated(emu: Emulator) -> None:
    number = emu.open_request("alice", request_yaml(project="payments-prod"))
    emu.pr_event("opened", number)
    calls = emu.google.recorder.count("GET", BATCH_GET)
    payload = emu.pr_payload("edited", number)
    payload["changes"] = {"base": {"ref": {"from": "release"}, "sha": {"from": "0" * 40}}}
    answer = emu.deliver("pull_request", payload)
    assert answer.body["state"] == "pending"
    assert emu.google.recorder.count("GET", BATCH_GET) == calls + 1
    assert analyzer_queries(emu.world) == 0
