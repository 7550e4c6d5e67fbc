"""Changes of one project's IAM policy are batched within a process (webhook.adapters.iam).

One `Activator` (one service process) lets one change at a time write a project's policy; the
changes that queue up meanwhile are written together in the next read-modify-write, starting
from the policy the previous one wrote. Each change still gets its own result and its own error.
Conflicts with other processes are retried.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from webhook.adapters.iam import ActivationResult, Activator
from webhook.core.budget import PRODUCTION
from webhook.core.conditions import build_binding
from webhook.core.errors import ActivationError
from webhook.core.model import Binding

from .google_fixtures import FakeGoogleHarness

PROJECT = "payments-load"
OTHER = "payments-other"
ROLE = "roles/cloudsql.admin"
REPO = "acme/access"
START = datetime(2040, 1, 1, 10, 0, tzinfo=UTC)
GET = r":getIamPolicy$"
SET = r":setIamPolicy$"
ABORTED = {"error": {"code": 409, "message": "concurrent policy changes", "status": "ABORTED"}}


@pytest.fixture
def google(fake_google: FakeGoogleHarness) -> Iterator[FakeGoogleHarness]:
    """The fake with two empty projects."""
    fake_google.world.add_project(PROJECT)
    fake_google.world.add_project(OTHER)
    yield fake_google
    assert fake_google.recorder.unexpected == []


def grant(n: int, role: str = ROLE) -> Binding:
    """An activation of `role` for user n, requested by PR #n."""
    return build_binding(
        role, f"user{n}@example.com", (), f"INC-{n}: load", f"{REPO}#{n}", START,
        START + timedelta(hours=1),
    )


def run_at_once(
    google: FakeGoogleHarness, activator: Activator, jobs: list[tuple[str, int]],
    roles: dict[int, str] | None = None,
) -> tuple[dict[int, ActivationResult], dict[int, BaseException]]:
    """Start job 0, and the others once its (slowed) write has reached the fake: it then holds
    its project's turn."""
    results: dict[int, ActivationResult] = {}
    errors: dict[int, BaseException] = {}
    lock = threading.Lock()

    def run(project: str, n: int) -> None:
        try:
            b = grant(n, (roles or {}).get(n, ROLE))
            r = activator.activate(project, [b], reason=f"INC-{n}: load",
                                   pr_reference=f"{REPO}#{n}")
        except BaseException as e:  # collected and asserted on below
            with lock:
                errors[n] = e
        else:
            with lock:
                results[n] = r  # in the order the changes finished

    threads = [threading.Thread(target=run, args=job) for job in jobs]
    threads[0].start()
    deadline = time.monotonic() + 10
    while google.count("POST", SET) == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    for t in threads[1:]:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return results, errors


def bound(google: FakeGoogleHarness, turn_wait: float = 6.0) -> Activator:
    """An Activator on the fake that never sleeps between conflict retries. Its budget is
    production's: the tests slow writes down for longer than the harness's short call timeout."""
    budget = replace(PRODUCTION, turn_wait=turn_wait)
    return Activator(google.clients, sleep=lambda _s: None, budget=budget)


def test_a_burst_on_one_project_is_written_in_one_batch(google: FakeGoogleHarness):
    act = bound(google)
    google.recorder.slow("POST", SET, 0.5)  # the first write holds the project half a second

    results, errors = run_at_once(google, act, [(PROJECT, n) for n in range(1, 9)])

    assert errors == {}
    assert sorted(results) == list(range(1, 9))
    for n, r in results.items():  # each change has its own result
        assert r.written and r.attempts == 1
        assert r.bindings == (grant(n),)
        assert (r.start, r.end) == (START, START + timedelta(hours=1))
    members = [m for b in google.world.bindings(f"projects/{PROJECT}") for m in b["members"]]
    assert sorted(members) == sorted(f"user:user{n}@example.com" for n in range(1, 9))
    # The first change wrote alone; the seven that queued up meanwhile went in one write, from
    # the policy the first one wrote (one read in all), and no write met a conflict.
    assert google.count("POST", GET) == 1
    assert google.count("POST", SET) == 2
    first, batched = google.iam.reasons_for(f"projects/{PROJECT}")
    assert first == "INC-1: load"
    # One header for the batch: every justification it carries (in the order they queued).
    assert sorted(batched.split(" | ")) == sorted(f"INC-{n}: load" for n in range(2, 9))
    assert results[2].etag == results[8].etag == google.world.get_policy(
        f"projects/{PROJECT}")["etag"]


def test_each_change_of_a_batch_gets_its_own_error(google: FakeGoogleHarness):
    """IAM refuses the batch because of one request's role: the batch is retried change by
    change, so only that request fails, with a message naming its role."""
    act = bound(google)
    google.recorder.slow("POST", SET, 0.5)
    bad = "roles/resourcemanager.organizationAdmin"

    results, errors = run_at_once(google, act, [(PROJECT, n) for n in range(1, 6)], {4: bad})

    assert sorted(results) == [1, 2, 3, 5]
    assert all(r.written for r in results.values())
    assert list(errors) == [4]
    assert isinstance(errors[4], ActivationError)
    assert str(errors[4]) == (
        f"{bad} cannot be granted on project {PROJECT}: Role {bad} is not supported for this "
        "resource."
    )
    members = [m for b in google.world.bindings(f"projects/{PROJECT}") for m in b["members"]]
    assert sorted(members) == sorted(f"user:user{n}@example.com" for n in (1, 2, 3, 5))
    # The first write, the refused batch, then the four queued changes one by one.
    assert google.count("POST", SET) == 1 + 1 + 4


def test_a_redelivered_change_in_a_batch_writes_nothing_of_its_own(google: FakeGoogleHarness):
    act = bound(google)
    act.activate(PROJECT, [grant(3)], reason="INC-3: load", pr_reference=f"{REPO}#3")
    google.recorder.slow("POST", SET, 0.5)

    results, errors = run_at_once(google, act, [(PROJECT, 1), (PROJECT, 2), (PROJECT, 3)])

    assert errors == {}
    assert results[1].written and results[2].written
    assert not results[3].written and results[3].already == (grant(3),)
    assert google.iam.reasons_for(f"projects/{PROJECT}")[-1] == "INC-2: load"


def test_a_batch_that_meets_a_conflict_is_retried_whole(google: FakeGoogleHarness):
    act = bound(google)
    google.recorder.slow("POST", SET, 0.5)
    google.recorder.fail("POST", SET, 409, body=ABORTED)  # the batch's first write

    results, errors = run_at_once(google, act, [(PROJECT, n) for n in range(1, 5)])

    assert errors == {}
    assert results[1].attempts == 1
    assert all(results[n].written and results[n].attempts == 2 for n in (2, 3, 4))
    members = [m for b in google.world.bindings(f"projects/{PROJECT}") for m in b["members"]]
    assert sorted(members) == sorted(f"user:user{n}@example.com" for n in range(1, 5))
    assert google.count("POST", GET) == 2  # the first change's read, and the re-read after 409
    assert google.count("POST", SET) == 3


def test_other_projects_do_not_wait(google: FakeGoogleHarness):
    act = bound(google)
    google.recorder.slow("POST", SET, 1.0)

    results, errors = run_at_once(google, act, [(PROJECT, 1), (OTHER, 2)])

    assert errors == {}
    assert results[1].written and results[2].written
    # The other project's change finished while the first (slowed) write was still running.
    assert list(results) == [2, 1]
    assert google.count("POST", r"/projects/payments-other:getIamPolicy$") == 1
    assert google.count("POST", r"/projects/payments-load:getIamPolicy$") == 1


def test_a_handed_over_policy_changed_elsewhere_is_read_again(google: FakeGoogleHarness):
    act = bound(google)
    google.recorder.slow("POST", SET, 0.5)
    # The second write meets a change made by another process: IAM answers 409.
    google.recorder.fail("POST", SET, 409, body=ABORTED)

    results, errors = run_at_once(google, act, [(PROJECT, 1), (PROJECT, 2)])

    assert errors == {}
    assert results[1].attempts == 1
    assert results[2].written and results[2].attempts == 2
    assert google.count("POST", GET) == 2  # the first change's read, and the re-read after 409
    assert google.count("POST", SET) == 3
    members = [m for b in google.world.bindings(f"projects/{PROJECT}") for m in b["members"]]
    assert sorted(members) == ["user:user1@example.com", "user:user2@example.com"]


def test_waiting_for_the_turn_is_bounded(google: FakeGoogleHarness):
    act = bound(google, turn_wait=0.2)
    google.recorder.slow("POST", SET, 1.5)

    results, errors = run_at_once(google, act, [(PROJECT, 1), (PROJECT, 2)])

    assert results[1].written
    assert isinstance(errors[2], ActivationError)
    assert str(errors[2]) == (
        f"The IAM policy of project {PROJECT} is being changed by other requests; gave up "
        "waiting after 0.2 s; retry later."
    )
    assert google.count("POST", SET) == 1  # the change that gave up wrote nothing
    members = [m for b in google.world.bindings(f"projects/{PROJECT}") for m in b["members"]]
    assert members == ["user:user1@example.com"]


def test_sequential_changes_read_afresh(google: FakeGoogleHarness):
    act = bound(google)
    for n in (1, 2, 3):
        act.activate(PROJECT, [grant(n)], reason=f"INC-{n}: load", pr_reference=f"{REPO}#{n}")

    # Nobody waited: each change read the policy itself (it may have changed elsewhere).
    assert google.count("POST", GET) == 3
    assert google.count("POST", SET) == 3
