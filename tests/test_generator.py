"""`make generate`: deterministic, spec-driven, atomic."""

from __future__ import annotations

import ast
import importlib
import runpy
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
GENERATED = ROOT / "src" / "crownest" / "_generated"


def generate(spec: Path, out: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(ROOT / "generator" / "generate.py"), "--spec", str(spec), "--out", str(out)]
    return subprocess.run(command, capture_output=True, text=True)


def tree(out: Path) -> dict[str, str]:
    """What `generate.py --out OUT` wrote: OUT's modules, and `models/...` for the package beside it."""
    written = [*out.rglob("*.py"), *(out.parent / "models").rglob("*.py")]
    return {str(p.relative_to(out if p.is_relative_to(out) else out.parent)): p.read_text() for p in sorted(written)}


def without_strings(source: str) -> str:
    """The module's AST with every bare string statement (docstrings) removed."""
    module = ast.parse(source)
    for node in ast.walk(module):
        body = getattr(node, "body", None)
        if isinstance(body, list):
            kept = [s for s in body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
            node.body = kept or [ast.Pass()]  # type: ignore[attr-defined]
    return ast.dump(module)


def test_generation_reproduces_the_committed_tree(tmp_path: Path) -> None:
    assert generate(ROOT / "openapi.yaml", tmp_path / "_generated").returncode == 0
    assert tree(tmp_path / "_generated") == tree(GENERATED)


def test_a_description_change_changes_only_docstrings(tmp_path: Path) -> None:
    spec = tmp_path / "openapi.yaml"
    original = (ROOT / "openapi.yaml").read_text()
    old = "description: Its standard output (UTF-8, invalid bytes replaced), the first MiB."
    assert original.count(old) == 1
    spec.write_text(original.replace(old, "description: Everything the command printed to stdout."))
    assert generate(spec, tmp_path / "_generated").returncode == 0
    new, committed = tree(tmp_path / "_generated"), tree(GENERATED)
    assert new.keys() == committed.keys()
    changed = [name for name in new if new[name] != committed[name]]
    assert changed == ["models/command.py"]
    assert "Everything the command printed to stdout." in new["models/command.py"]
    assert without_strings(new["models/command.py"]) == without_strings(committed["models/command.py"])


@pytest.mark.parametrize(
    "breakage",
    [
        lambda s: s.replace('$ref: "#/components/schemas/Command"', '$ref: "#/components/schemas/Nope"', 1),
        lambda s: s + "\n  : [unbalanced\n",
    ],
    ids=["dangling-ref", "bad-yaml"],
)
def test_a_failed_run_leaves_the_old_tree(tmp_path: Path, breakage: object) -> None:
    out = tmp_path / "_generated"
    assert generate(ROOT / "openapi.yaml", out).returncode == 0
    before = tree(out)
    spec = tmp_path / "broken.yaml"
    spec.write_text(breakage((ROOT / "openapi.yaml").read_text()))  # type: ignore[operator]
    result = generate(spec, out)
    assert result.returncode != 0
    assert tree(out) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".generate-")] == []


UNION_SPEC = """
openapi: 3.1.0
info: {title: Probe, version: 1.0.0}
paths: {}
components:
  schemas:
    Circle:
      type: object
      required: [kind, radius]
      properties: {kind: {type: string}, radius: {type: integer}}
    Square:
      type: object
      required: [kind, side]
      properties: {kind: {type: string}, side: {type: integer}}
    Drawing:
      type: object
      required: [shape]
      properties:
        shape:
          oneOf: [{$ref: "#/components/schemas/Circle"}, {$ref: "#/components/schemas/Square"}]
"""


def test_an_unknown_union_variant_is_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "crownest_probe"
    shutil.copytree(
        ROOT / "src" / "crownest", package, ignore=shutil.ignore_patterns("_generated", "models", "__pycache__")
    )
    spec = tmp_path / "probe.yaml"
    spec.write_text(UNION_SPEC)
    result = generate(spec, package / "_generated")
    assert result.returncode == 0, result.stderr
    monkeypatch.syspath_prepend(str(tmp_path))
    drawing = importlib.import_module("crownest_probe.models.drawing").Drawing
    circle = importlib.import_module("crownest_probe.models.circle").Circle

    known = drawing.from_dict({"shape": {"kind": "circle", "radius": 2}})
    assert isinstance(known.shape, circle) and known.shape.radius == 2
    unknown = drawing.from_dict({"shape": {"kind": "hexagon", "edges": 6}})
    assert unknown.shape == {"kind": "hexagon", "edges": 6}
    assert unknown["shape"] == {"kind": "hexagon", "edges": 6}


def test_out_may_name_a_folder_whose_parent_does_not_exist_yet(tmp_path: Path) -> None:
    out = tmp_path / "not" / "yet" / "_generated"
    result = generate(ROOT / "openapi.yaml", out)
    assert result.returncode == 0, result.stderr
    assert tree(out) == tree(GENERATED)


def test_the_retry_flags_of_the_spec_decide_what_is_retried(tmp_path: Path) -> None:
    spec = tmp_path / "openapi.yaml"
    old = "{code: sandbox_not_running, status: 409, retry: false,"
    original = (ROOT / "openapi.yaml").read_text()
    assert original.count(old) == 1
    spec.write_text(original.replace(old, old.replace("false", "true")))
    assert generate(spec, tmp_path / "_generated").returncode == 0
    codes = runpy.run_path(str(tmp_path / "_generated" / "error_codes.py"))
    assert "sandbox_not_running" in codes["RETRYABLE_CODES"]
    assert "sandbox_not_running" not in runpy.run_path(str(GENERATED / "error_codes.py"))["RETRYABLE_CODES"]


def upstream() -> Any:
    sys.path.insert(0, str(ROOT / "generator"))
    try:
        return importlib.import_module("upstream")
    finally:
        sys.path.remove(str(ROOT / "generator"))


def test_every_override_records_its_upstream_template_and_it_is_unchanged() -> None:
    module = upstream()
    recorded = {o.template for o in module.overrides()}
    overriding = {str(p.relative_to(module.TEMPLATES)) for p in module.TEMPLATES.rglob("*.jinja")}
    assert overriding & {str(p.relative_to(module.UPSTREAM)) for p in module.UPSTREAM.rglob("*.jinja")} == recorded
    assert len(recorded) == 6
    assert module.stale() == []


def test_a_changed_upstream_template_is_named_with_the_command_that_shows_the_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = upstream()
    shutil.copytree(module.UPSTREAM, tmp_path / "templates")
    (tmp_path / "templates" / "str_enum.py.jinja").write_text("changed upstream\n")
    monkeypatch.setattr(module, "UPSTREAM", tmp_path / "templates")
    [problem] = module.stale()
    assert problem.startswith("templates/str_enum.py.jinja: upstream str_enum.py.jinja changed")
    assert "python generator/upstream.py diff str_enum.py.jinja" in problem


def test_only_the_adapter_calls_private_functions_of_openapi_python_client() -> None:
    for path in (ROOT / "generator").glob("*.py"):
        tree = ast.parse(path.read_text())
        imported = [
            alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("openapi_python_client")
            for alias in node.names
        ]
        attributes = [node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)]
        private = [name for name in imported + attributes if name.startswith("_") and not name.endswith("__")]
        assert private == [] or path.name == "upstream.py", (path.name, private)


def test_an_unknown_extension_is_an_error(tmp_path: Path) -> None:
    spec = tmp_path / "openapi.yaml"
    spec.write_text(
        (ROOT / "openapi.yaml").read_text().replace("x-crownest-method: set_ttl", "x-crownest-methd: set_ttl")
    )
    result = generate(spec, tmp_path / "_generated")
    assert result.returncode != 0
    assert "/paths//v1/sandboxes/{sandboxId}/ttl/post/x-crownest-methd" in result.stderr


def test_x_crownest_scope_takes_only_sandbox_outside_the_handles_own_tag(tmp_path: Path) -> None:
    spec = tmp_path / "openapi.yaml"
    original = (ROOT / "openapi.yaml").read_text()
    spec.write_text(
        original.replace("x-crownest-method: set_ttl", "x-crownest-method: set_ttl\n      x-crownest-scope: both")
    )
    result = generate(spec, tmp_path / "_generated")
    assert result.returncode != 0
    assert "set_sandbox_ttl: x-crownest-scope 'both': the only value is 'sandbox'" in result.stderr
