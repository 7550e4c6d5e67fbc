"""A lifecycle wired to in-memory ports, and helpers to shape its world (no HTTP)."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest

from tests.lifecycle.memory import (
    FrozenClock,
    MemoryActivator,
    MemoryAudit,
    MemoryEligibility,
    MemoryGitHub,
)
from webhook.core.model import ChangedFile, PullInfo, Review, ReviewState, RoleEligibility
from webhook.service.lifecycle import Lifecycle

NOW = datetime(2040, 1, 1, 12, 0, tzinfo=UTC)
REPO = "acme/access"
PROJECT = "payments-prod"
SQL = "roles/cloudsql.admin"
LOGS = "roles/logging.viewer"
JUSTIFICATION = "INC-1234: restore the failed replica"

POLICY = b"""\
scope: organizations/123456789012
activation:
  max_delay: 1h
approval:
  required: 1
  request_reviewers: 2
"""
IDENTITIES = b"""\
alice: alice@example.com
bob: bob@example.com
carol: carol@example.com
dave: dave@example.com
"""
MP = RoleEligibility(multi_party=True)
SELF = RoleEligibility(self_approval=True)
GRANTS = {
    "alice@example.com": {SQL: MP, LOGS: SELF},
    "bob@example.com": {SQL: MP},
    "carol@example.com": {SQL: MP},
    "dave@example.com": {SQL: MP},
}


def request_yaml(roles: tuple[str, ...] = (SQL,), duration: str = "1h") -> bytes:
    lines = [f"project: {PROJECT}", "roles:", *[f"  - {r}" for r in roles],
             f"duration: {duration}", f'justification: "{JUSTIFICATION}"']
    return ("\n".join(lines) + "\n").encode()


@dataclass
class World:
    """The lifecycle and the four in-memory ports it runs against."""

    github: MemoryGitHub
    eligibility: MemoryEligibility
    activator: MemoryActivator
    audit: MemoryAudit
    clock: FrozenClock
    lifecycle: Lifecycle
    _next: int = 1

    def open_request(
        self,
        author: str = "alice",
        roles: tuple[str, ...] = (SQL,),
        *,
        text: bytes | None = None,
        directory: str | None = None,
        duration: str = "1h",
    ) -> int:
        """A request PR adding `requests/<directory or author>/req.yaml` at a fresh head."""
        number = self._next
        self._next += 1
        head = f"{number:02d}" + "ab" * 19
        path = f"requests/{directory or author}/req.yaml"
        self.github.pulls[number] = PullInfo(
            number=number, author=author, head_sha=head, base_ref="main", state="open",
            merged=False, merged_at=None, html_url=f"https://github.com/{REPO}/pull/{number}",
            title="access", default_branch="main",
        )
        self.github.changed[number] = (ChangedFile(path, "added"),)
        self.github.commit_files[(head, path)] = (
            text if text is not None else request_yaml(roles, duration)
        )
        return number

    def head(self, number: int) -> str:
        return self.github.pulls[number].head_sha

    def review(self, number: int, login: str, state: ReviewState = ReviewState.APPROVED) -> None:
        """`login` reviews the PR's head now."""
        reviews = self.github.review_list.setdefault(number, [])
        reviews.append(Review(len(reviews) + 1, login, state, self.head(number), self.clock.now))

    def merge(self, number: int, at: datetime | None = None) -> None:
        """GitHub merges the PR (at `at`, default now)."""
        self.github.pulls[number] = replace(
            self.github.pulls[number], state="closed", merged=True,
            merged_at=at or self.clock.now,
        )

    def advance(self, delta: timedelta) -> None:
        self.clock.now += delta


@pytest.fixture
def world() -> Iterator[World]:
    github = MemoryGitHub()
    github.default_files = {
        "policy/jitaccess.yaml": POLICY, "policy/identities.yaml": IDENTITIES,
    }
    eligibility = MemoryEligibility(GRANTS)
    activator, audit, clock = MemoryActivator(), MemoryAudit(), FrozenClock(NOW)
    executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="jit-test")
    lifecycle = Lifecycle(
        repository=REPO, github=github, eligibility=eligibility, activator=activator,
        audit=audit, clock=clock, executor=executor,
    )
    yield World(github, eligibility, activator, audit, clock, lifecycle)
    executor.shutdown(wait=True)
