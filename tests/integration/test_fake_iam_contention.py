"""The fake IAM under concurrent writers, as real IAM behaves: of the setIamPolicy calls that carry
the same (read) etag, exactly one is accepted; every other is answered 409 `ABORTED`, and the
policy and the recorded request reasons are the winner's only. Driven over HTTP, many at once."""

from __future__ import annotations

import threading
from typing import Any

import requests

from .google_fixtures import FakeGoogleHarness

RESOURCE = "projects/payments-load"
WRITERS = 16


def test_writers_racing_on_one_etag_get_one_acceptance_and_409s(fake_google: FakeGoogleHarness):
    fake_google.world.add_project("payments-load")
    url = f"{fake_google.url}/v3/{RESOURCE}"
    read = requests.post(f"{url}:getIamPolicy",
                         json={"options": {"requestedPolicyVersion": 3}}, timeout=10).json()
    barrier = threading.Barrier(WRITERS)
    answers: dict[int, tuple[int, Any]] = {}

    def write(n: int) -> None:
        policy = {**read, "bindings": [{"role": "roles/browser", "members": [f"user:u{n}@x.com"]}]}
        barrier.wait()
        response = requests.post(f"{url}:setIamPolicy", json={"policy": policy}, timeout=10,
                                 headers={"x-goog-request-reason": f"writer {n}"})
        answers[n] = (response.status_code, response.json())

    threads = [threading.Thread(target=write, args=(n,)) for n in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)

    [winner] = [n for n, (status, _) in answers.items() if status == 200]
    losers = [body for n, (status, body) in answers.items() if n != winner]
    assert len(losers) == WRITERS - 1
    for body in losers:
        assert body["error"]["code"] == 409
        assert body["error"]["status"] == "ABORTED"
        assert body["error"]["message"].startswith("There were concurrent policy changes.")
    assert fake_google.world.bindings(RESOURCE) == [
        {"role": "roles/browser", "members": [f"user:u{winner}@x.com"]}
    ]
    assert fake_google.iam.reasons_for(RESOURCE) == [f"writer {winner}"]
    assert answers[winner][1]["etag"] != read["etag"]


def test_a_write_does_not_share_state_with_what_it_was_given(fake_google: FakeGoogleHarness):
    """The fake stores and answers copies: a caller changing what it read or wrote changes
    nothing in IAM (as over a real wire)."""
    world = fake_google.world
    world.add_project("payments-load")
    bindings = [{"role": "roles/browser", "members": ["user:a@x.com"]}]
    answer = world.set_policy(RESOURCE, {"version": 1, "bindings": bindings})
    bindings[0]["members"].append("user:b@x.com")
    answer["bindings"][0]["members"].append("user:c@x.com")
    world.get_policy(RESOURCE)["bindings"][0]["members"].append("user:d@x.com")
    assert world.bindings(RESOURCE) == [{"role": "roles/browser", "members": ["user:a@x.com"]}]
