"""Eligibility against the fake Google server, through the real client libraries over HTTP.

Every scenario runs with both sources (`asset-inventory` and `policy-analyzer`) unless it is
about one of them. The world: organization → folder A (100) → folder A1 (110) → project
`payments-prod`; a sibling folder B (200) holds project `other-proj`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from urllib.parse import parse_qs

import pytest

from jitaccess_sandbox.fake_google_assets import (
    add_foreign_membership,
    analyzer_queries,
    set_analysis_duration,
    set_analyzer_quota,
    set_identity_premium,
)
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
FOLDER_B = "folders/200"
PROJECT = "payments-prod"
OTHER = "other-proj"
PROJECT_RES = f"projects/{PROJECT}"
CRM = "//cloudresourcemanager.googleapis.com/"

ROLE = "roles/cloudsql.admin"
ROLE2 = "roles/storage.admin"

ALICE = "alice@example.com"
BOB = "bob@example.com"
CAROL = "carol@example.com"
DAVE = "dave@example.com"

SELF = "has({}.jitAccessConstraint)"
MPA = "has({}.multiPartyApprovalConstraint)"

ASSET = EligibilitySourceName.ASSET_INVENTORY
ANALYZER = EligibilitySourceName.POLICY_ANALYZER

IDENTITY_PATH = r"^/v1/groups"
SEARCH = r"^/v1/groups/-/memberships:searchDirectGroups$"
SEARCH_NESTED = r"^/v1/groups/-/memberships:searchTransitiveGroups$"
LOOKUP = r"^/v1/groups:lookup$"
BATCH_GET = r"effectiveIamPolicies:batchGet$"
ANALYZE = r":analyzeIamPolicy$"

Google = FakeGoogleHarness


@pytest.fixture
def google(fake_google: Google) -> Iterator[FakeGoogleHarness]:
    """The shared fake Google, with this module's hierarchy."""
    world = fake_google.world
    assert world.organization == ORG
    world.add_folder(FOLDER_A)
    world.add_folder(FOLDER_A1, FOLDER_A)
    world.add_folder(FOLDER_B)
    world.add_project(PROJECT, FOLDER_A1, number="424242424242")
    world.add_project(OTHER, FOLDER_B)
    yield fake_google
    assert fake_google.recorder.unexpected == []


@pytest.fixture(params=[ASSET, ANALYZER], ids=["asset-inventory", "policy-analyzer"])
def source(request: pytest.FixtureRequest) -> EligibilitySourceName:
    return EligibilitySourceName(request.param)


def check(
    google: Google,
    source: EligibilitySourceName,
    *,
    identities: tuple[str, ...] = (ALICE,),
    roles: tuple[str, ...] = (ROLE,),
    scope: str = ORG,
    project: str = PROJECT,
    nested: bool = False,
    checker: EligibilityChecker | None = None,
    required: int = 1,
    peers: bool = True,
) -> EligibilityFacts:
    checker = checker or EligibilityChecker(google.clients, budget=quick(google))
    requester, *reviewers = identities
    return checker.check(
        scope=scope,
        project=project,
        settings=EligibilitySettings(source=source, nested_groups=nested),
        question=EligibilityQuestion(
            requester=requester, roles=roles, reviewers=tuple(reviewers), required=required,
            peers=peers,
        ),
    )


def quick(google: Google) -> Budget:
    """The harness's short budget, with an even shorter retry deadline."""
    return replace(google.budget, retry_deadline=0.5)


def identity_calls(google: Google) -> int:
    return google.recorder.count("GET", IDENTITY_PATH)


#: The project's ancestry within the organization, nearest first.
ANCESTRY = (FOLDER_A1, FOLDER_A, ORG)


def nothing(
    source: EligibilitySourceName, ancestry: tuple[str, ...] = ANCESTRY
) -> EligibilityFacts:
    """The facts when nobody is eligible: the asset-inventory source still shows the ancestry
    its batchGet read (the analyzer reads it only when asked)."""
    return EligibilityFacts(ancestry=ancestry if source is ASSET else None)


SELF_ONLY = RoleEligibility(self_approval=True)
MPA_ONLY = RoleEligibility(multi_party=True)


# --------------------------------------------------------------------------------------------
# Who is eligible


def test_direct_user_binding_gives_self_approval(google: Google, source: EligibilitySourceName):
    google.world.add_binding(PROJECT_RES, ROLE, f"user:{ALICE}", SELF)

    facts = check(google, source)

    assert facts.grants == {ALICE: {ROLE: SELF_ONLY}}
    assert facts.peers == {}
    # The requester's groups are searched beside batchGet (a search needs only the identity),
    # so a request without group bindings still costs that one call.
    assert identity_calls(google) == (1 if source is ASSET else 0)


def test_identities_and_members_compare_case_insensitively(
    google: Google, source: EligibilitySourceName
):
    google.world.add_binding(PROJECT_RES, ROLE, "user:Alice@Example.COM", SELF)

    facts = check(google, source, identities=("ALICE@example.com",))

    assert facts.grants == {ALICE: {ROLE: SELF_ONLY}}


def test_multi_party_binding_and_peers(google: Google, source: EligibilitySourceName):
    google.world.add_binding(PROJECT_RES, ROLE, f"user:{ALICE}", MPA)
    google.world.add_binding(PROJECT_RES, ROLE, f"user:{BOB}", MPA)

    facts = check(google, source)

    assert facts.grants == {ALICE: {ROLE: MPA_ONLY}}
    assert facts.peers == {ROLE: frozenset({ALICE, BOB})}


def test_several_identities_at_once(google: Google, source: EligibilitySourceName):
    google.world.add_binding(PROJECT_RES, ROLE, f"user:{ALICE}", MPA)
    google.world.add_binding(PROJECT_RES, ROLE2, f"user:{ALICE}", MPA)
    google.world.add_binding(PROJECT_RES, ROLE, f"user:{BOB}", MPA)
    google.world.add_binding(PROJECT_RES, ROLE2, f"user:{CAROL}", MPA)
    google.world.add_binding(PROJECT_RES, ROLE2, f"user:{DAVE}", SELF)  # not a review's path

    facts = check(
        google, source, identities=(ALICE, BOB, CAROL, DAVE), roles=(ROLE, ROLE2), required=2
    )

    assert facts.grants == {
        ALICE: {ROLE: MPA_ONLY, ROLE2: MPA_ONLY},
        BOB: {ROLE: MPA_ONLY},
        CAROL: {ROLE2: MPA_ONLY},
    }
    assert facts.of(DAVE, ROLE2) == RoleEligibility()
    # Both roles are short of two approvals: their peers are named.
    assert facts.peers == {ROLE: frozenset({ALICE, BOB}), ROLE2: frozenset({ALICE, CAROL})}


def test_self_approval_and_multi_party_bindings_both_reported(
    google: Google, source: EligibilitySourceName
):
    google.world.add_binding(PROJECT_RES, ROLE, f"user:{ALICE}", SELF)
    google.world.add_binding(FOLDER_A, ROLE, f"user:{ALICE}", MPA)

    facts = check(google, source)

    assert facts.of(ALICE, ROLE) == RoleEligibility(self_approval=True, multi_party=True)
    assert facts.peers == {}  # self-approval: nobody needs to review


def test_self_approval_wins_when_one_condition_has_both_markers(
    google: Google, source: EligibilitySourceName
):
    google.world.add_binding(PROJECT_RES, ROLE, f"user:{ALICE}", f"{MPA} && {SELF}")

    facts = check(google, source)

    assert facts.grants == {ALICE: {ROLE: SELF_ONLY}}
    assert facts.peers == {}


def test_roles_not_requested_are_ignored(google: Google, source: EligibilitySourceName):
    google.world.add_binding(PROJECT_RES, ROLE2, f"user:{ALICE}", SELF)
    google.world.add_binding(PROJECT_RES, ROLE2, f"user:{BOB}", MPA)

    facts = check(google, source)

    assert facts == nothing(source)


def test_binding_without_marker_is_not_eligibility(google: Google, source: EligibilitySourceName):
    google.world.add_binding(PROJECT_RES, ROLE, f"user:{ALICE}")  # permanent, unconditional
    google.world.add_binding(PROJECT_RES, ROLE, f"user:{BOB}", "resource.name == 'x'")

    facts = check(google, source, identities=(ALICE, BOB))

    assert facts == nothing(source)


def test_marker_under_top_level_or_is_not_eligible(google: Google, source: EligibilitySourceName):
    google.world.add_binding(PROJECT_RES, ROLE, f"user:{ALICE}", f"{SELF} || true")
    google.world.add_binding(PROJECT_RES, ROLE, f"user:{BOB}", f"request.time < x || {MPA}")

    facts = check(google, source, identities=(ALICE, BOB))

    assert facts == nothing(source)


def test_activation_bindings_are_not_eligibility(google: Google, source: EligibilitySourceName):
    expired = (
        '(request.time >= timestamp("2020-01-01T10:00:00Z") && '
        'request.time < timestamp("2020-01-01T12:00:00Z"))'
    )
    active = (
        '(request.time >= timestamp("2020-01-01T10:00:00Z") && '
        'request.time < timestamp("2099-01-01T12:00:00Z"))'
    )
    for expression in (expired, active):
        google.world.add_binding(
            PROJECT_RES,
            ROLE,
            f"user:{ALICE}",
            expression,
            title="JIT access activation",
            description="Self-approved, justification: x (o/r#1)",
        )

    facts = check(google, source)

    assert facts == nothing(source)


def test_service_accounts_and_domains_are_ignored(google: Google, source: EligibilitySourceName):
    google.world.add_binding(PROJECT_RES, ROLE, "serviceAccount:sa@p.iam.gserviceaccount.com", MPA)
    google.world.add_binding(PROJECT_RES, ROLE, "domain:example.com", SELF)

    facts = check(google, source)

    assert facts == nothing(source)


# --------------------------------------------------------------------------------------------
# Groups


def test_group_binding_direct_membership(google: Google, source: EligibilitySourceName):
    google.world.add_group("devs@example.com", [ALICE, CAROL])
    google.world.add_binding(PROJECT_RES, ROLE, "group:devs@example.com", SELF)

    facts = check(google, source, identities=(ALICE, BOB))

    assert facts.grants == {ALICE: {ROLE: SELF_ONLY}}
    assert facts.peers == {}


@pytest.mark.parametrize("nested", [False, True])
def test_nested_group_counts_only_when_nested_groups(
    google: Google, source: EligibilitySourceName, nested: bool
):
    google.world.add_group("devs@example.com", [ALICE])
    google.world.add_group("eng@example.com", ["devs@example.com"])
    google.world.add_binding(PROJECT_RES, ROLE, "group:eng@example.com", SELF)

    facts = check(google, source, nested=nested)

    assert facts.grants == ({ALICE: {ROLE: SELF_ONLY}} if nested else {})


@pytest.mark.parametrize("nested", [False, True])
def test_peers_through_groups(google: Google, source: EligibilitySourceName, nested: bool):
    google.world.add_group("inner@example.com", [DAVE])
    google.world.add_group("reviewers@example.com", [BOB, CAROL, "inner@example.com"])
    google.world.add_binding(FOLDER_A1, ROLE, "group:reviewers@example.com", MPA)
    google.world.add_binding(PROJECT_RES, ROLE, f"user:{ALICE}", MPA)

    facts = check(google, source, identities=(ALICE, BOB), nested=nested, required=2)

    assert facts.grants == {ALICE: {ROLE: MPA_ONLY}, BOB: {ROLE: MPA_ONLY}}
    expected = {ALICE, BOB, CAROL} | ({DAVE} if nested else set())
    assert facts.peers == {ROLE: frozenset(expected)}


def test_no_peers_once_enough_reviewers_are_qualified(
    google: Google, source: EligibilitySourceName
):
    google.world.add_group("reviewers@example.com", [BOB, CAROL])
    google.world.add_binding(FOLDER_A1, ROLE, "group:reviewers@example.com", MPA)
    google.world.add_binding(PROJECT_RES, ROLE, f"user:{ALICE}", MPA)

    facts = check(google, source, identities=(ALICE, BOB))

    assert facts.grants == {ALICE: {ROLE: MPA_ONLY}, BOB: {ROLE: MPA_ONLY}}
    assert facts.peers == {}
    assert google.recorder.count("GET", r"/memberships$") == 0  # no listing


def test_peers_are_not_listed_unless_asked(google: Google, source: EligibilitySourceName):
    google.world.add_group("reviewers@example.com", [BOB, CAROL])
    google.world.add_binding(FOLDER_A1, ROLE, "group:reviewers@example.com", MPA)
    google.world.add_binding(PROJECT_RES, ROLE, f"user:{ALICE}", MPA)

    facts = check(google, source, peers=False)

    assert facts.grants == {ALICE: {ROLE: MPA_ONLY}} and facts.peers == {}
    assert google.recorder.count("GET", r"/memberships$") == 0


def test_unreadable_group_of_the_requesters_domain_is_an_error(google: Google):
    # Cloud Identity answers a group that does not exist exactly as it answers a caller without
    # Groups Reader: in the requester's own domain that is for an administrator to fix, not
    # "nobody is eligible".
    google.world.add_binding(PROJECT_RES, ROLE, "group:ghosts@example.com", SELF)
    google.world.add_binding(PROJECT_RES, ROLE, "group:ghosts@example.com", MPA)

    with pytest.raises(GoogleError, match="Groups Reader") as caught:
        check(google, ASSET)

    assert caught.value.status == 403
    assert "ghosts@example.com of the requester's domain example.com" in str(caught.value)
    assert "Error(2028): Permission denied for resource ghosts@example.com" in str(caught.value)
    # alice's search found no group; the one lookup asks whether the group can be read at all.
    assert google.recorder.count("GET", SEARCH) == 1
    assert google.recorder.count("GET", LOOKUP) == 1
    assert identity_calls(google) == 2


def test_unknown_group_of_another_domain_is_not_membership_and_noted(google: Google):
    google.world.add_binding(PROJECT_RES, ROLE, "group:ghosts@partner.example", SELF)
    google.world.add_binding(PROJECT_RES, ROLE, "group:ghosts@partner.example", MPA)

    facts = check(google, ASSET)

    assert facts.grants == {} and facts.peers == {}
    [note] = facts.notes
    assert note.startswith("Not counted: the members of ghosts@partner.example, a group of")
    assert google.recorder.count("GET", LOOKUP) == 1
    assert identity_calls(google) == 2  # alice's search, then the lookup of the partner group


def test_cloud_identity_calls_are_one_search_per_person(google: Google):
    """A person's groups are found by one search, whatever the number of group bindings."""
    google.world.add_group("devs@example.com", [ALICE])
    google.world.add_group("reviewers@example.com", [BOB, CAROL])
    google.world.add_binding(PROJECT_RES, ROLE, "group:devs@example.com", SELF)
    google.world.add_binding(FOLDER_A, ROLE, "group:devs@example.com", SELF)  # same group again
    google.world.add_binding(PROJECT_RES, ROLE2, f"user:{ALICE}", MPA)
    google.world.add_binding(PROJECT_RES, ROLE, "group:reviewers@example.com", MPA)
    google.world.add_binding(PROJECT_RES, ROLE2, "group:reviewers@example.com", MPA)

    facts = check(google, ASSET, identities=(ALICE, BOB), roles=(ROLE, ROLE2))

    # bob's review counts only for ROLE2, the role alice needs approval for.
    assert facts.grants == {ALICE: {ROLE: SELF_ONLY, ROLE2: MPA_ONLY}, BOB: {ROLE2: MPA_ONLY}}
    assert facts.peers == {}  # bob's approval is enough
    rec = google.recorder
    assert rec.count("GET", BATCH_GET) == 1
    assert rec.count("GET", SEARCH) == 2  # alice, bob
    assert identity_calls(google) == 2


@pytest.mark.parametrize("groups", [1, 20, 250])
def test_calls_do_not_grow_with_group_bindings(google: Google, groups: int):
    reviewers = [f"rev{i:03d}@example.com" for i in range(5)]
    google.world.add_group("reviewers@example.com", reviewers)
    google.world.add_binding(PROJECT_RES, ROLE, "group:reviewers@example.com", MPA)
    for i in range(groups):
        google.world.add_group(f"g{i:03d}@example.com", [DAVE])
        google.world.add_binding(PROJECT_RES, ROLE, f"group:g{i:03d}@example.com", SELF)
    google.world.add_binding(PROJECT_RES, ROLE, f"user:{ALICE}", MPA)

    facts = check(google, ASSET, identities=(ALICE, *reviewers), peers=False)

    assert facts.of(ALICE, ROLE) == MPA_ONLY
    assert all(facts.of(r, ROLE).multi_party for r in reviewers)
    rec = google.recorder
    assert rec.count("GET", BATCH_GET) == 1
    assert rec.count("GET", SEARCH) == 1  # alice's
    # One lookup shows that the self-approval groups alice is absent from can be read; the
    # reviewers' group is looked up and listed once (cheaper than five searches).
    assert rec.count("GET", LOOKUP) == 2
    assert rec.count("GET", r"/memberships$") == 1
    assert len(rec.calls) == 5


@pytest.mark.parametrize(("groups", "searches", "listed"), [(1, 0, 1), (10, 0, 10), (40, 30, 0)])
def test_reviewers_cost_the_cheaper_of_searches_and_listings(
    google: Google, groups: int, searches: int, listed: int
):
    reviewers = [f"rev{i:03d}@example.com" for i in range(30)]
    for i in range(groups):
        google.world.add_group(f"mp{i:03d}@example.com", reviewers[i::groups])
        google.world.add_binding(PROJECT_RES, ROLE, f"group:mp{i:03d}@example.com", MPA)
    google.world.add_binding(PROJECT_RES, ROLE, f"user:{ALICE}", MPA)

    facts = check(google, ASSET, identities=(ALICE, *reviewers), peers=False)

    assert all(facts.of(r, ROLE) == MPA_ONLY for r in reviewers)
    rec = google.recorder
    assert rec.count("GET", SEARCH) == 1 + searches
    assert rec.count("GET", LOOKUP) == listed
    assert rec.count("GET", r"/memberships$") == listed
    assert len(rec.calls) == 2 + min(len(reviewers), 2 * groups)


def test_a_cut_listing_leaves_the_reviewers_it_does_not_show_to_a_search(google: Google):
    reviewers = [f"rev{i:03d}@example.com" for i in range(6)]
    google.world.add_group("reviewers@example.com", [*reviewers, "zz@example.com"])
    google.world.add_binding(PROJECT_RES, ROLE, "group:reviewers@example.com", MPA)
    google.world.add_binding(PROJECT_RES, ROLE, f"user:{ALICE}", MPA)
    checker = EligibilityChecker(google.clients, budget=quick(google))

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("webhook.adapters.eligibility.SETTLING_LISTING_MAX", 4)
        facts = check(google, ASSET, identities=(ALICE, *reviewers, "zz@example.com"),
                      checker=checker, peers=False)

    assert all(facts.of(r, ROLE) == MPA_ONLY for r in [*reviewers, "zz@example.com"])
    rec = google.recorder
    assert rec.count("GET", r"/memberships$") == 1  # one page of 4
    assert rec.count("GET", SEARCH) == 1 + 3  # alice; rev004, rev005 and zz, not shown


def test_reviewers_are_not_looked_up_for_a_self_approval_role(google: Google):
    google.world.add_group("devs@example.com", [ALICE])
    google.world.add_group("reviewers@example.com", [BOB, CAROL])
    google.world.add_binding(PROJECT_RES, ROLE, "group:devs@example.com", SELF)
    google.world.add_binding(PROJECT_RES, ROLE, "group:reviewers@example.com", MPA)

    facts = check(google, ASSET, identities=(ALICE, BOB, CAROL))

    assert facts.grants == {ALICE: {ROLE: SELF_ONLY}}
    assert google.recorder.count("GET", SEARCH) == 1  # alice's only
    assert identity_calls(google) == 1


def test_reviewers_directly_bound_cost_no_search(google: Google):
    google.world.add_group("reviewers@example.com", [CAROL])
    google.world.add_binding(PROJECT_RES, ROLE, f"user:{ALICE}", MPA)
    google.world.add_binding(PROJECT_RES, ROLE, f"user:{BOB}", MPA)
    google.world.add_binding(PROJECT_RES, ROLE, "group:reviewers@example.com", MPA)

    facts = check(google, ASSET, identities=(ALICE, BOB), peers=False)

    assert facts.grants == {ALICE: {ROLE: MPA_ONLY}, BOB: {ROLE: MPA_ONLY}}
    assert google.recorder.count("GET", SEARCH) == 1  # alice's only: bob's binding is direct


def test_nested_groups_use_transitive_calls(google: Google):
    google.world.add_group("devs@example.com", [ALICE])
    google.world.add_group("eng@example.com", ["devs@example.com"])
    google.world.add_group("reviewers@example.com", ["eng@example.com"])
    google.world.add_binding(PROJECT_RES, ROLE, "group:eng@example.com", SELF)
    google.world.add_binding(PROJECT_RES, ROLE, "group:reviewers@example.com", MPA)

    facts = check(google, ASSET, nested=True)

    assert facts.grants == {ALICE: {ROLE: RoleEligibility(self_approval=True, multi_party=True)}}
    assert facts.peers == {}
    rec = google.recorder
    assert rec.count("GET", SEARCH_NESTED) == 1
    assert identity_calls(google) == 1


def test_nested_reviewers_and_peers(google: Google):
    google.world.add_group("inner@example.com", [BOB])
    google.world.add_group("reviewers@example.com", ["inner@example.com", CAROL])
    google.world.add_binding(PROJECT_RES, ROLE, f"user:{ALICE}", MPA)
    google.world.add_binding(PROJECT_RES, ROLE, "group:reviewers@example.com", MPA)

    facts = check(google, ASSET, identities=(ALICE, BOB, DAVE), nested=True, required=2)

    assert facts.grants == {ALICE: {ROLE: MPA_ONLY}, BOB: {ROLE: MPA_ONLY}}
    assert facts.peers == {ROLE: frozenset({ALICE, BOB, CAROL})}
    rec = google.recorder
    assert rec.count("GET", SEARCH_NESTED) == 3  # alice, bob, dave
    assert rec.count("GET", r"/memberships:searchTransitiveMemberships$") == 1  # the peers


def test_large_groups_are_cut_and_members_still_checked(google: Google):
    members = [f"user{i}@example.com" for i in range(5)]
    google.world.add_group("everyone@example.com", [*members, ALICE])
    google.world.add_binding(PROJECT_RES, ROLE, "group:everyone@example.com", MPA)
    checker = EligibilityChecker(google.clients, max_group_members=2, budget=quick(google))

    facts = check(google, ASSET, checker=checker)

    # alice sorts first and is in the first page; the listing stops after it (2 members).
    assert facts.grants == {ALICE: {ROLE: MPA_ONLY}}
    assert facts.peers == {ROLE: frozenset({ALICE, "user0@example.com"})}
    assert google.recorder.count("GET", r"/memberships$") == 1
    assert google.recorder.count("GET", r"/memberships:lookup$") == 0


def test_a_cut_listing_of_peers_does_not_decide_membership(google: Google):
    members = [f"user{i}@example.com" for i in range(5)]
    google.world.add_group("everyone@example.com", [*members, "zed@example.com"])
    google.world.add_binding(PROJECT_RES, ROLE, "group:everyone@example.com", MPA)
    checker = EligibilityChecker(google.clients, max_group_members=2, budget=quick(google))

    facts = check(google, ASSET, identities=("zed@example.com", DAVE), checker=checker)

    assert facts.grants == {"zed@example.com": {ROLE: MPA_ONLY}}
    assert facts.peers == {ROLE: frozenset({"user0@example.com", "user1@example.com"})}
    assert google.recorder.count("GET", SEARCH) == 2  # zed, dave
    assert google.recorder.count("GET", r"/memberships:lookup$") == 0


# --------------------------------------------------------------------------------------------
# Hierarchy and scope


@pytest.mark.parametrize("where", [FOLDER_A1, FOLDER_A, ORG])
def test_inherited_from_folders_and_organization(
    google: Google, source: EligibilitySourceName, where: str
):
    google.world.add_binding(where, ROLE, f"user:{ALICE}", SELF)

    facts = check(google, source)

    assert facts.grants == {ALICE: {ROLE: SELF_ONLY}}


def test_bindings_above_the_scope_are_ignored(google: Google, source: EligibilitySourceName):
    google.world.add_binding(ORG, ROLE, f"user:{ALICE}", SELF)
    google.world.add_binding(ORG, ROLE, f"user:{BOB}", MPA)
    google.world.add_binding(FOLDER_B, ROLE, f"user:{ALICE}", SELF)  # sibling folder
    google.world.add_binding(f"projects/{OTHER}", ROLE, f"user:{ALICE}", SELF)
    google.world.add_binding(FOLDER_A, ROLE, f"user:{CAROL}", MPA)

    facts = check(google, source, scope=FOLDER_A, identities=(CAROL, ALICE, BOB), required=3)

    assert facts.grants == {CAROL: {ROLE: MPA_ONLY}}
    assert facts.peers == {ROLE: frozenset({CAROL})}
    assert check(google, source, scope=FOLDER_A).grants == {}  # alice, asking for herself


def test_project_scope(google: Google, source: EligibilitySourceName):
    google.world.add_binding(FOLDER_A1, ROLE, f"user:{ALICE}", SELF)
    google.world.add_binding(PROJECT_RES, ROLE, f"user:{BOB}", SELF)

    assert check(google, source, scope=PROJECT_RES).grants == {}
    assert check(google, source, scope=PROJECT_RES, identities=(BOB,)).grants == {
        BOB: {ROLE: SELF_ONLY}
    }


def test_project_outside_scope_is_not_eligible(google: Google, source: EligibilitySourceName):
    google.world.add_binding(PROJECT_RES, ROLE, f"user:{ALICE}", SELF)
    google.world.add_binding(ORG, ROLE, f"user:{ALICE}", SELF)

    facts = check(google, source, scope=FOLDER_B)

    assert facts == nothing(source, ancestry=())  # not within the scope: no ancestor in it
    assert google.recorder.count("GET", BATCH_GET if source is ASSET else ANALYZE) == 1


def test_other_project_scope_costs_no_call(google: Google, source: EligibilitySourceName):
    google.world.add_binding(PROJECT_RES, ROLE, f"user:{ALICE}", SELF)

    facts = check(google, source, scope=f"projects/{OTHER}")

    assert facts == EligibilityFacts()
    assert google.recorder.calls == []


# --------------------------------------------------------------------------------------------
# Resource conditions


def test_marker_with_resource_condition_carries_it(google: Google, source: EligibilitySourceName):
    google.world.add_binding(
        PROJECT_RES,
        ROLE,
        f"user:{ALICE}",
        f'{SELF} && resource.name.startsWith("projects/_/instances/a")',
    )
    google.world.add_binding(
        FOLDER_A,
        ROLE,
        f"user:{ALICE}",
        f"resource.type == 'sqladmin.googleapis.com/Instance' &&\n  {MPA} && "
        "resource.service == 'sqladmin.googleapis.com'",
    )

    facts = check(google, source)

    assert facts.of(ALICE, ROLE) == RoleEligibility(
        self_approval=True,
        multi_party=True,
        self_conditions=('resource.name.startsWith("projects/_/instances/a")',),
        multi_party_conditions=(
            "resource.type == 'sqladmin.googleapis.com/Instance' && "
            "resource.service == 'sqladmin.googleapis.com'",
        ),
    )


def test_several_conditional_bindings_give_several_conditions(
    google: Google, source: EligibilitySourceName
):
    google.world.add_binding(PROJECT_RES, ROLE, f"user:{ALICE}", f"{SELF} && resource.name == 'a'")
    google.world.add_binding(FOLDER_A1, ROLE, f"user:{ALICE}", f"{SELF} && resource.name == 'b'")

    facts = check(google, source)

    assert facts.of(ALICE, ROLE) == RoleEligibility(
        self_approval=True, self_conditions=("resource.name == 'a'", "resource.name == 'b'")
    )


def test_one_unconditional_binding_lifts_the_conditions(
    google: Google, source: EligibilitySourceName
):
    google.world.add_group("devs@example.com", [ALICE])
    google.world.add_binding(PROJECT_RES, ROLE, f"user:{ALICE}", f"{SELF} && resource.name == 'a'")
    google.world.add_binding(ORG, ROLE, "group:devs@example.com", SELF)

    facts = check(google, source)

    assert facts.grants == {ALICE: {ROLE: SELF_ONLY}}


# --------------------------------------------------------------------------------------------
# Call budgets


def test_asset_inventory_spends_one_batch_get(google: Google):
    google.world.add_binding(PROJECT_RES, ROLE, f"user:{ALICE}", SELF)
    google.world.add_binding(ORG, ROLE2, f"user:{ALICE}", MPA)
    google.world.add_binding(ORG, ROLE2, f"user:{BOB}", MPA)

    check(google, ASSET, identities=(ALICE, BOB, CAROL), roles=(ROLE, ROLE2))

    assert google.recorder.count("GET", BATCH_GET) == 1
    assert google.recorder.count("GET", ANALYZE) == 0
    # No group binding: only the requester's search, sent beside batchGet, reaches Cloud
    # Identity; bob and carol need none (bob's binding is direct, carol has none).
    assert google.recorder.count("GET", SEARCH) == 1
    assert len(google.recorder.calls) == 2


def test_policy_analyzer_spends_one_query_and_no_group_calls(google: Google):
    google.world.add_group("reviewers@example.com", [BOB, CAROL])
    google.world.add_binding(PROJECT_RES, ROLE, f"user:{ALICE}", SELF)
    google.world.add_binding(FOLDER_A, ROLE2, "group:reviewers@example.com", MPA)

    google.world.add_binding(FOLDER_A, ROLE2, f"user:{ALICE}", MPA)

    facts = check(
        google, ANALYZER, identities=(ALICE, BOB, DAVE), roles=(ROLE, ROLE2), required=2
    )

    assert facts.grants == {ALICE: {ROLE: SELF_ONLY, ROLE2: MPA_ONLY}, BOB: {ROLE2: MPA_ONLY}}
    assert facts.peers == {ROLE2: frozenset({ALICE, BOB, CAROL})}
    assert google.recorder.count("GET", ANALYZE) == 1
    assert len(google.recorder.calls) == 1
    assert analyzer_queries(google.world) == 1


def test_policy_analyzer_with_more_than_ten_roles_still_spends_one_query(google: Google):
    roles = tuple(f"roles/custom.role{i}" for i in range(12))
    google.world.add_binding(PROJECT_RES, roles[11], f"user:{ALICE}", SELF)
    google.world.add_binding(PROJECT_RES, ROLE, f"user:{ALICE}", SELF)  # not requested

    facts = check(google, ANALYZER, roles=roles)

    assert facts.grants == {ALICE: {roles[11]: SELF_ONLY}}
    assert google.recorder.count("GET", ANALYZE) == 1


# --------------------------------------------------------------------------------------------
# Failures


def test_permission_denied_names_the_permission(google: Google, source: EligibilitySourceName):
    google.recorder.fail(
        "GET",
        BATCH_GET if source is ASSET else ANALYZE,
        403,
        body={"error": {"code": 403, "message": "denied", "status": "PERMISSION_DENIED"}},
    )

    with pytest.raises(GoogleError) as caught:
        check(google, source)

    assert caught.value.status == 403
    assert "cloudasset.assets.analyzeIamPolicy" in str(caught.value)
    assert "roles/cloudasset.viewer" in str(caught.value)
    assert google.recorder.count("GET", BATCH_GET if source is ASSET else ANALYZE) == 1


def test_policy_analyzer_quota_is_said_plainly_and_not_retried(google: Google):
    google.recorder.fail(
        "GET",
        ANALYZE,
        429,
        times=-1,
        body={"error": {"code": 429, "message": "Quota exceeded", "status": "RESOURCE_EXHAUSTED"}},
    )

    with pytest.raises(GoogleError) as caught:
        check(google, ANALYZER)

    assert caught.value.status == 429
    assert "Policy Analyzer quota is exhausted" in str(caught.value)
    assert "20 queries per day" in str(caught.value)
    assert google.recorder.count("GET", ANALYZE) == 1


def test_fake_enforces_the_daily_analyzer_quota(google: Google):
    set_analyzer_quota(google.world, 1)
    google.world.add_binding(PROJECT_RES, ROLE, f"user:{ALICE}", SELF)
    assert check(google, ANALYZER).grants == {ALICE: {ROLE: SELF_ONLY}}

    with pytest.raises(GoogleError, match="Policy Analyzer quota is exhausted"):
        check(google, ANALYZER)
    assert analyzer_queries(google.world) == 1


def test_asset_rate_limit_after_retries(google: Google):
    google.recorder.fail("GET", BATCH_GET, 429, times=-1)

    with pytest.raises(GoogleError, match="rate-limited by Cloud Asset.*after retries") as caught:
        check(google, ASSET)

    assert caught.value.status == 429
    assert google.recorder.count("GET", BATCH_GET) >= 2


def test_unavailable_after_bounded_retries(google: Google, source: EligibilitySourceName):
    google.recorder.fail("GET", BATCH_GET if source is ASSET else ANALYZE, 503, times=-1)

    with pytest.raises(GoogleError, match=r"Cloud Asset is unavailable") as c:
        check(google, source)

    assert c.value.status == 503
    if source is ASSET:
        assert "(after retries)" in str(c.value)
        assert google.recorder.count("GET") >= 2
    else:
        # Each Policy Analyzer attempt may count against the 20 daily queries: never retried.
        assert google.recorder.count("GET", ANALYZE) == 1


def test_one_transient_failure_is_retried(google: Google):
    google.world.add_binding(PROJECT_RES, ROLE, f"user:{ALICE}", SELF)
    google.recorder.fail("GET", BATCH_GET, 503)

    facts = check(google, ASSET)

    assert facts.grants == {ALICE: {ROLE: SELF_ONLY}}
    assert google.recorder.count("GET", BATCH_GET) == 2


def test_policy_analyzer_is_not_retried_after_a_transient_failure(google: Google):
    google.world.add_binding(PROJECT_RES, ROLE, f"user:{ALICE}", SELF)
    google.recorder.fail("GET", ANALYZE, 503)

    with pytest.raises(GoogleError, match="unavailable"):
        check(google, ANALYZER)
    assert google.recorder.count("GET", ANALYZE) == 1
    assert check(google, ANALYZER).grants == {ALICE: {ROLE: SELF_ONLY}}  # the next event works


def test_policy_analyzer_is_given_an_execution_timeout_below_its_deadline(google: Google):
    google.world.add_binding(PROJECT_RES, ROLE, f"user:{ALICE}", SELF)

    check(google, ANALYZER)

    [call] = [c for c in google.recorder.calls if c.path.endswith(":analyzeIamPolicy")]
    sent = parse_qs(call.query)["executionTimeout"]
    assert sent == ["5s"]  # a request field (JSON Duration), not an analysis option
    assert 5.0 < quick(google).analyzer_timeout


def test_policy_analyzer_400_for_a_project_that_does_not_exist_is_not_eligible(google: Google):
    google.world.add_binding(ORG, ROLE, f"user:{ALICE}", SELF)

    facts = check(google, ANALYZER, project="no-such-project")

    assert facts.grants == {} and facts.peers == {}
    [note] = facts.notes
    assert note.startswith("Policy Analyzer refused the query for project no-such-project as "
                           "invalid (Some specified value(s) are invalid.)")
    assert google.recorder.count("GET", ANALYZE) == 1  # not retried


@pytest.fixture
def quick_analyzer(monkeypatch: pytest.MonkeyPatch, google: Google) -> Google:
    """A slow analysis, and a client that waits 1 s (so the analysis stops after 0.5 s)."""
    monkeypatch.setitem(
        globals(), "quick", lambda g: replace(g.budget, retry_deadline=0.5, analyzer_timeout=1.0)
    )
    set_analysis_duration(google.world, 30.0)
    return google


def test_partial_analysis_that_shows_the_requesters_eligibility_is_used(quick_analyzer: Google):
    google = quick_analyzer
    google.world.add_binding(PROJECT_RES, ROLE, f"user:{ALICE}", MPA)
    google.world.add_binding(FOLDER_A, ROLE, f"user:{BOB}", MPA)  # not reached in time

    facts = check(google, ANALYZER, identities=(ALICE, BOB))

    assert facts.grants == {ALICE: {ROLE: MPA_ONLY}}
    assert facts.peers == {ROLE: frozenset({ALICE})}
    [note] = facts.notes
    assert note.startswith("Policy Analyzer's analysis was cut short (a partial answer)")
    assert google.recorder.count("GET", ANALYZE) == 1


def test_partial_analysis_without_the_requesters_eligibility_is_an_error(quick_analyzer: Google):
    google = quick_analyzer
    google.world.add_binding(PROJECT_RES, ROLE, f"user:{ALICE}", SELF)
    google.world.add_binding(FOLDER_A, ROLE2, f"user:{ALICE}", SELF)  # not reached in time

    with pytest.raises(GoogleError, match="cut short after 0.5 s") as caught:
        check(google, ANALYZER, roles=(ROLE, ROLE2))

    assert caught.value.status == 504
    assert f"before it showed eligibility for {ROLE2};" in str(caught.value)
    assert google.recorder.count("GET", ANALYZE) == 1  # never retried


def test_group_cloud_identity_cannot_see_counts_as_no_membership(google: Google):
    # A binding naming a group outside this Cloud Identity account (or a deleted one): the
    # API answers 403 "... (or it may not exist)"; that group grants nobody, the rest still does.
    google.world.add_binding(PROJECT_RES, ROLE, "group:partners@other.example", SELF)
    google.world.add_binding(PROJECT_RES, ROLE, f"user:{ALICE}", MPA)

    facts = check(google, ASSET)

    assert facts.of(ALICE, ROLE).multi_party and not facts.of(ALICE, ROLE).self_approval
    assert facts.notes == (
        "Not counted: the members of partners@other.example, a group of another domain than "
        "the requester's that Cloud Identity does not show to this service.",
    )


def test_groups_of_other_domains_are_named_in_one_note(google: Google):
    google.world.add_group("devs@example.com", [BOB])
    google.world.add_binding(PROJECT_RES, ROLE, "group:devs@example.com", SELF)
    google.world.add_binding(PROJECT_RES, ROLE, f"user:{ALICE}", MPA)
    for partner in ("b@one.example", "a@two.example"):
        google.world.add_binding(PROJECT_RES, ROLE, f"group:{partner}", SELF)

    facts = check(google, ASSET, identities=(ALICE, BOB))

    assert facts.grants == {ALICE: {ROLE: MPA_ONLY}}
    assert facts.notes == (
        "Not counted: the members of a@two.example, b@one.example, groups of other domains "
        "than the requester's that Cloud Identity does not show to this service.",
    )


def test_groups_that_cannot_change_the_outcome_are_not_looked_up(google: Google):
    google.world.add_group("devs@example.com", [ALICE])
    google.world.add_binding(PROJECT_RES, ROLE, "group:devs@example.com", SELF)
    google.world.add_binding(PROJECT_RES, ROLE, "group:ghosts@example.com", SELF)
    for partner in ("b@one.example", "a@two.example"):
        google.world.add_binding(PROJECT_RES, ROLE, f"group:{partner}", MPA)

    facts = check(google, ASSET, identities=(ALICE, BOB))

    # alice may self-activate through devs@: no other group could give her more.
    assert facts.grants == {ALICE: {ROLE: SELF_ONLY}}
    assert facts.notes == ()
    assert google.recorder.count("GET", LOOKUP) == 0
    assert identity_calls(google) == 1


def test_membership_of_a_foreign_group_that_turns_unreadable_is_not_counted(google: Google):
    # Group by group (the search refused): the lookup succeeds, the membership check then gets
    # Error(2028) (the group was deleted in between, or its account stopped sharing it): for
    # another domain's group, not counted.
    gid = google.world.add_group("partners@other.example", [ALICE])
    google.world.add_binding(PROJECT_RES, ROLE, "group:partners@other.example", SELF)
    google.world.add_binding(PROJECT_RES, ROLE, f"user:{ALICE}", MPA)
    google.recorder.fail("GET", SEARCH, 403, body={"error": {
        "code": 403, "message": "The caller does not have permission",
        "status": "PERMISSION_DENIED"}})
    message = f"Error(2028): Permission denied for resource {gid} (or it may not exist)."
    google.recorder.fail(
        "GET", r"/memberships:lookup$", 403,
        body={"error": {"code": 403, "message": message, "status": "PERMISSION_DENIED"}},
    )

    facts = check(google, ASSET)

    assert facts.grants == {ALICE: {ROLE: MPA_ONLY}}
    assert [n.split(",")[0] for n in facts.notes] == [
        "Not counted: the members of partners@other.example"
    ]


def test_without_groups_reader_a_group_of_the_requesters_domain_is_an_error(google: Google):
    google.world.add_group("devs@example.com", [ALICE])
    google.world.add_binding(PROJECT_RES, ROLE, "group:devs@example.com", SELF)
    # Eligible with approval directly, but the group may give self-approval: not decidable.
    google.world.add_binding(PROJECT_RES, ROLE, f"user:{ALICE}", MPA)
    google.world.groups_reader = False

    with pytest.raises(GoogleError, match="Groups Reader admin role") as caught:
        check(google, ASSET)

    assert caught.value.status == 403
    assert "devs@example.com of the requester's domain example.com" in str(caught.value)
    assert "Error(2028): Permission denied for resource devs@example.com" in str(caught.value)


def test_malformed_answer_is_an_error(google: Google, source: EligibilitySourceName):
    google.recorder.fail("GET", BATCH_GET if source is ASSET else ANALYZE, 200, body="{not json")

    with pytest.raises(GoogleError, match="could not be read"):
        check(google, source)


def test_batch_get_answer_for_another_resource_is_an_error(google: Google):
    google.recorder.fail("GET", BATCH_GET, 200, body={"policyResults": []})

    with pytest.raises(GoogleError, match="could not be read"):
        check(google, ASSET)


def test_analysis_not_fully_explored_is_an_error(google: Google):
    body = {
        "mainAnalysis": {
            "analysisResults": [
                {
                    "attachedResourceFullName": CRM + PROJECT_RES,
                    "iamBinding": {
                        "role": ROLE,
                        "members": ["group:big@example.com"],
                        "condition": {"expression": MPA},
                    },
                    "identityList": {"identities": [{"name": "group:big@example.com"}]},
                    "fullyExplored": False,
                }
            ],
            "fullyExplored": False,
        }
    }
    google.recorder.fail("GET", ANALYZE, 200, body=body)

    with pytest.raises(GoogleError, match="could not fully analyse"):
        check(google, ANALYZER)


def test_cloud_identity_permission_denied(google: Google):
    google.world.add_group("devs@example.com", [ALICE])
    google.world.add_binding(PROJECT_RES, ROLE, "group:devs@example.com", SELF)
    google.world.groups_reader = False

    with pytest.raises(GoogleError, match="Groups Reader") as caught:
        check(google, ASSET)

    assert caught.value.status == 403
    assert "Error(2028): Permission denied for resource devs@example.com" in str(caught.value)


def test_cloud_identity_transient_failure_is_retried(google: Google):
    google.world.add_group("devs@example.com", [ALICE])
    google.world.add_binding(PROJECT_RES, ROLE, "group:devs@example.com", SELF)
    google.recorder.fail("GET", SEARCH, 503)

    facts = check(google, ASSET)

    assert facts.grants == {ALICE: {ROLE: SELF_ONLY}}
    assert google.recorder.count("GET", SEARCH) == 2


def test_cloud_identity_unavailable(google: Google):
    google.world.add_group("devs@example.com", [ALICE])
    google.world.add_binding(PROJECT_RES, ROLE, "group:devs@example.com", MPA)
    google.recorder.fail("GET", r"/memberships$", 503, times=-1)

    with pytest.raises(GoogleError, match="failed after 3 attempts: HTTP 503") as caught:
        check(google, ASSET)

    assert caught.value.status == 503
    assert google.recorder.count("GET", r"/memberships$") == 3


def test_cloud_identity_malformed_answer(google: Google):
    google.world.add_group("devs@example.com", [ALICE])
    google.world.add_binding(PROJECT_RES, ROLE, "group:devs@example.com", SELF)
    google.recorder.fail("GET", SEARCH, 200, body={"memberships": "unexpected"})

    with pytest.raises(GoogleError, match="searchDirectGroups for alice@example.com could not"):
        check(google, ASSET)


def test_cloud_identity_malformed_lookup(google: Google):
    google.world.add_group("devs@example.com", [ALICE])
    google.world.add_binding(PROJECT_RES, ROLE, "group:devs@example.com", SELF)
    google.recorder.fail("GET", SEARCH, 403)  # group by group
    google.recorder.fail("GET", LOOKUP, 200, body={"unexpected": True})

    with pytest.raises(GoogleError, match="returned no group name"):
        check(google, ASSET)


def test_cloud_asset_timeout(google: Google):
    timeout = google.budget.call_timeout
    google.recorder.fail("GET", BATCH_GET, 200, body={"policyResults": []}, delay=timeout + 0.5)

    with pytest.raises(GoogleError, match=f"timed out after {timeout:g} s") as caught:
        check(google, ASSET)

    assert caught.value.status == 504
    assert google.recorder.count("GET", BATCH_GET) == 1


def test_policy_analyzer_timeout_names_its_own_timeout(google: Google):
    # The query may take longer than other calls (it expands groups): its timeout is its own.
    budget = replace(google.budget, analyzer_timeout=0.5)
    google.recorder.fail("GET", ANALYZE, 200, body={}, delay=budget.analyzer_timeout + 0.5)
    expected = (
        rf"^Google Cloud: Policy Analyzer \(analyzeIamPolicy\) for project {PROJECT} timed "
        r"out after 0.5 s \(.*Read timed out"
    )

    with pytest.raises(GoogleError, match=expected) as caught:
        check(google, ANALYZER, checker=EligibilityChecker(google.clients, budget=budget))

    assert caught.value.status == 504
    assert google.recorder.count("GET", ANALYZE) == 1  # never retried


def test_cloud_identity_timeout_is_not_retried(google: Google):
    google.world.add_group("devs@example.com", [ALICE])
    google.world.add_binding(PROJECT_RES, ROLE, "group:devs@example.com", SELF)
    google.recorder.fail(
        "GET", SEARCH, 200, body={}, delay=google.budget.call_timeout + 0.5,
    )

    with pytest.raises(
        GoogleError, match="Cloud Identity memberships:searchDirectGroups timed out"
    ) as caught:
        check(google, ASSET)

    assert caught.value.status == 504
    assert identity_calls(google) == 1


def test_without_a_requester_nothing_is_asked(google: Google):
    google.world.add_binding(PROJECT_RES, ROLE, f"user:{ALICE}", SELF)
    checker = EligibilityChecker(google.clients, budget=quick(google))

    facts = checker.check(
        scope=ORG, project=PROJECT, settings=EligibilitySettings(),
        question=EligibilityQuestion(requester=" ", roles=(ROLE,)),
    )

    assert facts == EligibilityFacts()
    assert google.recorder.calls == []




# --------------------------------------------------------------------------------------------
# When a membership search cannot serve


def test_transitive_search_refused_for_a_partner_group_falls_back_group_by_group(
    google: Google, caplog: pytest.LogCaptureFixture
):
    # alice is also in a partner's group: searchTransitiveGroups then answers 403 (the caller
    # must be able to read every group of the member), so her groups are checked one by one.
    google.world.add_group("devs@example.com", [ALICE])
    google.world.add_group("eng@example.com", ["devs@example.com"])
    google.world.add_binding(PROJECT_RES, ROLE, "group:eng@example.com", SELF)
    google.world.add_binding(PROJECT_RES, ROLE, "group:ops@example.com", MPA)
    google.world.add_group("ops@example.com", [CAROL])
    add_foreign_membership(google.world, ALICE, "partner-team@other.example")

    with caplog.at_level("WARNING", logger="webhook.adapters.eligibility"):
        facts = check(google, ASSET, nested=True)

    assert facts.grants == {ALICE: {ROLE: SELF_ONLY}}
    rec = google.recorder
    assert rec.count("GET", SEARCH_NESTED) == 1
    assert rec.count("GET", LOOKUP) == 2  # eng@, ops@
    assert rec.count("GET", r"/memberships:checkTransitiveMembership$") == 2
    assert "searchTransitiveGroups refused to list the groups of alice@example.com" in caplog.text
    assert "falling back to checking the eligible groups one by one" in caplog.text


def test_a_refused_search_of_a_reviewer_falls_back_for_that_reviewer_only(google: Google):
    google.world.add_group("reviewers@example.com", [BOB, CAROL])
    google.world.add_binding(PROJECT_RES, ROLE, f"user:{ALICE}", MPA)
    google.world.add_binding(PROJECT_RES, ROLE, "group:reviewers@example.com", MPA)
    add_foreign_membership(google.world, BOB, "partner-team@other.example")

    facts = check(google, ASSET, identities=(ALICE, BOB, CAROL), nested=True, peers=False)

    assert facts.grants == {ALICE: {ROLE: MPA_ONLY}, BOB: {ROLE: MPA_ONLY}, CAROL: {ROLE: MPA_ONLY}}
    rec = google.recorder
    assert rec.count("GET", SEARCH_NESTED) == 3
    assert rec.count("GET", r"/memberships:checkTransitiveMembership$") == 1  # bob, reviewers@


def test_without_premium_nested_groups_are_an_error_that_says_so(google: Google):
    google.world.add_group("devs@example.com", [ALICE])
    google.world.add_binding(PROJECT_RES, ROLE, "group:devs@example.com", SELF)
    set_identity_premium(google.world, False)

    with pytest.raises(GoogleError, match="Cloud Identity Premium") as caught:
        check(google, ASSET, nested=True)

    assert caught.value.status == 403
    assert google.recorder.count("GET", SEARCH_NESTED) == 1
    assert google.recorder.count("GET", r"/memberships:checkTransitiveMembership$") == 1


def test_without_premium_direct_membership_needs_no_premium(google: Google):
    google.world.add_group("devs@example.com", [ALICE])
    google.world.add_binding(PROJECT_RES, ROLE, "group:devs@example.com", SELF)
    set_identity_premium(google.world, False)

    assert check(google, ASSET).grants == {ALICE: {ROLE: SELF_ONLY}}
    assert google.recorder.count("GET", SEARCH) == 1


def test_a_refused_direct_search_falls_back_to_membership_lookups(google: Google):
    google.world.add_group("devs@example.com", [ALICE])
    google.world.add_binding(PROJECT_RES, ROLE, "group:devs@example.com", SELF)
    google.recorder.fail("GET", SEARCH, 403, times=-1)

    assert check(google, ASSET).grants == {ALICE: {ROLE: SELF_ONLY}}
    assert google.recorder.count("GET", LOOKUP) == 1
    assert google.recorder.count("GET", r"/memberships:lookup$") == 1


def test_search_pages_are_followed(google: Google):
    for i in range(5):
        google.world.add_group(f"g{i}@example.com", [ALICE])
    google.world.add_binding(PROJECT_RES, ROLE, "group:g4@example.com", SELF)
    checker = EligibilityChecker(google.clients, search_page_size=2, budget=quick(google))

    assert check(google, ASSET, checker=checker).grants == {ALICE: {ROLE: SELF_ONLY}}
    calls = [c for c in google.recorder.calls if c.path.endswith(":searchDirectGroups")]
    assert len(calls) == 3
    sent = parse_qs(calls[0].query)
    assert sent["query"] == [
        "member_key_id == 'alice@example.com' && "
        "'cloudidentity.googleapis.com/groups.discussion_forum' in labels"
    ]
    assert sent["pageSize"] == ["2"]
