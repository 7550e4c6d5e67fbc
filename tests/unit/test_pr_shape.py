"""The shape of a request PR (README: request file): one added file in the author's directory,
nothing else."""

from __future__ import annotations

import pytest

from webhook.core.model import ChangedFile, PrShape
from webhook.core.request_file import check_pr_shape


def shape(*files: ChangedFile, author: str = "alice", base: str = "main") -> PrShape:
    return check_pr_shape(files, author, base, "main")


def added(name: str) -> ChangedFile:
    return ChangedFile(name, "added")


def codes(result: PrShape) -> list[str]:
    return [p.code for p in result.problems]


def test_valid_request_pr() -> None:
    assert shape(added("requests/alice/db-restore.yaml")) == PrShape(
        True, "requests/alice/db-restore.yaml", (), own_request=True
    )


@pytest.mark.parametrize(
    "name", ["requests/alice/x.yml", "requests/Alice/a_b-c.1.yaml", "requests/alice/2026.yaml"]
)
def test_valid_names(name: str) -> None:
    assert shape(added(name)) == PrShape(True, name, (), own_request=True)


def test_author_login_is_case_insensitive() -> None:
    assert shape(added("requests/alice/x.yaml"), author="Alice").problems == ()


@pytest.mark.parametrize(
    "files",
    [
        (),
        (added("README.md"),),
        (ChangedFile("webhook/main.py", "modified"), added("docs/x.md")),
        (ChangedFile("requests/README.md", "modified"),),
        (added("requestsx/alice/a.yaml"),),
        (added("Requests/alice/a.yaml"),),
    ],
)
def test_not_a_request_pr(files: tuple[ChangedFile, ...]) -> None:
    assert shape(*files) == PrShape(False, None, ())


def test_mixed_with_other_changes_names_each_file() -> None:
    result = shape(
        added("requests/alice/a.yaml"),
        ChangedFile("policy/jitaccess.yaml", "modified"),
        ChangedFile("CODEOWNERS", "added"),
        ChangedFile("requests/README.md", "modified"),
    )
    assert result.is_request and result.path == "requests/alice/a.yaml"
    assert codes(result) == ["unrelated_change"] * 3
    assert result.problems[0].message == (
        "'policy/jitaccess.yaml': a request PR must change nothing but its request file; "
        "open a separate PR for other changes"
    )
    assert "'CODEOWNERS'" in result.problems[1].message
    assert "'requests/README.md'" in result.problems[2].message


def test_several_request_files() -> None:
    result = shape(added("requests/alice/a.yaml"), added("requests/alice/b.yaml"))
    assert result.path is None
    assert codes(result) == ["several_requests"]
    assert result.problems[0].message == (
        "the PR adds 2 files under requests/; add exactly one request file"
    )


def test_edit_delete_rename_have_distinct_codes() -> None:
    result = shape(
        ChangedFile("requests/alice/old.yaml", "modified"),
        ChangedFile("requests/bob/old.yaml", "removed"),
        ChangedFile("requests/alice/new.yaml", "renamed", "requests/alice/older.yaml"),
    )
    assert result == PrShape(True, None, result.problems)
    assert codes(result) == ["request_modified", "request_deleted", "request_renamed"]
    assert result.problems[2].message == (
        "requests/alice/older.yaml -> requests/alice/new.yaml: a request PR must not rename "
        "files; add a new request file instead"
    )


def test_rename_out_of_requests_is_a_request_pr() -> None:
    result = shape(ChangedFile("attic/a.yaml", "renamed", "requests/alice/a.yaml"))
    assert result.is_request and codes(result) == ["request_renamed"]


def test_rename_into_requests_is_refused() -> None:
    result = shape(ChangedFile("requests/alice/a.yaml", "renamed", "docs/a.yaml"))
    assert codes(result) == ["request_renamed"]


def test_mode_change_of_request_is_an_edit() -> None:
    assert codes(shape(ChangedFile("requests/alice/a.yaml", "changed"))) == ["request_modified"]


def test_copied_counts_as_added() -> None:
    result = shape(ChangedFile("requests/alice/b.yaml", "copied", "requests/alice/a.yaml"))
    assert result == PrShape(True, "requests/alice/b.yaml", (), own_request=True)


def test_other_users_directory_keeps_path_for_reporting() -> None:
    result = shape(added("requests/bob/a.yaml"))
    assert result.path == "requests/bob/a.yaml"
    assert codes(result) == ["wrong_directory"]
    assert result.problems[0].message == (
        "requests/bob/a.yaml is in the directory of bob; file your request under requests/alice/"
    )


def test_wrong_base_branch() -> None:
    result = shape(added("requests/alice/a.yaml"), base="release")
    assert codes(result) == ["wrong_base_branch"]
    assert result.problems[0].message == "a request PR must target main, not 'release'"
    assert result.path == "requests/alice/a.yaml"


@pytest.mark.parametrize(
    "name",
    [
        "requests/a.yaml",  # no login directory
        "requests/alice/sub/a.yaml",  # too deep
        "requests/alice/a.json",
        "requests/alice/a.YAML",
        "requests/alice/.yaml",
        "requests/alice/.hidden.yaml",
        "requests/alice/a..b.yaml",
        "requests/alice/a b.yaml",
        "requests/alice/ä.yaml",
        "requests/../policy/jitaccess.yaml",
        "requests/alice/../bob/a.yaml",
        "requests/./alice/a.yaml",
        "requests//a.yaml",
        "requests/alice\\a.yaml",
        "requests/\u212alice/a.yaml",  # Kelvin sign K, lower-cases to ASCII k
        "requests/аlice/a.yaml",  # Cyrillic а
        "requests/-alice/a.yaml",
        "requests/al--ice/a.yaml",
    ],
)
def test_invalid_paths(name: str) -> None:
    result = shape(added(name), author="alice")
    assert result.is_request
    assert result.path is None
    assert codes(result) == ["invalid_request_path"]


def test_lookalike_login_does_not_match_author() -> None:
    # U+212A KELVIN SIGN lower-cases to "k": it must not pass for the login "kim".
    assert "\u212aim".lower() == "kim"
    result = shape(added("requests/\u212aim/a.yaml"), author="kim")
    assert codes(result) == ["invalid_request_path"]
    assert result.path is None


def test_invalid_author_login() -> None:
    result = shape(added("requests/kim/a.yaml"), author="\u212aim")
    assert codes(result) == ["invalid_author"]


def test_all_problems_at_once() -> None:
    result = shape(
        added("requests/bob/a.yaml"),
        ChangedFile("requests/alice/old.yaml", "removed"),
        ChangedFile("app.yaml", "modified"),
        base="dev",
    )
    assert codes(result) == [
        "request_deleted",
        "unrelated_change",
        "wrong_directory",
        "wrong_base_branch",
    ]


@pytest.mark.parametrize(
    ("files", "author", "own"),
    [
        ((added("requests/alice/a.yaml"),), "alice", True),
        ((added("requests/ALICE/a.yaml"),), "alice", True),
        ((added("requests/alice/a.json"), ChangedFile("app.py", "modified")), "alice", True),
        ((added("requests/alice/a.yaml"), added("requests/alice/b.yaml")), "alice", True),
        ((added("requests/bob/a.yaml"),), "alice", False),
        ((added("requests/alice/a.yaml"), added("requests/bob/b.yaml")), "alice", False),
        ((ChangedFile("requests/alice/a.yaml", "modified"),), "alice", False),
        ((ChangedFile("requests/alice/a.yaml", "removed"),), "alice", False),
        ((ChangedFile("requests/alice/b.yaml", "renamed", "requests/alice/a.yaml"),), "alice",
         False),
        ((ChangedFile("attic/a.yaml", "renamed", "requests/bob/a.yaml"),), "alice", False),
        ((added("requests/a.yaml"),), "alice", False),
        ((added("requests//alice/a.yaml"),), "alice", False),
        ((added("requests/alice/./a.yaml"),), "alice", False),
        ((added("requests/alice/../bob/a.yaml"),), "alice", False),
        ((added("requests/\u0430lice/a.yaml"),), "alice", False),
        ((added("requests/kim/a.yaml"),), "\u212aim", False),
        ((added("requests/alice/a.yaml"),), "alice[bot]", False),
    ],
)
def test_own_request_means_every_request_change_adds_a_file_in_the_authors_directory(
    files: tuple[ChangedFile, ...], author: str, own: bool
) -> None:
    assert shape(*files, author=author).own_request is own


def test_a_cut_file_list_is_a_failing_request_shape_whatever_it_shows() -> None:
    """GitHub lists the first 300 files of a comparison: the request file, or anything else,
    may be among those left out, so even a list touching nothing under requests/ is judged."""
    files = tuple(added(f"docs/{i:03}.md") for i in range(300))
    result = check_pr_shape(files, "alice", "main", "main", complete=False)
    assert result == PrShape(True, None, result.problems)
    assert codes(result) == ["too_many_files"]
    assert result.problems[0].message == (
        "the PR changes more files than GitHub lists in one comparison (at least 300), so it "
        "cannot be checked; a request PR adds exactly one file"
    )
