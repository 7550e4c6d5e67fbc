"""The `jit-access` verdict as a commit status: what the service publishes with a token.

With GitHub App credentials the verdict is a check run (`adapters.github_checks.CheckRuns`);
with a token (which cannot create check runs) it stays a commit status, set through the GitHub
port. Both answer the same `VerdictPort`, so the lifecycle publishes without knowing which.
"""

from __future__ import annotations

from webhook.core.checks import UNREAD, Unread
from webhook.core.merge import StatusUpdate
from webhook.core.model import CommitStatus
from webhook.core.names import STATUS_CONTEXT
from webhook.core.ports import GitHubPort, PublishedVerdict


class StatusVerdicts:
    """Verdicts as `jit-access` commit statuses (the summary and annotations are not shown)."""

    def __init__(self, github: GitHubPort) -> None:
        self.github = github

    def current(self, sha: str) -> PublishedVerdict | None:
        """The commit's current `jit-access` status (1 call)."""
        return self.github.commit_status(sha, STATUS_CONTEXT)

    def publish(
        self, sha: str, update: StatusUpdate, *,
        current: PublishedVerdict | None | Unread = UNREAD, fresh: bool = False,
        pr: int | None = None,
    ) -> bool:
        """Set the status unless it is already exactly that (GitHub keeps at most 1,000
        statuses per commit and context); `fresh` and `pr` mean nothing for statuses."""
        if isinstance(current, Unread):
            return self.github.set_status(
                sha, update.state, update.description, STATUS_CONTEXT, update.target_url
            )
        return self.github.set_status(
            sha, update.state, update.description, STATUS_CONTEXT, update.target_url,
            current=current if isinstance(current, CommitStatus) else None,
        )
