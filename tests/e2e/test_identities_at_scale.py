"""Identities at organization scale, end to end: account ids, the login rule, require_id, large
and oversized identities files — the real service over HTTP against fake GitHub and Google.

Logins can be renamed and an old login claimed by someone else; an entry with the account's
numeric `id` then maps nobody but that account. The standard world: alice may self-activate
roles/cloudsql.admin on payments-dev (developers@) and needs approval on payments-prod, where
bob and carol (sre@) are qualified reviewers.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from jitaccess_sandbox.emulator import POLICY_YAML, REPO, Emulator
from tests.e2e.conftest import NOW, request_yaml
from webhook.core.identities import MAX_IDENTITIES_BYTES
from webhook.core.names import IDENTITIES_PATH
from webhook.core.render import COMMENT_MARKER

ZWJ = "\u200d"  # the status comment defuses mentions of people quoted in reasons
RENAMED = "is mapped to an id that is not this account's — the login may have been renamed"
RULE = """\
identities:
  rule: {match: '^(?P<user>[a-z0-9-]+)_acme$', email: '{user}@example.com'}
"""


@contextmanager
def world(**kw: Any) -> Iterator[Emulator]:
    """A seeded world at NOW; no fake may see an unexpected call."""
    with Emulator(now=NOW, **kw) as emu:
        yield emu
        assert emu.github.recorder.unexpected == []
        assert emu.google.recorder.unexpected == []


def pinned(emu: Emulator, *logins: str, unpinned: tuple[str, ...] = ()) -> str:
    """identities.yaml with the ids the fake GitHub gave these accounts (as `pin` writes it)."""
    lines = [
        f"{login}: {{email: {login}@example.com, id: {emu.github.users[login].id}}}"
        for login in logins
    ]
    lines += [f"{login}: {login}@example.com" for login in unpinned]
    return "\n".join(lines) + "\n"


def status_of(emu: Emulator, number: int) -> tuple[str, str]:
    status = emu.status(number)
    assert status is not None, f"no jit-access status on #{number}"
    return status["state"], status["description"]


def status_comment(emu: Emulator, number: int) -> str:
    """The status comment, read as text: mention guards and Markdown escapes taken out."""
    [body] = [c for c in emu.comments(number) if c.startswith(COMMENT_MARKER)]
    return re.sub(r"\\(.)", r"\1", body.replace(f"@{ZWJ}", "@"))


def open_request(emu: Emulator, author: str, project: str = "payments-dev") -> tuple[int, str]:
    """Open a request PR by `author` and deliver `opened`; the number and the answer's state."""
    number = emu.open_request(author, request_yaml(project=project))
    answer = emu.pr_event("opened", number)
    assert answer.status == 200, answer.body
    return number, str(answer.body["state"])


# -- account ids ----------------------------------------------------------------------------------


def test_a_renamed_login_claimed_by_another_account_cannot_request() -> None:
    with world() as emu:
        emu.github.put_file(REPO, IDENTITIES_PATH, pinned(emu, "alice", "bob", "carol"))
        # alice renames her account; someone else registers the free login `alice`.
        emu.github.rename_user("alice", "alice-2024")
        impostor = emu.github.add_user("alice")
        assert impostor.id != emu.github.users["alice-2024"].id

        number, state = open_request(emu, "alice")

        assert state == "not_eligible"
        assert status_of(emu, number) == (
            "failure", "Not eligible: alice has no identity mapping",
        )
        comment = status_comment(emu, number)
        assert f"@alice has no Google identity: login @alice {RENAMED}" in comment
        assert emu.google.recorder.calls == []  # no identity, no eligibility lookup
        answer = emu.merge(number)
        assert answer.body["state"] == "refused", answer.body
        assert emu.activations("payments-dev") == []


def test_the_account_whose_id_is_pinned_is_mapped() -> None:
    with world() as emu:
        emu.github.put_file(REPO, IDENTITIES_PATH, pinned(emu, "alice", "bob", "carol"))
        number, state = open_request(emu, "alice")
        assert state == "ready"
        assert emu.merge(number).body["state"] == "activated"
        [binding] = emu.activations("payments-dev")
        assert binding["members"] == ["user:alice@example.com"]


def test_a_renamed_reviewer_login_claimed_by_another_account_does_not_count() -> None:
    with world() as emu:
        emu.github.put_file(REPO, IDENTITIES_PATH, pinned(emu, "alice", "bob", "carol"))
        number, state = open_request(emu, "alice", "payments-prod")
        assert state == "pending"
        emu.github.rename_user("bob", "bob-old")
        emu.github.add_user("bob")  # a stranger now holds the login of a qualified reviewer

        _, answer = emu.review(number, "bob", "APPROVED")

        assert answer.body["state"] == "pending", answer.body
        assert status_of(emu, number) == (
            "pending", "Waiting for 1 approval (roles/cloudsql.admin)",
        )
        assert f"@bob's approval does not count: login @bob {RENAMED}" in status_comment(
            emu, number
        )
        # The real bob, under his new login, is still bob: not mapped either (his entry names
        # the old login), so nobody is counted by mistake.
        _, answer = emu.review(number, "bob-old", "APPROVED")
        assert answer.body["state"] == "pending", answer.body
        _, answer = emu.review(number, "carol", "APPROVED")
        assert answer.body["state"] == "ready", answer.body


# -- the rule and require_id -------------------------------------------------------------------


def test_a_login_without_an_entry_is_mapped_by_the_rule() -> None:
    with world(policy_yaml=POLICY_YAML + RULE) as emu:
        number, state = open_request(emu, "alice_acme")
        assert state == "ready"
        assert status_of(emu, number) == ("success", "Ready: self-approval for 1 role")
        assert emu.merge(number).body["state"] == "activated"
        [binding] = emu.activations("payments-dev")
        assert binding["members"] == ["user:alice@example.com"]


def test_a_login_the_rule_does_not_fit_has_no_identity() -> None:
    with world(policy_yaml=POLICY_YAML + RULE) as emu:
        number, state = open_request(emu, "mallory-acme")
        assert state == "not_eligible"
        assert (
            "@mallory-acme has no Google identity: no entry in policy/identities.yaml, and the "
            "login does not fit identities.rule" in status_comment(emu, number)
        )


def test_require_id_maps_only_entries_with_an_id() -> None:
    with world(policy_yaml=POLICY_YAML + "identities:\n  require_id: true\n") as emu:
        emu.github.put_file(
            REPO, IDENTITIES_PATH, pinned(emu, "bob", "carol", unpinned=("alice", "dave"))
        )
        number, state = open_request(emu, "alice")
        assert state == "not_eligible"
        assert "@alice has no Google identity: the entry has no `id`, and " in status_comment(
            emu, number
        )
        number, state = open_request(emu, "bob")  # bob is a developer too, and pinned
        assert state == "ready"
        assert status_of(emu, number)[0] == "success"


# -- size -----------------------------------------------------------------------------------------


def many_identities(emu: Emulator, count: int) -> str:
    """An identities file of `count` pinned entries, ending with the standard people."""
    lines = ["# generated: one entry per line, as `jitaccess identities pin` writes them"]
    for i in range(count - 4):
        lines.append(f"user{i:05d}: {{email: user{i:05d}@corp.example.com, id: {900000 + i}}}")
    text = "\n".join(lines) + "\n" + pinned(emu, "alice", "bob", "carol", unpinned=("dave",))
    assert text.count("\n") == count + 1
    return text


def test_an_identities_file_of_20000_entries_works() -> None:
    with world() as emu:
        text = many_identities(emu, 20_000)
        assert len(text.encode()) > 1024 * 1024  # over what the contents API inlines as JSON
        emu.github.put_file(REPO, IDENTITIES_PATH, text)

        number, state = open_request(emu, "alice")
        assert state == "ready"
        assert status_of(emu, number) == ("success", "Ready: self-approval for 1 role")

        # The next event reads the file conditionally: unchanged, GitHub answers 304.
        number, state = open_request(emu, "alice", "payments-prod")
        assert state == "pending"
        reads = [c for c in emu.github.recorder.calls if c.path.endswith(IDENTITIES_PATH)]
        assert len(reads) == 2
        assert "If-None-Match" not in reads[0].headers
        assert reads[1].headers["If-None-Match"].startswith('"')
        _, answer = emu.review(number, "bob", "APPROVED")
        assert answer.body["state"] == "ready", answer.body


def test_an_oversized_identities_file_is_a_policy_error_with_a_message() -> None:
    with world() as emu:
        filler = "#" * 100 + "\n"
        text = emu.github.file_at(REPO, IDENTITIES_PATH) or b""
        text += filler.encode() * (MAX_IDENTITIES_BYTES // len(filler) + 1)
        emu.github.put_file(REPO, IDENTITIES_PATH, text)

        number, state = open_request(emu, "alice")

        assert state == "error"  # answered 200: a policy problem, not a failed delivery
        assert status_of(emu, number) == ("error", "Policy error: see comment")
        comment = status_comment(emu, number)
        assert f"policy/identities.yaml is {len(text)} bytes or more; the service reads at " \
               f"most {MAX_IDENTITIES_BYTES} bytes (2048 KiB) of it" in comment
        assert emu.google.recorder.calls == []


def test_an_invalid_identities_file_is_a_policy_error_naming_the_line() -> None:
    with world() as emu:
        emu.github.put_file(
            REPO, IDENTITIES_PATH,
            "alice: alice@example.com\nbob: bob@example.com\nAlice: other@example.com\n",
        )
        number, state = open_request(emu, "alice")
        assert state == "error"
        assert status_of(emu, number) == ("error", "Policy error: see comment")
        comment = status_comment(emu, number)
        assert "policy/identities.yaml" in comment and "line 3" in comment, comment
