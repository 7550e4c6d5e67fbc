"""Cleanup of expired activations against the fake Google, over HTTP (§8 `/tasks/cleanup`).

The world: organization → folder 100 → projects `payments-prod` and `ledger-prod`; project
`outside-prj` hangs directly under the organization, outside the scope `folders/100`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

import pytest

from jitaccess_sandbox.fake_google import FakeGoogle
from jitaccess_sandbox.httpserver import LocalServer
from jitaccess_sandbox.world import GoogleWorld
from webhook.adapters.cloud_logging import AuditLog
from webhook.adapters.google_clients import GoogleClients, GoogleEndpoints
from webhook.adapters.iam import Activator
from webhook.core.conditions import build_binding
from webhook.core.errors import GoogleError
from webhook.core.model import Binding
from webhook.service.cleanup import REASON, Cleaner, CleanupReport, Removal

from .google_fixtures import FakeGoogleHarness

FOLDER = "folders/100"
PAYMENTS = "payments-prod"
LEDGER = "ledger-prod"
OUTSIDE = "outside-prj"
ROLE = "roles/cloudsql.admin"
ROLE2 = "roles/storage.admin"
JAN1_2040 = datetime(2040, 1, 1, 10, 0, 0, tzinfo=UTC)
NOW = JAN1_2040 + timedelta(hours=3)
SELF = "has({}.jitAccessConstraint)"
REPO = "acme/access"

SEARCH = r":searchAllIamPolicies$"
GET = r":getIamPolicy$"
SET = r":setIamPolicy$"
WRITE = r"^/v2/entries:write$"
ABORTED = {"error": {"code": 409, "message": "concurrent policy changes", "status": "ABORTED"}}


def activation(
    email: str, role: str = ROLE, start: datetime = JAN1_2040, hours: int = 2, number: int = 1
) -> Binding:
    return build_binding(
        role, email, (), "INC-1", f"{REPO}#{number}", start, start + timedelta(hours=hours)
    )


def wire(b: Binding) -> dict[str, Any]:
    return {
        "role": b.role,
        "members": [b.member],
        "condition": {"title": b.title, "description": b.description, "expression": b.expression},
    }


EXPIRED_ALICE = activation("alice@example.com")  # ended 12:00, now is 13:00
ENDS_NOW = activation("erin@example.com", role=ROLE2, start=NOW - timedelta(hours=1), hours=1)
ACTIVE_BOB = activation("bob@example.com", start=NOW - timedelta(minutes=30))
EXPIRED_DAVE = activation("dave@example.com", role=ROLE2, number=2)
EXPIRED_OUTSIDE = activation("frank@example.com", number=3)
ELIGIBLE = {
    "role": ROLE,
    "members": ["user:alice@example.com"],
    "condition": {"title": "Eligible", "expression": SELF},
}
LOOKALIKE = {  # expired window, but not an activation: somebody else's binding
    "role": ROLE,
    "members": ["user:carol@example.com"],
    "condition": {"title": "Temporary", "expression": EXPIRED_ALICE.expression},
}
UNPARSEABLE = {  # titled as an activation, but the window is not one we understand
    "role": ROLE,
    "members": ["user:gina@example.com"],
    "condition": {"title": "JIT access activation", "expression": "request.time < now"},
}
PLAIN = {"role": "roles/browser", "members": ["user:bob@example.com"]}


def put(google: FakeGoogleHarness, project: str, bindings: list[dict[str, Any]]) -> None:
    resource = f"projects/{project}"
    policy = google.world.get_policy(resource)
    google.world.set_policy(resource, {**policy, "version": 3, "bindings": bindings})


@pytest.fixture
def google(fake_google: FakeGoogleHarness) -> Iterator[FakeGoogleHarness]:
    world = fake_google.world
    world.add_folder(FOLDER)
    world.add_project(PAYMENTS, FOLDER, number="111111111111")
    world.add_project(LEDGER, FOLDER, number="222222222222")
    world.add_project(OUTSIDE, number="333333333333")
    put(
        fake_google,
        PAYMENTS,
        [
            ELIGIBLE,
            PLAIN,
            wire(EXPIRED_ALICE),
            wire(ACTIVE_BOB),
            LOOKALIKE,
            UNPARSEABLE,
            wire(ENDS_NOW),
        ],
    )
    put(fake_google, LEDGER, [wire(EXPIRED_DAVE)])
    put(fake_google, OUTSIDE, [wire(EXPIRED_OUTSIDE)])
    # The folder's own policy mentions an activation too; cleanup handles projects only.
    world.add_binding(
        FOLDER, ROLE, "user:hal@example.com", EXPIRED_ALICE.expression, "JIT access activation"
    )
    yield fake_google
    assert fake_google.recorder.unexpected == []


def cleaner(google: FakeGoogleHarness) -> Cleaner:
    budget = replace(google.budget, retry_deadline=0.5)
    return Cleaner(
        google.clients,
        AuditLog(google.clients, budget=budget),
        Activator(google.clients, sleep=lambda _s: None, budget=budget),
    )


def test_cleanup_removes_only_expired_activations_within_scope(google: FakeGoogleHarness):
    report = cleaner(google).cleanup(FOLDER, NOW)

    assert report == CleanupReport(
        removed=(
            Removal(LEDGER, EXPIRED_DAVE, JAN1_2040, JAN1_2040 + timedelta(hours=2)),
            Removal(PAYMENTS, EXPIRED_ALICE, JAN1_2040, JAN1_2040 + timedelta(hours=2)),
            Removal(PAYMENTS, ENDS_NOW, NOW - timedelta(hours=1), NOW),
        ),
        projects=(LEDGER, PAYMENTS),
        errors={},
    )
    assert google.world.bindings(f"projects/{PAYMENTS}") == [
        ELIGIBLE,
        PLAIN,
        wire(ACTIVE_BOB),
        LOOKALIKE,
        UNPARSEABLE,
    ]
    assert google.world.bindings(f"projects/{LEDGER}") == []
    assert google.world.bindings(f"projects/{OUTSIDE}") == [wire(EXPIRED_OUTSIDE)]
    assert len(google.world.bindings(FOLDER)) == 1
    assert google.iam.reasons_for(f"projects/{PAYMENTS}") == [REASON]
    assert google.recorder.count("GET", SEARCH) == 1
    assert google.recorder.count("POST", SET) == 2  # one write per project


def test_the_search_asks_for_project_policies_with_activations(google: FakeGoogleHarness):
    cleaner(google).cleanup(FOLDER, NOW)

    (search,) = [c for c in google.recorder.calls if c.path.endswith(":searchAllIamPolicies")]
    assert search.path == f"/v1/{FOLDER}:searchAllIamPolicies"
    query = parse_qs(search.query)
    assert query["query"] == ['policy:"JIT access activation"']
    assert query["assetTypes"] == ["cloudresourcemanager.googleapis.com/Project"]


def test_one_audit_entry_per_removal(google: FakeGoogleHarness):
    cleaner(google).cleanup(FOLDER, NOW)

    # Projects are cleaned concurrently: entries of different projects come in any order.
    entries = sorted(google.world.logs(), key=lambda e: e["labels"]["user"])
    assert [e["labels"]["user"] for e in entries] == [
        "alice@example.com",
        "dave@example.com",
        "erin@example.com",
    ]
    assert {e["severity"] for e in entries} == {"NOTICE"}
    assert entries[0]["labels"] == {
        "event": "gitops.removeExpired",
        "user": "alice@example.com",
        "project": PAYMENTS,
        "role": ROLE,
        "justification": "",
        "activation_start": "2040-01-01T10:00:00Z",
        "activation_end": "2040-01-01T12:00:00Z",
        "reviewers": "",
        "pull_request": "",
        "commit": "",
        "delivery_id": "",
    }
    assert entries[0]["jsonPayload"]["message"] == (
        f"Removed the expired activation of {ROLE} for alice@example.com on project {PAYMENTS}: "
        "Self-approved, justification: INC-1 (acme/access#1)"
    )
    # The same id and time in every run that attempts the removal: the activation's end.
    assert entries[0]["insertId"] == (
        f"remove:{PAYMENTS}:{ROLE}:user:alice@example.com:2040-01-01T12:00:00Z"
    )
    assert entries[0]["timestamp"] == "2040-01-01T12:00:00.000000Z"


def test_each_entry_is_written_before_its_removal(google: FakeGoogleHarness):
    cleaner(google).cleanup(FOLDER, NOW)

    for project, users in ((PAYMENTS, {"alice", "erin"}), (LEDGER, {"dave"})):
        steps = []
        for call in google.recorder.calls:
            if call.path == f"/v3/projects/{project}:setIamPolicy":
                steps.append("write")
            elif call.path == "/v2/entries:write" and f'"project": "{project}"' in str(call.body):
                steps.append("entry")
        assert steps == ["entry"] * len(users) + ["write"]


def test_an_activation_ended_long_ago_is_audited_at_the_run_time(google: FakeGoogleHarness):
    # Cleanup did not run for days: Cloud Logging might not store an entry dated at the end.
    cleaner(google).cleanup(FOLDER, NOW + timedelta(days=3))

    (entry,) = [e for e in google.world.logs() if e["labels"]["user"] == "dave@example.com"]
    assert entry["timestamp"] == "2040-01-04T13:00:00.000000Z"
    assert entry["labels"]["activation_end"] == "2040-01-01T12:00:00Z"


def test_nothing_expired_writes_nothing(google: FakeGoogleHarness):
    report = cleaner(google).cleanup(FOLDER, JAN1_2040 + timedelta(hours=1))

    assert report.removed == ()
    assert google.recorder.count("POST", SET) == 0
    assert google.recorder.count("POST", GET) == 2
    assert google.world.logs() == []


def test_organization_scope_includes_every_project(google: FakeGoogleHarness):
    report = cleaner(google).cleanup(google.world.organization, NOW)

    assert sorted(r.binding.member for r in report.removed) == [
        "user:alice@example.com",
        "user:dave@example.com",
        "user:erin@example.com",
        "user:frank@example.com",
    ]
    assert google.world.bindings(f"projects/{OUTSIDE}") == []


def test_a_failing_project_does_not_stop_the_others(google: FakeGoogleHarness):
    google.recorder.fail(
        "POST",
        rf"projects/{PAYMENTS}:getIamPolicy$",
        403,
        body={"error": {"code": 403, "message": "denied", "status": "PERMISSION_DENIED"}},
    )

    report = cleaner(google).cleanup(FOLDER, NOW)

    assert [r.binding for r in report.removed] == [EXPIRED_DAVE]
    assert list(report.errors) == [PAYMENTS]
    assert "lacks permission" in report.errors[PAYMENTS]
    assert not report.ok
    assert wire(EXPIRED_ALICE) in google.world.bindings(f"projects/{PAYMENTS}")


def test_a_conflict_is_retried_from_a_fresh_read(google: FakeGoogleHarness):
    google.recorder.fail("POST", rf"projects/{PAYMENTS}:setIamPolicy$", 409, body=ABORTED)

    report = cleaner(google).cleanup(FOLDER, NOW)

    assert report.errors == {}
    assert len(report.removed) == 3
    assert google.recorder.count("POST", rf"projects/{PAYMENTS}:getIamPolicy$") == 2
    assert google.recorder.count("POST", rf"projects/{PAYMENTS}:setIamPolicy$") == 2


def test_an_audit_failure_removes_nothing(google: FakeGoogleHarness):
    google.recorder.fail(
        "POST",
        WRITE,
        500,
        body={"error": {"code": 500, "message": "x", "status": "INTERNAL"}},
        times=-1,
    )

    report = cleaner(google).cleanup(FOLDER, NOW)

    assert report.removed == ()
    assert set(report.errors) == {PAYMENTS, LEDGER}
    assert report.errors[LEDGER].startswith("The audit entry (gitops.removeExpired)")
    assert google.recorder.count("POST", SET) == 0  # no entry, no removal
    assert wire(EXPIRED_DAVE) in google.world.bindings(f"projects/{LEDGER}")
    assert wire(EXPIRED_ALICE) in google.world.bindings(f"projects/{PAYMENTS}")


def test_a_failing_search_is_a_google_error(google: FakeGoogleHarness):
    google.recorder.fail(
        "GET",
        SEARCH,
        403,
        body={"error": {"code": 403, "message": "denied", "status": "PERMISSION_DENIED"}},
    )

    with pytest.raises(GoogleError, match="searching IAM policies in folders/100 failed"):
        cleaner(google).cleanup(FOLDER, NOW)


# --------------------------------------------------------------------------------------------
# The fake's search


def test_search_pages_and_returns_only_matching_bindings(google: FakeGoogleHarness):
    pager = google.clients.asset.search_all_iam_policies(
        request={
            "scope": google.world.organization,
            "query": 'policy:"JIT access activation"',
            "page_size": 1,
        }
    )
    results = list(pager)

    assert [r.resource for r in results] == [
        f"//cloudresourcemanager.googleapis.com/{FOLDER}",
        f"//cloudresourcemanager.googleapis.com/projects/{LEDGER}",
        f"//cloudresourcemanager.googleapis.com/projects/{OUTSIDE}",
        f"//cloudresourcemanager.googleapis.com/projects/{PAYMENTS}",
    ]
    assert google.recorder.count("GET", SEARCH) == 4
    payments = results[3]
    assert payments.project == "projects/111111111111"
    assert [b.members[0] for b in payments.policy.bindings] == [
        "user:alice@example.com",
        "user:bob@example.com",
        "user:gina@example.com",
        "user:erin@example.com",
    ]
    calls = [c for c in google.recorder.calls if c.path.endswith(":searchAllIamPolicies")]
    assert "pageToken=1" in calls[1].query


def test_a_removal_whose_answer_was_lost_is_still_reported():
    """The write landed but answered 503: the retry conflicts, the re-read finds nothing left."""
    world = GoogleWorld()
    world.add_project(LEDGER)
    world.set_policy(f"projects/{LEDGER}", {"version": 3, "bindings": [wire(EXPIRED_DAVE), PLAIN]})
    fake = FakeGoogle(world)
    lost = []

    def lossy(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if environ["PATH_INFO"].endswith(":setIamPolicy") and not lost:
            lost.append(True)
            list(fake.wsgi(environ, lambda *a, **k: None))  # the write happens...
            start_response("503 Service Unavailable", [("Content-Type", "application/json")])
            return [b'{"error": {"code": 503, "message": "x", "status": "UNAVAILABLE"}}']
        return fake.wsgi(environ, start_response)

    with LocalServer(lossy) as server:
        clients = GoogleClients(GoogleEndpoints(server.url, server.url, server.url, server.url))
        removed = Activator(clients, sleep=lambda _s: None).remove_expired(
            LEDGER, NOW, reason=REASON
        )

    assert removed == (EXPIRED_DAVE,)
    assert world.bindings(f"projects/{LEDGER}") == [PLAIN]
    assert fake.recorder.count("POST", SET) == 2
    assert fake.recorder.unexpected == []


# --------------------------------------------------------------------------------------------
# Many projects: the time budget, interruptions, concurrency


def many_projects(google: FakeGoogleHarness, count: int, *, expired_each: int = 1) -> list[str]:
    """`count` projects under FOLDER, each with `expired_each` expired activations and an active
    one; returns their IDs in the order the search finds them."""
    projects = [f"fleet-{i:04d}" for i in range(count)]
    for project in projects:
        google.world.add_project(project, FOLDER)
        expired = [
            wire(activation(f"u{j}@example.com", role=f"roles/role{j}", number=j))
            for j in range(expired_each)
        ]
        put(google, project, [*expired, wire(ACTIVE_BOB)])
    return projects


def removed_everywhere(google: FakeGoogleHarness, expired_each: int = 1) -> set[tuple[str, ...]]:
    """(project, role, member) of every expired fleet activation no longer in its policy."""
    gone = set()
    for resource in google.world.projects():
        if not resource.startswith("projects/fleet-"):
            continue
        held = {(b["role"], b["members"][0]) for b in google.world.bindings(resource)}
        for j in range(expired_each):
            key = (f"roles/role{j}", f"user:u{j}@example.com")
            if key not in held:
                gone.add((resource.split("/", 1)[1], *key))
    return gone


def audited(google: FakeGoogleHarness) -> set[tuple[str, ...]]:
    """(project, role, member) of every removeExpired entry, as a query shows them."""
    return {
        (e["labels"]["project"], e["labels"]["role"], "user:" + e["labels"]["user"])
        for e in google.world.logs()
        if e["labels"]["event"] == "gitops.removeExpired"
    }


def test_a_run_stopped_by_its_budget_leaves_the_rest_to_the_next_run(google: FakeGoogleHarness):
    projects = many_projects(google, 6)
    # The clock is the number of IAM writes so far: each project takes one second.
    writes = lambda: float(google.recorder.count("POST", SET))  # noqa: E731
    paced = Cleaner(
        google.clients,
        AuditLog(google.clients, budget=replace(google.budget, retry_deadline=0.5)),
        Activator(
            google.clients, sleep=lambda _s: None,
            budget=replace(google.budget, retry_deadline=0.5),
        ),
        workers=1,
        projects_per_second=None,
        monotonic=writes,
    )

    report = paced.cleanup(FOLDER, NOW, cleanup_deadline=2.5)

    # Started at 0, 1 and 2 s; none after the deadline.
    assert report.projects == tuple(projects[:3])
    assert report.left == (*projects[3:], LEDGER, PAYMENTS)
    assert report.ok and report.stopped_by_budget
    assert report.summary() == (
        "removed 3 expired activation(s) in 3 project(s); stopped by its time budget; "
        "5 project(s) left for the next run"
    )
    assert report.as_json()["left"] == [*projects[3:], LEDGER, PAYMENTS]
    assert removed_everywhere(google) == {(p, "roles/role0", "user:u0@example.com")
                                          for p in projects[:3]}
    assert removed_everywhere(google) == audited(google)  # no removal without its entry

    # The next run finds the rest still there and finishes.
    again = paced.cleanup(FOLDER, NOW, cleanup_deadline=100)
    assert again.left == () and "left" not in again.as_json()
    assert again.projects == (*projects, LEDGER, PAYMENTS)  # all still hold bob's activation
    assert [r.project for r in again.removed] == [*projects[3:], LEDGER, PAYMENTS, PAYMENTS]
    assert len(removed_everywhere(google)) == 6
    assert removed_everywhere(google) <= audited(google)
    assert len(google.world.exported_logs()) == 9  # one entry per removal, none repeated


def test_with_many_workers_no_project_starts_after_the_deadline(google: FakeGoogleHarness):
    many_projects(google, 30)
    writes = lambda: float(google.recorder.count("POST", SET))  # noqa: E731
    pool = Cleaner(
        google.clients,
        AuditLog(google.clients, budget=replace(google.budget, retry_deadline=0.5)),
        Activator(
            google.clients, sleep=lambda _s: None,
            budget=replace(google.budget, retry_deadline=0.5),
        ),
        workers=4,
        projects_per_second=None,
        monotonic=writes,
    )

    report = pool.cleanup(FOLDER, NOW, cleanup_deadline=5.5)

    # A project starts only while fewer than 6 writes were made; 4 may be in flight then.
    assert 4 <= len(report.projects) <= 9
    assert len(report.projects) + len(report.left) == 32
    assert google.recorder.count("POST", r"projects/fleet-\d+:getIamPolicy$") == len(
        [p for p in report.projects if p.startswith("fleet-")]
    )
    assert removed_everywhere(google) <= audited(google)
    assert report.errors == {}

    again = pool.cleanup(FOLDER, NOW, cleanup_deadline=1000)
    assert again.left == () and again.ok
    assert len(removed_everywhere(google)) == 30
    assert removed_everywhere(google) <= audited(google)


def test_a_write_failing_after_its_entry_is_finished_by_the_next_run(google: FakeGoogleHarness):
    """What a run killed between the entry and the write leaves: an entry for a binding that is
    still there. The next run removes it and writes the same entry again (shown once)."""
    denied = {"error": {"code": 403, "message": "denied", "status": "PERMISSION_DENIED"}}
    google.recorder.fail("POST", rf"projects/{LEDGER}:setIamPolicy$", 403, body=denied)

    first = cleaner(google).cleanup(FOLDER, NOW)

    assert list(first.errors) == [LEDGER]
    assert [r.binding for r in first.removed] == [EXPIRED_ALICE, ENDS_NOW]
    assert wire(EXPIRED_DAVE) in google.world.bindings(f"projects/{LEDGER}")
    (entry,) = [e for e in google.world.logs() if e["labels"]["project"] == LEDGER]
    assert entry["labels"]["user"] == "dave@example.com"

    second = cleaner(google).cleanup(FOLDER, NOW)

    assert second.ok
    assert [r.binding for r in second.removed] == [EXPIRED_DAVE]
    assert google.world.bindings(f"projects/{LEDGER}") == []
    ledger = [e for e in google.world.exported_logs() if e["labels"]["project"] == LEDGER]
    assert len(ledger) == 2  # written twice...
    assert {(e["insertId"], e["timestamp"]) for e in ledger} == {
        (entry["insertId"], entry["timestamp"])
    }
    assert [e for e in google.world.logs() if e["labels"]["project"] == LEDGER] == [entry]


def test_a_conflict_retry_does_not_repeat_the_entries(google: FakeGoogleHarness):
    google.recorder.fail("POST", rf"projects/{PAYMENTS}:setIamPolicy$", 409, body=ABORTED)

    report = cleaner(google).cleanup(FOLDER, NOW)

    assert report.ok and len(report.removed) == 3
    assert len(google.world.exported_logs()) == 3


def test_many_projects_are_all_cleaned_with_one_entry_per_removal(google: FakeGoogleHarness):
    projects = many_projects(google, 60, expired_each=2)
    pool = Cleaner(
        google.clients,
        AuditLog(google.clients, budget=replace(google.budget, retry_deadline=0.5)),
        Activator(
            google.clients, sleep=lambda _s: None,
            budget=replace(google.budget, retry_deadline=0.5),
        ),
        workers=8,
        projects_per_second=None,
    )

    report = pool.cleanup(FOLDER, NOW)

    assert report.ok and report.left == ()
    assert report.projects == (*projects, LEDGER, PAYMENTS)  # the search's order
    assert [r.project for r in report.removed] == [
        *[p for p in projects for _ in range(2)], LEDGER, PAYMENTS, PAYMENTS
    ]
    assert len(removed_everywhere(google, 2)) == 120
    exported = google.world.exported_logs()
    assert len(exported) == 123
    assert len({e["insertId"] for e in exported}) == 123
    assert removed_everywhere(google, 2) <= audited(google)
    for project in projects:
        assert google.world.bindings(f"projects/{project}") == [wire(ACTIVE_BOB)]
    assert google.recorder.count("POST", SET) == 62  # one write per project


def test_projects_are_started_at_the_pace(google: FakeGoogleHarness):
    projects = many_projects(google, 4)
    clock = [1000.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock[0] += seconds

    paced = Cleaner(
        google.clients,
        AuditLog(google.clients, budget=replace(google.budget, retry_deadline=0.5)),
        Activator(
            google.clients, sleep=lambda _s: None,
            budget=replace(google.budget, retry_deadline=0.5),
        ),
        workers=1,
        projects_per_second=4.0,
        monotonic=lambda: clock[0],
        sleep=sleep,
    )

    report = paced.cleanup(FOLDER, NOW, cleanup_deadline=1.1)

    # Starts at 0, 0.25, ..., 1.0 s; the slot at 1.25 s is past the deadline.
    assert sleeps == [0.25] * 4
    assert report.projects == (*projects, LEDGER)
    assert report.left == (PAYMENTS,)
