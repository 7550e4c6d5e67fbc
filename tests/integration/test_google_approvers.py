"""The Google side of rules and designated approvers, against the fake Google server through the
real client libraries: the project's ancestry (for rules that match folders), who of the
reviewers and vetoers is in which designated-approver group, those groups' members, and the
vetoers' eligibility for the veto roles.

The world: organization → folder A (100) → folder A1 (110) → project `payments-prod`; the
folders hold no binding of their own.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from jitaccess_sandbox.fake_google_assets import analyzer_queries, set_identity_premium
from webhook.adapters.eligibility import EligibilityChecker
from webhook.core.budget import Budget
from webhook.core.eligibility import EligibilityQuestion
from webhook.core.errors import GoogleError
from webhook.core.model import (
    EligibilityFacts,
    EligibilitySettings,
    EligibilitySourceName,
    RoleEligibility,
)

from .google_fixtures import FakeGoogleHarness

ORG = "organizations/123456789012"
FOLDER_A = "folders/100"
FOLDER_A1 = "folders/110"
PROJECT = "payments-prod"
PROJECT_RES = f"projects/{PROJECT}"

ROLE = "roles/cloudsql.admin"
ROLE2 = "roles/storage.admin"

ALICE = "alice@example.com"
BOB = "bob@example.com"
CAROL = "carol@example.com"
DAVE = "dave@example.com"
ERIN = "erin@example.com"

LEADS = "leads@example.com"
INNER = "inner@example.com"
G_LEADS = f"group:{LEADS}"

SELF = "has({}.jitAccessConstraint)"
MPA = "has({}.multiPartyApprovalConstraint)"

ASSET = EligibilitySourceName.ASSET_INVENTORY
ANALYZER = EligibilitySourceName.POLICY_ANALYZER

IDENTITY = r"^/v1/groups"
SEARCH = r"^/v1/groups/-/memberships:search(Direct|Transitive)Groups$"
LOOKUP = r"^/v1/groups:lookup$"
LISTING = r"^/v1/groups/[^/]+/memberships(:searchTransitiveMemberships)?$"
BATCH_GET = r"effectiveIamPolicies:batchGet$"
ANALYZE = r":analyzeIamPolicy$"
ASSET_API = r"^/v1/(organizations|folders|projects)/"

MPA_ONLY = RoleEligibility(multi_party=True)

Google = FakeGoogleHarness


@pytest.fixture
def google(fake_google: Google) -> Iterator[FakeGoogleHarness]:
    world = fake_google.world
    world.add_folder(FOLDER_A)
    world.add_folder(FOLDER_A1, FOLDER_A)
    world.add_project(PROJECT, FOLDER_A1, number="424242424242")
    yield fake_google
    assert fake_google.recorder.unexpected == []


@pytest.fixture(params=[ASSET, ANALYZER], ids=["asset-inventory", "policy-analyzer"])
def source(request: pytest.FixtureRequest) -> EligibilitySourceName:
    return EligibilitySourceName(request.param)


def check(
    google: Google,
    source: EligibilitySourceName,
    *,
    reviewers: tuple[str, ...] = (),
    vetoers: tuple[str, ...] = (),
    veto_roles: tuple[str, ...] = (),
    approver_groups: tuple[str, ...] = (),
    roles: tuple[str, ...] = (ROLE,),
    ancestry: bool = False,
    peers: bool = False,
    nested: bool = False,
    scope: str = ORG,
) -> EligibilityFacts:
    checker = EligibilityChecker(google.clients, budget=quick(google))
    return checker.check(
        scope=scope,
        project=PROJECT,
        settings=EligibilitySettings(source=source, nested_groups=nested),
        question=EligibilityQuestion(
            requester=ALICE, roles=roles, reviewers=reviewers, peers=peers, vetoers=vetoers,
            veto_roles=veto_roles, approver_groups=approver_groups, ancestry=ancestry,
        ),
    )


def quick(google: Google) -> Budget:
    return replace(google.budget, retry_deadline=0.5)


def leads(google: Google, *members: str) -> None:
    google.world.add_group(LEADS, list(members))


# --------------------------------------------------------------------------------------------
# Ancestry


def test_asset_inventory_reads_the_ancestry_from_its_one_batch_get(google: Google):
    google.world.add_binding(PROJECT_RES, ROLE, f"user:{ALICE}", SELF)

    facts = check(google, ASSET)  # whether asked or not: it costs nothing

    assert facts.ancestry == (FOLDER_A1, FOLDER_A, ORG)  # nearest first; folders without policy
    assert facts.grants == {ALICE: {ROLE: RoleEligibility(self_approval=True)}}
    assert google.count("GET", BATCH_GET) == 1
    assert google.count("GET", ASSET_API) == 1  # no other Cloud Asset call


def test_ancestry_stops_at_the_scope(google: Google):
    google.world.add_binding(PROJECT_RES, ROLE, f"user:{ALICE}", SELF)

    facts = check(google, ASSET, scope=FOLDER_A, ancestry=True)

    assert facts.ancestry == (FOLDER_A1, FOLDER_A)


def test_asset_inventory_ancestry_when_nobody_is_eligible(google: Google):
    google.world.add_binding(FOLDER_A, ROLE2, f"user:{ALICE}", SELF)  # another role

    facts = check(google, ASSET, ancestry=True)

    assert facts == EligibilityFacts(ancestry=(FOLDER_A1, FOLDER_A, ORG))


@pytest.mark.parametrize("asked", [False, True])
def test_policy_analyzer_reads_the_ancestry_only_when_asked(google: Google, asked: bool):
    google.world.add_binding(PROJECT_RES, ROLE, f"user:{ALICE}", SELF)

    facts = check(google, ANALYZER, ancestry=asked)

    assert facts.grants == {ALICE: {ROLE: RoleEligibility(self_approval=True)}}
    assert facts.ancestry == ((FOLDER_A1, FOLDER_A, ORG) if asked else None)
    assert google.count("GET", ANALYZE) == 1
    assert analyzer_queries(google.world) == 1
    assert google.count("GET", BATCH_GET) == (1 if asked else 0)
    assert google.count("GET", ASSET_API) == (2 if asked else 1)


def test_policy_analyzer_ancestry_that_cannot_be_read_is_an_error(google: Google):
    google.world.add_binding(PROJECT_RES, ROLE, f"user:{ALICE}", SELF)
    google.recorder.fail("GET", BATCH_GET, 403, times=-1)

    with pytest.raises(GoogleError, match="batchGet") as caught:
        check(google, ANALYZER, ancestry=True)

    assert caught.value.status == 403
    assert analyzer_queries(google.world) == 1  # the analysis ran beside it


# --------------------------------------------------------------------------------------------
# Memberships of designated-approver groups


def test_reviewers_direct_memberships(google: Google, source: EligibilitySourceName):
    google.world.add_binding(PROJECT_RES, ROLE, f"user:{ALICE}", MPA)
    leads(google, BOB, ALICE)
    google.world.add_group("other@example.com", [CAROL])

    facts = check(
        google, source, reviewers=(BOB, CAROL),
        approver_groups=(G_LEADS, "group:other@example.com"),
    )

    assert facts.memberships == {
        BOB: frozenset({G_LEADS}), CAROL: frozenset({"group:other@example.com"}),
    }
    assert facts.grants == {ALICE: {ROLE: MPA_ONLY}}  # membership is not eligibility
    assert google.count("GET", SEARCH) == (3 if source is ASSET else 2)  # one per person
    assert google.count("GET", LISTING) == 0  # peers not asked


def test_groups_are_named_as_asked(google: Google, source: EligibilitySourceName):
    google.world.add_binding(PROJECT_RES, ROLE, f"user:{ALICE}", MPA)
    leads(google, BOB)

    facts = check(google, source, reviewers=(BOB,), approver_groups=("group:Leads@Example.com",))

    assert facts.memberships == {BOB: frozenset({"group:Leads@Example.com"})}


@pytest.mark.parametrize("nested", [False, True])
def test_nested_membership_counts_only_with_nested_groups(
    google: Google, source: EligibilitySourceName, nested: bool
):
    set_identity_premium(google.world, True)
    google.world.add_binding(PROJECT_RES, ROLE, f"user:{ALICE}", MPA)
    google.world.add_group(INNER, [CAROL])
    leads(google, BOB, INNER)

    facts = check(
        google, source, reviewers=(BOB, CAROL), approver_groups=(G_LEADS,), nested=nested
    )

    expected = {BOB: frozenset({G_LEADS})}
    if nested:
        expected[CAROL] = frozenset({G_LEADS})
    assert facts.memberships == expected


def test_a_reviewers_memberships_reuse_the_eligibility_search(google: Google):
    # bob's eligibility goes through a group: his one search answers both questions.
    google.world.add_binding(PROJECT_RES, ROLE, f"user:{ALICE}", MPA)
    google.world.add_group("dbas@example.com", [BOB])
    google.world.add_binding(FOLDER_A, ROLE, "group:dbas@example.com", MPA)
    leads(google, BOB)

    facts = check(google, ASSET, reviewers=(BOB,), approver_groups=(G_LEADS,))

    assert facts.grants == {ALICE: {ROLE: MPA_ONLY}, BOB: {ROLE: MPA_ONLY}}
    assert facts.memberships == {BOB: frozenset({G_LEADS})}
    assert google.count("GET", SEARCH) == 2  # alice, bob: the same as without approvers
    assert google.count("GET", IDENTITY) == 2


def test_membership_group_by_group_when_the_search_cannot_serve(google: Google):
    # Without Cloud Identity Premium the transitive search is refused: each group is checked.
    google.world.add_binding(PROJECT_RES, ROLE, f"user:{ALICE}", MPA)
    google.world.add_group(INNER, [CAROL])
    leads(google, BOB, INNER)
    set_identity_premium(google.world, True)
    google.recorder.fail("GET", r"searchTransitiveGroups$", 403, times=-1)

    facts = check(google, ASSET, reviewers=(CAROL,), approver_groups=(G_LEADS,), nested=True)

    assert facts.memberships == {CAROL: frozenset({G_LEADS})}
    assert google.count("GET", r":checkTransitiveMembership$") == 1
    assert google.count("GET", LOOKUP) == 1


def test_unreadable_approver_group_of_the_requesters_domain_is_an_error(
    google: Google, source: EligibilitySourceName
):
    google.world.add_binding(PROJECT_RES, ROLE, f"user:{ALICE}", MPA)

    with pytest.raises(GoogleError, match="Groups Reader") as caught:
        check(google, source, reviewers=(BOB,), approver_groups=("group:ghosts@example.com",))

    assert caught.value.status == 403
    assert "ghosts@example.com of the requester's domain example.com" in str(caught.value)


def test_unreadable_approver_group_of_another_domain_is_a_note(
    google: Google, source: EligibilitySourceName
):
    google.world.add_binding(PROJECT_RES, ROLE, f"user:{ALICE}", MPA)
    leads(google, BOB)

    facts = check(
        google, source, reviewers=(BOB,), peers=True,
        approver_groups=(G_LEADS, "group:ghosts@partner.example"),
    )

    assert facts.memberships == {BOB: frozenset({G_LEADS})}
    assert facts.group_members == {G_LEADS: frozenset({BOB})}
    assert [n for n in facts.notes if "ghosts@partner.example" in n] != []


# --------------------------------------------------------------------------------------------
# Members of designated-approver groups


@pytest.mark.parametrize("peers", [False, True])
def test_group_members_are_listed_only_when_peers_are_asked(
    google: Google, source: EligibilitySourceName, peers: bool
):
    google.world.add_binding(PROJECT_RES, ROLE, f"user:{ALICE}", MPA)
    leads(google, BOB, "Dave@Example.com")

    facts = check(google, source, approver_groups=(G_LEADS,), peers=peers)

    assert facts.group_members == ({G_LEADS: frozenset({BOB, DAVE})} if peers else {})
    assert google.count("GET", LISTING) == (1 if peers else 0)
    assert google.count("GET", LOOKUP) == (1 if peers else 0)


def test_group_members_through_nested_groups(google: Google, source: EligibilitySourceName):
    set_identity_premium(google.world, True)
    google.world.add_binding(PROJECT_RES, ROLE, f"user:{ALICE}", MPA)
    google.world.add_group(INNER, [CAROL])
    leads(google, BOB, INNER)

    facts = check(google, source, approver_groups=(G_LEADS,), peers=True, nested=True)

    assert facts.group_members == {G_LEADS: frozenset({BOB, CAROL})}


def test_big_approver_groups_are_cut(google: Google):
    google.world.add_binding(PROJECT_RES, ROLE, f"user:{ALICE}", MPA)
    leads(google, *(f"m{i:03d}@example.com" for i in range(30)))
    checker = EligibilityChecker(google.clients, budget=quick(google), max_group_members=10)

    facts = checker.check(
        scope=ORG, project=PROJECT, settings=EligibilitySettings(),
        question=EligibilityQuestion(requester=ALICE, roles=(ROLE,), approver_groups=(G_LEADS,)),
    )

    assert 10 <= len(facts.group_members[G_LEADS]) < 30


def test_a_listing_that_fails_is_a_note(google: Google, source: EligibilitySourceName):
    google.world.add_binding(PROJECT_RES, ROLE, f"user:{ALICE}", MPA)
    leads(google, BOB)
    google.recorder.fail("GET", r"^/v1/groups/[^/]+/memberships$", 400, times=-1)

    facts = check(google, source, approver_groups=(G_LEADS,), peers=True)

    assert facts.group_members == {}
    [note] = facts.notes
    assert note.startswith("Not asked for review: the members of the designated-approver group")
    assert LEADS in note


# --------------------------------------------------------------------------------------------
# Vetoers


def test_vetoers_eligibility_is_looked_up_for_the_veto_roles(
    google: Google, source: EligibilitySourceName
):
    # alice may self-approve ROLE: reviewers are not asked about it, but a vetoer is.
    google.world.add_binding(PROJECT_RES, ROLE, f"user:{ALICE}", SELF)
    google.world.add_binding(PROJECT_RES, ROLE2, f"user:{ALICE}", SELF)
    google.world.add_group("dbas@example.com", [CAROL])
    google.world.add_binding(FOLDER_A1, ROLE, "group:dbas@example.com", MPA)
    google.world.add_binding(FOLDER_A1, ROLE2, "group:dbas@example.com", MPA)
    google.world.add_binding(PROJECT_RES, ROLE, f"user:{ERIN}", MPA)

    facts = check(
        google, source, roles=(ROLE, ROLE2), reviewers=(ERIN,), vetoers=(CAROL,),
        veto_roles=(ROLE,),
    )

    assert facts.of(CAROL, ROLE) == MPA_ONLY
    assert facts.of(CAROL, ROLE2) == RoleEligibility()  # not a veto role
    assert facts.of(ERIN, ROLE) == RoleEligibility()  # a reviewer: no approval role


def test_a_reviewer_who_is_also_a_vetoer_is_looked_up_for_the_veto_roles(
    google: Google, source: EligibilitySourceName
):
    # One person approving from one login and requesting changes from another: as a reviewer
    # nothing is asked of the self-approval role, as a vetoer it is.
    google.world.add_binding(PROJECT_RES, ROLE, f"user:{ALICE}", SELF)
    google.world.add_binding(PROJECT_RES, ROLE, f"user:{CAROL}", MPA)

    facts = check(google, source, reviewers=(CAROL,), vetoers=(CAROL,), veto_roles=(ROLE,))

    assert facts.of(CAROL, ROLE) == MPA_ONLY


def test_vetoers_are_not_looked_up_without_veto_roles(
    google: Google, source: EligibilitySourceName
):
    google.world.add_binding(PROJECT_RES, ROLE, f"user:{ALICE}", SELF)
    google.world.add_binding(PROJECT_RES, ROLE, f"user:{CAROL}", MPA)

    facts = check(google, source, vetoers=(CAROL,))

    assert facts.of(CAROL, ROLE) == RoleEligibility()


def test_vetoers_memberships(google: Google, source: EligibilitySourceName):
    google.world.add_binding(PROJECT_RES, ROLE, f"user:{ALICE}", MPA)
    leads(google, CAROL)

    facts = check(
        google, source, reviewers=(BOB,), vetoers=(CAROL,), veto_roles=(ROLE,),
        approver_groups=(G_LEADS,),
    )

    assert facts.memberships == {CAROL: frozenset({G_LEADS})}


def test_the_requester_is_never_judged(google: Google, source: EligibilitySourceName):
    google.world.add_binding(PROJECT_RES, ROLE, f"user:{ALICE}", MPA)
    leads(google, ALICE)

    facts = check(
        google, source, reviewers=(ALICE,), vetoers=("Alice@example.com",), veto_roles=(ROLE,),
        approver_groups=(G_LEADS,),
    )

    assert facts.memberships == {}
    assert google.count("GET", SEARCH) == (1 if source is ASSET else 0)  # alice's own search


def test_a_group_both_eligible_and_approving_is_listed_once(
    google: Google, source: EligibilitySourceName
):
    google.world.add_binding(PROJECT_RES, ROLE, f"user:{ALICE}", MPA)
    leads(google, BOB, CAROL)
    google.world.add_binding(FOLDER_A1, ROLE, G_LEADS, MPA)

    facts = check(google, source, approver_groups=(G_LEADS,), peers=True)

    assert facts.peers == {ROLE: frozenset({ALICE, BOB, CAROL})}
    assert facts.group_members == {G_LEADS: frozenset({BOB, CAROL})}
    assert google.count("GET", LISTING) == 1
    assert google.count("GET", LOOKUP) == 1


def test_project_outside_the_scope_has_no_ancestor_within_it(
    google: Google, source: EligibilitySourceName
):
    google.world.add_folder("folders/200")
    google.world.add_binding(PROJECT_RES, ROLE, f"user:{ALICE}", SELF)

    by_id = check(google, source, scope="projects/other-proj", ancestry=True)
    by_search = check(google, source, scope="folders/200", ancestry=True)

    assert by_id == EligibilityFacts(ancestry=())
    assert by_search.grants == {} and by_search.ancestry == ()
