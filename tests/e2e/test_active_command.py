"""`jitaccess active` and `jitaccess cleanup`'s listing, run as an operator runs them, against the
emulator (the commands use the real clock, so the emulated world is set an hour in the past)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import google.auth
import pytest
from google.auth.exceptions import DefaultCredentialsError

from jitaccess_sandbox.emulator import AUDIT_PROJECT, POLICY_YAML, SECRET, TOKEN, Emulator
from tests.e2e.conftest import request_yaml
from webhook.cli import main
from webhook.core.conditions import ACTIVATION_TITLE
from webhook.core.durations import utc_timestamp
from webhook.service.config import VARIABLES

DEV = "payments-dev"
PROD = "payments-prod"
ROLE = "roles/cloudsql.admin"
ENDPOINTS = ("RESOURCE_MANAGER_ENDPOINT", "CLOUD_ASSET_ENDPOINT", "CLOUD_LOGGING_ENDPOINT",
             "CLOUD_IDENTITY_ENDPOINT")


@pytest.fixture
def past() -> Iterator[Emulator]:
    """An emulated world whose clock is an hour behind the real one."""
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    with Emulator(now=start) as world:
        yield world
        assert world.github.recorder.unexpected == []
        assert world.google.recorder.unexpected == []


@pytest.fixture
def operator_env(
    past: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Path:
    """The operator's environment for the emulator; returns the local policy file."""
    for name in (*VARIABLES, "GAE_ENV"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GITHUB_REPOSITORY", past.repo)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", AUDIT_PROJECT)
    for name in ENDPOINTS:
        monkeypatch.setenv(name, past.google_url)
    policy = tmp_path / "jitaccess.yaml"
    policy.write_text(POLICY_YAML)
    return policy


def window(start: datetime, end: datetime) -> str:
    return (f'(request.time >= timestamp("{utc_timestamp(start)}") && '
            f'request.time < timestamp("{utc_timestamp(end)}"))')


def world_for_listing(emu: Emulator) -> tuple[int, datetime]:
    """alice's audited 2 h activation (started an hour ago), a hand-made orphan on prod and a
    jit-access activation on dev; returns the PR and the real now the world was built for."""
    number = emu.open_request("alice", request_yaml(duration="2h"))
    assert emu.pr_event("opened", number).body["state"] == "ready"
    assert emu.merge(number).body["state"] == "activated"
    start = emu.clock()
    emu.world.add_binding(
        f"projects/{PROD}", ROLE, "user:mallory@example.com",
        window(start, start + timedelta(hours=3)), title=ACTIVATION_TITLE,
        description=f"Approved by bob@example.com, justification: x ({emu.repo}#99)",
    )
    emu.world.add_binding(
        f"projects/{DEV}", ROLE, "user:dave@example.com",
        window(start, start + timedelta(hours=4)), title=ACTIVATION_TITLE,
        description="Self-approved, justification: via jit-access",
    )
    return number, start + timedelta(hours=1)


def test_active_lists_live_activations_and_their_audit(
    past: Emulator, operator_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    number, _ = world_for_listing(past)
    reads = past.google.recorder.count("POST", "/v2/entries:list")
    writes = past.google.recorder.count("POST", "/v2/entries:write")
    assert main(["active", "--policy", str(operator_env)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4, lines
    alice, mallory, dave, total = lines
    assert alice.startswith(f"alice@example.com  {ROLE}  {DEV}  until ")
    assert re.search(r"\((59m|1h00m) left\)", alice)
    assert f"/{past.repo}/pull/{number}  approved by: self-approved  audit: audited" in alice
    assert mallory.startswith(f"mallory@example.com  {ROLE}  {PROD}  until ")
    assert f"{past.repo}#99  approved by: bob@example.com  audit: NOT AUDITED (" in mallory
    assert "audit: foreign (names no pull request (written by jit-access))" in dave
    assert total == "3 live activation(s), 1 not accounted for by the audit log"
    # One audit read; nothing written.
    assert past.google.recorder.count("POST", "/v2/entries:list") == reads + 1
    assert past.google.recorder.count("POST", "/v2/entries:write") == writes


def test_active_json_for_one_project(
    past: Emulator, operator_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    number, _ = world_for_listing(past)
    searches = past.google.recorder.count("GET")
    assert main(["active", "--project", DEV, "--json", "--policy", str(operator_env)]) == 0
    items = json.loads(capsys.readouterr().out)
    assert [(i["member"], i["audit"]) for i in items] == [
        ("user:alice@example.com", "accounted"), ("user:dave@example.com", "foreign"),
    ]
    alice = items[0]
    assert alice["pull_request"] == f"{past.repo}#{number}"
    assert alice["pull_request_url"].endswith(f"/{past.repo}/pull/{number}")
    assert alice["approvers"] == [] and 3500 <= alice["seconds_left"] <= 3600
    assert past.google.recorder.count("GET") == searches  # getIamPolicy, no search


def test_active_without_credentials(
    operator_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ENDPOINTS:
        monkeypatch.delenv(name)  # Google's endpoints: credentials are needed

    def no_credentials(*args: object, **kwargs: object) -> None:
        raise DefaultCredentialsError("Your default credentials were not found.")

    monkeypatch.setattr(google.auth, "default", no_credentials)
    assert main(["active", "--policy", str(operator_env)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        "jitaccess active: no Application Default Credentials: run "
        "`gcloud auth application-default login`\n"
    )


def test_active_needs_the_policy_and_the_audit_project(
    operator_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["active", "--policy", str(operator_env.parent / "missing.yaml")]) == 2
    assert "cannot read the policy file" in capsys.readouterr().err
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT")
    assert main(["active", "--policy", str(operator_env)]) == 2
    assert "GOOGLE_CLOUD_PROJECT" in capsys.readouterr().err


def test_cleanup_command_lists_removed_orphaned_and_foreign(
    past: Emulator, operator_env: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    number = past.open_request("bob", request_yaml(duration="30m"))
    assert past.pr_event("opened", number).body["state"] == "ready"
    assert past.merge(number).body["state"] == "activated"
    world_for_listing(past)
    monkeypatch.setenv("GITHUB_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    monkeypatch.setenv("GITHUB_API_URL", past.github_url)
    assert main(["cleanup"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "removed 1 expired activation(s) in 2 project(s); 1 orphaned activation(s); " \
        "1 foreign activation(s) left alone"
    assert out[1].startswith(f"  removed: user:bob@example.com {ROLE} on {DEV} (ended ")
    assert out[2].startswith(f"  orphaned: user:mallory@example.com {ROLE} on {PROD} until ")
    assert out[3].startswith(f"  foreign: user:dave@example.com {ROLE} on {DEV} until ")
    assert len(out) == 4
    assert any(c.startswith("<!-- jit-access:expired ") for c in past.comments(number))
