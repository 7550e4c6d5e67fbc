"""The one translation of failed Google calls (`google_failure`), fed by the real client libraries
and plain HTTP calls against the fake Google: every shape of failure the adapters meet."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from google.api_core import exceptions as gexc
from google.iam.v1 import policy_pb2

from jitaccess_sandbox.httpserver import LocalServer
from webhook.adapters.google_clients import (
    GoogleCallError,
    GoogleClients,
    GoogleEndpoints,
    bounded_retry,
    google_failure,
)

from .google_fixtures import FakeGoogleHarness

PROJECT = "payments-prod"
RESOURCE = f"projects/{PROJECT}"
GET = r":getIamPolicy$"
SET = r":setIamPolicy$"


@pytest.fixture
def google(fake_google: FakeGoogleHarness) -> Iterator[FakeGoogleHarness]:
    fake_google.world.add_project(PROJECT)
    yield fake_google
    assert fake_google.recorder.unexpected == []


def read(google: FakeGoogleHarness, clients: GoogleClients | None = None, **kw: Any) -> Any:
    clients = clients or google.clients
    kw.setdefault("retry", None)
    kw.setdefault("timeout", google.budget.call_timeout)
    return clients.projects.get_iam_policy(
        request={"resource": RESOURCE, "options": {"requested_policy_version": 3}}, **kw
    )


def failure_of(call: Any) -> GoogleCallError:
    with pytest.raises(Exception) as caught:
        call()
    return google_failure(caught.value)


def stale_write(google: FakeGoogleHarness) -> None:
    """A setIamPolicy carrying an etag that is no longer the policy's (a concurrent change)."""
    policy = read(google)
    google.world.add_binding(RESOURCE, "roles/browser", "user:bob@example.com")
    google.clients.projects.set_iam_policy(
        request={"resource": RESOURCE, "policy": policy_pb2.Policy(
            version=3, etag=policy.etag, bindings=list(policy.bindings)
        )},
        retry=None,
        timeout=google.budget.call_timeout,
    )


def test_a_stale_etag_is_a_conflict(google: FakeGoogleHarness) -> None:
    failure = failure_of(lambda: stale_write(google))
    assert (failure.kind, failure.status, failure.conflict) == ("answered", 409, True)
    assert failure.google_status == "ABORTED"
    assert failure.detail.startswith("There were concurrent policy changes.")
    assert "http://" not in failure.detail  # the transport's request line is not quoted


def test_a_412_failed_precondition_is_a_conflict_too(google: FakeGoogleHarness) -> None:
    google.iam.stale_etag_status = 412  # the fake's fault mode: other IAM surfaces answer so

    with pytest.raises(gexc.PreconditionFailed) as caught:
        stale_write(google)

    failure = google_failure(caught.value)
    assert (failure.kind, failure.status, failure.conflict) == ("answered", 412, True)
    assert (failure.google_status, failure.detail) == (
        "FAILED_PRECONDITION", "Precondition check failed."
    )


def test_other_client_errors_are_not_conflicts(google: FakeGoogleHarness) -> None:
    google.recorder.fail("POST", GET, 403, body={"error": {
        "code": 403, "message": "The caller does not have permission",
        "status": "PERMISSION_DENIED",
    }})
    failure = failure_of(lambda: read(google))
    assert (failure.kind, failure.status, failure.conflict) == ("answered", 403, False)
    assert failure.detail == "The caller does not have permission"
    assert failure.google_status == "PERMISSION_DENIED"
    assert not failure.retried


def test_exhausted_retries_keep_the_last_answer(google: FakeGoogleHarness) -> None:
    google.recorder.fail("POST", GET, 503, times=-1, body={"error": {
        "code": 503, "message": "backend down", "status": "UNAVAILABLE",
    }})
    failure = failure_of(lambda: read(google, retry=bounded_retry(google.budget)))
    assert failure.retried
    assert (failure.kind, failure.status) == ("answered", 503)
    assert failure.summary == "503 backend down"
    assert google.count("POST", GET) >= 2


def test_no_answer_within_the_timeout_is_a_timeout(google: FakeGoogleHarness) -> None:
    google.recorder.fail("POST", GET, 200, body={}, delay=google.budget.call_timeout + 0.5)
    failure = failure_of(lambda: read(google))
    assert (failure.kind, failure.status, failure.conflict) == ("timeout", None, False)
    assert f"read timeout={google.budget.call_timeout}" in failure.detail


def test_a_closed_port_is_unreachable(google: FakeGoogleHarness) -> None:
    with LocalServer(lambda environ, start_response: []) as server:
        url = server.url  # the port is closed once the server stops
    clients = GoogleClients(GoogleEndpoints(url, url, url, url), budget=google.budget)
    failure = failure_of(lambda: read(google, clients))
    assert (failure.kind, failure.status) == ("unreachable", None)


def test_a_plain_http_answer_is_translated_from_its_body(google: FakeGoogleHarness) -> None:
    google.recorder.fail("GET", r"^/v1/groups:lookup$", 429, body={"error": {
        "code": 429, "message": "Quota exceeded\n  for reads", "status": "RESOURCE_EXHAUSTED",
    }})
    response = requests.get(f"{google.url}/v1/groups:lookup", timeout=5)
    failure = google_failure(response)
    assert (failure.kind, failure.status) == ("answered", 429)
    assert failure.detail == "Quota exceeded for reads"  # on one line, for a PR comment
    assert failure.google_status == "RESOURCE_EXHAUSTED"


def test_a_plain_http_answer_without_a_google_body_names_its_status(
    google: FakeGoogleHarness,
) -> None:
    google.recorder.fail("GET", r"^/v1/groups:lookup$", 502, body="<html>bad gateway</html>")
    response = requests.get(f"{google.url}/v1/groups:lookup", timeout=5)
    failure = google_failure(response)
    assert (failure.status, failure.detail, failure.google_status) == (502, "HTTP 502", "")


def test_an_unreadable_answer_is_unreadable(google: FakeGoogleHarness) -> None:
    google.recorder.fail("POST", GET, 200, body='{"bindings": "not a list"}')
    failure = failure_of(lambda: read(google))
    assert (failure.kind, failure.status, failure.conflict) == ("unreadable", None, False)
