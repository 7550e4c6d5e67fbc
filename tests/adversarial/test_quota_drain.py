"""Spending Policy Analyzer's daily quota (20 queries per organization without SCC Premium) on
events that cannot change a decision: title and description edits, comment reviews and review
edits are not evaluated, so nobody who can merely comment can block everyone's requests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from jitaccess_sandbox.emulator import POLICY_YAML, Emulator
from jitaccess_sandbox.fake_google_assets import analyzer_queries
from tests.e2e.conftest import NOW, request_yaml

REPO = "acme/access"


@pytest.fixture
def emu() -> Iterator[Emulator]:
    policy = POLICY_YAML.replace("source: asset-inventory", "source: policy-analyzer")
    with Emulator(now=NOW, policy_yaml=policy) as world:
        yield world
        assert world.github.recorder.unexpected == []
        assert world.google.recorder.unexpected == []


def test_edits_and_comment_reviews_spend_no_query(emu: Emulator) -> None:
    number = emu.open_request("alice", request_yaml(project="payments-prod"))
    assert emu.pr_event("opened", number).body["state"] == "pending"
    assert analyzer_queries(emu.world) == 1

    edit_ignored = {"message": f"PR #{number}: title or description edited; nothing to do"}
    review_ignored = {"message": f"PR #{number}: review comment or edit; nothing to do"}
    for _ in range(10):
        assert emu.pr_event("edited", number).body == edit_ignored
    for _ in range(5):
        review_id, answer = emu.review(number, "mallory", "COMMENTED")
        assert answer.body == review_ignored
        edit = emu.review_payload("edited", number, review_id)
        assert emu.deliver("pull_request_review", edit).body == review_ignored
    assert analyzer_queries(emu.world) == 1

    _, answer = emu.review(number, "bob", "APPROVED")  # a decisive review is evaluated
    assert answer.body["state"] == "ready"
    assert analyzer_queries(emu.world) == 2


def test_an_edit_that_changes_the_base_branch_is_evaluated(emu: Emulator) -> None:
    number = emu.open_request("alice", request_yaml(project="payments-prod"))
    emu.pr_event("opened", number)
    payload = emu.pr_payload("edited", number)
    payload["changes"] = {"base": {"ref": {"from": "release"}, "sha": {"from": "0" * 40}}}
    answer = emu.deliver("pull_request", payload)
    assert answer.body["state"] == "pending"
    assert analyzer_queries(emu.world) == 2
