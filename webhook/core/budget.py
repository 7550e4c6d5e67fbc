"""The time budget: how long the service may wait on GitHub and Google, and how often it retries.

GitHub waits 10 s for a webhook response and never redelivers on its own, so every wait of a
delivery is bounded. The defaults are the production budget; the emulator and the tests use a
shorter one, so that a test of a timeout or of an exhausted retry waits fractions of a second
rather than production seconds. The values are set in code (`Settings.budget`), not read from the
environment: they are tuned together, and a wrong one would break the 10 s budget silently.
"""

from __future__ import annotations

import random as _random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Budget:
    """Timeouts, retry deadlines, backoffs and attempt counts of one service configuration."""

    #: Seconds one Google call may take before it is abandoned (not retried: another full
    #: timeout would break the webhook's 10 s).
    call_timeout: float = 4.0
    #: Seconds a Google call may spend retrying transient errors (429, 500, 502, 503, 504).
    retry_deadline: float = 6.0
    #: First pause before a retry, and the longest one, in seconds (transient errors and IAM
    #: conflicts both back off exponentially between these).
    backoff_initial: float = 0.1
    backoff_max: float = 1.0
    #: Seconds an IAM policy change keeps retrying concurrent changes (409 / 412), counted from
    #: the start of the change (waiting for its turn included); never fewer than 5 attempts.
    conflict_deadline: float = 5.0
    #: Seconds an IAM policy change may wait for this process's other changes of the same
    #: project's policy. With the conflict deadline this keeps an activation within 10 s.
    turn_wait: float = 6.0
    #: Seconds one Policy Analyzer query may take (it expands groups; one query, no retry).
    analyzer_timeout: float = 7.0
    #: Attempts per Cloud Identity call (transient errors only), and the first pause between
    #: them in seconds (doubling, and never more than a share of the retry deadline).
    identity_attempts: int = 3
    identity_backoff: float = 0.2
    #: Seconds one GitHub request may take (PyGithub wants whole seconds).
    github_timeout: int = 4
    #: Seconds one Secret Manager access may take (connect and read), the attempts for
    #: transient answers and dropped connections, and the pause between them. The service
    #: refuses to start without its secrets: failing fast and letting App Engine restart the
    #: instance beats hanging.
    secret_timeout: float = 5.0
    secret_attempts: int = 2
    secret_pause: float = 0.2
    #: Seconds after which a cleanup run starts no more projects (the search included). App
    #: Engine ends a request after 10 minutes; the rest is for the projects in flight and the
    #: answer. What is left is cleaned by the next run.
    cleanup_deadline: float = 420.0


#: The production budget.
PRODUCTION = Budget()


def retry_bounded(
    attempt: Callable[[int], T],
    *,
    retry_if: Callable[[Exception], bool],
    attempts: int,
    pause: Callable[[int, Exception], float],
    deadline: float | None = None,
    at_least: int = 1,
    started: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """Call `attempt(1)`, `attempt(2)`, ... until one returns; the bounded retry of every loop.

    Only errors `retry_if` accepts are retried, and `pause(n, error)` seconds are slept after
    the failed attempt `n`. The last error is raised as it is after `attempts` attempts, or
    once `deadline` seconds have passed since `started` (default: the first attempt) and at
    least `at_least` attempts were made. Any other error is raised at once.
    """
    began = clock() if started is None else started
    total = max(1, attempts)
    for n in range(1, total + 1):
        try:
            return attempt(n)
        except Exception as error:
            if not retry_if(error) or n == total:
                raise
            if deadline is not None and n >= at_least and clock() - began >= deadline:
                raise
            sleep(pause(n, error))
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


def jittered_backoff(
    budget: Budget, random: Callable[[], float] = _random.random
) -> Callable[[int, Exception], float]:
    """Equal-jitter exponential backoff for `retry_bounded`: half fixed, half random, capped.

    After attempt `n` the ceiling is `backoff_initial * 2**(n-1)`, at most `backoff_max`.
    """

    def pause(n: int, _error: Exception) -> float:
        ceiling = min(budget.backoff_max, budget.backoff_initial * float(2 ** (n - 1)))
        return ceiling / 2 + random() * ceiling / 2

    return pause
