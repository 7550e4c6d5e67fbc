"""Shared fixtures of the integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .google_fixtures import FakeGoogleHarness, running_fake_google


@pytest.fixture
def fake_google() -> Iterator[FakeGoogleHarness]:
    """A fake Google (empty world) on a loopback port, with `GoogleClients` pointing at it."""
    with running_fake_google() as harness:
        yield harness
