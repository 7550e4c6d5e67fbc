"""`jitaccess active`: the live activations in scope, and whether the audit log accounts for them.

Run by an operator with Application Default Credentials (`gcloud auth application-default
login`) from a checkout of the repository: the scope comes from the local policy file, the
endpoints and the audit project from the same environment variables as the service. The bindings
come from Cloud Asset's `searchAllIamPolicies`, as cleanup finds them (eventually consistent:
minutes behind IAM), or with `--project` from that project's IAM policy; the audit log is read
once (`AuditLog.activation_entries`), whatever the number of bindings. Nothing is written.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from webhook.adapters.google_endpoints import GoogleEndpoints
from webhook.core.durations import utc_timestamp
from webhook.core.errors import ConfigError
from webhook.core.model import Binding
from webhook.core.policy import parse_policy
from webhook.core.reconcile import (
    LiveActivation,
    bare,
    live_activations,
    needs_audit,
    reconcile,
)

NO_CREDENTIALS = (
    "no Application Default Credentials: run `gcloud auth application-default login`"
)
_ENDPOINT_VARIABLES = (
    ("RESOURCE_MANAGER_ENDPOINT", "resource_manager"),
    ("CLOUD_ASSET_ENDPOINT", "cloud_asset"),
    ("CLOUD_LOGGING_ENDPOINT", "cloud_logging"),
    ("CLOUD_IDENTITY_ENDPOINT", "cloud_identity"),
)
#: What the audit column says for each state of `webhook.core.reconcile`.
AUDIT_WORDS = {
    "accounted": "audited",
    "orphaned": "NOT AUDITED",
    "foreign": "foreign",
    "young": "too recent to judge",
}


@dataclass(frozen=True)
class ActiveSetup:
    """What `jitaccess active` needs from the environment and the checkout."""

    scope: str
    repository: str
    audit_project: str
    endpoints: GoogleEndpoints


def setup_from(env: Mapping[str, str], policy_path: str, repository: str | None) -> ActiveSetup:
    """The setup, or ConfigError naming what is missing or malformed."""
    path = Path(policy_path)
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the policy file {policy_path}: {exc.strerror}") from None
    policy, problems = parse_policy(text)
    if policy is None or problems:
        raise ConfigError(
            f"{policy_path} is invalid: " + "; ".join(p.message for p in problems)
        )
    repo = repository or env.get("GITHUB_REPOSITORY", "").strip()
    if not repo or repo.count("/") != 1:
        raise ConfigError("name the repository with --repository OWNER/NAME or GITHUB_REPOSITORY")
    audit_project = env.get("GOOGLE_CLOUD_PROJECT", "").strip()
    if not audit_project:
        raise ConfigError("GOOGLE_CLOUD_PROJECT (the project holding the audit log) is not set")
    endpoints: dict[str, str | None] = {}
    for name, key in _ENDPOINT_VARIABLES:
        value = env.get(name, "").strip() or None
        if value is not None and not value.startswith(("http://", "https://")):
            raise ConfigError(f"{name} must be an http(s) URL, got {value!r}")
        endpoints[key] = value.rstrip("/") if value else None
    return ActiveSetup(policy.scope, repo, audit_project, GoogleEndpoints(**endpoints))


def find_active(
    setup: ActiveSetup, now: datetime, *, project: str | None = None
) -> list[LiveActivation]:
    """The live activations in scope (or in `project`), judged against the audit log, ending
    soonest first. Raises DefaultCredentialsError without credentials, JitAccessError when a
    call fails."""
    from webhook.adapters.cloud_logging import AuditLog
    from webhook.adapters.google_clients import GoogleClients
    from webhook.adapters.iam import Activator
    from webhook.service.cleanup import Cleaner

    clients = GoogleClients(setup.endpoints, setup.audit_project)
    # Credentials first: the client libraries would report their absence as a failed call.
    for endpoint in (setup.endpoints.resource_manager, setup.endpoints.cloud_asset,
                     setup.endpoints.cloud_logging):
        clients.credentials_for(endpoint)
    audit = AuditLog(clients)
    activator = Activator(clients)
    found: dict[str, Sequence[Binding]]
    if project is not None:
        found = {project: activator.activations_in(project)}
    else:
        found = dict(Cleaner(clients, audit, activator).activations_in(setup.scope))
    live = live_activations(
        ((p, b) for p, bindings in found.items() for b in bindings), now
    )
    since = needs_audit(live, setup.repository, now)
    entries = audit.activation_entries(since=since) if since is not None else ()
    findings = reconcile(live, entries, setup.repository, now)
    return sorted(findings, key=lambda f: (f.end, f.project, f.binding.role, f.binding.member))


def _left(finding: LiveActivation, now: datetime) -> str:
    if finding.start > now:
        return f"starts {utc_timestamp(finding.start)}"
    minutes = int((finding.end - now) / timedelta(minutes=1))
    hours, minutes = divmod(max(minutes, 0), 60)
    return f"{hours}h{minutes:02d}m left" if hours else f"{minutes}m left"


def as_json(findings: Sequence[LiveActivation], now: datetime) -> list[dict[str, Any]]:
    """The findings as JSON-ready data, one object per binding."""
    out: list[dict[str, Any]] = []
    for f in findings:
        item: dict[str, Any] = f.as_json()
        item["seconds_left"] = max(0, int((f.end - now).total_seconds()))
        item["pull_request_url"] = f.pull_request_url or None
        item["approvers"] = list(f.approvers)
        item["audit"] = f.state
        item.setdefault("reason", "")
        out.append(item)
    return out


def as_text(findings: Sequence[LiveActivation], now: datetime) -> list[str]:
    """One line per binding: member, role, project, end (time left), PR, approvers, audit."""
    if not findings:
        return ["no live activations"]
    lines = []
    for f in findings:
        approvers = ", ".join(f.approvers) if f.approvers else "self-approved"
        pr = f.pull_request_url or (str(f.reference) if f.reference else "no pull request")
        audit = AUDIT_WORDS.get(f.state, f.state)
        if f.reason and f.state != "young":
            audit += f" ({f.reason})"
        lines.append(
            f"{bare(f.binding.member)}  {f.binding.role}  {f.project}  "
            f"until {utc_timestamp(f.end)} ({_left(f, now)})  {pr}  "
            f"approved by: {approvers}  audit: {audit}"
        )
    orphans = sum(1 for f in findings if f.state == "orphaned")
    lines.append(
        f"{len(findings)} live activation(s)"
        + (f", {orphans} not accounted for by the audit log" if orphans else "")
    )
    return lines


def dumps(findings: Sequence[LiveActivation], now: datetime) -> str:
    """The `--json` output."""
    return json.dumps(as_json(findings, now), indent=2)
