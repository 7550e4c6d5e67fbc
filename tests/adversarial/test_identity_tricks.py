"""Identity tricks (README: policy; README: lifecycle): login case, alias accounts mapped to the
requester, two logins
for one person, approvers without a mapping or without multi-party eligibility."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from jitaccess_sandbox.emulator import IDENTITIES_YAML, POLICY_YAML, SELF, Emulator
from tests.adversarial.conftest import (
    NOW,
    activation_bindings,
    assert_no_grant,
    events,
    merge_and_assert_refused,
    open_files,
    request_yaml,
    status_comment_of,
)

PROD = request_yaml(project="payments-prod")
WAITING = "Waiting for 1 approval (roles/cloudsql.admin)"


@pytest.fixture
def world() -> Iterator[Callable[..., Emulator]]:
    """Build a seeded world with extra identities and policy changes (closed at teardown)."""
    opened: list[Emulator] = []

    def make(*, identities: str = "", policy: str = POLICY_YAML) -> Emulator:
        emu = Emulator(now=NOW, identities_yaml=IDENTITIES_YAML + identities, policy_yaml=policy)
        opened.append(emu)
        return emu

    yield make
    for emu in opened:
        emu.close()
        assert emu.github.recorder.unexpected == []
        assert emu.google.recorder.unexpected == []


def reasons(emu: Emulator, number: int) -> list[str]:
    """The "approval does not count" lines of the status comment, without the mention guard."""
    return [
        line.strip().removeprefix("- ").replace("@\u200d", "@")
        for line in status_comment_of(emu, number).splitlines()
        if "approval does not count" in line
    ]


def test_the_author_login_matches_identities_case_insensitively(emu: Emulator) -> None:
    """README: request file; README: policy: logins are case-insensitive, so GitHub user `Alice` is
    `alice` in
    identities.yaml; the grant goes to her mapped identity and nobody else's."""
    number = open_files(emu, "Alice", {"requests/Alice/x.yaml": request_yaml()})
    assert emu.status(number)["state"] == "success"  # type: ignore[index]
    assert emu.merge(number).body["state"] == "activated"
    [(_, binding)] = activation_bindings(emu)
    assert binding["members"] == ["user:alice@example.com"]


def test_an_author_without_a_mapping_is_refused(emu: Emulator) -> None:
    number = open_files(emu, "mallory", {"requests/mallory/x.yaml": request_yaml()})
    status = emu.status(number)
    assert status is not None and status["state"] == "failure"
    assert status["description"] == "Not eligible: mallory has no identity mapping"
    assert "Ask an administrator to add \\`mallory: &lt;email&gt;\\`" in status_comment_of(
        emu, number
    )
    merge_and_assert_refused(emu, number, "has no identity mapping")


def test_a_look_alike_author_login_is_refused(emu: Emulator) -> None:
    """A login with a Cyrillic а cannot exist on GitHub; were it to reach the service, it must
    not be taken for alice."""
    number = open_files(emu, "\u0430lice", {"requests/\u0430lice/x.yaml": request_yaml()})
    # No status: an author that is no GitHub login owns no directory, so the PR does not speak
    # for its head commit (which may be shared); the comment says why.
    assert emu.status(number) is None
    comment = status_comment_of(emu, number)
    assert "Invalid request: 2 problems" in comment
    assert "'\u0430lice' is not a GitHub login directory" in comment
    assert "'\u0430lice' is not a GitHub login this service accepts" in comment
    merge_and_assert_refused(emu, number)


def test_alias_accounts_of_the_requester_do_not_count(world: Callable[..., Emulator]) -> None:
    """alice-alt and al map to alice's identity (the second with different case): approvals by
    them are the requester approving herself."""
    emu = world(identities="alice-alt: alice@example.com\nal: Alice@Example.COM\n")
    number = open_files(emu, "alice", {"requests/alice/x.yaml": PROD})
    for login in ("alice-alt", "al", "alice"):
        _, answer = emu.review(number, login, "APPROVED")
        assert answer.body["state"] == "pending"
    assert reasons(emu, number) == [
        "@al's approval does not count: is the requester (same identity)",
        "@alice's approval does not count: is the requester",
        "@alice-alt's approval does not count: is the requester (same identity)",
    ]
    # The aliases are never asked to review either.
    assert sorted(emu.github.requested_reviewers(emu.repo, number)) == ["bob", "carol"]
    merge_and_assert_refused(emu, number, WAITING)
    assert "gitops.approveRole" not in events(emu)


def test_two_logins_of_one_person_are_one_approver(world: Callable[..., Emulator]) -> None:
    emu = world(identities="bob2: bob@example.com\n",
                policy=POLICY_YAML.replace("required: 1", "required: 2"))
    number = open_files(emu, "alice", {"requests/alice/x.yaml": PROD})
    emu.review(number, "bob", "APPROVED")
    _, answer = emu.review(number, "bob2", "APPROVED")
    assert answer.body["state"] == "pending"
    assert emu.status(number)["description"] == WAITING  # type: ignore[index]
    assert reasons(emu, number) == [
        "@bob2's approval does not count: same identity as @bob, counted once"
    ]
    merge_and_assert_refused(emu, number, WAITING)


def test_two_logins_of_one_person_plus_a_second_person_suffice(
    world: Callable[..., Emulator],
) -> None:
    """Control for the case above: a second, distinct qualified person completes it."""
    emu = world(identities="bob2: bob@example.com\n",
                policy=POLICY_YAML.replace("required: 1", "required: 2"))
    number = open_files(emu, "alice", {"requests/alice/x.yaml": PROD})
    emu.review(number, "bob", "APPROVED")
    emu.review(number, "bob2", "APPROVED")
    _, answer = emu.review(number, "carol", "APPROVED")
    assert answer.body["state"] == "ready"
    assert emu.merge(number).body["state"] == "activated"
    [(_, binding)] = activation_bindings(emu)
    assert binding["condition"]["description"].startswith(
        "Approved by bob@example.com, carol@example.com, justification:"
    )


@pytest.mark.parametrize(
    ("reviewer", "why"),
    [
        ("eve", "has no identity mapping"),
        # dave is mapped but eligible for nothing on payments-prod.
        ("dave", "not eligible for roles/cloudsql.admin through multi-party approval"),
    ],
)
def test_approvals_by_unqualified_users_do_not_count(
    emu: Emulator, reviewer: str, why: str
) -> None:
    number = open_files(emu, "alice", {"requests/alice/x.yaml": PROD})
    _, answer = emu.review(number, reviewer, "APPROVED")
    assert answer.status == 200
    assert answer.body["state"] == "pending"
    assert reasons(emu, number) == [f"@{reviewer}'s approval does not count: {why}"]
    merge_and_assert_refused(emu, number, WAITING)


def test_self_approval_eligibility_does_not_qualify_a_reviewer(emu: Emulator) -> None:
    """dave may self-activate the role on payments-prod, but only multi-party eligibility makes
    a qualified reviewer (README: lifecycle)."""
    emu.world.add_binding("projects/payments-prod", "roles/cloudsql.admin",
                          "user:dave@example.com", SELF)
    number = open_files(emu, "alice", {"requests/alice/x.yaml": PROD})
    emu.review(number, "dave", "APPROVED")
    assert reasons(emu, number) == [
        "@dave's approval does not count: not eligible for roles/cloudsql.admin through "
        "multi-party approval"
    ]
    merge_and_assert_refused(emu, number, WAITING)


def test_an_identities_file_change_in_the_pr_does_not_map_anyone(emu: Emulator) -> None:
    """identities.yaml is read from main, never from the PR head: mapping mallory to alice's
    identity in the request PR itself gains nothing (and the PR is refused for the change)."""
    number = open_files(
        emu, "mallory",
        {"requests/mallory/x.yaml": request_yaml(),
         "policy/identities.yaml": IDENTITIES_YAML + "mallory: alice@example.com\n"},
    )
    status = emu.status(number)
    assert status is not None and status["state"] == "failure"
    assert "a request PR must change nothing but its request file" in status_comment_of(
        emu, number
    )
    merge_and_assert_refused(emu, number)
    assert_no_grant(emu)
