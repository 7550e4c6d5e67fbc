"""Activation against the fake Google: Resource Manager v3 IAM calls over HTTP (§6).

The clock is fixed (jit-access's tests use 1 Jan 2040 too) and the exact policy JSON that
reaches the fake is asserted.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from jitaccess_sandbox.emulator import SHORT_BUDGET
from jitaccess_sandbox.fake_google import FakeGoogle
from jitaccess_sandbox.fake_google_iam import iam_state
from jitaccess_sandbox.httpserver import LocalServer
from jitaccess_sandbox.world import GoogleWorld
from webhook.adapters.google_clients import GoogleClients, GoogleEndpoints
from webhook.adapters.iam import (
    ActivationResult,
    Activator,
    activation_bindings,
    expired_activations,
    present_for_reference,
    request_reason,
    with_activations,
    without_bindings,
)
from webhook.core.budget import PRODUCTION
from webhook.core.conditions import build_binding
from webhook.core.errors import ActivationError
from webhook.core.model import Binding

from .google_fixtures import FakeGoogleHarness

PROJECT = "payments-prod"
RESOURCE = f"projects/{PROJECT}"
ROLE = "roles/cloudsql.admin"
ROLE2 = "roles/storage.admin"
ALICE = "alice@example.com"
BOB = "bob@example.com"
REPO = "acme/access"
JAN1_2040 = datetime(2040, 1, 1, 10, 0, 0, tzinfo=UTC)
TWO_HOURS = timedelta(hours=2)
JUSTIFICATION = "INC-1234: restore the failed replica"
SELF = "has({}.jitAccessConstraint)"

GET = r":getIamPolicy$"
SET = r":setIamPolicy$"
ABORTED = {
    "error": {
        "code": 409,
        "message": "There were concurrent policy changes. Please retry the whole "
        "read-modify-write with exponential backoff.",
        "status": "ABORTED",
    }
}
FAILED_PRECONDITION = {
    "error": {"code": 412, "message": "Precondition check failed.", "status": "FAILED_PRECONDITION"}
}
UNAVAILABLE = {
    "error": {"code": 503, "message": "The service is unavailable.", "status": "UNAVAILABLE"}
}

WINDOW = (
    '(request.time >= timestamp("2040-01-01T10:00:00Z") && '
    'request.time < timestamp("2040-01-01T12:00:00Z"))'
)


def binding(
    role: str = ROLE,
    email: str = ALICE,
    number: int = 42,
    start: datetime = JAN1_2040,
    approvers: tuple[str, ...] = (),
) -> Binding:
    return build_binding(
        role, email, approvers, JUSTIFICATION, f"{REPO}#{number}", start, start + TWO_HOURS
    )


def wire(b: Binding) -> dict[str, Any]:
    return {
        "role": b.role,
        "members": [b.member],
        "condition": {"title": b.title, "description": b.description, "expression": b.expression},
    }


ELIGIBLE = {
    "role": ROLE,
    "members": [f"user:{ALICE}"],
    "condition": {"title": "Eligible for JIT", "expression": SELF},
}
PLAIN = {"role": "roles/browser", "members": [f"user:{BOB}"]}


@pytest.fixture
def google(fake_google: FakeGoogleHarness) -> Iterator[FakeGoogleHarness]:
    """The fake with project `payments-prod` holding an eligible and an unconditional binding."""
    world = fake_google.world
    world.add_project(PROJECT)
    world.add_binding(RESOURCE, ROLE, f"user:{ALICE}", SELF, title="Eligible for JIT")
    world.add_binding(RESOURCE, "roles/browser", f"user:{BOB}")
    yield fake_google
    assert fake_google.recorder.unexpected == []


def no_sleep() -> tuple[list[float], Any]:
    slept: list[float] = []
    return slept, slept.append


class SleepClock:
    """A monotonic clock that only moves when the Activator sleeps: a storm's backoff then
    runs to its deadline at once, with every pause recorded."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def activator(google: FakeGoogleHarness, **kwargs: Any) -> Activator:
    kwargs.setdefault("sleep", lambda _s: None)
    return Activator(google.clients, **kwargs)


def set_bodies(google: FakeGoogleHarness) -> list[dict[str, Any]]:
    return [json.loads(c.body) for c in google.recorder.calls if c.path.endswith(":setIamPolicy")]


def get_bodies(google: FakeGoogleHarness) -> list[dict[str, Any]]:
    return [json.loads(c.body) for c in google.recorder.calls if c.path.endswith(":getIamPolicy")]


# --------------------------------------------------------------------------------------------
# The write


def test_activation_writes_the_exact_binding_in_one_read_and_one_write(google: FakeGoogleHarness):
    etag_before = google.world.get_policy(RESOURCE)["etag"]
    b = binding()

    result = activator(google).activate(
        PROJECT, [b], reason=JUSTIFICATION, pr_reference=f"{REPO}#42"
    )

    expected = {
        "role": ROLE,
        "members": ["user:alice@example.com"],
        "condition": {
            "title": "JIT access activation",
            "description": (
                "Self-approved, justification: INC-1234: restore the failed replica "
                "(acme/access#42)"
            ),
            "expression": WINDOW,
        },
    }
    assert google.world.bindings(RESOURCE) == [ELIGIBLE, PLAIN, expected]
    assert google.world.get_policy(RESOURCE)["version"] == 3
    assert google.count("POST", GET) == 1
    assert google.count("POST", SET) == 1
    assert get_bodies(google) == [{"options": {"requestedPolicyVersion": 3}}]
    (sent,) = set_bodies(google)
    assert sent == {
        "policy": {"version": 3, "etag": etag_before, "bindings": [ELIGIBLE, PLAIN, expected]}
    }
    assert google.iam.reasons_for(RESOURCE) == [JUSTIFICATION]
    assert result == ActivationResult(
        written=True,
        bindings=(b,),
        attempts=1,
        etag=google.world.get_policy(RESOURCE)["etag"],
    )


def test_all_roles_of_a_request_go_in_one_write(google: FakeGoogleHarness):
    bindings = [binding(ROLE), binding(ROLE2)]

    result = activator(google).activate(
        PROJECT, bindings, reason=JUSTIFICATION, pr_reference=f"{REPO}#42"
    )

    assert result.written and result.bindings == tuple(bindings)
    assert google.world.bindings(RESOURCE)[2:] == [wire(b) for b in bindings]
    assert google.count("POST", SET) == 1


def test_reason_header_is_ascii_on_one_line(google: FakeGoogleHarness):
    activator(google).activate(
        PROJECT, [binding()], reason="Café crash ☕\r\nX-Evil: 1", pr_reference=f"{REPO}#42"
    )

    assert google.iam.reasons_for(RESOURCE) == ["Cafe crash ? X-Evil: 1"]


def test_request_reason_is_shortened():
    assert request_reason("a" * 600) == "a" * 497 + "..."
    assert request_reason("  two\tspaces  ") == "two spaces"
    assert request_reason("Zürich ﬁx") == "Zurich fix"


# --------------------------------------------------------------------------------------------
# Conflicts


def test_conflicts_are_retried_with_a_fresh_read(google: FakeGoogleHarness):
    google.recorder.fail("POST", SET, 409, body=ABORTED, times=2)
    slept: list[float] = []

    result = activator(google, budget=PRODUCTION, sleep=slept.append, random=lambda: 0.5).activate(
        PROJECT, [binding()], reason=JUSTIFICATION, pr_reference=f"{REPO}#42"
    )

    assert result.written and result.attempts == 3
    assert google.count("POST", GET) == 3
    assert google.count("POST", SET) == 3
    assert slept == pytest.approx(
        [0.075, 0.15]
    )  # equal jitter: half of 0.1 and 0.2 s fixed, half random
    assert google.world.bindings(RESOURCE)[-1] == wire(binding())
    assert google.iam.reasons_for(RESOURCE) == [JUSTIFICATION]


def test_a_conflict_storm_is_retried_until_the_deadline(google: FakeGoogleHarness):
    google.recorder.fail("POST", SET, 409, body=ABORTED, times=-1)
    clock = SleepClock()

    with pytest.raises(ActivationError) as caught:
        activator(
            google, budget=PRODUCTION, sleep=clock.sleep, clock=clock, random=lambda: 1.0
        ).activate(PROJECT, [binding()], reason=JUSTIFICATION, pr_reference=f"{REPO}#42")

    assert str(caught.value) == (
        f"The IAM policy of project {PROJECT} kept changing concurrently; gave up after 10 "
        "attempts; retry later."
    )
    # Exponential (0.1, 0.2, 0.4 s) until the cap, which grows by 0.1 s with every conflict
    # met on the project (0.5, 0.6, ...), up to backoff_max; the attempt after the 5 s
    # deadline passed is the last.
    assert clock.slept == pytest.approx([0.1, 0.2, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
    assert sum(clock.slept[:-1]) < PRODUCTION.conflict_deadline <= sum(clock.slept)
    assert google.count("POST", SET) == 10
    assert google.count("POST", GET) == 10  # every retry reads the policy afresh
    assert google.world.bindings(RESOURCE) == [ELIGIBLE, PLAIN]


def test_a_contended_project_backs_off_longer(google: FakeGoogleHarness):
    """The backoff's cap follows the conflicts the process met on the project lately: after a
    storm, a change meeting three conflicts waits longer than it would on a quiet project."""
    clock = SleepClock()
    act = activator(google, budget=PRODUCTION, sleep=clock.sleep, clock=clock,
                    random=lambda: 1.0)
    google.recorder.fail("POST", SET, 409, body=ABORTED, times=4)
    act.activate(PROJECT, [binding()], reason=JUSTIFICATION, pr_reference=f"{REPO}#42")
    assert clock.slept == pytest.approx([0.1, 0.2, 0.4, 0.5])  # quiet: the cap was low

    clock.slept.clear()
    google.recorder.fail("POST", SET, 409, body=ABORTED, times=4)
    act.activate(PROJECT, [binding(email=BOB, number=43)], reason=JUSTIFICATION,
                 pr_reference=f"{REPO}#43")
    # Eight conflicts within the deadline: the cap is 0.9 s, the fourth pause 0.8 s.
    assert clock.slept == pytest.approx([0.1, 0.2, 0.4, 0.8])

    clock.now += PRODUCTION.conflict_deadline + 0.1  # the contention is forgotten
    clock.slept.clear()
    google.recorder.fail("POST", SET, 409, body=ABORTED, times=4)
    act.activate(PROJECT, [binding(email="carol@example.com", number=44)],
                 reason=JUSTIFICATION, pr_reference=f"{REPO}#44")
    assert clock.slept == pytest.approx([0.1, 0.2, 0.4, 0.5])


def test_conflict_retries_stop_at_the_deadline_but_not_before_five_attempts(
    google: FakeGoogleHarness,
):
    google.recorder.fail("POST", SET, 409, body=ABORTED, times=-1)

    # README: activation: at least 5 attempts, even when the deadline has long passed (a slow IAM).
    with pytest.raises(ActivationError, match="gave up after 5 attempts"):
        activator(google, budget=replace(google.budget, conflict_deadline=0.0)).activate(
            PROJECT, [binding()], reason=JUSTIFICATION, pr_reference=f"{REPO}#42"
        )
    assert google.count("POST", SET) == 5


def test_a_412_failed_precondition_is_retried_like_a_conflict():
    """A concurrent writer lands between our read and our write; IAM answers 412 (as other IAM
    surfaces do) rather than 409: the read-modify-write is retried on a fresh read all the same."""
    world = GoogleWorld()
    world.add_project(PROJECT)
    fake = FakeGoogle(world)
    iam_state(world).stale_etag_status = 412
    answers: list[str] = []

    def racing(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if not environ["PATH_INFO"].endswith(":setIamPolicy"):
            return fake.wsgi(environ, start_response)
        if not answers:  # another writer gets in just before our first write
            world.add_binding(RESOURCE, "roles/browser", f"user:{BOB}")

        def recording(status: str, headers: Any, exc_info: Any = None) -> Any:
            answers.append(status.split()[0])
            return start_response(status, headers, exc_info)

        return fake.wsgi(environ, recording)

    slept: list[float] = []
    with LocalServer(racing) as server:
        clients = GoogleClients(GoogleEndpoints(*[server.url] * 4), budget=SHORT_BUDGET)
        result = Activator(clients, sleep=slept.append).activate(
            PROJECT, [binding()], reason=JUSTIFICATION, pr_reference=f"{REPO}#42"
        )

    assert answers == ["412", "200"]
    assert result.written and result.attempts == 2
    assert len(slept) == 1  # backed off once, as after a 409
    assert fake.recorder.count("POST", GET) == 2  # the retry read the policy afresh
    assert world.bindings(RESOURCE) == [PLAIN, wire(binding())]  # the other writer's kept
    assert fake.recorder.unexpected == []


def test_a_storm_of_412s_ends_like_a_storm_of_409s(google: FakeGoogleHarness):
    google.recorder.fail("POST", SET, 412, body=FAILED_PRECONDITION, times=-1)
    clock = SleepClock()

    with pytest.raises(ActivationError, match="kept changing concurrently; gave up after 10 "):
        activator(
            google, budget=PRODUCTION, sleep=clock.sleep, clock=clock, random=lambda: 1.0
        ).activate(PROJECT, [binding()], reason=JUSTIFICATION, pr_reference=f"{REPO}#42")

    assert google.count("POST", GET) == 10
    assert google.count("POST", SET) == 10
    assert google.world.bindings(RESOURCE) == [ELIGIBLE, PLAIN]


def test_a_storm_with_real_backoff_ends_after_the_deadline(google: FakeGoogleHarness):
    google.recorder.fail("POST", SET, 409, body=ABORTED, times=-1)
    budget = replace(google.budget, conflict_deadline=0.3)

    with pytest.raises(ActivationError) as caught:
        Activator(google.clients, budget=budget).activate(
            PROJECT, [binding()], reason=JUSTIFICATION, pr_reference=f"{REPO}#42"
        )

    made = int(str(caught.value).split("gave up after ")[1].split()[0])
    assert made >= 5
    assert google.count("POST", SET) == made


def test_eight_concurrent_activations_all_land(google: FakeGoogleHarness):
    people = [f"user{i}@example.com" for i in range(8)]
    wanted = [
        binding(ROLE if i % 2 else ROLE2, email, number=100 + i) for i, email in enumerate(people)
    ]
    results: list[ActivationResult] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def run(b: Binding, number: int) -> None:
        try:
            r = Activator(google.clients).activate(
                PROJECT, [b], reason=JUSTIFICATION, pr_reference=f"{REPO}#{number}"
            )
        except BaseException as e:  # reported below; a thread must not swallow it
            with lock:
                errors.append(e)
        else:
            with lock:
                results.append(r)

    threads = [threading.Thread(target=run, args=(b, 100 + i)) for i, b in enumerate(wanted)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)

    assert errors == []
    assert len(results) == 8 and all(r.written for r in results)
    present = google.world.bindings(RESOURCE)
    assert [b for b in present if b not in (ELIGIBLE, PLAIN)] != []
    for b in wanted:
        assert wire(b) in present
    assert len(present) == 10
    assert google.count("POST", SET) == 8 + sum(r.attempts - 1 for r in results)


# --------------------------------------------------------------------------------------------
# Idempotency and replacement


def test_a_redelivered_merge_writes_nothing(google: FakeGoogleHarness):
    act = activator(google)
    first = act.activate(PROJECT, [binding()], reason=JUSTIFICATION, pr_reference=f"{REPO}#42")
    policy = google.world.get_policy(RESOURCE)

    later = binding(start=JAN1_2040 + timedelta(minutes=3))
    second = act.activate(PROJECT, [later], reason=JUSTIFICATION, pr_reference=f"{REPO}#42")

    assert first.written
    assert second == ActivationResult(
        written=False, bindings=(binding(),), attempts=1, etag=policy["etag"], already=(binding(),)
    )
    assert google.world.get_policy(RESOURCE) == policy
    assert google.count("POST", SET) == 1
    assert google.count("POST", GET) == 2


def test_a_write_whose_answer_was_lost_still_counts_as_written():
    """A setIamPolicy that landed but answered 503: the retry conflicts, the re-read finds it."""
    world = GoogleWorld()
    world.add_project(PROJECT)
    fake = FakeGoogle(world)
    lost = {"count": 0}

    def lossy(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if environ["PATH_INFO"].endswith(":setIamPolicy") and lost["count"] == 0:
            lost["count"] += 1
            list(fake.wsgi(environ, lambda *a, **k: None))  # the write happens...
            start_response("503 Service Unavailable", [("Content-Type", "application/json")])
            return [json.dumps(UNAVAILABLE).encode()]  # ...but its answer is lost
        return fake.wsgi(environ, start_response)

    with LocalServer(lossy) as server:
        clients = GoogleClients(GoogleEndpoints(server.url, server.url, server.url, server.url))
        result = Activator(clients, sleep=lambda _s: None).activate(
            PROJECT, [binding()], reason=JUSTIFICATION, pr_reference=f"{REPO}#42"
        )

    assert result.written is True
    assert result.bindings == (binding(),)
    assert world.bindings(RESOURCE) == [wire(binding())]
    assert fake.recorder.count("POST", SET) == 2  # the lost one and the retry that conflicted
    assert fake.recorder.unexpected == []


def test_an_earlier_activation_of_the_same_role_and_member_is_replaced(google: FakeGoogleHarness):
    earlier = binding(number=7, start=JAN1_2040 - timedelta(hours=1))
    other_role = binding(ROLE2, number=7, start=JAN1_2040 - timedelta(hours=1))
    other_member = binding(email=BOB, number=8)
    for b in (earlier, other_role, other_member):
        google.world.add_binding(RESOURCE, b.role, b.member, b.expression, b.title, b.description)

    result = activator(google).activate(
        PROJECT, [binding()], reason=JUSTIFICATION, pr_reference=f"{REPO}#42"
    )

    assert google.world.bindings(RESOURCE) == [
        ELIGIBLE,
        PLAIN,
        wire(other_role),
        wire(other_member),
        wire(binding()),
    ]
    assert result.replaced == (earlier,)  # what a rollback must put back


def test_only_the_member_is_taken_out_of_a_shared_activation_binding(google: FakeGoogleHarness):
    earlier = binding(number=7)
    shared = {**wire(earlier), "members": [f"user:{BOB}", f"user:{ALICE}"]}
    policy = google.world.get_policy(RESOURCE)
    google.world.set_policy(
        RESOURCE, {**policy, "version": 3, "bindings": [*policy["bindings"], shared]}
    )

    activator(google).activate(
        PROJECT, [binding()], reason=JUSTIFICATION, pr_reference=f"{REPO}#42"
    )

    assert google.world.bindings(RESOURCE) == [
        ELIGIBLE,
        PLAIN,
        {**wire(earlier), "members": [f"user:{BOB}"]},
        wire(binding()),
    ]


# --------------------------------------------------------------------------------------------
# Errors


def test_an_ungrantable_role_is_named(google: FakeGoogleHarness):
    bad = "roles/resourcemanager.organizationAdmin"

    with pytest.raises(ActivationError) as caught:
        activator(google).activate(
            PROJECT, [binding(), binding(bad)], reason=JUSTIFICATION, pr_reference=f"{REPO}#42"
        )

    assert str(caught.value) == (
        f"{bad} cannot be granted on project {PROJECT}: "
        f"Role {bad} is not supported for this resource."
    )
    assert google.world.bindings(RESOURCE) == [ELIGIBLE, PLAIN]


def test_an_unknown_custom_role_is_refused(google: FakeGoogleHarness):
    role = "organizations/123456789012/roles/doesNotExist"

    with pytest.raises(ActivationError, match=f"^{role} cannot be granted on project {PROJECT}: "):
        activator(google).activate(
            PROJECT, [binding(role)], reason=JUSTIFICATION, pr_reference=f"{REPO}#42"
        )


def test_an_existing_custom_role_is_granted(google: FakeGoogleHarness):
    role = f"projects/{PROJECT}/roles/dbOperator"
    google.iam.custom_roles.add(role)

    result = activator(google).activate(
        PROJECT, [binding(role)], reason=JUSTIFICATION, pr_reference=f"{REPO}#42"
    )

    assert result.written
    assert google.world.bindings(RESOURCE)[-1] == wire(binding(role))


def test_a_basic_role_with_a_condition_is_refused(google: FakeGoogleHarness):
    with pytest.raises(ActivationError, match="^roles/editor cannot be granted on project"):
        activator(google).activate(
            PROJECT, [binding("roles/editor")], reason=JUSTIFICATION, pr_reference=f"{REPO}#42"
        )


def test_an_unknown_project_is_a_permission_error(google: FakeGoogleHarness):
    with pytest.raises(ActivationError) as caught:
        activator(google).activate(
            "no-such-project", [binding()], reason=JUSTIFICATION, pr_reference=f"{REPO}#42"
        )

    assert str(caught.value) == (
        "Cannot change the IAM policy of project no-such-project: the service account lacks "
        "permission or the project does not exist (403: The caller does not have permission)"
    )
    assert google.count("POST", SET) == 0


def test_a_404_is_a_permission_error(google: FakeGoogleHarness):
    google.recorder.fail(
        "POST", GET, 404, body={"error": {"code": 404, "message": "gone", "status": "NOT_FOUND"}}
    )

    with pytest.raises(
        ActivationError, match=r"lacks permission or the project does not exist \(404: gone\)"
    ):
        activator(google).activate(
            PROJECT, [binding()], reason=JUSTIFICATION, pr_reference=f"{REPO}#42"
        )


def test_a_transient_503_is_retried(google: FakeGoogleHarness):
    google.recorder.fail("POST", GET, 503, body=UNAVAILABLE)
    google.recorder.fail("POST", SET, 503, body=UNAVAILABLE)

    result = activator(google).activate(
        PROJECT, [binding()], reason=JUSTIFICATION, pr_reference=f"{REPO}#42"
    )

    assert result.written and result.attempts == 1
    assert google.count("POST", GET) == 2
    assert google.count("POST", SET) == 2
    assert google.world.bindings(RESOURCE)[-1] == wire(binding())


def test_a_persistent_503_ends_within_the_bounded_time(google: FakeGoogleHarness):
    google.recorder.fail("POST", GET, 503, body=UNAVAILABLE, times=-1)
    started = time.monotonic()

    with pytest.raises(ActivationError, match="Google Cloud kept failing"):
        Activator(google.clients).activate(
            PROJECT, [binding()], reason=JUSTIFICATION, pr_reference=f"{REPO}#42"
        )

    elapsed = time.monotonic() - started
    budget = google.budget
    assert budget.retry_deadline / 2 < elapsed < budget.retry_deadline + budget.call_timeout
    assert google.count("POST", GET) >= 3
    assert google.count("POST", SET) == 0


# --------------------------------------------------------------------------------------------
# Removal (rollback)


def test_remove_takes_back_exactly_the_activation(google: FakeGoogleHarness):
    act = activator(google)
    other = binding(email=BOB, number=8)
    act.activate(PROJECT, [other], reason=JUSTIFICATION, pr_reference=f"{REPO}#8")
    act.activate(PROJECT, [binding()], reason=JUSTIFICATION, pr_reference=f"{REPO}#42")

    act.remove(PROJECT, [binding()], reason="JIT access: audit entry failed, rolling back")

    assert google.world.bindings(RESOURCE) == [ELIGIBLE, PLAIN, wire(other)]
    assert google.iam.reasons_for(RESOURCE)[-1] == "JIT access: audit entry failed, rolling back"


def test_a_rollback_restores_the_activation_the_write_replaced(google: FakeGoogleHarness):
    act = activator(google)
    earlier = binding(number=7, start=JAN1_2040 - timedelta(hours=1))
    act.activate(PROJECT, [earlier], reason=JUSTIFICATION, pr_reference=f"{REPO}#7")
    before = google.world.bindings(RESOURCE)
    result = act.activate(PROJECT, [binding()], reason=JUSTIFICATION, pr_reference=f"{REPO}#42")
    assert result.replaced == (earlier,)
    writes = google.count("POST", SET)

    restored = act.remove(
        PROJECT, result.bindings, reason="audit entry failed", restore=result.replaced
    )

    assert restored == (earlier,)
    assert google.world.bindings(RESOURCE) == before  # the earlier activation is back, exactly
    assert google.count("POST", SET) == writes + 1  # in one write
    assert google.iam.reasons_for(RESOURCE)[-1] == "audit entry failed"


def test_a_rollback_restores_nothing_once_a_later_activation_stands(google: FakeGoogleHarness):
    """Between the write and its rollback another request of the same member and role replaced
    ours: the rollback has nothing to remove, and must not bring the earlier activation back
    beside the current one."""
    act = activator(google)
    earlier = binding(number=7, start=JAN1_2040 - timedelta(hours=1))
    act.activate(PROJECT, [earlier], reason=JUSTIFICATION, pr_reference=f"{REPO}#7")
    ours = act.activate(PROJECT, [binding()], reason=JUSTIFICATION, pr_reference=f"{REPO}#42")
    later = binding(number=43, start=JAN1_2040 + timedelta(minutes=5))
    act.activate(PROJECT, [later], reason=JUSTIFICATION, pr_reference=f"{REPO}#43")
    writes = google.count("POST", SET)

    restored = act.remove(PROJECT, ours.bindings, reason="rollback", restore=ours.replaced)

    assert restored == ()
    assert google.world.bindings(RESOURCE) == [ELIGIBLE, PLAIN, wire(later)]
    assert google.count("POST", SET) == writes


def test_a_rollback_meeting_a_conflict_restores_on_the_fresh_read(google: FakeGoogleHarness):
    act = activator(google)
    earlier = binding(number=7, start=JAN1_2040 - timedelta(hours=1))
    act.activate(PROJECT, [earlier], reason=JUSTIFICATION, pr_reference=f"{REPO}#7")
    ours = act.activate(PROJECT, [binding()], reason=JUSTIFICATION, pr_reference=f"{REPO}#42")
    google.recorder.fail("POST", SET, 409, body=ABORTED)

    restored = act.remove(PROJECT, ours.bindings, reason="rollback", restore=ours.replaced)

    assert restored == (earlier,)
    assert google.world.bindings(RESOURCE) == [ELIGIBLE, PLAIN, wire(earlier)]


def test_remove_of_absent_bindings_writes_nothing(google: FakeGoogleHarness):
    activator(google).remove(PROJECT, [binding()], reason="rollback")

    assert google.count("POST", SET) == 0
    assert google.count("POST", GET) == 1


def test_remove_retries_conflicts(google: FakeGoogleHarness):
    act = activator(google)
    act.activate(PROJECT, [binding()], reason=JUSTIFICATION, pr_reference=f"{REPO}#42")
    google.recorder.fail("POST", SET, 409, body=ABORTED, times=2)

    act.remove(PROJECT, [binding()], reason="rollback")

    assert google.world.bindings(RESOURCE) == [ELIGIBLE, PLAIN]
    assert google.count("POST", SET) == 1 + 3


# --------------------------------------------------------------------------------------------
# The fake behaves like IAM where the service relies on it


def test_version_1_read_of_a_conditional_policy_hides_conditions(google: FakeGoogleHarness):
    policy = google.clients.projects.get_iam_policy(request={"resource": RESOURCE})

    assert policy.version == 1
    assert [b.role for b in policy.bindings][0].startswith(f"{ROLE}_withcond_")
    assert not policy.bindings[0].HasField("condition")


def test_a_conditional_binding_needs_version_3(google: FakeGoogleHarness):
    from google.api_core.exceptions import BadRequest
    from google.iam.v1 import policy_pb2

    policy = google.clients.projects.get_iam_policy(
        request={"resource": RESOURCE, "options": {"requested_policy_version": 3}}
    )
    policy.version = 1
    with pytest.raises(BadRequest, match="require policy version 3"):
        google.clients.projects.set_iam_policy(
            request={
                "resource": RESOURCE,
                "policy": policy_pb2.Policy(
                    version=1, etag=policy.etag, bindings=list(policy.bindings)
                ),
            }
        )


# --------------------------------------------------------------------------------------------
# Pure policy manipulation


def test_pure_functions_on_the_wire_form():
    now = JAN1_2040 + TWO_HOURS
    expired = binding(number=1, start=JAN1_2040)
    active = binding(ROLE2, number=2, start=JAN1_2040 + timedelta(hours=1))
    odd = Binding(ROLE, f"user:{BOB}", "JIT access activation", "(x#1)", "request.time < now")
    policy = {
        "version": 3,
        "etag": "ZQ==",
        "bindings": [ELIGIBLE, PLAIN, wire(expired), wire(active), wire(odd), "junk"],
    }

    # `odd` has the title but no window: not an activation
    assert activation_bindings(policy) == [expired, active]
    assert expired_activations(policy, now) == [expired]
    assert expired_activations(policy, now - timedelta(seconds=1)) == []
    assert present_for_reference(policy, [binding()], f"{REPO}#1") == (expired,)
    assert present_for_reference(policy, [binding(), binding(ROLE2)], f"{REPO}#1") is None
    assert without_bindings(policy, [expired])["bindings"] == [
        ELIGIBLE,
        PLAIN,
        wire(active),
        wire(odd),
        "junk",
    ]
    fresh = binding(number=3)
    assert with_activations(policy, [fresh]) == {
        "version": 3,
        "etag": "ZQ==",
        "bindings": [ELIGIBLE, PLAIN, wire(active), wire(odd), "junk", wire(fresh)],
    }
    assert policy["bindings"][2] == wire(expired)  # the input is not modified


# --------------------------------------------------------------------------------------------
# Policy messages <-> wire form, and the reason of a batched write


def full_policy() -> Any:
    from google.iam.v1 import policy_pb2
    from google.type import expr_pb2

    return policy_pb2.Policy(
        version=3,
        etag=b"\x07\x05\xff etag",
        bindings=[
            policy_pb2.Binding(role="roles/browser", members=[f"user:{BOB}", "group:g@x.com"]),
            policy_pb2.Binding(
                role=ROLE, members=[f"user:{ALICE}"],
                condition=expr_pb2.Expr(expression=SELF, title="Eligible", location="f.cel"),
            ),
            policy_pb2.Binding(role=ROLE2, members=[f"user:{ALICE}"],
                               condition=expr_pb2.Expr(expression=WINDOW, description="d")),
            policy_pb2.Binding(role="roles/viewer"),
        ],
        audit_configs=[policy_pb2.AuditConfig(
            service="allServices",
            audit_log_configs=[policy_pb2.AuditLogConfig(
                log_type=policy_pb2.AuditLogConfig.LogType.DATA_READ,
                exempted_members=[f"user:{BOB}"],
            )],
        )],
    )


def test_an_answer_keeps_what_the_client_library_would_keep():
    from google.protobuf import json_format

    from webhook.adapters.iam import wire_policy

    as_json = json_format.MessageToDict(full_policy())
    assert wire_policy(as_json) == as_json
    # Fields a `google.iam.v1.Policy` does not have are dropped, as the library drops them.
    extra = {**as_json, "futureField": 1,
             "bindings": [{**as_json["bindings"][0], "futureField": 2}, *as_json["bindings"][1:]]}
    assert wire_policy(extra) == as_json
    assert wire_policy({}) == {}


@pytest.mark.parametrize(
    ("answer", "complaint"),
    [
        ([], "the answer is not a JSON object"),
        ({"bindings": {"role": ROLE}}, "bindings is not a list"),
        ({"bindings": ["roles/x"]}, "a binding is not a role binding"),
        ({"bindings": [{"role": ROLE, "members": "user:a@x.com"}]}, "members of a"),
        ({"bindings": [{"role": ROLE, "members": [1]}]}, "members of a"),
        ({"bindings": [{"role": ROLE, "condition": "x"}]}, "condition of a"),
        ({"etag": 7}, "etag is not a string"),
        ({"version": "3"}, "version is '3'"),
    ],
)
def test_a_malformed_answer_is_refused(answer: Any, complaint: str):
    from webhook.adapters.iam import wire_policy

    with pytest.raises(ValueError, match=complaint):
        wire_policy(answer)


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        ({"version": 3, "etag": "BwE=", "bindings": {}}, "bindings is not a list"),
        ("<html>Service Unavailable</html>", "Expecting value"),
    ],
    ids=["not-a-policy", "not-json"],
)
def test_a_malformed_policy_is_never_written_back(
    google: FakeGoogleHarness, body: Any, complaint: str
):
    """Read as empty, the policy would be written back without its bindings."""
    google.recorder.fail("POST", GET, 200, body=body)

    with pytest.raises(ActivationError) as caught:
        activator(google).activate(
            PROJECT, [binding()], reason=JUSTIFICATION, pr_reference=f"{REPO}#42"
        )

    assert str(caught.value).startswith(
        f"Resource Manager returned an IAM policy for project {PROJECT} that could not be "
        f"understood: {complaint}"
    )
    assert google.count("POST", SET) == 0
    assert google.world.bindings(RESOURCE) == [ELIGIBLE, PLAIN]


def test_a_batched_write_names_the_distinct_justifications():
    from webhook.adapters.iam import MAX_REASON, batch_reason

    assert batch_reason(["INC-1: a"]) == "INC-1: a"
    assert batch_reason(["INC-1: a", "INC-2: b\nX", "INC-1: a"]) == "INC-1: a | INC-2: b X"
    many = [f"INC-{n}: restore the replica number {n}" for n in range(1, 41)]
    reason = batch_reason(many)
    assert len(reason) <= MAX_REASON
    shown = reason.split(" | ")
    assert shown[:-1] == many[: len(shown) - 1]
    assert shown[-1] == f"and {40 - (len(shown) - 1)} more"
    assert batch_reason(["x" * 600, "y"]) == "x" * 497 + "..."
    assert batch_reason([]) == ""
