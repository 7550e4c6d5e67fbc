"""Operations through the real app over HTTP: cleanup authorization and effect, warmup, GitHub App
authentication through the whole service, and the `jitaccess serve` / `validate` commands.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from jitaccess_sandbox.emulator import Emulator
from jitaccess_sandbox.httpserver import LocalServer
from tests.e2e.conftest import request_yaml
from webhook.cli import main
from webhook.service.app import create_app
from webhook.service.config import VARIABLES
from webhook.service.wiring import Service

ROOT = Path(__file__).resolve().parents[2]
CLEANUP_TOKEN = "cleanup-token-0123456789abcdef"
DEV = "payments-dev"
ROLE = "roles/cloudsql.admin"
FORBIDDEN = {"message": "cleanup is for App Engine cron or a CLEANUP_TOKEN bearer"}


@contextmanager
def serving(emu: Emulator, **changes: Any) -> Iterator[str]:
    """The real app for a copy of the emulator's settings (same service), on its own port."""
    settings = dataclasses.replace(emu.settings, **changes)
    with LocalServer(create_app(settings, service=emu.service)) as server:
        yield server.url


def cleanup(url: str, method: str = "GET", **headers: str) -> requests.Response:
    return requests.request(method, f"{url}/tasks/cleanup", headers=headers, timeout=30)


def activate_self_approval(emu: Emulator) -> int:
    """alice's 1 h self-approval request, opened and merged: one activation on payments-dev."""
    number = emu.open_request("alice", request_yaml())
    assert emu.pr_event("opened", number).body["state"] == "ready"
    assert emu.merge(number).body["state"] == "activated"
    assert len(emu.activations(DEV)) == 1
    return number


def eligible_bindings(emu: Emulator) -> list[dict[str, Any]]:
    return [b for b in emu.world.bindings(f"projects/{DEV}") if b not in emu.activations(DEV)]


# ----------------------------------------------------------------------------------------------
# /tasks/cleanup


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_cleanup_without_auth_is_403(emu: Emulator, method: str) -> None:
    resp = cleanup(emu.service_url, method)
    assert (resp.status_code, resp.json()) == (403, FORBIDDEN)
    assert emu.google.recorder.calls == []


def test_cron_header_is_not_trusted_outside_app_engine(emu: Emulator) -> None:
    assert emu.settings.on_app_engine is False
    resp = cleanup(emu.service_url, **{"X-Appengine-Cron": "true"})
    assert (resp.status_code, resp.json()) == (403, FORBIDDEN)
    assert emu.google.recorder.calls == []


def test_cron_header_on_app_engine_runs_cleanup(emu: Emulator) -> None:
    with serving(emu, on_app_engine=True) as url:
        resp = cleanup(url, **{"X-Appengine-Cron": "true"})
        assert resp.status_code == 200, resp.text
        assert resp.json() == {
            "message": "removed 0 expired activation(s) in 0 project(s)",
            "removed": [], "projects": [], "errors": {},
        }
        # on App Engine too, the header must be there and say true
        assert cleanup(url).status_code == 403
        assert cleanup(url, **{"X-Appengine-Cron": "false"}).status_code == 403


def test_bearer_token_removes_expired_activations(emu: Emulator) -> None:
    activate_self_approval(emu)
    eligible = eligible_bindings(emu)
    with serving(emu, cleanup_token=CLEANUP_TOKEN) as url:
        auth = {"Authorization": f"Bearer {CLEANUP_TOKEN}"}
        # still active: nothing to remove
        resp = cleanup(url, "POST", **auth)
        assert resp.status_code == 200, resp.text
        assert resp.json()["removed"] == []
        assert len(emu.activations(DEV)) == 1

        emu.advance(timedelta(hours=1, seconds=1))
        resp = cleanup(url, "POST", **auth)
        assert resp.status_code == 200, resp.text
        assert resp.json() == {
            "message": "removed 1 expired activation(s) in 1 project(s)",
            "removed": [{"project": DEV, "role": ROLE, "member": "user:alice@example.com",
                         "end": "2026-11-29T11:00:00Z"}],
            "projects": [DEV],
            "errors": {},
            "commented": [1],
        }
    assert emu.activations(DEV) == []
    assert eligible_bindings(emu) == eligible  # the eligible binding is untouched
    entry = emu.audit()[-1]
    assert entry["severity"] == "NOTICE"
    labels = entry["labels"]
    assert (labels["event"], labels["user"], labels["project"], labels["role"]) == (
        "gitops.removeExpired", "alice@example.com", DEV, ROLE
    )
    assert (labels["activation_start"], labels["activation_end"]) == (
        "2026-11-29T10:00:00Z", "2026-11-29T11:00:00Z"
    )
    assert [e["labels"]["event"] for e in emu.audit()].count("gitops.removeExpired") == 1


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer wrong-token-0123456789abcdef",
        CLEANUP_TOKEN,  # no scheme
        f"Basic {CLEANUP_TOKEN}",
        f"Bearer {CLEANUP_TOKEN}x",
        f"Bearer {CLEANUP_TOKEN[:-1]}",
        "Bearer ",
    ],
)
def test_wrong_cleanup_token_is_403(emu: Emulator, authorization: str) -> None:
    with serving(emu, cleanup_token=CLEANUP_TOKEN) as url:
        resp = cleanup(url, "POST", Authorization=authorization)
        assert (resp.status_code, resp.json()) == (403, FORBIDDEN)
    assert emu.google.recorder.calls == []


def test_no_bearer_is_accepted_when_no_token_is_configured(emu: Emulator) -> None:
    assert emu.settings.cleanup_token is None
    for authorization in ("Bearer ", "Bearer None", "Bearer"):
        resp = cleanup(emu.service_url, "POST", Authorization=authorization)
        assert resp.status_code == 403


def test_warmup(emu: Emulator) -> None:
    resp = requests.get(f"{emu.service_url}/_ah/warmup", timeout=30)
    assert resp.status_code == 200
    body = resp.json()
    assert body["message"] == "warm" and isinstance(body["ms"], int)


# ----------------------------------------------------------------------------------------------
# GitHub App authentication, through the whole service


class AppEmulator(Emulator):
    """The emulated world, with the service authenticating as a GitHub App installation."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.installation = self.github.install(self.repo)
        self.settings = dataclasses.replace(
            self.settings, token=None, app_id=self.github.app_id,
            app_private_key=self.github.app_private_key_pem,
        )
        self.app_service = Service.from_settings(self.settings, clock=self.clock)
        self._app_auth_server = LocalServer(
            create_app(self.settings, service=self.app_service)
        ).start()

    @property
    def service_url(self) -> str:
        return self._app_auth_server.url

    def close(self) -> None:
        self._app_auth_server.stop()
        self.app_service.lifecycle.executor.shutdown(wait=False)
        super().close()


@pytest.fixture
def app_emu() -> Iterator[AppEmulator]:
    # The adapter renews installation tokens by the real clock, the fake issues them by the
    # emulated one: keep both the same.
    world = AppEmulator(now=datetime.now(UTC))
    try:
        yield world
        assert world.github.recorder.unexpected == []
        assert world.google.recorder.unexpected == []
    finally:
        world.close()


def test_github_app_lifecycle_fetches_one_installation_token(app_emu: AppEmulator) -> None:
    emu = app_emu
    number = emu.open_request("alice", request_yaml())
    payload = emu.pr_payload("opened", number)
    payload["installation"] = {"id": emu.installation, "node_id": "MDIz"}
    answer = emu.deliver("pull_request", payload)
    assert answer.status == 200, answer.body
    assert answer.body["state"] == "ready"
    # With the App the verdict is a check run, written with the installation token.
    assert emu.status(number) is None
    run = emu.github.latest_check_run(emu.repo, emu.github.pull(emu.repo, number).head_sha)
    assert run is not None and (run.conclusion, run.app_id) == ("success", emu.github.app_id)

    answer = emu.merge(number)
    assert answer.status == 200, answer.body
    assert answer.body["state"] == "activated"
    assert len(emu.activations(DEV)) == 1
    assert [e["labels"]["event"] for e in emu.audit()] == [
        "gitops.requestRole", "gitops.activateRole"
    ]
    comments = emu.github.comments(emu.repo, number)
    assert [c.login for c in comments] == ["jit-access[bot]", "jit-access[bot]"]

    rec = emu.github.recorder
    assert rec.count("GET", rf"^/repos/{emu.repo}/installation$") == 1
    assert rec.count("POST", rf"^/app/installations/{emu.installation}/access_tokens$") == 1
    assert rec.count("GET", r"^/user$") == 0  # the App knows its login from the installation
    # every repository call carried the installation token, none the sandbox's user token
    repo_calls = [c for c in rec.calls if c.path.startswith("/repos/")
                  and not c.path.endswith("/installation")]
    assert repo_calls
    assert all(c.headers.get("Authorization", "").startswith("token ghs_") for c in repo_calls)
    assert all("sandboxtoken" not in c.headers.get("Authorization", "") for c in repo_calls)


def test_github_app_ignores_a_foreign_installation(app_emu: AppEmulator) -> None:
    emu = app_emu
    number = emu.open_request("alice", request_yaml())
    payload = emu.pr_payload("opened", number)
    other = emu.installation + 1
    payload["installation"] = {"id": other}
    answer = emu.deliver("pull_request", payload)
    assert (answer.status, answer.body) == (
        200, {"message": f"ignored: installation {other} is not this service's"}
    )
    assert emu.status(number) is None
    assert emu.comments(number) == []
    assert emu.google.recorder.calls == []
    assert emu.github.recorder.count("POST", r"/statuses/|/comments") == 0


# ----------------------------------------------------------------------------------------------
# The `jitaccess` command


@pytest.fixture
def bare_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """An environment without any of the service's variables."""
    for name in (*VARIABLES, "GAE_ENV"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_serve_refuses_to_start_without_configuration(
    bare_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--port", "1"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("jitaccess serve: invalid configuration: ")
    for name in ("GITHUB_WEBHOOK_SECRET", "GITHUB_REPOSITORY", "GOOGLE_CLOUD_PROJECT",
                 "GITHUB_TOKEN"):
        assert name in captured.err


def test_serve_names_the_one_malformed_variable(
    bare_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bare_env.setenv("GITHUB_WEBHOOK_SECRET", "a-webhook-secret-0123456789")
    bare_env.setenv("GITHUB_REPOSITORY", "acme/access")
    bare_env.setenv("GITHUB_TOKEN", "ghp_token")
    bare_env.setenv("GOOGLE_CLOUD_PROJECT", "jitaccess-audit")
    bare_env.setenv("CLOUD_ASSET_ENDPOINT", "asset.internal:443")
    assert main(["serve", "--port", "1"]) == 2
    err = capsys.readouterr().err
    assert err == (
        "jitaccess serve: invalid configuration: CLOUD_ASSET_ENDPOINT must be an http(s) URL, "
        "got 'asset.internal:443'\n"
    )
    assert "a-webhook-secret" not in err and "ghp_token" not in err


def test_cleanup_command_refuses_without_configuration(
    bare_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["cleanup"]) == 2
    assert "GITHUB_WEBHOOK_SECRET" in capsys.readouterr().err


def test_validate_examples(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(ROOT)
    assert main(["validate", "examples/requests"]) == 0
    assert capsys.readouterr().out.splitlines() == ["1 file checked, 0 problems"]


def test_validate_broken_examples(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(ROOT)
    assert main(["validate", "examples/broken"]) == 1
    path = "examples/broken/requests/alice/bad.yaml"
    assert capsys.readouterr().out.splitlines() == [
        f"{path}:3: invalid_project: 'Payments_Prod' is not a valid project ID: 6 to 30 "
        "lower-case letters, digits and hyphens, starting with a letter and not ending with a "
        "hyphen",
        f"{path}:5: basic_role: roles/owner is a basic role; IAM conditions cannot be applied to "
        "basic roles, so it cannot be granted temporarily; request a predefined or custom role",
        f"{path}:7: duplicate_role: roles/cloudsql.admin is listed twice",
        f"{path}:8: invalid_duration: 'duration': expected a duration like 30m, 2h, 1h30m or "
        "PT2H, got '3d'",
        f"{path}:9: unknown_key: unknown key 'justfication' (did you mean 'justification'?); "
        "the keys are project, roles, duration, justification",
        f"{path}: missing_key: the key 'justification' is missing",
        "1 file checked, 6 problems",
    ]


def test_bearer_scheme_is_case_insensitive(emu: Emulator) -> None:
    with serving(emu, cleanup_token=CLEANUP_TOKEN) as url:
        resp = cleanup(url, "POST", Authorization=f"bearer {CLEANUP_TOKEN}")
        assert resp.status_code == 200, resp.text
        assert resp.json()["removed"] == []
