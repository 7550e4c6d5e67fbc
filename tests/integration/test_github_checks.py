"""The check-run and commit-read adapters through real PyGithub against the fake GitHub, and the
fake's own Checks API rules (the ones GitHub documents and answers with 403 and 422)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from jitaccess_sandbox.fake_github import FakeGitHub
from jitaccess_sandbox.httpserver import LocalServer
from webhook.adapters.github_api import GitHubAuth, GitHubRepo
from webhook.adapters.github_checks import CheckRuns, CommitReads
from webhook.core.checks import Annotation, CheckRun
from webhook.core.errors import GitHubError
from webhook.core.merge import StatusUpdate
from webhook.core.merge_queue import OpenPull

REPO = "acme/access"
URL = "https://github.com/acme/access/pull/1"
PATH = "requests/alice/a.yaml"
REQUEST = "project: payments-dev\nroles: [roles/cloudsql.admin]\nduration: 1h\n"
RUNS = rf"^/repos/{REPO}/check-runs"


@pytest.fixture
def fake() -> Iterator[FakeGitHub]:
    f = FakeGitHub()
    f.add_repo(REPO)
    f.install(REPO)
    f.add_token("ghp_person", "alice")
    yield f
    assert f.recorder.unexpected == []


@pytest.fixture
def server(fake: FakeGitHub) -> Iterator[str]:
    with LocalServer(fake) as s:
        yield fake.api_url(s.url)


@pytest.fixture
def repo(fake: FakeGitHub, server: str) -> Iterator[GitHubRepo]:
    gh = GitHubRepo(GitHubAuth(repository=REPO, api_url=server, app_id=str(fake.app_id),
                               private_key_pem=fake.app_private_key_pem))
    yield gh
    gh.close()


def installation_headers(fake: FakeGitHub) -> dict[str, str]:
    return {"Authorization": f"token {fake.installation_token(REPO)}"}


def update(state: str, description: str, *notes: Annotation, summary: str = "s") -> StatusUpdate:
    return StatusUpdate(state, description, URL, summary=summary, annotations=notes)


# ----------------------------------------------------------------------------------------------
# CheckRuns


def test_one_check_run_per_head_created_then_updated_then_kept(
    fake: FakeGitHub, repo: GitHubRepo
) -> None:
    sha = fake.branch_sha(REPO)
    checks = CheckRuns(repo, fake.app_id)
    assert checks.current(sha) is None
    assert checks.publish(sha, update("pending", "Waiting"), pr=1) is True
    current = checks.current(sha)
    assert isinstance(current, CheckRun) and current.status == "in_progress"
    assert checks.publish(sha, update("success", "Ready"), current=current, pr=1) is True
    done = checks.current(sha)
    assert isinstance(done, CheckRun) and (done.id, done.conclusion) == (current.id, "success")
    fake.recorder.clear()
    assert checks.publish(sha, update("success", "Ready"), current=done, pr=1) is False
    assert checks.publish(sha, update("success", "Ready"), pr=1) is False  # reads, then keeps
    assert [(c.method, c.path) for c in fake.recorder.calls] == [
        ("GET", f"/repos/{REPO}/commits/{sha}/check-runs")
    ]
    assert sorted(fake.recorder.calls[0].query.split("&")) == [
        f"app_id={fake.app_id}", "check_name=jit-access", "filter=latest", "per_page=100",
    ]


def test_another_apps_check_run_of_the_same_name_is_not_ours(
    fake: FakeGitHub, repo: GitHubRepo
) -> None:
    sha = fake.branch_sha(REPO)
    fake.add_check_run(REPO, sha, "jit-access", app_id=999, conclusion="success", title="forged")
    checks = CheckRuns(repo, fake.app_id)
    assert checks.current(sha) is None
    checks.publish(sha, update("failure", "Invalid request: x"))
    [forged, ours] = fake.check_runs(REPO, sha, "jit-access")
    assert (forged.app_id, forged.title) == (999, "forged")
    assert (ours.app_id, ours.conclusion) == (fake.app_id, "failure")


def test_many_annotations_go_in_batches_of_50(fake: FakeGitHub, repo: GitHubRepo) -> None:
    sha = fake.branch_sha(REPO)
    notes = tuple(Annotation(PATH, n, f"problem {n}", "unknown_key") for n in range(1, 121))
    CheckRuns(repo, fake.app_id).publish(sha, update("failure", "Invalid", *notes), pr=3)
    [run] = fake.check_runs(REPO, sha)
    assert [len(r["output"].get("annotations", [])) for r in run.requests] == [50, 50, 20]
    assert [a["start_line"] for a in run.annotations] == list(range(1, 121))
    assert run.external_id.startswith("jit-access/1 pr=3 notes=")
    assert fake.recorder.count("POST", RUNS) == 1 and fake.recorder.count("PATCH", RUNS) == 2


def test_a_failed_read_creates_rather_than_fails(fake: FakeGitHub, repo: GitHubRepo) -> None:
    sha = fake.branch_sha(REPO)
    fake.recorder.fail("GET", r"/check-runs$", 404)
    assert CheckRuns(repo, fake.app_id).publish(sha, update("success", "Ready")) is True
    assert len(fake.check_runs(REPO, sha)) == 1


def test_a_refused_create_is_a_github_error_naming_it(fake: FakeGitHub, repo: GitHubRepo) -> None:
    with pytest.raises(GitHubError, match=r"creating the jit-access check run on 0{12}: HTTP 422"):
        CheckRuns(repo, fake.app_id).publish("0" * 40, update("success", "Ready"), current=None)


# ----------------------------------------------------------------------------------------------
# The fake's rules, at the wire


def post_run(fake: FakeGitHub, server: str, body: dict[str, Any], **kw: Any) -> requests.Response:
    headers = kw.pop("headers", None) or installation_headers(fake)
    return requests.post(f"{server}/repos/{REPO}/check-runs", json=body, headers=headers,
                         timeout=10)


def annotation(**changes: Any) -> dict[str, Any]:
    return {"path": PATH, "start_line": 1, "end_line": 1, "annotation_level": "failure",
            "message": "m", **changes}


def test_the_fake_refuses_what_github_refuses(fake: FakeGitHub, server: str) -> None:
    sha = fake.branch_sha(REPO)
    base = {"name": "jit-access", "head_sha": sha}

    def refused(body: dict[str, Any]) -> dict[str, Any]:
        resp = post_run(fake, server, {**base, **body})
        assert resp.status_code == 422, resp.text
        data = resp.json()
        assert isinstance(data, dict)
        return data

    output = {"title": "t", "summary": "s"}
    many = [annotation(start_line=n, end_line=n) for n in range(1, 52)]
    assert refused({"output": {**output, "annotations": many}})["message"] == (
        "Invalid request.\n\nNo more than 50 items are allowed; 51 were supplied."
    )
    assert refused({"output": {"title": "t"}})["message"] == (
        "Invalid request.\n\n\"summary\" wasn't supplied."
    )
    bad_line = refused({"output": {**output, "annotations": [annotation(start_line=0)]}})
    invalid = [{"resource": "CheckRun", "code": "invalid", "field": "annotations"}]
    assert bad_line["errors"] == invalid
    backwards = refused({"output": {**output, "annotations": [annotation(end_line=0)]}})
    assert backwards["message"] == "Validation Failed"
    level = refused({"output": {**output, "annotations": [annotation(annotation_level="error")]}})
    assert level["message"].startswith(
        "Invalid request.\n\nFor 'properties/annotation_level', \"error\" is not a member of"
    )
    missing = refused({"output": {**output, "annotations": [{"path": PATH}]}})
    assert missing["message"] == (
        'Invalid request.\n\n"start_line", "end_line", "annotation_level", "message" weren\'t '
        "supplied."
    )
    assert refused({"output": {**output, "summary": "x" * 65536}})["message"].startswith(
        "Invalid request.\n\nNo more than 65535 characters"
    )
    assert refused({"status": "completed"})["errors"][0]["field"] == "conclusion"
    assert refused({"conclusion": "stale"})["message"].startswith(
        "Invalid request.\n\nFor 'properties/conclusion', \"stale\" is not a member of"
    )
    assert fake.check_runs(REPO, sha) == []  # nothing refused was stored

    person = post_run(fake, server, base, headers={"Authorization": "token ghp_person"})
    assert (person.status_code, person.json()["message"]) == (
        403, "You must authenticate via a GitHub App."
    )


def test_only_the_owning_app_updates_and_a_completed_conclusion_stays(
    fake: FakeGitHub, server: str
) -> None:
    sha = fake.branch_sha(REPO)
    foreign = fake.add_check_run(REPO, sha, "jit-access", app_id=999)
    resp = requests.patch(f"{server}/repos/{REPO}/check-runs/{foreign}",
                          json={"conclusion": "failure"}, headers=installation_headers(fake),
                          timeout=10)
    assert (resp.status_code, resp.json()["message"]) == (
        403, "Invalid app_id `999` - check run can only be modified by the GitHub App that "
        "created it.",
    )

    created = post_run(fake, server, {"name": "jit-access", "head_sha": sha,
                                      "conclusion": "success",
                                      "output": {"title": "Ready", "summary": "s"}})
    assert created.status_code == 201 and created.json()["status"] == "completed"
    run_id = created.json()["id"]
    later = requests.patch(
        f"{server}/repos/{REPO}/check-runs/{run_id}",
        json={"status": "in_progress", "output": {"title": "Waiting", "summary": "s2",
                                                  "annotations": [annotation()]}},
        headers=installation_headers(fake), timeout=10,
    )
    assert later.status_code == 200
    body = later.json()
    assert (body["status"], body["conclusion"], body["output"]["title"]) == (
        "completed", "success", "Waiting"
    )
    assert body["output"]["annotations_count"] == 1


# ----------------------------------------------------------------------------------------------
# CommitReads


def test_commit_reads(fake: FakeGitHub, repo: GitHubRepo) -> None:
    fake.put_file(REPO, "requests/bob/old.yaml", REQUEST)
    ready = fake.open_pr(REPO, "alice", {PATH: REQUEST}, removed=["requests/bob/old.yaml"])
    other = fake.open_pr(REPO, "bob", {"README.md": "x"}, base="release")
    group = fake.queue(REPO, [ready])
    reads = CommitReads(repo)

    files = reads.group_files(group.base_sha, group.head_sha)
    blob = reads.blob_sha(PATH, fake.pull(REPO, ready).head_sha)
    assert [(f.filename, f.status) for f in files] == [
        (PATH, "added"), ("requests/bob/old.yaml", "removed")
    ]
    assert files[0].sha == blob
    assert reads.group_files("main", group.head_sha) == files  # by branch: the same comparison
    assert reads.blob_sha("requests/nobody.yaml", group.head_sha) is None
    head = fake.pull(REPO, ready).head_sha
    assert reads.open_pulls("main") == (OpenPull(ready, "alice", head, "main"),)
    assert [p.number for p in reads.open_pulls("release")] == [other]
    assert reads.pulls_for_commit(head) == (ready,)
    merge_commit = fake.merge(REPO, ready)
    # Merged: its head is on the default branch now, brought there by that PR (as GitHub lists).
    assert reads.pulls_for_commit(head) == (ready,)
    assert reads.pulls_for_commit(merge_commit) == (ready,)
