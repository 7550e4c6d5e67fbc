"""Revocation: a `/jit revoke` comment on a merged request PR removes its activation.

Orchestration only; the rules (the command, who may revoke, the record and the comments) are
in `webhook.core.revocation`. The order of the effects is chosen so that a failure never
leaves access without a record of its removal, nor a record of a removal that did not happen:

1. the cheap checks first — the commenter's mapping, requester, the policy's revokers, a
   reviewer who is a designated `user:` approver of a role's rule — so an outsider or an
   unmapped commenter costs no Google call; another reviewer costs one eligibility lookup,
   and none when the rules leave nothing a lookup could show (`peers: false` and no approver
   group);
2. IAM first: the PR's activation bindings are removed in one etag-guarded read-modify-write
   (removing access is the safe direction, and Cloud Audit Logs record that write with the
   revoker in its request reason);
3. then the `gitops.revokeRole` entry, dated at the command with one insert id per command;
4. then a new comment. If the entry cannot be written, the comment says the access was removed
   without its entry and the delivery fails; a redelivery finds that comment and writes the
   entry (Cloud Logging keeps one entry per insert id and time).

A redelivered command finds the service's earlier reply to it (a marker carrying the comment
id) and does nothing new.
"""

from __future__ import annotations

import functools
import logging
from concurrent.futures import Future, wait
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from webhook.core.checks import UNREAD
from webhook.core.eligibility import source_for
from webhook.core.errors import JitAccessError
from webhook.core.identities import MAX_IDENTITIES_BYTES
from webhook.core.merge import StatusUpdate
from webhook.core.model import AccessRequest, Binding, Identities, Policy, PullInfo
from webhook.core.names import IDENTITIES_PATH, POLICY_PATH
from webhook.core.records import revoke_key_for_comment, revoke_key_for_pull, revoke_marker
from webhook.core.request_file import parse_merged_request
from webhook.core.revocation import (
    Authority,
    Revocation,
    RevocationTarget,
    authority,
    nothing_active_comment,
    qualified_reviewer,
    refused_comment,
    request_reason,
    reviewer_question,
    revocation_failed_comment,
    revocation_paths,
    revocation_pr_comment,
    revocation_record,
    revocation_status,
    revoked_comment,
)
from webhook.service.lifecycle import Evaluation, Lifecycle, LifecycleResult

log = logging.getLogger("jitaccess")

#: How much older than the command a reply may look and still be listed (GitHub's timestamps
#: are whole seconds and the replies all follow the command).
REPLY_MARGIN = timedelta(minutes=5)


@dataclass(frozen=True)
class RevokeCommandEvent:
    """A `/jit revoke` comment, as the signed delivery names it."""

    number: int
    comment_id: int
    commenter: str
    reason: str
    created_at: datetime | None


def parse_time(text: str | None) -> datetime | None:
    """An RFC 3339 time of a payload (`2026-11-29T10:00:00Z`), or None."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


class Revocations:
    """Revokes activations for the lifecycle's repository, through the lifecycle's ports."""

    def __init__(self, lifecycle: Lifecycle) -> None:
        self.lc = lifecycle
        lifecycle.revocation_pr = self.on_revocation_pr

    def on_command(self, event: RevokeCommandEvent, delivery_id: str) -> LifecycleResult:
        """A `/jit revoke` comment was created on PR `event.number`."""
        with self.lc._pr_lock(event.number):
            return self._on_command(event, delivery_id)

    def _on_command(self, event: RevokeCommandEvent, delivery_id: str) -> LifecycleResult:
        lc, gh = self.lc, self.lc.github
        number = event.number
        at = (event.created_at or lc.clock()).replace(microsecond=0)
        f_pull = lc._submit(gh.pull, number)
        f_policy = lc._submit(gh.file_bytes, POLICY_PATH, None)
        f_ids = lc._submit(gh.file_bytes, IDENTITIES_PATH, None, MAX_IDENTITIES_BYTES)
        f_replies = lc._submit(functools.partial(gh.comments, since=at - REPLY_MARGIN), number)
        f_reviews = lc._submit(gh.reviews, number)
        try:
            pull = f_pull.result()
            replies = f_replies.result()
            f_policy.exception()
            f_ids.exception()
        except BaseException:
            # Nothing of this event may still run once it is answered.
            pending: list[Future[Any]] = [f_pull, f_policy, f_ids, f_replies, f_reviews]
            wait(pending)
            raise
        if not pull.merged or pull.merged_at is None:
            f_reviews.exception()
            return LifecycleResult(f"PR #{number} is not merged; nothing to revoke")
        key = revoke_key_for_comment(event.comment_id)
        earlier = {
            outcome
            for outcome in ("done", "nothing", "refused", "failed")
            if gh.comments_with(number, revoke_marker(key, outcome), replies)
        }
        if earlier & {"done", "nothing", "refused"}:
            f_reviews.exception()
            return LifecycleResult(
                f"PR #{number}: revocation command {event.comment_id} was answered already; "
                "a repeated delivery changes nothing", state="answered",
            )
        policy_pair, problems = Lifecycle._policy(f_policy, f_ids)
        if policy_pair is None or problems:
            f_reviews.exception()
            return LifecycleResult(
                f"PR #{number}: the policy is invalid; nothing can be revoked", failed=True,
                state="error",
            )
        policy, identities = policy_pair
        request = self.lc.merged_request(pull)
        if request is None:
            f_reviews.exception()
            return LifecycleResult(f"PR #{number} is no request PR; nothing to revoke")
        revoker_identity = identities.email_for(event.commenter) or event.commenter
        revocation = Revocation(
            pull=pull, pr_reference=f"{lc.repository}#{number}", key=key,
            revoker=event.commenter, revoker_identity=revoker_identity, reason=event.reason,
            at=at,
        )
        if "failed" in earlier:
            # An earlier delivery removed the access and could not write the entry: only the
            # entry and the comment are left to do.
            f_reviews.exception()
            return self._record(revocation, request, (), identities, delivery_id, again=True)
        reviews = f_reviews.result()
        who = authority(
            event.commenter, author=pull.author, revokers=policy.revocation.revokers,
            identities=identities, reviews=reviews,
        )
        if who is Authority.ASK_ELIGIBILITY:
            try:
                qualified = self._qualified(
                    policy, request, revoker_identity, identities.email_for(pull.author)
                )
            except JitAccessError as exc:
                return LifecycleResult(
                    f"PR #{number}: the reviewer's eligibility could not be looked up: {exc}",
                    failed=True, state="error",
                )
            who = Authority.REVIEWER if qualified else Authority.NOT_ALLOWED
        if not who.allowed:
            gh.create_comment(
                number, refused_comment(
                    revocation, author=pull.author, revokers=policy.revocation.revokers,
                    unmapped=who is Authority.UNMAPPED,
                ),
            )
            return LifecycleResult(
                f"PR #{number}: @{event.commenter} may not revoke ({who.value})",
                state="refused",
            )
        return self._revoke(revocation, request, identities, delivery_id)

    def _revoke(
        self, revocation: Revocation, request: AccessRequest, identities: Identities,
        delivery_id: str, bindings: tuple[Binding, ...] | None = None,
    ) -> LifecycleResult:
        """Remove the PR's activation bindings (IAM first), then record and comment."""
        lc, number = self.lc, revocation.pull.number
        try:
            if bindings is None:
                bindings = lc.activator.activations_for(request.project, revocation.pr_reference)
            if bindings:
                lc.activator.remove(
                    request.project, bindings, reason=request_reason(revocation)
                )
        except JitAccessError as exc:
            self._comment_quietly(number, revocation_failed_comment(revocation, str(exc)))
            return LifecycleResult(
                f"PR #{number}: revocation failed: {exc}", failed=True, state="failed"
            )
        if not bindings:
            lc.github.create_comment(number, nothing_active_comment(revocation))
            return LifecycleResult(
                f"PR #{number}: no activation in effect; nothing revoked", state="nothing"
            )
        return self._record(revocation, request, bindings, identities, delivery_id)

    def _record(
        self, revocation: Revocation, request: AccessRequest, bindings: tuple[Binding, ...],
        identities: Identities, delivery_id: str, *, again: bool = False,
    ) -> LifecycleResult:
        """Write the revocation's entry and say it on the PR (the bindings are gone)."""
        number = revocation.pull.number
        gh = self.lc.github
        shown = bindings or tuple(
            Binding(role, f"user:{identities.email_for(revocation.pull.author) or ''}", "", "",
                    "")
            for role in request.roles
        )
        record = revocation_record(
            revocation, request, bindings, delivery_id,
            requester=identities.email_for(revocation.pull.author) or "",
        )
        try:
            self.lc.audit.write(record)
        except JitAccessError as exc:
            log.error("%s: access revoked, but the audit entry failed: %s",
                      revocation.pr_reference, exc)
            if not again:
                self._comment_quietly(
                    number, revoked_comment(revocation, request.project, shown, audited=False)
                )
            return LifecycleResult(
                f"PR #{number}: access revoked, but the audit entry could not be written: "
                f"{exc}", failed=True, state="revoked-unaudited",
            )
        gh.create_comment(number, revoked_comment(revocation, request.project, shown))
        log.info("%s: %s revoked %s on %s", revocation.pr_reference,
                 revocation.revoker_identity, ",".join(b.role for b in shown), request.project)
        return LifecycleResult(
            f"PR #{number}: access revoked" + ("; the missing audit entry was written"
                                               if again else ""),
            state="revoked",
        )

    def _comment_quietly(self, number: int, body: str) -> None:
        try:
            self.lc.github.create_comment(number, body)
        except JitAccessError as exc:
            log.error("could not comment on PR #%d: %s", number, exc)


    def on_revocation_pr(self, ev: Evaluation, delivery_id: str) -> LifecycleResult | None:
        """An open or merged revocation PR: its verdict, or the revocations its merge makes;
        None when the PR is no revocation PR (it is then judged as any other)."""
        pull = ev.pull
        if ev.changed is None or ev.policy is None or ev.facts is None:
            return None
        paths = revocation_paths(
            ev.changed.files, base_ref=pull.base_ref, default_branch=pull.default_branch,
            complete=ev.changed.complete,
        )
        if paths is None:
            return None
        policy, identities = ev.policy, ev.facts.identities
        try:
            found = [self._target(path, pull.default_branch) for path in paths]
        except JitAccessError as exc:
            return LifecycleResult(
                f"PR #{pull.number}: the revoked requests could not be read: {exc}",
                failed=True, state="error",
            )
        targets = [t for t, _, _ in found]
        key = revoke_key_for_pull(pull.number)
        if not pull.merged:
            state, description = revocation_status(targets)
            body = revocation_pr_comment(key, targets, merged=False)
            # Through the verdict port: a check run with the App, a commit status with a token;
            # unchanged verdicts are not published again.
            self.lc.publish_verdict(
                pull.head_sha,
                StatusUpdate(state, description, pull.html_url or None, summary=body),
                current=ev.status if ev.status_read else UNREAD, pr=pull.number,
            )
            self.lc.github.upsert_comment(
                pull.number, revoke_marker(key, "status"),
                body, ev.comments,
            )
            return LifecycleResult(f"PR #{pull.number}: {description}", state="revocation")
        if self.lc.github.comments_with(pull.number, revoke_marker(key, "summary"), ev.comments):
            return LifecycleResult(
                f"PR #{pull.number}: the revocation was made already; a repeated merge event "
                "changes nothing", state="answered",
            )
        outcomes: dict[int, str] = {}
        failed = False
        at = (pull.merged_at or self.lc.clock()).replace(microsecond=0)
        for target, target_pull, request in found:
            if target.number is None or target_pull is None or request is None:
                continue
            revocation = Revocation(
                pull=target_pull, pr_reference=f"{self.lc.repository}#{target.number}",
                key=key, revoker=pull.author,
                revoker_identity=identities.email_for(pull.author) or pull.author,
                reason=f"revocation pull request #{pull.number}", at=at,
            )
            if not target.bindings:
                # An earlier delivery of this merge may have removed them and failed to
                # record it: its marked comment on the revoked PR says so.
                replies = self.lc.github.comments(target.number, since=at - REPLY_MARGIN)
                if self.lc.github.comments_with(
                    target.number, revoke_marker(key, "failed"), replies
                ) and not self.lc.github.comments_with(
                    target.number, revoke_marker(key, "done"), replies
                ):
                    result = self._record(revocation, request, (), identities, delivery_id,
                                          again=True)
                    failed = failed or result.failed
                    outcomes[target.number] = (
                        "revoked" if not result.failed else f"failed: {result.message}"
                    )
                else:
                    outcomes[target.number] = "no activation in effect; nothing revoked"
                continue
            if not self._may_revoke(pull.author, target_pull, request, policy, identities):
                outcomes[target.number] = (
                    f"not revoked: @{pull.author} may not revoke it (only the requester, a "
                    "qualified reviewer or a listed revoker may)"
                )
                continue
            result = self._revoke(revocation, request, identities, delivery_id, target.bindings)
            failed = failed or result.failed
            outcomes[target.number] = {
                "revoked": "revoked", "nothing": "no activation in effect; nothing revoked",
            }.get(result.state or "", f"failed: {result.message}")
        # The summary is the record a redelivery looks for: posted as such only when every
        # revocation was completed, so that a redelivery after a failure completes the rest.
        self.lc.github.create_comment(
            pull.number, revocation_pr_comment(
                key, targets, merged=True, outcomes=outcomes, complete=not failed
            ),
        )
        summary = "; ".join(f"#{n}: {o}" for n, o in sorted(outcomes.items())) or "nothing"
        return LifecycleResult(
            f"PR #{pull.number}: revocation PR merged: {summary}", failed=failed,
            state="failed" if failed else "revocation",
        )

    def _target(
        self, path: str, default_branch: str
    ) -> tuple[RevocationTarget, PullInfo | None, AccessRequest | None]:
        """The PR that added a deleted request file, its request and its live bindings."""
        gh = self.lc.github
        number = gh.pull_that_added(path, default_branch)
        if number is None:
            return RevocationTarget(path, None), None, None
        target = gh.pull(number)
        text = gh.file_bytes(path, target.head_sha)
        # Taken as merged: a policy tightened since must not keep its access alive.
        request = parse_merged_request(text) if text is not None else None
        if request is None:
            return RevocationTarget(path, number), target, None
        bindings = self.lc.activator.activations_for(
            request.project, f"{self.lc.repository}#{number}"
        )
        return RevocationTarget(path, number, bindings), target, request

    def _may_revoke(
        self, login: str, target: PullInfo, request: AccessRequest, policy: Policy,
        identities: Identities,
    ) -> bool:
        who = authority(
            login, author=target.author, revokers=policy.revocation.revokers,
            identities=identities, reviews=self.lc.github.reviews(target.number),
        )
        if who is Authority.ASK_ELIGIBILITY:
            return self._qualified(
                policy, request, identities.email_for(login) or "",
                identities.email_for(target.author),
            )
        return who.allowed

    def _qualified(
        self, policy: Policy, request: AccessRequest, identity: str, requester: str | None
    ) -> bool:
        """Is a reviewer of the PR a qualified reviewer of one of its roles? A designated
        `user:` approver is known without a call; otherwise one eligibility lookup, unless no
        answer could qualify them (`reviewer_question`)."""
        if qualified_reviewer(policy, request, identity, requester):
            return True
        question = reviewer_question(policy, request, identity, requester)
        if question is None:
            return False
        facts = self.lc.eligibility.check(
            scope=policy.scope, project=request.project,
            # Revoking grants nothing: never a Policy Analyzer query.
            settings=source_for(policy.eligibility, granting=False),
            question=question,
        )
        return qualified_reviewer(policy, request, identity, requester, facts)
