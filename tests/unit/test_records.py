"""The keys by which the service recognises its own earlier work: comment markers, audit ids."""

from __future__ import annotations

from webhook.core import records, render
from webhook.core.records import (
    ACTIVATION_FAILED_MARKER_PREFIX,
    ACTIVATION_MARKER_PREFIX,
    COMMENT_MARKER,
    REFUSAL_MARKER_PREFIX,
    activation_failed_marker,
    activation_insert_id,
    activation_marker,
    refusal_insert_id,
    refusal_marker,
)

HEAD = "0123456789abcdef0123456789abcdef01234567"


def test_markers_are_hidden_html_comments_naming_the_head_commit() -> None:
    assert COMMENT_MARKER == "<!-- jit-access:status -->"
    assert activation_marker(HEAD) == f"<!-- jit-access:activation {HEAD} -->"
    assert refusal_marker(HEAD) == f"<!-- jit-access:refusal {HEAD} -->"
    assert activation_failed_marker(HEAD) == f"<!-- jit-access:activation-failed {HEAD} -->"


def test_each_marker_starts_with_its_prefix_and_no_prefix_starts_another_kind() -> None:
    assert activation_marker(HEAD).startswith(ACTIVATION_MARKER_PREFIX)
    assert refusal_marker(HEAD).startswith(REFUSAL_MARKER_PREFIX)
    assert activation_failed_marker(HEAD).startswith(ACTIVATION_FAILED_MARKER_PREFIX)
    # An activation-failed comment is no activation: its marker must not contain the other.
    assert activation_marker(HEAD) not in activation_failed_marker(HEAD)


def test_a_commit_id_cannot_close_the_marker_comment() -> None:
    """Only hex digits of the id are kept (at most 64), whatever GitHub or a fake sends."""
    forged = "abc --> <b>x</b> <!-- " + "f" * 80
    marker = activation_marker(forged)
    assert marker == f"<!-- jit-access:activation abcbb{'f' * 59} -->"
    assert marker.count("-->") == 1


def test_audit_insert_ids_are_one_per_pr_head_and_kind() -> None:
    assert activation_insert_id("acme/access#7", HEAD) == f"activate:acme/access#7@{HEAD}"
    assert refusal_insert_id("acme/access#7", HEAD) == f"refuse:acme/access#7@{HEAD}"
    assert activation_insert_id("acme/access#7", HEAD) != refusal_insert_id("acme/access#7", HEAD)


def test_render_still_offers_the_markers_it_puts_in_its_comments() -> None:
    for name in (
        "COMMENT_MARKER", "ACTIVATION_MARKER_PREFIX", "REFUSAL_MARKER_PREFIX",
        "ACTIVATION_FAILED_MARKER_PREFIX", "activation_marker", "refusal_marker",
        "activation_failed_marker",
    ):
        assert getattr(render, name) is getattr(records, name)
