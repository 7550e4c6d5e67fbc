"""The request lifecycle: gather facts, decide, publish; on merge, decide again and activate.

This module orchestrates; it holds no rules (those are in `decide` and `merge`: it gathers the
facts, asks them what to do and applies the effects) and speaks to GitHub and Google only
through the ports handed to it, so tests and the sandbox can run it against local fakes.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar, assert_never

from webhook.core.audit_record import AuditRecord
from webhook.core.checks import UNREAD, Unread
from webhook.core.decide import decide
from webhook.core.eligibility import question_for, source_for
from webhook.core.errors import (
    AuditError,
    FileTooLargeError,
    JitAccessError,
    ListTooLongError,
    UpstreamError,
)
from webhook.core.identities import MAX_IDENTITIES_BYTES
from webhook.core.merge import (
    NO_RECORDS,
    Activate,
    AlreadyActivated,
    AlreadyRefused,
    EarlierRecords,
    LookUpBindings,
    MergeAction,
    NotARequest,
    NotMerged,
    Refuse,
    RetryLater,
    StatusUpdate,
    activation_record,
    already_activated,
    change_record,
    merge_action,
    publish_plan,
    records_needed,
    refusal_record,
    review_record,
    status_belongs_to,
    targets_default_branch,
    verdict_without_request,
)
from webhook.core.model import (
    AccessRequest,
    Binding,
    ChangedFiles,
    Decision,
    EligibilityFacts,
    Facts,
    Identities,
    Policy,
    Problem,
    PrShape,
    PullComment,
    PullInfo,
    PullRequestRef,
    Review,
    State,
)
from webhook.core.names import IDENTITIES_PATH, POLICY_PATH
from webhook.core.policy import MAX_POLICY_BYTES, parse_identities, parse_policy
from webhook.core.policy_edits import restored_note

# The ports are defined in core; imported under their own names so that the wiring and older
# callers can still name them through this module.
from webhook.core.ports import ActivatorPort as ActivatorPort
from webhook.core.ports import AuditedDecision, PublishedVerdict
from webhook.core.ports import AuditPort as AuditPort
from webhook.core.ports import Clock as Clock
from webhook.core.ports import CommitReadsPort as CommitReadsPort
from webhook.core.ports import EligibilityPort as EligibilityPort
from webhook.core.ports import GitHubPort as GitHubPort
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
    parse_merged_request,
    parse_request,
    revoked_paths,
)
from webhook.service.verdicts import StatusVerdicts

log = logging.getLogger("jitaccess")

#: How much older than the merge a comment may look and still be listed as a possible record
#: of a decision on it (GitHub's timestamps are whole seconds; the records all follow it).
RECORDS_MARGIN = timedelta(minutes=5)

T = TypeVar("T")


class _ByContent(Generic[T]):
    """A pure parser's results kept by the content they were parsed from.

    The policy files arrive with every event, nearly always unchanged, and parsing an
    identities file of 50,000 people costs a good part of a second. Results are immutable, so
    they are kept by the content's SHA-256 (an identities file is up to 2 MiB: keeping the
    files themselves as keys would hold megabytes, and compare them on every hit), the most
    recent first. The bytes object of the last hit is recognised without hashing at all: the
    GitHub adapter hands back the same object while GitHub answers 304 Not Modified.
    """

    def __init__(self, parse: Callable[[bytes], T], size: int = 4) -> None:
        self._parse = parse
        self._size = size
        self._results: OrderedDict[bytes, T] = OrderedDict()
        self._last: tuple[bytes, T] | None = None
        self._lock = threading.Lock()

    def __call__(self, data: bytes) -> T:
        """The parse of `data`, from the cache when it was parsed before."""
        with self._lock:
            last = self._last
        if last is not None and last[0] is data:
            return last[1]
        key = hashlib.sha256(data).digest()
        with self._lock:
            result = self._results.get(key)
            if result is not None:
                self._results.move_to_end(key)
        if result is None:
            result = self._parse(data)  # outside the lock: a slow parse blocks no other file
            with self._lock:
                self._results[key] = result
                while len(self._results) > self._size:
                    self._results.popitem(last=False)
        with self._lock:
            self._last = (data, result)
        return result


_parse_policy = _ByContent(parse_policy)
_parse_identities = _ByContent(parse_identities)


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
    # The PR's comments that matter for the event (see `Lifecycle._comments`), listed with the
    # facts so that editing the status comment or checking for an earlier activation comment
    # needs no listing later (None: not listed).
    comments: tuple[PullComment, ...] | None = None
    # What the diff at the head says (None when the PR is not a request).
    shape: PrShape | None = None
    # The head commit's current jit-access verdict (commit status or check run), read beside
    # the request file so that publishing can skip an unchanged verdict without a round trip
    # of its own (status_read: whether it was read; status None then means the commit has no
    # verdict yet, or the read failed and the verdict is published anyway).
    status_read: bool = False
    status: PublishedVerdict | None = None
    # For a revocation PR (its only change deletes request files): the files it deletes.
    revokes: tuple[str, ...] = ()
    # The files of the PR's diff at the head (None when the PR is not a request).
    changed: ChangedFiles | None = None

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


@dataclass(frozen=True)
class AtMerge:
    """How `evaluate` judges a merged PR: as of its merge, as its first delivery would have.

    Approvals are aged at `merged_at` rather than now, and the target branch is compared with
    `default_branch`, the default branch named in the signed delivery (None: the one the PR's
    base repository names now), so that a redelivery after a transient failure, or after the
    default branch was renamed, decides as the first delivery would have. `on_request` is called
    with the PR as soon as it is known to be a request, to start the reads only a merge needs
    beside the others.
    """

    default_branch: str | None = None
    on_request: Callable[[PullInfo], None] = lambda pull: None


#: How far before the merge the audit log is searched for its decision. The entries are dated
#: at the merge (refusals) or at the activation's start, which this service's clock sets after
#: the merge; the margin covers a clock that is behind GitHub's. Without an explicit time range
#: google-cloud-logging would search the last 24 hours only.
RECORD_MARGIN = timedelta(days=1)


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
        # Revocation PRs (their only change deletes earlier-merged request files) are handled
        # by `service.revocation`, which sets this: called with the evaluation of a request PR
        # and the delivery id, it answers the event, or None when the PR is no revocation PR.
        self.revocation_pr: Callable[[Evaluation, str], LifecycleResult | None] | None = None
        self._locks_guard = threading.Lock()

    # -- gathering -------------------------------------------------------------------------------

    def _submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        return self.executor.submit(fn, *args)

    def evaluate(
        self, number: int, now: datetime | None = None, *, at_merge: AtMerge | None = None,
        granting: bool = False,
    ) -> Evaluation:
        """Read the PR, its files, reviews, request file and the policy, and decide (as of the
        merge with `at_merge`).

        `granting`: the evaluation decides a merge (the only one that may grant access)."""
        now = now or self.clock()
        f_pull = self._submit(self.github.pull, number)
        f_reviews = self._submit(self._reviews, number)
        f_policy = self._submit(self.github.file_bytes, POLICY_PATH, None)
        f_ids = self._submit(
            self.github.file_bytes, IDENTITIES_PATH, None, MAX_IDENTITIES_BYTES
        )
        pull = f_pull.result()
        # The files judged must be those of the commit that receives the verdict: they are read
        # for the head sha just read, not for "the PR" (a push between two reads of the PR
        # would pair one commit's status with another commit's files), at the cost of one
        # round trip. The comments wait for the PR too — which of them matter depends on
        # whether it is merged — and are read beside the files, which costs none.
        f_files = self._submit(self._changed_files, pull)
        f_comments = self._submit(self._comments, pull)
        changed = f_files.result()
        # A merge is judged against the default branch GitHub named when it signed the
        # delivery, so that a redelivery after a rename decides as the first delivery did.
        default_branch = (at_merge and at_merge.default_branch) or pull.default_branch
        shape = check_pr_shape(
            changed.files, pull.author, pull.base_ref, default_branch,
            complete=changed.complete,
        )
        # A PR that only deletes request files is a revocation PR: with the revocation hook it
        # is judged as one (its targets found, revoked at merge); without it, a plain success.
        revokes = (
            revoked_paths(changed.files)
            if targets_default_branch(pull) and self.revocation_pr is None else ()
        )
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
        if at_merge is not None:
            at_merge.on_request(pull)
        f_request = (
            self._submit(self.github.file_bytes, shape.path, pull.head_sha)
            if shape.path is not None
            else None
        )
        # Only a PR that may set the verdict on its head reads the current one (see `publish`).
        f_status = (
            self._submit(self.verdicts.current, pull.head_sha)
            if pull.state == "open" and status_belongs_to(pull, shape)
            else None
        )
        reviews, reviews_complete = f_reviews.result()
        if pull.merged_at is not None:
            # Reviews given after the merge judge nothing: the request was decided at merge.
            merged_at = pull.merged_at
            reviews = tuple(
                r for r in reviews if r.submitted_at is not None and r.submitted_at <= merged_at
            )
        policy, policy_problems = self._policy(f_policy, f_ids)
        identities = (policy[1] if policy else Identities()).for_accounts(
            _accounts(pull, reviews)
        )
        settings = policy[0] if policy else None

        problems: list[Problem] = list(shape.problems)
        request: AccessRequest | None = None
        if f_request is not None and shape.path is not None:
            request, request_problems = self._request(f_request, settings)
            problems.extend(p.at(shape.path) for p in request_problems)
        if problems:
            request = None

        pr = PullRequestRef(self.repository, number, pull.author, pull.head_sha, pull.html_url)
        # A merge is judged at the moment it happened: a redelivery hours later must not find
        # that the approvals have aged since (neither in what is looked up, nor in the decision).
        as_of = pull.merged_at if at_merge is not None and pull.merged_at is not None else now
        eligibility: EligibilityFacts | None = None
        eligibility_problem: Problem | None = None
        requester = identities.email_for(pull.author)
        # Only a merge decision grants, and only an open PR shows a verdict: an evaluation of
        # a closed PR for anything else (a late review) asks nothing.
        granting = granting and pull.merged
        publishing = pull.state == "open" and not granting
        if (
            settings is not None and not policy_problems and request is not None and requester
            and (granting or publishing)
        ):
            question = question_for(
                policy=settings, request=request, requester=requester, reviews=reviews,
                author=pull.author, head_sha=pull.head_sha, identities=identities,
                now=as_of, publishing=publishing,
            )
            try:
                eligibility = self.eligibility.check(
                    scope=settings.scope,
                    project=request.project,
                    settings=source_for(settings.eligibility, granting=granting),
                    question=question,
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
            reviews_complete=reviews_complete,
            request_path=shape.path,
        )
        decision = decide(facts, as_of)
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
            pull, facts, decision, settings, f_comments.result(), shape,
            status_read=status_read, status=status, changed=changed,
        )

    def merged_request(self, pull: PullInfo) -> AccessRequest | None:
        """The request a merged PR added, read at its head and taken as merged (its form only,
        not today's limits: revoking it or recording a review of it must not depend on them),
        or None when the PR added no request file."""
        shape = check_pr_shape(
            self.github.files(pull.number), pull.author, pull.base_ref, pull.default_branch
        )
        if not shape.is_request or shape.problems or shape.path is None:
            return None
        text = self.github.file_bytes(shape.path, pull.head_sha)
        return parse_merged_request(text) if text is not None else None

    def _changed_files(self, pull: PullInfo) -> ChangedFiles:
        """The files of the PR's diff at `pull.head_sha`, the commit its verdict is about."""
        if pull.state == "open":
            # Compared at the exact sha, against the base branch as it is now: the diff GitHub
            # shows for the PR and the one a merge of that commit would bring.
            return self.github.compare(pull.base_ref, pull.head_sha)
        # A closed PR's head and file list no longer change (a merged PR's base branch now
        # holds its head, so a comparison would be empty). GitHub lists at most 3000 files
        # there; a list cut at that length has thousands of files, never a valid request.
        return ChangedFiles(self.github.files(pull.number))

    def _comments(self, pull: PullInfo) -> tuple[PullComment, ...]:
        """The PR's comments this event can need, however many people wrote.

        An open PR needs the service's status comment, edited in place: nearly always among
        the first, so the listing stops at the first page when it holds it. A merged PR needs
        the records of decisions on it (activation, refusal, failure comments), all posted
        after the merge: only comments younger than the merge are listed.
        """
        if pull.merged_at is not None:
            return self.github.comments(pull.number, since=pull.merged_at - RECORDS_MARGIN)
        return self.github.comments(pull.number, until=COMMENT_MARKER)

    def _reviews(self, number: int) -> tuple[tuple[Review, ...], bool]:
        """The PR's reviews and True; none and False when there are more than the service reads
        in one event (the decision then judges no approval rather than part of them)."""
        try:
            return self.github.reviews(number), True
        except ListTooLongError as exc:
            log.warning("PR #%d: %s; its approvals cannot be judged", number, exc)
            return (), False

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
        f_policy: Future[bytes | None], f_ids: Future[bytes | None]
    ) -> tuple[tuple[Policy, Identities] | None, list[Problem]]:
        """The policy and the identities read from the default branch, or every problem.

        A file too large to read is a policy problem like any other (status `error`, with a
        message on the PR), not a failed delivery.
        """
        problems: list[Problem] = []
        policy_text = _within_limit(f_policy, POLICY_PATH, MAX_POLICY_BYTES, problems)
        ids_text = _within_limit(f_ids, IDENTITIES_PATH, MAX_IDENTITIES_BYTES, problems)
        if policy_text is None:
            if not problems:
                problems.append(
                    Problem(ProblemCode.POLICY_MISSING,
                            f"{POLICY_PATH} is missing on the default branch", path=POLICY_PATH)
                )
            return None, problems
        policy, policy_problems = _parse_policy(policy_text)
        problems.extend(p.at(POLICY_PATH) for p in policy_problems)
        identities = Identities()
        if ids_text is None:
            if not any(p.path == IDENTITIES_PATH for p in problems):
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
        return (policy, replace(identities, settings=policy.identities)), problems

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
            decision, ev.pull, shape=ev.shape, policy=ev.policy,
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
        revoking = self.revocation_pr(ev, "") if self.revocation_pr is not None else None
        if revoking is not None:
            return None, revoking
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

    def on_merge(
        self, number: int, delivery_id: str, *, default_branch: str | None = None
    ) -> LifecycleResult:
        """A PR was closed as merged: decide again from fresh facts as of the merge, and
        activate, refuse, or find the decision an earlier delivery recorded.

        `default_branch` is the one named in the signed delivery (the target branch is judged
        against it); None uses the one the PR's base repository names now.
        """
        with self._pr_lock(number):
            return self._on_merge(number, delivery_id, default_branch)

    def _on_merge(
        self, number: int, delivery_id: str, default_branch: str | None
    ) -> LifecycleResult:
        now = self.clock()
        log_reads: list[Future[tuple[AuditedDecision, ...]]] = []

        def read_log(pull: PullInfo) -> None:
            # Beside the request file and eligibility reads, and only for a merged request:
            # entries.list is quota-limited (reads per minute), so no other event reads it.
            if pull.merged and pull.merged_at is not None:
                log_reads.append(self._submit(self._decisions, pull))

        try:
            ev = self.evaluate(
                number, now, at_merge=AtMerge(default_branch, read_log), granting=True
            )
        except BaseException:
            wait(log_reads)  # nothing of this event may still run once it is answered
            raise
        revoking = (
            self.revocation_pr(ev, delivery_id)
            if self.revocation_pr is not None and ev.is_request and ev.pull.merged else None
        )
        if revoking is not None:
            wait(log_reads)
            return revoking
        earlier = (
            self._earlier_records(ev, log_reads)
            if records_needed(ev.decision, ev.pull) else NO_RECORDS
        )
        action = self._merge_action(ev, earlier, now)
        if isinstance(action, LookUpBindings):
            decision = _decided(ev)
            try:
                found = self.activator.activations_for(action.project, decision.pr.reference)
            except JitAccessError as exc:
                # Refusing without knowing could contradict a grant that stands.
                return self._failed(
                    ev, decision, f"the IAM policy could not be read to check for an earlier "
                    f"activation: {exc}",
                )
            earlier = replace(earlier, bindings=found)
            action = self._merge_action(ev, earlier, now)
        match action:
            case NotARequest():
                return LifecycleResult(f"PR #{number} touches no request; nothing to activate")
            case NotMerged():
                return LifecycleResult(f"PR #{number} is not merged; nothing to activate")
            case AlreadyActivated():
                return self._already_activated(ev, _decided(ev), action, delivery_id)
            case AlreadyRefused(reason, post_comment):
                if post_comment:
                    # The recorded reason only: the decision as of now may say otherwise.
                    self.github.create_comment(
                        number, refusal_comment(reason, pr=_decided(ev).pr)
                    )
                return LifecycleResult(
                    f"PR #{number}: activation was refused (see the refusal comment); a "
                    "repeated merge event grants nothing"
                    + ("; the missing refusal comment was posted again" if post_comment else ""),
                    state="refused",
                )
            case RetryLater(reason):
                # Nothing is decided yet: failing (5xx, failure comment) lets a redelivery of
                # the merge event complete it, where a refusal would be final.
                return self._failed(ev, _decided(ev), reason)
            case Refuse(reason):
                return self._refuse(ev, _decided(ev), reason, delivery_id)
            case Activate():
                return self._activate(ev, _decided(ev), action, earlier, delivery_id, now)
            case LookUpBindings():  # pragma: no cover - looked up above; the rule book asks once
                raise AssertionError("bindings were looked up")
            case _:
                assert_never(action)

    @staticmethod
    def _merge_action(ev: Evaluation, earlier: EarlierRecords, now: datetime) -> MergeAction:
        return merge_action(
            ev.decision, ev.pull, earlier,
            max_delay=ev.policy.activation.max_delay if ev.policy else None,
            now=now, identities=_identities(ev),
        )

    def _decisions(self, pull: PullInfo) -> tuple[AuditedDecision, ...]:
        assert pull.merged_at is not None
        return self.audit.decisions(pull.html_url, since=pull.merged_at - RECORD_MARGIN)

    def _earlier_records(
        self, ev: Evaluation, log_reads: list[Future[tuple[AuditedDecision, ...]]]
    ) -> EarlierRecords:
        """The records of an earlier decision on this PR: the audit log's entries (read beside
        the facts) and the service's own comments (no call: listed with the facts). The
        binding is looked up by the activation's own read-modify-write, or before a refusal."""
        number, head = ev.pull.number, ev.pull.head_sha
        audited: tuple[AuditedDecision, ...] = ()
        log_error: str | None = "it was not read"  # evaluate starts the read for every merge
        if log_reads:
            try:
                audited, log_error = log_reads[0].result(), None
            except JitAccessError as exc:
                log.warning("audit log not readable for PR #%s: %s", number, exc)
                log_error = str(exc)
        return EarlierRecords(
            activation_comment=bool(
                self.github.comments_with(number, activation_marker(head), ev.comments)
            ),
            refusal_comment=bool(
                self.github.comments_with(number, refusal_marker(head), ev.comments)
            ),
            audited=audited,
            log_error=log_error,
        )

    def _already_activated(
        self, ev: Evaluation, decision: Decision, action: AlreadyActivated, delivery_id: str
    ) -> LifecycleResult:
        """Complete what the delivery that granted this merge left undone, and grant nothing."""
        number = ev.pull.number
        details: dict[str, Any] = {"written": False}
        if action.end is not None:
            details["end"] = rfc3339(action.end)
        if action.writer_until is not None:
            return LifecycleResult(
                f"PR #{number}: already activated by a delivery that may still be at work; a "
                "repeated merge event grants nothing (if the activation comment is still "
                f"missing after {rfc3339(action.writer_until)}, redeliver)",
                state="activated", details=details,
            )
        done: list[str] = []
        if action.write_record:
            assert action.start is not None and action.end is not None
            # The binding stands without its entry (its writer died in between): record the
            # window IAM holds, with the insert id and timestamp the writer would have used.
            record = activation_record(
                decision, ev.pull, _identities(ev), delivery_id, start=action.start,
                end=action.end,
            )
            try:
                self.audit.write(record)
            except JitAccessError as exc:
                # That binding is not this delivery's to take away; the comment says it stands.
                return self._failed(
                    ev, decision, f"the audit entry could not be written: {exc}",
                    access_remains=True,
                )
            done.append("the missing audit entry was written")
        if action.post_comment:
            assert action.start is not None and action.end is not None
            self.github.create_comment(
                number,
                activation_comment(decision, start=action.start, end=action.end, again=True),
            )
            done.append("the missing activation comment was posted again")
        return LifecycleResult(
            f"PR #{number}: already activated (see the activation comment); a repeated merge "
            "event grants nothing" + "".join(f"; {d}" for d in done),
            state="activated", details=details,
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
        self, ev: Evaluation, decision: Decision, action: Activate, earlier: EarlierRecords,
        delivery_id: str, now: datetime,
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
        if not result.written:
            # The read-modify-write found this PR's bindings: another delivery (an earlier one,
            # or one running at the same time on another instance) granted the access. The
            # etag made sure only one of us wrote; the rule book says what is left to do.
            if not result.bindings:  # the port's contract: not written means found present
                return self._failed(ev, decision, "IAM reported neither a write nor a binding")
            found = replace(earlier, bindings=result.bindings)
            return self._already_activated(
                ev, decision, already_activated(decision, found, now), delivery_id
            )
        stored: tuple[Binding, ...] = result.bindings or action.bindings
        start, end = action.start, action.end
        record = activation_record(
            decision, ev.pull, _identities(ev), delivery_id, start=start, end=end
        )
        try:
            self.audit.write(record)
        except JitAccessError as exc:
            rollback, remains = "", False
            try:
                # One write takes the new binding away and puts back the earlier activation it
                # replaced (audited when it was granted).
                restored = self.activator.remove(
                    request.project, stored, reason="audit entry failed",
                    restore=result.replaced,
                )
                rollback = "; the binding was removed again"
                if restored:
                    rollback += f" and {restored_note(restored)}"
            except JitAccessError as exc2:
                log.error("rollback failed for %s: %s", decision.pr.reference, exc2)
                rollback = f"; removing the binding again also failed: {exc2}"
                remains = True
            return self._failed(
                ev, decision, f"the audit entry could not be written: {exc}{rollback}",
                access_remains=remains,
            )
        # A new comment, so that GitHub notifies the participants. Only the delivery that wrote
        # the binding posts it at once; there is none for this head yet (the earlier records
        # said so, or the merge would not have been activated).
        self.github.create_comment(
            ev.pull.number, activation_comment(decision, start=start, end=end)
        )
        log.info("%s: %s activated %s on %s until %s", decision.pr.reference,
                 decision.requester, ",".join(request.roles), request.project, rfc3339(end))
        return LifecycleResult(
            f"PR #{ev.pull.number}: activated until {rfc3339(end)}", state="activated",
            details={"written": True, "end": rfc3339(end)},
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
                ev.comments,
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


def _within_limit(
    fetched: Future[bytes | None], path: str, limit: int, problems: list[Problem]
) -> bytes | None:
    """A policy file's bytes; None with a problem when it is too large to read."""
    try:
        return fetched.result()
    except FileTooLargeError as exc:
        problems.append(
            Problem(ProblemCode.TOO_LARGE,
                    f"{path} is {exc.size} bytes or more; the service reads at most {limit} "
                    f"bytes ({limit // 1024} KiB) of it", path=path)
        )
        return None


def _accounts(pull: PullInfo, reviews: Sequence[Review]) -> dict[str, int | None]:
    """The numeric account id behind each login acting on the PR: its author and reviewers.

    A login seen with two different ids in one event (renamed and claimed meanwhile) gets
    none, so that no entry with an id matches it.
    """
    seen: dict[str, int | None] = {pull.author.lower(): pull.author_id}
    for review in reviews:
        key = review.login.lower()
        if key in seen and seen[key] != review.user_id:
            seen[key] = None
        else:
            seen[key] = review.user_id
    return seen


def _decided(ev: Evaluation) -> Decision:
    """The decision of an evaluation of a request PR (merge actions past "not a request")."""
    assert ev.decision is not None
    return ev.decision


def _identities(ev: Evaluation) -> Identities:
    """The identity mapping the evaluation judged with (empty for a PR that is no request)."""
    return ev.facts.identities if ev.facts is not None else Identities()
