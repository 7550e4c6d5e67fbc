"""YAML attacks through a request PR (README: request file): every one ends as a failed status with
a clear
problem — never a 500, never a hang, never a grant (merging anyway is refused too)."""

from __future__ import annotations

import pytest

from jitaccess_sandbox.emulator import Emulator
from tests.adversarial.conftest import (
    Case,
    check,
    merge_and_assert_refused,
    request_yaml,
    status_comment_of,
    status_of,
    submit,
)

BASE = request_yaml()  # a valid request of alice's for payments-dev
TAGS = "are not allowed; write plain values"


def padded(size: int) -> str:
    """BASE followed by a comment line, `size` bytes in all."""
    pad = size - len(BASE.encode()) - 1
    return BASE + "#" * pad + "\n"


BILLION_LAUGHS = (
    'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    + "".join(
        f"{chr(ord('a') + i)}: &{chr(ord('a') + i)} ["
        + ",".join([f"*{chr(ord('a') + i - 1)}"] * 9)
        + "]\n"
        for i in range(1, 9)
    )
    + BASE
)

CASES = [
    Case("billion laughs", BILLION_LAUGHS, "invalid",
         "YAML anchors (&amp;a) are not allowed; write values out"),
    Case("alias of an anchored value",
         "project: &p payments-dev\nroles:\n  - roles/cloudsql.admin\nduration: 1h\n"
         "justification: *p\n", "invalid", "YAML aliases (\\*p) are not allowed"),
    Case("nesting 100 deep", BASE + "x: " + "[" * 100 + "]" * 100 + "\n", "invalid",
         "the YAML is nested more than 16 levels deep"),
    # A long run of `[` is quadratic for PyYAML's composer: stopped on the event stream.
    Case("4000 open brackets", "x: " + "[" * 4000 + "\n", "invalid",
         "the YAML is nested more than 16 levels deep"),
    Case("deep block mappings",
         BASE + "".join("  " * i + f"k{i}:\n" for i in range(40)) + "  " * 40 + "v: 1\n",
         "invalid", "the YAML is nested more than 16 levels deep"),
    Case("4096 bytes", padded(4096), "ready"),
    Case("4097 bytes", padded(4097), "invalid", "the file has 4097 bytes; at most 4096 allowed"),
    Case("100 KiB", padded(100 * 1024), "invalid", "4096 bytes"),
    # The second `project` must not win silently, whichever comes first.
    Case("duplicate key, second wins?", BASE + "project: payments-prod\n", "invalid",
         "the key 'project' appears twice (first on line 1); keep one"),
    Case("duplicate key, first wins?", "project: payments-prod\n" + BASE, "invalid",
         "the key 'project' appears twice (first on line 1); keep one"),
    Case("duplicate key, differently quoted", BASE + '"project": payments-prod\n', "invalid",
         "the key 'project' appears twice"),
    Case("duplicate key in flow style",
         '{project: payments-dev, project: payments-prod, roles: [roles/cloudsql.admin], '
         'duration: 1h, justification: "INC-1: x"}\n', "invalid",
         "the key 'project' appears twice"),
    Case("python object tag", BASE + "x: !!python/object/apply:os.system ['echo pwned']\n",
         "invalid", f"YAML tags (tag:yaml.org,2002:python/object/apply:os.system) {TAGS}"),
    Case("python name tag", "project: !!python/name:os.system\n" + BASE[BASE.index("\n") + 1:],
         "invalid", f"YAML tags (tag:yaml.org,2002:python/name:os.system) {TAGS}"),
    Case("local tag", BASE.replace("project: ", "project: !env "), "invalid",
         f"YAML tags (!env) {TAGS}"),
    Case("str tag", BASE.replace("project: ", "project: !!str "), "invalid",
         f"YAML tags (tag:yaml.org,2002:str) {TAGS}"),
    Case("TAG directive", "%TAG !p! tag:yaml.org,2002:python/object/apply:\n---\n"
         + BASE.replace("project: ", "project: !p!os.system "), "invalid",
         f"YAML tags (tag:yaml.org,2002:python/object/apply:os.system) {TAGS}"),
    Case("merge key", "<<: {project: payments-prod}\n" + BASE.replace("project: payments-dev\n",
                                                                         ""),
         "invalid", "YAML merge keys (&lt;&lt;) are not allowed"),
    Case("multi-document", BASE + "---\n" + request_yaml(project="payments-prod"), "invalid",
         "the file must hold one YAML document; remove the '---' separator"),
    Case("document end then another", BASE + "...\n---\nproject: payments-prod\n", "invalid",
         "the file must hold one YAML document"),
    Case("complex key", BASE + "? [project]\n: payments-prod\n", "invalid",
         "keys must be text; found a list"),
    Case("YAML 1.1 boolean", BASE.replace("payments-dev", "yes"), "invalid",
         "'project' must be a project ID in text, not a yes/no value"),
    Case("null project", BASE.replace("payments-dev", "~"), "invalid",
         "'project' must be a project ID in text, not nothing"),
    Case("unknown key", BASE + "member: user:mallory@evil.example\n", "invalid",
         "unknown key 'member'"),
    Case("typo of a key", BASE.replace("duration:", "duraton:"), "invalid",
         "unknown key 'duraton' (did you mean 'duration'?)"),
    Case("a list", "- " + BASE.replace("\n", "\n  "), "invalid",
         "a request must be a mapping of project, roles, duration, justification, not a list"),
    Case("empty", "", "invalid", "the request file is empty"),
    Case("only a comment", "# nothing\n", "invalid", "the request file is empty"),
    Case("tab indentation", BASE.replace("  - roles", "\t- roles"), "invalid",
         "a tab cannot indent or separate YAML; use spaces"),
    Case("NUL byte", BASE.replace("1h", "1h\x00"), "invalid",
         "the file contains the control character U+0000; remove it"),
    Case("ANSI escape", BASE.replace("restore", "\x1b[2Jrestore"), "invalid",
         "the control character U+001B"),
    Case("invalid surrogate escape", BASE.replace("restore", "\\ud800restore"), "invalid",
         "must be a single line of visible text; it contains U+D800"),
    # Positive controls: harmless YAML variations are accepted.
    Case("explicit document start", "---\n" + BASE, "ready"),
    Case("flow style (JSON)",
         '{"project": "payments-dev", "roles": ["roles/cloudsql.admin"], "duration": "1h", '
         '"justification": "INC-1: x"}\n', "ready"),
    Case("CRLF line ends", BASE.replace("\n", "\r\n"), "ready"),
]

BYTE_CASES = [
    (BASE.encode() + b"# \xff\xfe\n", "the file is not valid UTF-8 text; save it as UTF-8"),
    (b"project: payments-d\xe9v\n" + BASE.encode()[22:], "not valid UTF-8"),
    (BASE.encode("utf-16"), "the file is not valid UTF-8 text; save it as UTF-8"),
    (BASE.encode("utf-16-le"), "the file contains the control character U+0000"),
    (BASE.encode("utf-32"), "not valid UTF-8"),
    (BASE.encode("latin-1").replace(b"restore", b"r\xe9tablir"), "not valid UTF-8"),
    (b"\x00" * 64, "the control character U+0000"),
    # Overlong UTF-8 for '/': a classic filter bypass; invalid UTF-8.
    (BASE.encode().replace(b"roles/", b"roles\xc0\xaf"), "not valid UTF-8"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_yaml_attack(shared_emu: Emulator, case: Case) -> None:
    check(shared_emu, case)


@pytest.mark.parametrize(
    ("data", "phrase"), BYTE_CASES,
    ids=["invalid byte", "latin-1 byte", "utf-16", "utf-16-le", "utf-32", "latin-1 file",
         "only NULs", "overlong slash"],
)
def test_a_file_that_is_not_utf8_text(shared_emu: Emulator, data: bytes, phrase: str) -> None:
    number, answer = submit(shared_emu, "alice", data)
    assert answer.status == 200
    assert answer.body["state"] == "invalid"
    assert status_of(shared_emu, number)["state"] == "failure"
    comment = status_comment_of(shared_emu, number)
    assert phrase in comment, comment
    merge_and_assert_refused(shared_emu, number)


def test_a_file_over_a_mebibyte_is_refused_not_read(shared_emu: Emulator) -> None:
    """GitHub's contents API does not even inline such a file; the service refuses it."""
    number, answer = submit(shared_emu, "alice", padded(2 * 1024 * 1024))
    assert answer.status == 200, answer.body
    assert answer.body["state"] == "invalid"
    assert "4096 bytes" in status_of(shared_emu, number)["description"]
    merge_and_assert_refused(shared_emu, number)
