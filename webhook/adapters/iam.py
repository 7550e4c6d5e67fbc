"""Activation: add expiring IAM bindings to a project's policy, and take them away again (§6).

Every change is a read-modify-write of the project's IAM policy (version 3) guarded by its etag.
A concurrent change makes IAM answer 409 `ABORTED` (other IAM surfaces answer 412
`FAILED_PRECONDITION`, treated the same); the whole read-modify-write is then retried on a fresh
read, after a jittered exponential backoff, until the change's conflict deadline has passed (and
at least `MIN_CONFLICT_ATTEMPTS` times).

Across processes (App Engine instances) only the etag orders the writers, so each write should
carry as much as it can. Within one process, the changes waiting for a project are therefore
**batched**: a change that finds no write in progress for its project becomes the project's
writer; changes arriving meanwhile queue up, and the writer's next attempt takes every queued
change into its one read-modify-write (each change's edit applied in turn, in arrival order).
When the write lands, every change of the batch gets its own result; when it fails, each its
own error. A write IAM refuses as invalid (400) is retried change by change, so that one
request's ungrantable role fails only that request. Once its batch is done the writer hands the
role to the first change still queued, with the policy it wrote (its etag guarantees it is
current, or IAM answers 409 and the batch re-reads). The backoff after a conflict grows with the
attempt and is capped by the conflicts this process saw on the project lately: a quiet project
retries quickly, a contended one spreads its writers out.

One write carries one `x-goog-request-reason`: a batch sends the distinct justifications of the
changes it writes, in order, as many as fit (`batch_reason`); the audit log carries each
request's justification in full anyway.

The policy edits are pure functions in `webhook.core.policy_edits`, on the policy's JSON wire
form. The two calls (`getIamPolicy`, `setIamPolicy` of Resource Manager v3) are plain JSON over
the clients' credentials, as Cloud Identity's are: the client library would convert every
policy to protobuf and back through `json_format`, which costs tens of milliseconds per
1,500-binding policy, three times per read-modify-write. Answers are checked before any edit
(`wire_policy`): a policy misread as empty would be written back empty.
"""

from __future__ import annotations

import logging
import random as _random
import threading
import time
import unicodedata
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal
from urllib.parse import quote

from google.auth.transport.requests import AuthorizedSession

from webhook.adapters.google_clients import (
    CALL_FAILURES,
    TRANSIENT_STATUSES,
    GoogleCallError,
    GoogleClients,
    google_failure,
    quote_error,
)
from webhook.core.budget import Budget, jittered_backoff, retry_bounded
from webhook.core.conditions import parse_activation_expression
from webhook.core.errors import ActivationError
from webhook.core.model import Binding
from webhook.core.policy_edits import JSON as JSON
from webhook.core.policy_edits import activation_bindings as activation_bindings
from webhook.core.policy_edits import activation_edit, undo_edit
from webhook.core.policy_edits import expired_activations as expired_activations
from webhook.core.policy_edits import present_exactly as present_exactly
from webhook.core.policy_edits import present_for_reference as present_for_reference
from webhook.core.policy_edits import reference_suffix as reference_suffix
from webhook.core.policy_edits import with_activations as with_activations
from webhook.core.policy_edits import without_bindings as without_bindings
from webhook.core.ports import ActivationResult as ActivationResult

log = logging.getLogger(__name__)

#: The header whose value Cloud Audit Logs record as the reason for a request.
REASON_HEADER = "x-goog-request-reason"
#: Longest request reason sent; the justification is at most 100 characters (§3) anyway.
MAX_REASON = 500
#: Conflict attempts made whatever the budget's conflict deadline: a slow IAM must not cut the
#: retries of a burst of concurrent changes short.
MIN_CONFLICT_ATTEMPTS = 5
#: Separates the justifications of a batched write in its request reason.
REASON_SEPARATOR = " | "
#: Resource Manager's public endpoint (GoogleEndpoints.resource_manager overrides it).
RESOURCE_MANAGER_DEFAULT = "https://cloudresourcemanager.googleapis.com"
#: Attempts of one call meeting transient errors; the budget's retry deadline ends them first.
TRANSIENT_ATTEMPTS = 100


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






def batch_reason(reasons: Sequence[str]) -> str:
    """The request reason of one write carrying several changes: their distinct reasons, in
    order, each made safe (`request_reason`), as many as fit in `MAX_REASON`; the rest counted.

    `["INC-1: a", "INC-2: b", "INC-1: a"]` → `INC-1: a | INC-2: b`; when they do not all fit,
    `INC-1: a | INC-2: b | and 7 more`.
    """
    distinct = [r for r in dict.fromkeys(request_reason(r) for r in reasons) if r]
    if len(distinct) <= 1:
        return distinct[0] if distinct else ""
    shown: list[str] = []
    for n, reason in enumerate(distinct):
        rest = len(distinct) - n - 1
        tail = f"{REASON_SEPARATOR}and {rest} more" if rest else ""
        candidate = REASON_SEPARATOR.join([*shown, reason]) + tail
        if len(candidate) > MAX_REASON:
            if not shown:  # even the first does not fit with the count: shorten it
                return request_reason(distinct[0])
            return REASON_SEPARATOR.join(shown) + f"{REASON_SEPARATOR}and {len(distinct) - n} more"
        shown.append(reason)
    return REASON_SEPARATOR.join(shown)


# --------------------------------------------------------------------------------------------
# The adapter


def _activation_result(
    written: bool,
    bindings: tuple[Binding, ...],
    attempts: int,
    etag: str,
    already: tuple[Binding, ...] = (),
    replaced: tuple[Binding, ...] = (),
) -> ActivationResult:
    """The result of an activation, with the window its stored bindings hold.

    All bindings of one request share one window; bindings found present (an earlier
    delivery's) keep the window they were granted with, which is the one to report.
    """
    window = parse_activation_expression(bindings[0].expression) if bindings else None
    start, end = window if window is not None else (None, None)
    return ActivationResult(
        written=written, bindings=bindings, attempts=attempts, etag=etag, already=already,
        replaced=replaced, start=start, end=end,
    )


class _Conflict(Exception):
    """The policy changed between our read and our write."""


class _Transient(Exception):
    """A 429 or 5xx answer: worth another try of the same call."""

    def __init__(self, failure: GoogleCallError) -> None:
        super().__init__(failure.detail)
        self.failure = failure


class _Failed(Exception):
    """A Google call failed otherwise (translated once; each change words its own message)."""

    def __init__(self, failure: GoogleCallError) -> None:
        super().__init__(failure.detail)
        self.failure = failure


#: Where a change is: waiting in its project's queue, taken into a batch, or done.
_State = Literal["queued", "taken", "done"]


@dataclass(eq=False)
class _Change:
    """One caller's change of a project's policy, and what became of it."""

    #: The pure edit: the policy with the change made, or None when there is nothing to do.
    step: Callable[[JSON], JSON | None]
    reason: str
    roles: tuple[str, ...]
    granting: bool
    #: When the caller asked (the Activator's clock): its conflict deadline counts from here.
    started: float
    state: _State = "queued"
    attempts: int = 0
    #: A write carrying this change was sent (it may have landed even if its answer was lost).
    wrote: bool = False
    outcome: tuple[JSON, int, bool] | None = None
    error: BaseException | None = None

    def result(self) -> tuple[JSON, int, bool]:
        """(the policy after the batch, attempts, whether this change was written), or raise."""
        if self.error is not None:
            raise self.error
        assert self.outcome is not None, "a change was left unfinished"
        return self.outcome


@dataclass(eq=False)
class _Project:
    """The changes of one project's policy in this process: the queue, its writer, the policy
    the last batch read or wrote, and when conflicts were met lately."""

    cond: threading.Condition = field(default_factory=threading.Condition)
    queue: list[_Change] = field(default_factory=list)
    writer: _Change | None = None
    handoff: JSON | None = None
    conflicts: deque[float] = field(default_factory=deque)


class Activator:
    """Writes and removes activation bindings with the etag discipline IAM requires."""

    def __init__(
        self,
        clients: GoogleClients,
        *,
        budget: Budget | None = None,
        sleep: Callable[[float], None] = time.sleep,
        random: Callable[[], float] = _random.random,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clients = clients
        self._budget = budget if budget is not None else clients.budget
        self._sleep = sleep
        self._random = random
        #: Measures the conflict deadline and the contention window (tests that do not really
        #: sleep pass a clock that advances as they "sleep").
        self._clock = clock
        self._projects: dict[str, _Project] = {}
        self._projects_guard = threading.Lock()
        self._transient_pause = jittered_backoff(self._budget, random)
        self._http: AuthorizedSession | None = None
        self._session_guard = threading.Lock()

    # -- public --------------------------------------------------------------------------------

    def activate(
        self, project: str, bindings: Sequence[Binding], *, reason: str, pr_reference: str
    ) -> ActivationResult:
        """Add the bindings of one request in a single policy write (idempotent per PR).

        The result names the earlier activations the write replaced (`replaced`), which a
        rollback must put back.
        """
        wanted = tuple(bindings)
        replaced: tuple[Binding, ...] = ()

        def step(policy: JSON) -> JSON | None:
            nonlocal replaced
            if present_for_reference(policy, wanted, pr_reference) is not None:
                return None
            changed, replaced = activation_edit(policy, wanted)
            return changed

        change = self._new_change(step, reason, [b.role for b in wanted], granting=True)
        policy, attempts, written = self._change(project, change)
        etag = str(policy.get("etag", ""))
        if written:
            return _activation_result(True, wanted, attempts, etag, replaced=replaced)
        present = present_for_reference(policy, wanted, pr_reference) or ()
        if change.wrote and set(present) == set(wanted):
            # Our own earlier attempt in this call landed (its answer was lost and the retry
            # met a conflict): it was this call that granted the access.
            return _activation_result(True, wanted, attempts, etag, replaced=replaced)
        return _activation_result(False, present, attempts, etag, already=present)

    def remove(
        self,
        project: str,
        bindings: Sequence[Binding],
        *,
        reason: str,
        restore: Sequence[Binding] = (),
        before_write: Callable[[Sequence[Binding]], None] | None = None,
    ) -> tuple[Binding, ...]:
        """Remove exactly these bindings and put back the earlier activations they replaced
        (`restore`, from the `ActivationResult`), in one write: the rollback of an activation
        that has no audit entry, or the removal of an orphaned activation. Returns the bindings
        restored. `before_write`, when given, is called with the bindings still present before
        every write; if it raises, nothing is written.

        An earlier activation comes back only where this write removes the binding that
        replaced it, and no other activation of its role and member stands (`undo_edit`).
        """
        doomed, earlier = tuple(bindings), tuple(restore)
        restored: tuple[Binding, ...] = ()

        def step(policy: JSON) -> JSON | None:
            nonlocal restored
            if before_write is not None:
                present = present_exactly(policy, doomed)
                if present:
                    before_write(present)
            edit = undo_edit(policy, doomed, earlier)
            if edit is None:
                return None
            changed, _, restored = edit
            return changed

        change = self._new_change(step, reason, [b.role for b in doomed], granting=False)
        final, _, _ = self._change(project, change)
        # What a write of ours restored and stands now (its answer may have been lost).
        return tuple(present_exactly(final, restored)) if change.wrote else ()

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

        change = self._new_change(step, reason, [], granting=False)
        final, _, _ = self._change(project, change)
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
        try:
            policy = self._get(project)
        except _Failed as failed:
            if failed.failure.kind == "answered" and failed.failure.status in (403, 404):
                # Resource Manager answers 403 for a project that does not exist (and 404 for
                # a malformed one): nothing can have been granted there by this service, which
                # could not read the policy it would have had to write.
                log.warning("no IAM policy to read for %s (%s): no activation there",
                            project, failed.failure.summary)
                return ()
            raise ActivationError(_refusal(project, (), False, failed.failure)) from None
        suffix = reference_suffix(pr_reference)
        return tuple(b for b in activation_bindings(policy) if b.description.endswith(suffix))

    def activations_in(self, project: str) -> tuple[Binding, ...]:
        """Every activation in the project's IAM policy (one getIamPolicy, no write)."""
        try:
            policy = self._get(project)
        except _Failed as failed:
            raise ActivationError(_refusal(project, (), False, failed.failure)) from None
        return tuple(activation_bindings(policy))

    # -- the queue -----------------------------------------------------------------------------

    def _new_change(
        self, step: Callable[[JSON], JSON | None], reason: str, roles: Sequence[str],
        *, granting: bool,
    ) -> _Change:
        return _Change(step, reason, tuple(roles), granting, started=self._clock())

    def _project(self, project: str) -> _Project:
        with self._projects_guard:
            return self._projects.setdefault(project, _Project())

    def _change(self, project: str, change: _Change) -> tuple[JSON, int, bool]:
        """Queue the change; write it (with whatever else is queued) or wait for its writer."""
        p = self._project(project)
        asked = time.monotonic()  # the turn wait is real waiting, whatever the clock
        with p.cond:
            p.queue.append(change)
            if p.writer is None:
                p.writer = change
                # Nobody wrote just before us in this process: read afresh (the policy may
                # have changed elsewhere since the last batch).
                p.handoff = None
            while change.state == "queued" and p.writer is not change:
                left = self._budget.turn_wait - (time.monotonic() - asked)
                if left <= 0:
                    p.queue.remove(change)
                    raise ActivationError(
                        f"The IAM policy of project {project} is being changed by other "
                        f"requests; gave up waiting after {self._budget.turn_wait:g} s; retry "
                        "later."
                    )
                p.cond.wait(left)
            # Taken into another writer's batch: its calls are bounded, and it always finishes
            # every change it took (`_write`).
            while change.state == "taken":
                p.cond.wait()
            if change.state == "done":
                return change.result()
            known, p.handoff = p.handoff, None
        try:
            self._write(project, p, known)
        finally:
            with p.cond:
                # Hand the writer's role to the first change still waiting, with the policy
                # this batch ended on (`p.handoff`).
                p.writer = p.queue[0] if p.queue else None
                p.cond.notify_all()
        return change.result()

    def _take(self, p: _Project, batch: list[_Change]) -> None:
        """Move every queued change into the batch."""
        with p.cond:
            for change in p.queue:
                change.state = "taken"
            batch.extend(p.queue)
            p.queue.clear()

    def _finish(
        self, p: _Project, change: _Change, *, outcome: tuple[JSON, int, bool] | None = None,
        error: BaseException | None = None,
    ) -> None:
        with p.cond:
            change.outcome, change.error, change.state = outcome, error, "done"
            p.cond.notify_all()

    # -- the batched read-modify-write ---------------------------------------------------------

    def _write(self, project: str, p: _Project, known: JSON | None) -> None:
        """Write every queued change (the writer's own first), until its batch is done."""
        batch: list[_Change] = []
        try:
            p.handoff = self._attempt(project, p, batch, known, absorb=True)
        except BaseException as error:  # a bug: still finish every change taken
            for change in batch:
                if change.state != "done":
                    self._finish(p, change, error=error)
            raise

    def _attempt(
        self, project: str, p: _Project, batch: list[_Change], known: JSON | None,
        *, absorb: bool,
    ) -> JSON | None:
        """Run the batch's read-modify-write until it lands, taking in the changes that queue up
        meanwhile when `absorb`; finishes every change. Returns the policy it ended on."""
        n = 0
        while True:
            if absorb:
                self._take(p, batch)
            n += 1
            try:
                policy = known if n == 1 and known is not None else self._get(project)
            except _Failed as failed:
                self._fail_all(project, p, batch, failed.failure)
                return None
            working, changed = policy, []
            for change in batch:
                change.attempts += 1
                edited = change.step(working)
                if edited is not None:
                    working = edited
                    changed.append(change)
            final = policy
            if changed:

                def may_have_landed(changed: list[_Change] = changed) -> None:
                    for change in changed:
                        change.wrote = True

                header = batch_reason([c.reason for c in changed])
                try:
                    # A write counts as ours once it landed, or once a sending of it failed
                    # in a way that may have landed (a transient error, then sent again). A
                    # write refused with 409 on its first sending did not land: a concurrent
                    # writer's identical binding must not pass for our own.
                    final = self._set(project, working, header, on_retry=may_have_landed)
                    may_have_landed()
                except _Conflict:
                    if not self._after_conflict(project, p, batch, n):
                        return None
                    continue
                except _Failed as failed:
                    if failed.failure.status == 400 and len(batch) > 1:
                        # IAM refused the policy as invalid: find out whose change it was by
                        # writing them one at a time.
                        last = None
                        for change in list(batch):
                            last = self._attempt(project, p, [change], None, absorb=False)
                        return last
                    self._fail_all(project, p, batch, failed.failure)
                    return None
            for change in batch:
                self._finish(p, change, outcome=(final, change.attempts, change in changed))
            return final

    def _after_conflict(self, project: str, p: _Project, batch: list[_Change], n: int) -> bool:
        """Give up the changes past their deadline; back off. False when none is left."""
        now = self._clock()
        with p.cond:
            p.conflicts.append(now)
        for change in list(batch):
            if (
                change.attempts >= MIN_CONFLICT_ATTEMPTS
                and now - change.started >= self._budget.conflict_deadline
            ):
                batch.remove(change)
                self._finish(p, change, error=ActivationError(
                    f"The IAM policy of project {project} kept changing concurrently; "
                    f"gave up after {change.attempts} attempts; retry later."
                ))
        if not batch:
            return False
        self._sleep(self._pause(p, n, now))
        return True

    def _pause(self, p: _Project, n: int, now: float) -> float:
        """The pause after the batch's `n`-th conflict: equal jitter on `backoff_initial *
        2**(n-1)`, capped at `backoff_initial * (1 + k)` where k counts the conflicts this
        process met on the project in the last `conflict_deadline` seconds (this one included),
        and never above `backoff_max`. A quiet project's writer retries quickly; on a contended
        one the writers of the instances spread out."""
        b = self._budget
        with p.cond:
            while p.conflicts and now - p.conflicts[0] > b.conflict_deadline:
                p.conflicts.popleft()
            recent = len(p.conflicts)
        cap = min(b.backoff_max, b.backoff_initial * (1 + recent))
        ceiling = min(cap, b.backoff_initial * float(2 ** (n - 1)))
        return ceiling / 2 + self._random() * ceiling / 2

    def _fail_all(
        self, project: str, p: _Project, batch: list[_Change], failure: GoogleCallError
    ) -> None:
        for change in batch:
            message = _refusal(project, change.roles, change.granting, failure)
            self._finish(p, change, error=ActivationError(message))

    # -- single calls --------------------------------------------------------------------------

    def _session(self) -> AuthorizedSession:
        with self._session_guard:
            if self._http is None:
                endpoint = self._clients.endpoints.resource_manager
                self._http = AuthorizedSession(  # type: ignore[no-untyped-call]
                    self._clients.credentials_for(endpoint)
                )
            return self._http

    def _get(self, project: str) -> JSON:
        return self._post(project, "getIamPolicy", {"options": {"requestedPolicyVersion": 3}})

    def _set(
        self, project: str, policy: JSON, reason: str,
        on_retry: Callable[[], None] = lambda: None,
    ) -> JSON:
        headers = {REASON_HEADER: reason} if reason else {}
        return self._post(project, "setIamPolicy", {"policy": policy}, headers, on_retry)

    def _post(
        self, project: str, verb: str, body: JSON, headers: dict[str, str] | None = None,
        on_retry: Callable[[], None] = lambda: None,
    ) -> JSON:
        """One Resource Manager v3 call (`POST /v3/projects/{id}:{verb}`, plain JSON), its
        transient errors (429, 5xx) retried until the budget's retry deadline; the policy it
        answers, checked (`wire_policy`). Raises `_Conflict` or `_Failed`."""
        base = (self._clients.endpoints.resource_manager or RESOURCE_MANAGER_DEFAULT).rstrip("/")
        url = f"{base}/v3/projects/{quote(project, safe='')}:{verb}"
        budget = self._budget

        def once(_attempt: int) -> JSON:
            try:
                response = self._session().post(
                    url, json=body, headers=headers, timeout=budget.call_timeout
                )
            except CALL_FAILURES as error:
                # A timeout is not retried: another full timeout would break the webhook's 10 s.
                on_retry()  # the request may have reached IAM and landed
                raise _Failed(google_failure(error)) from error
            if response.status_code in TRANSIENT_STATUSES:
                on_retry()  # a 5xx may come after the change was made
                raise _Transient(google_failure(response))
            if response.status_code >= 400:
                failure = google_failure(response)
                if failure.conflict:  # 409 ABORTED or 412 FAILED_PRECONDITION
                    raise _Conflict()
                raise _Failed(failure)
            try:
                return wire_policy(response.json())
            except ValueError as error:  # not JSON, or not a policy
                raise _Failed(GoogleCallError(quote_error(error), kind="unreadable")) from error

        try:
            return retry_bounded(
                once,
                retry_if=lambda error: isinstance(error, _Transient),
                attempts=TRANSIENT_ATTEMPTS,
                deadline=budget.retry_deadline,
                pause=self._transient_pause,
            )
        except _Transient as last:
            f = last.failure
            raise _Failed(GoogleCallError(
                f.detail, kind=f.kind, status=f.status, google_status=f.google_status,
                retried=True,
            )) from None


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


# --------------------------------------------------------------------------------------------
# The policy as Resource Manager answers it


_CONDITION_FIELDS = ("expression", "title", "description", "location")


def wire_policy(answer: object) -> JSON:
    """The policy of a getIamPolicy or setIamPolicy answer in JSON wire form, checked and with
    only the fields a `google.iam.v1.Policy` has (what the client library would keep); raises
    ValueError for anything that is not such a policy.

    Checked because the edits write the policy back: a policy misread as having no bindings
    would be written back without them.
    """
    if not isinstance(answer, dict):
        raise ValueError("the answer is not a JSON object")
    out: JSON = {}
    version = answer.get("version", 0)
    if not isinstance(version, int) or isinstance(version, bool):
        raise ValueError(f"version is {version!r}")
    if version:
        out["version"] = version
    etag = answer.get("etag", "")
    if not isinstance(etag, str):
        raise ValueError("etag is not a string")
    bindings = answer.get("bindings", [])
    if not isinstance(bindings, list):
        raise ValueError("bindings is not a list")
    checked: list[JSON] = []
    for binding in bindings:
        if not isinstance(binding, dict) or not isinstance(binding.get("role", ""), str):
            raise ValueError(f"a binding is not a role binding: {str(binding)[:80]}")
        members = binding.get("members", [])
        if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
            raise ValueError(f"the members of a {binding.get('role')} binding are not strings")
        wire: JSON = {"role": binding.get("role", "")}
        if members:
            wire["members"] = members
        condition = binding.get("condition")
        if condition is not None:
            if not isinstance(condition, dict) or not all(
                isinstance(condition.get(k, ""), str) for k in _CONDITION_FIELDS
            ):
                raise ValueError(f"the condition of a {wire['role']} binding is malformed")
            wire["condition"] = {k: condition[k] for k in _CONDITION_FIELDS if condition.get(k)}
        checked.append(wire)
    if checked:
        out["bindings"] = checked
    audit_configs = answer.get("auditConfigs")
    if audit_configs is not None:
        if not isinstance(audit_configs, list):
            raise ValueError("auditConfigs is not a list")
        out["auditConfigs"] = audit_configs
    if etag:
        out["etag"] = etag
    return out
