"""Smoke test of the cleanup benchmark: exact calls per project, never a time.

Each project with one expired activation costs one `getIamPolicy`, one audit entry and one
`setIamPolicy`; the search is one page for a small fleet. The benchmark's own checks (no errors,
no removal without its entry) run too.
"""

from __future__ import annotations

from benchmarks.cleanup import run_cleanup


def test_one_read_one_entry_one_write_per_project() -> None:
    (run,) = run_cleanup("unpaced", 12, latency=0.0)

    assert (run.removed, run.handled, run.left, run.errors) == (12, 12, 0, 0)
    assert (run.still_expired, run.unaudited) == (0, 0)
    assert run.calls == {
        "Google GET /v1/{scope}:searchAllIamPolicies": 1,
        "Google POST /v2/entries:write": 12,
        "Google POST /v3/projects/{project}:getIamPolicy": 12,
        "Google POST /v3/projects/{project}:setIamPolicy": 12,
    }
