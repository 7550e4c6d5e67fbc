"""Declarative routing of GitHub deliveries: `@router.register("pull_request", action="closed")`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from webhook.core.delivery import Verdict


@dataclass(frozen=True)
class Delivery:
    """One verified webhook delivery."""

    event: str  # X-GitHub-Event
    delivery_id: str  # X-GitHub-Delivery
    payload: Mapping[str, Any]
    # What the rule book (`core.delivery.classify`) made of it, once the app has asked.
    verdict: Verdict | None = None

    @property
    def action(self) -> str | None:
        """The payload's `action`, when it is a string."""
        action = self.payload.get("action")
        return action if isinstance(action, str) else None


@dataclass(frozen=True)
class Outcome:
    """What handling a delivery did, for the HTTP answer and the log."""

    status: int
    message: str
    details: Mapping[str, Any] | None = None


Handler = Callable[[Delivery], Outcome]


class Router:
    """Maps (event, action) to handlers; a handler registered without action takes every action."""

    def __init__(self) -> None:
        self._routes: dict[tuple[str, str | None], Handler] = {}

    def register(self, event: str, action: str | None = None) -> Callable[[Handler], Handler]:
        """Decorator: handle `event` (with `action`, or any action when None)."""

        def decorate(handler: Handler) -> Handler:
            key = (event, action)
            if key in self._routes:
                raise ValueError(f"a handler for {event}/{action} is already registered")
            self._routes[key] = handler
            return handler

        return decorate

    def handler_for(self, delivery: Delivery) -> Handler | None:
        """The handler for a delivery, or None when nobody handles it."""
        return self._routes.get((delivery.event, delivery.action)) or self._routes.get(
            (delivery.event, None)
        )
