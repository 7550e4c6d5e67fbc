"""Section 7 of `python -m benchmarks`: parsing a large `policy/identities.yaml`.

Measured in the benchmark's own process (parsing is pure: no service or fake is involved), as
process CPU time. "First use" is a parse of content the service has not seen; "later events"
go through the service's cache by content (`webhook.service.lifecycle._parse_identities`): the
bytes object it saw last (what the GitHub adapter hands back while GitHub answers 304 Not
Modified), and equal content in a new bytes object (a 200 with an unchanged file: one SHA-256).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

from webhook.core.identities import MAX_IDENTITIES_BYTES, parse_identities
from webhook.service.lifecycle import _ByContent

TARGET_FIRST_S = 1.0


def identities_file(entries: int, *, one_line: bool = True) -> bytes:
    """An identities file of `entries` people, every other one pinned (as `pin` writes them),
    or the same written over several lines (`one_line=False`: the YAML reading)."""
    out = ["# GitHub login -> Google identity (generated for the benchmark)"]
    for i in range(entries):
        login, email = f"user{i:05d}", f"user{i:05d}@acme.io"
        if i % 2 == 0:
            out.append(f"{login}: {email}")
        elif one_line:
            out.append(f"{login}: {{email: {email}, id: {10_000_000 + i}}}")
        else:
            out.append(f"{login}:\n  email: {email}\n  id: {10_000_000 + i}")
    return ("\n".join(out) + "\n").encode()


def cpu_ms(fn: Callable[[], object], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.process_time()
        fn()
        times.append((time.process_time() - start) * 1000)
    return times


def measure_identities(entries: int, repeat: int) -> dict[str, Any]:
    """The figures of section 7."""
    data = identities_file(entries)
    block = identities_file(entries, one_line=False)
    first = cpu_ms(lambda: parse_identities(data), repeat)
    identities, problems = parse_identities(data)
    assert problems == () and len(identities.by_login) == entries, problems
    assert parse_identities(block)[1] == ()
    yaml_first = cpu_ms(lambda: parse_identities(block), max(1, repeat // 2))
    cache = _ByContent(parse_identities)
    cache(data)
    same_object = cpu_ms(lambda: cache(data), 50)
    copies = [bytes(bytearray(data)) for _ in range(20)]
    equal_content = [cpu_ms(lambda c=c: cache(c), 1)[0] for c in copies]  # type: ignore[misc]
    return {
        "entries": entries,
        "bytes": len(data),
        "limit_bytes": MAX_IDENTITIES_BYTES,
        "first_cpu_ms": statistics.median(first),
        "first_cpu_max_ms": max(first),
        "yaml_bytes": len(block),
        "yaml_first_cpu_ms": statistics.median(yaml_first),
        "later_same_object_ms": statistics.median(same_object),
        "later_equal_content_ms": statistics.median(equal_content),
    }


def print_identities(r: dict[str, Any], ok: Callable[[bool], str], w: Callable[[str], Any]) -> None:
    """Section 7 of the report."""
    w(f"\n8. Parsing policy/identities.yaml (process CPU in the benchmark process; target: "
      f"first use ≤ {TARGET_FIRST_S:g} s, later events 0 ms)\n")
    w(f"   {r['entries']:,} entries, every other one with an id, one per line: "
      f"{r['bytes'] / 1024 / 1024:.2f} MiB (limit {r['limit_bytes'] / 1024 / 1024:.0f} MiB)\n")
    first_s = r["first_cpu_ms"] / 1000
    w(f"   first use: {r['first_cpu_ms']:.0f} ms (max {r['first_cpu_max_ms']:.0f} ms)   "
      f"{ok(first_s <= TARGET_FIRST_S)}\n")
    w(f"   later events, same bytes (GitHub answered 304): {r['later_same_object_ms']:.3f} ms; "
      f"equal content in new bytes (one SHA-256): {r['later_equal_content_ms']:.1f} ms\n")
    w(f"   the same entries over several lines ({r['yaml_bytes'] / 1024 / 1024:.2f} MiB, the "
      f"YAML reading, for comparison): {r['yaml_first_cpu_ms']:.0f} ms\n")
