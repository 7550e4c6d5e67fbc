"""`jitaccess validate`: compiler-style output and exit codes."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from webhook.service.validate import run_validate

ROOT = Path(__file__).resolve().parents[2]
GOOD = (
    "project: payments-prod\nroles: [roles/cloudsql.admin]\nduration: 2h\n"
    "justification: 'INC-1234: restore'\n"
)
POLICY = "scope: organizations/1\nactivation: {max_duration: 1h}\n"


def run(paths: list[str], policy: str) -> tuple[int, list[str]]:
    out = io.StringIO()
    code = run_validate(paths, policy, out)
    return code, out.getvalue().splitlines()


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "policy").mkdir()
    (tmp_path / "policy" / "jitaccess.yaml").write_text(POLICY)
    (tmp_path / "requests" / "alice").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_valid_file(repo: Path) -> None:
    (repo / "requests/alice/a.yaml").write_text(GOOD.replace("2h", "1h"))
    assert run(["requests/alice/a.yaml"], "policy/jitaccess.yaml") == (
        0,
        ["1 file checked, 0 problems"],
    )


def test_problems_use_the_policy_limits(repo: Path) -> None:
    (repo / "requests/alice/a.yaml").write_text(GOOD)
    assert run(["requests/alice/a.yaml"], "policy/jitaccess.yaml") == (
        1,
        [
            "requests/alice/a.yaml:3: duration_too_long: "
            "the duration 2h is longer than the maximum 1h",
            "1 file checked, 1 problem",
        ],
    )


def test_directory_is_searched_recursively_and_sorted(repo: Path) -> None:
    (repo / "requests/alice/b.yml").write_text(GOOD.replace("2h", "1h"))
    (repo / "requests/alice/a.yaml").write_text("project: x\n")
    (repo / "requests/README.md").write_text("# not a request\n")
    (repo / "requests/alice/notes.txt").write_text("ignored\n")
    code, lines = run(["requests"], "policy/jitaccess.yaml")
    assert code == 1
    assert lines == [
        "requests/alice/a.yaml:1: invalid_project: 'x' is not a valid project ID: 6 to 30 "
        "lower-case letters, digits and hyphens, starting with a letter and not ending with "
        "a hyphen",
        "requests/alice/a.yaml: missing_key: the key 'roles' is missing",
        "requests/alice/a.yaml: missing_key: the key 'duration' is missing",
        "requests/alice/a.yaml: missing_key: the key 'justification' is missing",
        "2 files checked, 4 problems",
    ]


def test_layout_problem(repo: Path) -> None:
    (repo / "requests/a.yaml").write_text(GOOD.replace("2h", "1h"))
    code, lines = run(["requests/a.yaml"], "policy/jitaccess.yaml")
    assert code == 1
    assert lines == [
        "requests/a.yaml: invalid_request_path: 'requests/a.yaml': a request file must be "
        "requests/<your-login>/<name>.yaml",
        "1 file checked, 1 problem",
    ]


def test_no_layout_check_outside_requests(repo: Path) -> None:
    (repo / "draft.yaml").write_text(GOOD.replace("2h", "1h"))
    assert run(["draft.yaml"], "policy/jitaccess.yaml")[0] == 0


def test_missing_file_is_a_problem_not_a_crash(repo: Path) -> None:
    assert run(["requests/alice/nope.yaml"], "policy/jitaccess.yaml") == (
        1,
        ["requests/alice/nope.yaml: missing_file: no such file", "1 file checked, 1 problem"],
    )


def test_policy_problems_are_reported_against_the_policy(repo: Path) -> None:
    (repo / "policy/jitaccess.yaml").write_text("scope: organizations/1\nactivaton: {}\n")
    (repo / "requests/alice/a.yaml").write_text(GOOD)
    code, lines = run(["requests/alice/a.yaml"], "policy/jitaccess.yaml")
    assert code == 1
    assert lines == [
        "policy/jitaccess.yaml:2: unknown_key: unknown key 'activaton' (did you mean "
        "'activation'?); the keys are scope, activation, justification, eligibility, approval, "
        "identities, cleanup, revocation, rules, break_glass",
        "1 file checked, 1 problem",
    ]


def test_missing_policy_uses_defaults(repo: Path) -> None:
    (repo / "requests/alice/a.yaml").write_text(GOOD)
    assert run(["requests/alice/a.yaml"], "policy/missing.yaml") == (
        0,
        [
            "note: policy/missing.yaml not found; checking against the default limits",
            "1 file checked, 0 problems",
        ],
    )


def test_policy_files_are_checked_as_what_they_are(repo: Path) -> None:
    (repo / "policy/identities.yaml").write_text("alice: user:alice@example.com\n")
    code, lines = run(["policy"], "policy/jitaccess.yaml")
    assert code == 1
    assert lines == [
        "policy/identities.yaml:1: invalid_email: the identity of 'alice' must be a bare email "
        "address like alice@example.com, not 'user:alice@example.com'",
        "2 files checked, 1 problem",
    ]


def test_oversized_file_is_read_only_up_to_the_limit(repo: Path) -> None:
    (repo / "requests/alice/big.yaml").write_bytes(b"#" * 10_000_000)
    assert run(["requests/alice/big.yaml"], "policy/jitaccess.yaml") == (
        1,
        [
            "requests/alice/big.yaml: too_large: the file has 4097 bytes; at most 4096 allowed",
            "1 file checked, 1 problem",
        ],
    )


def test_shipped_examples() -> None:
    policy = str(ROOT / "policy" / "jitaccess.yaml")
    good = str(ROOT / "examples" / "requests")
    assert run([good], policy) == (0, ["1 file checked, 0 problems"])
    broken = ROOT / "examples" / "broken"
    code, lines = run([str(broken)], policy)
    assert code == 1
    prefix = str(broken / "requests" / "alice" / "bad.yaml")
    assert [line.removeprefix(prefix).split(":")[1:3] for line in lines[:-1]] == [
        ["3", " invalid_project"],
        ["5", " basic_role"],
        ["7", " duplicate_role"],
        ["8", " invalid_duration"],
        ["9", " unknown_key"],
        [" missing_key", " the key 'justification' is missing"],
    ]
    assert lines[-1] == "1 file checked, 6 problems"


def test_shipped_requests_directory_holds_no_invalid_files() -> None:
    assert run([str(ROOT / "requests")], str(ROOT / "policy" / "jitaccess.yaml"))[0] == 0


def test_the_identities_file_is_checked_too(repo: Path) -> None:
    (repo / "policy/identities.yaml").write_text(
        "alice: alice@example.com\nbob: {email: bob@example.com, id: 0}\n"
    )
    (repo / "requests/alice/a.yaml").write_text(GOOD.replace("2h", "1h"))
    out = io.StringIO()
    code = run_validate(["requests", "policy/identities.yaml"], "policy/jitaccess.yaml", out,
                        identities_path="policy/identities.yaml")
    assert code == 1
    assert out.getvalue().splitlines() == [  # reported once, though given twice
        "policy/identities.yaml:2: invalid_id: the id of 'bob' must be the account's numeric "
        "GitHub id (a positive whole number, e.g. 583231), not '0'",
        "2 files checked, 1 problem",
    ]


def test_require_id_notes_the_entries_that_map_nobody(repo: Path) -> None:
    (repo / "policy/jitaccess.yaml").write_text(POLICY + "identities: {require_id: true}\n")
    (repo / "policy/identities.yaml").write_text(
        "alice: alice@example.com\nbob: {email: bob@example.com, id: 7}\n"
    )
    out = io.StringIO()
    assert run_validate([], "policy/jitaccess.yaml", out,
                        identities_path="policy/identities.yaml") == 0
    assert out.getvalue().splitlines() == [
        "note: identities.require_id is set, and 1 of the 2 entries in policy/identities.yaml "
        "have no id, so they map nobody; `jitaccess identities pin` fills the ids in",
        "0 files checked, 0 problems",
    ]


def test_a_large_identities_file_is_read_whole(repo: Path) -> None:
    lines = "".join(f"user{i:05d}: {{email: u{i}@example.com, id: {i + 1}}}\n"
                    for i in range(20_000))
    assert len(lines) > 64 * 1024
    (repo / "policy/identities.yaml").write_text(lines)
    assert run(["policy/identities.yaml"], "policy/jitaccess.yaml") == (
        0, ["1 file checked, 0 problems"]
    )


RULES_POLICY = """\
scope: organizations/1
activation: {max_duration: 4h}
rules:
  - name: databases
    match: {roles: ["roles/cloudsql.*"]}
    max_duration: 1h
  - name: finance
    match: {folders: [folders/77]}
    max_duration: 10m
  - name: cloudsql admin
    match: {roles: [roles/cloudsql.admin]}
"""


def test_unreachable_rules_are_warnings_and_do_not_fail(repo: Path) -> None:
    (repo / "policy/jitaccess.yaml").write_text(RULES_POLICY)
    assert run([], "policy/jitaccess.yaml") == (
        0,
        [
            "policy/jitaccess.yaml:10: warning: unreachable_rule: rule 'cloudsql admin' can "
            "never apply: the earlier rule 'databases' (line 4) fits every role it fits",
            "0 files checked, 0 problems, 1 warning",
        ],
    )
    # Given as a file to check too, the policy is reported once.
    code, lines = run(["policy"], "policy/jitaccess.yaml")
    assert code == 0
    assert lines[-1] == "1 file checked, 0 problems, 1 warning"
    assert len(lines) == 2


def test_warnings_of_another_policy_file_are_printed(repo: Path) -> None:
    other = repo / "other" / "policy"
    other.mkdir(parents=True)
    (other / "jitaccess.yaml").write_text(RULES_POLICY)
    code, lines = run(["other/policy/jitaccess.yaml"], "policy/jitaccess.yaml")
    assert code == 0
    assert lines == [
        "other/policy/jitaccess.yaml:10: warning: unreachable_rule: rule 'cloudsql admin' can "
        "never apply: the earlier rule 'databases' (line 4) fits every role it fits",
        "1 file checked, 0 problems, 1 warning",
    ]


def test_policy_problems_fail_and_hide_the_warnings(repo: Path) -> None:
    (repo / "policy/jitaccess.yaml").write_text(
        RULES_POLICY + "  - name: nobody\n    approval: {peers: false}\n"
    )
    assert run([], "policy/jitaccess.yaml") == (
        1,
        [
            "policy/jitaccess.yaml:13: invalid_rule: rule 'nobody' has 'peers: false' and no "
            "'approvers', so nobody can approve a role that needs approval; name approvers or "
            "allow peers",
            "0 files checked, 1 problem",
        ],
    )


def test_requests_are_checked_against_the_rules(repo: Path) -> None:
    (repo / "policy/jitaccess.yaml").write_text(RULES_POLICY)
    (repo / "requests/alice/a.yaml").write_text(GOOD)  # 2h for roles/cloudsql.admin
    code, lines = run(["requests/alice/a.yaml"], "policy/jitaccess.yaml")
    assert code == 1
    assert lines[1:] == [
        "requests/alice/a.yaml:3: duration_too_long: the duration 2h is longer than the "
        "maximum 1h of rule \"databases\" (roles/cloudsql.admin)",
        "1 file checked, 1 problem, 1 warning",
    ]


def test_folder_rules_are_noted_as_not_checked(repo: Path) -> None:
    (repo / "policy/jitaccess.yaml").write_text(RULES_POLICY)
    (repo / "requests/alice/a.yaml").write_text(
        GOOD.replace("roles/cloudsql.admin", "roles/cloudsql.admin, roles/pubsub.admin")
        .replace("2h", "1h")
    )
    code, lines = run(["requests/alice/a.yaml"], "policy/jitaccess.yaml")
    assert code == 0
    assert lines[1:] == [
        "note: requests/alice/a.yaml: the limits of roles/pubsub.admin (rule \"finance\") "
        "depend on the folders the project lies in and were not checked; the service checks "
        "them on the PR",
        "1 file checked, 0 problems, 1 warning",
    ]


def test_no_note_without_folder_rules(repo: Path) -> None:
    (repo / "requests/alice/a.yaml").write_text(GOOD.replace("2h", "1h"))
    assert run(["requests/alice/a.yaml"], "policy/jitaccess.yaml") == (
        0, ["1 file checked, 0 problems"]
    )


def test_break_glass_requests(repo: Path) -> None:
    (repo / "requests/alice/a.yaml").write_text(GOOD.replace("2h", "1h") + "break_glass: true\n")
    assert run(["requests/alice/a.yaml"], "policy/jitaccess.yaml") == (
        1,
        [
            "requests/alice/a.yaml:5: break_glass_disabled: 'break_glass: true', but "
            "break-glass is not enabled in the policy (break_glass.enabled); remove the key and "
            "ask for approval",
            "1 file checked, 1 problem",
        ],
    )
    unreachable = "  - name: cloudsql admin\n    match: {roles: [roles/cloudsql.admin]}\n"
    (repo / "policy/jitaccess.yaml").write_text(
        RULES_POLICY.replace(unreachable, "") + "break_glass: {enabled: true}\n"
    )
    # Judged by break-glass's limits: no folder rule matters, nothing is left unchecked.
    assert run(["requests/alice/a.yaml"], "policy/jitaccess.yaml") == (
        0, ["1 file checked, 0 problems"]
    )
