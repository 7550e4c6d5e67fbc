"""Call recording, latency and fault injection shared by the fake GitHub and fake Google servers.

A fake wraps its WSGI handler with `Recorder.wsgi(...)`. Tests then read `recorder.calls`, set
`recorder.latency`, or queue faults with `recorder.fail(...)`. Requests the fake does not know are
recorded in `recorder.unexpected` and answered 501, so a test can assert that nothing unexpected
happened (fakes fail loudly rather than guess).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

StartResponse = Callable[..., Any]
Handler = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


@dataclass(frozen=True)
class Call:
    """One request a fake received."""

    method: str
    path: str  # path without the query string
    query: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Fault:
    """Answer `status` (with `body`) instead of serving, for requests that match."""

    method: str  # "*" matches any
    path: re.Pattern[str]
    status: int
    body: dict[str, Any] | str
    remaining: int  # how many more matching requests get the fault; -1 = forever
    delay: float = 0.0  # seconds to wait before answering
    headers: dict[str, str] = field(default_factory=dict)
    serve: bool = False  # True: only delay, then serve the request normally (see `slow`)

    def matches(self, method: str, path: str) -> bool:
        """Does this fault apply to the request?"""
        return self.remaining != 0 and self.method in ("*", method) and bool(self.path.search(path))


@dataclass
class Gathering:
    """Hold the first `count` requests matching `method` and `path` until all of them have
    arrived (see `Recorder.gather`): `met` says they did, `broken` that `timeout` ran out first
    (then every held request is served)."""

    method: str
    path: re.Pattern[str]
    query: re.Pattern[str] | None
    count: int
    timeout: float
    arrived: int = 0
    met: bool = False
    broken: bool = False
    _done: threading.Event = field(default_factory=threading.Event)


class Recorder:
    """Records calls, injects latency and faults, and collects unexpected requests."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.unexpected: list[Call] = []
        self.faults: list[Fault] = []
        self.latency = 0.0  # seconds added to every request
        self.gatherings: list[Gathering] = []
        self._lock = threading.Lock()

    def fail(
        self,
        method: str,
        path: str,
        status: int,
        *,
        body: dict[str, Any] | str | None = None,
        times: int = 1,
        delay: float = 0.0,
        headers: dict[str, str] | None = None,
    ) -> Fault:
        """Queue a fault for the next `times` requests matching `method` and the `path` regex."""
        fault = Fault(
            method=method.upper() if method != "*" else "*",
            path=re.compile(path),
            status=status,
            body=body if body is not None else {"error": {"code": status, "message": "injected"}},
            remaining=times,
            delay=delay,
            headers=headers or {},
        )
        with self._lock:
            self.faults.append(fault)
        return fault

    def slow(self, method: str, path: str, delay: float, *, times: int = 1) -> Fault:
        """Delay the next `times` matching requests by `delay` seconds, then serve them normally
        (a latency spike on one endpoint, e.g. to pin down the order of two concurrent writers).
        """
        fault = Fault(
            method=method.upper() if method != "*" else "*",
            path=re.compile(path),
            status=0,
            body="",
            remaining=times,
            delay=delay,
            serve=True,
        )
        with self._lock:
            self.faults.append(fault)
        return fault

    def gather(
        self, method: str, path: str, count: int, *, query: str | None = None,
        timeout: float = 10.0,
    ) -> Gathering:
        """Hold the next `count` requests matching `method`, the `path` regex and the `query`
        regex (searched in the query string) until all `count` have arrived: proof, without
        timing anything, that a client sent them at once (a client sending them one after
        another never gets them all there: the first waits `timeout` seconds, then `broken` is
        set and everything is served)."""
        gathering = Gathering(
            method=method.upper() if method != "*" else "*", path=re.compile(path),
            query=re.compile(query) if query is not None else None, count=count,
            timeout=timeout,
        )
        with self._lock:
            self.gatherings.append(gathering)
        return gathering

    def _gather(self, method: str, path: str, query: str) -> None:
        with self._lock:
            mine = next(
                (g for g in self.gatherings
                 if g.arrived < g.count and g.method in ("*", method) and g.path.search(path)
                 and (g.query is None or g.query.search(query))),
                None,
            )
            if mine is None:
                return
            mine.arrived += 1
            if mine.arrived == mine.count:
                mine.met = True
                mine._done.set()
        if not mine._done.wait(mine.timeout):
            with self._lock:
                mine.broken = not mine.met
                mine._done.set()

    def clear(self) -> None:
        """Forget calls, faults, unexpected requests and latency."""
        with self._lock:
            self.calls.clear()
            self.unexpected.clear()
            self.faults.clear()
            self.latency = 0.0

    def count(self, method: str | None = None, path: str | None = None) -> int:
        """How many recorded calls match `method` and the `path` regex (None matches any)."""
        rx = re.compile(path) if path else None
        return sum(
            1
            for c in list(self.calls)
            if (method is None or c.method == method) and (rx is None or rx.search(c.path))
        )

    def record_unexpected(self, call: Call) -> None:
        """Note a request the fake does not serve."""
        with self._lock:
            self.unexpected.append(call)

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.matches(method, path):
                    if fault.remaining > 0:
                        fault.remaining -= 1
                    return fault
        return None

    def wsgi(self, handler: Handler) -> Handler:
        """Wrap a WSGI handler with recording, latency and fault injection."""

        def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length) if length else b""
            # Let the handler read the body again.
            import io

            environ["wsgi.input"] = io.BytesIO(body)
            method = environ["REQUEST_METHOD"]
            path = environ.get("PATH_INFO", "")
            headers = {
                k[5:].replace("_", "-").title(): v
                for k, v in environ.items()
                if k.startswith("HTTP_")
            }
            if environ.get("CONTENT_TYPE"):
                headers["Content-Type"] = environ["CONTENT_TYPE"]
            call = Call(method, path, environ.get("QUERY_STRING", ""), headers, body, time.time())
            with self._lock:
                self.calls.append(call)
            if self.latency:
                time.sleep(self.latency)
            self._gather(method, path, environ.get("QUERY_STRING", ""))
            fault = self._take_fault(method, path)
            if fault is not None:
                if fault.delay:
                    time.sleep(fault.delay)
                if fault.serve:
                    return handler(environ, start_response)
                payload = (
                    fault.body if isinstance(fault.body, str) else json.dumps(fault.body)
                ).encode()
                start_response(
                    f"{fault.status} Injected",
                    [("Content-Type", "application/json"), *fault.headers.items()],
                )
                return [payload]
            return handler(environ, start_response)

        return app


def json_response(
    start_response: StartResponse,
    status: int,
    payload: Any,
    headers: Iterable[tuple[str, str]] = (),
) -> list[bytes]:
    """Answer with a JSON body."""
    body = json.dumps(payload).encode()
    reasons = {200: "OK", 201: "Created", 204: "No Content", 400: "Bad Request",
               403: "Forbidden", 404: "Not Found", 409: "Conflict", 412: "Precondition Failed",
               422: "Unprocessable Entity", 501: "Not Implemented"}
    start_response(
        f"{status} {reasons.get(status, 'Status')}",
        [("Content-Type", "application/json"), ("Content-Length", str(len(body))), *headers],
    )
    return [body]
