"""A running fake Google and `GoogleClients` pointing at it, for integration tests.

`running_fake_google()` is a context manager; the `fake_google` fixture in `conftest.py` wraps
it. All four endpoints are the fake's URL (one server serves every API). The clients carry the
emulator's short time budget, and so do the adapters built on them unless given another.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from jitaccess_sandbox.emulator import SHORT_BUDGET
from jitaccess_sandbox.fake_google import FakeGoogle
from jitaccess_sandbox.fake_google_iam import IamState, iam_state
from jitaccess_sandbox.faults import Recorder
from jitaccess_sandbox.httpserver import LocalServer
from jitaccess_sandbox.world import GoogleWorld
from webhook.adapters.google_clients import GoogleClients, GoogleEndpoints
from webhook.core.budget import Budget

#: The project that receives audit entries in tests.
AUDIT_PROJECT = "audit-proj"


@dataclass
class FakeGoogleHarness:
    """A fake Google served on a loopback port, its state, and clients for it."""

    world: GoogleWorld
    recorder: Recorder
    url: str
    clients: GoogleClients
    fake: FakeGoogle

    @property
    def budget(self) -> Budget:
        """The clients' time budget (the emulator's short one)."""
        return self.clients.budget

    @property
    def iam(self) -> IamState:
        """Fake IAM state: request reasons of accepted writes, custom roles."""
        return iam_state(self.world)

    def count(self, method: str, path: str) -> int:
        """How many calls matched (shortcut for `recorder.count`)."""
        return self.recorder.count(method, path)


@contextmanager
def running_fake_google(
    world: GoogleWorld | None = None, *, audit_project: str = AUDIT_PROJECT
) -> Iterator[FakeGoogleHarness]:
    """Serve a fake Google for `world` (a fresh one if None) until the block ends."""
    fake = FakeGoogle(world or GoogleWorld())
    with LocalServer(fake.wsgi) as server:
        url = server.url
        clients = GoogleClients(
            GoogleEndpoints(url, url, url, url), audit_project=audit_project, budget=SHORT_BUDGET
        )
        yield FakeGoogleHarness(fake.world, fake.recorder, url, clients, fake)
