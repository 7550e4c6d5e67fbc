"""`jitaccess sandbox`: play the whole lifecycle against emulated GitHub and Google, and show it.

Each step sends a real, signed delivery to the real service, which reads the fake GitHub
through PyGithub and the fake Google Cloud through the Google client libraries. The transcript
shows what a user and an auditor would see; every step also checks what the README promises, and the
command exits non-zero when any check fails.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TextIO

import requests

from jitaccess_sandbox.emulator import REPO, SECRET, TOKEN, Answer, Emulator
from jitaccess_sandbox.fake_github import FakeCheckRun
from jitaccess_sandbox.httpserver import LocalServer
from webhook.core.conditions import ACTIVATION_TITLE
from webhook.core.reconcile import EXPIRED_MARKER_PREFIX, reference_of
from webhook.core.render import rfc3339
from webhook.service.app import create_app


@dataclass
class Transcript:
    """Prints the story and keeps score of the checks."""

    out: TextIO
    passed: int = 0
    failed: list[str] = field(default_factory=list)

    def title(self, text: str) -> None:
        """A numbered scene heading."""
        self.out.write(f"\n{'=' * 78}\n{text}\n{'=' * 78}\n")

    def say(self, text: str = "") -> None:
        """A line of narration."""
        self.out.write(text + "\n")

    def block(self, label: str, text: str) -> None:
        """Indented multi-line content (a comment, a binding, an audit entry)."""
        self.out.write(f"{label}:\n{textwrap.indent(text.rstrip(), '    | ', lambda _: True)}\n")

    def check(self, what: str, ok: bool, detail: str = "") -> None:
        """Record one expectation."""
        if ok:
            self.passed += 1
            self.out.write(f"  ✔ {what}\n")
        else:
            self.failed.append(what)
            self.out.write(f"  ✘ {what}{': ' + detail if detail else ''}\n")


def _delivery(t: Transcript, what: str, answer: Answer) -> None:
    t.say(f"→ delivery: {what}")
    t.say(f"← service answered HTTP {answer.status}: {answer.body.get('message', '')}")


def _status(t: Transcript, emu: Emulator, number: int) -> dict[str, Any]:
    status = emu.status(number) or {}
    t.say(f"commit status jit-access = {status.get('state')!r}: {status.get('description')}")
    return status


def _last_comment(t: Transcript, emu: Emulator, number: int, label: str) -> str:
    comments = emu.comments(number)
    body = comments[-1] if comments else ""
    t.block(label, body)
    return body


def _request(project: str, role: str, duration: str, justification: str) -> str:
    return (
        f"project: {project}\nroles:\n  - {role}\nduration: {duration}\n"
        f'justification: "{justification}"\n'
    )


def _open(
    t: Transcript, emu: Emulator, login: str, name: str, text: str
) -> tuple[int, dict[str, Any]]:
    """Show the request file, open its PR, deliver `opened`, and show the status."""
    t.block(f"request file requests/{login}/{name}", text)
    n = emu.open_request(login, text, name=name)
    _delivery(t, f"pull_request opened (#{n})", emu.pr_event("opened", n))
    return n, _status(t, emu, n)


def _scene_self_approval(t: Transcript, emu: Emulator) -> None:
    t.title("1. Self-approval: alice activates roles/cloudsql.admin on payments-dev")
    text = _request("payments-dev", "roles/cloudsql.admin", "1h",
                    "INC-4711: investigate slow queries")
    n, status = _open(t, emu, "alice", "cloudsql-dev.yaml", text)
    _last_comment(t, emu, n, "status comment")
    t.check("request is ready to merge (status success)", status.get("state") == "success")

    answer = emu.merge(n)
    _delivery(t, f"pull_request closed, merged (#{n})", answer)
    t.check("merge delivery succeeded", answer.status == 200, str(answer.body))
    bindings = emu.activations("payments-dev")
    t.block("IAM binding written on projects/payments-dev", json.dumps(bindings, indent=2))
    t.check("exactly one activation binding", len(bindings) == 1)
    t.check(
        "binding is self-approved and names the PR",
        bool(bindings)
        and bindings[0]["condition"]["description"].startswith("Self-approved, justification:")
        and bindings[0]["condition"]["description"].endswith(f"({REPO}#{n})"),
    )
    entry = emu.audit()[-1] if emu.audit() else {}
    t.block("audit entry (log jitaccess)", json.dumps(
        {"severity": entry.get("severity"), "labels": entry.get("labels")}, indent=2))
    t.check("audit entry gitops.activateRole, severity NOTICE",
            entry.get("labels", {}).get("event") == "gitops.activateRole"
            and entry.get("severity") == "NOTICE")
    body = _last_comment(t, emu, n, "activation comment (new)")
    t.check("activation comment states the expiry", "until" in body and "Z" in body)


def _scene_multi_party(t: Transcript, emu: Emulator) -> None:
    t.title("2. Multi-party approval: alice asks for roles/cloudsql.admin on payments-prod")
    text = _request("payments-prod", "roles/cloudsql.admin", "2h",
                    "CHG-982: rotate the replication user")
    n, status = _open(t, emu, "alice", "cloudsql-prod.yaml", text)
    t.check("request waits for approval (status pending)", status.get("state") == "pending")
    asked = sorted(emu.github.requested_reviewers(REPO, n))
    t.say(f"review requested from: {', '.join(asked) or 'nobody'}")
    t.check("qualified peers bob and carol were asked to review", asked == ["bob", "carol"])
    _last_comment(t, emu, n, "status comment")

    t.say("\ndave approves — he is a developer, not a qualified approver for production:")
    _, answer = emu.review(n, "dave", "APPROVED")
    _delivery(t, "pull_request_review submitted (dave, approved)", answer)
    status = _status(t, emu, n)
    t.check("dave's approval does not count (still pending)", status.get("state") == "pending")

    t.say("\nbob (sre@, eligible with approval on the prod folder) approves:")
    _, answer = emu.review(n, "bob", "APPROVED")
    _delivery(t, "pull_request_review submitted (bob, approved)", answer)
    status = _status(t, emu, n)
    t.check("bob's approval counts (status success)", status.get("state") == "success")
    _last_comment(t, emu, n, "status comment (edited in place)")

    answer = emu.merge(n)
    _delivery(t, f"pull_request closed, merged (#{n})", answer)
    bindings = emu.activations("payments-prod")
    t.block("IAM binding written on projects/payments-prod", json.dumps(bindings, indent=2))
    t.check(
        "binding says who approved",
        len(bindings) == 1
        and bindings[0]["condition"]["description"].startswith("Approved by bob@example.com"),
    )
    entry = emu.audit()[-1] if emu.audit() else {}
    t.check("audit entry lists the reviewer",
            entry.get("labels", {}).get("reviewers") == "bob@example.com")
    _last_comment(t, emu, n, "activation comment (new)")


def _scene_invalid(t: Transcript, emu: Emulator) -> None:
    t.title("3. An invalid request: carol asks for a basic role, too long, without a ticket")
    text = _request("payments-prod", "roles/owner", "8h", "need it")
    n, status = _open(t, emu, "carol", "owner.yaml", text)
    t.check("request fails (status failure)", status.get("state") == "failure")
    body = _last_comment(t, emu, n, "status comment")
    t.check("every problem is listed", all(
        word in body for word in ("basic role", "duration", "justification")))
    answer = emu.merge(n)
    _delivery(t, f"pull_request closed, merged anyway by an admin (#{n})", answer)
    t.check("nothing is granted", emu.activations("payments-prod")[1:] == [])
    entry = emu.audit()[-1] if emu.audit() else {}
    t.check("the refusal is audited (gitops.refuseActivation, WARNING)",
            entry.get("labels", {}).get("event") == "gitops.refuseActivation"
            and entry.get("severity") == "WARNING")


def _check_run(t: Transcript, run: FakeCheckRun | None, label: str) -> None:
    if run is None:
        t.say(f"{label}: none")
        return
    t.say(f"{label} = {run.status}/{run.conclusion}: {run.title}")
    for a in run.annotations:
        t.say(f"    annotation {a['path']}:{a['start_line']} [{a['annotation_level']}] "
              f"{a['title']}: {a['message']}")


def _scene_github_app(t: Transcript, _: Emulator) -> None:
    t.title("5. With a GitHub App: check runs, annotations, Re-run and the merge queue")
    t.say("A second world, where the service authenticates as the installed GitHub App: its")
    t.say("verdict is then a check run `jit-access` instead of a commit status.")
    with Emulator(app=True) as emu:
        text = _request("payments-prod", "roles/owner", "8h", "need it")
        n, _status = _open(t, emu, "carol", "owner.yaml", text)
        run = emu.check_run(n)
        _check_run(t, run, "check run jit-access")
        t.check("the invalid request's check run failed",
                run is not None and run.conclusion == "failure")
        t.check(
            "one annotation on each bad line (3: role, 4: duration, 5: justification)",
            run is not None and [a["start_line"] for a in run.annotations] == [3, 4, 5],
        )
        t.check("no commit status with the App", emu.status(n) is None)

        t.say("\nalice asks for payments-prod; bob approves, but his review's delivery is lost:")
        text = _request("payments-prod", "roles/cloudsql.admin", "1h", "CHG-77: failover drill")
        m, _status = _open(t, emu, "alice", "drill.yaml", text)
        _check_run(t, emu.check_run(m), "check run jit-access")
        emu.github.add_review(REPO, m, "bob", "APPROVED")
        _delivery(t, f"check_run rerequested (Re-run on #{m})", emu.rerun(m))
        run = emu.check_run(m)
        _check_run(t, run, "check run jit-access (new, after Re-run)")
        t.check("Re-run evaluated the PR again (success)",
                run is not None and run.conclusion == "success")

        t.say("\nBoth PRs are queued in the merge queue, each in its own merge group:")
        group, answer = emu.queue(m)
        _delivery(t, f"merge_group checks_requested (#{m})", answer)
        ready = emu.github.latest_check_run(REPO, group.head_sha)
        _check_run(t, ready, "check run on the merge group")
        t.check("the group with a ready request passes",
                ready is not None and ready.conclusion == "success")
        group, answer = emu.queue(n)
        _delivery(t, f"merge_group checks_requested (#{n})", answer)
        bad = emu.github.latest_check_run(REPO, group.head_sha)
        _check_run(t, bad, "check run on the merge group")
        t.check("the group with an invalid request fails",
                bad is not None and bad.conclusion == "failure")
        t.check("a merge group activates nothing", emu.activations("payments-prod") == [])
        gh = emu.github.recorder
        t.check("no unexpected API calls (App world)", not gh.unexpected, f"{gh.unexpected}")


def _scene_after_merge(t: Transcript, emu: Emulator) -> None:
    t.title("6. After the merge: expiry comments and reconciliation with the audit log")
    dev = emu.activations("payments-dev")
    reference = reference_of(dev[0]["condition"]["description"]) if dev else None
    t.check("alice's payments-dev activation names its PR", reference is not None)
    number = reference.number if reference else 0
    start = emu.clock()
    t.say("An administrator adds, by hand, an activation binding for eve that claims the same PR;")
    t.say("no audit entry explains it:")
    expression = (
        f'(request.time >= timestamp("{rfc3339(start)}") && '
        f'request.time < timestamp("{rfc3339(start + timedelta(hours=3))}"))'
    )
    emu.world.add_binding(
        "projects/payments-dev", "roles/cloudsql.admin", "user:eve@example.com", expression,
        title=ACTIVATION_TITLE,
        description=f"Self-approved, justification: INC-4711: trust me ({REPO}#{number})",
    )
    emu.advance(timedelta(minutes=90))
    t.say("\n90 minutes later alice's 1 h activation has ended; App Engine cron runs the cleanup:")
    token = "sandbox-cleanup-token-0123456789"
    settings = dataclasses.replace(emu.settings, cleanup_token=token)
    with LocalServer(create_app(settings, service=emu.service)) as server:
        resp = requests.post(f"{server.url}/tasks/cleanup", timeout=30,
                             headers={"Authorization": f"Bearer {token}"})
    body = resp.json() if resp.headers.get("Content-Type", "").startswith("application/json") \
        else {}
    t.say(f"→ POST /tasks/cleanup\n← HTTP {resp.status_code}: {body.get('message', '')}")
    t.block("cleanup answer", json.dumps(body, indent=2))
    t.check("alice's expired activation was removed",
            [r.get("member") for r in body.get("removed", [])] == ["user:alice@example.com"])
    comments = [c for c in emu.comments(number) if c.startswith(EXPIRED_MARKER_PREFIX)]
    t.block(f"expiry comment on PR #{number} (new)", comments[-1] if comments else "")
    t.check("the PR was told once when its access ended",
            len(comments) == 1 and "ended at" in comments[0])
    orphans = body.get("orphaned", [])
    t.check("eve's hand-made binding is reported as orphaned",
            [o.get("member") for o in orphans] == ["user:eve@example.com"])
    entry: dict[str, Any] = next((e for e in reversed(emu.audit())
                  if e.get("labels", {}).get("event") == "gitops.orphanedActivation"), {})
    t.block("audit entry (log jitaccess)", json.dumps(
        {"severity": entry.get("severity"), "labels": entry.get("labels")}, indent=2))
    t.check("gitops.orphanedActivation written, severity WARNING",
            entry.get("severity") == "WARNING")
    t.check("bob's approved payments-prod activation is accounted for (not orphaned)",
            all(o.get("project") != "payments-prod" for o in orphans))
    t.check("the orphan stays (cleanup.remove_orphans is false)",
            any(b["members"] == ["user:eve@example.com"]
                for b in emu.activations("payments-dev")))


def _scene_revoke(t: Transcript, emu: Emulator) -> None:
    t.title("4. Revocation: the production access of scene 2 ends early, by comment")
    bindings = emu.activations("payments-prod")
    described = bindings[0]["condition"]["description"] if bindings else ""
    n = int(described.rsplit("#", 1)[-1].rstrip(")")) if described.endswith(")") else 0
    t.check("the activation of scene 2 is in effect", n > 0, described)
    if not n:
        return
    t.say("\ndave (not the requester, reviewer or a listed revoker) comments `/jit revoke`:")
    _, answer = emu.comment(n, "dave", "/jit revoke")
    _delivery(t, f"issue_comment created (dave on #{n})", answer)
    body = _last_comment(t, emu, n, "reply (new)")
    t.check("dave is refused and told who may revoke",
            "Revocation refused" in body and "@alice" in body)
    t.check("the binding stays", len(emu.activations("payments-prod")) == 1)

    t.say("\nbob (a qualified reviewer of the role, who approved) revokes it:")
    comment_id, answer = emu.comment(n, "bob", "/jit revoke CHG-982 is done")
    _delivery(t, f"issue_comment created (bob on #{n})", answer)
    t.check("revocation delivery succeeded", answer.status == 200, str(answer.body))
    t.check("the activation binding is removed", emu.activations("payments-prod") == [])
    entry = emu.audit()[-1] if emu.audit() else {}
    t.block("audit entry (log jitaccess)", json.dumps(
        {"severity": entry.get("severity"), "labels": entry.get("labels")}, indent=2))
    labels = entry.get("labels", {})
    t.check("audit entry gitops.revokeRole names who and why",
            labels.get("event") == "gitops.revokeRole"
            and labels.get("revoked_by") == "bob@example.com"
            and labels.get("reason") == "CHG-982 is done")
    body = _last_comment(t, emu, n, "revocation comment (new)")
    t.check("the comment says who revoked what, and when",
            "@bob revoked" in body and "roles/cloudsql.admin" in body and "Z**" in body)

    t.say("\nGitHub redelivers bob's comment:")
    before = len(emu.comments(n))
    answer = emu.deliver("issue_comment", emu.github.issue_comment_event(
        REPO, n, "bob", "/jit revoke CHG-982 is done", comment_id=comment_id))
    _delivery(t, f"issue_comment created, redelivered (#{n})", answer)
    t.check("a redelivered command does nothing new",
            len(emu.comments(n)) == before
            and sum(1 for e in emu.audit()
                    if e.get("labels", {}).get("event") == "gitops.revokeRole") == 1)

ORG_POLICY = """\
scope: organizations/123456789012
justification:
  pattern: '(INC|CHG)-[0-9]+: .+'
  hint: 'an incident or change number, e.g. "INC-1234: restore the replica"'
rules:
  - name: production databases
    match:
      projects: ["*-prod"]
      roles: ["roles/cloudsql.*"]
    max_duration: 1h
    approval:
      required: 2
      veto: true
break_glass:
  enabled: true
  max_duration: 1h
  review_within: 24h
"""


def _scene_org_policy(t: Transcript, _world: Emulator) -> None:
    t.title("7. Policy for an organization: a rule, a veto, break-glass")
    t.say("A third world, whose policy has a rule for production databases (2 approvals, at")
    t.say("most 1h, a qualified reviewer's \"Request changes\" vetoes) and enables break-glass.")
    with Emulator(policy_yaml=ORG_POLICY) as emu:
        text = _request("payments-prod", "roles/cloudsql.admin", "1h", "CHG-88: resize the pool")
        n, status = _open(t, emu, "alice", "resize.yaml", text)
        t.check("the rule asks for 2 approvals",
                status.get("description") == "Waiting for 2 approvals (roles/cloudsql.admin)")
        t.check("the status comment names the rule",
                "production databases" in emu.comments(n)[0])
        t.say("\nbob approves; carol, also a qualified peer, requests changes:")
        emu.review(n, "bob", "APPROVED")
        _, answer = emu.review(n, "carol", "CHANGES_REQUESTED")
        _delivery(t, f"pull_request_review submitted (carol on #{n})", answer)
        status = _status(t, emu, n)
        t.check("the request is vetoed (status failure)",
                status.get("state") == "failure"
                and str(status.get("description", "")).startswith("Vetoed by @carol"))

        t.say("\nThe database is down: alice files a break-glass request instead:")
        text = _request("payments-prod", "roles/cloudsql.admin", "30m",
                        "INC-911: primary is down") + "break_glass: true\n"
        m, status = _open(t, emu, "alice", "outage.yaml", text)
        t.check("break-glass is ready without approval, and says so",
                status.get("state") == "success"
                and str(status.get("description", "")).startswith("Break-glass"))
        answer = emu.merge(m)
        _delivery(t, f"pull_request closed, merged (#{m})", answer)
        entry = next((e for e in emu.audit()
                      if e.get("labels", {}).get("event") == "gitops.activateRole"), {})
        t.block("audit entry (log jitaccess)", json.dumps(
            {"severity": entry.get("severity"), "labels": entry.get("labels")}, indent=2))
        t.check("the activation is an ALERT with label break_glass",
                entry.get("severity") == "ALERT"
                and entry.get("labels", {}).get("break_glass") == "true")
        body = _last_comment(t, emu, m, "activation comment (new)")
        t.check("the activation comment asks for a review after the fact",
                "after the fact" in body and "@bob" in body)
        t.say("\nbob reviews it after the fact and approves:")
        _, answer = emu.review(m, "bob", "APPROVED")
        _delivery(t, f"pull_request_review submitted (bob on merged #{m})", answer)
        t.check("gitops.reviewBreakGlass is written once",
                sum(1 for e in emu.audit()
                    if e.get("labels", {}).get("event") == "gitops.reviewBreakGlass") == 1)


SCENES: list[Callable[[Transcript, Emulator], None]] = [
    _scene_self_approval, _scene_multi_party, _scene_invalid, _scene_revoke, _scene_github_app,
    _scene_after_merge, _scene_org_policy,
]


def run_sandbox(
    *, serve: bool = False, port: int = 8080, verbose: bool = False, out: TextIO | None = None
) -> int:
    """Play every scene; with `serve`, keep the world running afterwards. 0 when all checks pass."""
    out = out or sys.stdout
    if not verbose:
        logging.getLogger("jitaccess").setLevel(logging.CRITICAL)
    started = time.monotonic()
    t = Transcript(out)
    with Emulator(port=port if serve else 0) as emu:
        t.say("JIT Access for GitHub — sandbox")
        t.say(f"fake GitHub      {emu.github_url}  (repository {REPO})")
        t.say(f"fake Google      {emu.google_url}  (Resource Manager, Asset, Logging, Identity)")
        t.say(f"webhook service  {emu.service_url}/webhook")
        for scene in SCENES:
            try:
                scene(t, emu)
            except Exception as exc:  # a crash is a failed step, with its cause shown
                t.check(f"{scene.__name__} ran to the end", False, repr(exc))
        gh, gg = emu.github.recorder, emu.google.recorder
        t.title("Summary")
        t.say(f"GitHub API calls: {len(gh.calls)}   Google API calls: {len(gg.calls)}")
        t.check("no unexpected API calls", not gh.unexpected and not gg.unexpected,
                f"{gh.unexpected + gg.unexpected}")
        t.say(f"{t.passed} checks passed, {len(t.failed)} failed "
              f"in {time.monotonic() - started:.1f} s")
        if serve:
            _serve_forever(t, emu)
    return 0 if not t.failed else 1


def _serve_forever(t: Transcript, emu: Emulator) -> None:
    t.title("Serving: the emulated world stays up until Ctrl-C")
    n = emu.open_request(
        "alice",
        _request("payments-prod", "roles/cloudsql.admin", "30m", "INC-5150: check replication"),
        name="manual.yaml",
    )
    sha = emu.github.pull(REPO, n).head_sha
    t.say(f"PR #{n} (alice asks for roles/cloudsql.admin on payments-prod) is open; no delivery")
    t.say("has been sent for it yet. The webhook secret is " + SECRET + ".")
    t.say("Send its `pull_request opened` delivery, signed as GitHub signs it:")
    t.say(textwrap.dedent(f"""\
        python - <<'EOF'
        import json, hmac, hashlib, requests
        body = json.dumps({{"action": "opened", "number": {n},
                           "pull_request": {{"number": {n}}},
                           "repository": {{"full_name": "{REPO}"}},
                           "sender": {{"login": "alice"}}}}).encode()
        sig = "sha256=" + hmac.new(b"{SECRET}", body, hashlib.sha256).hexdigest()
        r = requests.post("{emu.service_url}/webhook", data=body, headers={{
            "X-GitHub-Event": "pull_request", "X-GitHub-Delivery": "manual-1",
            "X-Hub-Signature-256": sig, "Content-Type": "application/json"}})
        print(r.status_code, r.text)
        EOF"""))
    t.say("Then read what the service published on the fake GitHub:")
    auth = f"-H 'Authorization: token {TOKEN}'"
    t.say(f"  curl -s {auth} {emu.github_url}/repos/{REPO}/commits/{sha}/statuses")
    t.say(f"  curl -s {auth} {emu.github_url}/repos/{REPO}/issues/{n}/comments")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        t.say("stopped")
