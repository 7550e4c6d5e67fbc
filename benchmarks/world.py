"""The benchmark's world: the emulated GitHub and Google, the service under test, the scenarios.

`Bench` drives the standard emulated world (`jitaccess_sandbox.emulator.Emulator`, seeded as its
`seed_google` docstring says) through the request lifecycles and records, for every delivery,
the calls each fake received, the wall time, and (when the target reports it) the service's CPU.

Two targets:
- `ServiceProcess`: `webhook.main:app` in a process of its own, configured from the environment
  (`benchmarks.service_process`); used by `python -m benchmarks`.
- `InProcessTarget`: the emulator's own in-process service; used by the smoke test, which only
  counts calls (counts do not depend on where the service runs).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import requests

from jitaccess_sandbox.emulator import (
    AUDIT_PROJECT,
    IDENTITIES_YAML,
    ORG,
    REPO,
    SECRET,
    SELF,
    TOKEN,
    Emulator,
)
from jitaccess_sandbox.fake_google_iam import iam_state
from jitaccess_sandbox.faults import Call, Recorder
from webhook.service.app import sign

ROOT = Path(__file__).resolve().parents[1]

#: The event types measured, in table order, with their labels.
EVENTS: dict[str, str] = {
    "opened_self": "PR opened (self-approval)",
    "opened_multi": "PR opened (multi-party)",
    "review": "review submitted (approval)",
    "merge_self": "merged (self-approval)",
    "merge_multi": "merged (multi-party)",
    "non_request": "PR opened (not a request)",
}
#: Full lifecycles: the events they consist of.
LIFECYCLES: dict[str, tuple[str, ...]] = {
    "lifecycle_self": ("opened_self", "merge_self"),
    "lifecycle_multi": ("opened_multi", "review", "merge_multi"),
}
LIFECYCLE_LABELS = {
    "lifecycle_self": "lifecycle: self-approval",
    "lifecycle_multi": "lifecycle: multi-party, 1 approval",
}
#: What the service must answer for each event type (a benchmark of a broken flow is worthless).
EXPECTED_STATE = {
    "opened_self": "ready",
    "opened_multi": "pending",
    "review": "ready",
    "merge_self": "activated",
    "merge_multi": "activated",
    "non_request": "success",
    # eligibility at scale (benchmarks/scale.py)
    "scale_opened": "pending",
    "scale_review": "ready",
    "scale_merge": "activated",
}

LOAD_PROJECT = "payments-load"
LOAD_GROUP = "load-testers@example.com"
LOAD_ROLE = "roles/cloudsql.admin"


def request_text(project: str, justification: str = "INC-4242: benchmark request") -> str:
    """A valid request file for `roles/cloudsql.admin` on `project` for one hour."""
    return (
        f"project: {project}\nroles:\n  - roles/cloudsql.admin\nduration: 1h\n"
        f'justification: "{justification}"\n'
    )


# ----------------------------------------------------------------------------------------------
# Normalised endpoints

_NORMALISE: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^/repos/[^/]+/[^/]+"), "/repos/{repo}"),
    (re.compile(r"/compare/[^/]+\.\.\.[0-9a-f]{40}$"), "/compare/{base}...{sha}"),
    (re.compile(r"/[0-9a-f]{40}(?=/|$)"), "/{sha}"),
    (re.compile(r"/(pulls|issues)/\d+(?=/|$)"), r"/\1/{n}"),
    (re.compile(r"/comments/\d+(?=/|$)"), "/comments/{id}"),
    (re.compile(r"/contents/requests/[^/]+/[^/]+$"), "/contents/requests/{login}/{file}"),
    (re.compile(r"/projects/[a-z][a-z0-9-]+(?=/|:|$)"), "/projects/{project}"),
    (re.compile(r"/groups/(?!-/)[^/:]+(?=/|:|$)"), "/groups/{group}"),  # `groups/-`: any group
    (re.compile(r"/(organizations|folders)/\d+(?=/|:|$)"), "/{scope}"),
)


def normalise(path: str) -> str:
    """A call's path with PR numbers, shas, comment ids, projects and groups as placeholders."""
    for pattern, replacement in _NORMALISE:
        path = pattern.sub(replacement, path)
    return path


def endpoint_counts(calls: Sequence[Call], api: str) -> Counter[str]:
    """`{api} METHOD path` -> count, paths normalised."""
    return Counter(f"{api} {c.method} {normalise(c.path)}" for c in calls)


def rounds(calls: Sequence[Call], latency: float) -> int:
    """How many sequential rounds of calls the fakes saw (calls that arrive within 0.6 × the
    latency of a round's first call belong to that round; a call that depends on an earlier
    one cannot arrive before the latency has passed)."""
    if latency <= 0:
        return 0
    count, boundary = 0, float("-inf")
    for at in sorted(c.at for c in calls):
        if at >= boundary:
            count += 1
            boundary = at + 0.6 * latency
    return count


# ----------------------------------------------------------------------------------------------
# Targets


@dataclass(frozen=True)
class Answer:
    """The service's answer to one delivery, as the benchmark saw it."""

    status: int
    body: dict[str, Any]
    wall: float  # seconds, at the client
    cpu_ms: float | None  # the service process's CPU during the request, if measured


class Target(Protocol):
    def deliver(self, event: str, payload: dict[str, Any]) -> Answer: ...
    def get(self, path: str) -> Answer: ...
    def close(self) -> None: ...


def _signed(event: str, payload: dict[str, Any], delivery_id: str) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload).encode()
    return body, {
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/benchmark",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery_id,
        "X-GitHub-Hook-ID": "1",
        "X-Hub-Signature-256": sign(SECRET, body),
    }


class HttpTarget:
    """A service reachable over HTTP; one session per thread."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._local = threading.local()
        self._ids = iter(range(1, 10**9))
        self._ids_lock = threading.Lock()

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def _answer(self, response: requests.Response, started: float) -> Answer:
        wall = time.perf_counter() - started
        try:
            body = response.json()
        except ValueError:
            body = {"raw": response.text}
        cpu = response.headers.get("X-Bench-Cpu-Ms")
        return Answer(response.status_code, body if isinstance(body, dict) else {"value": body},
                      wall, float(cpu) if cpu is not None else None)

    def deliver(self, event: str, payload: dict[str, Any]) -> Answer:
        """POST a signed delivery."""
        with self._ids_lock:
            delivery_id = f"bench-{next(self._ids)}"
        body, headers = _signed(event, payload, delivery_id)
        started = time.perf_counter()
        response = self._session().post(f"{self.url}/webhook", data=body, headers=headers,
                                        timeout=60)
        return self._answer(response, started)

    def get(self, path: str) -> Answer:
        """GET a path of the service."""
        started = time.perf_counter()
        return self._answer(self._session().get(f"{self.url}{path}", timeout=60), started)

    def close(self) -> None:
        """Nothing to stop."""


class InProcessTarget(HttpTarget):
    """The emulator's own service (same process as the fakes)."""

    def __init__(self, emu: Emulator) -> None:
        super().__init__(emu.service_url)


class ServiceProcess(HttpTarget):
    """`webhook.main:app` in its own process, configured from the environment."""

    #: The module run as the service (a profiling variant can be swapped in by hand).
    module = "benchmarks.service_process"

    def __init__(self, emu: Emulator, extra_env: dict[str, str] | None = None) -> None:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("GITHUB_", "GAE_", "CLOUD_", "GOOGLE_"))
               and k not in ("RESOURCE_MANAGER_ENDPOINT", "CLEANUP_TOKEN")}
        env.update(service_environment(emu))
        env.update(extra_env or {})
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p
        )
        self.stderr = open(os.environ.get("BENCH_SERVICE_STDERR", os.devnull), "w")  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", self.module],
            cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self.stderr, text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            self.process.wait(timeout=10)
            raise RuntimeError(f"the service process exited with {self.process.returncode}")
        hello = json.loads(line)
        self.import_s = float(hello["import_s"])
        self.pid = int(hello["pid"])
        super().__init__(hello["url"])

    def rss(self) -> dict[str, int]:
        """Peak and current resident set size of the service process (KiB)."""
        return dict(self.get("/_bench/rss").body)

    def close(self) -> None:
        """Stop the process."""
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.stderr.close()


def service_environment(emu: Emulator) -> dict[str, str]:
    """The environment that points `webhook.main` at the emulator's fakes."""
    google = emu.google_url
    return {
        "GITHUB_WEBHOOK_SECRET": SECRET,
        "GITHUB_REPOSITORY": REPO,
        "GITHUB_TOKEN": TOKEN,
        "GITHUB_API_URL": emu.github_url,
        "GOOGLE_CLOUD_PROJECT": AUDIT_PROJECT,
        "RESOURCE_MANAGER_ENDPOINT": google,
        "CLOUD_ASSET_ENDPOINT": google,
        "CLOUD_LOGGING_ENDPOINT": google,
        "CLOUD_IDENTITY_ENDPOINT": google,
        "NO_PROXY": "127.0.0.1,localhost",
    }


# ----------------------------------------------------------------------------------------------
# The scenarios


@dataclass
class Delivery:
    """One measured delivery."""

    event: str  # a key of EVENTS (or "concurrent_merge")
    answer: Answer
    github: list[Call]
    google: list[Call]

    def counts(self) -> Counter[str]:
        """Calls by normalised endpoint."""
        return endpoint_counts(self.github, "GitHub") + endpoint_counts(self.google, "Google")


@dataclass
class Bench:
    """Drives the emulated world through the lifecycles against a target service."""

    emu: Emulator
    target: Target
    deliveries: list[Delivery] = field(default_factory=list)
    _serial: int = 0

    @property
    def recorders(self) -> tuple[Recorder, Recorder]:
        """The fake GitHub's and the fake Google's recorders."""
        return self.emu.github.recorder, self.emu.google.recorder

    def set_latency(self, seconds: float) -> None:
        """Latency added to every call by both fakes."""
        for recorder in self.recorders:
            recorder.latency = seconds

    def forget_calls(self) -> None:
        """Forget the calls recorded so far (latency and faults stay)."""
        for recorder in self.recorders:
            with recorder._lock:
                recorder.calls.clear()

    def snapshot(self) -> tuple[list[Call], list[Call]]:
        """The calls recorded so far by the fake GitHub and the fake Google."""
        gh, google = self.recorders
        return list(gh.calls), list(google.calls)

    def deliver(self, event_type: str, event: str, payload: dict[str, Any]) -> Delivery:
        """Deliver one event and record what it cost; checks the service's answer."""
        self.forget_calls()
        answer = self.target.deliver(event, payload)
        gh, google = self.snapshot()
        delivery = Delivery(event_type, answer, gh, google)
        expected = EXPECTED_STATE.get(event_type)
        if answer.status != 200 or answer.body.get("state") != expected:
            raise RuntimeError(
                f"{event_type}: expected state {expected!r}, got HTTP {answer.status} {answer.body}"
            )
        unexpected = self.emu.github.recorder.unexpected + self.emu.google.recorder.unexpected
        if unexpected:
            raise RuntimeError(f"{event_type}: the fakes saw unexpected calls: {unexpected}")
        self.deliveries.append(delivery)
        return delivery

    def _name(self, kind: str) -> str:
        self._serial += 1
        return f"bench-{self._serial:04d}-{kind}.yaml"

    def self_approval(self) -> list[Delivery]:
        """alice: open a request for payments-dev (self-approval via developers@), merge it."""
        emu = self.emu
        n = emu.open_request("alice", request_text("payments-dev"), name=self._name("self"))
        out = [self.deliver("opened_self", "pull_request", emu.pr_payload("opened", n))]
        emu.github.merge(REPO, n, merged_by="alice")
        out.append(self.deliver("merge_self", "pull_request", emu.pr_payload("closed", n)))
        return out

    def multi_party(self) -> list[Delivery]:
        """alice: open a request for payments-prod, bob (sre@) approves, merge it."""
        emu = self.emu
        n = emu.open_request("alice", request_text("payments-prod"), name=self._name("multi"))
        out = [self.deliver("opened_multi", "pull_request", emu.pr_payload("opened", n))]
        review = emu.github.add_review(REPO, n, "bob", "APPROVED")
        out.append(self.deliver("review", "pull_request_review",
                                emu.review_payload("submitted", n, review)))
        emu.github.merge(REPO, n, merged_by="alice")
        out.append(self.deliver("merge_multi", "pull_request", emu.pr_payload("closed", n)))
        return out

    def non_request(self) -> list[Delivery]:
        """dave: a PR that touches no request."""
        emu = self.emu
        self._serial += 1
        n = emu.github.open_pr(REPO, "dave", {f"docs/note-{self._serial}.md": "A note.\n"},
                               title="Docs")
        return [self.deliver("non_request", "pull_request", emu.pr_payload("opened", n))]

    def all_events(self) -> dict[str, Delivery]:
        """One delivery of every event type, by type."""
        done = [*self.self_approval(), *self.multi_party(), *self.non_request()]
        return {d.event: d for d in done}


def call_counts(bench: Bench) -> dict[str, Counter[str]]:
    """Steady-state calls by endpoint for every event type and lifecycle.

    One warm-up lifecycle runs first (a process's first event also asks GitHub who the service
    is, GET /user, unless /_ah/warmup ran): the counts are those of the second round.
    """
    bench.all_events()
    events = {k: d.counts() for k, d in bench.all_events().items()}
    out: dict[str, Counter[str]] = dict(events)
    for name, parts in LIFECYCLES.items():
        total: Counter[str] = Counter()
        for part in parts:
            total += events[part]
        out[name] = total
    return out


# ----------------------------------------------------------------------------------------------
# Load: many users eligible for self-approval on one project


def seed_load_users(emu: Emulator, count: int) -> list[str]:
    """`count` users in a self-approval group on LOAD_PROJECT, with identities; their logins."""
    logins = [f"loaduser{i:03d}" for i in range(1, count + 1)]
    emu.world.add_project(LOAD_PROJECT, ORG)
    emu.world.add_group(LOAD_GROUP, [f"{login}@example.com" for login in logins])
    emu.world.add_binding(f"projects/{LOAD_PROJECT}", LOAD_ROLE, f"group:{LOAD_GROUP}", SELF,
                          title="Load test: eligible for JIT access")
    identities = IDENTITIES_YAML + "".join(f"{login}: {login}@example.com\n" for login in logins)
    emu.github.put_file(REPO, "policy/identities.yaml", identities)
    for login in logins:
        emu.github.add_user(login)
    return logins


#: Bindings in LOAD_PROJECT's policy for the concurrent merges (`--quick`: QUICK_POLICY_SIZE).
POLICY_SIZE = 1500
QUICK_POLICY_SIZE = 300
#: GitHub waits this long for a webhook's answer.
GITHUB_WAIT = 10.0


def filler_bindings(count: int) -> list[dict[str, Any]]:
    """`count` bindings of the kinds a large project holds: plain grants (six in ten),
    conditional ones that are no activation (three in ten), and live activations of other
    people requested elsewhere (one in ten), which the service must read past and keep."""
    out: list[dict[str, Any]] = []
    for i in range(count):
        role = f"roles/bench.role{i % 97}"
        if i % 10 < 6:
            out.append({"role": role, "members": [f"user:member{i}@example.com"]})
        elif i % 10 < 9:
            out.append({
                "role": role,
                "members": [f"group:team{i}@example.com"],
                "condition": {
                    "title": f"Team {i} buckets",
                    "expression": f'resource.name.startsWith("projects/_/buckets/team-{i}-")',
                },
            })
        else:
            out.append({
                "role": role,
                "members": [f"user:other{i}@example.com"],
                "condition": {
                    "title": "JIT access activation",
                    "description": f"Self-approved, justification: INC-{i}: seed "
                                   f"(acme/elsewhere#{i})",
                    "expression": '(request.time >= timestamp("2026-01-01T00:00:00Z") && '
                                  'request.time < timestamp("2099-01-01T00:00:00Z"))',
                },
            })
    return out


def seed_big_policy(emu: Emulator, size: int) -> int:
    """Fill LOAD_PROJECT's policy up to `size` bindings (in one write); returns its size."""
    resource = f"projects/{LOAD_PROJECT}"
    bindings = emu.world.bindings(resource)
    bindings += filler_bindings(max(0, size - len(bindings)))
    emu.world.set_policy(resource, {"version": 3, "bindings": bindings})
    return len(bindings)


@dataclass
class ConcurrentResult:
    """N merges delivered at once on one project, spread over one or more service processes."""

    merges: int
    processes: int
    policy_bindings: int  # bindings in the project's policy when the burst started
    succeeded: int
    failed: int
    failures: list[str]
    server_errors: int  # answers 5xx (or no answer at all)
    over_github_wait: int  # answers that took GITHUB_WAIT seconds or more
    bindings_present: int
    set_calls: int
    conflicts: int  # 409 answers to setIamPolicy
    get_calls: int
    wall: float  # first delivery sent to last answer
    slowest: float  # the slowest single delivery
    median: float


def concurrent_merges(
    bench: Bench, logins: Sequence[str], tag: str, targets: Sequence[Target] = ()
) -> ConcurrentResult:
    """Open one request per login on LOAD_PROJECT, merge all, deliver the merges at once
    (round-robin over `targets`, default the bench's target)."""
    emu = bench.emu
    to = list(targets) or [bench.target]
    numbers = []
    for login in logins:
        n = emu.open_request(login, request_text(LOAD_PROJECT), name=f"load-{tag}.yaml")
        numbers.append(n)
    for n, login in zip(numbers, logins, strict=True):
        emu.github.merge(REPO, n, merged_by=login)
    payloads = [emu.pr_payload("closed", n) for n in numbers]
    resource = f"projects/{LOAD_PROJECT}"
    size = len(emu.world.bindings(resource))
    accepted_before = len(iam_state(emu.world).reasons_for(resource))
    bench.forget_calls()
    barrier = threading.Barrier(len(payloads) + 1)
    answers: list[Answer | BaseException] = [RuntimeError("not run")] * len(payloads)

    def run(i: int) -> None:
        barrier.wait()
        try:
            answers[i] = to[i % len(to)].deliver("pull_request", payloads[i])
        except BaseException as exc:  # reported below
            answers[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(payloads))]
    for t in threads:
        t.start()
    barrier.wait()
    started = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    _, google = bench.snapshot()
    path = f"/v3/{resource}:setIamPolicy"
    set_calls = sum(1 for c in google if c.method == "POST" and c.path == path)
    get_calls = sum(1 for c in google if c.path == f"/v3/{resource}:getIamPolicy")
    accepted = len(iam_state(emu.world).reasons_for(resource)) - accepted_before
    failures: list[str] = []
    walls: list[float] = []
    server_errors = 0
    for n, answer in zip(numbers, answers, strict=True):
        if isinstance(answer, BaseException):
            failures.append(f"#{n}: {answer!r}")
            server_errors += 1
        elif answer.status != 200 or answer.body.get("state") != "activated":
            failures.append(f"#{n}: HTTP {answer.status} {answer.body.get('message', '')}")
            server_errors += answer.status >= 500
        if isinstance(answer, Answer):
            walls.append(answer.wall)
    present = 0
    bindings = emu.activations(LOAD_PROJECT)
    for n, login in zip(numbers, logins, strict=True):
        suffix = f"({REPO}#{n})"
        if any(f"user:{login}@example.com" in b["members"]
               and b["condition"]["description"].endswith(suffix) for b in bindings):
            present += 1
    walls.sort()
    return ConcurrentResult(
        merges=len(numbers),
        processes=len(to),
        policy_bindings=size,
        succeeded=len(numbers) - len(failures),
        failed=len(failures),
        failures=failures,
        server_errors=server_errors,
        over_github_wait=sum(1 for w in walls if w >= GITHUB_WAIT),
        bindings_present=present,
        set_calls=set_calls,
        conflicts=set_calls - accepted,
        get_calls=get_calls,
        wall=wall,
        slowest=walls[-1] if walls else 0.0,
        median=walls[len(walls) // 2] if walls else 0.0,
    )


@contextmanager
def emulated_world() -> Iterator[Emulator]:
    """A freshly seeded emulator (the clock frozen at start, as the service's is close to it)."""
    with Emulator() as emu:
        yield emu

