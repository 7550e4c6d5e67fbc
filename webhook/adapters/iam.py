"""Activation: add expiring IAM bindings to a project's policy, and take them away again (§6).

Every change is one read-modify-write of the project's IAM policy (version 3) guarded by its etag.
A concurrent change makes IAM answer 409 `ABORTED`; the whole read-modify-write is then retried
with jittered exponential backoff, as IAM asks. Within one process, changes of the same
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
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from google.api_core import exceptions as gexc
from google.auth import exceptions as gauth_exceptions
from google.iam.v1 import policy_pb2
from google.protobuf import json_format

from webhook.adapters.google_clients import (
    CALL_TIMEOUT,
    RETRY_DEADLINE,
    GoogleClients,
    bounded_retry,
    quote_error,
)
from webhook.core.conditions import ACTIVATION_TITLE, parse_activation_expression
from webhook.core.errors import ActivationError
from webhook.core.model import Binding

JSON = dict[str, Any]

#: The header whose value Cloud Audit Logs record as the reason for a request.
REASON_HEADER = "x-goog-request-reason"
#: Longest request reason sent; the justification is at most 100 characters (§3) anyway.
MAX_REASON = 500
#: Seconds the conflict retries of one change may take in total (counted from the start of the
#: change, waiting for its turn included).
CONFLICT_DEADLINE = 5.0
#: Conflict attempts made whatever the deadline (SPEC §6: at least 5).
MIN_CONFLICT_ATTEMPTS = 5
#: Seconds a change may wait for this process's other changes of the same project's policy.
#: With the conflict deadline this keeps an activation within GitHub's 10 s webhook budget.
TURN_WAIT = 6.0
#: First backoff after a conflict, and the longest one, in seconds.
BACKOFF_INITIAL = 0.1
BACKOFF_MAX = 1.0


@dataclass(frozen=True)
class ActivationResult:
    """What `Activator.activate` did.

    `written` is False when the request's bindings were already present (a redelivered merge
    event): nothing was written and `bindings` are the ones found, which keep their original
    window. `already` holds the bindings found present in that case.
    """

    written: bool
    bindings: tuple[Binding, ...]
    attempts: int
    etag: str
    already: tuple[Binding, ...] = ()


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
    return [b for b in _flatten(policy) if b.title == ACTIVATION_TITLE]


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
        return condition.get("title") == ACTIVATION_TITLE and (role, member.lower()) in targets

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
        window = parse_activation_expression(binding.expression)
        if window is not None and window[1] <= now:
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


class _Conflict(Exception):
    """The policy changed between our read and our write."""


class Activator:
    """Writes and removes activation bindings with the etag discipline IAM requires."""

    def __init__(
        self,
        clients: GoogleClients,
        *,
        attempts: int = 6,
        sleep: Callable[[float], None] = time.sleep,
        random: Callable[[], float] = _random.random,
        conflict_deadline: float = CONFLICT_DEADLINE,
        retry_deadline: float = RETRY_DEADLINE,
        turn_wait: float = TURN_WAIT,
    ) -> None:
        self._clients = clients
        self._attempts = max(1, attempts)
        self._sleep = sleep
        self._random = random
        self._conflict_deadline = conflict_deadline
        self._retry_deadline = retry_deadline
        self._turn_wait = turn_wait
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
        wrote = False  # a write of ours may have landed even if its answer was lost

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
            return ActivationResult(True, wanted, attempts, etag)
        present = present_for_reference(policy, wanted, pr_reference) or ()
        if wrote and set(present) == set(wanted):
            # Our own earlier attempt in this call landed (its answer was lost and the retry
            # met a conflict): it was this call that granted the access.
            return ActivationResult(True, wanted, attempts, etag)
        return ActivationResult(False, present, attempts, etag, already=present)

    def remove(self, project: str, bindings: Sequence[Binding], *, reason: str) -> None:
        """Remove exactly these bindings (to roll back an activation that has no audit entry)."""
        doomed = tuple(bindings)

        def step(policy: JSON) -> JSON | None:
            present = present_exactly(policy, doomed)
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
        if waited and not turn.acquire(timeout=self._turn_wait):
            raise ActivationError(
                f"The IAM policy of project {project} is being changed by other requests; gave "
                f"up waiting after {self._turn_wait:g} s; retry later."
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
        for attempt in range(1, self._attempts + 1):
            if attempt == 1 and known is not None:
                policy = known
            else:
                policy = self._call(project, roles, granting, lambda: self._get(project))
            changed = step(policy)
            if changed is None:
                return policy, attempt, False
            try:
                on_write()
                write = functools.partial(self._set, project, changed, header)
                written = self._call(project, roles, granting, write)
                return written, attempt, True
            except _Conflict:
                elapsed = time.monotonic() - started
                # The deadline bounds a slow storm, but never below the 5 attempts SPEC §6 asks.
                if attempt == self._attempts or (
                    attempt >= MIN_CONFLICT_ATTEMPTS and elapsed >= self._conflict_deadline
                ):
                    raise ActivationError(
                        f"The IAM policy of project {project} kept changing concurrently; "
                        f"gave up after {attempt} attempts; retry later."
                    ) from None
                self._sleep(self._backoff(attempt))
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _backoff(self, attempt: int) -> float:
        """Equal-jitter exponential backoff: half fixed, half random, capped."""
        ceiling = min(BACKOFF_MAX, BACKOFF_INITIAL * float(2 ** (attempt - 1)))
        return ceiling / 2 + self._random() * ceiling / 2

    # -- single calls --------------------------------------------------------------------------

    def _get(self, project: str) -> JSON:
        response = self._clients.projects.get_iam_policy(
            request={"resource": f"projects/{project}", "options": {"requested_policy_version": 3}},
            retry=bounded_retry(self._retry_deadline),
            timeout=CALL_TIMEOUT,
        )
        return _policy_to_json(response)

    def _set(self, project: str, policy: JSON, reason: str) -> JSON:
        message = json_format.ParseDict(policy, policy_pb2.Policy(), ignore_unknown_fields=True)
        response = self._clients.projects.set_iam_policy(
            request={"resource": f"projects/{project}", "policy": message},
            retry=bounded_retry(self._retry_deadline),
            timeout=CALL_TIMEOUT,
            metadata=[(REASON_HEADER, reason)] if reason else [],
        )
        return _policy_to_json(response)

    @staticmethod
    def _call(project: str, roles: Sequence[str], granting: bool, call: Callable[[], JSON]) -> JSON:
        """Run one Google call, turning its failures into `_Conflict` or `ActivationError`."""
        try:
            return call()
        except gexc.Conflict:  # 409 ABORTED (Aborted subclasses Conflict): policy changed
            raise _Conflict() from None
        except gexc.BadRequest as e:  # 400 INVALID_ARGUMENT and FAILED_PRECONDITION
            if not granting:
                raise ActivationError(
                    f"Resource Manager refused to change the IAM policy of project {project}: "
                    f"{quote_error(e.message)}"
                ) from None
            # Google's message usually names the offending role; name only that one if so.
            named = [r for r in roles if r in str(e.message)] or list(roles)
            what = ", ".join(dict.fromkeys(named)) or "The bindings"
            raise ActivationError(
                f"{what} cannot be granted on project {project}: {quote_error(e.message)}"
            ) from None
        except (gexc.Forbidden, gexc.NotFound, gexc.Unauthorized) as e:
            raise ActivationError(
                f"Cannot change the IAM policy of project {project}: the service account lacks "
                f"permission or the project does not exist ({e.code}: {quote_error(e.message)})"
            ) from None
        except gexc.RetryError as e:
            cause = e.cause if e.cause is not None else e
            raise ActivationError(
                f"Google Cloud kept failing while changing the IAM policy of project {project} "
                f"({quote_error(cause)}); retry later."
            ) from None
        except gexc.GoogleAPICallError as e:
            raise ActivationError(
                f"Google Cloud refused to change the IAM policy of project {project} "
                f"({e.code}: {quote_error(e.message)})"
            ) from None
        except (OSError, gauth_exceptions.GoogleAuthError) as e:
            # requests' errors (connection refused, read timeout) are OSErrors.
            raise ActivationError(
                f"Could not reach Resource Manager for project {project}: {quote_error(e)}"
            ) from None
        except (json_format.ParseError, ValueError, TypeError) as e:
            raise ActivationError(
                f"Resource Manager returned an IAM policy for project {project} that could not "
                f"be understood: {quote_error(e)}"
            ) from None


def _policy_to_json(policy: Any) -> JSON:
    """A `google.iam.v1.Policy` message in JSON wire form (camelCase, etag in base64)."""
    return dict(json_format.MessageToDict(policy))
