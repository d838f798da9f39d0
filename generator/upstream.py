"""The one place that touches openapi-python-client beyond its public surface, and the record of
which upstream templates `templates/` overrides.

openapi-python-client is driven as a library, which its API does not cover: building the
project (`_get_project_for_url_or_path`) and writing the package and the models
(`Project._create_package`, `Project._build_models`) are private. They are called here only,
so an upgrade that renames them breaks this module and nothing else.

Each override in `templates/` starts with a record of the upstream template it was copied
from: `{#- upstream: openapi-python-client <version> <template> sha256:<hash> -#}`. When the
installed openapi-python-client's template no longer has that hash, the override may be
stale; `tests/test_generator.py` fails and names the command that shows what changed:

    python generator/upstream.py diff <template>    # recorded version -> installed version
    python generator/upstream.py check              # every override's record
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import re
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import openapi_python_client
from openapi_python_client import Project, _get_project_for_url_or_path
from openapi_python_client.config import Config
from openapi_python_client.parser.errors import GeneratorError

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "templates"
PACKAGE = "openapi-python-client"
UPSTREAM = Path(openapi_python_client.__file__).parent / "templates"
RECORD = re.compile(r"\{#- upstream: openapi-python-client (\S+) (\S+) sha256:([0-9a-f]{64}) -#\}")


def load_project(config: Config, templates: Path) -> Project | GeneratorError:
    """The parsed spec and its Jinja environment, with `templates` overriding upstream's."""
    return _get_project_for_url_or_path(config, custom_template_path=templates)


def write_package(project: Project) -> None:
    """The package folder and its `__init__.py`, `types.py` (from our overrides)."""
    project._create_package()


def write_models(project: Project) -> None:
    """`models/`: one module per schema and `models/__init__.py`."""
    project._build_models()


@dataclass(frozen=True)
class Override:
    path: Path  # the override, under templates/
    version: str  # the openapi-python-client version it was copied from
    template: str  # the upstream template's path under openapi_python_client/templates/
    sha256: str  # of that upstream template

    def installed_sha256(self) -> str | None:
        """The hash of the installed openapi-python-client's template, or None if it has none."""
        upstream = UPSTREAM / self.template
        return hashlib.sha256(upstream.read_bytes()).hexdigest() if upstream.is_file() else None


def overrides() -> list[Override]:
    """Every override in templates/ that records its upstream template."""
    found = []
    for path in sorted(TEMPLATES.rglob("*.jinja")):
        match = RECORD.search(path.read_text().split("\n", 1)[0])
        if match:
            found.append(Override(path, *match.groups()))
    return found


def stale() -> list[str]:
    """A line per override whose upstream template changed since it was copied."""
    installed = importlib.metadata.version(PACKAGE)
    return [
        f"{o.path.relative_to(ROOT)}: upstream {o.template} changed from {PACKAGE} {o.version} to {installed}; "
        f"see `python generator/upstream.py diff {o.template}`, port the change, then update the record"
        for o in overrides()
        if o.installed_sha256() != o.sha256
    ]


def diff(template: str) -> str:
    """The upstream change to `template` between the recorded version and the installed one."""
    [override] = [o for o in overrides() if o.template == template]
    with tempfile.TemporaryDirectory() as tmp:
        pip = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:", "-d", tmp]
        subprocess.run([*pip, f"{PACKAGE}=={override.version}"], check=True)
        [wheel] = Path(tmp).glob("*.whl")
        old = Path(tmp) / "old.jinja"
        old.write_bytes(zipfile.ZipFile(wheel).read(f"openapi_python_client/templates/{template}"))
        done = subprocess.run(["diff", "-u", str(old), str(UPSTREAM / template)], capture_output=True, text=True)
        return done.stdout or "no change\n"


def main() -> None:
    if sys.argv[1:2] == ["diff"] and len(sys.argv) == 3:
        sys.stdout.write(diff(sys.argv[2]))
    elif sys.argv[1:] == ["check"]:
        problems = stale()
        print("\n".join(problems) or f"every override matches the installed {PACKAGE}")
        sys.exit(1 if problems else 0)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
