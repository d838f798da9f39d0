"""The public surface: a pinned export list, public homes for public types, a light import."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import crownest
import crownest.models
from crownest.models import __all__ as model_names

EXPORTS = {
    "NOT_GIVEN",
    "AsyncCrowNest",
    "AsyncCommandHandle",
    "AsyncPage",
    "AsyncPager",
    "AsyncPtyHandle",
    "AsyncSandboxHandle",
    "AsyncWatchHandle",
    "AsyncStream",
    "AsyncStreamedResponse",
    "AuthenticationError",
    "BodyNotReplayableError",
    "BadRequestError",
    "CommandFailedError",
    "CommandHandle",
    "ConflictError",
    "CrowNest",
    "CrowNestApiError",
    "CrowNestConnectionError",
    "CrowNestError",
    "CrowNestTimeoutError",
    "DefaultAsyncHttpxClient",
    "DefaultHttpxClient",
    "InternalServerError",
    "NotFoundError",
    "NotGiven",
    "OutputChunk",
    "Page",
    "PermissionDeniedError",
    "PtyHandle",
    "RateLimitError",
    "ResponseTooLargeError",
    "RawResponse",
    "ReadOnlyError",
    "ResponseValidationError",
    "SandboxHandle",
    "WatchHandle",
    "Stream",
    "StreamedResponse",
    "SyncPager",
    "WireKeyError",
    "__version__",
}


def test_export_list_is_pinned_and_every_name_resolves() -> None:
    assert set(crownest.__all__) == EXPORTS
    for name in crownest.__all__:
        assert getattr(crownest, name) is not None


def test_every_model_has_a_public_home() -> None:
    assert "Sandbox" in model_names and "CommandStatus" in model_names
    for name in model_names:
        model = getattr(crownest.models, name)
        assert model.__name__ == name
        # Where the class is defined is what type checkers, help() and IDEs show: a public path.
        assert model.__module__.startswith("crownest.models."), model.__module__
    assert crownest.SandboxHandle.__mro__[1] is crownest.models.Sandbox
    assert "crownest.models.command" in repr(crownest.models.Command)


def test_models_type_check_under_their_public_path(tmp_path: Path) -> None:
    """mypy names a result's type by where it is defined: `crownest.models...`, never `_generated`."""
    source = tmp_path / "user.py"
    source.write_text("import crownest\nreveal_type(crownest.CrowNest().templates.get('t'))\n")
    out = subprocess.run([sys.executable, "-m", "mypy", "--strict", str(source)], capture_output=True, text=True)
    assert 'Revealed type is "crownest.models.template.Template"' in out.stdout, out.stdout


def test_import_loads_no_model_no_resource_and_no_local_server() -> None:
    code = (
        "import sys, crownest; "
        "print(sorted(m for m in sys.modules if m.startswith(('crownest._generated.', 'crownest.models', 'crownest_local'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert (
        out.strip() == "['crownest._generated.error_codes', 'crownest._generated.resources']"
    )  # codes: a dict, for retries


def test_user_agent_and_version() -> None:
    from crownest._base_client import USER_AGENT

    assert f"crownest-python/{crownest.__version__}" == USER_AGENT
