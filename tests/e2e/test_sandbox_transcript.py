"""`jitaccess sandbox` plays every scene, the after-the-merge one included, with all checks met."""

from __future__ import annotations

import io

from jitaccess_sandbox.play import run_sandbox


def test_sandbox_shows_expiry_and_an_orphan() -> None:
    out = io.StringIO()
    assert run_sandbox(out=out) == 0, out.getvalue()
    text = out.getvalue()
    assert "6. After the merge: expiry comments and reconciliation" in text
    assert "7. Policy for an organization: a rule, a veto, break-glass" in text
    assert "✔ the activation is an ALERT with label break_glass" in text
    assert "<!-- jit-access:expired " in text
    assert "✔ eve's hand-made binding is reported as orphaned" in text
    assert "✘" not in text
