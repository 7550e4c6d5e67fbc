"""Names the service shares with GitHub and with the repository it serves: spelled once here."""

from __future__ import annotations

#: The workflow's policy, read from the default branch at each event.
POLICY_PATH = "policy/jitaccess.yaml"

#: GitHub login -> Google identity, read from the default branch at each event.
IDENTITIES_PATH = "policy/identities.yaml"

#: The commit-status context branch protection requires.
STATUS_CONTEXT = "jit-access"

#: Longest commit-status description the service sends: GitHub refuses more than 140
#: characters, and descriptions are kept under that limit.
STATUS_DESCRIPTION_MAX = 139
