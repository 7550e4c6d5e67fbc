"""Who may revoke under rules: what the revocation asks the eligibility port, and when it asks
nothing (README: designated approvers and veto)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import timedelta
from types import SimpleNamespace
from typing import cast

from tests.lifecycle.conftest import GRANTS, PROJECT, SQL
from tests.lifecycle.memory import MemoryEligibility
from webhook.core.eligibility import EligibilityQuestion
from webhook.core.model import (
    AccessRequest,
    EligibilityFacts,
    EligibilitySettings,
    Policy,
    Rule,
    RuleApproval,
    RuleMatch,
)
from webhook.service.lifecycle import Lifecycle
from webhook.service.revocation import Revocations

GROUP = "group:db-leads@example.com"
REQUEST = AccessRequest(PROJECT, (SQL,), timedelta(hours=1), "INC-1: x")
ALICE = "alice@example.com"


class GroupsEligibility(MemoryEligibility):
    """The memory port, plus the memberships of designated-approver groups the question asks
    about, for the identities it judges (as the eligibility adapters answer them)."""

    def __init__(self, members: Mapping[str, frozenset[str]]) -> None:
        super().__init__(GRANTS)
        self.members = members

    def check(
        self, *, scope: str, project: str, settings: EligibilitySettings,
        question: EligibilityQuestion,
    ) -> EligibilityFacts:
        facts = super().check(scope=scope, project=project, settings=settings,
                              question=question)
        asked = set(question.approver_groups)
        memberships = {
            who: frozenset(g for g in self.members.get(who, frozenset()) if g in asked)
            for who in question.judged
        }
        return replace(facts, memberships={w: g for w, g in memberships.items() if g})


def revocations(eligibility: MemoryEligibility) -> Revocations:
    return Revocations(cast(Lifecycle, SimpleNamespace(eligibility=eligibility)))


def policy(approvers: tuple[str, ...], peers: bool) -> Policy:
    rule = Rule("production databases", RuleMatch(projects=("*-prod",)),
                approval=RuleApproval(approvers=approvers, peers=peers))
    return Policy("organizations/1", rules=(rule,))


def test_a_user_approver_is_allowed_without_asking() -> None:
    port = GroupsEligibility({})
    p = policy(("user:erin@example.com",), peers=False)
    assert revocations(port)._qualified(p, REQUEST, "erin@example.com", ALICE)
    assert port.questions == []


def test_a_peer_where_peers_do_not_count_is_refused_without_asking() -> None:
    port = GroupsEligibility({})
    p = policy(("user:erin@example.com",), peers=False)
    assert not revocations(port)._qualified(p, REQUEST, "bob@example.com", ALICE)
    assert port.questions == []


def test_a_group_approver_is_allowed_after_one_question() -> None:
    port = GroupsEligibility({"erin@example.com": frozenset({GROUP})})
    p = policy((GROUP,), peers=False)
    assert revocations(port)._qualified(p, REQUEST, "erin@example.com", ALICE)
    [(question, settings)] = port.questions
    assert question.approver_groups == (GROUP,) and "erin@example.com" in question.judged
    assert question.veto_roles == ()  # peers do not count: nobody's eligibility is asked for
    assert settings.source.value == "asset-inventory"
    # bob is a qualified peer, but no member of the group: refused, after the same question.
    assert not revocations(port)._qualified(p, REQUEST, "bob@example.com", ALICE)


def test_a_qualified_peer_is_allowed_where_peers_count() -> None:
    port = GroupsEligibility({})
    p = policy((GROUP,), peers=True)
    assert revocations(port)._qualified(p, REQUEST, "bob@example.com", ALICE)
    [(question, _)] = port.questions
    assert question.veto_roles == (SQL,) and question.approver_groups == (GROUP,)
    # Without rules, as before: a qualified peer of the role.
    assert revocations(GroupsEligibility({}))._qualified(
        Policy("organizations/1"), REQUEST, "carol@example.com", ALICE
    )
    assert not revocations(GroupsEligibility({}))._qualified(
        Policy("organizations/1"), REQUEST, "mallory@example.com", ALICE
    )
