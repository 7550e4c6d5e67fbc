"""The state behind the fake Google server: a resource hierarchy, IAM policies, groups and logs.

Policies are kept in their JSON wire form (`{"version", "etag", "bindings": [{"role",
"members", "condition": {"title", "description", "expression"}}]}`) so the fake endpoints can
return them as they are. All access goes through the methods, which hold one lock.
"""

from __future__ import annotations

import base64
import copy
import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

JSON = dict[str, Any]


def _copy_json(value: Any) -> Any:
    """A deep copy of JSON data (dicts, lists, scalars): what `copy.deepcopy` does for it, in a
    fraction of the time (a large project's policy holds 1,500 bindings)."""
    if isinstance(value, dict):
        return {k: _copy_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy_json(v) for v in value]
    return value


class EtagMismatch(Exception):
    """setIamPolicy was given an etag that is not the policy's current one."""


@dataclass
class GoogleWorld:
    """An organization with folders and projects, their IAM policies, groups and written logs."""

    organization: str = "organizations/123456789012"
    parents: dict[str, str] = field(default_factory=dict)  # child resource -> parent resource
    project_numbers: dict[str, str] = field(default_factory=dict)  # project id -> number
    policies: dict[str, JSON] = field(default_factory=dict)  # resource -> policy (wire form)
    groups: dict[str, set[str]] = field(default_factory=dict)  # group email -> direct members
    group_ids: dict[str, str] = field(default_factory=dict)  # group email -> "groups/ID"
    #: False: the service account lacks the Groups Reader admin role, and Cloud Identity answers
    #: every group call with the 403 it also gives for a group that does not exist.
    groups_reader: bool = True
    log_entries: list[JSON] = field(default_factory=list)  # entries as written (wire form)
    log_received: list[datetime] = field(default_factory=list)  # when each entry was received
    # The fake's clock (receive times of log entries); the emulator shares its own.
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    _etags: itertools.count = field(default_factory=lambda: itertools.count(1))  # type: ignore[type-arg]
    _lock: threading.RLock = field(default_factory=threading.RLock)

    # -- hierarchy -----------------------------------------------------------------------------

    def add_folder(self, folder: str, parent: str | None = None) -> str:
        """Add `folders/N` under `parent` (default: the organization)."""
        with self._lock:
            self.parents[folder] = parent or self.organization
            return folder

    def add_project(self, project_id: str, parent: str | None = None, number: str = "") -> str:
        """Add `projects/ID` under `parent` (default: the organization); returns the resource."""
        with self._lock:
            resource = f"projects/{project_id}"
            self.parents[resource] = parent or self.organization
            count = len(self.project_numbers)
            self.project_numbers[project_id] = number or str(100000000000 + count)
            return resource

    def exists(self, resource: str) -> bool:
        """Is the resource (organization, folder or project) known?"""
        return resource == self.organization or resource in self.parents

    def ancestry(self, resource: str) -> list[str]:
        """The resource followed by its ancestors up to the organization."""
        with self._lock:
            chain = [resource]
            while chain[-1] in self.parents:
                chain.append(self.parents[chain[-1]])
            return chain

    def projects(self) -> list[str]:
        """Every project resource (`projects/ID`)."""
        with self._lock:
            return sorted(r for r in self.parents if r.startswith("projects/"))

    # -- IAM -----------------------------------------------------------------------------------

    def _new_etag(self) -> str:
        return base64.b64encode(f"etag-{next(self._etags)}".encode()).decode()

    def get_policy(self, resource: str) -> JSON:
        """A copy of the resource's policy (an empty version-1 policy with an etag if none)."""
        with self._lock:
            if resource not in self.policies:
                self.policies[resource] = {"version": 1, "etag": self._new_etag(), "bindings": []}
            copied: JSON = _copy_json(self.policies[resource])
            return copied

    def set_policy(self, resource: str, policy: JSON) -> JSON:
        """Replace the policy if `policy["etag"]` is current (or absent); returns the new policy."""
        with self._lock:
            current = self.policies.get(resource) or self.get_policy(resource)
            etag = policy.get("etag")
            if etag and etag != current["etag"]:
                raise EtagMismatch(resource)
            stored = {
                "version": policy.get("version", 1),
                "etag": self._new_etag(),
                "bindings": _copy_json(policy.get("bindings", [])),
            }
            self.policies[resource] = stored
            answer: JSON = _copy_json(stored)
            return answer

    def add_binding(
        self,
        resource: str,
        role: str,
        member: str,
        expression: str | None = None,
        title: str = "",
        description: str = "",
    ) -> None:
        """Add a binding (with a condition when `expression` is given) to a resource's policy."""
        with self._lock:
            policy = self.get_policy(resource)
            binding: JSON = {"role": role, "members": [member]}
            if expression is not None:
                binding["condition"] = {"expression": expression}
                if title:
                    binding["condition"]["title"] = title
                if description:
                    binding["condition"]["description"] = description
                policy["version"] = 3
            policy["bindings"].append(binding)
            policy.pop("etag")
            self.set_policy(resource, policy)

    def bindings(self, resource: str) -> list[JSON]:
        """A copy of the resource's bindings."""
        return list(self.get_policy(resource)["bindings"])

    # -- groups --------------------------------------------------------------------------------

    def add_group(self, email: str, members: list[str] | tuple[str, ...] = ()) -> str:
        """Add a group with direct members (users or groups, by email); returns `groups/ID`."""
        with self._lock:
            email = email.lower()
            self.groups.setdefault(email, set()).update(m.lower() for m in members)
            if email not in self.group_ids:
                self.group_ids[email] = f"groups/0{len(self.group_ids) + 1:05d}abc"
            return self.group_ids[email]

    def group_by_id(self, group_id: str) -> str | None:
        """The email of `groups/ID`, or None."""
        with self._lock:
            for email, gid in self.group_ids.items():
                if gid == group_id:
                    return email
            return None

    def _reachable(self, group: str, *, transitive: bool) -> list[str]:
        """The group and, when `transitive`, every group nested in it (each once)."""
        seen: list[str] = []
        todo = [group.lower()]
        while todo:
            g = todo.pop()
            if g in seen:
                continue
            seen.append(g)
            if transitive:
                todo.extend(m for m in self.groups.get(g, set()) if m in self.groups)
        return seen

    def is_member(self, group: str, member: str, *, transitive: bool) -> bool:
        """Is `member` in `group`, directly or (when `transitive`) through nested groups?"""
        with self._lock:
            return any(
                member.lower() in self.groups.get(g, set())
                for g in self._reachable(group, transitive=transitive)
            )

    # -- logging -------------------------------------------------------------------------------

    def append_logs(self, entries: list[JSON]) -> None:
        """Record written log entries (and when they were received, by this world's clock)."""
        with self._lock:
            received = self.now()
            self.log_entries.extend(copy.deepcopy(entries))
            self.log_received.extend(received for _ in entries)

    def logs(self, log_id: str = "jitaccess") -> list[JSON]:
        """Entries of `.../logs/<log_id>` as a query shows them.

        Cloud Logging removes entries of one log with the same `insertId` and `timestamp` from
        query results (only the first is shown); exports get every copy: `exported_logs`.
        """
        seen: set[tuple[str, str]] = set()
        shown: list[JSON] = []
        for entry in self.exported_logs(log_id):
            insert_id, timestamp = entry.get("insertId"), entry.get("timestamp")
            if isinstance(insert_id, str) and isinstance(timestamp, str):
                if (insert_id, timestamp) in seen:
                    continue
                seen.add((insert_id, timestamp))
            shown.append(entry)
        return shown

    def now(self) -> datetime:
        """The current time of this world, UTC."""
        return self.clock().astimezone(UTC)

    def received_logs(self) -> list[tuple[JSON, datetime]]:
        """Every entry written to any log with its receive time, duplicates included, in the
        order written."""
        with self._lock:
            return list(zip(copy.deepcopy(self.log_entries), self.log_received, strict=True))

    def exported_logs(self, log_id: str = "jitaccess") -> list[JSON]:
        """Every entry written to `.../logs/<log_id>`, duplicates included (what a sink gets)."""
        with self._lock:
            return [e for e in self.log_entries if e.get("logName", "").endswith(f"/logs/{log_id}")]
