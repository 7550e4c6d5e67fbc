"""Hostile PR shapes (README: request file): other users' directories, path tricks, requests mixed
with other
changes, edits and deletions of existing requests. Each is reported as an invalid request and
refused again when merged anyway."""

from __future__ import annotations

import pytest

from jitaccess_sandbox.emulator import Emulator
from tests.adversarial.conftest import (
    activation_bindings,
    assert_no_grant,
    merge_and_assert_refused,
    open_files,
    request_yaml,
    status_comment_of,
)

REQUEST = request_yaml()
# A request that bob, too, could self-activate (developers@ on payments-dev): had the service
# accepted a file in another user's directory, somebody would have been granted something.
OTHER_DIRECTORY = "is in the directory of"
BAD_PATH = "a request file must be requests/<your-login>/<name>.yaml"
UNRELATED = "a request PR must change nothing but its request file"
EDITED = "existing requests cannot be edited; add a new request file instead"
DELETED = "a request PR must not delete requests"


def test_a_request_in_another_users_directory_is_refused(emu: Emulator) -> None:
    number = open_files(emu, "bob", {"requests/alice/x.yaml": REQUEST})
    # No status: it could land on a commit alice's own PR shares (see the next test); without
    # the required status the PR cannot be merged, and the comment says why.
    assert emu.status(number) is None
    assert (
        "requests/alice/x.yaml is in the directory of alice; file your request under "
        "requests/bob/" in emu.comments(number)[0]
    )
    merge_and_assert_refused(emu, number, OTHER_DIRECTORY)


def test_a_pr_sharing_the_owners_head_commit_cannot_overwrite_its_status(emu: Emulator) -> None:
    alice_pr = open_files(emu, "alice", {"requests/alice/x.yaml": REQUEST})
    assert emu.status(alice_pr)["state"] == "success"  # type: ignore[index]
    # mallory opens a PR whose head is alice's commit (e.g. a fork branch at that commit).
    mallory_pr = emu.github.open_pr("acme/access", "mallory", {"requests/alice/x.yaml": REQUEST})
    head = emu.github.pull("acme/access", alice_pr).head_sha
    emu.github.point_head("acme/access", mallory_pr, head)
    assert emu.pr_event("opened", mallory_pr).body["state"] == "invalid"
    status = emu.status(alice_pr)
    assert status is not None and status["state"] == "success"
    assert "acme/access/pull/1" in status["target_url"]


def test_a_directory_differing_only_in_case_is_the_authors(emu: Emulator) -> None:
    """README: request file: `<github-login>` matches the author's login case-insensitively (GitHub
    logins
    are case-insensitive), so alice may file under requests/ALICE/. The grant is still alice's
    own identity, taken from her login, never from the directory name."""
    number = open_files(emu, "alice", {"requests/ALICE/x.yaml": REQUEST})
    assert emu.status(number)["state"] == "success"  # type: ignore[index]
    assert emu.merge(number).body["state"] == "activated"
    [(resource, binding)] = activation_bindings(emu)
    assert resource == "projects/payments-dev"
    assert binding["members"] == ["user:alice@example.com"]


def test_the_upper_case_directory_of_another_user_is_still_theirs(emu: Emulator) -> None:
    number = open_files(emu, "bob", {"requests/ALICE/x.yaml": REQUEST})
    assert emu.status(number) is None
    assert "is in the directory of ALICE" in emu.comments(number)[0]
    merge_and_assert_refused(emu, number, OTHER_DIRECTORY)


@pytest.mark.parametrize(
    ("author", "path", "phrase"),
    [
        ("alice", "requests/alice/sub/x.yaml", BAD_PATH),
        ("alice", "requests/alice/x.json", "ending in .yaml or .yml"),
        ("alice", "requests/alice/..yaml", "ending in .yaml or .yml"),
        ("alice", "requests/alice/.hidden.yaml", "ending in .yaml or .yml"),
        ("alice", "requests/alice/x\u202eLMAY.yaml", "ending in .yaml or .yml"),
        ("alice", "requests/alice/x y.yaml", "ending in .yaml or .yml"),
    ],
    ids=lambda v: v.encode("unicode_escape").decode() if isinstance(v, str) else v,
)
def test_path_tricks_in_the_authors_directory_are_refused(
    emu: Emulator, author: str, path: str, phrase: str
) -> None:
    number = open_files(emu, author, {path: REQUEST})
    status = emu.status(number)
    assert status is not None and status["state"] == "failure"
    assert status["description"].startswith("Invalid request: ")
    assert phrase in status["description"], status["description"]
    merge_and_assert_refused(emu, number)


@pytest.mark.parametrize(
    ("author", "path", "phrase"),
    [
        # Cyrillic а (U+0430) in the directory: looks like alice, is not a GitHub login at all.
        ("alice", "requests/\u0430lice/x.yaml", "is not a GitHub login directory"),
        # ... and the same trick by the look-alike's victim: bob cannot file as "аlice" either.
        ("bob", "requests/\u0430lice/x.yaml", "is not a GitHub login directory"),
        # Kelvin sign K (U+212A) lower-cases to an ASCII k.
        ("kate", "requests/\u212aate/x.yaml", "is not a GitHub login directory"),
        # Full-width letters.
        ("alice", "requests/\uff41lice/x.yaml", "is not a GitHub login directory"),
        ("alice", "requests/alice/../bob/x.yaml", BAD_PATH),
        ("bob", "requests/bob/../alice/x.yaml", BAD_PATH),
        ("alice", "requests/alice/./x.yaml", BAD_PATH),
        ("alice", "requests//alice/x.yaml", BAD_PATH),
        ("alice", "requests/x.yaml", BAD_PATH),
    ],
    ids=lambda v: v.encode("unicode_escape").decode() if isinstance(v, str) else v,
)
def test_path_tricks_outside_the_authors_directory_are_refused_in_the_comment(
    emu: Emulator, author: str, path: str, phrase: str
) -> None:
    """A file in nobody's directory (or one only a path trick makes the author's) is not the
    author's own request: the PR does not speak for its head commit, which may be shared."""
    number = open_files(emu, author, {path: REQUEST})
    assert emu.status(number) is None
    shown = phrase.replace("<", "&lt;").replace(">", "&gt;")  # the comment shows text inert
    assert shown in status_comment_of(emu, number)
    merge_and_assert_refused(emu, number)


PERMISSIVE_POLICY = """\
scope: organizations/123456789012
activation:
  max_duration: 24h
justification:
  pattern: '.*'
"""


@pytest.mark.parametrize(
    ("path", "text"),
    [
        # The rules that judge the PR, rewritten in the same PR (and valid, so that once merged
        # to main they even become the policy the merge is judged by).
        ("policy/jitaccess.yaml", PERMISSIVE_POLICY),
        # Map the author to somebody else's identity.
        ("policy/identities.yaml", "alice: carol@example.com\n"),
        ("webhook/app.py", "print('pwned')\n"),
        (".github/CODEOWNERS", "* @alice\n"),
        ("app.yaml", "runtime: python311\n"),
        ("requests/README.md", "how to file requests\n"),
        ("README.md", "hello\n"),
    ],
)
def test_a_request_mixed_with_another_change_is_refused(
    emu: Emulator, path: str, text: str
) -> None:
    number = open_files(emu, "alice", {"requests/alice/x.yaml": REQUEST, path: text})
    status = emu.status(number)
    assert status is not None and status["state"] == "failure"
    assert UNRELATED in status["description"], status["description"]
    assert path in status["description"]
    # Merging it puts the attacker's file on main; the merge is judged again and still refused.
    merge_and_assert_refused(emu, number)


def test_a_change_outside_requests_alone_is_not_a_request_and_grants_nothing(
    emu: Emulator,
) -> None:
    number = open_files(emu, "alice", {"policy/identities.yaml": "alice: carol@example.com\n"})
    # It passes jit-access (a required check must not block policy changes); code owners'
    # review is what guards policy/.
    assert emu.status(number)["description"] == "Not an access request"  # type: ignore[index]
    assert emu.comments(number) == []
    answer = emu.merge(number)
    assert answer.body == {"message": f"PR #{number} touches no request; nothing to activate"}
    assert_no_grant(emu)


def test_two_request_files_are_refused(emu: Emulator) -> None:
    number = open_files(
        emu, "alice",
        {"requests/alice/x.yaml": REQUEST, "requests/alice/y.yaml": request_yaml(duration="2h")},
    )
    assert emu.status(number)["description"] == (  # type: ignore[index]
        "Invalid request: the PR adds 2 files under requests/; add exactly one request file"
    )
    merge_and_assert_refused(emu, number, "add exactly one request file")


def test_a_request_to_another_branch_is_refused(emu: Emulator) -> None:
    number = open_files(emu, "alice", {"requests/alice/x.yaml": REQUEST}, base="release")
    assert emu.status(number) is None  # its head may be shared with a PR into main
    assert "a request PR must target main, not 'release'" in status_comment_of(emu, number)
    merge_and_assert_refused(emu, number, "must target main")


@pytest.fixture
def on_main(emu: Emulator) -> Emulator:
    """An earlier, merged request of alice's and one of bob's on main."""
    emu.github.put_file(emu.repo, "requests/alice/old.yaml", request_yaml(duration="30m"))
    emu.github.put_file(emu.repo, "requests/bob/old.yaml", request_yaml(duration="30m"))
    return emu


@pytest.mark.parametrize(
    ("change", "phrase"),
    [
        # Re-use an approved request with a longer duration.
        ({"modified": {"requests/alice/old.yaml": request_yaml(duration="4h")}}, EDITED),
        ({"modified": {"requests/bob/old.yaml": request_yaml(duration="4h")}}, EDITED),
        # A PR that only deletes request files is a revocation PR (tests/e2e/test_revocation.py).
        (
            {"renamed": {"requests/alice/old.yaml": "requests/alice/new.yaml"}},
            "a request PR must not rename files",
        ),
        # Moving bob's approved request into alice's directory.
        (
            {"renamed": {"requests/bob/old.yaml": "requests/alice/old.yaml"}},
            "a request PR must not rename files",
        ),
        # A valid new request, smuggling an edit or a deletion along.
        (
            {"files": {"requests/alice/new.yaml": REQUEST},
             "modified": {"requests/alice/old.yaml": request_yaml(duration="4h")}},
            EDITED,
        ),
        (
            {"files": {"requests/alice/new.yaml": REQUEST},
             "removed": ["requests/bob/old.yaml"]},
            DELETED,
        ),
    ],
    ids=["edit-own", "edit-other", "rename", "move-other", "add-and-edit", "add-and-delete"],
)
def test_edits_and_deletions_of_existing_requests_are_refused(
    on_main: Emulator, change: dict, phrase: str
) -> None:
    emu = on_main
    number = emu.github.open_pr(emu.repo, "alice", **change)
    assert emu.pr_event("opened", number).body["state"] == "invalid"
    # Not a request of alice's own added at the head: the comment says why, no status.
    assert emu.status(number) is None
    assert phrase in status_comment_of(emu, number)
    merge_and_assert_refused(emu, number)


@pytest.mark.parametrize("path", ["requests/alice/old.yaml", "requests/bob/old.yaml"])
def test_deleting_requests_no_pr_added_is_a_revocation_pr_that_revokes_nothing(
    on_main: Emulator, path: str
) -> None:
    emu = on_main
    number = emu.github.open_pr(emu.repo, "alice", removed=[path])
    assert emu.pr_event("opened", number).body["state"] == "revocation"
    status = emu.status(number)
    assert status is not None and status["state"] == "success"
    assert "no access" in status["description"]
    answer = emu.merge(number)
    assert answer.status == 200, answer.body
    assert not [e for e in emu.audit()
                if e["labels"]["event"] in ("gitops.revokeRole", "gitops.refuseActivation")]
