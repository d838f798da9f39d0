"""Print constraints.txt: the exact version of every package in .venv/ that pyproject.toml does not pin.

`make install` installs with `-c constraints.txt`, so the generator's own dependencies (Jinja2,
ruamel.yaml, pydantic, ...) and every other tool's are the versions last locked, not whatever
is newest on the day. pyproject.toml's `==` pins stay the one place for the tools themselves.

Usage: pip freeze --exclude-editable | python generator/lock.py > constraints.txt  (`make lock`)
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def main() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    groups = [*pyproject["project"]["optional-dependencies"].values(), *pyproject["dependency-groups"].values()]
    requirements = [r for group in groups for r in group if isinstance(r, str)]  # not {include-group = ...}
    pinned = {canonical(r.split("==")[0]) for r in requirements if "==" in r}
    print("# Written by `make lock` (generator/lock.py) from .venv/; `make install` installs with it.")
    for line in sorted(sys.stdin.read().splitlines(), key=str.lower):
        name, sep, _ = line.partition("==")
        if sep and canonical(name) not in pinned:
            print(line)


if __name__ == "__main__":
    main()
