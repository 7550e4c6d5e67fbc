"""The time budget, the one bounded retry loop, and the wiring that hands the budget out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from webhook.core.budget import PRODUCTION, Budget, jittered_backoff, retry_bounded
from webhook.service.config import Settings
from webhook.service.wiring import Service, github_repo

SECRET = "x" * 32


class Flaky(Exception):
    """An error worth another attempt."""


class Fatal(Exception):
    """An error not worth another attempt."""


class Clock:
    """A monotonic clock that advances only when told (or when the code under test sleeps)."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def failing(
    times: int, error: type[Exception] = Flaky, clock: Clock | None = None, cost: float = 0.0
) -> tuple[list[int], Callable[[int], int]]:
    """An attempt that fails `times` times (each taking `cost` seconds), then answers its number."""
    seen: list[int] = []

    def attempt(n: int) -> int:
        seen.append(n)
        if clock is not None:
            clock.now += cost
        if len(seen) <= times:
            raise error(n)
        return n

    return seen, attempt


def run(attempt: Callable[[int], int], clock: Clock, **kw: Any) -> int:
    kw.setdefault("retry_if", lambda e: isinstance(e, Flaky))
    kw.setdefault("attempts", 3)
    kw.setdefault("pause", lambda n, e: 0.5 * n)
    return retry_bounded(attempt, sleep=clock.sleep, clock=clock, **kw)


# -- the budget --------------------------------------------------------------------------------


def test_the_production_budget_is_the_one_the_settings_carry_by_default() -> None:
    settings = Settings(webhook_secret=SECRET, repository="acme/access", google_project="audit-1")
    assert settings.budget is PRODUCTION
    assert PRODUCTION == Budget(
        call_timeout=4.0, retry_deadline=6.0, backoff_initial=0.1, backoff_max=1.0,
        conflict_deadline=5.0, turn_wait=6.0, analyzer_timeout=7.0,
        identity_attempts=3, identity_backoff=0.2, github_timeout=4, secret_timeout=5.0,
        secret_attempts=2, secret_pause=0.2,
    )


def test_from_env_keeps_the_production_budget() -> None:
    env = {"GITHUB_WEBHOOK_SECRET": SECRET, "GITHUB_REPOSITORY": "acme/access",
           "GITHUB_TOKEN": "ghp_x", "GOOGLE_CLOUD_PROJECT": "audit-1"}
    assert Settings.from_env(env).budget == PRODUCTION


def test_wiring_gives_every_adapter_the_settings_budget() -> None:
    budget = replace(PRODUCTION, call_timeout=1.25, retry_deadline=0.75, github_timeout=2)
    settings = Settings(webhook_secret=SECRET, repository="acme/access",
                        google_project="audit-1", token="ghp_x", budget=budget)
    service = Service.from_settings(settings)
    adapters = service.google_side.adapters()  # builds the adapters; no call is made yet
    assert adapters.clients.budget is budget
    for adapter in (adapters.eligibility, adapters.activator, adapters.audit, adapters.cleaner):
        assert adapter._budget is budget, type(adapter).__name__
    assert service.github.settings.timeout == 2
    assert github_repo(settings).settings.timeout == 2


# -- retry_bounded -----------------------------------------------------------------------------


def test_a_first_success_is_not_retried() -> None:
    clock = Clock()
    seen, attempt = failing(0)
    assert run(attempt, clock) == 1
    assert seen == [1] and clock.slept == []


def test_retryable_errors_are_retried_with_the_pause_after_each_attempt() -> None:
    clock = Clock()
    seen, attempt = failing(2)
    assert run(attempt, clock) == 3
    assert seen == [1, 2, 3]
    assert clock.slept == [0.5, 1.0]


def test_the_last_error_is_raised_after_the_last_attempt_without_a_pause() -> None:
    clock = Clock()
    seen, attempt = failing(5)
    with pytest.raises(Flaky, match="^3$"):
        run(attempt, clock)
    assert seen == [1, 2, 3]
    assert clock.slept == [0.5, 1.0]


def test_other_errors_are_raised_at_once() -> None:
    clock = Clock()
    seen, attempt = failing(5, Fatal)
    with pytest.raises(Fatal):
        run(attempt, clock)
    assert seen == [1] and clock.slept == []


def test_the_deadline_stops_retries_but_not_before_the_minimum_attempts() -> None:
    clock = Clock()
    seen, attempt = failing(10, clock=clock, cost=2.0)
    with pytest.raises(Flaky, match="^5$"):
        run(attempt, clock, attempts=6, at_least=5, deadline=1.0, pause=lambda n, e: 0.0)
    # The deadline passed during the first attempt; five attempts were made all the same.
    assert seen == [1, 2, 3, 4, 5]


def test_the_deadline_counts_from_the_given_start() -> None:
    clock = Clock()
    seen, attempt = failing(10, clock=clock, cost=0.1)
    with pytest.raises(Flaky, match="^1$"):
        # Started (e.g. waiting for a turn) long before the first attempt.
        run(attempt, clock, attempts=6, deadline=1.0, started=clock.now - 5.0)
    assert seen == [1]


def test_at_least_one_attempt_is_made() -> None:
    clock = Clock()
    seen, attempt = failing(0)
    assert run(attempt, clock, attempts=0) == 1


def test_jittered_backoff_is_half_fixed_half_random_and_capped() -> None:
    budget = replace(PRODUCTION, backoff_initial=0.1, backoff_max=1.0)
    low = jittered_backoff(budget, lambda: 0.0)
    high = jittered_backoff(budget, lambda: 1.0)
    error = Flaky()
    assert [low(n, error) for n in range(1, 7)] == pytest.approx([0.05, 0.1, 0.2, 0.4, 0.5, 0.5])
    assert [high(n, error) for n in range(1, 7)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])
