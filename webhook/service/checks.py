"""Re-runs and merge groups: the deliveries that GitHub's checks and merge queue cause.

A Re-run (`check_run` / `check_suite` `rerequested`) names a commit and perhaps some PRs; each
candidate PR is read again from GitHub, and what the Re-run does follows from its state then,
for a PR whose head is still that commit: an open PR is evaluated and its verdict published
anew; a merged PR goes through the very merge handler a redelivered merge event goes through
(`on_merge`), with its record checks — so a Re-run grants at most what a redelivery would,
never twice — and the outcome is published on its head.

A merge group (`merge_group` `checks_requested`) is judged from its files against its base: see
`core.merge_queue`. Activation still happens on each PR's own merge event.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

from webhook.core.checks import CheckRun, pr_hint
from webhook.core.errors import GitHubError, JitAccessError
from webhook.core.merge import StatusUpdate, verdict_after_merge
from webhook.core.merge_queue import (
    GroupFile,
    OpenPull,
    RequestInGroup,
    directory_owner,
    group_requests,
    group_verdict,
)
from webhook.core.model import State
from webhook.core.render import cut, inert, status_description
from webhook.service.lifecycle import Lifecycle, LifecycleResult

log = logging.getLogger("jitaccess")


class CheckEvents:
    """Serves Re-runs and merge groups for one repository, through the lifecycle's ports."""

    def __init__(self, lifecycle: Lifecycle) -> None:
        self.lifecycle = lifecycle

    # -- Re-run ----------------------------------------------------------------------------------

    def on_rerun(
        self, head_sha: str, numbers: tuple[int, ...], delivery_id: str
    ) -> LifecycleResult:
        """Someone chose Re-run on the `jit-access` check of commit `head_sha`."""
        candidates = list(numbers) or self._prs_of(head_sha)
        if not candidates:
            return LifecycleResult(
                f"Re-run of {head_sha[:12]}: no pull request has this commit; nothing to do"
            )
        results: list[LifecycleResult] = []
        for number in candidates:
            try:
                pull = self.lifecycle.github.pull(number)
            except GitHubError as exc:
                if exc.status == 404:
                    continue  # a payload may name a PR of another repository
                raise
            if pull.head_sha != head_sha:
                # The check of an older commit: the PR's current head has a check of its own
                # (re-running that one is what re-evaluates the PR).
                continue
            if pull.state == "open":
                results.append(self.lifecycle.reevaluate(number))
            elif pull.merged:
                results.append(self._retry_merge(number, head_sha, pull.html_url, delivery_id))
        if not results:
            return LifecycleResult(
                f"Re-run of {head_sha[:12]}: no open or merged PR has this head commit; "
                "nothing to do"
            )
        failed = [r for r in results if r.failed]
        shown = failed[0] if failed else results[0]
        return LifecycleResult(
            "; ".join(r.message for r in results), failed=bool(failed), state=shown.state,
            details=shown.details,
        )

    def _prs_of(self, head_sha: str) -> list[int]:
        """PRs of a commit when the payload names none (a fork's branch): the one our own check
        run names, else those GitHub associates with the commit."""
        try:
            current = self.lifecycle.verdicts.current(head_sha)
        except JitAccessError as exc:
            log.warning("Re-run of %s: the check run could not be read: %s", head_sha[:12], exc)
            current = None
        if isinstance(current, CheckRun):
            hint = pr_hint(current.external_id)
            if hint is not None:
                return [hint]
        if self.lifecycle.commits is None:
            return []
        return list(self.lifecycle.commits.pulls_for_commit(head_sha))

    def _retry_merge(
        self, number: int, head_sha: str, url: str, delivery_id: str
    ) -> LifecycleResult:
        """Retry a merged PR's activation exactly as a redelivered merge event would, then say
        on its head how it ended (a new check run: the rerequested suite waits for one)."""
        result = self.lifecycle.on_merge(number, delivery_id)
        update = verdict_after_merge(result.state, result.message, target_url=url or None)
        if update is not None:
            try:
                self.lifecycle.publish_verdict(head_sha, update, fresh=True, pr=number)
            except JitAccessError as exc:
                log.error("Re-run of #%s: the verdict could not be published: %s", number, exc)
        return result

    # -- merge queue -----------------------------------------------------------------------------

    def on_merge_group(
        self, head_sha: str, base: str, base_ref: str, numbers: tuple[int, ...]
    ) -> LifecycleResult:
        """The merge queue asks for the verdict on the group whose head is `head_sha`, built on
        `base` (a commit or the branch `base_ref`); `numbers` holds the PR its ref names."""
        commits = self.lifecycle.commits
        if commits is None:
            raise LookupError("merge groups need the commit reads port")
        try:
            requests = group_requests(commits.group_files(base, head_sha))
            found: list[RequestInGroup] = []
            if requests.added and not requests.problems:
                pulls = commits.open_pulls(base_ref)
                hinted = set(numbers)
                with ThreadPoolExecutor(
                    max_workers=len(requests.added), thread_name_prefix="jit-group"
                ) as pool:
                    found = list(pool.map(
                        lambda f: self._request_in_group(f, pulls, hinted), requests.added
                    ))
        except JitAccessError as exc:
            # Answer the queue now rather than leave it waiting for its timeout: the group is
            # taken out, and queueing the PRs again retries.
            log.error("merge group %s could not be checked: %s", head_sha[:12], exc)
            failure = StatusUpdate(
                "failure", cut(f"Merge group could not be checked: {exc}"), None,
                summary=f"### jit-access: merge group\n\nThe group could not be checked: "
                f"{inert(str(exc))}\n\nQueue the pull requests again to retry.",
            )
            self.lifecycle.publish_verdict(head_sha, failure)
            return LifecycleResult(
                f"merge group {head_sha[:12]}: could not be checked: {exc}", failed=True,
                state="failure",
            )
        update = group_verdict(requests, found)
        self.lifecycle.publish_verdict(head_sha, update)
        return LifecycleResult(
            f"merge group {head_sha[:12]}: {update.state}: {update.description}",
            state=update.state,
        )

    def _request_in_group(
        self, file: GroupFile, pulls: tuple[OpenPull, ...], hinted: set[int]
    ) -> RequestInGroup:
        """The open PR that adds this very request file, and whether it is ready now."""
        path, owner = file.filename, directory_owner(file.filename)
        candidates = sorted(
            (p for p in pulls if owner is not None and p.author.lower() == owner.lower()),
            key=lambda p: (p.number not in hinted, p.number),
        )
        differs: int | None = None
        github, commits = self.lifecycle.github, self.lifecycle.commits
        assert commits is not None
        for pull in candidates:
            if not any(
                f.filename == path and f.status in ("added", "copied")
                for f in github.files(pull.number)
            ):
                continue
            # The very file: another PR may add the same path with other content.
            if file.sha is None or commits.blob_sha(path, pull.head_sha) != file.sha:
                differs = pull.number
                continue
            ev = self.lifecycle.evaluate(pull.number)
            if ev.decision is None:
                continue
            return RequestInGroup(
                path, pull.number, ev.decision.state is State.READY,
                status_description(ev.decision),
            )
        if differs is not None:
            return RequestInGroup(
                path, differs, False, "the file in the merge group is not the one in the PR"
            )
        return RequestInGroup(path, None, False, "no open pull request of its owner adds it")
