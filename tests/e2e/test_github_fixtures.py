"""Real GitHub webhook payloads (shared/fixtures/github-webhooks), delivered signed and unmodified.

Each payload goes to an emulated world serving the payload's own repository. When the payload
names a pull request, the fake GitHub holds a pull request with that number adding a valid
request by the payload's PR author (mapped to an identity eligible for self-approval), so the
service's re-reading of facts from GitHub succeeds and the outcome can be checked exactly.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from jitaccess_sandbox.emulator import IDENTITIES_YAML, REPO, SELF, Emulator
from tests.e2e.conftest import NOW, request_yaml
from tests.shared_fixtures import shared_fixtures

#: Beside the project root; missing, it fails the run in CI and skips this module elsewhere.
FIXTURES = shared_fixtures("github-webhooks")
PAYLOADS = sorted(FIXTURES.glob("*.json"))
IGNORED_ON_PURPOSE = {
    # with a token there are no check runs to re-run
    "check_run.rerequested.json": (
        "ignored: check_run/rerequested (the service publishes commit statuses, not check "
        "runs, without GitHub App credentials)"
    ),
    "issue_comment.created.on-issue.json": "ignored: no command for the service",
    "issue_comment.created.on-pull-request.json": "ignored: no command for the service",
    # an App installation event names no repository: not for the repository served
    "installation.created.json": f"ignored: not for {REPO}",
    "pull_request.closed.unmerged.json": "PR #2 closed without merge; nothing to do",
    # a comment review never decides, so it is not evaluated
    "pull_request_review.submitted.commented.json": (
        "PR #2: review comment or edit; nothing to do"
    ),
}
#: Payloads that make the service evaluate the (fake's) PR and publish its decision.
EVALUATED = {
    "pull_request.opened.json",
    "pull_request.opened.with-organization.json",
    "pull_request.reopened.json",
    "pull_request.synchronize.json",
    "pull_request_review.dismissed.json",
    "pull_request_review.submitted.approved.json",
}


def event_of(path: Path) -> str:
    """`X-GitHub-Event` from the file name (`<event>.<action>[.variant].json`)."""
    return path.name.split(".", 1)[0]


def recorded_headers(path: Path) -> dict[str, str]:
    """The delivery headers captured with a payload (`<name>.headers.txt`), lower-case keys."""
    headers_file = path.with_name(path.name.removesuffix(".json") + ".headers.txt")
    if not headers_file.exists():
        return {}
    headers: dict[str, str] = {}
    for line in headers_file.read_text().splitlines():
        key, _, value = line.partition("\t")
        if key.strip():
            headers[key.strip().lower()] = value.strip()
    return headers


@contextmanager
def world_for(payload: dict[str, Any]) -> Iterator[tuple[Emulator, int | None]]:
    """A world serving the payload's repository; its PR (if any) is a request in the fake."""
    repo = (payload.get("repository") or {}).get("full_name") or REPO
    pr = payload.get("pull_request")
    author = pr["user"]["login"] if isinstance(pr, dict) else None
    ids = IDENTITIES_YAML + (f"{author}: {author.lower()}@example.com\n" if author else "")
    # The repository's default branch as the payload names it: a merge is judged against it.
    default = (payload.get("repository") or {}).get("default_branch") or "main"
    with Emulator(now=NOW, repo=repo, identities_yaml=ids, default_branch=default) as emu:
        number: int | None = None
        if isinstance(pr, dict):
            assert isinstance(author, str)
            emu.world.add_binding("projects/payments-dev", "roles/cloudsql.admin",
                                  f"user:{author.lower()}@example.com", SELF)
            while True:
                number = emu.open_request(author, request_yaml())
                if number >= pr["number"]:
                    break
                emu.github.close(repo, number)
            assert number == pr["number"]
            if pr.get("merged") is True:
                emu.github.merge(repo, number)
            elif pr.get("state") == "closed":
                emu.github.close(repo, number)
        yield emu, number
        assert emu.github.recorder.unexpected == []
        assert emu.google.recorder.unexpected == []


@pytest.mark.parametrize("path", PAYLOADS, ids=[p.name for p in PAYLOADS])
def test_real_payload_is_accepted(path: Path) -> None:
    raw = path.read_bytes()
    payload = json.loads(raw)
    headers = recorded_headers(path)
    event = headers.get("x-github-event", event_of(path))
    delivery_id = headers.get("x-github-delivery")
    with world_for(payload) as (emu, number):
        answer = emu.deliver(event, raw, delivery_id=delivery_id)  # the bytes as GitHub sent them
        assert answer.status == 200, answer.body

        if path.name in IGNORED_ON_PURPOSE:
            assert answer.body == {"message": IGNORED_ON_PURPOSE[path.name]}
            assert emu.google.recorder.calls == []
            assert emu.github.recorder.count("POST") == emu.github.recorder.count("PATCH") == 0
            assert emu.audit() == []
        elif path.name in EVALUATED:
            assert number is not None
            assert answer.body == {"message": f"PR #{number}: ready", "state": "ready"}
            status = emu.status(number)
            assert status is not None
            assert (status["state"], status["description"]) == (
                "success", "Ready: self-approval for 1 role"
            )
            assert len(emu.comments(number)) == 1
        elif path.name == "pull_request.closed.merged.json":
            assert number == 3
            assert answer.body["state"] == "activated"
            [binding] = emu.activations("payments-dev")
            assert binding["members"] == ["user:byao1276@example.com"]
            assert binding["condition"]["description"].endswith(
                f"({payload['repository']['full_name']}#3)"
            )
            [entry] = emu.audit()
            assert entry["labels"]["event"] == "gitops.activateRole"
            # the recorded delivery's id travels into the audit entry
            assert entry["labels"]["delivery_id"] == "884a8280-101a-11ea-9c80-7ce4e70c2e4e"


def test_every_payload_named_here_is_there() -> None:
    # A partial copy of the fixtures would silently test less.
    expected = set(IGNORED_ON_PURPOSE) | EVALUATED | {"pull_request.closed.merged.json"}
    assert expected <= {p.name for p in PAYLOADS}


def test_headers_file_names_the_event() -> None:
    headers = recorded_headers(FIXTURES / "pull_request.closed.merged.json")
    assert headers["x-github-event"] == "pull_request"
    assert headers["x-github-delivery"] == "884a8280-101a-11ea-9c80-7ce4e70c2e4e"
