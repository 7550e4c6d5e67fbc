"""The Flask application: webhook deliveries, health, cleanup and warmup.

This is the one place where errors become HTTP answers. Handlers and the lifecycle raise
`JitAccessError`s; anything else is a bug, logged with its trace and answered 500 without details.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Mapping
from typing import IO, Any

from flask import Flask, Response, jsonify, request

from webhook.core.delivery import Reason, classify
from webhook.core.errors import ConfigError, JitAccessError
from webhook.service.config import Settings
from webhook.service.handlers import MalformedPayload, build_router
from webhook.service.routing import Delivery, Outcome
from webhook.service.wiring import Service

log = logging.getLogger("jitaccess")

MAX_BODY = 1024 * 1024  # GitHub caps payloads at 25 MB; ours never need more than 1 MiB
SIGNATURE_PREFIX = "sha256="


def sign(secret: str, body: bytes) -> str:
    """The `X-Hub-Signature-256` value GitHub sends for `body`."""
    return SIGNATURE_PREFIX + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature_valid(secret: str, body: bytes, header: str | None) -> bool:
    """Constant-time check of an `X-Hub-Signature-256` header against the raw body."""
    if not header or not header.startswith(SIGNATURE_PREFIX):
        return False
    return hmac.compare_digest(sign(secret, body).encode(), header.strip().encode())


def _read_at_most(stream: IO[bytes], limit: int) -> bytes:
    """Up to `limit` bytes of a body. One `read` of a raw stream may return less than asked
    (a chunked body comes a chunk at a time), so read until the end or the limit."""
    parts: list[bytes] = []
    size = 0
    while size < limit:
        chunk = stream.read(limit - size)
        if not chunk:
            break
        parts.append(chunk)
        size += len(chunk)
    return b"".join(parts)


class _ServiceFacts:
    """The rule book's facts about one service instance, each looked up when the rules first
    read it (the GitHub adapter caches both lookups)."""

    def __init__(self, service: Service) -> None:
        self._service = service

    @property
    def repository(self) -> str:
        return self._service.settings.repository

    @property
    def installation_id(self) -> int | None:
        return self._service.github.installation_id()

    @property
    def own_login(self) -> str | None:
        return self._service.own_login()

    @property
    def app_id(self) -> int | None:
        return self._service.settings.app_id if self._service.settings.app_private_key else None


def _answer(status: int, message: str, **extra: Any) -> tuple[Response, int]:
    return jsonify({"message": message, **extra}), status


def create_app(settings: Settings | None = None, *, service: Service | None = None) -> Flask:
    """Build the WSGI app from one settings object (read from the environment when omitted)."""
    if settings is None:
        import os

        from webhook.adapters.secret_manager import resolve_secret

        settings = Settings.from_env(os.environ, resolve_secret)
    service = service or Service.from_settings(settings)
    router = build_router(service.lifecycle)
    facts = _ServiceFacts(service)
    app = Flask("webhook")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    app.extensions["jitaccess"] = service

    @app.post("/webhook")
    def webhook() -> tuple[Response, int]:
        if request.content_length is not None and request.content_length > MAX_BODY:
            return _answer(413, "payload larger than 1 MiB")
        body = _read_at_most(request.stream, MAX_BODY + 1)
        if len(body) > MAX_BODY:
            return _answer(413, "payload larger than 1 MiB")
        if not signature_valid(
            settings.webhook_secret, body, request.headers.get("X-Hub-Signature-256")
        ):
            log.warning("rejected delivery %r: missing or wrong signature",
                        request.headers.get("X-GitHub-Delivery", "?")[:100])
            return _answer(401, "missing or invalid X-Hub-Signature-256")
        event = request.headers.get("X-GitHub-Event", "")
        delivery_id = request.headers.get("X-GitHub-Delivery", "")[:100]
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return _answer(400, "body is not JSON")
        except RecursionError:
            return _answer(400, "body is nested too deeply")
        if not isinstance(payload, Mapping):
            return _answer(400, "body is not a JSON object")
        delivery = Delivery(event=event, delivery_id=delivery_id, payload=payload)
        started = time.monotonic()
        outcome = _dispatch(delivery)
        log.info(
            "delivery %s %s/%s -> %s %s (%.0f ms)", delivery_id, event, delivery.action,
            outcome.status, outcome.message, (time.monotonic() - started) * 1000,
        )
        return _answer(outcome.status, outcome.message, **(dict(outcome.details or {})))

    def _dispatch(delivery: Delivery) -> Outcome:
        """Filter, route and run a delivery; the one place errors become HTTP answers."""
        try:
            return _route(delivery)
        except MalformedPayload as exc:
            return Outcome(400, str(exc))
        except JitAccessError as exc:
            log.error("delivery %s failed: %s", delivery.delivery_id, exc)
            return Outcome(exc.http_status, str(exc))
        except Exception:  # a bug: log the trace, never show it
            log.exception("delivery %s crashed", delivery.delivery_id)
            return Outcome(500, "internal error; see the service log")

    def _route(delivery: Delivery) -> Outcome:
        verdict = classify(delivery.event, delivery.payload, facts)
        if (
            verdict.reason is Reason.FOREIGN_INSTALLATION
            and verdict.installation is not None
            and service.installation_replaced(verdict.installation)
        ):
            # The App was reinstalled: the delivery is ours after all.
            verdict = classify(delivery.event, delivery.payload, facts)
        handler = router.handler_for(delivery)
        if verdict.ignored and (verdict.reason is not Reason.UNHANDLED or handler is None):
            return Outcome(200, verdict.message)
        if handler is None:  # a verdict to act on that nobody handles: a bug in the table
            raise LookupError(f"no handler for {delivery.event}/{delivery.action}")
        # An event the rule book has no rule for yet may still have a registered handler.
        return handler(dataclasses.replace(delivery, verdict=verdict))

    @app.get("/health")
    def health() -> tuple[Response, int]:
        return _answer(200, "ok", repository=settings.repository)

    @app.route("/tasks/cleanup", methods=["GET", "POST"])
    def cleanup() -> tuple[Response, int]:
        from_cron = settings.on_app_engine and request.headers.get("X-Appengine-Cron") == "true"
        scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
        by_token = (
            settings.cleanup_token is not None
            and scheme.lower() == "bearer"  # auth schemes are case-insensitive (RFC 9110)
            and hmac.compare_digest(presented.strip().encode(), settings.cleanup_token.encode())
        )
        if not (from_cron or by_token):
            return _answer(403, "cleanup is for App Engine cron or a CLEANUP_TOKEN bearer")
        try:
            report = service.cleanup()
        except JitAccessError as exc:
            log.error("cleanup failed: %s", exc)
            return _answer(exc.http_status, str(exc))
        return _answer(200, report.summary(), **report.as_json())

    @app.get("/_ah/warmup")
    def warmup() -> tuple[Response, int]:
        started = time.monotonic()
        try:
            service.warmup()
        except ConfigError as exc:  # e.g. GITHUB_TOKEN is an App installation token
            log.error("warmup: the configuration is unusable: %s", exc)
            return _answer(500, str(exc))
        return _answer(200, "warm", ms=round((time.monotonic() - started) * 1000))

    @app.errorhandler(413)
    def too_large(_: Exception) -> tuple[Response, int]:
        return _answer(413, "payload larger than 1 MiB")

    return app
