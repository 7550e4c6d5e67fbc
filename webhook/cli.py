"""The `jitaccess` command: validate request files, run the sandbox, serve, clean up, list the
live activations."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from webhook.core.names import IDENTITIES_PATH, POLICY_PATH

#: Where a clone keeps the sandbox: next to the webhook package (an editable install imports
#: webhook from the clone). The fakes are never in the wheel, so an installed copy has none.
CHECKOUT = Path(__file__).resolve().parent.parent
#: How to get everything `jitaccess sandbox` needs, run inside a clone of the repository.
SANDBOX_INSTALL = "pip install -e '.[sandbox]'"


def _validate(args: argparse.Namespace) -> int:
    from webhook.service.validate import run_validate

    return run_validate(
        args.paths or ["requests"], policy_path=args.policy, identities_path=args.identities
    )


def _pin(args: argparse.Namespace) -> int:
    from webhook.service.pin_identities import run_pin

    return run_pin(args.file, missing_only=args.missing_only)


def _load_sandbox() -> ModuleType:
    if (CHECKOUT / "jitaccess_sandbox" / "__init__.py").is_file() and (
        str(CHECKOUT) not in sys.path
    ):
        sys.path.append(str(CHECKOUT))  # last: nothing installed is shadowed
    return importlib.import_module("jitaccess_sandbox.play")


def _sandbox(args: argparse.Namespace) -> int:
    try:
        play = _load_sandbox()
    except ModuleNotFoundError as exc:
        missing = exc.name or "?"
        if missing.partition(".")[0] == "webhook":
            raise  # the service itself is broken: not an installation question
        if missing.partition(".")[0] == "jitaccess_sandbox":
            problem = (
                "the sandbox's fake servers are not part of the installed package; "
                "they run from a clone of the repository"
            )
        else:
            problem = f"the sandbox needs the Python module {missing!r}, which is not installed"
        print(
            f"jitaccess sandbox: {problem}. In a clone of the repository, run "
            f"`{SANDBOX_INSTALL}`, then `jitaccess sandbox` again.",
            file=sys.stderr,
        )
        return 2
    return int(play.run_sandbox(serve=args.serve, port=args.port, verbose=args.verbose))


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
    for line in report.details():
        print(f"  {line}")
    return 1 if report.errors else 0


def _active(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from google.auth.exceptions import DefaultCredentialsError

    from webhook.core.errors import ConfigError, JitAccessError
    from webhook.service.active import NO_CREDENTIALS, as_text, dumps, find_active, setup_from

    try:
        setup = setup_from(os.environ, args.policy, args.repository)
    except ConfigError as exc:
        print(f"jitaccess active: {exc}", file=sys.stderr)
        return 2
    now = datetime.now(UTC)
    try:
        findings = find_active(setup, now, project=args.project)
    except DefaultCredentialsError:
        print(f"jitaccess active: {NO_CREDENTIALS}", file=sys.stderr)
        return 2
    except JitAccessError as exc:
        print(f"jitaccess active: {exc}", file=sys.stderr)
        return 1
    print(dumps(findings, now) if args.json else "\n".join(as_text(findings, now)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `jitaccess`."""
    parser = argparse.ArgumentParser(
        prog="jitaccess", description="Just-in-time Google Cloud access through GitHub PRs."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("validate", help="check request files offline against the policy")
    p.add_argument("paths", nargs="*", help="request files or directories (default: requests)")
    p.add_argument("--policy", default=POLICY_PATH, help="policy file (checked too)")
    p.add_argument("--identities", default=IDENTITIES_PATH,
                   help="identities file (checked too)")
    p.set_defaults(func=_validate)

    p = sub.add_parser("identities", help="maintain policy/identities.yaml")
    ids = p.add_subparsers(dest="action", required=True)
    p = ids.add_parser(
        "pin",
        help="fill in each entry's numeric GitHub id (GET /users/{login}; needs GITHUB_TOKEN)",
    )
    p.add_argument("--file", default=IDENTITIES_PATH, help="identities file")
    p.add_argument("--missing-only", action="store_true",
                   help="look up only entries without an id (one API call per entry)")
    p.set_defaults(func=_pin)

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

    p = sub.add_parser(
        "active", help="list live activations and whether the audit log accounts for them"
    )
    p.add_argument("--project", help="only this project (read from its IAM policy)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--policy", default=POLICY_PATH, help="policy file (for the scope)")
    p.add_argument("--repository", help="OWNER/NAME (default: GITHUB_REPOSITORY)")
    p.set_defaults(func=_active, verbose=False)

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
