"""The file API against a model of the tree: every answer as predicted, and a failed call changes nothing.

A Hypothesis state machine writes, makes folders, moves (with and without
`overwrite`, onto itself, its parent or its child), deletes (recursive or
not), reads, lists and describes paths under `/home/user` through the SDK, on
CrowNest Local with and without bubblewrap. Its model is a dict from path to
content (None for a folder). After every step, errors included, the sandbox's
folder on the host must hold exactly what the model holds: no more (no
temporary file left behind), no less (nothing lost).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from crownest import CrowNest, CrowNestApiError
from crownest_local import LocalServer

NAMES = ("a", "b")
PATHS = ["/".join(parts) for depth in (1, 2, 3) for parts in itertools.product(NAMES, repeat=depth)]  # a … b/b/b
ROOT = "."
Tree = dict[str, bytes | None]
Outcome = tuple[int, str] | None  # (status, code) of the error the model expects, or None for success


def parent(path: str) -> str:
    return path.rpartition("/")[0]


def below(path: str, tree: Tree) -> list[str]:
    """`path` and everything under it."""
    return [p for p in tree if p == path or p.startswith(path + "/")]


def related(path: str) -> list[str]:
    """Destinations that test a move's edge cases: itself, its parent, its child, its grandparent."""
    return [path, parent(path) or path, f"{path}/a", parent(parent(path)) or path]


class Model:
    """What the file API promises, on a tree of files (bytes) and folders (None) under /home/user."""

    def __init__(self) -> None:
        self.tree: Tree = {}

    def walk(self, path: str, *, missing_ok: bool) -> Outcome:
        """The error on the way to `path`, checking its folders from the top."""
        parts = path.split("/")
        for depth in range(1, len(parts)):
            folder = "/".join(parts[:depth])
            if folder not in self.tree:
                return None if missing_ok else (404, "file_not_found")
            if self.tree[folder] is not None:
                return (409, "not_a_directory")
        return None

    def make_parents(self, path: str) -> None:
        parts = path.split("/")
        for depth in range(1, len(parts)):
            self.tree.setdefault("/".join(parts[:depth]), None)

    def write(self, path: str, data: bytes) -> Outcome:
        if path == ROOT:
            return (409, "is_a_directory")
        if error := self.walk(path, missing_ok=True):
            return error
        if path in self.tree and self.tree[path] is None:
            return (409, "is_a_directory")
        self.make_parents(path)
        self.tree[path] = data
        return None

    def mkdir(self, path: str, parents: bool) -> Outcome:
        if path == ROOT:
            return None
        if error := self.walk(path, missing_ok=True):
            return error
        if self.walk(path, missing_ok=False) and not parents:
            return (404, "file_not_found")
        if path in self.tree:
            return None if self.tree[path] is None else (409, "file_exists")
        self.make_parents(path)
        self.tree[path] = None
        return None

    def delete(self, path: str, recursive: bool) -> Outcome:
        if path != ROOT and (error := self.walk(path, missing_ok=False)):
            return error
        if path == ROOT:
            return (400, "invalid_path")
        if path not in self.tree:
            return (404, "file_not_found")
        if self.tree[path] is None and len(below(path, self.tree)) > 1 and not recursive:
            return (409, "directory_not_empty")
        for p in below(path, self.tree):
            del self.tree[p]
        return None

    def move(self, source: str, destination: str, overwrite: bool) -> Outcome:
        if source != ROOT and (error := self.walk(source, missing_ok=False)):
            return error
        if source == ROOT:
            return (400, "invalid_path")
        if source not in self.tree:
            return (404, "file_not_found")
        if destination != ROOT and (error := self.walk(destination, missing_ok=True)):
            return error
        if destination == ROOT:
            return (400, "invalid_path")
        if destination == source:
            return None if overwrite else (409, "file_exists")
        if destination.startswith(source + "/"):
            return (400, "invalid_path")
        if destination in self.tree and not overwrite:
            return (409, "file_exists")
        moving = {p[len(source) :]: self.tree.pop(p) for p in below(source, self.tree)}
        for p in below(destination, self.tree):
            del self.tree[p]
        self.make_parents(destination)
        self.tree.update({destination + rest: content for rest, content in moving.items()})
        return None

    def lookup(self, path: str, *, want: str) -> Outcome:
        """The error for reading (`want="file"`), listing (`"folder"`) or describing (`"any"`) `path`."""
        if path == ROOT:
            return (409, "is_a_directory") if want == "file" else None
        if error := self.walk(path, missing_ok=False):
            return error
        if path not in self.tree:
            return (404, "file_not_found")
        if want == "file" and self.tree[path] is None:
            return (409, "is_a_directory")
        if want == "folder" and self.tree[path] is not None:
            return (409, "not_a_directory")
        return None

    def names(self, path: str) -> list[str]:
        prefix = "" if path == ROOT else path + "/"
        return sorted(p[len(prefix) :] for p in self.tree if p.startswith(prefix) and "/" not in p[len(prefix) :])


def on_host(folder: Path) -> Tree:
    """What is really in `folder`: every path (hidden ones too), a file's bytes, None for a folder."""
    found: Tree = {}
    for here, folders, files in os.walk(folder):
        for name in folders:
            found[os.path.relpath(os.path.join(here, name), folder)] = None
        for name in files:
            found[os.path.relpath(os.path.join(here, name), folder)] = Path(here, name).read_bytes()
    return found


class FileApi(RuleBasedStateMachine):
    """Each run on a new sandbox of `server` (set by the test on a subclass)."""

    server: ClassVar[LocalServer]
    client: ClassVar[CrowNest]

    def __init__(self) -> None:
        super().__init__()
        self.model = Model()
        self.sandbox = self.client.sandboxes.create(template="base")
        assert self.server.data_dir is not None
        self.folder = self.server.sandbox_folder(self.sandbox.id)

    def expect(self, outcome: Outcome, call: Any) -> Any:
        """Run `call`; it must fail as `outcome` says, or succeed (its result is returned)."""
        try:
            result = call()
        except CrowNestApiError as error:
            assert (error.status, error.code) == outcome, error
            return None
        assert outcome is None, f"succeeded where the model expects {outcome}"
        return result

    @rule(path=st.sampled_from(PATHS), data=st.sampled_from([b"", b"one", b"two\n" * 3]))
    def write(self, path: str, data: bytes) -> None:
        info = self.expect(self.model.write(path, data), lambda: self.sandbox.files.write(path, data))
        assert info is None or (info.type_, info.size_bytes) == ("file", len(data))

    @rule(path=st.sampled_from([*PATHS, ROOT]), parents=st.booleans())
    def mkdir(self, path: str, parents: bool) -> None:
        info = self.expect(self.model.mkdir(path, parents), lambda: self.sandbox.files.mkdir(path, parents=parents))
        assert info is None or info.type_ == "directory"

    @rule(
        pair=st.sampled_from([*PATHS, ROOT]).flatmap(
            lambda s: st.tuples(st.just(s), st.sampled_from([*(related(s) if s != ROOT else []), *PATHS, ROOT]))
        ),
        overwrite=st.booleans(),
    )
    def move(self, pair: tuple[str, str], overwrite: bool) -> None:
        source, destination = pair
        expected = self.model.move(source, destination, overwrite)
        info = self.expect(expected, lambda: self.sandbox.files.move(source, destination, overwrite=overwrite))
        assert info is None or info.path == f"/home/user/{destination}"

    @rule(path=st.sampled_from([*PATHS, ROOT]), recursive=st.booleans())
    def delete(self, path: str, recursive: bool) -> None:
        self.expect(self.model.delete(path, recursive), lambda: self.sandbox.files.delete(path, recursive=recursive))

    @rule(path=st.sampled_from([*PATHS, ROOT]))
    def read(self, path: str) -> None:
        content = self.expect(self.model.lookup(path, want="file"), lambda: self.sandbox.files.read(path))
        assert content is None or content == self.model.tree[path]

    @rule(path=st.sampled_from([*PATHS, ROOT]))
    def list(self, path: str) -> None:
        entries = self.expect(self.model.lookup(path, want="folder"), lambda: self.sandbox.files.list(path))
        assert entries is None or [entry.name for entry in entries] == self.model.names(path)

    @rule(path=st.sampled_from([*PATHS, ROOT]))
    def info(self, path: str) -> None:
        info = self.expect(self.model.lookup(path, want="any"), lambda: self.sandbox.files.info(path))
        if info is not None and path != ROOT:
            assert info.type_ == ("directory" if self.model.tree[path] is None else "file")

    @invariant()
    def host_holds_the_model(self) -> None:
        assert on_host(self.folder / "home") == self.model.tree
        assert on_host(self.folder / "tmp") == {}

    def teardown(self) -> None:
        self.sandbox.kill()


def test_every_call_as_the_model_says_and_failures_change_nothing(each_isolation: LocalServer) -> None:
    with each_isolation.client(max_retries=0) as local:

        class OnThisServer(FileApi):
            server = each_isolation
            client = local

        run_state_machine_as_test(
            OnThisServer,
            settings=settings(
                max_examples=40,
                stateful_step_count=30,
                derandomize=True,
                database=None,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow],
            ),
        )


@pytest.fixture
def local(crownest_local: LocalServer) -> Iterator[CrowNest]:
    with crownest_local.client(max_retries=0) as client:
        yield client


def test_moving_a_folder_onto_itself_with_overwrite_changes_nothing(local: CrowNest) -> None:
    with local.sandboxes.create(template="base") as sandbox:
        sandbox.files.write("d/keep.txt", "kept")
        assert sandbox.files.move("d", "d", overwrite=True).type_ == "directory"
        assert sandbox.files.read_text("d/keep.txt") == "kept"


def test_moving_a_folder_onto_its_parent_flattens_it(local: CrowNest) -> None:
    """An unpacked archive's proj/proj moved onto proj: proj's old content goes, proj/proj's takes its place."""
    with local.sandboxes.create(template="base") as sandbox:
        sandbox.files.write("proj/proj/src/main.py", "print(1)")
        sandbox.files.write("proj/README", "outer")
        with pytest.raises(CrowNestApiError) as caught:
            sandbox.files.move("proj/proj", "proj")
        assert caught.value.code == "file_exists"
        assert sandbox.files.move("proj/proj", "proj", overwrite=True).path == "/home/user/proj"
        assert [entry.name for entry in sandbox.files.list("proj")] == ["src"]
        assert sandbox.files.read_text("proj/src/main.py") == "print(1)"
        assert [entry.name for entry in sandbox.files.list(".")] == ["proj"]


def test_moving_a_folder_into_itself_is_refused_and_changes_nothing(local: CrowNest) -> None:
    with local.sandboxes.create(template="base") as sandbox:
        sandbox.files.write("d/e/f.txt", "f")
        for destination in ("d/e", "d/e/g", "d/new/deeper"):
            with pytest.raises(CrowNestApiError) as caught:
                sandbox.files.move("d", destination, overwrite=True)
            assert (caught.value.status, caught.value.code) == (400, "invalid_path")
        assert [entry.name for entry in sandbox.files.list("d")] == ["e"]
        assert sandbox.files.read_text("d/e/f.txt") == "f"
