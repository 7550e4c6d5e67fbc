"""The request lifecycle: gather facts, decide, publish; on merge, decide again and activate.

This module orchestrates; it holds no rules (those are in `decide` and `merge`: it gathers the
facts, asks them what to do and applies the effects) and speaks to GitHub and Google only
through the ports handed to it, so tests and the sandbox can run it against local fakes.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, assert_never

from webhook.core.audit_record import AuditRecord
from webhook.core.checks import UNREAD, Unread
from webhook.core.decide import decide
from webhook.core.errors import (
    AuditError,
    FileTooLargeError,
    JitAccessError,
    UpstreamError,
)
from webhook.core.merge import (
    NO_RECORDS,
    Activate,
    AlreadyActivated,
    AlreadyRefused,
    EarlierRecords,
    NotARequest,
    NotMerged,
    Refuse,
    RetryLater,
    StatusUpdate,
    activation_record,
    change_record,
    merge_action,
    publish_plan,
    records_needed,
    refusal_record,
    review_record,
    targets_default_branch,
    verdict_without_request,
)
from webhook.core.model import (
    AccessRequest,
    Binding,
    Decision,
    EligibilityFacts,
    Facts,
    Identities,
    Policy,
    Problem,
    PullComment,
    PullInfo,
    PullRequestRef,
    State,
)
from webhook.core.names import IDENTITIES_PATH, POLICY_PATH
from webhook.core.policy import parse_identities, parse_policy

# The ports are defined in core; imported under their own names so that the wiring and older
# callers can still name them through this module.
from webhook.core.ports import ActivatorPort as ActivatorPort
from webhook.core.ports import AuditPort as AuditPort
from webhook.core.ports import Clock as Clock
from webhook.core.ports import CommitReadsPort as CommitReadsPort
from webhook.core.ports import EligibilityPort as EligibilityPort
from webhook.core.ports import GitHubPort as GitHubPort
from webhook.core.ports import PublishedVerdict
from webhook.core.ports import VerdictPort as VerdictPort
from webhook.core.problems import ProblemCode
from webhook.core.records import (
    COMMENT_MARKER,
    activation_failed_marker,
    activation_marker,
    refusal_marker,
)
from webhook.core.render import (
    activation_comment,
    activation_failed_comment,
    refusal_comment,
    rfc3339,
)
from webhook.core.request_file import (
    MAX_REQUEST_BYTES,
    check_pr_shape,
    parse_request,
    revoked_paths,
)
from webhook.service.verdicts import StatusVerdicts

log = logging.getLogger("jitaccess")

# The policy files arrive with every event, nearly always unchanged, and parsing them (a YAML
# scanner written in Python that keeps line numbers for the messages) costs milliseconds per
# file — tens for an identities file of a few hundred people. Parsing is pure and its results
# immutable, so the results are kept by content (at most 64 KiB per file, a few files).
_parse_policy = functools.lru_cache(maxsize=8)(parse_policy)
_parse_identities = functools.lru_cache(maxsize=8)(parse_identities)

T = TypeVar("T")


def utcnow() -> datetime:
    """The current time, UTC, whole seconds."""
    return datetime.now(UTC).replace(microsecond=0)


# ----------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True)
class Evaluation:
    """Facts gathered for one PR, the decision taken on them, and the PR itself."""

    pull: PullInfo
    facts: Facts | None  # None when the PR is not a request
    decision: Decision | None
    policy: Policy | None
    # The PR's comments, listed in the first wave of reads so that editing the status comment
    # or checking for an earlier activation comment needs no listing later (None: not listed).
    comments: tuple[PullComment, ...] | None = None
    # The head commit's current jit-access verdict (commit status or check run), read beside
    # the request file so that publishing can skip an unchanged verdict without a round trip
    # of its own (status_read: whether it was read; status None then means the commit has no
    # verdict yet, or the read failed and the verdict is published anyway).
    status_read: bool = False
    status: PublishedVerdict | None = None
    # For a revocation PR (its only change deletes request files): the files it deletes.
    revokes: tuple[str, ...] = ()

    @property
    def is_request(self) -> bool:
        """Does the PR touch requests/ at all?"""
        return self.facts is not None


@dataclass(frozen=True)
class LifecycleResult:
    """What one event did: a short message for logs and the HTTP answer, and whether it failed."""

    message: str
    failed: bool = False
    state: str | None = None
    details: dict[str, Any] | None = None


class Lifecycle:
    """Runs the request lifecycle for one repository against the given adapters."""

    def __init__(
        self,
        *,
        repository: str,
        github: GitHubPort,
        eligibility: EligibilityPort,
        activator: ActivatorPort,
        audit: AuditPort,
        clock: Clock = utcnow,
        executor: ThreadPoolExecutor | None = None,
        verdicts: VerdictPort | None = None,
        commits: CommitReadsPort | None = None,
    ) -> None:
        self.repository = repository
        self.github = github
        # Check runs with a GitHub App, commit statuses (through `github`) otherwise.
        self.verdicts: VerdictPort = verdicts or StatusVerdicts(github)
        # What Re-runs and merge groups read besides PRs (None: they are not served).
        self.commits = commits
        self.eligibility = eligibility
        self.activator = activator
        self.audit = audit
        self.clock = clock
        self.executor = executor or ThreadPoolExecutor(max_workers=8, thread_name_prefix="jit")
        self._pr_locks: dict[int, threading.Lock] = {}  # one per PR: events take turns
        self._locks_guard = threading.Lock()

    # -- gathering -------------------------------------------------------------------------------

    def _submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        return self.executor.submit(fn, *args)

    def evaluate(self, number: int, now: datetime | None = None) -> Evaluation:
        """Read the PR, its files, reviews, request file and the policy, and decide."""
        now = now or self.clock()
        f_pull = self._submit(self.github.pull, number)
        f_files = self._submit(self.github.files, number)
        f_reviews = self._submit(self.github.reviews, number)
        f_policy = self._submit(self.github.file_bytes, POLICY_PATH, None)
        f_ids = self._submit(self.github.file_bytes, IDENTITIES_PATH, None)
        # Read now, beside the rest, rather than after the decision: saves a round trip on
        # every request event (a PR that is no request pays one needless call).
        f_comments = self._submit(self.github.comments, number)
        pull, files = f_pull.result(), f_files.result()
        shape = check_pr_shape(files, pull.author, pull.base_ref, pull.default_branch)
        revokes = revoked_paths(files) if targets_default_branch(pull) else ()
        if not shape.is_request or revokes:
            for f in (f_reviews, f_policy, f_ids, f_comments):
                f.result()  # surface errors, keep the pool tidy
            # It asks for no access, but still gets a verdict (on the default branch only):
            # read the current one so that an unchanged verdict is not published again.
            read, current = False, None
            if pull.state == "open" and targets_default_branch(pull):
                read, current = self._current_verdict(pull)
            return Evaluation(
                pull, None, None, None, status_read=read, status=current, revokes=revokes
            )
        f_request = (
            self._submit(self.github.file_bytes, shape.path, pull.head_sha)
            if shape.path is not None
            else None
        )
        # Only an open PR publishes a verdict, and not one whose request is in someone else's
        # directory or that targets another branch (see `publish_plan`).
        f_status = (
            self._submit(self.verdicts.current, pull.head_sha)
            if pull.state == "open" and targets_default_branch(pull)
            and not any(p.code == ProblemCode.WRONG_DIRECTORY for p in shape.problems)
            else None
        )
        reviews = f_reviews.result()
        if pull.merged_at is not None:
            # Reviews given after the merge judge nothing: the request was decided at merge.
            merged_at = pull.merged_at
            reviews = tuple(
                r for r in reviews if r.submitted_at is not None and r.submitted_at <= merged_at
            )
        policy, policy_problems = self._policy(f_policy.result(), f_ids.result())
        identities = policy[1] if policy else Identities()
        settings = policy[0] if policy else None

        problems: list[Problem] = list(shape.problems)
        request: AccessRequest | None = None
        if f_request is not None and shape.path is not None:
            request, request_problems = self._request(f_request, settings)
            problems.extend(p.at(shape.path) for p in request_problems)
        if problems:
            request = None

        pr = PullRequestRef(self.repository, number, pull.author, pull.head_sha, pull.html_url)
        eligibility: EligibilityFacts | None = None
        eligibility_problem: Problem | None = None
        requester = identities.email_for(pull.author)
        if settings is not None and not policy_problems and request is not None and requester:
            reviewer_ids = sorted(
                {e for r in reviews if (e := identities.email_for(r.login)) is not None}
            )
            try:
                eligibility = self.eligibility.check(
                    scope=settings.scope,
                    project=request.project,
                    roles=request.roles,
                    identities=[requester, *[e for e in reviewer_ids if e != requester]],
                    settings=settings.eligibility,
                )
            except UpstreamError as exc:
                log.warning("eligibility lookup failed for %s: %s", pr.reference, exc)
                eligibility_problem = Problem(ProblemCode.SERVICE_ERROR, str(exc))
        facts = Facts(
            pr=pr,
            policy=settings if not policy_problems else None,
            policy_problems=tuple(policy_problems),
            identities=identities,
            request=request,
            request_problems=tuple(problems),
            eligibility=eligibility,
            reviews=reviews,
        )
        decision = decide(facts, now)
        if eligibility_problem is not None and decision.state is State.ERROR:
            decision = replace(decision, problems=(eligibility_problem,))
        status_read, status = False, None
        if f_status is not None:
            status_read = True
            try:
                status = f_status.result()
            except UpstreamError as exc:
                log.warning("the verdict of %s could not be read: %s", pr.reference, exc)
        return Evaluation(
            pull, facts, decision, settings, f_comments.result(),
            status_read=status_read, status=status,
        )

    def _current_verdict(self, pull: PullInfo) -> tuple[bool, PublishedVerdict | None]:
        """The head commit's current verdict: (read, verdict); a failed read publishes anyway."""
        try:
            return True, self.verdicts.current(pull.head_sha)
        except UpstreamError as exc:
            log.warning("the verdict of #%s could not be read: %s", pull.number, exc)
            return False, None

    @staticmethod
    def _request(
        fetched: Future[bytes | None], settings: Policy | None
    ) -> tuple[AccessRequest | None, tuple[Problem, ...]]:
        """Parse the request file read from the PR head, or say why there is none."""
        try:
            text = fetched.result()
        except FileTooLargeError as exc:
            # Too large to even read: the same problem the parser reports for 4 KiB + 1.
            return None, (
                Problem(ProblemCode.TOO_LARGE,
                        f"the file is {exc.size} bytes; request files are at most "
                        f"{MAX_REQUEST_BYTES} bytes"),
            )
        if text is None:
            return None, (
                Problem(ProblemCode.REQUEST_MISSING, "the file is not in the PR's head commit"),
            )
        return parse_request(text, settings)

    @staticmethod
    def _policy(
        policy_text: bytes | None, ids_text: bytes | None
    ) -> tuple[tuple[Policy, Identities] | None, list[Problem]]:
        problems: list[Problem] = []
        if policy_text is None:
            problems.append(
                Problem(ProblemCode.POLICY_MISSING,
                        f"{POLICY_PATH} is missing on the default branch", path=POLICY_PATH)
            )
            return None, problems
        policy, policy_problems = _parse_policy(policy_text)
        problems.extend(p.at(POLICY_PATH) for p in policy_problems)
        identities = Identities()
        if ids_text is None:
            problems.append(
                Problem(ProblemCode.IDENTITIES_MISSING,
                        f"{IDENTITIES_PATH} is missing on the default branch",
                        path=IDENTITIES_PATH)
            )
        else:
            identities, id_problems = _parse_identities(ids_text)
            problems.extend(p.at(IDENTITIES_PATH) for p in id_problems)
        if policy is None:
            return None, problems
        return (policy, identities), problems

    # -- publishing ------------------------------------------------------------------------------

    def publish(
        self, ev: Evaluation, *, request_reviews: bool, audit: AuditRecord | None = None,
        fresh_verdict: bool = False,
    ) -> None:
        """Publish the verdict, update the status comment, ask qualified peers to review, and
        write `audit` (if any), all at once. `fresh_verdict`: a Re-run (a new check run)."""
        decision = ev.decision
        assert decision is not None
        plan = publish_plan(
            decision, ev.pull, policy=ev.policy,
            reviews=ev.facts.reviews if ev.facts else (),
            request_reviews=request_reviews, audit=audit,
        )
        futures: list[Future[Any]] = [
            self._submit(
                self.github.upsert_comment, ev.pull.number, COMMENT_MARKER, plan.comment,
                ev.comments,
            ),
        ]
        if plan.status is not None:
            futures.append(
                self._submit(self._publish_verdict, ev, plan.status, fresh_verdict)
            )
        if plan.audit is not None:
            # Beside the GitHub writes, not after them: the entry records what happened on the
            # PR whatever GitHub answers, and waiting would cost a round trip.
            futures.append(self._submit(self._audit_quietly, plan.audit))
        if plan.reviewers:
            futures.append(
                self._submit(self.github.request_reviewers, ev.pull.number, list(plan.reviewers))
            )
        # Wait for every write before answering, even when one failed: nothing of this event
        # may still be changing the PR after the delivery was answered.
        errors = [e for f in futures if (e := f.exception()) is not None]
        if errors:
            raise errors[0]

    def _publish_verdict(self, ev: Evaluation, update: StatusUpdate, fresh: bool) -> bool:
        """Publish `update` on the PR's head unless it equals the verdict read with the facts
        (GitHub keeps at most 1,000 statuses per commit and context)."""
        return self.publish_verdict(
            ev.pull.head_sha, update, current=ev.status if ev.status_read else UNREAD,
            fresh=fresh, pr=ev.pull.number,
        )

    def publish_verdict(
        self, sha: str, update: StatusUpdate, *,
        current: PublishedVerdict | None | Unread = UNREAD, fresh: bool = False,
        pr: int | None = None,
    ) -> bool:
        """Publish a verdict on a commit (a check run with the App, else a commit status);
        returns whether anything was sent."""
        return self.verdicts.publish(sha, update, current=current, fresh=fresh, pr=pr)

    def on_change(self, number: int, delivery_id: str, *, opened: bool) -> LifecycleResult:
        """A PR was opened, reopened, pushed or edited: re-evaluate and publish."""

        def audit(ev: Evaluation) -> AuditRecord | None:
            return change_record(
                ev.decision, ev.pull, _identities(ev), delivery_id, opened=opened
            )

        return self._refresh(number, audit)[1]

    def on_review(self, number: int, delivery_id: str, reviewer: str | None) -> LifecycleResult:
        """A review was submitted, edited or dismissed: re-evaluate; audit a counted approval."""

        def audit(ev: Evaluation) -> AuditRecord | None:
            return review_record(
                ev.decision, ev.pull, _identities(ev), ev.facts.reviews if ev.facts else (),
                delivery_id, reviewer,
            )

        return self._refresh(number, audit)[1]

    def reevaluate(self, number: int) -> LifecycleResult:
        """Someone chose Re-run on the check of an open PR: evaluate and publish again, the
        verdict as a new check run (as GitHub expects for a rerequested check)."""
        return self._refresh(number, fresh_verdict=True)[1]

    def _refresh(
        self, number: int, audit: Callable[[Evaluation], AuditRecord | None] = lambda ev: None,
        *, fresh_verdict: bool = False,
    ) -> tuple[Evaluation | None, LifecycleResult]:
        # One event per PR at a time in this process: the comment listing read with the facts
        # must still hold when the status comment is created or edited.
        with self._pr_lock(number):
            return self._refresh_locked(number, audit, fresh_verdict)

    def _refresh_locked(
        self, number: int, audit: Callable[[Evaluation], AuditRecord | None],
        fresh_verdict: bool = False,
    ) -> tuple[Evaluation | None, LifecycleResult]:
        ev = self.evaluate(number)
        if not ev.is_request:
            return None, self._publish_without_request(ev, fresh_verdict)
        if ev.pull.state != "open":
            return None, LifecycleResult(f"PR #{number} is {ev.pull.state}; nothing to publish")
        decision = ev.decision
        assert decision is not None
        self.publish(ev, request_reviews=True, audit=audit(ev), fresh_verdict=fresh_verdict)
        return ev, LifecycleResult(
            f"PR #{number}: {decision.state.value}", state=decision.state.value
        )

    def _publish_without_request(self, ev: Evaluation, fresh: bool) -> LifecycleResult:
        """A PR that asks for no access: `success` on its head (no comment, no Google call),
        so that a required check never blocks it; nothing for a PR into another branch."""
        number = ev.pull.number
        kind = "is a revocation PR" if ev.revokes else "touches no request"
        if ev.pull.state != "open":
            return LifecycleResult(f"PR #{number} {kind}; nothing to publish")
        update = verdict_without_request(ev.pull, revokes=ev.revokes)
        if update is None:
            return LifecycleResult(
                f"PR #{number} {kind}; it targets {ev.pull.base_ref}, which gets no verdict"
            )
        self._publish_verdict(ev, update, fresh)
        return LifecycleResult(f"PR #{number} {kind}: {update.description}", state="success")

    # -- merge -----------------------------------------------------------------------------------

    def _pr_lock(self, number: int) -> threading.Lock:
        with self._locks_guard:
            return self._pr_locks.setdefault(number, threading.Lock())

    def on_merge(self, number: int, delivery_id: str) -> LifecycleResult:
        """A PR was closed as merged: decide again from fresh facts and activate, or refuse."""
        with self._pr_lock(number):
            return self._on_merge(number, delivery_id)

    def _on_merge(self, number: int, delivery_id: str) -> LifecycleResult:
        now = self.clock()
        ev = self.evaluate(number, now)
        earlier = self._earlier_records(ev) if records_needed(ev.decision, ev.pull) else NO_RECORDS
        action = merge_action(
            ev.decision, ev.pull, earlier,
            max_delay=ev.policy.activation.max_delay if ev.policy else None,
            now=now, identities=_identities(ev),
        )
        match action:
            case NotARequest():
                return LifecycleResult(f"PR #{number} touches no request; nothing to activate")
            case NotMerged():
                return LifecycleResult(f"PR #{number} is not merged; nothing to activate")
            case AlreadyActivated():
                return LifecycleResult(
                    f"PR #{number}: already activated (see the activation comment); a repeated "
                    "merge event grants nothing", state="activated", details={"written": False},
                )
            case AlreadyRefused():
                return LifecycleResult(
                    f"PR #{number}: activation was refused (see the refusal comment); a "
                    "repeated merge event grants nothing", state="refused",
                )
            case RetryLater(reason):
                # Nothing is decided yet: failing (5xx, failure comment) lets a redelivery of
                # the merge event complete it, where a refusal would be final.
                return self._failed(ev, _decided(ev), reason)
            case Refuse(reason):
                return self._refuse(ev, _decided(ev), reason, delivery_id)
            case Activate():
                return self._activate(ev, _decided(ev), action, delivery_id)
            case _:
                assert_never(action)

    def _earlier_records(self, ev: Evaluation) -> EarlierRecords:
        """The service's own comments that record an earlier decision on this PR's head (no
        call: the comments were listed with the facts)."""
        number, head = ev.pull.number, ev.pull.head_sha
        return EarlierRecords(
            activation_comment=bool(
                self.github.comments_with(number, activation_marker(head), ev.comments)
            ),
            refusal_comment=bool(
                self.github.comments_with(number, refusal_marker(head), ev.comments)
            ),
        )

    def _refuse(
        self, ev: Evaluation, decision: Decision, reason: str, delivery_id: str
    ) -> LifecycleResult:
        self._audit_quietly(refusal_record(decision, ev.pull, _identities(ev), delivery_id, reason))
        self.github.create_comment(
            ev.pull.number, refusal_comment(reason, pr=decision.pr, decision=decision)
        )
        log.warning("refused activation for %s: %s", decision.pr.reference, reason)
        return LifecycleResult(f"PR #{ev.pull.number}: activation refused: {reason}",
                               state="refused")

    def _activate(
        self, ev: Evaluation, decision: Decision, action: Activate, delivery_id: str
    ) -> LifecycleResult:
        request = decision.request
        assert request is not None and decision.requester is not None
        try:
            result = self.activator.activate(
                request.project, action.bindings, reason=request.justification,
                pr_reference=decision.pr.reference,
            )
        except JitAccessError as exc:
            return self._failed(ev, decision, f"the IAM binding could not be written: {exc}")
        written = result.written
        stored: tuple[Binding, ...] = result.bindings or action.bindings
        # The window IAM holds: a binding found present (an earlier delivery's) keeps its own.
        start, end = action.start, action.end
        if result.bindings and result.start is not None and result.end is not None:
            start, end = result.start, result.end
        record = activation_record(
            decision, ev.pull, _identities(ev), delivery_id, start=start, end=end
        )
        try:
            self.audit.write(record)
        except JitAccessError as exc:
            # A binding found present (an earlier delivery's) is not ours to take away.
            rollback, remains = "", not written
            if written:
                try:
                    self.activator.remove(request.project, stored, reason="audit entry failed")
                    rollback = "; the binding was removed again"
                except JitAccessError as exc2:
                    log.error("rollback failed for %s: %s", decision.pr.reference, exc2)
                    rollback = f"; removing the binding again also failed: {exc2}"
                    remains = True
            return self._failed(
                ev, decision, f"the audit entry could not be written: {exc}{rollback}",
                access_remains=remains,
            )
        # A new comment, so that GitHub notifies the participants; there is none for this head
        # yet (the earlier records said so, or the merge would not have been activated).
        self.github.create_comment(
            ev.pull.number, activation_comment(decision, start=start, end=end)
        )
        what = "activated" if written else "already active"
        log.info("%s: %s %s on %s until %s", decision.pr.reference, decision.requester,
                 what, ",".join(request.roles), request.project)
        return LifecycleResult(
            f"PR #{ev.pull.number}: {what} until {rfc3339(end)}", state="activated",
            details={"written": written, "end": rfc3339(end)},
        )

    def _failed(
        self, ev: Evaluation, decision: Decision, reason: str, *, access_remains: bool = False
    ) -> LifecycleResult:
        log.error("activation failed for %s: %s%s", decision.pr.reference, reason,
                  "; THE BINDING STAYS WITHOUT AN AUDIT ENTRY" if access_remains else "")
        try:
            self.github.upsert_comment(
                ev.pull.number, activation_failed_marker(ev.pull.head_sha),
                activation_failed_comment(
                    reason, decision,
                    max_delay=ev.policy.activation.max_delay if ev.policy else timedelta(hours=1),
                    access_remains=access_remains,
                ),
            )
        except JitAccessError as exc:
            log.error("could not comment the failure on %s: %s", decision.pr.reference, exc)
        return LifecycleResult(f"PR #{ev.pull.number}: activation failed: {reason}", failed=True,
                               state="failed")

    # -- audit -----------------------------------------------------------------------------------

    def _audit_quietly(self, record: AuditRecord) -> None:
        """Write an audit entry that does not gate anything; log a failure instead of raising."""
        try:
            self.audit.write(record)
        except AuditError as exc:
            log.error("audit entry %s not written: %s", record.event, exc)


def _decided(ev: Evaluation) -> Decision:
    """The decision of an evaluation of a request PR (merge actions past "not a request")."""
    assert ev.decision is not None
    return ev.decision


def _identities(ev: Evaluation) -> Identities:
    """The identity mapping the evaluation judged with (empty for a PR that is no request)."""
    return ev.facts.identities if ev.facts is not None else Identities()
