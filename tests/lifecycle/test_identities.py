"""Identity lookups in the lifecycle against in-memory ports: account ids paired with logins,
and an identities file too large to read."""

from __future__ import annotations

from dataclasses import replace

from tests.lifecycle.conftest import SQL, World
from webhook.core.identities import MAX_IDENTITIES_BYTES
from webhook.core.model import Review, ReviewState

PINNED = b"""\
alice: {email: alice@example.com, id: 1}
bob: {email: bob@example.com, id: 2}
carol: {email: carol@example.com, id: 3}
"""


def pin(world: World, number: int, author_id: int | None) -> None:
    world.github.default_files["policy/identities.yaml"] = PINNED
    world.github.pulls[number] = replace(world.github.pulls[number], author_id=author_id)


def review(world: World, number: int, login: str, user_id: int | None) -> None:
    reviews = world.github.review_list.setdefault(number, [])
    reviews.append(Review(len(reviews) + 1, login, ReviewState.APPROVED, world.head(number),
                          world.clock.now, user_id))


def test_the_author_is_mapped_only_as_the_pinned_account(world: World) -> None:
    n = world.open_request(roles=(SQL,))
    pin(world, n, author_id=1)
    assert world.lifecycle.on_change(n, "d-1", opened=True).state == "pending"
    pin(world, n, author_id=99)
    assert world.lifecycle.on_change(n, "d-2", opened=False).state == "not_eligible"
    pin(world, n, author_id=None)  # GitHub did not say: an id that cannot be checked maps nobody
    assert world.lifecycle.on_change(n, "d-3", opened=False).state == "not_eligible"


def test_a_reviewer_counts_only_as_the_pinned_account(world: World) -> None:
    n = world.open_request(roles=(SQL,))
    pin(world, n, author_id=1)
    review(world, n, "bob", 20)  # not bob's id
    assert world.lifecycle.on_change(n, "d-1", opened=True).state == "pending"
    checked = world.eligibility.checks[-1][2]
    assert checked == ("alice@example.com",)  # an unmapped reviewer costs no lookup
    review(world, n, "carol", 3)
    assert world.lifecycle.on_change(n, "d-2", opened=False).state == "ready"


def test_a_login_seen_with_two_ids_in_one_event_is_mapped_as_neither(world: World) -> None:
    n = world.open_request(roles=(SQL,))
    pin(world, n, author_id=1)
    review(world, n, "bob", 2)
    review(world, n, "bob", 22)  # the login changed hands between two reviews
    assert world.lifecycle.on_change(n, "d-1", opened=True).state == "pending"


def test_an_identities_file_too_large_to_read_is_a_policy_problem(world: World) -> None:
    n = world.open_request(roles=(SQL,))
    world.github.default_files["policy/identities.yaml"] = b"#" * (MAX_IDENTITIES_BYTES + 1)
    result = world.lifecycle.on_change(n, "d-1", opened=True)
    assert (result.state, result.failed) == ("error", False)
    [status] = world.github.statuses
    assert (status.state, status.description) == ("error", "Policy error: see comment")
    assert world.eligibility.checks == []
