"""What a merge handler takes from a signed payload: the PR number and the default branch."""

from __future__ import annotations

from typing import Any

import pytest

from webhook.service.handlers import signed_default_branch


def test_the_default_branch_comes_from_the_repository_of_the_payload() -> None:
    assert signed_default_branch({"repository": {"default_branch": "main"}}) == "main"
    assert signed_default_branch({"repository": {"default_branch": "release/2026"}}) == (
        "release/2026"
    )


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"repository": None},
        {"repository": "acme/access"},
        {"repository": {}},
        {"repository": {"default_branch": ""}},
        {"repository": {"default_branch": 7}},
        {"repository": {"default_branch": " main"}},
        {"repository": {"default_branch": "main\n"}},
        {"repository": {"default_branch": "x" * 256}},
    ],
)
def test_an_implausible_default_branch_is_ignored(payload: dict[str, Any]) -> None:
    """The lifecycle then judges against the default branch GitHub names now."""
    assert signed_default_branch(payload) is None
