"""The service under benchmark, in a process of its own: `python -m benchmarks.service_process`.

It imports the App Engine entrypoint `webhook.main` (configured from the environment, as in
production) and serves it on a loopback port through a thin WSGI wrapper that measures, for each
request, the CPU time the whole process spent while handling it (`time.process_time`: every
thread — the request thread, the lifecycle's executor threads and the eligibility pool — user
plus system time). That figure is the service's own CPU time per request as long as requests
arrive one at a time, which is how the CPU benchmark sends them. The fakes run in another
process, so none of their work is counted.

Protocol: the first line on stdout is JSON `{"url", "import_s", "pid"}`; the process serves
until its stdin is closed. `GET /_bench/rss` answers the peak resident set size
(`ru_maxrss`, KiB on Linux) and the current one.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

CPU_HEADER = "X-Bench-Cpu-Ms"
WALL_HEADER = "X-Bench-Wall-Ms"


def _current_rss_kib() -> int:
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") // 1024
    except (OSError, ValueError, IndexError):
        return 0


def measured(app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
    """Wrap a WSGI app: answer /_bench/rss, and add CPU and wall time headers to every answer."""

    def wrapper(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/_bench/rss":
            usage = resource.getrusage(resource.RUSAGE_SELF)
            body = json.dumps(
                {"max_rss_kib": usage.ru_maxrss, "rss_kib": _current_rss_kib(),
                 "threads": threading.active_count()}
            ).encode()
            start_response("200 OK", [("Content-Type", "application/json")])
            return [body]
        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
            captured["status"], captured["headers"] = status, list(headers)

        cpu0, wall0 = time.process_time(), time.perf_counter()
        result = app(environ, capture)
        try:
            body = b"".join(result)  # the answer is produced while iterating: measure that too
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        cpu_ms = (time.process_time() - cpu0) * 1000
        wall_ms = (time.perf_counter() - wall0) * 1000
        headers = [(k, v) for k, v in captured["headers"] if k.lower() != "content-length"]
        headers += [
            ("Content-Length", str(len(body))),
            (CPU_HEADER, f"{cpu_ms:.3f}"),
            (WALL_HEADER, f"{wall_ms:.3f}"),
        ]
        start_response(captured["status"], headers)
        return [body]

    return wrapper


def main() -> int:
    """Import the service, serve it, report where; stop when stdin closes."""
    started = time.perf_counter()
    import webhook.main

    import_s = time.perf_counter() - started
    from jitaccess_sandbox.httpserver import LocalServer

    server = LocalServer(measured(webhook.main.app)).start()
    print(json.dumps({"url": server.url, "import_s": import_s, "pid": os.getpid()}), flush=True)
    sys.stdin.read()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
