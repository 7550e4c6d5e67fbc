"""The Checks API and the commit reads of Re-runs and merge groups, through PyGithub.

`CheckRuns` publishes the `jit-access` verdict as a check run (GitHub App credentials only: a
token cannot create check runs). What to send is decided by `core.checks.plan_check_run`; this
module only reads the current check run and sends the plan. `CommitReads` answers what a Re-run
or a merge group needs beyond a pull request: the files of a comparison, the open PRs, the PRs of
a commit, and a file's blob id.

The calls go through the `GitHubRepo` adapter's per-thread clients and its error translation
(every failure is a `GitHubError`), and through PyGithub's `Requester` where PyGithub has no
method that makes exactly the one call wanted (it lists check runs without the `app_id` filter,
and fetches an object again before editing it).
"""

from __future__ import annotations

import logging
import urllib.parse
from typing import Any

from webhook.adapters.github_api import GitHubRepo, _bounded
from webhook.core.checks import (
    PARTIAL_NOTES,
    UNREAD,
    CheckRun,
    CreateRun,
    KeepRun,
    Unread,
    UpdateRun,
    WantedCheckRun,
    external_id,
    plan_check_run,
    pr_hint,
    wanted_check_run,
)
from webhook.core.errors import GitHubError
from webhook.core.merge import StatusUpdate
from webhook.core.merge_queue import GroupFile, OpenPull
from webhook.core.names import STATUS_CONTEXT
from webhook.core.ports import PublishedVerdict

log = logging.getLogger("jitaccess")

#: Open PRs looked at for a merge group, at most (GitHub lists 100 a page).
MAX_OPEN_PULLS = 500


class CheckRuns:
    """The `jit-access` verdict as a check run of this App, one per head commit."""

    def __init__(self, repo: GitHubRepo, app_id: int) -> None:
        self.repo = repo
        self.app_id = app_id

    def _path(self, tail: str) -> str:
        return f"/repos/{self.repo.settings.repository}{tail}"

    def current(self, sha: str) -> PublishedVerdict | None:
        """The newest `jit-access` check run of this App on the commit, None if it has none
        (1 call: GET /commits/{sha}/check-runs?check_name=jit-access&app_id=…)."""
        with self.repo._calling(f"reading the {STATUS_CONTEXT} check run of {sha[:12]}"):
            _, data = self.repo._gh().requester.requestJsonAndCheck(
                "GET", self._path(f"/commits/{sha}/check-runs"),
                parameters={
                    "check_name": STATUS_CONTEXT, "app_id": self.app_id, "filter": "latest",
                    "per_page": 100,
                },
            )
            runs = data.get("check_runs") if isinstance(data, dict) else None
            if not isinstance(runs, list):
                raise ValueError("no check_runs in the answer")
            ours = [
                r for r in runs
                if isinstance(r, dict) and r.get("name") == STATUS_CONTEXT
                and isinstance(r.get("app"), dict) and r["app"].get("id") == self.app_id
            ]
            if not ours:
                return None
            return _check_run(max(ours, key=lambda r: int(r["id"])))

    def publish(
        self, sha: str, update: StatusUpdate, *,
        current: PublishedVerdict | None | Unread = UNREAD, fresh: bool = False,
        pr: int | None = None,
    ) -> bool:
        """Make the commit's check run say `update`; returns whether anything was sent.

        `current` is the check run read earlier in the event (`current`; None for none), else
        it is read first (+1 call; a failed read creates a new check run rather than fail).
        `fresh`: a Re-run, answered with a new check run. Calls: 0 when the check run already
        says this, else 1 create or update, +1 per further 50 annotations.
        """
        wanted = wanted_check_run(update, pr=pr)
        if isinstance(current, Unread):
            try:
                current = self.current(sha)
            except GitHubError as exc:
                log.warning("creating the check run without comparing: %s", exc)
                current = None
        run = current if isinstance(current, CheckRun) else None
        plan = plan_check_run(wanted, run, fresh=fresh)
        match plan:
            case KeepRun():
                return False
            case CreateRun(batches):
                first, rest = batches[0], batches[1:]
                run_id = self._create(sha, wanted, first, final=not rest)
                self._send_batches(run_id, wanted, rest)
            case UpdateRun(run_id, batches):
                self._send_batches(run_id, wanted, batches)
        return True

    def _send_batches(
        self, run_id: int, wanted: WantedCheckRun, batches: tuple[tuple[Any, ...], ...]
    ) -> None:
        # Annotations are appended by each update; the final external_id (with the fingerprint
        # of every annotation) is set by the last request only, so that an interrupted series
        # is told apart and replaced next time.
        for n, batch in enumerate(batches):
            self._update(run_id, wanted, batch, final=n == len(batches) - 1)

    def _create(
        self, sha: str, wanted: WantedCheckRun, annotations: tuple[Any, ...], *, final: bool
    ) -> int:
        body = {
            "name": STATUS_CONTEXT, "head_sha": sha,
            **wanted.fields(external_id=None if final else _partial(wanted)),
            "output": wanted.output(annotations),
        }
        with self.repo._calling(f"creating the {STATUS_CONTEXT} check run on {sha[:12]}"):
            _, data = self.repo._gh().requester.requestJsonAndCheck(
                "POST", self._path("/check-runs"), input=body
            )
            return int(data["id"])

    def _update(
        self, run_id: int, wanted: WantedCheckRun, annotations: tuple[Any, ...], *, final: bool
    ) -> None:
        body = {
            **wanted.fields(external_id=None if final else _partial(wanted)),
            "output": wanted.output(annotations),
        }
        with self.repo._calling(f"updating check run {run_id}"):
            self.repo._gh().requester.requestJsonAndCheck(
                "PATCH", self._path(f"/check-runs/{run_id}"), input=body
            )


def _partial(wanted: WantedCheckRun) -> str:
    """The external_id while annotations are still being sent: `notes=partial`."""
    return external_id(pr_hint(wanted.external_id), PARTIAL_NOTES)


def _check_run(data: dict[str, Any]) -> CheckRun:
    output = data.get("output") if isinstance(data.get("output"), dict) else {}
    assert isinstance(output, dict)
    external = data.get("external_id")
    return CheckRun(
        id=int(data["id"]),
        status=str(data.get("status") or ""),
        conclusion=str(data["conclusion"]) if data.get("conclusion") else None,
        title=str(output.get("title") or ""),
        summary=str(output.get("summary") or ""),
        details_url=str(data["details_url"]) if data.get("details_url") else None,
        external_id=str(external) if isinstance(external, str) else "",
    )


class CommitReads:
    """Reads of Re-runs and merge groups: comparisons, open PRs, PRs of a commit, blob ids."""

    def __init__(self, repo: GitHubRepo) -> None:
        self.repo = repo

    def group_files(self, base: str, head: str) -> tuple[GroupFile, ...]:
        """The files `head` changes against `base` (1 call: GET /compare/{base}...{head});
        GitHub lists at most 300 files, on the first page only."""
        quoted = urllib.parse.quote(base, safe="")
        with self.repo._calling(f"comparing {base[:40]}...{head[:12]}"):
            _, data = self.repo._gh().requester.requestJsonAndCheck(
                "GET",
                f"/repos/{self.repo.settings.repository}/compare/{quoted}...{head}",
                parameters={"per_page": 1},  # commits, which are not needed; files come whole
            )
            files = data.get("files") if isinstance(data, dict) else None
            if files is None:
                return ()
            if not isinstance(files, list):
                raise ValueError("files is not a list")
            return tuple(
                GroupFile(
                    filename=str(f["filename"]),
                    status=str(f["status"]),
                    sha=str(f["sha"]) if f.get("sha") else None,
                    previous_filename=(
                        str(f["previous_filename"]) if f.get("previous_filename") else None
                    ),
                )
                for f in files
            )

    def open_pulls(self, base: str) -> tuple[OpenPull, ...]:
        """Open PRs into `base` (1 call per 100: GET /pulls?state=open&base=…)."""
        with self.repo._calling(f"listing the open pull requests into {base[:80]}"):
            pulls = self.repo._repo().get_pulls(state="open", base=base)
            out: list[OpenPull] = []
            for pr in _bounded(pulls, "listing open pull requests"):
                if len(out) >= MAX_OPEN_PULLS:
                    break
                data = pr.raw_data
                user, head, base_side = data.get("user"), data.get("head"), data.get("base")
                if not (isinstance(user, dict) and isinstance(head, dict)
                        and isinstance(base_side, dict)):
                    continue
                out.append(OpenPull(
                    int(data["number"]), str(user.get("login") or ""), str(head.get("sha") or ""),
                    str(base_side.get("ref") or ""),
                ))
            return tuple(out)

    def pulls_for_commit(self, sha: str) -> tuple[int, ...]:
        """The PRs GitHub associates with a commit (1 call: GET /commits/{sha}/pulls): open ones
        with it as head, and the merged one that brought it onto the default branch."""
        with self.repo._calling(f"listing the pull requests of {sha[:12]}"):
            pulls = self.repo._repo().get_commit(sha).get_pulls()
            return tuple(
                int(pr.raw_data["number"]) for pr in _bounded(pulls, "listing pull requests")
            )

    def blob_sha(self, path: str, ref: str) -> str | None:
        """The git blob id of a file at a ref, None if absent (1 call: GET /contents/{path})."""
        with self.repo._calling(f"reading {path} at {ref[:12]}"):
            from github.GithubException import UnknownObjectException

            try:
                content = self.repo._repo().get_contents(path, ref=ref)
            except UnknownObjectException:
                return None
            if isinstance(content, list):
                return None
            return str(content.sha)
