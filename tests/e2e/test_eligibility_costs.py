"""What eligibility costs per event, through the real service, counted by the fake Google.

A person's groups are found by one Cloud Identity search, so an event costs the same whatever
the number of group bindings; reviewers are looked up only for roles that need approval and
only when their review could count; qualified peers are listed only while approvals are
missing, from a bounded number of groups.
"""

from __future__ import annotations

from collections import Counter

import pytest

from jitaccess_sandbox.emulator import MULTI, POLICY_YAML, SELF, Emulator
from jitaccess_sandbox.fake_google_assets import add_foreign_membership
from tests.e2e.conftest import NOW, request_yaml
from webhook.adapters.eligibility import MAX_PEER_GROUPS

PROD = "projects/payments-prod"
ROLE = "roles/cloudsql.admin"
SEARCH = "/v1/groups/-/memberships:searchDirectGroups"
SEARCH_NESTED = "/v1/groups/-/memberships:searchTransitiveGroups"


def google_calls(emu: Emulator, since: int) -> Counter[str]:
    """Google calls after the first `since`, by path (group ids folded)."""
    out: Counter[str] = Counter()
    for call in emu.google.recorder.calls[since:]:
        path = call.path
        if path.startswith("/v1/groups/") and not path.startswith("/v1/groups/-/"):
            path = "/v1/groups/{group}/" + path.split("/", 4)[-1]
        out[f"{call.method} {path.rsplit('/effectiveIamPolicies', 1)[-1]}"] += 1
    return out


def add_group_bindings(emu: Emulator, count: int, marker: str, prefix: str) -> None:
    """`count` more groups bound on payments-prod with `marker` (members: nobody who acts)."""
    for i in range(count):
        group = f"{prefix}{i:03d}@example.com"
        emu.world.add_group(group, [f"{prefix}-member{i:03d}@example.com"])
        emu.world.add_binding(PROD, ROLE, f"group:{group}", marker, title=f"group {i}")


@pytest.mark.parametrize("groups", [0, 20, 250])
def test_a_review_costs_the_same_whatever_the_number_of_group_bindings(groups: int) -> None:
    with Emulator(now=NOW) as emu:
        add_group_bindings(emu, groups, SELF, "self")
        number = emu.open_request("alice", request_yaml(project="payments-prod"))
        assert emu.pr_event("opened", number).body["state"] == "pending"
        before = len(emu.google.recorder.calls)

        _, answer = emu.review(number, "bob")

        assert answer.body["state"] == "ready", answer.body
        assert google_calls(emu, before) == Counter({
            "GET :batchGet": 1,  # the effective policies
            f"GET {SEARCH}": 2,  # alice's groups, bob's groups
            "POST /v2/entries:write": 1,  # the counted approval's audit entry
        })
        assert emu.google.recorder.unexpected == []


@pytest.mark.parametrize("groups", [MAX_PEER_GROUPS, 20, 250])
def test_naming_qualified_peers_lists_a_bounded_number_of_groups(groups: int) -> None:
    with Emulator(now=NOW) as emu:
        add_group_bindings(emu, groups - 1, MULTI, "peers")  # and sre@ of the standard world
        number = emu.open_request("alice", request_yaml(project="payments-prod"))
        before = len(emu.google.recorder.calls)

        answer = emu.pr_event("opened", number)

        assert answer.body["state"] == "pending", answer.body
        calls = google_calls(emu, before)
        assert calls["GET :batchGet"] == 1
        assert calls[f"GET {SEARCH}"] == 1  # alice's
        assert calls["GET /v1/groups:lookup"] == MAX_PEER_GROUPS
        assert calls["GET /v1/groups/{group}/memberships"] == MAX_PEER_GROUPS
        assert emu.google.recorder.unexpected == []


def test_no_reviewer_is_looked_up_for_a_self_approval_role(emu: Emulator) -> None:
    # bob is in developers@ and sre@: for payments-dev alice needs nobody's approval.
    number = emu.open_request("alice", request_yaml())
    assert emu.pr_event("opened", number).body["state"] == "ready"
    before = len(emu.google.recorder.calls)

    _, answer = emu.review(number, "bob")

    assert answer.body["state"] == "ready"
    calls = google_calls(emu, before)
    assert calls[f"GET {SEARCH}"] == 1  # alice's only
    assert sum(n for path, n in calls.items() if "/v1/groups" in path) == 1


def test_a_review_by_someone_without_an_identity_mapping_costs_no_lookup(emu: Emulator) -> None:
    number = emu.open_request("alice", request_yaml(project="payments-prod"))
    emu.pr_event("opened", number)
    emu.github.add_user("mallory")
    opened = google_calls(emu, 0)
    before = len(emu.google.recorder.calls)

    _, answer = emu.review(number, "mallory")

    assert answer.body["state"] == "pending"
    calls = google_calls(emu, before)
    # The same calls as opening: batchGet, alice's groups, sre@ for the qualified peers.
    assert calls[f"GET {SEARCH}"] == opened[f"GET {SEARCH}"] == 1
    assert {p: n for p, n in calls.items() if "/v1/" in p and "entries" not in p} == {
        p: n for p, n in opened.items() if "/v1/" in p and "entries" not in p
    }


def test_a_refused_transitive_search_falls_back_to_group_by_group(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # alice is also in a partner's group: Cloud Identity refuses her transitive search (403:
    # the caller must be able to read every group of the member); her groups are then checked
    # one by one, and the log says so.
    policy = POLICY_YAML.replace("nested_groups: false", "nested_groups: true")
    assert policy != POLICY_YAML
    with Emulator(now=NOW, policy_yaml=policy) as emu:
        add_foreign_membership(emu.world, "alice@example.com", "contractors@partner.example")
        number = emu.open_request("alice", request_yaml())

        with caplog.at_level("WARNING", logger="webhook.adapters.eligibility"):
            answer = emu.pr_event("opened", number)

        assert answer.body["state"] == "ready", answer.body
        calls = google_calls(emu, 0)
        assert calls[f"GET {SEARCH_NESTED}"] == 1
        assert calls["GET /v1/groups:lookup"] == 1  # developers@
        assert calls["GET /v1/groups/{group}/memberships:checkTransitiveMembership"] == 1
        assert "searchTransitiveGroups refused to list the groups of alice@example.com" in (
            caplog.text
        )
        assert emu.google.recorder.unexpected == []
