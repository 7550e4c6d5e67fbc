"""Problem codes: the one list of what can be wrong with a request, a PR or the policy.

A code is compared across modules (the lifecycle acts on `service_error` and `wrong_directory`,
the status description on `no_identity_mapping`), so it is an enum member rather than a string
typed again at each place: a typo is then an AttributeError, not a rule that silently never
fires. Members are `StrEnum`s and equal their strings, so a `Problem.code` compares equal to the
string it always had, and the wire forms (comments, `jitaccess validate` output) are unchanged.
"""

from __future__ import annotations

import enum


class ProblemCode(enum.StrEnum):
    """Every code a `Problem` can carry; the value is the code as shown to people."""

    # -- the YAML loader (any file) -------------------------------------------------------------
    NOT_TEXT = "not_text"
    TOO_LARGE = "too_large"
    NOT_UTF8 = "not_utf8"
    CONTROL_CHARACTER = "control_character"
    YAML_SYNTAX = "yaml_syntax"
    MULTIPLE_DOCUMENTS = "multiple_documents"
    YAML_ALIAS = "yaml_alias"
    YAML_ANCHOR = "yaml_anchor"
    YAML_TAG = "yaml_tag"
    YAML_MERGE_KEY = "yaml_merge_key"
    TOO_DEEP = "too_deep"
    INVALID_KEY = "invalid_key"
    DUPLICATE_KEY = "duplicate_key"

    # -- shared by request files and the policy -------------------------------------------------
    EMPTY = "empty"
    NOT_A_MAPPING = "not_a_mapping"
    UNKNOWN_KEY = "unknown_key"
    MISSING_KEY = "missing_key"
    WRONG_TYPE = "wrong_type"
    INVALID_DURATION = "invalid_duration"

    # -- request files ----------------------------------------------------------------------------
    INVALID_PROJECT = "invalid_project"
    NO_ROLES = "no_roles"
    BASIC_ROLE = "basic_role"
    INVALID_ROLE = "invalid_role"
    FOREIGN_CUSTOM_ROLE = "foreign_custom_role"
    DUPLICATE_ROLE = "duplicate_role"
    TOO_MANY_ROLES = "too_many_roles"
    DURATION_TOO_SHORT = "duration_too_short"
    DURATION_TOO_LONG = "duration_too_long"
    BLANK_JUSTIFICATION = "blank_justification"
    JUSTIFICATION_INVALID_CHARACTER = "justification_invalid_character"
    JUSTIFICATION_TOO_LONG = "justification_too_long"
    JUSTIFICATION_MISMATCH = "justification_mismatch"
    REQUEST_MISSING = "request_missing"

    # -- the shape of a request PR ----------------------------------------------------------------
    INVALID_REQUEST_PATH = "invalid_request_path"
    WRONG_DIRECTORY = "wrong_directory"
    REQUEST_DELETED = "request_deleted"
    REQUEST_RENAMED = "request_renamed"
    REQUEST_MODIFIED = "request_modified"
    UNRELATED_CHANGE = "unrelated_change"
    SEVERAL_REQUESTS = "several_requests"
    INVALID_AUTHOR = "invalid_author"
    NO_REQUEST_FILE = "no_request_file"
    WRONG_BASE_BRANCH = "wrong_base_branch"
    #: GitHub listed only the first files of the diff: the rest cannot be judged.
    TOO_MANY_FILES = "too_many_files"

    # -- the policy and the identities ----------------------------------------------------------
    POLICY_MISSING = "policy_missing"
    IDENTITIES_MISSING = "identities_missing"
    OUT_OF_RANGE = "out_of_range"
    TOO_LONG = "too_long"
    INVALID_PATTERN = "invalid_pattern"
    INVALID_SOURCE = "invalid_source"
    INVALID_SCOPE = "invalid_scope"
    INVALID_DURATION_RANGE = "invalid_duration_range"
    INVALID_LOGIN = "invalid_login"
    INVALID_EMAIL = "invalid_email"
    DUPLICATE_LOGIN = "duplicate_login"
    INVALID_ID = "invalid_id"
    DUPLICATE_ID = "duplicate_id"
    INVALID_RULE = "invalid_rule"
    INVALID_MATCH = "invalid_match"
    INVALID_APPROVER = "invalid_approver"
    #: A warning of `jitaccess validate --policy`: an earlier rule always fits first.
    UNREACHABLE_RULE = "unreachable_rule"
    #: `break_glass: true` in a request while the policy does not enable break-glass.
    BREAK_GLASS_DISABLED = "break_glass_disabled"

    # -- the decision -----------------------------------------------------------------------------
    NO_IDENTITY_MAPPING = "no_identity_mapping"
    NOT_ELIGIBLE = "not_eligible"
    #: A qualified reviewer's "Request changes" blocks a role whose rule has `veto: true`.
    VETOED = "vetoed"
    #: The rules match folders, and the project's ancestry could not be read.
    ANCESTRY_UNKNOWN = "ancestry_unknown"
    ELIGIBILITY_UNKNOWN = "eligibility_unknown"
    #: More reviews than the service reads: approvals cannot be judged on a partial list.
    TOO_MANY_REVIEWS = "too_many_reviews"
    #: A Google lookup failed: nothing is decided yet, and a merge must be retried, not refused.
    SERVICE_ERROR = "service_error"
