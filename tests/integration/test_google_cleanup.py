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

    entries = google.world.logs()
    assert [e["labels"]["user"] for e in entries] == [
        "dave@example.com",
        "alice@example.com",
        "erin@example.com",
    ]
    assert {e["severity"] for e in entries} == {"NOTICE"}
    assert entries[1]["labels"] == {
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
    assert entries[1]["jsonPayload"]["message"] == (
        f"Removed the expired activation of {ROLE} for alice@example.com on project {PAYMENTS}: "
        "Self-approved, justification: INC-1 (acme/access#1)"
    )


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


def test_an_audit_failure_is_reported(google: FakeGoogleHarness):
    google.recorder.fail(
        "POST",
        WRITE,
        500,
        body={"error": {"code": 500, "message": "x", "status": "INTERNAL"}},
        times=-1,
    )

    report = cleaner(google).cleanup(FOLDER, NOW)

    assert len(report.removed) == 3
    assert set(report.errors) == {PAYMENTS, LEDGER}
    assert report.errors[LEDGER].startswith("The audit entry (gitops.removeExpired)")


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
