"""`jitaccess identities pin` through the CLI, PyGithub and HTTP, against the fake GitHub."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from jitaccess_sandbox.fake_github import FakeGitHub
from jitaccess_sandbox.httpserver import LocalServer
from webhook.adapters.github_api import GitHubUsers
from webhook.cli import main
from webhook.core.identities import parse_identities

TOKEN = "ghp_pintoken"


@pytest.fixture
def fake() -> Iterator[FakeGitHub]:
    f = FakeGitHub()
    f.add_token(TOKEN, "admin")
    for login in ("alice", "bob", "carol", "dave"):
        f.add_user(login)
    yield f
    assert f.recorder.unexpected == []


@pytest.fixture
def api(fake: FakeGitHub) -> Iterator[str]:
    with LocalServer(fake) as server:
        yield fake.api_url(server.url)


@pytest.fixture
def env(api: str, monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    monkeypatch.setenv("GITHUB_API_URL", api)
    return monkeypatch


def ids(fake: FakeGitHub, *logins: str) -> list[int]:
    return [fake.users[login].id for login in logins]


def pin(path: Path, *extra: str) -> int:
    return main(["identities", "pin", "--file", str(path), *extra])


def test_pin_fills_in_ids_keeping_comments_and_order(
    fake: FakeGitHub, env: pytest.MonkeyPatch, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "identities.yaml"
    path.write_text(
        "# GitHub login -> Google identity\n"
        "\n"
        "bob: bob@example.com   # on-call\n"
        "alice: {email: alice@example.com}\n"
        "Carol: carol@example.com\n"
    )
    alice, bob, carol = ids(fake, "alice", "bob", "carol")

    assert pin(path) == 0

    assert path.read_text() == (
        "# GitHub login -> Google identity\n"
        "\n"
        f"bob: {{email: bob@example.com, id: {bob}}}   # on-call\n"
        f"alice: {{email: alice@example.com, id: {alice}}}\n"
        f"Carol: {{email: carol@example.com, id: {carol}}}\n"
    )
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"{path}: 3 pinned, 0 already right, 0 to look at (3 entries)"
    )
    identities, problems = parse_identities(path.read_bytes())
    assert problems == () and identities.ids == {"alice": alice, "bob": bob, "carol": carol}
    assert sorted(c.path for c in fake.recorder.calls) == [
        "/users/alice", "/users/bob", "/users/carol",
    ]


def test_pin_is_idempotent_and_reports_ids_that_differ_and_logins_nobody_uses(
    fake: FakeGitHub, env: pytest.MonkeyPatch, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "identities.yaml"
    path.write_text("alice: alice@example.com\nbob: bob@example.com\n")
    assert pin(path) == 0
    pinned = path.read_text()
    capsys.readouterr()

    assert pin(path) == 0  # a second run changes nothing
    assert path.read_text() == pinned
    assert capsys.readouterr().out.splitlines() == [
        f"{path}: 0 pinned, 2 already right, 0 to look at (2 entries)"
    ]

    # bob renames his account and someone else takes `bob`; `ghost` never existed.
    fake.rename_user("bob", "robert")
    fake.add_user("bob")
    path.write_text(pinned + "ghost: ghost@example.com\n")
    assert pin(path) == 1
    assert path.read_text() == pinned + "ghost: ghost@example.com\n"  # nothing overwritten
    [bob_line, ghost_line, summary] = capsys.readouterr().out.splitlines()
    assert bob_line == (
        f"{path}:2: differs: bob is pinned to id {ids(fake, 'robert')[0]}, but the account "
        f"using the login now has id {ids(fake, 'bob')[0]} — the login may have been renamed "
        "and taken over; the entry was left as it is"
    )
    assert ghost_line == (
        f"{path}:3: not_found: no GitHub account uses the login ghost now (renamed or "
        "deleted?); the entry was left as it is"
    )
    assert summary == f"{path}: 0 pinned, 1 already right, 2 to look at (3 entries)"


def test_missing_only_looks_up_only_entries_without_an_id(
    fake: FakeGitHub, env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "identities.yaml"
    path.write_text("alice: {email: alice@example.com, id: 1}\nbob: bob@example.com\n")
    assert pin(path, "--missing-only") == 0
    assert [c.path for c in fake.recorder.calls] == ["/users/bob"]
    [bob] = ids(fake, "bob")
    assert path.read_text().endswith(f"bob: {{email: bob@example.com, id: {bob}}}\n")


def test_entries_over_several_lines_are_reported_with_their_id(
    fake: FakeGitHub, env: pytest.MonkeyPatch, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "identities.yaml"
    text = "alice:\n  email: alice@example.com\nbob: 'bob@example.com'\ncarol: carol@example.com\n"
    path.write_text(text)
    assert pin(path) == 1
    carol = ids(fake, "carol")[0]
    assert path.read_text() == text.replace(
        "carol: carol@example.com", f"carol: {{email: carol@example.com, id: {carol}}}"
    )
    out = capsys.readouterr().out.splitlines()
    assert out[0] == (
        f"{path}:1: not_one_line: alice is not written on one line; add "
        f"`id: {ids(fake, 'alice')[0]}` to its entry by hand"
    )
    assert out[1].startswith(f"{path}:3: not_one_line: bob ")


def test_a_file_with_problems_is_not_touched(
    env: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "identities.yaml"
    path.write_text("alice: a@example.com\nalice: b@example.com\n")
    assert pin(path) == 1
    assert capsys.readouterr().out.splitlines() == [
        f"{path}:2: duplicate_key: the key 'alice' appears twice (first on line 1); keep one",
        f"{path}: fix these problems first; nothing was changed",
    ]


def test_pin_without_a_token_says_what_to_set(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    path = tmp_path / "identities.yaml"
    path.write_text("alice: alice@example.com\n")
    assert pin(path) == 2
    out = capsys.readouterr().out
    assert out.startswith("jitaccess identities pin: set GITHUB_TOKEN to a token")
    assert path.read_text() == "alice: alice@example.com\n"


def test_a_rate_limit_stops_the_lookups_and_keeps_what_was_found(
    fake: FakeGitHub, env: pytest.MonkeyPatch, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake.fail_rate_limited("GET", "^/users/carol$", times=1)
    path = tmp_path / "identities.yaml"
    path.write_text("carol: carol@example.com\n")
    assert pin(path) == 1
    out = capsys.readouterr().out
    assert "stopped early: GitHub: looking up the GitHub account carol: rate limit exceeded" in out
    assert path.read_text() == "carol: carol@example.com\n"


def test_the_users_adapter_makes_one_call_per_login(fake: FakeGitHub, api: str) -> None:
    users = GitHubUsers(TOKEN, api)
    try:
        assert users.account_id("Alice") == fake.users["alice"].id
        assert users.account_id("nobody") is None
    finally:
        users.close()
    assert [(c.method, c.path) for c in fake.recorder.calls] == [
        ("GET", "/users/Alice"), ("GET", "/users/nobody"),
    ]
    assert fake.recorder.calls[0].headers["Authorization"] == f"token {TOKEN}"
