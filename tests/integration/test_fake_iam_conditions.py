"""The fake IAM parses conditions as real IAM does on setIamPolicy, enough to refuse what does
not lex or balance (400 `INVALID_ARGUMENT`, the CEL parser's message), through the real client."""

from __future__ import annotations

import pytest
from google.api_core.exceptions import BadRequest
from google.iam.v1 import policy_pb2

from .google_fixtures import FakeGoogleHarness

RESOURCE = "projects/payments-dev"
WINDOW = (
    '(request.time >= timestamp("2040-01-01T10:00:00Z") && '
    'request.time < timestamp("2040-01-01T11:00:00Z"))'
)


def write(google: FakeGoogleHarness, expression: str) -> None:
    google.world.add_project("payments-dev")
    policy = google.clients.projects.get_iam_policy(
        request={"resource": RESOURCE, "options": {"requested_policy_version": 3}}
    )
    binding = policy_pb2.Binding(role="roles/cloudsql.client", members=["user:a@example.com"])
    binding.condition.title = "JIT access activation"
    binding.condition.expression = expression
    google.clients.projects.set_iam_policy(
        request={
            "resource": RESOURCE,
            "policy": policy_pb2.Policy(version=3, etag=policy.etag, bindings=[binding]),
        }
    )


@pytest.mark.parametrize(
    ("expression", "complaint"),
    [
        # a comment swallowed the parenthesis that closes the resource condition
        (f'{WINDOW} && (resource.name == "x" // note)', "Syntax error: missing ')' at '<EOF>'"),
        (f'{WINDOW} && resource.name == "x', "token recognition error"),
        (f"{WINDOW} && (x]", "mismatched input ']' expecting ')'"),
        (f'{WINDOW} && x == "line\nbreak"', "token recognition error"),
    ],
)
def test_a_condition_that_does_not_parse_is_refused(
    fake_google: FakeGoogleHarness, expression: str, complaint: str
) -> None:
    with pytest.raises(BadRequest, match="Invalid condition expression") as refused:
        write(fake_google, expression)
    assert complaint in str(refused.value.message)
    assert fake_google.world.bindings(RESOURCE) == []


@pytest.mark.parametrize(
    "expression",
    [
        f'{WINDOW} && (resource.name.startsWith("//cloudsql.googleapis.com/")) // note',
        f'{WINDOW} && (resource.name == "x" // note\n)',
        f"{WINDOW} && (x == '\\'' || y == r\"\\\" || z == \"\"\"a\n) // b\"\"\")",
    ],
)
def test_comments_and_strings_are_read_as_cel_reads_them(
    fake_google: FakeGoogleHarness, expression: str
) -> None:
    write(fake_google, expression)
    [binding] = fake_google.world.bindings(RESOURCE)
    assert binding["condition"]["expression"] == expression
