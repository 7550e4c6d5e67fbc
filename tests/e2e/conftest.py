"""End-to-end fixtures: the real service over HTTP against fake GitHub and fake Google."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from jitaccess_sandbox.emulator import Emulator

NOW = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)


@pytest.fixture
def emu() -> Iterator[Emulator]:
    """A seeded emulated world with the clock at NOW; asserts no fake saw an unexpected call."""
    with Emulator(now=NOW) as world:
        yield world
        assert world.github.recorder.unexpected == []
        assert world.google.recorder.unexpected == []


def request_yaml(
    project: str = "payments-dev",
    roles: tuple[str, ...] = ("roles/cloudsql.admin",),
    duration: str = "1h",
    justification: str = "INC-1234: restore the failed replica",
) -> str:
    """The text of a request file."""
    lines = [f"project: {project}", "roles:"]
    lines += [f"  - {r}" for r in roles]
    lines += [f"duration: {duration}", f'justification: "{justification}"']
    return "\n".join(lines) + "\n"
