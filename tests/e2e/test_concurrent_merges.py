"""Merges on one project delivered at once to two service instances (each its own `Service`,
Flask app and Activator) sharing the fakes: within an instance the changes are batched, across
instances only the etag orders the writes. Every request must be granted, audited and commented
once, and nothing else in the policy may be lost. Correctness only: nothing here is timed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from benchmarks.world import (
    LOAD_PROJECT,
    LOAD_ROLE,
    Bench,
    HttpTarget,
    InProcessTarget,
    concurrent_merges,
    filler_bindings,
    seed_big_policy,
    seed_load_users,
)
from jitaccess_sandbox.emulator import REPO, Emulator
from jitaccess_sandbox.httpserver import LocalServer
from webhook.core.records import ACTIVATION_MARKER_PREFIX
from webhook.service.app import create_app
from webhook.service.wiring import Service

MERGES = 8
POLICY = 200


@pytest.fixture
def second_instance(emu: Emulator) -> Iterator[str]:
    """Another service instance sharing the fakes; yields its URL."""
    service = Service.from_settings(emu.settings, clock=emu.clock)
    server = LocalServer(create_app(emu.settings, service=service)).start()
    try:
        yield server.url
    finally:
        server.stop()
        service.lifecycle.executor.shutdown(wait=False)


def test_merges_over_two_instances_all_land_and_keep_the_policy(
    emu: Emulator, second_instance: str
) -> None:
    logins = seed_load_users(emu, MERGES)
    assert seed_big_policy(emu, POLICY) == POLICY
    bench = Bench(emu, InProcessTarget(emu))
    emu.google.recorder.latency = 0.02  # keep the deliveries in flight together

    result = concurrent_merges(
        bench, logins, tag="e2e", targets=[InProcessTarget(emu), HttpTarget(second_instance)]
    )

    assert result.failures == []
    assert (result.succeeded, result.server_errors, result.processes) == (MERGES, 0, 2)
    assert result.bindings_present == MERGES
    # Each request's binding, once, for its requester; every other binding kept as it was.
    stored = emu.world.bindings(f"projects/{LOAD_PROJECT}")
    activations = [b for b in stored if b.get("condition", {}).get("title")
                   == "JIT access activation" and b["role"] == LOAD_ROLE]
    assert sorted(m for b in activations for m in b["members"]) == sorted(
        f"user:{login}@example.com" for login in logins
    )
    for binding in filler_bindings(POLICY - 1):
        assert binding in stored
    # Audited and commented once per request.
    entries = [e for e in emu.audit() if e["labels"]["event"] == "gitops.activateRole"]
    assert sorted(e["labels"]["user"] for e in entries) == sorted(
        f"{login}@example.com" for login in logins
    )
    numbers = {int(e["labels"]["pull_request"].rsplit("/", 1)[1]) for e in entries}
    assert len(numbers) == MERGES
    for number in numbers:
        comments = [c for c in emu.github.comments(REPO, number)
                    if c.body.startswith(ACTIVATION_MARKER_PREFIX)]
        assert len(comments) == 1
    assert emu.google.recorder.unexpected == []
