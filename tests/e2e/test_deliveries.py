"""What a delivery is, through the real service over HTTP: the service's own events, the token
owner's merges and reviews, an App reinstalled while the service runs, and an App installation
token misused as GITHUB_TOKEN.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from jitaccess_sandbox.emulator import BOT, SECRET, Answer, Emulator
from jitaccess_sandbox.httpserver import LocalServer
from tests.e2e.conftest import request_yaml
from webhook.adapters import github_api
from webhook.core.errors import ConfigError
from webhook.core.render import COMMENT_MARKER, refusal_marker
from webhook.service.app import create_app, sign
from webhook.service.wiring import Service

DEV = "payments-dev"
LEGACY_INSTALLATION_TOKEN = "v1." + "0123456789abcdef" * 2 + "01234567"  # no ghs_ prefix


def issue_comment(emu: Emulator, number: int, login: str, body: str) -> dict[str, Any]:
    """An `issue_comment` created payload for a comment on the PR, as GitHub sends it."""
    return emu.github.issue_comment_event(emu.repo, number, login, body)


def github_writes(emu: Emulator) -> int:
    rec = emu.github.recorder
    return rec.count("POST") + rec.count("PATCH")


# --------------------------------------------------------------------------------------------
# The token owner's events count; only the service's own records are ignored


def test_a_merge_by_the_token_owner_activates(emu: Emulator) -> None:
    number = emu.open_request("alice", request_yaml())
    assert emu.pr_event("opened", number).body["state"] == "ready"
    emu.github.merge(emu.repo, number, merged_by=BOT)
    payload = emu.pr_payload("closed", number, sender=BOT)
    assert payload["sender"]["login"] == payload["pull_request"]["merged_by"]["login"] == BOT
    answer = emu.deliver("pull_request", payload)
    assert (answer.status, answer.body["state"]) == (200, "activated"), answer.body
    assert len(emu.activations(DEV)) == 1


def test_a_change_and_a_review_by_the_token_owner_are_evaluated(emu: Emulator) -> None:
    number = emu.open_request("alice", request_yaml(project="payments-prod"))
    answer = emu.deliver("pull_request", emu.pr_payload("opened", number, sender=BOT))
    assert (answer.status, answer.body["state"]) == (200, "pending"), answer.body
    review_id = emu.github.add_review(emu.repo, number, BOT, "APPROVED")
    payload = emu.review_payload("submitted", number, review_id)
    assert payload["sender"]["login"] == BOT
    answer = emu.deliver("pull_request_review", payload)
    # evaluated (the token's account is no qualified approver), not dropped as the service's own
    assert (answer.status, answer.body["state"]) == (200, "pending"), answer.body
    assert emu.github.recorder.count("GET", rf"/pulls/{number}/reviews$") == 2


def test_the_services_own_comment_and_status_are_ignored(emu: Emulator) -> None:
    number = emu.open_request("alice", request_yaml())
    emu.pr_event("opened", number)
    [status_comment] = emu.comments(number)
    assert status_comment.startswith(COMMENT_MARKER)
    status = emu.status(number)
    assert status is not None and status["creator"]["login"] == BOT
    emu.github.recorder.calls.clear()
    emu.google.recorder.calls.clear()

    answer = emu.deliver("issue_comment", issue_comment(emu, number, BOT, status_comment))
    assert (answer.status, answer.body) == (200, {"message": "ignored: the service's own comment"})
    status_event = {
        "id": status["id"], "sha": emu.github.pull(emu.repo, number).head_sha,
        "name": emu.repo, "context": "jit-access", "state": "success",
        "description": status["description"], "repository": emu.pr_payload(
            "opened", number)["repository"], "sender": status["creator"],
    }
    answer = emu.deliver("status", status_event)
    assert (answer.status, answer.body) == (
        200, {"message": "ignored: the service's own commit status"}
    )
    assert emu.google.recorder.calls == []
    assert {f"{c.method} {c.path}" for c in emu.github.recorder.calls} <= {"GET /user"}


def test_the_token_owners_unmarked_comment_is_not_the_services(emu: Emulator) -> None:
    number = emu.open_request("alice", request_yaml())
    answer = emu.deliver("issue_comment", issue_comment(emu, number, BOT, "/jit revoke"))
    # not claimed as the service's own: it goes on to the rules for comments, where it is a
    # revocation command (on an open PR, with nothing to revoke)
    assert (answer.status, answer.body) == (
        200, {"message": f"PR #{number} is not merged; nothing to revoke"}
    )


def test_a_comment_of_the_token_owner_quoting_a_refusal_is_no_refusal(emu: Emulator) -> None:
    """With a person's token, that person's comments share the service's login; one that only
    quotes a record (the marker not first) must not count as the service's refusal."""
    number = emu.open_request("alice", request_yaml())
    assert emu.pr_event("opened", number).body["state"] == "ready"
    head = emu.github.pull(emu.repo, number).head_sha
    emu.github.add_comment(emu.repo, number, BOT, f"Last time it said:\n{refusal_marker(head)}")
    answer = emu.merge(number)
    assert answer.body["state"] == "activated", answer.body
    assert len(emu.activations(DEV)) == 1


def test_the_token_owners_comment_quoting_the_status_marker_is_left_alone(emu: Emulator) -> None:
    number = emu.open_request("alice", request_yaml())
    words = f"I will approve once this is fixed:\n> {COMMENT_MARKER} ready"
    emu.github.add_comment(emu.repo, number, BOT, words)
    assert emu.pr_event("opened", number).body["state"] == "ready"
    mine, status_comment = emu.github.comments(emu.repo, number)
    assert (mine.body, mine.history) == (words, [])  # not overwritten by the status comment
    assert status_comment.body.startswith(COMMENT_MARKER)


# --------------------------------------------------------------------------------------------
# An App installation token as GITHUB_TOKEN


def test_an_installation_token_in_github_token_stops_the_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("GITHUB_APP_ID", "GITHUB_APP_PRIVATE_KEY", "CLEANUP_TOKEN", "GAE_ENV"):
        monkeypatch.delenv(name, raising=False)
    for name, value in {
        "GITHUB_WEBHOOK_SECRET": SECRET, "GITHUB_REPOSITORY": "acme/access",
        "GITHUB_TOKEN": "ghs_" + "A1b2" * 9, "GOOGLE_CLOUD_PROJECT": "jitaccess-audit",
    }.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as raised:
        create_app()  # what `import webhook.main` runs
    message = str(raised.value)
    assert "GITHUB_TOKEN is a GitHub App installation token (ghs_…)" in message
    assert "GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY" in message
    assert "A1b2" not in message  # the token itself is not shown


@pytest.fixture
def installation_token_world(emu: Emulator) -> Iterator[tuple[Emulator, str]]:
    """A second service on the same fakes whose GITHUB_TOKEN is an installation token without
    the ghs_ prefix (as older Enterprise Servers issue them); yields the service's URL."""
    emu.github.install(emu.repo)
    token = emu.github.installation_token(emu.repo, LEGACY_INSTALLATION_TOKEN)
    settings = dataclasses.replace(emu.settings, token=token)
    service = Service.from_settings(settings, clock=emu.clock)
    server = LocalServer(create_app(settings, service=service)).start()
    try:
        yield emu, server.url
    finally:
        server.stop()
        service.lifecycle.executor.shutdown(wait=False)


def test_an_installation_token_is_named_at_warmup_and_on_deliveries(
    installation_token_world: tuple[Emulator, str], caplog: pytest.LogCaptureFixture,
) -> None:
    emu, url = installation_token_world
    caplog.set_level(logging.ERROR, logger="jitaccess")
    resp = requests.get(f"{url}/_ah/warmup", timeout=30)
    assert resp.status_code == 500
    message = resp.json()["message"]
    assert message.startswith("GITHUB_TOKEN is a GitHub App installation token")
    assert "Resource not accessible by integration" in message
    assert any("GITHUB_TOKEN is a GitHub App installation token" in r.getMessage()
               for r in caplog.records if r.levelno == logging.ERROR)
    [call] = [c for c in emu.github.recorder.calls if c.path == "/user"]
    assert call.headers["Authorization"] == f"token {LEGACY_INSTALLATION_TOKEN}"

    number = emu.open_request("alice", request_yaml())
    payload = emu.pr_payload("opened", number)
    answer = post(url, "pull_request", payload)
    assert (answer.status, answer.body["message"]) == (500, message)


def post(url: str, event: str, payload: dict[str, Any]) -> Answer:
    body = json.dumps(payload).encode()
    resp = requests.post(f"{url}/webhook", data=body, timeout=30, headers={
        "Content-Type": "application/json", "X-GitHub-Event": event,
        "X-GitHub-Delivery": "d-1", "X-Hub-Signature-256": sign(SECRET, body),
    })
    return Answer(resp.status_code, resp.json())


# --------------------------------------------------------------------------------------------
# The App reinstalled while the service runs


class AppWorld(Emulator):
    """The emulated world, with the service authenticating as a GitHub App installation."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.installation = self.github.install(self.repo)
        self.settings = dataclasses.replace(
            self.settings, token=None, app_id=self.github.app_id,
            app_private_key=self.github.app_private_key_pem,
        )
        self.app_service = Service.from_settings(self.settings, clock=self.clock)
        self._app_server = LocalServer(create_app(self.settings, service=self.app_service))
        self._app_server.start()

    @property
    def service_url(self) -> str:
        return self._app_server.url

    def close(self) -> None:
        self._app_server.stop()
        self.app_service.lifecycle.executor.shutdown(wait=False)
        super().close()

    def as_installed(self, payload: dict[str, Any], installation: int) -> dict[str, Any]:
        return {**payload, "installation": {"id": installation, "node_id": "MDIz"}}


@pytest.fixture
def app_world() -> Iterator[AppWorld]:
    # The adapter renews installation tokens by the real clock, the fake issues them by the
    # emulated one: keep both the same.
    world = AppWorld(now=datetime.now(UTC).replace(microsecond=0))
    try:
        yield world
        assert world.github.recorder.unexpected == []
        assert world.google.recorder.unexpected == []
    finally:
        world.close()


def lookups(world: AppWorld) -> int:
    return world.github.recorder.count("GET", rf"^/repos/{world.repo}/installation$")


def test_a_merge_delivered_after_the_app_was_reinstalled_activates(
    app_world: AppWorld, caplog: pytest.LogCaptureFixture,
) -> None:
    world = app_world
    caplog.set_level(logging.WARNING, logger="jitaccess")
    number = world.open_request("alice", request_yaml())
    old = world.installation
    answer = world.deliver("pull_request", world.as_installed(world.pr_payload("opened", number),
                                                              old))
    assert answer.body["state"] == "ready", answer.body
    assert lookups(world) == 1

    new = world.github.reinstall(world.repo)
    assert new != old
    world.github.merge(world.repo, number)
    answer = world.deliver("pull_request", world.as_installed(world.pr_payload("closed", number),
                                                              new))
    assert (answer.status, answer.body["state"]) == (200, "activated"), answer.body
    assert len(world.activations(DEV)) == 1
    rec = world.github.recorder
    assert lookups(world) == 2
    assert rec.count("POST", rf"^/app/installations/{new}/access_tokens$") == 1
    comments = world.github.comments(world.repo, number)
    assert [c.login for c in comments] == ["jit-access[bot]", "jit-access[bot]"]
    assert any(f"is now {new} (it was {old})" in r.getMessage() for r in caplog.records)

    # the old installation's deliveries are now the foreign ones
    answer = world.deliver("pull_request", world.as_installed(world.pr_payload("opened", number),
                                                              old))
    assert answer.body == {"message": f"ignored: installation {old} is not this service's"}


def test_a_foreign_installation_is_looked_up_again_at_most_once_a_minute_and_logged(
    app_world: AppWorld, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
) -> None:
    world = app_world
    monkeypatch.setattr(github_api, "INSTALLATION_RECHECK_SECONDS", 3600.0)
    caplog.set_level(logging.ERROR, logger="jitaccess")
    number = world.open_request("alice", request_yaml())
    other = world.installation + 100
    payload = world.as_installed(world.pr_payload("opened", number), other)
    for _ in range(3):
        answer = world.deliver("pull_request", payload)
        assert (answer.status, answer.body) == (
            200, {"message": f"ignored: installation {other} is not this service's"}
        )
    assert lookups(world) == 2  # the first lookup, then one more for the three deliveries
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 3
    assert all(f"installation {other}" in e and f"installation {world.installation}" in e
               for e in errors)
    assert world.status(number) is None and world.google.recorder.calls == []
    assert github_writes(world) == 0

    monkeypatch.setattr(github_api, "INSTALLATION_RECHECK_SECONDS", 0.0)  # "a minute later"
    world.deliver("pull_request", payload)
    assert lookups(world) == 3


def test_a_failed_lookup_keeps_the_known_installation(app_world: AppWorld) -> None:
    world = app_world
    number = world.open_request("alice", request_yaml())
    opened = world.pr_payload("opened", number)
    assert world.deliver("pull_request", world.as_installed(opened, world.installation)).status \
        == 200
    world.github.recorder.fail("GET", r"/installation$", 502, times=-1)
    answer = world.deliver("pull_request", world.as_installed(opened, world.installation + 1))
    assert answer.status == 502 and "GitHub" in answer.body["message"]
    world.github.recorder.faults.clear()
    answer = world.deliver("pull_request", world.as_installed(opened, world.installation))
    assert (answer.status, answer.body["state"]) == (200, "ready"), answer.body
