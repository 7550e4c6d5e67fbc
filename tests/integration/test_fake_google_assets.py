"""The fake Cloud Asset and Cloud Identity endpoints answer in the real APIs' wire shapes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from jitaccess_sandbox.fake_google import FakeGoogle
from jitaccess_sandbox.fake_google_assets import (
    add_foreign_membership,
    analyzer_queries,
    set_analysis_duration,
    set_identity_premium,
)
from jitaccess_sandbox.world import GoogleWorld

from .google_fixtures import running_fake_google

CRM = "//cloudresourcemanager.googleapis.com/"

Fake = tuple[str, GoogleWorld, FakeGoogle]


@pytest.fixture(scope="module")
def fake() -> Iterator[Fake]:
    world = GoogleWorld()
    world.add_folder("folders/1")
    world.add_project("proj-a", "folders/1", number="111")
    world.add_project("proj-b")
    world.add_binding(
        "folders/1", "roles/x", "group:outer@example.com", "has({}.multiPartyApprovalConstraint)"
    )
    world.add_binding("projects/proj-a", "roles/y", "user:a@example.com")
    world.add_group("inner@example.com", ["c@example.com", "b@example.com"])
    world.add_group("outer@example.com", ["b@example.com", "inner@example.com", "a@example.com"])
    with running_fake_google(world) as harness:
        yield harness.url, world, harness.fake
        assert harness.recorder.unexpected == []


def get(fake: Fake, path: str, **params: object) -> requests.Response:
    return requests.get(fake[0] + path, params=params, timeout=5)  # type: ignore[arg-type]


def test_effective_policies_up_to_the_scope(fake: Fake) -> None:
    answer = get(fake, "/v1/folders/1/effectiveIamPolicies:batchGet", names=f"{CRM}projects/proj-a")
    assert answer.status_code == 200
    result = answer.json()["policyResults"]
    assert [r["fullResourceName"] for r in result] == [f"{CRM}projects/proj-a"]
    assert [p["attachedResource"] for p in result[0]["policies"]] == [
        f"{CRM}projects/proj-a",
        f"{CRM}folders/1",
    ]
    assert result[0]["policies"][1]["policy"]["bindings"] == [
        {
            "role": "roles/x",
            "members": ["group:outer@example.com"],
            "condition": {"expression": "has({}.multiPartyApprovalConstraint)"},
        }
    ]


def test_effective_policies_outside_scope_is_not_found(
    fake: Fake,
) -> None:
    answer = get(fake, "/v1/folders/1/effectiveIamPolicies:batchGet", names=f"{CRM}projects/proj-b")
    assert answer.status_code == 404
    assert answer.json()["error"]["status"] == "NOT_FOUND"


def test_analyzer_expands_groups_with_edges(fake: Fake) -> None:
    before = analyzer_queries(fake[1])
    answer = get(
        fake,
        "/v1/projects/111:analyzeIamPolicy",
        **{
            "analysisQuery.resourceSelector.fullResourceName": f"{CRM}projects/proj-a",
            "analysisQuery.accessSelector.roles": "roles/x",
            "analysisQuery.options.expandGroups": "true",
            "analysisQuery.options.outputGroupEdges": "true",
        },
    )
    assert answer.status_code == 200
    # Scope projects/111 is proj-a itself: the folder's binding is outside it.
    assert answer.json()["mainAnalysis"]["analysisResults"] == []
    answer = get(
        fake,
        "/v1/folders/1:analyzeIamPolicy",
        **{
            "analysisQuery.resourceSelector.fullResourceName": f"{CRM}projects/proj-a",
            "analysisQuery.accessSelector.roles": "roles/x",
            "analysisQuery.options.expandGroups": "true",
            "analysisQuery.options.outputGroupEdges": "true",
        },
    )
    (result,) = answer.json()["mainAnalysis"]["analysisResults"]
    assert result["attachedResourceFullName"] == f"{CRM}folders/1"
    assert [i["name"] for i in result["identityList"]["identities"]] == [
        "group:outer@example.com",
        "user:a@example.com",
        "user:b@example.com",
        "group:inner@example.com",
        "user:c@example.com",
    ]
    assert {(e["sourceNode"], e["targetNode"]) for e in result["identityList"]["groupEdges"]} == {
        ("group:outer@example.com", "user:a@example.com"),
        ("group:outer@example.com", "user:b@example.com"),
        ("group:outer@example.com", "group:inner@example.com"),
        ("group:inner@example.com", "user:b@example.com"),
        ("group:inner@example.com", "user:c@example.com"),
    }
    assert result["accessControlLists"][0]["conditionEvaluation"] == {"evaluationValue": 3}
    assert analyzer_queries(fake[1]) == before + 2


def test_analyzer_refuses_more_than_ten_roles(fake: Fake) -> None:
    answer = requests.get(
        fake[0] + "/v1/folders/1:analyzeIamPolicy",
        params=[("analysisQuery.accessSelector.roles", f"roles/r{i}") for i in range(11)],
        timeout=5,
    )
    assert answer.status_code == 400
    assert answer.json()["error"]["status"] == "INVALID_ARGUMENT"


def test_analyzer_refuses_a_resource_that_does_not_exist(fake: Fake) -> None:
    before = analyzer_queries(fake[1])
    answer = get(
        fake,
        "/v1/folders/1:analyzeIamPolicy",
        **{"analysisQuery.resourceSelector.fullResourceName": f"{CRM}projects/no-such-project"},
    )
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert (error["code"], error["status"]) == (400, "INVALID_ARGUMENT")
    assert error["message"] == "Some specified value(s) are invalid."
    [detail] = error["details"]
    assert detail["@type"] == "type.googleapis.com/google.rpc.BadRequest"
    assert analyzer_queries(fake[1]) == before


ANALYZE_PROJ_A = {
    "analysisQuery.resourceSelector.fullResourceName": f"{CRM}projects/proj-a",
    "analysisQuery.options.expandGroups": "true",
}


def test_slow_analysis_answers_partially_at_the_execution_timeout(fake: Fake) -> None:
    set_analysis_duration(fake[1], 30.0)
    try:
        answer = get(fake, "/v1/folders/1:analyzeIamPolicy", executionTimeout="0.2s",
                     **ANALYZE_PROJ_A)
    finally:
        set_analysis_duration(fake[1], 0)
    assert answer.status_code == 200
    body = answer.json()
    assert body["fullyExplored"] is False
    assert body["mainAnalysis"]["fullyExplored"] is False
    # Only the project's own policy was reached; the folder's binding was not.
    assert [r["attachedResourceFullName"] for r in body["mainAnalysis"]["analysisResults"]] == [
        f"{CRM}projects/proj-a"
    ]
    complete = get(fake, "/v1/folders/1:analyzeIamPolicy", executionTimeout="5s",
                   **ANALYZE_PROJ_A).json()
    assert complete["fullyExplored"] is True
    assert len(complete["mainAnalysis"]["analysisResults"]) == 2


def test_slow_analysis_without_execution_timeout_outlasts_its_client(fake: Fake) -> None:
    set_analysis_duration(fake[1], 2.0)
    try:
        with pytest.raises(requests.Timeout):
            requests.get(fake[0] + "/v1/folders/1:analyzeIamPolicy", params=ANALYZE_PROJ_A,
                         timeout=0.5)
    finally:
        set_analysis_duration(fake[1], 0)


def test_analyzer_refuses_a_malformed_execution_timeout(fake: Fake) -> None:
    answer = get(fake, "/v1/folders/1:analyzeIamPolicy", executionTimeout="5", **ANALYZE_PROJ_A)
    assert answer.status_code == 400
    assert answer.json()["error"]["message"].startswith("Invalid value at 'execution_timeout'")


def _assert_error_2028(answer: requests.Response, resource: str) -> None:
    message = f"Error(2028): Permission denied for resource {resource} (or it may not exist)."
    assert answer.status_code == 403
    assert answer.json() == {
        "error": {
            "code": 403,
            "message": message,
            "status": "PERMISSION_DENIED",
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.ResourceInfo",
                    "resourceType": "cloudidentity.googleapis.com/Group",
                    "resourceName": resource,
                    "owner": "domain:cloudidentity.googleapis.com",
                    "description": message,
                }
            ],
        }
    }


def test_unknown_group_and_missing_groups_reader_get_the_same_403(fake: Fake) -> None:
    world = fake[1]
    _assert_error_2028(get(fake, "/v1/groups:lookup", **{"groupKey.id": "no@example.com"}),
                       "no@example.com")
    outer = world.group_ids["outer@example.com"]
    world.groups_reader = False
    try:
        _assert_error_2028(
            get(fake, "/v1/groups:lookup", **{"groupKey.id": "outer@example.com"}),
            "outer@example.com",
        )
        _assert_error_2028(
            get(fake, f"/v1/{outer}/memberships:lookup", **{"memberKey.id": "a@example.com"}),
            outer,
        )
        _assert_error_2028(get(fake, f"/v1/{outer}/memberships", view="FULL"), outer)
    finally:
        world.groups_reader = True


def test_group_lookups(fake: Fake) -> None:
    outer = get(fake, "/v1/groups:lookup", **{"groupKey.id": "Outer@Example.com"}).json()["name"]
    assert outer == fake[1].group_ids["outer@example.com"]
    unknown = get(fake, "/v1/groups:lookup", **{"groupKey.id": "no@example.com"})
    assert unknown.status_code == 403  # Cloud Identity's answer for a group it cannot see
    assert "(or it may not exist)" in unknown.json()["error"]["message"]

    member = get(fake, f"/v1/{outer}/memberships:lookup", **{"memberKey.id": "a@example.com"})
    assert member.status_code == 200
    assert member.json()["name"].startswith(f"{outer}/memberships/")
    missing = get(fake, f"/v1/{outer}/memberships:lookup", **{"memberKey.id": "c@example.com"})
    assert missing.status_code == 404
    assert missing.json()["error"]["message"] == "Error(4006): Membership does not exist."

    for who, expected in (("c@example.com", True), ("d@example.com", False)):
        answer = get(
            fake,
            f"/v1/{outer}/memberships:checkTransitiveMembership",
            query=f"member_key_id == '{who}'",
        )
        assert answer.json() == {"hasMembership": expected}
    bad = get(fake, f"/v1/{outer}/memberships:checkTransitiveMembership", query="nonsense")
    assert bad.status_code == 400


def test_membership_listings_paginate(fake: Fake) -> None:
    outer = fake[1].group_ids["outer@example.com"]
    first = get(fake, f"/v1/{outer}/memberships", pageSize=2, view="FULL").json()
    assert [(m["preferredMemberKey"]["id"], m["type"]) for m in first["memberships"]] == [
        ("a@example.com", "USER"),
        ("b@example.com", "USER"),
    ]
    second = get(
        fake, f"/v1/{outer}/memberships", pageSize=2, view="FULL", pageToken=first["nextPageToken"]
    ).json()
    assert [(m["preferredMemberKey"]["id"], m["type"]) for m in second["memberships"]] == [
        ("inner@example.com", "GROUP")
    ]
    assert "nextPageToken" not in second

    search = get(fake, f"/v1/{outer}/memberships:searchTransitiveMemberships").json()
    assert [
        (m["preferredMemberKey"][0]["id"], m["relationType"], m["member"].split("/")[0])
        for m in search["memberships"]
    ] == [
        ("a@example.com", "DIRECT", "users"),
        ("b@example.com", "DIRECT_AND_INDIRECT", "users"),
        ("c@example.com", "INDIRECT", "users"),
        ("inner@example.com", "DIRECT", "groups"),
    ]


def test_unknown_parameters_fail_loudly(fake: Fake) -> None:
    answer = get(fake, "/v1/groups:lookup", **{"groupKey.id": "outer@example.com", "x": "1"})
    assert answer.status_code == 400


def test_analyzer_decides_activation_windows_at_the_access_time() -> None:
    # jit-access-style activations: Policy Analyzer can decide the time, never a resource clause
    window = (
        '(\r\n(request.time >= timestamp("2040-01-01T10:00:00Z") &&\r\n'
        'request.time < timestamp("2040-01-01T11:00:00Z")))'
    )
    world = GoogleWorld()
    world.add_project("proj-a", number="111")
    world.add_binding("projects/proj-a", "roles/z", "user:in@example.com", window)
    world.add_binding("projects/proj-a", "roles/z", "user:limited@example.com",
                      f"{window} && (resource.name=='x')")
    world.add_binding("projects/proj-a", "roles/z", "user:late@example.com",
                      window.replace("T10:00", "T08:00").replace("T11:00", "T09:00"))
    with running_fake_google(world) as harness:
        answer = requests.get(
            harness.url + "/v1/projects/111:analyzeIamPolicy", timeout=5,
            params={
                "analysisQuery.resourceSelector.fullResourceName": f"{CRM}projects/proj-a",
                "analysisQuery.accessSelector.roles": "roles/z",
                "analysisQuery.conditionContext.accessTime": "2040-01-01T10:30:00Z",
            },
        )
        assert answer.status_code == 200, answer.text
        values = {
            r["identityList"]["identities"][0]["name"]:
                r["accessControlLists"][0]["conditionEvaluation"]["evaluationValue"]
            for r in answer.json()["mainAnalysis"]["analysisResults"]
        }
        assert harness.recorder.unexpected == []
    assert values == {
        "user:in@example.com": 1,  # TRUE
        "user:limited@example.com": 3,  # CONDITIONAL
        "user:late@example.com": 2,  # FALSE
    }


# -- membership searches by member ------------------------------------------------------------

LABEL = "cloudidentity.googleapis.com/groups.discussion_forum"
SEARCH_DIRECT = "/v1/groups/-/memberships:searchDirectGroups"
SEARCH_TRANSITIVE = "/v1/groups/-/memberships:searchTransitiveGroups"


def _query(member: str, label: str = LABEL) -> str:
    return f"member_key_id == '{member}' && '{label}' in labels"


@pytest.fixture
def groups_world() -> Iterator[Fake]:
    world = GoogleWorld()
    world.add_group("inner@example.com", ["c@example.com", "b@example.com"])
    world.add_group("outer@example.com", ["b@example.com", "inner@example.com", "a@example.com"])
    world.add_group("solo@example.com", ["a@example.com"])
    with running_fake_google(world) as harness:
        yield harness.url, world, harness.fake
        assert harness.recorder.unexpected == []


def test_direct_groups_of_a_member(groups_world: Fake) -> None:
    world = groups_world[1]
    answer = get(groups_world, SEARCH_DIRECT, query=_query("B@example.com"))
    assert answer.status_code == 200
    items = answer.json()["memberships"]
    assert [m["groupKey"]["id"] for m in items] == ["inner@example.com", "outer@example.com"]
    first = items[0]
    gid = world.group_ids["inner@example.com"]
    assert first["group"] == gid
    assert first["membership"].startswith(f"{gid}/memberships/")
    assert first["labels"] == {LABEL: ""}
    assert first["roles"] == [{"name": "MEMBER"}]
    assert "nextPageToken" not in answer.json()
    # Nobody's groups: proto3 JSON leaves the empty list out.
    assert get(groups_world, SEARCH_DIRECT, query=_query("z@example.com")).json() == {}


def test_transitive_groups_of_a_member(groups_world: Fake) -> None:
    answer = get(groups_world, SEARCH_TRANSITIVE, query=_query("c@example.com")).json()
    assert [(m["groupKey"]["id"], m["relationType"]) for m in answer["memberships"]] == [
        ("inner@example.com", "DIRECT"),
        ("outer@example.com", "INDIRECT"),
    ]
    assert answer["memberships"][0]["roles"] == [{"role": "MEMBER"}]
    b = get(groups_world, SEARCH_TRANSITIVE, query=_query("b@example.com")).json()
    assert [(m["groupKey"]["id"], m["relationType"]) for m in b["memberships"]] == [
        ("inner@example.com", "DIRECT"),
        ("outer@example.com", "DIRECT_AND_INDIRECT"),
    ]


def test_searches_page(groups_world: Fake) -> None:
    first = get(groups_world, SEARCH_DIRECT, query=_query("a@example.com"), pageSize=1).json()
    assert [m["groupKey"]["id"] for m in first["memberships"]] == ["outer@example.com"]
    second = get(groups_world, SEARCH_DIRECT, query=_query("a@example.com"), pageSize=1,
                 pageToken=first["nextPageToken"]).json()
    assert [m["groupKey"]["id"] for m in second["memberships"]] == ["solo@example.com"]
    assert "nextPageToken" not in second


@pytest.mark.parametrize("query", [
    "member_key_id == 'a@example.com'",  # no label: the reference says both are required
    f"'{LABEL}' in labels",  # no member
    "nonsense",
    f"member_key_id == 'a@example.com' && '{LABEL}' in labels && parent == 'groups/x'",
])
def test_searches_refuse_incomplete_queries(groups_world: Fake, query: str) -> None:
    for path in (SEARCH_DIRECT, SEARCH_TRANSITIVE):
        answer = get(groups_world, path, query=query)
        assert answer.status_code == 400, (path, query)
        assert answer.json()["error"]["status"] == "INVALID_ARGUMENT"


def test_searches_take_a_customer_and_only_the_wildcard_parent(groups_world: Fake) -> None:
    scoped = _query("a@example.com") + " && parent == 'customers/C0123abc'"
    assert get(groups_world, SEARCH_DIRECT, query=scoped).status_code == 200
    gid = groups_world[1].group_ids["outer@example.com"]
    answer = get(groups_world, f"/v1/{gid}/memberships:searchDirectGroups",
                 query=_query("a@example.com"))
    assert answer.status_code == 400
    other_label = _query("a@example.com", "cloudidentity.googleapis.com/groups.security")
    assert get(groups_world, SEARCH_DIRECT, query=other_label).json() == {}


def test_unreadable_groups_are_left_out_of_direct_and_refuse_transitive(groups_world: Fake) -> None:
    world = groups_world[1]
    add_foreign_membership(world, "c@example.com", "partners@other.example")
    direct = get(groups_world, SEARCH_DIRECT, query=_query("c@example.com")).json()
    assert [m["groupKey"]["id"] for m in direct["memberships"]] == ["inner@example.com"]
    refused = get(groups_world, SEARCH_TRANSITIVE, query=_query("c@example.com"))
    assert refused.status_code == 403
    assert refused.json()["error"]["status"] == "PERMISSION_DENIED"

    world.groups_reader = False
    assert get(groups_world, SEARCH_DIRECT, query=_query("a@example.com")).json() == {}
    assert get(groups_world, SEARCH_TRANSITIVE, query=_query("a@example.com")).status_code == 403
    # Someone in no group at all has no group the caller could fail to read.
    assert get(groups_world, SEARCH_TRANSITIVE, query=_query("z@example.com")).json() == {}


def test_transitive_methods_need_premium(groups_world: Fake) -> None:
    world = groups_world[1]
    set_identity_premium(world, False)
    outer = world.group_ids["outer@example.com"]
    for path, params in (
        (SEARCH_TRANSITIVE, {"query": _query("a@example.com")}),
        (f"/v1/{outer}/memberships:checkTransitiveMembership",
         {"query": "member_key_id == 'a@example.com'"}),
        (f"/v1/{outer}/memberships:searchTransitiveMemberships", {}),
    ):
        answer = get(groups_world, path, **params)
        assert answer.status_code == 403, path
        assert answer.json()["error"]["status"] == "PERMISSION_DENIED"
    assert get(groups_world, SEARCH_DIRECT, query=_query("a@example.com")).status_code == 200
