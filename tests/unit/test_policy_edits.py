"""The pure edits of an IAM policy's wire form (webhook.core.policy_edits)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

from webhook.core.conditions import build_binding
from webhook.core.model import Binding
from webhook.core.policy_edits import (
    activation_edit,
    present_for_reference,
    restored_note,
    undo_edit,
    with_activations,
    without_bindings,
)

ROLE = "roles/cloudsql.admin"
ROLE2 = "roles/storage.admin"
REPO = "acme/access"
JAN1_2040 = datetime(2040, 1, 1, 10, 0, tzinfo=UTC)
ELIGIBLE = {
    "role": ROLE,
    "members": ["group:dev@example.com"],
    "condition": {"title": "Eligible", "expression": "has({}.jitAccessConstraint)"},
}
PLAIN = {"role": "roles/browser", "members": ["user:bob@example.com"]}


def grant(
    number: int, email: str = "alice@example.com", role: str = ROLE, hours: int = 1,
    start: datetime = JAN1_2040,
) -> Binding:
    return build_binding(
        role, email, (), "INC-1: x", f"{REPO}#{number}", start, start + timedelta(hours=hours)
    )


def wire(b: Binding, *members: str) -> dict[str, Any]:
    return {
        "role": b.role,
        "members": list(members) or [b.member],
        "condition": {"title": b.title, "description": b.description, "expression": b.expression},
    }


def policy(*bindings: Any) -> dict[str, Any]:
    return {"version": 3, "etag": "BwE=", "bindings": [ELIGIBLE, PLAIN, *bindings]}


def test_an_activation_edit_names_what_it_replaced_and_copies_only_what_it_changes():
    earlier = grant(7, hours=4, start=JAN1_2040 - timedelta(hours=1))
    shared = wire(earlier, "user:bob@example.com", "user:Alice@Example.com")
    before = policy(shared, "junk")
    pristine = copy.deepcopy(before)

    out, replaced = activation_edit(before, [grant(42)])

    assert replaced == (Binding(earlier.role, "user:Alice@Example.com", earlier.title,
                                earlier.description, earlier.expression),)
    assert out["bindings"] == [
        ELIGIBLE, PLAIN, {**shared, "members": ["user:bob@example.com"]}, "junk", wire(grant(42))
    ]
    assert before == pristine  # the input is untouched...
    assert out["bindings"][0] is before["bindings"][0]  # ...and what did not change is shared
    assert with_activations(before, [grant(42)]) == out


def test_an_undo_removes_the_new_binding_and_restores_the_replaced_one():
    earlier = grant(7, hours=4, start=JAN1_2040 - timedelta(hours=1))
    other = grant(9, email="carol@example.com")
    written, replaced = activation_edit(policy(wire(other), wire(earlier)), [grant(42)])

    edit = undo_edit(written, [grant(42)], replaced)

    assert edit is not None
    out, removed, restored = edit
    assert (removed, restored) == ((grant(42),), (earlier,))
    assert out["bindings"] == [ELIGIBLE, PLAIN, wire(other), wire(earlier)]


def test_an_undo_restores_every_activation_replaced_for_a_freed_role_and_member():
    # Two earlier activations of one role and member (jit-access 1.x can leave several).
    one = grant(5, start=JAN1_2040 - timedelta(hours=2))
    two = grant(6, hours=3, start=JAN1_2040 - timedelta(hours=2))
    three = grant(6, role=ROLE2, start=JAN1_2040 - timedelta(hours=2))
    new = [grant(42), grant(42, role=ROLE2)]
    written, replaced = activation_edit(policy(wire(one), wire(two), wire(three)), new)
    assert replaced == (one, two, three)

    edit = undo_edit(written, [grant(42)], replaced)  # only the ROLE binding is undone

    assert edit is not None
    out, removed, restored = edit
    assert (removed, restored) == ((grant(42),), (one, two))
    assert out["bindings"] == [
        ELIGIBLE, PLAIN, wire(grant(42, role=ROLE2)), wire(one), wire(two)
    ]


def test_an_undo_never_puts_back_what_it_does_not_replace():
    earlier = grant(7, start=JAN1_2040 - timedelta(hours=1))
    later = grant(43, start=JAN1_2040 + timedelta(minutes=5))
    # The new binding is gone already: nothing to do, nothing restored.
    assert undo_edit(policy(), [grant(42)], [earlier]) is None
    # Another activation of the member and role stands beside ours: ours goes, the earlier one
    # does not come back (the other one is the current grant).
    odd = policy(wire(later), wire(grant(42)))
    edit = undo_edit(odd, [grant(42)], [earlier])
    assert edit is not None
    assert edit[0]["bindings"] == [ELIGIBLE, PLAIN, wire(later)]
    assert edit[2] == ()
    # Something that is no activation is never "restored".
    fake = Binding(ROLE, "user:alice@example.com", "Eligible", "", "has({}.jitAccessConstraint)")
    edit = undo_edit(policy(wire(grant(42))), [grant(42)], [fake])
    assert edit is not None and edit[2] == ()


def test_removal_and_lookup_compare_members_case_insensitively():
    stored = wire(grant(42), "user:ALICE@example.com")
    assert present_for_reference(policy(stored), [grant(42)], f"{REPO}#42") is not None
    assert present_for_reference(policy(stored), [grant(42)], f"{REPO}#4") is None
    exact = Binding(ROLE, "user:alice@example.com", grant(42).title, grant(42).description,
                    grant(42).expression)
    assert without_bindings(policy(stored), [exact])["bindings"] == [ELIGIBLE, PLAIN]


def test_the_note_of_a_restore():
    earlier = grant(7, hours=4)
    assert restored_note(()) == ""
    assert restored_note([earlier]) == (
        "the earlier activation it had replaced is back (roles/cloudsql.admin until "
        "2040-01-01T14:00:00Z)"
    )
    assert restored_note([earlier, grant(8, role=ROLE2)]) == (
        "the earlier activations it had replaced are back (roles/cloudsql.admin until "
        "2040-01-01T14:00:00Z, roles/storage.admin until 2040-01-01T11:00:00Z)"
    )
