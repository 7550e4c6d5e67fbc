"""`python -m benchmarks`: measure the service against the emulated world and print a report."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any, TextIO

from benchmarks import scale
from benchmarks.cleanup import run_cleanup
from benchmarks.critical_path import CHAINS
from benchmarks.identities import measure_identities, print_identities
from benchmarks.rules import measure_rules, print_rules
from benchmarks.system import cold_imports, machine
from benchmarks.world import (
    EVENTS,
    GITHUB_WAIT,
    LIFECYCLE_LABELS,
    LIFECYCLES,
    POLICY_SIZE,
    QUICK_POLICY_SIZE,
    Bench,
    ServiceProcess,
    call_counts,
    concurrent_merges,
    emulated_world,
    endpoint_counts,
    rounds,
    seed_big_policy,
    seed_load_users,
)

TARGET_RATIO = 1.25
TARGET_CPU_MS = 50.0
TARGET_IMPORT_S = 0.5
TARGET_RSS_MB = 150.0
SHORT = {
    "opened_self": "open/self",
    "opened_multi": "open/multi",
    "review": "review",
    "merge_self": "merge/self",
    "merge_multi": "merge/multi",
    "non_request": "non-req",
    "lifecycle_self": "LC self",
    "lifecycle_multi": "LC multi",
}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    p.add_argument("--latency-ms", type=float, default=50.0,
                   help="latency the fakes add to every call (default 50)")
    p.add_argument("--quick", action="store_true",
                   help="fewer repetitions, only 8 concurrent merges, a "
                        f"{QUICK_POLICY_SIZE}-binding policy, a 40-project cleanup and an "
                        "identities file of 5,000 entries (CI smoke)")
    p.add_argument("--json", metavar="FILE", help="also write every figure as JSON to FILE")
    p.add_argument("--cleanup-sizes", metavar="N,N", type=_sizes, default=None,
                   help="fleet sizes of the cleanup benchmark (default 500,1000; --quick: 40; "
                        "'' skips it)")
    p.add_argument("--cleanup-latency-ms", type=float, default=200.0,
                   help="latency the fake Google adds to every call during cleanup (default 200)")
    args = p.parse_args(argv)
    if args.cleanup_sizes is None:
        args.cleanup_sizes = [40] if args.quick else [500, 1000]
    return args


def _sizes(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def _median(xs: Sequence[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def _p90(xs: Sequence[float]) -> float:
    if not xs:
        return float("nan")
    ordered = sorted(xs)
    return ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]


def _ok(passed: bool) -> str:
    return "ok" if passed else "MISSED"


def measure(args: argparse.Namespace, log: TextIO) -> dict[str, Any]:
    """Run every measurement; the figures as one JSON-able dict."""
    latency = args.latency_ms / 1000
    cpu_reps, latency_reps = (3, 2) if args.quick else (10, 5)
    concurrency = (8,) if args.quick else (8, 32, 64)
    report: dict[str, Any] = {"machine": machine(), "latency_ms": args.latency_ms,
                              "quick": args.quick,
                              "cleanup_latency_ms": args.cleanup_latency_ms}

    log.write("measuring cold imports in fresh processes…\n")
    report["import"] = cold_imports(3 if args.quick else 7)

    with emulated_world() as emu:
        logins = seed_load_users(emu, max(concurrency))
        log.write("starting the service process…\n")
        service = ServiceProcess(emu)
        second: ServiceProcess | None = None
        bench = Bench(emu, service)
        try:
            report["import"]["service_process_s"] = service.import_s
            # -- a fresh process: warmup, then its first deliveries (no latency) -------------
            bench.forget_calls()
            warm = service.get("/_ah/warmup")
            gh, google = bench.snapshot()
            warm_calls = endpoint_counts(gh, "GitHub") + endpoint_counts(google, "Google")
            first = {d.event: d for d in bench.self_approval()}
            report["first"] = {
                "warmup_ms": warm.wall * 1000,
                "warmup_cpu_ms": warm.cpu_ms,
                "warmup_calls": dict(warm_calls),
                "opened_self_ms": first["opened_self"].answer.wall * 1000,
                "opened_self_cpu_ms": first["opened_self"].answer.cpu_ms,
                "merge_self_ms": first["merge_self"].answer.wall * 1000,
                "merge_self_cpu_ms": first["merge_self"].answer.cpu_ms,
            }
            bench.multi_party()
            report["rss_after_first_lifecycles"] = service.rss()

            # -- 1. calls per event ---------------------------------------------------------
            log.write("counting calls…\n")
            counts = call_counts(bench)
            report["calls"] = {k: dict(sorted(v.items())) for k, v in counts.items()}

            # -- 3. CPU per event, no latency -------------------------------------------------
            log.write(f"measuring CPU time ({cpu_reps} rounds, no latency)…\n")
            cpu: dict[str, list[float]] = {k: [] for k in EVENTS}
            wall0: dict[str, list[float]] = {k: [] for k in EVENTS}
            for _ in range(cpu_reps):
                for event, d in bench.all_events().items():
                    assert d.answer.cpu_ms is not None
                    cpu[event].append(d.answer.cpu_ms)
                    wall0[event].append(d.answer.wall * 1000)
            report["cpu"] = {
                k: {"median_ms": _median(v), "p90_ms": _p90(v), "max_ms": max(v),
                    "wall_no_latency_ms": _median(wall0[k])}
                for k, v in cpu.items()
            }

            # -- 2. wall time at the injected latency ----------------------------------------
            log.write(f"measuring wall time at {args.latency_ms:g} ms per call "
                      f"({latency_reps} rounds)…\n")
            bench.set_latency(latency)
            walls: dict[str, list[float]] = {k: [] for k in EVENTS}
            seen: dict[str, list[int]] = {k: [] for k in EVENTS}
            for _ in range(latency_reps):
                for event, d in bench.all_events().items():
                    walls[event].append(d.answer.wall)
                    seen[event].append(rounds(d.github + d.google, latency))
            report["latency"] = {}
            for k in EVENTS:
                chain = CHAINS[k]
                med = _median(walls[k])
                report["latency"][k] = {
                    "chain": len(chain),
                    "chain_steps": list(chain.steps),
                    "minimum_ms": chain.minimum(latency) * 1000,
                    "median_ms": med * 1000,
                    "max_ms": max(walls[k]) * 1000,
                    "ratio": med / chain.minimum(latency),
                    "rounds_seen": Counter(seen[k]).most_common(1)[0][0],
                }

            # -- 5. memory ---------------------------------------------------------------------
            report["rss_end"] = service.rss()

            # -- 6. concurrent merges, two service processes, a large policy -------------------
            size = QUICK_POLICY_SIZE if args.quick else POLICY_SIZE
            report["concurrency_policy_size"] = seed_big_policy(emu, size)
            log.write("starting a second service process…\n")
            second = ServiceProcess(emu)
            second.get("/_ah/warmup")
            report["concurrency"] = []
            for n in concurrency:
                log.write(f"{n} concurrent merges over two processes at {args.latency_ms:g} ms "
                          "per call…\n")
                result = concurrent_merges(bench, logins[:n], tag=f"c{n}",
                                           targets=[service, second])
                report["concurrency"].append(asdict(result))
                time.sleep(0.2)
            report["rss_end"] = service.rss()

            # -- 7. eligibility at scale, at the injected latency ------------------------------
            log.write(f"eligibility at scale at {args.latency_ms:g} ms per call…\n")
            most = max(count for _, count in scale.cells(args.quick))
            reviewers = scale.seed_identities(bench, logins, most)
            bench.set_latency(latency)
            report["scale"] = [asdict(c) for c in scale.matrix(bench, reviewers, args.quick)]

            # -- 8. CPU with a large effective policy, no latency ------------------------------
            log.write(f"CPU with a {scale.BIG_BINDINGS}-binding policy…\n")
            bench.set_latency(0.0)
            report["big_policy"] = scale.big_policy_cpu(bench, 3 if args.quick else 7)
        finally:
            service.close()
            if second is not None:
                second.close()

    # -- 7. cleanup at organisation scale (fresh worlds and service processes) -------------
    report["cleanup"] = []
    for config in ("service", "unpaced"):
        for n in args.cleanup_sizes:
            log.write(f"cleanup ({config}) of {n} projects at {args.cleanup_latency_ms:g} ms "
                      "per call…\n")
            for i, run in enumerate(run_cleanup(config, n, args.cleanup_latency_ms / 1000), 1):
                report["cleanup"].append(
                    asdict(run) | {"run": i, "rate": run.rate, "pace": run.pace}
                )

    # -- 8. identities at organisation scale ----------------------------------------
    entries = 5_000 if args.quick else 50_000
    log.write(f"parsing an identities file of {entries:,} entries…\n")
    report["identities"] = measure_identities(entries, 3 if args.quick else 5)
    # -- 11. a policy with many rules ---------------------------------------------------------
    log.write("parsing a policy of many rules and deciding against it…\n")
    report["rules"] = measure_rules(3 if args.quick else 7)
    report["load_average_end"] = machine()["load_average"]
    return report


# ----------------------------------------------------------------------------------------------
# Printing


def print_report(r: dict[str, Any], out: TextIO) -> None:
    """The tables."""
    m = r["machine"]
    w = out.write
    w("\nJIT Access for GitHub — benchmarks\n")
    w(f"machine: {m['nproc']} CPUs ({m['cpu_model']}), {m['memory_gib']} GiB RAM, {m['os']}, "
      f"{m['implementation']} {m['python']}; load average at start "
      f"{', '.join(f'{x:.2f}' for x in m['load_average'] or [])}\n")
    w("setup: fakes (jitaccess_sandbox.emulator) in the benchmark process; the service is "
      "webhook.main:app\n       in its own process, configured from the environment; "
      "deliveries are signed POSTs; the fakes\n       (werkzeug) close every connection, so "
      "each call also pays a fresh loopback TCP connection.\n")

    # 1
    w("\n1. API calls per event (steady state: a process's first event also makes GET /user, "
      "the service's\n   own login, unless /_ah/warmup ran — warmup makes it instead)\n")
    columns = [*EVENTS, *LIFECYCLES]
    calls: dict[str, dict[str, int]] = r["calls"]
    endpoints = sorted({e for c in calls.values() for e in c},
                       key=lambda e: (not e.startswith("GitHub"), e.split(" ", 2)[2], e))
    width = max(len(e) for e in endpoints) + 2
    w(" " * width + "".join(f"{SHORT[c]:>12}" for c in columns) + "\n")
    for e in endpoints:
        w(f"{e:<{width}}" + "".join(f"{calls[c].get(e, 0) or '·':>12}" for c in columns) + "\n")
    for api in ("GitHub", "Google"):
        w(f"{'total ' + api:<{width}}" + "".join(
            f"{sum(v for k, v in calls[c].items() if k.startswith(api)):>12}" for c in columns
        ) + "\n")
    w(f"{'total':<{width}}" + "".join(f"{sum(calls[c].values()):>12}" for c in columns) + "\n")
    w("   columns: " + "; ".join(f"{SHORT[k]} = {v}" for k, v in
                                  {**EVENTS, **LIFECYCLE_LABELS}.items()) + "\n")

    # 2
    lat = r["latency_ms"]
    w(f"\n2. Wall time per event at {lat:g} ms per call (median; critical-path minimum = chain "
      f"length × {lat:g} ms;\n   target ratio ≤ {TARGET_RATIO}; 'rounds' = sequential rounds of "
      "calls the fakes saw)\n")
    w(f"{'event':<30}{'chain':>6}{'minimum':>10}{'median':>10}{'max':>10}{'ratio':>8}"
      f"{'rounds':>8}   target\n")
    for k, v in r["latency"].items():
        w(f"{EVENTS[k]:<30}{v['chain']:>6}{v['minimum_ms']:>8.0f}ms{v['median_ms']:>8.0f}ms"
          f"{v['max_ms']:>8.0f}ms{v['ratio']:>8.2f}{v['rounds_seen']:>8}   "
          f"{_ok(v['ratio'] <= TARGET_RATIO)}\n")

    # 3
    w(f"\n3. Service CPU time per event (no latency; process CPU of the service process while "
      f"it handled\n   the request, all threads; target median ≤ {TARGET_CPU_MS:g} ms)\n")
    w(f"{'event':<30}{'median':>10}{'p90':>10}{'max':>10}{'wall':>10}   target\n")
    for k, v in r["cpu"].items():
        w(f"{EVENTS[k]:<30}{v['median_ms']:>8.1f}ms{v['p90_ms']:>8.1f}ms{v['max_ms']:>8.1f}ms"
          f"{v['wall_no_latency_ms']:>8.1f}ms   {_ok(v['median_ms'] <= TARGET_CPU_MS)}\n")

    # 4
    imp = r["import"]
    first = r["first"]
    w(f"\n4. Start-up (target: cold import ≤ {TARGET_IMPORT_S} s)\n")
    w(f"   cold `import webhook.main` (builds the app from the environment), median of "
      f"{imp['runs']} fresh processes: {imp['median_s']:.3f} s (min {imp['min_s']:.3f}, max "
      f"{imp['max_s']:.3f})   {_ok(imp['median_s'] <= TARGET_IMPORT_S)}\n")
    w(f"   the same in the service process: {imp['service_process_s']:.3f} s\n")
    w("   heaviest imports (self time by package, -X importtime): " + ", ".join(
        f"{name} {ms:.0f} ms" for name, ms in imp["heaviest"]) + "\n")
    warm_calls = ", ".join(f"{k} ×{v}" for k, v in first["warmup_calls"].items()) or "none"
    w(f"   GET /_ah/warmup in the fresh process: {first['warmup_ms']:.0f} ms "
      f"(CPU {first['warmup_cpu_ms']:.0f} ms; calls: {warm_calls})\n")
    cpu = r["cpu"]
    w(f"   first delivery after warmup, no latency: PR opened (self) {first['opened_self_ms']:.0f}"
      f" ms (CPU {first['opened_self_cpu_ms']:.0f} ms), then merged {first['merge_self_ms']:.0f}"
      f" ms (CPU {first['merge_self_cpu_ms']:.0f} ms);\n   steady state: "
      f"{cpu['opened_self']['wall_no_latency_ms']:.0f} ms and "
      f"{cpu['merge_self']['wall_no_latency_ms']:.0f} ms\n")

    # 5
    w(f"\n5. Memory of the service process (target peak RSS ≤ {TARGET_RSS_MB:g} MB)\n")
    first_rss, end_rss = r["rss_after_first_lifecycles"], r["rss_end"]
    peak = first_rss["max_rss_kib"] / 1024
    w(f"   peak RSS after its first full lifecycles (self-approval, multi-party): {peak:.1f} MB"
      f"   {_ok(peak <= TARGET_RSS_MB)}\n")
    w(f"   peak RSS at the end (after every benchmark, incl. concurrent merges): "
      f"{end_rss['max_rss_kib'] / 1024:.1f} MB; current {end_rss['rss_kib'] / 1024:.1f} MB, "
      f"{end_rss['threads']} threads\n")

    # 6
    w(f"\n6. Concurrent merges on one project at {lat:g} ms per call (each by another user, "
      "self-approval; the\n   deliveries sent at once, alternately to two service processes "
      "sharing the fakes; the project's\n   policy holds "
      f"{r.get('concurrency_policy_size', '?')} bindings; 409 = setIamPolicy conflicts; "
      "5xx = answers 5xx or none;\n   target: every binding present, no 5xx, every answer "
      f"under GitHub's {GITHUB_WAIT:g} s)\n")
    w(f"{'merges':>8}{'procs':>6}{'ok':>6}{'5xx':>5}{'bindings':>10}{'getIam':>8}"
      f"{'setIam':>8}{'409s':>6}{'wall':>9}{'median':>9}{'slowest':>9}   target\n")
    for c in r["concurrency"]:
        passed = (c["bindings_present"] == c["merges"] and c["server_errors"] == 0
                  and c["over_github_wait"] == 0 and c["slowest"] < GITHUB_WAIT)
        w(f"{c['merges']:>8}{c['processes']:>6}{c['succeeded']:>6}{c['server_errors']:>5}"
          f"{c['bindings_present']:>10}{c['get_calls']:>8}{c['set_calls']:>8}"
          f"{c['conflicts']:>6}{c['wall']:>8.2f}s{c['median']:>8.2f}s{c['slowest']:>8.2f}s"
          f"   {_ok(passed)}\n")
        for failure in c["failures"][:5]:
            w(f"         {failure[:150]}\n")
    # 7
    if r.get("cleanup"):
        print_cleanup(r, out)
    # 8
    print_identities(r["identities"], _ok, w)

    w(f"\n9. Eligibility at scale at {lat:g} ms per call: Google calls / GitHub calls / wall "
      f"time per event\n   (G group bindings on the project, half of them multi-party groups "
      f"sharing the R reviewers;\n   opened = pending, its qualified peers listed; review = all "
      f"R approvals counted; target: every\n   event under {scale.TARGET_EVENT_S:g} s)\n")
    w(f"{'G':>6}{'R':>6}" + "".join(f"{name:>24}" for name in ("opened", "review", "merge"))
      + "   target\n")
    for c in r.get("scale", []):
        events = c["events"]
        cols = "".join(
            f"{e['google']:>7} /{e['github']:>4} /{e['wall_s']:>6.2f}s      "
            for e in (events["opened"], events["review"], events["merge"])
        )
        slowest = max(e["wall_s"] for e in events.values())
        w(f"{c['groups']:>6}{c['reviewers']:>6}  {cols} {_ok(slowest < scale.TARGET_EVENT_S)}\n")

    # 10
    big = r.get("big_policy")
    if big:
        w(f"\n10. Service CPU per event with {scale.BIG_BINDINGS} bindings on a project and its "
          f"{scale.BIG_FOLDERS + 1} ancestors\n   (no latency; multi-party lifecycle; target "
          f"median ≤ {scale.TARGET_BIG_CPU_MS:g} ms)\n")
        for name, v in big.items():
            w(f"   {name:<10}{v['median_ms']:>8.1f} ms median{v['max_ms']:>8.1f} ms max   "
              f"{_ok(v['median_ms'] <= scale.TARGET_BIG_CPU_MS)}\n")

    if r.get("rules"):
        print_rules(r["rules"], w)

    end = r.get("load_average_end") or []
    w(f"\nload average at the end: {', '.join(f'{x:.2f}' for x in end)}\n")


def _fit(runs: list[dict[str, Any]]) -> tuple[float, float]:
    """(fixed seconds, seconds per project): a line through the two largest runs; from one run,
    its steady pace (first to last project started) and the rest of its wall time as fixed."""
    runs = sorted(runs, key=lambda c: c["handled"])[-2:]
    if len(runs) == 2 and runs[1]["handled"] > runs[0]["handled"]:
        per = (runs[1]["wall"] - runs[0]["wall"]) / (runs[1]["handled"] - runs[0]["handled"])
        return max(0.0, runs[1]["wall"] - per * runs[1]["handled"]), per
    one = runs[-1]
    per = 1 / one["pace"] if one["pace"] else one["wall"] / max(1, one["handled"])
    return max(0.0, one["wall"] - per * one["handled"]), per


def print_cleanup(r: dict[str, Any], out: TextIO) -> None:
    """Section 7: cleanup of a fleet of projects with one expired activation each."""
    from webhook.service.cleanup import CLEANUP_DEADLINE, PROJECTS_PER_SECOND, WORKERS

    w = out.write
    runs: list[dict[str, Any]] = r["cleanup"]
    lat = r.get("cleanup_latency_ms", 200)
    w(f"\n7. Cleanup: N projects with one expired activation each, at {lat:g} ms per call "
      f"(time budget {CLEANUP_DEADLINE:g} s;\n   {WORKERS} workers; 'service' = POST "
      f"/tasks/cleanup to the service process, paced at {PROJECTS_PER_SECOND:g} projects/s = "
      "80% of\n   Resource Manager's default 600 reads and 600 writes a minute; 'unpaced' = "
      "the same cleaner in the\n   benchmark process without the pace, as a raised quota "
      "allows; 'proj/s' = projects / wall;\n   'pace' = projects started per second, first "
      "to last; 'max/min' = most calls in any 60 s)\n")
    w(f"{'config':<9}{'projects':>9}{'run':>4}{'wall':>9}{'proj/s':>8}{'pace':>7}{'removed':>9}{'left':>6}"
      f"{'search':>8}{'getIam':>8}{'setIam':>8}{'entries':>9}{'get max/min':>13}"
      f"{'set max/min':>13}{'RSS':>8}\n")
    for c in runs:
        calls = c["calls"]
        rss = c["rss_kib"].get("max_rss_kib")
        w(f"{c['config']:<9}{c['projects']:>9}{c['run']:>4}{c['wall']:>8.1f}s{c['rate']:>8.1f}{c['pace']:>7.1f}"
          f"{c['removed']:>9}{c['left']:>6}"
          f"{calls.get('Google GET /v1/{scope}:searchAllIamPolicies', 0):>8}"
          f"{calls.get('Google POST /v3/projects/{project}:getIamPolicy', 0):>8}"
          f"{calls.get('Google POST /v3/projects/{project}:setIamPolicy', 0):>8}"
          f"{calls.get('Google POST /v2/entries:write', 0):>9}"
          f"{c['per_minute']['getIamPolicy']:>13}{c['per_minute']['setIamPolicy']:>13}"
          f"{f'{rss / 1024:.0f} MB' if rss else '-':>8}\n")
    w("   every run: no errors, every removal has its audit entry (checked); a run stopped by its "
      "time budget\n   is followed by the next one, as the next cron run would be\n")
    for config in ("service", "unpaced"):
        if any(c["config"] == config and c["projects"] >= 5000 for c in runs):
            continue  # measured
        mine = [c for c in runs if c["config"] == config and c["run"] == 1 and not c["left"]]
        if not mine:
            continue
        fixed, per = _fit(mine)
        total = fixed + 5000 * per
        w(f"   EXTRAPOLATED, not measured — {config}, 5,000 projects: {fixed:.1f} s + 5,000 × "
          f"{per * 1000:.0f} ms = {total:.0f} s")
        if total <= CLEANUP_DEADLINE:
            w(f", within the {CLEANUP_DEADLINE:g} s budget (App Engine: 600 s)\n")
        else:
            first = int((CLEANUP_DEADLINE - fixed) / per)
            w(f" > the {CLEANUP_DEADLINE:g} s budget: the first run cleans about {first:,} and "
              f"leaves about {5000 - first:,}\n     for the next cron run (15 minutes later), "
              "which finishes them\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m benchmarks` and `jitaccess bench`."""
    args = parse_args(argv)
    report = measure(args, sys.stderr)
    print_report(report, sys.stdout)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2, default=str)
    return 0
