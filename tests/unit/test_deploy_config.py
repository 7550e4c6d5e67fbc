"""The App Engine deployment files agree with the service (README: service) and keep secrets out."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pathspec
import pytest
import yaml

from webhook.adapters.secret_manager import resolver
from webhook.core.errors import ConfigError
from webhook.service.app import create_app
from webhook.service.config import SECRET_VARIABLES, VARIABLES, Settings

ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINT = ["gunicorn", "-b", ":$PORT", "webhook.main:app"]
#: Route -> methods the service must accept on it (README: service).
ROUTES = {
    "/webhook": ("POST",),
    "/health": ("GET",),
    "/tasks/cleanup": ("GET", "POST"),
    "/_ah/warmup": ("GET",),
}
# A reference with placeholders allowed; the strict grammar is tested with adapters.secret_manager.
SM_REFERENCE = re.compile(r"^sm://projects/[^/\s]+/secrets/[^/\s]+(?:/versions/[^/\s]+)?$")


def load(name: str) -> Any:
    return yaml.safe_load((ROOT / name).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def app_yaml() -> dict[str, Any]:
    data = load("app.yaml")
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def cron_yaml() -> dict[str, Any]:
    data = load("cron.yaml")
    assert isinstance(data, dict)
    return data


# --------------------------------------------------------------------------------------------
# app.yaml


def test_runtime_is_a_current_python3(app_yaml: dict[str, Any]) -> None:
    match = re.fullmatch(r"python3(\d+)", app_yaml["runtime"])
    assert match is not None, app_yaml["runtime"]
    assert int(match.group(1)) >= 12  # requires-python >= 3.11; older runtimes are out of support


def test_entrypoint_is_the_spec_command_followed_only_by_flags(app_yaml: dict[str, Any]) -> None:
    words = shlex.split(app_yaml["entrypoint"])
    assert words[:4] == ENTRYPOINT
    flags: dict[str, str] = {}
    rest = words[4:]
    while rest:
        word = rest.pop(0)
        assert word.startswith("--"), f"not a flag: {word!r}"
        if "=" in word:
            key, value = word.split("=", 1)
        else:
            assert rest and not rest[0].startswith("--"), f"flag without value: {word}"
            key, value = word, rest.pop(0)
        flags[key] = value
    assert set(flags) <= {"--workers", "--threads", "--timeout", "--graceful-timeout"}
    assert int(flags.get("--workers", "1")) == 1  # one process per small instance
    assert int(flags["--threads"]) >= 2  # concurrency through threads (I/O bound)
    scaling = app_yaml["automatic_scaling"]
    assert scaling["max_concurrent_requests"] == int(flags["--threads"])


def test_scaling_and_instance_class(app_yaml: dict[str, Any]) -> None:
    assert app_yaml["instance_class"] in {"F1", "F2", "F4", "F4_1G"}  # automatic scaling classes
    scaling = app_yaml["automatic_scaling"]
    assert isinstance(scaling["min_instances"], int) and scaling["min_instances"] >= 0
    assert scaling["max_instances"] >= max(1, scaling["min_instances"])


def test_warmup_requests_are_enabled(app_yaml: dict[str, Any]) -> None:
    assert "warmup" in app_yaml["inbound_services"]


def test_env_variables_are_known_and_strings(app_yaml: dict[str, Any]) -> None:
    env = app_yaml["env_variables"]
    assert set(env) <= set(VARIABLES), set(env) - set(VARIABLES)
    # App Engine wants strings; an unquoted number would silently become an int in YAML.
    assert all(isinstance(value, str) for value in env.values()), env


def test_required_variables_are_present(app_yaml: dict[str, Any]) -> None:
    env = app_yaml["env_variables"]
    assert {"GITHUB_WEBHOOK_SECRET", "GITHUB_REPOSITORY"} <= set(env)
    has_app = {"GITHUB_APP_ID", "GITHUB_APP_PRIVATE_KEY"} <= set(env)
    assert has_app or "GITHUB_TOKEN" in env
    # GOOGLE_CLOUD_PROJECT is required by Settings but set by the App Engine runtime itself.


def test_secrets_are_only_secret_manager_references(app_yaml: dict[str, Any]) -> None:
    env = app_yaml["env_variables"]
    for name in SECRET_VARIABLES:
        if name in env:
            assert SM_REFERENCE.match(env[name]), f"{name} must be an sm:// reference"
    for name, value in env.items():
        if name not in SECRET_VARIABLES:
            assert not value.startswith("sm://"), f"{name} cannot be resolved from Secret Manager"


def test_placeholders_fail_validation_until_replaced(app_yaml: dict[str, Any]) -> None:
    env = dict(app_yaml["env_variables"], GOOGLE_CLOUD_PROJECT="jit-ops")
    # Malformed references are refused before any call, so no server is needed here.
    with pytest.raises(ConfigError) as exc:
        Settings.from_env(env, resolve_secret=resolver(endpoint="http://127.0.0.1:9"))
    message = str(exc.value)
    assert "GITHUB_REPOSITORY must look like owner/name" in message
    assert "GITHUB_APP_ID must be a number" in message
    assert "GITHUB_WEBHOOK_SECRET: malformed Secret Manager reference" in message


def test_handlers_cover_exactly_the_routes_over_https(app_yaml: dict[str, Any]) -> None:
    handlers = app_yaml["handlers"]
    assert [h["url"] for h in handlers] == list(ROUTES)
    for handler in handlers:
        assert handler == {"url": handler["url"], "script": "auto", "secure": "always"}


# --------------------------------------------------------------------------------------------
# cron.yaml and .gcloudignore


def test_cron_calls_cleanup_every_15_minutes(cron_yaml: dict[str, Any]) -> None:
    jobs = cron_yaml["cron"]
    assert len(jobs) == 1
    assert jobs[0]["url"] == "/tasks/cleanup"
    assert jobs[0]["schedule"] == "every 15 minutes"
    assert jobs[0]["url"] in ROUTES


def upload_set(root: Path) -> list[str]:
    """What `gcloud app deploy` uploads from `root`: the repository's files (tracked, or new and
    not git-ignored) that .gcloudignore, read with gitignore rules, does not exclude."""
    spec = pathspec.GitIgnoreSpec.from_lines(
        (root / ".gcloudignore").read_text(encoding="utf-8").splitlines()
    )
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root, capture_output=True, check=True,
    ).stdout.decode().split("\0")
    return sorted(f for f in listed if f and (root / f).is_file() and not spec.match_file(f))


def test_gcloudignore_uploads_the_service_and_nothing_else() -> None:
    uploaded = upload_set(ROOT)
    # Exactly the service: a new top-level file or folder must be sorted in or out on purpose.
    assert {f.split("/")[0] for f in uploaded} == {
        "app.yaml", "cron.yaml", "requirements.txt", "webhook"
    }
    package = sorted(
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "webhook").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    )
    assert [f for f in uploaded if f.startswith("webhook/")] == package
    assert "webhook/schema/request.schema.json" in uploaded
    for left_out in ("jitaccess_sandbox/", "tests/", "benchmarks/", "policy/", "requests/"):
        assert not [f for f in uploaded if f.startswith(left_out)], left_out


# --------------------------------------------------------------------------------------------
# the Flask app serves every URL app.yaml routes to it


def flask_app() -> Any:
    settings = Settings(
        webhook_secret="s" * 32,
        repository="example/access",
        google_project="jit-ops",
        token="t" * 20,
    )
    return create_app(settings)


@pytest.mark.parametrize(("path", "method"), [(p, m) for p, ms in ROUTES.items() for m in ms])
def test_flask_app_routes_every_deployed_url(path: str, method: str) -> None:
    app = flask_app()
    adapter = app.url_map.bind("jit-ops.appspot.com")
    endpoint, _ = adapter.match(path, method=method)  # raises NotFound / MethodNotAllowed
    assert endpoint


# --------------------------------------------------------------------------------------------
# the GitHub App manifest asks for the minimum


def test_github_app_manifest_is_minimal() -> None:
    manifest = json.loads((ROOT / "deploy" / "github-app-manifest.json").read_text("utf-8"))
    assert manifest["default_permissions"] == {
        "checks": "write",  # the jit-access check run (with an App the verdict is no status)
        "contents": "read",  # policy/ and request files from the default branch and PR head
        "merge_queues": "read",  # needed to receive merge_group events
        "issues": "read",  # GitHub delivers issue_comment (`/jit revoke`) only with it
        "pull_requests": "write",  # comments, review requests
        "metadata": "read",  # mandatory for every App
    }
    assert sorted(manifest["default_events"]) == [
        "check_run", "check_suite", "issue_comment", "merge_group", "pull_request",
        "pull_request_review",
    ]
    assert manifest["hook_attributes"]["url"].endswith(".r.appspot.com/webhook")
    assert manifest["hook_attributes"]["active"] is True
    assert manifest["public"] is False
    assert len(manifest["name"]) <= 34  # GitHub's limit on App names
    assert manifest["url"].startswith("https://") and manifest["redirect_url"].startswith("https://")


def test_app_yaml_service_account_is_dedicated(app_yaml: dict[str, Any]) -> None:
    account = app_yaml["service_account"]
    assert re.fullmatch(r"jitaccess@[^@\s]+\.iam\.gserviceaccount\.com", account), account
