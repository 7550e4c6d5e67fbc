"""README: request file end to end: request files and the shapes of request PRs, and where the
policy is read.

Each case opens a PR on the fake GitHub, delivers its `pull_request` event to the real service
and checks the commit status (state and description), the status comment's problem list (with
paths and line numbers), the IAM policy and the audit log.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from jitaccess_sandbox.emulator import POLICY_YAML, REPO, Emulator
from tests.e2e.conftest import NOW, request_yaml

PATH = "requests/alice/request.yaml"
DEV = "payments-dev"


@pytest.fixture(scope="module")
def shared() -> Iterator[Emulator]:
    """One world for the cases that only open PRs (each gets its own PR number)."""
    with Emulator(now=NOW) as world:
        yield world
        assert world.github.recorder.unexpected == []
        assert world.google.recorder.unexpected == []


def deliver_opened(emu: Emulator, number: int) -> str:
    answer = emu.pr_event("opened", number)
    assert answer.status == 200, answer.body
    return str(answer.body.get("state"))


def status_of(emu: Emulator, number: int) -> tuple[str, str]:
    status = emu.status(number)
    assert status is not None
    assert status["context"] == "jit-access"
    return status["state"], status["description"]


def problems(emu: Emulator, number: int) -> list[str]:
    """The bullet lines of the one status comment (its Problems list)."""
    [body] = emu.comments(number)
    return [line for line in body.splitlines() if line.startswith("- ")]


def cut(text: str) -> str:
    """A commit-status description as the service cuts it (under 140 characters)."""
    return text if len(text) <= 139 else text[:138] + "…"


def audit_events(emu: Emulator) -> list[str]:
    return [e["labels"]["event"] for e in emu.audit()]


def writes_to_pr(emu: Emulator, number: int) -> int:
    """Statuses and comments the service posted for a PR (counted at the fake's wire)."""
    rec = emu.github.recorder
    return rec.count("POST", r"/statuses/") + rec.count("POST", rf"/issues/{number}/comments")


# ----------------------------------------------------------------------------------------------
# Invalid request files: every problem, with its line, and a failure status


SHOWN = f"`{PATH}`"  # the comment shows paths as code
AT = f"{SHOWN}, line"

INVALID_FILES = {
    "several-problems-at-once": (
        "project: Payments_Prod\nroles:\n  - roles/owner\n  - roles/cloudsql.admin\n"
        "  - roles/cloudsql.admin\n  - not-a-role\nduration: 3d\njustfication: restore\n",
        [
            f"- {AT} 1: 'Payments\\_Prod' is not a valid project ID: 6 to 30 lower-case "
            "letters, digits and hyphens, starting with a letter and not ending with a hyphen",
            f"- {AT} 3: roles/owner is a basic role; IAM conditions cannot be applied to basic "
            "roles, so it cannot be granted temporarily; request a predefined or custom role",
            f"- {AT} 5: roles/cloudsql.admin is listed twice",
            f"- {AT} 6: 'not-a-role' is not a role name; use roles/ID, projects/PROJECT/roles/ID "
            "or organizations/NUMBER/roles/ID",
            f"- {AT} 7: 'duration': expected a duration like 30m, 2h, 1h30m or PT2H, got '3d'",
            f"- {AT} 8: unknown key 'justfication' (did you mean 'justification'?); the keys are "
            "project, roles, duration, justification",
            f"- {SHOWN}: the key 'justification' is missing",
        ],
    ),
    "non-strings": (
        "project: 12345678\nroles: roles/cloudsql.admin\nduration: 2\njustification: yes\n",
        [
            f"- {AT} 1: 'project' must be a project ID in text, not a number; put it in quotes",
            f"- {AT} 2: 'roles' must be a list of roles, not text; write each role on its own "
            "line as '- roles/…'",
            f"- {AT} 3: 'duration' must be a duration like 30m, 2h, 1h30m or PT2H, not a "
            "number; write 2h or 2m",
            f"- {AT} 4: 'justification' must be text, not a yes/no value; put it in quotes",
        ],
    ),
    "anchors-and-aliases": (
        "project: &p payments-dev\nroles: [roles/cloudsql.admin]\nduration: 1h\n"
        "justification: *p\n",
        [
            f"- {AT} 1: YAML anchors (&amp;p) are not allowed; write values out",
            f"- {AT} 4: YAML aliases (\\*p) are not allowed; write the value out",
        ],
    ),
    "too-large": (
        "# " + "x" * 5000 + "\n" + request_yaml(),
        [f"- {SHOWN}: the file has 5124 bytes; at most 4096 allowed"],
    ),
    "yaml-syntax": (
        "project: [payments-dev\nroles: x\n",
        [f"- {AT} 2: not valid YAML: expected ',' or '\\]', but got ':'"],
    ),
    "empty": (
        "",
        [f"- {SHOWN}: the request file is empty; see requests/README.md for the format"],
    ),
    "not-a-mapping": (
        "- roles/cloudsql.admin\n",
        [f"- {AT} 1: a request must be a mapping of project, roles, duration, justification, "
         "not a list"],
    ),
    "duration-too-short": (
        request_yaml(duration="1m"),
        [f"- {AT} 4: the duration 1m is shorter than the minimum 5m"],
    ),
    "duration-too-long": (
        request_yaml(duration="5h"),
        [f"- {AT} 4: the duration 5h is longer than the maximum 4h"],
    ),
    "justification-mismatch-shows-hint": (
        request_yaml(justification="fixing stuff"),
        [f"- {AT} 5: 'justification' does not have the expected form: an incident or change "
         'number, e.g. "INC-1234: restore the replica"'],
    ),
    "justification-blank": (
        request_yaml(justification="   "),
        [f"- {AT} 5: 'justification' must say why you need access"],
    ),
    "justification-too-long": (
        request_yaml(justification="INC-1: " + "x" * 120),
        [f"- {AT} 5: 'justification' has 127 characters; at most 100 allowed"],
    ),
    "too-many-roles": (
        request_yaml(roles=tuple(f"roles/r{i}.admin" for i in range(6))),
        [f"- {AT} 3: 6 roles requested; at most 5 allowed"],
    ),
    "custom-role-of-another-project": (
        request_yaml(roles=("projects/other-proj/roles/custom",)),
        [f"- {AT} 3: projects/other-proj/roles/custom is a custom role of project other-proj, "
         "not of payments-dev"],
    ),
}


@pytest.mark.parametrize("text,expected", INVALID_FILES.values(), ids=INVALID_FILES.keys())
def test_invalid_request_file(shared: Emulator, text: str, expected: list[str]) -> None:
    emu = shared
    before = len(emu.audit())
    number = emu.open_request("alice", text)
    assert deliver_opened(emu, number) == "invalid"
    state, description = status_of(emu, number)
    assert state == "failure"
    if len(expected) == 1:
        message = expected[0].split(": ", 1)[1] if ", line" in expected[0] else (
            expected[0].removeprefix(f"- {SHOWN}: ")
        )
        assert description == cut(
            "Invalid request: " + message.replace("\\", "").replace("&amp;", "&")
        )
    else:
        assert description == f"Invalid request: {len(expected)} problems"
    assert problems(emu, number) == expected
    [body] = emu.comments(number)
    assert "### jit-access: ❌ Invalid request" in body
    assert "Fix the request file and push a new commit" in body
    assert emu.activations(DEV) == []
    assert len(emu.audit()) == before  # an invalid request is not audited


def test_fixing_the_file_turns_failure_into_success(emu: Emulator) -> None:
    number = emu.open_request("alice", request_yaml(duration="5h"))
    assert deliver_opened(emu, number) == "invalid"
    emu.github.push(REPO, number, {PATH: request_yaml(duration="2h")})
    assert emu.pr_event("synchronize", number).body["state"] == "ready"
    assert status_of(emu, number) == ("success", "Ready: self-approval for 1 role")
    assert len(emu.comments(number)) == 1  # the same comment, edited
    assert emu.github.comments(REPO, number)[0].history  # …and it was edited, not replaced


# ----------------------------------------------------------------------------------------------
# PR shapes


UNRELATED = "a request PR must change nothing but its request file; open a separate PR for " \
    "other changes"


@pytest.mark.parametrize("other", ["policy/jitaccess.yaml", "webhook/app.py", "CODEOWNERS"])
def test_request_with_another_change_fails_naming_the_file(shared: Emulator, other: str) -> None:
    emu = shared
    number = emu.github.open_pr(REPO, "alice", {PATH: request_yaml(), other: "changed\n"})
    assert deliver_opened(emu, number) == "invalid"
    message = f"'{other}': {UNRELATED}"
    assert status_of(emu, number) == ("failure", cut(f"Invalid request: {message}"))
    assert problems(emu, number) == [f"- {message}"]
    assert emu.activations(DEV) == []


def test_two_request_files_fail(shared: Emulator) -> None:
    emu = shared
    number = emu.github.open_pr(
        REPO, "alice",
        {"requests/alice/a.yaml": request_yaml(), "requests/alice/b.yaml": request_yaml()},
    )
    assert deliver_opened(emu, number) == "invalid"
    message = "the PR adds 2 files under requests/; add exactly one request file"
    assert status_of(emu, number) == ("failure", f"Invalid request: {message}")
    assert problems(emu, number) == [f"- {message}"]


@pytest.fixture
def existing(emu: Emulator) -> Emulator:
    """A world whose main branch already holds one of alice's (merged) requests."""
    emu.github.put_file(REPO, "requests/alice/old.yaml", request_yaml())
    return emu


def test_editing_an_existing_request_fails(existing: Emulator) -> None:
    emu = existing
    number = emu.github.open_pr(
        REPO, "alice", modified={"requests/alice/old.yaml": request_yaml(duration="4h")}
    )
    assert deliver_opened(emu, number) == "invalid"
    message = ("requests/alice/old.yaml: existing requests cannot be edited; add a new request "
               "file instead")
    # No commit status: a PR touching an existing request is not about a request of its own
    # added at its head, so it does not speak for that commit (another PR may share it); the
    # comment explains, and without the required status it cannot be merged.
    assert emu.status(number) is None
    assert problems(emu, number) == [f"- {message}"]
    assert audit_events(emu) == []


def test_deleting_a_request_is_a_revocation_pr(existing: Emulator) -> None:
    # Only a deletion: a revocation PR (tests/e2e/test_revocation.py), never an invalid
    # request; deleting beside any other change still fails.
    emu = existing
    number = emu.github.open_pr(REPO, "alice", removed=["requests/alice/old.yaml"])
    assert deliver_opened(emu, number) == "revocation"
    status = emu.status(number)
    assert status is not None and status["state"] == "success"


def test_deleting_a_request_beside_another_change_fails(existing: Emulator) -> None:
    emu = existing
    number = emu.github.open_pr(
        REPO, "alice", {"README.md": "x\n"}, removed=["requests/alice/old.yaml"]
    )
    assert deliver_opened(emu, number) == "invalid"
    message = "requests/alice/old.yaml: a request PR must not delete requests"
    assert emu.status(number) is None
    assert f"- {message}" in problems(emu, number)


def test_renaming_a_request_fails(existing: Emulator) -> None:
    emu = existing
    number = emu.github.open_pr(
        REPO, "alice", renamed={"requests/alice/old.yaml": "requests/alice/new.yaml"}
    )
    assert deliver_opened(emu, number) == "invalid"
    message = ("requests/alice/old.yaml -> requests/alice/new.yaml: a request PR must not "
               "rename files; add a new request file instead")
    assert emu.status(number) is None
    assert problems(emu, number) == [f"- {message.replace('->', '-&gt;')}"]


def test_request_in_another_users_directory_fails(shared: Emulator) -> None:
    emu = shared
    number = emu.github.open_pr(REPO, "alice", {"requests/bob/request.yaml": request_yaml()})
    assert deliver_opened(emu, number) == "invalid"
    message = ("requests/bob/request.yaml is in the directory of bob; file your request under "
               "requests/alice/")
    # No commit status: a PR filed in bob's directory may share the head commit of bob's own
    # PR, whose status it must not overwrite; unmergeable without the required status anyway.
    assert emu.status(number) is None
    assert problems(emu, number) == [f"- {message}"]
    assert emu.activations(DEV) == []


def test_directory_name_is_case_insensitive_and_yml_is_accepted(shared: Emulator) -> None:
    emu = shared
    number = emu.github.open_pr(REPO, "alice", {"requests/Alice/db.yml": request_yaml()})
    assert deliver_opened(emu, number) == "ready"
    assert status_of(emu, number) == ("success", "Ready: self-approval for 1 role")


def test_request_targeting_another_branch_fails_without_a_verdict(shared: Emulator) -> None:
    """Branch protection does not apply there, and a verdict on its head commit could show on a
    request PR into main that shares it: the comment explains, no status is set."""
    emu = shared
    number = emu.github.open_pr(REPO, "alice", {PATH: request_yaml()}, base="release")
    assert deliver_opened(emu, number) == "invalid"
    message = "a request PR must target main, not 'release'"
    # No commit status: branch protection does not apply there, and its diff against another
    # branch can differ from the one a PR from the same commit into main shows.
    assert emu.status(number) is None
    assert problems(emu, number) == [f"- {message}"]


def test_a_pr_into_another_branch_that_is_no_request_gets_nothing(emu: Emulator) -> None:
    number = emu.github.open_pr(REPO, "carol", {"README.md": "# access\n"}, base="release")
    emu.github.recorder.calls.clear()
    answer = emu.pr_event("opened", number)
    assert answer.body == {
        "message": f"PR #{number} touches no request; it targets release, which gets no verdict"
    }
    assert emu.status(number) is None and emu.comments(number) == []
    assert writes_to_pr(emu, number) == 0


def test_pr_touching_nothing_under_requests_passes_without_comment(emu: Emulator) -> None:
    """A required jit-access check must never block code or policy changes: `success`, and
    nothing else — no comment, no review request, no Google call."""
    number = emu.github.open_pr(REPO, "carol", {"README.md": "# access\n"})
    emu.github.recorder.calls.clear()
    answer = emu.pr_event("opened", number)
    assert answer.status == 200
    assert answer.body == {
        "message": f"PR #{number} touches no request: Not an access request", "state": "success"
    }
    assert status_of(emu, number) == ("success", "Not an access request")
    assert emu.status(number)["target_url"].endswith(f"/{REPO}/pull/{number}")  # type: ignore[index]
    assert emu.comments(number) == []
    assert writes_to_pr(emu, number) == 1  # the status
    assert emu.github.recorder.count("POST") == 1  # no review requests either
    assert emu.github.recorder.count("PATCH") == 0
    assert emu.google.recorder.calls == []
    assert emu.audit() == []
    # a push changes nothing: the same verdict is not posted again
    emu.github.push(REPO, number, {"README.md": "# access, again\n"})
    assert emu.pr_event("synchronize", number).body["state"] == "success"
    assert emu.github.recorder.count("POST", r"/statuses/") == 2  # the new head's
    assert emu.pr_event("synchronize", number).body["state"] == "success"
    assert emu.github.recorder.count("POST", r"/statuses/") == 2
    # the same when it is merged: nothing to activate
    emu.github.merge(REPO, number)
    answer = emu.deliver("pull_request", emu.pr_payload("closed", number))
    assert answer.body == {"message": f"PR #{number} touches no request; nothing to activate"}
    assert emu.comments(number) == [] and emu.audit() == []


def test_readme_under_requests_is_not_a_request(emu: Emulator) -> None:
    number = emu.github.open_pr(REPO, "carol", {"requests/README.md": "# how to request\n"})
    assert emu.pr_event("opened", number).body["message"].endswith("Not an access request")
    assert status_of(emu, number) == ("success", "Not an access request")
    assert emu.comments(number) == []


# ----------------------------------------------------------------------------------------------
# The policy is read from the default branch, never from the PR's head


LOOSE_POLICY = POLICY_YAML.replace("max_duration: 4h", "max_duration: 24h")


def test_request_that_loosens_the_policy_on_its_head_fails(emu: Emulator) -> None:
    number = emu.github.open_pr(
        REPO, "alice",
        {PATH: request_yaml(duration="8h")},
        modified={"policy/jitaccess.yaml": LOOSE_POLICY},
    )
    assert deliver_opened(emu, number) == "invalid"
    assert status_of(emu, number) == ("failure", "Invalid request: 2 problems")
    # judged by main's max_duration (4h), not the head's 24h, and the policy edit is refused
    assert problems(emu, number) == [
        f"- 'policy/jitaccess.yaml': {UNRELATED}",
        f"- {AT} 4: the duration 8h is longer than the maximum 4h",
    ]
    # even if an admin merges it, nothing is activated
    answer = emu.merge(number)
    assert answer.body["state"] == "refused"
    assert emu.activations(DEV) == []
    assert audit_events(emu) == ["gitops.refuseActivation"]


def test_policy_change_in_another_pr_applies_only_once_merged(emu: Emulator) -> None:
    # an administrator's PR loosening the policy, still open
    policy_pr = emu.github.open_pr(
        REPO, "carol", modified={"policy/jitaccess.yaml": LOOSE_POLICY}
    )
    assert emu.pr_event("opened", policy_pr).body["message"].endswith("Not an access request")
    number = emu.open_request("alice", request_yaml(duration="8h"))
    assert deliver_opened(emu, number) == "invalid"
    assert status_of(emu, number) == (
        "failure", "Invalid request: the duration 8h is longer than the maximum 4h"
    )
    # merged: the next event on the request reads the new policy from main
    emu.github.merge(REPO, policy_pr)
    answer = emu.deliver("pull_request", emu.pr_payload("closed", policy_pr))
    assert answer.body["message"].endswith("nothing to activate")
    assert emu.pr_event("synchronize", number).body["state"] == "ready"
    assert status_of(emu, number) == ("success", "Ready: self-approval for 1 role")
    assert emu.merge(number).body["state"] == "activated"
    [binding] = emu.activations(DEV)
    assert binding["condition"]["expression"] == (
        '(request.time >= timestamp("2026-11-29T10:00:00Z") && '
        'request.time < timestamp("2026-11-29T18:00:00Z"))'
    )


def test_identities_are_read_from_main_not_from_an_open_pr(emu: Emulator) -> None:
    emu.world.add_group("contractors@example.com", ["erin@example.com"])
    emu.world.add_binding(
        "projects/payments-dev", "roles/cloudsql.admin", "group:contractors@example.com",
        "has({}.jitAccessConstraint)",
    )
    ids = emu.github.file_at(REPO, "policy/identities.yaml")
    assert ids is not None
    ids_pr = emu.github.open_pr(
        REPO, "carol",
        modified={"policy/identities.yaml": ids.decode() + "erin: erin@example.com\n"},
    )
    assert emu.pr_event("opened", ids_pr).body["message"].endswith("Not an access request")
    number = emu.open_request("erin", request_yaml())
    assert emu.pr_event("opened", number).body["state"] == "not_eligible"
    assert status_of(emu, number) == ("failure", "Not eligible: erin has no identity mapping")
    assert problems(emu, number) == [
        "- @\u200derin has no Google identity mapping. Ask an administrator to add "
        "\\`erin: &lt;email&gt;\\` to policy/identities.yaml."
    ]
    assert audit_events(emu) == []

    emu.advance(timedelta(minutes=5))
    emu.github.merge(REPO, ids_pr)
    emu.deliver("pull_request", emu.pr_payload("closed", ids_pr))
    assert emu.pr_event("synchronize", number).body["state"] == "ready"
    assert status_of(emu, number) == ("success", "Ready: self-approval for 1 role")
    assert emu.merge(number).body["state"] == "activated"
    [binding] = emu.activations(DEV)
    assert binding["members"] == ["user:erin@example.com"]
    assert audit_events(emu) == ["gitops.activateRole"]
