"""The package as a user gets it: the built wheel's metadata, and the wheel installed into bare virtual
environments, without and with the `local` extra (pip installs from the package index, as a user's does)."""

from __future__ import annotations

import email.parser
import email.policy
import os
import subprocess
import sys
import tomllib
import zipfile
from email.message import Message
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
INSTALL_HINT = 'pip install "crownest[local]"'
TRIVIAL_TEST = "def test_nothing_to_do():\n    assert True\n"
FIXTURE_TEST = """
def test_the_fixture_serves_a_sandbox(crownest_local):
    with crownest_local.client() as client:
        with client.sandboxes.create(template="base") as sandbox:
            assert sandbox.commands.run("echo hi").stdout == "hi\\n"
"""


def run(args: list[str | Path], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command outside this test session: no PYTHONPATH, no pytest options, no active venv."""
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTEST_ADDOPTS", "VIRTUAL_ENV"}}
    return subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def pinned(name: str) -> str:
    """The requirement `name==version` exactly as the `dev` dependency group pins it."""
    [requirement] = [r for r in PYPROJECT["dependency-groups"]["dev"] if r.startswith(f"{name}==")]
    return str(requirement)


def new_venv(where: Path, *requirements: str) -> Path:
    """A virtual environment holding only `requirements` and what they need; its bin/ folder."""
    made = run([sys.executable, "-m", "venv", "--without-pip", where])
    assert made.returncode == 0, made.stderr
    installed = run(
        [sys.executable, "-m", "pip", "--python", where / "bin" / "python", "install", "--quiet", *requirements]
    )
    assert installed.returncode == 0, installed.stderr
    return where / "bin"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    built = run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", out, ROOT])
    assert built.returncode == 0, built.stderr
    [path] = out.glob("crownest-*.whl")
    return path


@pytest.fixture(scope="module")
def metadata(wheel: Path) -> Message:
    with zipfile.ZipFile(wheel) as archive:
        [name] = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return email.parser.Parser(policy=email.policy.compat32).parsestr(archive.read(name).decode())


@pytest.fixture(scope="module")
def bare(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`pip install crownest` (no extra) plus pytest, in a venv of their own; its bin/ folder."""
    return new_venv(tmp_path_factory.mktemp("bare") / "venv", str(wheel), pinned("pytest"))


def test_the_bare_install_lacks_the_server(bare: Path) -> None:
    """The premise of the tests below: without the extra, neither Starlette nor uvicorn is there."""
    found = run(
        [bare / "python", "-c", "import importlib.util as u; print(u.find_spec('uvicorn'), u.find_spec('starlette'))"]
    )
    assert found.stdout.strip() == "None None"


def test_pytest_runs_where_crownest_is_installed_without_the_extra(bare: Path, tmp_path: Path) -> None:
    """The `pytest11` plugin loads in every pytest run; without the extra it must not break any of them."""
    (tmp_path / "test_trivial.py").write_text(TRIVIAL_TEST)
    done = run([bare / "python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_trivial.py"], cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout
    listed = run([bare / "python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "--fixtures"], cwd=tmp_path)
    assert "crownest_local" in listed.stdout  # the plugin was loaded, not skipped


def test_the_fixture_without_the_extra_fails_its_test_with_the_install_command(bare: Path, tmp_path: Path) -> None:
    (tmp_path / "test_uses_fixture.py").write_text(FIXTURE_TEST)
    (tmp_path / "test_trivial.py").write_text(TRIVIAL_TEST)
    done = run([bare / "python", "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "1 passed, 1 error" in done.stdout
    assert INSTALL_HINT in done.stdout


def test_crownest_local_without_the_extra_names_the_install_command(bare: Path) -> None:
    done = run([bare / "crownest-local", "serve", "--port", "0"])
    assert done.returncode != 0
    assert INSTALL_HINT in done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert run([bare / "crownest-local", "--help"]).returncode == 0  # no server needed to read the help


def test_importing_the_server_without_the_extra_raises_an_import_error_that_says_what_to_install(bare: Path) -> None:
    probe = "try:\n    from crownest_local import LocalServer\nexcept ImportError as e:\n    print(e)"
    done = run([bare / "python", "-c", probe])
    assert INSTALL_HINT in done.stdout, done.stderr
    assert run([bare / "python", "-c", "import crownest, crownest_local.pytest_plugin"]).returncode == 0


def test_with_the_extra_the_fixture_serves_a_session(wheel: Path, tmp_path: Path) -> None:
    venv = new_venv(tmp_path / "venv", f"crownest[local] @ {wheel.as_uri()}", pinned("pytest"))
    (tmp_path / "test_uses_fixture.py").write_text(FIXTURE_TEST)
    done = run(
        [venv / "python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "ignore::UserWarning"], cwd=tmp_path
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout


def test_loading_the_plugin_imports_neither_the_server_nor_the_sdk() -> None:
    """pytest loads the plugin in every run: it must cost nothing until a test asks for the fixture."""
    probe = (
        "import sys, crownest_local.pytest_plugin\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'uvicorn', 'starlette', 'crownest', 'httpx'}))"
    )
    done = run([sys.executable, "-c", probe])
    assert done.stdout.strip() == "[]", done.stderr


def test_the_metadata_names_the_license_and_ships_its_text(wheel: Path, metadata: Message) -> None:
    assert metadata["License-Expression"] == "Apache-2.0"
    assert metadata.get_all("License-File") == ["LICENSE"]
    with zipfile.ZipFile(wheel) as archive:
        [license_text] = [n for n in archive.namelist() if n.endswith(".dist-info/licenses/LICENSE")]
        assert "Apache License" in archive.read(license_text).decode()
        assert archive.read(license_text) == (ROOT / "LICENSE").read_bytes()


def test_the_metadata_links_the_project(metadata: Message) -> None:
    urls = dict(u.split(", ", 1) for u in metadata.get_all("Project-URL") or [])
    assert set(urls) == {"Homepage", "Source", "Issues", "Changelog"}
    assert all(u.startswith("https://") for u in urls.values())


def test_the_classifiers_cover_every_supported_python_and_typing(metadata: Message) -> None:
    classifiers = set(metadata.get_all("Classifier") or [])
    versions = {c.rsplit(" ", 1)[1] for c in classifiers if c.startswith("Programming Language :: Python :: 3.")}
    assert versions == {"3.11", "3.12", "3.13", "3.14"}
    assert metadata["Requires-Python"] == ">=3.11"
    assert {"Typing :: Typed", "Operating System :: OS Independent", "Framework :: Pytest"} <= classifiers


def test_the_metadata_publishes_the_local_extra_and_no_development_pins(metadata: Message) -> None:
    assert metadata.get_all("Provides-Extra") == ["local"]
    requirements = [r.split(";")[0] for r in metadata.get_all("Requires-Dist") or []]
    assert not [r for r in requirements if "==" in r], requirements  # ranges for users, pins stay in the repository
    assert {r.partition(">")[0].partition("<")[0] for r in requirements} == {
        "attrs",
        "httpx",
        "inotify-simple",
        "sniffio",
        "starlette",
        "uvicorn",
    }


def test_the_description_is_for_users(metadata: Message) -> None:
    """The PyPI page shows README.md without its contributor sections (markers in README.md choose them)."""
    description = metadata.get_payload()
    assert isinstance(description, str)
    assert metadata["Description-Content-Type"] == "text/markdown"
    for users_part in ("## Install", "## Quickstart", "### Errors", "## CrowNest Local"):
        assert users_part in description
    for contributors_part in ("For contributors", "How the repository works", "make test", "make generate", "<!--"):
        assert contributors_part not in description
