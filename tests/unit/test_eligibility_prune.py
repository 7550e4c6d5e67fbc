"""`prune` and the facts of rules and designated approvers: what a source that answered more
keeps of vetoers' eligibility, approver-group memberships, group members and the ancestry."""

from __future__ import annotations

from dataclasses import replace

from webhook.core.eligibility import EligibilityQuestion, prune
from webhook.core.model import EligibilityFacts, RoleEligibility

SQL = "roles/cloudsql.admin"
BQ = "roles/bigquery.admin"
OTHER = "roles/other"
ALICE, BOB, CAROL, DAVE = (f"{n}@example.com" for n in ("alice", "bob", "carol", "dave"))
LEADS, OPS, ELSE = "group:leads@example.com", "group:ops@example.com", "group:else@example.com"

MP = RoleEligibility(multi_party=True)
SELF = RoleEligibility(self_approval=True)
BOTH = RoleEligibility(self_approval=True, multi_party=True)

FULL = EligibilityFacts(
    grants={
        ALICE: {SQL: SELF, BQ: MP},
        BOB: {SQL: MP, BQ: MP},
        CAROL: {SQL: BOTH, BQ: MP, OTHER: MP},
        DAVE: {SQL: MP},
    },
    peers={BQ: frozenset({BOB, CAROL})},
    ancestry=("folders/1", "organizations/2"),
    memberships={
        BOB: frozenset({LEADS, ELSE}), CAROL: frozenset({OPS}), DAVE: frozenset({LEADS}),
    },
    group_members={LEADS: frozenset({BOB, DAVE}), OPS: frozenset({CAROL}), ELSE: frozenset()},
)


def test_vetoers_keep_their_multi_party_eligibility_for_the_veto_roles() -> None:
    # alice self-approves SQL: a reviewer is not asked about it, a vetoer of SQL is.
    question = EligibilityQuestion(
        ALICE, (SQL, BQ), reviewers=(BOB,), vetoers=(CAROL,), veto_roles=(SQL,), peers=False,
    )

    pruned = prune(question, FULL)

    assert pruned.grants == {
        ALICE: {SQL: SELF, BQ: MP},
        BOB: {BQ: MP},  # the approval role only
        CAROL: {SQL: MP, BQ: MP},  # a veto role (multi-party only) and the approval role
    }


def test_without_veto_roles_vetoers_keep_only_the_approval_roles() -> None:
    question = EligibilityQuestion(ALICE, (SQL, BQ), vetoers=(CAROL,), peers=False)

    assert prune(question, FULL).grants == {ALICE: {SQL: SELF, BQ: MP}, CAROL: {BQ: MP}}


def test_memberships_of_the_judged_in_the_asked_groups() -> None:
    question = EligibilityQuestion(
        ALICE, (SQL,), reviewers=(BOB,), vetoers=(CAROL,), approver_groups=(LEADS,),
        peers=False,
    )

    pruned = prune(question, FULL)

    assert pruned.memberships == {BOB: frozenset({LEADS})}  # dave was not asked; ops not asked
    assert pruned.group_members == {}  # peers not asked


def test_group_members_of_the_asked_groups_when_peers_are_asked() -> None:
    question = EligibilityQuestion(ALICE, (SQL,), approver_groups=(LEADS, ELSE))

    assert prune(question, FULL).group_members == {
        LEADS: frozenset({BOB, DAVE}), ELSE: frozenset(),
    }


def test_ancestry_and_notes_are_kept() -> None:
    question = EligibilityQuestion(ALICE, (SQL,))
    facts = replace(FULL, notes=("a note",))

    pruned = prune(question, facts)

    assert pruned.ancestry == FULL.ancestry
    assert pruned.notes == ("a note",)
    assert prune(question, replace(facts, ancestry=None)).ancestry is None
