"""Reading decisions back from the fake Cloud Logging (`entries.list`), through
google-cloud-logging over HTTP: what `AuditLog.decisions` asks, what it returns, how it fails,
and how the fake answers queries it does not understand (loudly)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from webhook.adapters.cloud_logging import (
    ACTIVATE_ROLE,
    APPROVE_ROLE,
    REFUSE_ACTIVATION,
    AuditLog,
    AuditRecord,
    decisions_filter,
)
from webhook.core.errors import AuditError
from webhook.core.ports import AuditedDecision

from .google_fixtures import AUDIT_PROJECT, FakeGoogleHarness

LIST = r"^/v2/entries:list$"
START = datetime(2040, 1, 1, 10, 0, 0, tzinfo=UTC)
MERGED = START - timedelta(seconds=20)
PR = "https://github.com/acme/access/pull/42"
OTHER_PR = "https://github.com/acme/access/pull/420"
HEAD = "0123456789abcdef0123456789abcdef01234567"
LOG = f"projects/{AUDIT_PROJECT}/logs/jitaccess"


def activation(pr: str = PR, **changes: Any) -> AuditRecord:
    fields: dict[str, Any] = dict(
        event=ACTIVATE_ROLE, user="alice@example.com", project="payments-prod",
        roles=("roles/cloudsql.admin",), activation_start=START,
        activation_end=START + timedelta(hours=1), pull_request=pr, commit=HEAD,
        message="alice@example.com activated roles/cloudsql.admin", timestamp=START,
        insert_id=f"activate:acme/access#42@{HEAD}",
    )
    fields.update(changes)
    return AuditRecord(**fields)


REFUSAL = AuditRecord(
    event=REFUSE_ACTIVATION, pull_request=PR, commit=HEAD, timestamp=MERGED,
    message="Refused: the request was not ready when merged",
    insert_id=f"refuse:acme/access#42@{HEAD}",
)


@pytest.fixture
def google(fake_google: FakeGoogleHarness) -> Iterator[FakeGoogleHarness]:
    yield fake_google
    assert fake_google.recorder.unexpected == []


def list_body(google: FakeGoogleHarness) -> dict[str, Any]:
    (call,) = [c for c in google.recorder.calls if c.path == "/v2/entries:list"]
    body: dict[str, Any] = json.loads(call.body)
    return body


def entries_list(google: FakeGoogleHarness, **body: Any) -> requests.Response:
    return requests.post(f"{google.url}/v2/entries:list", json=body, timeout=10)


# --------------------------------------------------------------------------------------------
# The adapter


def test_a_prs_decisions_are_read_back_in_one_request(google: FakeGoogleHarness) -> None:
    log = AuditLog(google.clients)
    log.write(activation())
    log.write(REFUSAL)
    log.write(AuditRecord(event=APPROVE_ROLE, pull_request=PR, commit=HEAD))  # not a decision
    log.write(activation(OTHER_PR, insert_id="activate:acme/access#420@x"))  # another PR

    found = log.decisions(PR, since=MERGED - timedelta(days=1))

    assert found == (
        AuditedDecision(
            REFUSE_ACTIVATION, HEAD, MERGED, f"refuse:acme/access#42@{HEAD}",
            message="Refused: the request was not ready when merged",
        ),
        AuditedDecision(
            ACTIVATE_ROLE, HEAD, START, f"activate:acme/access#42@{HEAD}", START,
            START + timedelta(hours=1), "alice@example.com activated roles/cloudsql.admin",
        ),
    )
    assert google.count("POST", LIST) == 1
    assert list_body(google) == {
        "resourceNames": [f"projects/{AUDIT_PROJECT}"],
        "filter": (
            f'logName="{LOG}" AND labels.pull_request="{PR}" AND '
            '(labels.event="gitops.activateRole" OR labels.event="gitops.refuseActivation") '
            'AND timestamp>="2039-12-31T09:59:40Z"'
        ),
        "orderBy": "timestamp asc",
        "pageSize": 20,
    }


def test_an_entry_written_twice_is_read_once(google: FakeGoogleHarness) -> None:
    log = AuditLog(google.clients)
    log.write(activation())
    log.write(activation(delivery_id="redelivered"))  # same insertId and timestamp

    assert len(google.world.exported_logs()) == 2  # a sink would get both
    assert len(log.decisions(PR, since=MERGED)) == 1


def test_entries_older_than_a_day_are_found(google: FakeGoogleHarness) -> None:
    """google-cloud-logging searches the last 24 hours unless the filter names a time; a
    merge redelivered days later (max_delay allows it) must still find its decision."""
    now = datetime.now(UTC).replace(microsecond=0)
    log = AuditLog(google.clients)
    log.write(activation(timestamp=now - timedelta(days=3)))

    (found,) = log.decisions(PR, since=now - timedelta(days=4))

    assert found.timestamp == now - timedelta(days=3)
    assert log.decisions(PR, since=now - timedelta(days=2)) == ()


def test_events_and_urls_are_checked_exactly_after_the_case_blind_query(
    google: FakeGoogleHarness,
) -> None:
    """The query language compares strings ignoring case; only the service's own event names
    count as decisions."""
    log = AuditLog(google.clients)
    log.write(activation(event="GITOPS.ACTIVATEROLE"))

    assert log.decisions(PR, since=MERGED) == ()
    assert log.decisions(PR.upper().replace("HTTPS://", "https://"), since=MERGED) == ()


def test_a_value_with_quotes_is_escaped_in_the_filter() -> None:
    text = decisions_filter(LOG, 'https://x/"a\\b"', START)
    assert 'labels.pull_request="https://x/\\"a\\\\b\\""' in text


def test_a_refused_read_is_an_audit_error(google: FakeGoogleHarness) -> None:
    google.recorder.fail("POST", LIST, 403, body={"error": {
        "code": 403, "message": "Permission 'logging.logEntries.list' denied",
        "status": "PERMISSION_DENIED"}})

    with pytest.raises(AuditError, match=(
        r"^The audit log could not be read: Cloud Logging answered 403: Permission "
        r"'logging.logEntries.list' denied$"
    )):
        AuditLog(google.clients).decisions(PR, since=MERGED)


def test_a_transient_failure_is_retried_and_a_lasting_one_gives_up(
    google: FakeGoogleHarness,
) -> None:
    log = AuditLog(google.clients, budget=replace(google.budget, retry_deadline=1.0))
    log.write(activation())
    google.recorder.fail("POST", LIST, 503, times=1)

    assert len(log.decisions(PR, since=MERGED)) == 1
    assert google.count("POST", LIST) == 2

    google.recorder.fail("POST", LIST, 429, times=-1)
    with pytest.raises(AuditError, match="^The audit log could not be read: Cloud Logging kept"):
        log.decisions(PR, since=MERGED)


# --------------------------------------------------------------------------------------------
# The fake answers only what it understands


@pytest.mark.parametrize(
    ("query", "why"),
    [
        ("", "an empty filter"),
        ('labels.event:"gitops"', "operator ':' on labels.event"),
        ('labels.event="a" OR labels.event="b"', "expected AND between terms, found 'OR'"),
        ('NOT labels.event="a"', "expected a field name, found 'NOT'"),
        ('resource.type="global"', "field 'resource.type' is not supported"),
        ('severity>="LOUD"', "is not a severity name"),
        ('labels.event=gitops', "wants a quoted value"),
        ('timestamp>="yesterday"', "is not an RFC 3339 time"),
        ('(labels.event="a" AND labels.user="b")', "expected ')'"),
        ('labels.event="a" AND', "ends in the middle of a comparison"),
        ('SEARCH("x")', "expected an operator after SEARCH"),
        ('labels.event="a" AND ~', "unexpected text"),
    ],
)
def test_the_fake_refuses_filters_it_does_not_understand(
    google: FakeGoogleHarness, query: str, why: str
) -> None:
    answer = entries_list(google, resourceNames=[f"projects/{AUDIT_PROJECT}"], filter=query)

    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT"
    assert error["message"].startswith("Unsupported filter (fake Logging): ")
    assert why in error["message"]


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ({"filter": f'logName="{LOG}"'}, "resourceNames"),
        ({"resourceNames": ["folders/1"], "filter": f'logName="{LOG}"'}, "projects/ID only"),
        ({"resourceNames": [f"projects/{AUDIT_PROJECT}"], "filter": f'logName="{LOG}"',
          "orderBy": "severity"}, "orderBy"),
        ({"resourceNames": [f"projects/{AUDIT_PROJECT}"], "filter": f'logName="{LOG}"',
          "pageToken": "x"}, "page token"),
        ({"resourceNames": [f"projects/{AUDIT_PROJECT}"], "filter": f'logName="{LOG}"',
          "projectIds": ["x"]}, "Unknown name"),
    ],
)
def test_the_fake_refuses_requests_it_does_not_understand(
    google: FakeGoogleHarness, body: dict[str, Any], why: str
) -> None:
    answer = entries_list(google, **body)

    assert answer.status_code == 400
    assert why in answer.json()["error"]["message"]


def test_the_fake_orders_pages_and_filters_by_time(google: FakeGoogleHarness) -> None:
    log = AuditLog(google.clients)
    for minute in range(5):
        log.write(activation(timestamp=START + timedelta(minutes=minute),
                             insert_id=f"id-{minute}"))
    base = {
        "resourceNames": [f"projects/{AUDIT_PROJECT}"],
        "filter": f'logName="{LOG}" AND timestamp>="2040-01-01T10:01:00Z" AND '
                  'timestamp<"2040-01-01T10:04:00Z"',
    }

    first = entries_list(google, **base, orderBy="timestamp desc", pageSize=2).json()
    second = entries_list(google, **base, orderBy="timestamp desc", pageSize=2,
                          pageToken=first["nextPageToken"]).json()

    assert [e["insertId"] for e in first["entries"]] == ["id-3", "id-2"]
    assert [e["insertId"] for e in second["entries"]] == ["id-1"]
    assert "nextPageToken" not in second
    ascending = entries_list(google, **base).json()
    assert [e["insertId"] for e in ascending["entries"]] == ["id-1", "id-2", "id-3"]
    assert all("receiveTimestamp" in e for e in ascending["entries"])


def test_the_fake_dates_an_entry_without_a_time_when_it_was_received(
    google: FakeGoogleHarness,
) -> None:
    google.world.clock = lambda: START
    AuditLog(google.clients).write(AuditRecord(event=APPROVE_ROLE, pull_request=PR))

    answer = entries_list(
        google, resourceNames=[f"projects/{AUDIT_PROJECT}"],
        filter=f'logName="{LOG}" AND timestamp>="2040-01-01T10:00:00Z"',
    ).json()

    (entry,) = answer["entries"]
    assert entry["timestamp"] == entry["receiveTimestamp"] == "2040-01-01T10:00:00.000000Z"
    assert "timestamp" not in google.world.log_entries[0]  # stored as written


# --------------------------------------------------------------------------------------------
# Reconciliation's read: every activation and orphan entry since a time, in one query


def test_activation_entries_are_read_in_one_query_for_every_pr(
    google: FakeGoogleHarness,
) -> None:
    from webhook.adapters.cloud_logging import ORPHANED_ACTIVATION

    log = AuditLog(google.clients)
    log.write(activation())
    log.write(activation())  # the same entry again: read once
    log.write(activation(OTHER_PR, insert_id="activate:acme/access#420@x",
                         roles=("roles/a", "roles/b")))
    log.write(AuditRecord(event=ORPHANED_ACTIVATION, user="eve@example.com",
                          project="payments-dev", roles=("roles/x",), timestamp=START,
                          insert_id="orphan:payments-dev:roles/x:user:eve@example.com:a:b"))
    log.write(REFUSAL)  # not read
    log.write(activation(timestamp=MERGED - timedelta(hours=2),
                         insert_id="activate:old"))  # before `since`

    found = log.activation_entries(since=MERGED - timedelta(hours=1))

    assert [(e.event, e.pull_request, e.roles, e.insert_id) for e in found] == [
        (ACTIVATE_ROLE, PR, ("roles/cloudsql.admin",), f"activate:acme/access#42@{HEAD}"),
        (ACTIVATE_ROLE, OTHER_PR, ("roles/a", "roles/b"), "activate:acme/access#420@x"),
        (ORPHANED_ACTIVATION, "", ("roles/x",),
         "orphan:payments-dev:roles/x:user:eve@example.com:a:b"),
    ]
    first = found[0]
    assert (first.user, first.project, first.start, first.end) == (
        "alice@example.com", "payments-prod", START, START + timedelta(hours=1))
    assert google.count("POST", LIST) == 1
    assert list_body(google)["filter"] == (
        f'logName="{LOG}" AND (labels.event="gitops.activateRole" OR '
        'labels.event="gitops.orphanedActivation") AND timestamp>="2040-01-01T08:59:40Z"'
    )
    assert list_body(google)["pageSize"] == 1000


def test_activation_entries_past_the_cap_fail_rather_than_judge_on_part(
    google: FakeGoogleHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    import webhook.adapters.cloud_logging as cloud_logging

    monkeypatch.setattr(cloud_logging, "MAX_RECONCILE_ENTRIES", 2)
    monkeypatch.setattr(cloud_logging, "RECONCILE_PAGE", 2)
    log = AuditLog(google.clients)
    for i in range(3):
        log.write(activation(insert_id=f"activate:{i}", timestamp=START + timedelta(seconds=i)))
    with pytest.raises(AuditError, match="more than 2 activation entries"):
        log.activation_entries(since=START)
    assert google.count("POST", LIST) == 2  # two pages of two: the third entry shows the cap


def test_an_unreadable_log_is_an_audit_error(google: FakeGoogleHarness) -> None:
    google.recorder.fail("POST", LIST, 403, body={"error": {
        "code": 403, "message": "Permission 'logging.logEntries.list' denied",
        "status": "PERMISSION_DENIED"}})
    with pytest.raises(AuditError, match="The audit log could not be read: .*403"):
        AuditLog(google.clients).activation_entries(since=START)
