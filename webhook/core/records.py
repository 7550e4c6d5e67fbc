"""What the service leaves behind to recognise its own earlier work: comment markers, audit ids.

The service keeps no database. A redelivered event finds what an earlier delivery did by these
keys: the hidden marker at the top of each of its PR comments (only its own comments are read,
so a participant pasting a marker forges nothing), and the insert id of each audit entry (Cloud
Logging keeps one entry of those written with the same id and time).
"""

from __future__ import annotations

import re

#: Hidden marker of the one status comment the service edits in place.
COMMENT_MARKER = "<!-- jit-access:status -->"

#: Prefix of the marker of the comment posted after activation: the full marker is
#: `<!-- jit-access:activation <head_sha> -->`, so that a redelivered merge event can tell that
#: it already commented.
ACTIVATION_MARKER_PREFIX = "<!-- jit-access:activation "

#: Prefix of the marker of the comment that refuses a merged request (same idea).
REFUSAL_MARKER_PREFIX = "<!-- jit-access:refusal "

#: Prefix of the marker of the comment that reports a failed activation.
ACTIVATION_FAILED_MARKER_PREFIX = "<!-- jit-access:activation-failed "


def activation_marker(head_sha: str) -> str:
    """The hidden marker of the activation comment for a head commit."""
    return f"{ACTIVATION_MARKER_PREFIX}{_marker_safe(head_sha)} -->"


def refusal_marker(head_sha: str) -> str:
    """The hidden marker of the refusal comment for a head commit."""
    return f"{REFUSAL_MARKER_PREFIX}{_marker_safe(head_sha)} -->"


def activation_failed_marker(head_sha: str) -> str:
    """The hidden marker of the activation-failure comment for a head commit."""
    return f"{ACTIVATION_FAILED_MARKER_PREFIX}{_marker_safe(head_sha)} -->"


def activation_insert_id(pr_reference: str, head_sha: str) -> str:
    """The audit insert id of the activation of a PR's head: `activate:<owner/repo#n>@<sha>`."""
    return f"activate:{pr_reference}@{head_sha}"


def refusal_insert_id(pr_reference: str, head_sha: str) -> str:
    """The audit insert id of the refusal of a PR's head: `refuse:<owner/repo#n>@<sha>`."""
    return f"refuse:{pr_reference}@{head_sha}"


def _marker_safe(sha: str) -> str:
    """A commit id fit for an HTML comment: hex digits only, so it cannot close the comment."""
    return re.sub(r"[^0-9A-Fa-f]", "", sha)[:64]


#: Prefix of the markers of the service's replies to a revocation: the full marker is
#: `<!-- jit-access:revoke <key> <outcome> -->`, where the key names what asked for it (a
#: `/jit revoke` comment, or a revocation PR) so that a redelivery finds its earlier answer.
REVOKE_MARKER_PREFIX = "<!-- jit-access:revoke "


def revoke_key_for_comment(comment_id: int) -> str:
    """The key of a revocation asked for by a `/jit revoke` comment."""
    return f"comment-{int(comment_id)}"


def revoke_key_for_pull(number: int) -> str:
    """The key of a revocation asked for by merging a revocation PR."""
    return f"pr-{int(number)}"


def revoke_marker(key: str, outcome: str = "") -> str:
    """The hidden marker of a reply to the revocation `key`; `outcome` is one word (done,
    failed, nothing, refused). Without `outcome`: the prefix every reply to `key` starts with."""
    safe = re.sub(r"[^0-9A-Za-z-]", "", key)[:64]
    if not outcome:
        return f"{REVOKE_MARKER_PREFIX}{safe} "
    return f"{REVOKE_MARKER_PREFIX}{safe} {re.sub(r'[^a-z]', '', outcome)} -->"


def revoke_insert_id(pr_reference: str, key: str) -> str:
    """The audit insert id of a revocation: `revoke:<owner/repo#n>@<key>` (one per command)."""
    return f"revoke:{pr_reference}@{key}"
