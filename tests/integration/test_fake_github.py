"""The fake GitHub server's wire behaviour, checked with plain HTTP (what PyGithub relies on)."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
import requests

from jitaccess_sandbox.fake_github import FakeGitHub, generate_app_key
from jitaccess_sandbox.httpserver import LocalServer

REPO = "acme/access"
AUTH = {"Authorization": "token ghp_t"}


@pytest.fixture
def fake() -> FakeGitHub:
    f = FakeGitHub(prefix="/api/v3")
    f.add_repo(REPO)
    f.add_token("ghp_t", "jit-bot")
    return f


@pytest.fixture
def api(fake: FakeGitHub) -> Iterator[str]:
    with LocalServer(fake) as s:
        yield fake.api_url(s.url)


def get(url: str, headers: dict[str, str] | None = None, **params: Any) -> requests.Response:
    """GET with the user token unless other headers are given."""
    return requests.get(url, headers=AUTH if headers is None else headers, params=params,
                        timeout=5)


def post(url: str, body: Any, headers: dict[str, str] | None = None) -> requests.Response:
    """POST JSON with the user token unless other headers are given."""
    return requests.post(url, json=body, headers=AUTH if headers is None else headers, timeout=5)


def app_jwt(fake: FakeGitHub, key: str | None = None) -> dict[str, str]:
    """`Authorization: Bearer <JWT>` for the fake's app (or signed with another key)."""
    now = int(time.time())
    token = jwt.encode({"iat": now - 60, "exp": now + 300, "iss": str(fake.app_id)},
                       key or fake.app_private_key_pem, algorithm="RS256")
    return {"Authorization": f"Bearer {token}"}


def test_authorization_is_required(fake: FakeGitHub, api: str) -> None:
    r = get(f"{api}/repos/{REPO}", headers={})
    assert (r.status_code, r.json()["message"]) == (401, "Requires authentication")
    assert get(f"{api}/repos/{REPO}", headers={"Authorization": "token nope"}).json() == {
        "message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"}
    r = get(f"{api}/repos/{REPO}", headers={"Authorization": "Bearer ghp_t"})
    assert (r.status_code, r.json()["full_name"], r.json()["url"]) == (
        200, REPO, f"{api}/repos/{REPO}")


def test_unknown_routes_are_recorded_and_answered_501(fake: FakeGitHub, api: str) -> None:
    assert get(f"{api}/repos/{REPO}/branches").status_code == 501
    assert get(api.removesuffix("/api/v3") + f"/repos/{REPO}").status_code == 501
    assert [c.path for c in fake.recorder.unexpected] == [
        f"/api/v3/repos/{REPO}/branches", f"/repos/{REPO}"]


def test_rate_limit_headers_count_down(fake: FakeGitHub, api: str) -> None:
    first = get(f"{api}/repos/{REPO}").headers
    second = get(f"{api}/repos/{REPO}").headers
    assert (first["X-RateLimit-Limit"], first["X-RateLimit-Remaining"]) == ("5000", "4999")
    assert (second["X-RateLimit-Remaining"], second["X-RateLimit-Used"]) == ("4998", "2")
    fake.rate_remaining = 0
    r = get(f"{api}/repos/{REPO}")
    assert (r.status_code, r.headers["X-RateLimit-Remaining"]) == (403, "0")
    assert r.json()["message"].startswith("API rate limit exceeded")


def test_pagination_links(fake: FakeGitHub, api: str) -> None:
    n = fake.open_pr(REPO, "alice", {f"f{i}.txt": str(i) for i in range(5)})
    base = f"{api}/repos/{REPO}/pulls/{n}/files"

    r = get(base, per_page=2)
    assert [f["filename"] for f in r.json()] == ["f0.txt", "f1.txt"]
    assert r.headers["Link"] == (
        f'<{base}?per_page=2&page=2>; rel="next", <{base}?per_page=2&page=3>; rel="last"')
    r = get(base, per_page=2, page=3)
    assert [f["filename"] for f in r.json()] == ["f4.txt"]
    assert r.headers["Link"] == (
        f'<{base}?per_page=2&page=1>; rel="first", <{base}?per_page=2&page=2>; rel="prev"')
    assert "Link" not in get(base).headers  # 30 per page by default: one page


def test_pull_and_review_shapes(fake: FakeGitHub, api: str) -> None:
    n = fake.open_pr(REPO, "alice", {"requests/alice/a.yaml": "x: 1\n"})
    head = fake.pull(REPO, n).head_sha
    rid = fake.add_review(REPO, n, "bob", "APPROVED")
    pr = get(f"{api}/repos/{REPO}/pulls/{n}").json()
    assert (pr["url"], pr["issue_url"]) == (
        f"{api}/repos/{REPO}/pulls/{n}", f"{api}/repos/{REPO}/issues/{n}")
    assert (pr["user"]["login"], pr["head"]["sha"], pr["base"]["ref"]) == ("alice", head, "main")
    assert (pr["state"], pr["merged"], pr["base"]["repo"]["default_branch"]) == (
        "open", False, "main")
    (review,) = get(f"{api}/repos/{REPO}/pulls/{n}/reviews").json()
    assert (review["id"], review["state"], review["commit_id"], review["user"]["login"]) == (
        rid, "APPROVED", head, "bob")


def test_webhook_payloads_carry_githubs_public_urls(fake: FakeGitHub, api: str) -> None:
    n = fake.open_pr(REPO, "alice", {"requests/alice/a.yaml": "x: 1\n"})
    rid = fake.add_review(REPO, n, "bob", "APPROVED")

    opened = fake.pull_request_event(REPO, n, "opened")
    assert sorted(opened) == ["action", "number", "pull_request", "repository", "sender"]
    assert (opened["action"], opened["number"], opened["sender"]["login"]) == ("opened", n, "alice")
    # Whatever server the API is emulated on, a delivery names api.github.com, as GitHub's do.
    assert opened["pull_request"]["url"] == f"https://api.github.com/repos/{REPO}/pulls/{n}"
    assert opened["repository"]["full_name"] == REPO
    assert fake.pull_request_event(REPO, n, "closed", sender="carol")["sender"]["login"] == "carol"

    review = fake.pull_request_review_event(REPO, n, rid, "submitted")
    assert sorted(review) == ["action", "pull_request", "repository", "review", "sender"]
    # Webhooks spell the state in lower case; the REST API (above) in upper case.
    assert (review["review"]["id"], review["review"]["state"], review["sender"]["login"]) == (
        rid, "approved", "bob")
    with pytest.raises(KeyError, match="no review 1"):
        fake.pull_request_review_event(REPO, n, 1, "submitted")


def test_a_head_can_point_at_another_prs_commit(fake: FakeGitHub, api: str) -> None:
    first = fake.open_pr(REPO, "alice", {"requests/alice/a.yaml": "x: 1\n"})
    second = fake.open_pr(REPO, "mallory", {"requests/alice/a.yaml": "x: 1\n"})
    head = fake.pull(REPO, first).head_sha
    fake.point_head(REPO, second, head)
    assert get(f"{api}/repos/{REPO}/pulls/{second}").json()["head"]["sha"] == head
    with pytest.raises(KeyError, match="no commit"):
        fake.point_head(REPO, second, "0" * 40)


def test_review_requests(fake: FakeGitHub, api: str) -> None:
    fake.add_user("bob")
    n = fake.open_pr(REPO, "alice", {"a.txt": "a"})
    url = f"{api}/repos/{REPO}/pulls/{n}/requested_reviewers"

    r = post(url, {"reviewers": ["alice"]})
    assert (r.status_code, r.json()["message"]) == (
        422, "Review cannot be requested from pull request author.")
    assert post(url, {"reviewers": ["mallory"]}).status_code == 422  # not a collaborator
    assert post(url, {"reviewers": ["bob"]}).status_code == 201
    listed = get(url).json()
    assert ([u["login"] for u in listed["users"]], listed["teams"]) == (["bob"], [])
    assert listed["users"][0]["url"] == f"{api}/users/bob"
    fake.add_review(REPO, n, "bob", "COMMENTED")
    assert fake.requested_reviewers(REPO, n) == []  # a review answers the request


def test_statuses(fake: FakeGitHub, api: str) -> None:
    sha = fake.branch_sha(REPO)
    url = f"{api}/repos/{REPO}/statuses/{sha}"
    assert post(url, {"state": "pending", "context": "jit-access"}).status_code == 201
    assert post(url, {"state": "success", "context": "jit-access"}).status_code == 201
    assert post(url, {"state": "done"}).status_code == 422
    assert post(url, {"state": "error", "description": "x" * 141}).status_code == 422
    assert post(f"{api}/repos/{REPO}/statuses/{'0' * 40}", {"state": "error"}).status_code == 422

    assert [s["state"] for s in fake.statuses(REPO, sha)] == ["pending", "success"]
    listed = get(f"{api}/repos/{REPO}/commits/main/statuses").json()
    assert [s["state"] for s in listed] == ["success", "pending"]  # newest first, as GitHub
    combined = get(f"{api}/repos/{REPO}/commits/{sha}/status").json()
    assert (combined["state"], combined["total_count"]) == ("success", 1)


def test_the_1001st_status_of_a_context_is_refused(fake: FakeGitHub, api: str) -> None:
    sha = fake.branch_sha(REPO)
    url = f"{api}/repos/{REPO}/statuses/{sha}"
    # 999 statuses of jit-access already on the commit, and one of another context.
    stored = fake.repos[REPO].statuses.setdefault(sha, [])
    stored += [{"context": "jit-access", "state": "pending"}] * 999
    assert post(url, {"state": "success", "context": "ci"}).status_code == 201
    assert post(url, {"state": "success", "context": "jit-access"}).status_code == 201

    refused = post(url, {"state": "failure", "context": "jit-access"})
    assert refused.status_code == 422
    assert refused.json() == {
        "message": "Validation Failed",
        "errors": [{
            "resource": "Status", "code": "custom",
            "message": "This SHA and context has reached the maximum number of statuses.",
        }],
        "documentation_url": "https://docs.github.com/rest",
    }
    # Other contexts, and other commits, are counted on their own.
    assert post(url, {"state": "failure", "context": "ci"}).status_code == 201
    other = fake.put_file(REPO, "x.txt", "x")
    assert post(f"{api}/repos/{REPO}/statuses/{other}", {"state": "failure", "context":
                "jit-access"}).status_code == 201
    combined = get(f"{api}/repos/{REPO}/commits/{sha}/status").json()
    assert {(s["context"], s["state"]) for s in combined["statuses"]} == {
        ("jit-access", "success"), ("ci", "failure")}


def test_comment_bodies_over_65536_characters_are_refused(fake: FakeGitHub, api: str) -> None:
    n = fake.open_pr(REPO, "alice", {"requests/alice/a.yaml": "x"})
    url = f"{api}/repos/{REPO}/issues/{n}/comments"
    assert post(url, {"body": "é" * 65536}).status_code == 201
    refused = post(url, {"body": "é" * 65537})
    assert refused.status_code == 422
    assert refused.json() == {
        "message": "Validation Failed",
        "errors": [{
            "resource": "IssueComment", "code": "custom", "field": "body",
            "message": "body is too long (maximum is 65536 characters)",
        }],
        "documentation_url": "https://docs.github.com/rest",
    }
    comment = fake.comments(REPO, n)[0].id
    edit = requests.patch(f"{api}/repos/{REPO}/issues/comments/{comment}", json={
        "body": "x" * 65537}, headers=AUTH, timeout=5)
    assert edit.status_code == 422


def test_contents(fake: FakeGitHub, api: str) -> None:
    fake.put_file(REPO, "policy/a.yaml", "a: 1\n")
    fake.put_file(REPO, "policy/sub/b.yaml", "b")
    fake.put_file(REPO, "huge.bin", b"\0" * (1024 * 1024 + 1))
    url = f"{api}/repos/{REPO}/contents"

    f = get(f"{url}/policy/a.yaml").json()
    assert (f["type"], f["encoding"], f["size"]) == ("file", "base64", 5)
    assert base64.b64decode(f["content"]) == b"a: 1\n"
    assert [(e["path"], e["type"]) for e in get(f"{url}/policy").json()] == [
        ("policy/a.yaml", "file"), ("policy/sub", "dir")]
    assert get(f"{url}/policy/missing.yaml").status_code == 404
    r = get(f"{url}/policy/a.yaml", ref="nope")
    assert (r.status_code, r.json()["message"]) == (404, "No commit found for the ref nope")
    big = get(f"{url}/huge.bin").json()
    assert (big["encoding"], big["content"], big["size"]) == ("none", "", 1024 * 1024 + 1)


def test_comments_keep_their_history(fake: FakeGitHub, api: str) -> None:
    n = fake.open_pr(REPO, "alice", {"a.txt": "a"})
    other = fake.add_comment(REPO, n, "alice", "mine")
    created = post(f"{api}/repos/{REPO}/issues/{n}/comments", {"body": "v1"}).json()
    assert created["user"]["login"] == "jit-bot"
    r = requests.patch(created["url"], json={"body": "v2"}, headers=AUTH, timeout=5)
    assert (r.status_code, r.json()["body"]) == (200, "v2")
    r = requests.patch(f"{api}/repos/{REPO}/issues/comments/{other}", json={"body": "x"},
                       headers=AUTH, timeout=5)
    assert r.status_code == 403  # the fake lets nobody edit someone else's comment
    comments = fake.comments(REPO, n)
    assert [(c.login, c.body, c.history) for c in comments] == [
        ("alice", "mine", []), ("jit-bot", "v2", ["v1"])]


def test_app_authentication(fake: FakeGitHub, api: str) -> None:
    inst = fake.install(REPO, 99)
    fake.add_repo("acme/other")

    assert get(f"{api}/app", headers=app_jwt(fake)).json()["slug"] == "jit-access"
    assert get(f"{api}/app", headers=AUTH).status_code == 401
    assert get(f"{api}/app", headers=app_jwt(fake, generate_app_key())).status_code == 401
    found = get(f"{api}/repos/{REPO}/installation", headers=app_jwt(fake)).json()
    assert (found["id"], found["app_slug"]) == (inst, "jit-access")
    assert get(f"{api}/repos/acme/other/installation", headers=app_jwt(fake)).status_code == 404

    grant = post(f"{api}/app/installations/{inst}/access_tokens", {}, headers=app_jwt(fake))
    assert grant.status_code == 201
    token = {"Authorization": f"token {grant.json()['token']}"}
    assert get(f"{api}/repos/{REPO}", headers=token).status_code == 200
    assert get(f"{api}/repos/acme/other", headers=token).status_code == 404  # not installed
    assert get(f"{api}/user", headers=token).status_code == 403
    fake.expire_installation_tokens()
    assert get(f"{api}/repos/{REPO}", headers=token).status_code == 401


def test_get_user_with_an_installation_token_is_refused_as_github_does(
    fake: FakeGitHub, api: str
) -> None:
    fake.install(REPO)
    token = {"Authorization": f"token {fake.installation_token(REPO)}"}
    refused = get(f"{api}/user", headers=token)
    assert refused.status_code == 403
    assert refused.json() == {
        "message": "Resource not accessible by integration",
        "documentation_url": "https://docs.github.com/rest/users/users#get-the-authenticated-user",
        "status": "403",
    }


def test_reinstalling_gives_a_new_installation_and_ends_the_old_tokens(
    fake: FakeGitHub, api: str
) -> None:
    old = fake.install(REPO)
    old_token = {"Authorization": f"token {fake.installation_token(REPO)}"}
    assert get(f"{api}/repos/{REPO}", headers=old_token).status_code == 200

    new = fake.reinstall(REPO)
    assert new != old
    found = get(f"{api}/repos/{REPO}/installation", headers=app_jwt(fake)).json()
    assert found["id"] == new
    refused = get(f"{api}/repos/{REPO}", headers=old_token)
    assert (refused.status_code, refused.json()["message"]) == (401, "Bad credentials")
    gone = post(f"{api}/app/installations/{old}/access_tokens", {}, headers=app_jwt(fake))
    assert gone.status_code == 404
    grant = post(f"{api}/app/installations/{new}/access_tokens", {}, headers=app_jwt(fake))
    new_token = {"Authorization": f"token {grant.json()['token']}"}
    assert get(f"{api}/repos/{REPO}", headers=new_token).status_code == 200

    assert fake.uninstall(REPO) == new
    assert get(f"{api}/repos/{REPO}/installation", headers=app_jwt(fake)).status_code == 404
    assert get(f"{api}/repos/{REPO}", headers=new_token).status_code == 401
