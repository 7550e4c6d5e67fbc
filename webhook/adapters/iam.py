"""Activation: add expiring IAM bindings to a project's policy, and take them away again (§6).

Every change is one read-modify-write of the project's IAM policy (version 3) guarded by its etag.
A concurrent change makes IAM answer 409 `ABORTED` (other IAM surfaces answer 412
`FAILED_PRECONDITION`, treated the same); the whole read-modify-write is then retried with
jittered exponential backoff, as IAM asks. Within one process, changes of the same
project's policy take turns (a lock per project): concurrent writers there would only make each
other retry, and a burst of merges would run out of attempts; conflicts with other processes
(App Engine instances) are still retried. A change that had to wait starts from the policy its
predecessor read or wrote, saving a read (its etag guarantees it is current, or IAM answers 409
and the change is retried on a fresh read). The policy manipulation itself is done by pure
functions on the policy's JSON wire form (`{"version", "etag", "bindings": [...]}`), testable
without a server; `Activator` is the thin adapter around Resource Manager.
"""

from __future__ import annotations

import copy
import functools
import random as _random
import threading
import time
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from google.iam.v1 import policy_pb2
from google.protobuf import json_format

from webhook.adapters.google_clients import (
    CALL_FAILURES,
    GoogleCallError,
    GoogleClients,
    bounded_retry,
    google_failure,
)
from webhook.core.budget import Budget, jittered_backoff, retry_bounded
from webhook.core.conditions import activation_of, parse_activation_expression
from webhook.core.errors import ActivationError
from webhook.core.model import Binding
from webhook.core.ports import ActivationResult as ActivationResult

JSON = dict[str, Any]

#: The header whose value Cloud Audit Logs record as the reason for a request.
REASON_HEADER = "x-goog-request-reason"
#: Longest request reason sent; the justification is at most 100 characters (§3) anyway.
MAX_REASON = 500
#: Conflict attempts made whatever the budget's conflict deadline: a slow IAM must not cut the
#: retries of a burst of concurrent changes short.
MIN_CONFLICT_ATTEMPTS = 5


# --------------------------------------------------------------------------------------------
# Pure policy manipulation (JSON wire form)


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


def _same_member(a: str, b: str) -> bool:
    # IAM compares member emails case-insensitively (it stores them lower-cased).
    return a.lower() == b.lower()


def reference_suffix(pr_reference: str) -> str:
    """The end of every activation description of a PR: ` (<owner>/<repo>#<number>)`."""
    return f"({pr_reference})"


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
    existing = activation_bindings(policy)
    found: list[Binding] = []
    for want in wanted:
        match = next(
            (
                b
                for b in existing
                if b.role == want.role
                and _same_member(b.member, want.member)
                and b.description.endswith(suffix)
            ),
            None,
        )
        if match is None:
            return None
        found.append(match)
    return tuple(found)


def present_exactly(policy: Mapping[str, Any], bindings: Iterable[Binding]) -> list[Binding]:
    """Those of `bindings` the policy holds exactly (role, member, title, description, expr)."""
    held = {
        (b.role, b.member.lower(), b.title, b.description, b.expression) for b in _flatten(policy)
    }
    return [
        b
        for b in bindings
        if (b.role, b.member.lower(), b.title, b.description, b.expression) in held
    ]


def _flatten(policy: Mapping[str, Any]) -> list[Binding]:
    """Every conditional binding of a policy, one `Binding` per member."""
    out: list[Binding] = []
    for binding in _bindings(policy):
        condition = _condition(binding)
        role = binding.get("role")
        if not isinstance(role, str) or not condition:
            continue
        for member in _members(binding):
            out.append(
                Binding(
                    role=role,
                    member=member,
                    title=str(condition.get("title", "")),
                    description=str(condition.get("description", "")),
                    expression=str(condition.get("expression", "")),
                )
            )
    return out


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
    policy: Mapping[str, Any], drop: Callable[[str, str, Mapping[str, Any]], bool]
) -> JSON:
    """A copy of the policy without the (role, member, condition) triples `drop` selects."""
    out = copy.deepcopy(dict(policy))
    kept: list[Any] = []
    raw = out.get("bindings", [])
    for binding in raw if isinstance(raw, list) else []:
        if not isinstance(binding, dict) or not isinstance(binding.get("role"), str):
            kept.append(binding)  # not ours to judge; IAM will
            continue
        condition = _condition(binding)
        members = binding.get("members", [])
        if not isinstance(members, list):
            kept.append(binding)
            continue
        remaining = [
            m for m in members if not (isinstance(m, str) and drop(binding["role"], m, condition))
        ]
        if remaining:
            binding["members"] = remaining
            kept.append(binding)
    out["bindings"] = kept
    return out


def with_activations(policy: Mapping[str, Any], bindings: Sequence[Binding]) -> JSON:
    """The policy with `bindings` added and earlier activations of the same role and member gone.

    Only bindings titled `JIT access activation` are replaced; eligible bindings and any other
    grant of the role stay. The result is a version-3 policy keeping the read etag.
    """
    targets = {(b.role, b.member.lower()) for b in bindings}

    def earlier(role: str, member: str, condition: Mapping[str, Any]) -> bool:
        return (role, member.lower()) in targets and activation_of(condition) is not None

    out = _drop_members(policy, earlier)
    out["bindings"].extend(_to_wire(b) for b in bindings)
    out["version"] = 3
    return out


def without_bindings(policy: Mapping[str, Any], bindings: Iterable[Binding]) -> JSON:
    """The policy without exactly these bindings (same role, member, title, description, expr)."""
    doomed = {(b.role, b.member.lower(), b.title, b.description, b.expression) for b in bindings}

    def exact(role: str, member: str, condition: Mapping[str, Any]) -> bool:
        key = (
            role,
            member.lower(),
            condition.get("title"),
            condition.get("description", ""),
            condition.get("expression"),
        )
        return key in doomed

    out = _drop_members(policy, exact)
    out["version"] = 3
    return out


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


def request_reason(text: str) -> str:
    """`text` made safe for an HTTP header: ASCII, one line, at most `MAX_REASON` characters.

    Accents are stripped (`é` → `e`) so that the reason stays readable in Cloud Audit Logs;
    other non-ASCII characters become `?`; line breaks and control characters become spaces.
    """
    decomposed = unicodedata.normalize("NFKD", text)
    chars: list[str] = []
    for ch in decomposed:
        if unicodedata.combining(ch):
            continue
        if ch.isascii():
            chars.append(ch if ch.isprintable() else " ")
        else:
            chars.append("?")
    cleaned = " ".join("".join(chars).split())
    if len(cleaned) > MAX_REASON:
        cleaned = cleaned[: MAX_REASON - 3] + "..."
    return cleaned




# --------------------------------------------------------------------------------------------
# The adapter


def _activation_result(
    written: bool,
    bindings: tuple[Binding, ...],
    attempts: int,
    etag: str,
    already: tuple[Binding, ...] = (),
) -> ActivationResult:
    """The result of an activation, with the window its stored bindings hold.

    All bindings of one request share one window; bindings found present (an earlier
    delivery's) keep the window they were granted with, which is the one to report.
    """
    window = parse_activation_expression(bindings[0].expression) if bindings else None
    start, end = window if window is not None else (None, None)
    return ActivationResult(
        written=written, bindings=bindings, attempts=attempts, etag=etag, already=already,
        start=start, end=end,
    )


class _Conflict(Exception):
    """The policy changed between our read and our write."""


class Activator:
    """Writes and removes activation bindings with the etag discipline IAM requires."""

    def __init__(
        self,
        clients: GoogleClients,
        *,
        budget: Budget | None = None,
        sleep: Callable[[float], None] = time.sleep,
        random: Callable[[], float] = _random.random,
    ) -> None:
        self._clients = clients
        self._budget = budget if budget is not None else clients.budget
        self._sleep = sleep
        self._backoff = jittered_backoff(self._budget, random)
        self._turns: dict[str, threading.Lock] = {}
        self._turns_guard = threading.Lock()
        # project -> the policy the last change read or wrote, for the change waiting its turn
        # (read and written only by the holder of the project's turn).
        self._handoff: dict[str, JSON] = {}

    # -- public --------------------------------------------------------------------------------

    def activate(
        self, project: str, bindings: Sequence[Binding], *, reason: str, pr_reference: str
    ) -> ActivationResult:
        """Add the bindings of one request in a single policy write (idempotent per PR)."""
        wanted = tuple(bindings)
        # A write of ours may have landed although it failed: it answered a transient error
        # and was sent again. A write refused with 409 on its first sending did not land.
        wrote = False

        def step(policy: JSON) -> JSON | None:
            present = present_for_reference(policy, wanted, pr_reference)
            if present is not None:
                return None
            return with_activations(policy, wanted)

        def on_write() -> None:
            nonlocal wrote
            wrote = True

        policy, attempts, written = self._read_modify_write(
            project, step, reason=reason, roles=[b.role for b in wanted], on_write=on_write
        )
        etag = str(policy.get("etag", ""))
        if written:
            return _activation_result(True, wanted, attempts, etag)
        present = present_for_reference(policy, wanted, pr_reference) or ()
        if wrote and set(present) == set(wanted):
            # Our own earlier attempt in this call landed (its answer was lost and the retry
            # met a conflict): it was this call that granted the access.
            return _activation_result(True, wanted, attempts, etag)
        return _activation_result(False, present, attempts, etag, already=present)

    def remove(
        self,
        project: str,
        bindings: Sequence[Binding],
        *,
        reason: str,
        before_write: Callable[[Sequence[Binding]], None] | None = None,
    ) -> None:
        """Remove exactly these bindings (to roll back an activation that has no audit entry,
        or an orphaned activation). `before_write`, when given, is called with those still
        present before every write; if it raises, nothing is written."""
        doomed = tuple(bindings)

        def step(policy: JSON) -> JSON | None:
            present = present_exactly(policy, doomed)
            if present and before_write is not None:
                before_write(present)
            return without_bindings(policy, present) if present else None

        self._read_modify_write(project, step, reason=reason, granting=False)

    def remove_expired(
        self,
        project: str,
        now: datetime,
        *,
        reason: str,
        before_write: Callable[[Sequence[Binding]], None] | None = None,
    ) -> tuple[Binding, ...]:
        """Remove the project's activations that ended at or before `now`; returns them.

        The expired set is computed afresh from every read, so a conflict retry never removes
        a binding that a concurrent writer has just replaced by a fresh activation.
        `before_write`, when given, is called with the bindings a write is about to remove,
        before every write; if it raises, nothing is written (cleanup records its audit entries
        there, so that no removal can land without one).
        """
        tried: dict[Binding, None] = {}  # every binding a write of ours tried to remove, in order

        def step(policy: JSON) -> JSON | None:
            expired = expired_activations(policy, now)
            if expired and before_write is not None:
                before_write(expired)
            tried.update(dict.fromkeys(expired))
            return without_bindings(policy, expired) if expired else None

        final, _, _ = self._read_modify_write(project, step, reason=reason, granting=False)
        # A write whose answer was lost may have landed before a retry found nothing left to
        # do: whatever we tried to remove and is gone now was removed by us (or, rarely, by a
        # concurrent cleanup, which makes one audit entry too many rather than one too few).
        still = set(present_exactly(final, tried))
        return tuple(b for b in tried if b not in still)

    def activations_for(self, project: str, pr_reference: str) -> tuple[Binding, ...]:
        """The project's activations that name `pr_reference` (one getIamPolicy, no write).

        A merge about to be refused reads them first: an earlier delivery may have granted the
        access and died before its audit entry, and a refusal must not stand beside a grant.
        """
        policy = self._call(project, (), False, lambda: self._get(project))
        suffix = reference_suffix(pr_reference)
        return tuple(b for b in activation_bindings(policy) if b.description.endswith(suffix))

    def activations_in(self, project: str) -> tuple[Binding, ...]:
        """Every activation in the project's IAM policy (one getIamPolicy, no write)."""
        policy = self._call(project, (), False, lambda: self._get(project))
        return tuple(activation_bindings(policy))

    # -- the read-modify-write loop ------------------------------------------------------------

    def _read_modify_write(
        self,
        project: str,
        step: Callable[[JSON], JSON | None],
        *,
        reason: str,
        roles: Sequence[str] = (),
        granting: bool = True,
        on_write: Callable[[], None] = lambda: None,
    ) -> tuple[JSON, int, bool]:
        """Run `step` on fresh reads until its write lands; (final policy, attempts, written)."""
        started = time.monotonic()
        with self._turns_guard:
            turn = self._turns.setdefault(project, threading.Lock())
        waited = not turn.acquire(blocking=False)
        if waited and not turn.acquire(timeout=self._budget.turn_wait):
            raise ActivationError(
                f"The IAM policy of project {project} is being changed by other requests; gave "
                f"up waiting after {self._budget.turn_wait:g} s; retry later."
            )
        try:
            # Only a change that waited takes over its predecessor's policy: it is then at most
            # one change old. A change that did not wait reads afresh (the policy may have been
            # changed elsewhere since).
            known = self._handoff.pop(project, None) if waited else None
            result = self._attempt_changes(
                project, step, started, reason, roles, granting, on_write, known
            )
            self._handoff[project] = result[0]
            return result
        except BaseException:
            self._handoff.pop(project, None)
            raise
        finally:
            turn.release()

    def _attempt_changes(
        self,
        project: str,
        step: Callable[[JSON], JSON | None],
        started: float,
        reason: str,
        roles: Sequence[str],
        granting: bool,
        on_write: Callable[[], None],
        known: JSON | None,
    ) -> tuple[JSON, int, bool]:
        header = request_reason(reason)
        made = 0

        def once(attempt: int) -> tuple[JSON, int, bool]:
            nonlocal made
            made = attempt
            if attempt == 1 and known is not None:
                policy = known
            else:
                policy = self._call(project, roles, granting, lambda: self._get(project))
            changed = step(policy)
            if changed is None:
                return policy, attempt, False
            # `on_write` hears of a sending that failed transiently and is retried; a
            # concurrent writer's identical binding must not pass for our own.
            write = functools.partial(self._set, project, changed, header, on_write)
            return self._call(project, roles, granting, write), attempt, True

        try:
            # The deadline bounds a slow storm, but never below MIN_CONFLICT_ATTEMPTS.
            return retry_bounded(
                once,
                retry_if=lambda error: isinstance(error, _Conflict),
                attempts=self._budget.conflict_attempts,
                at_least=MIN_CONFLICT_ATTEMPTS,
                deadline=self._budget.conflict_deadline,
                started=started,
                pause=self._backoff,
                sleep=self._sleep,
            )
        except _Conflict:
            raise ActivationError(
                f"The IAM policy of project {project} kept changing concurrently; "
                f"gave up after {made} attempts; retry later."
            ) from None

    # -- single calls --------------------------------------------------------------------------

    def _get(self, project: str) -> JSON:
        response = self._clients.projects.get_iam_policy(
            request={"resource": f"projects/{project}", "options": {"requested_policy_version": 3}},
            retry=bounded_retry(self._budget),
            timeout=self._budget.call_timeout,
        )
        return _policy_to_json(response)

    def _set(
        self, project: str, policy: JSON, reason: str,
        on_retry: Callable[[], None] = lambda: None,
    ) -> JSON:
        message = json_format.ParseDict(policy, policy_pb2.Policy(), ignore_unknown_fields=True)
        response = self._clients.projects.set_iam_policy(
            request={"resource": f"projects/{project}", "policy": message},
            retry=bounded_retry(self._budget, on_error=lambda _exc: on_retry()),
            timeout=self._budget.call_timeout,
            metadata=[(REASON_HEADER, reason)] if reason else [],
        )
        return _policy_to_json(response)

    @staticmethod
    def _call(project: str, roles: Sequence[str], granting: bool, call: Callable[[], JSON]) -> JSON:
        """Run one Google call, turning its failures into `_Conflict` or `ActivationError`."""
        try:
            return call()
        except (*CALL_FAILURES, json_format.ParseError) as error:
            failure = google_failure(error)
        if failure.conflict:  # 409 ABORTED or 412 FAILED_PRECONDITION: the policy changed
            raise _Conflict()
        raise ActivationError(_refusal(project, roles, granting, failure))


def _refusal(
    project: str, roles: Sequence[str], granting: bool, failure: GoogleCallError
) -> str:
    """The message of a failed (not conflicting) call changing a project's IAM policy."""
    if failure.retried:
        return (
            f"Google Cloud kept failing while changing the IAM policy of project {project} "
            f"({failure.summary}); retry later."
        )
    if failure.kind in ("timeout", "unreachable"):
        return f"Could not reach Resource Manager for project {project}: {failure.detail}"
    if failure.kind == "unreadable":
        return (
            f"Resource Manager returned an IAM policy for project {project} that could not "
            f"be understood: {failure.detail}"
        )
    if failure.status == 400:  # INVALID_ARGUMENT and FAILED_PRECONDITION
        if not granting:
            return (
                f"Resource Manager refused to change the IAM policy of project {project}: "
                f"{failure.detail}"
            )
        # Google's message usually names the offending role; name only that one if so.
        named = [r for r in roles if r in failure.detail] or list(roles)
        what = ", ".join(dict.fromkeys(named)) or "The bindings"
        return f"{what} cannot be granted on project {project}: {failure.detail}"
    if failure.status in (401, 403, 404):
        return (
            f"Cannot change the IAM policy of project {project}: the service account lacks "
            f"permission or the project does not exist ({failure.status}: {failure.detail})"
        )
    return (
        f"Google Cloud refused to change the IAM policy of project {project} "
        f"({failure.status}: {failure.detail})"
    )


def _policy_to_json(policy: Any) -> JSON:
    """A `google.iam.v1.Policy` message in JSON wire form (camelCase, etag in base64)."""
    return dict(json_format.MessageToDict(policy))
