"""The `jitaccess` command: validate request files, run the sandbox, serve, clean up, benchmark."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence


def _validate(args: argparse.Namespace) -> int:
    from webhook.service.validate import run_validate

    return run_validate(args.paths or ["requests"], policy_path=args.policy)


def _sandbox(args: argparse.Namespace) -> int:
    from jitaccess_sandbox.play import run_sandbox

    return run_sandbox(serve=args.serve, port=args.port, verbose=args.verbose)


def _serve(args: argparse.Namespace) -> int:
    from webhook.adapters.secret_manager import resolve_secret
    from webhook.core.errors import ConfigError
    from webhook.service.app import create_app
    from webhook.service.config import Settings

    try:
        settings = Settings.from_env(os.environ, resolve_secret)
    except ConfigError as exc:
        print(f"jitaccess serve: {exc}", file=sys.stderr)
        return 2
    app = create_app(settings)
    print(f"serving {settings.repository} on http://{args.host}:{args.port}/webhook", flush=True)
    app.run(host=args.host, port=args.port, threaded=True)
    return 0


def _cleanup(args: argparse.Namespace) -> int:
    from webhook.adapters.secret_manager import resolve_secret
    from webhook.core.errors import ConfigError, JitAccessError
    from webhook.service.config import Settings
    from webhook.service.wiring import Service

    try:
        service = Service.from_settings(Settings.from_env(os.environ, resolve_secret))
        report = service.cleanup()
    except ConfigError as exc:
        print(f"jitaccess cleanup: {exc}", file=sys.stderr)
        return 2
    except JitAccessError as exc:
        print(f"jitaccess cleanup: {exc}", file=sys.stderr)
        return 1
    print(report.summary())
    return 1 if report.errors else 0


def _bench(args: argparse.Namespace) -> int:
    # The benchmarks live next to the package in the repository, not in it.
    if os.path.isdir("benchmarks") and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        run = importlib.import_module("benchmarks.run")
    except ImportError:
        print("jitaccess bench: run it from the repository root (benchmarks/ is not importable)",
              file=sys.stderr)
        return 2
    argv = ["--latency-ms", str(args.latency_ms), *(["--quick"] if args.quick else []),
            *(["--json", args.json] if args.json else [])]
    return int(run.main(argv))


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `jitaccess`."""
    parser = argparse.ArgumentParser(
        prog="jitaccess", description="Just-in-time Google Cloud access through GitHub PRs."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("validate", help="check request files offline against the policy")
    p.add_argument("paths", nargs="*", help="request files or directories (default: requests)")
    p.add_argument("--policy", default="policy/jitaccess.yaml", help="policy file")
    p.set_defaults(func=_validate)

    p = sub.add_parser("sandbox", help="play the full lifecycle against emulated GitHub and Google")
    p.add_argument("--serve", action="store_true", help="keep the emulated world running")
    p.add_argument("--port", type=int, default=8080, help="service port with --serve")
    p.add_argument("-v", "--verbose", action="store_true", help="show the service log")
    p.set_defaults(func=_sandbox)

    p = sub.add_parser("serve", help="run the webhook service locally (configured by env)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.set_defaults(func=_serve)

    p = sub.add_parser("cleanup", help="remove expired activations in the policy's scope")
    p.set_defaults(func=_cleanup)

    p = sub.add_parser("bench", help="benchmark against the emulated world (repository root)")
    p.add_argument("--latency-ms", type=float, default=50.0, help="latency per API call")
    p.add_argument("--quick", action="store_true", help="fewer rounds (CI smoke)")
    p.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    p.set_defaults(func=_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `jitaccess` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if getattr(args, "verbose", True) else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
