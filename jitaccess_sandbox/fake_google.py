"""A fake Google Cloud that speaks the REST wire format of the APIs the service uses.

One WSGI app serves every API on one port (their paths do not collide): Resource Manager v3,
Cloud Logging v2, Cloud Asset v1 and the Cloud Identity Groups API v1. State lives in a
`GoogleWorld`; calls are recorded and faults injected by a `Recorder`. Route tables come from
`fake_google_iam` (IAM policies, logging, policy search) and `fake_google_assets` (effective
policies, Policy Analyzer, groups).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from jitaccess_sandbox.faults import Call, Recorder, StartResponse, json_response
from jitaccess_sandbox.world import GoogleWorld

JSON = dict[str, Any]


@dataclass(frozen=True)
class FakeRequest:
    """What a route handler sees of a request."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    match: re.Match[str]


# A handler returns (status, JSON body).
RouteHandler = Callable[[FakeRequest], tuple[int, Any]]
Route = tuple[str, re.Pattern[str], RouteHandler]


class FakeGoogle:
    """The fake Google server: `FakeGoogle(world).wsgi` is the WSGI app."""

    def __init__(self, world: GoogleWorld | None = None) -> None:
        from jitaccess_sandbox import fake_google_assets, fake_google_iam

        self.world = world or GoogleWorld()
        self.recorder = Recorder()
        self.routes: list[Route] = [
            *fake_google_iam.routes(self.world),
            *fake_google_assets.routes(self.world),
        ]
        self.wsgi = self.recorder.wsgi(self._serve)

    def _serve(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"]
        path = environ.get("PATH_INFO", "")
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        headers = {
            k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")
        }
        query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        for route_method, pattern, handler in self.routes:
            if route_method != method:
                continue
            match = pattern.fullmatch(path)
            if match is None:
                continue
            status, payload = handler(FakeRequest(method, path, query, headers, body, match))
            return json_response(start_response, status, payload)
        self.recorder.record_unexpected(
            Call(method, path, environ.get("QUERY_STRING", ""), headers, body, 0.0)
        )
        return json_response(
            start_response,
            501,
            {"error": {"code": 501, "message": f"fake Google: no route for {method} {path}",
                       "status": "UNIMPLEMENTED"}},
        )


def google_error(status: int, message: str, grpc_status: str) -> tuple[int, JSON]:
    """An error body in Google's JSON error format."""
    return status, {"error": {"code": status, "message": message, "status": grpc_status}}
