"""An emulated world: fake GitHub and fake Google on loopback, and the real service in front.

Used by `jitaccess sandbox`, the end-to-end tests and the benchmarks. Everything crosses real
HTTP: the service talks to the fakes through PyGithub and the Google client libraries, and
deliveries reach the service as signed POSTs, exactly as GitHub sends them.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from jitaccess_sandbox.fake_github import FakeCheckRun, FakeGitHub, FakeMergeGroup
from jitaccess_sandbox.fake_google import FakeGoogle
from jitaccess_sandbox.httpserver import LocalServer
from jitaccess_sandbox.world import GoogleWorld
from webhook.core.budget import PRODUCTION, Budget
from webhook.core.conditions import ACTIVATION_TITLE
from webhook.core.names import IDENTITIES_PATH, POLICY_PATH, STATUS_CONTEXT
from webhook.service.app import create_app, sign
from webhook.service.config import GoogleEndpoints, Settings
from webhook.service.wiring import Service

REPO = "acme/access"
ORG = "organizations/123456789012"
PROD_FOLDER = "folders/200000000001"
AUDIT_PROJECT = "jitaccess-audit"
SECRET = "sandbox-webhook-secret-0123456789"
TOKEN = "ghp_sandboxtoken0123456789"
BOT = "jit-access-bot"
SELF = "has({}.jitAccessConstraint)"
MULTI = "has({}.multiPartyApprovalConstraint)"

#: The emulated service's time budget. On loopback a healthy call takes milliseconds, so what a
#: test waits to run out is short: a timeout test hangs a call for 1.5 s rather than 4, and a
#: persistent 503 is given up after 1 s of retries rather than 6. What a healthy run needs time
#: for stays as in production: the conflict deadline (concurrent writers retry until it), the
#: turn wait (a burst of merges on one project), GitHub's timeout (latency spikes), the Policy
#: Analyzer's timeout.
SHORT_BUDGET = replace(
    PRODUCTION,
    call_timeout=1.5,
    retry_deadline=1.0,
    backoff_initial=0.02,
    backoff_max=0.2,
    identity_backoff=0.05,
)

POLICY_YAML = """\
scope: organizations/123456789012
activation:
  min_duration: 5m
  max_duration: 4h
  max_roles: 5
  max_delay: 1h
justification:
  pattern: '(INC|CHG)-[0-9]+: .+'
  hint: 'an incident or change number, e.g. "INC-1234: restore the replica"'
eligibility:
  source: asset-inventory
  nested_groups: false
approval:
  required: 1
  max_age: 24h
  request_reviewers: 3
"""

IDENTITIES_YAML = """\
alice: alice@example.com
bob: bob@example.com
carol: carol@example.com
dave: dave@example.com
"""


@dataclass(frozen=True)
class Answer:
    """The service's answer to one delivery."""

    status: int
    body: dict[str, Any]


class Emulator:
    """Fake GitHub + fake Google + the real webhook service, all on 127.0.0.1."""

    def __init__(
        self,
        *,
        now: datetime | None = None,
        seed: bool = True,
        policy_yaml: str = POLICY_YAML,
        identities_yaml: str = IDENTITIES_YAML,
        port: int = 0,
        repo: str = REPO,
        budget: Budget = SHORT_BUDGET,
        default_branch: str = "main",
        app: bool = False,
    ) -> None:
        """`app`: the service authenticates as the fake's GitHub App, installed on the
        repository (its verdicts are then check runs), instead of with a token."""
        self.repo = repo
        self._now = (now or datetime.now(UTC)).replace(microsecond=0)
        self._clock_lock = threading.Lock()
        self.github = FakeGitHub(clock=self.clock)
        self.google = FakeGoogle(GoogleWorld(organization=ORG, clock=self.clock))
        self.world = self.google.world
        self._gh_server = LocalServer(self.github).start()
        self._g_server = LocalServer(self.google.wsgi).start()
        self.github.add_repo(self.repo, default_branch=default_branch)
        self.github.add_token(TOKEN, BOT)
        for login in ("alice", "bob", "carol", "dave"):
            self.github.add_user(login)  # collaborators: reviews can be requested from them
        self.github.put_file(self.repo, POLICY_PATH, policy_yaml)
        self.github.put_file(self.repo, IDENTITIES_PATH, identities_yaml)
        google_url = self._g_server.url
        self.installation: int | None = None
        if app:
            self.installation = self.github.install(self.repo)
            # The adapter renews installation tokens by the real clock and the fake issues them
            # by the emulated one: a token that outlives both keeps them from disagreeing.
            self.github.token_ttl = timedelta(days=3650)
        self.settings = Settings(
            webhook_secret=SECRET,
            repository=self.repo,
            google_project=AUDIT_PROJECT,
            token=None if app else TOKEN,
            app_id=self.github.app_id if app else None,
            app_private_key=self.github.app_private_key_pem if app else None,
            api_url=self.github.api_url(self._gh_server.url),
            endpoints=GoogleEndpoints(google_url, google_url, google_url, google_url),
            budget=budget,
        )
        self.service = Service.from_settings(self.settings, clock=self.clock)
        self.app = create_app(self.settings, service=self.service)
        self._app_server = LocalServer(self.app, port=port).start()
        if seed:
            self.seed_google()

    # -- time ------------------------------------------------------------------------------------

    def clock(self) -> datetime:
        """The emulated now (shared by the service and fake GitHub)."""
        with self._clock_lock:
            return self._now

    def advance(self, delta: timedelta) -> datetime:
        """Move the emulated clock forward."""
        with self._clock_lock:
            self._now += delta
            return self._now

    # -- endpoints -------------------------------------------------------------------------------

    @property
    def service_url(self) -> str:
        """Base URL of the webhook service."""
        return self._app_server.url

    @property
    def github_url(self) -> str:
        """Base URL of the fake GitHub API."""
        return self.github.api_url(self._gh_server.url)

    @property
    def google_url(self) -> str:
        """Base URL of the fake Google APIs."""
        return self._g_server.url

    def close(self) -> None:
        """Stop the three servers."""
        for server in (self._app_server, self._gh_server, self._g_server):
            server.stop()
        self.service.lifecycle.executor.shutdown(wait=False)

    def __enter__(self) -> Emulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the standard Google world ---------------------------------------------------------------

    def seed_google(self) -> None:
        """An organization with a prod folder, two projects, groups and eligible bindings.

        - payments-dev: group developers@ (alice, bob, dave) may self-activate cloudsql.admin.
        - payments-prod (in the prod folder): alice may activate cloudsql.admin with approval;
          group sre@ (bob, carol) on the prod folder too, so they are qualified reviewers.
        """
        w = self.world
        w.add_folder(PROD_FOLDER, ORG)
        w.add_project("payments-dev", ORG)
        w.add_project("payments-prod", PROD_FOLDER)
        w.add_project(AUDIT_PROJECT, ORG)
        w.add_group("developers@example.com", ["alice@example.com", "bob@example.com",
                                               "dave@example.com"])
        w.add_group("sre@example.com", ["bob@example.com", "carol@example.com"])
        w.add_binding("projects/payments-dev", "roles/cloudsql.admin",
                      "group:developers@example.com", SELF, title="Eligible for JIT access")
        w.add_binding("projects/payments-prod", "roles/cloudsql.admin", "user:alice@example.com",
                      MULTI, title="Eligible with approval")
        w.add_binding(PROD_FOLDER, "roles/cloudsql.admin", "group:sre@example.com", MULTI,
                      title="SRE approvers")

    # -- GitHub actions and the deliveries they cause ---------------------------------------------

    def open_request(
        self, author: str, text: str, *, name: str = "request.yaml", **extra: Any
    ) -> int:
        """Open a PR adding `requests/<author>/<name>`; returns its number (no delivery sent)."""
        return self.github.open_pr(self.repo, author, {f"requests/{author}/{name}": text}, **extra)

    def pr_payload(self, action: str, number: int, sender: str | None = None) -> dict[str, Any]:
        """A `pull_request` webhook payload for the PR as it is now."""
        return self.github.pull_request_event(self.repo, number, action, sender=sender)

    def review_payload(self, action: str, number: int, review_id: int) -> dict[str, Any]:
        """A `pull_request_review` webhook payload (state lower-case, as webhooks send it)."""
        return self.github.pull_request_review_event(self.repo, number, review_id, action)

    def deliver(
        self,
        event: str,
        payload: Mapping[str, Any] | bytes,
        *,
        delivery_id: str | None = None,
        signature: str | None = None,
        secret: str | None = None,
    ) -> Answer:
        """POST a delivery to the service, signed as GitHub signs it (unless overridden)."""
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "GitHub-Hookshot/sandbox",
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery_id or str(uuid.uuid4()),
            "X-GitHub-Hook-ID": "1",
        }
        sig = signature if signature is not None else sign(secret or SECRET, body)
        if sig:
            headers["X-Hub-Signature-256"] = sig
        # No shared Session: tests deliver from several threads at once.
        resp = requests.post(f"{self.service_url}/webhook", data=body, headers=headers,
                                 timeout=30)
        try:
            data = resp.json()
        except ValueError:
            data = {"raw": resp.text}
        return Answer(resp.status_code, data if isinstance(data, dict) else {"value": data})

    def pr_event(self, action: str, number: int, **kw: Any) -> Answer:
        """Deliver `pull_request` with `action` for a PR."""
        return self.deliver("pull_request", self.pr_payload(action, number), **kw)

    def review(
        self, number: int, login: str, state: str = "APPROVED", **kw: Any
    ) -> tuple[int, Answer]:
        """Submit a review on GitHub and deliver its `pull_request_review` event."""
        review_id = self.github.add_review(self.repo, number, login, state, **kw)
        return review_id, self.deliver(
            "pull_request_review", self.review_payload("submitted", number, review_id)
        )

    def merge(self, number: int, **kw: Any) -> Answer:
        """Merge the PR on GitHub and deliver `pull_request` closed (merged)."""
        self.github.merge(self.repo, number, merged_at=kw.pop("merged_at", None), merged_by=BOT)
        return self.deliver("pull_request", self.pr_payload("closed", number), **kw)

    def comment(self, number: int, login: str, body: str, **kw: Any) -> tuple[int, Answer]:
        """Post a comment on GitHub as `login` and deliver its `issue_comment` created event."""
        comment_id = self.github.add_comment(self.repo, number, login, body)
        return comment_id, self.deliver(
            "issue_comment",
            self.github.issue_comment_event(self.repo, number, login, body,
                                            comment_id=comment_id),
            **kw,
        )

    # -- reading back ----------------------------------------------------------------------------

    def status(self, number: int) -> dict[str, Any] | None:
        """The latest `jit-access` commit status on the PR's head."""
        pr = self.github.pull(self.repo, number)
        return self.github.latest_status(self.repo, pr.head_sha)

    def check_run(self, number: int) -> FakeCheckRun | None:
        """The newest `jit-access` check run on the PR's head."""
        pr = self.github.pull(self.repo, number)
        return self.github.latest_check_run(self.repo, pr.head_sha)

    def check_runs(self, number: int) -> list[FakeCheckRun]:
        """Every `jit-access` check run on the PR's head, oldest first."""
        pr = self.github.pull(self.repo, number)
        return self.github.check_runs(self.repo, pr.head_sha, STATUS_CONTEXT)

    def rerun(self, number: int, **kw: Any) -> Answer:
        """Choose Re-run on the `jit-access` check of the PR's head: `check_run` rerequested."""
        run = self.check_run(number)
        if run is None:
            raise LookupError(f"no jit-access check run on the head of #{number}")
        return self.deliver("check_run", self.github.check_run_event(self.repo, run.id), **kw)

    def queue(self, *numbers: int, **kw: Any) -> tuple[FakeMergeGroup, Answer]:
        """Queue PRs in the merge queue: GitHub builds a merge group and delivers
        `merge_group` checks_requested."""
        group = self.github.queue(self.repo, numbers)
        return group, self.deliver("merge_group", self.github.merge_group_event(group), **kw)

    def comments(self, number: int) -> list[str]:
        """Bodies of the PR's comments, oldest first."""
        return [c.body for c in self.github.comments(self.repo, number)]

    def activations(self, project: str) -> list[dict[str, Any]]:
        """Bindings on a project whose condition title is `JIT access activation`."""
        return [
            b for b in self.world.bindings(f"projects/{project}")
            if (b.get("condition") or {}).get("title") == ACTIVATION_TITLE
        ]

    def audit(self) -> list[dict[str, Any]]:
        """Entries written to the `jitaccess` log."""
        return self.world.logs("jitaccess")
