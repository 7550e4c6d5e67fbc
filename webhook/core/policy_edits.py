"""Pure edits of an IAM policy in its JSON wire form: adding activations, taking them away,
putting back the ones an activation replaced.

A policy here is `{"version", "etag", "bindings": [{"role", "members", "condition": {"title",
"description", "expression"}}], ...}`, as Resource Manager sends it. The functions never modify
their input and never copy it whole: a result shares every binding it does not change with the
policy it came from (a policy can hold 1,500 bindings, and one activation touches a few), so a
result must be treated as read-only too. Anything in a policy that is not a well-formed binding
is kept as it is: it is not ours to judge; IAM will.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from webhook.core.conditions import activation_of
from webhook.core.durations import utc_timestamp
from webhook.core.model import Binding

JSON = dict[str, Any]

#: A binding's identity as IAM compares it: role, member (IAM stores emails lower-cased),
#: title, description, expression.
_Key = tuple[str, str, str, str, str]


def _bindings(policy: Mapping[str, Any]) -> list[JSON]:
    """The policy's bindings that are well-formed objects (anything else is kept as it is)."""
    raw = policy.get("bindings", [])
    return [b for b in raw if isinstance(b, dict)] if isinstance(raw, list) else []


def _condition(binding: Mapping[str, Any]) -> Mapping[str, Any]:
    condition = binding.get("condition")
    return condition if isinstance(condition, Mapping) else {}


def _members(binding: Mapping[str, Any]) -> list[str]:
    members = binding.get("members", [])
    return [m for m in members if isinstance(m, str)] if isinstance(members, list) else []


def _key(b: Binding) -> _Key:
    return (b.role, b.member.lower(), b.title, b.description, b.expression)


def _binding(role: str, member: str, condition: Mapping[str, Any]) -> Binding:
    return Binding(
        role=role,
        member=member,
        title=str(condition.get("title", "")),
        description=str(condition.get("description", "")),
        expression=str(condition.get("expression", "")),
    )


def reference_suffix(pr_reference: str) -> str:
    """The end of every activation description of a PR: ` (<owner>/<repo>#<number>)`."""
    return f"({pr_reference})"


def _flatten(policy: Mapping[str, Any]) -> list[Binding]:
    """Every conditional binding of a policy, one `Binding` per member."""
    out: list[Binding] = []
    for binding in _bindings(policy):
        condition = _condition(binding)
        role = binding.get("role")
        if not isinstance(role, str) or not condition:
            continue
        out.extend(_binding(role, member, condition) for member in _members(binding))
    return out


def activation_bindings(policy: Mapping[str, Any]) -> list[Binding]:
    """Every JIT access activation in a policy, one `Binding` per member."""
    return [b for b in _flatten(policy) if activation_of(b) is not None]


def present_for_reference(
    policy: Mapping[str, Any], wanted: Sequence[Binding], pr_reference: str
) -> tuple[Binding, ...] | None:
    """The activations of `pr_reference` matching every wanted binding, or None if any is missing.

    A wanted binding is present when an activation with the same role and member has a
    description ending in `(<pr_reference>)`; its window may differ (it was granted earlier).
    """
    suffix = reference_suffix(pr_reference)
    targets = {(w.role, w.member.lower()) for w in wanted}
    # Cheap string tests first: only the few bindings naming this PR are read as activations.
    existing: list[Binding] = []
    for binding in _bindings(policy):
        condition = _condition(binding)
        role = binding.get("role")
        if not condition or not str(condition.get("description", "")).endswith(suffix):
            continue
        for member in _members(binding):
            if (role, member.lower()) in targets:
                candidate = _binding(str(role), member, condition)
                if activation_of(candidate) is not None:
                    existing.append(candidate)
    found: list[Binding] = []
    for want in wanted:
        match = next(
            (
                b
                for b in existing
                if b.role == want.role and b.member.lower() == want.member.lower()
            ),
            None,
        )
        if match is None:
            return None
        found.append(match)
    return tuple(found)


def present_exactly(policy: Mapping[str, Any], bindings: Iterable[Binding]) -> list[Binding]:
    """Those of `bindings` the policy holds exactly (role, member, title, description, expr)."""
    wanted = list(bindings)
    if not wanted:
        return []
    keys = {_key(b) for b in wanted}
    roles = {b.role for b in wanted}
    held: set[_Key] = set()
    for binding in _bindings(policy):
        condition = _condition(binding)
        role = binding.get("role")
        if not condition or role not in roles:
            continue
        for member in _members(binding):
            key = _key(_binding(str(role), member, condition))
            if key in keys:
                held.add(key)
    return [b for b in wanted if _key(b) in held]


def _to_wire(binding: Binding) -> JSON:
    return {
        "role": binding.role,
        "members": [binding.member],
        "condition": {
            "title": binding.title,
            "description": binding.description,
            "expression": binding.expression,
        },
    }


def _drop_members(
    policy: Mapping[str, Any],
    roles: set[str],
    drop: Callable[[str, str, Mapping[str, Any]], bool],
) -> tuple[JSON, list[Binding]]:
    """The policy without the (role, member, condition) triples `drop` selects among bindings of
    `roles`, and the conditional bindings taken out. Unchanged bindings are shared, not copied."""
    kept: list[Any] = []
    dropped: list[Binding] = []
    raw = policy.get("bindings", [])
    for binding in raw if isinstance(raw, list) else []:
        role = binding.get("role") if isinstance(binding, dict) else None
        members = binding.get("members") if isinstance(binding, dict) else None
        if not isinstance(role, str) or role not in roles or not isinstance(members, list):
            kept.append(binding)
            continue
        condition = _condition(binding)
        remaining = []
        for member in members:
            if isinstance(member, str) and drop(role, member, condition):
                if condition:
                    dropped.append(_binding(role, member, condition))
            else:
                remaining.append(member)
        if len(remaining) == len(members):
            kept.append(binding)
        elif remaining:
            kept.append({**binding, "members": remaining})
    return {**policy, "bindings": kept}, dropped


def activation_edit(
    policy: Mapping[str, Any], bindings: Sequence[Binding]
) -> tuple[JSON, tuple[Binding, ...]]:
    """The policy with `bindings` added and earlier activations of the same role and member
    gone; and those earlier activations (what a rollback must put back).

    Only activations (`activation_of`) are replaced; eligible bindings and any other grant of
    the role stay. The result is a version-3 policy keeping the read etag.
    """
    targets = {(b.role, b.member.lower()) for b in bindings}

    def earlier(role: str, member: str, condition: Mapping[str, Any]) -> bool:
        return (role, member.lower()) in targets and activation_of(condition) is not None

    out, replaced = _drop_members(policy, {b.role for b in bindings}, earlier)
    out["bindings"].extend(_to_wire(b) for b in bindings)
    out["version"] = 3
    return out, tuple(replaced)


def with_activations(policy: Mapping[str, Any], bindings: Sequence[Binding]) -> JSON:
    """The policy with `bindings` added and earlier activations of the same role and member gone
    (`activation_edit` without the replaced bindings)."""
    return activation_edit(policy, bindings)[0]


def without_bindings(policy: Mapping[str, Any], bindings: Iterable[Binding]) -> JSON:
    """The policy without exactly these bindings (same role, member, title, description, expr)."""
    doomed = list(bindings)
    keys = {_key(b) for b in doomed}

    def exact(role: str, member: str, condition: Mapping[str, Any]) -> bool:
        return bool(condition) and _key(_binding(role, member, condition)) in keys

    out, _ = _drop_members(policy, {b.role for b in doomed}, exact)
    out["version"] = 3
    return out


def undo_edit(
    policy: Mapping[str, Any], added: Iterable[Binding], restore: Iterable[Binding] = ()
) -> tuple[JSON, tuple[Binding, ...], tuple[Binding, ...]] | None:
    """Undo an activation: the policy without the `added` bindings it still holds, and with the
    `restore` bindings (the earlier activations the activation replaced) back; then the bindings
    removed and the bindings restored. None when there is nothing to do.

    An earlier activation comes back only in place of an added binding of its role and member
    that this edit removes, and only if no other activation of that role and member stands by
    then (a later request replaced ours: its binding is the current one). So an undo never
    widens access beyond what stood before the activation, nor brings back what someone else
    has taken away since.
    """
    removed = present_exactly(policy, added)
    if not removed:
        return None
    out = without_bindings(policy, removed)
    freed = {(b.role, b.member.lower()) for b in removed}
    roles = {role for role, _ in freed}
    standing = {(b.role, b.member.lower()) for b in activation_bindings(out) if b.role in roles}
    restored = [
        b for b in dict.fromkeys(restore)
        if (b.role, b.member.lower()) in freed - standing and activation_of(b) is not None
    ]
    out["bindings"].extend(_to_wire(b) for b in restored)
    return out, tuple(removed), tuple(restored)


def expired_activations(policy: Mapping[str, Any], now: datetime) -> list[Binding]:
    """The activations whose window has ended at `now` (end <= now).

    An activation whose expression is not a window this service understands is never
    considered expired: removing access on a guess is worse than leaving it to a person.
    """
    expired: list[Binding] = []
    for binding in activation_bindings(policy):
        activation = activation_of(binding)
        if activation is not None and activation.end <= now:
            expired.append(binding)
    return expired


def restored_note(restored: Sequence[Binding]) -> str:
    """How a rollback names the earlier activations it put back (empty when none), e.g.
    `the earlier activation it had replaced is back (roles/x until 2026-11-29T14:00:00Z)`."""
    if not restored:
        return ""
    shown = []
    for b in restored:
        activation = activation_of(b)
        shown.append(f"{b.role} until {utc_timestamp(activation.end)}" if activation else b.role)
    what = "activation it had replaced is" if len(restored) == 1 else (
        "activations it had replaced are"
    )
    return f"the earlier {what} back ({', '.join(shown)})"
